//! `report trace <commit>`: one commit's whole story — verification results,
//! pushes that carried it, the pull requests that contain it and their reviews,
//! and every deployment that shipped it.

use serde_json::json;

use super::{Document, ReportError, Section};
use crate::event::{CommitVerified, PushDecided, RefUpdated};
use crate::git::{short_id, Repo};
use crate::ledger::{Ledger, Select};

/// The full id of the commit a person means: a full id as it is; a unique
/// prefix of any commit the repository or the ledger knows (a commit of a
/// synced repository need not be in the local clone); in a repository, any
/// revision git understands (`HEAD~2`, a branch). An ambiguous prefix lists
/// its candidates.
pub fn resolve_commit(ledger: &Ledger, repo: Option<&Repo>, spec: &str) -> Result<String, ReportError> {
    let spec = spec.trim();
    let hex = (4..=64).contains(&spec.len()) && spec.bytes().all(|b| b.is_ascii_hexdigit());
    let from_repo = repo.and_then(|r| r.resolve_commit(spec).ok());
    if !hex {
        return from_repo.ok_or_else(|| {
            ReportError::NotFound(format!(
                "unknown commit `{spec}`: {}\nHint: give a commit id (at least 4 hex digits), or run it in the repository (-C PATH)",
                if repo.is_some() { "git does not know it" } else { "not in a git repository, and not a commit id" }
            ))
        });
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.len() == 40 || prefix.len() == 64 {
        return Ok(prefix);
    }
    const SHOWN: usize = 10;
    let mut candidates = ledger.commits_with_prefix(&prefix, SHOWN + 1)?;
    if let Some(id) = from_repo {
        candidates.push(id);
    }
    candidates.sort();
    candidates.dedup();
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(ReportError::NotFound(format!(
            "unknown commit `{spec}`: neither {}the ledger knows a commit whose id starts with it\nHint: check the id; `git-audit sync` records the commits of synced pull requests and deployments",
            if repo.is_some() { "the repository nor " } else { "" }
        ))),
        n => {
            let more = if n > SHOWN { " and more".to_string() } else { String::new() };
            candidates.truncate(SHOWN);
            Err(ReportError::Input(format!(
                "ambiguous commit id `{spec}`: the ledger knows several commits that start with it: {}{more}\nHint: give more digits",
                candidates.join(", ")
            )))
        }
    }
}

pub fn trace(ledger: &Ledger, repo: Option<&Repo>, commit: &str) -> Result<Document, ReportError> {
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
    let pulls = ledger.pulls_containing(commit)?;
    let mut reviews = Vec::new();
    for pr in &pulls {
        for r in ledger.reviews(&pr.repository, pr.number)? {
            let on_head = if r.commit_id == pr.head_sha { "yes" } else { "no (stale)" };
            reviews.push(vec![
                r.number.to_string(),
                r.reviewer,
                r.state.to_string(),
                format!("{} (on final head: {on_head})", short_id(&r.commit_id)),
                r.submitted_at,
            ]);
        }
    }
    let prs: Vec<Vec<String>> = pulls
        .into_iter()
        .map(|p| vec![p.repository, p.number.to_string(), p.title, p.author, p.state, p.merged_by, p.merged_at, p.head_sha, p.linked_by])
        .collect();
    let mut deployments = Vec::new();
    let mut deployment_approvals = Vec::new();
    let approvals = ledger.deployment_approvals()?;
    for d in ledger.deployments_latest_state()? {
        let how = if d.sha == commit {
            "deployed this commit"
        } else if repo.is_some_and(|r| r.is_ancestor(commit, &d.sha).unwrap_or(false)) {
            "deployed a descendant"
        } else {
            continue;
        };
        let approved = approvals.get(&d.key()).cloned().unwrap_or_default();
        deployments.push(vec![
            d.environment,
            d.time,
            d.name.clone(),
            short_id(&d.sha).to_string(),
            d.deployer,
            d.status.to_string(),
            how.to_string(),
            d.repository,
            approved.iter().filter(|a| a.state == crate::event::APPROVAL_APPROVED).map(|a| a.user.as_str()).collect::<Vec<_>>().join(" "),
        ]);
        deployment_approvals.push(approved);
    }
    let json = json!({
        "commit": commit,
        "verifications": verifications.iter().map(|r| json!({"seq": r[0].parse::<u64>().ok(), "time": r[1], "by": r[2], "status": r[3], "signer": r[4], "key": r[5], "verdict": r[6], "rules": r[7]})).collect::<Vec<_>>(),
        "pushes": pushes.iter().map(|r| json!({"seq": r[0].parse::<u64>().ok(), "time": r[1], "ref": r[2], "pusher": r[3], "outcome": r[4]})).collect::<Vec<_>>(),
        "pull_requests": prs.iter().map(|r| json!({"repository": r[0], "number": r[1].parse::<u64>().ok(), "title": r[2], "author": r[3], "state": r[4], "merged_by": r[5], "merged_at": r[6], "head_sha": r[7], "linked_by": r[8]})).collect::<Vec<_>>(),
        "reviews": reviews.iter().map(|r| json!({"number": r[0].parse::<u64>().ok(), "reviewer": r[1], "state": r[2], "commit": r[3], "submitted_at": r[4]})).collect::<Vec<_>>(),
        "deployments": deployments.iter().zip(&deployment_approvals).map(|(r, a)| json!({"environment": r[0], "time": r[1], "id": r[2], "sha": r[3], "deployer": r[4], "status": r[5], "how": r[6], "repository": r[7], "approvals": a})).collect::<Vec<_>>(),
    });
    let section = Section::new;
    Ok(Document {
        title: format!("Trace of commit {commit}"),
        sections: vec![
            section("Verification", &["seq", "time", "by", "status", "signer", "key", "verdict", "rules"], verifications),
            section("Pushes", &["seq", "time", "ref", "pusher", "outcome"], pushes),
            section(
                "Pull requests",
                &["pull request", "title", "author", "state", "merged by", "merged at", "head", "linked by"],
                prs.into_iter()
                    .map(|r| {
                        let mut row = vec![format!("{}#{}", r[0], r[1])];
                        row.extend(r[2..].iter().cloned());
                        row[6] = short_id(&row[6]).to_string();
                        row
                    })
                    .collect(),
            ),
            section("Reviews", &["number", "reviewer", "state", "commit", "submitted"], reviews),
            section(
                "Deployments",
                &["environment", "time", "id", "sha", "deployer", "status", "how", "repository", "approvers"],
                deployments,
            ),
        ],
        charts: Vec::new(),
        series: Vec::new(),
        json,
    })
}
