//! Signature verification: one [`Verdict`] per signed object, from verifiers
//! behind the [`Verifier`] trait (OpenPGP through gpgme, SSH in process), so
//! another OpenPGP backend can slot in without touching the checks.

pub mod allowed_signers;
pub mod cache;
pub mod native;
pub mod openpgp;
pub mod packets;
pub mod ssh;

use serde::{Deserialize, Serialize};

/// Whose keys decide whether an OpenPGP signature is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Only the keys pinned by the policy.
    Policy,
    /// The user's GnuPG keyring and its validity, like `git log --show-signature`.
    Gnupg,
}

/// What weak OpenPGP cryptography (SHA-1, DSA-1024, RSA-1024 …) does in
/// `trust = "policy"`: refused with its packet and algorithm named (`strict`),
/// or accepted as GnuPG accepts it, with a `signing.weak-algorithm` warning (`gnupg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenpgpPolicy {
    #[default]
    Strict,
    Gnupg,
}

/// A pinned OpenPGP key file, with where the policy named it.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub path: std::path::PathBuf,
    pub armored: Vec<u8>,
    /// Where the entry that brought this file in stands (`file:line:col`).
    pub origin: String,
}

/// The outcome of verifying one signature. Maps to git's `%G?` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// Valid, by a trusted key that is valid now (git: G).
    Good,
    /// The signature does not match the content (git: B).
    Bad,
    /// Not made by a key in the trust set (git: E, or U for an untrusted key).
    UnknownKey,
    /// The key (or the signature) has expired (git: Y, X).
    ExpiredKey,
    /// The key has been revoked (git: R).
    RevokedKey,
    /// No signature (git: N).
    Missing,
    /// Malformed or unverifiable.
    Error,
}

impl SignatureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
            Self::UnknownKey => "unknown-key",
            Self::ExpiredKey => "expired-key",
            Self::RevokedKey => "revoked-key",
            Self::Missing => "missing",
            Self::Error => "error",
        }
    }
}

/// The kind of signature found on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    Openpgp,
    Ssh,
    X509,
}

impl SignatureFormat {
    /// Recognises a signature by its armor.
    pub fn detect(sig: &[u8]) -> Option<SignatureFormat> {
        let head = String::from_utf8_lossy(&sig[..sig.len().min(64)]);
        let head = head.trim_start();
        if head.starts_with("-----BEGIN PGP SIGNATURE-----") || head.starts_with("-----BEGIN PGP MESSAGE-----") {
            Some(Self::Openpgp)
        } else if head.starts_with("-----BEGIN SSH SIGNATURE-----") {
            Some(Self::Ssh)
        } else if head.starts_with("-----BEGIN SIGNED MESSAGE-----") || head.starts_with("-----BEGIN PKCS7-----") {
            Some(Self::X509)
        } else {
            None
        }
    }
}

/// What verification concluded about one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: SignatureStatus,
    pub format: Option<SignatureFormat>,
    /// OpenPGP user id (`Name <email>`) or SSH principal(s).
    pub signer: Option<String>,
    /// OpenPGP primary key fingerprint, or the SSH key's `SHA256:` fingerprint.
    pub key: Option<String>,
    /// Identities the key is bound to (emails, principal patterns), for `signing.identity`.
    #[serde(skip)]
    pub identities: Vec<String>,
    /// Why the status is what it is, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Weak cryptography the verdict relies on, each naming its packet and
    /// algorithm ("the user-ID self-signature on … uses SHA-1").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weak: Vec<String>,
    /// What to do about it, where the verifier knows better than the status does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Verdict {
    pub fn new(status: SignatureStatus, format: Option<SignatureFormat>) -> Verdict {
        Verdict { status, format, signer: None, key: None, identities: Vec::new(), detail: None, weak: Vec::new(), fix: None }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Verdict {
        self.detail = Some(detail.into());
        self
    }

    /// True when `email` matches one of the key's identities (case-insensitive; SSH
    /// principal patterns may use `*` and `?`).
    pub fn binds(&self, email: &str) -> bool {
        allowed_signers::identity_matches(email, &self.identities)
    }
}

/// A signature and the bytes it claims to sign.
#[derive(Debug, Clone, Copy)]
pub struct SignedObject<'a> {
    pub signature: &'a [u8],
    pub payload: &'a [u8],
    /// When the object says it was made (committer time), Unix seconds.
    pub signed_at: i64,
}

/// A backend that verifies one kind of signature.
pub trait Verifier {
    fn verify(&mut self, object: &SignedObject<'_>) -> Verdict;
    /// Until when (Unix seconds) the last verdict stays true as time passes
    /// (a pinned key that expires later turns `good` into `expired-key`).
    fn valid_until(&self) -> Option<i64> {
        None
    }
}

/// Errors that stop verification from running at all.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot start GnuPG through gpgme: {0}\nHint: install GnuPG (`apt-get install gnupg`)")]
    Engine(String),
    #[error("{origin}: pinned key {path} could not be imported: {reason}\nHint: export it again with `gpg --armor --export KEYID`")]
    KeyImport { origin: String, path: String, reason: String },
    #[error("cannot create a private GnuPG home: {0}")]
    Home(std::io::Error),
}

/// Builds a verifier on first use.
type VerifierSetup = Box<dyn FnOnce() -> Result<Box<dyn Verifier>, SignatureError>>;

/// Dispatches each signature to the verifier for its format.
pub struct SignatureChecker {
    openpgp: Option<Box<dyn Verifier>>,
    openpgp_setup: Option<VerifierSetup>,
    openpgp_failure: Option<String>,
    ssh: ssh::SshVerifier,
    cache: Option<cache::VerdictCache>,
}

impl SignatureChecker {
    /// Verifiers for a trust set. The OpenPGP keyring is built on first use
    /// (or by [`SignatureChecker::prepare`]), so SSH-only runs never start gpg.
    pub fn new(
        trust: Trust,
        openpgp_policy: OpenpgpPolicy,
        openpgp_keys: Vec<KeyFile>,
        ssh_allowed_signers: Option<allowed_signers::AllowedSigners>,
    ) -> SignatureChecker {
        let setup: VerifierSetup = Box::new(move || {
            let v: Box<dyn Verifier> = match trust {
                Trust::Policy => Box::new(native::NativeVerifier::pinned(&openpgp_keys, openpgp_policy)?),
                Trust::Gnupg => Box::new(openpgp::GpgmeVerifier::user_keyring()?),
            };
            Ok(v)
        });
        SignatureChecker {
            openpgp: None,
            openpgp_setup: Some(setup),
            openpgp_failure: None,
            ssh: ssh::SshVerifier::new(ssh_allowed_signers),
            cache: None,
        }
    }

    /// Remembers verdicts across runs under the policy with `digest` (see [`cache`]).
    pub fn with_cache(mut self, digest: &str) -> SignatureChecker {
        self.cache = cache::VerdictCache::open(digest);
        self
    }

    /// Builds the OpenPGP keyring now, reporting unreadable keys.
    pub fn prepare(&mut self) -> Result<(), SignatureError> {
        if let Some(setup) = self.openpgp_setup.take() {
            match setup() {
                Ok(v) => self.openpgp = Some(v),
                Err(e) => {
                    self.openpgp_failure = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Verifies one commit's signature (or reports it missing).
    pub fn check(&mut self, signature: Option<&[u8]>, payload: &[u8], signed_at: i64) -> Verdict {
        self.check_object("commit", signature, payload, signed_at)
    }

    /// Verifies the signature of any signed object — `what` is "commit", "tag",
    /// "push certificate" — at the date the object claims (`signed_at`), so the
    /// verdict's words name the object that was judged.
    pub fn check_object(&mut self, what: &str, signature: Option<&[u8]>, payload: &[u8], signed_at: i64) -> Verdict {
        let mut verdict = self.verify(signature, payload, signed_at);
        if what != "commit" {
            verdict.detail = verdict.detail.map(|d| d.replace("the commit", &format!("the {what}")));
        }
        verdict
    }

    fn verify(&mut self, signature: Option<&[u8]>, payload: &[u8], signed_at: i64) -> Verdict {
        let Some(signature) = signature else {
            return Verdict::new(SignatureStatus::Missing, None).with_detail("the commit is not signed");
        };
        let key = self.cache.as_ref().map(|c| c.key(signature, payload, signed_at));
        if let (Some(c), Some(k)) = (&self.cache, &key) {
            if let Some(v) = c.get(k) {
                return v;
            }
        }
        let object = SignedObject { signature, payload, signed_at };
        let (verdict, until) = self.verify_uncached(&object);
        // Errors may be passing (an engine that could not start): judge those again next time.
        if let (Some(c), Some(k)) = (self.cache.as_mut(), key) {
            if verdict.status != SignatureStatus::Error {
                c.put(k, &verdict, until);
            }
        }
        verdict
    }

    fn verify_uncached(&mut self, object: &SignedObject<'_>) -> (Verdict, Option<i64>) {
        let signature = object.signature;
        let object = *object;
        let verdict = match SignatureFormat::detect(signature) {
            Some(SignatureFormat::Openpgp) => {
                if self.openpgp.is_none() && self.openpgp_failure.is_none() {
                    let _ = self.prepare();
                }
                match self.openpgp.as_mut() {
                    Some(v) => {
                        let verdict = v.verify(&object);
                        return (verdict, v.valid_until());
                    }
                    None => Verdict::new(SignatureStatus::Error, Some(SignatureFormat::Openpgp)).with_detail(format!(
                        "OpenPGP verification is unavailable: {}",
                        self.openpgp_failure.as_deref().unwrap_or("unknown reason")
                    )),
                }
            }
            Some(SignatureFormat::Ssh) => {
                let verdict = self.ssh.verify(&object);
                return (verdict, self.ssh.valid_until());
            }
            Some(SignatureFormat::X509) => Verdict::new(SignatureStatus::Error, Some(SignatureFormat::X509))
                .with_detail("x509 verification not supported yet (gitsign/smimesign signature)"),
            None => Verdict::new(SignatureStatus::Error, None).with_detail("unrecognised signature format"),
        };
        (verdict, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(SignatureFormat::detect(b"-----BEGIN PGP SIGNATURE-----\n"), Some(SignatureFormat::Openpgp));
        assert_eq!(SignatureFormat::detect(b"-----BEGIN SSH SIGNATURE-----\n"), Some(SignatureFormat::Ssh));
        assert_eq!(SignatureFormat::detect(b"-----BEGIN SIGNED MESSAGE-----\n"), Some(SignatureFormat::X509));
        assert_eq!(SignatureFormat::detect(b"garbage"), None);
        assert_eq!(SignatureFormat::detect(b""), None);
    }

    #[test]
    fn identity_binding_is_case_insensitive_and_globbed() {
        let mut v = Verdict::new(SignatureStatus::Good, Some(SignatureFormat::Ssh));
        v.identities = vec!["Alice@Example.com".into(), "*@ops.example.com".into()];
        assert!(v.binds("alice@example.COM"));
        assert!(v.binds("bob@ops.example.com"));
        assert!(!v.binds("bob@example.com"));
    }
}
