//! `git-audit policy check`: validate the policy, keys included.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{emit, Global, Outcome};
use crate::policy::{self, Policy};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the policy: syntax, types, regexes, key files; exit 2 on any problem.
    Check,
}

/// Finds and loads the policy the way every command does.
pub fn load(global: &Global, repo: Option<&crate::git::Repo>) -> anyhow::Result<Policy> {
    let path = policy::locate(global.policy.as_deref(), repo).context(
        "no policy found: not in a git work tree and no --policy given\nHint: pass --policy FILE or set `git config audit.policy`",
    )?;
    if !path.exists() {
        anyhow::bail!("no policy at {}\nHint: create one with `git-audit init`, or pass --policy FILE", path.display());
    }
    Ok(Policy::load(&path)?)
}

pub fn run(global: &Global, args: PolicyArgs) -> anyhow::Result<Outcome> {
    match args.command {
        PolicyCommand::Check => {
            let repo = crate::git::Repo::open_from_env().ok();
            let policy = load(global, repo.as_ref())?;
            // Import the pinned OpenPGP keys now, so an unreadable key is reported here.
            if !policy.signing.openpgp_keys.is_empty() {
                policy.signature_checker(repo.as_ref()).prepare()?;
            }
            for w in &policy.warnings {
                eprintln!("warning: {w}");
            }
            let ssh = policy.signing.ssh_allowed_signers.as_ref().map_or(0, |a| a.entries.len());
            emit(&format!(
                "policy OK: {} ({} OpenPGP key file{}, {} SSH signer{}, {} branch rule{}; digest {})\n",
                policy.path.display(),
                policy.signing.openpgp_keys.len(),
                plural(policy.signing.openpgp_keys.len()),
                ssh,
                plural(ssh),
                policy.branches.len(),
                plural(policy.branches.len()),
                &policy.digest[..12]
            ))?;
            Ok(Outcome::Pass)
        }
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
