//! `git-audit report …`: answers from the ledger, in a terminal table, JSON,
//! CSV, Markdown or one self-contained HTML page.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{emit, Global, Outcome};
use crate::ledger::Ledger;
use crate::report::{self, ReportFormat};
use crate::time::Timestamp;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub report: ReportName,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table, global = true)]
    pub format: ReportFormat,
    /// Write to FILE instead of standard output.
    #[arg(long, short, global = true)]
    pub output: Option<PathBuf>,
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
    fn bounds(&self) -> anyhow::Result<(Timestamp, Timestamp)> {
        let since = Timestamp::since(&self.since)?;
        let until = self.until.as_deref().map(Timestamp::until).transpose()?.unwrap_or_else(Timestamp::open_end);
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
    /// Every finding in a window, grouped by rule; exit 1 when there are any.
    Compliance {
        /// Start of the window: 90d, 12h, 2026-07-01 or an RFC 3339 time.
        #[arg(long, default_value = "90d")]
        since: String,
    },
}

/// The policy, when there is one: its `[[environments]]` judge deployments;
/// without a policy there is nothing to judge them by. One that does not load is an error.
fn optional_policy(global: &Global, repo: Option<&crate::git::Repo>) -> anyhow::Result<Option<crate::policy::Policy>> {
    match crate::policy::locate(global.policy.as_deref(), repo).filter(|p| p.exists()) {
        Some(path) => Ok(Some(crate::policy::Policy::load(&path)?)),
        None => Ok(None),
    }
}

pub fn run(global: &Global, args: ReportArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    let loc = super::ledger::location(global, repo.as_ref())?;
    let ledger = Ledger::open(&loc)?;
    let (doc, outcome) = match &args.report {
        ReportName::Trace { commit } => {
            let id = match &repo {
                Some(r) => r.resolve_commit(commit).unwrap_or_else(|_| commit.clone()),
                None => commit.clone(),
            };
            (report::trace::trace(&ledger, repo.as_ref(), &id)?, Outcome::Pass)
        }
        ReportName::Deployments(w) => {
            let (since, until) = w.bounds()?;
            let policy = optional_policy(global, repo.as_ref())?;
            (report::deployments::deployments(&ledger, repo.as_ref(), &w.env, &since, &until, policy.as_ref())?, Outcome::Pass)
        }
        ReportName::Dora(w) => {
            let (since, until) = w.bounds()?;
            (report::dora::dora(&ledger, repo.as_ref(), &w.env, &since, &until)?, Outcome::Pass)
        }
        ReportName::Compliance { since } => {
            let since = Timestamp::since(since)?;
            let policy = optional_policy(global, repo.as_ref())?;
            let (doc, findings) = report::compliance::compliance(&ledger, repo.as_ref(), &since, policy.as_ref())?;
            (doc, if findings.is_empty() { Outcome::Pass } else { Outcome::Violations })
        }
    };
    let text = report::render::render(&doc, args.format, global.color && args.output.is_none());
    match &args.output {
        Some(p) => std::fs::write(p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        None => emit(&text)?,
    }
    Ok(outcome)
}
