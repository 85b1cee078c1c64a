//! OpenPGP verification through gpgme.
//!
//! In `trust = "policy"` mode we build a private GnuPG home (mode 0700, owned by
//! this process, removed on drop) holding only the pinned keys, so the user's
//! keyring and trust database play no part. In `trust = "gnupg"` mode the
//! user's own home decides, with its validity, as `git log --show-signature` does.

use std::io::Write;

use gpgme::{Context, Protocol, SignatureSummary, Validity};
use tempfile::TempDir;

use super::KeyFile;
use super::{SignatureError, SignatureFormat, SignatureStatus, SignedObject, Verdict, Verifier};

/// OpenPGP verification with gpgme (one gpg process per verification).
pub struct GpgmeVerifier {
    ctx: Context,
    /// Key facts by signing (sub)key fingerprint: a key listing is a gpg process
    /// of its own, and key state does not change during a run.
    keys: std::collections::HashMap<String, Option<KeyFacts>>,
    /// Kept alive for the context's lifetime; `None` when using the user's home.
    _home: Option<TempDir>,
    /// In the user's keyring, validity decides (like git's `U` vs `G`).
    require_validity: bool,
}

impl GpgmeVerifier {
    /// A verifier that trusts exactly `keys`. The private GnuPG home is cached
    /// (per user, keyed by the keys' bytes) so a hook does not re-import keys on
    /// every push; without a usable cache directory it is built afresh.
    pub fn pinned(keys: &[KeyFile]) -> Result<GpgmeVerifier, SignatureError> {
        let _ = gpgme::init();
        let (dir, home) = match cached_home(keys) {
            Some(dir) => (dir, None),
            None => {
                let home = Self::build_home(keys, None)?;
                (home.path().to_path_buf(), Some(home))
            }
        };
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(|e| SignatureError::Engine(e.to_string()))?;
        ctx.set_engine_home_dir(dir.to_string_lossy().into_owned()).map_err(|e| SignatureError::Engine(e.to_string()))?;
        ctx.set_offline(true);
        Ok(GpgmeVerifier { ctx, keys: Default::default(), _home: home, require_validity: false })
    }

    /// Creates a private GnuPG home (0700) holding exactly `keys`, in `parent` or the temp dir.
    fn build_home(keys: &[KeyFile], parent: Option<&std::path::Path>) -> Result<TempDir, SignatureError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("git-audit-gnupg-");
        let home = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(SignatureError::Home)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).map_err(SignatureError::Home)?;
        }
        // No agent or dirmngr is needed to verify; never fetch keys from the network.
        let mut conf = std::fs::File::create(home.path().join("gpg.conf")).map_err(SignatureError::Home)?;
        conf.write_all(b"no-autostart\nno-auto-key-retrieve\ntrust-model always\n").map_err(SignatureError::Home)?;
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(|e| SignatureError::Engine(e.to_string()))?;
        ctx.set_engine_home_dir(home.path().to_string_lossy().into_owned()).map_err(|e| SignatureError::Engine(e.to_string()))?;
        ctx.set_offline(true);
        for k in keys {
            let fail = |reason: String| SignatureError::KeyImport { origin: k.origin.clone(), path: k.path.display().to_string(), reason };
            let result = ctx.import(&k.armored[..]).map_err(|e| fail(e.to_string()))?;
            if result.considered() == 0 || (result.imported() + result.unchanged()) == 0 {
                return Err(fail(format!("no usable public key in it ({} considered)", result.considered())));
            }
        }
        drop(ctx);
        Ok(home)
    }

    /// A verifier that uses the user's GnuPG home (`GNUPGHOME` or `~/.gnupg`).
    pub fn user_keyring() -> Result<GpgmeVerifier, SignatureError> {
        let _ = gpgme::init();
        let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(|e| SignatureError::Engine(e.to_string()))?;
        ctx.set_offline(true);
        Ok(GpgmeVerifier { ctx, keys: Default::default(), _home: None, require_validity: true })
    }
}

impl Verifier for GpgmeVerifier {
    fn verify(&mut self, object: &SignedObject<'_>) -> Verdict {
        let fmt = Some(SignatureFormat::Openpgp);
        let result = match self.ctx.verify_detached(object.signature, object.payload) {
            Ok(r) => r,
            Err(e) => return Verdict::new(SignatureStatus::Error, fmt).with_detail(format!("gpg could not read the signature: {e}")),
        };
        let Some(sig) = result.signatures().next() else {
            return Verdict::new(SignatureStatus::Error, fmt).with_detail("the signature block holds no signature");
        };
        let fpr = sig.fingerprint().ok().map(str::to_string);
        let status_err = sig.status().err();
        let (mut status, mut detail) = classify(status_err.map(|e| e.code()), sig.summary());
        let validity = sig.validity();
        let mut verdict = Verdict::new(status, fmt);
        verdict.key = fpr.clone();
        // Look the key up to name the signer, find its identities and check that it is valid now.
        if let Some(fpr) = &fpr {
            if !self.keys.contains_key(fpr) {
                let facts = self.ctx.get_key(fpr.as_str()).ok().map(|k| KeyFacts::of(&k, fpr));
                self.keys.insert(fpr.clone(), facts);
            }
            if let Some(Some(facts)) = self.keys.get(fpr) {
                verdict.key = Some(facts.primary.clone());
                verdict.identities = facts.emails.clone();
                verdict.signer = facts.signer.clone();
                if status == SignatureStatus::Good && facts.revoked {
                    status = SignatureStatus::RevokedKey;
                    detail = Some("the signing key has been revoked".into());
                } else if status == SignatureStatus::Good && facts.expired {
                    status = SignatureStatus::ExpiredKey;
                    detail = Some("the signing key has expired".into());
                }
            }
        }
        if status == SignatureStatus::Good
            && self.require_validity
            && !matches!(validity, Validity::Marginal | Validity::Full | Validity::Ultimate)
        {
            status = SignatureStatus::UnknownKey;
            detail = Some(format!("good signature, but your GnuPG keyring does not trust the key (validity: {validity})"));
        }
        verdict.status = status;
        verdict.detail = detail;
        verdict
    }
}

/// The cached private home for `keys`: `$XDG_CACHE_HOME/git-audit/gnupg/<digest>`
/// (or `~/.cache/…`). Used only when it is ours and private (0700); built on a
/// miss in a temp dir next to it and renamed into place (so concurrent hooks
/// never see a half-built home). `None` when there is no usable cache.
fn cached_home(keys: &[KeyFile]) -> Option<std::path::PathBuf> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?
        .join("git-audit")
        .join("gnupg");
    let mut bodies: Vec<&[u8]> = keys.iter().map(|k| &k.armored[..]).collect();
    bodies.sort();
    let mut h = Sha256::new();
    for b in bodies {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    }
    let dir = base.join(&hex::encode(h.finalize())[..32]);
    let uid = current_uid();
    let private =
        |p: &std::path::Path| std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
    if private(&dir) && dir.join("complete").exists() {
        return Some(dir);
    }
    std::fs::create_dir_all(&base).ok()?;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).ok()?;
    if !private(&base) {
        return None;
    }
    let built = GpgmeVerifier::build_home(keys, Some(&base)).ok()?;
    std::fs::write(built.path().join("complete"), b"").ok()?;
    let tmp = built.keep();
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Some(dir),
        Err(_) => {
            // Someone else finished first: use theirs.
            let _ = std::fs::remove_dir_all(&tmp);
            (private(&dir) && dir.join("complete").exists()).then_some(dir)
        }
    }
}

/// This process's uid, from the owner of a file we just created.
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    tempfile::NamedTempFile::new().ok().and_then(|f| f.as_file().metadata().ok()).map_or(u32::MAX, |m| m.uid())
}

/// What we need to know about a signing key.
#[derive(Debug, Clone)]
struct KeyFacts {
    primary: String,
    signer: Option<String>,
    emails: Vec<String>,
    revoked: bool,
    expired: bool,
}

impl KeyFacts {
    fn of(key: &gpgme::Key, signing_fpr: &str) -> KeyFacts {
        let mut emails = Vec::new();
        let mut signer = None;
        for uid in key.user_ids() {
            if uid.is_revoked() || uid.is_invalid() {
                continue;
            }
            if let Ok(email) = uid.email() {
                if !email.is_empty() {
                    emails.push(email.to_string());
                }
            }
            if signer.is_none() {
                signer = uid.id().ok().map(str::to_string);
            }
        }
        let subkey = key.subkeys().find(|s| s.fingerprint().ok() == Some(signing_fpr));
        KeyFacts {
            primary: key.fingerprint().map(str::to_string).unwrap_or_else(|_| signing_fpr.to_string()),
            signer,
            emails,
            revoked: key.is_revoked() || subkey.as_ref().is_some_and(|s| s.is_revoked()),
            expired: key.is_expired() || subkey.as_ref().is_some_and(|s| s.is_expired()),
        }
    }
}

/// Maps gpgme's per-signature status code and summary to a [`SignatureStatus`].
/// Pure, so it can be tested on the codes gpgme reports.
pub fn classify(code: Option<gpgme::error::ErrorCode>, summary: SignatureSummary) -> (SignatureStatus, Option<String>) {
    use gpgme::Error as E;
    let status = match code {
        None => {
            if summary.contains(SignatureSummary::KEY_REVOKED) {
                return (SignatureStatus::RevokedKey, Some("the signing key has been revoked".into()));
            }
            if summary.contains(SignatureSummary::KEY_EXPIRED) {
                return (SignatureStatus::ExpiredKey, Some("the signing key has expired".into()));
            }
            return (SignatureStatus::Good, None);
        }
        Some(c) if c == E::BAD_SIGNATURE.code() => (SignatureStatus::Bad, "the signature does not match the commit content"),
        Some(c) if c == E::NO_PUBKEY.code() => (SignatureStatus::UnknownKey, "the signing key is not in the trust set"),
        Some(c) if c == E::KEY_EXPIRED.code() => (SignatureStatus::ExpiredKey, "the signing key has expired"),
        Some(c) if c == E::SIG_EXPIRED.code() => (SignatureStatus::ExpiredKey, "the signature has expired"),
        Some(c) if c == E::CERT_REVOKED.code() => (SignatureStatus::RevokedKey, "the signing key has been revoked"),
        Some(c) => return (SignatureStatus::Error, Some(format!("gpg reported: {}", gpgme::Error::from_code(c).description()))),
    };
    (status.0, Some(status.1.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpgme::Error as E;

    #[test]
    fn maps_gpgme_codes() {
        let s = SignatureSummary::empty();
        assert_eq!(classify(None, SignatureSummary::VALID).0, SignatureStatus::Good);
        assert_eq!(classify(Some(E::BAD_SIGNATURE.code()), SignatureSummary::RED).0, SignatureStatus::Bad);
        assert_eq!(classify(Some(E::NO_PUBKEY.code()), SignatureSummary::KEY_MISSING).0, SignatureStatus::UnknownKey);
        assert_eq!(classify(Some(E::KEY_EXPIRED.code()), s).0, SignatureStatus::ExpiredKey);
        assert_eq!(classify(Some(E::SIG_EXPIRED.code()), s).0, SignatureStatus::ExpiredKey);
        assert_eq!(classify(Some(E::CERT_REVOKED.code()), s).0, SignatureStatus::RevokedKey);
        assert_eq!(classify(None, SignatureSummary::KEY_REVOKED).0, SignatureStatus::RevokedKey);
        assert_eq!(classify(None, SignatureSummary::KEY_EXPIRED).0, SignatureStatus::ExpiredKey);
        let (st, detail) = classify(Some(E::GENERAL.code()), s);
        assert_eq!(st, SignatureStatus::Error);
        assert!(detail.unwrap().starts_with("gpg reported"));
    }
}
