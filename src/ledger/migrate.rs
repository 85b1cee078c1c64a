//! `ledger migrate --to`: copy a ledger into another store (SQLite into
//! PostgreSQL, or back), entry for entry. Nothing is re-hashed: the entries,
//! the stored tree, the signed head, the kept checkpoints, the meta (origin and
//! public key) and the projections and working state are copied as stored, so
//! the copy has the same root and verifies against checkpoints taken before
//! the move, with the same key.

use serde::Serialize;

use super::store::{self, Begin, Location, Store, Tx};
use super::{projection, sql, verify, Ledger, LedgerError, LedgerFiles, APPLICATION_ID, FORMAT_VERSION, SCHEMA};

/// Rows copied per insert.
const BATCH: usize = 2000;

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    pub from: String,
    pub to: String,
    pub entries: u64,
    /// Rows copied, by table.
    pub tables: Vec<(String, u64)>,
    /// The signed root, base64, the same on both sides.
    pub root: String,
    /// Problems `ledger verify` found in the copy (none when it is whole).
    pub problems: Vec<verify::Problem>,
}

/// Copies `source` into the empty store at `to`. `schemas` are the working
/// state's tables (sync, notifications) to create there first, so they are
/// copied too.
pub fn migrate(source: &Ledger, to: &LedgerFiles, schemas: &[&str]) -> Result<Migrated, LedgerError> {
    let dest_path = &to.db;
    let dest: Box<dyn Store> = match to.location() {
        Location::Sqlite(path) => {
            if path.exists() {
                return Err(LedgerError::Exists { path });
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| LedgerError::Io { path: parent.to_path_buf(), source })?;
            }
            let s = store::sqlite::SqliteStore::open(&path, true).map_err(sql(dest_path))?;
            s.configure().map_err(sql(dest_path))?;
            s.set_pragma("application_id", APPLICATION_ID).map_err(sql(dest_path))?;
            s.set_pragma("user_version", FORMAT_VERSION).map_err(sql(dest_path))?;
            Box::new(s)
        }
        Location::Postgres(url) => {
            let s = store::postgres::PgStore::connect(&url).map_err(sql(dest_path))?;
            if super::has_meta(&s, dest_path)? {
                return Err(LedgerError::Exists { path: dest_path.clone() });
            }
            Box::new(s)
        }
    };
    dest.schema(SCHEMA).map_err(sql(dest_path))?;
    dest.schema(projection::SCHEMA).map_err(sql(dest_path))?;
    dest.install_functions().map_err(sql(dest_path))?;
    for s in schemas {
        dest.schema(s).map_err(sql(dest_path))?;
        source.state_schema(s)?;
    }

    let src = source.store();
    let src_path = &source.path;
    let dest_tables = dest.tables().map_err(sql(dest_path))?;
    let mut copied = Vec::new();
    {
        // One snapshot of the source, one transaction on the destination.
        let _read = Tx::begin(src, Begin::Snapshot).map_err(sql(src_path))?;
        let tx = Tx::begin(&*dest, Begin::Write).map_err(sql(dest_path))?;
        for table in src.tables().map_err(sql(src_path))? {
            if !dest_tables.contains(&table) {
                continue;
            }
            let theirs = dest.columns(&table).map_err(sql(dest_path))?;
            let columns: Vec<String> = src.columns(&table).map_err(sql(src_path))?.into_iter().filter(|c| theirs.contains(c)).collect();
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            let mut batch = Vec::with_capacity(BATCH);
            let mut n = 0u64;
            let mut failed = None;
            src.query(&format!("SELECT {} FROM {table}", cols.join(", ")), &[], &mut |row| {
                batch.push(row);
                n += 1;
                if batch.len() == BATCH {
                    if let Err(e) = dest.insert_rows(&table, &cols, std::mem::take(&mut batch)) {
                        failed = Some(e);
                        return Err(store::StoreError::new("stopped"));
                    }
                }
                Ok(())
            })
            .map_err(|e| match failed.take() {
                Some(d) => sql(dest_path)(store::StoreError { message: format!("copying {table}: {}", d.message), code: d.code }),
                None => sql(src_path)(e),
            })?;
            dest.insert_rows(&table, &cols, batch)
                .map_err(|d| sql(dest_path)(store::StoreError { message: format!("copying {table}: {}", d.message), code: d.code }))?;
            copied.push((table, n));
        }
        tx.commit().map_err(sql(dest_path))?;
    }
    drop(dest);

    let copy = Ledger::open(&LedgerFiles { key: std::path::PathBuf::new(), ..to.clone() })?;
    let (before, after) = (source.head()?, copy.head()?);
    if before.root != after.root || before.size != after.size {
        return Err(LedgerError::Inconsistent {
            path: dest_path.clone(),
            msg: format!("the copy's head (size {}) differs from the source's (size {})", after.size, before.size),
        });
    }
    let report = verify::verify(&copy, Some(&source.verifier), &[("the source's checkpoint".to_string(), before.note.clone())])?;
    use base64::Engine;
    Ok(Migrated {
        from: src_path.display().to_string(),
        to: dest_path.display().to_string(),
        entries: after.size,
        tables: copied,
        root: base64::engine::general_purpose::STANDARD.encode(after.root),
        problems: report.problems,
    })
}
