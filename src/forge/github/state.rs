//! The sync worker's own state, beside the log in the ledger's database but not
//! part of it: the HTTP cache (ETags, bodies, next-page links), cursors, the
//! digests of what was already recorded, and deployments still to re-poll. This
//! module owns these tables: their schema and every query on them.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::client::{CachedPage, HttpCache};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS http_cache (url TEXT PRIMARY KEY, etag TEXT NOT NULL, body BLOB NOT NULL, next TEXT, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_cursors (repo TEXT NOT NULL, entity TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (repo, entity));
CREATE TABLE IF NOT EXISTS sync_seen (kind TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_pending (repo TEXT NOT NULL, deployment_id INTEGER NOT NULL, PRIMARY KEY (repo, deployment_id));
";

/// Creates the tables where they are missing (ledgers made before this code have them).
pub fn ensure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// A cursor (`since` of pull requests, last deployment id …) of a repository.
pub fn cursor(conn: &Connection, repo: &str, entity: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM sync_cursors WHERE repo = ?1 AND entity = ?2", params![repo, entity], |r| r.get(0)).optional()
}

/// The digest of what was last recorded for `key` of `kind`.
pub fn seen(conn: &Connection, kind: &str, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT digest FROM sync_seen WHERE kind = ?1 AND key = ?2", params![kind, key], |r| r.get(0)).optional()
}

/// Deployments of `repo` whose status was not final at the last pass.
pub fn pending(conn: &Connection, repo: &str) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT deployment_id FROM sync_pending WHERE repo = ?1 ORDER BY deployment_id")?;
    let ids = stmt.query_map([repo], |r| r.get(0))?.collect();
    ids
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

    pub fn apply(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for (kind, key, d) in &self.seen {
            tx.execute(
                "INSERT INTO sync_seen (kind, key, digest) VALUES (?1, ?2, ?3) ON CONFLICT (kind, key) DO UPDATE SET digest = excluded.digest",
                params![kind, key, d],
            )?;
        }
        for (repo, entity, value) in &self.cursors {
            tx.execute(
                "INSERT INTO sync_cursors (repo, entity, value) VALUES (?1, ?2, ?3) ON CONFLICT (repo, entity) DO UPDATE SET value = excluded.value",
                params![repo, entity, value],
            )?;
        }
        for (repo, id) in &self.pending_add {
            tx.execute("INSERT OR IGNORE INTO sync_pending (repo, deployment_id) VALUES (?1, ?2)", params![repo, id])?;
        }
        for (repo, id) in &self.pending_del {
            tx.execute("DELETE FROM sync_pending WHERE repo = ?1 AND deployment_id = ?2", params![repo, id])?;
        }
        Ok(())
    }
}

/// ETag'd bodies, on a connection of their own to the ledger's database.
pub struct HttpCacheTable {
    conn: Mutex<Connection>,
}

impl HttpCacheTable {
    pub fn open(db: &std::path::Path) -> rusqlite::Result<HttpCacheTable> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        ensure(&conn)?;
        Ok(HttpCacheTable { conn: Mutex::new(conn) })
    }
}

impl HttpCache for HttpCacheTable {
    fn get(&self, url: &str) -> Result<Option<CachedPage>, String> {
        let c = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        c.query_row("SELECT etag, body, next FROM http_cache WHERE url = ?1", [url], |r| {
            Ok(CachedPage { etag: r.get(0)?, body: r.get(1)?, next: r.get(2)? })
        })
        .optional()
        .map_err(|e| e.to_string())
    }

    fn put(&self, url: &str, page: &CachedPage) -> Result<(), String> {
        let c = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        c.execute(
            "INSERT INTO http_cache (url, etag, body, next, time) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, body = excluded.body, next = excluded.next, time = excluded.time",
            params![url, page.etag, page.body, page.next, crate::time::Timestamp::now().canonical()],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}
