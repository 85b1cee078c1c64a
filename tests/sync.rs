//! `git-audit sync` against the fake GitHub: what lands in the ledger, how few
//! requests a second pass makes, faults, errors, a kill mid-run, the lock.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::fake_github::{sha, Fake, World, INSTALLATION_TOKEN, TOKEN};
use crate::support::{compliance_under, deploy_findings, Repo, BIN};

/// The standard world: 130 pull requests (two pages), one at GitHub's 250-commit
/// cap, a squash merge, a rebase merge, a direct push, a stale approval, a
/// self-approval, and deployments (one gated by an Actions approval, one still running).
pub(crate) fn world() -> World {
    let mut w = World::new("acme/api");
    for n in 1..=130u64 {
        let t = format!("2026-07-01T{:02}:{:02}:00Z", n / 60, n % 60);
        w.pull(n, "alice", &t, &[sha(&format!("c{n}a")), sha(&format!("c{n}b"))]);
    }
    let big: Vec<String> = (0..260).map(|i| sha(&format!("big{i}"))).collect();
    w.pull(131, "dave", "2026-07-01T03:00:00Z", &big);
    // #1: squash-merged by bob after carol approved its head.
    w.review(1, "carol", "APPROVED", &sha("c1b"), "2026-07-02T00:00:00Z");
    w.merge(1, "bob", "2026-07-02T01:00:00Z", &sha("squash1"));
    // #2: approved by its own author only (self-approval), rebase-merged: its two
    // commits land with new ids; GitHub's merge_commit_sha is the last of them.
    w.review(2, "alice", "APPROVED", &sha("c2b"), "2026-07-02T02:00:00Z");
    w.merge(2, "alice", "2026-07-02T03:00:00Z", &sha("rebased2b"));
    // #3: approved on its first commit, then more was pushed (stale approval).
    w.review(3, "carol", "APPROVED", &sha("c3a"), "2026-07-02T04:00:00Z");
    w.review(3, "erin", "COMMENTED", &sha("c3b"), "2026-07-02T04:30:00Z");
    // The default branch: the squash commit, the rebased commit, a direct push.
    w.landed(&sha("squash1"), "2026-07-02T01:00:00Z", &[1]);
    w.landed(&sha("rebased2a"), "2026-07-02T02:59:00Z", &[2]);
    w.landed(&sha("rebased2b"), "2026-07-02T03:00:00Z", &[2]);
    w.landed(&sha("direct"), "2026-07-02T05:00:00Z", &[]);
    let d1 = w.deployment(&sha("squash1"), "main", "production", "2026-07-02T06:00:00Z");
    w.status(d1, "in_progress", "2026-07-02T06:00:10Z", Some("https://github.com/acme/api/actions/runs/777/job/1"));
    w.status(d1, "success", "2026-07-02T06:05:00Z", Some("https://github.com/acme/api/actions/runs/777/job/1"));
    w.approval(777, "bob", "Ship it!");
    // Made by Actions: the deployment's creator is the bot; run 777 says who triggered it.
    w.deployment_creator(d1, "github-actions[bot]");
    w.run(777, "alice", "dave", "main");
    // Production needs bob's review, waits 30 minutes, and takes main only.
    w.environment("production", &["bob"], 30);
    w.branch_policies.insert("production".into(), vec!["main".into()]);
    let d2 = w.deployment(&sha("direct"), "v1.2.0", "staging", "2026-07-02T07:00:00Z");
    w.status(d2, "in_progress", "2026-07-02T07:00:10Z", None);
    w
}

struct Setup {
    repo: Repo,
    fake: Fake,
    db: std::path::PathBuf,
}

fn setup(w: World) -> Result<Setup> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    let db = repo.path.join(".git/audit/ledger.db");
    Ok(Setup { repo, fake: Fake::start(w), db })
}

impl Setup {
    fn sync(&self, extra: &[&str]) -> Result<(i32, serde_json::Value, String)> {
        let mut c = self.cmd(extra);
        let out = c.output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token leaked:\n{stdout}\n{stderr}");
        let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        Ok((out.status.code().unwrap_or(-1), v, stderr))
    }

    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = self.repo.cmd(BIN);
        c.env("GITHUB_TOKEN", TOKEN).env("GIT_AUDIT_SYNC_BACKOFF_MS", "20").args(["sync", "--json"]);
        if !extra.contains(&"--api-url") {
            c.args(["--api-url", &self.fake.url]);
        }
        if !extra.contains(&"--github") {
            c.args(["--github", "acme/api"]);
        }
        c.args(extra);
        c
    }

    fn kinds(&self) -> Result<BTreeMap<String, usize>> {
        let c = Connection::open(&self.db)?;
        let mut out = BTreeMap::new();
        for row in c
            .prepare("SELECT kind, count(*) FROM entries GROUP BY kind")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        {
            let (k, n) = row?;
            out.insert(k, n as usize);
        }
        Ok(out)
    }

    fn scalar(&self, sql: &str) -> Result<String> {
        let c = Connection::open(&self.db)?;
        Ok(c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0)).map(|v| crate::support::show(&v))?)
    }

    fn verify_ledger(&self) -> Result<()> {
        let (code, out, err) = self.repo.audit(&["ledger", "verify"])?;
        assert_eq!(code, 0, "{out}{err}");
        Ok(())
    }
}

#[test]
fn a_first_sync_records_everything_and_a_second_makes_only_304s() -> Result<()> {
    first_and_second_sync("graphql")?;
    first_and_second_sync("rest")
}

fn first_and_second_sync(api: &str) -> Result<()> {
    let s = setup(world())?;
    let (code, v, err) = s.sync(&["--pulls-api", api])?;
    assert_eq!(code, 0, "{err}");
    let k = s.kinds()?;
    assert_eq!(k.get("pr.synced"), Some(&131));
    assert_eq!(k.get("review.synced"), Some(&4));
    assert_eq!(k.get("deployment.synced"), Some(&2));
    assert_eq!(k.get("deployment_status.synced"), Some(&3));
    assert_eq!(k.get("deployment_approval.synced"), Some(&1));
    // Reports show the Actions review as the production deployment's approval.
    let (code, out, err) = s.repo.audit(&["report", "deployments", "--env", "production", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let deps: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(deps["deployments"][0]["source"], "github", "{deps}");
    assert_eq!(deps["deployments"][0]["approvals"][0]["user"], "bob", "{deps}");
    assert_eq!(deps["deployments"][0]["approvals"][0]["state"], "approved", "{deps}");
    // Landed commits in no PR's commit list and not a merge_commit_sha: the first
    // rebased commit (→ #2) and the direct push.
    assert_eq!(k.get("commit_pulls.synced"), Some(&2));
    assert_eq!(v["repositories"][0]["capped_pull_requests"], serde_json::json!([131]));

    // Projections link it all by commit id, in GitHub's own terms.
    assert_eq!(s.scalar("SELECT count(*) FROM pull_requests")?, "131");
    assert_eq!(s.scalar("SELECT merged_by FROM pull_requests WHERE number = 1")?, "bob");
    assert_eq!(
        s.scalar(&format!("SELECT merge_commit_sha FROM pull_requests WHERE number = 1 AND merge_commit_sha = '{}'", sha("squash1")))?,
        sha("squash1")
    );
    assert_eq!(s.scalar("SELECT count(*) FROM pr_commits WHERE number = 131")?, "250");
    assert_eq!(s.scalar("SELECT commit_id FROM reviews WHERE number = 3 AND reviewer = 'carol'")?, sha("c3a"));
    assert_eq!(s.scalar("SELECT head_sha FROM pull_requests WHERE number = 3")?, sha("c3b"));
    assert_eq!(s.scalar(&format!("SELECT pulls FROM commit_pulls WHERE sha = '{}'", sha("rebased2a")))?, "[2]");
    assert_eq!(s.scalar(&format!("SELECT pulls FROM commit_pulls WHERE sha = '{}'", sha("direct")))?, "[]");
    assert_eq!(s.scalar(&format!("SELECT environment FROM deployments WHERE sha = '{}'", sha("squash1")))?, "production");
    assert_eq!(
        s.scalar("SELECT group_concat(state, ',') FROM (SELECT state FROM deployment_statuses ORDER BY id)")?,
        "in_progress,success,in_progress"
    );
    let c = Connection::open(&s.db)?;
    let approval: String = c.query_row("SELECT payload FROM entries WHERE kind = 'deployment_approval.synced'", [], |r| r.get(0))?;
    assert!(approval.contains("\"run_id\":777") && approval.contains("Ship it!") && approval.contains("\"login\":\"bob\""), "{approval}");
    // Entries about a commit are found by its id.
    let about_squash: i64 = c.query_row("SELECT count(*) FROM entries WHERE subject = ?1", [sha("squash1")], |r| r.get(0))?;
    assert_eq!(about_squash, 5, "deployment + 2 statuses + approval + the workflow run that deployed it");
    s.verify_ledger()?;

    // A second pass right away: nothing new, a handful of requests, all answered
    // 304 but the commit listing whose `since` moved with its cursor (and the one
    // GraphQL query, which has no ETags).
    s.fake.take_log();
    let (code, v, err) = s.sync(&["--pulls-api", api])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["repositories"][0]["new_entries"], 0);
    let log = s.fake.take_log();
    assert!(log.len() <= 10, "{} requests: {log:?}", log.len());
    assert!(log.iter().all(|(status, p)| *status == 304 || p.contains("/commits?sha=main") || p == "/graphql"), "{log:?}");
    assert!(log.iter().filter(|(_, p)| p == "/graphql").count() <= 1, "{log:?}");
    // A third: every REST request is a 304.
    let (code, _, _) = s.sync(&["--pulls-api", api])?;
    assert_eq!(code, 0);
    let log = s.fake.take_log();
    assert!(log.iter().all(|(status, p)| *status == 304 || p == "/graphql"), "{log:?}");
    assert_eq!(s.kinds()?.values().sum::<usize>(), k.values().sum::<usize>());
    Ok(())
}

#[test]
fn rest_and_graphql_record_identical_payloads() -> Result<()> {
    let s = setup(world())?;
    assert_eq!(s.sync(&["--pulls-api", "rest"])?.0, 0);
    let before = s.kinds()?;
    // Forget the cursors: the GraphQL pass re-reads every PR and must find nothing new.
    Connection::open(&s.db)?.execute("DELETE FROM sync_cursors", [])?;
    let (code, v, err) = s.sync(&["--pulls-api", "graphql"])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["repositories"][0]["pull_requests"], 0, "{v}");
    assert_eq!(v["repositories"][0]["reviews"], 0, "{v}");
    assert_eq!(s.kinds()?, before);
    Ok(())
}

#[test]
fn changes_after_merge_are_picked_up_and_only_they() -> Result<()> {
    let s = setup(world())?;
    assert_eq!(s.sync(&[])?.0, 0);
    let before = s.kinds()?;
    s.fake.with_world(|w| {
        // A review arrives after the merge; the staging deployment finishes.
        w.review(1, "erin", "APPROVED", &sha("c1b"), "2026-07-03T00:00:00Z");
        let d2 = w.deployments.iter().find(|d| d["environment"] == "staging").and_then(|d| d["id"].as_i64()).unwrap_or(0);
        w.status(d2, "success", "2026-07-03T01:00:00Z", None);
    });
    let (code, v, err) = s.sync(&[])?;
    assert_eq!(code, 0, "{err}");
    let after = s.kinds()?;
    let diff = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    assert_eq!(diff("review.synced"), 1);
    assert_eq!(diff("pr.synced"), 1, "its updated_at moved");
    assert_eq!(diff("deployment_status.synced"), 1);
    assert_eq!(diff("deployment.synced"), 0);
    assert_eq!(v["repositories"][0]["new_entries"], 3);
    assert_eq!(s.scalar("SELECT count(*) FROM sync_pending")?, "0", "no deployment left to poll");
    s.verify_ledger()
}

#[test]
fn faults_are_waited_out_and_enterprise_urls_work() -> Result<()> {
    let mut w = World::new("acme/api");
    for n in 1..=5u64 {
        w.pull(n, "alice", &format!("2026-07-01T00:0{n}:00Z"), &[sha(&format!("f{n}"))]);
    }
    let s = setup(w)?;
    s.fake.faults(|f| {
        f.bad_gateway = 2;
        f.secondary_limit = 1;
        f.primary_exhausted = 1;
    });
    let url = format!("{}/api/v3", s.fake.url);
    let (code, v, err) = s.sync(&["--api-url", &url])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("GitHub answered 502"), "{err}");
    assert!(err.contains("rate limited by GitHub"), "{err}");
    assert_eq!(s.kinds()?.get("pr.synced"), Some(&5));
    assert!(v["retries"].as_u64().unwrap_or(0) >= 4, "{v}");
    let log = s.fake.take_log();
    assert!(log.iter().all(|(_, p)| p.starts_with("/api/v3/") || p == "/api/graphql"), "{log:?}");
    assert!(log.iter().any(|(_, p)| p == "/api/graphql"), "GraphQL is not under /api/v3 on Enterprise: {log:?}");
    s.verify_ledger()
}

#[test]
fn bad_repositories_and_tokens_are_named_and_the_token_never_shows() -> Result<()> {
    let s = setup(world())?;
    let (code, _, err) = s.sync(&["--github", "acme/nope"])?;
    assert_eq!(code, 2);
    assert!(err.contains("acme/nope: not found, or the token cannot see it") && err.contains("Hint:"), "{err}");
    let out =
        s.repo.cmd(BIN).env("GITHUB_TOKEN", "ghp_WRONGtoken").args(["sync", "--api-url", &s.fake.url, "--github", "acme/api"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("acme/api: GitHub rejected the credentials (401)") && !err.contains("ghp_WRONGtoken"), "{err}");
    let (code, _, err) = s.sync(&["--github", "not a repo"])?;
    assert_eq!(code, 2);
    assert!(err.contains("is not a repository name"), "{err}");
    // Nothing anywhere in the ledger file holds the token.
    assert_eq!(s.sync(&[])?.0, 0);
    let bytes = std::fs::read(&s.db)?;
    assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    Ok(())
}

#[test]
fn a_sync_killed_mid_run_resumes_without_gaps_or_duplicates() -> Result<()> {
    let clean = setup(world())?;
    assert_eq!(clean.sync(&[])?.0, 0);
    let expected = clean.kinds()?;

    let s = setup(world())?;
    s.fake.faults(|f| f.delay_ms = 3);
    for round in 0..3u64 {
        // The killed passes use REST (many requests to land a kill between); the
        // resuming pass uses GraphQL: identical payloads, so no duplicates either way.
        let mut child = s.cmd(&["--pulls-api", "rest"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(300 + 150 * round));
        Command::new("kill").args(["-9", &child.id().to_string()]).status()?;
        child.wait()?;
        s.verify_ledger()?;
    }
    let partial: usize = s.kinds()?.values().sum();
    assert!(partial > 0 && partial < expected.values().sum(), "the kills should land mid-run ({partial})");
    s.fake.faults(|f| f.delay_ms = 0);
    let (code, _, err) = s.sync(&[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?, expected);
    let c = Connection::open(&s.db)?;
    let dupes: i64 = c.query_row(
        "SELECT count(*) FROM (SELECT subject FROM entries WHERE kind = 'pr.synced' GROUP BY subject HAVING count(*) > 1)",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(dupes, 0);
    s.verify_ledger()
}

#[test]
fn interval_mode_holds_a_lock_and_stops_cleanly_on_sigterm() -> Result<()> {
    let s = setup(world())?;
    let mut first = s.cmd(&["--interval", "1h"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    // Wait for the first pass to finish (its summary line appears).
    let mut stdout = first.stdout.take().context("stdout")?;
    let mut line = Vec::new();
    use std::io::Read;
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&line).contains("\"requests\""), "{}", String::from_utf8_lossy(&line));
    let (code, _, err) = s.sync(&[])?;
    assert_eq!(code, 2);
    assert!(err.contains("another `git-audit sync` is running"), "{err}");
    Command::new("kill").args(["-TERM", &first.id().to_string()]).status()?;
    let started = std::time::Instant::now();
    let status = first.wait()?;
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The lock is free again.
    assert_eq!(s.sync(&[])?.0, 0);
    Ok(())
}

#[test]
fn a_github_app_installation_can_sync() -> Result<()> {
    let mut w = World::new("acme/api");
    w.pull(1, "alice", "2026-07-01T00:00:00Z", &[sha("app1")]);
    let s = setup(w)?;
    let key = s.repo.tmp.path().join("app-key");
    let out = Command::new("ssh-keygen").args(["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f"]).arg(&key).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s
        .repo
        .cmd(BIN)
        .args(["sync", "--json", "--api-url", &s.fake.url, "--github", "acme/api", "--app-id", "12345", "--installation-id", "99"])
        .arg("--app-key")
        .arg(&key)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains(INSTALLATION_TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(INSTALLATION_TOKEN));
    let log = s.fake.take_log();
    assert!(log.iter().any(|(status, p)| *status == 201 && p == "/app/installations/99/access_tokens"), "{log:?}");
    assert_eq!(s.kinds()?.get("pr.synced"), Some(&1));
    Ok(())
}

#[test]
fn credentials_in_the_api_url_never_show_even_at_debug_level() -> Result<()> {
    let s = setup(world())?;
    let secret = "s3cr3t-Passw0rd";
    let url = s.fake.url.replacen("://", &format!("://bob:{secret}@"), 1);
    let out = s.cmd(&["--api-url", &url]).env("GIT_AUDIT_LOG", "debug").output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("DEBUG"), "debug logging was on: {stderr}");
    assert!(stderr.contains("ignoring the user:password in the API URL") && stderr.contains("<redacted>@"), "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret), "the password leaked:\n{stdout}\n{stderr}");
    let bytes = std::fs::read(&s.db)?;
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "the password is in the ledger");
    Ok(())
}

#[test]
fn actions_deployments_are_judged_by_who_triggered_their_run() -> Result<()> {
    let s = setup(world())?;
    let (code, _, err) = s.sync(&[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?.get("workflow_run.synced"), Some(&1));
    let judge = |deployers: &str| -> Result<Vec<(String, String)>> {
        let text = format!(
            "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [{deployers}]\napprovers = [\"bob\"]\nrequired_approvals = 1\nbranches = [\"main\"]\n"
        );
        let (_, v, _) = compliance_under(&s.repo, &text)?;
        Ok(deploy_findings(&v)
            .into_iter()
            .map(|f| (f["rule"].as_str().unwrap_or("").to_string(), f["message"].as_str().unwrap_or("").to_string()))
            .collect())
    };
    // dave triggered the run, bob approved it, from main: nothing to report.
    assert_eq!(judge("\"dave\"")?, Vec::<(String, String)>::new());
    // Only erin may deploy: dave (not the bot) is named.
    let found = judge("\"erin\"")?;
    assert_eq!(found, vec![("deploy.deployer-not-allowed".to_string(), "dave may not deploy to production".to_string())]);
    Ok(())
}

#[test]
fn a_weakened_environment_protection_is_recorded_and_reported() -> Result<()> {
    let s = setup(world())?;
    assert_eq!(s.sync(&[])?.0, 0);
    assert_eq!(s.kinds()?.get("environment.synced"), Some(&1));
    // Unchanged: nothing new is recorded.
    assert_eq!(s.sync(&[])?.0, 0);
    assert_eq!(s.kinds()?.get("environment.synced"), Some(&1));
    let (code, out, _) = s.repo.audit(&["report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    assert!(!out.contains("env.protection-changed"), "{code}: {out}");
    // Someone removes the required reviewers and the wait.
    s.fake.with_world(|w| {
        w.environment("production", &[], 0);
        w.branch_policies.insert("production".into(), vec!["main".into(), "*".into()]);
    });
    assert_eq!(s.sync(&[])?.0, 0);
    assert_eq!(s.kinds()?.get("environment.synced"), Some(&2));
    let (code, out, err) = s.repo.audit(&["report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let changed: Vec<&serde_json::Value> =
        v["findings"].as_array().context("findings")?.iter().filter(|f| f["rule"] == "env.protection-changed").collect();
    assert_eq!(changed.len(), 1, "{out}");
    assert_eq!(changed[0]["severity"], "warning");
    assert_eq!(changed[0]["subject"], "acme/api production");
    assert_eq!(
        changed[0]["message"],
        "protection changed from \"wait 30 min; reviewers bob; branch policy; branches main; admins may bypass\" to \"wait 0 min; reviewers none; branch policy; branches *, main; admins may bypass\""
    );
    assert_eq!(changed[0]["evidence"].as_array().map(Vec::len), Some(2));
    s.verify_ledger()?;
    Ok(())
}

#[test]
fn teams_in_the_policy_are_synced_and_judged_as_of_the_deployment() -> Result<()> {
    let mut w = world();
    w.teams.insert("acme/sre".into(), vec!["dave".into()]);
    w.teams.insert("acme/leads".into(), vec!["bob".into()]);
    let s = setup(w)?;
    let policy = s.repo.tmp.path().join("teams.toml");
    std::fs::write(
        &policy,
        "version = 1\n[github]\nrepositories = [\"acme/api\"]\n[[environments]]\nname = \"production\"\ndeployers = [\"team:acme/sre\"]\napprovers = [\"team:acme/leads\"]\nrequired_approvals = 1\nbranches = [\"main\"]\n",
    )?;
    let policy_arg = policy.to_str().context("path")?;
    for _ in 0..2 {
        let out = s.cmd(&[]).args(["--policy", policy_arg]).output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(s.kinds()?.get("team.synced"), Some(&2), "one snapshot per team; an unchanged team is not recorded again");
    // A deployment made now, after the snapshots: dave (sre) deployed, bob (leads) approved.
    let (code, _, err) = s.repo.audit(&[
        "record",
        "deployment",
        "--repo",
        "acme/api",
        "--environment",
        "production",
        "--sha",
        &sha("now"),
        "--ref",
        "main",
        "--actor",
        "dave",
        "--approved-by",
        "bob",
        "--id",
        "now-1",
    ])?;
    assert_eq!(code, 0, "{err}");
    let (_, out, err) = s.repo.audit(&["--policy", policy_arg, "report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("{out}{err}"))?;
    let deploy: Vec<(String, String, String)> = deploy_findings(&v)
        .into_iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or("").into(),
                f["subject"].as_str().unwrap_or("").into(),
                f["message"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    // The July Actions deployment predates the first snapshot: it is judged by
    // that snapshot (dave in sre, bob in leads), so it is clean; so is today's
    // deployer and approver (no *-not-allowed) — but today's approval is the
    // recording job's word (--approved-by), which never counts as approval.
    assert_eq!(deploy.len(), 1, "{deploy:?}");
    assert_eq!((deploy[0].0.as_str(), deploy[0].1.as_str()), ("deploy.no-approval", "acme/api production deployment now-1"));
    assert!(deploy[0].2.contains("1 approval(s) the recording job asserted"), "{deploy:?}");
    Ok(())
}

#[test]
fn an_actions_deployment_whose_run_is_gone_has_an_unknown_deployer_not_a_pass() -> Result<()> {
    let mut w = world();
    w.runs.clear(); // GitHub answers 404 for run 777
    let s = setup(w)?;
    assert_eq!(s.sync(&[])?.0, 0);
    assert_eq!(s.kinds()?.get("workflow_run.synced"), None);
    let (code, v, err) = compliance_under(&s.repo, "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"dave\"]\n")?;
    assert_eq!(code, 1, "{err}");
    let out = v.to_string();
    assert!(out.contains("the deployer is unknown (created by github-actions[bot] and its workflow run is not recorded)"), "{out}");
    // With the run, the deployments report names who triggered it.
    let s = setup(world())?;
    assert_eq!(s.sync(&[])?.0, 0);
    let (_, out, _) = s.repo.audit(&["report", "deployments", "--env", "production", "--since", "2000-01-01", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["deployments"][0]["deployer"], "github-actions[bot]");
    assert_eq!(v["deployments"][0]["triggering_actor"], "dave");
    Ok(())
}

#[test]
fn approvals_github_no_longer_has_are_unknown_not_none() -> Result<()> {
    let mut w = world();
    w.approvals_gone.push(777);
    let s = setup(w)?;
    assert_eq!(s.sync(&[])?.0, 0);
    let (code, v, err) =
        compliance_under(&s.repo, "version = 1\n[[environments]]\nname = \"production\"\napprovers = [\"bob\"]\nrequired_approvals = 1\n")?;
    assert_eq!(code, 1, "{err}");
    let out = v.to_string();
    // Unknown is never a pass, and never a violation either: "could not verify".
    assert!(!out.contains("\"deploy.no-approval\""), "{out}");
    assert!(out.contains("\"deploy.approver-unverified\"") && out.contains("could not verify its approvals"), "{out}");
    assert_eq!(v["counts"]["could_not_verify"], 1, "{out}");
    Ok(())
}

#[test]
fn new_findings_and_failed_deployments_are_told_after_a_baseline() -> Result<()> {
    let rx = crate::notify::Receiver::start();
    let s = setup(world())?;
    let secret = s.repo.tmp.path().join("secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    let policy = s.repo.tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\n[[notify]]\nkind = \"webhook\"\nurl = \"{}/f\"\nsecret_file = \"{}\"\nevents = [\"finding.*\", \"deployment.failed\"]\n",
            rx.url,
            secret.display()
        ),
    )?;
    let p = policy.to_str().context("path")?;
    // The first sync takes what is already there as the baseline: nothing is sent.
    let (code, v, err) = s.sync(&["--policy", p])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(rx.got("/f").len(), 0, "{err}");
    // The summary counts what it fetched (it said 0 while recording them).
    assert_eq!(v["repositories"][0]["fetched_pull_requests"], 131, "{v}");

    // Then a pull request is merged without approval, and a deployment fails.
    s.fake.with_world(|w| {
        w.pull(140, "mallory", "2026-07-03T00:00:00Z", &[sha("m140")]);
        w.merge(140, "mallory", "2026-07-03T01:00:00Z", &sha("m140"));
        w.landed(&sha("m140"), "2026-07-03T01:00:00Z", &[140]);
        let d = w.deployment(&sha("m140"), "main", "production", "2026-07-03T02:00:00Z");
        w.status(d, "failure", "2026-07-03T02:05:00Z", None);
    });
    let (code, _, err) = s.sync(&["--policy", p])?;
    assert_eq!(code, 0, "{err}");
    let got = rx.got("/f");
    let types: Vec<String> = got.iter().map(|g| g.json()["type"].as_str().unwrap_or_default().to_string()).collect();
    assert!(types.contains(&"finding.pr.no-approval".to_string()), "{types:?} {err}");
    assert!(types.contains(&"deployment.failed".to_string()), "{types:?}");
    let finding = got.iter().map(|g| g.json()).find(|j| j["type"] == "finding.pr.no-approval").unwrap_or_default();
    assert_eq!(finding["data"]["subject"], "acme/api#140");
    assert_eq!(finding["data"]["repository"], "acme/api");
    let failed = got.iter().map(|g| g.json()).find(|j| j["type"] == "deployment.failed").unwrap_or_default();
    assert_eq!(failed["data"]["environment"], "production");
    assert_eq!(failed["data"]["sha"], sha("m140"));

    // Nothing new: nothing sent again.
    let before = got.len();
    let (code, _, err) = s.sync(&["--policy", p])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(rx.got("/f").len(), before);
    Ok(())
}

#[test]
fn sync_shows_phase_and_counts_on_a_terminal_and_json_with_json_logs() -> Result<()> {
    let s = setup(world())?;
    // A real pseudo-terminal (util-linux `script`), so the progress line is drawn.
    let cmd = format!(
        "stty cols 200; GITHUB_TOKEN={TOKEN} GIT_AUDIT_SYNC_BACKOFF_MS=20 {} sync --github acme/api --api-url {}",
        crate::support::BIN,
        s.fake.url
    );
    let out = s.repo.cmd("script").env("TERM", "xterm").args(["-qec", &cmd, "/dev/null"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("syncing acme/api: ") && text.contains(" pull requests, ") && text.contains(" requests)"), "{text}");
    assert!(!text.contains(TOKEN), "the token leaked");
    // --log-format json: the summary is one JSON line.
    let mut c = s.repo.cmd(crate::support::BIN);
    c.env("GITHUB_TOKEN", TOKEN).args(["--log-format", "json", "sync", "--github", "acme/api", "--api-url", &s.fake.url]);
    let out = c.output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["repositories"][0]["repository"], "acme/api", "{v}");
    Ok(())
}

/// GitHub chaos: a quarter of all requests fail at random — 500/502/503, 403
/// secondary limits and 429s with `retry-after`, JSON cut in half or not JSON
/// at all, bodies that trickle, connections dropped mid-body. Each seed's
/// syncs (a run may give up with a clear error; the next resumes from its
/// cursors) end with every object recorded exactly once, each successful
/// run's count equal to what it added, and a clean `ledger verify`.
/// More seeds: `GIT_AUDIT_CHAOS_SEEDS=50 cargo test chaos` (fault/chaos.sh).
#[test]
fn chaos_syncs_end_with_everything_exactly_once() -> Result<()> {
    let seeds: u64 = std::env::var("GIT_AUDIT_CHAOS_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut served: BTreeMap<crate::fake_github::Fault, u64> = BTreeMap::new();
    let mut gave_up = 0;
    for seed in 1..=seeds {
        let api = if seed % 2 == 0 { "rest" } else { "graphql" };
        let s = setup(world())?;
        s.fake.faults(|f| f.chaos = Some(crate::fake_github::Chaos::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 25)));
        let entries = || -> Result<u64> { Ok(s.scalar("SELECT count(*) FROM entries")?.parse()?) };
        let mut runs = 0;
        loop {
            runs += 1;
            let before = entries()?;
            let (code, v, err) = s.sync(&["--pulls-api", api])?;
            s.verify_ledger()?;
            if code == 0 {
                let reported: u64 = v["repositories"].as_array().into_iter().flatten().filter_map(|r| r["new_entries"].as_u64()).sum();
                assert_eq!(reported, entries()? - before, "seed {seed} run {runs}: the count is not what was added: {v}");
                break;
            }
            // Gave up: a clear error naming the repository and what failed.
            gave_up += 1;
            assert!(err.contains("error:") && err.contains("acme/api"), "seed {seed} run {runs}: {err}");
            assert!(runs < 10, "seed {seed}: still failing after {runs} runs: {err}");
        }
        // The storm passes: one more run has nothing new to record.
        let chaos = s.fake.shared.faults.lock().map(|mut f| f.chaos.take()).ok().flatten();
        for (k, n) in chaos.map(|c| c.served).unwrap_or_default() {
            *served.entry(k).or_default() += n;
        }
        let (code, v, err) = s.sync(&["--pulls-api", api])?;
        assert_eq!(code, 0, "{err}");
        assert_eq!(v["repositories"][0]["new_entries"], 0, "seed {seed}: {v}");
        let k = s.kinds()?;
        for (kind, n) in [
            ("pr.synced", 131),
            ("review.synced", 4),
            ("deployment.synced", 2),
            ("deployment_status.synced", 3),
            ("deployment_approval.synced", 1),
        ] {
            assert_eq!(k.get(kind), Some(&n), "seed {seed} ({api}): {kind} in {k:?}");
        }
        assert_eq!(
            s.scalar(
                "SELECT count(*) FROM (SELECT kind, subject, payload FROM entries GROUP BY kind, subject, payload HAVING count(*) > 1)"
            )?,
            "0"
        );
    }
    eprintln!("chaos: {seeds} seeds, faults served {served:?}, {gave_up} runs gave up and were resumed");
    assert!(served.len() >= 6, "too few kinds of fault were served: {served:?}");

    // A storm that does not pass in time: the sync gives up with a clear error
    // (exit 1, the repository and the last failure named), keeps what it had,
    // and the next run, after the storm, completes it exactly once.
    let s = setup(world())?;
    s.fake.faults(|f| f.chaos = Some(crate::fake_github::Chaos::new(42, 97)));
    let (code, _, err) = s.sync(&["--pulls-api", "rest"])?;
    eprintln!("chaos at 97%: exit {code}: {}", err.lines().filter(|l| l.starts_with("error")).collect::<Vec<_>>().join(" | "));
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("error: acme/api") && (err.contains("unavailable") || err.contains("not JSON") || err.contains("rate limited")),
        "{err}"
    );
    s.verify_ledger()?;
    s.fake.faults(|f| f.chaos = None);
    let (code, _, err) = s.sync(&["--pulls-api", "rest"])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?.get("pr.synced"), Some(&131));
    assert_eq!(
        s.scalar("SELECT count(*) FROM (SELECT kind, subject, payload FROM entries GROUP BY kind, subject, payload HAVING count(*) > 1)")?,
        "0"
    );
    Ok(())
}

#[test]
fn a_first_sync_judges_earlier_deployments_by_the_first_team_snapshot_and_invents_nothing() -> Result<()> {
    // Every deployment happened in July; the teams are first synced now. Five
    // planted violations, and nothing else may be called one.
    let mut w = World::new("acme/api");
    w.teams.insert("acme/deployers".into(), vec!["carol".into(), "dave".into()]);
    w.teams.insert("acme/approvers".into(), vec!["bob".into(), "carol".into()]);
    // acme/hidden is not in the fake: GitHub answers 404 for its members.
    let mut run = 900u64;
    let mut deploy = |w: &mut World, env: &str, refname: &str, deployer: &str, approvers: &[&str], n: u32| -> i64 {
        run += 1;
        let at = format!("2026-07-{:02}T10:00:00Z", n);
        let d = w.deployment(&sha(&format!("shipped{n}")), refname, env, &at);
        let url = format!("https://github.com/acme/api/actions/runs/{run}/job/1");
        w.status(d, "success", &format!("2026-07-{:02}T10:05:00Z", n), Some(&url));
        w.deployment_creator(d, "github-actions[bot]");
        w.run(run, deployer, deployer, refname);
        for a in approvers {
            w.approval(run, a, "ok");
        }
        d
    };
    let mut clean = Vec::new();
    for n in 1..=8 {
        // carol approves fine: a member then (as first recorded) and now.
        let (deployer, approver) = if n % 2 == 0 { ("dave", "carol") } else { ("carol", "bob") };
        clean.push(deploy(&mut w, "production", "main", deployer, &[approver], n));
    }
    let outsider = deploy(&mut w, "production", "main", "dave", &["mallory", "carol"], 10);
    let self_approved = deploy(&mut w, "production", "main", "carol", &["carol", "bob"], 11);
    let unapproved = deploy(&mut w, "production", "main", "dave", &[], 12);
    let wrong_ref = deploy(&mut w, "production", "feature/x", "dave", &["bob"], 13);
    let wrong_deployer = deploy(&mut w, "production", "main", "mallory", &["bob"], 14);
    let unreadable = deploy(&mut w, "staging", "main", "dave", &["zed"], 15);
    let s = setup(w)?;
    let policy = s.repo.tmp.path().join("first-sync.toml");
    std::fs::write(
        &policy,
        "version = 1\n[github]\nrepositories = [\"acme/api\"]\n\
         [[environments]]\nname = \"production\"\ndeployers = [\"team:acme/deployers\"]\napprovers = [\"team:acme/approvers\"]\nrequired_approvals = 1\nprevent_self_approval = true\nbranches = [\"main\"]\n\
         [[environments]]\nname = \"staging\"\napprovers = [\"team:acme/hidden\"]\nrequired_approvals = 1\n",
    )?;
    let policy_arg = policy.to_str().context("path")?;
    let out = s.cmd(&[]).args(["--policy", policy_arg]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The sync says which team it could not read, and what follows from it.
    assert!(err.contains("team:acme/hidden") && err.contains("404") && err.contains("could not verify"), "{err}");

    let (code, v, err) = compliance_under(&s.repo, &std::fs::read_to_string(&policy)?)?;
    assert_eq!(code, 1, "{err}");
    let subject = |id: i64| format!("acme/api production deployment {id}");
    let mut errors: Vec<(String, String)> = deploy_findings(&v)
        .into_iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| (f["subject"].as_str().unwrap_or("").to_string(), f["rule"].as_str().unwrap_or("").to_string()))
        .collect();
    errors.sort();
    let mut planted = vec![
        (subject(outsider), "deploy.approver-not-allowed".to_string()),
        (subject(self_approved), "deploy.self-approval".to_string()),
        (subject(unapproved), "deploy.no-approval".to_string()),
        (subject(wrong_ref), "deploy.ref-not-allowed".to_string()),
        (subject(wrong_deployer), "deploy.deployer-not-allowed".to_string()),
    ];
    planted.sort();
    assert_eq!(errors, planted, "exactly the planted violations, none invented");
    // Each names the membership it was judged by.
    let outsider_msg = deploy_findings(&v)
        .into_iter()
        .find(|f| f["subject"] == subject(outsider))
        .and_then(|f| f["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        outsider_msg.starts_with("mallory may not approve deployments to production (membership of team:acme/approvers as of ")
            && outsider_msg.ends_with(", after the deployment)"),
        "{outsider_msg}"
    );
    // The team the token cannot read: "could not verify", a warning, never a violation.
    let unverified: Vec<&serde_json::Value> = deploy_findings(&v).into_iter().filter(|f| f["severity"] == "warning").collect();
    assert_eq!(unverified.len(), 1, "{unverified:?}");
    assert_eq!(unverified[0]["rule"], "deploy.approver-unverified");
    assert_eq!(unverified[0]["subject"], format!("acme/api staging deployment {unreadable}"));
    assert!(unverified[0]["message"].as_str().unwrap_or("").contains("team:acme/hidden was never recorded"), "{}", unverified[0]);
    assert_eq!(v["counts"]["could_not_verify"], 1);
    assert_eq!(v["counts"]["violations"], v["findings"].as_array().map_or(0, |a| a.len() - 1));
    for id in &clean {
        assert!(deploy_findings(&v).iter().all(|f| f["subject"] != subject(*id)), "deployment {id} is clean");
    }
    // GitHub's run approvals carry no time: null, with when it was synced beside it.
    let (_, out, _) = s.repo.audit(&["report", "deployments", "--env", "production", "--since", "2026-01-01", "--format", "json"])?;
    let deps: serde_json::Value = serde_json::from_str(&out)?;
    let approval = &deps["deployments"][0]["approvals"][0];
    assert_eq!(approval["time"], serde_json::Value::Null, "{approval}");
    assert!(approval["synced_at"].as_str().is_some_and(|t| t > "2026-08"), "{approval}");

    // The dashboard shows violations and "could not verify" apart.
    std::fs::copy(&policy, s.repo.path.join(".git-audit.toml"))?;
    let server = crate::serve::serve(&s.repo, &["--listen", "127.0.0.1:0"], &[])?;
    let (status, head, body) = crate::serve::http(&server.addr, "GET", "/?since=2026-07-01&until=2026-08-01&env=production", &[])?;
    assert_eq!(status, 200, "{head}{body}");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { crate::serve::dechunk(&body) } else { body };
    let tile = |id: &str| -> String {
        body.split(&format!("id=\"{id}\""))
            .nth(1)
            .and_then(|r| r.split("class=\"value").nth(1))
            .and_then(|r| r.split('>').nth(1))
            .and_then(|r| r.split('<').next())
            .unwrap_or("?")
            .to_string()
    };
    assert_eq!(tile("tile-unverified"), "1", "{body}");
    let violations = v["counts"]["violations"].to_string();
    assert_eq!(tile("tile-findings"), violations);
    assert_eq!(tile("tile-anomalies"), v["counts"]["anomalies"].to_string(), "anomalies, counted apart");
    assert!(body.contains("deploy.approver-unverified") && body.contains("could not verify"), "by rule, marked");
    Ok(())
}

#[test]
fn a_short_id_from_any_table_finds_what_the_ledger_knows_even_outside_the_clone() -> Result<()> {
    let s = setup(world())?;
    assert_eq!(s.sync(&[])?.0, 0);
    // sha("squash1") is PR #1's merge and production's deployment; it is not in the local clone.
    let full = sha("squash1");
    let short = &full[..10];
    assert!(s.repo.git(&["cat-file", "-e", &full]).is_err(), "not in the clone");
    let (code, out, err) = s.repo.audit(&["report", "trace", short, "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["commit"], full.as_str());
    assert_eq!(v["pull_requests"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["deployments"].as_array().map(Vec::len), Some(1), "{v}");
    // An ambiguous prefix lists its candidates; an unknown one says so.
    let mut known: Vec<String> = (1..=130).flat_map(|n| [sha(&format!("c{n}a")), sha(&format!("c{n}b"))]).collect();
    known.extend((0..260).map(|i| sha(&format!("big{i}"))));
    known.sort();
    let pair = known.windows(2).find(|w| w[0][..4] == w[1][..4]).context("two known ids share 4 digits")?;
    let (code, _, err) = s.repo.audit(&["report", "trace", &pair[0][..4]])?;
    assert_eq!(code, 2);
    assert!(err.contains("ambiguous commit id") && err.contains(&pair[0]) && err.contains(&pair[1]), "{err}");
    let (code, _, err) = s.repo.audit(&["report", "trace", "0000000000"])?;
    assert_eq!(code, 2);
    assert!(err.contains("unknown commit `0000000000`"), "{err}");
    // The dashboard's drill-down: the same short id finds the pull request and deployment.
    let server = crate::serve::serve(&s.repo, &["--listen", "127.0.0.1:0"], &[])?;
    let (status, head, body) = crate::serve::http(&server.addr, "GET", &format!("/trace/{short}"), &[])?;
    assert_eq!(status, 200, "{head}{body}");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { crate::serve::dechunk(&body) } else { body };
    assert!(body.contains("Pull requests (1)") && body.contains(&full), "{body}");
    let (status, _, _) = crate::serve::http(&server.addr, "GET", "/trace/0000000000", &[])?;
    assert_eq!(status, 404);
    Ok(())
}

#[test]
fn a_graphql_endpoint_that_answers_404_points_to_the_rest_api() -> Result<()> {
    let s = setup(world())?;
    s.fake.shared.faults.lock().map_err(|_| anyhow::anyhow!("lock"))?.graphql_missing = true;
    let (code, _, err) = s.sync(&[])?;
    assert_ne!(code, 0);
    assert!(err.contains("GraphQL endpoint") && err.contains("answered 404") && err.contains("--pulls-api rest"), "{err}");
    // Following the hint works.
    let (code, v, err) = s.sync(&["--pulls-api", "rest"])?;
    assert_eq!(code, 0, "{err}");
    assert!(v.to_string().contains("acme/api"), "{v}");
    Ok(())
}
