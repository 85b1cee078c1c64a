//! What users and their programs read, kept as reviewed snapshots (insta):
//! the command-line help, a webhook's body and its Slack and Teams forms,
//! and a report's JSON. A change to any of them shows as a diff in
//! `tests/snapshots/` that someone has to accept (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` and read the diff); CI (CI=true) never
//! writes them, so a change nobody accepted fails.

use anyhow::Result;
use git_audit::rule::{Finding, Rule, Severity};

use crate::support::BIN;

#[test]
fn the_help_is_a_reviewed_contract() -> Result<()> {
    let out = std::process::Command::new(BIN).arg("--help").env("COLUMNS", "100").output()?;
    assert!(out.status.success());
    insta::assert_snapshot!("help", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

#[test]
fn notification_bodies_are_a_reviewed_contract() {
    let f = Finding {
        rule: Rule::DeployNoApproval,
        severity: Severity::Error,
        message: "deployed by mallory with 0 of 1 required approvals".into(),
        fix: None,
        subject: Some("acme/api production 1012".into()),
        evidence: vec![19, 21],
    };
    let (key, notice) = git_audit::notify::finding_notice("acme/api", &f);
    // The stored event, as a webhook receives it (Standard Webhooks body).
    let event = serde_json::json!({"type": notice.kind, "timestamp": "2026-07-02T02:10:00.000Z", "data": notice.data});
    insta::assert_json_snapshot!("finding_webhook_body", serde_json::json!({"dedup_key": key, "event": event}));
    insta::assert_json_snapshot!("finding_slack_body", git_audit::notify::format::slack(&event));
    insta::assert_json_snapshot!("finding_teams_body", git_audit::notify::format::teams(&event));
}

#[test]
fn the_dora_report_json_is_a_reviewed_contract() -> Result<()> {
    let h = crate::reports::history()?;
    let (code, out, err) =
        h.repo.audit(&["report", "dora", "--env", "production", "--since", "2026-07-01", "--until", "2026-07-14", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    // Lead times run from the test's own commit times (now), and provenance
    // names this run's ledger: the rest is fixed by the planted history.
    insta::assert_json_snapshot!("dora_report", v, {
        ".provenance" => "[this run]",
        ".overall.median_lead_time_hours" => "[hours since the test's commits]",
        ".weeks[].median_lead_time_hours" => "[hours since the test's commits]",
        ".periods[].median_lead_time_hours" => "[hours since the test's commits]",
    });
    Ok(())
}
