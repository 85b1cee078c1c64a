//! Turning check results into ledger entries.

use serde_json::json;

use super::NewEntry;
use crate::check::RangeReport;
use crate::policy::Policy;

/// `policy.loaded`, then one `commit.verified` per checked commit.
pub fn verification(report: &RangeReport, policy: &Policy, actor: &str) -> Vec<NewEntry> {
    let mut out = vec![NewEntry::new(
        "policy.loaded",
        policy.digest.clone(),
        actor,
        json!({"digest": policy.digest, "path": policy.path.display().to_string()}),
    )];
    for c in &report.commits {
        out.push(NewEntry::new(
            "commit.verified",
            c.id.clone(),
            actor,
            json!({
                "commit": c.id,
                "subject": c.subject,
                "author": c.author,
                "committer": c.committer,
                "policy_digest": policy.digest,
                "verdict": c.verdict,
                "signature": c.signature,
                "findings": c.findings,
                "exempt": c.exempt,
            }),
        ));
    }
    out
}

/// `commit.verified` for each commit a push brought (once each), `push.decided`,
/// and `bypass.used` when break glass let the push through.
pub fn push_decision(d: &crate::hook::decide::PushDecision, policy: &Policy) -> Vec<NewEntry> {
    let actor = d.pusher.identity.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &d.refs {
        let report = RangeReport { commits: r.commits.clone(), summary: Default::default() };
        for e in verification(&report, policy, &actor).into_iter().skip(1) {
            if seen.insert(e.subject.clone()) {
                out.push(e);
            }
        }
    }
    let refs: Vec<serde_json::Value> = d
        .refs
        .iter()
        .map(|r| {
            json!({
                "ref": r.update.refname, "old": r.update.old, "new": r.update.new,
                "errors": r.errors(),
                "findings": r.findings,
                "commits": r.commits.iter().map(|c| &c.id).collect::<Vec<_>>(),
            })
        })
        .collect();
    let subject = d.refs.iter().map(|r| r.update.refname.as_str()).collect::<Vec<_>>().join(" ");
    out.push(NewEntry::new(
        "push.decided",
        subject.clone(),
        actor.clone(),
        json!({
            "ref_updates": refs, "accepted": d.accepted, "pusher": d.pusher, "policy_digest": d.policy_digest,
            "reasons": d.reasons, "bypass": d.bypass, "violations": d.error_count(),
        }),
    ));
    if let Some(b) = d.bypass.as_ref().filter(|b| b.allowed) {
        out.push(NewEntry::new(
            "bypass.used",
            subject,
            actor,
            json!({"reason": b.reason, "violations": d.error_count(), "ref_updates": d.refs.iter().map(|r| &r.update).collect::<Vec<_>>()}),
        ));
    }
    out
}

/// `ref.updated` after a push was accepted (post-receive).
pub fn ref_updated(updates: &[crate::hook::RefUpdate], pusher: &crate::hook::identity::Pusher) -> NewEntry {
    let subject = updates.iter().map(|u| u.refname.as_str()).collect::<Vec<_>>().join(" ");
    NewEntry::new("ref.updated", subject, pusher.identity.clone().unwrap_or_default(), json!({"ref_updates": updates, "pusher": pusher}))
}
