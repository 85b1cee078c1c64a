//! A local server that speaks GitHub's REST API for the sync tests: bodies from
//! `fixtures/github/` templates, `Link` pagination, ETags and 304s, rate-limit
//! headers, and faults on demand (5xx, secondary and primary rate limits, 401, 404, delays).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const TOKEN: &str = "ghp_TESTSECRETtoken0123456789abcdef";
/// The installation token the fake hands a GitHub App.
pub const INSTALLATION_TOKEN: &str = "ghs_INSTALLATIONtoken0123456789";

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/github").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or(Value::Null)
}

pub fn sha(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..40].to_string()
}

fn user(login: &str) -> Value {
    json!({"login": login, "id": login.len(), "type": "User", "site_admin": false})
}

/// What the fake GitHub holds.
#[derive(Default)]
pub struct World {
    pub repo: String,
    pub pulls: Vec<Value>,
    pub reviews: BTreeMap<u64, Vec<Value>>,
    pub pr_commits: BTreeMap<u64, Vec<Value>>,
    pub deployments: Vec<Value>,
    pub statuses: BTreeMap<i64, Vec<Value>>,
    pub commits: Vec<Value>,
    pub commit_pulls: BTreeMap<String, Vec<u64>>,
    pub approvals: BTreeMap<u64, Vec<Value>>,
    pub runs: BTreeMap<u64, Value>,
    pub environments: Vec<Value>,
    /// Runs whose approvals GitHub has garbage-collected (404).
    pub approvals_gone: Vec<u64>,
    /// Custom deployment branch policies (names) by environment.
    pub branch_policies: BTreeMap<String, Vec<String>>,
    /// Team members by `org/slug`.
    pub teams: BTreeMap<String, Vec<String>>,
    /// Files each pull request changes (`GET …/pulls/N/files`).
    pub pr_files: BTreeMap<u64, Vec<Value>>,
    pub next_id: i64,
}

impl World {
    pub fn new(repo: &str) -> World {
        World { repo: repo.into(), next_id: 1000, ..World::default() }
    }

    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A pull request; `commits` are shas; returns its number.
    pub fn pull(&mut self, number: u64, author: &str, updated_at: &str, commits: &[String]) -> u64 {
        let mut p = fixture("pull.json");
        p["id"] = json!(self.id());
        p["number"] = json!(number);
        p["title"] = json!(format!("feat: change {number}"));
        p["user"] = user(author);
        p["created_at"] = json!("2026-07-01T00:00:00Z");
        p["updated_at"] = json!(updated_at);
        p["head"]["sha"] = json!(commits.last().cloned().unwrap_or_else(|| sha(&format!("head{number}"))));
        p["head"]["ref"] = json!(format!("topic-{number}"));
        p["base"]["sha"] = json!(sha("base"));
        p["merge_commit_sha"] = json!(sha(&format!("merge{number}")));
        p["commits"] = json!(commits.len());
        let list: Vec<Value> = commits
            .iter()
            .map(|c| {
                let mut v = fixture("pull_commit.json");
                v["sha"] = json!(c);
                v
            })
            .collect();
        self.pr_commits.insert(number, list);
        self.pulls.retain(|x| x["number"] != number);
        self.pulls.push(p);
        number
    }

    /// Gives a pull request the title its author chose.
    pub fn retitle(&mut self, number: u64, title: &str) {
        if let Some(p) = self.pulls.iter_mut().find(|p| p["number"] == number) {
            p["title"] = json!(title);
        }
    }

    pub fn merge(&mut self, number: u64, by: &str, at: &str, merge_sha: &str) {
        if let Some(p) = self.pulls.iter_mut().find(|p| p["number"] == number) {
            p["state"] = json!("closed");
            p["merged"] = json!(true);
            p["merged_at"] = json!(at);
            p["closed_at"] = json!(at);
            p["updated_at"] = json!(at);
            p["merged_by"] = user(by);
            p["merge_commit_sha"] = json!(merge_sha);
        }
    }

    pub fn review(&mut self, number: u64, reviewer: &str, state: &str, commit_id: &str, at: &str) -> i64 {
        let id = self.id();
        let mut r = fixture("review.json");
        r["id"] = json!(id);
        r["user"] = user(reviewer);
        r["state"] = json!(state);
        r["commit_id"] = json!(commit_id);
        r["submitted_at"] = json!(at);
        self.reviews.entry(number).or_default().push(r);
        if let Some(p) = self.pulls.iter_mut().find(|p| p["number"] == number) {
            if p["updated_at"].as_str().unwrap_or("") < at {
                p["updated_at"] = json!(at);
            }
        }
        id
    }

    pub fn deployment(&mut self, sha_: &str, refname: &str, env: &str, at: &str) -> i64 {
        let id = self.id();
        let mut d = fixture("deployment.json");
        d["id"] = json!(id);
        d["sha"] = json!(sha_);
        d["ref"] = json!(refname);
        d["environment"] = json!(env);
        d["created_at"] = json!(at);
        self.deployments.push(d);
        id
    }

    pub fn status(&mut self, deployment: i64, state: &str, at: &str, log_url: Option<&str>) -> i64 {
        let id = self.id();
        let mut s = fixture("deployment_status.json");
        s["id"] = json!(id);
        s["state"] = json!(state);
        s["created_at"] = json!(at);
        if let Some(u) = log_url {
            s["log_url"] = json!(u);
            s["target_url"] = json!(u);
        }
        self.statuses.entry(deployment).or_default().push(s);
        id
    }

    pub fn landed(&mut self, sha_: &str, date: &str, pulls: &[u64]) {
        let mut c = fixture("pull_commit.json");
        c["sha"] = json!(sha_);
        c["commit"]["committer"]["date"] = json!(date);
        self.commits.push(c);
        self.commit_pulls.insert(sha_.to_string(), pulls.to_vec());
    }

    /// The files pull request `number` changes: (filename, status, previous
    /// filename for a rename), in GitHub's shape.
    pub fn files(&mut self, number: u64, files: &[(&str, &str, Option<&str>)]) {
        let list = files
            .iter()
            .map(|(name, status, previous)| {
                let mut f = fixture("pull_file.json");
                f["filename"] = json!(name);
                f["status"] = json!(status);
                if let Some(p) = previous {
                    f["previous_filename"] = json!(p);
                }
                f
            })
            .collect();
        self.pr_files.insert(number, list);
    }

    /// A workflow run (`GET /repos/R/actions/runs/ID`): who started it, who re-ran it, from which branch.
    pub fn run(&mut self, id: u64, actor: &str, triggering_actor: &str, head_branch: &str) {
        let mut r = fixture("workflow_run.json");
        r["id"] = json!(id);
        r["actor"] = user(actor);
        r["triggering_actor"] = user(triggering_actor);
        r["head_branch"] = json!(head_branch);
        r["html_url"] = json!(format!("https://github.com/{}/actions/runs/{id}", self.repo));
        self.runs.insert(id, r);
    }

    /// An environment with required reviewers (logins), a wait timer (minutes) and
    /// custom branch policies; replaces one of the same name.
    pub fn environment(&mut self, name: &str, reviewers: &[&str], wait_timer: u64) {
        let mut e = fixture("environments.json")["environments"][0].clone();
        e["name"] = json!(name);
        e["protection_rules"][0]["wait_timer"] = json!(wait_timer);
        e["protection_rules"][1]["reviewers"] =
            Value::Array(reviewers.iter().map(|r| json!({"type": "User", "reviewer": user(r)})).collect());
        self.environments.retain(|x| x["name"] != name);
        self.environments.push(e);
    }

    /// Sets who created a deployment (Actions deployments: `github-actions[bot]`).
    pub fn deployment_creator(&mut self, deployment: i64, login: &str) {
        if let Some(d) = self.deployments.iter_mut().find(|d| d["id"] == deployment) {
            d["creator"] = user(login);
        }
    }

    pub fn approval(&mut self, run: u64, by: &str, comment: &str) {
        let mut a = fixture("approval.json");
        a["user"] = user(by);
        a["comment"] = json!(comment);
        self.approvals.entry(run).or_default().push(a);
    }
}

/// Faults to serve, each once per count.
#[derive(Default)]
pub struct Faults {
    pub bad_gateway: u32,
    pub secondary_limit: u32,
    pub primary_exhausted: u32,
    pub delay_ms: u64,
    /// `/graphql` answers 404, as behind a proxy or a GitHub Enterprise setup without it.
    pub graphql_missing: bool,
    /// Random faults on a share of all requests (see [`Chaos`]).
    pub chaos: Option<Chaos>,
}

/// What can go wrong with a request, each as GitHub or a proxy in front of
/// it does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Status500,
    Status502,
    Status503,
    /// 403 with `retry-after` (a secondary rate limit).
    SecondaryLimit,
    /// 429 with `retry-after`.
    TooMany,
    /// 200 with the JSON cut in half (the length says so).
    TruncatedJson,
    /// 200 whose body is not JSON at all.
    InvalidJson,
    /// The body trickles in, in small delayed chunks.
    SlowBody,
    /// The connection drops mid-body.
    Dropped,
}

pub const FAULTS: [Fault; 9] = [
    Fault::Status500,
    Fault::Status502,
    Fault::Status503,
    Fault::SecondaryLimit,
    Fault::TooMany,
    Fault::TruncatedJson,
    Fault::InvalidJson,
    Fault::SlowBody,
    Fault::Dropped,
];

/// Faults at random (a seeded xorshift, so a failing seed replays): each
/// request has `percent` chances in 100 of one of [`FAULTS`].
pub struct Chaos {
    pub state: u64,
    pub percent: u64,
    /// How many of each were served.
    pub served: BTreeMap<Fault, u64>,
}

impl Chaos {
    pub fn new(seed: u64, percent: u64) -> Chaos {
        Chaos { state: seed.max(1), percent, served: BTreeMap::new() }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn roll(&mut self) -> Option<Fault> {
        if self.next() % 100 >= self.percent {
            return None;
        }
        let f = FAULTS[(self.next() % FAULTS.len() as u64) as usize];
        *self.served.entry(f).or_default() += 1;
        Some(f)
    }
}

/// The response a chaotic server sends instead of (or made of) `resp`.
async fn chaotic(fault: Fault, resp: Response) -> Response {
    let plain = |status: StatusCode, body: &'static str, extra: &[(&str, &str)]| {
        let mut r = Response::builder().status(status);
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.body(Body::from(body)).unwrap_or_default()
    };
    match fault {
        Fault::Status500 => plain(StatusCode::INTERNAL_SERVER_ERROR, "{\"message\":\"Server Error\"}", &[]),
        Fault::Status502 => plain(StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>", &[]),
        Fault::Status503 => plain(StatusCode::SERVICE_UNAVAILABLE, "{\"message\":\"Service Unavailable\"}", &[]),
        Fault::SecondaryLimit => plain(
            StatusCode::FORBIDDEN,
            "{\"message\":\"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.\"}",
            &[("retry-after", "0"), ("content-type", "application/json")],
        ),
        Fault::TooMany => plain(StatusCode::TOO_MANY_REQUESTS, "{\"message\":\"Too Many Requests\"}", &[("retry-after", "0")]),
        Fault::InvalidJson => plain(StatusCode::OK, "<html><body>Whoa there!</body></html>", &[("content-type", "application/json")]),
        Fault::TruncatedJson | Fault::SlowBody | Fault::Dropped => {
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap_or_default();
            let mut parts = parts;
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            parts.headers.remove(axum::http::header::ETAG);
            let body = match fault {
                Fault::TruncatedJson => Body::from(bytes.slice(..bytes.len() / 2)),
                Fault::SlowBody => {
                    let chunks: Vec<bytes::Bytes> = bytes.chunks(64).map(bytes::Bytes::copy_from_slice).collect();
                    Body::from_stream(futures_util::stream::unfold(chunks.into_iter(), |mut it| async move {
                        let chunk = it.next()?;
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        Some((Ok::<_, std::io::Error>(chunk), it))
                    }))
                }
                _ => {
                    let half = bytes.slice(..bytes.len() / 2);
                    Body::from_stream(futures_util::stream::iter(vec![
                        Ok(half),
                        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped")),
                    ]))
                }
            };
            Response::from_parts(parts, body)
        }
    }
}

pub struct Shared {
    pub world: Mutex<World>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<Vec<(u16, String)>>,
    pub remaining: Mutex<u64>,
    pub base: String,
}

pub struct Fake {
    pub url: String,
    pub shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Fake {
    pub fn start(world: World) -> Fake {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            remaining: Mutex::new(5000),
            base: url.clone(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { url, shared, _rt: rt }
    }

    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = self.shared.world.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut w)
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        let mut x = self.shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut x)
    }

    /// (status, path) of every request so far; clears the log.
    pub fn take_log(&self) -> Vec<(u16, String)> {
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn json_response(status: StatusCode, body: &Value, extra: &[(&str, String)]) -> Response {
    let mut r = Response::builder().status(status).header("content-type", "application/json; charset=utf-8");
    for (k, v) in extra {
        r = r.header(*k, v);
    }
    r.body(Body::from(body.to_string())).unwrap_or_default()
}

fn query(q: &str) -> BTreeMap<String, String> {
    q.split('&').filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let q = req.uri().query().unwrap_or("").to_string();
    let headers: HeaderMap = req.headers().clone();
    let post = req.method() == axum::http::Method::POST;
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let delay = s.faults.lock().map(|f| f.delay_ms).unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let fault = s.faults.lock().ok().and_then(|mut f| f.chaos.as_mut().and_then(Chaos::roll));
    let resp = if post && path.starts_with("/app/installations/") && path.ends_with("/access_tokens") {
        app_token(&headers)
    } else if post && (path == "/graphql" || path == "/api/graphql") {
        graphql(&s, &headers, &body)
    } else {
        respond(&s, &path, &q, &headers)
    };
    let resp = match fault {
        Some(f) => chaotic(f, resp).await,
        None => resp,
    };
    s.log.lock().unwrap_or_else(|e| e.into_inner()).push((resp.status().as_u16(), if q.is_empty() { path } else { format!("{path}?{q}") }));
    resp
}

/// A GitHub App exchanges its JWT (RS256, three base64url parts) for an installation token.
fn app_token(headers: &HeaderMap) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let jwt = auth.strip_prefix("Bearer ").unwrap_or("");
    if jwt.split('.').count() != 3 {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"message": "A JSON web token could not be decoded"}), &[]);
    }
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json_response(
        StatusCode::CREATED,
        &json!({"token": INSTALLATION_TOKEN, "expires_at": expires, "permissions": {"pull_requests": "read", "deployments": "read"}, "repository_selection": "selected"}),
        &[],
    )
}

fn authorized(headers: &HeaderMap) -> bool {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    [TOKEN, INSTALLATION_TOKEN].iter().any(|t| auth == format!("Bearer {t}") || auth == format!("token {t}"))
}

/// The pull-request query git-audit sends, answered from the world in GraphQL's shape.
fn graphql(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    if !authorized(headers) {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"message": "Bad credentials"}), &[]);
    }
    {
        let mut f = s.faults.lock().unwrap_or_else(|e| e.into_inner());
        if f.graphql_missing {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
                &[],
            );
        }
        if f.bad_gateway > 0 {
            f.bad_gateway -= 1;
            return Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::from("bad gateway")).unwrap_or_default();
        }
        if f.primary_exhausted > 0 {
            // GraphQL reports an exhausted limit as 200 with an error body.
            f.primary_exhausted -= 1;
            let reset = (chrono::Utc::now().timestamp() + 1).to_string();
            return json_response(
                StatusCode::OK,
                &json!({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]}),
                &[("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset)],
            );
        }
    }
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let vars = &req["variables"];
    let world = s.world.lock().unwrap_or_else(|e| e.into_inner());
    if format!("{}/{}", vars["owner"].as_str().unwrap_or(""), vars["name"].as_str().unwrap_or("")) != world.repo {
        return json_response(
            StatusCode::OK,
            &json!({"data": {"repository": null}, "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a Repository"}]}),
            &[],
        );
    }
    let template = fixture("graphql_pull_requests.json");
    let node_template = template["data"]["repository"]["pullRequests"]["nodes"][0].clone();
    let mut pulls = world.pulls.clone();
    pulls.sort_by(|a, b| b["updated_at"].to_string().cmp(&a["updated_at"].to_string()));
    let start: usize = vars["after"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = pulls
        .iter()
        .skip(start)
        .take(50)
        .map(|p| {
            let n = p["number"].as_u64().unwrap_or(0);
            let merged = p["merged"] == true;
            let mut node = node_template.clone();
            node["number"] = json!(n);
            node["title"] = p["title"].clone();
            node["state"] = json!(if merged { "MERGED" } else if p["state"] == "open" { "OPEN" } else { "CLOSED" });
            node["isDraft"] = p["draft"].clone();
            node["merged"] = json!(merged);
            for (g, r) in [("mergedAt", "merged_at"), ("createdAt", "created_at"), ("updatedAt", "updated_at"), ("closedAt", "closed_at"), ("url", "html_url")] {
                node[g] = p[r].clone();
            }
            node["mergeCommit"] = if merged { json!({"oid": p["merge_commit_sha"]}) } else { Value::Null };
            node["author"] = json!({"login": p["user"]["login"]});
            node["mergedBy"] = if p["merged_by"].is_null() { Value::Null } else { json!({"login": p["merged_by"]["login"]}) };
            node["baseRefName"] = p["base"]["ref"].clone();
            node["baseRefOid"] = p["base"]["sha"].clone();
            node["headRefName"] = p["head"]["ref"].clone();
            node["headRefOid"] = p["head"]["sha"].clone();
            let commits = world.pr_commits.get(&n).cloned().unwrap_or_default();
            node["commits"] = json!({"totalCount": commits.len(), "nodes": commits.iter().take(100).map(|c| json!({"commit": {"oid": c["sha"]}})).collect::<Vec<_>>()});
            let reviews = world.reviews.get(&n).cloned().unwrap_or_default();
            node["reviews"] = json!({"totalCount": reviews.len(), "nodes": reviews.iter().take(100).map(|r| json!({
                "databaseId": r["id"], "state": r["state"], "submittedAt": r["submitted_at"], "url": r["html_url"],
                "authorAssociation": r["author_association"], "author": {"login": r["user"]["login"]}, "commit": {"oid": r["commit_id"]}
            })).collect::<Vec<_>>()});
            node
        })
        .collect();
    let end = start + page.len();
    let mut out = template;
    out["data"]["repository"]["pullRequests"]["nodes"] = Value::Array(page);
    out["data"]["repository"]["pullRequests"]["pageInfo"] = json!({"hasNextPage": end < pulls.len(), "endCursor": end.to_string()});
    json_response(
        StatusCode::OK,
        &out,
        &[("x-ratelimit-remaining", "4999".into()), ("x-ratelimit-reset", (chrono::Utc::now().timestamp() + 3600).to_string())],
    )
}

fn respond(s: &Shared, path: &str, q: &str, headers: &HeaderMap) -> Response {
    if !authorized(headers) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            &[],
        );
    }
    {
        let mut f = s.faults.lock().unwrap_or_else(|e| e.into_inner());
        if f.bad_gateway > 0 {
            f.bad_gateway -= 1;
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from("<html><body>502 Bad Gateway</body></html>"))
                .unwrap_or_default();
        }
        if f.secondary_limit > 0 {
            f.secondary_limit -= 1;
            return json_response(
                StatusCode::FORBIDDEN,
                &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}),
                &[("retry-after", "1".into())],
            );
        }
        if f.primary_exhausted > 0 {
            f.primary_exhausted -= 1;
            let reset = chrono::Utc::now().timestamp() + 1;
            return json_response(
                StatusCode::FORBIDDEN,
                &json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
                &[("x-ratelimit-limit", "5000".into()), ("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset.to_string())],
            );
        }
    }
    let path = path.strip_prefix("/api/v3").unwrap_or(path);
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let world = s.world.lock().unwrap_or_else(|e| e.into_inner());
    let not_found =
        || json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}), &[]);
    let qs = query(q);
    // GET /orgs/{org}/teams/{slug}/members, paged like GitHub.
    let team = match segs.as_slice() {
        ["orgs", org, "teams", slug, "members"] => Some(world.teams.get(&format!("{org}/{slug}")).cloned()),
        _ => None,
    };
    let repo_route = segs.len() >= 3 && segs[0] == "repos" && format!("{}/{}", segs[1], segs[2]) == world.repo;
    if team.is_none() && !repo_route {
        return not_found();
    }
    let rest: &[&str] = if repo_route { &segs[3..] } else { &[] };
    let by_desc = |mut v: Vec<Value>, key: &str| {
        v.sort_by(|a, b| b[key].to_string().cmp(&a[key].to_string()));
        v
    };
    let (body, paged) = if let Some(members) = team {
        match members {
            Some(m) => (Value::Array(m.iter().map(|l| user(l)).collect()), true),
            None => return not_found(),
        }
    } else {
        match rest {
            [] => {
                let mut r = fixture("repository.json");
                r["full_name"] = json!(world.repo);
                (r, false)
            }
            ["pulls"] => (Value::Array(by_desc(world.pulls.clone(), "updated_at")), true),
            ["pulls", n] => match world.pulls.iter().find(|p| p["number"].as_u64().map(|x| x.to_string()).as_deref() == Some(*n)) {
                Some(p) => (p.clone(), false),
                None => return not_found(),
            },
            ["pulls", n, "commits"] => {
                let list: Vec<Value> = n.parse::<u64>().ok().and_then(|n| world.pr_commits.get(&n)).cloned().unwrap_or_default();
                (Value::Array(list.into_iter().take(250).collect()), true)
            }
            // GitHub lists at most 3,000 files.
            ["pulls", n, "files"] => {
                let list: Vec<Value> = n.parse::<u64>().ok().and_then(|n| world.pr_files.get(&n)).cloned().unwrap_or_default();
                (Value::Array(list.into_iter().take(3000).collect()), true)
            }
            ["pulls", n, "reviews"] => {
                (Value::Array(n.parse::<u64>().ok().and_then(|n| world.reviews.get(&n)).cloned().unwrap_or_default()), true)
            }
            ["deployments"] => {
                let mut v = world.deployments.clone();
                v.sort_by_key(|d| -d["id"].as_i64().unwrap_or(0));
                (Value::Array(v), true)
            }
            ["deployments", id] => match world.deployments.iter().find(|d| d["id"].as_i64().map(|x| x.to_string()).as_deref() == Some(*id))
            {
                Some(d) => (d.clone(), false),
                None => return not_found(),
            },
            ["deployments", id, "statuses"] => {
                let mut v = id.parse::<i64>().ok().and_then(|i| world.statuses.get(&i)).cloned().unwrap_or_default();
                v.sort_by_key(|s| -s["id"].as_i64().unwrap_or(0));
                (Value::Array(v), true)
            }
            ["commits"] => {
                let since = qs.get("since").cloned().unwrap_or_default();
                let v: Vec<Value> = world
                    .commits
                    .iter()
                    .filter(|c| c["commit"]["committer"]["date"].as_str().unwrap_or("") >= since.as_str())
                    .cloned()
                    .collect();
                let mut v = v;
                v.sort_by(|a, b| b["commit"]["committer"]["date"].to_string().cmp(&a["commit"]["committer"]["date"].to_string()));
                (Value::Array(v), true)
            }
            ["commits", sha, "pulls"] => {
                let numbers = world.commit_pulls.get(*sha).cloned().unwrap_or_default();
                (Value::Array(world.pulls.iter().filter(|p| numbers.iter().any(|n| p["number"] == *n)).cloned().collect()), false)
            }
            ["environments"] => (json!({"total_count": world.environments.len(), "environments": world.environments}), false),
            ["environments", env, "deployment-branch-policies"] => {
                let names = world.branch_policies.get(*env).cloned().unwrap_or_default();
                let policies: Vec<Value> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| json!({"id": 361471 + i, "node_id": "MDE2OkdhdGVCcmFuY2hQb2xpY3kzNjE0NzE=", "name": n, "type": "branch"}))
                    .collect();
                (json!({"total_count": policies.len(), "branch_policies": policies}), false)
            }
            ["actions", "runs", run] => match run.parse::<u64>().ok().and_then(|r| world.runs.get(&r)).cloned() {
                Some(r) => (r, false),
                None => return not_found(),
            },
            ["actions", "runs", run, "approvals"] if run.parse::<u64>().is_ok_and(|r| world.approvals_gone.contains(&r)) => {
                return not_found()
            }
            ["actions", "runs", run, "approvals"] => {
                (Value::Array(run.parse::<u64>().ok().and_then(|r| world.approvals.get(&r)).cloned().unwrap_or_default()), false)
            }
            _ => return not_found(),
        }
    };
    drop(world);
    // Pagination with Link headers, as GitHub does.
    let mut extra: Vec<(&str, String)> = Vec::new();
    let body = if paged {
        let per_page: usize = qs.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).clamp(1, 100);
        let page: usize = qs.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
        let all = body.as_array().cloned().unwrap_or_default();
        let last = all.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = all.into_iter().skip((page - 1) * per_page).take(per_page).collect();
        let link = |p: usize| {
            let mut params: Vec<String> = qs.iter().filter(|(k, _)| *k != "page").map(|(k, v)| format!("{k}={v}")).collect();
            params.push(format!("page={p}"));
            format!("<{}{}?{}>", s.base, path, params.join("&"))
        };
        if page < last {
            extra.push(("link", format!("{}; rel=\"next\", {}; rel=\"last\"", link(page + 1), link(last))));
        }
        Value::Array(items)
    } else {
        body
    };
    let text = body.to_string();
    let etag = format!("W/\"{}\"", hex::encode(Sha256::digest(text.as_bytes())));
    let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let remaining = *s.remaining.lock().unwrap_or_else(|e| e.into_inner());
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("x")))
            .header("x-ratelimit-remaining", remaining.to_string())
            .header("x-ratelimit-reset", reset)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let remaining = {
        let mut r = s.remaining.lock().unwrap_or_else(|e| e.into_inner());
        *r = r.saturating_sub(1);
        *r
    };
    extra.push(("etag", etag));
    extra.push(("x-ratelimit-limit", "5000".into()));
    extra.push(("x-ratelimit-remaining", remaining.to_string()));
    extra.push(("x-ratelimit-reset", reset));
    json_response(StatusCode::OK, &body, &extra)
}
