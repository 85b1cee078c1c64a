//! Decisions that could not be recorded. When a hook cannot append (the key is
//! missing, the file is corrupt …) and recording is not required, it notes the
//! decision in a spool file beside the ledger; the next append that succeeds
//! first writes a `ledger.gap` entry saying what went unrecorded, so `ledger
//! verify` and `report compliance` show the hole instead of hiding it.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::state::Statement;
use super::{Ledger, LedgerError, LedgerFiles, NewEntry, Receipt, Select};
use crate::event::{LedgerGap, Payload, Spooled, Unrecorded};

/// The subject of every gap marker (so they are found through the subject index).
pub const SUBJECT: &str = "unrecorded";

/// The spool file beside the ledger (`ledger.db` → `ledger.gaps`).
pub fn spool_path(loc: &LedgerFiles) -> PathBuf {
    loc.spool.clone()
}

/// Notes one unrecorded event (one JSON line). Best effort: returns the error
/// when even the spool cannot be written, for the caller to print.
pub fn note(loc: &LedgerFiles, what: Unrecorded) -> std::io::Result<()> {
    // Beside the ledger, in a folder that already exists: a ledger location
    // that was never set up is no place to start creating folders.
    let path = spool_path(loc);
    // A PostgreSQL ledger's spool is local (<git-dir>/audit/): made on first need.
    if let Some(dir) = path.parent().filter(|_| loc.url.is_some()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(&Spooled { time: super::now(), event: what }).map_err(std::io::Error::other)?;
    line.push('\n');
    std::fs::OpenOptions::new().create(true).append(true).open(&path)?.write_all(line.as_bytes())
}

/// Appends `entries`, preceded by a `ledger.gap` entry when unrecorded events
/// are waiting in the spool. The spool is claimed by renaming it (so two hooks
/// never both report the same gap) and put back if the append fails.
pub fn append_with_gaps(ledger: &mut Ledger, loc: &LedgerFiles, entries: &[NewEntry]) -> Result<Receipt, LedgerError> {
    append_with_gaps_then(ledger, loc, entries, |_| Vec::new()).map(|a| a.receipt)
}

/// What [`append_with_gaps_then`] wrote.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Covers the gap marker, when one was written, and the entries.
    pub receipt: Receipt,
    /// The seq of the caller's first entry.
    pub first_own: u64,
    /// The gap marker written first, if any: its seq and how many events it reports.
    pub gap: Option<(u64, u64)>,
}

/// [`append_with_gaps`], with state writes made from what was appended, in the
/// same transaction (see [`Ledger::append_then`]).
pub fn append_with_gaps_then(
    ledger: &mut Ledger,
    loc: &LedgerFiles,
    entries: &[NewEntry],
    then: impl FnOnce(&Appended) -> Vec<Statement>,
) -> Result<Appended, LedgerError> {
    let spool = spool_path(loc);
    let claimed = spool.with_extension(format!("gaps.{}", std::process::id()));
    let pending = std::fs::rename(&spool, &claimed).ok().and_then(|_| std::fs::read_to_string(&claimed).ok());
    let Some(text) = pending else {
        let mut appended = None;
        let receipt = ledger.append_then(entries, |r| {
            let a = Appended { receipt: r.clone(), first_own: r.first_seq, gap: None };
            let writes = then(&a);
            appended = Some(a);
            writes
        })?;
        return Ok(appended.unwrap_or(Appended { first_own: receipt.first_seq, receipt, gap: None }));
    };
    let events: Vec<Spooled> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let first = events.first().map(|e| e.time.clone()).unwrap_or_default();
    let last = events.last().map(|e| e.time.clone()).unwrap_or_default();
    let unrecorded = events.len() as u64;
    let marker = LedgerGap { unrecorded, first, last, events }.entry(SUBJECT, "git-audit");
    let mut all = Vec::with_capacity(entries.len() + 1);
    all.push(marker);
    all.extend_from_slice(entries);
    let mut appended = None;
    let result = ledger.append_then(&all, |r| {
        let a = Appended { receipt: r.clone(), first_own: r.first_seq + 1, gap: Some((r.first_seq, unrecorded)) };
        let writes = then(&a);
        appended = Some(a);
        writes
    });
    match result {
        Ok(r) => {
            let _ = std::fs::remove_file(&claimed);
            Ok(appended.unwrap_or(Appended { first_own: r.first_seq + 1, gap: Some((r.first_seq, unrecorded)), receipt: r }))
        }
        Err(e) => {
            restore(&claimed, &spool, &text);
            Err(e)
        }
    }
}

fn restore(claimed: &Path, spool: &Path, text: &str) {
    let put_back = std::fs::OpenOptions::new().create(true).append(true).open(spool).and_then(|mut f| f.write_all(text.as_bytes()));
    if put_back.is_ok() {
        let _ = std::fs::remove_file(claimed);
    }
}

/// A gap marker found in the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gap {
    pub seq: u64,
    pub unrecorded: u64,
    pub first: String,
    pub last: String,
}

/// Every `ledger.gap` entry, oldest first.
pub fn recorded(ledger: &Ledger) -> Result<Vec<Gap>, LedgerError> {
    let gaps = ledger.events::<LedgerGap>(&Select { subject: Some(SUBJECT), ..Select::default() })?;
    Ok(gaps
        .into_iter()
        .map(|r| Gap { seq: r.seq, unrecorded: r.payload.unrecorded, first: r.payload.first, last: r.payload.last })
        .collect())
}
