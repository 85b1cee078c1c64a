//! `git-audit serve`: the real binary on a free port, read over HTTP and by
//! headless Chromium; what it refuses (other methods, open binds without a
//! token, requests without the token).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};

use anyhow::{Context, Result};

use crate::fake_github::{Fake, World, TOKEN};
use crate::support::{keys, pinned_policy, Repo, Sign, BIN};

/// A running `git-audit serve`; killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> Result<Server> {
    let mut c = repo.cmd(BIN);
    c.arg("serve").args(args).stderr(Stdio::piped()).stdout(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn()?;
    let mut line = String::new();
    BufReader::new(child.stderr.take().context("stderr")?).read_line(&mut line)?;
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).map(str::to_string);
    let Some(addr) = addr else {
        let _ = child.kill();
        anyhow::bail!("serve did not start: {line}");
    };
    Ok(Server { child, addr })
}

/// One HTTP/1.1 request; returns (status, headers, body).
pub(crate) fn http(addr: &str, method: &str, path: &str, headers: &[&str]) -> Result<(u16, String, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    // Bodies come chunked from axum: good enough to search in; JSON is read from /api with a de-chunker.
    Ok((status, head.to_string(), body.to_string()))
}

pub(crate) fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { return body.to_string() };
        if n == 0 {
            break;
        }
        out.push_str(after.get(..n).unwrap_or(after));
        rest = after.get(n + 2..).unwrap_or("");
    }
    out
}

fn json_of(addr: &str, path: &str) -> Result<serde_json::Value> {
    let (status, head, body) = http(addr, "GET", path, &[])?;
    assert_eq!(status, 200, "{path}: {head}{body}");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    serde_json::from_str(&body).with_context(|| format!("{path}: {body}"))
}

/// A repository whose ledger holds verified commits, a refused push and a deployment.
fn audited_repo() -> Result<Repo> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let a = repo.commit("feat: signed", Sign::Pgp(&keys().alice))?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"])?;
    assert_eq!(code, 0, "{out}{err}");
    let refused = serde_json::json!({"accepted": false, "violations": 1, "reasons": ["unsigned commit"],
        "pusher": {"identity": "mallory@example.com"}, "ref_updates": [{"ref": "refs/heads/main", "old": "0", "new": a, "errors": 1}]});
    let (code, _, err) = repo.append_fact("push.decided", "refs/heads/main", "", &refused.to_string())?;
    assert_eq!(code, 0, "{err}");
    let ci = [("CI", "true"), ("GITLAB_CI", "true"), ("CI_COMMIT_SHA", a.as_str()), ("CI_ENVIRONMENT_NAME", "production")];
    let (code, _, err) = repo.audit_env(&["record", "deployment", "--approved-by", "erin"], &ci)?;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        repo.audit(&["record", "deployment", "--environment", "staging", "--sha", &a, "--status", "failure", "--actor", "ci"])?;
    assert_eq!(code, 0, "{err}");
    Ok(repo)
}

/// The commit the audited repository verified and deployed.
fn status_commit(repo: &Repo) -> Result<String> {
    repo.git(&["rev-parse", "HEAD"])
}

fn chromium(repo: &Repo, url: &str, extra: &[&str]) -> Result<std::process::Output> {
    let profile = repo.tmp.path().join("chromium-profile");
    Ok(std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()?)
}

#[test]
fn serve_shows_the_ledger_read_only_with_its_provenance() -> Result<()> {
    let repo = audited_repo()?;
    let (_, status, _) = repo.audit(&["ledger", "status", "--format", "json"])?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    let root = status["root"].as_str().context("root")?.to_string();
    let pubkey = status["public_key"].as_str().context("key")?.to_string();
    let server = serve(&repo, &["--listen", "127.0.0.1:0"], &[])?;
    let addr = server.addr.clone();

    // The dashboard, as a browser sees it: tiles, and the checkpoint it was computed at.
    let url = format!("http://{addr}/?since=2000-01-01");
    let dom = chromium(&repo, &url, &["--dump-dom"])?;
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains(&format!("<code id=\"checkpoint-root\">{root}</code>")), "{dom}");
    for tile in ["tile-deployments", "tile-cfr", "tile-lead", "tile-restore", "tile-refused", "tile-findings"] {
        assert!(dom.contains(&format!("id=\"{tile}\"")), "{tile} missing:\n{dom}");
    }
    // Every environment side by side: staging's one deployment failed.
    // Each environment links to its own dashboard over the same window.
    let env_link = |env: &str| format!("<td><a href=\"/?env={env}&amp;since=2000-01-01&amp;until=\">{env}</a></td>");
    let staging = dom.split(&env_link("staging")).nth(1).unwrap_or_default();
    assert!(staging.starts_with("<td>1</td><td>1</td><td>100%</td><td>low</td>"), "{dom}");
    assert!(dom.contains(&format!("{}<td>1</td><td>0</td><td>0%</td><td>elite</td>", env_link("production"))), "{dom}");
    // What shipped to production and who approved it.
    let shipped = dom.split("Deployments to production (1)").nth(1).unwrap_or_default();
    assert!(shipped.contains("<td>erin</td>") && shipped.contains("<td class=\"good\">success</td>"), "{dom}");
    // Trends over the window (26 years: by month): deployments, change failure rate, lead time.
    for chart in ["Deployments per month", "Change failure rate per month", "Median lead time per month"] {
        assert!(dom.contains(chart), "{chart} missing:\n{dom}");
    }
    let refused = dom.split("id=\"tile-refused\"").nth(1).unwrap_or_default();
    assert!(refused.contains("<div class=\"value bad\">1</div>"), "{refused}");
    assert!(!dom.contains("<script"), "pages need no script");
    // The window can be changed on the page: a GET form that keeps what was asked.
    assert!(
        dom.contains("<form class=\"window\" method=\"get\" action=\"/\">") && dom.contains("name=\"since\" value=\"2000-01-01\""),
        "{dom}"
    );
    // A screenshot, kept as the test's artifact.
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots)?;
    let shot = shots.join("serve-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&repo, &url, &["--window-size=1200,900", &format!("--screenshot={}", shot.display())])?;
    let png = std::fs::read(&shot).context("no screenshot")?;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{} bytes", png.len());

    // Every page answers; each carries the provenance footer.
    for page in ["/deployments?since=2000-01-01", "/compliance?since=2000-01-01", "/dora?since=2000-01-01", "/pushes?since=2000-01-01"] {
        let (code, head, body) = http(&addr, "GET", page, &[])?;
        assert_eq!(code, 200, "{page}: {head}");
        assert!(body.contains("id=\"checkpoint-root\""), "{page}");
    }
    // Outcomes in colour, seqs linked to their entries, commits to their trace.
    let (_, _, body) = http(&addr, "GET", "/pushes?since=2000-01-01", &[])?;
    assert!(body.contains("mallory@example.com") && body.contains("<td class=\"bad\">refused</td>"), "{body}");
    // They keep the page's window and environment, so the entry's own navigation does too.
    assert!(body.contains("<a href=\"/entry/2?since=2000-01-01&amp;env=production\">2</a>"), "{body}");
    let (_, _, entry) = http(&addr, "GET", "/entry/2?since=2000-01-01&env=production", &[])?;
    assert!(entry.contains("<a href=\"&#x2f;pushes?since=2000-01-01&amp;env=production\">"), "{entry}");
    let (_, _, body) = http(&addr, "GET", "/deployments?since=2000-01-01", &[])?;
    let sha = status_commit(&repo)?;
    assert!(body.contains(&format!("<a href=\"/trace/{}?since=2000-01-01&amp;env=production\">", &sha[..10])), "{body}");
    let (code, _, body) = http(&addr, "GET", &format!("/trace/{}", &sha[..10]), &[])?;
    assert_eq!(code, 200);
    assert!(body.contains("commit.verified") || body.contains("good"), "{body}");

    // The JSON behind the pages is the report's, plus provenance.
    let served = json_of(&addr, "/api/compliance?since=2000-01-01")?;
    let (_, out, _) = repo.audit(&["report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    let mut cli: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(served["provenance"]["checkpoint_root"], root.as_str());
    let mut served_wo = served.clone();
    served_wo.as_object_mut().context("object")?.remove("provenance");
    cli.as_object_mut().context("object")?.remove("provenance");
    assert_eq!(served_wo, cli);

    // An entry, with its inclusion proof, checkable offline by `ledger check-proof`.
    let (code, _, body) = http(&addr, "GET", "/entry/1", &[])?;
    assert_eq!(code, 200);
    assert!(body.contains("Inclusion proof") && body.contains("Signed checkpoint"), "{body}");
    let proof = json_of(&addr, "/api/entry/1")?;
    let file = repo.tmp.path().join("served-proof.json");
    std::fs::write(&file, proof.to_string())?;
    let (code, out, err) = repo.audit(&["ledger", "check-proof", file.to_str().context("path")?, "--key", &pubkey])?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, head, _) = http(&addr, "GET", "/search?q=1", &[])?;
    assert!(code == 303 && head.contains("location: /entry/1"), "{head}");
    let (code, _, _) = http(&addr, "GET", "/entry/999", &[])?;
    assert_eq!(code, 404);
    let (code, _, body) = http(&addr, "GET", "/api/nonsense", &[])?;
    assert!(code == 404 && body.contains("the reports are deployments, dora, compliance, pushes and sources"), "{code} {body}");

    // Loopback only means loopback names: a rebound DNS name is refused.
    let mut s = std::net::TcpStream::connect(&addr)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    assert!(raw.starts_with("HTTP/1.1 403") && raw.contains("is not served"), "{raw}");
    // Read-only: anything but GET and HEAD is refused.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let (code, head, _) = http(&addr, method, "/", &[])?;
        assert_eq!(code, 405, "{method}: {head}");
    }
    let (code, head, _) = http(&addr, "GET", "/", &[])?;
    assert_eq!(code, 200);
    assert!(head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{head}");
    Ok(())
}

/// PRs, commits and deployments link to their pages on the forge the ledger
/// recorded them from — here a GitHub Enterprise host, read from the synced
/// `html_url`s, never assumed to be github.com.
#[test]
fn served_pages_link_to_the_forge_the_ledger_names() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let good = repo.commit("feat: reviewed", Sign::Pgp(&keys().alice))?;
    let policy = repo.policy(&pinned_policy(""))?;
    assert_eq!(repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"])?.0, 0);
    let ghe = "https://ghe.example.com";
    let mut w = World::new("acme/api");
    w.pull(7, "alice", "2026-07-01T00:00:00Z", std::slice::from_ref(&good));
    w.review(7, "carol", "APPROVED", &good, "2026-07-01T01:00:00Z");
    w.merge(7, "bob", "2026-07-01T02:00:00Z", &good);
    w.landed(&good, "2026-07-01T02:00:00Z", &[7]);
    let d = w.deployment(&good, "main", "production", "2026-07-01T03:00:00Z");
    w.status(d, "success", "2026-07-01T03:05:00Z", Some(&format!("{ghe}/acme/api/actions/runs/99/job/1")));
    w.run(99, "alice", "alice", "main");
    for p in &mut w.pulls {
        p["html_url"] = serde_json::json!(format!("{ghe}/acme/api/pull/{}", p["number"]));
    }
    for r in w.runs.values_mut() {
        r["html_url"] = serde_json::json!(format!("{ghe}/acme/api/actions/runs/99"));
    }
    let fake = Fake::start(w);
    let out = repo.cmd(BIN).env("GITHUB_TOKEN", TOKEN).args(["sync", "--github", "acme/api", "--api-url", &fake.url]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A recorded deployment from another CI, its job named by the CI itself.
    let ci = [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_COMMIT_SHA", good.as_str()),
        ("CI_ENVIRONMENT_NAME", "staging"),
        ("CI_JOB_URL", "https://gitlab.example.com/acme/api/-/jobs/42"),
    ];
    let (code, _, err) = repo.audit_env(&["record", "deployment"], &ci)?;
    assert_eq!(code, 0, "{err}");
    let server = serve(&repo, &["--listen", "127.0.0.1:0"], &[])?;
    let addr = server.addr.clone();

    let (code, _, body) = http(&addr, "GET", "/deployments?since=2000-01-01&env=*", &[])?;
    assert_eq!(code, 200);
    let short = &good[..10];
    assert!(
        body.contains(&format!(
            "<a href=\"/trace/{short}?since=2000-01-01&amp;env=*\">{short}</a> <a class=\"forge\" href=\"{ghe}/acme/api/commit/{short}\""
        )),
        "{body}"
    );
    assert!(body.contains(&format!("<a href=\"{ghe}/acme/api/actions/runs/99\">{d}</a>")), "{body}");
    assert!(body.contains("<a href=\"https://gitlab.example.com/acme/api/-/jobs/42\">"), "{body}");
    assert!(body.contains(&format!("<a href=\"{ghe}/acme/api/pull/7\">#7</a>")), "{body}");
    assert!(!body.contains("https://github.com/"), "nothing assumed to be on github.com: {body}");
    let (code, _, body) = http(&addr, "GET", &format!("/trace/{good}"), &[])?;
    assert_eq!(code, 200);
    assert!(body.contains(&format!("<a href=\"{ghe}/acme/api/pull/7\">acme/api#7</a>")), "{body}");
    assert!(body.contains(&format!("<p id=\"forge\">On the forge: <a href=\"{ghe}/acme/api/commit/{good}\">")), "{body}");
    Ok(())
}

#[test]
fn serve_needs_a_token_off_loopback_and_then_on_every_request() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let (code, _, err) = repo.audit(&["serve", "--listen", "0.0.0.0:0"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without a token") && err.contains("--token-file"), "{err}");
    let (code, _, err) = repo.audit_env(&["serve", "--listen", "0.0.0.0:0", "--token-env", "AUDIT_TOKEN"], &[("AUDIT_TOKEN", "short")])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shorter than 16"), "{err}");

    let token = "s3cret-token-for-the-dashboard";
    let server = serve(&repo, &["--listen", "0.0.0.0:0", "--token-env", "AUDIT_TOKEN"], &[("AUDIT_TOKEN", token)])?;
    let port = server.addr.rsplit(':').next().context("port")?;
    let addr = format!("127.0.0.1:{port}");
    let (code, head, body) = http(&addr, "GET", "/", &[])?;
    assert_eq!(code, 401, "{head}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer") && !body.contains(token));
    let (code, _, _) = http(&addr, "GET", "/api/compliance", &["Authorization: Bearer wrong-token-of-the-same-len"])?;
    assert_eq!(code, 401);
    let (code, head, _) = http(&addr, "GET", "/", &[&format!("Authorization: Bearer {token}")])?;
    assert_eq!(code, 200, "{head}");
    Ok(())
}

#[test]
fn every_report_format_says_where_its_answer_came_from() -> Result<()> {
    let repo = audited_repo()?;
    let (_, status, _) = repo.audit(&["ledger", "status", "--format", "json"])?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    let (root, size) = (status["root"].as_str().context("root")?, status["size"].as_u64().context("size")?);
    let (code, out, err) = repo.audit(&["report", "dora", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["provenance"]["checkpoint_root"], root);
    assert_eq!(v["provenance"]["checkpoint_size"], size);
    assert!(v["provenance"]["generated_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    let (_, table, _) = repo.audit(&["report", "dora", "--since", "2000-01-01"])?;
    assert!(table.contains(&format!("at checkpoint size {size}, root {root}")), "{table}");
    // An open-ended window reads "since X", not "to 9999-12-31".
    assert!(table.starts_with("DORA metrics for production since 2000-01-01") && !table.contains("9999"), "{table}");
    let footer: Vec<&str> = table.lines().skip_while(|l| !l.starts_with("generated ")).collect();
    assert!(footer.len() >= 3 && footer.iter().all(|l| l.chars().count() <= 100), "{table}");
    let (_, md, _) = repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "markdown"])?;
    assert!(md.contains(&format!("root {root}")) && !md.contains("9999"), "{md}");
    // CSV is one table of raw values: fractions and hours, full ids, empty for none.
    let (code, csv, err) = repo.audit(&["report", "dora", "--since", "2000-01-01", "--env", "staging", "--format", "csv"])?;
    assert_eq!(code, 0, "{err}");
    assert!(csv.starts_with("section,metric,value,week,"), "{csv}");
    assert!(csv.contains("\nOverall,change failure rate,1,") && csv.contains("\nOverall,failed deployments,1,"), "{csv}");
    assert!(!csv.contains('%') && !csv.contains('—') && !csv.contains(" of "), "raw numbers only: {csv}");
    let (_, csv, _) = repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "csv"])?;
    let sha = status_commit(&repo)?;
    assert!(csv.contains(&format!(",{sha},")) && !csv.contains('—'), "{csv}");
    let page = repo.tmp.path().join("dora.html");
    repo.audit(&["report", "dora", "--since", "2000-01-01", "--output", page.to_str().context("path")?])?;
    let html = std::fs::read_to_string(&page)?;
    assert!(html.contains("id=\"checkpoint-root\"") && !html.contains("<script") && !html.contains(" href="), "{html}");
    Ok(())
}

#[test]
fn a_rollback_and_the_deployment_it_undoes_are_marked_where_they_happen() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let good = repo.commit("feat: good", Sign::Pgp(&keys().alice))?;
    let bad = repo.commit("feat: bad", Sign::Pgp(&keys().alice))?;
    for (sha, id) in [(&good, "d-1"), (&bad, "d-2"), (&good, "d-3")] {
        let (code, _, err) = repo.audit(&[
            "record",
            "deployment",
            "--environment",
            "production",
            "--sha",
            sha,
            "--status",
            "success",
            "--id",
            id,
            "--actor",
            "ci",
        ])?;
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let deps = v["deployments"].as_array().context("deployments")?;
    assert_eq!(deps.len(), 3, "{v}");
    assert!(deps[0]["rolled_back_by"].is_null() && deps[0]["rollback_of"].is_null(), "{v}");
    assert_eq!(deps[1]["rolled_back_by"], deps[2]["id"], "{v}");
    assert_eq!(deps[2]["rollback_of"], deps[1]["id"], "{v}");
    assert!(deps[1]["note"].as_str().is_some_and(|n| n.starts_with("rolled back by deployment")), "{v}");
    let (_, table, _) = repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "markdown"])?;
    // For people, briefly: the deployment's id (its sha is on its row).
    let (undoer, undone) = (deps[2]["id"].as_str().unwrap_or("?"), deps[1]["id"].as_str().unwrap_or("?"));
    assert!(table.contains(&format!("rolled back by {undoer} |")) && table.contains(&format!("rollback of {undone} |")), "{table}");
    // DORA counts the undone deployment as failed, from the same rule.
    let (_, out, _) = repo.audit(&["report", "dora", "--since", "2000-01-01", "--format", "json"])?;
    let dora: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(dora["overall"]["failed"], 1, "{dora}");
    Ok(())
}

#[test]
fn every_served_page_checks_its_ground_and_says_when_it_gives_way() -> Result<()> {
    let repo = audited_repo()?;
    let server = serve(&repo, &["--listen", "127.0.0.1:0"], &[])?;
    let addr = server.addr.clone();
    let get = |path: &str| -> Result<String> {
        let (_, head, body) = http(&addr, "GET", path, &[])?;
        Ok(if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body })
    };
    let (status, _, _) = http(&addr, "GET", "/compliance?since=2000-01-01", &[])?;
    let body = get("/compliance?since=2000-01-01")?;
    assert_eq!(status, 200);
    assert!(body.contains("ledger checked against its signed checkpoint") && !body.contains("id=\"ground-warning\""), "{body}");
    // Edit the entry the refused push is recorded in: the page citing it says so.
    let db = repo.path.join(".git/audit/ledger.db");
    let seq: i64 = rusqlite::Connection::open(&db)?.query_row("SELECT seq FROM entries WHERE kind = 'push.decided'", [], |r| r.get(0))?;
    rusqlite::Connection::open(&db)?
        .execute("UPDATE entries SET payload = replace(payload, 'mallory', 'trusted') WHERE seq = ?1", [seq])?;
    let v = json_of(&addr, &format!("/api/trace/{}", status_commit(&repo)?))?;
    // The trace cites the push: its answer says the ground gave way.
    assert_eq!(v["provenance"]["ground"]["ok"], false, "{v}");
    assert_eq!(v["provenance"]["ground"]["problems"][0], format!("cited entry seq {seq} is not what the signed log holds (edited)"));
    let page = get(&format!("/entry/{seq}"))?;
    assert!(
        page.contains("id=\"ground-warning\"") && page.contains(&format!("cited entry seq {seq} is not what the signed log holds")),
        "{page}"
    );
    // A head that does not match its signature: every page says so.
    rusqlite::Connection::open(&db)?.execute("UPDATE head SET root = zeroblob(32)", [])?;
    for path in ["/", "/compliance?since=2000-01-01", "/deployments?since=2000-01-01"] {
        let page = get(path)?;
        assert!(page.contains("id=\"ground-warning\""), "{path}: {page}");
    }
    Ok(())
}

#[test]
fn the_pushes_page_names_the_rules_each_refusal_broke() -> Result<()> {
    use crate::hooks::{push, signing_policy, Server};
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(""), "sha1")?;
    repo.commit("feat: unsigned", crate::support::Sign::None)?;
    let (code, _) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    let ledger = server.path.join("audit/ledger.db");
    let srv = serve(&repo, &["--listen", "127.0.0.1:0", "--ledger", ledger.to_str().context("path")?], &[])?;
    let v = json_of(&srv.addr, "/api/pushes?since=2000-01-01")?;
    let refused = v["decisions"].as_array().and_then(|d| d.iter().find(|d| d["accepted"] == false)).cloned().unwrap_or_default();
    assert!(refused["rules"].as_array().is_some_and(|r| r.iter().any(|x| x == "signing.required")), "{v}");
    // The same report on the command line: `report pushes`, the web page's twin.
    let ledger_arg = ledger.to_str().context("path")?;
    let (code, out, err) =
        repo.audit(&["--ledger", ledger_arg, "report", "pushes", "--since", "2000-01-01", "--decision", "refused", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let cli: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(
        cli["decisions"],
        v["decisions"]
            .as_array()
            .map(|d| d.iter().filter(|d| d["accepted"] == false).cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .collect::<serde_json::Value>(),
        "{out}"
    );
    let (_, table, _) = repo.audit(&["--ledger", ledger_arg, "report", "pushes", "--since", "2000-01-01"])?;
    assert!(table.contains("refused") && table.contains("signing.required"), "{table}");
    let (_, head, body) = http(&srv.addr, "GET", "/pushes?since=2000-01-01", &[])?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body };
    assert!(body.contains("signing.required"), "{body}");
    // In a browser: the refused-pushes tile leads to the refusals alone, each with its rule.
    let dom = browse(&repo, &srv.addr, "/?since=2000-01-01", "dashboard-refused")?;
    let href = href_before(&dom, "id=\"tile-refused\"").context("refused tile link")?;
    assert_eq!(href, "/pushes?since=2000-01-01&env=production&decision=refused");
    let dom = browse(&repo, &srv.addr, &href, "pushes-refused")?;
    assert!(dom.contains("(refused only)"), "{dom}");
    let rows: Vec<&str> = dom.split("<h2>Decisions").nth(1).unwrap_or_default().split("<tr>").skip(2).collect();
    assert!(!rows.is_empty(), "{dom}");
    for r in rows.iter().filter(|r| r.contains("<td")) {
        assert!(r.contains(">refused</td>") && r.contains("signing.required"), "{r}");
    }
    Ok(())
}

#[test]
fn with_no_window_the_dashboard_finds_the_data_and_says_which_window_it_chose() -> Result<()> {
    // Deployments in July 2026: more than 90 days before any run of this test.
    let h = crate::reports::history()?;
    let srv = serve(&h.repo, &["--listen", "127.0.0.1:0"], &[])?;
    let get = |path: &str| -> Result<String> {
        let (_, head, body) = http(&srv.addr, "GET", path, &[])?;
        Ok(if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body })
    };
    // The number a tile shows.
    let tile = |page: &str, id: &str| -> String {
        page.split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|t| t.split("<div class=\"value").nth(1))
            .and_then(|t| t.split('>').nth(1))
            .and_then(|t| t.split('<').next())
            .unwrap_or("?")
            .to_string()
    };
    let page = get("/")?;
    // Prints as it reads: no navigation or form on paper, rows kept whole, and
    // no word broken to squeeze a column ("succe"/"ss").
    assert!(page.contains("@media print{nav,form.window{display:none}") && page.contains("overflow-wrap:break-word"), "{page}");
    assert!(
        page.contains("id=\"window-chosen\">Nothing in the last 90 days: showing the 90 days up to the newest data (2026-07-04)"),
        "{page}"
    );
    assert_eq!(tile(&page, "tile-deployments"), "4", "{page}");
    assert!(page.contains("value=\"2026-07-04\""), "the form shows the window chosen: {page}");
    // The window goes along: in the navigation, and from the findings tile to the list it counts.
    assert!(page.contains("<a href=\"&#x2f;deployments?since=2026-04-06&amp;until=2026-07-04&amp;env=production\">"), "{page}");
    assert!(
        page.contains(
            "<a class=\"tile-link\" href=\"/compliance?since=2026-04-06&amp;until=2026-07-04&amp;env=production&amp;kind=violation\"><div class=\"tile\" id=\"tile-findings\""
        ),
        "{page}"
    );
    // A window asked for is the window shown, with nothing chosen for you.
    let page = get("/?since=90d")?;
    assert!(!page.contains("id=\"window-chosen\""), "{page}");
    assert_eq!(tile(&page, "tile-deployments"), "0", "{page}");
    Ok(())
}

/// A page as headless Chromium renders it: its DOM, and a screenshot kept
/// under `target/tmp/screenshots/NAME.png` for a person to look at.
fn browse(repo: &Repo, addr: &str, path: &str, shot: &str) -> Result<String> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir)?;
    let png = dir.join(format!("{shot}.png"));
    let _ = std::fs::remove_file(&png);
    let url = format!("http://{addr}{path}");
    let out = chromium(repo, &url, &["--window-size=1280,1800", "--hide-scrollbars", &format!("--screenshot={}", png.display())])?;
    let bytes = std::fs::read(&png).with_context(|| format!("no screenshot of {path}: {}", String::from_utf8_lossy(&out.stderr)))?;
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{shot}: {} bytes", bytes.len());
    let dom = chromium(repo, &url, &["--dump-dom"])?;
    Ok(String::from_utf8_lossy(&dom.stdout).into_owned())
}

/// The link a tile or chart is wrapped in: the last `href` before `marker`.
fn href_before(dom: &str, marker: &str) -> Option<String> {
    let before = dom.split(marker).next().filter(|b| b.len() < dom.len())?;
    let href = before.rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// The HTML of one chart (`<figure id=ID>`).
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    dom.split(&format!("<figure class=\"chart\" id=\"{id}\"")).nth(1).and_then(|c| c.split("</figure>").next()).unwrap_or_default()
}

#[test]
fn an_auditor_follows_the_dashboard_down_to_proof_in_a_browser() -> Result<()> {
    // Four production deployments in the week of 2026-06-29 (D2 failed, D3 rolled back).
    let h = crate::reports::history()?;
    let srv = serve(&h.repo, &["--listen", "127.0.0.1:0"], &[])?;
    let quarter = "/?since=2026-06-01&until=2026-08-31&env=production";
    let dom = browse(&h.repo, &srv.addr, quarter, "dashboard-quarter")?;

    // A quarter by week: every week present, the thirteen empty ones drawn as zero, dated ticks.
    let chart = figure(&dom, "chart-deployments");
    assert_eq!(chart.matches("class=\"period\"").count(), 14, "{chart}");
    assert_eq!(chart.matches("class=\"zero\"").count(), 13, "{chart}");
    assert!(chart.contains(">2026-06-01</text>") && chart.contains("class=\"tick\""), "{chart}");
    assert!(chart.contains("<title id=\"chart-deployments-title\">Deployments per week</title>"), "{chart}");
    // The busy week links to its deployments, and its failed part is drawn apart.
    let busy = "data-period=\"2026-W27\" data-start=\"2026-06-29\" data-value=\"4\"";
    assert!(chart.contains(busy) && chart.contains("class=\"bad\""), "{chart}");
    let week = href_before(chart, busy).context("the busy week links nowhere")?;
    assert_eq!(week, "/deployments?since=2026-06-29&until=2026-07-05&env=production");
    let listed = browse(&h.repo, &srv.addr, &week, "deployments-week")?;
    assert!(listed.contains("Deployments (4)"), "{listed}");
    // Failure rate and lead time are lines that stop where there is nothing to measure.
    let cfr = figure(&dom, "chart-cfr");
    assert_eq!(cfr.matches("class=\"period gap\"").count(), 13, "{cfr}");
    assert!(cfr.contains("Gaps are periods with no data"), "{cfr}");
    assert!(!figure(&dom, "chart-lead").contains("No data"), "history has commits to measure");

    // The change failure rate counts what its tile links to: the failed and the rolled back.
    let failed = href_before(&dom, "id=\"tile-cfr\"").context("cfr tile")?;
    assert_eq!(failed, "/deployments?since=2026-06-01&until=2026-08-31&env=production&status=failed");
    let failed = browse(&h.repo, &srv.addr, &failed, "deployments-failed")?;
    assert!(failed.contains("Deployments (2)") && failed.contains("(failed or rolled back)"), "{failed}");

    // Violations and "could not verify" are separate tiles, each linked to its own list.
    let tile_value = |dom: &str, id: &str| -> Option<usize> {
        dom.split(&format!("id=\"{id}\"")).nth(1)?.split("<div class=\"value").nth(1)?.split('>').nth(1)?.split('<').next()?.parse().ok()
    };
    for (tile, kind) in [("tile-findings", "violation"), ("tile-unverified", "unverified"), ("tile-anomalies", "anomaly")] {
        let href = href_before(&dom, &format!("id=\"{tile}\"")).context("tile link")?;
        assert_eq!(href, format!("/compliance?since=2026-06-01&until=2026-08-31&env=production&kind={kind}"));
        let list = browse(&h.repo, &srv.addr, &href, &format!("compliance-{kind}"))?;
        let n = tile_value(&dom, tile).context("tile value")?;
        assert!(list.contains(&format!("<h2>Findings ({n})</h2>")), "{tile} says {n}:\n{list}");
    }
    // From the findings list to an entry with its proof, the window kept all the way.
    let list = browse(&h.repo, &srv.addr, "/compliance?since=2026-06-01&until=2026-08-31&env=production&kind=violation", "violations")?;
    let findings = list.split("<h2>Findings (").nth(1).unwrap_or_default();
    let entry = findings.split("href=\"/entry/").nth(1).and_then(|e| e.split('"').next()).context("no finding cites an entry")?;
    let entry = format!("/entry/{}", entry.replace("&amp;", "&"));
    assert!(entry.ends_with("?since=2026-06-01&until=2026-08-31&env=production"), "{entry}");
    let proof = browse(&h.repo, &srv.addr, &entry, "entry-proof")?;
    assert!(
        proof.contains("<pre id=\"proof\">") && proof.contains("<pre id=\"checkpoint\">") && proof.contains("Inclusion proof"),
        "{proof}"
    );
    assert!(
        proof.contains("href=\"/compliance?since=2026-06-01&amp;until=2026-08-31&amp;env=production\""),
        "nav keeps the window: {proof}"
    );

    // The default window on a ledger whose data is older than 90 days shows that data, and says so.
    let dom = browse(&h.repo, &srv.addr, "/", "dashboard-default-window")?;
    assert!(
        dom.contains("id=\"window-chosen\">Nothing in the last 90 days: showing the 90 days up to the newest data (2026-07-04)"),
        "{dom}"
    );
    assert!(figure(&dom, "chart-deployments").contains("data-value=\"4\""), "{dom}");

    // Served from a clone that lacks the deployed commits: lead time cannot be measured, and the chart says why.
    let clone = Repo::new()?;
    clone.commit("unrelated", Sign::None)?;
    let ledger = h.repo.path.join(".git/audit/ledger.db");
    let srv2 = serve(&clone, &["--listen", "127.0.0.1:0", "--ledger", ledger.to_str().context("path")?], &[])?;
    let dom = browse(&clone, &srv2.addr, quarter, "dashboard-no-commits")?;
    let lead = figure(&dom, "chart-lead");
    assert!(lead.contains("No data: lead time needs the commits: run `git fetch`"), "{lead}");
    assert!(!lead.contains("<polyline"), "{lead}");
    // Nor can a rollback be told without them: the failure rate says what it could not count.
    let cfr = dom.split("id=\"tile-cfr\"").nth(1).and_then(|t| t.split("</a>").next()).unwrap_or_default();
    assert!(cfr.contains("2 not checked for rollback: their commits are not in the local repository (git fetch)"), "{cfr}");
    Ok(())
}
