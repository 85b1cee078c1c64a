//! The sync worker: one pass over the repositories, or one every interval, with
//! one worker per ledger at a time (a lock file beside it) and a clean stop on
//! SIGTERM (the current page finishes; the next run resumes from the cursors).
//! The only place a tokio runtime is built.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::state::HttpCacheTable;
use super::{sync_repo, Auth, Client, ClientError, PullsApi, RepoSummary};
use crate::ledger::{Ledger, LedgerError, LedgerFiles};

/// What a worker does.
pub struct Options {
    pub repos: Vec<String>,
    /// Keep running, one pass every interval.
    pub interval: Option<Duration>,
    pub api_url: String,
    pub auth: Auth,
    pub pulls_api: PullsApi,
    /// The first retry's wait after a 5xx (tests shorten it).
    pub backoff: Option<Duration>,
    /// Teams (`org`, `slug`) whose members to snapshot (those the policy names).
    pub teams: Vec<(String, String)>,
}

/// What the worker tells whoever runs it (progress, per-pass reports).
pub trait Observer {
    /// `stats` moves while the repository syncs (phase, counts): for progress displays.
    fn repo_started(&mut self, _repo: &str, _stats: &Arc<super::client::Stats>) {}
    fn repo_finished(&mut self, _repo: &str) {}
    fn repo_failed(&mut self, repo: &str, error: &str);
    /// Something the operator should know that did not stop the sync.
    fn warn(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }
    fn pass_done(&mut self, client: &Client, summaries: &[RepoSummary]) -> std::io::Result<()>;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("`{0}` is not a repository name like owner/name")]
    BadRepository(String),
    #[error("no repositories to sync\nHint: pass --github owner/name, or list them under [github] repositories in the policy")]
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

/// Checks `owner/name` (no path tricks: it becomes part of API paths).
pub fn check_repository(r: &str) -> Result<(), WorkerError> {
    let ok_chars = r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok_chars || r.split('/').count() != 2 || r.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
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
        check_repository(r)?;
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
        let mut client = Client::new(&opts.api_url, &opts.auth, cache).await?;
        if let Some(b) = opts.backoff {
            client.backoff = b;
        }
        let interrupted = client.interrupted.clone();
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
                observer.repo_started(r, &client.stats);
                match sync_repo(&client, &ledger, r, opts.pulls_api).await {
                    Ok(s) => summaries.push(s),
                    Err(e) => {
                        failed = true;
                        observer.repo_failed(r, &super::client::redact(&e.to_string()));
                    }
                }
                observer.repo_finished(r);
            }
            if !opts.teams.is_empty() {
                match super::sync_teams(&client, &ledger, &opts.teams).await {
                    Ok((_, unreadable)) => {
                        for line in unreadable {
                            observer.warn(&super::client::redact(&line));
                        }
                    }
                    Err(e) => {
                        failed = true;
                        observer.repo_failed("teams", &super::client::redact(&e.to_string()));
                    }
                }
            }
            observer.pass_done(&client, &summaries).map_err(WorkerError::Output)?;
            let Some(wait) = opts.interval.filter(|_| !client.interrupted.load(Ordering::SeqCst)) else {
                break;
            };
            let stop = client.interrupted.clone();
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
