//! Ledger entries and their canonical bytes.
//!
//! The bytes hashed for an entry are the JSON object
//! `{"actor":…,"kind":…,"payload":…,"seq":…,"subject":…,"time":…}`: keys sorted,
//! no insignificant whitespace, strings escaped as serde_json does, the payload
//! itself canonical (keys sorted by UTF-8 bytes, compact). Anyone can recompute them.
//!
//! Entry format 2 (entries with a writer) adds two keys, still sorted:
//! `…,"time":…,"v":2,"writer":"hooks"}`; format 1 entries (no writer) hash as
//! they always did. A writer signs each append once: the Ed25519 signature over
//! [`append_bytes`] (the append's first and last seq, the writer, and every
//! entry's leaf hash) is stored with the append's last entry (`sig`, as
//! `FIRST:BASE64`), so a batch of 10,000 costs one signature, and no entry can
//! be added to, taken from or changed in an append without breaking it.

use serde::Serialize;
use serde_json::Value;

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: u64,
    /// UTC, RFC 3339 with milliseconds.
    pub time: String,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub payload: Value,
    /// The writer that signed it (format 2); `None` for format 1 entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// On the last entry of an append: `FIRST:BASE64`, the writer's signature
    /// over [`append_bytes`] of entries FIRST..=this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

pub use crate::event::NewEntry;

/// Compact JSON with sorted keys (serde_json's map is ordered).
pub fn canonical_json(v: &Value) -> String {
    v.to_string()
}

/// The canonical bytes of an entry, from its stored columns.
pub fn canonical_bytes(seq: u64, time: &str, kind: &str, subject: &str, actor: &str, payload_json: &str) -> Vec<u8> {
    canonical_bytes_by(seq, time, kind, subject, actor, payload_json, None)
}

/// The canonical bytes of an entry in the format its writer says: format 2
/// with a writer, format 1 without.
pub fn canonical_bytes_by(
    seq: u64,
    time: &str,
    kind: &str,
    subject: &str,
    actor: &str,
    payload_json: &str,
    writer: Option<&str>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(112 + time.len() + kind.len() + subject.len() + actor.len() + payload_json.len());
    canonical_bytes_into(&mut buf, seq, time, kind, subject, actor, payload_json, writer);
    buf
}

/// [`canonical_bytes_by`] into a reused buffer (cleared first).
#[allow(clippy::too_many_arguments)]
pub fn canonical_bytes_into(
    buf: &mut Vec<u8>,
    seq: u64,
    time: &str,
    kind: &str,
    subject: &str,
    actor: &str,
    payload_json: &str,
    writer: Option<&str>,
) {
    use std::io::Write;
    buf.clear();
    let string = |buf: &mut Vec<u8>, s: &str| {
        // Writing a &str as JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    };
    buf.extend_from_slice(b"{\"actor\":");
    string(buf, actor);
    buf.extend_from_slice(b",\"kind\":");
    string(buf, kind);
    buf.extend_from_slice(b",\"payload\":");
    buf.extend_from_slice(payload_json.as_bytes());
    buf.extend_from_slice(b",\"seq\":");
    let _ = write!(buf, "{seq}");
    buf.extend_from_slice(b",\"subject\":");
    string(buf, subject);
    buf.extend_from_slice(b",\"time\":");
    string(buf, time);
    if let Some(w) = writer {
        buf.extend_from_slice(b",\"v\":2,\"writer\":");
        string(buf, w);
    }
    buf.push(b'}');
}

impl Entry {
    pub fn canonical(&self) -> Vec<u8> {
        canonical_bytes_by(
            self.seq,
            &self.time,
            &self.kind,
            &self.subject,
            &self.actor,
            &canonical_json(&self.payload),
            self.writer.as_deref(),
        )
    }
}

/// The bytes a writer signs for one append: a domain tag, the first and last
/// seq (big-endian u64), the writer's name, NUL, then each entry's leaf hash.
pub fn append_bytes(first: u64, last: u64, writer: &str, leaves: &[[u8; 32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + writer.len() + 32 * leaves.len());
    out.extend_from_slice(b"git-audit/append/v2\0");
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&last.to_be_bytes());
    out.extend_from_slice(writer.as_bytes());
    out.push(0);
    for l in leaves {
        out.extend_from_slice(l);
    }
    out
}

/// A stored append signature, `FIRST:BASE64`, as (first seq, signature).
pub fn parse_append_sig(sig: &str) -> Option<(u64, &str)> {
    let (first, b64) = sig.split_once(':')?;
    Some((first.parse().ok()?, b64))
}

/// Entry kinds: lower-case dotted words (`commit.verified`, `pr.synced`).
pub fn valid_kind(kind: &str) -> bool {
    let mut chars = kind.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && kind.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_bytes_sort_keys_and_match_serde() {
        let e = Entry {
            seq: 3,
            time: "2026-01-01T00:00:00.000Z".into(),
            kind: "commit.verified".into(),
            subject: "abc".into(),
            actor: "Jörg \"J\" <j@x>".into(),
            payload: json!({"zeta": 1, "alpha": {"b": [1, 2], "a": null}}),
            writer: None,
            sig: None,
        };
        let bytes = String::from_utf8(e.canonical()).unwrap_or_default();
        assert_eq!(
            bytes,
            r#"{"actor":"Jörg \"J\" <j@x>","kind":"commit.verified","payload":{"alpha":{"a":null,"b":[1,2]},"zeta":1},"seq":3,"subject":"abc","time":"2026-01-01T00:00:00.000Z"}"#
        );
        // Identical to serializing the whole entry through serde_json's sorted map.
        let whole = serde_json::to_value(&e).map(|v| v.to_string()).unwrap_or_default();
        assert_eq!(bytes, whole);
        // Format 2: the writer and the version, in their sorted places.
        let v2 = Entry { writer: Some("hooks".into()), ..e };
        let bytes = String::from_utf8(v2.canonical()).unwrap_or_default();
        assert!(bytes.ends_with(r#""time":"2026-01-01T00:00:00.000Z","v":2,"writer":"hooks"}"#), "{bytes}");
        let mut obj = serde_json::to_value(&v2).unwrap_or_default();
        if let Some(o) = obj.as_object_mut() {
            o.insert("v".into(), json!(2));
        }
        assert_eq!(bytes, obj.to_string());
    }

    #[test]
    fn kinds() {
        assert!(valid_kind("commit.verified") && valid_kind("deployment_status.synced"));
        assert!(!valid_kind("") && !valid_kind("Commit") && !valid_kind("a b") && !valid_kind("1x"));
    }
}
