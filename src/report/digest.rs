//! `git-audit digest`: a window's review in one page — what shipped where and
//! who approved it, failures and restores, refused pushes and break glass
//! (with reasons), new findings and anomalies, and the ledger checkpoint it
//! was computed from. Built from the same reports (`deployments` and `dora`
//! over every environment, `pushes`, `compliance`), so its numbers are theirs.

use serde_json::{json, Value};

use super::{Document, ReportError, Section};
use crate::facts::DeploymentHistory;
use crate::git::{short_id, Repo};
use crate::ledger::Ledger;
use crate::policy::Policy;
use crate::rule::Finding;
use crate::time::Timestamp;

/// The digest over `[since, until)` (findings: from `since` on, as `report compliance`).
pub fn digest(
    ledger: &Ledger,
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    repository: &str,
    since: &Timestamp,
    until: &Timestamp,
    policy: Option<&Policy>,
) -> Result<Document, ReportError> {
    let deployments = super::deployments::deployments(ledger, facts, repo, "*", since, until, policy)?.json;
    let dora = super::dora::dora(facts, repo, "*", since, until)?.json;
    let pushes = super::pushes::pushes(ledger, since, until, None)?.json;
    let breaks = ledger.events::<crate::event::BypassUsed>(&crate::ledger::Select { since: Some(since), ..Default::default() })?;
    let breaks: Vec<_> = breaks.into_iter().filter(|b| super::within(&b.time, since, until)).collect();
    let (_, findings) = super::compliance::compliance(ledger, facts, repo, since, policy)?;
    let (anomalies, findings): (Vec<Finding>, Vec<Finding>) = findings.into_iter().partition(|f| f.rule.is_anomaly());
    let unverified = findings.iter().filter(|f| f.rule.is_unverified()).count();
    let head = ledger.head()?;

    let list = deployments["deployments"].as_array().cloned().unwrap_or_default();
    let failed = |d: &Value| {
        crate::event::DeploymentState::parse(d["status"].as_str().unwrap_or_default()).failed() || !d["rolled_back_by"].is_null()
    };
    let approvers = |d: &Value| -> String {
        d["approvals"].as_array().into_iter().flatten().filter_map(|a| a["user"].as_str()).collect::<Vec<_>>().join(" ")
    };
    let shipped: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d["time"].as_str().unwrap_or_default().to_string(),
                d["environment"].as_str().unwrap_or_default().to_string(),
                short_id(d["sha"].as_str().unwrap_or_default()).to_string(),
                d["deployer"].as_str().unwrap_or_default().to_string(),
                approvers(d),
                d["status"].as_str().unwrap_or_default().to_string(),
                d["seq"].to_string(),
            ]
        })
        .collect();
    let failures: Vec<&Value> = list.iter().filter(|d| failed(d)).collect();
    let decisions = pushes["decisions"].as_array().cloned().unwrap_or_default();
    let refused: Vec<&Value> = decisions.iter().filter(|d| d["accepted"] == false).collect();
    let text_list = |v: &Value| v.as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(" ");
    let counts = json!({
        "deployments": list.len(),
        "failed": failures.len(),
        "refused_pushes": refused.len(),
        "break_glass": breaks.len(),
        "violations": findings.len() - unverified,
        "could_not_verify": unverified,
        "anomalies": anomalies.len(),
    });
    let n = |k: &str| counts[k].as_u64().unwrap_or(0);
    let summary = format!(
        "{}{}: {} deployment{} ({} failed), {} refused push{}, {} break glass, {} violation{}, {} could not verify, {} anomal{}",
        if repository.is_empty() { String::new() } else { format!("{repository}, ") },
        super::window_text(since, until),
        n("deployments"),
        if n("deployments") == 1 { "" } else { "s" },
        n("failed"),
        n("refused_pushes"),
        if n("refused_pushes") == 1 { "" } else { "es" },
        n("break_glass"),
        n("violations"),
        if n("violations") == 1 { "" } else { "s" },
        n("could_not_verify"),
        n("anomalies"),
        if n("anomalies") == 1 { "y" } else { "ies" },
    );
    let origin = head.note.lines().next().unwrap_or_default().to_string();
    let root = hex::encode(head.root);
    let finding_rows = |list: &[Finding]| -> Vec<Vec<String>> {
        list.iter()
            .map(|f| {
                vec![
                    f.rule.id().to_string(),
                    f.subject.clone().unwrap_or_default(),
                    f.message.clone(),
                    f.evidence.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
                ]
            })
            .collect()
    };
    let json = json!({
        "repository": repository,
        "since": since.to_string(),
        "until": (!until.is_open_end()).then(|| until.to_string()),
        "summary": summary,
        "counts": counts,
        "deployments": list.iter().map(|d| json!({"id": d["id"], "environment": d["environment"], "sha": d["sha"], "deployer": d["deployer"],
            "approvers": d["approvals"].as_array().into_iter().flatten().filter_map(|a| a["user"].as_str()).collect::<Vec<_>>(),
            "status": d["status"], "seq": d["seq"]})).collect::<Vec<_>>(),
        "failures": failures.iter().map(|d| json!({"id": d["id"], "environment": d["environment"], "sha": d["sha"], "status": d["status"],
            "rolled_back_by": d["rolled_back_by"], "seq": d["seq"]})).collect::<Vec<_>>(),
        "median_time_to_restore_hours": dora["overall"]["median_time_to_restore_hours"],
        "refused": refused.iter().map(|d| json!({"time": d["time"], "pusher": d["pusher"], "refs": d["refs"], "rules": d["rules"],
            "reasons": d["reasons"], "seq": d["seq"]})).collect::<Vec<_>>(),
        "break_glass": breaks.iter().map(|b| json!({"time": b.time, "actor": b.actor, "reason": b.payload.reason,
            "violations": b.payload.violations, "seq": b.seq})).collect::<Vec<_>>(),
        "findings": findings,
        "anomalies": anomalies,
        "checkpoint": {"tree_size": head.size, "root": root, "origin": origin},
    });
    let restore = dora["overall"]["median_time_to_restore_hours"].as_f64().map_or("—".to_string(), |h| format!("{h:.1} h"));
    Ok(Document {
        title: format!("Audit digest {}", super::window_text(since, until)),
        sections: vec![
            Section::new(
                "In short",
                &[
                    "deployments",
                    "failed",
                    "median time to restore",
                    "refused pushes",
                    "break glass",
                    "violations",
                    "could not verify",
                    "anomalies",
                ],
                vec![vec![
                    n("deployments").to_string(),
                    n("failed").to_string(),
                    restore,
                    n("refused_pushes").to_string(),
                    n("break_glass").to_string(),
                    n("violations").to_string(),
                    n("could_not_verify").to_string(),
                    n("anomalies").to_string(),
                ]],
            ),
            Section::new("Shipped", &["time", "environment", "sha", "deployer", "approved by", "status", "seq"], shipped),
            Section::new(
                "Failures",
                &["environment", "deployment", "sha", "status", "rolled back by", "seq"],
                failures
                    .iter()
                    .map(|d| {
                        vec![
                            d["environment"].as_str().unwrap_or_default().to_string(),
                            d["id"].as_str().unwrap_or_default().to_string(),
                            short_id(d["sha"].as_str().unwrap_or_default()).to_string(),
                            d["status"].as_str().unwrap_or_default().to_string(),
                            d["rolled_back_by"].as_str().unwrap_or_default().to_string(),
                            d["seq"].to_string(),
                        ]
                    })
                    .collect(),
            ),
            Section::new(
                "Refused pushes",
                &["time", "pusher", "refs", "rules", "reasons", "seq"],
                refused
                    .iter()
                    .map(|d| {
                        vec![
                            d["time"].as_str().unwrap_or_default().to_string(),
                            d["pusher"].as_str().unwrap_or_default().to_string(),
                            text_list(&d["refs"]),
                            text_list(&d["rules"]),
                            d["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
                            d["seq"].to_string(),
                        ]
                    })
                    .collect(),
            ),
            Section::new(
                "Break glass",
                &["time", "who", "reason", "violations", "seq"],
                breaks
                    .iter()
                    .map(|b| {
                        vec![b.time.clone(), b.actor.clone(), b.payload.reason.clone(), b.payload.violations.to_string(), b.seq.to_string()]
                    })
                    .collect(),
            ),
            Section::new("Findings", &["rule", "subject", "message", "evidence (ledger seq)"], finding_rows(&findings)),
            Section::new("Anomalies", &["kind", "subject", "message", "evidence (ledger seq)"], finding_rows(&anomalies)),
            Section::new("Computed from", &["ledger", "tree size", "root (hex)"], vec![vec![origin.clone(), head.size.to_string(), root]]),
        ],
        charts: Vec::new(),
        series: Vec::new(),
        json,
    })
}

/// The few lines a chat message carries: the summary's parts, then the first
/// failures, refusals, break glass and anomalies.
pub fn highlights(doc: &Document, limit: usize) -> Vec<String> {
    let j = &doc.json;
    let mut out = Vec::new();
    for d in j["failures"].as_array().into_iter().flatten() {
        out.push(format!(
            "failed: {} to {} ({})",
            short_id(d["sha"].as_str().unwrap_or_default()),
            d["environment"].as_str().unwrap_or_default(),
            d["status"].as_str().unwrap_or_default()
        ));
    }
    for d in j["refused"].as_array().into_iter().flatten() {
        let rules: Vec<&str> = d["rules"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        out.push(format!("refused: {} ({})", d["pusher"].as_str().unwrap_or_default(), rules.join(", ")));
    }
    for b in j["break_glass"].as_array().into_iter().flatten() {
        out.push(format!("break glass: {}: {}", b["actor"].as_str().unwrap_or_default(), b["reason"].as_str().unwrap_or_default()));
    }
    for a in j["anomalies"].as_array().into_iter().flatten() {
        out.push(format!("{}: {}", a["rule"].as_str().unwrap_or_default(), a["message"].as_str().unwrap_or_default()));
    }
    let more = out.len().saturating_sub(limit);
    out.truncate(limit);
    if more > 0 {
        out.push(format!("… and {more} more (git-audit digest)"));
    }
    out
}

/// The `digest` notice for a digest document (sent by `digest --send` and by
/// the sync job on `[review] digest`).
pub fn notice(doc: &Document) -> crate::notify::Notice {
    use crate::notify::body;
    let j = &doc.json;
    let counts = j["counts"].as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
    crate::notify::Notice::new(
        "digest",
        body::Data {
            repository: j["repository"].as_str().unwrap_or_default().to_string(),
            summary: j["summary"].as_str().unwrap_or_default().to_string(),
            ledger: None,
            detail: body::Detail::Digest(body::Digest {
                since: j["since"].as_str().unwrap_or_default().to_string(),
                until: j["until"].as_str().map(str::to_string),
                counts,
                lines: highlights(doc, 12),
                checkpoint: body::DigestCheckpoint {
                    origin: j["checkpoint"]["origin"].as_str().unwrap_or_default().to_string(),
                    tree_size: j["checkpoint"]["tree_size"].as_u64().unwrap_or(0),
                    root: j["checkpoint"]["root"].as_str().unwrap_or_default().to_string(),
                },
            }),
        },
    )
}

/// The last whole period before `now` (UTC): yesterday, or last ISO week
/// (Monday to Monday), with its label (`2026-12-03`, `2026-W48`).
pub fn last_period(every: crate::policy::DigestEvery, now: chrono::DateTime<chrono::Utc>) -> (String, Timestamp, Timestamp) {
    use chrono::{Datelike, Days, TimeZone};
    let today = now.date_naive();
    let (start, end, label) = match every {
        crate::policy::DigestEvery::Day => {
            let start = today - Days::new(1);
            (start, today, start.to_string())
        }
        crate::policy::DigestEvery::Week => {
            let monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
            let start = monday - Days::new(7);
            let w = start.iso_week();
            (start, monday, format!("{}-W{:02}", w.year(), w.week()))
        }
    };
    let at = |d: chrono::NaiveDate| Timestamp::from_datetime(chrono::Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    (label, at(start), at(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_last_period_is_the_whole_one_before_now() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 21, 0, 0).single().unwrap_or_default(); // a Friday
        let (label, since, until) = last_period(crate::policy::DigestEvery::Week, now);
        assert_eq!(
            (label.as_str(), since.to_string(), until.to_string()),
            ("2026-W48", "2026-11-23T00:00:00Z".into(), "2026-11-30T00:00:00Z".into())
        );
        let (label, since, until) = last_period(crate::policy::DigestEvery::Day, now);
        assert_eq!(
            (label.as_str(), since.to_string(), until.to_string()),
            ("2026-12-03", "2026-12-03T00:00:00Z".into(), "2026-12-04T00:00:00Z".into())
        );
        // On a Monday just after midnight, last week is the one that just ended.
        let monday = chrono::Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 1).single().unwrap_or_default();
        assert_eq!(last_period(crate::policy::DigestEvery::Week, monday).0, "2026-W48");
    }
}
