//! Reports: answers to an auditor's or a maintainer's questions, read from the
//! ledger's projections (and from git for commit ancestry). Reports never
//! change anything.

pub mod compliance;
pub mod deployments;
pub mod dora;
pub mod render;
pub mod trace;

use rusqlite::Connection;

pub use render::{Document, Format, Section};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Input(String),
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

/// `90d`, `12h`, `2026-07-01` or an RFC 3339 time → an RFC 3339 lower bound.
pub fn parse_since(s: &str) -> Result<String, ReportError> {
    let s = s.trim();
    if let Some(d) = s.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
        return Ok((chrono::Utc::now() - chrono::Duration::days(d)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if let Some(h) = s.strip_suffix('h').and_then(|n| n.parse::<i64>().ok()) {
        return Ok((chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format!("{d}T00:00:00Z"));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    Err(ReportError::Input(format!("`{s}` is not a time: use 90d, 12h, 2026-07-01 or an RFC 3339 time")))
}

/// The end of a window (exclusive): a date means the end of that day.
pub fn parse_until(s: &str) -> Result<String, ReportError> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(format!("{}T00:00:00Z", d + chrono::Duration::days(1)));
    }
    parse_since(s)
}

pub(crate) fn short(id: &str) -> String {
    id.chars().take(10).collect()
}
