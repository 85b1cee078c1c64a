//! `report compliance`: every finding in a window, grouped by rule, each with
//! its evidence (ledger seq numbers). Rule ids are stable.

use std::collections::BTreeMap;

use serde_json::json;

use super::{strings, Document, ReportError, Section};
use crate::git::{short_id, Repo};
use crate::ledger::event::{BypassUsed, LedgerGap, PushDecided};
use crate::ledger::{Ledger, Select};
use crate::rule::{Finding, Rule, Severity};
use crate::time::Timestamp;

fn seqs(s: &str) -> Vec<u64> {
    s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

/// Finds, in entries recorded at or after `since`:
/// `pr.no-approval`, `pr.self-approval`, `pr.stale-approval`, `push.direct`,
/// `commits.unsigned-deployed`, `branches.force-push`, `branches.deletion`, `breakglass.used`, `ledger.gap`.
pub fn compliance(ledger: &Ledger, repo: Option<&Repo>, since: &Timestamp) -> Result<(Document, Vec<Finding>), ReportError> {
    let c = ledger.connection();
    let mut out: Vec<Finding> = Vec::new();
    // Entry times and GitHub's whole-second times compare correctly with the canonical form.
    let since_text = since.canonical();
    let since_param: &dyn rusqlite::ToSql = &since_text;

    // Merged pull requests and their approvals.
    let merged = strings(
        c,
        "SELECT p.repo, p.number, p.author, p.merged_by, p.head_sha, p.seq, p.title,
                (SELECT group_concat(r.reviewer, ',') FROM reviews r WHERE r.repo = p.repo AND r.number = p.number AND r.state = 'APPROVED'),
                (SELECT count(*) FROM reviews r WHERE r.repo = p.repo AND r.number = p.number AND r.state = 'APPROVED' AND r.commit_id = p.head_sha),
                (SELECT group_concat(r.seq, ',') FROM reviews r WHERE r.repo = p.repo AND r.number = p.number)
         FROM pull_requests p WHERE p.merged = 1 AND p.merged_at >= ?1 ORDER BY p.merged_at",
        &[since_param],
    )?;
    for m in merged {
        let subject = format!("{}#{}", m[0], m[1]);
        let mut evidence = seqs(&m[5]);
        evidence.extend(seqs(&m[9]));
        let approvers: Vec<&str> = m[7].split(',').filter(|s| !s.is_empty()).collect();
        let author = m[2].as_str();
        if approvers.is_empty() {
            out.push(Finding {
                rule: Rule::PrNoApproval,
                severity: Severity::Error,
                fix: None,
                subject: Some(subject),
                message: format!("merged by {} without an approval: {}", m[3], m[6]),
                evidence,
            });
        } else if approvers.iter().all(|a| *a == author) {
            out.push(Finding {
                rule: Rule::PrSelfApproval,
                severity: Severity::Error,
                fix: None,
                subject: Some(subject),
                message: format!("the only approvals are by its author {author}; merged by {}", m[3]),
                evidence,
            });
        } else if m[8] == "0" {
            out.push(Finding {
                rule: Rule::PrStaleApproval,
                severity: Severity::Error,
                fix: None,
                subject: Some(subject),
                message: format!("no approval is on the final head {} (approved earlier by {})", short_id(&m[4]), approvers.join(", ")),
                evidence,
            });
        }
    }

    // Changes that reached the default branch without a pull request.
    for r in strings(c, "SELECT cp.repo, cp.sha, cp.seq FROM commit_pulls cp JOIN entries e ON e.seq = cp.seq WHERE cp.pulls = '[]' AND e.time >= ?1 ORDER BY cp.seq", &[since_param])? {
        out.push(Finding { rule: Rule::PushDirect, severity: Severity::Error, fix: None, subject: Some(format!("{} {}", r[0], short_id(&r[1]))), message: "reached the default branch without a pull request".into(), evidence: seqs(&r[2]) });
    }

    // Commits deployed without a good signature: each deployment's shipped range
    // (from the previous successful deployment to its environment) is computed
    // once, so this stays linear in the number of commits deployed.
    let bad: std::collections::HashMap<String, (String, String)> =
        strings(c, "SELECT id, signature_status, verified_seq FROM commits WHERE signature_status IS NOT 'good'", &[])?
            .into_iter()
            .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone())))
            .collect();
    if !bad.is_empty() {
        let all = super::deployments::load(ledger, "*")?;
        let mut shipped_by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, d) in all.iter().enumerate() {
            if !super::within(&d.time, since, &Timestamp::open_end()) {
                continue;
            }
            let ids = match super::deployments::shipped(repo, &all, i) {
                Some((_, ids)) => ids,
                None => vec![d.sha.clone()],
            };
            for id in ids.into_iter().filter(|id| bad.contains_key(id)) {
                shipped_by.entry(id).or_default().push(i);
            }
        }
        for (id, deps) in shipped_by {
            let (status, seq) = &bad[&id];
            let mut evidence = seqs(seq);
            evidence.extend(deps.iter().map(|&i| all[i].seq));
            let envs: std::collections::BTreeSet<&str> = deps.iter().map(|&i| all[i].environment.as_str()).collect();
            out.push(Finding {
                rule: Rule::CommitsUnsignedDeployed,
                severity: Severity::Error,
                fix: None,
                subject: Some(short_id(&id).to_string()),
                message: format!(
                    "signature {status} but deployed to {} ({} deployment{})",
                    envs.into_iter().collect::<Vec<_>>().join(", "),
                    deps.len(),
                    if deps.len() == 1 { "" } else { "s" }
                ),
                evidence,
            });
        }
    }

    // Force pushes and deletions that got through (warn mode or break glass), and break glass itself.
    let window = Select { since: Some(since), ..Select::default() };
    for e in ledger.events::<PushDecided>(&window)?.into_iter().filter(|e| e.payload.accepted) {
        for u in &e.payload.ref_updates {
            for f in &u.findings {
                let what = match f.rule {
                    Rule::BranchesForcePush => "force-pushed",
                    Rule::BranchesDeletion => "deleted",
                    _ => continue,
                };
                out.push(Finding {
                    rule: f.rule,
                    severity: Severity::Error,
                    fix: None,
                    subject: Some(u.refname.clone()),
                    message: format!("{what} by {}", e.actor),
                    evidence: vec![e.seq],
                });
            }
        }
    }
    for e in ledger.events::<BypassUsed>(&window)? {
        out.push(Finding {
            rule: Rule::BreakglassUsed,
            severity: Severity::Warning,
            fix: None,
            subject: Some(e.subject.clone()),
            message: format!("break glass by {}: \"{}\"", e.actor, e.payload.reason),
            evidence: vec![e.seq],
        });
    }
    for e in ledger.events::<LedgerGap>(&window)? {
        let g = &e.payload;
        out.push(Finding {
            rule: Rule::LedgerGap,
            severity: Severity::Error,
            fix: None,
            subject: Some(format!("{} unrecorded", g.unrecorded)),
            message: format!(
                "{} hook event(s) between {} and {} were decided but could not be recorded in the ledger",
                g.unrecorded, g.first, g.last
            ),
            evidence: vec![e.seq],
        });
    }

    let mut per_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for f in &out {
        *per_rule.entry(f.rule.id()).or_default() += 1;
    }
    let rows = out
        .iter()
        .map(|f| {
            vec![
                f.rule.to_string(),
                match f.severity {
                    Severity::Error => "error".to_string(),
                    Severity::Warning => "warning".to_string(),
                },
                f.subject.clone().unwrap_or_default(),
                f.message.clone(),
                f.evidence.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    let doc = Document {
        title: format!("Compliance findings since {since}"),
        sections: vec![
            Section {
                title: "Findings by rule".into(),
                columns: vec!["rule".into(), "findings".into()],
                rows: per_rule.iter().map(|(r, n)| vec![r.to_string(), n.to_string()]).collect(),
            },
            Section {
                title: "Findings".into(),
                columns: ["rule", "severity", "subject", "message", "evidence (ledger seq)"].iter().map(|s| s.to_string()).collect(),
                rows,
            },
        ],
        charts: vec![("Findings per rule".into(), per_rule.iter().map(|(r, n)| (r.to_string(), *n)).collect())],
        json: json!({"since": since.to_string(), "findings": out, "summary": per_rule}),
    };
    Ok((doc, out))
}
