//! The ground a report stands on: before an answer is shown, the ledger it
//! comes from is checked against its signed checkpoint — cheaply, not a full
//! `ledger verify`: the head's signature and the tree's frontier (a few
//! rows), the tail of the log, the latest kept checkpoint (a consistency
//! proof), entries whose writer may not write them, and every entry the
//! answer cites as evidence (re-hashed, its inclusion proved against the
//! signed root, its writer's signature checked). What this cannot see without
//! a full replay (a projection row edited with no entry behind it) is what
//! `ledger verify`, and `report --strict`, are for.

use serde::Serialize;

use super::merkle;
use super::note::Checkpoint;
use super::store::Value;
use super::{sql, Ledger, LedgerError};

/// At most this many cited entries are re-checked per answer.
pub const EVIDENCE_LIMIT: usize = 5000;

/// What the check found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Ground {
    /// True when everything checked agrees with the signed checkpoint.
    pub ok: bool,
    /// Each disagreement, in words.
    pub problems: Vec<String>,
    /// Entries that are not counted as facts: their writer may not write
    /// their kind, or was not a writer then (`ledger verify` names each).
    pub ignored: Vec<u64>,
    /// How many cited entries were re-hashed and proved.
    pub evidence_checked: usize,
}

impl Ground {
    /// One line for a footer.
    pub fn summary(&self) -> String {
        let ignored = match self.ignored.len() {
            0 => String::new(),
            n => format!(
                "; {n} entr{} ignored (written by a writer not allowed to: seq {})",
                if n == 1 { "y" } else { "ies" },
                list(&self.ignored)
            ),
        };
        if self.problems.is_empty() {
            format!(
                "ledger checked against its signed checkpoint: head, tree and {} cited entr{}{ignored}",
                self.evidence_checked,
                if self.evidence_checked == 1 { "y" } else { "ies" }
            )
        } else {
            format!(
                "WARNING: the ledger does not agree with its signed checkpoint: {}{ignored}; do not rely on this answer, run `git-audit ledger verify`",
                self.problems.join("; ")
            )
        }
    }
}

fn list(seqs: &[u64]) -> String {
    let mut s: Vec<String> = seqs.iter().take(10).map(u64::to_string).collect();
    if seqs.len() > 10 {
        s.push(format!("… {} more", seqs.len() - 10));
    }
    s.join(", ")
}

impl Ledger {
    /// Checks the ground of an answer that cites `evidence` (ledger seqs).
    pub fn ground(&self, evidence: &[u64]) -> Result<Ground, LedgerError> {
        let mut g = Ground::default();
        let head = self.head()?;
        // 1. The head is what its signed note says, signed by the owner or a writer.
        match self.open_note(&head.note).map_err(|e| e.to_string()).and_then(|t| Checkpoint::parse(t).map_err(|e| e.to_string())) {
            Ok(cp) if cp.size == head.size && cp.root == head.root && cp.origin == self.origin => {}
            Ok(cp) => g.problems.push(format!(
                "the head (size {}) is not what its signed checkpoint says (size {}, origin {})",
                head.size, cp.size, cp.origin
            )),
            Err(e) => g.problems.push(format!("the head's checkpoint does not verify: {e}")),
        }
        // 2. The stored tree reproduces the signed root.
        let frontier = super::load_frontier(self.store(), &self.path, head.size)?;
        if super::fold(&frontier) != head.root {
            g.problems.push("the stored tree does not reproduce the signed root (edited)".into());
        }
        // 3. The log ends where the head says.
        let last = super::store::first(self.store(), "SELECT max(seq) FROM entries", &[])
            .map_err(sql(&self.path))?
            .and_then(|r| r.first().and_then(Value::as_int));
        let present = last.map_or(0, |l| l.max(0) as u64 + 1);
        if present != head.size {
            g.problems.push(format!("the log ends at size {present} but its signed head is size {}", head.size));
        }
        // 4. The latest kept checkpoint is a prefix of the head.
        let kept = super::store::first(
            self.store(),
            "SELECT note FROM checkpoints WHERE size <= ?1 ORDER BY size DESC LIMIT 1",
            &[Value::Int(head.size as i64)],
        )
        .map_err(sql(&self.path))?
        .and_then(|r| r.first().and_then(super::text_of).map(str::to_string));
        if let Some(note) = kept {
            match self.open_note(&note).ok().and_then(|t| Checkpoint::parse(t).ok()) {
                None => g.problems.push("the latest kept checkpoint does not verify".into()),
                Some(cp) if cp.size > 0 && cp.size < head.size => {
                    let proof = self.consistency(cp.size, head.size)?;
                    if !merkle::verify_consistency(&cp.root, cp.size, &head.root, head.size, &proof) {
                        g.problems.push(format!("the log no longer extends its kept checkpoint of size {} (rewritten)", cp.size));
                    }
                }
                Some(cp) if cp.size == head.size && cp.root != head.root => {
                    g.problems.push(format!("the head differs from the kept checkpoint of the same size {}", cp.size))
                }
                Some(_) => {}
            }
        }
        // 5. Entries that are not their writer's to write: judged per (writer,
        // kind) over the seqs it spans (one grouped scan, no rows read out);
        // only a group that fails somewhere is read entry by entry.
        if self.has_writer_columns {
            let writers = self.writers()?;
            let groups = super::store::rows(
                self.store(),
                "SELECT writer, kind, min(seq), max(seq) FROM entries WHERE writer IS NOT NULL AND writer <> ?1 GROUP BY writer, kind",
                &[super::writers::OWNER.into()],
            )
            .map_err(sql(&self.path))?;
            for r in groups {
                let writer = r.first().and_then(super::text_of).unwrap_or("").to_string();
                let kind = r.get(1).and_then(super::text_of).unwrap_or("").to_string();
                let (lo, hi) = (r.get(2).and_then(Value::as_int).unwrap_or(0), r.get(3).and_then(Value::as_int).unwrap_or(0));
                let judged = |seq: i64| writers.judge(seq.max(0) as u64, &kind, Some(&writer)).is_ok();
                // A writer's validity is one span per key: both ends valid and the
                // same span means every seq between them is.
                let same_span = writers.active(&writer, lo.max(0) as u64).map(|w| w.added)
                    == writers.active(&writer, hi.max(0) as u64).map(|w| w.added);
                if judged(lo) && judged(hi) && same_span {
                    continue;
                }
                let seqs = super::store::rows(
                    self.store(),
                    "SELECT seq FROM entries WHERE writer = ?1 AND kind = ?2 ORDER BY seq",
                    &[writer.as_str().into(), kind.as_str().into()],
                )
                .map_err(sql(&self.path))?;
                g.ignored
                    .extend(seqs.iter().filter_map(|r| r.first().and_then(Value::as_int)).filter(|&s| !judged(s)).map(|s| s.max(0) as u64));
            }
            // Entries naming no writer after entries began to name theirs.
            if let Some(first) = writers.first_v2 {
                let rows = super::store::rows(
                    self.store(),
                    "SELECT seq FROM entries WHERE seq > ?1 AND writer IS NULL",
                    &[Value::Int(first as i64)],
                )
                .map_err(sql(&self.path))?;
                g.ignored.extend(rows.iter().filter_map(|r| r.first().and_then(Value::as_int)).map(|s| s.max(0) as u64));
            }
            g.ignored.sort_unstable();
        }
        // 6. Every cited entry: its bytes, its place under the signed root, its writer's signature.
        let mut cited: Vec<u64> = evidence.iter().copied().filter(|&s| s < head.size).collect();
        cited.sort_unstable();
        cited.dedup();
        cited.truncate(EVIDENCE_LIMIT);
        // First each entry's bytes under the signed root, then each append
        // holding cited entries once (a batched append holds thousands: one
        // signature check serves all of its cited entries).
        let mut leaves = std::collections::BTreeMap::new();
        let mut signed_by = Vec::new();
        let mut present = Vec::new();
        for seq in cited {
            g.evidence_checked += 1;
            match self.entry(seq)? {
                Some(e) => present.push(e),
                None => g.problems.push(format!("cited entry seq {seq} is missing (deleted)")),
            }
        }
        // Every proof in one pass over the tree: their upper nodes are shared.
        let (size, root) = (head.size, head.root);
        let proofs = super::DbTree::new(self.store(), &self.path)
            .run(|t| present.iter().map(|e| merkle::inclusion_proof(t, e.seq, size)).collect::<Result<Vec<_>, _>>())?;
        for (e, proof) in present.into_iter().zip(proofs) {
            let bytes = e.canonical();
            if !merkle::verify_inclusion(&root, size, e.seq, &bytes, &proof) {
                g.problems.push(format!("cited entry seq {} is not what the signed log holds (edited)", e.seq));
                continue;
            }
            leaves.insert(e.seq, merkle::leaf_hash(&bytes));
            signed_by.extend(e.writer.map(|w| (e.seq, w)));
        }
        let mut appends: Vec<(u64, u64)> = Vec::new();
        for (seq, w) in signed_by {
            if appends.iter().any(|(first, last)| *first <= seq && seq <= *last) {
                continue;
            }
            let key = if w == super::writers::OWNER { Some(&self.verifier) } else { self.writers()?.active(&w, seq).map(|x| &x.key) };
            let Some(key) = key else {
                g.problems.push(format!("cited entry seq {seq}: `{w}` was not a writer then"));
                continue;
            };
            match super::append_signed(self.store(), &self.path, seq, &leaves, &w, key)? {
                Ok(range) => appends.push(range),
                Err(why) => g.problems.push(format!("cited entry seq {seq}: {why}")),
            }
        }
        g.ok = g.problems.is_empty();
        Ok(g)
    }
}

/// The ledger seqs an answer cites: every number under an `evidence` or `seq`
/// key of its JSON document.
pub fn cited(json: &serde_json::Value) -> Vec<u64> {
    fn walk(v: &serde_json::Value, out: &mut Vec<u64>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("seq", serde_json::Value::Number(n)) => out.extend(n.as_u64()),
                        ("evidence", serde_json::Value::Array(a)) => out.extend(a.iter().filter_map(serde_json::Value::as_u64)),
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(json, &mut out);
    out
}
