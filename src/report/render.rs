//! Renderers shared by every report: a report is sections of rows (for
//! table/csv/markdown/html) plus a JSON document (for programs).

use std::fmt::Write;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
    Html,
}

/// One titled table.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A rendered-ready report.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    pub sections: Vec<Section>,
    /// Titled (label, count) bar charts, drawn as inline SVG in HTML.
    pub charts: Vec<(String, Vec<(String, u64)>)>,
    pub json: serde_json::Value,
}

/// Rows shown per section in the terminal before summarising.
const TABLE_LIMIT: usize = 50;

pub fn render(doc: &Document, format: ReportFormat, color: bool) -> String {
    render_with(doc, format, color, None)
}

/// Where an answer came from: shown with every report and served page, so a
/// reader can check it against the ledger (`ledger status`, `ledger verify`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Provenance {
    pub generated_at: String,
    pub version: String,
    pub ledger_origin: String,
    pub checkpoint_size: u64,
    /// Base64, as `ledger status` prints it.
    pub checkpoint_root: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
}

impl Provenance {
    /// Of the ledger's current signed head (read before the report's queries).
    pub fn of(ledger: &crate::ledger::Ledger, policy_digest: Option<&str>) -> Result<Provenance, crate::ledger::LedgerError> {
        use base64::Engine;
        let head = ledger.head()?;
        Ok(Provenance {
            generated_at: crate::time::Timestamp::now().canonical(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ledger_origin: ledger.origin.clone(),
            checkpoint_size: head.size,
            checkpoint_root: base64::engine::general_purpose::STANDARD.encode(head.root),
            policy_digest: policy_digest.map(str::to_string),
        })
    }

    /// Lines of at most 100 characters, for the terminal and Markdown.
    fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("generated {} by git-audit {}", self.generated_at, self.version),
            format!("from ledger {}", self.ledger_origin),
            format!("at checkpoint size {}, root {}", self.checkpoint_size, self.checkpoint_root),
        ];
        out.extend(self.policy_digest.as_deref().map(|d| format!("policy digest {d}")));
        out
    }
}

/// Renders with provenance: a `provenance` object in JSON, a footer in the
/// other formats (CSV stays one plain table, for spreadsheets).
pub fn render_with(doc: &Document, format: ReportFormat, color: bool, provenance: Option<&Provenance>) -> String {
    match format {
        ReportFormat::Json => {
            let mut json = doc.json.clone();
            if let (Some(p), Some(obj)) = (provenance, json.as_object_mut()) {
                obj.insert("provenance".into(), serde_json::to_value(p).unwrap_or_default());
            }
            format!("{}\n", serde_json::to_string_pretty(&json).unwrap_or_default())
        }
        ReportFormat::Table => table(doc, color) + &provenance.map(|p| format!("\n{}\n", p.lines().join("\n"))).unwrap_or_default(),
        ReportFormat::Csv => csv(doc),
        ReportFormat::Markdown => {
            markdown(doc) + &provenance.map(|p| format!("\n---\n\n_{}_\n", p.lines().join(";<br>"))).unwrap_or_default()
        }
        ReportFormat::Html => page(doc, &Page { provenance, ..Page::default() }),
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// A cell's text in lines of at most `w` characters: at spaces where it can,
/// mid-word where a word is longer than the column. Nothing is cut off.
fn wrap(text: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let room = if line.is_empty() { w } else { w.saturating_sub(width(&line) + 1) };
            if word.len() <= room {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if line.is_empty() {
                // A word longer than the column: split it.
                lines.push(word.drain(..w).collect());
            } else {
                lines.push(std::mem::take(&mut line));
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Column widths that fit `total` characters where they can: the widest
/// columns give way first, none below `min` (or its own natural width).
fn fit(natural: &[usize], total: usize, min: usize) -> Vec<usize> {
    let mut w = natural.to_vec();
    let overhead = 2 + 2 * w.len().saturating_sub(1);
    while w.iter().sum::<usize>() + overhead > total {
        let widest = (0..w.len()).filter(|&i| w[i] > natural[i].min(min)).max_by_key(|&i| w[i]);
        match widest {
            Some(i) => w[i] -= 1,
            None => break,
        }
    }
    w
}

/// Aligned columns, readable at 100 columns: long cells wrap onto more lines
/// (never clipped); a table with more columns than fit at 12 characters
/// each is as wide as it needs to be.
fn table(doc: &Document, color: bool) -> String {
    let mut out = String::new();
    let bold = |s: &str| if color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() };
    let _ = writeln!(out, "{}", bold(&doc.title));
    for s in &doc.sections {
        let _ = writeln!(out, "\n{} ({})", bold(&s.title), s.rows.len());
        if s.rows.is_empty() {
            let _ = writeln!(out, "  (none)");
            continue;
        }
        let n = s.columns.len();
        let shown: Vec<&Vec<String>> = s.rows.iter().take(TABLE_LIMIT).collect();
        let mut natural: Vec<usize> = s.columns.iter().map(|c| width(c)).collect();
        for r in &shown {
            for (i, c) in r.iter().enumerate().take(n) {
                natural[i] = natural[i].max(width(c));
            }
        }
        let w = fit(&natural, 100, 12);
        let print = |out: &mut String, cells: &[String], heading: bool| {
            let wrapped: Vec<Vec<String>> = (0..n).map(|i| wrap(cells.get(i).map(String::as_str).unwrap_or(""), w[i])).collect();
            let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
            for k in 0..height {
                let line = (0..n)
                    .map(|i| format!("{:<width$}", wrapped[i].get(k).map(String::as_str).unwrap_or(""), width = w[i]))
                    .collect::<Vec<_>>()
                    .join("  ");
                let line = line.trim_end();
                let _ = writeln!(out, "  {}", if heading { bold(line) } else { line.to_string() });
            }
        };
        print(&mut out, &s.columns, true);
        for r in &shown {
            print(&mut out, r, false);
        }
        if s.rows.len() > TABLE_LIMIT {
            let _ = writeln!(out, "  … and {} more (use --format csv or json for all)", s.rows.len() - TABLE_LIMIT);
        }
    }
    out
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// One CSV table: the first section that has rows is the report's main table;
/// every section is written with a `section` column so nothing is lost.
fn csv(doc: &Document) -> String {
    let mut out = String::new();
    let mut columns: Vec<String> = vec!["section".into()];
    for s in &doc.sections {
        for c in &s.columns {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let _ = writeln!(out, "{}", columns.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
    for s in &doc.sections {
        for r in &s.rows {
            let mut line = vec![csv_cell(&s.title)];
            for c in &columns[1..] {
                let v = s.columns.iter().position(|x| x == c).and_then(|i| r.get(i)).map(String::as_str).unwrap_or("");
                line.push(csv_cell(v));
            }
            let _ = writeln!(out, "{}", line.join(","));
        }
    }
    out
}

fn md_cell(c: &str) -> String {
    c.replace('|', "\\|").replace('\n', " ")
}

fn markdown(doc: &Document) -> String {
    let mut out = format!("# {}\n", doc.title);
    for s in &doc.sections {
        let _ = writeln!(out, "\n## {} ({})\n", s.title, s.rows.len());
        if s.rows.is_empty() {
            out.push_str("_none_\n");
            continue;
        }
        let _ = writeln!(out, "| {} |", s.columns.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(out, "|{}|", s.columns.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
        for r in &s.rows {
            let _ = writeln!(out, "| {} |", r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG.
pub fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    let row = 26;
    let height = 30 + row * bars.len().max(1);
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" width=\"640\" height=\"{height}\" viewBox=\"0 0 640 {height}\">", esc(title));
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

/// What a page adds around a report: the served UI's navigation, HTML
/// before and after the sections (dashboard tiles, an entry's proof), provenance.
#[derive(Default)]
pub struct Page<'a> {
    /// (href, label) links; empty for a static file.
    pub nav: Vec<(&'a str, &'a str)>,
    pub before: String,
    pub after: String,
    pub provenance: Option<&'a Provenance>,
    /// Link ids to their pages: ledger seqs to `/entry/N`, commits to
    /// `/trace/ID`, pull requests to the forge (served pages only: a static
    /// file links nowhere).
    pub links: bool,
}

/// Outcomes a reader should see at a glance.
fn cell_class(column: &str, value: &str) -> &'static str {
    match (column, value) {
        ("status" | "outcome" | "decision" | "state" | "verdict" | "signature", v) => match v {
            "success" | "accepted" | "approved" | "APPROVED" | "good" | "pass" => "good",
            "failure" | "error" | "refused" | "rejected" | "CHANGES_REQUESTED" | "bad" | "fail" | "unsigned" => "bad",
            _ => "",
        },
        ("severity", "error") => "bad",
        _ => "",
    }
}

fn is_hex_id(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A cell as HTML: escaped text, with links to what it names.
fn cell_html(column: &str, value: &str, links: bool) -> String {
    if !links {
        return esc(value);
    }
    let seq_link = |n: &str| format!("<a href=\"/entry/{n}\">{n}</a>");
    match column {
        "seq" | "evidence (ledger seq)"
            if value.split([' ', ',']).filter(|w| !w.is_empty()).all(|w| w.bytes().all(|b| b.is_ascii_digit())) =>
        {
            value.split([' ', ',']).filter(|w| !w.is_empty()).map(seq_link).collect::<Vec<_>>().join(" ")
        }
        _ => value
            .split(' ')
            .map(|word| {
                let bare = word.trim_end_matches([',', ';']);
                // Full ids anywhere; short ones where the column says they are commits.
                if is_hex_id(bare) && (bare.len() >= 40 || matches!(column, "sha" | "commit" | "head sha")) {
                    format!("<a href=\"/trace/{bare}\">{}</a>{}", esc(bare), esc(&word[bare.len()..]))
                } else if let Some((repo, n)) = bare.split_once('#').filter(|(r, n)| {
                    r.split('/').count() == 2
                        && !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
                }) {
                    format!("<a href=\"https://github.com/{repo}/pull/{n}\">{}</a>{}", esc(bare), esc(&word[bare.len()..]))
                } else {
                    esc(word)
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

const PAGE: &str = include_str!("templates/page.html");

/// One self-contained page: inline CSS and SVG, no scripts, fonts or network.
/// `report --format html` and `git-audit serve` both render through it.
pub fn page(doc: &Document, page: &Page<'_>) -> String {
    let mut env = minijinja::Environment::new();
    let charts: Vec<String> = doc.charts.iter().map(|(t, b)| bar_chart(t, b)).collect();
    let sections: Vec<serde_json::Value> = doc
        .sections
        .iter()
        .map(|s| {
            let rows: Vec<Vec<serde_json::Value>> = s
                .rows
                .iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let col = s.columns.get(i).map(String::as_str).unwrap_or("");
                            serde_json::json!({"html": cell_html(col, c, page.links), "class": cell_class(col, c)})
                        })
                        .collect()
                })
                .collect();
            serde_json::json!({"title": s.title, "columns": s.columns, "rows": rows})
        })
        .collect();
    let ctx = minijinja::context! {
        title => doc.title, nav => page.nav, before => page.before, after => page.after,
        charts => charts, sections => sections, provenance => page.provenance,
    };
    let rendered = env.add_template("page.html", PAGE).and_then(|_| env.get_template("page.html")).and_then(|t| t.render(ctx));
    match rendered {
        Ok(mut html) => {
            html.push('\n');
            html
        }
        Err(e) => format!("<!DOCTYPE html><html><body><p>cannot render this page: {}</p></body></html>\n", esc(&e.to_string())),
    }
}

pub(crate) fn escape(s: &str) -> String {
    esc(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document {
            title: "T".into(),
            sections: vec![Section {
                title: "S".into(),
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec!["x,y".into(), "say \"hi\"".into()], vec!["<b>".into(), "a|b".into()]],
            }],
            charts: vec![("findings per rule".into(), vec![("r1".into(), 3), ("r2".into(), 1)])],
            json: serde_json::json!({"ok": true}),
        }
    }

    #[test]
    fn long_cells_wrap_and_lose_nothing() {
        assert_eq!(wrap("pr.stale-approval on acme/api#3", 12), vec!["pr.stale-app", "roval on", "acme/api#3"]);
        assert_eq!(wrap("", 5), vec![""]);
        let msg = "the only approvals are by its author alice; merged by alice after the last push to the branch";
        let d = Document {
            title: "T".into(),
            sections: vec![Section {
                title: "S".into(),
                columns: vec!["rule".into(), "message".into(), "evidence (ledger seq)".into()],
                rows: vec![vec!["pr.self-approval".into(), msg.repeat(2), "1 2 3".into()]],
            }],
            ..Document::default()
        };
        let t = render(&d, ReportFormat::Table, false);
        assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
        let words: Vec<&str> = t.split_whitespace().collect();
        for w in msg.split(' ') {
            assert!(words.contains(&w), "`{w}` lost:\n{t}");
        }
        assert!(t.contains("pr.self-approval"), "{t}");
    }

    #[test]
    fn formats_escape_what_they_must() {
        let d = doc();
        let csv = render(&d, ReportFormat::Csv, false);
        assert_eq!(csv, "section,a,b\nS,\"x,y\",\"say \"\"hi\"\"\"\nS,<b>,a|b\n");
        let md = render(&d, ReportFormat::Markdown, false);
        assert!(md.contains("| <b> | a\\|b |"), "{md}");
        let html = render(&d, ReportFormat::Html, false);
        assert!(html.contains("<td>&lt;b&gt;</td>") && html.contains("<svg"));
        // Self-contained: no scripts, no external resources.
        assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href=") && !html.contains("https://"), "{html}");
        let table = render(&d, ReportFormat::Table, false);
        assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
    }
}
