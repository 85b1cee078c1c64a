//! The audit ledger: one append-only, tamper-evident log (SQLite, one file).
//!
//! Every append is one transaction that writes the entries, the Merkle tree's
//! newly completed subtrees, the projections, and a new signed checkpoint — so
//! when `append` returns, its entries are under a signed tree head and an
//! inclusion proof can be produced at once. The head row is updated with a
//! compare-and-swap on the previous size, and an append refuses to run when the
//! stored tree does not reproduce the last signed root: we never sign a
//! checkpoint that is not consistent with the one before it.

pub mod anchor;
pub mod entry;
pub mod event;
pub mod gap;
pub mod merkle;
pub mod note;
pub mod projection;
pub mod proof;
pub mod query;
pub mod state;
pub mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;

pub use entry::{Entry, NewEntry};
use merkle::{Hash, Subtrees};
use note::{Checkpoint, NoteSigner, NoteVerifier};

/// The newest file format this code reads and writes.
pub const FORMAT_VERSION: i64 = 1;
/// SQLite `application_id` marking a git-audit ledger ("GAUD").
const APPLICATION_ID: i64 = 0x4741_5544;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no ledger at {path}\nHint: create one with `git-audit ledger init`, or name it with --ledger PATH")]
    Missing { path: PathBuf },
    #[error("{path} already exists; not overwriting it")]
    Exists { path: PathBuf },
    #[error("{path} is not a git-audit ledger ({why}); nothing was changed")]
    NotALedger { path: PathBuf, why: String },
    #[error("{path} is a ledger of format version {found}; this git-audit reads up to version {supported}; nothing was changed\nHint: upgrade git-audit")]
    NewerFormat { path: PathBuf, found: i64, supported: i64 },
    #[error("ledger {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("ledger key {path}: {msg}")]
    Key { path: PathBuf, msg: String },
    #[error("ledger {path}: {msg}\nHint: run `git-audit ledger verify` to see what changed")]
    Inconsistent { path: PathBuf, msg: String },
    #[error("no entry with seq {seq}: the ledger holds {size} entries (seq 0..{size})")]
    NoEntry { seq: u64, size: u64 },
    #[error("invalid entry: {0}")]
    BadEntry(String),
    #[error(
        "cannot append to {path}: its signing key {key} is missing\nHint: set `git config audit.ledgerKey PATH`, or run where the key is"
    )]
    NoSigner { path: PathBuf, key: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Where the ledger and its key live.
#[derive(Debug, Clone)]
pub struct LedgerFiles {
    pub db: PathBuf,
    pub key: PathBuf,
}

/// `--ledger PATH`, else `GIT_AUDIT_LEDGER`, else `git config audit.ledger`, else
/// `<git-dir>/audit/ledger.db`; the key: `GIT_AUDIT_LEDGER_KEY` (which
/// `--ledger-key` sets), else `git config audit.ledgerKey`, else next to the
/// ledger with extension `.key`.
pub fn locate(explicit: Option<&Path>, repo: Option<&crate::git::Repo>) -> Option<LedgerFiles> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let db = match explicit.map(Path::to_path_buf).or_else(|| from_env("GIT_AUDIT_LEDGER")) {
        Some(p) => p,
        None => {
            let repo = repo?;
            repo.config_path("audit.ledger").unwrap_or_else(|| repo.git_dir().join("audit").join("ledger.db"))
        }
    };
    let key = from_env("GIT_AUDIT_LEDGER_KEY")
        .or_else(|| repo.and_then(|r| r.config_path("audit.ledgerKey")))
        .unwrap_or_else(|| db.with_extension("key"));
    Some(LedgerFiles { db, key })
}

/// An entry of a typed kind, decoded.
#[derive(Debug, Clone)]
pub struct Recorded<P> {
    pub seq: u64,
    /// Canonical time text (see [`crate::time`]).
    pub time: String,
    pub subject: String,
    pub actor: String,
    pub payload: P,
}

/// Which entries of a kind to read.
#[derive(Debug, Clone, Default)]
pub struct Select<'a> {
    /// Only entries with this subject (uses the subject index).
    pub subject: Option<&'a str>,
    /// Only entries recorded at or after this time.
    pub since: Option<&'a crate::time::Timestamp>,
    /// Newest first, at most this many.
    pub newest: Option<usize>,
}

/// The signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    pub root: Hash,
    /// The signed note holding the checkpoint.
    pub note: String,
}

/// What an append returns: the seqs written and the checkpoint that covers them.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub first_seq: u64,
    pub count: u64,
    pub tree_size: u64,
    pub checkpoint: String,
}

/// A self-contained inclusion proof (what `ledger prove` prints).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Proof {
    pub entry: serde_json::Value,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 hashes, leaf to root.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint of size `tree_size`.
    pub checkpoint: String,
    /// The ledger's verifier key (for reference; check against one you trust).
    pub key: String,
}

pub struct Ledger {
    conn: Connection,
    pub path: PathBuf,
    key_path: PathBuf,
    pub origin: String,
    pub verifier: NoteVerifier,
    signer: Option<NoteSigner>,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite { path: path.to_path_buf(), source }
}

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
    actor TEXT NOT NULL, payload TEXT NOT NULL, leaf BLOB NOT NULL
);
CREATE INDEX entries_subject ON entries (subject, seq);
CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, time TEXT NOT NULL);
";

/// Now, in the canonical text form entries store and hash.
pub(crate) fn now() -> String {
    crate::time::Timestamp::now().canonical()
}

fn configure(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    conn.busy_timeout(Duration::from_secs(60)).map_err(sql(path))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(sql(path))?;
    // An audit log must not lose a committed append, even on power loss.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql(path))?;
    conn.pragma_update(None, "cache_size", -262144).map_err(sql(path))?;
    Ok(())
}

impl Ledger {
    /// Creates a new ledger and its Ed25519 signing key (mode 0600). Refuses to
    /// overwrite either.
    pub fn init(loc: &LedgerFiles, origin: Option<&str>) -> Result<Ledger, LedgerError> {
        for p in [&loc.db, &loc.key] {
            if p.exists() {
                return Err(LedgerError::Exists { path: p.clone() });
            }
        }
        if let Some(parent) = loc.db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| LedgerError::Io { path: parent.to_path_buf(), source })?;
        }
        let origin = match origin {
            Some(o) => o.to_string(),
            None => {
                let mut r = [0u8; 8];
                getrandom::getrandom(&mut r).map_err(|e| LedgerError::Key { path: loc.key.clone(), msg: e.to_string() })?;
                format!("git-audit.local/ledger/{}", hex::encode(r))
            }
        };
        let signer = NoteSigner::generate(&origin).map_err(|e| LedgerError::Key { path: loc.key.clone(), msg: e.to_string() })?;
        write_private(&loc.key, &signer.to_private_string())?;
        let mut conn = Connection::open(&loc.db).map_err(sql(&loc.db))?;
        configure(&conn, &loc.db)?;
        let verifier = signer.verifier();
        let tx = conn.transaction().map_err(sql(&loc.db))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql(&loc.db))?;
        tx.pragma_update(None, "user_version", FORMAT_VERSION).map_err(sql(&loc.db))?;
        tx.execute_batch(SCHEMA).map_err(sql(&loc.db))?;
        tx.execute_batch(projection::SCHEMA).map_err(sql(&loc.db))?;
        for (k, v) in [
            ("format_version", FORMAT_VERSION.to_string()),
            ("origin", origin.clone()),
            ("public_key", verifier.to_string()),
            ("created", now()),
        ] {
            tx.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", params![k, v]).map_err(sql(&loc.db))?;
        }
        let empty = merkle::empty_root();
        let note = sign_checkpoint(&signer, &origin, 0, empty, &loc.key)?;
        tx.execute("INSERT INTO head (id, size, root, note) VALUES (0, 0, ?1, ?2)", params![empty.to_vec(), note]).map_err(sql(&loc.db))?;
        tx.commit().map_err(sql(&loc.db))?;
        Ok(Ledger { conn, path: loc.db.clone(), key_path: loc.key.clone(), origin, verifier, signer: Some(signer) })
    }

    /// Opens an existing ledger. The signing key is loaded when present (it is
    /// needed to append, not to read or verify).
    pub fn open(loc: &LedgerFiles) -> Result<Ledger, LedgerError> {
        let path = &loc.db;
        if !path.exists() {
            return Err(LedgerError::Missing { path: path.clone() });
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| LedgerError::NotALedger { path: path.clone(), why: e.to_string() })?;
        let app: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| LedgerError::NotALedger { path: path.clone(), why: e.to_string() })?;
        if app != APPLICATION_ID {
            return Err(LedgerError::NotALedger {
                path: path.clone(),
                why: format!("SQLite application id {app:#x}, expected {APPLICATION_ID:#x}"),
            });
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql(path))?;
        if version > FORMAT_VERSION {
            return Err(LedgerError::NewerFormat { path: path.clone(), found: version, supported: FORMAT_VERSION });
        }
        configure(&conn, path)?;
        let meta = |k: &str| -> Result<String, LedgerError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get::<_, String>(0))
                .optional()
                .map_err(sql(path))?
                .ok_or_else(|| LedgerError::NotALedger { path: path.clone(), why: format!("no `{k}` in its meta table") })
        };
        conn.execute_batch(projection::SCHEMA).map_err(sql(path))?;
        let origin = meta("origin")?;
        let verifier =
            NoteVerifier::parse(&meta("public_key")?).map_err(|e| LedgerError::NotALedger { path: path.clone(), why: e.to_string() })?;
        let signer = if loc.key.exists() {
            let text = std::fs::read_to_string(&loc.key).map_err(|source| LedgerError::Io { path: loc.key.clone(), source })?;
            let s = NoteSigner::parse(&text).map_err(|e| LedgerError::Key { path: loc.key.clone(), msg: e.to_string() })?;
            if s.verifier() != verifier {
                return Err(LedgerError::Key {
                    path: loc.key.clone(),
                    msg: "this key does not belong to the ledger (its public key differs)".into(),
                });
            }
            Some(s)
        } else {
            None
        };
        Ok(Ledger { conn, path: path.clone(), key_path: loc.key.clone(), origin, verifier, signer })
    }

    fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Creates a state owner's tables where they are missing.
    pub fn state_schema(&self, ddl: &str) -> Result<(), LedgerError> {
        self.conn.execute_batch(ddl).map_err(sql(&self.path))
    }

    /// The rows of a state owner's query.
    pub fn state_rows(&self, s: &state::Statement) -> Result<Vec<Vec<state::Value>>, LedgerError> {
        state::rows(&self.conn, &self.path, s)
    }

    /// Applies state writes in one transaction, with no entries.
    pub fn state_write(&mut self, writes: &[state::Statement]) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(&path))?;
        for w in writes {
            state::execute(&tx, &path, w)?;
        }
        tx.commit().map_err(sql(&path))
    }

    /// Appends entries and applies state writes (cursor moves …) in the same
    /// transaction: they commit together or not at all.
    pub fn append_with_state(&mut self, entries: &[NewEntry], writes: &[state::Statement]) -> Result<Receipt, LedgerError> {
        self.append_with(entries, |tx, _| writes.iter().try_for_each(|w| state::execute_raw(tx, w)))
    }

    /// Appends entries and applies the state writes `then` makes from the
    /// receipt (the seqs and the signed checkpoint that covers them), in the
    /// same transaction: an outbox row naming the seq it reports commits with
    /// that entry or not at all.
    pub fn append_then(
        &mut self,
        entries: &[NewEntry],
        then: impl FnOnce(&Receipt) -> Vec<state::Statement>,
    ) -> Result<Receipt, LedgerError> {
        self.append_with(entries, |tx, receipt| then(receipt).iter().try_for_each(|w| state::execute_raw(tx, w)))
    }

    /// The current signed tree head.
    pub fn head(&self) -> Result<Head, LedgerError> {
        read_head(&self.conn, &self.path)
    }

    /// Appends entries in one transaction and signs the new tree head.
    pub fn append(&mut self, entries: &[NewEntry]) -> Result<Receipt, LedgerError> {
        self.append_with(entries, |_, _| Ok(()))
    }

    /// Like [`Ledger::append`], running `side` (cursor moves, sync state) inside
    /// the same transaction: it commits with the entries or not at all.
    fn append_with(
        &mut self,
        entries: &[NewEntry],
        side: impl FnOnce(&rusqlite::Transaction<'_>, &Receipt) -> rusqlite::Result<()>,
    ) -> Result<Receipt, LedgerError> {
        let signer = self.signer.as_ref().ok_or_else(|| LedgerError::NoSigner { path: self.path.clone(), key: self.key_path.clone() })?;
        for e in entries {
            if !entry::valid_kind(&e.kind) {
                return Err(LedgerError::BadEntry(format!("kind `{}` is not lower-case dotted words (e.g. commit.verified)", e.kind)));
            }
        }
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(&path))?;
        let head = read_head(&tx, &path)?;
        let mut frontier = load_frontier(&tx, &path, head.size)?;
        if fold(&frontier) != head.root {
            return Err(LedgerError::Inconsistent {
                path,
                msg: format!("the stored tree does not reproduce the signed root of size {}; refusing to append", head.size),
            });
        }
        {
            let mut insert_entry = tx
                .prepare_cached("INSERT INTO entries (seq, time, kind, subject, actor, payload, leaf) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .map_err(sql(&path))?;
            let mut insert_node = tx.prepare_cached("INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)").map_err(sql(&path))?;
            let upserts: Vec<String> = projection::TABLES.iter().map(|t| projection::upsert_sql(t)).collect();
            let time = now();
            for (i, e) in entries.iter().enumerate() {
                let seq = head.size + i as u64;
                let payload = entry::canonical_json(&e.payload);
                let bytes = entry::canonical_bytes(seq, &time, &e.kind, &e.subject, &e.actor, &payload);
                let leaf = merkle::leaf_hash(&bytes);
                insert_entry.execute(params![seq as i64, time, e.kind, e.subject, e.actor, payload, leaf.to_vec()]).map_err(sql(&path))?;
                frontier.push((0, leaf));
                while frontier.len() >= 2 && frontier[frontier.len() - 1].0 == frontier[frontier.len() - 2].0 {
                    let (level, right) = frontier.pop().unwrap_or_default();
                    let (_, left) = frontier.pop().unwrap_or_default();
                    let parent = merkle::node_hash(&left, &right);
                    let idx = ((seq + 1) >> (level + 1)) - 1;
                    insert_node.execute(params![level + 1, idx as i64, parent.to_vec()]).map_err(sql(&path))?;
                    frontier.push((level + 1, parent));
                }
                for row in projection::rows(seq, &time, &e.kind, &e.subject, &e.actor, &payload) {
                    let i = projection::TABLES.iter().position(|t| t.name == row.table.name).unwrap_or(0);
                    let mut stmt = tx.prepare_cached(&upserts[i]).map_err(sql(&path))?;
                    stmt.execute(rusqlite::params_from_iter(row.values.iter())).map_err(sql(&path))?;
                }
            }
        }
        let size = head.size + entries.len() as u64;
        let root = fold(&frontier);
        let note = sign_checkpoint(signer, &self.origin, size, root, &self.key_path)?;
        let receipt = Receipt { first_seq: head.size, count: entries.len() as u64, tree_size: size, checkpoint: note };
        side(&tx, &receipt).map_err(sql(&path))?;
        let note = &receipt.checkpoint;
        let swapped = tx
            .execute(
                "UPDATE head SET size = ?1, root = ?2, note = ?3 WHERE id = 0 AND size = ?4",
                params![size as i64, root.to_vec(), note, head.size as i64],
            )
            .map_err(sql(&path))?;
        if swapped != 1 {
            return Err(LedgerError::Inconsistent { path, msg: "the head moved during the append".into() });
        }
        tx.commit().map_err(sql(&path))?;
        Ok(receipt)
    }

    /// Entries of `P`'s kind, decoded into `P`, oldest first (or the newest
    /// few). An entry whose payload does not decode is skipped: the log holds
    /// it, `ledger verify` checks it, queries read only what they understand.
    pub fn events<P: event::Payload>(&self, select: &Select<'_>) -> Result<Vec<Recorded<P>>, LedgerError> {
        let mut query = String::from("SELECT seq, time, subject, actor, payload FROM entries WHERE kind = ?1");
        let mut params: Vec<rusqlite::types::Value> = vec![P::KIND.as_str().to_string().into()];
        if let Some(s) = select.subject {
            params.push(s.to_string().into());
            query.push_str(&format!(" AND subject = ?{}", params.len()));
        }
        if let Some(t) = select.since {
            params.push(t.canonical().into());
            query.push_str(&format!(" AND time >= ?{}", params.len()));
        }
        match select.newest {
            Some(n) => query.push_str(&format!(" ORDER BY seq DESC LIMIT {n}")),
            None => query.push_str(" ORDER BY seq"),
        }
        let mut stmt = self.conn.prepare_cached(&query).map_err(sql(&self.path))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))
            })
            .map_err(sql(&self.path))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, subject, actor, payload) = row.map_err(sql(&self.path))?;
            if let Some(payload) = P::decode(P::KIND.as_str(), &payload) {
                out.push(Recorded { seq: seq as u64, time, subject, actor, payload });
            }
        }
        Ok(out)
    }

    /// The commit a synced deployment deployed (projection `deployments`).
    pub fn deployment_sha(&self, repo: &str, id: i64) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row("SELECT sha FROM deployments WHERE repo = ?1 AND id = ?2", params![repo, id], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))
    }

    /// True when a synced pull request names `sha` (among its commits, as its
    /// merge commit, or through a commit → pulls look-up).
    pub fn commit_linked_to_pulls(&self, repo: &str, sha: &str) -> Result<bool, LedgerError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pr_commits WHERE repo = ?1 AND sha = ?2) OR EXISTS (SELECT 1 FROM pull_requests WHERE repo = ?1 AND merge_commit_sha = ?2) OR EXISTS (SELECT 1 FROM commit_pulls WHERE repo = ?1 AND sha = ?2)",
                params![repo, sha],
                |r| r.get(0),
            )
            .map_err(sql(&self.path))
    }

    /// The last non-zero tip recorded for `refname`: by post-receive
    /// (`ref.updated`) or by an accepted push decision.
    pub fn recorded_tip(&self, refname: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT new FROM ref_updates WHERE ref = ?1 AND (kind = ?2 OR accepted = 1)
                 AND new IS NOT NULL AND trim(new, '0') <> '' ORDER BY seq DESC LIMIT 1",
                [refname, event::Kind::RefUpdated.as_str()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// One entry by seq.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>, LedgerError> {
        self.conn
            .query_row("SELECT seq, time, kind, subject, actor, payload FROM entries WHERE seq = ?1", [seq as i64], row_entry)
            .optional()
            .map_err(sql(&self.path))?
            .transpose()
    }

    /// A self-contained inclusion proof for entry `seq` under the current head.
    pub fn prove(&self, seq: u64) -> Result<Proof, LedgerError> {
        use base64::Engine;
        let head = self.head()?;
        if seq >= head.size {
            return Err(LedgerError::NoEntry { seq, size: head.size });
        }
        let e = self.entry(seq)?.ok_or(LedgerError::NoEntry { seq, size: head.size })?;
        let mut tree = DbTree { conn: &self.conn, path: &self.path };
        let proof = merkle::inclusion_proof(&mut tree, seq, head.size)?;
        Ok(Proof {
            entry: serde_json::to_value(&e).unwrap_or_default(),
            leaf_index: seq,
            tree_size: head.size,
            inclusion_proof: proof.iter().map(|h| base64::engine::general_purpose::STANDARD.encode(h)).collect(),
            checkpoint: head.note,
            key: self.verifier.to_string(),
        })
    }

    /// The root of the first `size` entries, from the stored tree.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        merkle::root(&mut DbTree { conn: &self.conn, path: &self.path }, size)
    }

    /// A consistency proof between two sizes, from the stored tree.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        merkle::consistency_proof(&mut DbTree { conn: &self.conn, path: &self.path }, old, new)
    }

    /// Keeps the current signed checkpoint in the history table and returns it.
    pub fn checkpoint(&self) -> Result<Head, LedgerError> {
        let head = self.head()?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO checkpoints (size, root, note, time) VALUES (?1, ?2, ?3, ?4)",
                params![head.size as i64, head.root.to_vec(), head.note, now()],
            )
            .map_err(sql(&self.path))?;
        Ok(head)
    }

    /// Writes every entry as one JSON object per line.
    pub fn export_jsonl(&self, out: &mut dyn Write) -> Result<u64, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, time, kind, subject, actor, payload, leaf FROM entries ORDER BY seq")
            .map_err(sql(&self.path))?;
        let mut rows = stmt.query([]).map_err(sql(&self.path))?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(sql(&self.path))? {
            let e = row_entry(row).map_err(sql(&self.path))??;
            let leaf: Vec<u8> = row.get(6).map_err(sql(&self.path))?;
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            v["leaf_hash"] = serde_json::Value::String(hex::encode(leaf));
            writeln!(out, "{v}").map_err(|source| LedgerError::Io { path: PathBuf::from("<output>"), source })?;
            n += 1;
        }
        Ok(n)
    }

    /// Rebuilds every projection from the log, in one transaction.
    pub fn rebuild(&mut self) -> Result<u64, LedgerError> {
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(&path))?;
        for t in projection::TABLES {
            tx.execute(&format!("DELETE FROM {}", t.name), []).map_err(sql(&path))?;
        }
        let upserts: Vec<String> = projection::TABLES.iter().map(|t| projection::upsert_sql(t)).collect();
        let mut n = 0;
        {
            let mut stmt = tx.prepare("SELECT seq, time, kind, subject, actor, payload FROM entries ORDER BY seq").map_err(sql(&path))?;
            let mut rows = stmt.query([]).map_err(sql(&path))?;
            while let Some(row) = rows.next().map_err(sql(&path))? {
                let e = row_entry(row).map_err(sql(&path))??;
                for r in projection::entry_rows(&e) {
                    let i = projection::TABLES.iter().position(|t| t.name == r.table.name).unwrap_or(0);
                    tx.prepare_cached(&upserts[i])
                        .map_err(sql(&path))?
                        .execute(rusqlite::params_from_iter(r.values.iter()))
                        .map_err(sql(&path))?;
                }
                n += 1;
            }
        }
        tx.commit().map_err(sql(&path))?;
        Ok(n)
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), LedgerError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| LedgerError::Io { path: parent.to_path_buf(), source })?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| LedgerError::Io { path: path.to_path_buf(), source })?;
    f.write_all(format!("{text}\n").as_bytes()).map_err(|source| LedgerError::Io { path: path.to_path_buf(), source })
}

fn sign_checkpoint(signer: &NoteSigner, origin: &str, size: u64, root: Hash, key: &Path) -> Result<String, LedgerError> {
    signer
        .sign(&Checkpoint { origin: origin.to_string(), size, root }.to_text())
        .map_err(|e| LedgerError::Key { path: key.to_path_buf(), msg: e.to_string() })
}

fn read_head(conn: &Connection, path: &Path) -> Result<Head, LedgerError> {
    let (size, root, note): (i64, Vec<u8>, String) = conn
        .query_row("SELECT size, root, note FROM head WHERE id = 0", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql(path))?;
    let root: Hash = root
        .try_into()
        .map_err(|_| LedgerError::Inconsistent { path: path.to_path_buf(), msg: "the head's root is not 32 bytes".into() })?;
    Ok(Head { size: size.max(0) as u64, root, note })
}

/// Reads an entry row `(seq, time, kind, subject, actor, payload)`.
fn row_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Entry, LedgerError>> {
    let seq: i64 = row.get(0)?;
    let text = |i: usize| -> rusqlite::Result<Option<String>> {
        Ok(row.get_ref(i)?.as_bytes().ok().and_then(|b| std::str::from_utf8(b).ok()).map(str::to_string))
    };
    let (Some(time), Some(kind), Some(subject), Some(actor), Some(payload)) = (text(1)?, text(2)?, text(3)?, text(4)?, text(5)?) else {
        return Ok(Err(LedgerError::BadEntry(format!("entry seq {seq} holds text that is not UTF-8"))));
    };
    let payload = match serde_json::from_str(&payload) {
        Ok(p) => p,
        Err(e) => return Ok(Err(LedgerError::BadEntry(format!("entry seq {seq}: payload is not JSON: {e}")))),
    };
    Ok(Ok(Entry { seq: seq.max(0) as u64, time, kind, subject, actor, payload }))
}

/// Complete subtrees read from the database: level 0 from `entries.leaf`.
pub struct DbTree<'c> {
    pub conn: &'c Connection,
    pub path: &'c Path,
}

impl Subtrees for DbTree<'_> {
    type Error = LedgerError;
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let found: Option<Vec<u8>> = if level == 0 {
            self.conn
                .prepare_cached("SELECT leaf FROM entries WHERE seq = ?1")
                .and_then(|mut s| s.query_row([index as i64], |r| r.get(0)).optional())
        } else {
            self.conn
                .prepare_cached("SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2")
                .and_then(|mut s| s.query_row(params![level, index as i64], |r| r.get(0)).optional())
        }
        .map_err(sql(self.path))?;
        found.and_then(|h| h.try_into().ok()).ok_or_else(|| LedgerError::Inconsistent {
            path: self.path.to_path_buf(),
            msg: format!("tree node (level {level}, index {index}) is missing or malformed"),
        })
    }
}

/// The complete subtrees that make up a tree of `size` leaves, largest first.
fn load_frontier(conn: &Connection, path: &Path, size: u64) -> Result<Vec<(u32, Hash)>, LedgerError> {
    let mut tree = DbTree { conn, path };
    let mut out = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            out.push((level, tree.subtree(level, start >> level)?));
            start += 1u64 << level;
        }
    }
    Ok(out)
}

/// The root of the tree whose complete subtrees are `frontier` (largest first).
fn fold(frontier: &[(u32, Hash)]) -> Hash {
    let mut iter = frontier.iter().rev();
    let Some((_, last)) = iter.next() else {
        return merkle::empty_root();
    };
    iter.fold(*last, |acc, (_, left)| merkle::node_hash(left, &acc))
}
