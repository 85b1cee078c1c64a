//! Command-line interface: one module per subcommand, each a thin layer that
//! parses arguments, calls the library and renders the result.

pub mod attest;
pub mod digest;
pub mod hook;
pub mod init;
pub mod install;
pub mod keys;
pub mod ledger;
pub mod notify;
pub mod policy;
pub mod record;
pub mod report;
pub mod serve;
pub mod style;
pub mod sync;
pub mod verify;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// What a command concluded, mapped to the exit code by `main`.
/// Text for people, JSON for programs (`verify`, `ledger status`, `ledger verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Pass,
    /// Exit 1: at least one policy violation.
    Violations,
}

#[derive(Debug, Parser)]
#[command(name = "git-audit", version, about = "Makes every change to a codebase provable", propagate_version = true)]
pub struct Cli {
    /// The policy file (default: `GIT_AUDIT_POLICY`, `git config audit.policy`, else .git-audit.toml at the repository root).
    #[arg(long, global = true, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The ledger (default: `GIT_AUDIT_LEDGER`, `git config audit.ledger`, else <git-dir>/audit/ledger.db).
    #[arg(long, global = true, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// The ledger's checkpoint-signing key, for commands that append (default:
    /// `GIT_AUDIT_LEDGER_KEY`, `git config audit.ledgerKey`, else beside the ledger).
    #[arg(long, global = true, value_name = "PATH")]
    pub ledger_key: Option<PathBuf>,
    /// Run as if started in PATH.
    #[arg(short = 'C', global = true, value_name = "PATH")]
    pub directory: Option<PathBuf>,
    /// Diagnostic log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter policy (.git-audit.toml).
    Init(init::InitArgs),
    /// The policy file: check, explain.
    Policy(policy::PolicyArgs),
    /// Check commits against the policy: signatures and metadata.
    Verify(verify::VerifyArgs),
    /// The audit ledger: init, status, checkpoint, verify, prove, check-proof, export, anchor, rebuild, migrate, writers, append.
    Ledger(ledger::LedgerArgs),
    /// Install the git hooks (pre-push, commit-msg; or with --server, pre-receive and post-receive).
    Install(install::InstallArgs),
    /// Run as a git hook (the shims installed by `git-audit install` call this).
    Hook(hook::HookArgs),
    /// Sync pull (merge) requests, reviews and deployments from GitHub, GitLab or Gitea into the ledger.
    Sync(sync::SyncArgs),
    /// Reports over the ledger: trace, deployments, dora, evidence (a package), pushes, sources, compliance.
    Report(report::ReportArgs),
    /// A review of a window: what shipped and who approved it, failures, refused
    /// pushes and break glass, findings and anomalies; --send SINK delivers it.
    Digest(digest::DigestArgs),
    /// Record what happened elsewhere: `record deployment` from any CI/CD system.
    Record(record::RecordArgs),
    /// SLSA source attestations: issue one for a revision on a protected ref, or `attest verify` it.
    Attest(attest::AttestArgs),
    /// Notifications: drain (deliver the outbox), test, status, enable.
    Notify(notify::NotifyArgs),
    /// The policy's keys: list, check (expiry), add (pin a new one).
    Keys(keys::KeysArgs),
    /// A read-only web UI over the ledger: dashboard, reports, entries with proofs, JSON.
    Serve(serve::ServeArgs),
    /// Evidence packages (`report evidence` writes them): verify, offline.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manual pages (roff): with --dir, one per command and subcommand
    /// (`git-audit man --dir /usr/local/share/man/man1`); without, the top page on stdout.
    Man {
        /// Write every page here (git-audit.1, git-audit-verify.1, git-audit-ledger-writers-add.1 …).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The completion script for `shell`. Bash: clap_complete 4.6 spells the
/// state of a hyphenated binary two ways (the loop sets `git__audit__subcmd__report`,
/// the arms match `git__subcmd__audit__subcmd__report`), so nothing completed
/// below the first word (clap-rs/clap#6421); the arms are respelt the loop's way.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "git-audit", &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    match shell {
        clap_complete::Shell::Bash => text.replace("git__subcmd__audit", "git__audit"),
        _ => text,
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCommand {
    /// Check a package offline: manifest digests, the signed checkpoint, every
    /// entry's inclusion proof, every report citing only proven entries, and the
    /// consistency proof from an earlier package. Exit 1 naming what failed.
    Verify {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    if let Some(dir) = &cli.directory {
        std::env::set_current_dir(dir).map_err(|e| anyhow::anyhow!("cannot change to {}: {e}", dir.display()))?;
    }
    if let Some(key) = &cli.ledger_key {
        // Through the environment, so hooks' background work and every locate() see it.
        std::env::set_var("GIT_AUDIT_LEDGER_KEY", key);
    }
    let color = style::enabled(cli.color);
    // Flags > environment (for containers) > git config > defaults.
    let policy = cli.policy.clone().or_else(|| std::env::var_os("GIT_AUDIT_POLICY").filter(|v| !v.is_empty()).map(PathBuf::from));
    let global = Global { policy, ledger: cli.ledger.clone(), color, log_json: cli.log_format == LogFormat::Json };
    match cli.command {
        Command::Init(args) => init::run(&global, args),
        Command::Policy(args) => policy::run(&global, args),
        Command::Verify(args) => verify::run(&global, args),
        Command::Ledger(args) => ledger::run(&global, args),
        Command::Hook(args) => hook::run(&global, args),
        Command::Install(args) => install::run(&global, args),
        Command::Sync(args) => sync::run(&global, args),
        Command::Report(args) => report::run(&global, args),
        Command::Digest(args) => digest::run(&global, args),
        Command::Record(args) => record::run(&global, args),
        Command::Attest(args) => attest::run(&global, args),
        Command::Notify(args) => notify::run(&global, args),
        Command::Keys(args) => keys::run(&global, args),
        Command::Serve(args) => serve::run(&global, args),
        Command::Evidence { command: EvidenceCommand::Verify { file, format } } => {
            let c = crate::evidence::verify(&file)?;
            match format {
                OutputFormat::Json => emit(&format!("{}\n", serde_json::to_string_pretty(&c)?))?,
                OutputFormat::Text => {
                    let mut out = String::new();
                    for p in &c.problems {
                        out.push_str(&format!("{} {p}\n", style::red(color, "FAILED")));
                    }
                    if c.problems.is_empty() {
                        out.push_str(&format!(
                            "{}: {} entries proven in log {} at size {}; {} reports cite only proven entries{}\n",
                            style::green(color, "evidence OK"),
                            c.entries,
                            c.origin,
                            c.tree_size,
                            c.reports.len(),
                            c.consistent_from
                                .map(|n| format!("; the log still extends the earlier package's size {n}"))
                                .unwrap_or_default()
                        ));
                    }
                    if c.problems.is_empty() {
                        for line in &c.recomputed {
                            out.push_str(&format!("  recomputed  {line}\n"));
                        }
                        for line in &c.not_recomputed {
                            out.push_str(&format!("  not checked {line}\n"));
                        }
                    }
                    emit(&out)?;
                }
            }
            Ok(if c.problems.is_empty() { Outcome::Pass } else { Outcome::Violations })
        }
        Command::Completions { shell } => {
            emit(&completion_script(shell))?;
            Ok(Outcome::Pass)
        }
        Command::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
                    clap_mangen::generate_to(cmd, &dir).map_err(|e| anyhow::anyhow!("cannot write the pages to {}: {e}", dir.display()))?;
                    let n = std::fs::read_dir(&dir)?
                        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".1")))
                        .count();
                    emit(&format!("wrote {n} manual pages to {}\n", dir.display()))?;
                }
                None => {
                    let mut out = Vec::new();
                    clap_mangen::Man::new(cmd).render(&mut out)?;
                    emit(&String::from_utf8_lossy(&out))?;
                }
            }
            Ok(Outcome::Pass)
        }
    }
}

/// Options every subcommand sees.
pub struct Global {
    pub policy: Option<PathBuf>,
    pub ledger: Option<PathBuf>,
    pub color: bool,
    /// `--log-format json`: machine-read output where a command has a summary.
    pub log_json: bool,
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    // The last guard for what others wrote: DEL, C1 and bidi controls become
    // `\u` escapes (in JSON, the same value). Reports escape C0 themselves.
    let text = crate::text::json_safe(text);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Where the ledger is, as every command finds it.
pub fn location(global: &Global, repo: Option<&crate::git::Repo>) -> anyhow::Result<crate::ledger::LedgerFiles> {
    crate::ledger::locate(global.ledger.as_deref(), repo)
        .ok_or_else(|| anyhow::anyhow!("no ledger location: not in a git repository and no --ledger PATH given"))
}
