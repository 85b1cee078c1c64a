//! `git-audit sync`: pull (merge) requests, reviews and deployments from
//! GitHub, GitLab or Gitea into the ledger. Parses the arguments and shows
//! progress; the worker ([`crate::forge::worker`]) does the rest.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use super::{emit, Global, Outcome};
use crate::forge::batch::RepoSummary;
use crate::forge::github::{Auth, PullsApi};
use crate::forge::rest::Stats;
use crate::forge::worker::{self, Observer, Options, Target};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// A repository to sync (`owner/name`); repeatable. Default: `[github] repositories` in the policy.
    #[arg(long = "github", value_name = "OWNER/NAME", conflicts_with_all = ["gitlab", "gitea"])]
    pub repos: Vec<String>,
    /// A GitLab project to sync (`group/project`, subgroups allowed); repeatable. Token: GITLAB_TOKEN (read_api).
    #[arg(long, value_name = "GROUP/PROJECT", conflicts_with = "gitea")]
    pub gitlab: Vec<String>,
    /// A Gitea or Forgejo repository to sync (`owner/name`); repeatable; needs --api-url. Token: GITEA_TOKEN.
    #[arg(long, value_name = "OWNER/NAME")]
    pub gitea: Vec<String>,
    /// Keep running, one pass every INTERVAL (e.g. 15m, 1h, 90s).
    #[arg(long, value_parser = crate::time::parse_duration)]
    pub interval: Option<Duration>,
    /// The API root. GitHub: default GITHUB_API_URL, else https://api.github.com (Enterprise: https://HOST/api/v3).
    /// GitLab: default CI_API_V4_URL, else https://gitlab.com (self-managed: https://HOST; /api/v4 is added).
    /// Gitea/Forgejo: required (https://HOST; /api/v1 is added).
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

/// `https://host` → `https://host{suffix}`; a URL with a path is kept as given.
fn api_root(url: &str, suffix: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let path_start = url.find("://").map(|i| i + 3).and_then(|i| url[i..].find('/').map(|j| i + j));
    match path_start {
        Some(_) => url.to_string(),
        None => format!("{url}{suffix}"),
    }
}

fn token(vars: &[&str], what: &str) -> anyhow::Result<secrecy::SecretString> {
    for var in vars {
        if let Ok(t) = std::env::var(var) {
            if !t.trim().is_empty() {
                return Ok(t.trim().to_string().into());
            }
        }
    }
    bail!(
        "no {what} token\nHint: export {} ({})",
        vars[0],
        match what {
            "GitLab" => "a personal, group or project access token with the read_api scope",
            _ => "an access token with the read:repository scope",
        }
    )
}

pub fn run(global: &Global, args: SyncArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    // A policy that is there but does not load is an error, not "no policy".
    let policy = super::policy::applies(global, repo.as_ref(), crate::policy::applies::Look::WorkTreeThenServer)?;
    // The teams the policy names, and with [codeowners] those CODEOWNERS names;
    // an empty org is a GitLab group (`group:PATH`).
    let mut teams = policy.as_ref().map(|p| p.teams()).unwrap_or_default();
    if policy.as_ref().is_some_and(|p| p.codeowners) {
        teams.extend(crate::policy::paths::CodeOwners::read(repo.as_ref()).map(|c| c.teams()).unwrap_or_default());
    }
    teams.sort();
    teams.dedup();
    let (groups, teams): (Vec<_>, Vec<_>) = teams.into_iter().partition(|(org, _)| org.is_empty());
    let (repos, target) = if !args.gitlab.is_empty() {
        let api_url = args
            .api_url
            .clone()
            .or_else(|| std::env::var("CI_API_V4_URL").ok().filter(|u| !u.trim().is_empty()))
            .unwrap_or_else(|| "https://gitlab.com".into());
        let groups = groups.into_iter().map(|(_, path)| path).collect();
        (args.gitlab.clone(), Target::GitLab { api_url: api_root(&api_url, "/api/v4"), token: token(&["GITLAB_TOKEN"], "GitLab")?, groups })
    } else if !args.gitea.is_empty() {
        let Some(api_url) = args.api_url.clone().or_else(|| std::env::var("GITEA_API_URL").ok().filter(|u| !u.trim().is_empty())) else {
            bail!("which Gitea?\nHint: pass --api-url https://HOST (Gitea or Forgejo; /api/v1 is added), or export GITEA_API_URL");
        };
        let token = token(&["GITEA_TOKEN", "FORGEJO_TOKEN"], "Gitea")?;
        (args.gitea.clone(), Target::Gitea { api_url: api_root(&api_url, "/api/v1"), token, teams })
    } else {
        let mut repos = args.repos.clone();
        if repos.is_empty() {
            repos = policy.as_ref().map(|p| p.github_repositories.clone()).unwrap_or_default();
        }
        let target = Target::GitHub {
            // GITHUB_API_URL: what GitHub Actions sets (and GitHub Enterprise users export).
            api_url: args
                .api_url
                .clone()
                .or_else(|| std::env::var("GITHUB_API_URL").ok().filter(|u| !u.trim().is_empty()))
                .unwrap_or_else(|| "https://api.github.com".into()),
            auth: auth(&args)?,
            pulls_api: args.pulls_api,
            teams,
        };
        (repos, target)
    };
    let options = Options {
        repos,
        interval: args.interval,
        target,
        backoff: std::env::var("GIT_AUDIT_SYNC_BACKOFF_MS").ok().map(|v| Duration::from_millis(v.parse::<u64>().unwrap_or(500))),
    };
    let files = super::location(global, repo.as_ref())?;
    let notify = policy.filter(|p| !p.notify.is_empty()).map(|policy| SyncNotify { files: files.clone(), policy, repo });
    // With --log-format json the summary is a JSON line too.
    worker::run(&files, options, &mut Terminal { json: args.json || global.log_json, bar: None, notify })?;
    Ok(Outcome::Pass)
}

/// Progress on a terminal, and each pass's summary on stdout.
struct Terminal {
    json: bool,
    bar: Option<(indicatif::ProgressBar, std::sync::Arc<std::sync::atomic::AtomicBool>)>,
    notify: Option<SyncNotify>,
}

/// After each pass: tell the sinks about new compliance findings and failed
/// deployments, then deliver what is waiting.
struct SyncNotify {
    files: crate::ledger::LedgerFiles,
    policy: crate::policy::Policy,
    repo: Option<crate::git::Repo>,
}

impl SyncNotify {
    /// `[review] digest`: queues the last whole period's digest once. Its
    /// message id comes from the period, so every later pass — of this job or
    /// of another on the same ledger — finds it queued and sends nothing.
    fn digest_due(&self, ledger: &crate::ledger::Ledger, facts: &crate::facts::DeploymentHistory, name: &str) -> anyhow::Result<()> {
        use crate::notify;
        let Some(every) = self.policy.review.digest else { return Ok(()) };
        let sinks: Vec<crate::policy::notify::Sink> = if self.policy.review.digest_sinks.is_empty() {
            self.policy.notify.iter().filter(|s| s.wants("digest")).cloned().collect()
        } else {
            let named = &self.policy.review.digest_sinks;
            self.policy
                .notify
                .iter()
                .filter(|s| named.contains(&s.name))
                .cloned()
                .map(crate::policy::notify::Sink::wanting_everything)
                .collect()
        };
        if sinks.is_empty() {
            return Ok(());
        }
        let (label, since, until) = crate::report::digest::last_period(every, chrono::Utc::now());
        let key = format!("digest:{label}");
        if notify::is_queued(&self.files, &notify::keyed_id("digest", &key))? {
            return Ok(());
        }
        let doc = crate::report::digest::digest(ledger, facts, self.repo.as_ref(), name, &since, &until, Some(&self.policy))?;
        let mut n = crate::report::digest::notice(&doc);
        n.key = Some(key);
        notify::enqueue(&self.files, &sinks, &[n])?;
        Ok(())
    }

    fn after_pass(&self) -> anyhow::Result<()> {
        use crate::notify;
        let ledger = crate::ledger::Ledger::open(&self.files)?;
        let name = self.repo.as_ref().map(crate::hook::notice::repository_name).unwrap_or_default();
        let epoch = crate::time::Timestamp::parse("1970-01-01T00:00:00.000Z")?;
        let facts = crate::facts::DeploymentHistory::read(&ledger)?;
        self.digest_due(&ledger, &facts, &name)?;
        let (_, findings) = crate::report::compliance::compliance(&ledger, &facts, self.repo.as_ref(), &epoch, Some(&self.policy))?;
        let mut items: Vec<(String, notify::Notice)> = findings.iter().map(|f| notify::finding_notice(&name, f)).collect();
        for d in facts.all.into_iter().filter(|d| d.id > 0 && d.status.failed()) {
            let key = format!("deployment:{}:{}:{}", d.repository, d.id, d.status);
            let deployer = Some(d.deployer.as_str()).filter(|a| !a.is_empty());
            let mut n = crate::deploy::failure(&d.repository, &d.environment, &d.sha, d.status.recorded(), deployer, None, "github");
            n.data.ledger = Some(notify::body::LedgerRef { seq: Some(d.seq), tree_size: None, checkpoint: None });
            items.push((key, n));
        }
        drop(ledger);
        let (notices, marks) = notify::fresh(&self.files, items)?;
        notify::enqueue_with(&self.files, &self.policy.notify, &notices, marks)?;
        let r = notify::drain(&self.files, &self.policy.notify, notify::Budget::new(Duration::from_secs(20)))?;
        for e in &r.errors {
            eprintln!("git-audit: notify: {e}");
        }
        Ok(())
    }
}

impl Observer for Terminal {
    fn repo_started(&mut self, repo: &str, stats: &std::sync::Arc<Stats>) {
        self.bar = progress(repo, stats.clone());
    }

    fn repo_finished(&mut self, _repo: &str) {
        if let Some((b, stop)) = self.bar.take() {
            stop.store(true, Ordering::SeqCst);
            b.finish_and_clear();
        }
    }

    fn repo_failed(&mut self, _repo: &str, error: &str) {
        eprintln!("error: {error}");
    }

    fn pass_done(&mut self, forge: &str, stats: &Stats, summaries: &[RepoSummary]) -> std::io::Result<()> {
        report(forge, stats, summaries, self.json).map_err(std::io::Error::other)?;
        if let Some(n) = &self.notify {
            // Notifying is a side job: a failure is reported, the sync goes on.
            if let Err(e) = n.after_pass() {
                eprintln!("git-audit: notify: {e:#}");
            }
        }
        Ok(())
    }
}

/// A spinner on a terminal naming the phase and what has been fetched so far
/// (refreshed from the client's counters until the repository is done).
fn progress(repo: &str, stats: std::sync::Arc<Stats>) -> Option<(indicatif::ProgressBar, std::sync::Arc<std::sync::atomic::AtomicBool>)> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (b, done, repo) = (bar.clone(), stop.clone(), repo.to_string());
    let start = (
        stats.pull_requests.load(Ordering::Relaxed),
        stats.reviews.load(Ordering::Relaxed),
        stats.deployments.load(Ordering::Relaxed),
        stats.requests.load(Ordering::Relaxed),
    );
    bar.set_message(progress_line(&repo, &stats, start));
    bar.tick();
    std::thread::spawn(move || {
        while !done.load(Ordering::SeqCst) {
            b.set_message(progress_line(&repo, &stats, start));
            b.tick();
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    Some((bar, stop))
}

/// `syncing acme/api: deployments — 131 pull requests, 60 reviews, 2 deployments (412 requests)`.
fn progress_line(repo: &str, stats: &Stats, start: (u64, u64, u64, u64)) -> String {
    let phase = stats.phase.lock().map(|p| *p).unwrap_or("").to_string();
    let phase = if phase.is_empty() { "starting".to_string() } else { phase };
    format!(
        "syncing {repo}: {phase} — {} pull requests, {} reviews, {} deployments ({} requests)",
        stats.pull_requests.load(Ordering::Relaxed) - start.0,
        stats.reviews.load(Ordering::Relaxed) - start.1,
        stats.deployments.load(Ordering::Relaxed) - start.2,
        stats.requests.load(Ordering::Relaxed) - start.3
    )
}

fn report(forge: &str, stats: &Stats, summaries: &[RepoSummary], json: bool) -> anyhow::Result<()> {
    let requests = stats.requests.load(Ordering::Relaxed);
    let not_modified = stats.not_modified.load(Ordering::Relaxed);
    let remaining = stats.remaining.lock().ok().and_then(|r| *r);
    if json {
        let doc = serde_json::json!({"forge": forge.to_lowercase(), "repositories": summaries, "requests": requests, "not_modified": not_modified,
            "retries": stats.retries.load(Ordering::Relaxed), "rate_limit_remaining": remaining.map(|r| r.0)});
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
            if s.capped_pull_requests.is_empty() { String::new() } else { format!("; changes at {forge}'s commit cap: {:?}", s.capped_pull_requests) },
            if s.interrupted { "; interrupted (the next run resumes)" } else { "" },
        ));
        for note in &s.notes {
            out.push_str(&format!("note: {note}\n"));
        }
    }
    out.push_str(&format!(
        "{requests} requests ({not_modified} not modified){}\n",
        remaining.map_or(String::new(), |(r, _)| format!("; rate limit: {r} left"))
    ));
    emit(&out)
}
