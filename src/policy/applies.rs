//! Which policy applies here — the one answer every command and hook asks.
//!
//! In order: `--policy FILE`, `git config audit.policy`, then, by where the
//! question is asked ([`Look`]): the work tree's file (a developer's clone, a
//! CI job), or the file as committed on the default branch (a server: never
//! the pushed commits, so a push cannot loosen the rules it is judged by).

use std::path::{Path, PathBuf};

use crate::git::Repo;
use crate::policy::{Policy, DEFAULT_FILE};

/// A loaded server policy and the temp dir holding it when it came from a commit.
pub struct ServerPolicy {
    pub policy: Policy,
    pub source: String,
    /// Set in default-branch policy mode: the branch the policy is read from
    /// (e.g. `refs/heads/main`). That branch is implicitly protected: no force
    /// push, no deletion, and every change to the policy's footprint needs a
    /// policy admin.
    pub default_branch: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerPolicyError {
    #[error(
        "no policy: the server's default branch has no {DEFAULT_FILE} yet, and no push can bring the first one (nothing could judge it)\nHint: the server's admin seeds it once from a clone whose HEAD commits {DEFAULT_FILE}, signed by a policy admin: `git-audit install --server REPO --from CLONE`; or pins a policy file: `git config audit.policy /path/to/policy.toml`"
    )]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Load(#[from] crate::policy::PolicyError),
}

/// Where to look after `--policy` and `audit.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The work tree's file.
    WorkTree,
    /// The file on the default branch (a bare repository on a server).
    Server,
    /// The work tree's file where there is one, else the default branch's
    /// (commands that run on either: notify, sync).
    WorkTreeThenServer,
}

/// The policy that applies, looked for as `look` says; `None` when there is
/// none to find (the caller says whether that is an error). A policy that is
/// there but does not load is always an error.
pub fn applies(explicit: Option<&Path>, repo: Option<&Repo>, look: Look) -> Result<Option<ServerPolicy>, ServerPolicyError> {
    let work_tree = || -> Result<Option<ServerPolicy>, ServerPolicyError> {
        let Some(path) = crate::policy::locate(explicit, repo) else { return Ok(None) };
        if !path.exists() && explicit.is_none() {
            return Ok(None);
        }
        let policy = Policy::load(&path)?;
        Ok(Some(ServerPolicy { policy, source: path.display().to_string(), default_branch: None, _dir: None }))
    };
    match (look, repo) {
        (Look::WorkTree, _) | (_, None) => work_tree(),
        (Look::Server, Some(repo)) => load(repo, explicit).map(Some),
        (Look::WorkTreeThenServer, Some(repo)) => match work_tree()? {
            Some(p) => Ok(Some(p)),
            None => match load(repo, None) {
                Ok(p) => Ok(Some(p)),
                Err(ServerPolicyError::Missing) => Ok(None),
                Err(e) => Err(e),
            },
        },
    }
}

/// Loads the server's policy (explicit path first).
pub fn load(repo: &Repo, explicit: Option<&Path>) -> Result<ServerPolicy, ServerPolicyError> {
    if let Some(p) = explicit.map(Path::to_path_buf).or_else(|| repo.config_path("audit.policy")) {
        let policy = Policy::load(&p).map_err(|e| ServerPolicyError::Invalid(e.to_string()))?;
        // The pusher is told which policy judged the push, not where the server keeps it.
        let source = format!("of the server, digest {}", &policy.digest[..12]);
        return Ok(ServerPolicy { policy, source, default_branch: None, _dir: None });
    }
    let head = repo.resolve_commit("HEAD").map_err(|_| ServerPolicyError::Missing)?;
    let Some(blob) = repo.path_blob(&head, DEFAULT_FILE) else {
        return Err(ServerPolicyError::Missing);
    };
    let dir = tempfile::Builder::new().prefix("git-audit-policy-").tempdir().map_err(|e| ServerPolicyError::Invalid(e.to_string()))?;
    let bad = |e: String| ServerPolicyError::Invalid(format!("{DEFAULT_FILE} at {head}: {e}"));
    let text = blob_text(repo, &blob).map_err(bad)?;
    let leaving = leaving_paths(&text);
    if !leaving.is_empty() {
        return Err(bad(format!(
            "it loads {} from outside the repository; a committed policy may only load files it holds (refused: fail closed)",
            leaving.join(", ")
        )));
    }
    let path = dir.path().join(DEFAULT_FILE);
    std::fs::write(&path, &text).map_err(|e| bad(e.to_string()))?;
    // Bring along the key files the policy names, from the same commit.
    for rel in referenced_paths(&text) {
        for (file, id) in repo.tree_files(&head, &rel).map_err(|e| bad(e.to_string()))? {
            let target: PathBuf = dir.path().join(&file);
            if !target.starts_with(dir.path()) || file.split('/').any(|c| c == "..") {
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| bad(e.to_string()))?;
            }
            std::fs::write(&target, blob_text(repo, &id).map_err(bad)?).map_err(|e| bad(e.to_string()))?;
        }
    }
    let policy =
        Policy::load(&path).map_err(|e| ServerPolicyError::Invalid(format!("{DEFAULT_FILE} on the default branch ({head}): {e}")))?;
    let default_branch = Some(repo.head_ref().unwrap_or_else(|| "HEAD".into()));
    Ok(ServerPolicy { policy, source: format!("{DEFAULT_FILE} at {head}"), default_branch, _dir: Some(dir) })
}

fn blob_text(repo: &Repo, id: &str) -> Result<Vec<u8>, String> {
    let (kind, data) = repo.read_object(id).map_err(|e| e.to_string())?;
    if kind != "blob" {
        return Err(format!("{id} is a {kind}"));
    }
    Ok(data)
}

/// Repository-relative paths a policy text loads (key files and directories),
/// normalised (`./keys/` → `keys`). Absolute paths and paths leaving the
/// repository are not part of it and are left out. Text that does not parse
/// loads nothing.
pub fn referenced_paths(text: &[u8]) -> Vec<String> {
    raw_paths(text)
        .into_iter()
        .filter(|p| !Path::new(p).is_absolute())
        .map(|p| p.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/"))
        .filter(|p| !p.is_empty() && !p.split('/').any(|c| c == ".."))
        .collect()
}

/// The policy text's footprint beyond itself: the files it loads, and with
/// `[codeowners] enabled` the CODEOWNERS files (all three places GitHub reads).
pub fn footprint_paths(text: &[u8]) -> Vec<String> {
    let mut out = referenced_paths(text);
    let enabled = toml::from_str::<toml::Value>(&String::from_utf8_lossy(text))
        .ok()
        .and_then(|v| v.get("codeowners").and_then(|c| c.get("enabled")).and_then(toml::Value::as_bool))
        .unwrap_or(false);
    if enabled {
        out.extend(crate::policy::paths::CODEOWNERS_LOCATIONS.iter().map(|p| p.to_string()));
    }
    out
}

/// Paths a policy text loads that leave the repository (absolute, or with a
/// `..` component): a policy read from a commit may not load anything the
/// commit does not hold (it would resolve beside the server's temporary copy).
pub fn leaving_paths(text: &[u8]) -> Vec<String> {
    raw_paths(text).into_iter().filter(|p| Path::new(p).is_absolute() || p.split('/').any(|c| c == "..")).collect()
}

/// Every key path a policy text names, as written.
fn raw_paths(text: &[u8]) -> Vec<String> {
    let Ok(value) = toml::from_str::<toml::Value>(&String::from_utf8_lossy(text)) else {
        return Vec::new();
    };
    let signing = &value.get("signing");
    let mut out = Vec::new();
    if let Some(keys) = signing.and_then(|s| s.get("openpgp_keys")).and_then(|k| k.as_array()) {
        out.extend(keys.iter().filter_map(|k| k.as_str()).map(str::to_string));
    }
    if let Some(s) = signing.and_then(|s| s.get("ssh_allowed_signers")).and_then(|k| k.as_str()) {
        out.push(s.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_paths_are_normalised() {
        let text = b"version = 1\n[signing]\nopenpgp_keys = [\"./keys/\", \"/etc/k.asc\", \"../x.asc\", \"a//b.asc\"]\nssh_allowed_signers = \"allowed\"\n";
        assert_eq!(referenced_paths(text), vec!["keys", "a/b.asc", "allowed"]);
        assert!(referenced_paths(b"not toml [").is_empty());
    }
}
