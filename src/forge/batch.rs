//! What every forge's sync shares: batches of entries that commit together
//! with the sync state covering them (cursors, digests of what was recorded),
//! so a pass is resumable and idempotent whichever forge it reads.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::rest::ClientError;
use super::state;
use crate::event::Kind;
use crate::ledger::{entry::canonical_json, Ledger, LedgerError, NewEntry};

/// Pull requests updated this long before the cursor are listed again: items
/// move between pages while we page under `sort=updated`.
pub const OVERLAP_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Other(String),
}

/// What one pass did for one repository.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RepoSummary {
    pub repository: String,
    /// Objects fetched this pass (new, changed or not).
    pub fetched_pull_requests: u64,
    pub fetched_deployments: u64,
    pub pull_requests: u64,
    pub reviews: u64,
    pub deployments: u64,
    pub deployment_statuses: u64,
    pub commit_links: u64,
    pub approvals: u64,
    pub new_entries: u64,
    /// Changes whose commit list hit the forge's cap.
    pub capped_pull_requests: Vec<u64>,
    /// A forge's own audit log entries recorded (GitLab's audit events).
    pub audit_events: u64,
    /// CI runs recorded behind deployments (Gitea and Forgejo Actions).
    pub runs: u64,
    /// What the operator should know of this pass that did not stop it.
    pub notes: Vec<String>,
    pub interrupted: bool,
}

pub fn digest(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(v).as_bytes()))
}

pub fn cursor(ledger: &Mutex<Ledger>, repo: &str, entity: &str) -> Result<Option<String>, SyncError> {
    let l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
    state::cursor(&l, repo, entity).map_err(|e| SyncError::Other(format!("reading the {entity} cursor of {repo}: {e}")))
}

pub fn seen(ledger: &Mutex<Ledger>, kind: &str, key: &str) -> Result<Option<String>, SyncError> {
    let l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
    state::seen(&l, kind, key).map_err(|e| SyncError::Other(format!("reading sync state: {e}")))
}

/// A batch of entries and the sync state that commits with them.
#[derive(Default)]
pub struct Batch {
    pub entries: Vec<NewEntry>,
    pub state: state::Writes,
}

impl Batch {
    /// Adds the entry unless an identical object was already recorded.
    pub fn add(
        &mut self,
        ledger: &Mutex<Ledger>,
        kind: Kind,
        key: String,
        subject: String,
        actor: String,
        payload: Value,
    ) -> Result<bool, SyncError> {
        let kind = kind.as_str();
        let d = digest(&payload);
        if seen(ledger, kind, &key)?.as_deref() == Some(d.as_str())
            || self.state.seen.iter().any(|(k, kk, dd)| k == kind && *kk == key && *dd == d)
        {
            return Ok(false);
        }
        self.state.seen.push((kind.to_string(), key, d));
        self.entries.push(NewEntry::new(kind, subject, actor, payload));
        Ok(true)
    }

    pub fn commit(self, ledger: &Mutex<Ledger>) -> Result<u64, SyncError> {
        if self.entries.is_empty() && self.state.is_empty() {
            return Ok(0);
        }
        let n = self.entries.len() as u64;
        let mut l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
        let writes = self.state.statements();
        if n == 0 {
            // State only (a cursor move): no new checkpoint needed.
            l.state_write(&writes)?;
            return Ok(0);
        }
        l.append_with_state(&self.entries, &writes)?;
        Ok(n)
    }
}

/// A pass's outcome: an interruption (SIGTERM) ends it early but cleanly —
/// the summary says so and the next run resumes from the cursors.
pub fn finished(mut sum: RepoSummary, result: Result<(), SyncError>) -> Result<RepoSummary, SyncError> {
    match result {
        Err(SyncError::Client(ClientError::Interrupted)) => {
            sum.interrupted = true;
            Ok(sum)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(sum),
    }
}

/// `commit_pulls.synced`: the changes a landed commit came in (none: pushed directly).
pub fn commit_pulls(repo: &str, sha: &str, numbers: &[u64]) -> Value {
    serde_json::json!({"repository": repo, "sha": sha, "pulls": numbers, "direct_push": numbers.is_empty()})
}

/// True when `value` is past the cursor (or there is none).
pub fn cursor_is_behind(cursor: Option<&str>, value: &str) -> bool {
    cursor.is_none_or(|c| c < value)
}
