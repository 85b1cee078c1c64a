//! DSSE envelopes (github.com/secure-systems-lab/dsse, v1.0): a payload, its
//! type, and Ed25519 signatures over the pre-authentication encoding
//! `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
//! The "DSSEv1" prefix keeps these signatures apart from anything else the
//! same key signs (ledger entries, checkpoint notes).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::ledger::note::{NoteSigner, NoteVerifier};

pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// The pre-authentication encoding.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// The key id git-audit gives a key in envelopes: its name and id (`name+hexid`).
pub fn keyid(v: &NoteVerifier) -> String {
    let text = v.to_string();
    text.rsplit_once('+').map(|(head, _)| head.to_string()).unwrap_or(text)
}

impl Envelope {
    /// `body` signed by `signer`.
    pub fn sign(payload_type: &str, body: &[u8], signer: &NoteSigner) -> Envelope {
        let sig = signer.sign_bytes(&pae(payload_type, body));
        Envelope {
            payload: B64.encode(body),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature { keyid: keyid(&signer.verifier()), sig }],
        }
    }

    /// The payload, when one signature is `verifier`'s over it.
    pub fn open(&self, verifier: &NoteVerifier) -> Option<Vec<u8>> {
        let body = B64.decode(&self.payload).ok()?;
        let message = pae(&self.payload_type, &body);
        self.signatures.iter().any(|s| s.keyid == keyid(verifier) && verifier.verify_bytes(&message, &s.sig)).then_some(body)
    }

    /// The payload, unverified (to say what an envelope claims).
    pub fn body(&self) -> Option<Vec<u8>> {
        B64.decode(&self.payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_specs_and_envelopes_verify_only_unchanged() {
        // The DSSE spec's test vector for PAE.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        let signer = NoteSigner::generate("server").unwrap_or_else(|e| panic!("{e}"));
        let other = NoteSigner::generate("server").unwrap_or_else(|e| panic!("{e}"));
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &signer);
        assert_eq!(env.open(&signer.verifier()).as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(env.open(&other.verifier()), None, "another key");
        let mut changed = env.clone();
        changed.payload = B64.encode(b"{\"a\":2}");
        assert_eq!(changed.open(&signer.verifier()), None, "another payload");
        let mut retyped = env;
        retyped.payload_type = "text/plain".into();
        assert_eq!(retyped.open(&signer.verifier()), None, "another type");
    }
}
