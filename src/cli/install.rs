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
    /// With --server and no --policy: put the first policy on the empty server's
    /// default branch from this clone, whose HEAD commits .git-audit.toml, signed
    /// by a holder of its own policy-admin role.
    #[arg(long, value_name = "CLONE", requires = "server")]
    pub from: Option<PathBuf>,
}

pub fn run(global: &Global, args: InstallArgs) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find the git-audit binary's own path")?;
    let (repo_dir, names): (PathBuf, &[&str]) = match &args.server {
        Some(p) => (p.clone(), SERVER_HOOKS),
        None => (std::env::current_dir()?, CLIENT_HOOKS),
    };
    if args.uninstall {
        let hooks_dir = install::hooks_dir(&Repo::discover(&repo_dir)?);
        let removed = install::uninstall(&hooks_dir, names)?;
        emit(&if removed.is_empty() {
            format!("no git-audit hooks in {}\n", hooks_dir.display())
        } else {
            removed.iter().map(|r| format!("removed {r}\n")).collect()
        })?;
        return Ok(Outcome::Pass);
    }
    let mut out = String::new();
    match &args.server {
        None => {
            let done = install::install(&install::hooks_dir(&Repo::discover(&repo_dir)?), names, &exe, args.force, args.chain)?;
            out.extend(done.iter().map(|d| format!("installed {d}\n")));
        }
        Some(server) => {
            if args.from.is_some() && global.policy.is_some() {
                anyhow::bail!("--from seeds the default-branch policy; with --policy the server's policy is that file instead (use one)");
            }
            let setup = install::server(server, &exe, global.policy.as_deref(), global.ledger.as_deref(), args.force, args.chain)?;
            if let Some(clone) = &args.from {
                let s = install::seed(server, clone)?;
                out.push_str(&format!(
                    "seeded {} with {} from {}: {} signed by {}, a policy admin\n",
                    s.branch,
                    crate::git::short_id(&s.commit),
                    clone.display(),
                    crate::policy::DEFAULT_FILE,
                    s.signer
                ));
            }
            out.extend(setup.hooks.iter().map(|d| format!("installed {d}\n")));
            match &setup.policy {
                Some(p) => out.push_str(&format!("pinned policy {} (git config audit.policy)\n", p.display())),
                None => out.push_str(&format!(
                    "no --policy: pushes are judged by {} as committed on the default branch\n",
                    crate::policy::DEFAULT_FILE
                )),
            }
            if let Some((db, key)) = &setup.created_ledger {
                out.push_str(&format!("created ledger {} (public key {key})\n", db.display()));
            }
            if let Some((owner, hooks)) = &setup.hooks_writer {
                out.push_str(&format!(
                    "the hooks write as writer `{}` with {} (set as audit.ledgerKey; push, ref and commit kinds only)\n\
                     the owner key {} adds and revokes writers: move it off this machine, and give each \
                     sync or CI job its own writer (`git-audit ledger writers add NAME --role sync|ci --key-out FILE --ledger-key {}`)\n",
                    crate::install::HOOKS_WRITER,
                    hooks.display(),
                    owner.display(),
                    owner.display()
                ));
            }
            out.push_str("for signed pushes, also set `git config receive.certNonceSeed <secret>`\n");
        }
    }
    emit(&out)?;
    Ok(Outcome::Pass)
}
