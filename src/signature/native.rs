//! OpenPGP verification in process (Sequoia), for `trust = "policy"`: the
//! pinned certificates are parsed once, each signature is checked with no
//! process started. The statuses mean what gpgme's mean (gpgme stays for
//! `trust = "gnupg"` and is the tests' oracle):
//!
//! - `unknown-key`: no pinned certificate holds the issuing key;
//! - `bad`: the signature does not verify over the payload with that key;
//! - `revoked-key`: the certificate or the signing key is revoked *now*
//!   (as gpg: even for a signature made before the revocation);
//! - `expired-key`: the certificate or the signing key has expired *now*
//!   (as gpg, which judges a key by its current self-signatures: an expiry
//!   extended later makes older signatures good again);
//! - `error`: unreadable signature, a key not marked for signing or newer than
//!   the signature, or a signature the standard policy rejects;
//! - `good` otherwise.

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::Key;
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::{Cert, KeyHandle, Packet};

use super::{KeyFile, SignatureError, SignatureFormat, SignatureStatus, SignedObject, Verdict, Verifier};

/// What the pinned certificates say *now*, worked out once: a signature then
/// costs a parse, a lookup and one signature check.
struct CertFacts {
    fingerprint: String,
    /// Revoked now (hard or soft), as gpg counts it.
    revoked: bool,
    /// Valid under the standard policy now (binding signatures check out).
    valid: bool,
    /// Alive now (not expired).
    alive: bool,
    signer: Option<String>,
    identities: Vec<String>,
    keys: Vec<KeyFacts>,
}

struct KeyFacts {
    handle: KeyHandle,
    key: Key<PublicParts, UnspecifiedRole>,
    /// Bound to the certificate now (a valid binding signature).
    bound: bool,
    revoked: bool,
    alive: bool,
    for_signing: bool,
}

/// Verifies OpenPGP signatures against exactly the pinned certificates.
pub struct NativeVerifier {
    certs: Vec<CertFacts>,
    policy: StandardPolicy<'static>,
    /// The earliest future expiry of any pinned certificate or key (Unix seconds).
    horizon: Option<i64>,
    /// Until when the last verdict holds (the horizon, or the signature's own expiry).
    last_until: Option<i64>,
}

impl NativeVerifier {
    /// Parses every pinned key file (a file may hold several certificates).
    pub fn pinned(keys: &[KeyFile]) -> Result<NativeVerifier, SignatureError> {
        let mut certs: Vec<Cert> = Vec::new();
        for k in keys {
            let fail = |reason: String| SignatureError::KeyImport { origin: k.origin.clone(), path: k.path.display().to_string(), reason };
            let parser = CertParser::from_bytes(&k.armored[..]).map_err(|e| fail(e.to_string()))?;
            let mut n = 0;
            for cert in parser {
                let cert = cert.map_err(|e| fail(e.to_string()))?;
                n += 1;
                // The same certificate pinned twice (or in two files) is merged, as a keyring would.
                match certs.iter().position(|c| c.fingerprint() == cert.fingerprint()) {
                    Some(i) => {
                        let old = certs.swap_remove(i);
                        certs.push(old.merge_public(cert).map_err(|e| fail(e.to_string()))?);
                    }
                    None => certs.push(cert),
                }
            }
            if n == 0 {
                return Err(fail("no usable public key in it (0 considered)".into()));
            }
        }
        let policy = StandardPolicy::new();
        let now = std::time::SystemTime::now();
        let horizon = certs
            .iter()
            .filter_map(|c| c.with_policy(&policy, None).ok())
            .flat_map(|vc| vc.keys().filter_map(|ka| ka.key_expiration_time()).collect::<Vec<_>>())
            .filter(|t| *t > now)
            .min()
            .map(unix);
        let certs = certs.iter().map(|c| facts(c, &policy)).collect();
        Ok(NativeVerifier { certs, policy, horizon, last_until: horizon })
    }

    /// The certificate and key a signature names as its issuer.
    fn find(&self, issuers: &[KeyHandle]) -> Option<(&CertFacts, &KeyFacts)> {
        self.certs.iter().find_map(|c| c.keys.iter().find(|k| issuers.iter().any(|h| h.aliases(&k.handle))).map(|k| (c, k)))
    }
}

fn facts(cert: &Cert, policy: &StandardPolicy<'static>) -> CertFacts {
    let now = cert.with_policy(policy, None).ok();
    let revoked = matches!(cert.revocation_status(policy, None), RevocationStatus::Revoked(_));
    let (signer, identities) = match &now {
        Some(vc) => (
            vc.primary_userid().ok().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()),
            vc.userids()
                .filter(|u| !matches!(u.revocation_status(), RevocationStatus::Revoked(_)))
                .filter_map(|u| u.userid().email().ok().flatten().map(str::to_string))
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    let keys = cert
        .keys()
        .map(|ka| {
            let fpr = ka.key().fingerprint();
            let valid = now.as_ref().and_then(|vc| vc.keys().key_handle(fpr.clone()).next());
            KeyFacts {
                handle: KeyHandle::from(fpr),
                key: ka.key().clone().role_into_unspecified(),
                bound: valid.is_some(),
                revoked: valid.as_ref().is_some_and(|k| matches!(k.revocation_status(), RevocationStatus::Revoked(_))),
                alive: valid.as_ref().is_some_and(|k| k.alive().is_ok()),
                for_signing: valid.as_ref().is_some_and(|k| k.for_signing()),
            }
        })
        .collect();
    CertFacts {
        fingerprint: cert.fingerprint().to_hex(),
        revoked,
        valid: now.is_some(),
        alive: now.as_ref().is_some_and(|vc| vc.alive().is_ok()),
        signer,
        identities,
        keys,
    }
}

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Verifier for NativeVerifier {
    fn valid_until(&self) -> Option<i64> {
        self.last_until
    }

    fn verify(&mut self, object: &SignedObject<'_>) -> Verdict {
        let fmt = Some(SignatureFormat::Openpgp);
        let error = |detail: String| Verdict::new(SignatureStatus::Error, fmt).with_detail(detail);
        let packets = match openpgp::PacketPile::from_bytes(object.signature) {
            Ok(p) => p,
            Err(e) => return error(format!("cannot read the signature: {e}")),
        };
        let Some(sig) = packets.descendants().find_map(|p| match p {
            Packet::Signature(s) => Some(s),
            _ => None,
        }) else {
            return error("the signature block holds no signature".into());
        };
        let expires = sig.signature_expiration_time().map(unix);
        self.last_until = match (self.horizon, expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let issuers = sig.get_issuers();
        let Some((cert, key)) = self.find(&issuers) else {
            let mut v = Verdict::new(SignatureStatus::UnknownKey, fmt).with_detail("the signing key is not in the trust set");
            v.key = issuers.first().map(|h| h.to_hex());
            return v;
        };
        let mut verdict = Verdict::new(SignatureStatus::Good, fmt);
        verdict.key = Some(cert.fingerprint.clone());
        let (status, detail) = self.judge(cert, key, sig, object.payload);
        if status != SignatureStatus::RevokedKey {
            // gpg marks a revoked key's user ids revoked: it vouches for no one.
            verdict.signer = cert.signer.clone();
            verdict.identities = cert.identities.clone();
        }
        verdict.status = status;
        verdict.detail = detail;
        verdict
    }
}

impl NativeVerifier {
    fn judge(&self, cert: &CertFacts, key: &KeyFacts, sig: &Signature, payload: &[u8]) -> (SignatureStatus, Option<String>) {
        let say = |s: SignatureStatus, d: &str| (s, Some(d.to_string()));
        // The mathematics first: a signature that does not verify is bad, whatever the key's state.
        if sig.verify_message(&key.key, payload).is_err() {
            return say(SignatureStatus::Bad, "the signature does not match the commit content");
        }
        // Then the key's state now, as gpg reports it (R before X/Y).
        if cert.revoked || key.revoked {
            return say(SignatureStatus::RevokedKey, "the signing key has been revoked");
        }
        if !cert.valid {
            return say(SignatureStatus::Error, "the signing certificate is not valid under the standard OpenPGP policy");
        }
        if !cert.alive || (key.bound && !key.alive) {
            return say(SignatureStatus::ExpiredKey, "the signing key has expired");
        }
        // As gpg: the key's current self-signatures decide whether it may sign
        // (an expiry extended later counts for older signatures too); the
        // signature must not predate the key.
        let Some(t) = sig.signature_creation_time() else {
            return say(SignatureStatus::Error, "the signature has no creation time");
        };
        if sig.signature_expiration_time().is_some_and(|e| e <= std::time::SystemTime::now()) {
            return say(SignatureStatus::ExpiredKey, "the signature has expired");
        }
        if !key.bound {
            return say(SignatureStatus::Error, "the key that made the signature is not bound to its certificate");
        }
        if !key.for_signing {
            return say(SignatureStatus::Error, "the key that made the signature is not marked for signing");
        }
        if key.key.creation_time() > t {
            return say(SignatureStatus::Error, "the signing key is newer than the signature");
        }
        if let Err(e) = self.policy_ok(sig) {
            return (SignatureStatus::Error, Some(e));
        }
        (SignatureStatus::Good, None)
    }

    /// The standard policy's verdict on the signature itself (hash algorithm …).
    fn policy_ok(&self, sig: &Signature) -> Result<(), String> {
        use openpgp::policy::Policy;
        self.policy
            .signature(sig, openpgp::policy::HashAlgoSecurity::CollisionResistance)
            .map_err(|e| format!("the signature is not acceptable: it uses {} ({e}); re-sign with SHA-256 or better", sig.hash_algo()))
    }
}
