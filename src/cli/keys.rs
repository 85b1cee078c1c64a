//! `git-audit keys`: list, check and pin the policy's keys.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{emit, Global, Outcome, OutputFormat};
use crate::keys;
use crate::policy::Policy;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub what: KeysWhat,
}

#[derive(Debug, Subcommand)]
pub enum KeysWhat {
    /// Every pinned key: who, algorithm, created, expires, status.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Keys expired, revoked, or expiring within --days (exit 1 when there are any).
    Check {
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Pin a key: `--gpg KEYID|FILE` (an armored public key, or exported from your
    /// GnuPG keyring), or `--ssh FILE.pub --principal EMAIL`.
    Add {
        #[arg(long, value_name = "KEYID|FILE", conflicts_with_all = ["ssh", "principal"], required_unless_present = "ssh")]
        gpg: Option<String>,
        #[arg(long, value_name = "FILE.pub", requires = "principal")]
        ssh: Option<PathBuf>,
        /// The email the SSH key signs as.
        #[arg(long, value_name = "EMAIL")]
        principal: Option<String>,
    },
}

pub fn run(global: &Global, args: KeysArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    let Some(path) = crate::policy::locate(global.policy.as_deref(), repo.as_ref()).filter(|p| p.exists()) else {
        bail!("no policy here\nHint: create one with `git-audit init`, or name it with --policy FILE");
    };
    match args.what {
        KeysWhat::List { format } => {
            let list = keys::list(&Policy::load(&path)?);
            show(&list, format, &format!("no keys pinned in {}", path.display()))?;
            Ok(Outcome::Pass)
        }
        KeysWhat::Check { days, format } => {
            let list: Vec<keys::KeyInfo> = keys::list(&Policy::load(&path)?).into_iter().filter(|k| k.expiring_within(days)).collect();
            show(&list, format, &format!("no pinned key expires within {days} days"))?;
            Ok(if list.is_empty() { Outcome::Pass } else { Outcome::Violations })
        }
        KeysWhat::Add { gpg, ssh, principal } => {
            let added = match (gpg, ssh, principal) {
                (Some(g), _, _) => {
                    let armored = if std::path::Path::new(&g).is_file() {
                        std::fs::read(&g).with_context(|| format!("cannot read {g}"))?
                    } else {
                        let out = std::process::Command::new("gpg")
                            .args(["--batch", "--armor", "--export", &g])
                            .output()
                            .context("cannot run gpg to export the key")?;
                        if !out.status.success() || out.stdout.is_empty() {
                            bail!("gpg has no public key `{g}` in your keyring\nHint: give a key id, fingerprint or email gpg knows (`gpg --list-keys`), or an .asc file");
                        }
                        out.stdout
                    };
                    keys::add_openpgp(&path, &armored)?
                }
                (None, Some(file), Some(principal)) => {
                    let line = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
                    keys::add_ssh(&path, &line, &principal)?
                }
                _ => bail!("give --gpg KEYID|FILE, or --ssh FILE.pub with --principal EMAIL"),
            };
            emit(&format!(
                "pinned {} ({}) in {}{}\n",
                added.fingerprint,
                added.who.join(", "),
                added.file.display(),
                if added.policy_changed { format!("; {} now names it", path.display()) } else { String::new() }
            ))?;
            // Say up front what the strict OpenPGP policy will do with it.
            if let Ok(policy) = Policy::load(&path) {
                if let Some(k) = keys::list(&policy).into_iter().find(|k| k.fingerprint == added.fingerprint && !k.weak.is_empty()) {
                    let then = match policy.signing.openpgp_policy {
                        crate::signature::OpenpgpPolicy::Strict => {
                            "its signatures will be `error` under this policy's `openpgp_policy = \"strict\"`"
                        }
                        crate::signature::OpenpgpPolicy::Gnupg => {
                            "accepted under `openpgp_policy = \"gnupg\"`, with a `signing.weak-algorithm` warning on each signature"
                        }
                    };
                    eprintln!(
                        "warning: {} relies on weak cryptography: {}; {then}\nHint: {}",
                        k.fingerprint,
                        k.weak.join("; "),
                        k.fix.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(Outcome::Pass)
        }
    }
}

fn show(list: &[keys::KeyInfo], format: OutputFormat, empty: &str) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        return emit(&format!("{}\n", serde_json::to_string_pretty(list)?));
    }
    if list.is_empty() {
        return emit(&format!("{empty}\n"));
    }
    let mut out = String::new();
    for k in list {
        out.push_str(&format!(
            "{:<7} {:<8} {}  {}  {}  created {}  expires {}  ({})\n",
            k.kind,
            k.status,
            k.fingerprint,
            k.who.join(", "),
            k.algorithm,
            k.created.as_deref().unwrap_or("-"),
            k.expires.as_deref().unwrap_or("never"),
            k.source
        ));
        if !k.weak.is_empty() {
            out.push_str(&format!(
                "        the strict OpenPGP policy cannot use it: {}\n        Hint: {}; {}\n",
                k.weak.join("; "),
                k.fix.as_deref().unwrap_or(""),
                crate::signature::native::GNUPG_ALTERNATIVE
            ));
        }
    }
    emit(&out)
}
