//! `git-audit install`: hooks for a clone (pre-push, commit-msg) or, with
//! `--server`, for a bare repository (pre-receive, post-receive).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{emit, Global, Outcome};
use crate::git::Repo;
use crate::install::{self, CLIENT_HOOKS, SERVER_HOOKS};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install the server hooks into this bare repository (policy pinned with --policy).
    #[arg(long, value_name = "REPO")]
    pub server: Option<PathBuf>,
    /// Replace hooks that are not git-audit's.
    #[arg(long)]
    pub force: bool,
    /// Keep existing hooks and run them before git-audit.
    #[arg(long)]
    pub chain: bool,
    /// Remove the hooks git-audit installed (and restore chained ones).
    #[arg(long)]
    pub uninstall: bool,
}

fn git(repo: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("git").arg("-C").arg(repo).args(args).output().context("cannot run git")?;
    anyhow::ensure!(out.status.success(), "git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

pub fn run(global: &Global, args: InstallArgs) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find the git-audit binary's own path")?;
    let (repo_dir, names): (PathBuf, &[&str]) = match &args.server {
        Some(p) => (p.clone(), SERVER_HOOKS),
        None => (std::env::current_dir()?, CLIENT_HOOKS),
    };
    let prev = std::env::current_dir()?;
    std::env::set_current_dir(&repo_dir).with_context(|| format!("cannot enter {}", repo_dir.display()))?;
    let repo = Repo::open_from_env();
    std::env::set_current_dir(prev)?;
    let repo = repo?;
    // core.hooksPath wins over <git-dir>/hooks, relative to the work tree (or git dir when bare).
    let hooks_dir = match repo.config_path("core.hooksPath") {
        Some(p) if p.is_absolute() => p,
        Some(p) => repo.workdir().unwrap_or_else(|| repo.git_dir()).join(p),
        None => repo.git_dir().join("hooks"),
    };
    if args.uninstall {
        let removed = install::uninstall(&hooks_dir, names)?;
        emit(&if removed.is_empty() {
            format!("no git-audit hooks in {}\n", hooks_dir.display())
        } else {
            removed.iter().map(|r| format!("removed {r}\n")).collect()
        })?;
        return Ok(Outcome::Pass);
    }
    let done = install::install(&hooks_dir, names, &exe, args.force, args.chain)?;
    let mut out: String = done.iter().map(|d| format!("installed {d}\n")).collect();
    if args.server.is_some() {
        let dir = repo.git_dir();
        if let Some(p) = &global.policy {
            let abs = std::fs::canonicalize(p).with_context(|| format!("policy {} not found", p.display()))?;
            crate::policy::Policy::load(&abs)?;
            git(&dir, &["config", "audit.policy", &abs.display().to_string()])?;
            out.push_str(&format!("pinned policy {} (git config audit.policy)\n", abs.display()));
        } else {
            out.push_str(&format!(
                "no --policy: pushes are judged by {} as committed on the default branch\n",
                crate::policy::DEFAULT_FILE
            ));
        }
        git(&dir, &["config", "receive.advertisePushOptions", "true"])?;
        if let Some(l) = &global.ledger {
            git(&dir, &["config", "audit.ledger", &std::path::absolute(l)?.display().to_string()])?;
        }
        let loc = crate::ledger::locate(global.ledger.as_deref(), Some(&repo)).context("no ledger location")?;
        if !loc.db.exists() {
            let l = crate::ledger::Ledger::init(&loc, None)?;
            out.push_str(&format!("created ledger {} (public key {})\n", loc.db.display(), l.verifier));
        }
        out.push_str("for signed pushes, also set `git config receive.certNonceSeed <secret>`\n");
    }
    emit(&out)?;
    Ok(Outcome::Pass)
}
