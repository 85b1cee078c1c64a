//! Projections: relational tables derived from the log for queries.
//!
//! Each entry kind maps to row upserts by one pure function ([`rows`]); the
//! append path writes them, `ledger rebuild` replays them, and `ledger verify`
//! compares the tables with an in-memory replay. Kinds without a projection
//! (and kinds added later) simply produce no rows.

use std::collections::BTreeMap;

use rusqlite::types::Value as Sql;
use serde_json::Value;

use super::entry::Entry;

/// A projection table: its columns, and the columns that key a row.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub key: &'static [&'static str],
}

pub const COMMITS: Table = Table {
    name: "commits",
    columns: &["id", "signature_status", "signature_format", "signer", "key", "verdict", "findings", "policy_digest", "verified_seq", "verified_time"],
    key: &["id"],
};

pub const REF_UPDATES: Table = Table {
    name: "ref_updates",
    columns: &["seq", "ref", "old", "new", "pusher", "time", "accepted", "kind"],
    key: &["seq", "ref"],
};

pub const TABLES: &[&Table] = &[&COMMITS, &REF_UPDATES];

/// DDL for the projection tables and their indexes.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS commits (
    id TEXT PRIMARY KEY, signature_status TEXT, signature_format TEXT, signer TEXT, key TEXT,
    verdict TEXT, findings INTEGER, policy_digest TEXT, verified_seq INTEGER, verified_time TEXT
);
CREATE TABLE IF NOT EXISTS ref_updates (
    seq INTEGER NOT NULL, ref TEXT NOT NULL, old TEXT, new TEXT, pusher TEXT, time TEXT,
    accepted INTEGER, kind TEXT, PRIMARY KEY (seq, ref)
);
CREATE INDEX IF NOT EXISTS ref_updates_ref_time ON ref_updates (ref, time);
CREATE INDEX IF NOT EXISTS ref_updates_new ON ref_updates (new);
";

/// One row to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: &'static Table,
    pub values: Vec<Sql>,
}

impl Row {
    pub fn key(&self) -> String {
        self.table
            .key
            .iter()
            .filter_map(|k| self.table.columns.iter().position(|c| c == k))
            .map(|i| show(&self.values[i]))
            .collect::<Vec<_>>()
            .join("/")
    }
}

pub fn show(v: &Sql) -> String {
    match v {
        Sql::Null => "NULL".into(),
        Sql::Integer(i) => i.to_string(),
        Sql::Real(r) => r.to_string(),
        Sql::Text(t) => t.clone(),
        Sql::Blob(b) => hex::encode(b),
    }
}

fn text(v: &Value) -> Sql {
    match v {
        Value::Null => Sql::Null,
        Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

fn flag(v: &Value) -> Sql {
    match v.as_bool() {
        Some(b) => Sql::Integer(b as i64),
        None => Sql::Null,
    }
}

/// The rows an entry contributes.
pub fn rows(e: &Entry) -> Vec<Row> {
    let p = &e.payload;
    match e.kind.as_str() {
        "commit.verified" => {
            let sig = &p["signature"];
            vec![Row {
                table: &COMMITS,
                values: vec![
                    Sql::Text(e.subject.clone()),
                    text(&sig["status"]),
                    text(&sig["format"]),
                    text(&sig["signer"]),
                    text(&sig["key"]),
                    text(&p["verdict"]),
                    Sql::Integer(p["findings"].as_array().map_or(0, |a| a.len() as i64)),
                    text(&p["policy_digest"]),
                    Sql::Integer(e.seq as i64),
                    Sql::Text(e.time.clone()),
                ],
            }]
        }
        "push.decided" | "ref.updated" => {
            let accepted = if e.kind == "ref.updated" { Sql::Integer(1) } else { flag(&p["accepted"]) };
            p["ref_updates"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| Row {
                    table: &REF_UPDATES,
                    values: vec![
                        Sql::Integer(e.seq as i64),
                        text(&u["ref"]),
                        text(&u["old"]),
                        text(&u["new"]),
                        Sql::Text(e.actor.clone()),
                        Sql::Text(e.time.clone()),
                        accepted.clone(),
                        Sql::Text(e.kind.clone()),
                    ],
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The SQL that upserts a row of `t`.
pub fn upsert_sql(t: &Table) -> String {
    let cols = t.columns.join(", ");
    let params: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = t.columns.iter().filter(|c| !t.key.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {} ({cols}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        t.name,
        params.join(", "),
        t.key.join(", "),
        updates.join(", ")
    )
}

/// Projection state replayed in memory: table → key → values.
#[derive(Default)]
pub struct Replay {
    pub tables: BTreeMap<&'static str, BTreeMap<String, Vec<Sql>>>,
}

impl Replay {
    pub fn apply(&mut self, e: &Entry) {
        for r in rows(e) {
            let key = r.key();
            self.tables.entry(r.table.name).or_default().insert(key, r.values);
        }
    }
}
