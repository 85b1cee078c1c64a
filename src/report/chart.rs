//! Charts as inline SVG (the pages stay script-free): bars for counts by
//! label, and series over real time in which every period of the window is
//! present — a week with no deployments is a zero column, a week with no
//! lead time a gap in its line — with dated ticks and accessible titles.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// How long one period of a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Day,
    Week,
    Month,
}

impl Granularity {
    /// Days for windows up to a month, ISO weeks up to two years, months beyond.
    pub fn for_span(days: i64) -> Granularity {
        match days {
            ..=31 => Granularity::Day,
            32..=731 => Granularity::Week,
            _ => Granularity::Month,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        }
    }
}

/// One period of a window: `[start, end)` in UTC days, and how people name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2026-09-07` (a day), `2026-W37` (an ISO week), `2026-09` (a month).
    pub label: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// Every period from the one holding `since` to the one holding `end`,
/// empty ones included.
pub fn periods(since: DateTime<Utc>, end: DateTime<Utc>, g: Granularity) -> Vec<Period> {
    let first = since.date_naive();
    let last = end.max(since).date_naive();
    let mut start = match g {
        Granularity::Day => first,
        Granularity::Week => first - Days::new(u64::from(first.weekday().num_days_from_monday())),
        Granularity::Month => first.with_day(1).unwrap_or(first),
    };
    let mut out = Vec::new();
    // A window of many years at one period a month stays a few hundred periods.
    while start <= last && out.len() < 2000 {
        let next = match g {
            Granularity::Day => start + Days::new(1),
            Granularity::Week => start + Days::new(7),
            Granularity::Month => start.checked_add_months(Months::new(1)).unwrap_or(start + Days::new(31)),
        };
        let label = match g {
            Granularity::Day => start.format("%Y-%m-%d").to_string(),
            Granularity::Week => {
                let iso = start.iso_week();
                format!("{}-W{:02}", iso.year(), iso.week())
            }
            Granularity::Month => start.format("%Y-%m").to_string(),
        };
        out.push(Period { label, start, end: next });
        start = next;
    }
    out
}

/// The index of the period holding `t`, if any.
pub fn period_of(periods: &[Period], t: DateTime<Utc>) -> Option<usize> {
    let d = t.date_naive();
    let i = periods.partition_point(|p| p.start <= d);
    (i > 0 && d < periods[i - 1].end).then(|| i - 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A column per period; zero is drawn.
    Columns,
    /// A line through the periods with a value; a gap where there is none.
    Line,
}

/// A value per period: `None` is "no data" (a gap), never zero.
#[derive(Debug, Clone)]
pub struct Series {
    /// The chart's HTML id (`chart-deployments`).
    pub id: String,
    pub title: String,
    /// The value's unit, said on the axis (`deployments`, `%`, `hours`).
    pub unit: String,
    pub shape: Shape,
    pub periods: Vec<Period>,
    pub values: Vec<Option<f64>>,
    /// For columns: the part of each value drawn as bad (failed deployments).
    pub bad: Vec<f64>,
    pub bad_label: String,
    /// Why no period has a value, said in place of an empty chart.
    pub empty_because: Option<String>,
    /// Where a period's column links on served pages: this path with the
    /// period as its window (`/deployments?since=…&until=…&env=…`).
    pub drill: Option<(String, String)>,
}

impl Series {
    pub fn new(id: &str, title: &str, unit: &str, shape: Shape, periods: Vec<Period>, values: Vec<Option<f64>>) -> Series {
        Series {
            id: id.into(),
            title: title.into(),
            unit: unit.into(),
            shape,
            periods,
            values,
            bad: Vec::new(),
            bad_label: String::new(),
            empty_because: None,
            drill: None,
        }
    }

    fn has_data(&self) -> bool {
        match self.shape {
            Shape::Columns => !self.periods.is_empty(),
            Shape::Line => self.values.iter().any(Option::is_some),
        }
    }
}

const W: f64 = 720.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 34.0;
const PLOT_H: f64 = 140.0;

/// A round axis maximum at or above `v` (1, 2, 5 × 10^n).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|m| *m >= v).unwrap_or(10.0 * mag)
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Builds a period's drill-down address from (path, environment, period).
pub type DrillLink = dyn Fn(&str, &str, &Period) -> String;

/// The series as an SVG figure. `link` builds a period's drill-down address
/// (served pages only; `None` for a static file).
pub fn series_svg(s: &Series, link: Option<&DrillLink>) -> String {
    let id = esc(&s.id);
    let n = s.periods.len().max(1);
    let height = TOP + PLOT_H + 40.0;
    let values: Vec<f64> = s.values.iter().flatten().copied().collect();
    let with_data = values.len();
    let total: f64 = values.iter().sum();
    let desc = match (s.has_data(), &s.empty_because) {
        (false, Some(why)) => format!("No data: {why}"),
        (false, None) => "No data in the window.".to_string(),
        _ => match s.shape {
            Shape::Columns => format!(
                "{} {} over {} periods from {} to {}; {} periods with none.",
                number(total),
                s.unit,
                s.periods.len(),
                s.periods.first().map(|p| p.start.to_string()).unwrap_or_default(),
                s.periods.last().map(|p| (p.end - Days::new(1)).to_string()).unwrap_or_default(),
                s.values.iter().filter(|v| v.is_none_or(|v| v == 0.0)).count()
            ),
            Shape::Line => format!("{} of {} periods have a value; gaps are periods with no data.", with_data, s.periods.len()),
        },
    };
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\"><title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        esc(&s.title),
        esc(&desc)
    );
    let _ = write!(svg, "<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(&s.title));
    if !s.has_data() {
        let why = s.empty_because.as_deref().unwrap_or("no data in the window");
        let _ = write!(
            svg,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{PLOT_H}\" fill=\"#f6f8fa\" stroke=\"#d0d7de\"/><text class=\"no-data\" x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#57606a\">No data</text></svg><figcaption class=\"no-data\">No data: {}</figcaption></figure>",
            W - LEFT - RIGHT,
            LEFT + (W - LEFT - RIGHT) / 2.0,
            TOP + PLOT_H / 2.0,
            esc(why)
        );
        return svg;
    }
    let max = nice_max(values.iter().copied().fold(0.0, f64::max));
    let plot_w = W - LEFT - RIGHT;
    let step = plot_w / n as f64;
    let y = |v: f64| TOP + PLOT_H - v / max * PLOT_H;
    // Axis: gridlines at 0, half and max, labelled with the unit.
    for v in [0.0, max / 2.0, max] {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#d0d7de\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\">{}</text>",
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            number(v)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + PLOT_H / 2.0,
        TOP + PLOT_H / 2.0,
        esc(&s.unit)
    );
    // Dated ticks: at most about eight, each the first day of its period.
    let every = n.div_ceil(8).max(1);
    for (i, p) in s.periods.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let x = LEFT + step * (i as f64 + 0.5);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#57606a\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#57606a\">{}</text>",
            TOP + PLOT_H,
            TOP + PLOT_H + 4.0,
            TOP + PLOT_H + 16.0,
            p.start.format("%Y-%m-%d")
        );
    }
    let period_text = |p: &Period| match p.end - p.start {
        d if d.num_days() == 1 => p.label.clone(),
        _ => format!("{} ({} to {})", p.label, p.start, p.end - Days::new(1)),
    };
    match s.shape {
        Shape::Columns => {
            let bar = (step * 0.7).clamp(1.0, 40.0);
            for (i, p) in s.periods.iter().enumerate() {
                let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
                let bad = s.bad.get(i).copied().unwrap_or(0.0).min(v);
                let x = LEFT + step * (i as f64 + 0.5) - bar / 2.0;
                let mut tip = format!("{}: {} {}", period_text(p), number(v), s.unit);
                if bad > 0.0 {
                    let _ = write!(tip, ", {} {}", number(bad), s.bad_label);
                }
                let mut g = format!(
                    "<g class=\"period\" data-period=\"{}\" data-start=\"{}\" data-value=\"{}\"><title>{}</title>",
                    esc(&p.label),
                    p.start,
                    number(v),
                    esc(&tip)
                );
                if v == 0.0 {
                    // Zero is drawn: a flat mark on the axis, not nothing.
                    let _ = write!(
                        g,
                        "<rect class=\"zero\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"2\" fill=\"#8c959f\"/>",
                        y(0.0) - 2.0
                    );
                } else {
                    let _ = write!(
                        g,
                        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"#0969da\"/>",
                        y(v),
                        y(0.0) - y(v)
                    );
                    if bad > 0.0 {
                        let _ = write!(
                            g,
                            "<rect class=\"bad\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"#cf222e\"/>",
                            y(bad),
                            y(0.0) - y(bad)
                        );
                    }
                }
                g.push_str("</g>");
                match (&s.drill, link) {
                    (Some((path, env)), Some(link)) => {
                        let _ = write!(svg, "<a href=\"{}\">{g}</a>", esc(&link(path, env, p)));
                    }
                    _ => svg.push_str(&g),
                }
            }
            if !s.bad_label.is_empty() {
                let _ = write!(
                    svg,
                    "<rect x=\"{}\" y=\"6\" width=\"10\" height=\"10\" fill=\"#0969da\"/><text x=\"{}\" y=\"15\" font-size=\"11\">all</text><rect x=\"{}\" y=\"6\" width=\"10\" height=\"10\" fill=\"#cf222e\"/><text x=\"{}\" y=\"15\" font-size=\"11\">{}</text>",
                    W - 150.0,
                    W - 136.0,
                    W - 110.0,
                    W - 96.0,
                    esc(&s.bad_label)
                );
            }
        }
        Shape::Line => {
            // Runs of consecutive values are one polyline each: a gap is a gap.
            let mut run: Vec<String> = Vec::new();
            let mut lines = Vec::new();
            for (i, v) in s.values.iter().enumerate() {
                match v {
                    Some(v) => run.push(format!("{:.1},{:.1}", LEFT + step * (i as f64 + 0.5), y(*v))),
                    None if !run.is_empty() => lines.push(std::mem::take(&mut run)),
                    None => {}
                }
            }
            if !run.is_empty() {
                lines.push(run);
            }
            for l in lines.iter().filter(|l| l.len() > 1) {
                let _ = write!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"#8250df\" stroke-width=\"2\"/>", l.join(" "));
            }
            for (i, p) in s.periods.iter().enumerate() {
                let x = LEFT + step * (i as f64 + 0.5);
                match s.values.get(i).copied().flatten() {
                    Some(v) => {
                        let _ = write!(
                            svg,
                            "<g class=\"period\" data-period=\"{}\" data-start=\"{}\" data-value=\"{}\"><title>{}: {} {}</title><circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#8250df\"/></g>",
                            esc(&p.label),
                            p.start,
                            number(v),
                            esc(&period_text(p)),
                            number(v),
                            esc(&s.unit),
                            y(v)
                        );
                    }
                    None => {
                        let _ = write!(
                            svg,
                            "<g class=\"period gap\" data-period=\"{}\" data-start=\"{}\"><title>{}: no data</title></g>",
                            esc(&p.label),
                            p.start,
                            esc(&period_text(p))
                        );
                    }
                }
            }
        }
    }
    svg.push_str("</svg>");
    if let Some(why) = s.empty_because.as_deref().filter(|_| s.shape == Shape::Columns && total == 0.0) {
        let _ = write!(svg, "<figcaption class=\"no-data\">None in the window: {}</figcaption>", esc(why));
    } else if s.shape == Shape::Line && with_data < s.periods.len() {
        let _ = write!(svg, "<figcaption>Gaps are periods with no data.</figcaption>");
    }
    svg.push_str("</figure>");
    svg
}

/// A horizontal bar chart as inline SVG: counts by label.
pub fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    let row = 26;
    let height = 30 + row * bars.len().max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" width=\"640\" height=\"{height}\" viewBox=\"0 0 640 {height}\">",
        esc(title)
    );
    let _ = write!(svg, "<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">{}</text>", esc(title));
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = 28 + i * row;
        let w = (*n as f64 / max as f64 * 360.0).round() as u64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"230\" y=\"{y}\" width=\"{w}\" height=\"18\" fill=\"#0969da\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 13,
            esc(label),
            236 + w,
            y + 13
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).unwrap_or_default()
    }

    #[test]
    fn every_week_of_the_window_is_a_period_empty_or_not() {
        // 2026-09-02 is a Wednesday: the first period is its ISO week, from Monday.
        let p = periods(t("2026-09-02T10:00:00Z"), t("2026-12-01T00:00:00Z"), Granularity::Week);
        assert_eq!(p.first().map(|p| p.label.as_str()), Some("2026-W36"));
        assert_eq!(p.first().map(|p| p.start.to_string()), Some("2026-08-31".into()));
        assert_eq!(p.last().map(|p| p.label.as_str()), Some("2026-W49"));
        assert_eq!(p.len(), 14);
        assert!(p.windows(2).all(|w| w[0].end == w[1].start), "periods are contiguous");
        assert_eq!(period_of(&p, t("2026-10-07T23:59:59Z")).map(|i| p[i].label.as_str()), Some("2026-W41"));
        assert_eq!(period_of(&p, t("2026-08-30T00:00:00Z")), None);
        assert_eq!(period_of(&p, t("2026-12-08T00:00:00Z")), None);
    }

    #[test]
    fn short_windows_go_by_day_and_long_ones_by_month() {
        assert_eq!(Granularity::for_span(14), Granularity::Day);
        assert_eq!(Granularity::for_span(90), Granularity::Week);
        assert_eq!(Granularity::for_span(1000), Granularity::Month);
        let d = periods(t("2026-09-01T12:00:00Z"), t("2026-09-03T01:00:00Z"), Granularity::Day);
        assert_eq!(d.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["2026-09-01", "2026-09-02", "2026-09-03"]);
        let m = periods(t("2026-01-15T00:00:00Z"), t("2026-03-01T00:00:00Z"), Granularity::Month);
        assert_eq!(m.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(), ["2026-01", "2026-02", "2026-03"]);
    }

    #[test]
    fn zero_is_drawn_and_a_gap_is_not_zero() {
        let p = periods(t("2026-09-01T00:00:00Z"), t("2026-09-21T00:00:00Z"), Granularity::Week);
        let cols = series_svg(
            &Series::new("c", "Deployments", "deployments", Shape::Columns, p.clone(), vec![Some(2.0), Some(0.0), None, Some(1.0)]),
            None,
        );
        assert_eq!(cols.matches("class=\"period\"").count(), 4, "{cols}");
        assert_eq!(cols.matches("class=\"zero\"").count(), 2, "both empty weeks are drawn as zero");
        assert!(cols.contains("2026-08-31") && cols.contains("<title id=\"c-title\">Deployments</title>"));
        let line =
            series_svg(&Series::new("l", "Lead", "hours", Shape::Line, p.clone(), vec![Some(2.0), None, Some(3.0), Some(1.0)]), None);
        assert_eq!(line.matches("class=\"period gap\"").count(), 1);
        // The gap splits the line: the lone first point draws no segment.
        assert_eq!(line.matches("<polyline").count(), 1, "{line}");
        let mut empty = Series::new("e", "Lead", "hours", Shape::Line, p, vec![None; 4]);
        empty.empty_because = Some("lead time needs the commits: run `git fetch`".into());
        let e = series_svg(&empty, None);
        assert!(e.contains("No data: lead time needs the commits: run `git fetch`"), "{e}");
        assert!(!e.contains("polyline"));
    }

    #[test]
    fn what_others_wrote_cannot_leave_the_svg() {
        let p = periods(t("2026-09-01T00:00:00Z"), t("2026-09-02T00:00:00Z"), Granularity::Day);
        let mut s = Series::new("x\"><script>", "<b>t</b>", "u", Shape::Columns, p, vec![Some(1.0), Some(1.0)]);
        s.drill = Some(("/deployments".into(), "prod\"><script>".into()));
        let link = |path: &str, env: &str, p: &Period| format!("{path}?since={}&env={env}", p.start);
        let out = series_svg(&s, Some(&link));
        assert!(!out.contains("<script>") && !out.contains("<b>"), "{out}");
    }
}
