//! `report deployments`: each deployment to an environment in a window, with
//! the commits it shipped (from the previous successful deployment to the same
//! environment, computed with git) and, per commit, its signature, the pull
//! request it came in with, that PR's approvals, and its findings.

use serde_json::json;

use super::{Document, ReportError, Section};
use crate::event::CommitVerified;
use crate::facts::deployments::{rollback_of, rolled_back_by, shipped, DeploymentHistory};
use crate::git::{short_id, Repo};
use crate::ledger::{Ledger, Select};
use crate::time::Timestamp;

/// Per commit: (signature status, signer, PR "#n (how)", approvers, rules).
fn commit_facts(ledger: &Ledger, repository: &str, id: &str) -> Result<(String, String, String, String, String), ReportError> {
    let (status, signer) = ledger.commit_signature(id)?.unwrap_or(("not verified".into(), String::new()));
    let prs = ledger.pulls_of_commit(repository, id)?;
    let pr = match prs.first() {
        Some(p) => format!("#{} ({})", p.number, p.how),
        None if ledger.pushed_directly(repository, id)? => "pushed directly".into(),
        None => String::new(),
    };
    let approvals = match prs.first() {
        Some(p) => ledger.approvers(repository, p.number)?,
        None => String::new(),
    };
    let rules = ledger
        .events::<CommitVerified>(&Select { subject: Some(id), newest: Some(1), ..Select::default() })?
        .first()
        .map(|e| e.payload.findings.iter().map(|f| f.rule.id()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    Ok((status, signer, pr, approvals, rules))
}

pub fn deployments(
    ledger: &Ledger,
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    env: &str,
    since: &Timestamp,
    until: &Timestamp,
    policy: Option<&crate::policy::Policy>,
) -> Result<Document, ReportError> {
    let all = facts.in_env(env);
    let (approvals, histories, runs) = (&facts.approvals, &facts.recorded, &facts.runs);
    // With a policy's [[environments]], each deployment carries its deploy.* findings.
    let judged: std::collections::HashMap<super::compliance::DeploymentKey, Vec<crate::rule::Finding>> = match policy {
        Some(p) if !p.environments.is_empty() => {
            super::compliance::deployment_findings(ledger, facts, repo, since, p)?.into_iter().collect()
        }
        _ => Default::default(),
    };
    let mut dep_rows = Vec::new();
    let mut dep_raw = Vec::new();
    let mut commit_rows = Vec::new();
    let mut commit_raw = Vec::new();
    let mut json_deps = Vec::new();
    for (i, d) in all.iter().enumerate() {
        if !super::within(&d.time, since, until) {
            continue;
        }
        let mut notes = Vec::new();
        let (previous, ids) = match shipped(repo, &all, i) {
            Some((p, ids)) => (p, ids),
            None => {
                notes.push("commits not in the local repository (git fetch)".to_string());
                (None, Vec::new())
            }
        };
        // Rollbacks, where they happen: on the deployment undone and on the one that undid it.
        let undone_by = rolled_back_by(repo, &all, i);
        let undoes = rollback_of(repo, &all, i);
        notes.extend(undone_by.map(|o| format!("rolled back by deployment {} ({})", o.name, short_id(&o.sha))));
        notes.extend(undoes.map(|o| format!("rollback of deployment {} ({})", o.name, short_id(&o.sha))));
        // For people: the deployment's id says enough (its sha is on its row).
        let mut brief: Vec<String> =
            notes.iter().filter(|n| !n.starts_with("rolled back by") && !n.starts_with("rollback of")).cloned().collect();
        brief.extend(undone_by.map(|o| format!("rolled back by {}", o.name)));
        brief.extend(undoes.map(|o| format!("rollback of {}", o.name)));
        let mut commits_json = Vec::new();
        for id in &ids {
            let (status, signer, pr, approvals, rules) = commit_facts(ledger, &d.repository, id)?;
            let row = vec![d.name.clone(), id.clone(), status.clone(), signer.clone(), pr.clone(), approvals.clone(), rules.clone()];
            let mut short = row.clone();
            short[1] = short_id(id).to_string();
            commit_rows.push(short);
            commit_raw.push(row);
            commits_json.push(json!({"id": id, "signature": {"status": status, "signer": signer}, "pull_request": pr, "approvals": approvals.split_whitespace().collect::<Vec<_>>(), "findings": rules.split_whitespace().collect::<Vec<_>>()}));
        }
        // How its facts are known: from the forge (synced), attested by a CI's
        // OIDC token, or asserted by the job that recorded it.
        let history = histories.get(&d.key());
        let (source, claims) = match history {
            Some(h) if h.attestation.is_some() => (h.source.clone(), "attested"),
            Some(h) => (h.source.clone(), "asserted"),
            None => ("github".to_string(), "forge"),
        };
        let shown_source = if claims == "forge" { source.clone() } else { format!("{source} ({claims})") };
        let corrections = history.map(|h| h.corrections.clone()).unwrap_or_default();
        if !corrections.is_empty() {
            notes.push(format!("re-recorded with other facts {} time(s) (deploy.record-changed)", corrections.len()));
            brief.push(format!("re-recorded ×{}", corrections.len()));
        }
        let note = notes.join("; ");
        let approved = approvals.get(&d.key()).cloned().unwrap_or_default();
        let approvers =
            approved.iter().filter(|a| a.state == crate::event::APPROVAL_APPROVED).map(|a| a.user.as_str()).collect::<Vec<_>>().join(" ");
        let findings = judged.get(&(d.repository.clone(), d.id)).cloned().unwrap_or_default();
        let finding_ids = findings.iter().map(|f| f.rule.id()).collect::<Vec<_>>().join(" ");
        let row = vec![
            d.time.clone(),
            d.environment.clone(),
            d.name.clone(),
            d.sha.clone(),
            d.deployer.clone(),
            shown_source,
            approvers,
            finding_ids,
            d.status.to_string(),
            ids.len().to_string(),
            previous.clone().unwrap_or_default(),
            note.clone(),
            d.seq.to_string(),
        ];
        let mut short = row.clone();
        short[3] = short_id(&d.sha).to_string();
        short[10] = previous.as_deref().map(|p| short_id(p).to_string()).unwrap_or_else(|| "—".into());
        short[11] = brief.join("; ");
        dep_rows.push(short);
        dep_raw.push(row);
        // Its facts stand on these entries: the deployment, and the status it ended with.
        let evidence: Vec<u64> = [d.seq].into_iter().chain(d.status_seq).collect();
        json_deps.push(json!({"repository": d.repository, "id": d.name, "url": d.url, "time": d.time, "environment": d.environment, "sha": d.sha, "deployer": d.deployer, "source": source, "claims": claims, "attestation": history.and_then(|h| h.attestation.clone()), "corrections": corrections, "triggering_actor": runs.get(&d.key()).and_then(|(who, _)| who.clone()), "approvals": approved, "findings": findings, "status": d.status, "previous_successful_sha": previous, "commits": commits_json, "note": if note.is_empty() { None } else { Some(note) }, "rolled_back_by": undone_by.map(|o| o.name.clone()), "rollback_of": undoes.map(|o| o.name.clone()), "seq": d.seq, "evidence": evidence}));
    }
    Ok(Document {
        title: format!("Deployments to {env} {}", super::window_text(since, until)),
        sections: vec![
            Section::new(
                "Deployments",
                &[
                    "time",
                    "environment",
                    "id",
                    "sha",
                    "deployer",
                    "source",
                    "approvers",
                    "findings",
                    "status",
                    "commits",
                    "since",
                    "note",
                    "seq",
                ],
                dep_rows,
            )
            .with_raw(dep_raw)
            // A row per deployment at 120 columns: the title names a single
            // environment, and `since` and `seq` are in every other format.
            .not_in_table(if env.contains(['*', '?', '[']) { &["since", "seq"] } else { &["environment", "since", "seq"] }),
            Section::new(
                "Commits shipped",
                &["deployment", "commit", "signature", "signer", "pull request", "approvals", "findings"],
                commit_rows,
            )
            .with_raw(commit_raw),
        ],
        charts: Vec::new(),
        series: Vec::new(),
        json: json!({"environment": env, "since": since.to_string(), "until": (!until.is_open_end()).then(|| until.to_string()), "deployments": json_deps}),
    })
}
