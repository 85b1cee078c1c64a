//! `ledger verify`: recompute everything from the entries and compare it with
//! what is stored and signed. Every problem names the seq (or node, or
//! projection row) where it is, so an auditor knows what was touched.

use std::collections::HashMap;

use serde::Serialize;

use super::merkle::{self, Hash, MemoryTree};
use super::note::{Checkpoint, NoteVerifier};
use super::projection::{self, Replay};
use super::store::{Begin, Store, StoreError, Tx, Value as Sql, ValueRef};
use super::{entry, sql, text_of, Ledger, LedgerError};

/// One thing that is wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub message: String,
}

/// What `ledger verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoint_size: u64,
    pub problems: Vec<Problem>,
    /// Hook events that were decided but could not be recorded (`ledger.gap`).
    pub gaps: Vec<super::gap::Gap>,
}

impl VerifyReport {
    /// Intact and complete: nothing tampered with, nothing went unrecorded.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.gaps.is_empty()
    }
}

/// How many node or projection problems to list before summarising.
const LIST_LIMIT: usize = 20;

fn problem(seq: Option<u64>, message: impl Into<String>) -> Problem {
    Problem { seq, message: message.into() }
}

/// Verifies the ledger. `trusted` pins the public key (else the ledger's own
/// is used); `older` are (label, signed checkpoint) pairs the log must still extend.
pub fn verify(ledger: &Ledger, trusted: Option<&NoteVerifier>, older: &[(String, String)]) -> Result<VerifyReport, LedgerError> {
    let store = ledger.store();
    let sqlerr = sql(&ledger.path);
    let mut problems = Vec::new();
    let key = trusted.unwrap_or(&ledger.verifier);
    if trusted.is_some_and(|t| *t != ledger.verifier) {
        problems.push(problem(None, format!("the ledger's public key ({}) is not the trusted key ({key})", ledger.verifier)));
    }
    // The projections are replayed and compared on a second core, through a
    // connection and read snapshot of their own.
    let second = store.reopen().map_err(&sqlerr)?;
    let writers = ledger.writers()?.clone();
    for (seq, why) in &writers.problems {
        problems.push(problem(Some(*seq), format!("entry seq {seq}: {why}")));
    }
    let mut keys = vec![key.clone()];
    keys.extend(writers.list.iter().map(|w| w.key.clone()));
    let columns = ledger.entry_columns();

    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let path = ledger.path.clone();
        let replay_writers = writers.clone();
        let projections = scope.spawn(move || check_projections(&*second, &path, &replay_writers, columns));
        // Everything below reads one snapshot, even while others append.
        let snapshot = Tx::begin(store, Begin::Snapshot).map_err(&sqlerr)?;
        // 1. Entries: contiguous seqs, each matching its stored leaf hash.
        let mut tree = MemoryTree::new();
        let mut expected = 0u64;
        let mut buf = Vec::with_capacity(1024);
        // The append being read: its first seq, its writer, its leaves so far.
        let mut open: Option<(u64, String, Vec<Hash>)> = None;
        let unsigned = |(first, w, leaves): (u64, String, Vec<Hash>)| {
            let last = first + leaves.len() as u64 - 1;
            problem(
                Some(first),
                format!("entries seq {first}..{last} by `{w}` are in no signed append (their signature is missing: removed, or inserted)"),
            )
        };
        store
            .scan(&format!("SELECT {columns}, leaf FROM entries ORDER BY seq"), &[], &mut |row| {
                let seq = row.first().and_then(ValueRef::as_int).unwrap_or(0).max(0) as u64;
                if seq != expected {
                    let what = if seq == expected + 1 {
                        format!("entry seq {expected} is missing (deleted)")
                    } else {
                        format!("entries seq {expected}..{} are missing (deleted)", seq - 1)
                    };
                    problems.push(problem(Some(expected), what));
                }
                expected = seq + 1;
                let col = |i: usize| row.get(i).and_then(ValueRef::as_str);
                let stored_leaf: Option<Hash> = row.get(8).and_then(ValueRef::as_blob).and_then(|b| b.try_into().ok());
                let writer = col(6);
                let (Some(time), Some(kind), Some(subject), Some(actor), Some(payload)) = (col(1), col(2), col(3), col(4), col(5)) else {
                    problems.push(problem(Some(seq), format!("entry seq {seq} holds bytes that are not UTF-8 text (edited)")));
                    tree.push([0u8; 32]);
                    return Ok(());
                };
                // The leaf hash covers the stored bytes exactly: any change to any column is caught here.
                entry::canonical_bytes_into(&mut buf, seq, time, kind, subject, actor, payload, writer);
                let leaf = merkle::leaf_hash(&buf);
                // Format 2: its append is signed by its writer, who may write this kind.
                match writer {
                    None => {
                        if let Some(o) = open.take() {
                            problems.push(unsigned(o));
                        }
                        if let Err(why) = writers.judge(seq, kind, None) {
                            problems.push(problem(Some(seq), format!("entry seq {seq}: {why}; reports ignore it")));
                        }
                    }
                    Some(w) => {
                        if open.as_ref().is_some_and(|(_, ow, _)| ow != w) {
                            problems.extend(open.take().map(unsigned));
                        }
                        let (first, _, leaves) = open.get_or_insert_with(|| (seq, w.to_string(), Vec::new()));
                        leaves.push(leaf);
                        let signer = if w == super::writers::OWNER { Some(key) } else { writers.active(w, seq).map(|x| &x.key) };
                        if signer.is_none() {
                            problems.push(problem(
                                Some(seq),
                                format!("entry seq {seq}: written as `{w}`, which was not a writer of this ledger then (forged); reports ignore it"),
                            ));
                        }
                        if let Some(sig) = col(7) {
                            let first = *first;
                            let leaves = open.take().map(|o| o.2).unwrap_or_default();
                            match super::entry::parse_append_sig(sig) {
                                Some((from, s)) if from == first => {
                                    if signer.is_some_and(|k| !k.verify_bytes(&super::entry::append_bytes(first, seq, w, &leaves), s)) {
                                        problems.push(problem(
                                            Some(first),
                                            format!(
                                                "entries seq {first}..{seq}: their append signature (`{w}`) does not verify (forged, or edited)"
                                            ),
                                        ));
                                    }
                                }
                                _ => problems.push(problem(
                                    Some(seq),
                                    format!("entry seq {seq}: its append signature does not cover seq {first}..{seq} (forged, or edited)"),
                                )),
                            }
                        }
                        if let Err(why @ super::writers::Refusal::NotItsKind { .. }) = writers.judge(seq, kind, Some(w)) {
                            problems.push(problem(Some(seq), format!("entry seq {seq}: {why}; reports ignore it")));
                        }
                    }
                }
                if stored_leaf != Some(leaf) {
                    problems.push(problem(
                        Some(seq),
                        format!("entry seq {seq}: its content does not match its leaf hash (edited, or moved from another position)"),
                    ));
                }
                tree.push(leaf);
                Ok(())
            })
            .map_err(&sqlerr)?;
        problems.extend(open.take().map(unsigned));
        // Leaves actually present (fewer than `expected` when entries were deleted).
        let present = tree.size();

        tracing::debug!(elapsed = ?started.elapsed(), entries = present, "verify: entries hashed and replayed");
        // 2. Stored interior nodes against the recomputed tree.
        {
            let mut node_problems = 0usize;
            let mut seen = 0usize;
            store
                .scan("SELECT level, idx, hash FROM nodes ORDER BY level, idx", &[], &mut |row| {
                    let level = row.first().and_then(ValueRef::as_int).unwrap_or(-1);
                    let idx = row.get(1).and_then(ValueRef::as_int).unwrap_or(-1);
                    let hash = row.get(2).and_then(ValueRef::as_blob);
                    seen += 1;
                    let want = tree.levels.get(level.max(0) as usize).and_then(|l| l.get(idx.max(0) as usize));
                    if want.map(|w| &w[..]) != hash {
                        node_problems += 1;
                        if node_problems <= LIST_LIMIT {
                            let first = (idx.max(0) as u64) << level.max(0);
                            let last = first + (1u64 << level.max(0)) - 1;
                            problems.push(problem(
                                Some(first),
                                format!(
                                    "tree node (level {level}, index {idx}) over entries seq {first}..{last} does not match the entries"
                                ),
                            ));
                        }
                    }
                    Ok(())
                })
                .map_err(&sqlerr)?;
            let expected_nodes: usize = tree.levels.iter().skip(1).map(Vec::len).sum();
            if seen != expected_nodes {
                problems.push(problem(None, format!("the tree holds {seen} interior nodes where the entries make {expected_nodes}")));
            }
            if node_problems > LIST_LIMIT {
                problems.push(problem(None, format!("… and {} more tree nodes differ", node_problems - LIST_LIMIT)));
            }
        }

        tracing::debug!(elapsed = ?started.elapsed(), "verify: tree nodes compared");
        // 3. The signed head, and every kept checkpoint.
        let head = ledger.head()?;
        check_signed(&head.note, &keys, &ledger.origin, "the latest checkpoint", &mut tree, present, &mut problems);
        if head.size != present {
            // check_signed already named a truncation; name entries beyond the head.
            if present > head.size {
                problems.push(problem(
                    Some(head.size),
                    format!(
                        "entries seq {}..{} are not covered by the signed checkpoint (inserted without signing)",
                        head.size,
                        present - 1
                    ),
                ));
            }
        }
        let notes: Vec<String> = super::store::rows(store, "SELECT note FROM checkpoints ORDER BY size", &[])
            .map_err(&sqlerr)?
            .into_iter()
            .map(|r| r.first().and_then(text_of).unwrap_or_default().to_string())
            .collect();
        for n in notes {
            check_signed(&n, &keys, &ledger.origin, "a kept checkpoint", &mut tree, present, &mut problems);
        }
        for (what, note) in older {
            check_signed(note, &keys, &ledger.origin, what, &mut tree, present, &mut problems);
        }

        tracing::debug!(elapsed = ?started.elapsed(), "verify: checkpoints checked");
        let gaps = super::gap::recorded(ledger)?;
        drop(snapshot);
        // 4. Projections (computed on the other core, see above).
        let diffs = match projections.join() {
            Ok(r) => r?,
            Err(_) => vec!["the projection check stopped unexpectedly".to_string()],
        };
        let extra = diffs.len().saturating_sub(LIST_LIMIT);
        problems.extend(diffs.into_iter().take(LIST_LIMIT).map(|d| problem(None, d)));
        if extra > 0 {
            problems.push(problem(None, format!("… and {extra} more projection rows differ")));
        }
        tracing::debug!(elapsed = ?started.elapsed(), "verify: projections compared");
        Ok(VerifyReport { entries: present, checkpoint_size: head.size, problems, gaps })
    })
}

/// Replays the log into projection digests and compares every projection table
/// with it; returns one line per differing row.
fn check_projections(
    store: &dyn Store,
    path: &std::path::Path,
    writers: &super::writers::Writers,
    columns: &str,
) -> Result<Vec<String>, LedgerError> {
    let sqlerr = sql(path);
    // One read transaction: the entries and the tables are seen at the same instant.
    let _snapshot = Tx::begin(store, Begin::Snapshot).map_err(&sqlerr)?;
    let mut replay = Replay::default();
    replay_log(store, path, &mut replay, writers, columns)?;
    // 4. Projections against an in-memory replay of the log: stream each table,
    // compare digests, and re-derive full rows only for the keys that differ.
    let mut differing: Vec<(&'static projection::Table, String, Vec<Sql>)> = Vec::new();
    let mut diffs = Vec::new();
    for t in projection::TABLES {
        let mut rebuilt = replay.tables.remove(t.name).unwrap_or_default();
        store
            .query(&format!("SELECT {} FROM {}", t.columns.join(", "), t.name), &[], &mut |values| {
                let r = projection::Row { table: t, values };
                let key = r.key();
                match rebuilt.remove(&key) {
                    None => diffs.push(format!("projection {} row {key} is not derived from the log (inserted)", t.name)),
                    Some(d) if d != projection::digest(&replay.digest_key, &r.values) => differing.push((t, key, r.values)),
                    Some(_) => {}
                }
                Ok(())
            })
            .map_err(&sqlerr)?;
        for k in rebuilt.into_keys() {
            diffs.push(format!("projection {} lacks row {k} (deleted)", t.name));
        }
    }
    if !differing.is_empty() {
        let keep = differing.iter().map(|(t, k, _)| (t.name, k.clone())).collect();
        let full = replay_rows(store, path, keep, writers, columns)?;
        for (t, key, stored) in differing {
            let cols: Vec<&str> = match full.get(&(t.name, key.clone())) {
                Some(v) => t.columns.iter().zip(stored.iter().zip(v)).filter(|(_, (a, b))| a != b).map(|(c, _)| *c).collect(),
                None => vec!["?"],
            };
            diffs.push(format!("projection {} row {key} differs from a rebuild in {} (edited)", t.name, cols.join(", ")));
        }
    }
    diffs.sort();
    Ok(diffs)
}

/// Replays the log again, keeping the full values of the given rows.
fn replay_rows(
    store: &dyn Store,
    path: &std::path::Path,
    keep: std::collections::HashSet<(&'static str, String)>,
    writers: &super::writers::Writers,
    columns: &str,
) -> Result<HashMap<(&'static str, String), Vec<Sql>>, LedgerError> {
    let mut replay = Replay { keep: Some(keep), ..Replay::default() };
    replay_log(store, path, &mut replay, writers, columns)?;
    Ok(replay.kept)
}

/// Feeds every entry's projection rows, in order, to `replay`.
/// Entries their writer may not write are not facts: they project nothing.
fn replay_log(
    store: &dyn Store,
    path: &std::path::Path,
    replay: &mut Replay,
    writers: &super::writers::Writers,
    columns: &str,
) -> Result<(), LedgerError> {
    store
        .scan(&format!("SELECT {columns} FROM entries ORDER BY seq"), &[], &mut |row| {
            let seq = row.first().and_then(ValueRef::as_int).unwrap_or(0);
            let text = |i: usize| row.get(i).and_then(ValueRef::as_str).unwrap_or("");
            if writers.judge(seq.max(0) as u64, text(2), row.get(6).and_then(ValueRef::as_str)).is_err() {
                return Ok(());
            }
            replay.apply(projection::rows(seq.max(0) as u64, text(1), text(2), text(3), text(4), text(5)));
            Ok::<(), StoreError>(())
        })
        .map_err(sql(path))
}

/// Checks one signed checkpoint against the key and the recomputed tree.
fn check_signed(
    note: &str,
    keys: &[NoteVerifier],
    origin: &str,
    what: &str,
    tree: &mut MemoryTree,
    present: u64,
    problems: &mut Vec<Problem>,
) {
    let text = match super::open_by_any(keys, note) {
        Ok(t) => t,
        Err(e) => {
            problems.push(problem(None, format!("{what}: {e}")));
            return;
        }
    };
    let cp = match Checkpoint::parse(text) {
        Ok(c) => c,
        Err(e) => {
            problems.push(problem(None, format!("{what}: {e}")));
            return;
        }
    };
    if cp.origin != origin {
        problems.push(problem(None, format!("{what} is for log `{}`, not this ledger (`{origin}`)", cp.origin)));
        return;
    }
    if cp.size > present {
        problems.push(problem(
            Some(present),
            format!(
                "the log is truncated: {what} covers {} entries but only {present} are present (seq {present}..{} gone)",
                cp.size,
                cp.size - 1
            ),
        ));
        return;
    }
    let Ok(root) = merkle::root(tree, cp.size) else {
        problems.push(problem(None, format!("{what}: cannot recompute the root of size {}", cp.size)));
        return;
    };
    if root != cp.root {
        problems.push(problem(None, format!("the first {} entries do not hash to the root in {what} (history rewritten)", cp.size)));
        return;
    }
    // The recomputed log extends the checkpoint: check the proof of it, with ct-merkle.
    if cp.size > 0 && cp.size < present {
        let proof = merkle::consistency_proof(tree, cp.size, present);
        let now = merkle::root(tree, present);
        let valid = matches!((&proof, &now), (Ok(p), Ok(n)) if merkle::verify_consistency(&cp.root, cp.size, n, present, p));
        if !valid {
            problems.push(problem(None, format!("no valid consistency proof from {what} (size {}) to the log", cp.size)));
        }
    }
}
