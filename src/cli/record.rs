//! `git-audit record deployment`: a deployment made by any CI/CD system,
//! recorded in the ledger as `deployment.recorded`.

use clap::{Args, Subcommand, ValueEnum};

use super::{emit, Global, Outcome};
use crate::deploy::{self, Recording};
use crate::event::{DeployStatus, Payload};
use crate::ledger::Ledger;

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(subcommand)]
    pub what: RecordWhat,
}

#[derive(Debug, Subcommand)]
pub enum RecordWhat {
    /// A deployment made by any CI/CD system. What is not given is read from the CI's
    /// variables (GitHub Actions, GitLab CI, Jenkins, CircleCI, Buildkite).
    Deployment(DeploymentArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Success,
    Failure,
    Error,
    #[value(name = "in_progress")]
    InProgress,
}

#[derive(Debug, Args)]
pub struct DeploymentArgs {
    /// The environment deployed to (GitLab: CI_ENVIRONMENT_NAME).
    #[arg(long)]
    pub environment: Option<String>,
    /// The commit deployed (full id).
    #[arg(long)]
    pub sha: Option<String>,
    #[arg(long, value_enum, default_value_t = Status::Success)]
    pub status: Status,
    /// owner/name.
    #[arg(long = "repo", value_name = "OWNER/NAME")]
    pub repository: Option<String>,
    /// The ref deployed (main, refs/heads/main, v1.2.0).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// Who deployed (a forge login).
    #[arg(long)]
    pub actor: Option<String>,
    /// The CI run or job.
    #[arg(long)]
    pub url: Option<String>,
    /// Who approved it (repeat for each).
    #[arg(long = "approved-by", value_name = "LOGIN")]
    pub approved_by: Vec<String>,
    /// The CI's id for this deployment: records with the same id move one deployment through its states.
    #[arg(long)]
    pub id: Option<String>,
    /// The job's OIDC ID token (a JWT; `-` reads stdin). Default: GIT_AUDIT_ID_TOKEN,
    /// else requested from GitHub Actions (`permissions: id-token: write`). Checked
    /// against the policy's [[ci_issuers]]: repository, ref, actor and sha then come
    /// from its claims (attested) instead of flags and variables (asserted).
    #[arg(long, value_name = "FILE")]
    pub id_token: Option<std::path::PathBuf>,
}

pub fn run(global: &Global, args: RecordArgs) -> anyhow::Result<Outcome> {
    let RecordWhat::Deployment(a) = args.what;
    let status = match a.status {
        Status::Success => DeployStatus::Success,
        Status::Failure => DeployStatus::Failure,
        Status::Error => DeployStatus::Error,
        Status::InProgress => DeployStatus::InProgress,
    };
    let mut said = Recording {
        environment: a.environment,
        sha: a.sha,
        status: Some(status),
        repository: a.repository,
        git_ref: a.git_ref,
        actor: a.actor,
        url: a.url,
        approved_by: a.approved_by,
        id: a.id,
    };
    let env = |k: &str| std::env::var(k).ok();
    let repo = crate::git::Repo::open_from_env().ok();
    // Attested when the job has an ID token from an issuer the policy names.
    let issuers =
        super::policy::applies(global, repo.as_ref(), crate::policy::applies::Look::WorkTree)?.map(|p| p.ci_issuers).unwrap_or_default();
    let audience = issuers.first().map_or("git-audit", |i| i.audience.as_str()).to_string();
    let timeout = std::time::Duration::from_secs(10);
    let fetch_token = |url: &str, bearer: &str| -> Result<String, String> {
        match crate::notify::http::get_blocking(url, &[("authorization".into(), format!("bearer {bearer}"))], timeout)? {
            (200, body) => Ok(body),
            (status, _) => Err(format!("HTTP {status}")),
        }
    };
    let token = crate::attest::find_token(a.id_token.as_deref(), &env, &audience, &fetch_token).map_err(|e| anyhow::anyhow!("{e}"))?;
    let attestation = match (token, issuers.is_empty()) {
        (Some(_), true) => {
            eprintln!(
                "git-audit: note: the job has an ID token, but the policy names no [[ci_issuers]] to check it against: recorded as asserted"
            );
            None
        }
        (None, false) => {
            eprintln!("git-audit: note: no ID token (GIT_AUDIT_ID_TOKEN, --id-token, or GitHub's id-token: write): recorded as asserted");
            None
        }
        (None, true) => None,
        (Some(t), false) => {
            let fetch_jwks = |url: &str| -> Result<String, String> {
                match crate::notify::http::get_blocking(url, &[], timeout)? {
                    (200, body) => Ok(body),
                    (status, _) => Err(format!("HTTP {status} from the jwks_url")),
                }
            };
            let (att, claims) =
                crate::attest::verify(&t, &issuers, &fetch_jwks).map_err(|e| anyhow::anyhow!("refused: {e}; nothing was recorded"))?;
            attested_fill(&mut said, &claims)?;
            Some(att)
        }
    };
    let mut d = deploy::build(said, &env)?;
    d.attestation = attestation;
    let files = super::location(global, repo.as_ref())?;
    let mut ledger = Ledger::open(&files)?;
    let subject = format!("{}/{}", if d.repository.is_empty() { "-" } else { &d.repository }, d.environment);
    let sinks = if matches!(d.status, DeployStatus::Failure | DeployStatus::Error) {
        super::notify::sinks(global, repo.as_ref())
    } else {
        Vec::new()
    };
    let notices = if sinks.is_empty() { Vec::new() } else { vec![deploy::failed_notice(&d).reporting(0)] };
    if !notices.is_empty() {
        ledger.state_schema(crate::notify::SCHEMA)?;
    }
    let receipt = ledger.append_then(&[d.entry(subject, d.actor.clone().unwrap_or_default())], |r| {
        crate::notify::outbox_writes(&sinks, &notices, Some(crate::notify::Written { receipt: r, first: r.first_seq }))
    })?;
    drop(ledger);
    if !notices.is_empty() {
        super::notify::deliver_soon(&files, &sinks);
    }
    emit(&format!(
        "recorded deployment of {} to {} ({}, from {}, {}) as ledger seq {}\n",
        crate::git::short_id(&d.sha),
        d.environment,
        d.status.as_str(),
        d.source,
        match &d.attestation {
            Some(a) => format!("attested by {}", a.issuer),
            None => "asserted".to_string(),
        },
        receipt.first_seq
    ))?;
    Ok(Outcome::Pass)
}

/// A flag, its value, what the token attests, and how both compare.
type Field<'a> = (&'static str, &'a mut Option<String>, &'a Option<String>, fn(&str) -> String);

/// Takes what the token attests; a flag that says otherwise is an error.
fn attested_fill(said: &mut Recording, claims: &crate::attest::Claims) -> Result<(), crate::attest::Refused> {
    use crate::attest::Refused;
    let pairs: [Field<'_>; 5] = [
        ("sha", &mut said.sha, &claims.sha, |s| s.to_ascii_lowercase()),
        ("repo", &mut said.repository, &claims.repository, |s| s.to_string()),
        ("ref", &mut said.git_ref, &claims.git_ref, |s| s.strip_prefix("refs/heads/").unwrap_or(s).to_string()),
        ("actor", &mut said.actor, &claims.actor, |s| s.to_ascii_lowercase()),
        ("environment", &mut said.environment, &claims.environment, |s| s.to_string()),
    ];
    for (flag, said, attested, norm) in pairs {
        match (said.as_deref(), attested.as_deref()) {
            (Some(s), Some(t)) if norm(s) != norm(t) => {
                return Err(Refused::Contradicts { flag, said: s.to_string(), attested: t.to_string() })
            }
            (_, Some(t)) => *said = Some(t.to_string()),
            _ => {}
        }
    }
    Ok(())
}
