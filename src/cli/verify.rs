//! `git-audit verify [RANGE…]`: check commits against the policy.

use std::collections::BTreeSet;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::style::{dim, green, red, yellow};
use super::{emit, Global, Outcome};
use crate::check::{self, CommitVerdict, RangeReport, Severity};
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
    out.push_str(&format!(
        "git-audit: {} commit(s) checked against {}: {} failed, {} with warnings\n",
        report.summary.checked,
        policy.path.display(),
        report.summary.failed,
        report.summary.warned
    ));
    out
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
    let report = check::check_range(&repo, &policy, &specs)?;
    if args.record {
        let loc = super::location(global, Some(&repo))?;
        let mut ledger = crate::ledger::Ledger::open(&loc)?;
        let receipt = ledger.append(&check::verification_entries(&report, &policy, &actor(&repo)))?;
        eprintln!(
            "recorded {} entries in {} (seq {}..{}, signed checkpoint of size {})",
            receipt.count,
            loc.db.display(),
            receipt.first_seq,
            receipt.first_seq + receipt.count.saturating_sub(1),
            receipt.tree_size
        );
    }
    match args.format {
        VerifyFormat::Json => emit(&(render_json(&report, &policy, &specs) + "\n"))?,
        VerifyFormat::Text => {
            // Fixes that rewrite history start from the range's base, when the range has one.
            let base = match specs.as_slice() {
                [one] => one.split_once("..").filter(|(a, b)| !a.is_empty() && !b.starts_with('.')).map(|(a, _)| a.to_string()),
                _ => None,
            };
            let text = render_text(&report, &policy, global.color);
            emit(&base.map_or_else(|| text.clone(), |b| text.replace("<base>", &b)))?
        }
        VerifyFormat::Github => emit(&render_github(&report, &policy))?,
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
    Ok(if report.summary.failed > 0 || incomplete { Outcome::Violations } else { Outcome::Pass })
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
        "summary": {
            "checked": report.summary.checked,
            "failed": report.summary.failed,
            "warned": report.summary.warned,
            "exempt": report.summary.exempt,
        },
        "policy": {"path": policy.path.display().to_string(), "digest": policy.digest},
        "range": specs,
    });
    doc.to_string()
}

/// One line per commit that fails or warns, the fixes once each, a summary.
pub fn render_text(report: &RangeReport, policy: &Policy, color: bool) -> String {
    let mut out = String::new();
    let mut fixes: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
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
    if !fixes.is_empty() {
        out.push_str("\nHow to fix:\n");
        for (rule, fix) in &fixes {
            out.push_str(&format!("  {rule}: {fix}\n"));
        }
        out.push('\n');
    }
    let s = &report.summary;
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
