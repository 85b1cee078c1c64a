//! Issuing attestations (the documents, signed, in git notes and the ledger)
//! and checking them for a build pipeline (`attest verify`).

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use super::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::{assess, statements, Assessment, NOTES_REF, VSA_PREDICATE};
use crate::event::{AttestationIssued, Kind, Payload};
use crate::git::Repo;
use crate::ledger::note::NoteVerifier;
use crate::ledger::{entry::canonical_json, Ledger};
use crate::policy::{Attestations, Mode, Policy};

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("no key to sign with: attestations are signed by the ledger's writer key\nHint: run where the hooks run (their key is audit.ledgerKey), or pass --ledger-key")]
    NoKey,
    #[error("writing the git note on {commit}: {message}")]
    Note { commit: String, message: String },
    #[error("{0}")]
    Bad(String),
    #[error("attestations are signed by the hooks' key or the ledger owner's; the loaded key is writer `{writer}` ({role})\nHint: run where the hooks run (audit.ledgerKey), or pass --ledger-key with the hooks' key")]
    NotAnIssuer { writer: String, role: String },
}

/// The keys whose VSAs count: the ledger's owner and its hooks writers —
/// never a sync or CI writer's, whose keys sit on machines that do not decide pushes.
pub fn issuers(ledger: &Ledger) -> Result<Vec<NoteVerifier>, crate::ledger::LedgerError> {
    let mut out = vec![ledger.verifier.clone()];
    out.extend(
        ledger.writers()?.list.iter().filter(|w| w.revoked.is_none() && w.role == Some(crate::event::Role::Hooks)).map(|w| w.key.clone()),
    );
    Ok(out)
}

/// What was issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub assessment: Assessment,
    pub vsa: Envelope,
    pub provenance: Envelope,
    /// False when the ledger's key may not write `attestation.issued` (a
    /// writer added before the kind existed): the note is written, the ledger
    /// entry is not, and the caller says so.
    pub recorded: bool,
}

/// The repository's URI for statements: `[attestations] repository`, else its git directory.
pub fn repository_uri(settings: &Attestations, repo: &Repo) -> String {
    settings.repository.clone().unwrap_or_else(|| format!("file://{}", repo.git_dir().display()))
}

/// Assesses `commit` on `refname`, signs both statements with the ledger's
/// key, appends them to the commit's note (one envelope a line, as an in-toto
/// bundle) and to the ledger.
pub fn issue(repo: &Repo, ledger: &mut Ledger, policy: Option<&Policy>, commit: &str, refname: &str) -> Result<Issued, AttestError> {
    let mut a = assess(ledger, commit, refname)?;
    let default = Attestations::default();
    let settings = policy.map_or(&default, |p| &p.attestations);
    let properties = org_properties(policy, &mut a);
    let repository = repository_uri(settings, repo);
    let policy_uri = settings
        .policy_uri
        .clone()
        .or_else(|| a.landed.as_ref().map(|l| format!("urn:git-audit:policy:sha256:{}", l.policy_digest)))
        .unwrap_or_else(|| "urn:git-audit:policy:none".into());
    let now = crate::time::Timestamp::now().canonical();
    let (prov, vsa) = statements(&a, &repository, &policy_uri, &now, &properties);
    let signer = ledger.signer().ok_or(AttestError::NoKey)?;
    // Only an issuer signs: the owner, or a hooks writer.
    let key = signer.verifier();
    if key != ledger.verifier {
        match ledger.writers()?.by_key(&key) {
            Some(w) if w.role == Some(crate::event::Role::Hooks) => {}
            Some(w) => {
                return Err(AttestError::NotAnIssuer {
                    writer: w.name.clone(),
                    role: w.role.map_or("no role".to_string(), |r| r.as_str().to_string()),
                })
            }
            None => return Err(AttestError::NotAnIssuer { writer: "(none: not a writer of this ledger)".into(), role: "unknown".into() }),
        }
    }
    let prov = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, canonical_json(&prov).as_bytes(), signer);
    let vsa_env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, canonical_json(&vsa).as_bytes(), signer);
    let lines: Vec<String> = [&prov, &vsa_env].iter().filter_map(|e| serde_json::to_string(e).ok()).collect();
    append_note(repo, commit, &lines)?;
    let recorded = ledger.may_append(Kind::AttestationIssued);
    if recorded {
        let issued = AttestationIssued {
            commit: commit.into(),
            refname: refname.into(),
            level: a.level,
            verified_levels: vsa["predicate"]["verifiedLevels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            controls: a.controls.iter().filter_map(|c| serde_json::to_value(c).ok()).collect(),
            envelopes: [&prov, &vsa_env].iter().filter_map(|e| serde_json::to_value(e).ok()).collect(),
        };
        let actor = ledger.writer_name().unwrap_or_default();
        ledger.append(&[issued.entry(commit.to_string(), actor)])?;
    }
    Ok(Issued { assessment: a, vsa: vsa_env, provenance: prov, recorded })
}

/// `[attestations.properties]` that held: every rule a property names was
/// enforced on the ref under the policy the revision landed under. Only the
/// policy in force can say so: when it is not that one (a later `attest`),
/// the properties are not claimed, and the assessment says why.
fn org_properties(policy: Option<&Policy>, a: &mut Assessment) -> Vec<String> {
    let Some(p) = policy.filter(|p| !p.attestations.properties.is_empty()) else { return Vec::new() };
    let Some(landed) = a.landed.as_ref().filter(|_| a.level >= 2) else { return Vec::new() };
    if landed.policy_digest != p.digest {
        a.limits.push(format!(
            "organisation properties not claimed: the policy in force ({}) is not the one {} landed under ({})",
            &p.digest[..12.min(p.digest.len())],
            crate::git::short_id(&a.commit),
            &landed.policy_digest[..12.min(landed.policy_digest.len())]
        ));
        return Vec::new();
    }
    let branch = p.branch_rule(&a.refname);
    p.attestations
        .properties
        .iter()
        .filter(|(_, rules)| rules.iter().all(|r| p.configures(*r, branch) && p.mode_for(*r, branch) == Mode::Enforce))
        .map(|(name, _)| name.clone())
        .collect()
}

fn git(repo: &Repo) -> std::process::Command {
    let mut c = crate::git::exec::git_command();
    c.env("GIT_DIR", repo.git_dir())
        // A server account often has no identity of its own: the notes commit gets one.
        .env("GIT_AUTHOR_NAME", "git-audit")
        .env("GIT_AUTHOR_EMAIL", "git-audit@localhost")
        .env("GIT_COMMITTER_NAME", "git-audit")
        .env("GIT_COMMITTER_EMAIL", "git-audit@localhost");
    c
}

/// The lines of `commit`'s note (empty when it has none).
pub fn note_lines(repo: &Repo, commit: &str) -> Vec<String> {
    let out = git(repo).args(["notes", "--ref", NOTES_REF, "show", commit]).stderr(Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).filter(|l| !l.trim().is_empty()).collect()
        }
        _ => Vec::new(),
    }
}

fn append_note(repo: &Repo, commit: &str, lines: &[String]) -> Result<(), AttestError> {
    let mut all = note_lines(repo, commit);
    all.extend(lines.iter().cloned());
    let text = all.join("\n") + "\n";
    let fail = |message: String| AttestError::Note { commit: commit.to_string(), message };
    let mut child = git(repo)
        .args(["notes", "--ref", NOTES_REF, "add", "-f", "-F", "-", commit])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

/// One VSA found for a commit, checked.
#[derive(Debug, Clone)]
pub struct Found {
    pub level: u8,
    pub levels: Vec<String>,
    pub refs: Vec<String>,
    pub time: String,
    pub keyid: String,
}

/// The VSAs in `commit`'s note that a key in `trusted` signed, whose subject
/// is the commit (and, with `refname`, names that ref); newest last. Also
/// what was skipped, and why.
pub fn verified(repo: &Repo, commit: &str, refname: Option<&str>, trusted: &[NoteVerifier]) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in note_lines(repo, commit).iter().enumerate() {
        let Ok(env) = serde_json::from_str::<Envelope>(line) else {
            skipped.push(format!("note line {}: not a DSSE envelope", i + 1));
            continue;
        };
        let Some((body, key)) = trusted.iter().find_map(|k| env.open(k).map(|b| (b, super::dsse::keyid(k)))) else {
            if env.body().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).is_some_and(|s| s["predicateType"] == VSA_PREDICATE) {
                skipped.push(format!("note line {}: a VSA no trusted key signed", i + 1));
            }
            continue;
        };
        let Ok(s) = serde_json::from_slice::<Value>(&body) else { continue };
        if s["predicateType"] != VSA_PREDICATE || s["_type"] != super::STATEMENT_TYPE || env.payload_type != IN_TOTO_PAYLOAD_TYPE {
            continue;
        }
        let subject = s["subject"].as_array().and_then(|l| l.iter().find(|x| x["digest"]["gitCommit"] == commit));
        let Some(subject) = subject else {
            skipped.push(format!("note line {}: a VSA for another commit", i + 1));
            continue;
        };
        let refs: Vec<String> =
            subject["annotations"]["source_refs"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_string)).collect();
        if refname.is_some_and(|r| !refs.iter().any(|x| x == r)) {
            skipped.push(format!("note line {}: a VSA for {}", i + 1, refs.join(", ")));
            continue;
        }
        if s["predicate"]["verificationResult"] != "PASSED" {
            continue;
        }
        let levels: Vec<String> =
            s["predicate"]["verifiedLevels"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect();
        let level = levels.iter().filter_map(|l| super::LEVELS.iter().position(|x| x == l)).max().map_or(0, |p| p as u8 + 1);
        found.push(Found { level, levels, refs, time: s["predicate"]["timeVerified"].as_str().unwrap_or("").to_string(), keyid: key });
    }
    found.sort_by(|a, b| a.time.cmp(&b.time));
    (found, skipped)
}
