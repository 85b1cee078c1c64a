//! `git-audit install`: put the hook shims (`hooks/*`) where git runs them.
//!
//! Shims carry a marker line so `--uninstall` removes only what we installed.
//! An existing hook is never overwritten without `--force`; `--chain` keeps it
//! (renamed `<hook>.pre-git-audit`) and runs it first, with the same input.

use std::path::{Path, PathBuf};

use crate::git::Repo;

/// The marker that identifies our shims.
pub const MARKER: &str = "# git-audit hook shim";
/// Suffix of a chained, pre-existing hook.
pub const CHAINED: &str = "pre-git-audit";

pub const CLIENT_HOOKS: &[&str] = &["pre-push", "commit-msg"];
pub const SERVER_HOOKS: &[&str] = &["pre-receive", "post-receive"];

fn template(name: &str) -> &'static str {
    match name {
        "pre-push" => include_str!("../hooks/pre-push"),
        "pre-receive" => include_str!("../hooks/pre-receive"),
        "post-receive" => include_str!("../hooks/post-receive"),
        _ => include_str!("../hooks/commit-msg"),
    }
}

/// Hooks that read their standard input (it must reach both chained hooks).
fn reads_stdin(name: &str) -> bool {
    matches!(name, "pre-push" | "pre-receive" | "post-receive")
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The shim for `name`, running `exe` (the installing binary, by absolute path).
pub fn shim(name: &str, exe: &Path, chained: bool) -> String {
    let run = template(name).replace("exec git-audit ", &format!("exec {} ", quote(exe)));
    if !chained {
        return run;
    }
    let (head, exec_line) = run.rsplit_once("exec ").unwrap_or((&run, ""));
    let prior = format!("\"$(dirname \"$0\")/{name}.{CHAINED}\"");
    if reads_stdin(name) {
        format!(
            "{head}# chained: the hook that was here before runs first, with the same input\ninput=$(cat)\nprintf '%s\\n' \"$input\" | {prior} \"$@\" || exit $?\nprintf '%s\\n' \"$input\" | exec {exec_line}"
        )
    } else {
        format!("{head}# chained: the hook that was here before runs first\n{prior} \"$@\" || exit $?\nexec {exec_line}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path} already exists and is not git-audit's\nHint: pass --chain to run it before git-audit, or --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("cannot seed {repo} from {clone}: {why}")]
    Seed { repo: PathBuf, clone: PathBuf, why: String },
}

/// What `install --server --from CLONE` put on the default branch.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub branch: String,
    pub commit: String,
    /// Who signed the commit that brings the policy (a policy admin).
    pub signer: String,
}

/// Puts the first policy on an empty server's default branch: the commit the
/// clone's HEAD names (with its history), which must commit the policy file,
/// load as a valid policy, and be signed (good) by a holder of the policy's own
/// `policy-admin` role. The server's ref is set directly (no hook judges the
/// very first policy: there is none yet), and the seed is recorded in the
/// ledger as the hooks would record a push. Anything short of that: nothing is
/// changed.
pub fn seed(repo_path: &Path, clone: &Path) -> Result<Seeded, InstallError> {
    use crate::signature::SignatureStatus;
    let repo = Repo::discover(repo_path)?;
    let fail = |why: String| InstallError::Seed { repo: repo_path.to_path_buf(), clone: clone.to_path_buf(), why };
    let branch = repo.head_ref().unwrap_or_else(|| "refs/heads/main".into());
    if let Ok(tip) = repo.resolve_commit(&branch) {
        return Err(fail(format!(
            "its default branch {branch} already has commits ({}); --from seeds an empty repository only\nHint: change the policy by pushing a commit a policy admin signed",
            crate::git::short_id(&tip)
        )));
    }
    let source = Repo::discover(clone).map_err(|e| fail(format!("not a git repository ({e})")))?;
    let commit = source.resolve_commit("HEAD").map_err(|e| fail(format!("its HEAD names no commit ({e})")))?;
    if source.path_blob(&commit, crate::policy::DEFAULT_FILE).is_none() {
        return Err(fail(format!("its HEAD ({}) does not commit {}", crate::git::short_id(&commit), crate::policy::DEFAULT_FILE)));
    }
    // Bring the objects over (a fetch runs no receive hooks), then judge them there.
    let git = |args: &[&str]| -> Result<String, InstallError> {
        let out = crate::git::exec::git_command()
            .arg("--git-dir")
            .arg(repo.git_dir())
            .args(args)
            .output()
            .map_err(|source| InstallError::Io { path: repo.git_dir(), source })?;
        if !out.status.success() {
            return Err(fail(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let clone_arg = std::path::absolute(clone).map_err(io(clone))?;
    git(&["fetch", "-q", "--no-tags", &clone_arg.display().to_string(), "HEAD"])?;
    let fetched = git(&["rev-parse", "FETCH_HEAD"])?;
    if fetched != commit {
        return Err(fail(format!("its HEAD moved while seeding ({commit} → {fetched})")));
    }
    git(&["update-ref", &branch, &commit, ""])?;
    let undo = |e: InstallError| -> InstallError {
        let _ = git(&["update-ref", "-d", &branch, &commit]);
        e
    };
    let repo = Repo::discover(repo_path)?;
    let loaded = crate::policy::applies::load(&repo, None).map_err(|e| undo(fail(format!("its policy does not load: {e}"))))?;
    let policy = &loaded.policy;
    let mut checker = crate::check::CommitChecker::new(policy, policy.signature_checker(Some(&repo)));
    let report = crate::check::check_ids(&repo, &mut checker, std::slice::from_ref(&commit), policy.branch_rule(&branch))
        .map_err(|e| undo(fail(e.to_string())))?;
    let c = report.commits.first().ok_or_else(|| undo(fail("nothing to check".into())))?;
    let admins = policy.roles.get("policy-admin").cloned().unwrap_or_default();
    let signer = c.signature.signer.clone().unwrap_or_default();
    let by_admin = c.signature.status == SignatureStatus::Good
        && (c.signature.identities.iter().any(|i| crate::signature::allowed_signers::identity_matches(i, &admins))
            || crate::signature::allowed_signers::identity_matches(&signer, &admins));
    if !by_admin {
        return Err(undo(fail(format!(
            "the commit that brings the policy ({}) must be signed (good) by a policy admin ([roles] policy-admin: {}); its signature is {}{}",
            crate::git::short_id(&commit),
            if admins.is_empty() { "none are named".to_string() } else { admins.join(", ") },
            c.signature.status.as_str(),
            if signer.is_empty() { String::new() } else { format!(", by {signer}") }
        ))));
    }
    // On the record, as the hooks record a push: the verdict, and the ref it set.
    if let Some(files) = crate::ledger::locate(None, Some(&repo)).filter(|f| f.exists()) {
        let mut ledger = crate::ledger::Ledger::open(&files).map_err(|e| undo(e.into()))?;
        let mut entries = crate::check::verification_entries(&report, policy, "git-audit install --from");
        let zero = "0".repeat(commit.len());
        let updated = crate::event::RefUpdated {
            ref_updates: vec![crate::git::RefUpdate { old: zero, new: commit.clone(), refname: branch.clone() }],
            pusher: crate::event::Pusher {
                identity: Some(signer.clone()),
                source: Some("install --server --from (seeded by an admin)".into()),
                certificate_key: None,
            },
        };
        entries.push(crate::event::Payload::entry(&updated, branch.clone(), signer.clone()));
        ledger.append(&entries).map_err(|e| undo(e.into()))?;
    }
    Ok(Seeded { branch, commit, signer })
}

/// Where a repository's hooks go: `core.hooksPath` (relative to the work tree,
/// or to the git dir when bare), else `<git-dir>/hooks`.
pub fn hooks_dir(repo: &Repo) -> PathBuf {
    match repo.config_path("core.hooksPath") {
        Some(p) if p.is_absolute() => p,
        Some(p) => repo.workdir().unwrap_or_else(|| repo.git_dir()).join(p),
        None => repo.git_dir().join("hooks"),
    }
}

/// What `install --server` set up.
#[derive(Debug, Clone, Default)]
pub struct ServerSetup {
    pub hooks: Vec<String>,
    /// The policy pinned with `git config audit.policy` (none: the default branch's).
    pub policy: Option<PathBuf>,
    /// A ledger created for the server: its path and public key.
    pub created_ledger: Option<(PathBuf, String)>,
    /// The hooks' own writer made with it: (owner key file, hooks key file).
    pub hooks_writer: Option<(PathBuf, PathBuf)>,
}

/// The writer name `install --server` gives the hooks.
pub const HOOKS_WRITER: &str = "hooks";

/// Installs the server hooks into the bare repository at `repo_path`, pins the
/// policy (validated first) and the ledger location in its git config, turns on
/// push options (for break glass), and creates the ledger if there is none.
pub fn server(
    repo_path: &Path,
    exe: &Path,
    policy: Option<&Path>,
    ledger: Option<&Path>,
    force: bool,
    chain: bool,
) -> Result<ServerSetup, InstallError> {
    let repo = Repo::discover(repo_path)?;
    let mut setup = ServerSetup { hooks: install(&hooks_dir(&repo), SERVER_HOOKS, exe, force, chain)?, ..ServerSetup::default() };
    if let Some(p) = policy {
        let abs = std::fs::canonicalize(p).map_err(io(p))?;
        crate::policy::Policy::load(&abs)?;
        repo.set_config("audit.policy", &abs.display().to_string())?;
        setup.policy = Some(abs);
    }
    repo.set_config("receive.advertisePushOptions", "true")?;
    if let Some(l) = ledger {
        // A PostgreSQL URL is kept as given; a file is made absolute.
        let value = match l.to_str().and_then(crate::ledger::store::PgUrl::parse) {
            Some(url) => url.secret().to_string(),
            None => std::path::absolute(l).map_err(io(l))?.display().to_string(),
        };
        repo.set_config("audit.ledger", &value)?;
    }
    if let Some(files) = crate::ledger::locate(ledger, Some(&repo)).filter(|f| !f.exists()) {
        let mut l = crate::ledger::Ledger::init(&files, None)?;
        setup.created_ledger = Some((files.db.clone(), l.verifier.to_string()));
        // The hooks write with a key of their own (their kinds only); the
        // owner key that made them a writer is for the admin to keep apart.
        let hooks_key = files.key.with_file_name("hooks.key");
        let signer = crate::ledger::note::NoteSigner::generate(&l.origin)
            .map_err(|e| crate::ledger::LedgerError::Key { path: hooks_key.clone(), msg: e.to_string() })?;
        crate::ledger::write_private(&hooks_key, &signer.to_private_string())?;
        let role = crate::ledger::writers::Role::Hooks;
        let change = crate::ledger::writers::WriterChanged {
            action: "add".into(),
            name: HOOKS_WRITER.into(),
            role: Some(role),
            key: signer.verifier().to_string(),
            kinds: role.kinds(),
            reason: None,
        };
        l.append(&[crate::event::Payload::entry(&change, crate::ledger::writers::SUBJECT, crate::ledger::writers::OWNER)])?;
        repo.set_config("audit.ledgerKey", &std::path::absolute(&hooks_key).map_err(io(&hooks_key))?.display().to_string())?;
        setup.hooks_writer = Some((files.key.clone(), hooks_key));
    }
    Ok(setup)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io { path: path.to_path_buf(), source }
}

pub fn is_ours(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(MARKER))
}

/// Installs `names` into `dir`; returns one line per hook saying what was done.
pub fn install(dir: &Path, names: &[&str], exe: &Path, force: bool, chain: bool) -> Result<Vec<String>, InstallError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut done = Vec::new();
    for name in names {
        let path = dir.join(name);
        let mut chained = false;
        if path.exists() && !is_ours(&path) {
            if chain {
                let kept = dir.join(format!("{name}.{CHAINED}"));
                std::fs::rename(&path, &kept).map_err(io(&path))?;
                chained = true;
            } else if !force {
                return Err(InstallError::Exists { path });
            }
        } else if is_ours(&path) && dir.join(format!("{name}.{CHAINED}")).exists() {
            chained = true;
        }
        std::fs::write(&path, shim(name, exe, chained)).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io(&path))?;
        done.push(format!("{}{}", path.display(), if chained { format!(" (runs the previous {name} first)") } else { String::new() }));
    }
    Ok(done)
}

/// Removes our shims from `dir`, restoring chained hooks; leaves others alone.
pub fn uninstall(dir: &Path, names: &[&str]) -> Result<Vec<String>, InstallError> {
    let mut done = Vec::new();
    for name in names {
        let path = dir.join(name);
        if !is_ours(&path) {
            continue;
        }
        std::fs::remove_file(&path).map_err(io(&path))?;
        let kept = dir.join(format!("{name}.{CHAINED}"));
        if kept.exists() {
            std::fs::rename(&kept, &path).map_err(io(&kept))?;
            done.push(format!("{} (restored the previous hook)", path.display()));
        } else {
            done.push(path.display().to_string());
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shims_exec_the_installing_binary_and_chain_with_stdin() {
        let exe = Path::new("/opt/it's/git-audit");
        let s = shim("pre-push", exe, false);
        assert!(s.starts_with("#!/bin/sh\n") && s.contains(MARKER));
        assert!(s.contains("exec '/opt/it'\\''s/git-audit' hook pre-push \"$@\""), "{s}");
        let c = shim("pre-receive", exe, true);
        assert!(
            c.contains("input=$(cat)")
                && c.contains("pre-receive.pre-git-audit")
                && c.contains("| exec '/opt/it'\\''s/git-audit' hook pre-receive"),
            "{c}"
        );
        let m = shim("commit-msg", exe, true);
        assert!(!m.contains("input=$(cat)") && m.contains("commit-msg.pre-git-audit"), "{m}");
    }
}
