//! The embedded store: one SQLite file in WAL mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use super::{Begin, EachRow, ScanRow, Store, StoreError, Tx, Value};

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        let code = e.sqlite_error().map(|c| c.extended_code.to_string());
        StoreError { message: e.to_string(), code }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(Sql::Null),
            Value::Int(i) => ToSqlOutput::Owned(Sql::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Owned(Sql::Real(*r)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        // Text that is not UTF-8 (someone wrote bytes into a text column)
        // comes back as a blob, so checks can tell it from text.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Blob(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl SqliteStore {
    /// Opens (creating when `create`) a ledger file, tuned for an audit log.
    pub fn open(path: &Path, create: bool) -> Result<SqliteStore, StoreError> {
        let flags = if create {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(path, flags)?;
        Ok(SqliteStore { conn, path: path.to_path_buf(), read_only: false })
    }

    /// Applies the settings every read-write connection uses.
    pub fn configure(&self) -> Result<(), StoreError> {
        self.conn.busy_timeout(Duration::from_secs(60))?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        // An audit log must not lose a committed append, even on power loss.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "cache_size", -262144)?;
        Ok(())
    }

    /// Whether every table and index `ddl` creates exists already, so running
    /// it would change nothing. Only DDL made entirely of `CREATE … IF NOT
    /// EXISTS name` statements can be answered; anything else says no.
    fn has_every_object(&self, ddl: &str) -> Result<bool, StoreError> {
        let Some(names) = created_objects(ddl) else { return Ok(false) };
        if names.is_empty() {
            return Ok(false);
        }
        let list = vec!["?"; names.len()].join(", ");
        let found: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM sqlite_master WHERE name IN ({list})"),
            rusqlite::params_from_iter(names.iter()),
            |r| r.get(0),
        )?;
        Ok(found == names.len() as i64)
    }

    pub fn pragma_int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.conn.pragma_query_value(None, name, |r| r.get(0))?)
    }

    pub fn set_pragma(&self, name: &str, value: i64) -> Result<(), StoreError> {
        Ok(self.conn.pragma_update(None, name, value)?)
    }
}

/// The names `ddl` creates, when it is only `CREATE TABLE|INDEX|UNIQUE INDEX
/// IF NOT EXISTS name …` statements (`None` when any statement is something else).
fn created_objects(ddl: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for stmt in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = stmt.split_whitespace().take(7).collect();
        let rest = match words.as_slice() {
            ["CREATE", "TABLE", "IF", "NOT", "EXISTS", name, ..] | ["CREATE", "INDEX", "IF", "NOT", "EXISTS", name, ..] => *name,
            ["CREATE", "UNIQUE", "INDEX", "IF", "NOT", "EXISTS", name] => *name,
            _ => return None,
        };
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            return None;
        }
        names.push(name);
    }
    Some(names)
}

impl Store for SqliteStore {
    fn swap_head_and_commit(&self, tx: Tx<'_>, cas: &str, params: Vec<Value>, _new_size: i64) -> Result<bool, StoreError> {
        // `BEGIN IMMEDIATE` holds the database's write lock: the swap cannot race.
        if self.execute(cas, &params)? != 1 {
            return Ok(false);
        }
        tx.commit()?;
        Ok(true)
    }

    fn set_format_version(&self, version: i64) -> Result<(), StoreError> {
        self.execute(&format!("PRAGMA user_version = {version}"), &[]).map(|_| ())
    }

    fn json_numbers(&self, column: &str) -> String {
        format!("json_each({column}) j")
    }

    fn unindexed(&self, column: &str) -> String {
        // `+column` is SQLite's way to keep a term off an index.
        format!("+{column}")
    }

    fn schema(&self, ddl: &str) -> Result<(), StoreError> {
        // Every open (each hook run) passes here: DDL that would change nothing
        // is not parsed and run again (in a hook's profile, 15-30% of its own work).
        if self.has_every_object(ddl)? {
            return Ok(());
        }
        Ok(self.conn.execute_batch(ddl)?)
    }

    fn query(&self, sql: &str, params: &[Value], each: &mut EachRow<'_>) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            let values = (0..n).map(|i| row.get_ref(i).map(from_sql)).collect::<Result<Vec<_>, _>>()?;
            each(values)?;
        }
        Ok(())
    }

    fn scan(&self, sql: &str, params: &[Value], each: &mut ScanRow<'_>) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => super::ValueRef::Null,
                    ValueRef::Integer(i) => super::ValueRef::Int(i),
                    ValueRef::Real(f) => super::ValueRef::Real(f),
                    // Text that is not UTF-8 reads as bytes (see `from_sql`).
                    ValueRef::Text(t) => std::str::from_utf8(t).map_or(super::ValueRef::Blob(t), super::ValueRef::Text),
                    ValueRef::Blob(b) => super::ValueRef::Blob(b),
                });
            }
            each(&values)?;
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        Ok(self.conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn insert_rows(&self, table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Result<(), StoreError> {
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), marks.join(", "));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for r in rows {
            stmt.execute(rusqlite::params_from_iter(r.iter()))?;
        }
        Ok(())
    }

    fn begin(&self, how: Begin) -> Result<(), StoreError> {
        let sql = match how {
            Begin::Write if !self.read_only => "BEGIN IMMEDIATE",
            _ => "BEGIN",
        };
        Ok(self.conn.execute_batch(sql)?)
    }

    fn commit(&self) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn rollback(&self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }

    fn reopen(&self) -> Result<Box<dyn Store>, StoreError> {
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        Ok(Box::new(SqliteStore { conn, path: self.path.clone(), read_only: true }))
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        super::texts(self, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", &[])
    }

    fn columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        super::texts(self, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", &[table.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_runs_only_when_something_it_creates_is_missing() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError { message: e.to_string(), code: None })?;
        let s = SqliteStore::open(&dir.path().join("l.db"), true)?;
        let ddl = "CREATE TABLE IF NOT EXISTS a (x INTEGER);\nCREATE INDEX IF NOT EXISTS a_x ON a (x);";
        assert!(!s.has_every_object(ddl)?);
        s.schema(ddl)?;
        assert!(s.has_every_object(ddl)?);
        // A release that adds a table gets it on the next open.
        let more = format!("{ddl}\nCREATE TABLE IF NOT EXISTS b (y TEXT);");
        assert!(!s.has_every_object(&more)?);
        s.schema(&more)?;
        assert_eq!(s.tables()?, ["a", "b"]);
        // DDL that is not only `CREATE … IF NOT EXISTS` is always run.
        assert_eq!(created_objects("CREATE TABLE IF NOT EXISTS c (z); ALTER TABLE c ADD COLUMN w"), None);
        assert_eq!(created_objects("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END"), None);
        assert_eq!(created_objects("-- note\nCREATE TABLE IF NOT EXISTS d (z)"), None);
        assert_eq!(created_objects(crate::ledger::projection::SCHEMA).map(|n| n.len()), Some(16));
        Ok(())
    }
}
