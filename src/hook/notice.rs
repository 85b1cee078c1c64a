//! What a push decision tells people: `push.refused`, `bypass.used` and
//! `policy.changed` notices, each reporting the ledger entry that records it.

use super::decide::PushDecision;
use crate::event::Kind;
use crate::git::short_id;
use crate::ledger::NewEntry;
use crate::notify::{body, Notice};
use crate::rule::Severity;

/// A repository's name for messages: `audit.name`, else its folder (`api.git` → `api`).
pub fn repository_name(repo: &crate::git::Repo) -> String {
    if let Some(n) = repo.config_string("audit.name") {
        return n;
    }
    let dir = repo.git_dir();
    let dir = if dir.file_name().is_some_and(|n| n == ".git") { dir.parent().map(|p| p.to_path_buf()).unwrap_or(dir) } else { dir };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.strip_suffix(".git").map(str::to_string).unwrap_or(name)
}

/// The notices for a push decision whose entries are `entries` (as
/// [`super::record::push_decision`] made them).
pub fn push_notices(repository: &str, d: &PushDecision, entries: &[NewEntry]) -> Vec<Notice> {
    let index_of = |kind: Kind| entries.iter().position(|e| e.kind == kind.as_str());
    let pusher = d.pusher.identity.clone().unwrap_or_default();
    let refs: Vec<body::RefNotice> = d
        .refs
        .iter()
        .map(|r| {
            let error = |f: &&crate::rule::Finding| f.severity == Severity::Error;
            let finding = |f: &crate::rule::Finding, commit: Option<&str>| body::RefFinding {
                rule: f.rule.id().to_string(),
                severity: f.severity,
                message: f.message.clone(),
                commit: commit.map(str::to_string),
            };
            let mut findings: Vec<body::RefFinding> = r.findings.iter().filter(error).map(|f| finding(f, None)).collect();
            for c in &r.commits {
                findings.extend(c.findings.iter().filter(error).map(|f| finding(f, Some(&c.id))));
            }
            body::RefNotice {
                refname: r.update.refname.clone(),
                old: r.update.old.clone(),
                new: r.update.new.clone(),
                commits: r.commits.iter().map(|c| c.id.clone()).collect(),
                findings,
            }
        })
        .collect();
    let mut rules: Vec<String> = d
        .refs
        .iter()
        .flat_map(|r| r.findings.iter().chain(r.commits.iter().flat_map(|c| &c.findings)))
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.rule.id().to_string())
        .collect();
    rules.sort();
    rules.dedup();
    let ref_names = d.refs.iter().map(|r| r.update.refname.as_str()).collect::<Vec<_>>().join(", ");
    let push = body::Push {
        pusher: pusher.clone(),
        pusher_source: d.pusher.source.clone(),
        refs,
        rules: rules.clone(),
        reasons: d.reasons.clone(),
        violations: d.error_count(),
        policy_digest: d.policy_digest.clone(),
        reason: None,
        changes: None,
    };
    let data = |summary: String, push: body::Push| body::Data {
        repository: repository.to_string(),
        summary,
        ledger: None,
        detail: body::Detail::Push(push),
    };
    let who = if pusher.is_empty() { "an unknown pusher" } else { pusher.as_str() };
    let mut out = Vec::new();
    if !d.accepted {
        let n = d.error_count();
        let summary = format!(
            "{} refused {who}'s push to {ref_names}: {n} violation{}{}",
            repository,
            if n == 1 { "" } else { "s" },
            if rules.is_empty() { String::new() } else { format!(" ({})", rules.join(", ")) }
        );
        out.extend(index_of(Kind::PushDecided).map(|i| Notice::new("push.refused", data(summary, push.clone())).reporting(i)));
    }
    if let Some(b) = d.bypass.as_ref().filter(|b| b.allowed && d.accepted) {
        let summary = format!(
            "{who} used break glass on {ref_names}, letting {} violation{} through; reason: {}",
            d.error_count(),
            if d.error_count() == 1 { "" } else { "s" },
            if b.reason.is_empty() { "(none given)" } else { &b.reason }
        );
        let push = body::Push { reason: Some(b.reason.clone()), ..push.clone() };
        out.extend(index_of(Kind::BypassUsed).map(|i| Notice::new("bypass.used", data(summary, push)).reporting(i)));
    }
    let changes: Vec<body::PolicyChange> = d
        .refs
        .iter()
        .flat_map(|r| {
            r.policy_changes.iter().map(move |(c, path)| body::PolicyChange {
                refname: r.update.refname.clone(),
                commit: c.clone(),
                path: path.clone(),
            })
        })
        .collect();
    if let Some(first) = changes.first().filter(|_| d.accepted) {
        let summary = format!(
            "{who} changed the policy on {}: {} ({}){}",
            first.refname,
            first.path,
            short_id(&first.commit),
            if changes.len() > 1 { format!(" and {} more commit(s)", changes.len() - 1) } else { String::new() }
        );
        let push = body::Push { changes: Some(changes.clone()), ..push };
        out.extend(index_of(Kind::PushDecided).map(|i| Notice::new("policy.changed", data(summary, push)).reporting(i)));
    }
    out
}

/// The `ledger.gap` notice for a gap marker written at `index`.
pub fn gap_notice(repository: &str, unrecorded: u64, index: usize) -> Notice {
    Notice::new(
        "ledger.gap",
        body::Data {
            repository: repository.to_string(),
            summary: format!("{unrecorded} event(s) in {repository} could not be recorded in the audit ledger when they happened; the ledger now says so"),
            ledger: None,
            detail: body::Detail::Gap(body::Gap { unrecorded }),
        },
    )
    .reporting(index)
}
