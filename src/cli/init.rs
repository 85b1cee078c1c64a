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
            let repo = crate::git::Repo::open_from_env().ok();
            let root = repo.as_ref().and_then(|r| r.workdir());
            match root {
                Some(r) => r.join(DEFAULT_FILE),
                None => std::env::current_dir()?.join(DEFAULT_FILE),
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
