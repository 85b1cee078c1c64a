//! One GitLab sync pass over one project. Incremental (`updated_after`
//! cursors), resumable (each merge request's or deployment's entries commit
//! with the cursor that covers them) and idempotent (what has not changed
//! adds nothing).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::payload::{self, ApprovalFate};
use crate::event::{ForgeAuditSynced, Kind, PrFilesSynced, TeamSynced, PR_FILES_CAP};
use crate::forge::batch::{cursor, cursor_is_behind, seen, Batch, RepoSummary, SyncError, OVERLAP_SECS};
use crate::forge::rest::{ClientError, RestClient};
use crate::ledger::Ledger;

/// Merge requests and commits: GitLab pages at most 100 a page.
const PER_PAGE: &str = "per_page=100";
/// Commits listed for one merge request, at most (pages of 100).
pub const MR_COMMITS_CAP: usize = 1000;
const READ: &str = "read_api (Reporter on the project)";

/// A project path as GitLab's API takes it (`group%2Fsub%2Fproject`).
pub fn project_id(path: &str) -> String {
    path.replace('/', "%2F")
}

fn lock(ledger: &Mutex<Ledger>) -> Result<std::sync::MutexGuard<'_, Ledger>, SyncError> {
    ledger.lock().map_err(|_| SyncError::Other("ledger lock poisoned".into()))
}

/// The cursor value minus the overlap (items move while we page).
fn since_with_overlap(cursor: Option<&str>) -> Option<String> {
    cursor
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| (t - chrono::Duration::seconds(OVERLAP_SECS)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Syncs one project (`group/project`, subgroups allowed).
pub async fn sync_project(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str) -> Result<RepoSummary, SyncError> {
    let mut sum = RepoSummary { repository: repo.to_string(), ..Default::default() };
    let r = inner(client, ledger, repo, &mut sum).await;
    crate::forge::batch::finished(sum, r)
}

async fn inner(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let id = project_id(repo);
    let project = client.get(repo, &format!("/projects/{id}"), READ).await?.body;
    let default_branch = project["default_branch"].as_str().unwrap_or("main").to_string();
    // Approval settings: whether a push resets approvals (then GitLab's list
    // of approvers is authoritative on its own).
    let settings = match client.get(repo, &format!("/projects/{id}/approvals"), READ).await {
        Ok(p) => p.body,
        // Free tier or no permission: the settings are unknown, approvals are read from the notes alone.
        Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => Value::Null,
        Err(e) => return Err(e.into()),
    };
    client.stats.set_phase("merge requests");
    merge_requests(client, ledger, repo, &settings, sum).await?;
    client.stats.set_phase("deployments");
    deployments(client, ledger, repo, sum).await?;
    client.stats.set_phase("protected environments");
    environments(client, ledger, repo, &project, sum).await?;
    client.stats.set_phase("audit events");
    audit_events(client, ledger, repo, sum).await?;
    client.stats.set_phase("commits on the default branch");
    landed_commits(client, ledger, repo, &default_branch, sum).await?;
    Ok(())
}

/// The project's audit events (Premium; Maintainer): GitLab's own record of
/// who changed a setting, a protected environment or branch, an approval
/// rule. Each is recorded once. Unreadable (Free, or a Developer's token):
/// skipped, and the summary says so.
async fn audit_events(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    if !lock(ledger)?.may_append(Kind::ForgeAuditSynced) {
        sum.notes.push(format!(
            "{repo}: GitLab's audit events were not recorded: this sync writer was added before forge_audit.synced existed (add a new sync writer: git-audit ledger writers add NAME --role sync)"
        ));
        return Ok(());
    }
    let id = project_id(repo);
    let cursor = cursor(ledger, repo, "audit_events")?;
    let mut path = format!("/projects/{id}/audit_events?{PER_PAGE}");
    if let Some(s) = since_with_overlap(cursor.as_deref()) {
        path.push_str(&format!("&created_after={s}"));
    }
    let listed = match client.get_all(repo, &path, "read_api (Maintainer on the project; GitLab Premium)", usize::MAX).await {
        Ok(l) => l,
        Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => {
            sum.notes.push(format!("{repo}: GitLab's audit events are not readable with this token (Maintainer and GitLab Premium needed): settings changes are known only from snapshots"));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut events: Vec<&Value> = listed.iter().filter(|e| e["id"].is_i64()).collect();
    events.sort_by(|a, b| (a["created_at"].as_str(), a["id"].as_i64()).cmp(&(b["created_at"].as_str(), b["id"].as_i64())));
    let mut authors: HashMap<i64, Option<String>> = HashMap::new();
    for e in events {
        let event_id = e["id"].as_i64().unwrap_or(0);
        let key = format!("{repo}/audit/{event_id}");
        let created = e["created_at"].as_str().unwrap_or("").to_string();
        let mut batch = Batch::default();
        if seen(ledger, Kind::ForgeAuditSynced.as_str(), &key)?.is_none() {
            let d = &e["details"];
            let author_id = e["author_id"].as_i64().unwrap_or(-1);
            if author_id > 0 && !authors.contains_key(&author_id) {
                let name = match client.get(repo, &format!("/users/{author_id}"), READ).await {
                    Ok(p) => p.body["username"].as_str().map(str::to_string),
                    Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => None,
                    Err(err) => return Err(err.into()),
                };
                authors.insert(author_id, name);
            }
            let text = |v: &Value| v.as_str().map(str::to_string).or_else(|| (!v.is_null()).then(|| v.to_string()));
            let author = authors.get(&author_id).cloned().flatten().or_else(|| text(&d["author_name"]));
            let audit = ForgeAuditSynced {
                repository: repo.to_string(),
                forge: "gitlab".into(),
                id: event_id,
                author: author.clone(),
                created_at: Some(created.clone()),
                action: text(&d["change"]).or_else(|| text(&d["custom_message"])).or_else(|| text(&e["event_name"])),
                target_type: text(&d["target_type"]),
                target_details: text(&d["target_details"]),
                from: text(&d["from"]),
                to: text(&d["to"]),
                details: d.clone(),
            };
            let p = serde_json::to_value(&audit).map_err(|err| SyncError::Other(err.to_string()))?;
            if batch.add(ledger, Kind::ForgeAuditSynced, key, repo.to_string(), author.unwrap_or_default(), p)? {
                sum.audit_events += 1;
            }
        }
        if cursor_is_behind(cursor.as_deref(), &created) {
            batch.state.cursors.push((repo.to_string(), "audit_events".into(), created));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

async fn merge_requests(
    client: &RestClient,
    ledger: &Mutex<Ledger>,
    repo: &str,
    settings: &Value,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    let id = project_id(repo);
    let cursor = cursor(ledger, repo, "merge_requests")?;
    let mut path = format!("/projects/{id}/merge_requests?state=all&order_by=updated_at&sort=asc&{PER_PAGE}");
    if let Some(s) = since_with_overlap(cursor.as_deref()) {
        path.push_str(&format!("&updated_after={s}"));
    }
    let listed = client.get_all(repo, &path, READ, usize::MAX).await?;
    let mut todo: BTreeMap<(String, i64), Value> = BTreeMap::new();
    for mr in listed {
        let (Some(updated), Some(iid)) = (mr["updated_at"].as_str(), mr["iid"].as_i64()) else { continue };
        todo.insert((updated.to_string(), iid), mr);
    }
    for ((updated, iid), mr) in todo {
        // In the overlap and unchanged since recorded: a merged merge request
        // can no longer be approved, an open one is re-read when it changes.
        if lock(ledger)?.change_updated_at(repo, iid)?.as_deref() == Some(updated.as_str()) {
            continue;
        }
        let mut batch = Batch::default();
        record_merge_request(client, ledger, repo, iid, &mr, settings, &mut batch, sum).await?;
        client.stats.pull_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if cursor_is_behind(cursor.as_deref(), &updated) {
            batch.state.cursors.push((repo.to_string(), "merge_requests".into(), updated));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record_merge_request(
    client: &RestClient,
    ledger: &Mutex<Ledger>,
    repo: &str,
    iid: i64,
    mr: &Value,
    settings: &Value,
    batch: &mut Batch,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    let id = project_id(repo);
    let base = format!("/projects/{id}/merge_requests/{iid}");
    sum.fetched_pull_requests += 1;
    let listed = client.get_all(repo, &format!("{base}/commits?{PER_PAGE}"), READ, MR_COMMITS_CAP / 100).await?;
    let capped = listed.len() >= MR_COMMITS_CAP;
    if capped {
        tracing::warn!(
            repository = repo,
            merge_request = iid,
            "merge request lists {MR_COMMITS_CAP} commits or more: later commits are not linked"
        );
        sum.capped_pull_requests.push(iid.max(0) as u64);
    }
    // GitLab lists a merge request's commits newest first.
    let mut commits: Vec<String> = listed.iter().filter_map(|c| c["id"].as_str().map(str::to_string)).collect();
    commits.reverse();
    let merged = mr["state"] == "merged";
    // Reviews and files matter once a merge request has merged (only merged
    // ones are judged); an open one is re-read when it merges (it is updated then).
    let (versions, approvals) = if merged {
        let versions = client.get_all(repo, &format!("{base}/versions?{PER_PAGE}"), READ, 20).await?;
        let approvals = match client.get(repo, &format!("{base}/approvals"), READ).await {
            Ok(p) => Some(p.body),
            Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        (versions, approvals)
    } else {
        (Vec::new(), None)
    };
    // Diff versions, oldest first: which head was current when.
    let mut heads: Vec<(String, String, String)> = versions
        .iter()
        .filter_map(|v| {
            Some((
                v["created_at"].as_str()?.to_string(),
                v["head_commit_sha"].as_str()?.to_string(),
                v["base_commit_sha"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect();
    heads.sort();
    let base_sha = heads.last().map(|(_, _, b)| b.as_str()).filter(|b| !b.is_empty());
    let subject = format!("{repo}#{iid}");
    let author = mr["author"]["username"].as_str().unwrap_or("").to_string();
    let p = payload::merge_request(repo, mr, &commits, capped, base_sha, settings);
    if batch.add(ledger, Kind::PrSynced, subject.clone(), subject.clone(), author, p)? {
        sum.pull_requests += 1;
    }
    if !merged {
        return Ok(());
    }
    // Approvals: each "approved this merge request" note, judged against the
    // head of that moment and against GitLab's list of who still approves.
    let notes = client.get_all(repo, &format!("{base}/notes?sort=asc&order_by=created_at&{PER_PAGE}"), READ, 50).await?;
    let standing: Vec<String> = approvals
        .as_ref()
        .map(|a| {
            a["approved_by"].as_array().into_iter().flatten().filter_map(|x| x["user"]["username"].as_str().map(str::to_string)).collect()
        })
        .unwrap_or_default();
    let head_at = |t: &str| heads.iter().rev().find(|(at, _, _)| at.as_str() <= t).map(|(_, h, _)| h.clone());
    let mut last_approval: HashMap<String, usize> = HashMap::new();
    let mut events: Vec<(i64, String, Value, bool)> = Vec::new(); // (note id, who, time, approved?)
    for n in notes.iter().filter(|n| n["system"] == true) {
        let (Some(note), Some(who)) = (n["id"].as_i64(), n["author"]["username"].as_str()) else { continue };
        let body = n["body"].as_str().unwrap_or("");
        if body.starts_with("approved this merge request") {
            last_approval.insert(who.to_string(), events.len());
            events.push((note, who.to_string(), n["created_at"].clone(), true));
        } else if body.starts_with("unapproved this merge request") {
            events.push((note, who.to_string(), n["created_at"].clone(), false));
        }
    }
    let page = |note: i64| mr["web_url"].as_str().map(|u| format!("{u}#note_{note}"));
    for (i, (note, who, at, approved)) in events.iter().enumerate() {
        if !approved {
            continue;
        }
        let withdrawn = events[i + 1..].iter().any(|(_, w, _, a)| w == who && !a);
        let fate = if withdrawn {
            ApprovalFate::Withdrawn
        } else if last_approval.get(who) == Some(&i) && (approvals.is_none() || standing.contains(who)) {
            ApprovalFate::Standing
        } else {
            ApprovalFate::Reset
        };
        let head = head_at(at.as_str().unwrap_or(""));
        let p = payload::approval(repo, iid, *note, who, at, head.as_deref(), page(*note), fate);
        if batch.add(ledger, Kind::ReviewSynced, format!("{repo}/approval/{note}"), subject.clone(), who.clone(), p)? {
            sum.reviews += 1;
        }
    }
    // Approvers GitLab lists with no note we could read (notes of imported
    // merge requests): on the final head only if a push resets approvals.
    let resets = settings["reset_approvals_on_push"] == true;
    for who in standing.iter().filter(|w| !last_approval.contains_key(*w)) {
        let head = if resets { mr["sha"].as_str().map(str::to_string) } else { None };
        let key_id = -(iid * 1000 + (standing.iter().position(|w| w == who).unwrap_or(0) as i64) + 1);
        let p = payload::approval(repo, iid, key_id, who, &Value::Null, head.as_deref(), None, ApprovalFate::Standing);
        if batch.add(ledger, Kind::ReviewSynced, format!("{repo}/approval/{iid}/{who}"), subject.clone(), who.clone(), p)? {
            sum.reviews += 1;
        }
    }
    client.stats.reviews.fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
    // Changed files, for path rules and CODEOWNERS.
    let diffs = client.get_all(repo, &format!("{base}/diffs?{PER_PAGE}"), READ, PR_FILES_CAP.div_ceil(100)).await?;
    let mut files: Vec<String> =
        diffs.iter().flat_map(|d| [d["new_path"].as_str(), d["old_path"].as_str()]).flatten().map(str::to_string).collect();
    files.sort();
    files.dedup();
    let capped = diffs.len() >= PR_FILES_CAP;
    let head_sha = mr["sha"].as_str().unwrap_or("").to_string();
    let p = serde_json::to_value(PrFilesSynced { repository: repo.into(), number: iid.max(0) as u64, head_sha, files, capped })
        .map_err(|e| SyncError::Other(e.to_string()))?;
    batch.add(ledger, Kind::PrFilesSynced, subject.clone(), subject, String::new(), p)?;
    Ok(())
}

/// Deployments updated since the last pass: recorded once each, a status
/// entry for each state it is seen in, and its approvals whenever they change.
async fn deployments(client: &RestClient, ledger: &Mutex<Ledger>, repo: &str, sum: &mut RepoSummary) -> Result<(), SyncError> {
    let id = project_id(repo);
    let cursor = cursor(ledger, repo, "deployments")?;
    let mut path = format!("/projects/{id}/deployments?order_by=updated_at&sort=asc&{PER_PAGE}");
    if let Some(s) = since_with_overlap(cursor.as_deref()) {
        path.push_str(&format!("&updated_after={s}"));
    }
    let listed = client.get_all(repo, &path, READ, usize::MAX).await?;
    let mut todo: BTreeMap<(String, i64), ()> = BTreeMap::new();
    for d in &listed {
        if let (Some(u), Some(i)) = (d["updated_at"].as_str(), d["id"].as_i64()) {
            todo.insert((u.to_string(), i), ());
        }
    }
    for (updated, dep) in todo.into_keys() {
        // The single deployment carries its approvals (Premium); the list does not.
        let d = client.get(repo, &format!("/projects/{id}/deployments/{dep}"), READ).await?.body;
        sum.fetched_deployments += 1;
        client.stats.deployments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut batch = Batch::default();
        let sha = d["sha"].as_str().unwrap_or("").to_string();
        let actor = d["user"]["username"].as_str().unwrap_or("").to_string();
        let key = format!("{repo}/deployment/{dep}");
        if seen(ledger, Kind::DeploymentSynced.as_str(), &key)?.is_none()
            && batch.add(ledger, Kind::DeploymentSynced, key, sha.clone(), actor.clone(), payload::deployment(repo, &d))?
        {
            sum.deployments += 1;
        }
        let status = d["status"].as_str().unwrap_or("unknown");
        let key = format!("{repo}/deployment/{dep}/status/{status}");
        if seen(ledger, Kind::DeploymentStatusSynced.as_str(), &key)?.is_none()
            && batch.add(ledger, Kind::DeploymentStatusSynced, key, sha.clone(), actor, payload::deployment_status(repo, &d))?
        {
            sum.deployment_statuses += 1;
        }
        if d["approvals"].as_array().is_some_and(|a| !a.is_empty()) {
            let p = payload::deployment_approvals(repo, &d);
            if batch.add(ledger, Kind::DeploymentApprovalSynced, format!("{repo}/deployment/{dep}/approvals"), sha, String::new(), p)? {
                sum.approvals += 1;
            }
        }
        if cursor_is_behind(cursor.as_deref(), &updated) {
            batch.state.cursors.push((repo.to_string(), "deployments".into(), updated));
        }
        sum.new_entries += batch.commit(ledger)?;
    }
    Ok(())
}

/// Protected environments: a snapshot each time one's rules change.
async fn environments(
    client: &RestClient,
    ledger: &Mutex<Ledger>,
    repo: &str,
    project: &Value,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    let id = project_id(repo);
    let list = match client
        .get_all(repo, &format!("/projects/{id}/protected_environments?{PER_PAGE}"), "read_api (Maintainer on the project)", 20)
        .await
    {
        Ok(l) => l,
        // Free tier, or a token that may not read them: nothing to record (said in the README).
        Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    // User and group ids → usernames and group paths.
    let mut wanted: Vec<(String, String, &'static str)> = Vec::new();
    for e in &list {
        for a in e["approval_rules"].as_array().into_iter().chain(e["deploy_access_levels"].as_array()).flatten() {
            if let Some(u) = a["user_id"].as_i64() {
                wanted.push((format!("user:{u}"), format!("/users/{u}"), "username"));
            }
            if let Some(g) = a["group_id"].as_i64() {
                wanted.push((format!("group:{g}"), format!("/groups/{g}"), "full_path"));
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    let mut names: HashMap<String, Value> = HashMap::new();
    for (key, path, field) in wanted {
        let v = match client.get(repo, &path, READ).await {
            Ok(p) => match (p.body[field].as_str(), field) {
                (Some(n), "username") => json!({"type": "User", "reviewer": {"login": n}}),
                (Some(n), _) => json!({"type": "Group", "reviewer": {"group": n}}),
                (None, _) => Value::Null,
            },
            // Gone, or hidden from this token: named by its id below.
            Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => Value::Null,
            Err(e) => return Err(e.into()),
        };
        names.insert(key, v);
    }
    let name = |a: &Value| -> Value {
        let known = a["user_id"].as_i64().map(|u| format!("user:{u}")).or_else(|| a["group_id"].as_i64().map(|g| format!("group:{g}")));
        match known
            .and_then(|k| names.get(&k).filter(|v| !v.is_null()).cloned().or(Some(json!({"type": "Unknown", "reviewer": {"login": k}}))))
        {
            Some(v) => v,
            None => json!({"type": "Role", "reviewer": {"role": a["access_level_description"].as_str().unwrap_or("?")}}),
        }
    };
    let self_approval = project["allow_pipeline_trigger_approve_deployment"] == true;
    let mut batch = Batch::default();
    for e in &list {
        let Some(env) = e["name"].as_str() else { continue };
        let p = payload::protected_environment(repo, e, self_approval, &name);
        batch.add(ledger, Kind::EnvironmentSynced, format!("{repo}/environment/{env}"), format!("{repo}/{env}"), String::new(), p)?;
    }
    sum.new_entries += batch.commit(ledger)?;
    Ok(())
}

/// Commits on the default branch since the last pass, each linked to the
/// merge requests it came in (none: pushed directly).
async fn landed_commits(
    client: &RestClient,
    ledger: &Mutex<Ledger>,
    repo: &str,
    branch: &str,
    sum: &mut RepoSummary,
) -> Result<(), SyncError> {
    let id = project_id(repo);
    let since = cursor(ledger, repo, "commits")?;
    let mut path = format!("/projects/{id}/repository/commits?{}&{PER_PAGE}", crate::forge::rest::query_pair("ref_name", branch));
    if let Some(s) = &since {
        path.push_str(&format!("&since={s}"));
    }
    let commits = client.get_all(repo, &path, READ, 20).await?;
    let mut newest = since.clone();
    for c in commits.iter().rev() {
        let Some(sha) = c["id"].as_str() else { continue };
        let date = c["committed_date"].as_str().unwrap_or("").to_string();
        let known = lock(ledger)?.commit_linked_to_pulls(repo, sha)?;
        let mut batch = Batch::default();
        if !known {
            let mrs = client.get_all(repo, &format!("/projects/{id}/repository/commits/{sha}/merge_requests"), READ, 5).await?;
            let numbers: Vec<u64> = mrs.iter().filter_map(|m| m["iid"].as_u64()).collect();
            let p = crate::forge::batch::commit_pulls(repo, sha, &numbers);
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

/// Snapshots the members of each group the policy names (`group:PATH`),
/// inherited members included. An unreadable group is skipped and said.
pub async fn sync_groups(client: &RestClient, ledger: &Mutex<Ledger>, groups: &[String]) -> Result<(u64, Vec<String>), SyncError> {
    let mut batch = Batch::default();
    let mut unreadable = Vec::new();
    for g in groups {
        let label = format!("group:{g}");
        let members = match client.get_all(&label, &format!("/groups/{}/members/all?{PER_PAGE}", project_id(g)), READ, 50).await {
            Ok(m) => m,
            Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => {
                unreadable.push(format!(
                    "{label}: GitLab would not list its members (no such group, or the token cannot see it); its membership is not recorded, so approvals that lean on it are reported as \"could not verify\""
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut logins: Vec<String> = members
            .iter()
            .filter(|m| m["state"].as_str().is_none_or(|s| s == "active"))
            .filter_map(|m| m["username"].as_str().map(str::to_string))
            .collect();
        logins.sort();
        logins.dedup();
        let team = TeamSynced::group(g, logins);
        let p = serde_json::to_value(&team).map_err(|e| SyncError::Other(e.to_string()))?;
        batch.add(ledger, Kind::TeamSynced, label.clone(), team.subject_of(), String::new(), p)?;
    }
    Ok((batch.commit(ledger)?, unreadable))
}
