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

mod dashboard;
mod error;
mod window;

pub use error::WebError;
use window::{Window, WindowQuery};

use crate::facts::DeploymentHistory;
use crate::ledger::{Ledger, LedgerFiles};
use crate::report::render::{escape, page, Links, Page, Provenance};
use crate::report::{self, Document};
use crate::rule::Rule;

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
            .route("/", axum::routing::get(dashboard::dashboard))
            .route("/search", axum::routing::get(search))
            .route("/entry/{seq}", axum::routing::get(entry))
            .route("/trace/{commit}", axum::routing::get(trace))
            .route("/api/entry/{seq}", axum::routing::get(entry_json))
            .route("/api/trace/{commit}", axum::routing::get(trace_json))
            .route("/api/attestations/{commit}", axum::routing::get(attestations))
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

pub(crate) type Shared = Arc<Options>;

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

/// The ledger, the policy and the repository, opened for one request.
pub(crate) struct Ctx {
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

pub(crate) fn open(opts: &Options) -> Result<Ctx, WebError> {
    let ledger = Ledger::open(&opts.ledger)?;
    let policy = match &opts.policy {
        Some(p) if p.exists() => Some(crate::policy::Policy::load(p).map_err(|e| WebError::Failed(e.to_string()))?),
        _ => None,
    };
    // The process's repository (serve was started in it), opened per request.
    let repo = opts.repo.as_ref().and_then(|_| crate::git::Repo::open_from_env().ok());
    // The ground is checked once per request, with the entries the answer cites (`cite`).
    let provenance = Provenance::unchecked(&ledger, policy.as_ref().map(|p| p.digest.as_str()))?;
    let facts = DeploymentHistory::read(&ledger)?;
    let links = Links::new(ledger.forge_pages()?, facts.pages());
    Ok(Ctx { ledger, facts, policy, repo, provenance, grounded: false, links })
}

/// Runs blocking ledger work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, WebError> + Send + 'static) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(WebError::Failed(format!("the request stopped: {e}"))))
}

/// What a page shows besides its report: where it came from and what it links to.
pub(crate) struct Served {
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
    fn served_keeping(self, q: &WindowQuery) -> Result<Served, WebError> {
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

pub(crate) fn html(doc: &Document, before: String, after: String, served: &Served) -> Response {
    // The navigation keeps the page's window.
    let query = served.links.window_query();
    let hrefs: Vec<(String, &str)> = NAV.iter().map(|(h, l)| (format!("{h}{query}"), *l)).collect();
    let nav = hrefs.iter().map(|(h, l)| (h.as_str(), *l)).collect();
    let body = page(doc, &Page { nav, before, after, provenance: Some(&served.provenance), links: Some(&served.links) });
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub(crate) fn failure(status: StatusCode, msg: &str) -> Response {
    let doc = Document { title: "Not available".into(), ..Document::default() };
    let body = page(&doc, &Page { nav: NAV.to_vec(), before: format!("<p class=\"bad\">{}</p>", escape(msg)), ..Page::default() });
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// An error as JSON, with the status its kind means.
fn json_failure(e: &WebError) -> Response {
    (e.status(), [(header::CONTENT_TYPE, "application/json")], json!({"error": e.message()}).to_string()).into_response()
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
fn report_doc(ctx: &Ctx, name: &str, w: &Window) -> Result<Document, WebError> {
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
            )?;
            match w.status.as_deref() {
                None => Ok(doc),
                Some("failed") => Ok(failed_only(doc)),
                Some(other) => Err(WebError::BadRequest(format!("no deployment filter status={other}: the filter is status=failed"))),
            }
        }
        "dora" => Ok(report::dora::dora(&ctx.facts, ctx.repo.as_ref(), &w.env, &w.since, &w.until)?),
        "compliance" => {
            let (_, all) = report::compliance::compliance(&ctx.ledger, &ctx.facts, ctx.repo.as_ref(), &w.since, ctx.policy.as_ref())?;
            let (kept, filter): (Vec<_>, Option<String>) = match (w.kind.as_deref(), w.rule.as_deref()) {
                (None, None) => (all, None),
                (Some("violation"), None) => {
                    (all.into_iter().filter(|f| !f.rule.is_unverified() && !f.rule.is_anomaly()).collect(), Some("violations".into()))
                }
                (Some("anomaly"), None) => (all.into_iter().filter(|f| f.rule.is_anomaly()).collect(), Some("anomalies".into())),
                (Some("unverified"), None) => {
                    (all.into_iter().filter(|f| f.rule.is_unverified()).collect(), Some("could not verify".into()))
                }
                (None, Some(r)) if Rule::from_id(r).is_some() => {
                    (all.into_iter().filter(|f| f.rule.id() == r).collect(), Some(format!("rule {r}")))
                }
                (None, Some(r)) => return Err(WebError::BadRequest(format!("no rule `{r}`: `git-audit rules` lists them"))),
                (Some(k), None) => {
                    return Err(WebError::BadRequest(format!("no finding kind `{k}`: the kinds are violation, unverified and anomaly")))
                }
                (Some(_), Some(_)) => return Err(WebError::BadRequest("filter by kind or by rule, not both".into())),
            };
            Ok(report::compliance::document(&w.since, &kept, filter.as_deref()))
        }
        "pushes" => pushes(&ctx.ledger, w),
        "sources" => Ok(report::sources::sources(&ctx.ledger)?),
        other => Err(WebError::NotFound(format!("no report `{other}`: the reports are deployments, dora, compliance, pushes and sources"))),
    }
}

/// The pushes report over a page's window (`?decision=` narrows it).
pub(crate) fn pushes(ledger: &Ledger, w: &Window) -> Result<Document, WebError> {
    let decision = match w.decision.as_deref() {
        None => None,
        Some("refused") => Some(report::pushes::Decision::Refused),
        Some("accepted") => Some(report::pushes::Decision::Accepted),
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "no push filter decision={other}: the filters are decision=refused and decision=accepted"
            )))
        }
    };
    Ok(report::pushes::pushes(ledger, &w.since, &w.until, decision)?)
}

/// The deployments report narrowed to what the change failure rate counts:
/// failed deployments and those rolled back (their commits with them).
fn failed_only(mut doc: Document) -> Document {
    let deployments = doc.json["deployments"].as_array().cloned().unwrap_or_default();
    let keep: Vec<bool> = deployments
        .iter()
        .map(|d| crate::event::DeploymentState::parse(d["status"].as_str().unwrap_or_default()).failed() || !d["rolled_back_by"].is_null())
        .collect();
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
    if !["deployments", "dora", "compliance", "pushes", "sources"].contains(&name.as_str()) {
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
        Err(e) => failure(e.status(), e.message()),
    }
}

/// A document's JSON with the provenance of its ground checked, or the error as JSON.
async fn json_answer(answer: impl FnOnce() -> Result<(Ctx, Document), WebError> + Send + 'static) -> Response {
    let r = blocking(move || {
        let (ctx, doc) = answer()?;
        let ctx = ctx.cite(&doc.json);
        Ok((doc.json, ctx.provenance))
    })
    .await;
    match r {
        Ok((v, p)) => json_response(v, &p),
        Err(e) => json_failure(&e),
    }
}

async fn report_json(State(opts): State<Shared>, Path(name): Path<String>, Query(q): Query<WindowQuery>) -> Response {
    json_answer(move || {
        let w = q.resolve()?;
        let ctx = open(&opts)?;
        let doc = report_doc(&ctx, &name, &w)?;
        Ok((ctx, doc))
    })
    .await
}

async fn trace(State(opts): State<Shared>, Path(commit): Path<String>, Query(q): Query<WindowQuery>) -> Response {
    let r = blocking(move || {
        let ctx = open(&opts)?;
        let id = resolve(&ctx, &commit)?;
        let doc = report::trace::trace(&ctx.ledger, ctx.repo.as_ref(), &id)?;
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
        Err(e) => failure(e.status(), e.message()),
    }
}

async fn trace_json(State(opts): State<Shared>, Path(commit): Path<String>) -> Response {
    json_answer(move || {
        let ctx = open(&opts)?;
        let id = resolve(&ctx, &commit)?;
        let doc = report::trace::trace(&ctx.ledger, ctx.repo.as_ref(), &id)?;
        Ok((ctx, doc))
    })
    .await
}

/// A revision's attestations as the ledger holds them: one DSSE envelope a
/// line (an in-toto bundle, as in its git note), oldest first.
async fn attestations(State(opts): State<Shared>, Path(commit): Path<String>) -> Response {
    let asked = commit.clone();
    let r = blocking(move || {
        let ctx = open(&opts)?;
        let id = resolve(&ctx, &commit)?;
        let issued =
            ctx.ledger.events::<crate::event::AttestationIssued>(&crate::ledger::Select { subject: Some(&id), ..Default::default() })?;
        let lines: Vec<String> = issued.iter().flat_map(|e| e.payload.envelopes.iter().map(|v| v.to_string())).collect();
        Ok::<_, WebError>(lines)
    })
    .await;
    match r {
        Ok(lines) if lines.is_empty() => failure(StatusCode::NOT_FOUND, &format!("no attestation for {asked}")),
        Ok(lines) => ([(axum::http::header::CONTENT_TYPE, "application/jsonl; charset=utf-8")], lines.join("\n") + "\n").into_response(),
        Err(e) => failure(e.status(), e.message()),
    }
}

/// The commit a path names: a unique prefix of any commit the repository or
/// the ledger knows (see [`report::trace::resolve_commit`]).
fn resolve(ctx: &Ctx, commit: &str) -> Result<String, WebError> {
    Ok(report::trace::resolve_commit(&ctx.ledger, ctx.repo.as_ref(), commit)?)
}

/// An entry, its inclusion proof and the signed checkpoint it is in.
fn entry_proof(opts: &Options, seq: u64, q: &WindowQuery) -> Result<(crate::ledger::Proof, Served), WebError> {
    let ctx = open(opts)?;
    let proof = ctx.ledger.prove(seq)?;
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
        Err(e) => failure(e.status(), e.message()),
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
        Err(e) => json_failure(&e),
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
