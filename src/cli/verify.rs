//! `git-audit verify [RANGE…]`: check commits against the policy.

use std::collections::BTreeSet;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::style::{dim, green, red, yellow};
use super::{emit, Global, Outcome};
use crate::check::{self, CommitVerdict, RangeReport, Severity, Summary};
use crate::policy::Policy;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Commits to check, in git's syntax: `A..B`, `A...B`, `^X Y`, refs, `--all`.
    /// Default: the commits on HEAD not yet on its upstream (all of HEAD without one).
    #[arg(value_name = "RANGE", allow_hyphen_values = true)]
    pub range: Vec<String>,
    /// Check every ref (same as the range `--all`).
    #[arg(long)]
    pub all: bool,
    /// Output format: text, json, or github (workflow commands: each finding an annotation).
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// Record the results in the ledger (`policy.loaded`, then one `commit.verified` per commit).
    #[arg(long)]
    pub record: bool,
    /// Judge every signature afresh, without the verdict cache (see README).
    #[arg(long)]
    pub no_cache: bool,
    /// Fail (exit 1) when the history is incomplete (a shallow clone). In
    /// `mode = "enforce"` this is the default on CI (`CI` set).
    #[arg(long)]
    pub strict: bool,
}

/// How `verify` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    Text,
    Json,
    /// GitHub Actions workflow commands: `::error title=RULE::…` per finding.
    Github,
}

/// GitHub Actions workflow commands: one `::error` (or `::warning`) per finding,
/// titled with the rule id, so findings show as annotations on the run and
/// the pull request; then a summary line.
pub fn render_github(report: &RangeReport, policy: &Policy) -> String {
    github_lines(report) + &github_tail(&report.summary, policy)
}

fn github_lines(report: &RangeReport) -> String {
    // Workflow command data escapes %, CR and LF; properties also `:` and `,`.
    let data = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for c in &report.commits {
        for f in &c.findings {
            let level = if f.severity == Severity::Error { "error" } else { "warning" };
            let fix = f.fix.as_deref().map(|x| format!("\nHow to fix: {x}")).unwrap_or_default();
            out.push_str(&format!(
                "::{level} title={}::{} {}: {}{}\n",
                prop(&format!("{} ({})", f.rule, crate::git::short_id(&c.id))),
                data(crate::git::short_id(&c.id)),
                data(&c.subject),
                data(&f.message),
                data(&fix)
            ));
        }
    }
    out
}

fn github_tail(summary: &Summary, policy: &Policy) -> String {
    format!(
        "git-audit: {} commit(s) checked against {}: {} failed, {} with warnings\n",
        summary.checked,
        policy.path.display(),
        summary.failed,
        summary.warned
    )
}

/// Commits checked per batch: the output is written, and the batch's results
/// dropped, before the next batch is read, so memory stays flat however long
/// the history (only the commit ids of the range are held whole).
const BATCH: usize = 4096;

/// A verification written as it goes, batch by batch, in one of the formats;
/// byte for byte what rendering the whole report at once writes.
struct Stream<'a> {
    format: VerifyFormat,
    policy: &'a Policy,
    specs: &'a [String],
    color: bool,
    base: Option<String>,
    summary: Summary,
    fixes: Vec<(String, String)>,
    seen: BTreeSet<(crate::rule::Rule, String)>,
    wrote_commit: bool,
}

impl Stream<'_> {
    fn write(&self, text: &str) -> anyhow::Result<()> {
        match &self.base {
            Some(b) => emit(&text.replace("<base>", b)),
            None => emit(text),
        }
    }

    fn batch(&mut self, part: &RangeReport) -> anyhow::Result<()> {
        self.summary.add(&part.summary);
        let text = match self.format {
            VerifyFormat::Json => {
                let mut t = String::new();
                if !self.wrote_commit && !part.commits.is_empty() {
                    t.push_str("{\"commits\":[");
                }
                for c in &part.commits {
                    if self.wrote_commit {
                        t.push(',');
                    }
                    self.wrote_commit = true;
                    t.push_str(&serde_json::to_value(c).map(|v| v.to_string()).unwrap_or_default());
                }
                t
            }
            VerifyFormat::Text => text_lines(part, self.color, &mut self.fixes, &mut self.seen),
            VerifyFormat::Github => github_lines(part),
        };
        self.write(&text)
    }

    fn finish(self) -> anyhow::Result<Summary> {
        let text = match self.format {
            VerifyFormat::Json => {
                let head = if self.wrote_commit { "]," } else { "{\"commits\":[]," };
                format!("{head}{}\n", json_tail(&self.summary, self.policy, self.specs))
            }
            VerifyFormat::Text => text_tail(&self.fixes, &self.summary, self.policy, self.color),
            VerifyFormat::Github => github_tail(&self.summary, self.policy),
        };
        self.write(&text)?;
        Ok(self.summary)
    }
}

/// The flags `verify` knows (for suggestions).
const FLAGS: &[&str] =
    &["--all", "--format", "--record", "--no-cache", "--policy", "--ledger", "--ledger-key", "--log-format", "--color", "--help"];

pub fn run(global: &Global, args: VerifyArgs) -> anyhow::Result<Outcome> {
    if args.no_cache {
        crate::signature::cache::disable();
    }
    // RANGE takes git's `--all`-style words, so clap lets hyphens through: an
    // unknown `--flag` is a usage error here, with the nearest known flag.
    if let Some(r) = args.range.iter().find(|r| r.starts_with("--") && r.as_str() != "--all") {
        let name = r.split('=').next().unwrap_or(r);
        let nearest = FLAGS.iter().map(|f| (strsim::levenshtein(name, f), f)).min_by_key(|(d, _)| *d).filter(|(d, _)| *d <= 3);
        bail!(
            "unexpected argument `{r}`{}\nHint: see `git-audit verify --help`",
            nearest.map(|(_, f)| format!(" (did you mean `{f}`?)")).unwrap_or_default()
        );
    }
    bound_git_memory();
    let repo = crate::git::Repo::open_from_env()?;
    let policy = super::policy::load(global, Some(&repo))?;
    let mut specs = args.range.clone();
    if args.all {
        specs.push("--all".into());
    }
    if specs.is_empty() {
        specs = repo.default_specs();
    }
    tracing::debug!(?specs, policy = %policy.path.display(), "verifying");
    let ids = check::select_range(&repo, &policy, &specs)?;
    // Fixes that rewrite history start from the range's base, when the range has one.
    let base = match (args.format, specs.as_slice()) {
        (VerifyFormat::Text, [one]) => {
            one.split_once("..").filter(|(a, b)| !a.is_empty() && !b.starts_with('.')).map(|(a, _)| a.to_string())
        }
        _ => None,
    };
    let mut ledger = match args.record {
        true => {
            let loc = super::location(global, Some(&repo))?;
            Some((crate::ledger::Ledger::open(&loc)?, loc))
        }
        false => None,
    };
    let mut stream = Stream {
        format: args.format,
        policy: &policy,
        specs: &specs,
        color: global.color,
        base,
        summary: Summary::default(),
        fixes: Vec::new(),
        seen: BTreeSet::new(),
        wrote_commit: false,
    };
    // (entries, first seq, last receipt's tree size)
    let mut recorded: Option<(u64, u64, u64)> = None;
    let actor = actor(&repo);
    // GIT_AUDIT_VERIFY_BATCH: a smaller batch, for tests that compare the streamed output with the whole.
    let batch = std::env::var("GIT_AUDIT_VERIFY_BATCH").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(BATCH);
    let batches: Vec<&[String]> = if ids.is_empty() { vec![&[]] } else { ids.chunks(batch).collect() };
    for (i, chunk) in batches.into_iter().enumerate() {
        let part = check::check_parallel(&repo, &policy, chunk, None, None)?;
        if let Some((l, _)) = ledger.as_mut() {
            let mut entries = check::verification_entries(&part, &policy, &actor);
            if i > 0 {
                entries.remove(0); // policy.loaded, once per run
            }
            let r = l.append(&entries)?;
            let (n, first, _) = recorded.unwrap_or((0, r.first_seq, 0));
            recorded = Some((n + r.count, first, r.tree_size));
        }
        stream.batch(&part)?;
    }
    let summary = stream.finish()?;
    if let (Some((n, first, size)), Some((_, loc))) = (recorded, &ledger) {
        eprintln!(
            "recorded {n} entries in {} (seq {first}..{}, signed checkpoint of size {size})",
            loc.db.display(),
            first + n.saturating_sub(1),
        );
    }
    // A shallow clone hides history: say what was not checked.
    let boundary: Vec<String> = std::fs::read_to_string(repo.git_dir().join("shallow"))
        .map(|t| t.lines().map(|l| crate::git::short_id(l.trim()).to_string()).filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    let mut incomplete = false;
    if !boundary.is_empty() {
        let on_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
        incomplete = args.strict || (on_ci && policy.mode == crate::policy::Mode::Enforce);
        eprintln!(
            "{}: this is a shallow clone: the history behind {} ({}) is missing and was not checked\nHint: fetch it with `git fetch --unshallow` (GitHub Actions: `fetch-depth: 0`; GitLab CI: `GIT_DEPTH: 0`)",
            if incomplete { "error" } else { "warning" },
            if boundary.len() == 1 { "commit" } else { "commits" },
            boundary.join(", ")
        );
    }
    Ok(if summary.failed > 0 || incomplete { Outcome::Violations } else { Outcome::Pass })
}

/// Keeps libgit2's memory flat over a whole history: each commit is read once,
/// so no object cache (up to 256 MiB by default), and pack files are mapped in
/// 16 MiB windows, at most 64 MiB at a time (by default 1 GiB windows up to
/// 8 GiB: a large pack would be resident as it is walked).
fn bound_git_memory() {
    git2::opts::enable_caching(false);
    // SAFETY: libgit2's global options, set before this process opens any
    // repository or starts a thread that uses libgit2.
    let set = unsafe { git2::opts::set_mwindow_size(16 << 20).and_then(|_| git2::opts::set_mwindow_mapped_limit(64 << 20)) };
    if let Err(e) = set {
        tracing::debug!("libgit2's pack window limits stay at their defaults: {e}");
    }
}

/// Who is running the check: git's user.email, else $USER.
fn actor(repo: &crate::git::Repo) -> String {
    let from_git = match repo {
        crate::git::Repo::Git2(r) => r.config().ok().and_then(|c| c.get_string("user.email").ok()),
        crate::git::Repo::Exec(c) => c.config("user.email", false),
    };
    from_git.or_else(|| std::env::var("USER").ok()).unwrap_or_default()
}

/// The JSON document: `{"commits": […], "summary": {…}, "policy": {…}, "range": […]}`.
pub fn render_json(report: &RangeReport, policy: &Policy, specs: &[String]) -> String {
    let doc = json!({
        "commits": report.commits,
        "summary": summary_json(&report.summary),
        "policy": {"path": policy.path.display().to_string(), "digest": policy.digest},
        "range": specs,
    });
    doc.to_string()
}

fn summary_json(s: &Summary) -> serde_json::Value {
    json!({"checked": s.checked, "failed": s.failed, "warned": s.warned, "exempt": s.exempt})
}

/// What follows `"commits":[…],` in the JSON document (its keys sort after `commits`).
fn json_tail(summary: &Summary, policy: &Policy, specs: &[String]) -> String {
    let rest = json!({
        "summary": summary_json(summary),
        "policy": {"path": policy.path.display().to_string(), "digest": policy.digest},
        "range": specs,
    })
    .to_string();
    // `{"policy":…,"range":…,"summary":…}` without its opening brace.
    rest[1..].to_string()
}

/// One line per commit that fails or warns, the fixes once each, a summary.
pub fn render_text(report: &RangeReport, policy: &Policy, color: bool) -> String {
    let (mut fixes, mut seen) = (Vec::new(), BTreeSet::new());
    let lines = text_lines(report, color, &mut fixes, &mut seen);
    lines + &text_tail(&fixes, &report.summary, policy, color)
}

/// The lines of the commits that fail, warn or are exempt; their fixes are
/// collected (once each) into `fixes`.
fn text_lines(
    report: &RangeReport,
    color: bool,
    fixes: &mut Vec<(String, String)>,
    seen: &mut BTreeSet<(crate::rule::Rule, String)>,
) -> String {
    let mut out = String::new();
    for c in &report.commits {
        let short = crate::git::short_id(&c.id);
        if let Some(e) = &c.exempt {
            out.push_str(&format!("{} {short} {} — signing.required skipped ({e})\n", dim(color, "exempt"), c.subject));
        }
        if c.findings.is_empty() {
            continue;
        }
        let label = match c.verdict {
            CommitVerdict::Fail => red(color, "FAIL"),
            CommitVerdict::Pass => yellow(color, "warn"),
        };
        let what: Vec<String> = c
            .findings
            .iter()
            .map(|f| {
                let tag = if f.severity == Severity::Warning { " [warn]" } else { "" };
                format!("{}{tag} ({})", f.rule, f.message)
            })
            .collect();
        out.push_str(&format!("{label} {short} {} — {}\n", c.subject, what.join("; ")));
        for f in &c.findings {
            if let Some(fix) = &f.fix {
                if seen.insert((f.rule, fix.clone())) {
                    fixes.push((f.rule.to_string(), fix.clone()));
                }
            }
        }
    }
    out
}

/// The fixes once each, and the summary line.
fn text_tail(fixes: &[(String, String)], s: &Summary, policy: &Policy, color: bool) -> String {
    let mut out = String::new();
    if !fixes.is_empty() {
        out.push_str("\nHow to fix:\n");
        for (rule, fix) in fixes {
            out.push_str(&format!("  {rule}: {fix}\n"));
        }
        out.push('\n');
    }
    let verdict = if s.failed > 0 { red(color, "failed") } else { green(color, "passed") };
    out.push_str(&format!(
        "{} commit{} checked: {} failed, {} with warnings, {} exempt; {verdict} (policy {}, digest {})\n",
        s.checked,
        super::policy::plural(s.checked),
        s.failed,
        s.warned,
        s.exempt,
        policy.path.display(),
        &policy.digest[..12]
    ));
    out
}
