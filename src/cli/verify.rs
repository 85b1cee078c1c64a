//! `git-audit verify [RANGE…]`: check commits against the policy.

use std::collections::BTreeSet;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::style::{dim, green, red, yellow};
use super::{emit, Global, Outcome, OutputFormat};
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
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Record the results in the ledger (`policy.loaded`, then one `commit.verified` per commit).
    #[arg(long)]
    pub record: bool,
    /// Judge every signature afresh, without the verdict cache (see README).
    #[arg(long)]
    pub no_cache: bool,
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
        let loc = super::ledger::location(global, Some(&repo))?;
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
        OutputFormat::Json => emit(&(render_json(&report, &policy, &specs) + "\n"))?,
        OutputFormat::Text => emit(&render_text(&report, &policy, global.color))?,
    }
    Ok(if report.summary.failed > 0 { Outcome::Violations } else { Outcome::Pass })
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
