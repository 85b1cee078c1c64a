//! The audit ledger: one append-only, tamper-evident log, in a SQLite file
//! (the embedded default) or a PostgreSQL database shared by many machines.
//!
//! Every append is one transaction that writes the entries, the Merkle tree's
//! newly completed subtrees, the projections, and a new signed checkpoint — so
//! when `append` returns, its entries are under a signed tree head and an
//! inclusion proof can be produced at once. The head row is updated with a
//! compare-and-swap on the previous size, and an append refuses to run when the
//! stored tree does not reproduce the last signed root: we never sign a
//! checkpoint that is not consistent with the one before it. The engines sit
//! behind [`store::Store`]; this module holds the logic, once.

pub mod anchor;
pub mod entry;
pub mod gap;
pub mod ground;
pub mod merkle;
pub mod migrate;
pub mod note;
pub mod projection;
pub mod proof;
pub mod query;
pub mod state;
pub mod store;
pub mod verify;
pub mod writers;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use store::{Begin, Location, PgUrl, Store, StoreError, Tx, Value};

pub use entry::{Entry, NewEntry};
use merkle::{Hash, Subtrees};
use note::{Checkpoint, NoteSigner, NoteVerifier};

/// The newest file format this code reads and writes. Format 2 adds each
/// entry's writer and signature (`entries.writer`, `entries.sig`); a format 1
/// ledger gains the two columns when opened, its entries unchanged.
pub const FORMAT_VERSION: i64 = 2;
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
    #[error("ledger {path}: {cause}")]
    Store { path: PathBuf, cause: StoreError },
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
    #[error(
        "cannot append to {path}: no signing key is named (a PostgreSQL ledger has no file beside it)\nHint: pass --ledger-key PATH, set GIT_AUDIT_LEDGER_KEY, or `git config audit.ledgerKey PATH`"
    )]
    NoKeyNamed { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot append to {path}: the key {key} is neither the ledger's owner key nor a writer's\nHint: the owner adds it with `git-audit ledger writers add NAME --role ROLE --public-key KEY` (or makes a new writer and key with `--key-out FILE`)"
    )]
    NotAWriter { path: PathBuf, key: PathBuf },
    #[error(
        "cannot append to {path}: writer `{writer}` may not write `{kind}` entries (it writes: {allowed})\nHint: each job appends with a writer key of its own: the owner makes one with `git-audit ledger writers add NAME --role hooks|sync|ci|operator --key-out FILE`, and the job runs with GIT_AUDIT_LEDGER_KEY=FILE (see `git-audit ledger writers list`)"
    )]
    NotItsKind { path: PathBuf, writer: String, kind: String, allowed: String },
}

/// Where the ledger and its key live.
#[derive(Debug, Clone)]
pub struct LedgerFiles {
    /// The SQLite file; for PostgreSQL, the URL without its password (for
    /// messages only).
    pub db: PathBuf,
    /// The checkpoint-signing key (empty when a PostgreSQL ledger names none).
    pub key: PathBuf,
    /// The PostgreSQL database, when the ledger is there.
    pub url: Option<PgUrl>,
    /// Where hooks note decisions they could not record.
    pub spool: PathBuf,
}

impl LedgerFiles {
    /// A SQLite ledger and its key.
    pub fn sqlite(db: PathBuf, key: PathBuf) -> LedgerFiles {
        let spool = db.with_extension("gaps");
        LedgerFiles { db, key, url: None, spool }
    }

    /// A PostgreSQL ledger; `spool_dir` holds the local spool of unrecorded
    /// decisions (the database may be what cannot be reached).
    pub fn postgres(url: PgUrl, key: Option<PathBuf>, spool_dir: &Path) -> LedgerFiles {
        LedgerFiles {
            db: PathBuf::from(url.redacted()),
            key: key.unwrap_or_default(),
            url: Some(url),
            spool: spool_dir.join("ledger.gaps"),
        }
    }

    pub fn location(&self) -> Location {
        match &self.url {
            Some(u) => Location::Postgres(u.clone()),
            None => Location::Sqlite(self.db.clone()),
        }
    }

    /// False only for a SQLite file that is not there (a database server is
    /// asked when the ledger is opened).
    pub fn exists(&self) -> bool {
        self.url.is_some() || self.db.exists()
    }

    /// The value to hand a child process as `GIT_AUDIT_LEDGER` (with the
    /// password: for the environment, never for a command line or a log).
    pub fn secret_location(&self) -> std::ffi::OsString {
        match &self.url {
            Some(u) => u.secret().into(),
            None => self.db.clone().into_os_string(),
        }
    }
}

/// `--ledger PATH|URL`, else `GIT_AUDIT_LEDGER`, else `git config audit.ledger`,
/// else `<git-dir>/audit/ledger.db`; the key: `GIT_AUDIT_LEDGER_KEY` (which
/// `--ledger-key` sets), else `git config audit.ledgerKey`, else (SQLite) next
/// to the ledger with extension `.key`.
pub fn locate(explicit: Option<&Path>, repo: Option<&crate::git::Repo>) -> Option<LedgerFiles> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let db = match explicit.map(Path::to_path_buf).or_else(|| from_env("GIT_AUDIT_LEDGER")) {
        Some(p) => p,
        None => {
            let repo = repo?;
            repo.config_path("audit.ledger").unwrap_or_else(|| repo.git_dir().join("audit").join("ledger.db"))
        }
    };
    let key = from_env("GIT_AUDIT_LEDGER_KEY").or_else(|| repo.and_then(|r| r.config_path("audit.ledgerKey")));
    if let Some(url) = db.to_str().and_then(PgUrl::parse) {
        let spool_dir = match repo {
            Some(r) => r.git_dir().join("audit"),
            None => std::env::temp_dir(),
        };
        return Some(LedgerFiles::postgres(url, key, &spool_dir));
    }
    let key = key.unwrap_or_else(|| db.with_extension("key"));
    Some(LedgerFiles { spool: db.with_extension("gaps"), db, key, url: None })
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
    /// The writer that appended it (format 2); `None` for format 1 entries.
    pub writer: Option<String>,
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
    /// When a writer signed the checkpoint: the `ledger.writer` entry that
    /// made it a writer, with the owner's signature (so the proof still needs
    /// only the owner's key to check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_writer: Option<serde_json::Value>,
}

pub struct Ledger {
    store: Box<dyn Store>,
    /// The ledger's writers (loaded on first use; few entries, one index lookup).
    writers: std::sync::OnceLock<writers::Writers>,
    /// False for a format 1 file that could not be upgraded (opened read-only).
    has_writer_columns: bool,
    /// The SQLite file, or the PostgreSQL URL without its password.
    pub path: PathBuf,
    key_path: PathBuf,
    pub origin: String,
    pub verifier: NoteVerifier,
    signer: Option<NoteSigner>,
}

fn sql(path: &Path) -> impl Fn(StoreError) -> LedgerError + '_ {
    move |cause| LedgerError::Store { path: path.to_path_buf(), cause }
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
    actor TEXT NOT NULL, payload TEXT NOT NULL, leaf BLOB NOT NULL, writer TEXT, sig TEXT
);
CREATE INDEX entries_subject ON entries (subject, seq);
CREATE INDEX entries_kind ON entries (kind, seq);
CREATE TABLE nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, time TEXT NOT NULL);
";

/// The index by kind, for ledgers made before [`SCHEMA`] had it.
const KIND_INDEX: &str = "CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind, seq);";

/// The columns of `entries`, in the order appends write them.
const ENTRY_COLUMNS: &[&str] = &["seq", "time", "kind", "subject", "actor", "payload", "leaf", "writer", "sig"];

/// Now, in the canonical text form entries store and hash.
pub(crate) fn now() -> String {
    crate::time::Timestamp::now().canonical()
}

/// A connection to the ledger's database for state kept beside the log (no
/// checks that it is a ledger: the caller opened the ledger, or will).
pub(crate) fn connect(files: &LedgerFiles) -> Result<Box<dyn Store>, LedgerError> {
    match files.location() {
        Location::Sqlite(path) => {
            let s = store::sqlite::SqliteStore::open(&path, true).map_err(sql(&path))?;
            s.configure().map_err(sql(&path))?;
            Ok(Box::new(s))
        }
        Location::Postgres(url) => Ok(Box::new(store::postgres::PgStore::connect(&url).map_err(sql(&files.db))?)),
    }
}

/// A job held exclusively across every machine that shares a PostgreSQL
/// ledger (a session advisory lock on a connection of its own): released when
/// this is dropped, or when the process dies and its connection closes.
pub struct JobLock {
    _held: Box<dyn Store>,
}

/// Takes the lock named `job` on a PostgreSQL ledger; `None` when another
/// process holds it. A SQLite ledger needs none (its jobs lock a local file).
pub fn try_job_lock(files: &LedgerFiles, job: i64) -> Result<Option<JobLock>, LedgerError> {
    let store = connect(files)?;
    let got = store.try_job_lock(job).map_err(sql(&files.db))?;
    Ok(got.then_some(JobLock { _held: store }))
}

/// True when the database holds a table named `meta` (every ledger has one).
fn has_meta(store: &dyn Store, path: &Path) -> Result<bool, LedgerError> {
    Ok(store.tables().map_err(sql(path))?.iter().any(|t| t == "meta"))
}

impl Ledger {
    /// Creates a new ledger and its Ed25519 signing key (mode 0600). Refuses to
    /// overwrite either.
    pub fn init(loc: &LedgerFiles, origin: Option<&str>) -> Result<Ledger, LedgerError> {
        if loc.url.is_some() && loc.key.as_os_str().is_empty() {
            return Err(LedgerError::NoKeyNamed { path: loc.db.clone() });
        }
        let files = if loc.url.is_none() { vec![&loc.db, &loc.key] } else { vec![&loc.key] };
        if let Some(p) = files.into_iter().find(|p| p.exists()) {
            return Err(LedgerError::Exists { path: p.clone() });
        }
        if loc.url.is_none() {
            if let Some(parent) = loc.db.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| LedgerError::Io { path: parent.to_path_buf(), source })?;
            }
        }
        let store: Box<dyn Store> = match loc.location() {
            Location::Sqlite(path) => {
                let s = store::sqlite::SqliteStore::open(&path, true).map_err(sql(&path))?;
                s.configure().map_err(sql(&path))?;
                s.set_pragma("application_id", APPLICATION_ID).map_err(sql(&path))?;
                s.set_pragma("user_version", FORMAT_VERSION).map_err(sql(&path))?;
                Box::new(s)
            }
            Location::Postgres(url) => {
                let s = store::postgres::PgStore::connect(&url).map_err(sql(&loc.db))?;
                if has_meta(&s, &loc.db)? {
                    return Err(LedgerError::Exists { path: loc.db.clone() });
                }
                Box::new(s)
            }
        };
        let origin = match origin {
            Some(o) => o.to_string(),
            None => {
                let mut r = [0u8; 8];
                getrandom::getrandom(&mut r).map_err(|e| LedgerError::Key { path: loc.key.clone(), msg: e.to_string() })?;
                format!("git-audit.local/ledger/{}", hex::encode(r))
            }
        };
        let signer = NoteSigner::generate(&origin).map_err(|e| LedgerError::Key { path: loc.key.clone(), msg: e.to_string() })?;
        let path = &loc.db;
        let verifier = signer.verifier();
        store.schema(SCHEMA).map_err(sql(path))?;
        store.schema(projection::SCHEMA).map_err(sql(path))?;
        store.install_functions().map_err(sql(path))?;
        let empty = merkle::empty_root();
        let note = sign_checkpoint(&signer, &origin, 0, empty, &loc.key)?;
        {
            let tx = Tx::begin(&*store, Begin::Write).map_err(sql(path))?;
            for (k, v) in [
                ("format_version", FORMAT_VERSION.to_string()),
                ("origin", origin.clone()),
                ("public_key", verifier.to_string()),
                ("created", now()),
            ] {
                store.execute("INSERT INTO meta (key, value) VALUES (?1, ?2)", &[k.into(), v.into()]).map_err(sql(path))?;
            }
            store
                .execute("INSERT INTO head (id, size, root, note) VALUES (0, 0, ?1, ?2)", &[empty.to_vec().into(), note.into()])
                .map_err(sql(path))?;
            // The key is written last, once the ledger it belongs to exists.
            write_private(&loc.key, &signer.to_private_string())?;
            tx.commit().map_err(sql(path))?;
        }
        Ok(Ledger {
            store,
            writers: std::sync::OnceLock::new(),
            has_writer_columns: true,
            path: loc.db.clone(),
            key_path: loc.key.clone(),
            origin,
            verifier,
            signer: Some(signer),
        })
    }

    /// Opens an existing ledger. The signing key is loaded when present (it is
    /// needed to append, not to read or verify).
    pub fn open(loc: &LedgerFiles) -> Result<Ledger, LedgerError> {
        let path = &loc.db;
        let not_a_ledger = |why: String| LedgerError::NotALedger { path: path.clone(), why };
        let location = loc.location();
        let is_sqlite = matches!(location, Location::Sqlite(_));
        let store: Box<dyn Store> = match location {
            Location::Sqlite(file) => {
                if !file.exists() {
                    return Err(LedgerError::Missing { path: path.clone() });
                }
                // Only SQLite's "not a database" means that; an I/O error (a full
                // disk, a file-size limit) is said as what it is.
                let unreadable = |e: StoreError| {
                    let code = e.code.as_deref().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
                    if code == Some(26) {
                        not_a_ledger(e.to_string())
                    } else {
                        LedgerError::Store { path: path.clone(), cause: e }
                    }
                };
                let s = store::sqlite::SqliteStore::open(&file, false).map_err(unreadable)?;
                let app = s.pragma_int("application_id").map_err(unreadable)?;
                if app != APPLICATION_ID {
                    return Err(not_a_ledger(format!("SQLite application id {app:#x}, expected {APPLICATION_ID:#x}")));
                }
                let version = s.pragma_int("user_version").map_err(sql(path))?;
                if version > FORMAT_VERSION {
                    return Err(LedgerError::NewerFormat { path: path.clone(), found: version, supported: FORMAT_VERSION });
                }
                s.configure().map_err(sql(path))?;
                Box::new(s)
            }
            Location::Postgres(url) => {
                let s = store::postgres::PgStore::connect(&url).map_err(sql(path))?;
                if !has_meta(&s, path)? {
                    return Err(LedgerError::Missing { path: path.clone() });
                }
                Box::new(s)
            }
        };
        let meta = |k: &str| -> Result<String, LedgerError> {
            store::first(&*store, "SELECT value FROM meta WHERE key = ?1", &[k.into()])
                .map_err(sql(path))?
                .and_then(|r| r.into_iter().next())
                .and_then(|v| v.as_text().map(str::to_string))
                .ok_or_else(|| not_a_ledger(format!("no `{k}` in its meta table")))
        };
        // SQLite's version is its `user_version`, checked above; other engines keep it in `meta`.
        if !is_sqlite {
            let version: i64 = meta("format_version")?.parse().map_err(|_| not_a_ledger("its format_version is not a number".into()))?;
            if version > FORMAT_VERSION {
                return Err(LedgerError::NewerFormat { path: path.clone(), found: version, supported: FORMAT_VERSION });
            }
        }
        store.schema(projection::SCHEMA).map_err(sql(path))?;
        // Reading one kind (every report does) without scanning the log. A
        // ledger made before it gets it here; a read-only copy goes without.
        let _ = store.schema(KIND_INDEX);
        let origin = meta("origin")?;
        let verifier = NoteVerifier::parse(&meta("public_key")?).map_err(|e| not_a_ledger(e.to_string()))?;
        // The key may be the owner's or a writer's: which, is asked when appending.
        let signer = if !loc.key.as_os_str().is_empty() && loc.key.exists() {
            let text = std::fs::read_to_string(&loc.key).map_err(|source| LedgerError::Io { path: loc.key.clone(), source })?;
            Some(NoteSigner::parse(&text).map_err(|e| LedgerError::Key { path: loc.key.clone(), msg: e.to_string() })?)
        } else {
            None
        };
        let has_writer_columns = upgrade_to_format_2(&*store, path)?;
        Ok(Ledger {
            store,
            writers: std::sync::OnceLock::new(),
            has_writer_columns,
            path: path.clone(),
            key_path: loc.key.clone(),
            origin,
            verifier,
            signer,
        })
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The entry columns [`row_entry`] reads, as a SELECT list.
    pub(crate) fn entry_columns(&self) -> &'static str {
        if self.has_writer_columns {
            "seq, time, kind, subject, actor, payload, writer, sig"
        } else {
            "seq, time, kind, subject, actor, payload, NULL AS writer, NULL AS sig"
        }
    }

    fn writer_column(&self) -> &'static str {
        if self.has_writer_columns {
            "writer"
        } else {
            "NULL AS writer"
        }
    }

    /// Creates a state owner's tables where they are missing.
    pub fn state_schema(&self, ddl: &str) -> Result<(), LedgerError> {
        self.store.schema(ddl).map_err(sql(&self.path))
    }

    /// The rows of a state owner's query.
    pub fn state_rows(&self, s: &state::Statement) -> Result<Vec<Vec<Value>>, LedgerError> {
        store::rows(&*self.store, s.sql, &s.params).map_err(sql(&self.path))
    }

    /// Applies state writes in one transaction, with no entries.
    pub fn state_write(&mut self, writes: &[state::Statement]) -> Result<(), LedgerError> {
        let path = &self.path;
        let tx = Tx::begin(&*self.store, Begin::Write).map_err(sql(path))?;
        for w in writes {
            self.store.defer(w.sql, w.params.clone()).map_err(sql(path))?;
        }
        tx.commit().map_err(sql(path))
    }

    /// Appends entries and applies state writes (cursor moves …) in the same
    /// transaction: they commit together or not at all.
    pub fn append_with_state(&mut self, entries: &[NewEntry], writes: &[state::Statement]) -> Result<Receipt, LedgerError> {
        self.append_then(entries, |_| writes.to_vec())
    }

    /// The current signed tree head.
    pub fn head(&self) -> Result<Head, LedgerError> {
        read_head(&*self.store, &self.path, false)
    }

    /// Appends entries in one transaction and signs the new tree head.
    pub fn append(&mut self, entries: &[NewEntry]) -> Result<Receipt, LedgerError> {
        self.append_then(entries, |_| Vec::new())
    }

    /// Appends entries and applies the state writes `then` makes from the
    /// receipt (the seqs and the signed checkpoint that covers them), in the
    /// same transaction: an outbox row naming the seq it reports commits with
    /// that entry or not at all.
    ///
    /// Appends from many processes are serialised by the engine's write lock
    /// (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a row lock on the head, taken
    /// first), and the compare-and-swap on the head's size is the second guard:
    /// seqs come from the head, never from a sequence, so a rolled-back append
    /// leaves no gap.
    pub fn append_then(
        &mut self,
        entries: &[NewEntry],
        then: impl FnOnce(&Receipt) -> Vec<state::Statement>,
    ) -> Result<Receipt, LedgerError> {
        let (writer, kinds) = self.identity()?;
        let signer = self.signer.as_ref().ok_or_else(|| LedgerError::NoSigner { path: self.path.clone(), key: self.key_path.clone() })?;
        for e in entries {
            if !entry::valid_kind(&e.kind) {
                return Err(LedgerError::BadEntry(format!("kind `{}` is not lower-case dotted words (e.g. commit.verified)", e.kind)));
            }
            if let Some(kinds) = &kinds {
                if !writers::may_write(kinds, &e.kind) {
                    return Err(LedgerError::NotItsKind {
                        path: self.path.clone(),
                        writer: writer.clone(),
                        kind: e.kind.clone(),
                        allowed: kinds.join(", "),
                    });
                }
            }
        }
        if !self.has_writer_columns {
            return Err(LedgerError::Inconsistent {
                path: self.path.clone(),
                msg: "this format 1 ledger could not be upgraded to format 2 (is it read-only?); nothing was appended".into(),
            });
        }
        let writes_writers = entries.iter().any(|e| e.kind == crate::event::Kind::LedgerWriter.as_str());
        if writes_writers && entries.len() > 1 {
            // Its own append, so a proof can carry it with its signature alone.
            return Err(LedgerError::BadEntry("a writer change is an append of its own".into()));
        }
        let path = &self.path;
        let store = &*self.store;
        let tx = Tx::begin(store, Begin::Write).map_err(sql(path))?;
        let (head, mut frontier) = lock_head(store, path)?;
        if fold(&frontier) != head.root {
            return Err(LedgerError::Inconsistent {
                path: path.clone(),
                msg: format!("the stored tree does not reproduce the signed root of size {}; refusing to append", head.size),
            });
        }
        let time = now();
        let mut projected: Vec<Vec<Vec<Value>>> = vec![Vec::new(); projection::TABLES.len()];
        let mut entry_rows = Vec::with_capacity(entries.len());
        let mut leaves = Vec::with_capacity(entries.len());
        let mut node_rows = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let seq = head.size + i as u64;
            let payload = entry::canonical_json(&e.payload);
            let bytes = entry::canonical_bytes_by(seq, &time, &e.kind, &e.subject, &e.actor, &payload, Some(&writer));
            let leaf = merkle::leaf_hash(&bytes);
            leaves.push(leaf);
            frontier.push((0, leaf));
            while frontier.len() >= 2 && frontier[frontier.len() - 1].0 == frontier[frontier.len() - 2].0 {
                let (level, right) = frontier.pop().unwrap_or_default();
                let (_, left) = frontier.pop().unwrap_or_default();
                let parent = merkle::node_hash(&left, &right);
                let idx = ((seq + 1) >> (level + 1)) - 1;
                node_rows.push(vec![Value::Int(i64::from(level) + 1), Value::Int(idx as i64), Value::Blob(parent.to_vec())]);
                frontier.push((level + 1, parent));
            }
            for row in projection::rows(seq, &time, &e.kind, &e.subject, &e.actor, &payload) {
                let i = projection::TABLES.iter().position(|t| t.name == row.table.name).unwrap_or(0);
                projected[i].push(row.values);
            }
            entry_rows.push(vec![
                Value::Int(seq as i64),
                time.as_str().into(),
                e.kind.as_str().into(),
                e.subject.as_str().into(),
                e.actor.as_str().into(),
                Value::Text(payload),
                Value::Blob(leaf.to_vec()),
                writer.as_str().into(),
                Value::Null,
            ]);
        }
        // One signature for the whole append, on its last entry.
        if let Some(last) = entry_rows.last_mut() {
            let last_seq = head.size + entries.len() as u64 - 1;
            let sig = signer.sign_bytes(&entry::append_bytes(head.size, last_seq, &writer, &leaves));
            last[8] = Value::Text(format!("{}:{sig}", head.size));
        }
        store.insert_rows("entries", ENTRY_COLUMNS, entry_rows).map_err(sql(path))?;
        store.insert_rows("nodes", &["level", "idx", "hash"], node_rows).map_err(sql(path))?;
        for (t, rows) in projection::TABLES.iter().zip(projected) {
            if !rows.is_empty() {
                store.upsert_rows(t.name, t.columns, t.key, rows).map_err(sql(path))?;
            }
        }
        let size = head.size + entries.len() as u64;
        let root = fold(&frontier);
        let note = sign_checkpoint(signer, &self.origin, size, root, &self.key_path)?;
        let receipt = Receipt { first_seq: head.size, count: entries.len() as u64, tree_size: size, checkpoint: note };
        for w in then(&receipt) {
            store.defer(w.sql, w.params).map_err(sql(path))?;
        }
        let moved = || LedgerError::Inconsistent { path: path.clone(), msg: "the head moved during the append".into() };
        let cas = "UPDATE head SET size = ?1, root = ?2, note = ?3 WHERE id = 0 AND size = ?4";
        let cas_params =
            vec![Value::Int(size as i64), Value::Blob(root.to_vec()), receipt.checkpoint.as_str().into(), Value::Int(head.size as i64)];
        if !store.swap_head_and_commit(tx, cas, cas_params, size as i64).map_err(sql(path))? {
            return Err(moved());
        }
        if writes_writers {
            self.writers = std::sync::OnceLock::new();
        }
        Ok(receipt)
    }

    /// Who appends with the loaded key: the owner (every kind, `None`), or a
    /// writer and its kinds.
    fn identity(&self) -> Result<(String, Option<Vec<String>>), LedgerError> {
        let signer = self.signer.as_ref().ok_or_else(|| match self.key_path.as_os_str().is_empty() {
            true => LedgerError::NoKeyNamed { path: self.path.clone() },
            false => LedgerError::NoSigner { path: self.path.clone(), key: self.key_path.clone() },
        })?;
        let key = signer.verifier();
        if key == self.verifier {
            return Ok((writers::OWNER.to_string(), None));
        }
        match self.writers()?.by_key(&key) {
            Some(w) => Ok((w.name.clone(), Some(w.kinds.clone()))),
            None => Err(LedgerError::NotAWriter { path: self.path.clone(), key: self.key_path.clone() }),
        }
    }

    /// The loaded key, to sign what the ledger's writer vouches for outside
    /// it (DSSE envelopes of source attestations); `None` without a key.
    pub fn signer(&self) -> Option<&NoteSigner> {
        self.signer.as_ref()
    }

    /// Whether the loaded key may append entries of `kind` (a writer added
    /// before a kind existed may not: its kinds were recorded when it was added).
    pub fn may_append(&self, kind: crate::event::Kind) -> bool {
        match self.identity() {
            Ok((_, None)) => true,
            Ok((_, Some(kinds))) => writers::may_write(&kinds, kind.as_str()),
            Err(_) => false,
        }
    }

    /// The name the loaded key appends as, if it may append at all.
    pub fn writer_name(&self) -> Result<String, LedgerError> {
        self.identity().map(|(name, _)| name)
    }

    /// The ledger's writers, from its owner-signed `ledger.writer` entries.
    pub fn writers(&self) -> Result<&writers::Writers, LedgerError> {
        if let Some(w) = self.writers.get() {
            return Ok(w);
        }
        let loaded = load_writers(&*self.store, &self.path, &self.verifier, self.has_writer_columns)?;
        Ok(self.writers.get_or_init(|| loaded))
    }

    /// Whether an entry counts as its writer's (see [`writers::Writers::judge`]).
    pub fn counts(&self, seq: u64, kind: &str, writer: Option<&str>) -> Result<bool, LedgerError> {
        Ok(self.writers()?.judge(seq, kind, writer).is_ok())
    }

    /// Every key that may sign this ledger's checkpoints: the owner's, then
    /// each writer's (revoked ones too: their old checkpoints stay valid).
    pub fn checkpoint_keys(&self) -> Result<Vec<NoteVerifier>, LedgerError> {
        let mut keys = vec![self.verifier.clone()];
        keys.extend(self.writers()?.list.iter().map(|w| w.key.clone()));
        Ok(keys)
    }

    /// Opens a signed checkpoint note by any of [`Ledger::checkpoint_keys`].
    pub fn open_note<'n>(&self, note: &'n str) -> Result<&'n str, note::NoteError> {
        let keys = self.checkpoint_keys().unwrap_or_else(|_| vec![self.verifier.clone()]);
        open_by_any(&keys, note)
    }

    /// Entries of `P`'s kind, decoded into `P`, oldest first (or the newest
    /// few). An entry whose payload does not decode is skipped: the log holds
    /// it, `ledger verify` checks it, queries read only what they understand.
    pub fn events<P: crate::event::Payload>(&self, select: &Select<'_>) -> Result<Vec<Recorded<P>>, LedgerError> {
        let writers = self.writers()?;
        // By subject, its index finds the few entries; by kind alone, the kind's index.
        let kind = if select.subject.is_some() { self.store.unindexed("kind") } else { "kind".to_string() };
        let mut query = format!("SELECT seq, time, subject, actor, payload, {} FROM entries WHERE {kind} = ?1", self.writer_column());
        let mut params: Vec<Value> = vec![P::KIND.as_str().into()];
        if let Some(s) = select.subject {
            params.push(s.into());
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
        let mut out = Vec::new();
        self.store
            .query(&query, &params, &mut |r| {
                let [seq, time, subject, actor, payload, writer]: [Value; 6] =
                    r.try_into().map_err(|_| StoreError::new("expected 6 columns"))?;
                let seq = seq.as_int().unwrap_or(0).max(0) as u64;
                // An entry its writer may not write is not a fact (`ledger verify` names it).
                if writers.judge(seq, P::KIND.as_str(), writer.as_text()).is_err() {
                    return Ok(());
                }
                if let Some(p) = payload.as_text().and_then(|p| P::decode(P::KIND.as_str(), p)) {
                    out.push(Recorded {
                        writer: writer.as_text().map(str::to_string),
                        seq,
                        time: time.text_or_empty(),
                        subject: subject.text_or_empty(),
                        actor: actor.text_or_empty(),
                        payload: p,
                    });
                }
                Ok(())
            })
            .map_err(sql(&self.path))?;
        Ok(out)
    }

    fn first(&self, query: &str, params: &[Value]) -> Result<Option<Vec<Value>>, LedgerError> {
        store::first(&*self.store, query, params).map_err(sql(&self.path))
    }

    /// The commit a synced deployment deployed (projection `deployments`).
    pub fn deployment_sha(&self, repo: &str, id: i64) -> Result<Option<String>, LedgerError> {
        Ok(self
            .first("SELECT sha FROM deployments WHERE repo = ?1 AND id = ?2", &[repo.into(), id.into()])?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_text().map(str::to_string)))
    }

    /// True when a synced pull request names `sha` (among its commits, as its
    /// merge commit, or through a commit → pulls look-up).
    pub fn commit_linked_to_pulls(&self, repo: &str, sha: &str) -> Result<bool, LedgerError> {
        let found = self.first(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM pr_commits WHERE repo = ?1 AND sha = ?2) OR EXISTS (SELECT 1 FROM pull_requests WHERE repo = ?1 AND merge_commit_sha = ?2) OR EXISTS (SELECT 1 FROM commit_pulls WHERE repo = ?1 AND sha = ?2)",
            &[repo.into(), sha.into()],
        )?;
        Ok(found.is_some())
    }

    /// The `updated_at` a change (pull or merge request) was last recorded with.
    pub fn change_updated_at(&self, repo: &str, number: i64) -> Result<Option<String>, LedgerError> {
        let found = self.first("SELECT updated_at FROM pull_requests WHERE repo = ?1 AND number = ?2", &[repo.into(), number.into()])?;
        Ok(found.and_then(|r| r.into_iter().next()).and_then(|v| v.as_text().map(str::to_string)))
    }

    /// The last non-zero tip recorded for `refname`: by post-receive
    /// (`ref.updated`) or by an accepted push decision.
    pub fn recorded_tip(&self, refname: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .first(
                "SELECT new FROM ref_updates WHERE ref = ?1 AND (kind = ?2 OR accepted = 1)
                 AND new IS NOT NULL AND trim(new, '0') <> '' ORDER BY seq DESC LIMIT 1",
                &[refname.into(), crate::event::Kind::RefUpdated.as_str().into()],
            )?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_text().map(str::to_string)))
    }

    /// One entry by seq.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>, LedgerError> {
        self.first(&format!("SELECT {} FROM entries WHERE seq = ?1", self.entry_columns()), &[Value::Int(seq as i64)])?
            .map(|r| row_entry(&r))
            .transpose()
    }

    /// A self-contained inclusion proof for entry `seq` under the current head.
    pub fn prove(&self, seq: u64) -> Result<Proof, LedgerError> {
        self.prove_under(seq, &self.head()?)
    }

    /// An inclusion proof for entry `seq` under a given signed head (so many
    /// proofs made while others append all stand on one checkpoint).
    pub fn prove_under(&self, seq: u64, head: &Head) -> Result<Proof, LedgerError> {
        use base64::Engine;
        let head = head.clone();
        if seq >= head.size {
            return Err(LedgerError::NoEntry { seq, size: head.size });
        }
        let e = self.entry(seq)?.ok_or(LedgerError::NoEntry { seq, size: head.size })?;
        let proof = DbTree::new(&*self.store, &self.path).run(|t| merkle::inclusion_proof(t, seq, head.size))?;
        Ok(Proof {
            entry: serde_json::to_value(&e).unwrap_or_default(),
            leaf_index: seq,
            tree_size: head.size,
            inclusion_proof: proof.iter().map(|h| base64::engine::general_purpose::STANDARD.encode(h)).collect(),
            checkpoint_writer: self.checkpoint_writer(&head.note)?,
            checkpoint: head.note,
            key: self.verifier.to_string(),
        })
    }

    /// The owner-signed `ledger.writer` entry of the writer whose key signed
    /// `note`, when that is not the owner.
    fn checkpoint_writer(&self, note: &str) -> Result<Option<serde_json::Value>, LedgerError> {
        if self.verifier.open(note).is_ok() {
            return Ok(None);
        }
        let Some(w) = self.writers()?.list.iter().find(|w| w.key.open(note).is_ok()) else { return Ok(None) };
        Ok(self.entry(w.added)?.map(|e| serde_json::to_value(&e).unwrap_or_default()))
    }

    /// The root of the first `size` entries, from the stored tree.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        DbTree::new(&*self.store, &self.path).run(|t| merkle::root(t, size))
    }

    /// A consistency proof between two sizes, from the stored tree.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        DbTree::new(&*self.store, &self.path).run(|t| merkle::consistency_proof(t, old, new))
    }

    /// Keeps the current signed checkpoint in the history table and returns it.
    pub fn checkpoint(&self) -> Result<Head, LedgerError> {
        let head = self.head()?;
        self.store
            .execute(
                "INSERT INTO checkpoints (size, root, note, time) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING",
                &[Value::Int(head.size as i64), Value::Blob(head.root.to_vec()), head.note.as_str().into(), now().into()],
            )
            .map_err(sql(&self.path))?;
        Ok(head)
    }

    /// Writes every entry as one JSON object per line.
    pub fn export_jsonl(&self, out: &mut dyn Write) -> Result<u64, LedgerError> {
        let mut n = 0;
        let mut failed = None;
        self.store
            .query(&format!("SELECT {}, leaf FROM entries ORDER BY seq", self.entry_columns()), &[], &mut |r| {
                let e = match row_entry(&r) {
                    Ok(e) => e,
                    Err(e) => {
                        failed = Some(e);
                        return Err(StoreError::new("stopped"));
                    }
                };
                let mut v = serde_json::to_value(&e).unwrap_or_default();
                v["leaf_hash"] = serde_json::Value::String(hex::encode(r.get(8).and_then(Value::as_blob).unwrap_or_default()));
                if let Err(source) = writeln!(out, "{v}") {
                    failed = Some(LedgerError::Io { path: PathBuf::from("<output>"), source });
                    return Err(StoreError::new("stopped"));
                }
                n += 1;
                Ok(())
            })
            .map_err(|e| failed.take().unwrap_or_else(|| sql(&self.path)(e)))?;
        Ok(n)
    }

    /// Rebuilds every projection from the log, in one transaction.
    pub fn rebuild(&mut self) -> Result<u64, LedgerError> {
        let path = &self.path;
        let store = &*self.store;
        let tx = Tx::begin(store, Begin::Write).map_err(sql(path))?;
        for t in projection::TABLES {
            store.execute(&format!("DELETE FROM {}", t.name), &[]).map_err(sql(path))?;
        }
        let upserts: Vec<String> = projection::TABLES.iter().map(|t| projection::upsert_sql(t)).collect();
        let writers = self.writers()?.clone();
        let columns = self.entry_columns();
        let mut n = 0u64;
        // A page at a time: the rows are written between reads.
        const PAGE: i64 = 5000;
        let mut from = 0i64;
        loop {
            let page = store::rows(
                store,
                &format!("SELECT {columns} FROM entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2"),
                &[Value::Int(from), Value::Int(PAGE)],
            )
            .map_err(sql(path))?;
            let Some(last) = page.last().and_then(|r| r.first()).and_then(Value::as_int) else { break };
            for r in &page {
                let e = row_entry(r)?;
                if writers.judge(e.seq, &e.kind, e.writer.as_deref()).is_err() {
                    continue;
                }
                for row in projection::entry_rows(&e) {
                    let i = projection::TABLES.iter().position(|t| t.name == row.table.name).unwrap_or(0);
                    store.defer(&upserts[i], row.values).map_err(sql(path))?;
                }
                n += 1;
            }
            from = last + 1;
        }
        tx.commit().map_err(sql(path))?;
        Ok(n)
    }
}

/// Writes a private key file (mode 0600), refusing to overwrite one.
pub fn write_private(path: &Path, text: &str) -> Result<(), LedgerError> {
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

fn read_head(store: &dyn Store, path: &Path, for_update: bool) -> Result<Head, LedgerError> {
    // PostgreSQL: the row lock on the head serialises appends (SQLite's
    // `BEGIN IMMEDIATE` already holds the database's write lock).
    let lock = if for_update { store.row_lock() } else { "" };
    let query = format!("SELECT size, root, note FROM head WHERE id = 0{lock}");
    let bad = |msg: &str| LedgerError::Inconsistent { path: path.to_path_buf(), msg: msg.into() };
    let row = store::first(store, &query, &[]).map_err(sql(path))?.ok_or_else(|| bad("the head row is missing"))?;
    let size = row.first().and_then(Value::as_int).ok_or_else(|| bad("the head's size is not a number"))?;
    let root: Hash =
        row.get(1).and_then(Value::as_blob).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("the head's root is not 32 bytes"))?;
    let note = row.get(2).and_then(Value::as_text).ok_or_else(|| bad("the head's note is not text"))?.to_string();
    Ok(Head { size: size.max(0) as u64, root, note })
}

/// The transaction-scoped advisory lock that serialises appends to a
/// PostgreSQL ledger ("GAUDLOG!").
const APPEND_LOCK: i64 = 0x4741_5544_4c4f_4721;

/// Takes the append lock and reads the head and the tree's frontier under it.
/// PostgreSQL: one round trip for the advisory lock, then the head (locked
/// again by row) and the frontier's nodes in one statement. That statement
/// starts only once the lock is held, so its snapshot sees the append before.
fn lock_head(store: &dyn Store, path: &Path) -> Result<(Head, Vec<(u32, Hash)>), LedgerError> {
    let Some(rows) = store.locked_head_with_frontier(APPEND_LOCK).map_err(sql(path))? else {
        let head = read_head(store, path, true)?;
        let frontier = load_frontier(store, path, head.size)?;
        return Ok((head, frontier));
    };
    let bad = |msg: String| LedgerError::Inconsistent { path: path.to_path_buf(), msg };
    let first = rows.first().ok_or_else(|| bad("the head row is missing".into()))?;
    let size = first.first().and_then(Value::as_int).ok_or_else(|| bad("the head's size is not a number".into()))?;
    let root: Hash = first
        .get(1)
        .and_then(Value::as_blob)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the head's root is not 32 bytes".into()))?;
    let note = first.get(2).and_then(Value::as_text).ok_or_else(|| bad("the head's note is not text".into()))?.to_string();
    let head = Head { size: size.max(0) as u64, root, note };
    let mut frontier = Vec::new();
    for r in &rows {
        let (Some(level), Some(_)) = (r.get(3).and_then(Value::as_int), r.get(4).and_then(Value::as_int)) else { continue };
        match r.get(5).and_then(Value::as_blob).and_then(|b| Hash::try_from(b).ok()) {
            Some(hash) => frontier.push((level.max(0) as u32, hash)),
            // Should the statement's snapshot predate the append that moved the
            // head (a writer that takes the row lock without the advisory one),
            // read the frontier again in a statement of its own (nodes never
            // change once written, so a stale snapshot can only lack them).
            None => return Ok((head.clone(), load_frontier(store, path, head.size)?)),
        }
    }
    Ok((head, frontier))
}

/// Text stored in a column: text, or bytes that are UTF-8.
pub(crate) fn text_of(v: &Value) -> Option<&str> {
    match v {
        Value::Text(t) => Some(t),
        Value::Blob(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// Reads an entry row `(seq, time, kind, subject, actor, payload, writer, sig)`.
fn row_entry(row: &[Value]) -> Result<Entry, LedgerError> {
    let seq = row.first().and_then(Value::as_int).unwrap_or(0);
    let text = |i: usize| row.get(i).and_then(text_of).map(str::to_string);
    let (Some(time), Some(kind), Some(subject), Some(actor), Some(payload)) = (text(1), text(2), text(3), text(4), text(5)) else {
        return Err(LedgerError::BadEntry(format!("entry seq {seq} holds text that is not UTF-8")));
    };
    let payload =
        serde_json::from_str(&payload).map_err(|e| LedgerError::BadEntry(format!("entry seq {seq}: payload is not JSON: {e}")))?;
    let writer = row.get(6).and_then(text_of).map(str::to_string);
    let sig = row.get(7).and_then(text_of).map(str::to_string);
    Ok(Entry { seq: seq.max(0) as u64, time, kind, subject, actor, payload, writer, sig })
}

/// Verifies a note by whichever of `keys` signed it.
pub fn open_by_any<'n>(keys: &[NoteVerifier], note: &'n str) -> Result<&'n str, note::NoteError> {
    let mut first = None;
    for k in keys {
        match k.open(note) {
            Ok(t) => return Ok(t),
            Err(e) => {
                // A bad signature by a known key says more than "not signed by" another.
                if first.is_none() || matches!(e, note::NoteError::BadSignature(_)) {
                    first = Some(e);
                }
            }
        }
    }
    Err(first.unwrap_or_else(|| note::NoteError::Format("no keys".into())))
}

/// The writers of the ledger in `store` (for code that has no [`Ledger`]).
fn load_writers(store: &dyn Store, path: &Path, owner: &NoteVerifier, columns: bool) -> Result<writers::Writers, LedgerError> {
    if !columns {
        return Ok(writers::Writers::default());
    }
    let rows = store::rows(
        store,
        "SELECT seq, time, kind, subject, actor, payload, writer, sig FROM entries WHERE subject = ?1 AND kind = ?2 ORDER BY seq",
        &[writers::SUBJECT.into(), crate::event::Kind::LedgerWriter.as_str().into()],
    )
    .map_err(sql(path))?;
    let first_v2 = store::first(store, "SELECT min(seq) FROM entries WHERE writer IS NOT NULL", &[])
        .map_err(sql(path))?
        .and_then(|r| r.first().and_then(Value::as_int))
        .map(|s| s.max(0) as u64);
    let mut changes = Vec::new();
    for r in &rows {
        let Ok(e) = row_entry(r) else { continue };
        let leaf = std::collections::BTreeMap::from([(e.seq, merkle::leaf_hash(&e.canonical()))]);
        let signed =
            e.writer.as_deref() == Some(writers::OWNER) && append_signed(store, path, e.seq, &leaf, writers::OWNER, owner)?.is_ok();
        changes.push((e.seq, e.writer.clone(), entry::canonical_json(&e.payload), signed));
    }
    Ok(writers::Writers { first_v2, ..writers::Writers::fold(changes) })
}

/// Whether entry `seq` lies in an append `writer` signed with `key`: the
/// append is found by the signature on its last entry (`FIRST:BASE64`).
/// Entries in `known` count with the leaf given there (recomputed from their
/// content), the others with their leaves as stored (the tree holds them to
/// the signed root). `Ok` is the append's seq range, so one check serves every
/// entry of `known` in it; `Err` says why not.
pub(crate) fn append_signed(
    store: &dyn Store,
    path: &Path,
    seq: u64,
    known: &std::collections::BTreeMap<u64, Hash>,
    writer: &str,
    key: &NoteVerifier,
) -> Result<Result<(u64, u64), String>, LedgerError> {
    let Some(row) = store::first(
        store,
        "SELECT seq, sig FROM entries WHERE seq >= ?1 AND sig IS NOT NULL ORDER BY seq LIMIT 1",
        &[Value::Int(seq as i64)],
    )
    .map_err(sql(path))?
    else {
        return Ok(Err(format!("entry seq {seq} is in no signed append (its signature is missing)")));
    };
    let last = row.first().and_then(Value::as_int).unwrap_or(-1).max(0) as u64;
    let Some((first, sig)) = row.get(1).and_then(text_of).and_then(entry::parse_append_sig) else {
        return Ok(Err(format!("the append signature on seq {last} is malformed")));
    };
    if first > seq {
        return Ok(Err(format!("entry seq {seq} is in no signed append (the next signature, on seq {last}, starts at {first})")));
    }
    let rows = store::rows(
        store,
        "SELECT seq, writer, leaf FROM entries WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
        &[Value::Int(first as i64), Value::Int(last as i64)],
    )
    .map_err(sql(path))?;
    let mut leaves = Vec::with_capacity(rows.len());
    for r in &rows {
        let s = r.first().and_then(Value::as_int).unwrap_or(-1).max(0) as u64;
        if r.get(1).and_then(text_of) != Some(writer) {
            return Ok(Err(format!("entry seq {s}, in the append of seq {seq}, names another writer")));
        }
        let stored: Option<Hash> = r.get(2).and_then(Value::as_blob).and_then(|b| b.try_into().ok());
        leaves.push(match known.get(&s) {
            Some(leaf) => *leaf,
            None => stored.unwrap_or([0; 32]),
        });
    }
    if leaves.len() as u64 != last - first + 1 {
        return Ok(Err(format!("the append seq {first}..{last} is not whole")));
    }
    if key.verify_bytes(&entry::append_bytes(first, last, writer, &leaves), sig) {
        Ok(Ok((first, last)))
    } else {
        Ok(Err(format!("the signature of the append seq {first}..{last} (`{writer}`) does not verify")))
    }
}

/// Adds format 2's columns to a format 1 ledger (its entries are untouched:
/// they keep hashing as format 1). False when the file cannot be written
/// (a read-only copy): it is read as format 1 and refuses appends.
fn upgrade_to_format_2(store: &dyn Store, path: &Path) -> Result<bool, LedgerError> {
    if store.execute("SELECT writer, sig FROM entries WHERE 0 = 1", &[]).is_ok() {
        return Ok(true);
    }
    let tx = match Tx::begin(store, Begin::Write) {
        Ok(tx) => tx,
        Err(_) => return Ok(false),
    };
    let altered = store
        .execute("ALTER TABLE entries ADD COLUMN writer TEXT", &[])
        .and_then(|_| store.execute("ALTER TABLE entries ADD COLUMN sig TEXT", &[]))
        .and_then(|_| store.set_format_version(FORMAT_VERSION));
    match altered {
        Ok(_) => {
            tx.commit().map_err(sql(path))?;
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// Complete subtrees read from the database (level 0 from `entries.leaf`)
/// for a tree algorithm. SQLite reads each through a cached statement (no
/// round trips to save). PostgreSQL reads them in one query: a first run with
/// made-up hashes names the subtrees the algorithm needs (its recursion
/// depends on sizes only), one query fetches them, the second run uses them.
pub struct DbTree<'c> {
    store: &'c dyn Store,
    path: &'c Path,
    wanted: Vec<(u32, u64)>,
    got: Option<std::collections::HashMap<(u32, u64), Hash>>,
}

impl<'c> DbTree<'c> {
    pub fn new(store: &'c dyn Store, path: &'c Path) -> DbTree<'c> {
        DbTree { store, path, wanted: Vec::new(), got: None }
    }

    /// Runs `algorithm` over the stored tree.
    pub fn run<T>(mut self, algorithm: impl Fn(&mut DbTree<'c>) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        if !self.store.batch_reads() {
            self.got = Some(std::collections::HashMap::new());
            return algorithm(&mut self);
        }
        algorithm(&mut self)?;
        self.got = Some(fetch_subtrees(self.store, self.path, &self.wanted)?);
        algorithm(&mut self)
    }
}

impl Subtrees for DbTree<'_> {
    type Error = LedgerError;
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        match &mut self.got {
            None => {
                self.wanted.push((level, index));
                Ok([0u8; 32])
            }
            Some(got) => {
                let found = match got.get(&(level, index)) {
                    Some(h) => Some(*h),
                    None if !self.store.batch_reads() => {
                        let (sql_text, params) = if level == 0 {
                            ("SELECT leaf FROM entries WHERE seq = ?1", vec![Value::Int(index as i64)])
                        } else {
                            (
                                "SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2",
                                vec![Value::Int(level.into()), Value::Int(index as i64)],
                            )
                        };
                        let read = store::first(self.store, sql_text, &params)
                            .map_err(sql(self.path))?
                            .and_then(|r| r.first().and_then(Value::as_blob).and_then(|b| Hash::try_from(b).ok()));
                        // Kept for the rest of the run: proofs for many entries share their upper nodes.
                        if let Some(h) = read {
                            got.insert((level, index), h);
                        }
                        read
                    }
                    None => None,
                };
                found.ok_or_else(|| LedgerError::Inconsistent {
                    path: self.path.to_path_buf(),
                    msg: format!("tree node (level {level}, index {index}) is missing or malformed"),
                })
            }
        }
    }
}

/// Reads the given complete subtrees (those present; up to 400 per query).
fn fetch_subtrees(
    store: &dyn Store,
    path: &Path,
    wanted: &[(u32, u64)],
) -> Result<std::collections::HashMap<(u32, u64), Hash>, LedgerError> {
    let mut found = std::collections::HashMap::new();
    for part in wanted.chunks(400) {
        let leaves: Vec<String> = part.iter().filter(|(l, _)| *l == 0).map(|(_, i)| i.to_string()).collect();
        let nodes: Vec<String> = part.iter().filter(|(l, _)| *l > 0).map(|(l, i)| format!("(level = {l} AND idx = {i})")).collect();
        let mut parts = Vec::new();
        if !leaves.is_empty() {
            parts.push(format!("SELECT 0 AS level, seq AS idx, leaf AS hash FROM entries WHERE seq IN ({})", leaves.join(", ")));
        }
        if !nodes.is_empty() {
            parts.push(format!("SELECT level, idx, hash FROM nodes WHERE {}", nodes.join(" OR ")));
        }
        if parts.is_empty() {
            continue;
        }
        for r in store::rows(store, &parts.join(" UNION ALL "), &[]).map_err(sql(path))? {
            let (Some(l), Some(i), Some(h)) =
                (r.first().and_then(Value::as_int), r.get(1).and_then(Value::as_int), r.get(2).and_then(Value::as_blob))
            else {
                continue;
            };
            if let Ok(h) = Hash::try_from(h) {
                found.insert((l.max(0) as u32, i.max(0) as u64), h);
            }
        }
    }
    Ok(found)
}

/// The complete subtrees that make up a tree of `size` leaves, largest first,
/// read in one query (an append's first read after its lock).
fn load_frontier(store: &dyn Store, path: &Path, size: u64) -> Result<Vec<(u32, Hash)>, LedgerError> {
    let mut wanted = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            wanted.push((level, start >> level));
            start += 1u64 << level;
        }
    }
    // SQLite: each through its cached statement; PostgreSQL: all in one query.
    let got = match store.batch_reads() {
        false => std::collections::HashMap::new(),
        true => fetch_subtrees(store, path, &wanted)?,
    };
    let mut tree = DbTree { store, path, wanted: Vec::new(), got: Some(got) };
    wanted.into_iter().map(|(level, index)| Ok((level, tree.subtree(level, index)?))).collect()
}

/// The root of the tree whose complete subtrees are `frontier` (largest first).
fn fold(frontier: &[(u32, Hash)]) -> Hash {
    let mut iter = frontier.iter().rev();
    let Some((_, last)) = iter.next() else {
        return merkle::empty_root();
    };
    iter.fold(*last, |acc, (_, left)| merkle::node_hash(left, &acc))
}
