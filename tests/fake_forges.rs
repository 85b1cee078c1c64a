//! Local stand-ins for GitLab's REST API v4 and Gitea's v1, for the sync
//! tests: bodies built from `fixtures/gitlab/` and `fixtures/gitea/`, `Link`
//! pagination, GitLab's ETags and 304s, `RateLimit-*` headers, 429 with
//! `Retry-After`, 5xx faults, a delay to kill a sync in the middle of, and a
//! log of every request.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use crate::fake_github::sha;

pub const GITLAB_TOKEN: &str = "glpat-TESTSECRETtoken0123456789";
pub const GITEA_TOKEN: &str = "0123456789abcdef0123456789abcdefTESTSECRET";

pub fn fixture(forge: &str, name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(forge).join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or(Value::Null)
}

fn gl_user(name: &str) -> Value {
    let mut u = fixture("gitlab", "member.json");
    u["username"] = json!(name);
    u["name"] = json!(name);
    u["id"] = json!(name.len() as i64 * 7 + name.bytes().map(i64::from).sum::<i64>());
    u
}

fn gt_user(name: &str) -> Value {
    json!({"id": name.len(), "login": name, "login_name": "", "full_name": name, "email": format!("{name}@example.com"), "username": name})
}

/// What the fake GitLab holds for one project.
#[derive(Default)]
pub struct GitLabWorld {
    pub path: String,
    pub project: Value,
    pub settings: Value,
    pub mrs: Vec<Value>,
    pub mr_commits: BTreeMap<i64, Vec<String>>,
    pub versions: BTreeMap<i64, Vec<Value>>,
    pub notes: BTreeMap<i64, Vec<Value>>,
    pub approved_by: BTreeMap<i64, Vec<String>>,
    pub diffs: BTreeMap<i64, Vec<(String, String)>>,
    pub deployments: Vec<Value>,
    pub protected: Vec<Value>,
    pub users: BTreeMap<i64, String>,
    pub groups: BTreeMap<i64, String>,
    pub members: BTreeMap<String, Vec<String>>,
    /// The default branch, oldest first: (sha, date, merge requests it came in).
    pub landed: Vec<(String, String, Vec<i64>)>,
    pub audit_events: Vec<Value>,
    next_id: i64,
}

impl GitLabWorld {
    pub fn new(path: &str) -> GitLabWorld {
        let mut project = fixture("gitlab", "project.json");
        project["path_with_namespace"] = json!(path);
        project["web_url"] = json!(format!("https://gitlab.example.com/{path}"));
        let mut settings = fixture("gitlab", "project_approvals.json");
        settings["reset_approvals_on_push"] = json!(true);
        GitLabWorld { path: path.into(), project, settings, next_id: 5000, ..GitLabWorld::default() }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn touch(&mut self, iid: i64, at: &str) {
        if let Some(m) = self.mrs.iter_mut().find(|m| m["iid"] == iid) {
            if m["updated_at"].as_str().unwrap_or("") < at {
                m["updated_at"] = json!(at);
            }
        }
    }

    /// A merge request whose first version has `commits` (oldest first).
    pub fn merge_request(&mut self, iid: i64, author: &str, at: &str, commits: &[String]) {
        let mut m = fixture("gitlab", "merge_request.json");
        m["id"] = json!(self.id());
        m["iid"] = json!(iid);
        m["title"] = json!(format!("feat: change {iid}"));
        m["state"] = json!("opened");
        m["author"] = gl_user(author);
        m["merged_by"] = Value::Null;
        m["merge_user"] = Value::Null;
        m["merged_at"] = Value::Null;
        m["created_at"] = json!(at);
        m["updated_at"] = json!(at);
        m["source_branch"] = json!(format!("topic-{iid}"));
        m["sha"] = json!(commits.last().cloned().unwrap_or_default());
        m["web_url"] = json!(format!("https://gitlab.example.com/{}/-/merge_requests/{iid}", self.path));
        self.mrs.push(m);
        self.mr_commits.insert(iid, commits.to_vec());
        self.version(iid, commits.last().map(String::as_str).unwrap_or(""), at);
        self.diffs.insert(iid, vec![("src/lib.rs".into(), "src/lib.rs".into())]);
    }

    fn version(&mut self, iid: i64, head: &str, at: &str) {
        let mut v = fixture("gitlab", "merge_request_version.json");
        v["id"] = json!(self.id());
        v["head_commit_sha"] = json!(head);
        v["base_commit_sha"] = json!(sha("base"));
        v["created_at"] = json!(at);
        // GitLab lists versions newest first.
        self.versions.entry(iid).or_default().insert(0, v);
    }

    /// A push to the merge request's branch: a new head (and version); with
    /// `reset_approvals_on_push`, GitLab drops every approval.
    pub fn push(&mut self, iid: i64, commit: &str, at: &str) {
        self.mr_commits.entry(iid).or_default().push(commit.into());
        self.version(iid, commit, at);
        if let Some(m) = self.mrs.iter_mut().find(|m| m["iid"] == iid) {
            m["sha"] = json!(commit);
        }
        if self.settings["reset_approvals_on_push"] == true {
            self.approved_by.remove(&iid);
        }
        self.touch(iid, at);
    }

    fn system_note(&mut self, iid: i64, who: &str, body: &str, at: &str) {
        let mut n = fixture("gitlab", "note.json");
        n["id"] = json!(self.id());
        n["body"] = json!(body);
        n["author"] = gl_user(who);
        n["created_at"] = json!(at);
        n["updated_at"] = json!(at);
        n["noteable_iid"] = json!(iid);
        self.notes.entry(iid).or_default().push(n);
        self.touch(iid, at);
    }

    pub fn approve(&mut self, iid: i64, who: &str, at: &str) {
        self.system_note(iid, who, "approved this merge request", at);
        self.approved_by.entry(iid).or_default().push(who.into());
    }

    pub fn unapprove(&mut self, iid: i64, who: &str, at: &str) {
        self.system_note(iid, who, "unapproved this merge request", at);
        self.approved_by.entry(iid).or_default().retain(|w| w != who);
    }

    /// Merged with a merge commit `merge_sha`, which lands on the default branch.
    pub fn merge(&mut self, iid: i64, by: &str, at: &str, merge_sha: &str) {
        if let Some(m) = self.mrs.iter_mut().find(|m| m["iid"] == iid) {
            m["state"] = json!("merged");
            m["merged_at"] = json!(at);
            m["merged_by"] = gl_user(by);
            m["merge_user"] = gl_user(by);
            m["merge_commit_sha"] = json!(merge_sha);
            m["updated_at"] = json!(at);
        }
        self.landed.push((merge_sha.into(), at.into(), vec![iid]));
    }

    /// A deployment (GitLab ids are instance-wide) of `sha` by `user`.
    pub fn deployment(&mut self, id: i64, sha_: &str, env: &str, user: &str, at: &str, status: &str) {
        let mut d = fixture("gitlab", "deployment.json");
        d["id"] = json!(id);
        d["iid"] = json!(self.deployments.len() + 1);
        d["sha"] = json!(sha_);
        d["ref"] = json!("main");
        d["created_at"] = json!(at);
        d["updated_at"] = json!(at);
        d["status"] = json!(status);
        d["user"] = gl_user(user);
        d["environment"]["name"] = json!(env);
        d["deployable"]["id"] = json!(id * 10);
        d["deployable"]["user"] = gl_user(user);
        d["deployable"]["web_url"] = json!(format!("https://gitlab.example.com/{}/-/jobs/{}", self.path, id * 10));
        d["approvals"] = json!([]);
        d["pending_approval_count"] = json!(0);
        self.deployments.push(d);
    }

    pub fn deployment_status(&mut self, id: i64, status: &str, at: &str) {
        if let Some(d) = self.deployments.iter_mut().find(|d| d["id"] == id) {
            d["status"] = json!(status);
            d["updated_at"] = json!(at);
        }
    }

    pub fn approve_deployment(&mut self, id: i64, who: &str, at: &str) {
        if let Some(d) = self.deployments.iter_mut().find(|d| d["id"] == id) {
            if let Some(list) = d["approvals"].as_array_mut() {
                list.push(json!({"user": gl_user(who), "status": "approved", "created_at": at, "comment": "ship it"}));
            }
            d["updated_at"] = json!(at);
        }
    }

    /// An audit event: `author_id` changed `change` from `from` to `to` on `target`.
    pub fn audit(&mut self, author_id: i64, change: &str, from: &str, to: &str, target: &str, at: &str) {
        let mut e = fixture("gitlab", "audit_event.json");
        e["id"] = json!(self.id());
        e["author_id"] = json!(author_id);
        e["event_name"] = json!("protected_environment_updated");
        e["details"]["change"] = json!(change);
        e["details"]["from"] = json!(from);
        e["details"]["to"] = json!(to);
        e["details"]["author_name"] = json!(self.users.get(&author_id).cloned().unwrap_or_default());
        e["details"]["target_type"] = json!("ProtectedEnvironment");
        e["details"]["target_details"] = json!(target);
        e["details"]["entity_path"] = json!(self.path);
        e["created_at"] = json!(at);
        self.audit_events.push(e);
    }

    /// A protected environment: `approvers` (user ids) and how many must approve.
    pub fn protect(&mut self, env: &str, approvers: &[i64], required: u64, deploy_group: Option<i64>) {
        self.protected.retain(|e| e["name"] != env);
        let mut e = fixture("gitlab", "protected_environment.json");
        e["name"] = json!(env);
        e["required_approval_count"] = json!(required);
        e["approval_rules"] = json!(approvers
            .iter()
            .map(|u| json!({"id": u + 100, "user_id": u, "group_id": null, "access_level": null, "access_level_description": "", "required_approvals": 1, "group_inheritance_type": 0}))
            .collect::<Vec<_>>());
        e["deploy_access_levels"] = match deploy_group {
            Some(g) => {
                json!([{"id": 12, "access_level": 40, "access_level_description": "group", "user_id": null, "group_id": g, "group_inheritance_type": 0}])
            }
            None => {
                json!([{"id": 12, "access_level": 40, "access_level_description": "Maintainers", "user_id": null, "group_id": null, "group_inheritance_type": 0}])
            }
        };
        self.protected.push(e);
    }
}

/// What the fake Gitea holds for one repository.
#[derive(Default)]
pub struct GiteaWorld {
    pub repo: String,
    pub pulls: Vec<Value>,
    pub commits: BTreeMap<u64, Vec<String>>,
    pub reviews: BTreeMap<u64, Vec<Value>>,
    pub files: BTreeMap<u64, Vec<String>>,
    /// The default branch, oldest first: (sha, date).
    pub landed: Vec<(String, String)>,
    /// Organisation teams: (org, name) → (id, member logins).
    pub teams: BTreeMap<(String, String), (i64, Vec<String>)>,
    /// Actions runs (Gitea 1.24+), by id.
    pub runs: BTreeMap<u64, Value>,
    /// The server predates the runs API (every `actions/runs` path is 404).
    pub no_runs_api: bool,
    next_id: i64,
}

impl GiteaWorld {
    pub fn new(repo: &str) -> GiteaWorld {
        GiteaWorld { repo: repo.into(), next_id: 300, ..GiteaWorld::default() }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn pull(&mut self, number: u64, author: &str, at: &str, commits: &[String]) {
        let mut p = fixture("gitea", "pull.json");
        p["id"] = json!(self.id());
        p["number"] = json!(number);
        p["title"] = json!(format!("feat: change {number}"));
        p["user"] = gt_user(author);
        p["state"] = json!("open");
        p["merged"] = json!(false);
        p["merged_at"] = Value::Null;
        p["merged_by"] = Value::Null;
        p["merge_commit_sha"] = Value::Null;
        p["closed_at"] = Value::Null;
        p["created_at"] = json!(at);
        p["updated_at"] = json!(at);
        p["head"]["sha"] = json!(commits.last().cloned().unwrap_or_default());
        p["head"]["ref"] = json!(format!("topic-{number}"));
        p["html_url"] = json!(format!("https://gitea.example.com/{}/pulls/{number}", self.repo));
        p["url"] = p["html_url"].clone();
        self.pulls.push(p);
        self.commits.insert(number, commits.to_vec());
        self.files.insert(number, vec!["src/main.rs".into()]);
    }

    fn touch(&mut self, number: u64, at: &str) {
        if let Some(p) = self.pulls.iter_mut().find(|p| p["number"] == number) {
            if p["updated_at"].as_str().unwrap_or("") < at {
                p["updated_at"] = json!(at);
            }
        }
    }

    pub fn review(&mut self, number: u64, who: &str, state: &str, commit: &str, at: &str) -> i64 {
        let id = self.id();
        let mut r = fixture("gitea", "review.json");
        r["id"] = json!(id);
        r["user"] = gt_user(who);
        r["state"] = json!(state);
        r["commit_id"] = json!(commit);
        r["submitted_at"] = json!(at);
        r["html_url"] = json!(format!("https://gitea.example.com/{}/pulls/{number}#issuecomment-{id}", self.repo));
        self.reviews.entry(number).or_default().push(r);
        self.touch(number, at);
        id
    }

    /// A push to the pull request: Gitea marks earlier reviews stale.
    pub fn push(&mut self, number: u64, commit: &str, at: &str) {
        self.commits.entry(number).or_default().push(commit.into());
        for r in self.reviews.entry(number).or_default() {
            r["stale"] = json!(true);
        }
        if let Some(p) = self.pulls.iter_mut().find(|p| p["number"] == number) {
            p["head"]["sha"] = json!(commit);
        }
        self.touch(number, at);
    }

    pub fn dismiss(&mut self, number: u64, review: i64, at: &str) {
        for r in self.reviews.entry(number).or_default() {
            if r["id"] == review {
                r["dismissed"] = json!(true);
            }
        }
        self.touch(number, at);
    }

    /// An Actions run that `web` (the server's origin) shows at
    /// `/OWNER/NAME/actions/runs/ID`, started by `actor` and triggered by `trigger`.
    pub fn run(&mut self, web: &str, id: u64, sha: &str, actor: &str, trigger: &str, status: &str) {
        let mut r = fixture("gitea", "workflow_run.json");
        r["id"] = json!(id);
        r["html_url"] = json!(format!("{web}/{}/actions/runs/{id}", self.repo));
        r["url"] = json!(format!("{web}/api/v1/repos/{}/actions/runs/{id}", self.repo));
        r["head_sha"] = json!(sha);
        r["actor"] = gt_user(actor);
        r["trigger_actor"] = gt_user(trigger);
        r["status"] = json!(status);
        if status != "completed" {
            r["conclusion"] = json!("");
            r["completed_at"] = json!("0001-01-01T00:00:00Z");
        }
        self.runs.insert(id, r);
    }

    /// Merged with a merge commit; the pull request's own commits and the
    /// merge commit land on the default branch.
    pub fn merge(&mut self, number: u64, by: &str, at: &str, merge_sha: &str) {
        if let Some(p) = self.pulls.iter_mut().find(|p| p["number"] == number) {
            p["state"] = json!("closed");
            p["merged"] = json!(true);
            p["merged_at"] = json!(at);
            p["closed_at"] = json!(at);
            p["updated_at"] = json!(at);
            p["merged_by"] = gt_user(by);
            p["merge_commit_sha"] = json!(merge_sha);
        }
        for c in self.commits.get(&number).cloned().unwrap_or_default() {
            self.landed.push((c, at.into()));
        }
        self.landed.push((merge_sha.into(), at.into()));
    }
}

#[derive(Default)]
pub struct Faults {
    /// The next N requests answer 502.
    pub bad_gateway: u32,
    /// The next N requests answer 429 with `Retry-After: 1`.
    pub too_many: u32,
    /// The next N requests answer 429 with `RateLimit-Remaining: 0` and a reset a second away.
    pub exhausted: u32,
    /// Each request waits this long first.
    pub delay_ms: u64,
    /// Every Nth request (counting all) answers 503 (0: never).
    pub every_nth_503: u64,
    pub count: u64,
}

pub struct Shared {
    pub gitlab: Mutex<GitLabWorld>,
    pub gitea: Mutex<GiteaWorld>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<Vec<(u16, String)>>,
    pub base: String,
}

pub struct FakeForges {
    pub url: String,
    pub shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl FakeForges {
    pub fn start(gitlab: GitLabWorld, gitea: GiteaWorld) -> FakeForges {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            gitlab: Mutex::new(gitlab),
            gitea: Mutex::new(gitea),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            base: url.clone(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeForges { url, shared, _rt: rt }
    }

    pub fn gitlab<T>(&self, f: impl FnOnce(&mut GitLabWorld) -> T) -> T {
        f(&mut self.shared.gitlab.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn gitea<T>(&self, f: impl FnOnce(&mut GiteaWorld) -> T) -> T {
        f(&mut self.shared.gitea.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn take_log(&self) -> Vec<(u16, String)> {
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn reply(status: StatusCode, body: &Value, extra: &[(&str, String)]) -> Response {
    let mut r = Response::builder().status(status).header("content-type", "application/json");
    for (k, v) in extra {
        r = r.header(*k, v);
    }
    r.body(Body::from(body.to_string())).unwrap_or_default()
}

fn query(q: &str) -> BTreeMap<String, String> {
    q.split('&').filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))).collect()
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let q = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let (delay, fault) = {
        let mut f = s.faults.lock().unwrap_or_else(|e| e.into_inner());
        f.count += 1;
        let fault = if f.bad_gateway > 0 {
            f.bad_gateway -= 1;
            Some(reply(StatusCode::BAD_GATEWAY, &json!({"message": "502 Bad Gateway"}), &[]))
        } else if f.too_many > 0 {
            f.too_many -= 1;
            Some(reply(StatusCode::TOO_MANY_REQUESTS, &json!({"message": "Retry later"}), &[("retry-after", "1".into())]))
        } else if f.exhausted > 0 {
            f.exhausted -= 1;
            let reset = (chrono::Utc::now().timestamp() + 1).to_string();
            Some(reply(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"message": "Retry later"}),
                &[("ratelimit-remaining", "0".into()), ("ratelimit-reset", reset), ("ratelimit-limit", "600".into())],
            ))
        } else if f.every_nth_503 > 0 && f.count % f.every_nth_503 == 0 {
            Some(reply(StatusCode::SERVICE_UNAVAILABLE, &json!({"message": "503 Service Unavailable"}), &[]))
        } else {
            None
        };
        (f.delay_ms, fault)
    };
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let resp = match fault {
        Some(r) => r,
        None if path.starts_with("/api/v4/") => gitlab(&s, &path["/api/v4".len()..], &q, &headers),
        None if path.starts_with("/api/v1/") => gitea(&s, &path["/api/v1".len()..], &q, &headers),
        None => reply(StatusCode::NOT_FOUND, &json!({"message": "404 Not Found"}), &[]),
    };
    s.log.lock().unwrap_or_else(|e| e.into_inner()).push((resp.status().as_u16(), if q.is_empty() { path } else { format!("{path}?{q}") }));
    resp
}

/// One page of `items` (`page`, `per_page`/`limit`), with a `Link: rel="next"` to the next.
fn paged(
    base: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    items: Vec<Value>,
    size_key: &str,
    etag: bool,
    headers: &HeaderMap,
) -> Response {
    let per: usize = q.get(size_key).and_then(|v| v.parse().ok()).unwrap_or(20).clamp(1, 100);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    let mut extra = vec![("x-total", total.to_string()), ("ratelimit-remaining", "1999".into()), ("ratelimit-reset", "1900000000".into())];
    if page * per < total {
        let mut q2 = q.clone();
        q2.insert("page".into(), (page + 1).to_string());
        let qs: Vec<String> = q2.iter().map(|(k, v)| format!("{k}={v}")).collect();
        extra.push(("link", format!("<{base}{path}?{}>; rel=\"next\"", qs.join("&"))));
    }
    let body = Value::Array(slice);
    if etag {
        let tag = format!("W/\"{}\"", &hex::encode(Sha256::digest(body.to_string().as_bytes()))[..16]);
        if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
            let mut r = Response::builder().status(StatusCode::NOT_MODIFIED).header("etag", tag.as_str());
            for (k, v) in &extra {
                r = r.header(*k, v);
            }
            return r.body(Body::empty()).unwrap_or_default();
        }
        extra.push(("etag", tag));
    }
    reply(StatusCode::OK, &body, &extra)
}

/// A single object, with an ETag and 304 (GitLab).
fn single(body: Value, headers: &HeaderMap) -> Response {
    let tag = format!("W/\"{}\"", &hex::encode(Sha256::digest(body.to_string().as_bytes()))[..16]);
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        return Response::builder().status(StatusCode::NOT_MODIFIED).header("etag", tag.as_str()).body(Body::empty()).unwrap_or_default();
    }
    reply(StatusCode::OK, &body, &[("etag", tag)])
}

fn gitlab(s: &Shared, path: &str, q: &str, headers: &HeaderMap) -> Response {
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(GITLAB_TOKEN) {
        return reply(StatusCode::UNAUTHORIZED, &json!({"message": "401 Unauthorized"}), &[]);
    }
    let q = query(q);
    let w = s.gitlab.lock().unwrap_or_else(|e| e.into_inner());
    let base = format!("{}/api/v4", s.base);
    let full = format!("/api/v4{path}");
    let list = |items: Vec<Value>| paged(&s.base, &full, &q, items, "per_page", true, headers);
    let not_found = || reply(StatusCode::NOT_FOUND, &json!({"message": "404 Project Not Found"}), &[]);
    let _ = base;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["users", id] => match id.parse::<i64>().ok().and_then(|i| w.users.get(&i)) {
            Some(u) => single(gl_user(u), headers),
            None => reply(StatusCode::NOT_FOUND, &json!({"message": "404 User Not Found"}), &[]),
        },
        ["groups", id] if id.parse::<i64>().is_ok() => match id.parse::<i64>().ok().and_then(|i| w.groups.get(&i)) {
            Some(g) => single(json!({"id": id.parse::<i64>().unwrap_or(0), "full_path": g, "name": g}), headers),
            None => reply(StatusCode::NOT_FOUND, &json!({"message": "404 Group Not Found"}), &[]),
        },
        ["groups", g, "members", "all"] => match w.members.get(&g.replace("%2F", "/")) {
            Some(m) => list(m.iter().map(|u| gl_user(u)).collect()),
            None => reply(StatusCode::NOT_FOUND, &json!({"message": "404 Group Not Found"}), &[]),
        },
        ["projects", p, rest @ ..] => {
            if p.replace("%2F", "/") != w.path {
                return not_found();
            }
            match rest {
                [] => single(w.project.clone(), headers),
                ["approvals"] => single(w.settings.clone(), headers),
                ["merge_requests"] => {
                    let after = q.get("updated_after").cloned().unwrap_or_default();
                    let mut mrs: Vec<Value> =
                        w.mrs.iter().filter(|m| m["updated_at"].as_str().unwrap_or("") > after.as_str()).cloned().collect();
                    mrs.sort_by(|a, b| (a["updated_at"].as_str(), a["id"].as_i64()).cmp(&(b["updated_at"].as_str(), b["id"].as_i64())));
                    list(mrs)
                }
                ["merge_requests", iid, what] => {
                    let Ok(iid) = iid.parse::<i64>() else { return not_found() };
                    if !w.mrs.iter().any(|m| m["iid"] == iid) {
                        return not_found();
                    }
                    match *what {
                        "commits" => {
                            // Newest first, as GitLab lists them.
                            let mut c: Vec<Value> = w
                                .mr_commits
                                .get(&iid)
                                .cloned()
                                .unwrap_or_default()
                                .iter()
                                .map(|id| {
                                    let mut x = fixture("gitlab", "merge_request_commit.json");
                                    x["id"] = json!(id);
                                    x["short_id"] = json!(&id[..11.min(id.len())]);
                                    x
                                })
                                .collect();
                            c.reverse();
                            list(c)
                        }
                        "versions" => list(w.versions.get(&iid).cloned().unwrap_or_default()),
                        "notes" => list(w.notes.get(&iid).cloned().unwrap_or_default()),
                        "approvals" => {
                            let mut a = fixture("gitlab", "merge_request_approvals.json");
                            a["iid"] = json!(iid);
                            a["approved_by"] = json!(w
                                .approved_by
                                .get(&iid)
                                .cloned()
                                .unwrap_or_default()
                                .iter()
                                .map(|u| json!({"user": gl_user(u)}))
                                .collect::<Vec<_>>());
                            single(a, headers)
                        }
                        "diffs" => list(
                            w.diffs
                                .get(&iid)
                                .cloned()
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(old, new)| {
                                    let mut d = fixture("gitlab", "merge_request_diff.json");
                                    d["old_path"] = json!(old);
                                    d["new_path"] = json!(new);
                                    d
                                })
                                .collect(),
                        ),
                        _ => not_found(),
                    }
                }
                ["deployments"] => {
                    let after = q.get("updated_after").cloned().unwrap_or_default();
                    let mut d: Vec<Value> = w
                        .deployments
                        .iter()
                        .filter(|d| d["updated_at"].as_str().unwrap_or("") > after.as_str())
                        .map(|d| {
                            let mut d = d.clone();
                            // The list carries no approvals.
                            if let Some(o) = d.as_object_mut() {
                                o.remove("approvals");
                                o.remove("pending_approval_count");
                            }
                            d
                        })
                        .collect();
                    d.sort_by(|a, b| (a["updated_at"].as_str(), a["id"].as_i64()).cmp(&(b["updated_at"].as_str(), b["id"].as_i64())));
                    list(d)
                }
                ["deployments", id] => match w.deployments.iter().find(|d| d["id"].as_i64().map(|x| x.to_string()).as_deref() == Some(*id))
                {
                    Some(d) => single(d.clone(), headers),
                    None => reply(StatusCode::NOT_FOUND, &json!({"message": "404 Deployment Not Found"}), &[]),
                },
                ["protected_environments"] => list(w.protected.clone()),
                ["audit_events"] => {
                    let after = q.get("created_after").cloned().unwrap_or_default();
                    // Newest first, as GitLab lists them.
                    let mut e: Vec<Value> =
                        w.audit_events.iter().filter(|e| e["created_at"].as_str().unwrap_or("") > after.as_str()).cloned().collect();
                    e.reverse();
                    list(e)
                }
                ["repository", "commits"] => {
                    let since = q.get("since").cloned().unwrap_or_default();
                    let c: Vec<Value> = w
                        .landed
                        .iter()
                        .rev()
                        .filter(|(_, date, _)| date.as_str() >= since.as_str())
                        .map(|(id, date, _)| {
                            let mut x = fixture("gitlab", "commit.json");
                            x["id"] = json!(id);
                            x["committed_date"] = json!(date);
                            x["created_at"] = json!(date);
                            x
                        })
                        .collect();
                    list(c)
                }
                ["repository", "commits", sha_, "merge_requests"] => {
                    let iids = w.landed.iter().find(|(id, _, _)| id == sha_).map(|(_, _, m)| m.clone()).unwrap_or_default();
                    list(w.mrs.iter().filter(|m| m["iid"].as_i64().is_some_and(|i| iids.contains(&i))).cloned().collect())
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn gitea(s: &Shared, path: &str, q: &str, headers: &HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(format!("token {GITEA_TOKEN}").as_str()) {
        return reply(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "token is required", "url": "https://gitea.example.com/api/swagger"}),
            &[],
        );
    }
    let q = query(q);
    let w = s.gitea.lock().unwrap_or_else(|e| e.into_inner());
    let full = format!("/api/v1{path}");
    // Gitea serves no ETags on API lists.
    let list = |items: Vec<Value>| paged(&s.base, &full, &q, items, "limit", false, headers);
    let not_found = || {
        reply(
            StatusCode::NOT_FOUND,
            &json!({"errors": null, "message": "The target couldn't be found.", "url": "https://gitea.example.com/api/swagger"}),
            &[],
        )
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["orgs", org, "teams"] => {
            let teams: Vec<Value> = w
                .teams
                .iter()
                .filter(|((o, _), _)| o == org)
                .map(|((_, name), (id, _))| json!({"id": id, "name": name, "description": "", "permission": "write", "includes_all_repositories": false}))
                .collect();
            return if teams.is_empty() { not_found() } else { list(teams) };
        }
        ["teams", id, "members"] => {
            return match w.teams.values().find(|(i, _)| i.to_string() == *id) {
                Some((_, members)) => list(members.iter().map(|m| gt_user(m)).collect()),
                None => not_found(),
            };
        }
        _ => {}
    }
    let commit = |id: &str, date: &str| {
        let mut c = fixture("gitea", "commit.json");
        c["sha"] = json!(id);
        c["created"] = json!(date);
        c["commit"]["committer"]["date"] = json!(date);
        c["commit"]["author"]["date"] = json!(date);
        c
    };
    match parts.as_slice() {
        ["repos", o, n, rest @ ..] => {
            if format!("{o}/{n}") != w.repo {
                return not_found();
            }
            match rest {
                [] => {
                    let mut r = fixture("gitea", "repository.json");
                    r["full_name"] = json!(w.repo);
                    reply(StatusCode::OK, &r, &[])
                }
                ["pulls"] => {
                    let mut p = w.pulls.clone();
                    p.sort_by(|a, b| (b["updated_at"].as_str(), b["id"].as_i64()).cmp(&(a["updated_at"].as_str(), a["id"].as_i64())));
                    list(p)
                }
                ["pulls", num, what] => {
                    let Ok(num) = num.parse::<u64>() else { return not_found() };
                    match *what {
                        "commits" => list(
                            w.commits.get(&num).cloned().unwrap_or_default().iter().map(|c| commit(c, "2026-07-01T00:00:00Z")).collect(),
                        ),
                        "reviews" => list(w.reviews.get(&num).cloned().unwrap_or_default()),
                        "files" => list(
                            w.files
                                .get(&num)
                                .cloned()
                                .unwrap_or_default()
                                .iter()
                                .map(|f| {
                                    let mut x = fixture("gitea", "changed_file.json");
                                    x["filename"] = json!(f);
                                    x
                                })
                                .collect(),
                        ),
                        _ => not_found(),
                    }
                }
                ["commits"] => list(w.landed.iter().rev().map(|(id, date)| commit(id, date)).collect()),
                ["actions", "runs", ..] if w.no_runs_api => not_found(),
                ["actions", "runs", id] => match id.parse::<u64>().ok().and_then(|i| w.runs.get(&i)) {
                    Some(r) => reply(StatusCode::OK, r, &[]),
                    None => not_found(),
                },
                ["actions", "runs", id, "jobs"] => match id.parse::<u64>().ok().and_then(|i| w.runs.get(&i)) {
                    Some(r) => {
                        let mut j = fixture("gitea", "workflow_job.json");
                        j["run_id"] = r["id"].clone();
                        j["head_sha"] = r["head_sha"].clone();
                        j["status"] = r["status"].clone();
                        j["conclusion"] = r["conclusion"].clone();
                        reply(StatusCode::OK, &json!({"jobs": [j], "total_count": 1}), &[])
                    }
                    None => not_found(),
                },
                ["commits", sha_, "pull"] => match w.pulls.iter().find(|p| p["merge_commit_sha"].as_str() == Some(*sha_)) {
                    Some(p) => reply(StatusCode::OK, p, &[]),
                    None => not_found(),
                },
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}
