//! `git-audit report …`: answers from the ledger, in a terminal table, JSON,
//! CSV, Markdown or one self-contained HTML page.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::{emit, Global, Outcome};
use crate::facts::DeploymentHistory;
use crate::ledger::Ledger;
use crate::report::{self, ReportFormat};
use crate::time::Timestamp;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub report: ReportName,
    /// Output format (default: from the --output file's extension — .html, .json,
    /// .csv, .md — else a table).
    #[arg(long, value_enum, global = true)]
    pub format: Option<ReportFormat>,
    /// Write to FILE instead of standard output.
    #[arg(long, short, global = true)]
    pub output: Option<PathBuf>,
    /// Be strict: verify the whole ledger first and exit 1 when it does not
    /// agree with its signed checkpoint; an environment the ledger has never
    /// seen is an error (exit 2), not a warning.
    #[arg(long, global = true)]
    pub strict: bool,
}

/// An environment and a time window.
#[derive(Debug, Args)]
pub struct Window {
    /// Environment name or glob (`prod*`).
    #[arg(long, default_value = "production")]
    pub env: String,
    /// Start: 90d, 12h, 2026-07-01 or an RFC 3339 time.
    #[arg(long, default_value = "90d")]
    pub since: String,
    /// End (a date includes that whole day); default: now.
    #[arg(long)]
    pub until: Option<String>,
}

impl Window {
    /// Warns (or, with --strict, fails) when no recorded deployment went to an
    /// environment matching --env: a typo would otherwise report zeros.
    fn check_env(&self, facts: &DeploymentHistory, strict: bool) -> anyhow::Result<()> {
        crate::policy::check_environment_pattern(&self.env).map_err(|e| anyhow::anyhow!("--env: {e}"))?;
        let deployments = &facts.all;
        let matches = crate::facts::deployments::matcher(&self.env);
        if deployments.iter().any(|d| matches(&d.environment)) {
            return Ok(());
        }
        let known: std::collections::BTreeSet<&str> = deployments.iter().map(|d| d.environment.as_str()).collect();
        let known = if known.is_empty() { "none yet".to_string() } else { known.into_iter().collect::<Vec<_>>().join(", ") };
        let msg = format!("no deployment in the ledger went to an environment matching `{}`; known environments: {known}", self.env);
        if strict {
            bail!("{msg}");
        }
        eprintln!("warning: {msg}");
        Ok(())
    }
}

impl Window {
    fn bounds(&self) -> anyhow::Result<(Timestamp, Timestamp)> {
        let since = Timestamp::since(&self.since)?;
        let until = self.until.as_deref().map(Timestamp::until).transpose()?.unwrap_or_else(Timestamp::open_end);
        if until <= since {
            bail!(
                "the window is empty: --until {} is not after --since {since}\nHint: swap them, or leave --until out for a window open to now",
                self.until.as_deref().unwrap_or_default()
            );
        }
        Ok((since, until))
    }
}

#[derive(Debug, Subcommand)]
pub enum ReportName {
    /// Everything known about one commit.
    Trace { commit: String },
    /// Each deployment to an environment in a window, with the commits it shipped.
    Deployments(Window),
    /// Deployment frequency, lead time, change failure rate, time to restore.
    Dora(Window),
    /// The evidence package for a window (--output FILE.tar.gz): the reports,
    /// every entry they cite with its inclusion proof, the signed checkpoint,
    /// the keys, the policy; check it offline with `git-audit evidence verify`.
    Evidence {
        #[command(flatten)]
        window: Window,
        /// An earlier package: this one then proves the ledger still extends its checkpoint.
        #[arg(long, value_name = "OLD.tar.gz")]
        since_package: Option<PathBuf>,
    },
    /// Every push decision in a window (each refusal with the rules it broke) and every break glass.
    Pushes {
        /// Start of the window: 90d, 12h, 2026-07-01 or an RFC 3339 time.
        #[arg(long, default_value = "90d")]
        since: String,
        /// End (a date includes that whole day); default: now.
        #[arg(long)]
        until: Option<String>,
        /// Only the refused, or only the accepted.
        #[arg(long, value_enum)]
        decision: Option<report::pushes::Decision>,
    },
    /// Each protected ref's SLSA source level (its latest attestation) and since when it has held.
    Sources,
    /// Every finding in a window, grouped by rule, anomalies beside them; exit 1
    /// when there are findings other than anomalies.
    Compliance {
        /// Start of the window: 90d, 12h, 2026-07-01 or an RFC 3339 time.
        #[arg(long, default_value = "90d")]
        since: String,
    },
}

/// The policy, when there is one: its `[[environments]]` judge deployments;
/// without a policy there is nothing to judge them by. One that does not load is an error.
fn optional_policy(global: &Global, repo: Option<&crate::git::Repo>) -> anyhow::Result<Option<crate::policy::Policy>> {
    super::policy::applies(global, repo, crate::policy::applies::Look::WorkTree)
}

/// `report evidence`: the window's reports, rendered every way, into one package.
fn evidence(
    global: &Global,
    args: &ReportArgs,
    ledger: &Ledger,
    repo: Option<&crate::git::Repo>,
    w: &Window,
    previous: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let Some(out) = &args.output else {
        bail!("the evidence package needs a file: --output FILE.tar.gz");
    };
    let (since, until) = w.bounds()?;
    // The deployment history, read once for every report in the package.
    let facts = DeploymentHistory::read(ledger)?;
    w.check_env(&facts, args.strict)?;
    let policy = optional_policy(global, repo)?;
    let digest = policy.as_ref().map(|p| p.digest.clone());
    let mut reports = Vec::new();
    let (compliance, _) = report::compliance::compliance(ledger, &facts, repo, &since, policy.as_ref())?;
    let deployments = report::deployments::deployments(ledger, &facts, repo, &w.env, &since, &until, policy.as_ref())?;
    let dora = report::dora::dora(&facts, repo, &w.env, &since, &until)?;
    for (name, doc) in [("compliance", compliance), ("deployments", deployments), ("dora", dora)] {
        let provenance = report::render::Provenance::of(ledger, digest.as_deref(), &crate::ledger::ground::cited(&doc.json))?;
        let json: serde_json::Value =
            serde_json::from_str(&report::render::render_with(&doc, ReportFormat::Json, false, Some(&provenance))).unwrap_or_default();
        reports.push(crate::evidence::ReportFiles {
            name: name.into(),
            json,
            html: report::render::render_with(&doc, ReportFormat::Html, false, Some(&provenance)),
            csv: report::render::render_with(&doc, ReportFormat::Csv, false, Some(&provenance)),
        });
    }
    let policy_text = policy.as_ref().and_then(|p| std::fs::read_to_string(&p.path).ok());
    let window =
        serde_json::json!({"since": since.to_string(), "until": (!until.is_open_end()).then(|| until.to_string()), "environment": w.env});
    let written = crate::evidence::build(ledger, &reports, policy_text.as_deref(), window, previous, out)?;
    emit(&format!(
        "wrote {}: {} reports, {} cited entries with inclusion proofs, checkpoint size {}{}\ncheck it anywhere: git-audit evidence verify {}\n",
        out.display(),
        reports.len(),
        written.entries,
        written.tree_size,
        previous.map(|p| format!(", consistent with {}", p.display())).unwrap_or_default(),
        out.display()
    ))?;
    Ok(Outcome::Pass)
}

/// The format a file name asks for by its extension.
fn format_for(path: &std::path::Path) -> ReportFormat {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("html" | "htm") => ReportFormat::Html,
        Some("json") => ReportFormat::Json,
        Some("csv") => ReportFormat::Csv,
        Some("md" | "markdown") => ReportFormat::Markdown,
        _ => ReportFormat::Table,
    }
}

pub fn run(global: &Global, args: ReportArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    let loc = super::location(global, repo.as_ref())?;
    let ledger = Ledger::open(&loc)?;
    if let ReportName::Evidence { window, since_package } = &args.report {
        return evidence(global, &args, &ledger, repo.as_ref(), window, since_package.as_deref());
    }
    let (doc, outcome) = match &args.report {
        ReportName::Evidence { .. } => bail!("the evidence package is written above"),
        ReportName::Trace { commit } => {
            let id = report::trace::resolve_commit(&ledger, repo.as_ref(), commit)?;
            (report::trace::trace(&ledger, repo.as_ref(), &id)?, Outcome::Pass)
        }
        ReportName::Deployments(w) => {
            let facts = DeploymentHistory::read(&ledger)?;
            w.check_env(&facts, args.strict)?;
            let (since, until) = w.bounds()?;
            let policy = optional_policy(global, repo.as_ref())?;
            (report::deployments::deployments(&ledger, &facts, repo.as_ref(), &w.env, &since, &until, policy.as_ref())?, Outcome::Pass)
        }
        ReportName::Dora(w) => {
            let facts = DeploymentHistory::read(&ledger)?;
            w.check_env(&facts, args.strict)?;
            let (since, until) = w.bounds()?;
            (report::dora::dora(&facts, repo.as_ref(), &w.env, &since, &until)?, Outcome::Pass)
        }
        ReportName::Pushes { since, until, decision } => {
            let w = Window { env: String::new(), since: since.clone(), until: until.clone() };
            let (since, until) = w.bounds()?;
            (report::pushes::pushes(&ledger, &since, &until, *decision)?, Outcome::Pass)
        }
        ReportName::Sources => (report::sources::sources(&ledger)?, Outcome::Pass),
        ReportName::Compliance { since } => {
            let since = Timestamp::since(since)?;
            let policy = optional_policy(global, repo.as_ref())?;
            let facts = DeploymentHistory::read(&ledger)?;
            let (doc, findings) = report::compliance::compliance(&ledger, &facts, repo.as_ref(), &since, policy.as_ref())?;
            // Anomalies are to look at, not failures: they alone leave the exit 0.
            (doc, if findings.iter().all(|f| f.rule.is_anomaly()) { Outcome::Pass } else { Outcome::Violations })
        }
    };
    let format = args.format.unwrap_or_else(|| args.output.as_deref().map_or(ReportFormat::Table, format_for));
    // Where the answer came from: the checkpoint it was computed at, the policy.
    let digest = optional_policy(global, repo.as_ref()).ok().flatten().map(|p| p.digest);
    let provenance = report::render::Provenance::of(&ledger, digest.as_deref(), &crate::ledger::ground::cited(&doc.json))?;
    if !provenance.ground.ok || !provenance.ground.ignored.is_empty() {
        eprintln!("warning: {}", provenance.ground.summary());
    }
    // --strict: the whole ledger, verified before the answer is given.
    let verified = match args.strict {
        true => Some(crate::ledger::verify::verify(&ledger, None, &[])?),
        false => None,
    };
    let text = report::render::render_with(&doc, format, global.color && args.output.is_none(), Some(&provenance));
    match &args.output {
        Some(p) => std::fs::write(p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        None => emit(&text)?,
    }
    if let Some(v) = verified.filter(|v| !v.problems.is_empty()) {
        eprintln!("error: --strict: the ledger failed verification ({} problem(s)); first: {}", v.problems.len(), v.problems[0].message);
        return Ok(Outcome::Violations);
    }
    if args.strict && !provenance.ground.ok {
        return Ok(Outcome::Violations);
    }
    Ok(outcome)
}
