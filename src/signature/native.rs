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
//! - `error`: unreadable signature, more than one signature packet, a key not
//!   marked for signing or newer than the signature, or (under the `strict`
//!   OpenPGP policy) weak cryptography, with the packet and algorithm named;
//! - `good` otherwise.
//!
//! Signatures are read as GnuPG reads them ([`super::packets`]): a
//! non-canonical MPI length, which GitHub's web-flow signer writes, carries no
//! signed meaning and is normalised before Sequoia parses the packet.
//!
//! Certificates are always made valid under a GnuPG-like policy (SHA-1,
//! RIPEMD-160, DSA-1024, RSA-1024 and v3 signatures accepted, MD5 not), and
//! each use of something the standard policy refuses is listed as a
//! [`Weakness`]: under `openpgp_policy = "strict"` a weakness makes the
//! verdict `error`; under `"gnupg"` the verdict stands and carries it, and the
//! check turns it into a `signing.weak-algorithm` warning.

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::Key;
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::types::{HashAlgorithm, PublicKeyAlgorithm, RevocationStatus};
use openpgp::{Cert, KeyHandle, Packet};

use super::{KeyFile, OpenpgpPolicy, SignatureError, SignatureFormat, SignatureStatus, SignedObject, Verdict, Verifier};

/// One use of cryptography the standard OpenPGP policy refuses: which packet,
/// which algorithm, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakness {
    /// "data signature", "user-ID self-signature on <uid>", "subkey binding of <fpr>", "primary key", "signing subkey <fpr>".
    pub packet: String,
    /// "SHA-1", "MD5", "DSA-1024", "RSA-1024" …
    pub algorithm: String,
    pub remedy: Remedy,
}

/// What makes a weakness go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Remedy {
    /// New self-signatures with a modern hash (the key itself is sound).
    RefreshSelfSignatures,
    /// The key's algorithm or size is weak: only a new key helps.
    NewKey,
    /// The data signature's hash is weak: sign again.
    Resign,
}

/// The fix for a set of weaknesses of the key `fpr`, in one sentence (without
/// the `openpgp_policy = "gnupg"` alternative, which callers add where it applies).
pub fn remedies(weak: &[Weakness], fpr: &str) -> String {
    let mut list: Vec<Remedy> = weak.iter().map(|w| w.remedy).collect();
    list.sort();
    list.dedup();
    if list.contains(&Remedy::NewKey) {
        list.retain(|r| *r != Remedy::RefreshSelfSignatures);
    }
    list.iter()
        .map(|r| match r {
            Remedy::RefreshSelfSignatures => format!(
                "refresh the key's self-signatures with a modern hash (`gpg --quick-set-expire {fpr} 2y`, and `gpg --quick-set-expire {fpr} 2y '*'` for its subkeys) and export it again into the pinned key file"
            ),
            Remedy::NewKey => "make a new signing key (ed25519, or RSA of 3072 bits or more) and pin it".to_string(),
            Remedy::Resign => "sign with SHA-256 or better (`personal-digest-preferences SHA512 SHA384 SHA256` in gpg.conf) and re-sign the commit".to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The alternative to fixing the key: accept what GnuPG accepts, and see it.
pub const GNUPG_ALTERNATIVE: &str =
    "or accept it as GnuPG does with `[signing] openpgp_policy = \"gnupg\"` (each such signature then carries a `signing.weak-algorithm` warning)";

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} uses {}", self.packet, self.algorithm)
    }
}

/// What the pinned certificates say *now*, worked out once: a signature then
/// costs a parse, a lookup and one signature check.
struct CertFacts {
    fingerprint: String,
    /// Revoked now (hard or soft), as gpg counts it.
    revoked: bool,
    /// Valid now under the GnuPG-like policy (binding signatures check out).
    valid: bool,
    /// Why it is not valid, in Sequoia's words.
    invalid_reason: Option<String>,
    /// Alive now (not expired).
    alive: bool,
    signer: Option<String>,
    identities: Vec<String>,
    /// What the standard policy refuses in the certificate's own packets.
    weak: Vec<Weakness>,
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
    /// The subkey's own weaknesses (its algorithm, its binding signatures).
    weak: Vec<Weakness>,
}

/// Verifies OpenPGP signatures against exactly the pinned certificates.
pub struct NativeVerifier {
    certs: Vec<CertFacts>,
    /// Decides what is weak.
    strict: StandardPolicy<'static>,
    /// Decides what is refused outright (what GnuPG refuses).
    lenient: StandardPolicy<'static>,
    mode: OpenpgpPolicy,
    /// The earliest future expiry of any pinned certificate or key (Unix seconds).
    horizon: Option<i64>,
    /// Until when the last verdict holds (the horizon, or the signature's own expiry).
    last_until: Option<i64>,
}

/// The policy certificates are made valid under: what GnuPG 2.2/2.4 accepts.
pub fn gnupg_policy() -> StandardPolicy<'static> {
    use openpgp::packet::Tag;
    use openpgp::policy::AsymmetricAlgorithm as A;
    let mut p = StandardPolicy::new();
    p.accept_hash(HashAlgorithm::SHA1);
    p.accept_hash(HashAlgorithm::RipeMD);
    p.reject_hash(HashAlgorithm::MD5);
    for a in [A::RSA1024, A::DSA1024, A::DSA2048, A::DSA3072, A::DSA4096] {
        p.accept_asymmetric_algo(a);
    }
    p.accept_packet_tag_version(Tag::Signature, 3);
    p
}

/// Parses the certificates of every key file (a file may hold several; the same
/// certificate twice is merged, as a keyring would).
fn read_certs(keys: &[KeyFile]) -> Result<Vec<Cert>, SignatureError> {
    let mut certs: Vec<Cert> = Vec::new();
    for k in keys {
        let fail = |reason: String| SignatureError::KeyImport { origin: k.origin.clone(), path: k.path.display().to_string(), reason };
        let parser = CertParser::from_bytes(&k.armored[..]).map_err(|e| fail(e.to_string()))?;
        let mut n = 0;
        for cert in parser {
            let cert = cert.map_err(|e| fail(e.to_string()))?;
            n += 1;
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
    Ok(certs)
}

/// A key file's fingerprint, user id, and what is weak in it.
pub type KeyWeaknesses = (String, Option<String>, Vec<Weakness>);

/// Each pinned certificate's fingerprint, user id and what `strict` refuses in
/// it (for `policy check`, `keys add` and `keys list`).
pub fn certificate_weaknesses(keys: &[KeyFile]) -> Result<Vec<KeyWeaknesses>, SignatureError> {
    let lenient = gnupg_policy();
    let strict = StandardPolicy::new();
    Ok(read_certs(keys)?
        .iter()
        .map(|c| {
            let f = facts(c, &lenient, &strict);
            let mut weak = f.weak.clone();
            for k in f.keys.iter().filter(|k| k.for_signing) {
                weak.extend(k.weak.iter().cloned());
            }
            if !f.valid {
                weak.push(Weakness {
                    packet: "certificate".into(),
                    algorithm: f.invalid_reason.clone().unwrap_or_else(|| "no valid self-signature".into()),
                    remedy: Remedy::NewKey,
                });
            }
            (f.fingerprint, f.signer, weak)
        })
        .collect())
}

impl NativeVerifier {
    /// Parses every pinned key file; `mode` says what weak cryptography does.
    pub fn pinned(keys: &[KeyFile], mode: OpenpgpPolicy) -> Result<NativeVerifier, SignatureError> {
        let certs = read_certs(keys)?;
        let lenient = gnupg_policy();
        let strict = StandardPolicy::new();
        let now = std::time::SystemTime::now();
        let horizon = certs
            .iter()
            .filter_map(|c| c.with_policy(&lenient, None).ok())
            .flat_map(|vc| vc.keys().filter_map(|ka| ka.key_expiration_time()).collect::<Vec<_>>())
            .filter(|t| *t > now)
            .min()
            .map(unix);
        let certs = certs.iter().map(|c| facts(c, &lenient, &strict)).collect();
        Ok(NativeVerifier { certs, strict, lenient, mode, horizon, last_until: horizon })
    }

    /// The certificate and key a signature names as its issuer.
    fn find(&self, issuers: &[KeyHandle]) -> Option<(&CertFacts, &KeyFacts)> {
        self.certs.iter().find_map(|c| c.keys.iter().find(|k| issuers.iter().any(|h| h.aliases(&k.handle))).map(|k| (c, k)))
    }
}

/// "SHA-1", "MD5" … as people write them.
fn hash_name(h: HashAlgorithm) -> String {
    match h {
        HashAlgorithm::SHA1 => "SHA-1".into(),
        HashAlgorithm::MD5 => "MD5".into(),
        HashAlgorithm::RipeMD => "RIPEMD-160".into(),
        HashAlgorithm::SHA224 => "SHA-224".into(),
        HashAlgorithm::SHA256 => "SHA-256".into(),
        HashAlgorithm::SHA384 => "SHA-384".into(),
        HashAlgorithm::SHA512 => "SHA-512".into(),
        other => other.to_string(),
    }
}

/// "DSA-1024", "RSA-1024" for keys the standard policy refuses by size.
fn weak_key_algorithm(key: &Key<PublicParts, UnspecifiedRole>) -> Option<String> {
    let bits = key.mpis().bits().unwrap_or(0);
    #[allow(deprecated)]
    let name = match key.pk_algo() {
        PublicKeyAlgorithm::RSAEncryptSign | PublicKeyAlgorithm::RSASign => "RSA",
        PublicKeyAlgorithm::DSA => "DSA",
        _ => return None,
    };
    (bits < 2048).then(|| format!("{name}-{bits}"))
}

/// A self-signature's weakness, if the standard policy refuses its hash.
fn weak_self_signature(strict: &StandardPolicy<'static>, sig: &Signature, packet: String) -> Option<Weakness> {
    strict.signature(sig, HashAlgoSecurity::SecondPreImageResistance).err().map(|_| Weakness {
        packet,
        algorithm: hash_name(sig.hash_algo()),
        remedy: Remedy::RefreshSelfSignatures,
    })
}

fn facts(cert: &Cert, lenient: &StandardPolicy<'static>, strict: &StandardPolicy<'static>) -> CertFacts {
    let valid = cert.with_policy(lenient, None);
    let invalid_reason = valid.as_ref().err().map(|e| e.to_string());
    let now = valid.ok();
    let revoked = matches!(cert.revocation_status(lenient, None), RevocationStatus::Revoked(_));
    let mut weak = Vec::new();
    let (signer, identities) = match &now {
        Some(vc) => {
            let live: Vec<_> = vc.userids().filter(|u| !matches!(u.revocation_status(), RevocationStatus::Revoked(_))).collect();
            for u in &live {
                let uid = String::from_utf8_lossy(u.userid().value()).into_owned();
                weak.extend(weak_self_signature(strict, u.binding_signature(), format!("user-ID self-signature on \"{uid}\"")));
            }
            if let Ok(d) = vc.direct_key_signature() {
                weak.extend(weak_self_signature(strict, d, "direct-key self-signature".into()));
            }
            (
                vc.primary_userid().ok().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()),
                live.iter().filter_map(|u| u.userid().email().ok().flatten().map(str::to_string)).collect(),
            )
        }
        None => (None, Vec::new()),
    };
    let primary = cert.primary_key().key().clone().role_into_unspecified();
    if let Some(alg) = weak_key_algorithm(&primary) {
        weak.push(Weakness { packet: "primary key".into(), algorithm: alg, remedy: Remedy::NewKey });
    }
    let keys = cert
        .keys()
        .map(|ka| {
            let fpr = ka.key().fingerprint();
            let valid = now.as_ref().and_then(|vc| vc.keys().key_handle(fpr.clone()).next());
            let key = ka.key().clone().role_into_unspecified();
            let mut kweak = Vec::new();
            if let Some(vk) = valid.as_ref().filter(|k| !k.primary()) {
                if let Some(alg) = weak_key_algorithm(&key) {
                    kweak.push(Weakness { packet: format!("signing subkey {fpr}"), algorithm: alg, remedy: Remedy::NewKey });
                }
                kweak.extend(weak_self_signature(strict, vk.binding_signature(), format!("subkey binding of {fpr}")));
                if let Some(back) = vk.binding_signature().embedded_signatures().next() {
                    kweak.extend(weak_self_signature(strict, back, format!("primary-key binding (back-signature) of {fpr}")));
                }
            }
            KeyFacts {
                handle: KeyHandle::from(fpr),
                key,
                bound: valid.is_some(),
                revoked: valid.as_ref().is_some_and(|k| matches!(k.revocation_status(), RevocationStatus::Revoked(_))),
                alive: valid.as_ref().is_some_and(|k| k.alive().is_ok()),
                for_signing: valid.as_ref().is_some_and(|k| k.for_signing()),
                weak: kweak,
            }
        })
        .collect();
    CertFacts {
        fingerprint: cert.fingerprint().to_hex(),
        revoked,
        valid: now.is_some(),
        invalid_reason,
        alive: now.as_ref().is_some_and(|vc| vc.alive().is_ok()),
        signer,
        identities,
        weak,
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
        let block = match super::packets::read_signature_block(object.signature) {
            Ok(b) => b,
            Err(e) => return error(format!("cannot read the signature: {e}")),
        };
        if block.signatures > 1 {
            // git hands the block to gpg, which reports every signature, and says E.
            return error(format!("the signature block holds {} signatures; a commit or tag carries exactly one", block.signatures));
        }
        let packets = match openpgp::PacketPile::from_bytes(&block.binary) {
            Ok(p) => p,
            Err(e) => return error(format!("cannot read the signature: {e}")),
        };
        let mut sigs = packets.descendants().filter_map(|p| match p {
            Packet::Signature(s) => Some(s),
            _ => None,
        });
        let Some(sig) = sigs.next() else {
            let unreadable = packets.descendants().any(|p| matches!(p, Packet::Unknown(u) if u.tag() == openpgp::packet::Tag::Signature));
            return error(if unreadable {
                "the signature packet cannot be read (an unsupported version or algorithm, or malformed)".into()
            } else {
                "the signature block holds no signature".into()
            });
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
        let (status, detail, weak) = self.judge(cert, key, sig, object.payload);
        if !weak.is_empty() {
            let weaknesses = self.weaknesses(cert, key, sig);
            verdict.fix = Some(match self.mode {
                OpenpgpPolicy::Strict => format!("{}; {GNUPG_ALTERNATIVE}", remedies(&weaknesses, &cert.fingerprint)),
                OpenpgpPolicy::Gnupg => remedies(&weaknesses, &cert.fingerprint),
            });
        }
        if status != SignatureStatus::RevokedKey {
            // gpg marks a revoked key's user ids revoked: it vouches for no one.
            verdict.signer = cert.signer.clone();
            verdict.identities = cert.identities.clone();
        }
        verdict.status = status;
        verdict.detail = detail;
        verdict.weak = weak;
        verdict
    }
}

impl NativeVerifier {
    fn judge(&self, cert: &CertFacts, key: &KeyFacts, sig: &Signature, payload: &[u8]) -> (SignatureStatus, Option<String>, Vec<String>) {
        let say = |s: SignatureStatus, d: &str| (s, Some(d.to_string()), Vec::new());
        // The mathematics first: a signature that does not verify is bad, whatever the key's state.
        if sig.verify_message(&key.key, payload).is_err() {
            return say(SignatureStatus::Bad, "the signature does not match the commit content");
        }
        // Then the key's state now, as gpg reports it (R before X/Y).
        if cert.revoked || key.revoked {
            return say(SignatureStatus::RevokedKey, "the signing key has been revoked");
        }
        if !cert.valid {
            let why = cert.invalid_reason.as_deref().unwrap_or("no valid self-signature");
            return (SignatureStatus::Error, Some(format!("the signing certificate {} is not valid: {why}", cert.fingerprint)), Vec::new());
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
        // What the GnuPG-like policy refuses (MD5 …) is refused in either mode.
        if let Err(e) = self.lenient.signature(sig, HashAlgoSecurity::CollisionResistance) {
            return (
                SignatureStatus::Error,
                Some(format!(
                    "the data signature uses {}, which GnuPG refuses too ({e}); re-sign with SHA-256 or better",
                    hash_name(sig.hash_algo())
                )),
                Vec::new(),
            );
        }
        let weak = self.weaknesses(cert, key, sig);
        if weak.is_empty() {
            return (SignatureStatus::Good, None, Vec::new());
        }
        let named: Vec<String> = weak.iter().map(|w| format!("{w}")).collect();
        match self.mode {
            OpenpgpPolicy::Gnupg => (SignatureStatus::Good, None, named),
            OpenpgpPolicy::Strict => {
                let detail =
                    format!("weak cryptography refused by the strict OpenPGP policy: {} (key {})", named.join("; "), cert.fingerprint);
                (SignatureStatus::Error, Some(detail), named)
            }
        }
    }

    /// Everything the strict policy refuses that this signature relies on.
    fn weaknesses(&self, cert: &CertFacts, key: &KeyFacts, sig: &Signature) -> Vec<Weakness> {
        let mut weak: Vec<Weakness> = cert.weak.clone();
        if !Self::is_primary(cert, key) {
            weak.extend(key.weak.iter().cloned());
        }
        if self.strict.signature(sig, HashAlgoSecurity::CollisionResistance).is_err() {
            weak.push(Weakness { packet: "data signature".into(), algorithm: hash_name(sig.hash_algo()), remedy: Remedy::Resign });
        }
        weak
    }

    fn is_primary(cert: &CertFacts, key: &KeyFacts) -> bool {
        key.handle.to_hex() == cert.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::commit::ParsedCommit;

    fn web_flow_keys() -> Vec<KeyFile> {
        vec![KeyFile {
            path: "fixtures/real-world/github-web-flow.asc".into(),
            armored: include_bytes!("../../fixtures/real-world/github-web-flow.asc").to_vec(),
            origin: "test".into(),
        }]
    }

    fn verify(raw: &[u8]) -> Verdict {
        let commit = ParsedCommit::parse(raw, "gpgsig");
        let mut v = NativeVerifier::pinned(&web_flow_keys(), OpenpgpPolicy::Strict).expect("web-flow keys");
        let signature = commit.signature.as_deref().expect("signed");
        v.verify(&SignedObject { signature, payload: &commit.payload, signed_at: 0 })
    }

    #[test]
    fn real_web_flow_signatures_with_non_canonical_mpis_are_judged_as_gnupg_does() {
        // Sequoia alone: the packet is unreadable ("leading bit is not set").
        let raw = include_bytes!("../../fixtures/real-world/web-flow-rsa4096-4095bit-mpi.commit");
        let commit = ParsedCommit::parse(raw, "gpgsig");
        let sig = commit.signature.as_deref().expect("signed");
        let strict = openpgp::PacketPile::from_bytes(sig).expect("framing");
        assert!(!strict.descendants().any(|p| matches!(p, Packet::Signature(_))), "sequoia now parses it: the leniency may go");
        let block = super::super::packets::read_signature_block(sig).expect("framing");
        assert_eq!((block.signatures, block.normalised_mpis), (1, 1));

        let v = verify(raw);
        assert_eq!(v.status, SignatureStatus::Good, "{v:?}");
        assert_eq!(v.key.as_deref(), Some("968479A1AFF927E37D1A566BB5690EEEBB952194"));
        assert!(v.weak.is_empty());
        let v = verify(include_bytes!("../../fixtures/real-world/web-flow-rsa2048-expired-2043bit-mpi.commit"));
        assert_eq!(v.status, SignatureStatus::ExpiredKey, "{v:?}");
        assert_eq!(v.key.as_deref(), Some("5DE3E0509C47EA3CF04A42D34AEE18F83AFDEB23"));
    }

    #[test]
    fn normalising_an_mpi_does_not_let_a_changed_commit_pass() {
        let raw = include_bytes!("../../fixtures/real-world/web-flow-rsa4096-4095bit-mpi.commit");
        let text = String::from_utf8_lossy(raw).replacen("Merge", "Merge evil", 1);
        assert_eq!(verify(text.as_bytes()).status, SignatureStatus::Bad);
    }

    #[test]
    fn a_block_with_two_signatures_is_an_error() {
        let raw = include_bytes!("../../fixtures/real-world/web-flow-rsa4096-4095bit-mpi.commit");
        let commit = ParsedCommit::parse(raw, "gpgsig");
        let sig = commit.signature.as_deref().expect("signed");
        let block = super::super::packets::read_signature_block(sig).expect("framing");
        let mut two = block.binary.clone();
        two.extend_from_slice(&block.binary);
        let mut v = NativeVerifier::pinned(&web_flow_keys(), OpenpgpPolicy::Strict).expect("keys");
        let verdict = v.verify(&SignedObject { signature: &two, payload: &commit.payload, signed_at: 0 });
        assert_eq!(verdict.status, SignatureStatus::Error);
        assert!(verdict.detail.as_deref().unwrap_or("").contains("2 signatures"), "{verdict:?}");
    }
}
