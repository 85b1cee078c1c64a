//! Working state other modules keep beside the log, in the ledger's database
//! but not in the log: the sync worker's cursors and HTTP cache, the
//! notification outbox. The owner of that state writes its statements
//! (schema, queries, writes) and hands them over as plain values; the storage
//! runs them, and runs writes in the same transaction as the entries they
//! belong to. No storage type crosses this seam, so every store runs the same
//! statements (written in the SQL that SQLite and PostgreSQL share:
//! `INSERT … ON CONFLICT …`, `?N` parameters).

use super::store::{self, Begin, Store, Tx};
use super::{sql, LedgerError, LedgerFiles};

pub use super::store::Value;

/// One statement of a state owner's, with its parameters (`?1`, `?2` …).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Value>,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<Value>) -> Statement {
        Statement { sql, params }
    }
}

/// A connection of its own to the ledger's database, for state that is read
/// and written outside appends (the HTTP cache, from the client's tasks).
pub struct StateHandle {
    store: Box<dyn Store>,
    path: std::path::PathBuf,
}

impl StateHandle {
    pub fn open(files: &LedgerFiles, schema: &str) -> Result<StateHandle, LedgerError> {
        let store = super::connect(files)?;
        store.schema(schema).map_err(sql(&files.db))?;
        Ok(StateHandle { store, path: files.db.clone() })
    }

    pub fn rows(&self, s: &Statement) -> Result<Vec<Vec<Value>>, LedgerError> {
        store::rows(&*self.store, s.sql, &s.params).map_err(sql(&self.path))
    }

    pub fn execute(&self, s: &Statement) -> Result<(), LedgerError> {
        self.changed(s).map(|_| ())
    }

    /// Runs a write and says how many rows it changed (a claim succeeded when 1).
    pub fn changed(&self, s: &Statement) -> Result<usize, LedgerError> {
        self.store.execute(s.sql, &s.params).map(|n| n as usize).map_err(sql(&self.path))
    }

    /// Runs writes in one transaction: all or none.
    pub fn transaction(&self, writes: &[Statement]) -> Result<(), LedgerError> {
        let tx = Tx::begin(&*self.store, Begin::Write).map_err(sql(&self.path))?;
        for w in writes {
            self.store.defer(w.sql, w.params.clone()).map_err(sql(&self.path))?;
        }
        tx.commit().map_err(sql(&self.path))
    }
}
