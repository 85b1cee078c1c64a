//! `git-audit hook <name>`: what the shims in `hooks/` exec.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{Global, Outcome};
use crate::check::{CommitChecker, CommitVerdict};
use crate::git::{Ident, ParsedCommit, Repo};
use crate::hook::{self, decide, identity, message, server_policy};
use crate::ledger::{self, Ledger};
use crate::policy::Policy;

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    pub hook: HookName,
}

#[derive(Debug, Subcommand)]
pub enum HookName {
    /// Server: decide a push (reads `<old> <new> <ref>` lines). Fails closed.
    PreReceive,
    /// Server: record what a push changed.
    PostReceive,
    /// Client: check what `git push` is about to send.
    PrePush { remote: Option<String>, url: Option<String> },
    /// Client: check a commit message as it is written.
    CommitMsg { file: PathBuf },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).context("cannot read the hook's standard input")?;
    Ok(s)
}

fn sources(repo: &Repo) -> Vec<String> {
    match repo.config_string("audit.pusherSources") {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        None => identity::DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn run(global: &Global, args: HookArgs) -> anyhow::Result<Outcome> {
    match args.hook {
        HookName::PreReceive => match pre_receive(global) {
            Ok(o) => Ok(o),
            // Fail closed: a server that cannot decide refuses the push, saying why.
            Err(e) => {
                eprintln!("git-audit: push refused: the policy check could not run: {e:#}");
                Ok(Outcome::Violations)
            }
        },
        HookName::PostReceive => post_receive(global),
        HookName::PrePush { remote, .. } => pre_push(global, remote.unwrap_or_else(|| "origin".into())),
        HookName::CommitMsg { file } => commit_msg(global, &file),
    }
}

/// Appends `entries` (after any `ledger.gap` marker waiting in the spool).
fn record(global: &Global, repo: &Repo, entries: &[ledger::NewEntry]) -> Result<String, String> {
    let loc = ledger::locate(global.ledger.as_deref(), Some(repo)).ok_or("no ledger location")?;
    let mut l = Ledger::open(&loc).map_err(|e| e.to_string())?;
    let r = ledger::gap::append_with_gaps(&mut l, &loc, entries).map_err(|e| e.to_string())?;
    Ok(format!("recorded as ledger seq {}..{} (checkpoint size {})", r.first_seq, r.first_seq + r.count.saturating_sub(1), r.tree_size))
}

/// Records, or — when that fails — notes the gap for the next append to report.
fn record_or_note_gap(global: &Global, repo: &Repo, entries: &[ledger::NewEntry], what: serde_json::Value) -> Result<String, String> {
    record(global, repo, entries).inspect_err(|_| {
        if let Some(loc) = ledger::locate(global.ledger.as_deref(), Some(repo)) {
            if let Err(e) = ledger::gap::note(&loc, what) {
                eprintln!("git-audit: note: could not note the unrecorded event beside the ledger either: {e}");
            }
        }
    })
}

fn require_ledger(repo: &Repo, policy: &Policy) -> bool {
    policy.require_ledger
        || repo.config_string("audit.requireLedger").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"))
}

/// The last recorded tip of each ref this push creates (for re-creation as a
/// force push). A ledger that exists but cannot be read fails the check closed.
fn recorded_tips(global: &Global, repo: &Repo, updates: &[hook::RefUpdate]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut tips = std::collections::HashMap::new();
    let creates: Vec<&hook::RefUpdate> = updates.iter().filter(|u| u.is_create() && !u.is_delete()).collect();
    let Some(loc) = ledger::locate(global.ledger.as_deref(), Some(repo)).filter(|_| !creates.is_empty()) else {
        return Ok(tips);
    };
    if !loc.db.exists() {
        return Ok(tips);
    }
    let l = Ledger::open(&loc).context("cannot read the ledger to find refs' last recorded tips")?;
    for u in creates {
        if let Some(tip) = l.recorded_tip(&u.refname)? {
            tips.insert(u.refname.clone(), tip);
        }
    }
    Ok(tips)
}

fn pre_receive(global: &Global) -> anyhow::Result<Outcome> {
    let input = stdin()?;
    let updates = hook::parse_receive(&input)?;
    let repo = Repo::open_from_env()?;
    let sp = server_policy::load(&repo, global.policy.as_deref())?;
    let policy = &sp.policy;
    let mut signatures = policy.signature_checker(Some(&repo));
    let pusher = match identity::resolve(&env, &sources(&repo), &repo, &mut signatures, &updates) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("git-audit: push refused: {e}");
            return Ok(Outcome::Violations);
        }
    };
    let bypass = hook::bypass_reason(&hook::push_options(&env));
    let guard = decide::Guard { default_branch: sp.default_branch.clone(), recorded_tips: recorded_tips(global, &repo, &updates)? };
    let mut decision = decide::decide(&repo, policy, &updates, &decide::Side::Server, pusher, bypass, &guard)?;
    let unrecorded = serde_json::json!({
        "hook": "pre-receive",
        "refs": updates,
        "accepted": decision.accepted,
        "pusher": decision.pusher.identity,
        "policy_digest": decision.policy_digest,
    });
    match record_or_note_gap(global, &repo, &hook::record::push_decision(&decision), unrecorded) {
        Ok(note) => tracing::info!("{note}"),
        Err(e) if require_ledger(&repo, policy) => {
            decision.accepted = false;
            decision.reasons.push(format!(
                "the decision could not be recorded in the audit ledger ({e}), and recording is required (audit.requireLedger / [audit] require_ledger)"
            ));
        }
        Err(e) => eprintln!("git-audit: note: the decision was not recorded in the audit ledger: {e}"),
    }
    eprint!("{}", message::render(&decision, &sp.source));
    Ok(if decision.accepted { Outcome::Pass } else { Outcome::Violations })
}

fn post_receive(global: &Global) -> anyhow::Result<Outcome> {
    let input = stdin()?;
    let updates = hook::parse_receive(&input)?;
    let repo = Repo::open_from_env()?;
    let pusher = match server_policy::load(&repo, global.policy.as_deref()) {
        Ok(sp) => {
            let mut signatures = sp.policy.signature_checker(Some(&repo));
            identity::resolve(&env, &sources(&repo), &repo, &mut signatures, &updates).unwrap_or(identity::Pusher {
                identity: None,
                source: None,
                certificate_key: None,
            })
        }
        Err(_) => identity::Pusher { identity: None, source: None, certificate_key: None },
    };
    let unrecorded = serde_json::json!({"hook": "post-receive", "refs": updates, "pusher": pusher.identity});
    if let Err(e) = record_or_note_gap(global, &repo, &[hook::record::ref_updated(&updates, &pusher)], unrecorded) {
        eprintln!("git-audit: note: the ref update was not recorded in the audit ledger: {e}");
    }
    Ok(Outcome::Pass)
}

/// The client's policy: --policy, `audit.policy`, or the work tree's file; none → skip.
fn client_policy(global: &Global, repo: &Repo) -> anyhow::Result<Option<Policy>> {
    let Some(path) = crate::policy::locate(global.policy.as_deref(), Some(repo)) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Policy::load(&path)?))
}

fn pre_push(global: &Global, remote: String) -> anyhow::Result<Outcome> {
    let input = stdin()?;
    let updates = hook::parse_pre_push(&input)?;
    let repo = Repo::open_from_env()?;
    let Some(policy) = client_policy(global, &repo)? else {
        eprintln!("git-audit: no policy ({}) here; pre-push check skipped", crate::policy::DEFAULT_FILE);
        return Ok(Outcome::Pass);
    };
    let pusher = identity::Pusher { identity: repo.config_string("user.email"), source: Some("user.email".into()), certificate_key: None };
    let decision = decide::decide(&repo, &policy, &updates, &decide::Side::Client { remote }, pusher, None, &decide::Guard::default())?;
    eprint!("{}", message::render(&decision, &policy.path.display().to_string()));
    if !decision.accepted {
        eprintln!("Hint: fix the commits and push again (skip this local check with `git push --no-verify`; the server checks again).");
    }
    Ok(if decision.accepted { Outcome::Pass } else { Outcome::Violations })
}

fn commit_msg(global: &Global, file: &std::path::Path) -> anyhow::Result<Outcome> {
    let repo = Repo::open_from_env()?;
    let Some(mut policy) = client_policy(global, &repo)? else {
        return Ok(Outcome::Pass);
    };
    // Only the message rules apply before the commit exists.
    policy.signing.required = false;
    policy.signing.match_committer = false;
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let comment = repo.config_string("core.commentChar").and_then(|c| c.bytes().next()).unwrap_or(b'#');
    let message: Vec<u8> = text.split_inclusive(|&b| b == b'\n').filter(|l| l.first() != Some(&comment)).flatten().copied().collect();
    let ident = |who: &str| -> Ident {
        let name = env(&format!("GIT_{who}_NAME")).or_else(|| repo.config_string("user.name")).unwrap_or_default();
        let email = env(&format!("GIT_{who}_EMAIL")).or_else(|| repo.config_string("user.email")).unwrap_or_default();
        Ident { name, email, time: 0, offset_minutes: 0 }
    };
    let commit = ParsedCommit {
        tree: Some(String::new()),
        author: Some(ident("AUTHOR")),
        committer: Some(ident("COMMITTER")),
        message,
        ..ParsedCommit::default()
    };
    let mut checker = CommitChecker::new(&policy, policy.signature_checker(Some(&repo)));
    let report = checker.check("(new commit)", &commit, None);
    for f in &report.findings {
        eprintln!("git-audit: {}{}: {}", f.rule, if f.severity == crate::check::Severity::Warning { " [warn]" } else { "" }, f.message);
        if let Some(fix) = &f.fix {
            eprintln!("  Hint: {fix}");
        }
    }
    if report.verdict == CommitVerdict::Fail {
        eprintln!("git-audit: commit refused by {}; your message is kept in {}", policy.path.display(), file.display());
        return Ok(Outcome::Violations);
    }
    Ok(Outcome::Pass)
}
