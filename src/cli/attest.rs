//! `git-audit attest`: SLSA source attestations — issue one for a revision on
//! a ref (`attest COMMIT --ref REF`), or check one for a build pipeline
//! (`attest verify COMMIT --min-level N`).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::{emit, Global, Outcome};
use crate::ledger::note::NoteVerifier;
use crate::ledger::Ledger;
use crate::slsa::issue;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AttestArgs {
    #[command(subcommand)]
    pub command: Option<AttestCommand>,
    /// The revision to attest (a commit id, or anything git resolves to one).
    pub commit: Option<String>,
    /// The protected ref it is on (`main` is `refs/heads/main`; default: HEAD's target).
    #[arg(long = "ref", value_name = "REF")]
    pub refname: Option<String>,
    /// Print the assessment as JSON.
    #[arg(long)]
    pub json: bool,
    /// Attest again every revision whose recorded facts now support a higher
    /// level than its latest attestation says (a review synced since): run
    /// after `sync`, e.g. from the same timer.
    #[arg(long, conflicts_with_all = ["commit", "refname"])]
    pub pending: bool,
}

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Check a revision's VSA: signed by a trusted key, about this commit (and
    /// ref), at least --min-level. Exit 1 below it.
    Verify {
        /// The revision a pipeline is about to build (fetch `refs/notes/commits` first).
        commit: String,
        /// Only VSAs naming this ref count (`main` is `refs/heads/main`).
        #[arg(long = "ref", value_name = "REF")]
        refname: Option<String>,
        /// The lowest SLSA source level accepted (1-4).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
        min_level: u8,
        /// A trusted key (`name+hexid+base64`, or a file holding one per line);
        /// repeatable. Default: the ledger's owner and its hooks writers.
        #[arg(long, value_name = "KEY")]
        key: Vec<String>,
    },
}

pub fn run(global: &Global, args: AttestArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().context("attest runs in a git repository (the server's bare repository, or a clone)")?;
    match args.command {
        Some(AttestCommand::Verify { commit, refname, min_level, key }) => {
            verify(global, &repo, &commit, refname.map(full_ref).as_deref(), min_level, &key)
        }
        None if args.pending => pending(global, &repo),
        None => {
            let Some(spec) = args.commit else {
                bail!("which revision?\nHint: git-audit attest COMMIT --ref refs/heads/main, or git-audit attest verify COMMIT")
            };
            let commit = repo.resolve_commit(&spec).with_context(|| format!("`{spec}` is not a commit in this repository"))?;
            let refname = match args.refname {
                Some(r) => full_ref(r),
                None => repo.head_ref().context("no --ref, and HEAD names no branch\nHint: pass --ref refs/heads/main")?,
            };
            let policy = super::policy::applies(global, Some(&repo), crate::policy::applies::Look::WorkTreeThenServer)?;
            let files = super::location(global, Some(&repo))?;
            let mut ledger = Ledger::open(&files)?;
            let issued = issue::issue(&repo, &mut ledger, policy.as_ref(), &commit, &refname)?;
            let a = &issued.assessment;
            if args.json {
                emit(&(serde_json::to_string_pretty(a)? + "\n"))?;
            } else {
                let mut out = format!("{} on {}: {}\n", crate::git::short_id(&commit), refname, a.level_name());
                for c in &a.controls {
                    out.push_str(&format!("  {} since {}\n", c.name, c.since));
                }
                if let Some(r) = &a.review {
                    out.push_str(&format!(
                        "  reviewed: {}#{} by {} (author {})\n",
                        r.repository,
                        r.number,
                        if r.approvers.is_empty() { "nobody else".into() } else { r.approvers.join(", ") },
                        r.author
                    ));
                }
                for l in &a.limits {
                    out.push_str(&format!("  {l}\n"));
                }
                out.push_str(&format!(
                    "  signed VSA and source provenance added to {} of {}\n",
                    crate::slsa::NOTES_REF,
                    crate::git::short_id(&commit)
                ));
                emit(&out)?;
            }
            if !issued.recorded {
                eprintln!("warning: the ledger's key may not write attestation.issued (a writer added before it existed): the attestation is in the git note only\nHint: add a new hooks writer (git-audit ledger writers add NAME --role hooks) and use its key");
            }
            Ok(Outcome::Pass)
        }
    }
}

fn pending(global: &Global, repo: &crate::git::Repo) -> anyhow::Result<Outcome> {
    let policy = super::policy::applies(global, Some(repo), crate::policy::applies::Look::WorkTreeThenServer)?;
    let files = super::location(global, Some(repo))?;
    let mut ledger = Ledger::open(&files)?;
    let mut out = String::new();
    for (commit, refname, level) in crate::slsa::attested(&ledger)?.into_iter().filter(|(_, _, l)| *l < 4) {
        let now = crate::slsa::assess(&ledger, &commit, &refname)?;
        if now.level <= level {
            continue;
        }
        let issued = issue::issue(repo, &mut ledger, policy.as_ref(), &commit, &refname)?;
        out.push_str(&format!(
            "{} on {}: {} (was SLSA_SOURCE_LEVEL_{level}); a new attestation beside the old\n",
            crate::git::short_id(&commit),
            refname,
            issued.assessment.level_name()
        ));
    }
    if out.is_empty() {
        out.push_str("nothing to attest again: no revision's facts support more than its latest attestation says\n");
    }
    emit(&out)?;
    Ok(Outcome::Pass)
}

/// `main` → `refs/heads/main`: attestations name full refs, as pushes record them.
fn full_ref(r: String) -> String {
    if r.starts_with("refs/") {
        r
    } else {
        format!("refs/heads/{r}")
    }
}

fn trusted_keys(global: &Global, repo: &crate::git::Repo, given: &[String]) -> anyhow::Result<Vec<NoteVerifier>> {
    let mut out = Vec::new();
    for k in given {
        let text = if std::path::Path::new(k).is_file() {
            std::fs::read_to_string(k).with_context(|| format!("cannot read {k}"))?
        } else {
            k.clone()
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            out.push(NoteVerifier::parse(line).map_err(|e| anyhow::anyhow!("--key `{line}`: {e}"))?);
        }
    }
    if out.is_empty() {
        let files = super::location(global, Some(repo))?;
        let ledger =
            Ledger::open(&files).context("no --key given, so the ledger's issuers are trusted: the ledger must be readable here")?;
        out = issue::issuers(&ledger)?;
    }
    Ok(out)
}

fn verify(
    global: &Global,
    repo: &crate::git::Repo,
    spec: &str,
    refname: Option<&str>,
    min_level: u8,
    keys: &[String],
) -> anyhow::Result<Outcome> {
    let commit = repo.resolve_commit(spec).with_context(|| format!("`{spec}` is not a commit in this repository (git fetch?)"))?;
    let trusted = trusted_keys(global, repo, keys)?;
    let (found, skipped) = issue::verified(repo, &commit, refname, &trusted);
    for s in &skipped {
        eprintln!("note: {s}");
    }
    let Some(best) = found.last() else {
        eprintln!(
            "{}: no VSA signed by a trusted key{}\nHint: fetch the notes first: git fetch origin {}:{}",
            crate::git::short_id(&commit),
            refname.map(|r| format!(" for {r}")).unwrap_or_default(),
            crate::slsa::NOTES_REF,
            crate::slsa::NOTES_REF
        );
        return Ok(Outcome::Violations);
    };
    let line = format!(
        "{}: {} on {} (verified {}, key {})\n",
        crate::git::short_id(&commit),
        best.levels.join(", "),
        best.refs.join(", "),
        best.time,
        best.keyid
    );
    emit(&line)?;
    if best.level < min_level {
        eprintln!("below the required SLSA_SOURCE_LEVEL_{min_level}");
        return Ok(Outcome::Violations);
    }
    Ok(Outcome::Pass)
}
