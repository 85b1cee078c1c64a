//! `git-audit sync`: pull requests, reviews and deployments from GitHub into the
//! ledger. The only command with a tokio runtime; it builds it once.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rusqlite::{params, OptionalExtension};

use super::{emit, Global, Outcome};
use crate::forge::github::client::{CachedPage, HttpCache};
use crate::forge::github::{sync_repo, Auth, Client, PullsApi, RepoSummary};
use crate::ledger::Ledger;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// A repository to sync (`owner/name`); repeatable. Default: `[github] repositories` in the policy.
    #[arg(long = "github", value_name = "OWNER/NAME")]
    pub repos: Vec<String>,
    /// Keep running, one pass every INTERVAL (e.g. 15m, 1h, 90s).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// The API root (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// GitHub App id (with --app-key and --installation-id) instead of a token.
    #[arg(long, requires_all = ["app_key", "installation_id"])]
    pub app_id: Option<u64>,
    /// The GitHub App's private key (PEM file).
    #[arg(long, value_name = "FILE")]
    pub app_key: Option<PathBuf>,
    #[arg(long)]
    pub installation_id: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Which API fetches pull requests (GraphQL: ~150x fewer requests on a first sync; see README).
    #[arg(long, value_enum, default_value_t = PullsApi::Graphql)]
    pub pulls_api: PullsApi,
}

/// `90s`, `15m`, `1h`, `2d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 90s, 15m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m, h or d)")),
    };
    if secs == 0 {
        return Err("the interval must be more than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

/// ETag'd bodies, in the ledger database (its own connection).
struct LedgerCache {
    conn: Mutex<rusqlite::Connection>,
}

impl HttpCache for LedgerCache {
    fn get(&self, url: &str) -> Result<Option<CachedPage>, String> {
        let c = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        c.query_row("SELECT etag, body, next FROM http_cache WHERE url = ?1", [url], |r| {
            Ok(CachedPage { etag: r.get(0)?, body: r.get(1)?, next: r.get(2)? })
        })
        .optional()
        .map_err(|e| e.to_string())
    }
    fn put(&self, url: &str, page: &CachedPage) -> Result<(), String> {
        let c = self.conn.lock().map_err(|_| "cache lock poisoned".to_string())?;
        c.execute(
            "INSERT INTO http_cache (url, etag, body, next, time) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, body = excluded.body, next = excluded.next, time = excluded.time",
            params![url, page.etag, page.body, page.next, chrono::Utc::now().to_rfc3339()],
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

fn auth(args: &SyncArgs) -> anyhow::Result<Auth> {
    if let (Some(app_id), Some(key), Some(installation_id)) = (args.app_id, &args.app_key, args.installation_id) {
        let pem = std::fs::read_to_string(key).with_context(|| format!("cannot read the GitHub App key {}", key.display()))?;
        return Ok(Auth::App { app_id, key_pem: pem.into(), installation_id });
    }
    for var in ["GITHUB_TOKEN", "GH_TOKEN"] {
        if let Ok(t) = std::env::var(var) {
            if !t.trim().is_empty() {
                return Ok(Auth::Token(t.trim().to_string().into()));
            }
        }
    }
    bail!("no GitHub credentials\nHint: export GITHUB_TOKEN (or GH_TOKEN) with pull_requests: read and deployments: read, or pass --app-id, --app-key and --installation-id")
}

pub fn run(global: &Global, args: SyncArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    let policy = super::policy::load(global, repo.as_ref()).ok();
    let mut repos = args.repos.clone();
    if repos.is_empty() {
        repos = policy.as_ref().map(|p| p.github_repositories.clone()).unwrap_or_default();
    }
    if repos.is_empty() {
        bail!("no repositories to sync\nHint: pass --github owner/name, or list them under [github] repositories in the policy");
    }
    for r in &repos {
        let ok_chars = r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !ok_chars || r.split('/').count() != 2 || r.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            bail!("`{r}` is not a repository name like owner/name");
        }
    }
    let api_url = args.api_url.clone().unwrap_or_else(|| "https://api.github.com".into());
    let auth = auth(&args)?;
    let loc = super::ledger::location(global, repo.as_ref())?;
    // One sync per ledger at a time.
    let lock_path = loc.db.with_extension("sync.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!("another `git-audit sync` is running on {} (lock {})", loc.db.display(), lock_path.display());
    }
    let ledger = Mutex::new(Ledger::open(&loc)?);
    let cache_conn = rusqlite::Connection::open(&loc.db).context("opening the ledger's HTTP cache")?;
    cache_conn.busy_timeout(Duration::from_secs(60))?;
    let cache = Arc::new(LedgerCache { conn: Mutex::new(cache_conn) });

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut client = Client::new(&api_url, &auth, cache).await?;
        if let Ok(ms) = std::env::var("GIT_AUDIT_SYNC_BACKOFF_MS").map(|v| v.parse::<u64>().unwrap_or(500)) {
            client.backoff = Duration::from_millis(ms);
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
            for r in &repos {
                let bar = progress(r);
                match sync_repo(&client, &ledger, r, args.pulls_api).await {
                    Ok(s) => summaries.push(s),
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {}", crate::forge::github::client::redact(&e.to_string()));
                    }
                }
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
            }
            report(&client, &summaries, args.json)?;
            if client.interrupted.load(Ordering::SeqCst) || args.interval.is_none() {
                break;
            }
            let wait = args.interval.unwrap_or_default();
            let stop = client.interrupted.clone();
            let deadline = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200).min(wait)).await;
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        anyhow::Ok(if failed { Err(anyhow::anyhow!("some repositories could not be synced (see above)")) } else { Ok(()) })
    })??;
    drop(lock);
    Ok(Outcome::Pass)
}

fn progress(repo: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("syncing {repo}"));
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

fn report(client: &Client, summaries: &[RepoSummary], json: bool) -> anyhow::Result<()> {
    let requests = client.stats.requests.load(Ordering::Relaxed);
    let not_modified = client.stats.not_modified.load(Ordering::Relaxed);
    let remaining = client.stats.remaining.lock().ok().and_then(|r| *r);
    if json {
        let doc = serde_json::json!({"repositories": summaries, "requests": requests, "not_modified": not_modified,
            "retries": client.stats.retries.load(Ordering::Relaxed), "rate_limit_remaining": remaining.map(|r| r.0)});
        return emit(&(doc.to_string() + "\n"));
    }
    let mut out = String::new();
    for s in summaries {
        out.push_str(&format!(
            "{}: fetched {} pull requests and {} new deployments; new or changed: {} pull requests, {} reviews, {} deployments, {} deployment statuses, {} commit links, {} approvals; {} ledger entries{}{}\n",
            s.repository,
            s.fetched_pull_requests,
            s.fetched_deployments,
            s.pull_requests,
            s.reviews,
            s.deployments,
            s.deployment_statuses,
            s.commit_links,
            s.approvals,
            s.new_entries,
            if s.capped_pull_requests.is_empty() { String::new() } else { format!("; PRs at GitHub's 250-commit cap: {:?}", s.capped_pull_requests) },
            if s.interrupted { "; interrupted (the next run resumes)" } else { "" },
        ));
    }
    out.push_str(&format!(
        "{requests} requests ({not_modified} not modified){}\n",
        remaining.map_or(String::new(), |(r, _)| format!("; rate limit: {r} left"))
    ));
    emit(&out)
}
