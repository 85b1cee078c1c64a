//! One sync pass over one repository. Incremental (cursors), resumable (each
//! pull request's or deployment's entries commit together with the cursor that
//! covers them), and idempotent (an object that has not changed adds nothing).

use std::sync::Mutex;

use serde_json::{json, Value};

use super::client::{Client, ClientError};
use super::GithubPayload;
use crate::event::{Kind, PrFilesSynced, TeamSynced, PR_FILES_CAP};
use crate::forge::batch::{cursor, cursor_is_behind, Batch, OVERLAP_SECS};
pub use crate::forge::batch::{RepoSummary, SyncError};
use crate::forge::state;
use crate::ledger::Ledger;

/// GitHub returns at most this many commits for a pull request.
pub const PR_COMMITS_CAP: usize = 250;
const FINAL_STATES: &[&str] = &["success", "failure", "error", "inactive"];

/// Which API fetches pull requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullsApi {
    /// One GraphQL query per 50 pull requests, with their commits and reviews.
    Graphql,
    /// Three REST requests per pull request (detail, commits, reviews), all conditional.
    Rest,
}

/// Snapshots the members of each team (`org`, `slug`) the policy names. A team
/// that is gone, hidden or unreadable with this token (404, 403) is skipped, so
/// its membership stays unknown ("could not verify" in reports); each is
/// returned with the reason, for the sync to say.
pub async fn sync_teams(client: &Client, ledger: &Mutex<Ledger>, teams: &[(String, String)]) -> Result<(u64, Vec<String>), SyncError> {
    let mut batch = Batch::default();
    let mut unreadable = Vec::new();
    for (org, slug) in teams {
        let label = format!("team:{org}/{slug}");
        let members = match client.get_all(&label, &format!("/orgs/{org}/teams/{slug}/members?per_page=100"), "members: read", 50).await {
            Ok(m) => m,
            Err(ClientError::NotFound { .. }) => {
                unreadable.push(format!(
                    "{label}: GitHub answered 404 (no such team, or the token cannot see it; it needs the organization's members: read / read:org); its membership is not recorded, so approvals that lean on it are reported as \"could not verify\""
                ));
                continue;
            }
            Err(ClientError::Forbidden { message, .. }) => {
                unreadable.push(format!(
                    "{label}: GitHub refused to list its members ({message}); its membership is not recorded, so approvals that lean on it are reported as \"could not verify\""
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut logins: Vec<String> = members.iter().filter_map(|m| m["login"].as_str().map(str::to_string)).collect();
        logins.sort();
        logins.dedup();
        let team = TeamSynced { org: org.clone(), slug: slug.clone(), members: logins };
        let payload = serde_json::to_value(&team).map_err(|e| SyncError::Other(e.to_string()))?;
        batch.add(ledger, Kind::TeamSynced, label.clone(), TeamSynced::subject(org, slug), String::new(), payload)?;
    }
    Ok((batch.commit(ledger)?, unreadable))
}

/// Syncs one repository (`owner/name`).
pub async fn sync_repo(client: &Client, ledger: &Mutex<Ledger>, repo: &str, api: PullsApi) -> Result<RepoSummary, SyncError> {
    let mut sum = RepoSummary { repository: repo.to_string(), ..Default::default() };
    let r = sync_inner(client, ledger, repo, api, &mut sum).await;
    crate::forge::batch::finished(sum, r)
}

async fn sync_inner(client: &Client, ledger: &Mutex<Ledger>, repo: &str, api: PullsApi, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let meta = client.get(repo, &format!("/repos/{repo}"), "metadata: read").await?.body;
    let default_branch = meta["default_branch"].as_str().unwrap_or("main").to_string();
    client.stats.set_phase("pull requests");
    match api {
        PullsApi::Rest => pulls(client, ledger, repo, sum).await?,
        PullsApi::Graphql => pulls_graphql(client, ledger, repo, sum).await?,
    }
    client.stats.set_phase("deployments");
    deployments(client, ledger, repo, sum).await?;
    client.stats.set_phase("environments");
    environments(client, ledger, repo, sum).await?;
    client.stats.set_phase("commits on the default branch");
    landed_commits(client, ledger, repo, &default_branch, sum).await?;
    Ok(())
}

async fn pulls(client: &Client, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    const PERM: &str = "pull_requests: read";
    let cursor = cursor(ledger, repo, "pulls")?;
    let since = cursor
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| (t - chrono::Duration::seconds(OVERLAP_SECS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut todo: Vec<(String, u64)> = Vec::new();
    let mut next = Some(format!("/repos/{repo}/pulls?state=all&sort=updated&direction=desc&per_page=100"));
    'pages: while let Some(path) = next {
        let page = client.get(repo, &path, PERM).await?;
        for pr in page.body.as_array().into_iter().flatten() {
            let updated = pr["updated_at"].as_str().unwrap_or("").to_string();
            if since.as_deref().is_some_and(|s| updated.as_str() < s) {
                break 'pages; // past the cursor (and its overlap): everything older is known
            }
            if let Some(n) = pr["number"].as_u64() {
                if !todo.iter().any(|(_, m)| *m == n) {
                    todo.push((updated, n));
                }
            }
        }
        next = page.next;
    }
    // Oldest first, so the cursor can follow each committed pull request.
    todo.sort();
    for (updated, number) in todo {
        let detail = client.get(repo, &format!("/repos/{repo}/pulls/{number}"), PERM).await?.body;
        let commits = client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/commits?per_page=100"), PERM, 3).await?;
        let reviews = client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/reviews?per_page=100"), PERM, 10).await?;
        let capped = note_cap(repo, number, commits.len(), sum);
        let commit_ids: Vec<String> = commits.iter().filter_map(|c| c["sha"].as_str().map(str::to_string)).collect();
        let mut batch = Batch::default();
        record_pull(ledger, repo, &detail, &commit_ids, capped, &reviews, &mut batch, sum)?;
        pull_files(client, ledger, repo, &detail, &mut batch).await?;
        client.stats.pull_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        client.stats.reviews.fetch_add(reviews.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if cursor_is_behind(cursor.as_deref(), &updated) {
            batch.state.cursors.push((repo.to_string(), "pulls".into(), updated));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

/// A merged pull request's changed files (REST, 100 a page, GitHub's cap of
/// 3,000 said when reached) as a `pr_files.synced` entry in `batch`.
async fn pull_files(client: &Client, ledger: &Mutex<Ledger>, repo: &str, detail: &Value, batch: &mut Batch) -> Result<(), SyncError> {
    let merged = detail["merged"].as_bool().unwrap_or(false) || !detail["merged_at"].is_null();
    let Some(number) = detail["number"].as_u64().filter(|_| merged) else { return Ok(()) };
    let pages = PR_FILES_CAP.div_ceil(100);
    let listed = client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/files?per_page=100"), "pull_requests: read", pages).await?;
    let mut files: Vec<String> =
        listed.iter().flat_map(|f| [f["filename"].as_str(), f["previous_filename"].as_str()]).flatten().map(str::to_string).collect();
    files.sort();
    files.dedup();
    let capped = listed.len() >= PR_FILES_CAP;
    if capped {
        tracing::warn!(
            repository = repo,
            "{repo}#{number} changes {PR_FILES_CAP} files or more: GitHub lists no more, so path rules cannot see past them"
        );
    }
    let head_sha = detail["head"]["sha"].as_str().unwrap_or("").to_string();
    let p = serde_json::to_value(PrFilesSynced { repository: repo.into(), number, head_sha, files, capped }).unwrap_or_default();
    let subject = format!("{repo}#{number}");
    batch.add(ledger, Kind::PrFilesSynced, subject.clone(), subject, String::new(), p)?;
    Ok(())
}

/// The entries for one pull request (REST shapes: `detail` as `pulls/N`
/// returns it, `reviews` as `pulls/N/reviews` does). Both transports end here,
/// so the same pull request makes the same payload whichever API fetched it.
#[allow(clippy::too_many_arguments)]
fn record_pull(
    ledger: &Mutex<Ledger>,
    repo: &str,
    detail: &Value,
    commits: &[String],
    capped: bool,
    reviews: &[Value],
    batch: &mut Batch,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    sum.fetched_pull_requests += 1;
    let number = detail["number"].as_u64().unwrap_or(0);
    let merged = detail["merged"].as_bool().unwrap_or(false) || !detail["merged_at"].is_null();
    let payload = GithubPayload::pull_request(repo, detail, merged, commits, capped);
    let subject = format!("{repo}#{number}");
    let author = detail["user"]["login"].as_str().unwrap_or("").to_string();
    if batch.add(ledger, Kind::PrSynced, subject.clone(), subject.clone(), author, payload)? {
        sum.pull_requests += 1;
    }
    for rv in reviews {
        let Some(id) = rv["id"].as_u64() else { continue };
        let p = GithubPayload::review(repo, number, rv);
        let actor = rv["user"]["login"].as_str().unwrap_or("").to_string();
        if batch.add(ledger, Kind::ReviewSynced, format!("{repo}/review/{id}"), subject.clone(), actor, p)? {
            sum.reviews += 1;
        }
    }
    Ok(())
}

const PULLS_QUERY: &str = "query($owner: String!, $name: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequests(first: 50, after: $after, orderBy: {field: UPDATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        number title state isDraft merged mergedAt createdAt updatedAt closedAt url
        mergeCommit { oid } author { login } mergedBy { login }
        baseRefName baseRefOid headRefName headRefOid
        commits(first: 100) { totalCount nodes { commit { oid } } }
        reviews(first: 100) { totalCount nodes { databaseId state submittedAt url authorAssociation author { login } commit { oid } } }
      }
    }
  }
  rateLimit { remaining resetAt cost }
}";

/// Pull requests through GraphQL: 50 per request with their commits and
/// reviews; REST only for the rare PR with more than 100 of either.
async fn pulls_graphql(client: &Client, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let cursor = cursor(ledger, repo, "pulls")?;
    let since = cursor
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| (t - chrono::Duration::seconds(OVERLAP_SECS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
    let mut nodes: Vec<Value> = Vec::new();
    let mut after = Value::Null;
    'pages: loop {
        let data = client.graphql(repo, PULLS_QUERY, json!({"owner": owner, "name": name, "after": after})).await?;
        let prs = &data["repository"]["pullRequests"];
        if data["repository"].is_null() {
            return Err(
                ClientError::NotFound { repo: repo.into(), path: "graphql".into(), permission: "pull_requests: read".into() }.into()
            );
        }
        for n in prs["nodes"].as_array().into_iter().flatten() {
            if since.as_deref().is_some_and(|s| n["updatedAt"].as_str().unwrap_or("") < s) {
                break 'pages;
            }
            nodes.push(n.clone());
        }
        if prs["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = prs["pageInfo"]["endCursor"].clone();
    }
    nodes.sort_by(|a, b| (a["updatedAt"].as_str(), a["number"].as_u64()).cmp(&(b["updatedAt"].as_str(), b["number"].as_u64())));
    for n in nodes {
        let number = n["number"].as_u64().unwrap_or(0);
        let updated = n["updatedAt"].as_str().unwrap_or("").to_string();
        let GraphqlPull { detail, mut commits, total_commits, mut reviews, total_reviews } = graphql_pull(&n);
        if total_commits > commits.len() {
            let all = client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/commits?per_page=100"), "pull_requests: read", 3).await?;
            commits = all.iter().filter_map(|c| c["sha"].as_str().map(str::to_string)).collect();
        }
        let capped = note_cap(repo, number, commits.len(), sum);
        if total_reviews > reviews.len() {
            reviews =
                client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/reviews?per_page=100"), "pull_requests: read", 10).await?;
        }
        let mut batch = Batch::default();
        record_pull(ledger, repo, &detail, &commits, capped, &reviews, &mut batch, sum)?;
        pull_files(client, ledger, repo, &detail, &mut batch).await?;
        client.stats.pull_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        client.stats.reviews.fetch_add(reviews.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if cursor_is_behind(cursor.as_deref(), &updated) {
            batch.state.cursors.push((repo.to_string(), "pulls".into(), updated));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

/// One GraphQL pull request node in REST's shapes (so both APIs record
/// identical payloads), with how many commits and reviews GitHub says it has
/// (more than listed: fetch the rest over REST).
pub struct GraphqlPull {
    pub detail: Value,
    pub commits: Vec<String>,
    pub total_commits: usize,
    pub reviews: Vec<Value>,
    pub total_reviews: usize,
}

pub fn graphql_pull(n: &Value) -> GraphqlPull {
    let state = match n["state"].as_str() {
        Some("OPEN") => "open",
        _ => "closed",
    };
    let detail = json!({
        "number": n["number"].as_u64().unwrap_or(0), "title": n["title"], "state": state, "draft": n["isDraft"], "merged": n["merged"],
        "merged_at": n["mergedAt"], "created_at": n["createdAt"], "updated_at": n["updatedAt"], "closed_at": n["closedAt"],
        "html_url": n["url"], "merge_commit_sha": n["mergeCommit"]["oid"], "user": {"login": n["author"]["login"]},
        "merged_by": if n["mergedBy"].is_null() { Value::Null } else { json!({"login": n["mergedBy"]["login"]}) },
        "base": {"ref": n["baseRefName"], "sha": n["baseRefOid"]}, "head": {"ref": n["headRefName"], "sha": n["headRefOid"]},
    });
    let commits =
        n["commits"]["nodes"].as_array().into_iter().flatten().filter_map(|c| c["commit"]["oid"].as_str().map(str::to_string)).collect();
    let reviews = n["reviews"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| json!({"id": r["databaseId"], "state": r["state"], "commit_id": r["commit"]["oid"], "submitted_at": r["submittedAt"], "html_url": r["url"], "author_association": r["authorAssociation"], "user": {"login": r["author"]["login"]}}))
        .collect();
    GraphqlPull {
        detail,
        commits,
        total_commits: n["commits"]["totalCount"].as_u64().unwrap_or(0) as usize,
        reviews,
        total_reviews: n["reviews"]["totalCount"].as_u64().unwrap_or(0) as usize,
    }
}

/// True (and said, and listed in the summary) when a PR's commit list is at GitHub's cap.
fn note_cap(repo: &str, number: u64, listed: usize, sum: &mut RepoSummary) -> bool {
    let capped = listed >= PR_COMMITS_CAP;
    if capped {
        tracing::warn!(
            repository = repo,
            pull_request = number,
            "pull request has {listed} commits listed, GitHub's cap: later commits are not linked"
        );
        sum.capped_pull_requests.push(number);
    }
    capped
}

async fn deployments(client: &Client, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    const PERM: &str = "deployments: read";
    let known: i64 = cursor(ledger, repo, "deployments")?.and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut fresh: Vec<Value> = Vec::new();
    let mut next = Some(format!("/repos/{repo}/deployments?per_page=100"));
    'pages: while let Some(path) = next {
        let page = client.get(repo, &path, PERM).await?;
        for d in page.body.as_array().into_iter().flatten() {
            if d["id"].as_i64().unwrap_or(0) <= known {
                break 'pages; // newest first: the rest is known
            }
            fresh.push(d.clone());
        }
        next = page.next;
    }
    fresh.sort_by_key(|d| d["id"].as_i64().unwrap_or(0));
    let pending: Vec<i64> = {
        let l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
        state::pending(&l, repo).map_err(|e| SyncError::Other(e.to_string()))?
    };
    // Deployments whose status was not final last time: poll their statuses again
    // (what we know of the deployment itself comes from the projection).
    for id in pending {
        let sha: Option<String> = {
            let l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
            l.deployment_sha(repo, id)?
        };
        let d = json!({"id": id, "sha": sha});
        let mut batch = Batch::default();
        match statuses(client, ledger, repo, &d, &mut batch, sum).await {
            Ok(()) => {}
            // The deployment was deleted on GitHub: stop polling it.
            Err(SyncError::Client(ClientError::NotFound { .. })) => batch.state.pending_del.push((repo.to_string(), id)),
            Err(e) => return Err(e),
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    for d in fresh {
        sum.fetched_deployments += 1;
        client.stats.deployments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = d["id"].as_i64().unwrap_or(0);
        let mut batch = Batch::default();
        let p = GithubPayload::deployment(repo, &d);
        let sha = d["sha"].as_str().unwrap_or("").to_string();
        let actor = d["creator"]["login"].as_str().unwrap_or("").to_string();
        if batch.add(ledger, Kind::DeploymentSynced, format!("{repo}/deployment/{id}"), sha, actor, p)? {
            sum.deployments += 1;
        }
        statuses(client, ledger, repo, &d, &mut batch, sum).await?;
        batch.state.cursors.push((repo.to_string(), "deployments".into(), id.to_string()));
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

/// Environments and their protection: a snapshot each time one changes.
async fn environments(client: &Client, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let body = match client.get(repo, &format!("/repos/{repo}/environments?per_page=100"), "actions: read").await {
        Ok(p) => p.body,
        // No environments, or no permission to see them: nothing to record.
        Err(ClientError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut batch = Batch::default();
    for e in body["environments"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else { continue };
        // Custom branch policies are listed on their own.
        let policies = if e["deployment_branch_policy"]["custom_branch_policies"] == true {
            let path = format!("/repos/{repo}/environments/{name}/deployment-branch-policies?per_page=100");
            match client.get(repo, &path, "actions: read").await {
                Ok(p) => p.body,
                Err(ClientError::NotFound { .. }) => Value::Null,
                Err(e) => return Err(e.into()),
            }
        } else {
            Value::Null
        };
        let p = GithubPayload::environment_snapshot(repo, e, &policies);
        batch.add(ledger, Kind::EnvironmentSynced, format!("{repo}/environment/{name}"), format!("{repo}/{name}"), String::new(), p)?;
    }
    // Counted with everything else the pass recorded (the summary once left these out).
    sum.new_entries += batch.commit(ledger)?;
    Ok(())
}

/// Fetches a deployment's statuses into `batch`; tracks it as pending until final.
async fn statuses(
    client: &Client,
    ledger: &Mutex<Ledger>,
    repo: &str,
    d: &Value,
    batch: &mut Batch,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    let id = d["id"].as_i64().unwrap_or(0);
    let sha = d["sha"].as_str().unwrap_or("").to_string();
    let list = client.get_all(repo, &format!("/repos/{repo}/deployments/{id}/statuses?per_page=100"), "deployments: read", 10).await?;
    // Newest first from GitHub; the latest decides whether to poll again.
    let latest = list.first().and_then(|s| s["state"].as_str()).unwrap_or("");
    if FINAL_STATES.contains(&latest) {
        batch.state.pending_del.push((repo.to_string(), id));
    } else {
        batch.state.pending_add.push((repo.to_string(), id));
    }
    let mut runs = Vec::new();
    for s in list.iter().rev() {
        let Some(sid) = s["id"].as_i64() else {
            continue;
        };
        let p = GithubPayload::deployment_status(repo, id, s);
        let actor = s["creator"]["login"].as_str().unwrap_or("").to_string();
        if batch.add(ledger, Kind::DeploymentStatusSynced, format!("{repo}/status/{sid}"), sha.clone(), actor, p)? {
            sum.deployment_statuses += 1;
        }
        for url in [s["log_url"].as_str(), s["target_url"].as_str()].into_iter().flatten() {
            if let Some(run) = run_id(url) {
                if !runs.contains(&run) {
                    runs.push(run);
                }
            }
        }
    }
    // The environment's required reviewers approve the workflow run that deploys;
    // the run itself says who started and who triggered it.
    for run in runs {
        match client.get(repo, &format!("/repos/{repo}/actions/runs/{run}"), "actions: read").await {
            Ok(page) => {
                let actor = page.body["triggering_actor"]["login"].as_str().unwrap_or("").to_string();
                let p = GithubPayload::workflow_run(repo, id, &page.body);
                batch.add(ledger, Kind::WorkflowRunSynced, format!("{repo}/run/{run}/info"), sha.clone(), actor, p)?;
            }
            // A run GitHub no longer has: its deployer stays unknown (never assumed).
            Err(ClientError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let p = match client.get(repo, &format!("/repos/{repo}/actions/runs/{run}/approvals"), "actions: read").await {
            Ok(page) => GithubPayload::deployment_approval(repo, run, id, &page.body),
            // GitHub no longer has them: recorded as gone, so they read as unknown, never as "none".
            Err(ClientError::NotFound { .. }) => GithubPayload::deployment_approval_gone(repo, run, id),
            Err(e) => return Err(e.into()),
        };
        if batch.add(ledger, Kind::DeploymentApprovalSynced, format!("{repo}/run/{run}"), sha.clone(), String::new(), p)? {
            sum.approvals += 1;
        }
    }
    Ok(())
}

pub use crate::forge::run_id;

/// Commits on the default branch that no synced pull request lists (rebase
/// merges, direct pushes): ask GitHub which pull requests contain them.
async fn landed_commits(client: &Client, ledger: &Mutex<Ledger>, repo: &str, branch: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let since = cursor(ledger, repo, "commits")?;
    let mut path = format!("/repos/{repo}/commits?{}&per_page=100", crate::forge::rest::query_pair("sha", branch));
    if let Some(s) = &since {
        path.push_str(&format!("&since={s}"));
    }
    let commits = client.get_all(repo, &path, "contents: read", 20).await?;
    let mut newest = since.clone();
    let mut ordered: Vec<&Value> = commits.iter().collect();
    ordered.reverse(); // oldest first
    for c in ordered {
        let Some(sha) = c["sha"].as_str() else {
            continue;
        };
        let date = c["commit"]["committer"]["date"].as_str().unwrap_or("").to_string();
        let known: bool = {
            let l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
            l.commit_linked_to_pulls(repo, sha)?
        };
        let mut batch = Batch::default();
        if !known {
            let pulls = client.get(repo, &format!("/repos/{repo}/commits/{sha}/pulls"), "pull_requests: read").await?.body;
            let p = GithubPayload::commit_pulls(repo, sha, &pulls);
            if batch.add(ledger, Kind::CommitPullsSynced, format!("{repo}/{sha}"), sha.to_string(), String::new(), p)? {
                sum.commit_links += 1;
            }
        }
        if cursor_is_behind(newest.as_deref(), &date) {
            newest = Some(date.clone());
            batch.state.cursors.push((repo.to_string(), "commits".into(), date));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_workflow_runs_in_urls() {
        assert_eq!(run_id("https://github.com/acme/api/actions/runs/5173467235/job/1400"), Some(5173467235));
        assert_eq!(run_id("https://github.com/acme/api/actions/runs/42"), Some(42));
        assert_eq!(run_id("https://example.com/deploy/42"), None);
    }
}
