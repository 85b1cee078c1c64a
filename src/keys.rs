//! The pinned keys, without hand-editing: what a policy pins (`keys list`),
//! what expires soon (`keys check`), and pinning a new one (`keys add`) — the
//! armored OpenPGP key written beside the policy and named in `openpgp_keys`,
//! or a correct allowed-signers line for an SSH key. The policy is edited with
//! toml_edit, so its comments and layout stay as they were.

use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::types::RevocationStatus;
use serde::Serialize;

use crate::policy::{Policy, PolicyError};
use crate::time::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{0}")]
    Input(String),
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("after the change the policy does not load (nothing was written): {0}")]
    Policy(#[from] PolicyError),
}

/// One pinned key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// `openpgp` or `ssh`.
    pub kind: &'static str,
    /// The OpenPGP fingerprint, or the SSH key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// User ids, or the allowed principals.
    pub who: Vec<String>,
    pub algorithm: String,
    pub created: Option<String>,
    /// When it stops being valid (OpenPGP expiry, SSH `valid-before`).
    pub expires: Option<String>,
    /// `valid`, `expired`, `revoked`, or `not yet valid`.
    pub status: String,
    /// The file that pins it.
    pub source: String,
    /// What the strict OpenPGP policy refuses in it (packet and algorithm);
    /// empty when `openpgp_policy = "strict"` can use it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak: Vec<String>,
    /// How to make the strict policy accept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl KeyInfo {
    /// Does it stop being valid within `days` from now (or has it already)?
    pub fn expiring_within(&self, days: i64) -> bool {
        if self.status != "valid" {
            return self.status != "not yet valid";
        }
        let horizon = chrono::Utc::now() + chrono::Duration::days(days);
        self.expires.as_deref().and_then(|e| Timestamp::parse(e).ok()).is_some_and(|t| t.datetime() <= horizon)
    }
}

fn ts(t: std::time::SystemTime) -> String {
    Timestamp::from_datetime(chrono::DateTime::<chrono::Utc>::from(t)).canonical()
}

/// Every key the policy pins, OpenPGP then SSH.
pub fn list(policy: &Policy) -> Vec<KeyInfo> {
    // Valid as GnuPG judges it; what only the strict policy refuses is listed apart.
    let p = crate::signature::native::gnupg_policy();
    let mut out = Vec::new();
    for file in &policy.signing.openpgp_keys {
        let Ok(parser) = CertParser::from_bytes(&file.armored[..]) else { continue };
        let weak = crate::signature::native::certificate_weaknesses(std::slice::from_ref(file)).unwrap_or_default();
        for cert in parser.flatten() {
            let fpr = cert.fingerprint().to_hex();
            let found: Vec<crate::signature::native::Weakness> =
                weak.iter().filter(|(f, _, _)| *f == fpr).flat_map(|(_, _, w)| w.iter().cloned()).collect();
            let fix = (!found.is_empty()).then(|| crate::signature::native::remedies(&found, &fpr));
            let weak: Vec<String> = found.iter().map(ToString::to_string).collect();
            let vc = cert.with_policy(&p, None).ok();
            let revoked = matches!(cert.revocation_status(&p, None), RevocationStatus::Revoked(_));
            let expires = vc.as_ref().and_then(|v| v.primary_key().key_expiration_time()).map(ts);
            let alive = vc.as_ref().is_some_and(|v| v.alive().is_ok());
            let key = cert.primary_key().key();
            out.push(KeyInfo {
                kind: "openpgp",
                fingerprint: cert.fingerprint().to_hex(),
                who: cert.userids().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()).collect(),
                algorithm: match key.mpis().bits() {
                    Some(bits) => format!("{} {bits}", key.pk_algo()),
                    None => key.pk_algo().to_string(),
                },
                created: Some(ts(key.creation_time())),
                expires,
                status: if revoked {
                    "revoked"
                } else if vc.is_none() || !alive {
                    "expired"
                } else {
                    "valid"
                }
                .into(),
                source: file.path.display().to_string(),
                weak,
                fix,
            });
        }
    }
    if let Some(a) = &policy.signing.ssh_allowed_signers {
        let now = chrono::Utc::now().timestamp();
        for e in &a.entries {
            let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| Timestamp::from_datetime(d).canonical());
            out.push(KeyInfo {
                kind: "ssh",
                fingerprint: e.key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                who: e.principals.clone(),
                algorithm: e.key.algorithm().to_string(),
                created: None,
                expires: e.valid_before.and_then(at),
                status: if e.valid_before.is_some_and(|b| b <= now) {
                    "expired"
                } else if e.valid_after.is_some_and(|t| t > now) {
                    "not yet valid"
                } else {
                    "valid"
                }
                .into(),
                source: format!("{}:{}", a.path.display(), e.line),
                weak: Vec::new(),
                fix: None,
            });
        }
    }
    out
}

/// What `add_openpgp` / `add_ssh` did.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub fingerprint: String,
    pub who: Vec<String>,
    /// The file written or appended to.
    pub file: PathBuf,
    /// Whether the policy text itself was changed (a new `openpgp_keys` entry …).
    pub policy_changed: bool,
}

/// Pins the one public certificate in `armored`: written as
/// `<dir>/<email or fingerprint>.asc`, where `<dir>` is the first directory
/// `openpgp_keys` already names, else `keys/` beside the policy (then added to
/// `openpgp_keys`).
pub fn add_openpgp(policy_path: &Path, armored: &[u8]) -> Result<Added, KeysError> {
    let certs: Vec<Cert> = CertParser::from_bytes(armored)
        .map_err(|e| KeysError::Input(format!("not an OpenPGP key: {e}")))?
        .collect::<openpgp::Result<Vec<_>>>()
        .map_err(|e| KeysError::Input(format!("not an OpenPGP key: {e}")))?;
    let [cert] = certs.as_slice() else {
        return Err(KeysError::Input(format!("expected exactly one public key, found {}", certs.len())));
    };
    if cert.is_tsk() {
        return Err(KeysError::Input("that is a secret key: give the public key (`gpg --armor --export KEYID`)".into()));
    }
    let public = {
        use openpgp::serialize::SerializeInto;
        cert.armored().to_vec().map_err(|e| KeysError::Input(format!("cannot armor the key: {e}")))?
    };
    let fingerprint = cert.fingerprint().to_hex();
    let who: Vec<String> = cert.userids().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()).collect();
    let email = cert.userids().find_map(|u| u.userid().email().ok().flatten().map(str::to_string));
    let base = policy_path.parent().unwrap_or(Path::new("."));
    let (mut doc, text) = read_doc(policy_path)?;
    let signing = signing_table(&mut doc)?;
    let entries: Vec<String> = signing
        .get("openpgp_keys")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let dir_entry = entries.iter().find(|e| e.ends_with('/') || base.join(e).is_dir()).cloned();
    let rel_dir = dir_entry.clone().unwrap_or_else(|| "keys/".to_string());
    let name =
        format!("{}.asc", email.as_deref().map(|e| e.replace(['/', '\\', ' '], "_")).unwrap_or_else(|| fingerprint.to_ascii_lowercase()));
    let rel_file = format!("{}/{name}", rel_dir.trim_end_matches('/'));
    let file = base.join(&rel_file);
    if entries.iter().any(|e| base.join(e) == file) || (file.exists() && std::fs::read(&file).ok().as_deref() == Some(&public[..])) {
        return Err(KeysError::Input(format!("{fingerprint} is already pinned ({})", file.display())));
    }
    let policy_changed = dir_entry.is_none();
    if policy_changed {
        let arr = signing.entry("openpgp_keys").or_insert(toml_edit::value(toml_edit::Array::new()));
        match arr.as_array_mut() {
            Some(a) => a.push(rel_file.as_str()),
            None => return Err(KeysError::Input(format!("{}: [signing] openpgp_keys is not a list", policy_path.display()))),
        }
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|source| KeysError::Io { what: "create", path: parent.to_path_buf(), source })?;
    }
    std::fs::write(&file, &public).map_err(|source| KeysError::Io { what: "write", path: file.clone(), source })?;
    if policy_changed {
        if let Err(e) = write_checked(policy_path, &text, &doc.to_string()) {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
    } else if let Err(e) = Policy::load(policy_path) {
        let _ = std::fs::remove_file(&file);
        return Err(e.into());
    }
    Ok(Added { fingerprint, who, file, policy_changed })
}

/// Pins an SSH public key for `principal`: one allowed-signers line
/// (`principal namespaces="git" type base64`) appended to the policy's
/// `ssh_allowed_signers` file, or to a new `keys/allowed_signers` beside the policy.
pub fn add_ssh(policy_path: &Path, public_line: &str, principal: &str) -> Result<Added, KeysError> {
    let key = ssh_key::PublicKey::from_openssh(public_line.trim())
        .map_err(|e| KeysError::Input(format!("not an SSH public key (expected `ssh-ed25519 AAAA… comment`): {e}")))?;
    if principal.is_empty() || principal.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(KeysError::Input(format!("`{principal}` is not a principal: give the signer's email")));
    }
    let base = policy_path.parent().unwrap_or(Path::new("."));
    let (mut doc, text) = read_doc(policy_path)?;
    let signing = signing_table(&mut doc)?;
    let existing = signing.get("ssh_allowed_signers").and_then(|v| v.as_str()).map(str::to_string);
    let policy_changed = existing.is_none();
    // Beside the OpenPGP keys, where the starter policy puts it (`keys/allowed_signers`).
    let rel = existing.unwrap_or_else(|| "keys/allowed_signers".to_string());
    if policy_changed {
        signing.insert("ssh_allowed_signers", toml_edit::value(rel.as_str()));
    }
    let file = base.join(&rel);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|source| KeysError::Io { what: "create", path: parent.to_path_buf(), source })?;
    }
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let before = std::fs::read_to_string(&file).unwrap_or_default();
    let encoded = key.to_openssh().map_err(|e| KeysError::Input(e.to_string()))?;
    let mut parts = encoded.split_whitespace();
    let (algo, b64) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if before.lines().any(|l| l.split_whitespace().any(|w| w == b64) && l.split_whitespace().next() == Some(principal)) {
        return Err(KeysError::Input(format!("{fingerprint} is already allowed for {principal} in {}", file.display())));
    }
    let mut after = before.clone();
    if !after.is_empty() && !after.ends_with('\n') {
        after.push('\n');
    }
    after.push_str(&format!("{principal} namespaces=\"git\" {algo} {b64}\n"));
    std::fs::write(&file, &after).map_err(|source| KeysError::Io { what: "write", path: file.clone(), source })?;
    let checked = if policy_changed {
        write_checked(policy_path, &text, &doc.to_string())
    } else {
        Policy::load(policy_path).map(|_| ()).map_err(Into::into)
    };
    if let Err(e) = checked {
        let _ = std::fs::write(&file, before);
        return Err(e);
    }
    Ok(Added { fingerprint, who: vec![principal.to_string()], file, policy_changed })
}

fn read_doc(path: &Path) -> Result<(toml_edit::DocumentMut, String), KeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysError::Io { what: "read", path: path.to_path_buf(), source })?;
    let doc = text.parse::<toml_edit::DocumentMut>().map_err(|e| KeysError::Toml { path: path.to_path_buf(), message: e.to_string() })?;
    Ok((doc, text))
}

fn signing_table(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::Table, KeysError> {
    doc.entry("signing")
        .or_insert(toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_mut()
        .ok_or_else(|| KeysError::Input("the policy's `signing` is not a [signing] table".into()))
}

/// Writes the new policy text, and puts the old one back if it does not load.
fn write_checked(path: &Path, old: &str, new: &str) -> Result<(), KeysError> {
    std::fs::write(path, new).map_err(|source| KeysError::Io { what: "write", path: path.to_path_buf(), source })?;
    if let Err(e) = Policy::load(path) {
        let _ = std::fs::write(path, old);
        return Err(e.into());
    }
    Ok(())
}
