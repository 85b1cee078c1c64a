//! The push decision: ref rules, the commits each update brings, and the
//! commit rules over them. All or nothing: one violation refuses the push.

use std::collections::HashMap;

use serde::Serialize;

use super::identity::{split_signed, Pusher};
use super::RefUpdate;
use crate::check::{self, CommitReport, Finding, RangeError, Severity};
use crate::git::{short_id, ParsedCommit, Repo};
use crate::policy::applies as server_policy;
use crate::policy::{BranchRule, Mode, Policy, DEFAULT_FILE};
use crate::rule::Rule;
use crate::signature::allowed_signers::identity_matches;
use crate::signature::SignatureStatus;

/// Which end of the push we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// pre-receive on the server.
    Server,
    /// pre-push on a client pushing to this remote.
    Client { remote: String },
}

/// Everything decided about one ref update.
#[derive(Debug, Clone, Serialize)]
pub struct RefDecision {
    #[serde(flatten)]
    pub update: RefUpdate,
    /// Ref-level findings (force push, deletion, pusher, tags …).
    pub findings: Vec<Finding>,
    /// The commits this update brings, checked.
    pub commits: Vec<CommitReport>,
    /// Commits this update brings that change the policy's footprint (commit
    /// id, the first path changed), on a protected ref: what `policy.changed` tells.
    #[serde(skip)]
    pub policy_changes: Vec<(String, String)>,
    /// The source controls the policy enforced on this ref (see [`source_controls`]).
    #[serde(skip)]
    pub controls: Vec<String>,
}

impl RefDecision {
    /// A ref update judged on the ref alone, with no commits walked: a reserved
    /// namespace, a deletion, a new value that is no commit.
    fn on_the_ref_alone(u: &RefUpdate, findings: Vec<Finding>, controls: Vec<String>) -> RefDecision {
        RefDecision { update: u.clone(), findings, commits: Vec::new(), policy_changes: Vec::new(), controls }
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
            + self.commits.iter().flat_map(|c| &c.findings).filter(|f| f.severity == Severity::Error).count()
    }
}

pub use crate::event::Bypass;

/// The decision on a whole push.
#[derive(Debug, Clone, Serialize)]
pub struct PushDecision {
    pub accepted: bool,
    pub refs: Vec<RefDecision>,
    pub pusher: Pusher,
    pub bypass: Option<Bypass>,
    pub policy_digest: String,
    /// Why the push was refused, when not for findings (bad bypass …).
    pub reasons: Vec<String>,
}

impl PushDecision {
    pub fn error_count(&self) -> usize {
        self.refs.iter().map(RefDecision::errors).sum()
    }
}

/// What the server knows beyond the policy text (all empty on a client).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// In default-branch policy mode, the default branch: implicitly
    /// `forbid_force_push` and `forbid_deletion`, and `policy.admin` applies to it,
    /// each enforced unless `[rules]` says otherwise.
    pub default_branch: Option<String>,
    /// The last tip the ledger recorded for a ref (from `ref.updated` or an
    /// accepted `push.decided`), for refs this push creates.
    pub recorded_tips: HashMap<String, String>,
    /// Each ref's value as accepted under the current policy without break
    /// glass (see `Ledger::checked_tips`): only these vouch for their commits.
    pub checked_tips: HashMap<String, String>,
}

/// The namespace git-audit writes itself (checkpoint anchors); no push may touch it.
pub const RESERVED_PREFIX: &str = "refs/audit/";

/// git's replacement objects: a ref here makes `git show`, `git archive` and
/// clones serve another object in place of the one named — the audited view
/// and the served view would part. No push may write it.
pub const REPLACE_PREFIX: &str = "refs/replace/";

/// The reserved namespace `refname` is in: `refs/audit` (and anything under
/// it; a ref named `refs/audit` itself would block every future anchor) or
/// `refs/replace`.
pub fn reserved_namespace(refname: &str) -> Option<&'static str> {
    [RESERVED_PREFIX, REPLACE_PREFIX].into_iter().find(|p| refname.starts_with(p) || refname == p.trim_end_matches('/'))
}

/// True for a ref in a reserved namespace.
pub fn is_reserved(refname: &str) -> bool {
    reserved_namespace(refname).is_some()
}

/// The rules that apply to one ref: its `[[branches]]` entry, and whether it is
/// the guarded default branch.
#[derive(Clone, Copy)]
struct RefRules<'p> {
    policy: &'p Policy,
    branch: Option<&'p BranchRule>,
    guarded: bool,
}

/// See [`RefRules::controls`].
pub fn source_controls(policy: &Policy, branch: Option<&BranchRule>, guarded: bool) -> Vec<String> {
    let rules = RefRules { policy, branch, guarded };
    let enforced = |r: Rule| rules.mode(r) == Mode::Enforce;
    let mut out = Vec::new();
    let (no_force, no_delete) =
        (guarded || branch.is_some_and(|b| b.forbid_force_push), guarded || branch.is_some_and(|b| b.forbid_deletion));
    if no_force && no_delete && enforced(Rule::BranchesForcePush) && enforced(Rule::BranchesDeletion) {
        out.push("CONTINUITY_ENFORCED".to_string());
    }
    // Every tag: a rule that a tag name matches, immutable and undeletable.
    if let Some(tags) = policy.branch_rule("refs/tags/any-tag").filter(|t| t.immutable && t.forbid_deletion) {
        let tag_rules = RefRules { policy, branch: Some(tags), guarded: false };
        if tag_rules.mode(Rule::BranchesImmutable) == Mode::Enforce && tag_rules.mode(Rule::BranchesDeletion) == Mode::Enforce {
            out.push("TAG_HYGIENE".to_string());
        }
    }
    if policy.signing.required && policy.signing.trust == crate::signature::Trust::Policy && enforced(Rule::SigningRequired) {
        out.push("SIGNED_COMMITS".to_string());
    }
    if policy.roles.get("policy-admin").is_some_and(|a| !a.is_empty()) && enforced(Rule::PolicyAdmin) {
        out.push("POLICY_GOVERNED".to_string());
    }
    out
}

/// Rules the guarded default branch enforces unless `[rules]` names them.
const GUARD_RULES: &[Rule] = &[Rule::BranchesForcePush, Rule::BranchesDeletion, Rule::PolicyAdmin];

fn rank(m: Mode) -> u8 {
    match m {
        Mode::Off => 0,
        Mode::Warn => 1,
        Mode::Enforce => 2,
    }
}

impl<'p> RefRules<'p> {
    fn new(policy: &'p Policy, guard: &Guard, refname: &str) -> RefRules<'p> {
        RefRules { policy, branch: policy.branch_rule(refname), guarded: guard.default_branch.as_deref() == Some(refname) }
    }

    /// The SLSA source controls the policy enforces on this ref, named as
    /// the Source Track's tools name them: `CONTINUITY_ENFORCED` (no force push,
    /// no deletion), `TAG_HYGIENE` (tags immutable and undeletable),
    /// `SIGNED_COMMITS` (good signatures by pinned keys), `POLICY_GOVERNED`
    /// (the policy itself changes only with a policy admin's signature). Only
    /// what is enforced counts: warn mode is not a control.
    fn controls(&self) -> Vec<String> {
        source_controls(self.policy, self.branch, self.guarded)
    }

    fn mode(&self, rule: Rule) -> Mode {
        if self.guarded && GUARD_RULES.contains(&rule) && !self.policy.rules.contains_key(&rule) {
            return Mode::Enforce;
        }
        self.policy.mode_for(rule, self.branch)
    }

    /// A ref with a `[[branches]]` entry, or the guarded default branch.
    fn protected(&self) -> bool {
        self.branch.is_some() || self.guarded
    }

    fn forbid_force_push(&self) -> bool {
        self.guarded || self.branch.is_some_and(|b| b.forbid_force_push)
    }

    fn forbid_deletion(&self) -> bool {
        self.guarded || self.branch.is_some_and(|b| b.forbid_deletion)
    }

    fn immutable(&self) -> bool {
        self.branch.is_some_and(|b| b.immutable)
    }

    /// How strictly each commit rule is applied to commits arriving on this ref.
    fn strictness(&self) -> Vec<u8> {
        Rule::ALL
            .iter()
            .filter(|r| r.per_commit())
            .map(|&rule| match rule {
                Rule::PolicyAdmin if !self.protected() => 0,
                Rule::BranchesLinearHistory if !self.branch.is_some_and(|b| b.require_linear_history) => 0,
                _ => rank(self.mode(rule)),
            })
            .collect()
    }

    /// True when every commit rule is at least as strict here as `target` (a
    /// ref's [`RefRules::strictness`]): a commit accepted here needs no new check there.
    fn covers(&self, target: &[u8]) -> bool {
        self.strictness().iter().zip(target).all(|(mine, theirs)| mine >= theirs)
    }

    fn finding(&self, rule: Rule, message: String, fix: &str) -> Option<Finding> {
        Some(Finding::new(rule, self.mode(rule).severity()?, message).with_fix(fix))
    }
}

/// Decides a push. `bypass` is the break-glass reason, if one was given.
pub fn decide(
    repo: &Repo,
    policy: &Policy,
    updates: &[RefUpdate],
    side: &Side,
    pusher: Pusher,
    bypass: Option<String>,
    guard: &Guard,
) -> Result<PushDecision, RangeError> {
    let refs_before: Vec<(String, String)> = repo.refs()?.into_iter().filter(|(name, _)| !is_reserved(name)).collect();
    let mut baseline = Vec::new();
    if let Some(b) = &policy.baseline {
        if let Ok(id) = repo.resolve_commit(b) {
            baseline.push(id);
        }
    }
    let commit_tips = |names: &mut dyn Iterator<Item = &(String, String)>| -> Vec<String> {
        let mut out: Vec<String> = names.filter_map(|(_, id)| repo.resolve_commit(id).ok()).collect();
        out.sort();
        out.dedup();
        out
    };
    let mut signatures = policy.signature_checker(Some(repo));
    let mut footprint = Footprint::new(repo, policy.codeowners);
    let mut decisions = Vec::new();
    let mut reserved = false;
    for u in updates {
        let rules = RefRules::new(policy, guard, &u.refname);
        let branch = rules.branch;
        let mut findings = Vec::new();
        if let Some(ns) = reserved_namespace(&u.refname) {
            // Not a mode: these namespaces are never writable by a push.
            reserved = true;
            let (why, fix) = if ns == RESERVED_PREFIX {
                (
                    format!("{} is under {RESERVED_PREFIX}, which only git-audit itself writes (on the server)", u.refname),
                    format!("leave {RESERVED_PREFIX}* out of the push; anchors are written by `git-audit ledger anchor` on the server"),
                )
            } else {
                (
                    format!("{} is a replacement ref: git would serve another object in place of the one it names, which the hook did not judge", u.refname),
                    format!("leave {REPLACE_PREFIX}* out of the push; change history with new commits instead (or `git replace` locally only)"),
                )
            };
            findings.push(Finding::new(Rule::RefsReserved, Severity::Error, why).with_fix(fix));
            decisions.push(RefDecision::on_the_ref_alone(u, findings, rules.controls()));
            continue;
        }
        let mut push = |f: Option<Finding>| findings.extend(f);
        if u.is_delete() {
            if rules.forbid_deletion() {
                push(rules.finding(
                    Rule::BranchesDeletion,
                    format!("{} may not be deleted", u.refname),
                    "ask an admin to change the [[branches]] rule, or push to another ref",
                ));
            }
            decisions.push(RefDecision::on_the_ref_alone(u, findings, rules.controls()));
            continue;
        }
        if let (Some(b), Some(who)) = (branch, &pusher.identity) {
            if let Some(allowed) = &b.allowed_pushers {
                if !identity_matches(who, allowed) {
                    push(rules.finding(
                        Rule::BranchesPusher,
                        format!("{who} may not push to {}", u.refname),
                        "ask someone listed in allowed_pushers to push it, or open a pull request",
                    ));
                }
            }
        } else if let (Some(b), None) = (branch, &pusher.identity) {
            if b.allowed_pushers.is_some() {
                push(rules.finding(
                    Rule::BranchesPusher,
                    format!("the pusher of {} is unknown, and only allowed_pushers may push to it", u.refname),
                    "push through an authenticated channel (or sign the push: `git push --signed`)",
                ));
            }
        }
        // What does the new value point at?
        let (kind, raw) = repo.read_object(&u.new)?;
        let tip = if kind == "tag" {
            repo.resolve_commit(&u.new).ok()
        } else if kind == "commit" {
            Some(u.new.clone())
        } else {
            None
        };
        if branch.is_some_and(|b| b.require_signed_tags) {
            if kind != "tag" {
                push(rules.finding(
                    Rule::BranchesSignedTags,
                    format!("{} is a lightweight tag; a signed annotated tag is required", u.refname),
                    "create it with `git tag -s NAME` and push again",
                ));
            } else {
                let (payload, sig) = match split_signed(&raw) {
                    Some((p, s)) => (p, Some(s)),
                    None => (&raw[..], None),
                };
                let v = signatures.check_object("tag", sig, payload, crate::git::header_time(payload, "tagger"));
                if v.status != SignatureStatus::Good {
                    push(rules.finding(
                        Rule::BranchesSignedTags,
                        format!("tag {} signature {}: {}", u.refname, v.status.as_str(), v.detail.unwrap_or_default()),
                        "sign the tag with a pinned key: `git tag -f -s NAME` and push again",
                    ));
                }
            }
        }
        // An immutable ref never moves once it exists (nor comes back elsewhere).
        if rules.immutable() {
            let last = if u.is_create() { guard.recorded_tips.get(&u.refname).cloned() } else { Some(u.old.clone()) };
            if let Some(last) = last.filter(|l| *l != u.new) {
                push(rules.finding(
                    Rule::BranchesImmutable,
                    format!("{} is immutable: it names {} and may not move to {}", u.refname, short_id(&last), short_id(&u.new)),
                    "publish a new tag (e.g. the next version) instead of moving this one",
                ));
            }
        }
        // Every value is judged, whatever it names: a branch names a commit; a
        // protected ref a commit or a tag chain ending in one.
        // A branch names a commit itself, not a tag of one.
        if tip.is_some() && kind != "commit" && u.refname.starts_with("refs/heads/") {
            push(rules.finding(
                Rule::RefsNonCommit,
                format!("{} would name a {kind} ({}); a branch names a commit", u.refname, short_id(&u.new)),
                "push the commit itself (`git push origin <tag>^{commit}:<branch>`)",
            ));
        }
        let Some(tip) = tip else {
            if u.refname.starts_with("refs/heads/") || rules.protected() {
                push(rules.finding(
                    Rule::RefsNonCommit,
                    format!(
                        "{} would name a {kind} ({}), not a commit{}",
                        u.refname,
                        short_id(&u.new),
                        if kind == "tag" { " (the tag's chain does not end in a commit)" } else { "" }
                    ),
                    "push a commit, or a tag of a commit",
                ));
            }
            decisions.push(RefDecision::on_the_ref_alone(u, findings, rules.controls()));
            continue;
        };
        // Force push, on peeled values: the commit the old value names must be an
        // ancestor of the new one. A ref created again, or whose old value names no
        // commit (a stepping stone through a tree), counts from its last recorded tip.
        let old_commit = if u.is_create() { None } else { repo.resolve_commit(&u.old).ok() };
        let old_known = old_commit.is_some();
        if rules.forbid_force_push() {
            if let Some(old) = old_commit.as_ref().filter(|o| !repo.is_ancestor(o, &tip).unwrap_or(false)) {
                push(rules.finding(
                    Rule::BranchesForcePush,
                    format!("{} would be rewritten: {} is not an ancestor of {}", u.refname, short_id(old), short_id(&tip)),
                    "rebase onto the current tip instead of force-pushing (`git pull --rebase`, then push)",
                ));
            } else if !old_known {
                if let Some(last) = guard.recorded_tips.get(&u.refname) {
                    // A recorded tag tip names its tag object: compare the commits they peel to.
                    let last = &repo.resolve_commit(last).unwrap_or_else(|_| last.clone());
                    if !repo.is_ancestor(last, &tip).unwrap_or(false) {
                        push(rules.finding(
                            Rule::BranchesForcePush,
                            format!(
                                "{} is being {} at {}, which does not descend from its last recorded tip {} (a deletion and re-creation, or a step through a non-commit, rewrites it)",
                                u.refname,
                                if u.is_create() { "created again" } else { "moved" },
                                short_id(&tip),
                                short_id(last)
                            ),
                            "create it from its last tip (`git push origin <last tip>:<ref>`) and build on that",
                        ));
                    }
                }
            }
        }
        // Which commits does this update bring? Only commits already accepted
        // under rules at least as strict as this ref's count as checked.
        let mut hide: Vec<String> = baseline.clone();
        match side {
            Side::Server => {
                hide.extend(old_commit.iter().cloned());
                // Coverage follows the record: a ref vouches for its commits only
                // if its value was accepted under this very policy, and its rules
                // today are at least as strict as this ref's.
                let target = rules.strictness();
                let covering = refs_before
                    .iter()
                    .filter(|(n, id)| guard.checked_tips.get(n) == Some(id) && RefRules::new(policy, guard, n).covers(&target));
                hide.extend(commit_tips(&mut covering.into_iter()));
            }
            Side::Client { remote } => {
                let prefix = format!("refs/remotes/{remote}/");
                hide.extend(commit_tips(&mut refs_before.iter().filter(|(n, _)| n.starts_with(&prefix))));
                hide.extend(old_commit.iter().cloned());
            }
        }
        let ids = repo.select(std::slice::from_ref(&tip), &hide)?;
        // Only the server establishes who pushed; a client's own name vouches for nothing.
        let established = if *side == Side::Server { pusher.identity.as_deref() } else { None };
        let report = check::check_parallel(repo, policy, &ids, branch, established)?;
        let mut commits = report.commits;
        if branch.is_some_and(|b| b.require_linear_history) {
            for c in commits.iter().filter(|c| c.parents > 1) {
                push(rules.finding(
                    Rule::BranchesLinearHistory,
                    format!("merge commit {} ({}) on {}", short_id(&c.id), c.subject, u.refname),
                    "rebase instead of merging (`git rebase`), or squash the merge",
                ));
            }
        }
        // A change to the policy's footprint on a protected ref needs a policy admin's signature.
        let mut policy_changes = Vec::new();
        if rules.protected() {
            let admins = policy.roles.get("policy-admin").cloned().unwrap_or_default();
            for c in commits.iter_mut() {
                let Some(changed) = footprint.changed(&c.id)? else {
                    continue;
                };
                policy_changes.push((c.id.clone(), changed.clone()));
                let by_admin = c.signature.status == SignatureStatus::Good
                    && (c.signature.identities.iter().any(|i| identity_matches(i, &admins))
                        || c.signature.signer.as_deref().is_some_and(|s| identity_matches(s, &admins)));
                if !by_admin {
                    if let Some(f) = rules.finding(
                        Rule::PolicyAdmin,
                        format!(
                            "changes {changed}{} but is not signed by a policy admin ({})",
                            if changed == DEFAULT_FILE { "" } else { ", which the policy loads," },
                            if admins.is_empty() { "none are named".to_string() } else { admins.join(", ") }
                        ),
                        "have a holder of the policy-admin role ([roles] in the policy) sign the commit",
                    ) {
                        if f.severity == Severity::Error {
                            c.verdict = check::CommitVerdict::Fail;
                        }
                        c.findings.push(f);
                    }
                }
            }
        }
        decisions.push(RefDecision { update: u.clone(), findings, commits, policy_changes, controls: rules.controls() });
    }
    let errors: usize = decisions.iter().map(RefDecision::errors).sum();
    let mut reasons = Vec::new();
    let bypass = bypass.map(|reason| {
        let breakglass = policy.roles.get("breakglass").cloned().unwrap_or_default();
        let who = pusher.identity.as_deref();
        let holds = who.is_some_and(|who| identity_matches(who, &breakglass));
        let why = match (holds, reason.is_empty()) {
            (true, false) => None,
            (true, true) => Some("no reason was given".to_string()),
            (false, empty) => Some(format!(
                "{} does not hold the breakglass role{}",
                who.unwrap_or("an unknown pusher"),
                if empty { ", and no reason was given" } else { "" }
            )),
        };
        if let Some(why) = &why {
            let how = if holds {
                "; push again with `-o audit.bypass=\"<reason, e.g. an incident id>\"`".to_string()
            } else if who.is_none() {
                format!(
                    "; the server knows a pusher from {} (in the order `git config audit.pusherSources` sets): sign the push (`git push --signed`) or ask the server's admin how it identifies you",
                    super::identity::DEFAULT_SOURCES.join(", ")
                )
            } else {
                String::new()
            };
            reasons.push(format!("break glass refused: {why}{how}"));
        }
        Bypass { reason, allowed: why.is_none() }
    });
    // Break glass lets content violations through, never a write to a reserved
    // namespace and never a change of who governs (the policy's footprint).
    let governance = decisions
        .iter()
        .flat_map(|d| d.commits.iter().flat_map(|c| &c.findings))
        .any(|f| f.rule == Rule::PolicyAdmin && f.severity == Severity::Error);
    if governance && bypass.as_ref().is_some_and(|b| b.allowed) {
        reasons.push(
            "break glass does not pass policy.admin: a change to the policy or a file it loads needs a policy admin's signature, with or without break glass"
                .to_string(),
        );
    }
    let bypassed = bypass.as_ref().is_some_and(|b| b.allowed) && !reserved && !governance;
    let accepted = reasons.is_empty() && (errors == 0 || bypassed);
    Ok(PushDecision { accepted, refs: decisions, pusher, bypass, policy_digest: policy.digest.clone(), reasons })
}

/// The policy's footprint in a commit: the policy file and every file it loads.
/// A commit changes it when any of those paths differs from *any* of its
/// parents (a merge that takes an older policy from its second parent changes
/// it too). Parents are git's (the `parent` lines right after `tree`).
struct Footprint<'r> {
    repo: &'r Repo,
    /// Paths loaded by the policy text with this blob id.
    loaded: HashMap<String, Vec<String>>,
    /// The judging policy reads CODEOWNERS: who owns code is governance too.
    codeowners: bool,
}

impl<'r> Footprint<'r> {
    fn new(repo: &'r Repo, codeowners: bool) -> Footprint<'r> {
        Footprint { repo, loaded: HashMap::new(), codeowners }
    }

    /// The policy file and the paths the policy committed in `commit` loads.
    fn paths(&mut self, commit: &str, into: &mut Vec<String>) {
        let Some(blob) = self.repo.path_blob(commit, DEFAULT_FILE) else {
            return;
        };
        let repo = self.repo;
        let loaded = self.loaded.entry(blob.clone()).or_insert_with(|| match repo.read_object(&blob) {
            Ok((_, text)) => server_policy::footprint_paths(&text),
            Err(_) => Vec::new(),
        });
        into.extend(loaded.iter().cloned());
    }

    /// The first footprint path `id` changes relative to one of its parents.
    fn changed(&mut self, id: &str) -> Result<Option<String>, RangeError> {
        let (_, raw) = self.repo.read_object(id)?;
        let parents = ParsedCommit::parse(&raw, self.repo.signature_header()).parents;
        let mut paths = vec![DEFAULT_FILE.to_string()];
        if self.codeowners {
            paths.extend(crate::policy::paths::CODEOWNERS_LOCATIONS.iter().map(|p| p.to_string()));
        }
        self.paths(id, &mut paths);
        for p in &parents {
            self.paths(p, &mut paths);
        }
        paths.sort();
        paths.dedup();
        let mine: Vec<Option<String>> = paths.iter().map(|p| self.repo.path_entry(id, p)).collect();
        if parents.is_empty() {
            return Ok(paths.into_iter().zip(mine).find(|(_, m)| m.is_some()).map(|(p, _)| p));
        }
        for parent in &parents {
            for (path, m) in paths.iter().zip(&mine) {
                if self.repo.path_entry(parent, path) != *m {
                    return Ok(Some(path.clone()));
                }
            }
        }
        Ok(None)
    }
}
