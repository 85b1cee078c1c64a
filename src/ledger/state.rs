//! Working state other modules keep beside the log, in the ledger's database
//! but not in the log: the sync worker's cursors and HTTP cache. The owner of
//! that state writes its statements (schema, queries, writes) and hands them
//! over as plain values; the storage runs them, and runs writes in the same
//! transaction as the entries they belong to. No storage type crosses this
//! seam, so another storage can run the same statements (they are written in
//! SQL that SQLite and PostgreSQL share: `INSERT … ON CONFLICT …`).

use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rusqlite::{Connection, ToSql};

use super::{sql, LedgerError, LedgerFiles};

/// A value bound into, or read from, a state statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Value {
        s.map_or(Value::Null, Value::Text)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Blob(b)
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(Sql::Null),
            Value::Int(i) => ToSqlOutput::Owned(Sql::Integer(*i)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

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

pub(super) fn rows(conn: &Connection, path: &std::path::Path, s: &Statement) -> Result<Vec<Vec<Value>>, LedgerError> {
    let mut stmt = conn.prepare_cached(s.sql).map_err(sql(path))?;
    let n = stmt.column_count();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(s.params.iter()), |r| (0..n).map(|i| r.get_ref(i).map(from_sql)).collect())
        .map_err(sql(path))?;
    rows.collect::<Result<_, _>>().map_err(sql(path))
}

pub(super) fn execute_raw(conn: &Connection, s: &Statement) -> rusqlite::Result<()> {
    conn.prepare_cached(s.sql).and_then(|mut st| st.execute(rusqlite::params_from_iter(s.params.iter()))).map(|_| ())
}

pub(super) fn execute(conn: &Connection, path: &std::path::Path, s: &Statement) -> Result<(), LedgerError> {
    execute_raw(conn, s).map_err(sql(path))
}

/// A connection of its own to the ledger's database, for state that is read
/// and written outside appends (the HTTP cache, from the client's tasks).
pub struct StateHandle {
    conn: Connection,
    path: std::path::PathBuf,
}

impl StateHandle {
    pub fn open(files: &LedgerFiles, schema: &str) -> Result<StateHandle, LedgerError> {
        let conn = Connection::open(&files.db).map_err(sql(&files.db))?;
        conn.busy_timeout(std::time::Duration::from_secs(60)).map_err(sql(&files.db))?;
        conn.execute_batch(schema).map_err(sql(&files.db))?;
        Ok(StateHandle { conn, path: files.db.clone() })
    }

    pub fn rows(&self, s: &Statement) -> Result<Vec<Vec<Value>>, LedgerError> {
        rows(&self.conn, &self.path, s)
    }

    pub fn execute(&self, s: &Statement) -> Result<(), LedgerError> {
        execute(&self.conn, &self.path, s)
    }

    /// Runs a write and says how many rows it changed (a claim succeeded when 1).
    pub fn changed(&self, s: &Statement) -> Result<usize, LedgerError> {
        self.conn.prepare_cached(s.sql).and_then(|mut st| st.execute(rusqlite::params_from_iter(s.params.iter()))).map_err(sql(&self.path))
    }

    /// Runs writes in one transaction: all or none.
    pub fn transaction(&self, writes: &[Statement]) -> Result<(), LedgerError> {
        let tx = self.conn.unchecked_transaction().map_err(sql(&self.path))?;
        for w in writes {
            execute_raw(&tx, w).map_err(sql(&self.path))?;
        }
        tx.commit().map_err(sql(&self.path))
    }
}
