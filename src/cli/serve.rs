//! `git-audit serve`: the read-only web UI over the ledger.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::{Global, Outcome};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A file holding the bearer token every request must carry.
    #[arg(long, value_name = "PATH", conflicts_with = "token_env")]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the bearer token.
    #[arg(long, value_name = "NAME")]
    pub token_env: Option<String>,
}

pub fn run(global: &Global, args: ServeArgs) -> anyhow::Result<Outcome> {
    let token = match (&args.token_file, &args.token_env) {
        (Some(p), _) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("cannot read the token file {}", p.display()))?.trim().to_string())
        }
        (None, Some(name)) => match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            _ => bail!("--token-env {name}: the variable is not set (or empty)"),
        },
        (None, None) => None,
    };
    if token.as_deref().is_some_and(|t| t.len() < 16) {
        bail!("the token is shorter than 16 characters; use a long random one, e.g. `head -c 24 /dev/urandom | base64`");
    }
    let repo = crate::git::Repo::open_from_env().ok();
    let ledger = super::location(global, repo.as_ref())?;
    let policy = crate::policy::locate(global.policy.as_deref(), repo.as_ref()).filter(|p| p.exists());
    let opts = crate::web::Options { listen: args.listen, token, ledger, policy, repo: repo.as_ref().map(|r| r.git_dir()) };
    crate::web::run(opts, |addr| {
        eprintln!("git-audit: serving the ledger read-only on http://{addr}/ (Ctrl-C to stop)");
    })?;
    Ok(Outcome::Pass)
}
