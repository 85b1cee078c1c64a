//! `git-audit policy check`: validate the policy, keys included.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{emit, Global, Outcome};
use crate::policy::applies::Look;
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
    /// Say which rules cover a file: the `[[paths]]` entry (first match wins),
    /// its signers and approvers, the CODEOWNERS line (last match wins), and
    /// whether it is part of the policy's own footprint.
    Explain {
        /// A repository-relative path (`.github/workflows/ci.yml`).
        path: String,
        /// `text` or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

/// The policy that applies here ([`policy::applies`]), when there is one.
pub fn applies(global: &Global, repo: Option<&crate::git::Repo>, look: Look) -> anyhow::Result<Option<Policy>> {
    Ok(policy::applies::applies(global.policy.as_deref(), repo, look)?.map(|a| a.policy))
}

/// The policy that applies in a work tree; none is an error.
pub fn load(global: &Global, repo: Option<&crate::git::Repo>) -> anyhow::Result<Policy> {
    if let Some(p) = applies(global, repo, Look::WorkTree)? {
        return Ok(p);
    }
    let path = policy::locate(global.policy.as_deref(), repo).context(
        "no policy found: not in a git work tree and no --policy given\nHint: pass --policy FILE or set `git config audit.policy`",
    )?;
    anyhow::bail!("no policy at {}\nHint: create one with `git-audit init`, or pass --policy FILE", path.display())
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
            for w in &policy.warnings() {
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
            // Say what an immutable pattern means, and why a pattern is one by default.
            for b in policy.branches.iter().filter(|b| b.immutable) {
                emit(&format!(
                    "immutable: {} — once a ref under it exists it never moves, not even forward (branches.immutable){}\n",
                    b.pattern,
                    if b.pattern.starts_with("refs/tags/") && b.forbid_force_push {
                        "; the default for a tag pattern with forbid_force_push (`immutable = false` to allow moves forward)"
                    } else {
                        ""
                    }
                ))?;
            }
            Ok(Outcome::Pass)
        }
        PolicyCommand::Explain { path, format } => {
            let repo = crate::git::Repo::open_from_env().ok();
            let policy = load(global, repo.as_ref())?;
            let e = explain(&policy, repo.as_ref(), &path);
            if format == "json" {
                emit(&(serde_json::to_string_pretty(&e)? + "\n"))?;
            } else {
                emit(&explain_text(&e))?;
            }
            Ok(Outcome::Pass)
        }
    }
}

/// What covers one path.
#[derive(Debug, serde::Serialize)]
pub struct Explanation {
    pub path: String,
    /// The `[[paths]]` entry that covers it (the first that matches).
    pub paths_rule: Option<serde_json::Value>,
    /// The CODEOWNERS line that covers it (the last that matches), when `[codeowners]` is enabled.
    pub codeowners: Option<serde_json::Value>,
    /// True when the file is the policy or a file the policy loads (rule `policy.admin`).
    pub policy_footprint: bool,
}

fn explain(policy: &Policy, repo: Option<&crate::git::Repo>, path: &str) -> Explanation {
    let path = path.trim_start_matches("./").trim_start_matches('/').to_string();
    let paths_rule = policy.path_rule(&path).map(|r| {
        let mode = r.mode.unwrap_or_else(|| policy.mode_for(crate::rule::Rule::PathsSigner, None));
        serde_json::json!({
            "pattern": r.pattern.text, "at": r.origin, "mode": mode,
            "signers": r.signers, "signers_resolved": policy.path_signers(r),
            "approvers": r.approvers.iter().map(principal_text).collect::<Vec<_>>(),
        })
    });
    let codeowners = if policy.codeowners { policy::paths::CodeOwners::read(repo) } else { None }.and_then(|c| {
        c.owners(&path).map(|r| serde_json::json!({"file": c.path, "line": r.line, "pattern": r.pattern.text, "owners": r.owners}))
    });
    let policy_text = std::fs::read(&policy.path).unwrap_or_default();
    let footprint = path == policy::DEFAULT_FILE
        || policy.path.file_name().is_some_and(|n| n == path.as_str())
        || crate::policy::applies::referenced_paths(&policy_text).iter().any(|p| {
            let p = p.trim_start_matches("./");
            path == p || path.starts_with(&format!("{}/", p.trim_end_matches('/')))
        });
    Explanation { path, paths_rule, codeowners, policy_footprint: footprint }
}

fn principal_text(p: &crate::policy::Principal) -> String {
    p.label()
}

fn explain_text(e: &Explanation) -> String {
    let mut out = format!("{}\n", e.path);
    match &e.paths_rule {
        Some(r) => {
            let list = |k: &str| {
                let v: Vec<&str> = r[k].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            out.push_str(&format!(
                "  [[paths]] `{}` at {} (mode {}; the first entry that matches wins)\n",
                r["pattern"].as_str().unwrap_or(""),
                r["at"].as_str().unwrap_or(""),
                r["mode"].as_str().unwrap_or("")
            ));
            out.push_str(&format!(
                "    signers: {} — a commit changing it needs a good signature by one of them (rule paths.signer)\n",
                list("signers_resolved")
            ));
            out.push_str(&format!(
                "    approvers: {} — a merged pull request changing it needs an approval by one of them\n",
                list("approvers")
            ));
        }
        None => out.push_str("  no [[paths]] entry covers it\n"),
    }
    if let Some(c) = &e.codeowners {
        let owners: Vec<&str> = c["owners"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
        out.push_str(&format!(
            "  CODEOWNERS {}:{} `{}`: {} (the last line that matches wins)\n",
            c["file"].as_str().unwrap_or(""),
            c["line"],
            c["pattern"].as_str().unwrap_or(""),
            if owners.is_empty() { "no owners".to_string() } else { owners.join(", ") }
        ));
    }
    if e.policy_footprint {
        out.push_str(
            "  part of the policy's footprint: on a protected ref a change needs a policy-admin's signature (rule policy.admin)\n",
        );
    }
    out
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
