//! Who is pushing: from the environment the git server sets, in a configurable
//! order, or from a signed push certificate verified against the policy's keys.

use crate::git::Repo;
use crate::signature::{SignatureChecker, SignatureStatus};

/// The default order of identity sources (`git config audit.pusherSources` changes it).
pub const DEFAULT_SOURCES: &[&str] = &["GIT_AUDIT_USER", "GL_USERNAME", "GITEA_PUSHER_NAME", "REMOTE_USER", "push-cert"];

pub use crate::event::Pusher;

/// A push certificate problem: the push is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("push certificate: {0}")]
pub struct CertError(pub String);

/// Resolves the pusher. A push certificate, when present, must verify with a
/// pinned key and carry nonce status `OK`, whatever the order of sources.
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    sources: &[String],
    repo: &Repo,
    signatures: &mut SignatureChecker,
    updates: &[super::RefUpdate],
) -> Result<Pusher, CertError> {
    let cert = match env("GIT_PUSH_CERT").filter(|c| !c.is_empty() && !super::is_zero(c)) {
        Some(blob) => Some(verify_certificate(env, &blob, repo, signatures, updates)?),
        None => None,
    };
    for s in sources {
        if s == "push-cert" {
            if let Some((who, key)) = &cert {
                return Ok(Pusher { identity: Some(who.clone()), source: Some("push-cert".into()), certificate_key: Some(key.clone()) });
            }
        } else if let Some(v) = env(s).filter(|v| !v.trim().is_empty()) {
            return Ok(Pusher { identity: Some(v.trim().to_string()), source: Some(s.clone()), certificate_key: cert.map(|c| c.1) });
        }
    }
    Ok(Pusher { identity: None, source: None, certificate_key: None })
}

/// Verifies `GIT_PUSH_CERT`; returns (signer identity, key).
fn verify_certificate(
    env: &dyn Fn(&str) -> Option<String>,
    blob: &str,
    repo: &Repo,
    signatures: &mut SignatureChecker,
    updates: &[super::RefUpdate],
) -> Result<(String, String), CertError> {
    match env("GIT_PUSH_CERT_NONCE_STATUS").as_deref() {
        Some("OK") => {}
        Some(other) => {
            let why = match other {
                "SLOP" => "the nonce is stale (SLOP)",
                "BAD" => "the nonce is not one this server issued (BAD)",
                "MISSING" => "the certificate carries no nonce (MISSING)",
                "UNSOLICITED" => "the server did not ask for a nonce (UNSOLICITED)",
                _ => "unknown nonce status",
            };
            return Err(CertError(format!("{why}; push again with `git push --signed`")));
        }
        None => return Err(CertError("no nonce status; set receive.certNonceSeed on the server".into())),
    }
    let (kind, raw) = repo.read_object(blob).map_err(|e| CertError(format!("cannot read certificate {blob}: {e}")))?;
    if kind != "blob" {
        return Err(CertError(format!("{blob} is a {kind}, not a certificate")));
    }
    let (payload, sig) = split_signed(&raw).ok_or_else(|| CertError("the certificate is not signed".into()))?;
    let verdict = signatures.check_object("push certificate", Some(sig), payload, crate::git::header_time(payload, "pusher"));
    if verdict.status != SignatureStatus::Good {
        return Err(CertError(format!("signature {}: {}", verdict.status.as_str(), verdict.detail.unwrap_or_default())));
    }
    // The certificate must cover exactly these updates (no replayed certificate).
    let text = String::from_utf8_lossy(payload);
    for u in updates {
        if !text.lines().any(|l| l == format!("{} {} {}", u.old, u.new, u.refname)) {
            return Err(CertError(format!("it does not cover the update of {}", u.refname)));
        }
    }
    let who = verdict.identities.first().cloned().or(verdict.signer.clone()).unwrap_or_default();
    Ok((who, verdict.key.unwrap_or_default()))
}

/// Splits an object with a trailing armored signature (push certificates, tags)
/// into (signed payload, signature).
pub fn split_signed(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    for marker in [&b"-----BEGIN PGP SIGNATURE-----"[..], b"-----BEGIN SSH SIGNATURE-----", b"-----BEGIN SIGNED MESSAGE-----"] {
        let mut at = None;
        let mut i = 0;
        while let Some(p) = find(&raw[i..], marker) {
            let pos = i + p;
            if pos == 0 || raw[pos - 1] == b'\n' {
                at = Some(pos);
            }
            i = pos + 1;
        }
        if let Some(pos) = at {
            return Some((&raw[..pos], &raw[pos..]));
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_trailing_signatures() {
        let raw = b"object abc\ntype commit\ntag v1\n\nmsg\n-----BEGIN PGP SIGNATURE-----\nxx\n-----END PGP SIGNATURE-----\n";
        let (p, s) = split_signed(raw).unwrap_or_default();
        assert_eq!(p, b"object abc\ntype commit\ntag v1\n\nmsg\n");
        assert!(s.starts_with(b"-----BEGIN PGP"));
        assert!(split_signed(b"no signature here\n").is_none());
        // A marker inside a line is not a signature.
        assert!(split_signed(b"text -----BEGIN PGP SIGNATURE----- x\n").is_none());
    }
}
