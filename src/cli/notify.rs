//! `git-audit notify`: deliver the outbox (`drain`), try every sink (`test`),
//! see where delivery stands (`status`), and re-enable a sink (`enable`).

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{emit, Global, Outcome, OutputFormat};
use crate::git::Repo;
use crate::notify::{self, Budget};
use crate::policy::Policy;

#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub what: NotifyWhat,
}

#[derive(Debug, Subcommand)]
pub enum NotifyWhat {
    /// Deliver the messages waiting in the outbox (retrying failures with backoff, within the budget).
    Drain {
        /// How long to keep delivering and retrying (e.g. 30s, 2m).
        #[arg(long, default_value = "30s", value_parser = crate::time::parse_duration)]
        budget: Duration,
        /// Print nothing unless something failed.
        #[arg(long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Send a test message to every [[notify]] sink now, and say what each answered.
    Test {
        /// How long to wait for each sink.
        #[arg(long, default_value = "10s", value_parser = crate::time::parse_duration)]
        timeout: Duration,
    },
    /// Each sink: delivered, pending, given up, disabled, and the last error.
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Re-enable a sink that answered 410 Gone (its held messages go with the next drain).
    Enable { name: String },
}

/// The policy whose `[[notify]]` sinks apply here: --policy, `audit.policy`,
/// the work tree's file, else (a server) the file on the default branch.
fn load_policy(global: &Global, repo: Option<&Repo>) -> anyhow::Result<Policy> {
    match super::policy::applies(global, repo, crate::policy::applies::Look::WorkTreeThenServer)? {
        Some(p) => Ok(p),
        None if repo.is_some() => Err(crate::policy::applies::ServerPolicyError::Missing.into()),
        None => bail!("no policy: name one with --policy FILE"),
    }
}

/// The sinks of the policy that applies here, for commands that notify on the
/// side (`record deployment`, `ledger verify`): none when there is no policy;
/// a policy that does not load is reported and notifies nothing.
pub fn sinks(global: &Global, repo: Option<&Repo>) -> Vec<crate::policy::notify::Sink> {
    let has_policy = global.policy.is_some() || crate::policy::locate(None, repo).is_some_and(|p| p.exists());
    if !has_policy {
        return Vec::new();
    }
    match load_policy(global, repo) {
        Ok(p) => p.notify,
        Err(e) => {
            eprintln!("git-audit: note: no notifications sent: {e}");
            Vec::new()
        }
    }
}

/// After a command queued notices: deliver them now, within a few seconds
/// (what cannot be sent waits in the outbox for the next drain).
pub fn deliver_soon(files: &crate::ledger::LedgerFiles, sinks: &[crate::policy::notify::Sink]) {
    match notify::drain(files, sinks, Budget::new(Duration::from_secs(5))) {
        Ok(r) if r.failed > 0 => eprintln!(
            "git-audit: note: {} notification(s) could not be delivered yet; `git-audit notify drain` retries ({})",
            r.pending,
            r.errors.join("; ")
        ),
        Ok(_) => {}
        Err(e) => eprintln!("git-audit: note: notifications not delivered: {e}"),
    }
}

pub fn run(global: &Global, args: NotifyArgs) -> anyhow::Result<Outcome> {
    let repo = Repo::open_from_env().ok();
    let policy = load_policy(global, repo.as_ref())?;
    let repository = repo.as_ref().map(crate::hook::notice::repository_name).unwrap_or_default();
    match args.what {
        NotifyWhat::Test { timeout } => {
            if policy.notify.is_empty() {
                bail!(
                    "{} has no [[notify]] sinks\nHint: add one, e.g.\n[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_WEBHOOK_URL\"",
                    policy.path.display()
                );
            }
            let mut failed = false;
            let results = notify::test(&policy.notify, &repository, timeout);
            // Counted for `notify status`, where there is a ledger to keep it.
            if let Ok(files) = super::location(global, repo.as_ref()) {
                if files.exists() {
                    if let Err(e) = notify::record_tests(&files, &results) {
                        eprintln!("git-audit: note: the test sends could not be counted for `notify status`: {e}");
                    }
                }
            }
            for (name, result) in results {
                match result {
                    Ok(status) => emit(&format!("{name}: delivered (HTTP {status})\n"))?,
                    Err(e) => {
                        failed = true;
                        emit(&format!("{name}: FAILED: {e}\n"))?;
                    }
                }
            }
            Ok(if failed { Outcome::Violations } else { Outcome::Pass })
        }
        NotifyWhat::Drain { budget, quiet, format } => {
            let files = super::location(global, repo.as_ref())?;
            if !files.exists() {
                bail!("no ledger at {}\nHint: name it with --ledger PATH", files.db.display());
            }
            let r = notify::drain(&files, &policy.notify, Budget::new(budget)).context("draining the notification outbox")?;
            let unfinished = r.pending > r.held;
            if format == OutputFormat::Json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
            } else if !quiet || r.failed > 0 {
                for e in &r.errors {
                    eprintln!("git-audit: notify: {e}");
                }
                for (name, why) in &r.disabled {
                    eprintln!("git-audit: notify: sink `{name}` disabled: {why}\n  Hint: once the receiver is fixed, `git-audit notify enable {name}`");
                }
                emit(&format!(
                    "{} delivered, {} failed attempt{}, {} pending{}{}\n",
                    r.delivered,
                    r.failed,
                    if r.failed == 1 { "" } else { "s" },
                    r.pending,
                    if r.held > 0 { format!(" ({} held for disabled or removed sinks)", r.held) } else { String::new() },
                    if r.dead > 0 { format!(", {} given up", r.dead) } else { String::new() },
                ))?;
            }
            Ok(if unfinished || r.dead > 0 { Outcome::Violations } else { Outcome::Pass })
        }
        NotifyWhat::Status { format } => {
            let files = super::location(global, repo.as_ref())?;
            let s = notify::status(&files, &policy.notify)?;
            if format == OutputFormat::Json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&s)?))?;
                return Ok(Outcome::Pass);
            }
            if s.is_empty() {
                emit("no [[notify]] sinks in the policy, and nothing in the outbox\n")?;
            }
            for x in &s {
                let state = match (&x.disabled, x.in_policy) {
                    (Some(why), _) => format!("DISABLED ({why})"),
                    (None, false) => "not in the policy".into(),
                    (None, true) => "enabled".into(),
                };
                let tests = match &x.last_test {
                    Some((at, said)) => format!("; {} test(s) sent ({} failed), the last at {at}: {said}", x.tests_sent, x.tests_failed),
                    None => String::new(),
                };
                emit(&format!(
                    "{} [{}] {state}: {} delivered, {} pending, {} given up{}{tests}\n",
                    x.name,
                    if x.kind.is_empty() { "?" } else { &x.kind },
                    x.delivered,
                    x.pending,
                    x.dead,
                    x.last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
                ))?;
            }
            Ok(Outcome::Pass)
        }
        NotifyWhat::Enable { name } => {
            let files = super::location(global, repo.as_ref())?;
            if notify::enable(&files, &name)? {
                emit(&format!("sink `{name}` enabled; its held messages go with the next `git-audit notify drain`\n"))?;
                Ok(Outcome::Pass)
            } else {
                bail!("no disabled sink named `{name}` (see `git-audit notify status`)")
            }
        }
    }
}
