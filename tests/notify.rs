//! Notifications end to end: real pushes into a bare repository with the
//! hooks installed, delivered to a real local HTTP receiver. The receiver
//! checks signatures with its own HMAC code, not git-audit's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use hmac::{KeyInit, Mac};

use crate::hooks::{push, signing_policy, Server, MAIN_RULES};
use crate::support::{keys, Repo, Sign};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// An answer to give: status, and `Retry-After` seconds.
type Answer = (u16, Option<u64>);

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Got>>,
    /// Per path: the answers to give, in order (status, Retry-After); then 200.
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
    hold: AtomicBool,
    answered: AtomicUsize,
    /// Requests whose connection went away before they were answered.
    abandoned: AtomicUsize,
}

/// A local HTTP receiver: records every request, answers as scripted.
pub(crate) struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

struct Answering(Arc<Shared>, bool);

impl Drop for Answering {
    fn drop(&mut self) {
        if !self.1 {
            self.0.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let headers = headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    shared.got.lock().unwrap_or_else(|e| e.into_inner()).push(Got { path: path.clone(), headers, body: body.to_vec(), at: Instant::now() });
    let mut guard = Answering(shared.clone(), false);
    let started = Instant::now();
    while shared.hold.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, retry) =
        shared.script.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&path).and_then(|q| q.pop_front()).unwrap_or((200, None));
    guard.1 = true;
    shared.answered.fetch_add(1, Ordering::SeqCst);
    let mut r = axum::response::Response::builder().status(status);
    if let Some(s) = retry {
        r = r.header("retry-after", s.to_string());
    }
    r.body(axum::body::Body::from("ok")).unwrap_or_default()
}

impl Receiver {
    pub fn start() -> Receiver {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}")));
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared, _rt: rt }
    }

    pub fn script(&self, path: &str, answers: &[(u16, Option<u64>)]) {
        self.shared.script.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_string(), answers.iter().copied().collect());
    }

    pub fn got(&self, path: &str) -> Vec<Got> {
        self.shared.got.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|g| g.path == path).cloned().collect()
    }

    /// Waits (bounded) until `path` has had `n` requests.
    pub fn wait_for(&self, path: &str, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.got(path).len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        self.got(path)
    }
}

/// A port nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(9);
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// The body is of the documented schema (`git_audit::notify::body`): it
/// decodes as a `Body`, and its `data` is of the family its `type` names.
fn assert_schema(got: &Got) {
    let body: Option<git_audit::notify::body::Body> = serde_json::from_slice(&got.body).ok();
    assert!(body.is_some_and(|b| b.family_matches()), "not of the webhook schema: {}", String::from_utf8_lossy(&got.body));
}

/// Standard Webhooks verification, written here independently of git-audit:
/// HMAC-SHA256 keyed with base64(secret without `whsec_`) over `id.timestamp.body`.
fn verify_standard_webhook(secret: &str, got: &Got) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(key) = b64.decode(secret.trim_start_matches("whsec_")) else { return false };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else { return false };
    let signed = [got.header("webhook-id").as_bytes(), b".", got.header("webhook-timestamp").as_bytes(), b".", &got.body].concat();
    mac.update(&signed);
    let expected = b64.encode(mac.finalize().into_bytes());
    got.header("webhook-signature").split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A server whose policy has `sinks` appended; the secret is in a file.
fn server_with(repo: &Repo, sinks: &str, background: bool) -> Result<Server> {
    let secret = repo.tmp.path().join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n"))?;
    let sinks = sinks.replace("SECRET_FILE", secret.to_str().context("path")?);
    let server = Server::new(
        repo,
        &signing_policy(&format!(
            "{MAIN_RULES}\n[roles]\nbreakglass = [\"oncall@example.com\"]\npolicy-admin = [\"alice@example.com\"]\n{sinks}"
        )),
        "sha1",
    )?;
    repo.git(&[
        "--git-dir",
        server.path.to_str().context("path")?,
        "config",
        "audit.notifyBackground",
        if background { "true" } else { "false" },
    ])?;
    Ok(server)
}

fn audit_on(repo: &Repo, server: &Server, args: &[&str]) -> Result<(i32, String, String)> {
    let ledger = server.ledger();
    let mut all = vec!["--policy", server.policy.to_str().unwrap_or_default(), "--ledger", ledger.to_str().unwrap_or_default()];
    all.extend_from_slice(args);
    repo.audit(&all)
}

fn seq_kind(server: &Server, seq: u64) -> Result<String> {
    let c = rusqlite::Connection::open(server.ledger())?;
    Ok(c.query_row("SELECT kind FROM entries WHERE seq = ?1", [seq as i64], |r| r.get(0))?)
}

#[test]
fn a_refused_push_reaches_a_webhook_slack_and_teams_signed_with_its_ledger_seq() -> Result<()> {
    let k = keys();
    let rx = Receiver::start();
    let repo = Repo::new()?;
    let slack_url = repo.tmp.path().join("slack.url");
    std::fs::write(&slack_url, format!("{}/services/T000/B000/XXXXSLACKTOKEN\n", rx.url))?;
    let sinks = format!(
        "[[notify]]\nkind = \"webhook\"\nname = \"siem\"\nurl = \"{0}/siem\"\nsecret_file = \"SECRET_FILE\"\ngithub_signature = true\nevents = [\"push.refused\", \"bypass.used\", \"finding.*\"]\n\n\
         [[notify]]\nkind = \"slack\"\nurl_file = \"{1}\"\nevents = [\"push.*\"]\n\n\
         [[notify]]\nkind = \"teams\"\nurl = \"{0}/teams\"\n",
        rx.url,
        slack_url.display()
    );
    let server = server_with(&repo, &sinks, true)?;
    repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let bad = repo.commit("feat: unsigned & <risky>", Sign::None)?;
    let (code, said) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "mallory@example.com")])?;
    assert_eq!(code, 1, "{said}");

    // The hook started delivery in the background; each sink gets one message.
    let siem = rx.wait_for("/siem", 1);
    let slack = rx.wait_for("/services/T000/B000/XXXXSLACKTOKEN", 1);
    let teams = rx.wait_for("/teams", 1);
    assert_eq!((siem.len(), slack.len(), teams.len()), (1, 1, 1));

    let w = &siem[0];
    assert!(verify_standard_webhook(SECRET, w), "the Standard Webhooks signature verifies: {:?}", w.headers);
    assert_schema(w);
    assert!(w.header("webhook-id").starts_with("msg_"));
    let ts: i64 = w.header("webhook-timestamp").parse()?;
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 120);
    // GitHub's signature: hex HMAC-SHA256 of the body keyed with the secret text.
    let mut gh = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())?;
    gh.update(&w.body);
    assert_eq!(w.header("x-hub-signature-256"), format!("sha256={}", hex::encode(gh.finalize().into_bytes())));
    let body = w.json();
    assert_eq!(body["type"], "push.refused");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let data = &body["data"];
    assert_eq!(data["repository"], "server");
    assert_eq!(data["pusher"], "mallory@example.com");
    assert_eq!(data["refs"][0]["ref"], "refs/heads/main");
    assert_eq!(data["refs"][0]["new"], bad);
    assert_eq!(data["refs"][0]["findings"][0]["rule"], "signing.required");
    assert_eq!(data["refs"][0]["findings"][0]["commit"], bad);
    assert_eq!(data["rules"], serde_json::json!(["signing.required"]));
    let seq = data["ledger"]["seq"].as_u64().context("ledger seq")?;
    assert_eq!(seq_kind(&server, seq)?, "push.decided", "the seq names the entry that recorded the refusal");
    let size = data["ledger"]["tree_size"].as_u64().context("tree size")?;
    assert!(data["ledger"]["checkpoint"].as_str().is_some_and(|c| c.lines().nth(1) == Some(&size.to_string())), "{data}");
    // A receiver can ask for the inclusion proof of that seq.
    let (code, proof, err) = audit_on(&repo, &server, &["ledger", "prove", &seq.to_string()])?;
    assert_eq!(code, 0, "{err}");
    assert!(proof.contains("push.decided"));

    // Slack: Block Kit and an escaped fallback.
    let s = slack[0].json();
    assert!(s["text"].as_str().is_some_and(|t| t.starts_with("Push refused: ")), "{s}");
    assert!(s["blocks"].as_array().is_some_and(|b| b.len() >= 3), "{s}");
    assert_eq!(s["blocks"][0]["type"], "header");
    assert!(s.to_string().contains("signing.required"));
    // Each violation names its commit (short id), in Slack and in Teams.
    assert!(s.to_string().contains(&format!("• {} signing.required: ", &bad[..10])), "{s}");
    // Teams: a Workflows body with one Adaptive Card.
    let t = teams[0].json();
    assert_eq!(t["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert!(t.to_string().contains("refs/heads/main"));
    assert!(t.to_string().contains(&format!("{} signing.required: ", &bad[..10])), "{t}");

    // Delivered once each; the outbox says so, and keeps no URL or secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (_, out, _) = audit_on(&repo, &server, &["notify", "status", "--format", "json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        if v.as_array().is_some_and(|a| a.iter().all(|s| s["pending"] == 0)) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let delivered: Vec<(String, u64)> = status
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (s["name"].as_str().unwrap_or_default().to_string(), s["delivered"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(delivered, vec![("siem".to_string(), 1), ("slack".to_string(), 1), ("teams".to_string(), 1)]);
    let db = std::fs::read(server.ledger())?;
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains("XXXXSLACKTOKEN") && !db.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "no URL or secret in the ledger database");
    assert!(!said.contains("XXXXSLACKTOKEN") && !said.contains("MfKQ9r8"));
    Ok(())
}

#[test]
fn a_receiver_that_hangs_does_not_hold_the_push() -> Result<()> {
    let rx = Receiver::start();
    rx.shared.hold.store(true, Ordering::SeqCst);
    let repo = Repo::new()?;
    let sinks = format!("[[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret_file = \"SECRET_FILE\"\n", rx.url);
    let _server = server_with(&repo, &sinks, true)?;
    repo.commit("feat: unsigned", Sign::None)?;
    let (code, said) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{said}");
    // The push is back while the receiver still holds the request open: had the
    // hook waited for delivery it would have given up on (and dropped) it first.
    let got = rx.wait_for("/hook", 1);
    assert_eq!(got.len(), 1);
    assert_eq!(rx.shared.answered.load(Ordering::SeqCst), 0);
    assert_eq!(rx.shared.abandoned.load(Ordering::SeqCst), 0, "nobody gave up on the request before the push returned");
    rx.shared.hold.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx.shared.answered.load(Ordering::SeqCst) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rx.shared.answered.load(Ordering::SeqCst), 1);
    Ok(())
}

#[test]
fn with_the_receiver_down_drain_delivers_later_and_once() -> Result<()> {
    let repo = Repo::new()?;
    let url_file = repo.tmp.path().join("siem.url");
    std::fs::write(&url_file, format!("{}/hook", dead_url()))?;
    let sinks =
        format!("[[notify]]\nkind = \"webhook\"\nname = \"siem\"\nurl_file = \"{}\"\nsecret_file = \"SECRET_FILE\"\n", url_file.display());
    let server = server_with(&repo, &sinks, false)?;
    repo.commit("feat: unsigned", Sign::None)?;
    assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 1);

    // Down: the attempt fails, the message waits, the URL is not printed.
    let (code, out, err) = audit_on(&repo, &server, &["notify", "drain", "--budget", "1s"])?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("0 delivered") && out.contains("1 pending"), "{out}");
    assert!(err.contains("siem msg_"), "{err}");
    assert!(!err.contains("/hook") && !out.contains("/hook"), "the URL is a secret: {err}");

    // Up (the URL is read at delivery time): delivered, once.
    let rx = Receiver::start();
    std::fs::write(&url_file, format!("{}/hook", rx.url))?;
    let (code, out, err) = audit_on(&repo, &server, &["notify", "drain", "--budget", "20s"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 delivered"), "{out}");
    let (code, out, _) = audit_on(&repo, &server, &["notify", "drain", "--budget", "2s"])?;
    assert_eq!(code, 0);
    assert!(out.contains("0 delivered"), "{out}");
    let got = rx.got("/hook");
    assert_eq!(got.len(), 1, "delivered once");
    assert!(verify_standard_webhook(SECRET, &got[0]));
    assert_schema(&got[0]);
    assert_eq!(got[0].json()["type"], "push.refused");
    Ok(())
}

#[test]
fn server_errors_and_429s_are_retried_and_a_410_disables_the_sink() -> Result<()> {
    let rx = Receiver::start();
    rx.script("/flaky", &[(500, None), (502, None)]);
    rx.script("/limited", &[(429, Some(1))]);
    rx.script("/gone", &[(410, None)]);
    let repo = Repo::new()?;
    let sink = |name: &str| {
        format!("[[notify]]\nkind = \"webhook\"\nname = \"{name}\"\nurl = \"{}/{name}\"\nsecret_file = \"SECRET_FILE\"\n", rx.url)
    };
    let server = server_with(&repo, &[sink("flaky"), sink("limited"), sink("gone")].join("\n"), false)?;
    repo.commit("feat: unsigned", Sign::None)?;
    assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 1);

    let (code, out, err) = audit_on(&repo, &server, &["notify", "drain", "--budget", "20s"])?;
    assert_eq!(code, 0, "all but the disabled sink delivered: {out}{err}");
    let flaky = rx.got("/flaky");
    assert_eq!(flaky.len(), 3, "500, 502, then delivered");
    assert!(flaky.iter().all(|g| g.header("webhook-id") == flaky[0].header("webhook-id")), "one id across retries");
    assert!(flaky[1].at - flaky[0].at >= Duration::from_millis(900), "backoff before retrying");
    let limited = rx.got("/limited");
    assert_eq!(limited.len(), 2);
    assert!(limited[1].at - limited[0].at >= Duration::from_millis(950), "Retry-After: 1 was honoured");
    assert_eq!(rx.got("/gone").len(), 1);
    assert!(err.contains("sink `gone` disabled") && err.contains("410"), "{err}");
    assert!(out.contains("2 delivered") && out.contains("held"), "{out}");

    let (_, status, _) = audit_on(&repo, &server, &["notify", "status"])?;
    assert!(status.lines().any(|l| l.starts_with("gone [webhook] DISABLED")), "{status}");

    // While disabled nothing is sent to it; re-enabled, what it missed goes.
    repo.commit("feat: unsigned again", Sign::None)?;
    assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 1);
    audit_on(&repo, &server, &["notify", "drain", "--budget", "5s"])?;
    assert_eq!(rx.got("/gone").len(), 1);
    assert_eq!(rx.got("/flaky").len(), 4);
    let (code, out, _) = audit_on(&repo, &server, &["notify", "enable", "gone"])?;
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = audit_on(&repo, &server, &["notify", "drain", "--budget", "10s"])?;
    assert_eq!(code, 0, "{out}{err}");
    let gone = rx.got("/gone");
    assert_eq!(gone.len(), 3, "the held message again, and the new one");
    assert_eq!(gone[0].header("webhook-id"), gone[1].header("webhook-id"));
    Ok(())
}

#[test]
fn break_glass_and_filters_and_a_failed_deployment() -> Result<()> {
    let rx = Receiver::start();
    let repo = Repo::new()?;
    let sinks = format!(
        "[[notify]]\nkind = \"webhook\"\nname = \"oncall\"\nurl = \"{}/oncall\"\nsecret_file = \"SECRET_FILE\"\nevents = [\"bypass.*\", \"deployment.failed\"]\n",
        rx.url
    );
    let server = server_with(&repo, &sinks, false)?;
    repo.commit("feat: unsigned", Sign::None)?;
    assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 1, "refused, but this sink does not select push.refused");
    let (code, said) = push(&repo, &["-o", "audit.bypass=INC-7 prod down", "origin", "main"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 0, "{said}");
    audit_on(&repo, &server, &["notify", "drain", "--budget", "5s"])?;
    let got = rx.got("/oncall");
    assert_eq!(got.len(), 1, "only bypass.used");
    let b = got[0].json();
    assert_eq!(b["type"], "bypass.used");
    assert_eq!(b["data"]["reason"], "INC-7 prod down");
    assert_eq!(b["data"]["pusher"], "oncall@example.com");
    assert_eq!(seq_kind(&server, b["data"]["ledger"]["seq"].as_u64().unwrap_or(u64::MAX))?, "bypass.used");

    // A failed deployment recorded from CI is delivered before the command returns.
    let (code, out, err) = audit_on(
        &repo,
        &server,
        &[
            "record",
            "deployment",
            "--environment",
            "production",
            "--sha",
            &"ab".repeat(20),
            "--status",
            "failure",
            "--repo",
            "acme/api",
            "--actor",
            "dev",
        ],
    )?;
    assert_eq!(code, 0, "{out}{err}");
    let got = rx.got("/oncall");
    assert_eq!(got.len(), 2, "{err}");
    let d = got[1].json();
    assert_eq!(d["type"], "deployment.failed");
    assert_eq!(d["data"]["environment"], "production");
    assert_eq!(d["data"]["status"], "failure");
    assert_eq!(seq_kind(&server, d["data"]["ledger"]["seq"].as_u64().unwrap_or(u64::MAX))?, "deployment.recorded");
    // A successful one is not news.
    audit_on(&repo, &server, &["record", "deployment", "--environment", "production", "--sha", &"cd".repeat(20), "--repo", "acme/api"])?;
    assert_eq!(rx.got("/oncall").len(), 2);
    Ok(())
}

#[test]
fn notify_test_reports_each_sink_and_never_prints_urls_or_secrets() -> Result<()> {
    let rx = Receiver::start();
    let repo = Repo::new()?;
    let policy = repo.tmp.path().join("p.toml");
    std::fs::write(repo.tmp.path().join("s"), SECRET)?;
    std::fs::write(
        &policy,
        "version = 1\n[[notify]]\nkind = \"webhook\"\nname = \"ok\"\nurl_env = \"OK_URL\"\nsecret_file = \"s\"\n\n[[notify]]\nkind = \"slack\"\nname = \"down\"\nurl_env = \"DOWN_URL\"\n\n[[notify]]\nkind = \"teams\"\nname = \"unset\"\nurl_env = \"NOT_SET_URL\"\n",
    )?;
    let down = format!("{}/services/SECRETPATH", dead_url());
    let (code, out, err) = repo.audit_env(
        &["--policy", policy.to_str().unwrap_or_default(), "notify", "test"],
        &[("OK_URL", &format!("{}/ok?token=SECRETQUERY", rx.url)), ("DOWN_URL", &down), ("GIT_AUDIT_LOG", "debug")],
    )?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("ok: delivered (HTTP 200)"), "{out}");
    assert!(out.contains("down: FAILED: "), "{out}");
    assert!(
        out.contains(
            "unset: FAILED: cannot read the sink's URL (environment variable NOT_SET_URL): environment variable NOT_SET_URL is not set"
        ),
        "{out}"
    );
    for secret in ["SECRETPATH", "SECRETQUERY", "MfKQ9r8"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{secret} leaked:\n{out}\n{err}");
    }
    let got = rx.got("/ok");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["type"], "notify.test");
    assert!(verify_standard_webhook(SECRET, &got[0]));
    assert_schema(&got[0]);

    // With a ledger, `notify status` counts the test sends, per sink.
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    for _ in 0..2 {
        repo.audit_env(
            &["--policy", policy.to_str().unwrap_or_default(), "notify", "test"],
            &[("OK_URL", &format!("{}/ok?token=SECRETQUERY", rx.url)), ("DOWN_URL", &down)],
        )?;
    }
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "notify", "status", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let sink = |n: &str| v.as_array().and_then(|a| a.iter().find(|s| s["name"] == n)).cloned().unwrap_or_default();
    assert_eq!((sink("ok")["tests_sent"].as_u64(), sink("ok")["tests_failed"].as_u64()), (Some(2), Some(0)), "{v}");
    assert_eq!((sink("down")["tests_sent"].as_u64(), sink("down")["tests_failed"].as_u64()), (Some(2), Some(2)), "{v}");
    assert!(sink("ok")["last_test"][1].as_str().is_some_and(|s| s == "delivered (HTTP 200)"), "{v}");
    let (_, text, _) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "notify", "status"])?;
    assert!(text.contains("ok [webhook] enabled: 0 delivered, 0 pending, 0 given up; 2 test(s) sent (0 failed), the last at"), "{text}");
    for secret in ["SECRETPATH", "SECRETQUERY"] {
        assert!(!text.contains(secret) && !out.contains(secret), "{secret} leaked:\n{text}\n{out}");
    }
    Ok(())
}

#[test]
fn a_malformed_notify_entry_is_a_policy_check_error_at_its_place() -> Result<()> {
    let repo = Repo::new()?;
    let p = repo.tmp.path().join("bad.toml");
    std::fs::write(
        &p,
        "version = 1\n\n[[notify]]\nkind = \"webhook\"\nurl_env = \"HOOK_URL\"\nevents = [\"push.refsued\"]\n\n[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/X\"\nurl_env = \"SLACK_URL\"\n\n[[notify]]\nkind = \"teams\"\n",
    )?;
    let (code, _, err) = repo.audit(&["--policy", p.to_str().unwrap_or_default(), "policy", "check"])?;
    assert_eq!(code, 2, "an invalid policy exits 2: {err}");
    let file = p.display().to_string();
    assert!(err.contains(&format!("{file}:4:8: the webhook sink `webhook` has no signing secret")), "{err}");
    assert!(err.contains(&format!("{file}:6:11: `push.refsued` matches no event")), "{err}");
    assert!(err.contains(&format!("{file}:11:11: give only one of url, url_env and url_file")), "{err}");
    assert!(err.contains(&format!("{file}:14:8: the sink has no url")), "{err}");

    std::fs::write(&p, "version = 1\n[[notify]]\nkind = \"email\"\nurl_env = \"X\"\n")?;
    let (code, _, err) = repo.audit(&["--policy", p.to_str().unwrap_or_default(), "policy", "check"])?;
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{file}:3:8: ")) && err.contains("webhook") && err.contains("slack") && err.contains("teams"), "{err}");

    // A literal URL is allowed, with a warning: it is a credential.
    std::fs::write(
        &p,
        "version = 1\n[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/X\"\nevents = [\"finding.*\", \"ledger.*\"]\n",
    )?;
    let (code, out, err) = repo.audit(&["--policy", p.to_str().unwrap_or_default(), "policy", "check"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("warning: {file}:4:7: the [[notify]] `slack` webhook URL is written in the policy")), "{err}");
    Ok(())
}

#[test]
fn policy_changes_ledger_gaps_and_failed_verification_are_told() -> Result<()> {
    let k = keys();
    let rx = Receiver::start();
    let repo = Repo::new()?;
    let sinks = format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"{}/h\"\nsecret_file = \"SECRET_FILE\"\nevents = [\"policy.changed\", \"ledger.*\"]\n",
        rx.url
    );
    let server = server_with(&repo, &sinks, false)?;
    repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    audit_on(&repo, &server, &["notify", "drain", "--budget", "2s"])?;
    assert_eq!(rx.got("/h").len(), 0, "an ordinary push is not news");

    // The policy admin changes the policy on main: accepted, and told.
    std::fs::write(repo.path.join(".git-audit.toml"), "version = 1\n")?;
    let change = repo.commit("chore: adopt a policy", Sign::Pgp(&k.alice))?;
    let (code, said) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{said}");
    audit_on(&repo, &server, &["notify", "drain", "--budget", "5s"])?;
    let got = rx.got("/h");
    assert_eq!(got.len(), 1);
    let p = got[0].json();
    assert_eq!(p["type"], "policy.changed");
    assert_eq!(p["data"]["changes"][0]["commit"], change);
    assert_eq!(p["data"]["changes"][0]["path"], ".git-audit.toml");
    assert_eq!(seq_kind(&server, p["data"]["ledger"]["seq"].as_u64().unwrap_or(u64::MAX))?, "push.decided");

    // A decision that could not be recorded: the next append writes the gap, and tells.
    let key = server.hooks_key();
    let saved = std::fs::read(&key)?;
    std::fs::remove_file(&key)?;
    repo.commit("feat: while the key was away", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    std::fs::write(&key, &saved)?;
    repo.commit("feat: key is back", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    audit_on(&repo, &server, &["notify", "drain", "--budget", "5s"])?;
    let got = rx.got("/h");
    assert_eq!(got.len(), 2);
    let g = got[1].json();
    assert_eq!(g["type"], "ledger.gap");
    assert_eq!(g["data"]["unrecorded"], 2, "the pre-receive decision and the post-receive ref update");
    assert_eq!(seq_kind(&server, g["data"]["ledger"]["seq"].as_u64().unwrap_or(u64::MAX))?, "ledger.gap");

    // Someone edits a recorded entry: `ledger verify` fails, and tells.
    rusqlite::Connection::open(server.ledger())?.execute("UPDATE entries SET actor = 'someone-else' WHERE seq = 1", [])?;
    let (code, out, err) = audit_on(&repo, &server, &["ledger", "verify"])?;
    assert_eq!(code, 1, "{out}{err}");
    let got = rx.got("/h");
    assert_eq!(got.len(), 3, "{err}");
    let v = got[2].json();
    assert_eq!(v["type"], "ledger.verify-failed");
    assert!(v["data"]["problems"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["data"]["ledger_path"].as_str().is_some_and(|p| p.ends_with("ledger.db")), "{v}");
    assert!(v["data"]["ledger"].is_null(), "no entry reports a failed verification, so no `ledger` seq: {v}");
    assert!(verify_standard_webhook(SECRET, &got[2]));
    assert_schema(&got[2]);
    Ok(())
}

/// A one-shot HTTPS receiver (rustls): answers 200 to each request and keeps its bodies.
struct TlsReceiver {
    url: String,
    got: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output()?;
    anyhow::ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

impl TlsReceiver {
    /// A CA and a server certificate for 127.0.0.1 made with openssl; returns the receiver and the CA file.
    fn start(dir: &std::path::Path) -> Result<(TlsReceiver, std::path::PathBuf)> {
        use rustls::pki_types::pem::PemObject;
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=git-audit test CA",
            ],
        )?;
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        )?;
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n")?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        )?;
        let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<_, _>>()?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        rt.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, sink) = (acceptor.clone(), sink.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then Content-Length bytes of body.
                    loop {
                        let Ok(n) = tls.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                sink.lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                                let _ = tls.shutdown().await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Ok((TlsReceiver { url, got, _rt: rt }, dir.join("ca.pem")))
    }
}

#[test]
fn an_https_sink_is_reached_with_the_trusted_roots_and_refused_without_them() -> Result<()> {
    let repo = Repo::new()?;
    let (rx, ca) = TlsReceiver::start(repo.tmp.path())?;
    std::fs::write(repo.tmp.path().join("s"), SECRET)?;
    let policy = repo.tmp.path().join("p.toml");
    std::fs::write(&policy, "version = 1\n[[notify]]\nkind = \"webhook\"\nname = \"tls\"\nurl_env = \"HOOK_URL\"\nsecret_file = \"s\"\n")?;
    let url = format!("{}/hook?token=SECRETQUERY", rx.url);
    let p = policy.to_str().unwrap_or_default();
    // Our CA is not among the system's roots: the certificate is refused, and the error says so without the URL.
    let (code, out, err) = repo.audit_env(&["--policy", p, "notify", "test", "--timeout", "5s"], &[("HOOK_URL", &url)])?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("tls: FAILED: ") && out.to_lowercase().contains("certificate"), "{out}");
    assert!(!out.contains("SECRETQUERY") && !err.contains("SECRETQUERY"), "{out}{err}");
    assert_eq!(rx.got.lock().map(|g| g.len()).unwrap_or(0), 0);
    // With the CA trusted (SSL_CERT_FILE, read by the system-roots loader): delivered over TLS.
    let (code, out, err) =
        repo.audit_env(&["--policy", p, "notify", "test"], &[("HOOK_URL", &url), ("SSL_CERT_FILE", ca.to_str().unwrap_or_default())])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tls: delivered (HTTP 200)"), "{out}");
    let bodies = rx.got.lock().map(|g| g.clone()).unwrap_or_default();
    assert_eq!(bodies.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&bodies[0])?;
    assert_eq!(body["type"], "notify.test");
    Ok(())
}
