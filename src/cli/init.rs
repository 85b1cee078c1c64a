//! `git-audit init`: write the commented starter policy.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::{emit, Global, Outcome};
use crate::policy::{DEFAULT_FILE, STARTER};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing policy file.
    #[arg(long)]
    pub force: bool,
    /// Print the starter policy instead of writing it.
    #[arg(long)]
    pub stdout: bool,
}

pub fn run(global: &Global, args: InitArgs) -> anyhow::Result<Outcome> {
    if args.stdout {
        emit(STARTER)?;
        return Ok(Outcome::Pass);
    }
    let path: PathBuf = match &global.policy {
        Some(p) => p.clone(),
        None => {
            let repo = match crate::git::Repo::open_from_env() {
                Ok(r) => Some(r),
                Err(e @ crate::git::GitError::DubiousOwnership { .. }) => return Err(e.into()),
                Err(_) => None,
            };
            let root = repo.as_ref().and_then(|r| r.workdir());
            match (root, repo.is_some()) {
                (Some(r), _) => r.join(DEFAULT_FILE),
                // A bare repository (a server) has no work tree to commit a policy from.
                (None, true) => bail!(
                    "this is a bare repository: {DEFAULT_FILE} belongs in a clone's work tree\nHint: run `git-audit init` in a clone and commit it, or write a server policy with `git-audit --policy /etc/git-audit/policy.toml init`"
                ),
                (None, false) => bail!(
                    "not inside a git repository, so there is no work tree to put {DEFAULT_FILE} in\nHint: run it in your repository, name the file with `git-audit --policy FILE init`, or print the starter with `git-audit init --stdout`"
                ),
            }
        }
    };
    if path.exists() && !args.force {
        bail!(
            "{} already exists; not overwriting it\nHint: pass --force to replace it, or --stdout to print the starter policy",
            path.display()
        );
    }
    std::fs::write(&path, STARTER).with_context(|| format!("cannot write {}", path.display()))?;
    emit(&format!(
        "wrote {}\nNext: pin your keys under [signing], run `git-audit policy check`, then `git-audit verify`.\n",
        path.display()
    ))?;
    Ok(Outcome::Pass)
}
