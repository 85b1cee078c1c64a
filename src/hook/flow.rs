//! The hooks end to end, as git runs them: read what git hands the hook, decide,
//! record, and say what the person at the other end should read. The binary
//! only reads standard input, prints [`Said::stderr`] and maps the outcome to an
//! exit code.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use super::{bypass_reason, decide, identity, message, notice, parse_pre_push, parse_receive, push_options, record, InputError, RefUpdate};
use crate::check::{CommitChecker, CommitVerdict, RangeError, Severity};
use crate::event::Unrecorded;
use crate::git::{GitError, Ident, ParsedCommit, Repo};
use crate::ledger::{self, Ledger, LedgerError, NewEntry};
use crate::notify::{self, Notice};
use crate::policy::applies as server_policy;
use crate::policy::notify::Sink;
use crate::policy::{Policy, PolicyError, DEFAULT_FILE};

/// Ref name → commit id.
type RefTips = HashMap<String, String>;

/// How long the background delivery a hook starts may run.
const BACKGROUND_BUDGET: std::time::Duration = std::time::Duration::from_secs(8);

/// Where a hook runs: the repository, the `--policy`/`--ledger` overrides and
/// the process environment (a function, so tests can pass their own).
pub struct Setting<'a> {
    pub repo: &'a Repo,
    pub policy: Option<&'a Path>,
    pub ledger: Option<&'a Path>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The ledger as pre-receive opened it to read recorded tips, kept for
    /// recording the decision (one open per hook run, not two).
    pub opened: std::cell::RefCell<Option<Ledger>>,
}

/// What a hook concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// May git go on (exit 0)?
    pub proceed: bool,
    /// What the person reads (git prefixes `remote: ` on a server).
    pub stderr: String,
}

impl Said {
    fn new(proceed: bool, stderr: String) -> Said {
        Said { proceed, stderr }
    }
}

/// Why a hook could not decide (the server refuses the push, saying this).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    ServerPolicy(#[from] server_policy::ServerPolicyError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Check(#[from] RangeError),
    /// Said once: not a `source` as well, so `{:#}` does not repeat it.
    #[error("cannot read the ledger to find refs' last recorded tips: {0}")]
    Ledger(LedgerError),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

impl From<LedgerError> for HookError {
    fn from(e: LedgerError) -> HookError {
        HookError::Ledger(e)
    }
}

impl Setting<'_> {
    fn pusher_sources(&self) -> Vec<String> {
        match self.repo.config_string("audit.pusherSources") {
            Some(list) => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            None => identity::DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ledger_files(&self) -> Option<ledger::LedgerFiles> {
        ledger::locate(self.ledger, Some(self.repo))
    }

    /// Appends `entries` (after any `ledger.gap` marker waiting in the spool),
    /// with the outbox rows for `notices` in the same transaction; then starts
    /// their delivery in the background (the hook does not wait for it).
    fn record(&self, entries: &[NewEntry], notices: &[Notice], sinks: &[Sink]) -> Result<String, String> {
        let files = self.ledger_files().ok_or("no ledger location")?;
        let kept = self.opened.borrow_mut().take();
        let mut l = match kept {
            Some(l) => l,
            None => Ledger::open(&files).map_err(|e| e.to_string())?,
        };
        if !sinks.is_empty() {
            l.state_schema(notify::SCHEMA).map_err(|e| e.to_string())?;
        }
        let repository = notice::repository_name(self.repo);
        let mut queued = 0;
        let a = ledger::gap::append_with_gaps_then(&mut l, &files, entries, |a| {
            if sinks.is_empty() {
                return Vec::new();
            }
            let mut all = Vec::new();
            let first = match a.gap {
                Some((seq, unrecorded)) => {
                    all.push(notice::gap_notice(&repository, unrecorded, 0));
                    seq
                }
                None => a.first_own,
            };
            let shift = usize::from(a.gap.is_some());
            all.extend(notices.iter().cloned().map(|mut n| {
                n.entry = n.entry.map(|i| i + shift);
                n
            }));
            let writes = notify::outbox_writes(sinks, &all, Some(notify::Written { receipt: &a.receipt, first }));
            queued = writes.len();
            writes
        })
        .map_err(|e| e.to_string())?;
        drop(l);
        if queued > 0 && self.repo.config_bool("audit.notifyBackground").unwrap_or(true) {
            notify::spawn_background_drain(&files, self.policy, BACKGROUND_BUDGET);
        }
        let r = a.receipt;
        Ok(format!("recorded as ledger seq {}..{} (checkpoint size {})", r.first_seq, r.first_seq + r.count.saturating_sub(1), r.tree_size))
    }

    /// Records, or — when that fails — notes the gap for the next append to report.
    fn record_or_note_gap(
        &self,
        entries: &[NewEntry],
        notices: &[Notice],
        sinks: &[Sink],
        what: Unrecorded,
        said: &mut String,
    ) -> Result<String, String> {
        self.record(entries, notices, sinks).inspect_err(|_| {
            if let Some(files) = self.ledger_files() {
                if let Err(e) = ledger::gap::note(&files, what) {
                    let _ = writeln!(said, "git-audit: note: could not note the unrecorded event beside the ledger either: {e}");
                }
            }
        })
    }

    fn require_ledger(&self, policy: &Policy) -> bool {
        policy.require_ledger || self.repo.config_bool("audit.requireLedger").unwrap_or(false)
    }

    /// What the ledger says the push is judged against, read with one open:
    /// the last recorded tip of each ref this push creates, or whose old value
    /// names no commit (re-creation, or a step through a tree, as a force
    /// push); and each ref's value as accepted under the policy with `digest`
    /// (see `Ledger::checked_tips`: only those vouch for their commits). No
    /// ledger: nothing recorded, nothing vouches, everything new to a ref is
    /// checked. A ledger that exists but cannot be read fails closed.
    fn recorded(&self, updates: &[RefUpdate], digest: &str) -> Result<(RefTips, RefTips), HookError> {
        let mut tips = HashMap::new();
        let Some(files) = self.ledger_files().filter(|f| f.exists()) else {
            return Ok((tips, HashMap::new()));
        };
        let l = Ledger::open(&files)?;
        let creates = updates.iter().filter(|u| !u.is_delete() && (u.is_create() || self.repo.resolve_commit(&u.old).is_err()));
        for u in creates {
            if let Some(tip) = l.recorded_tip(&u.refname)? {
                tips.insert(u.refname.clone(), tip);
            }
        }
        let checked = l.checked_tips(digest)?;
        *self.opened.borrow_mut() = Some(l);
        Ok((tips, checked))
    }

    /// The client's policy: --policy, `audit.policy`, or the work tree's file; none → skip.
    fn client_policy(&self) -> Result<Option<Policy>, HookError> {
        Ok(server_policy::applies(self.policy, Some(self.repo), server_policy::Look::WorkTree)?.map(|a| a.policy))
    }
}

/// The push decision and the events it adds to the ledger.
pub fn decide_push(
    s: &Setting<'_>,
    sp: &server_policy::ServerPolicy,
    updates: &[RefUpdate],
) -> Result<Result<(decide::PushDecision, Vec<NewEntry>), identity::CertError>, HookError> {
    let policy = &sp.policy;
    let mut signatures = policy.signature_checker(Some(s.repo));
    let pusher = match identity::resolve(s.env, &s.pusher_sources(), s.repo, &mut signatures, updates) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let bypass = bypass_reason(&push_options(s.env));
    let (recorded_tips, checked_tips) = s.recorded(updates, &policy.digest)?;
    let guard = decide::Guard { default_branch: sp.default_branch.clone(), recorded_tips, checked_tips };
    let decision = decide::decide(s.repo, policy, updates, &decide::Side::Server, pusher, bypass, &guard)?;
    let events = record::push_decision(&decision);
    Ok(Ok((decision, events)))
}

/// Each pushed name resolved through symbolic refs to the ref that will
/// change, so the rules judged and the name recorded are the written ref's
/// (`refs/heads/master` → `refs/heads/main` on a server kept after a rename).
fn through_symrefs(repo: &crate::git::Repo, updates: Vec<RefUpdate>) -> Vec<RefUpdate> {
    updates
        .into_iter()
        .map(|mut u| {
            u.refname = repo.symref_target(&u.refname);
            u
        })
        .collect()
}

/// pre-receive: decide the whole push, record the decision, fail closed. An
/// error means the push must be refused with it.
pub fn pre_receive(s: &Setting<'_>, input: &str) -> Result<Said, HookError> {
    let updates = through_symrefs(s.repo, parse_receive(input)?);
    let sp = server_policy::load(s.repo, s.policy)?;
    let (mut decision, events) = match decide_push(s, &sp, &updates)? {
        Ok(d) => d,
        Err(cert) => return Ok(Said::new(false, format!("git-audit: push refused: {cert}\n"))),
    };
    let mut said = String::new();
    let unrecorded = Unrecorded {
        hook: "pre-receive".into(),
        refs: updates.clone(),
        accepted: Some(decision.accepted),
        pusher: decision.pusher.identity.clone(),
        policy_digest: Some(decision.policy_digest.clone()),
    };
    let notices = notice::push_notices(&notice::repository_name(s.repo), &decision, &events);
    match s.record_or_note_gap(&events, &notices, &sp.policy.notify, unrecorded, &mut said) {
        Ok(note) => tracing::info!("{note}"),
        Err(e) if s.require_ledger(&sp.policy) => {
            decision.accepted = false;
            decision.reasons.push(format!(
                "the decision could not be recorded in the audit ledger ({e}), and recording is required (audit.requireLedger / [audit] require_ledger)"
            ));
        }
        Err(e) => {
            let _ = writeln!(said, "git-audit: note: the decision was not recorded in the audit ledger: {e}");
        }
    }
    said.push_str(&message::render(&decision, &sp.source));
    Ok(Said::new(decision.accepted, said))
}

/// post-receive: record what the accepted push changed. Never stops git.
pub fn post_receive(s: &Setting<'_>, input: &str) -> Result<Said, HookError> {
    let updates = through_symrefs(s.repo, parse_receive(input)?);
    let loaded = server_policy::load(s.repo, s.policy).ok();
    let (pusher, sinks) = match &loaded {
        Some(sp) => {
            let mut signatures = sp.policy.signature_checker(Some(s.repo));
            (identity::resolve(s.env, &s.pusher_sources(), s.repo, &mut signatures, &updates).unwrap_or_default(), sp.policy.notify.clone())
        }
        None => (identity::Pusher::default(), Vec::new()),
    };
    let mut said = String::new();
    let unrecorded = Unrecorded {
        hook: "post-receive".into(),
        refs: updates.clone(),
        accepted: None,
        pusher: pusher.identity.clone(),
        policy_digest: None,
    };
    if let Err(e) = s.record_or_note_gap(&[record::ref_updated(&updates, &pusher)], &[], &sinks, unrecorded, &mut said) {
        let _ = writeln!(said, "git-audit: note: the ref update was not recorded in the audit ledger: {e}");
    }
    if let Some(sp) = loaded.filter(|sp| sp.policy.attestations.enabled) {
        s.attest(&sp, &updates, &mut said);
    }
    Ok(Said::new(true, said))
}

impl Setting<'_> {
    /// `[attestations] enabled`: a signed SLSA source attestation for each
    /// revision a push landed on a protected branch. After the push: a
    /// failure is said, never undoes it.
    fn attest(&self, sp: &server_policy::ServerPolicy, updates: &[RefUpdate], said: &mut String) {
        let protected =
            |r: &str| r.starts_with("refs/heads/") && (sp.policy.branch_rule(r).is_some() || sp.default_branch.as_deref() == Some(r));
        let landed: Vec<&RefUpdate> = updates.iter().filter(|u| !u.is_delete() && protected(&u.refname)).collect();
        if landed.is_empty() {
            return;
        }
        let Some(files) = self.ledger_files().filter(|f| f.exists()) else {
            let _ = writeln!(said, "git-audit: note: no ledger: no SLSA attestation issued");
            return;
        };
        let mut ledger = match crate::ledger::Ledger::open(&files) {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(said, "git-audit: note: no SLSA attestation issued: {e}");
                return;
            }
        };
        for u in landed {
            match crate::slsa::issue::issue(self.repo, &mut ledger, Some(&sp.policy), &u.new, &u.refname) {
                Ok(i) => {
                    let _ = writeln!(
                        said,
                        "git-audit: {} on {}: {} (attestation in {})",
                        crate::git::short_id(&u.new),
                        u.refname,
                        i.assessment.level_name(),
                        crate::slsa::NOTES_REF
                    );
                    if !i.recorded {
                        let _ = writeln!(said, "git-audit: note: the hooks' key may not write attestation.issued (added before it existed): the attestation is in the git note only");
                    }
                }
                Err(e) => {
                    let _ = writeln!(said, "git-audit: note: no SLSA attestation for {}: {e}", crate::git::short_id(&u.new));
                }
            }
        }
    }
}

/// pre-push: check what `git push` is about to send to `remote`.
pub fn pre_push(s: &Setting<'_>, input: &str, remote: String) -> Result<Said, HookError> {
    let updates = parse_pre_push(input)?;
    let Some(policy) = s.client_policy()? else {
        return Ok(Said::new(true, format!("git-audit: no policy ({DEFAULT_FILE}) here; pre-push check skipped\n")));
    };
    let pusher =
        identity::Pusher { identity: s.repo.config_string("user.email"), source: Some("user.email".into()), certificate_key: None };
    let decision = decide::decide(s.repo, &policy, &updates, &decide::Side::Client { remote }, pusher, None, &decide::Guard::default())?;
    let mut said = message::render(&decision, &policy.path.display().to_string());
    if !decision.accepted {
        said.push_str(
            "Hint: fix the commits and push again (skip this local check with `git push --no-verify`; if the server runs git-audit, it checks again).\n",
        );
    }
    Ok(Said::new(decision.accepted, said))
}

/// commit-msg: the message rules, as the commit is written.
pub fn commit_msg(s: &Setting<'_>, file: &Path) -> Result<Said, HookError> {
    let Some(mut policy) = s.client_policy()? else {
        return Ok(Said::new(true, String::new()));
    };
    // Only the message rules apply before the commit exists.
    policy.signing.required = false;
    policy.signing.match_committer = false;
    let text = std::fs::read(file).map_err(|source| HookError::Read { path: file.display().to_string(), source })?;
    let comment = s.repo.config_string("core.commentChar").and_then(|c| c.bytes().next()).unwrap_or(b'#');
    let message: Vec<u8> = text.split_inclusive(|&b| b == b'\n').filter(|l| l.first() != Some(&comment)).flatten().copied().collect();
    let ident = |who: &str| -> Ident {
        let name = (s.env)(&format!("GIT_{who}_NAME")).or_else(|| s.repo.config_string("user.name")).unwrap_or_default();
        let email = (s.env)(&format!("GIT_{who}_EMAIL")).or_else(|| s.repo.config_string("user.email")).unwrap_or_default();
        Ident { name, email, time: 0, offset_minutes: 0 }
    };
    let commit = ParsedCommit {
        tree: Some(String::new()),
        author: Some(ident("AUTHOR")),
        committer: Some(ident("COMMITTER")),
        message,
        ..ParsedCommit::default()
    };
    let mut checker = CommitChecker::new(&policy, policy.signature_checker(Some(s.repo)));
    let report = checker.check("(new commit)", &commit, None);
    let mut said = String::new();
    for f in &report.findings {
        let _ = writeln!(said, "git-audit: {}{}: {}", f.rule, if f.severity == Severity::Warning { " [warn]" } else { "" }, f.message);
        // There is no commit yet to amend: those fixes are for commits already made.
        if let Some(fix) = f.fix.as_ref().filter(|x| !x.contains("--amend")) {
            let _ = writeln!(said, "  Hint: {fix}");
        }
    }
    let fail = report.verdict == CommitVerdict::Fail;
    if fail {
        let _ = writeln!(said, "git-audit: commit refused by {}; your message is kept in {}", policy.path.display(), file.display());
        let _ = writeln!(said, "  Hint: edit it and try again with `git commit -e -F {}`", file.display());
    }
    Ok(Said::new(!fail, said))
}
