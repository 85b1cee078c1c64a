//! The push decision: ref rules, the commits each update brings, and the
//! commit rules over them. All or nothing: one violation refuses the push.

use serde::Serialize;

use super::identity::{split_signed, Pusher};
use super::RefUpdate;
use crate::check::{self, CommitReport, Finding, RangeError, Severity};
use crate::git::Repo;
use crate::policy::{BranchRule, Mode, Policy, DEFAULT_FILE};
use crate::signature::allowed_signers::glob_match;
use crate::signature::{SignatureChecker, SignatureStatus};

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
}

impl RefDecision {
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
            + self.commits.iter().flat_map(|c| &c.findings).filter(|f| f.severity == Severity::Error).count()
    }
}

/// A break-glass request (`-o audit.bypass=<reason>`).
#[derive(Debug, Clone, Serialize)]
pub struct Bypass {
    pub reason: String,
    pub allowed: bool,
}

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

/// True when `identity` matches one of `patterns` (case-insensitive, `*`/`?`).
pub fn identity_matches(identity: &str, patterns: &[String]) -> bool {
    let id = identity.to_ascii_lowercase();
    patterns.iter().any(|p| glob_match(&p.to_ascii_lowercase(), &id))
}

fn finding(policy: &Policy, branch: Option<&BranchRule>, rule: &str, message: String, fix: &str) -> Option<Finding> {
    let severity = match policy.mode_for(rule, branch) {
        Mode::Off => return None,
        Mode::Warn => Severity::Warning,
        Mode::Enforce => Severity::Error,
    };
    Some(Finding { rule: rule.into(), severity, message, fix: Some(fix.into()) })
}

fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}

/// Decides a push. `bypass` is the break-glass reason, if one was given.
pub fn decide(
    repo: &Repo,
    policy: &Policy,
    updates: &[RefUpdate],
    side: &Side,
    pusher: Pusher,
    bypass: Option<String>,
) -> Result<PushDecision, RangeError> {
    let refs_before: Vec<(String, String)> = repo.refs()?;
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
    let mut signatures = SignatureChecker::from_policy(policy, Some(repo));
    let mut decisions = Vec::new();
    for u in updates {
        let branch = policy.branch_rule(&u.refname);
        let mut findings = Vec::new();
        let mut push = |f: Option<Finding>| findings.extend(f);
        if u.is_delete() {
            if branch.is_some_and(|b| b.forbid_deletion) {
                push(finding(
                    policy,
                    branch,
                    "branches.deletion",
                    format!("{} may not be deleted", u.refname),
                    "ask an admin to change the [[branches]] rule, or push to another ref",
                ));
            }
            decisions.push(RefDecision { update: u.clone(), findings, commits: Vec::new() });
            continue;
        }
        if let (Some(b), Some(who)) = (branch, &pusher.identity) {
            if let Some(allowed) = &b.allowed_pushers {
                if !identity_matches(who, allowed) {
                    push(finding(
                        policy,
                        branch,
                        "branches.pusher",
                        format!("{who} may not push to {}", u.refname),
                        "ask someone listed in allowed_pushers to push it, or open a pull request",
                    ));
                }
            }
        } else if let (Some(b), None) = (branch, &pusher.identity) {
            if b.allowed_pushers.is_some() {
                push(finding(
                    policy,
                    branch,
                    "branches.pusher",
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
                push(finding(
                    policy,
                    branch,
                    "branches.signed-tags",
                    format!("{} is a lightweight tag; a signed annotated tag is required", u.refname),
                    "create it with `git tag -s NAME` and push again",
                ));
            } else {
                let (payload, sig) = match split_signed(&raw) {
                    Some((p, s)) => (p, Some(s)),
                    None => (&raw[..], None),
                };
                let v = signatures.check(sig, payload, 0);
                if v.status != SignatureStatus::Good {
                    push(finding(
                        policy,
                        branch,
                        "branches.signed-tags",
                        format!("tag {} signature {}: {}", u.refname, v.status.as_str(), v.detail.unwrap_or_default()),
                        "sign the tag with a pinned key: `git tag -f -s NAME` and push again",
                    ));
                }
            }
        }
        let Some(tip) = tip else {
            decisions.push(RefDecision { update: u.clone(), findings, commits: Vec::new() });
            continue;
        };
        // Force push: the old value must be an ancestor of the new one.
        let old_known = !u.is_create() && repo.resolve_commit(&u.old).is_ok();
        if branch.is_some_and(|b| b.forbid_force_push) && old_known && !repo.is_ancestor(&u.old, &tip)? {
            push(finding(
                policy,
                branch,
                "branches.force-push",
                format!("{} would be rewritten: {} is not an ancestor of {}", u.refname, short(&u.old), short(&tip)),
                "rebase onto the current tip instead of force-pushing (`git pull --rebase`, then push)",
            ));
        }
        // Which commits does this update bring?
        let mut hide: Vec<String> = baseline.clone();
        match side {
            Side::Server if branch.is_some() => {
                // Protected: everything in old..new, even commits already on other branches.
                if old_known {
                    hide.push(u.old.clone());
                } else {
                    hide.extend(commit_tips(&mut refs_before.iter().filter(|(n, _)| policy.branch_rule(n).is_some())));
                }
            }
            Side::Server => hide.extend(commit_tips(&mut refs_before.iter())),
            Side::Client { remote } => {
                let prefix = format!("refs/remotes/{remote}/");
                hide.extend(commit_tips(&mut refs_before.iter().filter(|(n, _)| n.starts_with(&prefix))));
                if old_known {
                    hide.push(u.old.clone());
                }
            }
        }
        let ids = repo.select(std::slice::from_ref(&tip), &hide)?;
        let report = check::check_parallel(repo, policy, &ids, branch)?;
        let mut commits = report.commits;
        if branch.is_some_and(|b| b.require_linear_history) {
            for c in commits.iter().filter(|c| c.parents > 1) {
                push(finding(
                    policy,
                    branch,
                    "branches.linear-history",
                    format!("merge commit {} ({}) on {}", short(&c.id), c.subject, u.refname),
                    "rebase instead of merging (`git rebase`), or squash the merge",
                ));
            }
        }
        // A change to the policy file on a protected ref needs a policy admin's signature.
        if branch.is_some() {
            let admins = policy.roles.get("policy-admin").cloned().unwrap_or_default();
            for c in commits.iter_mut() {
                if !changes_policy(repo, &c.id)? {
                    continue;
                }
                let by_admin = c.signature.status == SignatureStatus::Good
                    && (c.signature.identities.iter().any(|i| identity_matches(i, &admins))
                        || c.signature.signer.as_deref().is_some_and(|s| identity_matches(s, &admins)));
                if !by_admin {
                    if let Some(f) = finding(
                        policy,
                        branch,
                        "policy.admin",
                        format!(
                            "changes {DEFAULT_FILE} but is not signed by a policy admin ({})",
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
        decisions.push(RefDecision { update: u.clone(), findings, commits });
    }
    let errors: usize = decisions.iter().map(RefDecision::errors).sum();
    let mut reasons = Vec::new();
    let bypass = bypass.map(|reason| {
        let breakglass = policy.roles.get("breakglass").cloned().unwrap_or_default();
        let allowed = pusher.identity.as_deref().is_some_and(|who| identity_matches(who, &breakglass)) && !reason.is_empty();
        if !allowed {
            reasons.push(format!(
                "break glass refused: {} does not hold the breakglass role{}",
                pusher.identity.as_deref().unwrap_or("an unknown pusher"),
                if reason.is_empty() { " (and no reason was given)" } else { "" }
            ));
        }
        Bypass { reason, allowed }
    });
    let bypassed = bypass.as_ref().is_some_and(|b| b.allowed);
    let accepted = reasons.is_empty() && (errors == 0 || bypassed);
    Ok(PushDecision { accepted, refs: decisions, pusher, bypass, policy_digest: policy.digest.clone(), reasons })
}

/// True when the commit changes the policy file relative to each of its parents.
fn changes_policy(repo: &Repo, id: &str) -> Result<bool, RangeError> {
    let (_, raw) = repo.read_object(id)?;
    let parsed = crate::git::ParsedCommit::parse(&raw, repo.signature_header());
    let mine = repo.path_blob(id, DEFAULT_FILE);
    if parsed.parents.is_empty() {
        return Ok(mine.is_some());
    }
    Ok(parsed.parents.iter().all(|p| repo.path_blob(p, DEFAULT_FILE) != mine))
}
