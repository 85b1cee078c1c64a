//! The verdict cache: a signature judged once under a policy is not judged
//! again. Keyed by SHA-256 over (policy digest, signature, signed bytes) — the
//! policy digest covers the policy text and every key file it pins, so any
//! policy or key change misses. A verdict that could change with time (a
//! pinned key expires later) is kept only until that moment.
//!
//! It lives in `$XDG_CACHE_HOME/git-audit/verdicts.db` (or `~/.cache/…`), used
//! only when that folder is ours and private (0700), since a planted "good"
//! would be believed. It is disposable: SQLite in WAL mode without fsync,
//! safe for concurrent hooks; `git-audit verify --no-cache` (or
//! `GIT_AUDIT_NO_CACHE=1` for any command, the hooks too) bypasses it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::Verdict;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns the cache off for this process (`--no-cache`).
pub fn disable() {
    DISABLED.store(true, Ordering::SeqCst);
}

/// What is stored: the verdict and the identities it binds (not serialised in reports).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    verdict: Verdict,
    identities: Vec<String>,
}

pub struct VerdictCache {
    conn: Connection,
    scope: String,
    pending: Vec<([u8; 32], String, Option<i64>)>,
}

impl VerdictCache {
    /// The cache for verdicts under the policy with `digest`; `None` when
    /// disabled or when there is no private cache folder.
    pub fn open(digest: &str) -> Option<VerdictCache> {
        if DISABLED.load(Ordering::SeqCst) || std::env::var_os("GIT_AUDIT_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0") {
            return None;
        }
        let dir = private_dir()?;
        let conn = Connection::open(dir.join("verdicts.db")).ok()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
             CREATE TABLE IF NOT EXISTS verdicts (key BLOB PRIMARY KEY, verdict TEXT NOT NULL, valid_until INTEGER) WITHOUT ROWID;",
        )
        .ok()?;
        Some(VerdictCache { conn, scope: digest.to_string(), pending: Vec::new() })
    }

    pub fn key(&self, signature: &[u8], payload: &[u8], signed_at: i64) -> [u8; 32] {
        let mut h = Sha256::new();
        // The verdict scheme: bumped when what a verdict says changes for the same
        // inputs (v2: lenient MPIs, named weak algorithms, one packet per block).
        for part in [b"verdicts-v2".as_slice(), self.scope.as_bytes(), signature, payload, &signed_at.to_be_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// A verdict stored for `key` that is still good now.
    pub fn get(&self, key: &[u8; 32]) -> Option<Verdict> {
        let now = chrono::Utc::now().timestamp();
        let row: Option<(String, Option<i64>)> = self
            .conn
            .prepare_cached("SELECT verdict, valid_until FROM verdicts WHERE key = ?1")
            .ok()?
            .query_row(params![&key[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .ok()?;
        let (text, until) = row?;
        if until.is_some_and(|u| now >= u) {
            return None;
        }
        let stored: Stored = serde_json::from_str(&text).ok()?;
        let mut v = stored.verdict;
        v.identities = stored.identities;
        Some(v)
    }

    /// Keeps `verdict` (written with the others when the cache is dropped).
    pub fn put(&mut self, key: [u8; 32], verdict: &Verdict, valid_until: Option<i64>) {
        let stored = Stored { verdict: verdict.clone(), identities: verdict.identities.clone() };
        if let Ok(text) = serde_json::to_string(&stored) {
            self.pending.push((key, text, valid_until));
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Ok(tx) = self.conn.unchecked_transaction() else { return };
        for (key, text, until) in self.pending.drain(..) {
            let _ = tx
                .prepare_cached("INSERT OR REPLACE INTO verdicts (key, verdict, valid_until) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![&key[..], text, until]));
        }
        let _ = tx.commit();
    }
}

impl Drop for VerdictCache {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `$XDG_CACHE_HOME/git-audit` (or `~/.cache/git-audit`), created 0700; only
/// when it is a folder of ours that nobody else can write.
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
        .join("git-audit");
    if !base.exists() {
        std::fs::create_dir_all(&base).ok()?;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).ok()?;
    }
    let m = std::fs::metadata(&base).ok()?;
    (m.is_dir() && m.uid() == current_uid()? && m.permissions().mode() & 0o077 == 0).then_some(base)
}

/// This process's effective uid, from a file it just made.
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    tempfile::NamedTempFile::new().ok().and_then(|f| f.as_file().metadata().ok()).map(|m| m.uid())
}
