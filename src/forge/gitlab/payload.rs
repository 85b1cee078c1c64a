//! GitLab's REST bodies → the ledger's forge vocabulary ([`crate::event::synced`]).
//!
//! GitLab's words become the shared ones (`opened` → `open`, `merged` →
//! closed and merged, `failed` → `failure`, `blocked` → `waiting`); what
//! GitLab says that the vocabulary has no field for is kept under `gitlab`.

use serde_json::{json, Value};

use crate::event::{DeploymentState, ReviewState};

fn login(user: &Value) -> Value {
    match user["username"].as_str() {
        Some(u) => json!({"login": u}),
        None => Value::Null,
    }
}

/// The commit a merged merge request landed as: its merge commit, else its
/// squash commit, else (fast-forward) its head.
pub fn landed_sha(mr: &Value) -> Value {
    if mr["state"] != "merged" {
        return Value::Null;
    }
    [&mr["merge_commit_sha"], &mr["squash_commit_sha"], &mr["sha"]].into_iter().find(|v| v.is_string()).cloned().unwrap_or(Value::Null)
}

/// `pr.synced`: a merge request (`GET /projects/:id/merge_requests` element),
/// its commits, and the base its newest diff version was taken against.
///
/// A merged one keeps the project's approval settings as they stood when it
/// was synced (GitLab keeps no history of them): whether a push resets
/// approvals, whether its author or committers may approve, how many approvals it needs.
pub fn merge_request(repo: &str, mr: &Value, commits: &[String], capped: bool, base_sha: Option<&str>, settings: &Value) -> Value {
    let merged = mr["state"] == "merged";
    let state = if mr["state"] == "opened" { "open" } else { "closed" };
    // GitLab 14.7 renamed merged_by to merge_user (the older field stays, deprecated).
    let merger = if mr["merge_user"].is_object() { &mr["merge_user"] } else { &mr["merged_by"] };
    json!({
        "repository": repo,
        "number": mr["iid"],
        "title": mr["title"],
        "state": state,
        "draft": mr["draft"].as_bool().or(mr["work_in_progress"].as_bool()),
        "user": login(&mr["author"]),
        "merged": merged,
        "merged_by": if merged { login(merger) } else { Value::Null },
        "merged_at": mr["merged_at"],
        "merge_commit_sha": landed_sha(mr),
        "base": {"ref": mr["target_branch"], "sha": base_sha},
        "head": {"ref": mr["source_branch"], "sha": mr["sha"]},
        "created_at": mr["created_at"],
        "updated_at": mr["updated_at"],
        "closed_at": if merged { mr["merged_at"].clone() } else { mr["closed_at"].clone() },
        "html_url": mr["web_url"],
        "commits": commits,
        "commits_capped": capped,
        "gitlab": {
            "state": mr["state"],
            "squash_commit_sha": mr["squash_commit_sha"],
            "source_project_id": mr["source_project_id"],
            "target_project_id": mr["target_project_id"],
            "approval_settings": if merged && settings.is_object() {
                json!({
                    "reset_approvals_on_push": settings["reset_approvals_on_push"],
                    "author_may_approve": settings["merge_requests_author_approval"],
                    "committers_may_not_approve": settings["merge_requests_disable_committers_approval"],
                    "approvals_before_merge": settings["approvals_before_merge"],
                })
            } else {
                Value::Null
            },
        },
    })
}

/// How an approval ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalFate {
    /// Still counted by GitLab when the merge request was synced.
    Standing,
    /// Withdrawn by its approver ("unapproved this merge request").
    Withdrawn,
    /// No longer counted: reset by a later push (or by GitLab for another reason).
    Reset,
}

/// `review.synced`: one approval of a merge request, given on `head` (the
/// merge request's head when it was given, from its diff versions).
#[allow(clippy::too_many_arguments)]
pub fn approval(
    repo: &str,
    iid: i64,
    id: i64,
    who: &str,
    at: &Value,
    head: Option<&str>,
    page: Option<String>,
    fate: ApprovalFate,
) -> Value {
    let state = match fate {
        ApprovalFate::Standing => ReviewState::Approved,
        _ => ReviewState::Dismissed,
    };
    let mut p = json!({
        "repository": repo, "pull_number": iid, "id": id, "user": {"login": who}, "state": state.recorded(),
        "commit_id": head, "submitted_at": at, "html_url": page,
    });
    match fate {
        ApprovalFate::Withdrawn => p["gitlab"] = json!({"approval": "withdrawn"}),
        ApprovalFate::Reset => p["gitlab"] = json!({"approval": "reset"}),
        ApprovalFate::Standing => {}
    }
    p
}

/// GitLab's deployment status in the shared vocabulary.
pub fn deployment_state(status: &str) -> DeploymentState {
    match status {
        "success" => DeploymentState::Success,
        "failed" => DeploymentState::Failure,
        "running" => DeploymentState::InProgress,
        "created" => DeploymentState::Pending,
        "blocked" => DeploymentState::Waiting,
        // canceled, skipped: it did not deploy, and did not fail.
        other => DeploymentState::Other(other.to_string()),
    }
}

/// `deployment.synced`: a deployment (`GET /projects/:id/deployments/:id`),
/// without what changes as it runs (its status and update time: those are
/// `deployment_status.synced`), so it is recorded once.
pub fn deployment(repo: &str, d: &Value) -> Value {
    let job = &d["deployable"];
    json!({
        "repository": repo,
        "id": d["id"],
        "sha": d["sha"],
        "ref": d["ref"],
        "task": "deploy",
        "environment": d["environment"]["name"],
        "creator": login(&d["user"]),
        "created_at": d["created_at"],
        "production_environment": d["environment"]["tier"].as_str().map(|t| t == "production"),
        "gitlab": {
            "iid": d["iid"],
            "job": {"id": job["id"], "name": job["name"], "stage": job["stage"], "web_url": job["web_url"], "user": login(&job["user"])},
            "pipeline": {"id": job["pipeline"]["id"], "web_url": job["pipeline"]["web_url"], "status": job["pipeline"]["status"]},
        },
    })
}

/// Milliseconds since the epoch of a GitLab time (status ids must grow with time).
pub fn millis(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time).ok().map(|t| t.timestamp_millis())
}

/// `deployment_status.synced`: the state a deployment was in when synced.
pub fn deployment_status(repo: &str, d: &Value) -> Value {
    let status = d["status"].as_str().unwrap_or("");
    let at = d["updated_at"].as_str().unwrap_or("");
    json!({
        "repository": repo,
        "deployment_id": d["id"],
        "id": millis(at),
        "state": deployment_state(status).recorded(),
        "environment": d["environment"]["name"],
        "creator": login(&d["user"]),
        "log_url": d["deployable"]["web_url"],
        "environment_url": d["environment"]["external_url"],
        "created_at": at,
        "gitlab": {"status": status},
    })
}

/// `deployment_approval.synced`: a deployment's approvals and rejections.
pub fn deployment_approvals(repo: &str, d: &Value) -> Value {
    let env = d["environment"]["name"].clone();
    let list: Vec<Value> = d["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| json!({"state": a["status"], "comment": a["comment"], "user": login(&a["user"]), "environments": [env.clone()]}))
        .collect();
    json!({"repository": repo, "run_id": d["deployable"]["id"].as_u64().unwrap_or(0), "deployment_id": d["id"], "approvals": list})
}

/// `environment.synced`: a protected environment's rules, in the shared
/// shape (`required_reviewers` with `required_approvals`, and who may deploy);
/// `names` turns GitLab's user and group ids into usernames and group paths.
pub fn protected_environment(repo: &str, e: &Value, self_approval_allowed: bool, names: &dyn Fn(&Value) -> Value) -> Value {
    let approvers: Vec<Value> = e["approval_rules"].as_array().into_iter().flatten().map(names).collect();
    let required = e["required_approval_count"]
        .as_u64()
        .filter(|n| *n > 0)
        .or_else(|| e["approval_rules"].as_array().map(|r| r.iter().filter_map(|x| x["required_approvals"].as_u64()).sum::<u64>()))
        .unwrap_or(0);
    let mut rules = Vec::new();
    if required > 0 {
        rules.push(json!({"type": "required_reviewers", "prevent_self_review": !self_approval_allowed, "required_approvals": required, "reviewers": approvers}));
    }
    let deployers: Vec<Value> = e["deploy_access_levels"].as_array().into_iter().flatten().map(names).collect();
    rules.push(json!({"type": "deployers", "deployers": deployers}));
    json!({"repository": repo, "name": e["name"], "can_admins_bypass": null, "protection_rules": rules, "deployment_branch_policy": null, "branch_policies": []})
}
