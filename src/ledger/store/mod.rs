//! The storage seam under the ledger: a small set of operations (statements
//! with parameters, row streams, transactions, bulk inserts) that SQLite and
//! PostgreSQL both implement. The ledger's logic — hashing, the Merkle
//! frontier, signing, the compare-and-swap on the head — is written once above
//! it; statements are written in the SQL both engines share, with SQLite's
//! `?N` parameters, and the PostgreSQL store translates what differs
//! (parameters, DDL types).

pub mod postgres;
pub mod sqlite;

use std::fmt;

/// A value bound into, or read from, a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
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

    /// An integer, also from text that holds one (PostgreSQL returns JSON
    /// array elements as text).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Text(t) => t.parse().ok(),
            _ => None,
        }
    }

    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// Text, or "" for NULL (as reports show missing text).
    pub fn text_or_empty(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::Int(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            _ => String::new(),
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

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Text(s.clone())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<u64> for Value {
    fn from(i: u64) -> Value {
        Value::Int(i as i64)
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

/// A value read from a row, borrowed from the engine where it allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            ValueRef::Int(i) => Some(*i),
            ValueRef::Text(t) => t.parse().ok(),
            _ => None,
        }
    }

    pub fn as_blob(&self) -> Option<&'a [u8]> {
        match self {
            ValueRef::Blob(b) => Some(b),
            _ => None,
        }
    }

    /// Text, or bytes that are UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Text(t) => Some(t),
            ValueRef::Blob(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        match v {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Int(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// What went wrong in the store, as its engine said it (never with a password).
#[derive(Debug, Clone)]
pub struct StoreError {
    pub message: String,
    /// The engine's error code when it gave one (SQLite's extended code,
    /// PostgreSQL's SQLSTATE).
    pub code: Option<String>,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError { message: message.into(), code: None }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A write transaction (SQLite takes the write lock at once).
    Write,
    /// A read transaction: one snapshot for every statement in it.
    Snapshot,
}

/// A row callback: return an error to stop early.
pub type EachRow<'a> = dyn FnMut(Vec<Value>) -> Result<(), StoreError> + 'a;
/// A borrowed-row callback (see [`Store::scan`]).
pub type ScanRow<'a> = dyn FnMut(&[ValueRef<'_>]) -> Result<(), StoreError> + 'a;

/// One storage engine under the ledger.
/// A ledger's database engine. Above this trait the log speaks only the SQL
/// both engines share; where they differ (locks, the head's compare-and-swap,
/// JSON, planner hints, where the format version lives) the engine answers
/// through a method of its own, and owns its SQL.
pub trait Store: Send {
    /// Installs what the shared queries use that the engine lacks.
    fn install_functions(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Takes the cross-process lock named `job`, held until this connection
    /// closes; false when another process holds it. An engine whose jobs lock
    /// a local file needs none.
    fn try_job_lock(&self, _job: i64) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// What a `SELECT` ends with to lock the rows it reads until the
    /// transaction ends (empty where a write transaction already holds the
    /// whole database).
    fn row_lock(&self) -> &'static str {
        ""
    }
    /// For an append, in one round trip: takes `append_lock`, locks the head
    /// row and returns it with its frontier's hashes, as rows of (size, root,
    /// note, level, idx, hash). `None` where separate reads are as cheap.
    fn locked_head_with_frontier(&self, _append_lock: i64) -> Result<Option<Vec<Vec<Value>>>, StoreError> {
        Ok(None)
    }
    /// Runs `cas` (the head's compare-and-swap, which changes one row when the
    /// head is where it was and none when it moved) and commits `tx`. False,
    /// with nothing committed, when the head had moved.
    fn swap_head_and_commit(&self, tx: Tx<'_>, cas: &str, params: Vec<Value>, new_size: i64) -> Result<bool, StoreError>;
    /// Records the ledger's format version where this engine keeps it.
    fn set_format_version(&self, version: i64) -> Result<(), StoreError>;
    /// Whether the tree's subtree reads are better batched into one query
    /// (round trips are dear) than read one by one through cached statements.
    fn batch_reads(&self) -> bool {
        false
    }
    /// A FROM item `j` over a column holding a JSON array of numbers, with
    /// each element as `j.value`.
    fn json_numbers(&self, column: &str) -> String;
    /// A reference to `column` that keeps the planner off its index.
    fn unindexed(&self, column: &str) -> String {
        column.to_string()
    }
    /// Runs DDL (several statements, written for SQLite; the store translates
    /// types), serialised with other processes doing the same.
    fn schema(&self, ddl: &str) -> Result<(), StoreError>;
    /// Runs a query and hands each row to `each`, in order. `each` must not
    /// call the store.
    fn query(&self, sql: &str, params: &[Value], each: &mut EachRow<'_>) -> Result<(), StoreError>;
    /// Like `query`, handing each row borrowed (no copies where the engine
    /// allows: the long scans of `ledger verify`).
    fn scan(&self, sql: &str, params: &[Value], each: &mut ScanRow<'_>) -> Result<(), StoreError> {
        self.query(sql, params, &mut |row| {
            let refs: Vec<ValueRef<'_>> = row.iter().map(ValueRef::from).collect();
            each(&refs)
        })
    }
    /// Runs a write and returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a write whose row count nobody needs: the store may hold it and
    /// send it with the next ones (it is sent before any later query,
    /// `execute` or commit, and its error reported there).
    fn defer(&self, sql: &str, params: Vec<Value>) -> Result<(), StoreError> {
        self.execute(sql, &params).map(|_| ())
    }
    /// Inserts many rows into one table.
    fn insert_rows(&self, table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Result<(), StoreError>;
    /// Inserts or updates (by `key`) many rows of one table, in order: a later
    /// row with the same key wins.
    fn upsert_rows(&self, table: &str, columns: &[&str], key: &[&str], rows: Vec<Vec<Value>>) -> Result<(), StoreError> {
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO {table} ({}) VALUES ({}){}", columns.join(", "), marks.join(", "), upsert_tail(columns, key));
        rows.into_iter().try_for_each(|r| self.defer(&sql, r))
    }
    fn begin(&self, how: Begin) -> Result<(), StoreError>;
    fn commit(&self) -> Result<(), StoreError>;
    fn rollback(&self) -> Result<(), StoreError>;
    /// A second connection to the same database (for work on another thread).
    fn reopen(&self) -> Result<Box<dyn Store>, StoreError>;
    /// The names of the tables in the database.
    fn tables(&self) -> Result<Vec<String>, StoreError>;
    /// The columns of a table, in order.
    fn columns(&self, table: &str) -> Result<Vec<String>, StoreError>;
}

/// ` ON CONFLICT (key) DO UPDATE SET c = excluded.c, …` (both engines' SQL).
pub fn upsert_tail(columns: &[&str], key: &[&str]) -> String {
    let updates: Vec<String> = columns.iter().filter(|c| !key.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
    if updates.is_empty() {
        return format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "));
    }
    format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), updates.join(", "))
}

fn texts(store: &dyn Store, sql: &str, params: &[Value]) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    store.query(sql, params, &mut |r| {
        out.extend(r.into_iter().next().and_then(|v| v.as_text().map(str::to_string)));
        Ok(())
    })?;
    Ok(out)
}

/// Every row of a query.
pub fn rows(store: &dyn Store, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
    let mut out = Vec::new();
    store.query(sql, params, &mut |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// The first row of a query, if any.
pub fn first(store: &dyn Store, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>, StoreError> {
    Ok(rows(store, sql, params)?.into_iter().next())
}

/// A transaction that rolls back unless committed.
pub struct Tx<'s> {
    store: &'s dyn Store,
    open: bool,
}

impl<'s> Tx<'s> {
    pub fn begin(store: &'s dyn Store, how: Begin) -> Result<Tx<'s>, StoreError> {
        store.begin(how)?;
        Ok(Tx { store, open: true })
    }

    pub fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.store.commit()
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.store.rollback() {
                tracing::debug!(error = %e, "rollback failed");
            }
        }
    }
}

/// Where a ledger lives: a SQLite file, or a PostgreSQL database.
#[derive(Clone)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres(PgUrl),
}

/// A PostgreSQL connection URL. It may hold a password: it is shown only
/// through [`PgUrl::redacted`], and its `Debug` hides it too.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    /// `postgres://…` or `postgresql://…`; `None` for anything else.
    pub fn parse(s: &str) -> Option<PgUrl> {
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        (lower.starts_with("postgres://") || lower.starts_with("postgresql://")).then(|| PgUrl(s.to_string()))
    }

    /// The URL as given (with its password): for connecting only.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The URL with any password (in the authority, or a `password=` query
    /// parameter) replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.redacted())
    }
}

/// Hides the password of a connection URL.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{hidden}{}", &authority[at..])
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_they_are() {
        assert_eq!(redact_url("postgres://audit:s3cret@db.example:5432/ledger"), "postgres://audit:***@db.example:5432/ledger");
        assert_eq!(redact_url("postgresql://audit@db/ledger?sslmode=require"), "postgresql://audit@db/ledger?sslmode=require");
        assert_eq!(
            redact_url("postgres://db/ledger?user=a&password=s3cret&sslmode=verify-full"),
            "postgres://db/ledger?user=a&password=***&sslmode=verify-full"
        );
        assert_eq!(redact_url("postgres://a:p%40ss@h/d"), "postgres://a:***@h/d");
        assert!(!format!("{:?}", PgUrl::parse("postgres://a:hunter2@h/d").unwrap()).contains("hunter2"));
        assert!(PgUrl::parse("POSTGRESQL://h/d").is_some());
        assert!(PgUrl::parse("/var/lib/ledger.db").is_none());
    }
}
