//! C2SP signed notes (Ed25519, signature type 0x01) and tlog checkpoints.
//!
//! A note is text ending in a newline, a blank line, and signature lines
//! `— <name> base64(key id ‖ signature)`. The key id is
//! SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]. Keys are written the way Go's
//! `golang.org/x/mod/sumdb/note` writes them, so other tools can check ours:
//! verifier `name+hexid+base64(0x01 ‖ pub)`, signer `PRIVATE+KEY+name+hexid+base64(0x01 ‖ seed)`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

const ALG_ED25519: u8 = 0x01;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    Key(String),
    #[error("malformed note: {0}")]
    Format(String),
    #[error("no signature by {0} on the note")]
    NotSigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(NoteError::Key(format!("bad key name `{name}`: no spaces or '+'")));
    }
    Ok(())
}

/// Signs notes with an Ed25519 key.
pub struct NoteSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl NoteSigner {
    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| NoteError::Key(format!("no randomness: {e}")))?;
        Ok(Self::from_seed(name, seed))
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> NoteSigner {
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        NoteSigner { name: name.to_string(), id, key }
    }

    /// Parses `PRIVATE+KEY+name+hexid+base64(0x01 ‖ seed)`.
    pub fn parse(s: &str) -> Result<NoteSigner, NoteError> {
        let rest = s.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| NoteError::Key("a signer key starts with PRIVATE+KEY+".into()))?;
        let (name, id, data) = split_key(rest)?;
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(NoteError::Key("expected an Ed25519 signer key".into()));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&data[1..]);
        let signer = Self::from_seed(name, seed);
        if signer.id != id {
            return Err(NoteError::Key("key id does not match the key".into()));
        }
        Ok(signer)
    }

    pub fn to_private_string(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex::encode(self.id), B64.encode(data))
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An Ed25519 signature over `bytes`, base64 (an entry's writer signature).
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        B64.encode(self.key.sign(bytes).to_bytes())
    }

    /// Signs `text` (which must end in a newline), returning the whole note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{text}\n— {} {}\n", self.name, B64.encode(blob)))
    }
}

fn split_key(s: &str) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hexid), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("expected name+hexid+base64".into()));
    };
    check_name(name)?;
    let raw = hex::decode(hexid).map_err(|_| NoteError::Key("key id is not hex".into()))?;
    let id: [u8; 4] = raw.try_into().map_err(|_| NoteError::Key("key id is not 8 hex digits".into()))?;
    let data = B64.decode(b64).map_err(|_| NoteError::Key("key is not base64".into()))?;
    Ok((name, id, data))
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Format("the text must end in a newline".into()));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Format("the text holds control characters".into()));
    }
    Ok(())
}

/// Checks notes signed by one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `name+hexid+base64(0x01 ‖ public key)`.
    pub fn parse(s: &str) -> Result<NoteVerifier, NoteError> {
        let (name, id, data) = split_key(s.trim())?;
        if data.len() != 33 || data[0] != ALG_ED25519 {
            return Err(NoteError::Key("expected an Ed25519 verifier key".into()));
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&data[1..]);
        let key = VerifyingKey::from_bytes(&pk).map_err(|e| NoteError::Key(e.to_string()))?;
        if key_id(name, &pk) != id {
            return Err(NoteError::Key("key id does not match the key".into()));
        }
        Ok(NoteVerifier { name: name.to_string(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// True when `sig` (base64) is this key's signature over `bytes`.
    pub fn verify_bytes(&self, bytes: &[u8], sig: &str) -> bool {
        B64.decode(sig.trim())
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .is_some_and(|sig| self.key.verify(bytes, &sig).is_ok())
    }

    /// Verifies `note` and returns its text.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let split = note.rfind("\n\n").ok_or_else(|| NoteError::Format("no blank line before the signatures".into()))?;
        let text = &note[..split + 1];
        check_text(text)?;
        let mut found = false;
        for line in note[split + 2..].lines() {
            let rest = line.strip_prefix("— ").ok_or_else(|| NoteError::Format(format!("bad signature line `{line}`")))?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| NoteError::Format(format!("bad signature line `{line}`")))?;
            if name != self.name {
                continue;
            }
            let blob = B64.decode(b64).map_err(|_| NoteError::Format("signature is not base64".into()))?;
            if blob.len() != 68 || blob[..4] != self.id {
                continue;
            }
            found = true;
            let sig = ed25519_dalek::Signature::from_slice(&blob[4..]).map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key.verify(text.as_bytes(), &sig).map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        }
        if !found {
            return Err(NoteError::NotSigned(self.name.clone()));
        }
        Ok(text)
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex::encode(self.id), B64.encode(data))
    }
}

/// A C2SP tlog checkpoint body: origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.lines();
        let bad = |m: &str| NoteError::Checkpoint(m.to_string());
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(bad("the tree size is not a decimal number"));
        }
        let size: u64 = size.parse().map_err(|_| bad("tree size out of range"))?;
        let root = B64.decode(lines.next().ok_or_else(|| bad("no root hash line"))?).map_err(|_| bad("root hash is not base64"))?;
        let root: Hash = root.try_into().map_err(|_| bad("root hash is not 32 bytes"))?;
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answer from golang.org/x/mod/sumdb/note's documentation and tests.
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn reproduces_the_go_known_answer() {
        let signer = NoteSigner::parse(SKEY).expect("signer key");
        assert_eq!(signer.verifier().to_string(), VKEY);
        assert_eq!(signer.to_private_string(), SKEY);
        assert_eq!(signer.sign(TEXT).expect("sign"), NOTE);
        let v = NoteVerifier::parse(VKEY).expect("verifier key");
        assert_eq!(v.open(NOTE), Ok(TEXT));
        assert_eq!(v.open(&NOTE.replace("cryptography", "cryptographY")), Err(NoteError::BadSignature("PeterNeumann".into())));
    }

    #[test]
    fn parses_the_c2sp_spec_example_and_ignores_unknown_signers() {
        let spec = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
        let v = NoteVerifier::parse(VKEY).expect("verifier key");
        assert_eq!(v.open(spec), Err(NoteError::NotSigned("PeterNeumann".into())));
    }

    #[test]
    fn rejects_mangled_keys() {
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a3").is_err());
        assert!(NoteVerifier::parse("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
        assert!(NoteSigner::parse(VKEY).is_err());
    }

    #[test]
    fn checkpoints_round_trip() {
        let c = Checkpoint { origin: "example.com/log".into(), size: 42, root: [7u8; 32] };
        let text = c.to_text();
        assert_eq!(Checkpoint::parse(&text), Ok(c));
        assert!(Checkpoint::parse("o\n042\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n-1\nAAAA\n").is_err());
        assert!(Checkpoint::parse("").is_err());
    }
}
