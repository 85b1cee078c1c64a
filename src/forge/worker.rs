//! The sync worker: one pass over the repositories, or one every interval, with
//! one worker per ledger at a time (a lock file beside it) and a clean stop on
//! SIGTERM (the current page finishes; the next run resumes from the cursors).
//! The only place a tokio runtime is built.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::batch::{RepoSummary, SyncError};
use super::github::{Auth, Client, PullsApi};
use super::rest::{redact, ClientError, RestClient, Stats};
use super::state::HttpCacheTable;
use crate::ledger::{Ledger, LedgerError, LedgerFiles};

/// Which forge a worker reads, and how it signs in there.
pub enum Target {
    GitHub {
        api_url: String,
        auth: Auth,
        pulls_api: PullsApi,
        /// Teams (`org`, `slug`) whose members to snapshot (those the policy names).
        teams: Vec<(String, String)>,
    },
    /// GitLab (gitlab.com or self-managed): `api_url` ends in `/api/v4`.
    GitLab {
        api_url: String,
        token: secrecy::SecretString,
        /// Groups (full paths) whose members to snapshot (`group:PATH` in the policy).
        groups: Vec<String>,
    },
    /// Gitea or Forgejo: `api_url` ends in `/api/v1`.
    Gitea {
        api_url: String,
        token: secrecy::SecretString,
        /// Organisation teams (`org`, `name`) whose members to snapshot.
        teams: Vec<(String, String)>,
    },
}

impl Target {
    pub fn forge(&self) -> &'static str {
        match self {
            Target::GitHub { .. } => "GitHub",
            Target::GitLab { .. } => "GitLab",
            Target::Gitea { .. } => "Gitea",
        }
    }
}

/// What a worker does.
pub struct Options {
    pub repos: Vec<String>,
    /// Keep running, one pass every interval.
    pub interval: Option<Duration>,
    pub target: Target,
    /// The first retry's wait after a 5xx (tests shorten it).
    pub backoff: Option<Duration>,
}

/// The client of one pass, whichever forge.
enum Session {
    GitHub(Client),
    Rest(RestClient),
}

impl Session {
    fn stats(&self) -> &Arc<Stats> {
        match self {
            Session::GitHub(c) => &c.stats,
            Session::Rest(c) => &c.stats,
        }
    }

    fn interrupted(&self) -> &Arc<std::sync::atomic::AtomicBool> {
        match self {
            Session::GitHub(c) => &c.interrupted,
            Session::Rest(c) => &c.interrupted,
        }
    }

    async fn sync_repo(&self, target: &Target, ledger: &Mutex<Ledger>, repo: &str) -> Result<RepoSummary, SyncError> {
        match (self, target) {
            (Session::GitHub(c), Target::GitHub { pulls_api, .. }) => super::github::sync_repo(c, ledger, repo, *pulls_api).await,
            (Session::Rest(c), Target::GitLab { .. }) => super::gitlab::sync_project(c, ledger, repo).await,
            (Session::Rest(c), _) => super::gitea::sync_repo(c, ledger, repo).await,
            (Session::GitHub(_), _) => Err(SyncError::Other("internal: a GitHub client for another forge".into())),
        }
    }

    /// Snapshots the teams or groups the policy names; returns what could not be read.
    async fn sync_members(&self, target: &Target, ledger: &Mutex<Ledger>) -> Result<Vec<String>, SyncError> {
        match (self, target) {
            (Session::GitHub(c), Target::GitHub { teams, .. }) if !teams.is_empty() => {
                Ok(super::github::sync_teams(c, ledger, teams).await?.1)
            }
            (Session::Rest(c), Target::GitLab { groups, .. }) if !groups.is_empty() => {
                Ok(super::gitlab::sync_groups(c, ledger, groups).await?.1)
            }
            (Session::Rest(c), Target::Gitea { teams, .. }) if !teams.is_empty() => Ok(super::gitea::sync_teams(c, ledger, teams).await?.1),
            _ => Ok(Vec::new()),
        }
    }
}

/// What the worker tells whoever runs it (progress, per-pass reports).
pub trait Observer {
    /// `stats` moves while the repository syncs (phase, counts): for progress displays.
    fn repo_started(&mut self, _repo: &str, _stats: &Arc<Stats>) {}
    fn repo_finished(&mut self, _repo: &str) {}
    fn repo_failed(&mut self, repo: &str, error: &str);
    /// Something the operator should know that did not stop the sync.
    fn warn(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }
    fn pass_done(&mut self, forge: &str, stats: &Stats, summaries: &[RepoSummary]) -> std::io::Result<()>;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("`{0}` is not a repository name like owner/name (GitLab: group/subgroup/project)")]
    BadRepository(String),
    #[error("no repositories to sync\nHint: pass --github owner/name (or --gitlab group/project, --gitea owner/name), or list them under [github] repositories in the policy")]
    NoRepositories,
    #[error("cannot open {path}: {source}")]
    Lock { path: String, source: std::io::Error },
    #[error("another `git-audit sync` is running on {db} (lock {lock})")]
    Busy { db: String, lock: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("writing the report: {0}")]
    Output(std::io::Error),
    #[error("some repositories could not be synced (see above)")]
    SomeFailed,
}

/// Checks `owner/name` (no path tricks: it becomes part of API paths); GitLab
/// projects may sit in subgroups (`group/sub/project`).
pub fn check_repository(r: &str) -> Result<(), WorkerError> {
    check_path(r, 2)
}

fn check_path(r: &str, max_parts: usize) -> Result<(), WorkerError> {
    let ok_chars = r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    let parts = r.split('/').count();
    if !ok_chars || parts < 2 || parts > max_parts || r.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(WorkerError::BadRepository(r.to_string()));
    }
    Ok(())
}

/// Runs the worker on the ledger at `files` until one pass is done (or, with an
/// interval, until SIGTERM).
/// The advisory lock key of `sync` on a PostgreSQL ledger ("GAUDSYNC").
const SYNC_LOCK: i64 = 0x4741_5544_5359_4e43;

pub fn run(files: &LedgerFiles, opts: Options, observer: &mut dyn Observer) -> Result<(), WorkerError> {
    if opts.repos.is_empty() {
        return Err(WorkerError::NoRepositories);
    }
    for r in &opts.repos {
        // GitLab nests groups up to 20 deep.
        check_path(r, if matches!(opts.target, Target::GitLab { .. }) { 21 } else { 2 })?;
    }
    // No ledger: say how to make one (not that a lock file beside it cannot be opened).
    if !files.exists() {
        return Err(LedgerError::Missing { path: files.db.clone() }.into());
    }
    // One sync per ledger at a time (per machine, for a PostgreSQL ledger:
    // the lock sits beside the local spool).
    let lock_path = files.spool.with_extension("sync.lock");
    if let Some(dir) = lock_path.parent().filter(|_| files.url.is_some()) {
        std::fs::create_dir_all(dir).map_err(|source| WorkerError::Lock { path: dir.display().to_string(), source })?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| WorkerError::Lock { path: lock_path.display().to_string(), source })?;
    if lock.try_lock().is_err() {
        return Err(WorkerError::Busy { db: files.db.display().to_string(), lock: lock_path.display().to_string() });
    }
    // A PostgreSQL ledger is shared: one sync at a time across machines too.
    let _org_lock = match &files.url {
        Some(_) => match crate::ledger::try_job_lock(files, SYNC_LOCK)? {
            Some(l) => Some(l),
            None => {
                return Err(WorkerError::Busy {
                    db: files.db.display().to_string(),
                    lock: "a PostgreSQL advisory lock, held by a sync on this or another machine".into(),
                })
            }
        },
        None => None,
    };
    let ledger = Ledger::open(files)?;
    super::state::ensure(&ledger)?;
    let ledger = Mutex::new(ledger);
    let cache = Arc::new(HttpCacheTable::open(files)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(WorkerError::Runtime)?;
    let outcome: Result<Result<(), WorkerError>, WorkerError> = runtime.block_on(async {
        let mut session = match &opts.target {
            Target::GitHub { api_url, auth, .. } => Session::GitHub(Client::new(api_url, auth, cache).await?),
            Target::GitLab { api_url, token, .. } => Session::Rest(RestClient::new(super::gitlab::DIALECT, api_url, token.clone(), cache)?),
            Target::Gitea { api_url, token, .. } => Session::Rest(RestClient::new(super::gitea::DIALECT, api_url, token.clone(), cache)?),
        };
        if let Some(b) = opts.backoff {
            match &mut session {
                Session::GitHub(c) => c.backoff = b,
                Session::Rest(c) => c.backoff = b,
            }
        }
        let interrupted = session.interrupted().clone();
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                tracing::warn!("SIGTERM: finishing the current page, then exiting");
                interrupted.store(true, Ordering::SeqCst);
            }
        });
        let mut failed = false;
        loop {
            let mut summaries: Vec<RepoSummary> = Vec::new();
            for r in &opts.repos {
                observer.repo_started(r, session.stats());
                match session.sync_repo(&opts.target, &ledger, r).await {
                    Ok(s) => summaries.push(s),
                    Err(e) => {
                        failed = true;
                        observer.repo_failed(r, &redact(&e.to_string()));
                    }
                }
                observer.repo_finished(r);
            }
            match session.sync_members(&opts.target, &ledger).await {
                Ok(unreadable) => {
                    for line in unreadable {
                        observer.warn(&redact(&line));
                    }
                }
                Err(e) => {
                    failed = true;
                    observer.repo_failed("teams", &redact(&e.to_string()));
                }
            }
            observer.pass_done(opts.target.forge(), session.stats(), &summaries).map_err(WorkerError::Output)?;
            let Some(wait) = opts.interval.filter(|_| !session.interrupted().load(Ordering::SeqCst)) else {
                break;
            };
            let stop = session.interrupted().clone();
            let deadline = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200).min(wait)).await;
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        Ok(if failed { Err(WorkerError::SomeFailed) } else { Ok(()) })
    });
    drop(lock);
    outcome?
}
