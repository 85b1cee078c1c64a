//! GitHub's REST bodies → the ledger's forge vocabulary ([`crate::event::synced`]).
//!
//! The recorded payloads of the sync kinds: the fields git-audit keeps, users
//! reduced to their login, plus where the object came from. Both transports
//! (REST, and GraphQL mapped to REST shapes) end here, so the same object makes
//! the same payload — and the same digest, which is how a second pass knows it
//! has nothing new to record. Every field these write is a typed field of the
//! vocabulary (a test decodes each fixture's payload and finds nothing left in `raw`).

use serde_json::Value;

/// The mapping of GitHub's bodies to recorded payloads.
pub struct GithubPayload;

impl GithubPayload {
    fn pick(v: &Value, fields: &[&str]) -> serde_json::Map<String, Value> {
        fields.iter().map(|f| ((*f).to_string(), v.get(*f).cloned().unwrap_or(Value::Null))).collect()
    }

    /// A user as recorded: the login (the same whichever API it came from).
    pub fn user(v: &Value) -> Value {
        if v.is_null() || v["login"].is_null() {
            Value::Null
        } else {
            serde_json::json!({"login": v["login"]})
        }
    }

    /// `pr.synced`: `detail` as `GET /repos/R/pulls/N` returns it.
    pub fn pull_request(repo: &str, detail: &Value, merged: bool, commits: &[String], capped: bool) -> Value {
        let mut p =
            Self::pick(detail, &["number", "title", "state", "draft", "merged_at", "created_at", "updated_at", "closed_at", "html_url"]);
        p.insert("repository".into(), repo.into());
        p.insert("merged".into(), merged.into());
        // For an unmerged PR GitHub's REST merge_commit_sha is a throwaway test merge.
        p.insert("merge_commit_sha".into(), if merged { detail["merge_commit_sha"].clone() } else { Value::Null });
        p.insert("user".into(), Self::user(&detail["user"]));
        p.insert("merged_by".into(), Self::user(&detail["merged_by"]));
        p.insert("base".into(), serde_json::json!({"ref": detail["base"]["ref"], "sha": detail["base"]["sha"]}));
        p.insert("head".into(), serde_json::json!({"ref": detail["head"]["ref"], "sha": detail["head"]["sha"]}));
        p.insert("commits".into(), commits.into());
        p.insert("commits_capped".into(), capped.into());
        Value::Object(p)
    }

    /// `review.synced`: one element of `GET /repos/R/pulls/N/reviews`.
    pub fn review(repo: &str, number: u64, review: &Value) -> Value {
        let mut p = Self::pick(review, &["id", "state", "commit_id", "submitted_at", "html_url", "author_association"]);
        p.insert("repository".into(), repo.into());
        p.insert("pull_number".into(), number.into());
        p.insert("user".into(), Self::user(&review["user"]));
        Value::Object(p)
    }

    /// `deployment.synced`: one element of `GET /repos/R/deployments`.
    pub fn deployment(repo: &str, d: &Value) -> Value {
        let mut p = Self::pick(
            d,
            &[
                "id",
                "sha",
                "ref",
                "task",
                "environment",
                "original_environment",
                "description",
                "created_at",
                "updated_at",
                "production_environment",
                "transient_environment",
            ],
        );
        p.insert("repository".into(), repo.into());
        p.insert("creator".into(), Self::user(&d["creator"]));
        Value::Object(p)
    }

    /// `deployment_status.synced`: one element of `GET …/deployments/ID/statuses`.
    pub fn deployment_status(repo: &str, deployment_id: i64, s: &Value) -> Value {
        let mut p = Self::pick(
            s,
            &["id", "state", "description", "environment", "log_url", "target_url", "environment_url", "created_at", "updated_at"],
        );
        p.insert("repository".into(), repo.into());
        p.insert("deployment_id".into(), deployment_id.into());
        p.insert("creator".into(), Self::user(&s["creator"]));
        Value::Object(p)
    }

    /// `deployment_approval.synced`: `GET …/actions/runs/RUN/approvals` for the run that deployed.
    pub fn deployment_approval(repo: &str, run: u64, deployment_id: i64, approvals: &Value) -> Value {
        let list: Vec<Value> = approvals
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| serde_json::json!({"state": a["state"], "comment": a["comment"], "user": Self::user(&a["user"]), "environments": a["environments"].as_array().map(|e| e.iter().map(|x| x["name"].clone()).collect::<Vec<_>>())}))
            .collect();
        serde_json::json!({"repository": repo, "run_id": run, "deployment_id": deployment_id, "approvals": list})
    }

    /// `workflow_run.synced`: `GET /repos/R/actions/runs/ID`, for the deployment it made.
    pub fn workflow_run(repo: &str, deployment_id: i64, run: &Value) -> Value {
        let mut p = Self::pick(
            run,
            &["id", "name", "event", "head_branch", "head_sha", "status", "conclusion", "html_url", "run_attempt", "created_at"],
        );
        p.insert("repository".into(), repo.into());
        p.insert("deployment_id".into(), deployment_id.into());
        p.insert("actor".into(), Self::user(&run["actor"]));
        p.insert("triggering_actor".into(), Self::user(&run["triggering_actor"]));
        Value::Object(p)
    }

    /// `environment.synced`: one element of `GET /repos/R/environments`, its
    /// protection only (ids, URLs and times left out, so only a change records anew).
    pub fn environment_snapshot(repo: &str, e: &Value, branch_policies: &Value) -> Value {
        let mut names: Vec<&str> =
            branch_policies["branch_policies"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        names.sort_unstable();
        let rules: Vec<Value> = e["protection_rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mut r = r.as_object().cloned().unwrap_or_default();
                r.remove("id");
                r.remove("node_id");
                if let Some(Value::Array(list)) = r.get_mut("reviewers") {
                    for x in list.iter_mut() {
                        let who = &x["reviewer"];
                        *x = serde_json::json!({"type": x["type"], "reviewer": {"login": who["login"], "slug": who["slug"]}});
                    }
                }
                Value::Object(r)
            })
            .collect();
        serde_json::json!({
            "repository": repo,
            "name": e["name"],
            "can_admins_bypass": e["can_admins_bypass"],
            "protection_rules": rules,
            "deployment_branch_policy": e["deployment_branch_policy"],
            "branch_policies": names,
        })
    }

    /// `deployment_approval.synced` when GitHub no longer has the run's approvals.
    pub fn deployment_approval_gone(repo: &str, run: u64, deployment_id: i64) -> Value {
        serde_json::json!({"repository": repo, "run_id": run, "deployment_id": deployment_id, "approvals": [], "gone": true})
    }

    /// `commit_pulls.synced`: the pull requests `GET /repos/R/commits/SHA/pulls` names.
    pub fn commit_pulls(repo: &str, sha: &str, pulls: &Value) -> Value {
        let numbers: Vec<u64> = pulls.as_array().into_iter().flatten().filter_map(|p| p["number"].as_u64()).collect();
        crate::forge::batch::commit_pulls(repo, sha, &numbers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangeSynced, CommitPullsSynced, DeploymentStatusSynced, DeploymentSynced, Payload, ReviewSynced};

    fn fixture(name: &str) -> Value {
        let path = format!("{}/fixtures/github/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Decodes `payload` as `P` and checks that every field the mapping wrote is
    /// a typed field (nothing left in `raw`) and that re-encoding gives the same
    /// canonical JSON — the same digest a second sync pass compares.
    fn typed_exactly<P: Payload + std::fmt::Debug>(payload: &Value, raw: impl Fn(&P) -> usize) {
        let decoded = P::decode(P::KIND.as_str(), &payload.to_string());
        let Some(p) = decoded else { panic!("{} does not decode: {payload}", P::KIND) };
        assert_eq!(raw(&p), 0, "{} has untyped fields: {p:?}", P::KIND);
        assert_eq!(p.entry("s", "a").payload.to_string(), payload.to_string(), "{}", P::KIND);
    }

    #[test]
    fn every_field_github_payloads_record_is_a_typed_field_of_the_vocabulary() {
        let repo = "octocat/Hello-World";
        let mut merged = fixture("pull.json");
        merged["merged_by"] = serde_json::json!({"login": "bob", "id": 2});
        for (detail, is_merged) in [(fixture("pull.json"), false), (merged, true)] {
            let p = GithubPayload::pull_request(repo, &detail, is_merged, &["6dcb09b5b57875f334f61aebed695e2e4193db5e".into()], false);
            typed_exactly::<ChangeSynced>(&p, |p| p.raw.len());
        }
        typed_exactly::<ReviewSynced>(&GithubPayload::review(repo, 1347, &fixture("review.json")), |p| p.raw.len());
        typed_exactly::<DeploymentSynced>(&GithubPayload::deployment(repo, &fixture("deployment.json")), |p| p.raw.len());
        typed_exactly::<DeploymentStatusSynced>(&GithubPayload::deployment_status(repo, 42, &fixture("deployment_status.json")), |p| {
            p.raw.len()
        });
        for pulls in [serde_json::json!([{"number": 1347}]), serde_json::json!([])] {
            typed_exactly::<CommitPullsSynced>(&GithubPayload::commit_pulls(repo, "6dcb09b5", &pulls), |p| p.raw.len());
        }
        // The fixtures are real GitHub bodies: the states read as the vocabulary's.
        let review = ReviewSynced::decode("review.synced", &GithubPayload::review(repo, 1, &fixture("review.json")).to_string());
        assert_eq!(review.and_then(|r| r.state), Some(crate::event::ReviewState::Approved));
    }
}
