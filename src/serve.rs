//! `git-audit serve`: a read-only web UI over the ledger — the dashboard, the
//! reports as pages (the same renderer as `report --format html`), every
//! entry with its inclusion proof, and JSON behind every page.
//!
//! Safe by default: loopback only unless a bearer token is set; GET and HEAD
//! only; no scripts; nothing loaded from the network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::facts::DeploymentHistory;
use crate::ledger::{Ledger, LedgerFiles};
use crate::report::render::{escape, page, Links, Page, Provenance};
use crate::report::{self, Document, Section};
use crate::rule::Rule;
use crate::time::Timestamp;

/// What `serve` needs.
#[derive(Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// The bearer token every request must carry, when set.
    pub token: Option<String>,
    pub ledger: LedgerFiles,
    pub policy: Option<PathBuf>,
    /// The repository (for commit ancestry in reports), when serving from one.
    pub repo: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could read the ledger\nHint: add --token-file PATH or --token-env NAME (requests then need `Authorization: Bearer <token>`), or listen on 127.0.0.1"
    )]
    OpenWithoutToken(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("{0}")]
    Runtime(std::io::Error),
}

/// A non-loopback address needs a token.
pub fn check_listen(listen: &SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if listen.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(ServeError::OpenWithoutToken(*listen))
    }
}

const NAV: &[(&str, &str)] =
    &[("/", "Dashboard"), ("/deployments", "Deployments"), ("/compliance", "Compliance"), ("/dora", "DORA"), ("/pushes", "Pushes")];

/// Serves until interrupted. `ready` is called with the bound address.
pub fn run(opts: Options, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    check_listen(&opts.listen, opts.token.as_deref())?;
    // The ledger must open now: a wrong location is an error at start, not a 500 later.
    Ledger::open(&opts.ledger)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen).await.map_err(|source| ServeError::Bind { addr: opts.listen, source })?;
        let addr = listener.local_addr().map_err(ServeError::Runtime)?;
        ready(addr);
        let state = Arc::new(opts);
        let app = axum::Router::new()
            .route("/", axum::routing::get(dashboard))
            .route("/search", axum::routing::get(search))
            .route("/entry/{seq}", axum::routing::get(entry))
            .route("/trace/{commit}", axum::routing::get(trace))
            .route("/api/entry/{seq}", axum::routing::get(entry_json))
            .route("/api/trace/{commit}", axum::routing::get(trace_json))
            .route("/api/{report}", axum::routing::get(report_json))
            .route("/{report}", axum::routing::get(report_page))
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(ServeError::Runtime)
    })
}

type Shared = Arc<Options>;

/// GET and HEAD only; the bearer token when one is set.
async fn guard(State(opts): State<Shared>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "read-only: GET and HEAD only\n").into_response();
    }
    // Without a token the server trusts loopback alone: a page elsewhere could
    // point a name it controls at 127.0.0.1 (DNS rebinding) and read the
    // ledger through the browser, so only loopback names are served.
    if opts.token.is_none() {
        let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !loopback_host(host) {
            return (
                StatusCode::FORBIDDEN,
                format!(
                    "host `{host}` is not served: open http://127.0.0.1:{}/ (or set a token to serve other names)\n",
                    opts.listen.port()
                ),
            )
                .into_response();
        }
    }
    if let Some(token) = opts.token.as_deref() {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token is required\n").into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'"),
    );
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("no-referrer"));
    resp
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The window of a page: `?since=&until=&env=`.
#[derive(Debug, Default, serde::Deserialize)]
struct WindowQuery {
    since: Option<String>,
    until: Option<String>,
    env: Option<String>,
    /// `/compliance`: `violation` or `unverified` (could not verify).
    kind: Option<String>,
    /// `/compliance`: one rule id.
    rule: Option<String>,
    /// `/deployments`: `failed` (failed or rolled back: what the change failure rate counts).
    status: Option<String>,
    /// `/pushes`: `refused` or `accepted`.
    decision: Option<String>,
}

struct Window {
    since: Timestamp,
    until: Timestamp,
    env: String,
    /// As asked (for the form).
    since_text: String,
    until_text: String,
    /// Filters (see [`WindowQuery`]).
    kind: Option<String>,
    rule: Option<String>,
    status: Option<String>,
    decision: Option<String>,
}

impl WindowQuery {
    /// With no window asked for: the last 90 days when the ledger has entries
    /// in them, else the 90 days up to its newest entry — and a sentence
    /// saying which was chosen.
    fn resolve_finding_data(&self, ledger: &Ledger, facts: &DeploymentHistory) -> Result<(Window, Option<String>), String> {
        if self.since.is_some() || self.until.is_some() {
            return Ok((self.resolve()?, None));
        }
        let w = self.resolve()?;
        // The newest deployment to the environment (its own time, not when it
        // was synced), else the newest entry.
        let newest_deployment = facts.newest(&w.env);
        let head = ledger.head().map_err(|e| e.to_string())?;
        let newest = match (newest_deployment, head.size) {
            (Some(t), _) => Some(t),
            (None, 0) => None,
            (None, n) => ledger.entry(n - 1).map_err(|e| e.to_string())?.and_then(|e| Timestamp::parse(&e.time).ok()),
        };
        match newest {
            Some(t) if t < w.since => {
                let day = t.canonical().get(..10).unwrap_or_default().to_string();
                let until = Timestamp::until(&day).map_err(|e| e.to_string())?;
                let since = Timestamp::from_datetime(until.datetime() - chrono::Duration::days(90));
                let chose =
                    format!("Nothing in the last 90 days: showing the 90 days up to the newest data ({day}). Choose another window above.");
                Ok((
                    Window { since_text: since.canonical().get(..10).unwrap_or_default().to_string(), until_text: day, since, until, ..w },
                    Some(chose),
                ))
            }
            Some(_) => Ok((w, Some("Showing the last 90 days.".into()))),
            None => Ok((w, Some("The ledger is empty: nothing recorded yet.".into()))),
        }
    }

    fn resolve(&self) -> Result<Window, String> {
        let since = Timestamp::since(self.since.as_deref().unwrap_or("90d")).map_err(|e| e.to_string())?;
        let until = match self.until.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => Timestamp::until(u).map_err(|e| e.to_string())?,
            None => Timestamp::open_end(),
        };
        if until <= since {
            return Err(format!(
                "the window is empty: until {} is not after since {since}; swap them, or leave until empty for a window open to now",
                self.until.as_deref().unwrap_or_default()
            ));
        }
        let env = self.env.clone().filter(|e| !e.is_empty()).unwrap_or_else(|| "production".into());
        crate::policy::check_environment_pattern(&env).map_err(|e| format!("env: {e}"))?;
        Ok(Window {
            kind: self.kind.clone().filter(|k| !k.is_empty()),
            rule: self.rule.clone().filter(|k| !k.is_empty()),
            status: self.status.clone().filter(|k| !k.is_empty()),
            decision: self.decision.clone().filter(|k| !k.is_empty()),
            since,
            until,
            env,
            since_text: self.since.clone().unwrap_or_else(|| "90d".into()),
            until_text: self.until.clone().unwrap_or_default(),
        })
    }
}

/// The ledger, the policy and the repository, opened for one request.
struct Ctx {
    ledger: Ledger,
    /// The deployment history, read once for the whole request.
    facts: DeploymentHistory,
    policy: Option<crate::policy::Policy>,
    repo: Option<crate::git::Repo>,
    provenance: Provenance,
    /// Whether `provenance.ground` has been checked for this request.
    grounded: bool,
    links: Links,
}

fn open(opts: &Options) -> Result<Ctx, String> {
    let ledger = Ledger::open(&opts.ledger).map_err(|e| e.to_string())?;
    let policy = match &opts.policy {
        Some(p) if p.exists() => Some(crate::policy::Policy::load(p).map_err(|e| e.to_string())?),
        _ => None,
    };
    // The process's repository (serve was started in it), opened per request.
    let repo = opts.repo.as_ref().and_then(|_| crate::git::Repo::open_from_env().ok());
    // The ground is checked once per request, with the entries the answer cites (`cite`).
    let provenance = Provenance::unchecked(&ledger, policy.as_ref().map(|p| p.digest.as_str())).map_err(|e| e.to_string())?;
    let facts = DeploymentHistory::read(&ledger).map_err(|e| e.to_string())?;
    let links = Links::new(ledger.forge_web_roots().map_err(|e| e.to_string())?, facts.pages());
    Ok(Ctx { ledger, facts, policy, repo, provenance, grounded: false, links })
}

/// Runs blocking ledger work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(format!("the request stopped: {e}")))
}

/// What a page shows besides its report: where it came from and what it links to.
struct Served {
    provenance: Provenance,
    links: Links,
}

impl Ctx {
    /// Checks the ground of this answer, with the entries it cites.
    fn cite(mut self, json: &serde_json::Value) -> Ctx {
        self.provenance.ground = match self.ledger.ground(&crate::ledger::ground::cited(json)) {
            Ok(g) => g,
            Err(e) => crate::ledger::ground::Ground { problems: vec![format!("the check could not run: {e}")], ..Default::default() },
        };
        self.grounded = true;
        self
    }

    /// A page that cites nothing still stands on a checked ledger.
    fn grounded(self) -> Ctx {
        if self.grounded {
            self
        } else {
            self.cite(&serde_json::Value::Null)
        }
    }

    fn served(self) -> Served {
        let ctx = self.grounded();
        Served { provenance: ctx.provenance, links: ctx.links }
    }

    /// A page reached from a windowed page (an entry, a commit): its links
    /// keep the window it was reached with, when there was one.
    fn served_keeping(self, q: &WindowQuery) -> Result<Served, String> {
        match q.since.is_some() || q.until.is_some() || q.env.is_some() {
            true => Ok(self.served_over(&q.resolve()?)),
            false => Ok(self.served()),
        }
    }

    /// For a page over a window: environments link to their dashboard over it.
    fn served_over(self, w: &Window) -> Served {
        let ctx = self.grounded();
        Served { provenance: ctx.provenance, links: ctx.links.with_window(&w.since_text, &w.until_text, &w.env) }
    }
}

fn html(doc: &Document, before: String, after: String, served: &Served) -> Response {
    // The navigation keeps the page's window.
    let query = served.links.window_query();
    let hrefs: Vec<(String, &str)> = NAV.iter().map(|(h, l)| (format!("{h}{query}"), *l)).collect();
    let nav = hrefs.iter().map(|(h, l)| (h.as_str(), *l)).collect();
    let body = page(doc, &Page { nav, before, after, provenance: Some(&served.provenance), links: Some(&served.links) });
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn failure(status: StatusCode, msg: &str) -> Response {
    let doc = Document { title: "Not available".into(), ..Document::default() };
    let body = page(&doc, &Page { nav: NAV.to_vec(), before: format!("<p class=\"bad\">{}</p>", escape(msg)), ..Page::default() });
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn json_response(mut v: serde_json::Value, provenance: &Provenance) -> Response {
    if let Some(obj) = v.as_object_mut() {
        obj.insert("provenance".into(), serde_json::to_value(provenance).unwrap_or_default());
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::text::json_safe(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())).into_owned(),
    )
        .into_response()
}

/// One report by name, as a document.
fn report_doc(ctx: &Ctx, name: &str, w: &Window) -> Result<Document, String> {
    let e = |e: report::ReportError| e.to_string();
    match name {
        "deployments" => {
            let doc = report::deployments::deployments(
                &ctx.ledger,
                &ctx.facts,
                ctx.repo.as_ref(),
                &w.env,
                &w.since,
                &w.until,
                ctx.policy.as_ref(),
            )
            .map_err(e)?;
            match w.status.as_deref() {
                None => Ok(doc),
                Some("failed") => Ok(failed_only(doc)),
                Some(other) => Err(format!("no deployment filter status={other}: the filter is status=failed")),
            }
        }
        "dora" => report::dora::dora(&ctx.facts, ctx.repo.as_ref(), &w.env, &w.since, &w.until).map_err(e),
        "compliance" => {
            let (_, all) =
                report::compliance::compliance(&ctx.ledger, &ctx.facts, ctx.repo.as_ref(), &w.since, ctx.policy.as_ref()).map_err(e)?;
            let (kept, filter): (Vec<_>, Option<String>) = match (w.kind.as_deref(), w.rule.as_deref()) {
                (None, None) => (all, None),
                (Some("violation"), None) => (all.into_iter().filter(|f| !f.rule.is_unverified()).collect(), Some("violations".into())),
                (Some("unverified"), None) => {
                    (all.into_iter().filter(|f| f.rule.is_unverified()).collect(), Some("could not verify".into()))
                }
                (None, Some(r)) if Rule::from_id(r).is_some() => {
                    (all.into_iter().filter(|f| f.rule.id() == r).collect(), Some(format!("rule {r}")))
                }
                (None, Some(r)) => return Err(format!("no rule `{r}`: `git-audit rules` lists them")),
                (Some(k), None) => return Err(format!("no finding kind `{k}`: the kinds are violation and unverified")),
                (Some(_), Some(_)) => return Err("filter by kind or by rule, not both".into()),
            };
            Ok(report::compliance::document(&w.since, &kept, filter.as_deref()))
        }
        "pushes" => pushes(&ctx.ledger, w),
        other => Err(format!("no report `{other}`: the reports are deployments, dora, compliance and pushes")),
    }
}

/// The pushes report over a page's window (`?decision=` narrows it).
fn pushes(ledger: &Ledger, w: &Window) -> Result<Document, String> {
    let decision = match w.decision.as_deref() {
        None => None,
        Some("refused") => Some(report::pushes::Decision::Refused),
        Some("accepted") => Some(report::pushes::Decision::Accepted),
        Some(other) => return Err(format!("no push filter decision={other}: the filters are decision=refused and decision=accepted")),
    };
    report::pushes::pushes(ledger, &w.since, &w.until, decision).map_err(|e| e.to_string())
}

/// The deployments report narrowed to what the change failure rate counts:
/// failed deployments and those rolled back (their commits with them).
fn failed_only(mut doc: Document) -> Document {
    let deployments = doc.json["deployments"].as_array().cloned().unwrap_or_default();
    let keep: Vec<bool> =
        deployments.iter().map(|d| matches!(d["status"].as_str(), Some("failure" | "error")) || !d["rolled_back_by"].is_null()).collect();
    let names: std::collections::BTreeSet<String> =
        deployments.iter().zip(&keep).filter(|(_, k)| **k).filter_map(|(d, _)| d["id"].as_str().map(str::to_string)).collect();
    if let Some(s) = doc.sections.get_mut(0) {
        let mut i = 0;
        s.rows.retain(|_| {
            i += 1;
            keep.get(i - 1).copied().unwrap_or(false)
        });
        if let Some(raw) = s.raw.as_mut() {
            let mut i = 0;
            raw.retain(|_| {
                i += 1;
                keep.get(i - 1).copied().unwrap_or(false)
            });
        }
    }
    if let Some(s) = doc.sections.get_mut(1) {
        s.rows.retain(|r| r.first().is_some_and(|d| names.contains(d)));
        if let Some(raw) = s.raw.as_mut() {
            raw.retain(|r| r.first().is_some_and(|d| names.contains(d)));
        }
    }
    doc.json["deployments"] = serde_json::Value::Array(deployments.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(d, _)| d).collect());
    doc.json["filter"] = "failed or rolled back".into();
    doc.title = format!("{} (failed or rolled back)", doc.title);
    doc
}

async fn report_page(State(opts): State<Shared>, Path(name): Path<String>, Query(q): Query<WindowQuery>) -> Response {
    if !["deployments", "dora", "compliance", "pushes"].contains(&name.as_str()) {
        return failure(StatusCode::NOT_FOUND, &format!("no page /{name}"));
    }
    let r = blocking(move || {
        let w = q.resolve()?;
        let ctx = open(&opts)?;
        let doc = report_doc(&ctx, &name, &w)?;
        let ctx = ctx.cite(&doc.json);
        Ok((doc, ctx.served_over(&w)))
    })
    .await;
    match r {
        Ok((doc, p)) => html(&doc, String::new(), String::new(), &p),
        Err(e) => failure(StatusCode::BAD_REQUEST, &e),
    }
}

async fn report_json(State(opts): State<Shared>, Path(name): Path<String>, Query(q): Query<WindowQuery>) -> Response {
    let r = blocking(move || {
        let w = q.resolve()?;
        let ctx = open(&opts)?;
        let doc = report_doc(&ctx, &name, &w)?;
        let ctx = ctx.cite(&doc.json);
        Ok((doc.json, ctx.provenance))
    })
    .await;
    match r {
        Ok((v, p)) => json_response(v, &p),
        Err(e) => {
            let status = if e.starts_with("no report") { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
            (status, [(header::CONTENT_TYPE, "application/json")], json!({"error": e}).to_string()).into_response()
        }
    }
}

async fn trace(State(opts): State<Shared>, Path(commit): Path<String>, Query(q): Query<WindowQuery>) -> Response {
    let r = blocking(move || {
        let ctx = open(&opts)?;
        let id = resolve(&ctx, &commit)?;
        let doc = report::trace::trace(&ctx.ledger, ctx.repo.as_ref(), &id).map_err(|e| e.to_string())?;
        let ctx = ctx.cite(&doc.json);
        Ok((id, doc, ctx.served_keeping(&q)?))
    })
    .await;
    match r {
        Ok((id, doc, served)) => {
            // The commit on the forge: in the repository of a pull request that has it, else the only one.
            let repo = doc.json["pull_requests"].as_array().and_then(|p| p.first()).and_then(|p| p["repository"].as_str());
            let before = served
                .links
                .commit(repo, &id)
                .map(|u| format!("<p id=\"forge\">On the forge: <a href=\"{}\">{}</a></p>", escape(&u), escape(&u)))
                .unwrap_or_default();
            html(&doc, before, String::new(), &served)
        }
        Err(e) if e.starts_with("unknown commit") => failure(StatusCode::NOT_FOUND, &e),
        Err(e) => failure(StatusCode::BAD_REQUEST, &e),
    }
}

async fn trace_json(State(opts): State<Shared>, Path(commit): Path<String>) -> Response {
    let r = blocking(move || {
        let ctx = open(&opts)?;
        let id = resolve(&ctx, &commit)?;
        let doc = report::trace::trace(&ctx.ledger, ctx.repo.as_ref(), &id).map_err(|e| e.to_string())?;
        let ctx = ctx.cite(&doc.json);
        Ok((doc.json, ctx.provenance))
    })
    .await;
    match r {
        Ok((v, p)) => json_response(v, &p),
        Err(e) => (StatusCode::BAD_REQUEST, json!({"error": e}).to_string()).into_response(),
    }
}

/// The commit a path names: a unique prefix of any commit the repository or
/// the ledger knows (see [`report::trace::resolve_commit`]).
fn resolve(ctx: &Ctx, commit: &str) -> Result<String, String> {
    report::trace::resolve_commit(&ctx.ledger, ctx.repo.as_ref(), commit).map_err(|e| e.to_string())
}

/// An entry, its inclusion proof and the signed checkpoint it is in.
fn entry_proof(opts: &Options, seq: u64, q: &WindowQuery) -> Result<(crate::ledger::Proof, Served), String> {
    let ctx = open(opts)?;
    let proof = ctx.ledger.prove(seq).map_err(|e| e.to_string())?;
    let ctx = ctx.cite(&serde_json::json!({ "seq": seq }));
    Ok((proof, ctx.served_keeping(q)?))
}

async fn entry(State(opts): State<Shared>, Path(seq): Path<u64>, Query(q): Query<WindowQuery>) -> Response {
    match blocking(move || entry_proof(&opts, seq, &q)).await {
        Ok((proof, p)) => {
            let doc = Document { title: format!("Ledger entry {seq}"), ..Document::default() };
            let pretty = |v: &serde_json::Value| escape(&crate::text::json_safe(&serde_json::to_string_pretty(v).unwrap_or_default()));
            let before = format!(
                "<h2>Entry</h2><pre id=\"entry\">{}</pre><h2>Inclusion proof (leaf {} of a tree of {})</h2><pre id=\"proof\">{}</pre><h2>Signed checkpoint</h2><pre id=\"checkpoint\">{}</pre><p>Check it offline: <code>git-audit ledger check-proof FILE --key {}</code> with the JSON at <a href=\"/api/entry/{seq}\">/api/entry/{seq}</a>.</p>",
                pretty(&proof.entry),
                proof.leaf_index,
                proof.tree_size,
                escape(&proof.inclusion_proof.join("\n")),
                escape(&proof.checkpoint),
                escape(&proof.key),
            );
            html(&doc, before, String::new(), &p)
        }
        Err(e) => failure(StatusCode::NOT_FOUND, &e),
    }
}

async fn entry_json(State(opts): State<Shared>, Path(seq): Path<u64>) -> Response {
    match blocking(move || entry_proof(&opts, seq, &WindowQuery::default())).await {
        // The same JSON as `ledger prove` (what `ledger check-proof` reads).
        Ok((proof, _)) => (
            [(header::CONTENT_TYPE, "application/json")],
            crate::text::json_safe(&format!("{}\n", serde_json::to_string_pretty(&proof).unwrap_or_default())).into_owned(),
        )
            .into_response(),
        Err(e) => (StatusCode::NOT_FOUND, json!({"error": e}).to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

/// A seq goes to its entry; anything else is traced as a commit id.
async fn search(Query(q): Query<SearchQuery>) -> Response {
    let q = q.q.unwrap_or_default().trim().to_string();
    if q.is_empty() {
        return Redirect::to("/").into_response();
    }
    if let Some(seq) = q.strip_prefix('#').or(Some(q.as_str())).filter(|s| s.len() < 12 && s.bytes().all(|b| b.is_ascii_digit())) {
        return Redirect::to(&format!("/entry/{seq}")).into_response();
    }
    if q.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Redirect::to(&format!("/trace/{q}")).into_response();
    }
    failure(StatusCode::BAD_REQUEST, &format!("`{q}` is neither a ledger seq nor a commit id"))
}

/// Deployments the dashboard lists, newest first.
const LATEST_SHOWN: usize = 20;

/// The newest deployments of the window (at most 20): what shipped, who
/// deployed and approved it, its findings and how it ended.
fn latest_deployments(report: &Document, env: &str, total: usize) -> Section {
    const COLUMNS: [&str; 11] =
        ["time", "environment", "id", "sha", "deployer", "source", "approvers", "findings", "status", "note", "seq"];
    let mut rows = Vec::new();
    if let Some(all) = report.sections.first() {
        let at: Vec<Option<usize>> = COLUMNS.iter().map(|c| all.columns.iter().position(|x| x == c)).collect();
        rows = all
            .rows
            .iter()
            .rev()
            .take(LATEST_SHOWN)
            .map(|r| at.iter().map(|i| i.and_then(|i| r.get(i)).cloned().unwrap_or_default()).collect())
            .collect();
    }
    let title = if total > LATEST_SHOWN {
        format!("Latest deployments to {env}, of {total} (all on /deployments)")
    } else {
        format!("Deployments to {env}")
    };
    Section::new(&title, &COLUMNS, rows)
}

/// DORA's bands (State of DevOps 2023) for one metric.
fn band(metric: &str, value: Option<f64>) -> &'static str {
    let Some(v) = value else { return "" };
    match metric {
        // Successful deployments per week.
        "frequency" if v >= 7.0 => "elite",
        "frequency" if v >= 1.0 => "high",
        "frequency" if v >= 0.25 => "medium",
        "frequency" => "low",
        // Hours.
        "lead" if v < 24.0 => "elite",
        "lead" if v < 24.0 * 7.0 => "high",
        "lead" if v < 24.0 * 30.0 => "medium",
        "lead" => "low",
        // A fraction.
        "cfr" if v <= 0.05 => "elite",
        "cfr" if v <= 0.10 => "high",
        "cfr" if v <= 0.15 => "medium",
        "cfr" => "low",
        "restore" if v < 1.0 => "elite",
        "restore" if v < 24.0 => "high",
        "restore" if v < 24.0 * 7.0 => "medium",
        "restore" => "low",
        _ => "",
    }
}

/// A number on the dashboard, linked to the list it counts.
fn tile(label: &str, value: &str, note: &str, class: &str, id: &str, href: &str) -> String {
    format!(
        "<a class=\"tile-link\" href=\"{}\"><div class=\"tile\" id=\"{id}\"><div class=\"label\">{}</div><div class=\"value {class}\">{}</div><div class=\"note\">{}</div></div></a>",
        escape(href),
        escape(label),
        escape(value),
        escape(note)
    )
}

async fn dashboard(State(opts): State<Shared>, Query(q): Query<WindowQuery>) -> Response {
    let r = blocking(move || {
        let ctx = open(&opts)?;
        // Every number on the page comes from one reading of the deployment history (`ctx.facts`).
        let (w, chose) = q.resolve_finding_data(&ctx.ledger, &ctx.facts)?;
        let dora = report::dora::dora(&ctx.facts, ctx.repo.as_ref(), &w.env, &w.since, &w.until).map_err(|e| e.to_string())?;
        let (_, findings) = report::compliance::compliance(&ctx.ledger, &ctx.facts, ctx.repo.as_ref(), &w.since, ctx.policy.as_ref())
            .map_err(|e| e.to_string())?;
        let pushes = pushes(&ctx.ledger, &w)?;
        // What shipped to the environment and who approved it, newest first:
        // the report over the newest deployments only (the page lists 20).
        let in_window: Vec<Timestamp> = ctx
            .facts
            .in_env(&w.env)
            .iter()
            .filter_map(|d| Timestamp::parse(&d.time).ok())
            .filter(|t| w.since <= *t && *t < w.until)
            .collect();
        let from = in_window.iter().rev().nth(LATEST_SHOWN - 1).map_or(w.since, |t| *t.max(&w.since));
        let shipped =
            report::deployments::deployments(&ctx.ledger, &ctx.facts, ctx.repo.as_ref(), &w.env, &from, &w.until, ctx.policy.as_ref())
                .map_err(|e| e.to_string())?;
        // Every environment deployed to, side by side (the page's own environment computed above).
        let mut per_env = Vec::new();
        for env in ctx.facts.environments() {
            let overall = match env == w.env {
                true => dora.json["overall"].clone(),
                false => report::dora::dora(&ctx.facts, ctx.repo.as_ref(), &env, &w.since, &w.until).map_err(|e| e.to_string())?.json
                    ["overall"]
                    .clone(),
            };
            per_env.push((env, overall));
        }
        let total = in_window.len();
        let served = ctx.served_over(&w);
        Ok((w, chose, dora, findings, pushes, shipped, per_env, total, served))
    })
    .await;
    let (w, chose, dora, findings, pushes, shipped, per_env, total, p) = match r {
        Ok(x) => x,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &e),
    };
    let o = &dora.json["overall"];
    let f = |k: &str| o[k].as_f64();
    let per_week = f("deployments_per_week");
    let cfr = f("change_failure_rate");
    let lead = f("median_lead_time_hours");
    let restore = f("median_time_to_restore_hours");
    // Small rates (a long window) say so rather than rounding to 0.0.
    let shown = |v: Option<f64>, unit: &str| match v {
        None => "—".to_string(),
        Some(v) if v > 0.0 && v < 0.05 => format!("<0.1{unit}"),
        Some(v) => format!("{v:.1}{unit}"),
    };
    let band_class = |m: &str, v: Option<f64>| {
        let b = band(m, v);
        (
            if b.is_empty() { String::new() } else { format!("band-{b}") },
            if b.is_empty() { "no data".to_string() } else { format!("DORA: {b}") },
        )
    };
    // The window, changeable on the page (a plain GET form: no script).
    let field = |name: &str, value: &str, hint: &str| {
        format!("<label>{name} <input name=\"{name}\" value=\"{}\" placeholder=\"{}\" size=\"12\"></label> ", escape(value), escape(hint))
    };
    let mut tiles = format!(
        "<form class=\"window\" method=\"get\" action=\"/\">{}{}{}<button>Show</button></form>",
        field("since", &w.since_text, "90d or 2026-07-01"),
        field("until", &w.until_text, "now"),
        field("env", &w.env, "production")
    );
    if let Some(c) = &chose {
        tiles.push_str(&format!("<p id=\"window-chosen\">{}</p>", escape(c)));
    }
    tiles.push_str("<div class=\"tiles\">");
    // Every number links to the list it counts, over the same window.
    let to = |path: &str, extra: &[(&str, &str)]| format!("{path}{}", p.links.window_query_with(extra));
    let (c, n) = band_class("frequency", per_week);
    tiles += &tile(
        &format!("deployments to {}", w.env),
        &o["deployments"].as_u64().unwrap_or(0).to_string(),
        &format!("{} per week successful; {n}", shown(per_week, "")),
        &c,
        "tile-deployments",
        &to("/deployments", &[]),
    );
    let (c, n) = band_class("cfr", cfr);
    tiles += &tile(
        "change failure rate",
        &cfr.map_or("—".into(), |v| format!("{:.0}%", v * 100.0)),
        &format!(
            "{} failed; {n}{}",
            o["failed"].as_u64().unwrap_or(0),
            report::dora::unchecked_note(o["rollbacks_unchecked"].as_u64().unwrap_or(0))
        ),
        &c,
        "tile-cfr",
        &to("/deployments", &[("status", "failed")]),
    );
    let (c, n) = band_class("lead", lead);
    tiles += &tile("median lead time", &shown(lead, " h"), &n, &c, "tile-lead", &to("/dora", &[]));
    let (c, n) = band_class("restore", restore);
    tiles += &tile("median time to restore", &shown(restore, " h"), &n, &c, "tile-restore", &to("/deployments", &[("status", "failed")]));
    let refused = pushes.json["refused"].as_u64().unwrap_or(0);
    let breaks = pushes.json["break_glass"].as_u64().unwrap_or(0);
    tiles += &tile(
        "refused pushes",
        &refused.to_string(),
        &format!("{} accepted; {breaks} break glass", pushes.json["accepted"].as_u64().unwrap_or(0)),
        if refused > 0 { "bad" } else { "good" },
        "tile-refused",
        &to("/pushes", &[("decision", "refused")]),
    );
    // Violations and "could not verify" are different answers: counted and listed apart.
    let unverified = findings.iter().filter(|f| f.rule.is_unverified()).count();
    let violations = findings.len() - unverified;
    tiles += &tile(
        "violations",
        &violations.to_string(),
        "compliance findings, in the window",
        if violations == 0 { "good" } else { "bad" },
        "tile-findings",
        &to("/compliance", &[("kind", "violation")]),
    );
    tiles += &tile(
        "could not verify",
        &unverified.to_string(),
        "what the ledger lacks to judge (e.g. a team never synced)",
        if unverified == 0 { "good" } else { "warn" },
        "tile-unverified",
        &to("/compliance", &[("kind", "unverified")]),
    );
    tiles.push_str("</div>");
    let mut by_rule: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for f in &findings {
        *by_rule.entry(f.rule.id().to_string()).or_default() += 1;
    }
    let until = if w.until.is_open_end() { "now".to_string() } else { w.until.to_string() };
    let hours = |v: &serde_json::Value| v.as_f64().map_or("—".to_string(), |h| format!("{h:.1}"));
    let env_rows: Vec<Vec<String>> = per_env
        .iter()
        .map(|(env, o)| {
            let cfr = o["change_failure_rate"].as_f64();
            vec![
                env.clone(),
                o["deployments"].as_u64().unwrap_or(0).to_string(),
                o["failed"].as_u64().unwrap_or(0).to_string(),
                cfr.map_or("—".into(), |c| format!("{:.0}%", c * 100.0)),
                band("cfr", cfr).to_string(),
                hours(&o["median_lead_time_hours"]),
                hours(&o["median_time_to_restore_hours"]),
            ]
        })
        .collect();
    let doc = Document {
        title: format!("Dashboard: {} since {} (to {until})", w.env, w.since),
        sections: vec![
            latest_deployments(&shipped, &w.env, total),
            Section::new(
                "Environments",
                &[
                    "environment",
                    "deployments",
                    "failed",
                    "change failure rate",
                    "DORA band (CFR)",
                    "median lead time (h)",
                    "median time to restore (h)",
                ],
                env_rows,
            ),
            Section::new(
                "Findings by rule",
                &["rule", "kind", "findings"],
                by_rule
                    .iter()
                    .map(|(r, n)| {
                        let kind = if Rule::from_id(r).is_some_and(Rule::is_unverified) { "could not verify" } else { "violation" };
                        vec![r.clone(), kind.to_string(), n.to_string()]
                    })
                    .collect(),
            ),
        ],
        charts: Vec::new(),
        series: dora.series.clone(),
        json: json!({}),
    };
    html(&doc, tiles, String::new(), &p)
}
