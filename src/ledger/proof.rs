//! Checking a receipt from `ledger prove` offline: the entry's canonical bytes,
//! its inclusion proof, and the signed checkpoint, against a key the checker
//! trusts. Anyone can do this without the ledger.

use base64::Engine;

use super::note::{Checkpoint, NoteVerifier};
use super::{entry, merkle, Proof};

/// A receipt that checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub seq: u64,
    pub kind: String,
    pub subject: String,
    /// The log (checkpoint origin) and its size.
    pub origin: String,
    pub size: u64,
    pub signer: String,
}

/// Why a receipt does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Verifies `proof` against `key`.
pub fn verify(proof: &Proof, key: &NoteVerifier) -> Result<Included, Invalid> {
    let writer_key = checkpoint_writer(proof, key)?;
    let signer = writer_key.as_ref().unwrap_or(key);
    let body = signer.open(&proof.checkpoint).map_err(|e| Invalid(format!("checkpoint: {e}")))?;
    let cp = Checkpoint::parse(body).map_err(|e| Invalid(e.to_string()))?;
    if cp.size != proof.tree_size {
        return Err(Invalid(format!("the proof is for tree size {} but the checkpoint is for {}", proof.tree_size, cp.size)));
    }
    let e = &proof.entry;
    let (Some(seq), Some(time), Some(kind), Some(subject), Some(actor)) =
        (e["seq"].as_u64(), e["time"].as_str(), e["kind"].as_str(), e["subject"].as_str(), e["actor"].as_str())
    else {
        return Err(Invalid("the entry lacks seq, time, kind, subject or actor".into()));
    };
    if seq != proof.leaf_index {
        return Err(Invalid(format!("the entry's seq {seq} is not the proof's leaf index {}", proof.leaf_index)));
    }
    let bytes = entry::canonical_bytes_by(seq, time, kind, subject, actor, &entry::canonical_json(&e["payload"]), e["writer"].as_str());
    let mut hashes = Vec::new();
    for h in &proof.inclusion_proof {
        match base64::engine::general_purpose::STANDARD.decode(h).ok().and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            Some(h) => hashes.push(h),
            None => return Err(Invalid(format!("`{h}` is not a base64 SHA-256 hash"))),
        }
    }
    if !merkle::verify_inclusion(&cp.root, cp.size, seq, &bytes, &hashes) {
        return Err(Invalid(format!(
            "entry seq {seq} is not included in the log {} of size {} (entry or proof altered)",
            cp.origin, cp.size
        )));
    }
    Ok(Included {
        seq,
        kind: kind.to_string(),
        subject: subject.to_string(),
        origin: cp.origin.to_string(),
        size: cp.size,
        signer: key.name().to_string(),
    })
}

/// The writer key that signed the proof's checkpoint, when the proof says a
/// writer did: taken only from a `ledger.writer` entry the owner (`key`) signed.
fn checkpoint_writer(proof: &Proof, key: &NoteVerifier) -> Result<Option<NoteVerifier>, Invalid> {
    let Some(w) = &proof.checkpoint_writer else { return Ok(None) };
    let text = |f: &str| w[f].as_str().ok_or_else(|| Invalid(format!("checkpoint_writer lacks `{f}`")));
    let seq = w["seq"].as_u64().ok_or_else(|| Invalid("checkpoint_writer lacks `seq`".into()))?;
    if text("kind")? != crate::event::Kind::LedgerWriter.as_str() || text("writer")? != crate::ledger::writers::OWNER {
        return Err(Invalid("checkpoint_writer is not a writer entry of the ledger's owner".into()));
    }
    let bytes = entry::canonical_bytes_by(
        seq,
        text("time")?,
        text("kind")?,
        text("subject")?,
        text("actor")?,
        &entry::canonical_json(&w["payload"]),
        Some(crate::ledger::writers::OWNER),
    );
    // A writer change is an append of its own: its signature covers just it.
    let signed = entry::parse_append_sig(text("sig")?).is_some_and(|(first, sig)| {
        first == seq && key.verify_bytes(&entry::append_bytes(seq, seq, crate::ledger::writers::OWNER, &[merkle::leaf_hash(&bytes)]), sig)
    });
    if !signed {
        return Err(Invalid("checkpoint_writer is not signed by the ledger's owner key".into()));
    }
    let change: crate::ledger::writers::WriterChanged =
        serde_json::from_value(w["payload"].clone()).map_err(|e| Invalid(format!("checkpoint_writer: {e}")))?;
    if change.action != "add" {
        return Err(Invalid("checkpoint_writer does not add a writer".into()));
    }
    NoteVerifier::parse(&change.key).map(Some).map_err(|e| Invalid(format!("checkpoint_writer's key: {e}")))
}
