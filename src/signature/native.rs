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
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::{Cert, Fingerprint, KeyHandle, Packet};

use super::{KeyFile, SignatureError, SignatureFormat, SignatureStatus, SignedObject, Verdict, Verifier};

/// Verifies OpenPGP signatures against exactly the pinned certificates.
pub struct NativeVerifier {
    certs: Vec<Cert>,
    policy: StandardPolicy<'static>,
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
        Ok(NativeVerifier { certs, policy: StandardPolicy::new() })
    }

    /// The certificate holding a key the signature names as its issuer.
    fn find(&self, issuers: &[KeyHandle]) -> Option<(&Cert, Fingerprint)> {
        self.certs.iter().find_map(|c| c.keys().key_handles(issuers.iter()).next().map(|ka| (c, ka.key().fingerprint())))
    }
}

impl Verifier for NativeVerifier {
    fn verify(&mut self, object: &SignedObject<'_>) -> Verdict {
        let fmt = Some(SignatureFormat::Openpgp);
        let error = |detail: String| Verdict::new(SignatureStatus::Error, fmt).with_detail(detail);
        let packets = match openpgp::PacketPile::from_bytes(object.signature) {
            Ok(p) => p,
            Err(e) => return error(format!("cannot read the signature: {e}")),
        };
        let sigs: Vec<&Signature> = packets
            .descendants()
            .filter_map(|p| match p {
                Packet::Signature(s) => Some(s),
                _ => None,
            })
            .collect();
        let Some(sig) = sigs.first() else {
            return error("the signature block holds no signature".into());
        };
        let issuers = sig.get_issuers();
        let Some((cert, signing)) = self.find(&issuers) else {
            let mut v = Verdict::new(SignatureStatus::UnknownKey, fmt).with_detail("the signing key is not in the trust set");
            v.key = issuers.first().map(|h| h.to_hex());
            return v;
        };
        let mut verdict = Verdict::new(SignatureStatus::Good, fmt);
        verdict.key = Some(cert.fingerprint().to_hex());
        let now = cert.with_policy(&self.policy, None).ok();
        if let Some(vc) = &now {
            verdict.signer = vc.primary_userid().ok().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned());
            verdict.identities = vc
                .userids()
                .filter(|u| !matches!(u.revocation_status(), RevocationStatus::Revoked(_)))
                .filter_map(|u| u.userid().email().ok().flatten().map(str::to_string))
                .collect();
        }
        let (status, detail) = self.judge(cert, &signing, sig, object.payload, now.as_ref());
        if status == SignatureStatus::RevokedKey {
            // gpg marks a revoked key's user ids revoked: it vouches for no one.
            verdict.identities.clear();
            verdict.signer = None;
        }
        verdict.status = status;
        verdict.detail = detail;
        verdict
    }
}

impl NativeVerifier {
    fn judge(
        &self,
        cert: &Cert,
        signing: &Fingerprint,
        sig: &Signature,
        payload: &[u8],
        now: Option<&ValidCert<'_>>,
    ) -> (SignatureStatus, Option<String>) {
        let say = |s: SignatureStatus, d: &str| (s, Some(d.to_string()));
        // The mathematics first: a signature that does not verify is bad, whatever the key's state.
        let Some(key) = cert.keys().key_handle(signing.clone()).next() else {
            return say(SignatureStatus::UnknownKey, "the signing key is not in the trust set");
        };
        if sig.verify_message(key.key(), payload).is_err() {
            return say(SignatureStatus::Bad, "the signature does not match the commit content");
        }
        // Then the key's state now, as gpg reports it (R before X/Y).
        let revoked_now = matches!(cert.revocation_status(&self.policy, None), RevocationStatus::Revoked(_))
            || now
                .and_then(|vc| vc.keys().key_handle(signing.clone()).next())
                .is_some_and(|ka| matches!(ka.revocation_status(), RevocationStatus::Revoked(_)));
        if revoked_now {
            return say(SignatureStatus::RevokedKey, "the signing key has been revoked");
        }
        let Some(vc) = now else {
            return say(SignatureStatus::Error, "the signing certificate is not valid under the standard OpenPGP policy");
        };
        let expired_now = vc.alive().is_err() || vc.keys().key_handle(signing.clone()).next().is_some_and(|ka| ka.alive().is_err());
        if expired_now {
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
        let Some(ka) = vc.keys().key_handle(signing.clone()).next() else {
            return say(SignatureStatus::Error, "the key that made the signature is not bound to its certificate");
        };
        if !ka.for_signing() {
            return say(SignatureStatus::Error, "the key that made the signature is not marked for signing");
        }
        if ka.key().creation_time() > t {
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
            .map_err(|e| format!("the signature is not acceptable: {e}"))
    }
}
