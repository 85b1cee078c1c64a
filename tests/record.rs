//! `git-audit record deployment` as CI jobs run it: from GitLab CI's and
//! Jenkins' variables, through its states, and with bad input.

use anyhow::{Context, Result};

use crate::support::{deploy_findings, Repo};

fn deployments(repo: &Repo) -> Result<Vec<serde_json::Value>> {
    let (code, out, err) = repo.audit(&["report", "deployments", "--env", "*", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v["deployments"].as_array().context("deployments")?.clone())
}

#[test]
fn a_gitlab_job_records_a_deployment_reports_show() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let sha = repo.commit("feat: shipped", crate::support::Sign::None)?;
    let gitlab = [
        ("GITLAB_CI", "true"),
        ("CI_PROJECT_PATH", "acme/api"),
        ("CI_COMMIT_SHA", sha.as_str()),
        ("CI_COMMIT_REF_NAME", "main"),
        ("GITLAB_USER_LOGIN", "dave"),
        ("CI_JOB_URL", "https://gitlab.example/acme/api/-/jobs/77"),
        ("CI_ENVIRONMENT_NAME", "production"),
    ];
    let (code, out, err) = repo.audit_env(&["record", "deployment", "--approved-by", "erin"], &gitlab)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!("recorded deployment of {} to production (success, from gitlab-ci, asserted) as ledger seq 0", &sha[..10])
    );
    let deps = deployments(&repo)?;
    assert_eq!(deps.len(), 1, "{deps:?}");
    let d = &deps[0];
    assert_eq!(
        (d["environment"].as_str(), d["sha"].as_str(), d["deployer"].as_str(), d["status"].as_str()),
        (Some("production"), Some(sha.as_str()), Some("dave"), Some("success"))
    );
    // No id given: a generated short one, text, never a number past 2^53.
    assert!(d["id"].as_str().is_some_and(|id| id.starts_with("rec-") && id.len() == 16), "{d}");
    assert_eq!(d["url"], "https://gitlab.example/acme/api/-/jobs/77", "the job's page is a field of the row");
    assert_eq!(d["source"], "gitlab-ci", "{d}");
    assert_eq!((d["approvals"][0]["user"].as_str(), d["approvals"][0]["state"].as_str()), (Some("erin"), Some("approved")), "{d}");
    let (_, table, _) = repo.audit(&["report", "deployments", "--env", "*", "--since", "2000-01-01"])?;
    assert!(table.contains("gitlab-ci") && table.contains("erin"), "{table}");
    // The entry says where it came from; the ledger still verifies (projections replay).
    let (_, export, _) = repo.audit(&["ledger", "export"])?;
    let e: serde_json::Value = serde_json::from_str(export.lines().next().context("an entry")?)?;
    assert_eq!(e["kind"], "deployment.recorded");
    assert_eq!(e["payload"]["source"], "gitlab-ci");
    assert_eq!(e["payload"]["approved_by"][0], "erin");
    assert_eq!(e["payload"]["url"], "https://gitlab.example/acme/api/-/jobs/77");
    let (code, out, _) = repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn a_jenkins_deployment_moves_through_its_states_under_one_id() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let sha = repo.commit("feat: x", crate::support::Sign::None)?;
    let jenkins = [
        ("JENKINS_URL", "https://jenkins.example/"),
        ("GIT_COMMIT", sha.as_str()),
        ("GIT_BRANCH", "origin/main"),
        ("GIT_URL", "git@github.com:acme/api.git"),
        ("BUILD_URL", "https://jenkins.example/job/deploy/9/"),
    ];
    for status in ["in_progress", "success"] {
        let (code, _, err) = repo.audit_env(
            &["record", "deployment", "--environment", "staging", "--status", status, "--id", "deploy-9", "--actor", "carol"],
            &jenkins,
        )?;
        assert_eq!(code, 0, "{err}");
    }
    let deps = deployments(&repo)?;
    assert_eq!(deps.len(), 1, "one deployment, two states: {deps:?}");
    assert_eq!(deps[0]["status"], "success");
    assert_eq!(deps[0]["repository"], "acme/api");
    // Another --id is another deployment.
    let (code, _, err) =
        repo.audit_env(&["record", "deployment", "--environment", "staging", "--status", "failure", "--id", "deploy-10"], &jenkins)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(deployments(&repo)?.len(), 2);
    Ok(())
}

#[test]
fn bad_input_is_refused_with_what_to_do() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let sha = "a".repeat(40);
    let (code, _, err) = repo.audit(&["record", "deployment", "--environment", "production", "--sha", &sha, "--status", "done"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("done") && err.contains("in_progress"), "{err}");
    let (code, _, err) = repo.audit(&["record", "deployment", "--environment", "production", "--sha", "not-a-sha"])?;
    assert_eq!(code, 2);
    assert!(err.contains("--sha `not-a-sha` is not a commit id: expected 40 (SHA-1) or 64 (SHA-256) hex digits"), "{err}");
    let (code, _, err) = repo.audit(&["record", "deployment", "--environment", "production"])?;
    assert_eq!(code, 2);
    assert!(err.contains("pass --sha") && err.contains("CI_COMMIT_SHA"), "{err}");
    let (code, _, err) = repo.audit(&["record", "deployment", "--sha", &sha])?;
    assert_eq!(code, 2);
    assert!(err.contains("pass --environment"), "{err}");
    // Nothing was recorded by any of them.
    let (_, export, _) = repo.audit(&["ledger", "export"])?;
    assert!(export.trim().is_empty(), "{export}");
    Ok(())
}

#[test]
fn compliance_judges_recorded_deployments_against_environments() -> Result<()> {
    let k = crate::support::keys();
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let signed = repo.commit("feat: signed", crate::support::Sign::Pgp(&k.alice))?;
    let pinned = repo.policy(&crate::support::pinned_policy(""))?;
    let (code, out, err) = repo.audit(&["--policy", pinned.to_str().context("path")?, "verify", "--record", &signed])?;
    assert_eq!(code, 0, "{out}{err}");
    let environments = repo.tmp.path().join("environments.toml");
    std::fs::write(
        &environments,
        "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"alice\"]\napprovers = [\"bob\"]\nrequired_approvals = 1\nbranches = [\"main\"]\nrequire_signed_commits = true\n",
    )?;
    let record = |sha: &str, actor: &str, git_ref: &str, approver: &str, env: &str, id: &str| -> Result<()> {
        let (code, _, err) = repo.audit(&[
            "record",
            "deployment",
            "--repo",
            "acme/api",
            "--environment",
            env,
            "--sha",
            sha,
            "--actor",
            actor,
            "--ref",
            git_ref,
            "--approved-by",
            approver,
            "--id",
            id,
        ])?;
        assert_eq!(code, 0, "{err}");
        Ok(())
    };
    // Clean: signed and verified, by an allowed deployer, from main, approved by an allowed approver.
    record(&signed, "alice", "main", "bob", "production", "d1")?;
    // Everything wrong: an unsigned, unverified commit, from a feature branch, deployed and approved by mallory.
    let unsigned = repo.commit("feat: unsigned", crate::support::Sign::None)?;
    // Its verdict is on record (missing), so the commit-level rule can see it too.
    let (code, out, err) = repo.audit(&["--policy", pinned.to_str().context("path")?, "verify", "--record", &unsigned])?;
    assert_eq!(code, 1, "{out}{err}");
    record(&unsigned, "mallory", "feature/x", "mallory", "production", "d2")?;
    // No rule for staging.
    record(&unsigned, "mallory", "feature/x", "mallory", "staging", "d3")?;

    let (code, out, err) = repo.audit(&[
        "--policy",
        environments.to_str().context("path")?,
        "report",
        "compliance",
        "--since",
        "2000-01-01",
        "--format",
        "json",
    ])?;
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let all = deploy_findings(&v);
    // The clean one's approval is the recording job's word (--approved-by):
    // it never counts towards required_approvals, and the finding says why.
    let (clean, deploy): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
        all.into_iter().partition(|f| f["subject"] == "acme/api production deployment d1");
    assert_eq!(clean.len(), 1, "{clean:?}");
    assert_eq!(clean[0]["rule"], "deploy.no-approval");
    assert!(
        clean[0]["message"].as_str().is_some_and(|m| m.contains("1 approval(s) the recording job asserted (--approved-by) do not count")),
        "{clean:?}"
    );
    let rules: Vec<&str> = deploy.iter().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(
        rules,
        vec![
            "deploy.deployer-not-allowed",
            "deploy.ref-not-allowed",
            "deploy.approver-not-allowed",
            "deploy.self-approval",
            "deploy.no-approval",
            "deploy.unsigned-commits"
        ],
        "{out}"
    );
    let subjects: std::collections::BTreeSet<&str> = deploy.iter().filter_map(|f| f["subject"].as_str()).collect();
    assert_eq!(subjects.len(), 1, "only the bad production deployment: {subjects:?}");
    assert!(subjects.iter().all(|s| *s == "acme/api production deployment d2"), "the id the CI gave: {subjects:?}");
    assert!(deploy.iter().all(|f| f["evidence"].as_array().is_some_and(|e| !e.is_empty())), "{out}");
    let unsigned_msg = deploy.iter().find(|f| f["rule"] == "deploy.unsigned-commits").and_then(|f| f["message"].as_str()).unwrap_or("");
    assert!(unsigned_msg.contains(&unsigned[..10]) && !unsigned_msg.contains(&signed[..10]), "{unsigned_msg}");
    // One shipped unsigned commit is one finding: production requires signed
    // commits and says so; commits.unsigned-deployed does not say it again.
    let twice: Vec<&serde_json::Value> =
        v["findings"].as_array().into_iter().flatten().filter(|f| f["rule"] == "commits.unsigned-deployed").collect();
    assert!(twice.is_empty(), "{twice:?}");
    // Without the environment rule, the commit-level rule reports it, once.
    let (_, out, _) = repo.audit(&["report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    let plain: serde_json::Value = serde_json::from_str(&out)?;
    let once: Vec<&serde_json::Value> = plain["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["rule"] == "commits.unsigned-deployed" && f["subject"].as_str().is_some_and(|s| unsigned.starts_with(s)))
        .collect();
    assert_eq!(once.len(), 1, "{plain}");
    // report deployments carries each deployment's findings; trace shows its approvals.
    let (code, out, err) = repo.audit(&[
        "--policy",
        environments.to_str().context("path")?,
        "report",
        "deployments",
        "--env",
        "production",
        "--since",
        "2000-01-01",
        "--format",
        "json",
    ])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let by_sha = |sha: &str| v["deployments"].as_array().and_then(|a| a.iter().find(|d| d["sha"] == sha)).cloned().unwrap_or_default();
    let clean = by_sha(&signed);
    let clean_rules: Vec<&str> = clean["findings"].as_array().into_iter().flatten().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(clean_rules, ["deploy.no-approval"], "only its asserted approval: {out}");
    let bad = by_sha(&unsigned);
    let bad_rules: Vec<&str> = bad["findings"].as_array().into_iter().flatten().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(bad_rules.len(), 6, "{out}");
    let (code, out, err) = repo.audit(&["report", "trace", &signed, "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(&out)?;
    let production =
        t["deployments"].as_array().and_then(|a| a.iter().find(|d| d["environment"] == "production")).cloned().unwrap_or_default();
    assert_eq!(production["approvals"][0]["user"], "bob", "{out}");
    // Without [[environments]] nothing is judged.
    let (_, out, _) =
        repo.audit(&["--policy", pinned.to_str().context("path")?, "report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    assert!(!out.contains("deploy."), "{out}");
    Ok(())
}

/// Every number in a JSON value, recursively.
fn numbers(v: &serde_json::Value, out: &mut Vec<serde_json::Number>) {
    match v {
        serde_json::Value::Number(n) => out.push(n.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| numbers(x, out)),
        _ => {}
    }
}

#[test]
fn a_recorded_deployment_keeps_the_id_its_ci_gave_and_json_carries_no_unsafe_integer() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let sha = repo.commit("feat: shipped", crate::support::Sign::None)?;
    let (code, _, err) = repo.audit(&[
        "record",
        "deployment",
        "--repo",
        "acme/api",
        "--environment",
        "production",
        "--sha",
        &sha,
        "--ref",
        "main",
        "--actor",
        "mallory",
        "--id",
        "gl-77",
        "--url",
        "https://ci.example/jobs/77",
    ])?;
    assert_eq!(code, 0, "{err}");
    let deps = deployments(&repo)?;
    assert_eq!(deps[0]["id"], "gl-77", "{:?}", deps[0]);
    assert_eq!(deps[0]["url"], "https://ci.example/jobs/77");
    // Its approvals carry no time the CI did not give; when they were recorded stands beside it.
    let (code, _, err) = repo.audit(&[
        "record",
        "deployment",
        "--repo",
        "acme/api",
        "--environment",
        "staging",
        "--sha",
        &sha,
        "--ref",
        "main",
        "--actor",
        "bob",
        "--approved-by",
        "erin",
        "--id",
        "gl-78",
    ])?;
    assert_eq!(code, 0, "{err}");
    let staged = deployments(&repo)?.into_iter().find(|d| d["id"] == "gl-78").context("gl-78")?;
    assert_eq!(staged["approvals"][0]["time"], serde_json::Value::Null, "{staged}");
    assert!(staged["approvals"][0]["synced_at"].as_str().is_some_and(|t| t.starts_with("20")), "{staged}");
    // Trace and compliance name it the same way.
    let (_, out, _) = repo.audit(&["report", "trace", &sha, "--format", "json"])?;
    let trace: serde_json::Value = serde_json::from_str(&out)?;
    let ids: Vec<&str> = trace["deployments"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str()).collect();
    assert!(ids.contains(&"gl-77"), "{trace}");
    let policy = repo.tmp.path().join("p.toml");
    std::fs::write(&policy, "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"alice\"]\n")?;
    let (_, out, _) =
        repo.audit(&["--policy", policy.to_str().context("path")?, "report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(deploy_findings(&v)[0]["subject"], "acme/api production deployment gl-77", "{v}");
    // No report carries an integer JSON readers would change (beyond 2^53).
    for args in [
        vec!["report", "deployments", "--env", "*", "--since", "2000-01-01", "--format", "json"],
        vec!["report", "trace", sha.as_str(), "--format", "json"],
        vec!["report", "dora", "--env", "*", "--since", "2000-01-01", "--format", "json"],
    ] {
        let (_, out, _) = repo.audit(&args)?;
        let v: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("{args:?}: {out}"))?;
        let mut found = Vec::new();
        numbers(&v, &mut found);
        for n in found {
            let safe = n.as_i64().is_some_and(|i| i.unsigned_abs() <= 1 << 53) || n.as_u64().is_some_and(|u| u <= 1 << 53) || n.is_f64();
            assert!(safe, "{args:?} carries {n}");
        }
    }
    Ok(())
}
