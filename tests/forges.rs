//! `git-audit sync --gitlab` and `--gitea` against local stand-ins: planted
//! cases yield exactly their findings, faults and kills lose nothing, a second
//! pass adds nothing, and one ledger reports GitHub, GitLab and Gitea together.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::fake_forges::{sha, FakeForges, GitLabWorld, GiteaWorld, GITEA_TOKEN, GITLAB_TOKEN};
use crate::support::{compliance_under, Repo, BIN};

const PROJECT: &str = "acme/platform/api";

/// The GitLab cases: !1 merged without an approval; !2 approved by its author
/// only; !3 approved, then a push reset the approval, then merged; !4 approved
/// by someone else on its final head (clean); !5 approved, withdrawn, approved
/// again on its final head (clean). Deployments to production: 901 approved
/// by the person who triggered it; 902 by someone outside the deployers'
/// group; 903 clean; 904 to staging, failed.
pub fn gitlab_world() -> GitLabWorld {
    let mut w = GitLabWorld::new(PROJECT);
    for iid in 1..=5 {
        w.merge_request(iid, "alice", &format!("2026-07-01T0{iid}:00:00Z"), &[sha(&format!("gl{iid}a"))]);
    }
    w.merge(1, "alice", "2026-07-02T01:00:00Z", &sha("glm1"));
    w.approve(2, "alice", "2026-07-02T01:30:00Z");
    w.merge(2, "alice", "2026-07-02T02:00:00Z", &sha("glm2"));
    w.approve(3, "carol", "2026-07-02T02:10:00Z");
    w.push(3, &sha("gl3b"), "2026-07-02T02:20:00Z");
    w.merge(3, "alice", "2026-07-02T03:00:00Z", &sha("glm3"));
    w.approve(4, "carol", "2026-07-02T03:30:00Z");
    w.merge(4, "alice", "2026-07-02T04:00:00Z", &sha("glm4"));
    w.approve(5, "carol", "2026-07-02T04:10:00Z");
    w.unapprove(5, "carol", "2026-07-02T04:20:00Z");
    w.approve(5, "bob", "2026-07-02T04:30:00Z");
    w.merge(5, "alice", "2026-07-02T05:00:00Z", &sha("glm5"));
    w.users.insert(11, "bob".into());
    w.users.insert(12, "carol".into());
    w.groups.insert(77, "acme/sre".into());
    w.members.insert("acme/sre".into(), vec!["alice".into(), "bob".into()]);
    w.protect("production", &[11, 12], 2, Some(77));
    w.deployment(901, &sha("glm4"), "production", "alice", "2026-07-03T01:00:00Z", "blocked");
    w.approve_deployment(901, "alice", "2026-07-03T01:05:00Z");
    // bob's approval makes the count: the one defect left is alice's own.
    w.approve_deployment(901, "bob", "2026-07-03T01:06:00Z");
    w.deployment_status(901, "success", "2026-07-03T01:10:00Z");
    w.deployment(902, &sha("glm4"), "production", "mallory", "2026-07-03T02:00:00Z", "success");
    w.approve_deployment(902, "bob", "2026-07-03T02:05:00Z");
    w.deployment(903, &sha("glm5"), "production", "bob", "2026-07-03T03:00:00Z", "running");
    w.approve_deployment(903, "carol", "2026-07-03T03:01:00Z");
    w.deployment_status(903, "success", "2026-07-03T03:05:00Z");
    w.deployment(904, &sha("glm5"), "staging", "bob", "2026-07-03T04:00:00Z", "failed");
    w
}

/// The Gitea cases: #1 merged without a review; #2 approved by its author
/// only; #3 approved, then pushed to (Gitea marks the approval stale); #4
/// approved, the approval dismissed; #5 clean (an official approval on its
/// final head); and a commit pushed straight to main.
pub fn gitea_world() -> GiteaWorld {
    let mut w = GiteaWorld::new("acme/web");
    for n in 1..=5u64 {
        w.pull(n, "dave", &format!("2026-07-01T0{n}:00:00Z"), &[sha(&format!("gt{n}a"))]);
    }
    w.merge(1, "dave", "2026-07-02T01:00:00Z", &sha("gtm1"));
    w.review(2, "dave", "APPROVED", &sha("gt2a"), "2026-07-02T01:30:00Z");
    w.merge(2, "dave", "2026-07-02T02:00:00Z", &sha("gtm2"));
    w.review(3, "erin", "APPROVED", &sha("gt3a"), "2026-07-02T02:10:00Z");
    w.push(3, &sha("gt3b"), "2026-07-02T02:20:00Z");
    w.merge(3, "dave", "2026-07-02T03:00:00Z", &sha("gtm3"));
    let r = w.review(4, "erin", "APPROVED", &sha("gt4a"), "2026-07-02T03:10:00Z");
    w.dismiss(4, r, "2026-07-02T03:20:00Z");
    w.merge(4, "dave", "2026-07-02T04:00:00Z", &sha("gtm4"));
    w.review(5, "erin", "COMMENT", &sha("gt5a"), "2026-07-02T04:05:00Z");
    w.review(5, "erin", "APPROVED", &sha("gt5a"), "2026-07-02T04:10:00Z");
    w.merge(5, "dave", "2026-07-02T05:00:00Z", &sha("gtm5"));
    w.landed.push((sha("gtdirect"), "2026-07-02T06:00:00Z".into()));
    w
}

const POLICY: &str = "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"group:acme/sre\"]\napprovers = [\"alice\", \"bob\", \"carol\"]\nrequired_approvals = 1\nprevent_self_approval = true\n";

struct Setup {
    repo: Repo,
    fake: FakeForges,
    db: std::path::PathBuf,
    policy: std::path::PathBuf,
}

fn setup(gitlab: GitLabWorld, gitea: GiteaWorld) -> Result<Setup> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    let db = repo.path.join(".git/audit/ledger.db");
    let policy = repo.tmp.path().join("forges.toml");
    std::fs::write(&policy, POLICY)?;
    Ok(Setup { repo, fake: FakeForges::start(gitlab, gitea), db, policy })
}

impl Setup {
    fn cmd(&self, forge: &str, name: &str) -> Result<Command> {
        let mut c = self.repo.cmd(BIN);
        c.env("GITLAB_TOKEN", GITLAB_TOKEN).env("GITEA_TOKEN", GITEA_TOKEN).env("GIT_AUDIT_SYNC_BACKOFF_MS", "20").args([
            "--policy",
            self.policy.to_str().context("path")?,
            "sync",
            "--json",
            "--api-url",
            &self.fake.url,
            forge,
            name,
        ]);
        Ok(c)
    }

    fn sync(&self, forge: &str, name: &str) -> Result<(i32, serde_json::Value, String)> {
        let out = self.cmd(forge, name)?.output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        for secret in [GITLAB_TOKEN, GITEA_TOKEN] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "the token leaked:\n{stdout}\n{stderr}");
        }
        Ok((out.status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or_default(), stderr))
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

    fn findings(&self) -> Result<Vec<(String, String)>> {
        let (_, report, err) = compliance_under(&self.repo, POLICY)?;
        let mut out: Vec<(String, String)> = report["findings"]
            .as_array()
            .with_context(|| format!("no findings array: {report} {err}"))?
            .iter()
            .map(|f| (f["rule"].as_str().unwrap_or("").to_string(), f["subject"].as_str().unwrap_or("").to_string()))
            .collect();
        out.sort();
        Ok(out)
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort();
    v
}

#[test]
fn gitlab_planted_cases_yield_exactly_their_findings_through_faults_and_a_resync_adds_nothing() -> Result<()> {
    let s = setup(gitlab_world(), GiteaWorld::new("acme/web"))?;
    // A 502, a 429 with Retry-After, an exhausted RateLimit and a 503 every 17th request.
    s.fake.faults(|f| {
        f.bad_gateway = 2;
        f.too_many = 1;
        f.exhausted = 1;
        f.every_nth_503 = 17;
    });
    let (code, v, err) = s.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["forge"], "gitlab", "{v}");
    assert!(v["retries"].as_u64().unwrap_or(0) >= 4, "faults were retried: {v}");
    let k = s.kinds()?;
    assert_eq!(k.get("pr.synced"), Some(&5), "{k:?}");
    // Approvals: !2 alice, !3 carol (reset), !4 carol, !5 carol (withdrawn) and bob.
    assert_eq!(k.get("review.synced"), Some(&5), "{k:?}");
    assert_eq!(k.get("deployment.synced"), Some(&4), "{k:?}");
    assert_eq!(k.get("deployment_approval.synced"), Some(&3), "{k:?}");
    assert_eq!(k.get("environment.synced"), Some(&1), "{k:?}");
    assert_eq!(k.get("team.synced"), Some(&1), "the group in the policy was snapshotted: {k:?}");
    assert_eq!(k.get("pr_files.synced"), Some(&5), "{k:?}");
    let c = Connection::open(&s.db)?;
    let states: Vec<(i64, String, String)> = c
        .prepare("SELECT number, reviewer, state FROM reviews WHERE repo = ?1 ORDER BY number, submitted_at")?
        .query_map([PROJECT], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    assert_eq!(
        states,
        vec![
            (2, "alice".into(), "APPROVED".into()),
            (3, "carol".into(), "DISMISSED".into()),
            (4, "carol".into(), "APPROVED".into()),
            (5, "carol".into(), "DISMISSED".into()),
            (5, "bob".into(), "APPROVED".into())
        ]
    );
    // The reset approval was on the head before the push.
    let on: String = c.query_row("SELECT commit_id FROM reviews WHERE repo = ?1 AND number = 3", [PROJECT], |r| r.get(0))?;
    assert_eq!(on, sha("gl3a"));

    // The protection is weakened (two approvals → one, Developers may deploy), then synced again.
    // GitLab's audit log says who did it (an event dated now: after the first
    // snapshot was recorded, before the next).
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    s.fake.gitlab(|w| {
        w.protect("production", &[11, 12], 1, None);
        w.users.insert(13, "mallory".into());
        w.audit(13, "required approval count", "2", "1", "production", &now);
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, _, err) = s.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    let found = s.findings()?;
    assert_eq!(
        found,
        pairs(&[
            ("pr.no-approval", "acme/platform/api#1"),
            ("pr.self-approval", "acme/platform/api#2"),
            ("pr.no-approval", "acme/platform/api#3"),
            ("deploy.self-approval", "acme/platform/api production deployment 901"),
            ("deploy.deployer-not-allowed", "acme/platform/api production deployment 902"),
            ("env.protection-changed", "acme/platform/api production"),
            // The same weakening, as the governance anomaly (by design, #33: a
            // weakened environment is pointed out beside the compliance warning).
            ("anomaly.governance", "acme/platform/api production"),
        ]),
        "exactly the planted cases"
    );
    let (_, report, _) = compliance_under(&s.repo, POLICY)?;
    let changed =
        report["findings"].as_array().into_iter().flatten().find(|f| f["rule"] == "env.protection-changed").cloned().unwrap_or_default();
    assert!(changed["message"].as_str().unwrap_or("").contains("2 approvals"), "{changed}");
    assert!(
        changed["message"]
            .as_str()
            .unwrap_or("")
            .contains("the forge's audit log: mallory: required approval count from 2 to 1 (production)"),
        "{changed}"
    );
    assert_eq!(changed["evidence"].as_array().map(Vec::len), Some(3), "both snapshots and the audit event: {changed}");

    // A third pass: nothing new, and the lists answer 304.
    let before = s.kinds()?;
    s.fake.take_log();
    let (code, v, err) = s.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?, before, "a re-sync adds nothing");
    let log = s.fake.take_log();
    assert!(log.len() <= 12, "a pass with nothing new makes few requests: {log:?}");
    assert!(v["not_modified"].as_u64().unwrap_or(0) >= 3, "{v}");
    let (code, out, err) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}

#[test]
fn gitea_pull_request_cases_yield_exactly_their_findings() -> Result<()> {
    let s = setup(GitLabWorld::new(PROJECT), gitea_world())?;
    s.fake.faults(|f| {
        f.bad_gateway = 1;
        f.too_many = 1;
    });
    let (code, v, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["forge"], "gitea", "{v}");
    let found = s.findings()?;
    assert_eq!(
        found,
        pairs(&[
            ("pr.no-approval", "acme/web#1"),
            ("pr.self-approval", "acme/web#2"),
            ("pr.stale-approval", "acme/web#3"),
            ("pr.no-approval", "acme/web#4"),
            ("push.direct", &format!("acme/web {}", &sha("gtdirect")[..10])),
        ]),
        "exactly the planted cases (the merged pull requests' own commits are not direct pushes)"
    );
    // Gitea's marks are kept as evidence.
    let c = Connection::open(&s.db)?;
    let payload: String =
        c.query_row("SELECT payload FROM entries WHERE kind = 'review.synced' AND payload LIKE '%\"stale\":true%' LIMIT 1", [], |r| {
            r.get(0)
        })?;
    assert!(payload.contains("\"official\":true"), "{payload}");
    let before = s.kinds()?;
    let (code, _, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?, before, "a re-sync adds nothing");
    Ok(())
}

#[test]
fn a_killed_gitlab_sync_resumes_and_ends_where_an_unbroken_one_does() -> Result<()> {
    let whole = setup(gitlab_world(), GiteaWorld::new("acme/web"))?;
    let (code, _, err) = whole.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    let want = whole.kinds()?;

    let s = setup(gitlab_world(), GiteaWorld::new("acme/web"))?;
    s.fake.faults(|f| f.delay_ms = 40);
    for kill_after_ms in [300u64, 700] {
        let mut child = s.cmd("--gitlab", PROJECT)?.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(kill_after_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    s.fake.faults(|f| f.delay_ms = 0);
    let (code, _, err) = s.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?, want, "killed twice, then finished: the same entries, none twice");
    let (code, out, err) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}

#[test]
fn bad_gitlab_and_gitea_input_gets_clear_errors_without_the_token() -> Result<()> {
    let s = setup(gitlab_world(), gitea_world())?;
    // A wrong token: 401, named as GitLab's, with what the token needs.
    let mut c = s.cmd("--gitlab", PROJECT)?;
    c.env("GITLAB_TOKEN", "glpat-wrongWRONGwrong");
    let out = c.output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("GitLab rejected the credentials") && err.contains("read_api"), "{err}");
    assert!(!err.contains("glpat-wrong"), "{err}");
    // An unknown project: 404 naming it.
    let (code, _, err) = s.sync("--gitlab", "acme/nope")?;
    assert_ne!(code, 0);
    assert!(err.contains("acme/nope") && err.contains("not found"), "{err}");
    // Path tricks are refused before any request.
    let (code, _, err) = s.sync("--gitlab", "acme/../x")?;
    assert_ne!(code, 0);
    assert!(err.contains("not a repository name"), "{err}");
    // Gitea needs to know where it is.
    let out = s.repo.cmd(BIN).env("GITEA_TOKEN", GITEA_TOKEN).env_remove("GITEA_API_URL").args(["sync", "--gitea", "acme/web"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("--api-url"), "{err}");
    // No token at all.
    let out = s.repo.cmd(BIN).env_remove("GITLAB_TOKEN").args(["sync", "--gitlab", PROJECT, "--api-url", &s.fake.url]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GITLAB_TOKEN") && err.contains("read_api"), "{err}");
    Ok(())
}

#[test]
fn one_ledger_reports_github_gitlab_and_gitea_together_with_their_pages() -> Result<()> {
    let s = setup(gitlab_world(), gitea_world())?;
    let github = crate::fake_github::Fake::start(crate::sync::world());
    let out = s
        .repo
        .cmd(BIN)
        .env("GITHUB_TOKEN", crate::fake_github::TOKEN)
        .env("GIT_AUDIT_SYNC_BACKOFF_MS", "20")
        .args(["sync", "--json", "--api-url", &github.url, "--github", "acme/api"])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for (forge, name) in [("--gitlab", PROJECT), ("--gitea", "acme/web")] {
        let (code, _, err) = s.sync(forge, name)?;
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = s.repo.audit(&["report", "deployments", "--env", "production", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let deps = v["deployments"].as_array().context("deployments")?;
    let by_repo = |r: &str| deps.iter().filter(|d| d["repository"] == r).count();
    assert_eq!(by_repo("acme/api"), 1, "{v}");
    assert_eq!(by_repo(PROJECT), 3, "{v}");
    let gl = deps.iter().find(|d| d["repository"] == PROJECT).context("a GitLab deployment")?;
    assert!(gl["url"].as_str().unwrap_or("").starts_with("https://gitlab.example.com/acme/platform/api/-/jobs/"), "{gl}");
    // The self-approved one is approved by alice, and judged so.
    let d901 = deps.iter().find(|d| d["repository"] == PROJECT && d["id"] == "901").context("901")?;
    assert_eq!(d901["approvals"][0]["user"], "alice", "{d901}");
    assert_eq!(d901["approvals"][1]["user"], "bob", "{d901}");
    // DORA counts both forges' production deployments.
    let (code, out, err) = s.repo.audit(&["report", "dora", "--env", "production", "--since", "2026-06-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let dora: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(dora["overall"]["deployments"], 4, "{dora}");
    // The dashboard links each forge's pages: a GitLab merge request and job,
    // a Gitea pull request, a GitHub run.
    let server = crate::serve::serve(&s.repo, &["--listen", "127.0.0.1:0"], &[])?;
    let (code, _, body) = crate::serve::http(&server.addr, "GET", "/compliance?since=2000-01-01", &[])?;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<a href=\"https://gitlab.example.com/acme/platform/api/-/merge_requests/1\">acme/platform/api#1</a>"), "{body}");
    assert!(body.contains("<a href=\"https://gitea.example.com/acme/web/pulls/1\">acme/web#1</a>"), "{body}");
    let (code, _, body) = crate::serve::http(&server.addr, "GET", "/deployments?since=2000-01-01&env=production", &[])?;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<a href=\"https://gitlab.example.com/acme/platform/api/-/jobs/9010\">901</a>"), "{body}");
    assert!(body.contains("https://github.com/acme/api/actions/runs/777"), "{body}");
    Ok(())
}

#[test]
fn request_counts_of_a_first_and_second_gitlab_sync_of_a_thousand_merge_requests() -> Result<()> {
    let mut w = GitLabWorld::new(PROJECT);
    for iid in 1..=1000i64 {
        let t = format!("2026-07-{:02}T{:02}:{:02}:00Z", 1 + iid / 1440, (iid / 60) % 24, iid % 60);
        w.merge_request(iid, "alice", &t, &[sha(&format!("k{iid}"))]);
        w.approve(iid, "bob", &t);
        w.merge(iid, "alice", &t, &sha(&format!("km{iid}")));
    }
    let s = setup(w, GiteaWorld::new("acme/web"))?;
    let (code, first, err) = s.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = s.sync("--gitlab", PROJECT)?;
    assert_eq!(code, 0, "{err}");
    let (a, b) = (first["requests"].as_u64().unwrap_or(0), second["requests"].as_u64().unwrap_or(0));
    eprintln!("GitLab, 1,000 merged merge requests: first sync {a} requests, second {b}");
    // Per merged merge request: commits, versions, approvals, notes, diffs; the
    // default branch's 1,000 merge commits are known from the merge requests.
    assert!(a <= 5 * 1000 + 40, "{a}");
    assert!(b <= 10, "{b}");
    assert_eq!(s.kinds()?.get("pr.synced"), Some(&1000));
    Ok(())
}

/// Path rules over GitLab: `.gitlab/CODEOWNERS` with sections, read at each
/// merge request's base; every required section needs its own owners'
/// approval on the final head, an optional one does not; groups are GitLab
/// groups whose members the sync recorded.
#[test]
fn gitlab_codeowners_sections_each_need_their_owners() -> Result<()> {
    use crate::support::Sign;
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    std::fs::create_dir_all(repo.path.join(".gitlab"))?;
    std::fs::write(
        repo.path.join(".gitlab/CODEOWNERS"),
        "[Backend] @acme/backend\n/src/\n[Security][2]\n/src/auth/ @sam\n^[Docs] @writer\n/src/\n",
    )?;
    repo.commit("chore: CODEOWNERS", Sign::None)?;
    let merges: Vec<String> =
        (1..=3).map(|n| repo.commit(&format!("Merge branch 'topic-{n}' into 'main'"), Sign::None)).collect::<Result<_>>()?;
    let mut w = GitLabWorld::new(PROJECT);
    let mr = |w: &mut GitLabWorld, iid: i64, file: &str, approvers: &[&str]| {
        let head = sha(&format!("p{iid}"));
        let t = format!("2026-07-0{iid}T00:00:00Z");
        w.merge_request(iid, "alice", &t, std::slice::from_ref(&head));
        w.diffs.insert(iid, vec![(file.to_string(), file.to_string())]);
        for (i, a) in approvers.iter().enumerate() {
            w.approve(iid, a, &format!("2026-07-0{iid}T01:0{i}:00Z"));
        }
        w.merge(iid, "alice", &format!("2026-07-0{iid}T02:00:00Z"), &merges[iid as usize - 1]);
    };
    mr(&mut w, 1, "src/auth/login.rs", &["bob"]); // Backend (bob is in the group), Security not: missing
    mr(&mut w, 2, "src/auth/login.rs", &["bob", "sam"]); // both sections: clean (Docs is optional)
    mr(&mut w, 3, "src/api.rs", &["carol"]); // Backend only, carol is not in it: missing
    w.members.insert("acme/backend".into(), vec!["bob".into()]);
    let policy = repo.tmp.path().join("paths.toml");
    std::fs::write(&policy, "version = 1\n[codeowners]\nenabled = true\n")?;
    let fake = FakeForges::start(w, GiteaWorld::new("acme/web"));
    let p = policy.to_str().context("path")?;
    let out = repo
        .cmd(BIN)
        .env("GITLAB_TOKEN", GITLAB_TOKEN)
        .args(["--policy", p, "sync", "--api-url", &fake.url, "--gitlab", PROJECT])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, out, err) = repo.audit(&["--policy", p, "report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let missing: Vec<(String, String)> = v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["rule"] == "pr.owner-approval-missing")
        .map(|f| (f["subject"].as_str().unwrap_or("").to_string(), f["message"].as_str().unwrap_or("").to_string()))
        .collect();
    let subjects: Vec<&str> = missing.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subjects, ["acme/platform/api#1", "acme/platform/api#3"], "{missing:?}");
    assert!(missing[0].1.contains(".gitlab/CODEOWNERS:4") && missing[0].1.contains("sam"), "{missing:?}");
    assert!(missing[1].1.contains("group:acme/backend"), "{missing:?}");
    Ok(())
}

/// Path owners over Gitea: a `[[paths]]` entry whose approvers are a Gitea
/// organisation team, its members snapshotted by the sync.
#[test]
fn gitea_team_owners_are_judged_by_their_recorded_membership() -> Result<()> {
    let mut w = GiteaWorld::new("acme/web");
    for (n, approver) in [(1u64, "erin"), (2, "frank")] {
        w.pull(n, "dave", &format!("2026-07-0{n}T00:00:00Z"), &[sha(&format!("team{n}"))]);
        w.review(n, approver, "APPROVED", &sha(&format!("team{n}")), &format!("2026-07-0{n}T01:00:00Z"));
        w.merge(n, "dave", &format!("2026-07-0{n}T02:00:00Z"), &sha(&format!("teamm{n}")));
    }
    w.teams.insert(("acme".into(), "leads".into()), (41, vec!["erin".into()]));
    let s = setup(GitLabWorld::new(PROJECT), w)?;
    let policy = "version = 1\n[[paths]]\npattern = \"/src/\"\napprovers = [\"team:acme/leads\"]\n";
    std::fs::write(&s.policy, policy)?;
    let (code, _, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    let c = Connection::open(&s.db)?;
    let members: String = c.query_row("SELECT payload FROM entries WHERE kind = 'team.synced'", [], |r| r.get(0))?;
    assert!(members.contains("\"members\":[\"erin\"]"), "{members}");
    let (_, report, err) = compliance_under(&s.repo, policy)?;
    let missing: Vec<&str> = report["findings"]
        .as_array()
        .with_context(|| format!("{report} {err}"))?
        .iter()
        .filter(|f| f["rule"] == "pr.owner-approval-missing" || f["rule"] == "pr.owner-approval-unverified")
        .filter_map(|f| f["subject"].as_str())
        .collect();
    assert_eq!(missing, ["acme/web#2"], "frank is not in acme/leads; erin is: {report}");
    Ok(())
}

/// Gitea has no deployments API: a deploying Actions job records its own
/// deployment, and the sync then reads the run it names from Gitea (1.24+) so
/// the report knows from the forge who triggered it. A job that names someone
/// else is overruled; a run on another server is never looked up here; a run
/// still going is read again until it completes; an older Gitea is said.
#[test]
fn gitea_actions_runs_behind_recorded_deployments_say_who_deployed() -> Result<()> {
    let mut w = GiteaWorld::new("acme/web");
    let s = setup(GitLabWorld::new(PROJECT), GiteaWorld::new("acme/web"))?;
    let web = s.fake.url.trim_end_matches('/').to_string();
    w.run(&web, 501, &sha("gta"), "alice", "alice", "completed");
    w.run(&web, 502, &sha("gtb"), "alice", "mallory", "completed");
    w.run(&web, 503, &sha("gtc"), "alice", "alice", "running");
    s.fake.gitea(|g| *g = w);
    let policy = "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"alice\"]\n";
    std::fs::write(&s.policy, policy)?;
    // The deploying jobs: Gitea's runner sets GitHub's variables and its own flag.
    let record = |run: &str, sha_: &str, server: &str, id: &str| -> Result<()> {
        let out = s
            .repo
            .cmd(BIN)
            .env("GITHUB_ACTIONS", "true")
            .env("GITEA_ACTIONS", "true")
            .env("GITHUB_SERVER_URL", server)
            .env("GITHUB_REPOSITORY", "acme/web")
            .env("GITHUB_RUN_ID", run)
            .env("GITHUB_ACTOR", "alice")
            .env("GITHUB_SHA", sha_)
            .args(["record", "deployment", "--environment", "production", "--id", id])
            .output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    record("501", &sha("gta"), &web, "a")?;
    record("502", &sha("gtb"), &web, "b")?;
    record("503", &sha("gtc"), &web, "c")?;
    // Run 501 of another server: not this Gitea's run 501.
    record("501", &sha("gtd"), "https://ci.elsewhere.example", "d")?;

    let (code, v, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["repositories"][0]["runs"], 3, "{v}");
    assert_eq!(s.kinds()?.get("workflow_run.synced"), Some(&3));
    let (_, report, err) = compliance_under(&s.repo, policy)?;
    let found: Vec<String> = crate::support::deploy_findings(&report)
        .iter()
        .map(|f| format!("{} {}", f["rule"].as_str().unwrap_or(""), f["message"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(found.len(), 1, "only run 502 was triggered by someone outside the deployers: {found:?} {err}");
    assert!(found[0].starts_with("deploy.deployer-not-allowed") && found[0].contains("mallory"), "{found:?}");

    let (code, out, err) = s.repo.audit(&["report", "deployments", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let deps = v["deployments"].as_array().context("deployments")?;
    let by_sha = |s_: &str| deps.iter().find(|d| d["sha"] == sha(s_)).cloned().unwrap_or_default();
    assert_eq!(by_sha("gtb")["triggering_actor"], "mallory", "{out}");
    assert_eq!(by_sha("gtb")["source"], "gitea-actions", "{out}");
    assert_eq!(by_sha("gta")["url"], format!("{web}/acme/web/actions/runs/501"), "{out}");
    assert_eq!(by_sha("gtd")["triggering_actor"], serde_json::Value::Null, "another server's run is not this one: {out}");

    // The run still going is read again (unchanged: nothing new) …
    let before = s.kinds()?;
    let (code, _, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.kinds()?, before, "a re-sync adds nothing");
    // … and once more when it completes; then never again.
    s.fake.gitea(|g| g.run(&web, 503, &sha("gtc"), "alice", "alice", "completed"));
    let (code, v, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["repositories"][0]["runs"], 1, "{v}");
    s.fake.gitea(|g| g.runs.clear());
    let (code, v, err) = s.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["repositories"][0]["runs"], 0, "completed runs are not read again: {v}");
    assert!(v.to_string().find("404").is_none(), "{v}");

    // A Gitea without the runs API: said, and the deployer stays as recorded.
    let mut stale = GiteaWorld::new("acme/web");
    stale.no_runs_api = true;
    let old = setup(GitLabWorld::new(PROJECT), stale)?;
    let out = old
        .repo
        .cmd(BIN)
        .env("GITHUB_ACTIONS", "true")
        .env("GITEA_ACTIONS", "true")
        .env("GITHUB_SERVER_URL", old.fake.url.trim_end_matches('/'))
        .env("GITHUB_REPOSITORY", "acme/web")
        .env("GITHUB_RUN_ID", "9")
        .env("GITHUB_ACTOR", "alice")
        .env("GITHUB_SHA", sha("gte"))
        .args(["record", "deployment", "--environment", "production"])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, v, err) = old.sync("--gitea", "acme/web")?;
    assert_eq!(code, 0, "{err}");
    assert!(v.to_string().contains("older than Gitea 1.24"), "{v}");
    assert_eq!(old.kinds()?.get("workflow_run.synced"), None);
    Ok(())
}
