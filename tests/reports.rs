//! Reports over a ledger with known answers: a real repository with recorded
//! verifications, a fake GitHub history with one PR of each kind of problem.

use anyhow::Result;

use crate::fake_github::{sha, Fake, World, TOKEN};
use crate::support::{keys, pinned_policy, Repo, Sign, BIN};

struct Known {
    repo: Repo,
    good: String,
    direct: String,
    _fake: Fake,
}

fn known() -> Result<Known> {
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
    let (code, _, err) = repo.audit(&[
        "ledger",
        "append",
        "--kind",
        "bypass.used",
        "--subject",
        "refs/heads/main",
        "--actor",
        "oncall@example.com",
        "--payload",
        "{\"reason\":\"INC-9\"}",
    ])?;
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
