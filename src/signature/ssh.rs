//! SSH signatures (`-----BEGIN SSH SIGNATURE-----`, namespace `git`), verified
//! in process against git's allowed-signers file: no `ssh-keygen` per commit.

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::allowed_signers::AllowedSigners;
use super::{SignatureFormat, SignatureStatus, SignedObject, Verdict, Verifier};

/// The namespace git signs commits and tags in.
pub const GIT_NAMESPACE: &str = "git";

pub struct SshVerifier {
    allowed: Option<AllowedSigners>,
    /// Unix seconds taken as "now" for `valid-before` (tests may pin it).
    now: i64,
}

impl SshVerifier {
    pub fn new(allowed: Option<AllowedSigners>) -> SshVerifier {
        SshVerifier { allowed, now: chrono::Utc::now().timestamp() }
    }
}

impl Verifier for SshVerifier {
    /// The earliest `valid-before` still ahead: a `good` verdict turns into
    /// `expired-key` then, so a cached verdict must not outlive it.
    fn valid_until(&self) -> Option<i64> {
        self.allowed.as_ref()?.entries.iter().filter_map(|e| e.valid_before).filter(|b| *b > self.now).min()
    }

    fn verify(&mut self, object: &SignedObject<'_>) -> Verdict {
        let fmt = Some(SignatureFormat::Ssh);
        let sig = match SshSig::from_pem(object.signature) {
            Ok(s) => s,
            Err(e) => return Verdict::new(SignatureStatus::Error, fmt).with_detail(format!("malformed SSH signature: {e}")),
        };
        let key = PublicKey::new(sig.public_key().clone(), "");
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let mut verdict = Verdict::new(SignatureStatus::Error, fmt);
        verdict.key = Some(fingerprint);
        if sig.namespace() != GIT_NAMESPACE {
            verdict.status = SignatureStatus::Bad;
            verdict.detail = Some(format!("signed for namespace `{}`, not `git`", sig.namespace()));
            return verdict;
        }
        if let Err(e) = key.verify(GIT_NAMESPACE, object.payload, &sig) {
            verdict.status = SignatureStatus::Bad;
            verdict.detail = Some(format!("the signature does not match the commit content ({e})"));
            return verdict;
        }
        let Some(allowed) = &self.allowed else {
            verdict.status = SignatureStatus::UnknownKey;
            verdict.detail = Some("no ssh_allowed_signers file is configured, so no SSH key is trusted".into());
            return verdict;
        };
        let entries: Vec<_> = allowed.for_key(sig.public_key()).collect();
        if entries.is_empty() {
            verdict.status = SignatureStatus::UnknownKey;
            verdict.detail = Some(format!("the key is not in {}", allowed.path.display()));
            return verdict;
        }
        let in_ns: Vec<_> = entries.into_iter().filter(|e| e.allows_namespace(GIT_NAMESPACE)).collect();
        if in_ns.is_empty() {
            verdict.status = SignatureStatus::UnknownKey;
            verdict.detail = Some(format!("the key is in {} but not for namespace `git`", allowed.path.display()));
            return verdict;
        }
        // A key past its valid-before is expired now, whatever date the commit claims;
        // a commit dated before the key's valid-after was not signed by a valid key.
        let valid: Vec<_> = in_ns.iter().filter(|e| e.valid_before.is_none_or(|b| self.now < b)).collect();
        if valid.is_empty() {
            verdict.status = SignatureStatus::ExpiredKey;
            verdict.detail = Some(format!("the key's valid-before has passed (line {} of {})", in_ns[0].line, allowed.path.display()));
            verdict.signer = Some(in_ns[0].principals.join(","));
            return verdict;
        }
        let valid: Vec<_> = valid.into_iter().filter(|e| e.valid_after.is_none_or(|a| object.signed_at >= a)).collect();
        if valid.is_empty() {
            verdict.status = SignatureStatus::UnknownKey;
            verdict.detail = Some("the commit is dated before the key's valid-after".into());
            return verdict;
        }
        verdict.status = SignatureStatus::Good;
        verdict.identities = valid.iter().flat_map(|e| e.principals.iter().cloned()).collect();
        verdict.signer = Some(verdict.identities.join(","));
        verdict
    }
}
