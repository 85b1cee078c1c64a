//! One Gitea (or Forgejo) sync pass over one repository.

use std::sync::Mutex;

use serde_json::{json, Value};

use crate::event::{Kind, PrFilesSynced, ReviewState, TeamSynced, PR_FILES_CAP};
use crate::forge::batch::{cursor, cursor_is_behind, Batch, RepoSummary, SyncError, OVERLAP_SECS};
use crate::forge::rest::{ClientError, RestClient};
use crate::ledger::Ledger;

/// Gitea's default page size cap (`[api] MAX_RESPONSE_ITEMS`) is 50.
const LIMIT: &str = "limit=50";
const READ: &str = "read:repository";
/// Commits listed for one pull request, at most.
pub const PR_COMMITS_CAP: usize = 1000;

fn user(u: &Value) -> Value {
    match u["login"].as_str() {
        Some(l) => json!({"login": l}),
        None => Value::Null,
    }
}

/// `pr.synced` from a Gitea pull request (GitHub-like, with Gitea's names).
pub fn pull_request(repo: &str, pr: &Value, commits: &[String], capped: bool) -> Value {
    let merged = pr["merged"] == true;
    json!({
        "repository": repo,
        "number": pr["number"],
        "title": pr["title"],
        "state": if pr["state"] == "open" { "open" } else { "closed" },
        "draft": pr["draft"].as_bool(),
        "user": user(&pr["user"]),
        "merged": merged,
        "merged_by": if merged { user(&pr["merged_by"]) } else { Value::Null },
        "merged_at": pr["merged_at"],
        "merge_commit_sha": if merged { pr["merge_commit_sha"].clone() } else { Value::Null },
        "base": {"ref": pr["base"]["ref"], "sha": pr["base"]["sha"]},
        "head": {"ref": pr["head"]["ref"], "sha": pr["head"]["sha"]},
        "created_at": pr["created_at"],
        "updated_at": pr["updated_at"],
        "closed_at": pr["closed_at"],
        "html_url": pr["html_url"],
        "commits": commits,
        "commits_capped": capped,
    })
}

/// `review.synced` from a Gitea review. A dismissed review is `DISMISSED`; a
/// stale one keeps its state and the head it was given on, so it counts for
/// nothing on the final head; `official` is kept.
pub fn review(repo: &str, number: u64, r: &Value) -> Value {
    let state = if r["dismissed"] == true {
        ReviewState::Dismissed
    } else {
        match r["state"].as_str().unwrap_or("") {
            "APPROVED" => ReviewState::Approved,
            "REQUEST_CHANGES" => ReviewState::ChangesRequested,
            "COMMENT" => ReviewState::Commented,
            "PENDING" => ReviewState::Pending,
            other => ReviewState::Other(other.to_string()),
        }
    };
    json!({
        "repository": repo, "pull_number": number, "id": r["id"], "user": user(&r["user"]), "state": state.recorded(),
        "commit_id": r["commit_id"], "submitted_at": r["submitted_at"], "html_url": r["html_url"],
        "gitea": {"state": r["state"], "official": r["official"], "stale": r["stale"], "dismissed": r["dismissed"]},
    })
}

/// Snapshots the members of each organisation team the policy names
/// (`team:ORG/NAME`: Gitea's team names are what GitHub calls slugs). A team
/// that is gone or hidden from the token is skipped and said; approvals that
/// lean on it are then "could not verify".
pub async fn sync_teams(client: &RestClient, ledger: &Mutex<Ledger>, teams: &[(String, String)]) -> Result<(u64, Vec<String>), SyncError> {
    let mut batch = Batch::default();
    let mut unreadable = Vec::new();
    for (org, name) in teams {
        let label = TeamSynced::subject(org, name);
        let listed = match client.get_all(&label, &format!("/orgs/{org}/teams?{LIMIT}"), "read:organization", 20).await {
            Ok(l) => l,
            Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => {
                unreadable.push(format!("{label}: Gitea would not list the organisation's teams (no such organisation, or the token lacks read:organization); its membership is not recorded, so approvals that lean on it are reported as \"could not verify\""));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(id) =
            listed.iter().find(|t| t["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))).and_then(|t| t["id"].as_i64())
        else {
            unreadable.push(format!("{label}: the organisation has no team `{name}` this token can see; its membership is not recorded"));
            continue;
        };
        let members = client.get_all(&label, &format!("/teams/{id}/members?{LIMIT}"), "read:organization", 50).await?;
        let mut logins: Vec<String> = members.iter().filter_map(|m| m["login"].as_str().map(str::to_string)).collect();
        logins.sort();
        logins.dedup();
        let team = TeamSynced { org: org.clone(), slug: name.clone(), members: logins };
        let p = serde_json::to_value(&team).map_err(|e| SyncError::Other(e.to_string()))?;
        batch.add(ledger, Kind::TeamSynced, label.clone(), label, String::new(), p)?;
    }
    Ok((batch.commit(ledger)?, unreadable))
}

/// Syncs one repository (`owner/name`).
pub async fn sync_repo(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str) -> Result<RepoSummary, SyncError> {
    let mut sum = RepoSummary { repository: repo.to_string(), ..Default::default() };
    let r = inner(client, ledger, repo, &mut sum).await;
    crate::forge::batch::finished(sum, r)
}

async fn inner(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let meta = client.get(repo, &format!("/repos/{repo}"), READ).await?.body;
    let default_branch = meta["default_branch"].as_str().unwrap_or("main").to_string();
    client.stats.set_phase("pull requests");
    pulls(client, ledger, repo, sum).await?;
    client.stats.set_phase("commits on the default branch");
    landed_commits(client, ledger, repo, &default_branch, sum).await?;
    client.stats.set_phase("Actions runs behind recorded deployments");
    deployment_runs(client, ledger, repo, sum).await?;
    Ok(())
}

/// `workflow_run.synced` from a Gitea Actions run (`ActionWorkflowRun`) and its
/// jobs (`ActionWorkflowJob`), for the recorded deployment it made. Gitea's
/// `trigger_actor` is GitHub's `triggering_actor`; the rest is kept under `gitea`.
pub fn workflow_run(repo: &str, deployment_id: i64, run: &Value, jobs: &[Value]) -> Value {
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({"id": j["id"], "name": j["name"], "status": j["status"], "conclusion": j["conclusion"], "run_attempt": j["run_attempt"],
                   "head_sha": j["head_sha"], "runner_name": j["runner_name"], "labels": j["labels"], "started_at": j["started_at"],
                   "completed_at": j["completed_at"], "html_url": j["html_url"]})
        })
        .collect();
    json!({
        "repository": repo, "deployment_id": deployment_id, "id": run["id"], "name": run["display_title"], "event": run["event"],
        "head_branch": run["head_branch"], "head_sha": run["head_sha"], "status": run["status"], "conclusion": run["conclusion"],
        "html_url": run["html_url"], "run_attempt": run["run_attempt"], "created_at": run["started_at"],
        "actor": user(&run["actor"]), "triggering_actor": user(&run["trigger_actor"]),
        "gitea": {"path": run["path"], "run_number": run["run_number"], "completed_at": run["completed_at"], "jobs": jobs},
    })
}

/// Gitea has no deployments API: deployments come from `record deployment` in
/// the deploying Actions job. For each one recorded from this repository's
/// Actions on this server (its URL is `ORIGIN/OWNER/NAME/actions/runs/ID`), the
/// run and its jobs are read once it has completed, so the report knows from
/// the forge, not from the job's own variables, who triggered the deployment.
/// A server older than Gitea 1.24 has no runs API: that is said, never guessed.
async fn deployment_runs(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    use crate::event::{DeploymentRecorded, WorkflowRunSynced};
    use crate::ledger::Select;
    let prefix = format!("{}/{repo}/actions/runs/", client.origin());
    let (recorded, done) = {
        let l = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?;
        let recorded = l.events::<DeploymentRecorded>(&Select::default())?;
        let done: std::collections::HashSet<(i64, u64)> = l
            .events::<WorkflowRunSynced>(&Select::default())?
            .into_iter()
            .filter(|e| e.payload.repository == repo && e.payload.status.as_deref() == Some("completed"))
            .map(|e| (e.payload.deployment_id, e.payload.id))
            .collect();
        (recorded, done)
    };
    let mut todo: Vec<(i64, u64, String)> = Vec::new();
    for e in recorded {
        let d = e.payload;
        let Some(url) = d.url.as_deref().filter(|_| d.repository == repo) else { continue };
        let Some(run) = url.strip_prefix(&prefix).and_then(|_| crate::forge::run_id(url)) else { continue };
        if !done.contains(&(d.deployment_id, run)) && !todo.iter().any(|(id, r, _)| *id == d.deployment_id && *r == run) {
            todo.push((d.deployment_id, run, d.sha.clone()));
        }
    }
    let mut batch = Batch::default();
    for (deployment_id, run, sha) in todo {
        let body = match client.get(repo, &format!("/repos/{repo}/actions/runs/{run}"), READ).await {
            Ok(page) => page.body,
            Err(ClientError::NotFound { .. }) => {
                sum.notes.push(format!(
                    "{repo}: Gitea answered 404 for Actions run {run} (a recorded deployment's run): the run is gone, or the server is older than Gitea 1.24 and has no runs API; its deployer stays as recorded"
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // The list comes wrapped (`{"jobs": […], "total_count": N}`), paged by `Link`.
        let mut jobs: Vec<Value> = Vec::new();
        let mut next = Some(format!("/repos/{repo}/actions/runs/{run}/jobs?{LIMIT}"));
        for _ in 0..10 {
            let Some(path) = next.take() else { break };
            let page = client.get(repo, &path, READ).await?;
            jobs.extend(page.body["jobs"].as_array().into_iter().flatten().cloned());
            next = page.next;
        }
        let actor = body["trigger_actor"]["login"].as_str().or(body["actor"]["login"].as_str()).unwrap_or("").to_string();
        let p = workflow_run(repo, deployment_id, &body, &jobs);
        if batch.add(ledger, Kind::WorkflowRunSynced, format!("{repo}/run/{run}/deployment/{deployment_id}"), sha, actor, p)? {
            sum.runs += 1;
        }
    }
    sum.new_entries += batch.commit(ledger)?;
    Ok(())
}

async fn pulls(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let cursor = cursor(ledger, repo, "pulls")?;
    let since = cursor
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| (t - chrono::Duration::seconds(OVERLAP_SECS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    // Newest update first; stop at the cursor (Gitea's list has no `since`).
    let mut todo: Vec<(String, u64, Value)> = Vec::new();
    let mut next = Some(format!("/repos/{repo}/pulls?state=all&sort=recentupdate&{LIMIT}"));
    'pages: while let Some(path) = next {
        let page = client.get(repo, &path, READ).await?;
        for pr in page.body.as_array().into_iter().flatten() {
            let updated = pr["updated_at"].as_str().unwrap_or("").to_string();
            if since.as_deref().is_some_and(|s| updated.as_str() < s) {
                break 'pages;
            }
            if let Some(n) = pr["number"].as_u64() {
                if !todo.iter().any(|(_, m, _)| *m == n) {
                    todo.push((updated, n, pr.clone()));
                }
            }
        }
        next = page.next;
    }
    todo.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (updated, number, pr) in todo {
        sum.fetched_pull_requests += 1;
        let listed = client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/commits?{LIMIT}"), READ, PR_COMMITS_CAP / 50).await?;
        let capped = listed.len() >= PR_COMMITS_CAP;
        if capped {
            sum.capped_pull_requests.push(number);
        }
        let commits: Vec<String> = listed.iter().filter_map(|c| c["sha"].as_str().map(str::to_string)).collect();
        let mut batch = Batch::default();
        let subject = format!("{repo}#{number}");
        let author = pr["user"]["login"].as_str().unwrap_or("").to_string();
        if batch.add(ledger, Kind::PrSynced, subject.clone(), subject.clone(), author, pull_request(repo, &pr, &commits, capped))? {
            sum.pull_requests += 1;
        }
        let reviews = client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/reviews?{LIMIT}"), READ, 20).await?;
        for r in &reviews {
            let Some(id) = r["id"].as_u64() else { continue };
            let who = r["user"]["login"].as_str().unwrap_or("").to_string();
            if batch.add(ledger, Kind::ReviewSynced, format!("{repo}/review/{id}"), subject.clone(), who, review(repo, number, r))? {
                sum.reviews += 1;
            }
        }
        if pr["merged"] == true {
            let listed =
                client.get_all(repo, &format!("/repos/{repo}/pulls/{number}/files?{LIMIT}"), READ, PR_FILES_CAP.div_ceil(50)).await?;
            let mut files: Vec<String> = listed
                .iter()
                .flat_map(|f| [f["filename"].as_str(), f["previous_filename"].as_str()])
                .flatten()
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
            files.sort();
            files.dedup();
            let head_sha = pr["head"]["sha"].as_str().unwrap_or("").to_string();
            let p = serde_json::to_value(PrFilesSynced {
                repository: repo.into(),
                number,
                head_sha,
                files,
                capped: listed.len() >= PR_FILES_CAP,
            })
            .map_err(|e| SyncError::Other(e.to_string()))?;
            batch.add(ledger, Kind::PrFilesSynced, subject.clone(), subject, String::new(), p)?;
        }
        client.stats.pull_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        client.stats.reviews.fetch_add(reviews.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if cursor_is_behind(cursor.as_deref(), &updated) {
            batch.state.cursors.push((repo.to_string(), "pulls".into(), updated));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

/// The default branch's commits, newest first until one already linked; each
/// not in a recorded pull request is asked about (`commits/SHA/pull`: 404 is
/// "no pull request").
async fn landed_commits(
    client: &RestClient,
    ledger: &Mutex<Ledger>,
    repo: &str,
    branch: &str,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    let since = cursor(ledger, repo, "commits")?;
    let mut fresh: Vec<(String, String)> = Vec::new();
    let mut next = Some(format!(
        "/repos/{repo}/commits?{}&stat=false&verification=false&files=false&{LIMIT}",
        crate::forge::rest::query_pair("sha", branch)
    ));
    let mut pages = 0;
    'pages: while let Some(path) = next {
        let page = client.get(repo, &path, READ).await?;
        for c in page.body.as_array().into_iter().flatten() {
            let Some(sha) = c["sha"].as_str() else { continue };
            let date = c["commit"]["committer"]["date"].as_str().or(c["created"].as_str()).unwrap_or("").to_string();
            if since.as_deref().is_some_and(|s| date.as_str() < s) {
                break 'pages;
            }
            fresh.push((date, sha.to_string()));
        }
        next = page.next;
        pages += 1;
        if pages >= 20 {
            break;
        }
    }
    fresh.reverse();
    let mut newest = since.clone();
    for (date, sha) in fresh {
        let known = ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))?.commit_linked_to_pulls(repo, &sha)?;
        let mut batch = Batch::default();
        if !known {
            let numbers: Vec<u64> = match client.get(repo, &format!("/repos/{repo}/commits/{sha}/pull"), READ).await {
                Ok(p) => p.body["number"].as_u64().into_iter().collect(),
                Err(ClientError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let p = crate::forge::batch::commit_pulls(repo, &sha, &numbers);
            if batch.add(ledger, Kind::CommitPullsSynced, format!("{repo}/{sha}"), sha.clone(), String::new(), p)? {
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
