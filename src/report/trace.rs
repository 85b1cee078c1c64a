//! `report trace <commit>`: one commit's whole story — verification results,
//! pushes that carried it, the pull requests that contain it and their reviews,
//! and every deployment that shipped it.

use serde_json::json;

use super::{strings, Document, ReportError, Section};
use crate::git::{short_id, Repo};
use crate::ledger::event::{CommitVerified, PushDecided, RefUpdated};
use crate::ledger::{Ledger, Select};

pub fn trace(ledger: &Ledger, repo: Option<&Repo>, commit: &str) -> Result<Document, ReportError> {
    let c = ledger.connection();
    let verifications: Vec<Vec<String>> = ledger
        .events::<CommitVerified>(&Select { subject: Some(commit), ..Select::default() })?
        .into_iter()
        .map(|e| {
            let v = &e.payload;
            vec![
                e.seq.to_string(),
                e.time,
                e.actor,
                v.signature.status.as_str().to_string(),
                v.signature.signer.clone().unwrap_or_default(),
                v.signature.key.clone().unwrap_or_default(),
                v.verdict.as_str().to_string(),
                v.findings.iter().map(|f| f.rule.id()).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    // Pushes whose decision or update names the commit (as the new tip, the old
    // one, or among the commits it brought), each of their ref updates.
    let mut pushes: Vec<(u64, Vec<String>)> = Vec::new();
    for e in ledger.events::<PushDecided>(&Select::default())? {
        let names = e.payload.ref_updates.iter().any(|u| u.new == commit || u.old == commit || u.commits.iter().any(|c| c == commit));
        if names {
            let outcome = if e.payload.accepted { "accepted" } else { "refused" };
            pushes.extend(
                e.payload
                    .ref_updates
                    .iter()
                    .map(|u| (e.seq, vec![e.seq.to_string(), e.time.clone(), u.refname.clone(), e.actor.clone(), outcome.into()])),
            );
        }
    }
    for e in ledger.events::<RefUpdated>(&Select::default())? {
        if e.payload.ref_updates.iter().any(|u| u.new == commit || u.old == commit) {
            pushes.extend(
                e.payload
                    .ref_updates
                    .iter()
                    .map(|u| (e.seq, vec![e.seq.to_string(), e.time.clone(), u.refname.clone(), e.actor.clone(), "updated".into()])),
            );
        }
    }
    pushes.sort_by_key(|(seq, _)| *seq);
    let pushes: Vec<Vec<String>> = pushes.into_iter().map(|(_, row)| row).collect();
    let prs = strings(
        c,
        "SELECT p.repo, p.number, p.title, p.author, p.state, p.merged_by, p.merged_at, p.head_sha, how FROM (
            SELECT repo, number, 'in its commits' AS how FROM pr_commits WHERE sha = ?1
            UNION SELECT repo, number, 'its merge commit' FROM pull_requests WHERE merge_commit_sha = ?1
            UNION SELECT cp.repo, j.value, 'commit → pulls look-up' FROM commit_pulls cp, json_each(cp.pulls) j WHERE cp.sha = ?1
         ) x JOIN pull_requests p ON p.repo = x.repo AND p.number = x.number ORDER BY p.repo, p.number",
        &[&commit],
    )?;
    let mut reviews = Vec::new();
    for pr in &prs {
        let rows = strings(
            c,
            "SELECT number, reviewer, state, commit_id, submitted_at FROM reviews WHERE repo = ?1 AND number = ?2 ORDER BY submitted_at",
            &[&pr[0], &pr[1]],
        )?;
        for mut r in rows {
            let on_head = if r[3] == pr[7] { "yes" } else { "no (stale)" };
            r[3] = format!("{} (on final head: {on_head})", short_id(&r[3]));
            reviews.push(r);
        }
    }
    let deps = strings(
        c,
        "SELECT d.repo, d.id, d.environment, d.created_at, d.sha, d.creator,
                (SELECT state FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id ORDER BY s.id DESC LIMIT 1)
         FROM deployments d ORDER BY d.created_at",
        &[],
    )?;
    let mut deployments = Vec::new();
    for d in deps {
        let how = if d[4] == commit {
            "deployed this commit"
        } else if repo.is_some_and(|r| r.is_ancestor(commit, &d[4]).unwrap_or(false)) {
            "deployed a descendant"
        } else {
            continue;
        };
        deployments.push(vec![
            d[2].clone(),
            d[3].clone(),
            d[1].clone(),
            short_id(&d[4]).to_string(),
            d[5].clone(),
            d[6].clone(),
            how.to_string(),
            d[0].clone(),
        ]);
    }
    let json = json!({
        "commit": commit,
        "verifications": verifications.iter().map(|r| json!({"seq": r[0].parse::<u64>().ok(), "time": r[1], "by": r[2], "status": r[3], "signer": r[4], "key": r[5], "verdict": r[6], "rules": r[7]})).collect::<Vec<_>>(),
        "pushes": pushes.iter().map(|r| json!({"seq": r[0].parse::<u64>().ok(), "time": r[1], "ref": r[2], "pusher": r[3], "outcome": r[4]})).collect::<Vec<_>>(),
        "pull_requests": prs.iter().map(|r| json!({"repository": r[0], "number": r[1].parse::<u64>().ok(), "title": r[2], "author": r[3], "state": r[4], "merged_by": r[5], "merged_at": r[6], "head_sha": r[7], "linked_by": r[8]})).collect::<Vec<_>>(),
        "reviews": reviews.iter().map(|r| json!({"number": r[0].parse::<u64>().ok(), "reviewer": r[1], "state": r[2], "commit": r[3], "submitted_at": r[4]})).collect::<Vec<_>>(),
        "deployments": deployments.iter().map(|r| json!({"environment": r[0], "time": r[1], "id": r[2].parse::<u64>().ok(), "sha": r[3], "deployer": r[4], "status": r[5], "how": r[6], "repository": r[7]})).collect::<Vec<_>>(),
    });
    let section = |title: &str, cols: &[&str], rows: Vec<Vec<String>>| Section {
        title: title.into(),
        columns: cols.iter().map(|s| s.to_string()).collect(),
        rows,
    };
    Ok(Document {
        title: format!("Trace of commit {commit}"),
        sections: vec![
            section("Verification", &["seq", "time", "by", "status", "signer", "key", "verdict", "rules"], verifications),
            section("Pushes", &["seq", "time", "ref", "pusher", "outcome"], pushes),
            section(
                "Pull requests",
                &["repository", "number", "title", "author", "state", "merged by", "merged at", "head", "linked by"],
                prs.into_iter()
                    .map(|mut r| {
                        r[7] = short_id(&r[7]).to_string();
                        r
                    })
                    .collect(),
            ),
            section("Reviews", &["number", "reviewer", "state", "commit", "submitted"], reviews),
            section("Deployments", &["environment", "time", "id", "sha", "deployer", "status", "how", "repository"], deployments),
        ],
        charts: Vec::new(),
        json,
    })
}
