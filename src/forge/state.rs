//! The sync worker's own state, beside the log in the ledger's database but not
//! part of it: the HTTP cache (ETags, bodies, next-page links), cursors, the
//! digests of what was already recorded, and deployments still to re-poll. This
//! module owns these tables — their schema and every statement on them — and
//! hands the statements to the ledger's storage as plain values.

use std::sync::Mutex;

use super::rest::{CachedPage, HttpCache};
use crate::ledger::state::{StateHandle, Statement, Value};
use crate::ledger::{Ledger, LedgerError, LedgerFiles};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS http_cache (url TEXT PRIMARY KEY, etag TEXT NOT NULL, body BLOB NOT NULL, next TEXT, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_cursors (repo TEXT NOT NULL, entity TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (repo, entity));
CREATE TABLE IF NOT EXISTS sync_seen (kind TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_pending (repo TEXT NOT NULL, deployment_id INTEGER NOT NULL, PRIMARY KEY (repo, deployment_id));
";

/// Creates the tables where they are missing (ledgers made before this code have them).
pub fn ensure(ledger: &Ledger) -> Result<(), LedgerError> {
    ledger.state_schema(SCHEMA)
}

fn first_text(rows: Vec<Vec<Value>>) -> Option<String> {
    rows.into_iter().next().and_then(|r| r.into_iter().next()).and_then(|v| v.as_text().map(str::to_string))
}

/// A cursor (`since` of pull requests, last deployment id …) of a repository.
pub fn cursor(ledger: &Ledger, repo: &str, entity: &str) -> Result<Option<String>, LedgerError> {
    let q = Statement::new("SELECT value FROM sync_cursors WHERE repo = ?1 AND entity = ?2", vec![repo.into(), entity.into()]);
    Ok(first_text(ledger.state_rows(&q)?))
}

/// The digest of what was last recorded for `key` of `kind`.
pub fn seen(ledger: &Ledger, kind: &str, key: &str) -> Result<Option<String>, LedgerError> {
    let q = Statement::new("SELECT digest FROM sync_seen WHERE kind = ?1 AND key = ?2", vec![kind.into(), key.into()]);
    Ok(first_text(ledger.state_rows(&q)?))
}

/// Deployments of `repo` whose status was not final at the last pass.
pub fn pending(ledger: &Ledger, repo: &str) -> Result<Vec<i64>, LedgerError> {
    let q = Statement::new("SELECT deployment_id FROM sync_pending WHERE repo = ?1 ORDER BY deployment_id", vec![repo.into()]);
    Ok(ledger.state_rows(&q)?.into_iter().filter_map(|r| r.first().and_then(Value::as_int)).collect())
}

/// State that moves with a batch of entries, in the same transaction.
#[derive(Debug, Default)]
pub struct Writes {
    pub seen: Vec<(String, String, String)>,
    pub cursors: Vec<(String, String, String)>,
    pub pending_add: Vec<(String, i64)>,
    pub pending_del: Vec<(String, i64)>,
}

impl Writes {
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.cursors.is_empty() && self.pending_add.is_empty() && self.pending_del.is_empty()
    }

    /// The statements that make these writes.
    pub fn statements(&self) -> Vec<Statement> {
        let mut out = Vec::new();
        for (kind, key, d) in &self.seen {
            out.push(Statement::new(
                "INSERT INTO sync_seen (kind, key, digest) VALUES (?1, ?2, ?3) ON CONFLICT (kind, key) DO UPDATE SET digest = excluded.digest",
                vec![kind.clone().into(), key.clone().into(), d.clone().into()],
            ));
        }
        for (repo, entity, value) in &self.cursors {
            out.push(Statement::new(
                "INSERT INTO sync_cursors (repo, entity, value) VALUES (?1, ?2, ?3) ON CONFLICT (repo, entity) DO UPDATE SET value = excluded.value",
                vec![repo.clone().into(), entity.clone().into(), value.clone().into()],
            ));
        }
        for (repo, id) in &self.pending_add {
            out.push(Statement::new(
                "INSERT INTO sync_pending (repo, deployment_id) VALUES (?1, ?2) ON CONFLICT (repo, deployment_id) DO NOTHING",
                vec![repo.clone().into(), (*id).into()],
            ));
        }
        for (repo, id) in &self.pending_del {
            out.push(Statement::new(
                "DELETE FROM sync_pending WHERE repo = ?1 AND deployment_id = ?2",
                vec![repo.clone().into(), (*id).into()],
            ));
        }
        out
    }
}

/// ETag'd bodies, on a state handle of their own (the client reads and writes
/// them from its tasks, outside any append).
pub struct HttpCacheTable {
    state: Mutex<StateHandle>,
}

impl HttpCacheTable {
    pub fn open(files: &LedgerFiles) -> Result<HttpCacheTable, LedgerError> {
        Ok(HttpCacheTable { state: Mutex::new(StateHandle::open(files, SCHEMA)?) })
    }
}

impl HttpCache for HttpCacheTable {
    fn get(&self, url: &str) -> Result<Option<CachedPage>, String> {
        let s = self.state.lock().map_err(|_| "cache lock poisoned".to_string())?;
        let q = Statement::new("SELECT etag, body, next FROM http_cache WHERE url = ?1", vec![url.into()]);
        let rows = s.rows(&q).map_err(|e| e.to_string())?;
        Ok(rows.into_iter().next().map(|r| {
            let mut r = r.into_iter();
            let etag = r.next().and_then(|v| v.as_text().map(str::to_string)).unwrap_or_default();
            let body = match r.next() {
                Some(Value::Blob(b)) => b,
                Some(Value::Text(t)) => t.into_bytes(),
                _ => Vec::new(),
            };
            let next = r.next().and_then(|v| v.as_text().map(str::to_string));
            CachedPage { etag, body, next }
        }))
    }

    fn put(&self, url: &str, page: &CachedPage) -> Result<(), String> {
        let s = self.state.lock().map_err(|_| "cache lock poisoned".to_string())?;
        s.execute(&Statement::new(
            "INSERT INTO http_cache (url, etag, body, next, time) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, body = excluded.body, next = excluded.next, time = excluded.time",
            vec![
                url.into(),
                page.etag.clone().into(),
                page.body.clone().into(),
                page.next.clone().into(),
                crate::time::Timestamp::now().canonical().into(),
            ],
        ))
        .map_err(|e| e.to_string())
    }
}
