//! The deployment history: every deployment with its final state, its
//! approvals, the Actions runs behind it and the records a CI made of it —
//! read from the projections once per command or request, and shared by
//! every report and page that needs it (`report deployments`, `dora`,
//! `compliance`, the dashboard).
//!
//! The questions only git can answer (which commits a deployment shipped,
//! whether the next one rolled it back) are answered here too, over a slice
//! of the history, so every report answers them the same way.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::git::Repo;
pub use crate::ledger::query::{Deployment, DeploymentApproval, DeploymentKey, RecordHistory};
use crate::ledger::{Ledger, LedgerError};
use crate::time::Timestamp;

/// Whether an environment matches `pattern` (the edges check patterns first:
/// [`crate::policy::check_environment_pattern`]).
pub fn matcher(pattern: &str) -> impl Fn(&str) -> bool + '_ {
    let glob = crate::policy::environment_glob(pattern).ok();
    move |env: &str| match &glob {
        Some(g) => g.is_match(env),
        None => env == pattern,
    }
}

/// Every deployment and what is known of it, read once.
#[derive(Debug, Clone, Default)]
pub struct DeploymentHistory {
    /// Every deployment, oldest first, with its final state (an `inactive`
    /// status — superseded — does not replace how it ended).
    pub all: Vec<Deployment>,
    /// Approvals by deployment (repository, id): synced reviews, recorded approvers.
    /// Keyed by repository too: two forges' id spaces overlap.
    pub approvals: HashMap<DeploymentKey, Vec<DeploymentApproval>>,
    /// The Actions run behind a deployment: (triggering actor, its entry's seq).
    pub runs: HashMap<DeploymentKey, (Option<String>, u64)>,
    /// What CI systems recorded of a deployment, first claims and corrections.
    pub recorded: HashMap<DeploymentKey, RecordHistory>,
    /// Deployments whose approvals GitHub no longer returns (unknown, not none).
    pub unknown_approvals: HashSet<DeploymentKey>,
}

impl DeploymentHistory {
    pub fn read(ledger: &Ledger) -> Result<DeploymentHistory, LedgerError> {
        Ok(DeploymentHistory {
            all: ledger.deployments()?,
            approvals: ledger.deployment_approvals()?,
            runs: ledger.deployment_runs()?,
            recorded: ledger.recorded_histories()?,
            unknown_approvals: ledger.deployments_with_unknown_approvals()?,
        })
    }

    /// Deployments to environments matching `env` (a pattern, as in
    /// `[[environments]]`: see [`crate::policy::environment_glob`]), oldest
    /// first, all times. A pattern that is not one matches only itself.
    pub fn in_env(&self, env: &str) -> Vec<Deployment> {
        let m = matcher(env);
        self.all.iter().filter(|d| m(&d.environment)).cloned().collect()
    }

    /// Every environment deployed to.
    pub fn environments(&self) -> BTreeSet<String> {
        self.all.iter().map(|d| d.environment.clone()).collect()
    }

    /// When the newest deployment to `env` (a glob) was made, by its own time.
    pub fn newest(&self, env: &str) -> Option<Timestamp> {
        let m = matcher(env);
        self.all.iter().filter(|d| m(&d.environment)).filter_map(|d| Timestamp::parse(&d.time).ok()).max()
    }

    /// A deployment's page (its run, CI job or status log), by the id people use.
    pub fn pages(&self) -> HashMap<String, String> {
        self.all.iter().filter_map(|d| d.url.clone().map(|u| (d.name.clone(), u))).collect()
    }
}

/// The commits deployment `i` shipped: reachable from its sha and not from the
/// previous successful deployment to the same environment. `None` when git
/// does not have the commits (fetch them).
pub fn shipped(repo: Option<&Repo>, all: &[Deployment], i: usize) -> Option<(Option<String>, Vec<String>)> {
    let d = all.get(i)?;
    let repo = repo?;
    repo.resolve_commit(&d.sha).ok()?;
    let previous = all
        .get(..i)?
        .iter()
        .rev()
        .find(|p| p.environment == d.environment && p.repository == d.repository && p.status.succeeded())
        .map(|p| p.sha.clone());
    let hide: Vec<String> = previous.iter().filter(|p| repo.resolve_commit(p).is_ok()).cloned().collect();
    let ids = repo.select(std::slice::from_ref(&d.sha), &hide).ok()?;
    Some((previous, ids))
}

/// The deployment that rolled `all[i]` back: the next deployment of the same
/// repository to the same environment, when it went to an earlier commit (an
/// ancestor of this one's). DORA counts the rolled-back one as failed.
pub fn rolled_back_by<'a>(repo: Option<&Repo>, all: &'a [Deployment], i: usize) -> Option<&'a Deployment> {
    let d = all.get(i)?;
    let next = all.get(i + 1..)?.iter().find(|n| n.environment == d.environment && n.repository == d.repository)?;
    (next.sha != d.sha && repo.is_some_and(|r| r.is_ancestor(&next.sha, &d.sha).unwrap_or(false))).then_some(next)
}

/// True when whether `all[i]` was rolled back cannot be told: a later
/// deployment to its environment went to another commit, and git cannot say
/// whether that one is an ancestor (no repository, or a commit not in it).
pub fn rollback_unknown(repo: Option<&Repo>, all: &[Deployment], i: usize) -> bool {
    let Some(d) = all.get(i) else { return false };
    let Some(next) = all.get(i + 1..).and_then(|r| r.iter().find(|n| n.environment == d.environment && n.repository == d.repository))
    else {
        return false;
    };
    next.sha != d.sha && repo.is_none_or(|r| r.resolve_commit(&d.sha).is_err() || r.resolve_commit(&next.sha).is_err())
}

/// The deployment `all[i]` rolled back, if it was a rollback.
pub fn rollback_of<'a>(repo: Option<&Repo>, all: &'a [Deployment], i: usize) -> Option<&'a Deployment> {
    let d = all.get(i)?;
    let j = all.get(..i)?.iter().rposition(|p| p.environment == d.environment && p.repository == d.repository)?;
    rolled_back_by(repo, all, j).filter(|n| std::ptr::eq(*n, d)).map(|_| &all[j])
}
