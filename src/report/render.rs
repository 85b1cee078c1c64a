//! Renderers shared by every report: a report is sections of rows (for
//! table/csv/markdown/html) plus a JSON document (for programs).

use std::fmt::Write;

use crate::event::{DeploymentState, ReviewState, APPROVAL_APPROVED};
use crate::forge::Web;

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
    /// As people read them: short ids, `33%`, `—` for nothing.
    pub rows: Vec<Vec<String>>,
    /// As programs read them, for CSV: full ids, fractions, hours, empty for
    /// nothing. `None` when `rows` already are.
    pub raw: Option<Vec<Vec<String>>>,
    /// Columns the terminal table leaves out to keep a row on one line (the
    /// other formats keep every column).
    pub not_in_table: Vec<String>,
}

impl Section {
    pub fn new(title: &str, columns: &[&str], rows: Vec<Vec<String>>) -> Section {
        Section { title: title.into(), columns: columns.iter().map(|c| c.to_string()).collect(), rows, raw: None, not_in_table: Vec::new() }
    }

    /// Leaves these columns out of the terminal table.
    pub fn not_in_table(mut self, columns: &[&str]) -> Section {
        self.not_in_table = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// The columns and rows the terminal table shows.
    fn for_table(&self) -> Section {
        if self.not_in_table.is_empty() {
            return self.clone();
        }
        let keep: Vec<usize> = (0..self.columns.len()).filter(|&i| !self.not_in_table.contains(&self.columns[i])).collect();
        let pick = |r: &Vec<String>| keep.iter().map(|&i| r.get(i).cloned().unwrap_or_default()).collect::<Vec<_>>();
        Section {
            title: self.title.clone(),
            columns: pick(&self.columns),
            rows: self.rows.iter().map(pick).collect(),
            raw: None,
            not_in_table: Vec::new(),
        }
    }

    /// The same rows with raw values (same columns, same order), for CSV.
    pub fn with_raw(mut self, raw: Vec<Vec<String>>) -> Section {
        self.raw = Some(raw);
        self
    }
}

/// A rendered-ready report.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    pub sections: Vec<Section>,
    /// Titled (label, count) bar charts, drawn as inline SVG in HTML.
    pub charts: Vec<(String, Vec<(String, u64)>)>,
    /// Values over the window's periods, every period present (HTML only).
    pub series: Vec<super::chart::Series>,
    pub json: serde_json::Value,
}

impl Document {
    /// This document with every text a reader sees made visible (control
    /// characters escaped); `json` is left exact (its renderers escape).
    pub fn visible(&self) -> Document {
        use crate::text::visible;
        let v = |s: &String| visible(s).into_owned();
        let rows = |rows: &Vec<Vec<String>>| rows.iter().map(|r| r.iter().map(v).collect()).collect();
        Document {
            title: v(&self.title),
            sections: self
                .sections
                .iter()
                .map(|s| Section {
                    title: v(&s.title),
                    columns: s.columns.iter().map(v).collect(),
                    rows: rows(&s.rows),
                    raw: s.raw.as_ref().map(rows),
                    not_in_table: s.not_in_table.clone(),
                })
                .collect(),
            charts: self.charts.iter().map(|(t, bars)| (v(t), bars.iter().map(|(l, n)| (v(l), *n)).collect())).collect(),
            series: self
                .series
                .iter()
                .map(|s| super::chart::Series { title: v(&s.title), empty_because: s.empty_because.as_ref().map(v), ..s.clone() })
                .collect(),
            json: self.json.clone(),
        }
    }
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
    /// The ledger checked against its signed checkpoint (see [`crate::ledger::ground`]).
    pub ground: crate::ledger::ground::Ground,
}

impl Provenance {
    /// Of the ledger's current signed head, its ground checked for an answer
    /// citing `evidence` (ledger seqs; see [`crate::ledger::ground::cited`]).
    pub fn of(
        ledger: &crate::ledger::Ledger,
        policy_digest: Option<&str>,
        evidence: &[u64],
    ) -> Result<Provenance, crate::ledger::LedgerError> {
        let mut p = Provenance::unchecked(ledger, policy_digest)?;
        p.ground = ledger.ground(evidence)?;
        Ok(p)
    }

    /// The head, its ground not checked yet (`ground` is not `ok` until it is).
    pub fn unchecked(ledger: &crate::ledger::Ledger, policy_digest: Option<&str>) -> Result<Provenance, crate::ledger::LedgerError> {
        use base64::Engine;
        let head = ledger.head()?;
        let ground = crate::ledger::ground::Ground::default();
        Ok(Provenance {
            generated_at: crate::time::Timestamp::now().canonical(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ledger_origin: ledger.origin.clone(),
            checkpoint_size: head.size,
            checkpoint_root: base64::engine::general_purpose::STANDARD.encode(head.root),
            policy_digest: policy_digest.map(str::to_string),
            ground,
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
        out.push(self.ground.summary());
        out
    }
}

/// Renders with provenance: a `provenance` object in JSON, a footer in the
/// other formats (CSV stays one plain table, for spreadsheets).
///
/// What others wrote is made safe here, once, for every format: control
/// characters as visible escapes (JSON: `\u` escapes, same value), and CSV
/// cells that would run as spreadsheet formulas neutralised (see [`crate::text`]).
pub fn render_with(doc: &Document, format: ReportFormat, color: bool, provenance: Option<&Provenance>) -> String {
    let safe = doc.visible();
    let doc = &safe;
    match format {
        ReportFormat::Json => {
            let mut json = doc.json.clone();
            if let (Some(p), Some(obj)) = (provenance, json.as_object_mut()) {
                obj.insert("provenance".into(), serde_json::to_value(p).unwrap_or_default());
            }
            crate::text::json_safe(&format!("{}\n", serde_json::to_string_pretty(&json).unwrap_or_default())).into_owned()
        }
        ReportFormat::Table => {
            table(doc, color, terminal_width()) + &provenance.map(|p| format!("\n{}\n", p.lines().join("\n"))).unwrap_or_default()
        }
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

/// Words longer than this may be broken; shorter ones (ids, rule ids,
/// timestamps, a full commit id) never are: their column is made wide enough.
const ATOM: usize = 40;

/// Where a word too long for its column may break: after these (a path's
/// `/`, a list's `,`), else anywhere. Never inside a word of up to [`ATOM`].
fn break_at(word: &[char], w: usize) -> usize {
    (1..w.min(word.len())).rev().find(|&i| matches!(word[i - 1], '/' | ',' | ';' | '|' | '&' | '?' | '=')).unwrap_or(w)
}

/// A cell's text in lines of at most `w` characters: at spaces, and a word
/// longer than the column at punctuation where it can. Nothing is cut off.
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
                let at = break_at(&word, w);
                lines.push(word.drain(..at).collect());
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

/// The narrowest a column may get: its longest unbreakable word (up to
/// [`ATOM`]), and `min` (or its own natural width when narrower).
fn floor(natural: usize, longest_word: usize, min: usize) -> usize {
    natural.min(min).max(longest_word.min(ATOM))
}

/// Column widths that fit `total` characters where they can: the widest
/// columns give way first, none below its floor.
fn fit(natural: &[usize], floors: &[usize], total: usize) -> Vec<usize> {
    let mut w = natural.to_vec();
    let overhead = 2 + 2 * w.len().saturating_sub(1);
    while w.iter().sum::<usize>() + overhead > total {
        let widest = (0..w.len()).filter(|&i| w[i] > floors[i]).max_by_key(|&i| w[i]);
        match widest {
            Some(i) => w[i] -= 1,
            None => break,
        }
    }
    w
}

/// How wide tables may be: `COLUMNS` when set (as shells export it), else the
/// terminal's width when stdout is one, else 100.
pub fn terminal_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n >= 20) {
        return n;
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; on failure (not a
    // terminal) it returns -1 and we use the default.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if got == 0 && size.ws_col >= 20 {
        return usize::from(size.ws_col);
    }
    100
}

/// Aligned columns in `total` characters (the terminal's width): long cells
/// wrap at spaces and punctuation onto more lines (never clipped, never inside
/// an id, rule id or timestamp); a table whose columns cannot fit that is as
/// wide as it needs to be.
fn table(doc: &Document, color: bool, total: usize) -> String {
    let mut out = String::new();
    let bold = |s: &str| if color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() };
    let _ = writeln!(out, "{}", bold(&doc.title));
    for s in &doc.sections {
        let s = &s.for_table();
        let _ = writeln!(out, "\n{} ({})", bold(&s.title), s.rows.len());
        if s.rows.is_empty() {
            let _ = writeln!(out, "  (none)");
            continue;
        }
        let n = s.columns.len();
        let shown: Vec<&Vec<String>> = s.rows.iter().take(TABLE_LIMIT).collect();
        let mut natural: Vec<usize> = s.columns.iter().map(|c| width(c)).collect();
        let mut longest: Vec<usize> = s.columns.iter().map(|c| c.split(' ').map(width).max().unwrap_or(0)).collect();
        for r in &shown {
            for (i, c) in r.iter().enumerate().take(n) {
                natural[i] = natural[i].max(width(c));
                longest[i] = longest[i].max(c.split(' ').map(width).max().unwrap_or(0));
            }
        }
        let floors: Vec<usize> = (0..n).map(|i| floor(natural[i], longest[i], 12)).collect();
        let w = fit(&natural, &floors, total);
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
    let c = crate::text::csv_neutral(c);
    if c.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// One CSV table per report, with raw values (full ids, fractions, hours) so
/// it loads into a spreadsheet or Datasette as it is: every section's rows,
/// under the union of their columns, with a `section` column saying whose.
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
        for r in s.raw.as_ref().unwrap_or(&s.rows) {
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
    /// `/trace/ID`, pull requests, commits and deployments to the forge
    /// (served pages only: a static file links nowhere).
    pub links: Option<&'a Links>,
}

/// What the served pages can link to outside: the forge's pages, as the
/// ledger recorded them.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `owner/name` → its forge, and its web root there.
    forge: std::collections::BTreeMap<String, Web>,
    /// Deployment id (as people see it) → its page (the run, the CI job, the status log).
    deployments: std::collections::HashMap<String, String>,
    /// The page's window and environment (`since`, `until`, `env`): links keep
    /// them, and environments link to their dashboard over the same window.
    window: Option<(String, String, String)>,
}

/// An address a page may link to: http(s), no credentials, nothing that
/// could leave the attribute.
fn web_address(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let authority = r.split('/').next().unwrap_or("");
        !authority.is_empty() && !authority.contains('@') && !url.bytes().any(|b| b.is_ascii_whitespace() || b"\"'<>`".contains(&b))
    })
}

impl Links {
    /// From one recorded page of each repository on its forge
    /// ([`crate::ledger::Ledger::forge_pages`]) and each deployment's page.
    /// Keeps only addresses a page may carry (see [`web_address`]).
    pub fn new(pages: std::collections::BTreeMap<String, String>, deployments: std::collections::HashMap<String, String>) -> Links {
        Links {
            forge: pages
                .into_iter()
                .filter_map(|(repo, page)| Web::recognise(&page, &repo).filter(|w| web_address(&w.root)).map(|w| (repo, w)))
                .collect(),
            deployments: deployments.into_iter().filter(|(_, u)| web_address(u)).collect(),
            window: None,
        }
    }

    /// Links then keep this window and environment (`env` may be empty).
    pub fn with_window(mut self, since: &str, until: &str, env: &str) -> Links {
        self.window = Some((since.to_string(), until.to_string(), env.to_string()));
        self
    }

    /// The page's window and environment as a query string
    /// (`?since=…&until=…&env=…`), for links that keep them; empty when the
    /// page has none.
    pub fn window_query(&self) -> String {
        self.window_query_with(&[])
    }

    /// [`Links::window_query`] and more parameters (a filter), encoded.
    pub fn window_query_with(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some((since, until, env)) = &self.window {
            pairs.push(("since", since));
            pairs.extend((!until.is_empty()).then_some(("until", until.as_str())));
            pairs.extend((!env.is_empty()).then_some(("env", env.as_str())));
        }
        pairs.extend(extra.iter().copied());
        match serde_urlencoded::to_string(&pairs) {
            Ok(q) if !q.is_empty() => format!("?{q}"),
            _ => String::new(),
        }
    }

    /// The deployments of an ISO week (`2026-W37`), in the page's environment.
    fn week(&self, label: &str) -> Option<String> {
        let (year, week) = label.split_once("-W")?;
        let monday = chrono::NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, chrono::Weekday::Mon)?;
        let env = self.window.as_ref().map(|w| w.2.as_str()).unwrap_or("");
        // `until` as a date holds that whole day: the Sunday.
        let mut pairs = vec![("since", monday.to_string()), ("until", (monday + chrono::Days::new(6)).to_string())];
        pairs.extend((!env.is_empty()).then(|| ("env", env.to_string())));
        Some(format!("/deployments?{}", serde_urlencoded::to_string(&pairs).ok()?))
    }

    /// An environment's dashboard over the page's window.
    fn environment(&self, env: &str) -> Option<String> {
        let (since, until, _) = self.window.as_ref()?;
        let query = serde_urlencoded::to_string([("env", env), ("since", since), ("until", until)]).ok()?;
        Some(format!("/?{query}"))
    }

    /// The one repository these pages are about, when there is one (short
    /// ids and `#N` in tables are then unambiguous).
    fn only_repo(&self) -> Option<(&str, &Web)> {
        let mut it = self.forge.iter();
        match (it.next(), it.next()) {
            (Some((repo, web)), None) => Some((repo, web)),
            _ => None,
        }
    }

    fn web<'s>(&'s self, repo: Option<&'s str>) -> Option<(&'s str, &'s Web)> {
        match repo {
            Some(r) => Some((r, self.forge.get(r)?)),
            None => self.only_repo(),
        }
    }

    /// A commit's page on the forge.
    pub fn commit(&self, repo: Option<&str>, id: &str) -> Option<String> {
        self.web(repo).map(|(repo, web)| web.commit(repo, id))
    }

    /// A change's (pull or merge request's) page on the forge.
    pub fn pull(&self, repo: Option<&str>, number: &str) -> Option<String> {
        self.web(repo).map(|(repo, web)| web.change(repo, number))
    }
}

/// Outcomes a reader should see at a glance.
fn cell_class(column: &str, value: &str) -> &'static str {
    match (column, value) {
        ("status" | "outcome" | "decision" | "state" | "verdict" | "signature", v) => match v {
            "accepted" | "good" | "pass" | APPROVAL_APPROVED => "good",
            "refused" | "rejected" | "bad" | "fail" | "unsigned" => "bad",
            v if ReviewState::parse(v) == ReviewState::Approved || DeploymentState::parse(v).succeeded() => "good",
            v if ReviewState::parse(v) == ReviewState::ChangesRequested || DeploymentState::parse(v).failed() => "bad",
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
fn cell_html(column: &str, value: &str, links: Option<&Links>) -> String {
    let Some(links) = links else { return esc(value) };
    // Evidence and commits keep the page's window, so their pages' navigation does too.
    let window = esc(&links.window_query());
    let seq_link = |n: &str| format!("<a href=\"/entry/{n}{window}\">{n}</a>");
    let out = |url: String, text: &str| format!("<a href=\"{}\">{}</a>", esc(&url), esc(text));
    match column {
        "seq" | "evidence (ledger seq)"
            if value.split([' ', ',']).filter(|w| !w.is_empty()).all(|w| w.bytes().all(|b| b.is_ascii_digit())) =>
        {
            value.split([' ', ',']).filter(|w| !w.is_empty()).map(seq_link).collect::<Vec<_>>().join(" ")
        }
        "environment" if !value.is_empty() && links.window.is_some() => match links.environment(value) {
            Some(url) => out(url, value),
            None => esc(value),
        },
        // A rule: its findings over the page's window; a kind: the findings of that kind.
        "rule" if crate::rule::Rule::from_id(value).is_some() => {
            format!("<a href=\"/compliance{}\">{}</a>", esc(&links.window_query_with(&[("rule", value)])), esc(value))
        }
        "kind" if matches!(value, "violation" | "could not verify") => {
            let kind = if value == "violation" { "violation" } else { "unverified" };
            format!("<a href=\"/compliance{}\">{}</a>", esc(&links.window_query_with(&[("kind", kind)])), esc(value))
        }
        // An ISO week: the deployments of that week.
        "week" => match links.week(value) {
            Some(url) => out(url, value),
            None => esc(value),
        },
        // A deployment id: its run or job.
        "id" | "deployment" if links.deployments.contains_key(value) => {
            let url = links.deployments.get(value).cloned().unwrap_or_default();
            out(url, value)
        }
        _ => value
            .split(' ')
            .map(|word| {
                let bare = word.trim_end_matches([',', ';']);
                let tail = esc(&word[bare.len()..]);
                // Full ids anywhere; short ones where the column says they are commits.
                if is_hex_id(bare) && (bare.len() >= 40 || matches!(column, "sha" | "commit" | "head" | "head sha" | "since")) {
                    let forge =
                        links.commit(None, bare).map(|u| format!(" <a class=\"forge\" href=\"{}\" title=\"on the forge\">↗</a>", esc(&u)));
                    format!("<a href=\"/trace/{bare}{window}\">{}</a>{}{tail}", esc(bare), forge.unwrap_or_default())
                } else if let Some(url) = pull_ref(bare).and_then(|(repo, n)| links.pull(Some(repo), n)) {
                    format!("{}{tail}", out(url, bare))
                } else if let Some(url) = bare
                    .strip_prefix('#')
                    .filter(|n| matches!(column, "pull request" | "pr") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|n| links.pull(None, n))
                {
                    format!("{}{tail}", out(url, bare))
                } else {
                    esc(word)
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `owner/name#N` (GitLab: `group/sub/project#N`) as (repository, number).
fn pull_ref(word: &str) -> Option<(&str, &str)> {
    word.split_once('#').filter(|(r, n)| {
        r.split('/').count() >= 2
            && r.split('/').all(|part| !part.is_empty())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    })
}

const PAGE: &str = include_str!("templates/page.html");

/// One self-contained page: inline CSS and SVG, no scripts, fonts or network.
/// `report --format html` and `git-audit serve` both render through it.
pub fn page(doc: &Document, page: &Page<'_>) -> String {
    let safe = doc.visible();
    let doc = &safe;
    let mut env = minijinja::Environment::new();
    // A period's column links to the list it counts, over that period (served pages only).
    let drill = |path: &str, env: &str, p: &super::chart::Period| {
        // `until` as a date holds that whole day: the period's last day.
        let last = p.end.pred_opt().unwrap_or(p.start);
        let q = serde_urlencoded::to_string([("since", p.start.to_string()), ("until", last.to_string()), ("env", env.to_string())])
            .unwrap_or_default();
        format!("{path}?{q}")
    };
    let link: Option<&super::chart::DrillLink> = page.links.map(|_| &drill as _);
    let mut charts: Vec<String> = doc.series.iter().map(|s| super::chart::series_svg(s, link)).collect();
    charts.extend(doc.charts.iter().map(|(t, b)| super::chart::bar_chart(t, b)));
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
        ground_summary => page.provenance.map(|p| p.ground.summary()).unwrap_or_default(),
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
            sections: vec![Section::new("S", &["a", "b"], vec![vec!["x,y".into(), "say \"hi\"".into()], vec!["<b>".into(), "a|b".into()]])],
            charts: vec![("findings per rule".into(), vec![("r1".into(), 3), ("r2".into(), 1)])],
            series: Vec::new(),
            json: serde_json::json!({"ok": true}),
        }
    }

    #[test]
    fn long_cells_wrap_and_lose_nothing() {
        assert_eq!(wrap("pr.stale-approval on acme/api#3", 12), vec!["pr.stale-app", "roval on", "acme/api#3"]);
        assert_eq!(wrap("see https://example.com/a/b/c/d", 16), vec!["see", "https://", "example.com/a/", "b/c/d"]);
        assert_eq!(floor(30, 17, 12), 17, "a rule id is never split");
        assert_eq!(floor(90, 80, 12), ATOM, "a long word may be");
        assert_eq!(wrap("", 5), vec![""]);
        let msg = "the only approvals are by its author alice; merged by alice after the last push to the branch";
        let d = Document {
            title: "T".into(),
            sections: vec![Section::new(
                "S",
                &["rule", "message", "evidence (ledger seq)"],
                vec![vec!["pr.self-approval".into(), msg.repeat(2), "1 2 3".into()]],
            )],
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
