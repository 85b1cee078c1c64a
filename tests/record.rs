//! `git-audit record deployment` as CI jobs run it: from GitLab CI's and
//! Jenkins' variables, through its states, and with bad input.

use anyhow::{Context, Result};

use crate::support::Repo;

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
    assert_eq!(out.trim(), format!("recorded deployment of {} to production (success, from gitlab-ci) as ledger seq 0", &sha[..10]));
    let deps = deployments(&repo)?;
    assert_eq!(deps.len(), 1, "{deps:?}");
    let d = &deps[0];
    assert_eq!(
        (d["environment"].as_str(), d["sha"].as_str(), d["deployer"].as_str(), d["status"].as_str()),
        (Some("production"), Some(sha.as_str()), Some("dave"), Some("success"))
    );
    assert!(d["id"].as_i64().is_some_and(|id| id < 0), "recorded ids never meet GitHub's: {d}");
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
