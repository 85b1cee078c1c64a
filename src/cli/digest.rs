//! `git-audit digest`: the review of a window in one page, and sent to a sink.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::{emit, Global, Outcome};
use crate::facts::DeploymentHistory;
use crate::ledger::Ledger;
use crate::report::{self, ReportFormat};
use crate::time::Timestamp;

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Start of the window: 7d, 24h, 2026-11-23 or an RFC 3339 time.
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// End (a date includes that whole day); default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// markdown (the default), html, json, csv or table.
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    pub format: ReportFormat,
    /// Write to FILE instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Send it to this `[[notify]]` sink as a `digest` event (repeatable), and
    /// deliver before returning.
    #[arg(long, value_name = "SINK")]
    pub send: Vec<String>,
}

pub fn run(global: &Global, args: DigestArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    let files = super::location(global, repo.as_ref())?;
    let ledger = Ledger::open(&files)?;
    let since = Timestamp::since(&args.since)?;
    let until = args.until.as_deref().map(Timestamp::until).transpose()?.unwrap_or_else(Timestamp::open_end);
    if until <= since {
        bail!("the window is empty: --until is not after --since\nHint: swap them, or leave --until out for a window open to now");
    }
    let policy = super::policy::applies(global, repo.as_ref(), crate::policy::applies::Look::WorkTreeThenServer)?;
    let sinks: Vec<crate::policy::notify::Sink> = match (&policy, args.send.is_empty()) {
        (_, true) => Vec::new(),
        (None, false) => bail!("--send needs a policy with [[notify]] sinks\nHint: pass --policy FILE"),
        (Some(p), false) => {
            let mut chosen = Vec::new();
            for name in &args.send {
                match p.notify.iter().find(|s| &s.name == name) {
                    Some(s) => chosen.push(s.clone()),
                    None => {
                        let names: Vec<&str> = p.notify.iter().map(|s| s.name.as_str()).collect();
                        bail!("no [[notify]] sink named `{name}` in {}\nHint: the sinks are: {}", p.path.display(), names.join(", "));
                    }
                }
            }
            chosen
        }
    };
    let facts = DeploymentHistory::read(&ledger)?;
    let repository = repo.as_ref().map(crate::hook::notice::repository_name).unwrap_or_default();
    let doc = report::digest::digest(&ledger, &facts, repo.as_ref(), &repository, &since, &until, policy.as_ref())?;
    let text = report::render::render_with(&doc, args.format, global.color && args.output.is_none(), None);
    match &args.output {
        Some(p) => std::fs::write(p, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        None => emit(&text)?,
    }
    if sinks.is_empty() {
        return Ok(Outcome::Pass);
    }
    // Sent where asked, whatever events the sink selects.
    let sinks: Vec<_> = sinks.into_iter().map(crate::policy::notify::Sink::wanting_everything).collect();
    crate::notify::enqueue(&files, &sinks, &[report::digest::notice(&doc)])?;
    let r = crate::notify::drain(&files, &sinks, crate::notify::Budget::new(Duration::from_secs(20)))?;
    if r.delivered == 0 || r.failed > 0 {
        eprintln!("git-audit: the digest was not delivered yet ({}); `git-audit notify drain` retries", r.errors.join("; "));
        return Ok(Outcome::Violations);
    }
    eprintln!("git-audit: digest sent to {}", args.send.join(", "));
    Ok(Outcome::Pass)
}
