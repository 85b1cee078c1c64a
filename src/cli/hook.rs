//! `git-audit hook <name>`: what the shims in `hooks/` exec. Reads what git
//! hands the hook, runs [`crate::hook::flow`], prints what it says.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{Global, Outcome};
use crate::git::Repo;
use crate::hook::flow::{self, HookError, Said, Setting};

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    pub hook: HookName,
}

#[derive(Debug, Subcommand)]
pub enum HookName {
    /// Server: decide a push (reads `<old> <new> <ref>` lines). Fails closed.
    PreReceive,
    /// Server: record what a push changed.
    PostReceive,
    /// Client: check what `git push` is about to send.
    PrePush { remote: Option<String>, url: Option<String> },
    /// Client: check a commit message as it is written.
    CommitMsg { file: PathBuf },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).context("cannot read the hook's standard input")?;
    Ok(s)
}

fn say(said: Result<Said, HookError>) -> anyhow::Result<Outcome> {
    let said = said?;
    eprint!("{}", said.stderr);
    Ok(if said.proceed { Outcome::Pass } else { Outcome::Violations })
}

pub fn run(global: &Global, args: HookArgs) -> anyhow::Result<Outcome> {
    // A file-size limit (ulimit -f) must not kill the hook mid-decision ("died
    // of signal 25"): with SIGXFSZ ignored the write fails with EFBIG, which the
    // hook reports, refusing the push when recording is required.
    // SAFETY: setting a signal's disposition to SIG_IGN is async-signal-safe and
    // done before any thread is started.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let pre_receive = matches!(args.hook, HookName::PreReceive);
    let outcome = (|| -> anyhow::Result<Outcome> {
        let input = match &args.hook {
            HookName::CommitMsg { .. } => String::new(),
            _ => stdin()?,
        };
        let repo = Repo::open_from_env()?;
        let s = Setting {
            repo: &repo,
            policy: global.policy.as_deref(),
            ledger: global.ledger.as_deref(),
            env: &env,
            opened: Default::default(),
        };
        match args.hook {
            HookName::PreReceive => say(flow::pre_receive(&s, &input)),
            HookName::PostReceive => say(flow::post_receive(&s, &input)),
            HookName::PrePush { remote, .. } => say(flow::pre_push(&s, &input, remote.unwrap_or_else(|| "origin".into()))),
            HookName::CommitMsg { file } => say(flow::commit_msg(&s, &file)),
        }
    })();
    match outcome {
        // Fail closed: a server that cannot decide refuses the push, saying why.
        Err(e) if pre_receive => {
            eprintln!("git-audit: push refused: the policy check could not run: {e:#}");
            Ok(Outcome::Violations)
        }
        other => other,
    }
}
