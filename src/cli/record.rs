//! `git-audit record deployment`: a deployment made by any CI/CD system,
//! recorded in the ledger as `deployment.recorded`.

use clap::{Args, Subcommand, ValueEnum};

use super::{emit, Global, Outcome};
use crate::deploy::{self, Recording};
use crate::ledger::event::{DeployStatus, Payload};
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
}

pub fn run(global: &Global, args: RecordArgs) -> anyhow::Result<Outcome> {
    let RecordWhat::Deployment(a) = args.what;
    let status = match a.status {
        Status::Success => DeployStatus::Success,
        Status::Failure => DeployStatus::Failure,
        Status::Error => DeployStatus::Error,
        Status::InProgress => DeployStatus::InProgress,
    };
    let said = Recording {
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
    let d = deploy::build(said, &env)?;
    let repo = crate::git::Repo::open_from_env().ok();
    let files = super::ledger::location(global, repo.as_ref())?;
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
        "recorded deployment of {} to {} ({}, from {}) as ledger seq {}\n",
        crate::git::short_id(&d.sha),
        d.environment,
        d.status.as_str(),
        d.source,
        receipt.first_seq
    ))?;
    Ok(Outcome::Pass)
}
