//! The reports of an evidence package, recomputed from the entries it proves.
//!
//! A package's manifest is not signed: anyone can edit a report and fix its
//! digest. What makes a report evidence is that each row agrees with the
//! entries it cites, and each number follows from the rows. This checks that,
//! offline:
//!
//! - `deployments`: every deployment cites its `deployment.*` entry and the
//!   entry that set its status; its environment, commit, repository, deployer,
//!   time and status are the ones those entries say; each approval's entry
//!   names its approver; the CSV and HTML list the same deployments.
//! - `compliance`: every finding cites entries; the per-rule summary and the
//!   violation / could-not-verify counts follow from the findings.
//! - `dora`: deployments, successful, failed and the change failure rate,
//!   overall and per period, follow from the deployments report's rows.
//!
//! What needs git (lead time: a commit's time; a rollback: ancestry) cannot
//! be recomputed here, and is said so rather than passed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::event::{login, DeploymentApprovalSynced, DeploymentRecorded, DeploymentStatusSynced, DeploymentSynced, Payload};

#[derive(Debug, Default)]
pub struct Recomputed {
    pub checked: Vec<String>,
    pub not_recomputed: Vec<String>,
    pub problems: Vec<String>,
}

fn json(files: &BTreeMap<String, Vec<u8>>, name: &str) -> Option<Value> {
    files.get(name).and_then(|b| serde_json::from_slice(b).ok())
}

/// A JSON value as the reports print it: strings as they are, null as "".
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn all(files: &BTreeMap<String, Vec<u8>>, entries: &BTreeMap<u64, Value>) -> Recomputed {
    let mut r = Recomputed::default();
    let deployments = json(files, "reports/deployments.json");
    if let Some(d) = &deployments {
        deployments_report(d, files, entries, &mut r);
    }
    if let Some(c) = json(files, "reports/compliance.json") {
        compliance_report(&c, &mut r);
    }
    if let (Some(dora), Some(d)) = (json(files, "reports/dora.json"), &deployments) {
        dora_report(&dora, d, &mut r);
    }
    r
}

/// What a deployment entry says about its deployment.
struct Said {
    repository: String,
    environment: String,
    sha: String,
    deployer: String,
    time: String,
    id: Option<i64>,
}

/// An entry of the package as the payload of its kind, when it is one.
fn typed<P: Payload>(entry: &Value) -> Option<P> {
    (entry["kind"].as_str()? == P::KIND.as_str()).then(|| serde_json::from_value(entry["payload"].clone()).ok())?
}

fn said(entry: &Value) -> Option<Said> {
    if let Some(p) = typed::<DeploymentSynced>(entry) {
        return Some(Said {
            repository: p.repository.unwrap_or_default(),
            environment: p.environment.unwrap_or_default(),
            sha: p.sha.unwrap_or_default(),
            deployer: login(&p.creator).unwrap_or_default().to_string(),
            time: p.created_at.unwrap_or_default(),
            id: p.id,
        });
    }
    let p = typed::<DeploymentRecorded>(entry)?;
    Some(Said {
        repository: p.repository,
        environment: p.environment,
        sha: p.sha,
        deployer: p.actor.unwrap_or_default(),
        time: text(&entry["time"]),
        id: Some(p.deployment_id),
    })
}

fn deployments_report(report: &Value, files: &BTreeMap<String, Vec<u8>>, entries: &BTreeMap<u64, Value>, r: &mut Recomputed) {
    let name = "reports/deployments.json";
    let list = report["deployments"].as_array().cloned().unwrap_or_default();
    let before = r.problems.len();
    for (i, d) in list.iter().enumerate() {
        let label = format!("{name}: deployment {} (row {})", text(&d["id"]), i + 1);
        let Some(seq) = d["seq"].as_u64() else {
            r.problems.push(format!("{label} cites no entry"));
            continue;
        };
        let Some(entry) = entries.get(&seq) else { continue }; // unproven: named by the citation check
        let Some(s) = said(entry) else {
            r.problems.push(format!("{label} cites seq {seq}, a {} entry, not a deployment", text(&entry["kind"])));
            continue;
        };
        for (field, shown, recorded) in [
            ("environment", text(&d["environment"]), &s.environment),
            ("sha", text(&d["sha"]), &s.sha),
            ("repository", text(&d["repository"]), &s.repository),
            ("deployer", text(&d["deployer"]), &s.deployer),
            ("time", text(&d["time"]), &s.time),
        ] {
            if &shown != recorded {
                r.problems.push(format!("{label}: its {field} is \"{shown}\" but its entry (seq {seq}) says \"{recorded}\""));
            }
        }
        // Its status, from the entry that set it.
        let status = text(&d["status"]);
        let cited: Vec<u64> = d["evidence"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
        let set_by = cited.iter().filter(|e| **e != seq || entry["kind"] == "deployment.recorded").find_map(|e| {
            let x = entries.get(e)?;
            let (state, of) = match (typed::<DeploymentStatusSynced>(x), typed::<DeploymentRecorded>(x)) {
                (Some(p), _) => (p.state.map(|s| s.to_string()).unwrap_or_default(), p.deployment_id),
                (_, Some(p)) => (p.status.as_str().to_string(), Some(p.deployment_id)),
                _ => return None,
            };
            (of == s.id).then_some((*e, state))
        });
        match set_by {
            Some((_, state)) if state == status => {}
            Some((e, state)) => {
                r.problems.push(format!("{label}: its status is \"{status}\" but the entry that set it (seq {e}) says \"{state}\""))
            }
            None if status == "unknown" => {}
            None => r.problems.push(format!("{label}: its status \"{status}\" cites no entry that set it")),
        }
        // Each approval's entry names its approver.
        for a in d["approvals"].as_array().into_iter().flatten() {
            let user = text(&a["user"]);
            let Some(e) = a["seq"].as_u64().and_then(|e| entries.get(&e)) else { continue };
            let (named, same) = match (typed::<DeploymentRecorded>(e), typed::<DeploymentApprovalSynced>(e)) {
                (Some(p), _) => (p.approved_by.contains(&user), Some(p.deployment_id) == s.id && p.repository == s.repository),
                (_, Some(p)) => (
                    p.approvals.iter().any(|x| login(&x.user) == Some(user.as_str())),
                    // …and is about this deployment, not another one the same person approved.
                    Some(p.deployment_id) == s.id && p.repository == s.repository,
                ),
                _ => (false, false),
            };
            if !named || !same {
                let why = if named { "is about another deployment" } else { "does not name them" };
                r.problems.push(format!("{label}: approver \"{user}\": the entry it cites (seq {}) {why}", text(&a["seq"])));
            }
        }
    }
    // The CSV and the HTML list the same deployments as the JSON.
    let ids: Vec<(String, String, String)> = list.iter().map(|d| (text(&d["id"]), text(&d["sha"]), text(&d["status"]))).collect();
    match files.get("reports/deployments.csv") {
        Some(csv) => {
            let mut rd = csv::ReaderBuilder::new().flexible(true).from_reader(csv.as_slice());
            let head = rd.headers().cloned().unwrap_or_default();
            let col = |n: &str| head.iter().position(|h| h == n);
            let (sec, id, sha, status) = (col("section"), col("id"), col("sha"), col("status"));
            let rows: Vec<(String, String, String)> = rd
                .records()
                .filter_map(Result::ok)
                .filter(|rec| sec.and_then(|i| rec.get(i)) == Some("Deployments"))
                .map(|rec| {
                    let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or_default().to_string();
                    (get(id), get(sha), get(status))
                })
                .collect();
            if rows != ids {
                r.problems.push(format!(
                    "reports/deployments.csv: its deployments ({} rows) are not the JSON's ({}): id, sha or status differ",
                    rows.len(),
                    ids.len()
                ));
            }
        }
        None => r.problems.push("reports/deployments.csv is missing".into()),
    }
    if let Some(html) = files.get("reports/deployments.html") {
        let heading = format!("<h2>Deployments ({})</h2>", list.len());
        if !String::from_utf8_lossy(html).contains(&heading) {
            r.problems.push(format!("reports/deployments.html: it does not list {} deployments as the JSON does", list.len()));
        }
    }
    if r.problems.len() == before {
        r.checked.push(format!(
            "{name}: {} deployments, each matching its deployment and status entries (environment, commit, deployer, time, status, approvers); CSV and HTML agree",
            list.len()
        ));
    }
}

fn compliance_report(report: &Value, r: &mut Recomputed) {
    let name = "reports/compliance.json";
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    let before = r.problems.len();
    let mut per_rule: BTreeMap<String, u64> = BTreeMap::new();
    let (mut unverified, mut anomalies) = (0u64, 0u64);
    for (i, f) in findings.iter().enumerate() {
        let rule = text(&f["rule"]);
        if f["evidence"].as_array().is_none_or(Vec::is_empty) {
            r.problems.push(format!("{name}: finding {} ({rule}) cites no entry", i + 1));
        }
        match crate::rule::Rule::from_id(&rule) {
            Some(x) if x.is_unverified() => unverified += 1,
            Some(x) if x.is_anomaly() => anomalies += 1,
            Some(_) => {}
            None => r.problems.push(format!("{name}: finding {} names no known rule (\"{rule}\")", i + 1)),
        }
        *per_rule.entry(rule).or_default() += 1;
    }
    let summary: BTreeMap<String, u64> = report["summary"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX))).collect())
        .unwrap_or_default();
    if summary != per_rule {
        r.problems.push(format!("{name}: its summary per rule {summary:?} is not what its findings count {per_rule:?}"));
    }
    let total = findings.len() as u64;
    let counts = &report["counts"];
    // Packages from before anomalies existed have no `anomalies` count (and none).
    let violations = total - unverified - anomalies;
    if counts["violations"].as_u64() != Some(violations)
        || counts["could_not_verify"].as_u64() != Some(unverified)
        || counts["anomalies"].as_u64().unwrap_or(0) != anomalies
    {
        r.problems.push(format!(
            "{name}: its counts {counts} are not its findings' ({violations} violations, {unverified} could not verify, {anomalies} anomalies)"
        ));
    }
    if r.problems.len() == before {
        r.checked.push(format!("{name}: {total} findings, each citing entries; the summary and counts follow from them"));
    }
}

fn dora_report(dora: &Value, deployments: &Value, r: &mut Recomputed) {
    let name = "reports/dora.json";
    if dora["environment"] != deployments["environment"] || dora["since"] != deployments["since"] || dora["until"] != deployments["until"] {
        r.not_recomputed.push(format!("{name}: not over the same window and environment as the deployments report"));
        return;
    }
    let before = r.problems.len();
    let list = deployments["deployments"].as_array().cloned().unwrap_or_default();
    let status = |d: &Value| crate::event::DeploymentState::parse(d["status"].as_str().unwrap_or_default());
    let failed = |d: &Value| status(d).failed() || !d["rolled_back_by"].is_null();
    let count = |f: &dyn Fn(&Value) -> bool| list.iter().filter(|d| f(d)).count() as u64;
    let total = list.len() as u64;
    let n_failed = count(&failed);
    let n_success = count(&|d| !failed(d) && status(d).succeeded());
    let o = &dora["overall"];
    for (field, want) in [("deployments", total), ("failed", n_failed), ("successful", n_success)] {
        if o[field].as_u64() != Some(want) {
            r.problems.push(format!("{name}: overall {field} is {} but the deployments report's rows give {want}", o[field]));
        }
    }
    let rate = if total == 0 { 0.0 } else { n_failed as f64 / total as f64 };
    if o["change_failure_rate"].as_f64().is_none_or(|c| (c - rate).abs() > 1e-9) {
        r.problems.push(format!("{name}: the change failure rate {} is not {n_failed} of {total}", o["change_failure_rate"]));
    }
    // Per period: each deployment in the period holding its day.
    let mut seen = BTreeSet::new();
    for p in dora["periods"].as_array().into_iter().flatten() {
        let (start, end) = (text(&p["start"]), text(&p["end"]));
        let here: Vec<&Value> = list
            .iter()
            .filter(|d| {
                let day = d["time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.to_utc().date_naive().to_string());
                day.is_some_and(|day| start <= day && day < end)
            })
            .collect();
        seen.extend(here.iter().filter_map(|d| d["seq"].as_u64()));
        let want = (here.len() as u64, here.iter().filter(|d| failed(d)).count() as u64);
        if (p["deployments"].as_u64(), p["failed"].as_u64()) != (Some(want.0), Some(want.1)) {
            r.problems.push(format!(
                "{name}: period {} shows {} deployments ({} failed) but the rows give {} ({})",
                text(&p["period"]),
                p["deployments"],
                p["failed"],
                want.0,
                want.1
            ));
        }
    }
    if (seen.len() as u64) < total {
        r.problems.push(format!("{name}: its periods hold {} of the {total} deployments", seen.len()));
    }
    if r.problems.len() == before {
        r.checked.push(format!(
            "{name}: deployments, successful, failed and the change failure rate, overall and per period, follow from the deployments' rows"
        ));
    }
    r.not_recomputed.push(format!(
        "{name}: lead time and time to restore are not recomputed: they need the commits' times (in git, not the ledger); \
         which deployments were rolled back is taken from the deployments report (ancestry is in git)"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A package holding one synced deployment (seq 1), its status (seq 2),
    /// and two approval entries: one for it (seq 3), one for another (seq 4).
    fn package(approval_seq: u64) -> (BTreeMap<String, Vec<u8>>, BTreeMap<u64, Value>) {
        let entries = BTreeMap::from([
            (
                1,
                json!({"kind": "deployment.synced", "time": "t", "payload": {"id": 7, "repository": "acme/api", "environment": "production", "sha": "abc", "creator": {"login": "erin"}, "created_at": "2026-07-01T02:00:00Z"}}),
            ),
            (2, json!({"kind": "deployment_status.synced", "payload": {"deployment_id": 7, "state": "success", "repository": "acme/api"}})),
            (
                3,
                json!({"kind": "deployment_approval.synced", "payload": {"deployment_id": 7, "repository": "acme/api", "approvals": [{"user": {"login": "carol"}}]}}),
            ),
            (
                4,
                json!({"kind": "deployment_approval.synced", "payload": {"deployment_id": 8, "repository": "acme/api", "approvals": [{"user": {"login": "carol"}}]}}),
            ),
        ]);
        let report = json!({"environment": "production", "deployments": [{"id": "7", "seq": 1, "evidence": [1, 2], "repository": "acme/api", "environment": "production",
            "sha": "abc", "deployer": "erin", "time": "2026-07-01T02:00:00Z", "status": "success", "approvals": [{"user": "carol", "seq": approval_seq}]}]});
        let csv = "section,id,sha,status\nDeployments,7,abc,success\n";
        let files = BTreeMap::from([
            ("reports/deployments.json".to_string(), serde_json::to_vec(&report).unwrap_or_default()),
            ("reports/deployments.csv".to_string(), csv.as_bytes().to_vec()),
        ]);
        (files, entries)
    }

    #[test]
    fn an_approval_must_cite_an_entry_about_its_own_deployment() {
        let (files, entries) = package(3);
        let ok = all(&files, &entries);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        // The same approver, borrowed from another deployment's approvals.
        let (files, entries) = package(4);
        let forged = all(&files, &entries);
        assert!(
            forged.problems.iter().any(|p| p.contains("approver \"carol\": the entry it cites (seq 4) is about another deployment")),
            "{:?}",
            forged.problems
        );
    }
}
