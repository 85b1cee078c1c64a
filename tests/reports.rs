//! Reports over a ledger with known answers: a real repository with recorded
//! verifications, a fake GitHub history with one PR of each kind of problem.

use anyhow::{Context, Result};

use crate::fake_github::{sha, Fake, World, TOKEN};
use crate::support::{keys, pinned_policy, Repo, Sign, BIN};

struct Known {
    repo: Repo,
    good: String,
    direct: String,
    _fake: Fake,
}

/// Text a pusher or a PR author wrote to attack the auditor's terminal and
/// spreadsheet: ESC sequences (clear screen, set the window title), BEL, a C1
/// CSI, DEL, a bidi override, and a formula.
const HOSTILE_TITLE: &str = "=HYPERLINK(\"http://evil.example/\",\"docs\")\u{1b}]0;pwned\u{7}";
const HOSTILE_REASON: &str = "INC-9\u{1b}[2J\u{1b}[1Ahidden\u{9b}31m\u{7f}\rok\u{202e}txt.exe";

fn known() -> Result<Known> {
    known_with(None, "INC-9")
}

fn known_with(title: Option<&str>, reason: &str) -> Result<Known> {
    let k = keys();
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let good = repo.commit("feat: reviewed and signed", Sign::Pgp(&k.alice))?;
    let direct = repo.commit("fix: pushed straight to main", Sign::None)?;
    let policy = repo.policy(&pinned_policy(""))?;
    repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--record", "HEAD"])?;

    let mut w = World::new("acme/api");
    w.pull(1, "alice", "2026-07-01T00:00:00Z", std::slice::from_ref(&good));
    w.review(1, "carol", "APPROVED", &good, "2026-07-01T01:00:00Z");
    w.merge(1, "bob", "2026-07-01T02:00:00Z", &good);
    if let Some(t) = title {
        w.retitle(1, t);
    }
    w.pull(2, "alice", "2026-07-02T00:00:00Z", &[sha("x2")]);
    w.review(2, "alice", "APPROVED", &sha("x2"), "2026-07-02T01:00:00Z");
    w.merge(2, "alice", "2026-07-02T02:00:00Z", &sha("m2"));
    w.pull(3, "dave", "2026-07-03T00:00:00Z", &[sha("x3a"), sha("x3b")]);
    w.review(3, "carol", "APPROVED", &sha("x3a"), "2026-07-03T01:00:00Z");
    w.merge(3, "bob", "2026-07-03T02:00:00Z", &sha("m3"));
    w.pull(4, "erin", "2026-07-04T00:00:00Z", &[sha("x4")]);
    w.merge(4, "erin", "2026-07-04T02:00:00Z", &sha("m4"));
    w.landed(&good, "2026-07-01T02:00:00Z", &[1]);
    w.landed(&direct, "2026-07-05T00:00:00Z", &[]);
    let d1 = w.deployment(&good, "main", "production", "2026-07-01T03:00:00Z");
    w.status(d1, "success", "2026-07-01T03:05:00Z", None);
    let d2 = w.deployment(&direct, "main", "production", "2026-07-05T01:00:00Z");
    w.status(d2, "failure", "2026-07-05T01:05:00Z", None);
    let fake = Fake::start(w);
    let out = repo.cmd(BIN).env("GITHUB_TOKEN", TOKEN).args(["sync", "--github", "acme/api", "--api-url", &fake.url]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, err) =
        repo.append_fact("bypass.used", "refs/heads/main", "oncall@example.com", &serde_json::json!({"reason": reason}).to_string())?;
    assert_eq!(code, 0, "{err}");
    Ok(Known { repo, good, direct, _fake: fake })
}

#[test]
fn compliance_finds_each_problem_once_with_evidence_in_every_format() -> Result<()> {
    let kn = known()?;
    let (code, out, err) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01", "--format", "json"])?;
    assert_eq!(code, 1, "findings exit 1: {err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut found: Vec<(String, String)> = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["rule"].as_str().unwrap_or("").to_string(), f["subject"].as_str().unwrap_or("").to_string()))
        .collect();
    found.sort();
    let short = |s: &str| s[..10].to_string();
    let mut expected = vec![
        ("breakglass.used".to_string(), "refs/heads/main".to_string()),
        ("commits.unsigned-deployed".to_string(), short(&kn.direct)),
        ("pr.no-approval".to_string(), "acme/api#4".to_string()),
        ("pr.self-approval".to_string(), "acme/api#2".to_string()),
        ("pr.stale-approval".to_string(), "acme/api#3".to_string()),
        ("push.direct".to_string(), format!("acme/api {}", short(&kn.direct))),
    ];
    expected.sort();
    assert_eq!(found, expected);
    for f in v["findings"].as_array().into_iter().flatten() {
        assert!(f["evidence"].as_array().is_some_and(|e| !e.is_empty()), "no evidence: {f}");
    }
    assert_eq!(v["summary"]["pr.self-approval"], 1);

    let (_, table, _) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01"])?;
    assert!(table.contains("pr.stale-approval") && table.contains("acme/api#3"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
    let (_, csv, _) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01", "--format", "csv"])?;
    assert!(csv.starts_with("section,rule,findings,severity,subject,message,evidence (ledger seq)\n"), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.starts_with("Findings,")).count(), 6, "{csv}");
    let (_, md, _) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01", "--format", "markdown"])?;
    assert!(md.contains("## Findings (6)") && md.contains("| pr.no-approval | error | acme/api#4 |"), "{md}");
    let html_path = kn.repo.tmp.path().join("compliance.html");
    kn.repo.audit(&[
        "report",
        "compliance",
        "--since",
        "2020-01-01",
        "--format",
        "html",
        "--output",
        html_path.to_str().unwrap_or_default(),
    ])?;
    let html = std::fs::read_to_string(&html_path)?;
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && html.contains("Findings per rule"));
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href="), "self-contained");
    // A window after everything: nothing to report, exit 0.
    let (code, _, _) = kn.repo.audit(&["report", "compliance", "--since", "2099-01-01", "--format", "json"])?;
    assert_eq!(code, 0);
    Ok(())
}

#[test]
fn trace_tells_a_commits_whole_story() -> Result<()> {
    let kn = known()?;
    let (code, out, err) = kn.repo.audit(&["report", "trace", &kn.good[..12], "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["commit"], kn.good.as_str());
    assert_eq!(v["verifications"][0]["status"], "good");
    assert_eq!(v["verifications"][0]["signer"], "Alice <alice@example.com>");
    let prs = v["pull_requests"].as_array().cloned().unwrap_or_default();
    assert!(prs.iter().any(|p| p["number"] == 1 && p["merged_by"] == "bob"), "{prs:?}");
    assert_eq!(v["reviews"][0]["reviewer"], "carol");
    assert!(v["reviews"][0]["commit"].as_str().unwrap_or("").contains("on final head: yes"));
    let deps = v["deployments"].as_array().cloned().unwrap_or_default();
    // The good commit was deployed itself, and is an ancestor of the later deployment.
    assert_eq!(deps.len(), 2, "{deps:?}");
    assert_eq!(deps[0]["status"], "success");
    assert_eq!(deps[0]["how"], "deployed this commit");
    assert_eq!(deps[1]["how"], "deployed a descendant");
    assert_eq!(deps[1]["status"], "failure");

    let (code, out, _) = kn.repo.audit(&["report", "trace", &kn.direct, "--format", "json"])?;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["verifications"][0]["status"], "missing");
    assert_eq!(v["pull_requests"].as_array().map(Vec::len), Some(0), "a direct push has no PR");
    assert_eq!(v["deployments"].as_array().map(Vec::len), Some(1));
    let (_, table, _) = kn.repo.audit(&["report", "trace", &kn.direct])?;
    assert!(table.contains("Pull requests (0)") && table.contains("Deployments (1)"), "{table}");
    Ok(())
}

/// A release history with known answers, in a real repository:
/// D1 ships c1 (PR #1) → success; D2 ships c2+c3 (PR #2, c2 unsigned) → failure;
/// D3 ships c4 (PR #3, squash-merged: c4 is its merge_commit_sha, not one of its
/// commits) → success, then D4 rolls back to c3.
pub(crate) struct History {
    pub(crate) repo: Repo,
    c: Vec<String>,
    _fake: Fake,
}

pub(crate) fn history() -> Result<History> {
    let k = keys();
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let c1 = repo.commit("feat: one", Sign::Pgp(&k.alice))?;
    let c2 = repo.commit("feat: two, unsigned", Sign::None)?;
    let c3 = repo.commit("feat: three", Sign::Pgp(&k.alice))?;
    let c4 = repo.commit("fix: four, direct", Sign::Pgp(&k.alice))?;
    let policy = repo.policy(&pinned_policy(""))?;
    repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--record", "HEAD"])?;
    let mut w = World::new("acme/api");
    w.pull(1, "alice", "2026-07-01T00:00:00Z", std::slice::from_ref(&c1));
    w.review(1, "carol", "APPROVED", &c1, "2026-07-01T00:30:00Z");
    w.merge(1, "bob", "2026-07-01T01:00:00Z", &c1);
    w.pull(2, "alice", "2026-07-02T00:00:00Z", &[c2.clone(), c3.clone()]);
    w.review(2, "carol", "APPROVED", &c3, "2026-07-02T00:30:00Z");
    w.merge(2, "bob", "2026-07-02T01:00:00Z", &c3);
    w.pull(3, "dave", "2026-07-02T12:00:00Z", &[sha("x4a"), sha("x4b")]);
    w.review(3, "carol", "APPROVED", &sha("x4b"), "2026-07-02T12:30:00Z");
    w.merge(3, "bob", "2026-07-03T00:00:00Z", &c4);
    for c in [&c1, &c2, &c3] {
        w.landed(c, "2026-07-02T01:00:00Z", &[]);
    }
    w.landed(&c4, "2026-07-03T00:00:00Z", &[3]);
    let s0 = w.deployment(&c1, "main", "staging", "2026-07-01T01:30:00Z");
    w.status(s0, "success", "2026-07-01T01:35:00Z", None);
    let d1 = w.deployment(&c1, "main", "production", "2026-07-01T02:00:00Z");
    w.status(d1, "success", "2026-07-01T02:10:00Z", None);
    w.status(d1, "inactive", "2026-07-02T02:10:00Z", None);
    let d2 = w.deployment(&c3, "main", "production", "2026-07-02T02:00:00Z");
    w.status(d2, "failure", "2026-07-02T02:10:00Z", None);
    let d3 = w.deployment(&c4, "main", "production", "2026-07-03T02:00:00Z");
    w.status(d3, "success", "2026-07-03T02:10:00Z", None);
    let d4 = w.deployment(&c3, "main", "production", "2026-07-04T02:00:00Z");
    w.status(d4, "success", "2026-07-04T04:10:00Z", None);
    let fake = Fake::start(w);
    let out = repo.cmd(BIN).env("GITHUB_TOKEN", TOKEN).args(["sync", "--github", "acme/api", "--api-url", &fake.url]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(History { repo, c: vec![c1, c2, c3, c4], _fake: fake })
}

fn commit_ids(d: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = d["commits"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str().map(String::from)).collect();
    v.sort();
    v
}

#[test]
fn deployments_list_the_commits_each_one_shipped() -> Result<()> {
    let h = history()?;
    let (code, out, err) = h.repo.audit(&[
        "report",
        "deployments",
        "--env",
        "production",
        "--since",
        "2026-07-01",
        "--until",
        "2026-07-31",
        "--format",
        "json",
    ])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let deps = v["deployments"].as_array().cloned().unwrap_or_default();
    assert_eq!(deps.len(), 4, "staging is not production: {deps:?}");
    let sorted = |mut x: Vec<String>| {
        x.sort();
        x
    };
    // The first looks back to before the window: nothing before c1, so c1 alone.
    assert_eq!(commit_ids(&deps[0]), vec![h.c[0].clone()]);
    assert_eq!(deps[0]["status"], "success", "inactive (superseded) is not the final status");
    assert_eq!(commit_ids(&deps[1]), sorted(vec![h.c[1].clone(), h.c[2].clone()]));
    assert_eq!(deps[1]["status"], "failure");
    // After a failure, the range starts at the last *successful* deployment.
    assert_eq!(commit_ids(&deps[2]), sorted(vec![h.c[1].clone(), h.c[2].clone(), h.c[3].clone()]));
    assert_eq!(deps[2]["previous_successful_sha"], h.c[0].as_str());
    assert_eq!(commit_ids(&deps[3]), Vec::<String>::new(), "a rollback ships nothing new");
    let c2 = deps[1]["commits"].as_array().and_then(|a| a.iter().find(|c| c["id"] == h.c[1].as_str()).cloned()).unwrap_or_default();
    assert_eq!(c2["signature"]["status"], "missing");
    assert_eq!(c2["pull_request"], "#2 (commit)");
    assert_eq!(c2["approvals"], serde_json::json!(["carol"]));
    assert_eq!(c2["findings"], serde_json::json!(["signing.required"]));
    let c4 = deps[2]["commits"].as_array().and_then(|a| a.iter().find(|c| c["id"] == h.c[3].as_str()).cloned()).unwrap_or_default();
    assert_eq!(c4["pull_request"], "#3 (squash/merge)");
    assert_eq!(c4["approvals"], serde_json::json!(["carol"]));
    assert_eq!(c4["signature"]["status"], "good");
    // CSV: one row per commit in a deployment; globs select environments.
    let (_, csv, _) = h.repo.audit(&[
        "report",
        "deployments",
        "--env",
        "production",
        "--since",
        "2026-07-01",
        "--until",
        "2026-07-31",
        "--format",
        "csv",
    ])?;
    assert_eq!(csv.lines().filter(|l| l.starts_with("Commits shipped,")).count(), 6, "{csv}");
    let (_, out, _) = h.repo.audit(&["report", "deployments", "--env", "*", "--since", "2026-07-01", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["deployments"].as_array().map(Vec::len), Some(5));
    // One glob dialect for environments, as in [[environments]]: classes and alternatives too.
    for pattern in ["{production,staging}", "[ps]*", "*"] {
        let (code, out, err) = h.repo.audit(&["report", "deployments", "--env", pattern, "--since", "2026-07-01", "--format", "json"])?;
        assert_eq!(code, 0, "{pattern}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out)?;
        assert_eq!(v["deployments"].as_array().map(Vec::len), Some(5), "{pattern}");
    }
    let (code, _, err) = h.repo.audit(&["report", "deployments", "--env", "prod-[", "--since", "2026-07-01"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--env: `prod-[` is not an environment pattern"), "{err}");
    let (_, md, _) = h.repo.audit(&["report", "deployments", "--env", "prod*", "--since", "2026-07-01", "--format", "markdown"])?;
    assert!(md.contains("## Deployments (4)") && md.contains("## Commits shipped (6)"), "{md}");
    // In a terminal of 120 columns each deployment is one row, nothing wider,
    // no timestamp, id or rule id broken; COLUMNS is honoured.
    for columns in ["120", "160"] {
        let (_, table, _) = h.repo.audit_env(
            &["report", "deployments", "--env", "production", "--since", "2026-07-01", "--until", "2026-07-31"],
            &[("COLUMNS", columns)],
        )?;
        let width: usize = columns.parse()?;
        assert!(table.lines().all(|l| l.chars().count() <= width), "wider than {width}:\n{table}");
        let rows: Vec<&str> = table.lines().skip_while(|l| !l.starts_with("Deployments (")).skip(2).take_while(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 4, "a row per deployment at {width}:\n{table}");
        for d in &deps {
            let time = d["time"].as_str().unwrap_or("?");
            assert!(table.contains(time), "{time} broken:\n{table}");
        }
    }
    Ok(())
}

#[test]
fn dora_metrics_have_known_values_and_the_html_renders_in_a_browser() -> Result<()> {
    let h = history()?;
    let (code, out, err) =
        h.repo.audit(&["report", "dora", "--env", "prod*", "--since", "2026-07-01", "--until", "2026-07-31", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let o = &v["overall"];
    assert_eq!(o["deployments"], 4);
    // D2 failed; D3 was rolled back by D4.
    assert_eq!(o["failed"], 2);
    assert_eq!(o["successful"], 2);
    assert_eq!(o["change_failure_rate"], 0.5);
    // Restores: D2 (07-02 02:10) → D3 (07-03 02:10) = 24 h; D3 → D4 (07-04 04:10) = 26 h.
    assert_eq!(o["median_time_to_restore_hours"], 25.0);
    // Lead time: c1's commit time to D1's success (the rollback ships nothing).
    let ct: i64 = h.repo.git(&["log", "-1", "--format=%ct", &h.c[0]])?.parse()?;
    let d1 = chrono::DateTime::parse_from_rfc3339("2026-07-01T02:10:00Z")?.timestamp();
    assert_eq!(o["median_lead_time_hours"], ((d1 - ct) as f64) / 3600.0);
    assert_eq!(v["lead_time_measured_from"], "commit time");
    assert_eq!(v["weeks"].as_array().map(Vec::len), Some(1));
    // The charts' periods: a 31-day window goes by day, every day present,
    // empty days as zero deployments and no change failure rate (not 0%).
    assert_eq!(v["granularity"], "day");
    let periods = v["periods"].as_array().context("periods")?;
    // `--until 2026-07-31` holds that whole day.
    assert_eq!(periods.len(), 31, "{v}");
    assert_eq!((periods[0]["period"].as_str(), periods[30]["period"].as_str()), (Some("2026-07-01"), Some("2026-07-31")));
    let per_day: Vec<u64> = periods.iter().map(|p| p["deployments"].as_u64().unwrap_or(99)).collect();
    assert_eq!(&per_day[..5], &[1, 1, 1, 1, 0]);
    assert_eq!(per_day.iter().sum::<u64>(), 4);
    assert_eq!(periods[1]["change_failure_rate"], 1.0, "D2 failed");
    assert!(periods[4]["change_failure_rate"].is_null(), "a day with no deployment has no failure rate: {}", periods[4]);

    // The HTML page renders in a real headless Chromium, with its charts.
    let page = h.repo.tmp.path().join("dora.html");
    h.repo.audit(&[
        "report",
        "dora",
        "--env",
        "prod*",
        "--since",
        "2026-07-01",
        "--until",
        "2026-07-31",
        "--format",
        "html",
        "--output",
        page.to_str().unwrap_or_default(),
    ])?;
    let shot = h.repo.tmp.path().join("dora.png");
    let profile = h.repo.tmp.path().join("chromium-profile");
    let chromium = |extra: &[&str]| {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
    };
    let out = chromium(&["--window-size=1000,900", &format!("--screenshot={}", shot.display())])?;
    assert!(shot.exists(), "chromium made no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot)?;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{} bytes", png.len());
    let dom = chromium(&["--dump-dom"])?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<svg") && dom.contains("Deployments per day") && dom.contains("<rect"), "{dom}");
    // Every day of the window is a column, the 27 without a deployment drawn as zero, under dated ticks.
    let chart = dom.split("id=\"chart-deployments\"").nth(1).and_then(|c| c.split("</figure>").next()).unwrap_or_default();
    assert_eq!(chart.matches("class=\"period\"").count(), 31, "{chart}");
    assert_eq!(chart.matches("class=\"zero\"").count(), 27, "{chart}");
    assert!(chart.contains("class=\"tick\"") && chart.contains(">2026-07-01</text>"), "{chart}");
    assert!(chart.contains("data-period=\"2026-07-02\" data-start=\"2026-07-02\" data-value=\"1\""), "{chart}");
    // Static files link nowhere: no drill-down into a server that is not there.
    assert!(!chart.contains("<a "), "{chart}");
    Ok(())
}

#[test]
fn entries_at_the_first_and_last_instant_of_a_window_count() -> Result<()> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    // Break glass entries just before, at the first and at the last instant of July 1st.
    let times = ["2026-06-30T23:59:59.999Z", "2026-07-01T00:00:00.000Z", "2026-07-01T23:59:59.999Z"];
    for (i, _) in times.iter().enumerate() {
        let payload = format!("{{\"reason\": \"r{i}\"}}");
        let (code, _, err) = repo.append_fact("bypass.used", "refs/heads/main", "oncall", &payload)?;
        assert_eq!(code, 0, "{err}");
    }
    // Deployments created at the first and last whole second of the day, and just after it.
    let created = ["2026-07-01T00:00:00Z", "2026-07-01T23:59:59Z", "2026-07-02T00:00:00Z"];
    for (i, t) in created.iter().enumerate() {
        let d = serde_json::json!({"repository": "acme/api", "id": i + 1, "sha": format!("{i:040}"), "ref": "main",
            "environment": "production", "creator": {"login": "bot"}, "task": "deploy", "created_at": t});
        let (code, _, err) = repo.append_fact("deployment.synced", "acme/api", "", &d.to_string())?;
        assert_eq!(code, 0, "{err}");
    }
    // Reports read the log without verifying it: pin the entries' times.
    let db = repo.path.join(".git/audit/ledger.db");
    let c = rusqlite::Connection::open(&db)?;
    for (seq, t) in times.iter().enumerate() {
        c.execute("UPDATE entries SET time = ?1 WHERE seq = ?2", rusqlite::params![t, seq as i64])?;
    }
    let (code, out, err) = repo.audit(&["report", "compliance", "--format", "json", "--since", "2026-07-01"])?;
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let reasons: Vec<String> = v["findings"]
        .as_array()
        .context("findings")?
        .iter()
        .filter(|f| f["rule"] == "breakglass.used")
        .filter_map(|f| f["message"].as_str().map(str::to_string))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("\"r1\"") && reasons[1].contains("\"r2\""), "{reasons:?}");
    let (code, out, err) = repo.audit(&[
        "report",
        "deployments",
        "--env",
        "production",
        "--since",
        "2026-07-01",
        "--until",
        "2026-07-01",
        "--format",
        "json",
    ])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    // Deployment ids are text in JSON (a recorded one's internal id passes 2^53).
    let ids: Vec<&str> = v["deployments"].as_array().context("deployments")?.iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(ids, vec!["1", "2"], "{out}");
    Ok(())
}

#[test]
fn compliance_reports_force_pushes_that_got_through_under_the_hooks_rule_ids() -> Result<()> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    // A push decided in warn mode: accepted, with a force-push and a deletion finding.
    let zero = "0".repeat(40);
    let decided = serde_json::json!({
        "accepted": true, "violations": 0, "reasons": [], "bypass": null, "policy_digest": "x",
        "pusher": {"identity": "mallory@example.com", "source": "GIT_AUDIT_USER", "certificate_key": null},
        "ref_updates": [
            {"ref": "refs/heads/main", "old": "1".repeat(40), "new": "2".repeat(40), "errors": 0, "commits": [],
             "findings": [{"rule": "branches.force-push", "severity": "warning", "message": "rewritten", "fix": "rebase"}]},
            {"ref": "refs/heads/release", "old": "3".repeat(40), "new": zero, "errors": 0, "commits": [],
             "findings": [{"rule": "branches.deletion", "severity": "warning", "message": "deleted", "fix": "don't"}]},
        ],
    });
    let (code, _, err) =
        repo.append_fact("push.decided", "refs/heads/main refs/heads/release", "mallory@example.com", &decided.to_string())?;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = repo.audit(&["report", "compliance", "--format", "json", "--since", "2000-01-01"])?;
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let rules: Vec<&str> = v["findings"].as_array().context("findings")?.iter().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(rules, vec!["branches.force-push", "branches.deletion"], "{out}");
    assert_eq!(v["summary"]["branches.force-push"], 1, "{out}");
    Ok(())
}

#[test]
fn an_empty_window_is_an_error_and_an_open_one_ends_in_null() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    // --since after --until returned nothing, silently; now it says why.
    for report in ["deployments", "dora"] {
        let (code, out, err) = repo.audit(&["report", report, "--env", "*", "--since", "2026-09-01", "--until", "2026-08-01"])?;
        assert_eq!(code, 2, "{report}: {out}{err}");
        assert!(err.contains("the window is empty") && err.contains("--until 2026-08-01"), "{report}: {err}");
        // Open: `until` is null, not a far-future date; closed: the date.
        let (code, out, err) = repo.audit(&["report", report, "--env", "*", "--since", "2026-01-01", "--format", "json"])?;
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out)?;
        assert_eq!(v["until"], serde_json::Value::Null, "{report}: {v}");
        let (_, out, _) =
            repo.audit(&["report", report, "--env", "*", "--since", "2026-01-01", "--until", "2026-02-01", "--format", "json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        assert!(v["until"].as_str().is_some_and(|u| u.starts_with("2026-02-02")), "{report}: the whole day: {v}");
    }
    // The dashboard says the same.
    let server = crate::serve::serve(&repo, &["--listen", "127.0.0.1:0"], &[])?;
    let (status, _, body) = crate::serve::http(&server.addr, "GET", "/?since=2026-09-01&until=2026-08-01", &[])?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("the window is empty"), "{body}");
    Ok(())
}

/// What a reader must never receive raw: C0 (but the layout's own newlines),
/// DEL, C1, bidi controls.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars().filter(|&c| git_audit::text::is_unsafe(c) && c != '\n').collect()
}

#[test]
fn what_pushers_and_authors_wrote_reaches_no_terminal_or_spreadsheet_raw() -> Result<()> {
    let kn = known_with(Some(HOSTILE_TITLE), HOSTILE_REASON)?;
    for (report, subject) in [("compliance", None), ("trace", Some(kn.good.as_str()))] {
        for format in ["table", "markdown", "csv", "json", "html"] {
            let mut args = vec!["report", report];
            args.extend(subject);
            args.extend(["--since", "2020-01-01", "--format", format]);
            if report == "trace" {
                args.retain(|a| *a != "--since" && *a != "2020-01-01");
            }
            let (code, out, err) = kn.repo.audit(&args)?;
            assert!(code == 0 || code == 1, "{args:?}: {err}");
            assert_eq!(raw_controls(&out), Vec::<char>::new(), "{report} {format} carries raw controls:\n{out}");
            match (report, format) {
                ("compliance", "json") => {
                    // JSON keeps the exact text (as \u escapes).
                    let v: serde_json::Value = serde_json::from_str(&out)?;
                    let found = v["findings"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|f| f["rule"] == "breakglass.used" && f["message"].as_str().is_some_and(|m| m.contains(HOSTILE_REASON)));
                    assert!(found, "{out}");
                }
                ("compliance", "markdown") => {
                    assert!(out.contains("INC-9\\x1b[2J\\x1b[1Ahidden\\u{9b}31m\\x7f\\rok\\u{202e}txt.exe"), "{out}")
                }
                ("trace", "json") => {
                    let v: serde_json::Value = serde_json::from_str(&out)?;
                    assert_eq!(v["pull_requests"][0]["title"], HOSTILE_TITLE, "{out}");
                }
                ("trace", "csv") => {
                    // OWASP: a cell that would start a formula is text.
                    assert!(out.contains(",\"'=HYPERLINK(\"\"http://evil.example/\"\",\"\"docs\"\")\\x1b]0;pwned\\x07\","), "{out}");
                    assert!(!out.contains(",=") && !out.contains(",\"="), "{out}");
                }
                ("compliance" | "trace", "table") => {
                    assert!(out.contains("\\x1b") && out.contains("\\u{9b}") || report == "trace", "{out}")
                }
                _ => {}
            }
        }
    }
    // The other formula starters, in a CSV cell of their own.
    // (A leading tab or CR is shown as `\t`, `\r`: no longer a formula.)
    for lead in ["+", "-", "@", "\t"] {
        let kn = known_with(Some(&format!("{lead}cmd|' /C calc'!A0")), "INC-9")?;
        let (_, csv, _) = kn.repo.audit(&["report", "trace", &kn.good, "--format", "csv"])?;
        let cell = match lead {
            "\t" => "\\tcmd|".to_string(),
            _ => format!("'{lead}cmd|"),
        };
        assert!(csv.contains(&format!(",\"{cell}")) || csv.contains(&format!(",{cell}")), "{lead:?} not neutralised:\n{csv}");
        assert_eq!(raw_controls(&csv), Vec::<char>::new(), "{csv}");
    }
    Ok(())
}

#[test]
fn an_answer_from_an_edited_ledger_says_so_and_strict_fails() -> Result<()> {
    let kn = known()?;
    let db = kn.repo.path.join(".git/audit/ledger.db");
    // Sound ground first: the footer says what was checked.
    let (_, table, err) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01"])?;
    assert!(table.contains("ledger checked against its signed checkpoint: head, tree and") && !err.contains("warning"), "{table}{err}");
    let (code, _, err) = kn.repo.audit(&["report", "trace", &kn.good, "--strict"])?;
    assert_eq!(code, 0, "{err}");

    // A direct edit of the break-glass reason (the entry's leaf left as it was).
    let c = rusqlite::Connection::open(&db)?;
    let seq: i64 = c.query_row("SELECT seq FROM entries WHERE kind = 'bypass.used'", [], |r| r.get(0))?;
    c.execute("UPDATE entries SET payload = replace(payload, 'INC-9', 'INC-9 approved by the CTO') WHERE seq = ?1", [seq])?;
    drop(c);
    let (code, out, err) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01", "--format", "json"])?;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let ground = &v["provenance"]["ground"];
    assert_eq!(ground["ok"], false, "{ground}");
    assert!(
        ground["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p == &format!("cited entry seq {seq} is not what the signed log holds (edited)")),
        "{ground}"
    );
    assert!(err.contains("warning: WARNING: the ledger does not agree with its signed checkpoint"), "{err}");
    let (_, table, _) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01"])?;
    assert!(table.contains("do not rely on this answer, run `git-audit ledger verify`"), "{table}");
    let (_, html, _) = kn.repo.audit(&["report", "compliance", "--since", "2020-01-01", "--format", "html"])?;
    assert!(html.contains("id=\"ground-warning\" role=\"alert\""), "{html}");
    // --strict verifies the whole ledger: any answer from it fails.
    let (code, _, err) = kn.repo.audit(&["report", "trace", &kn.good, "--strict"])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--strict: the ledger failed verification") && err.contains(&format!("seq {seq}")), "{err}");

    // A head that is not what its signature says: `ledger status` fails too.
    let (code, _, _) = kn.repo.audit(&["ledger", "status"])?;
    assert_eq!(code, 0, "status does not re-hash entries: the head and tree still agree");
    rusqlite::Connection::open(&db)?.execute("UPDATE head SET root = zeroblob(32)", [])?;
    let (code, out, _) = kn.repo.audit(&["ledger", "status"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ground     WARNING: the ledger does not agree with its signed checkpoint: the head"), "{out}");
    Ok(())
}

/// `evidence verify` in an empty directory with no environment: no ledger,
/// no repository, no key. Returns its exit code and everything it printed.
fn verify_offline(package: &std::path::Path) -> Result<(i32, String)> {
    let elsewhere = tempfile::tempdir()?;
    let out =
        std::process::Command::new(BIN).current_dir(elsewhere.path()).env_clear().args(["evidence", "verify"]).arg(package).output()?;
    Ok((out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
}

/// Rewrites one file of an evidence package (and, like a careful forger, its
/// manifest digest), returning the new package's path.
fn tampered(pkg: &std::path::Path, name: &str, edit: impl Fn(Vec<u8>) -> Vec<u8>, fix_manifest: bool) -> Result<std::path::PathBuf> {
    use sha2::Digest;
    let mut files = git_audit::evidence::read(pkg)?;
    let data = edit(files.remove(name).context("file")?);
    if fix_manifest {
        let mut m: serde_json::Value = serde_json::from_slice(files.get("manifest.json").context("manifest")?)?;
        m["files"][name] = hex::encode(sha2::Sha256::digest(&data)).into();
        files.insert("manifest.json".into(), serde_json::to_vec(&m)?);
    }
    files.insert(name.into(), data);
    let out = pkg.with_file_name(format!("tampered-{}.tar.gz", name.replace('/', "-")));
    let f = std::fs::File::create(&out)?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::default()));
    for (n, d) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("evidence/{n}"), d.as_slice())?;
    }
    tar.into_inner()?.finish()?;
    Ok(out)
}

#[test]
fn an_evidence_package_verifies_offline_and_names_what_was_altered() -> Result<()> {
    let kn = known()?;
    let pkg = kn.repo.tmp.path().join("q3.tar.gz");
    let (code, out, err) = kn.repo.audit(&[
        "report",
        "evidence",
        "--since",
        "2026-07-01",
        "--until",
        "2026-12-31",
        "--env",
        "production",
        "--output",
        pkg.to_str().context("path")?,
    ])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cited entries with inclusion proofs"), "{out}");
    let files = git_audit::evidence::read(&pkg)?;
    for f in [
        "manifest.json",
        "checkpoint.txt",
        "entries.jsonl",
        "keys.json",
        "README.txt",
        "reports/compliance.json",
        "reports/compliance.html",
        "reports/deployments.csv",
    ] {
        assert!(files.contains_key(f), "{f} missing: {:?}", files.keys().collect::<Vec<_>>());
    }
    // Verified where there is no ledger and no repository.
    let verify = verify_offline;
    let (code, out) = verify(&pkg)?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("evidence OK") && out.contains("reports cite only proven entries"), "{out}");
    let entries = String::from_utf8_lossy(&files["entries.jsonl"]).into_owned();
    assert!(entries.lines().count() >= 5, "{entries}");
    // One byte changed in a cited entry: the manifest says so; with the manifest
    // "fixed" too, the entry's inclusion proof says which entry.
    let flip = |b: Vec<u8>| {
        let mut t = String::from_utf8_lossy(&b).into_owned();
        t = t.replacen("INC-9", "INC-8", 1);
        t.into_bytes()
    };
    let (code, out) = verify(&tampered(&pkg, "entries.jsonl", flip, false)?)?;
    assert_eq!(code, 1);
    assert!(out.contains("entries.jsonl: its content is not what the manifest lists (altered)"), "{out}");
    let (code, out) = verify(&tampered(&pkg, "entries.jsonl", flip, true)?)?;
    assert_eq!(code, 1);
    assert!(out.contains("is not included in the log") && out.contains("(seq "), "{out}");
    // The checkpoint: its signature.
    let cp_flip = |b: Vec<u8>| {
        let mut b = b;
        if let Some(x) = b.iter_mut().find(|c| c.is_ascii_digit()) {
            *x = if *x == b'9' { b'8' } else { *x + 1 };
        }
        b
    };
    let (code, out) = verify(&tampered(&pkg, "checkpoint.txt", cp_flip, true)?)?;
    assert_eq!(code, 1);
    assert!(out.contains("checkpoint.txt does not verify"), "{out}");
    // A report row citing an entry the package does not prove.
    let cite = |b: Vec<u8>| {
        let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        v["findings"][0]["evidence"] = serde_json::json!([987654]);
        serde_json::to_vec(&v).unwrap_or_default()
    };
    let (code, out) = verify(&tampered(&pkg, "reports/compliance.json", cite, true)?)?;
    assert_eq!(code, 1);
    assert!(out.contains("reports/compliance.json cites seq [987654], which the package does not prove"), "{out}");

    // The next audit: more entries, and a package that proves the log still extends the first.
    kn.repo.append_fact("bypass.used", "refs/heads/main", "oncall@example.com", "{\"reason\":\"INC-10\"}")?;
    // A later package, proven against the first one's checkpoint.
    let after_first = |out: &std::path::Path| -> Result<(i32, String, String)> {
        let (out, pkg) = (out.to_str().context("path")?, pkg.to_str().context("path")?);
        kn.repo.audit(&["report", "evidence", "--since", "2026-07-01", "--output", out, "--since-package", pkg])
    };
    let next = kn.repo.tmp.path().join("q4.tar.gz");
    let (code, _, err) = after_first(&next)?;
    assert_eq!(code, 0, "{err}");
    let (code, out) = verify(&next)?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the log still extends the earlier package's size"), "{out}");
    // Entries removed by someone who holds the owner key: the log cut back to
    // three entries and its head signed again. No package can say it extends the first.
    let db = kn.repo.path.join(".git/audit/ledger.db");
    let files = git_audit::ledger::LedgerFiles::sqlite(db.clone(), db.with_extension("key"));
    let l = git_audit::ledger::Ledger::open(&files)?;
    let root = l.root_at(3)?;
    let origin = l.origin.clone();
    drop(l);
    let signer = git_audit::ledger::note::NoteSigner::parse(&std::fs::read_to_string(db.with_extension("key"))?)?;
    let note = signer.sign(&git_audit::ledger::note::Checkpoint { origin, size: 3, root }.to_text())?;
    let c = rusqlite::Connection::open(&db)?;
    c.execute("DELETE FROM entries WHERE seq >= 3", [])?;
    c.execute("DELETE FROM nodes WHERE (idx + 1) << level > 3", [])?;
    c.execute("DELETE FROM checkpoints", [])?;
    c.execute("UPDATE head SET size = 3, root = ?1, note = ?2", rusqlite::params![root.to_vec(), note])?;
    drop(c);
    let third = kn.repo.tmp.path().join("rewritten.tar.gz");
    let (code, _, err) = after_first(&third)?;
    assert_eq!(code, 2, "a cut-back ledger cannot extend the earlier package: {err}");
    assert!(err.contains("fewer than the") && err.contains("entries were removed"), "{err}");
    Ok(())
}

#[test]
fn an_evidence_package_over_a_synced_ledger_recomputes_every_number_and_catches_a_forged_row() -> Result<()> {
    let h = history()?;
    let pkg = h.repo.tmp.path().join("july.tar.gz");
    let (code, _, err) = h.repo.audit(&[
        "report",
        "evidence",
        "--since",
        "2026-07-01",
        "--until",
        "2026-07-31",
        "--env",
        "production",
        "--output",
        pkg.to_str().context("path")?,
    ])?;
    assert_eq!(code, 0, "{err}");
    let verify = verify_offline;
    let (code, out) = verify(&pkg)?;
    assert_eq!(code, 0, "{out}");
    // Each report's numbers recomputed from its rows, each row from its entries; what needs git is said.
    assert!(out.contains("recomputed  reports/deployments.json: 4 deployments, each matching its deployment and status entries"), "{out}");
    assert!(out.contains("recomputed  reports/dora.json: deployments, successful, failed and the change failure rate"), "{out}");
    assert!(out.contains("recomputed  reports/compliance.json:"), "{out}");
    assert!(out.contains("not checked reports/dora.json: lead time and time to restore are not recomputed"), "{out}");
    let files = git_audit::evidence::read(&pkg)?;
    let dora: serde_json::Value = serde_json::from_slice(&files["reports/dora.json"])?;
    assert_eq!(dora["overall"]["failed"], 2, "{dora}");

    // Forgers who fix the manifest too: each is named.
    let json_edit = |f: fn(&mut serde_json::Value)| {
        move |b: Vec<u8>| {
            let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            f(&mut v);
            serde_json::to_vec_pretty(&v).unwrap_or_default()
        }
    };
    type Edit = Box<dyn Fn(Vec<u8>) -> Vec<u8>>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        // The failed deployment shown as a success.
        (
            "reports/deployments.json",
            Box::new(json_edit(|v| v["deployments"][1]["status"] = "success".into())),
            "its status is \"success\" but the entry that set it",
        ),
        // Another commit shown as shipped.
        (
            "reports/deployments.json",
            Box::new(json_edit(|v| v["deployments"][0]["sha"] = "0000000000000000000000000000000000000000".into())),
            "its sha is \"0000000000000000000000000000000000000000\" but its entry",
        ),
        // A deployment left out: the CSV and the DORA numbers no longer agree.
        (
            "reports/deployments.json",
            Box::new(json_edit(|v| {
                if let Some(a) = v["deployments"].as_array_mut() {
                    a.remove(1);
                }
            })),
            "reports/deployments.csv: its deployments (4 rows) are not the JSON's (3)",
        ),
        // A number changed: one failure fewer.
        (
            "reports/dora.json",
            Box::new(json_edit(|v| v["overall"]["failed"] = 1.into())),
            "overall failed is 1 but the deployments report's rows give 2",
        ),
        // A row of the CSV changed.
        (
            "reports/deployments.csv",
            Box::new(|b: Vec<u8>| String::from_utf8_lossy(&b).replacen(",failure,", ",success,", 1).into_bytes()),
            "reports/deployments.csv: its deployments (4 rows) are not the JSON's",
        ),
        // An inclusion proof's first hash changed.
        (
            "entries.jsonl",
            Box::new(|b: Vec<u8>| {
                let t = String::from_utf8_lossy(&b).into_owned();
                let at = t.find("\"inclusion_proof\":[\"").map(|i| i + 20).unwrap_or(0);
                let mut bytes = t.into_bytes();
                if let Some(c) = bytes.get_mut(at) {
                    *c = if *c == b'A' { b'B' } else { b'A' };
                }
                bytes
            }),
            "is not included in the log",
        ),
    ];
    for (file, edit, says) in cases {
        let (code, out) = verify(&tampered(&pkg, file, edit, true)?)?;
        assert_eq!(code, 1, "{file}: {out}");
        assert!(out.contains(says), "{file}: expected \"{says}\":\n{out}");
    }
    Ok(())
}
