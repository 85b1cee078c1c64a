//! What a push decision tells people: `push.refused`, `bypass.used` and
//! `policy.changed` notices, each reporting the ledger entry that records it.

use serde_json::{json, Value};

use super::decide::PushDecision;
use crate::git::short_id;
use crate::ledger::event::Kind;
use crate::ledger::NewEntry;
use crate::notify::Notice;
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
    let refs: Vec<Value> = d
        .refs
        .iter()
        .map(|r| {
            let mut findings: Vec<Value> = r
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| json!({"rule": f.rule.id(), "severity": f.severity, "message": f.message}))
                .collect();
            for c in &r.commits {
                findings.extend(
                    c.findings
                        .iter()
                        .filter(|f| f.severity == Severity::Error)
                        .map(|f| json!({"rule": f.rule.id(), "severity": f.severity, "message": f.message, "commit": c.id})),
                );
            }
            json!({
                "ref": r.update.refname,
                "old": r.update.old,
                "new": r.update.new,
                "commits": r.commits.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
                "findings": findings,
            })
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
    let base = |summary: String| {
        json!({
            "repository": repository,
            "pusher": pusher,
            "pusher_source": d.pusher.source,
            "refs": refs,
            "rules": rules,
            "reasons": d.reasons,
            "violations": d.error_count(),
            "policy_digest": d.policy_digest,
            "summary": summary,
        })
    };
    let mut out = Vec::new();
    if !d.accepted {
        let n = d.error_count();
        let summary = format!(
            "{} refused {}'s push to {ref_names}: {n} violation{}{}",
            repository,
            if pusher.is_empty() { "an unknown pusher" } else { &pusher },
            if n == 1 { "" } else { "s" },
            if rules.is_empty() { String::new() } else { format!(" ({})", rules.join(", ")) }
        );
        out.extend(index_of(Kind::PushDecided).map(|i| Notice::new("push.refused", base(summary)).reporting(i)));
    }
    if let Some(b) = d.bypass.as_ref().filter(|b| b.allowed && d.accepted) {
        let summary = format!(
            "{} used break glass on {ref_names}, letting {} violation{} through; reason: {}",
            if pusher.is_empty() { "an unknown pusher" } else { &pusher },
            d.error_count(),
            if d.error_count() == 1 { "" } else { "s" },
            if b.reason.is_empty() { "(none given)" } else { &b.reason }
        );
        let mut data = base(summary);
        data["reason"] = json!(b.reason);
        out.extend(index_of(Kind::BypassUsed).map(|i| Notice::new("bypass.used", data).reporting(i)));
    }
    let changes: Vec<Value> = d
        .refs
        .iter()
        .flat_map(|r| r.policy_changes.iter().map(move |(c, path)| json!({"ref": r.update.refname, "commit": c, "path": path})))
        .collect();
    if d.accepted && !changes.is_empty() {
        let first = &changes[0];
        let summary = format!(
            "{} changed the policy on {}: {} ({}){}",
            if pusher.is_empty() { "an unknown pusher" } else { &pusher },
            first["ref"].as_str().unwrap_or_default(),
            first["path"].as_str().unwrap_or_default(),
            short_id(first["commit"].as_str().unwrap_or_default()),
            if changes.len() > 1 { format!(" and {} more commit(s)", changes.len() - 1) } else { String::new() }
        );
        let mut data = base(summary);
        data["changes"] = Value::Array(changes);
        out.extend(index_of(Kind::PushDecided).map(|i| Notice::new("policy.changed", data).reporting(i)));
    }
    out
}

/// The `ledger.gap` notice for a gap marker written at `index`.
pub fn gap_notice(repository: &str, unrecorded: u64, index: usize) -> Notice {
    Notice::new(
        "ledger.gap",
        json!({
            "repository": repository,
            "unrecorded": unrecorded,
            "summary": format!("{unrecorded} event(s) in {repository} could not be recorded in the audit ledger when they happened; the ledger now says so"),
        }),
    )
    .reporting(index)
}
