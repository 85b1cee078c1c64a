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
    let body = key.open(&proof.checkpoint).map_err(|e| Invalid(format!("checkpoint: {e}")))?;
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
    let bytes = entry::canonical_bytes(seq, time, kind, subject, actor, &entry::canonical_json(&e["payload"]));
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
