//! Reports: answers to an auditor's or a maintainer's questions, read from the
//! ledger's projections (and from git for commit ancestry). Reports never
//! change anything.

pub mod compliance;
pub mod deployments;
pub mod dora;
pub mod render;
pub mod trace;

use rusqlite::Connection;

use crate::time::{TimeError, Timestamp};

pub use render::{Document, ReportFormat, Section};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error("{0}")]
    Input(String),
}

/// True when `time` (any RFC 3339 text: an entry's, or GitHub's) lies in
/// `[since, until)`. Unparsable text lies nowhere.
pub(crate) fn within(time: &str, since: &Timestamp, until: &Timestamp) -> bool {
    Timestamp::parse(time).is_ok_and(|t| *since <= t && t < *until)
}

/// Rows of a query as strings (NULL → "").
pub(crate) fn strings(conn: &Connection, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<Vec<String>>, ReportError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let n = stmt.column_count();
    let rows = stmt.query_map(params, |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                    rusqlite::types::Value::Null => String::new(),
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Real(f) => f.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Blob(b) => hex::encode(b),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
