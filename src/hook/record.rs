//! The hooks' events: what a push decision and an accepted push add to the ledger.

use std::collections::HashSet;

use super::decide::PushDecision;
use super::identity::Pusher;
use super::RefUpdate;
use crate::event::{BypassUsed, Payload, PushDecided, RefDecided, RefUpdated};
use crate::ledger::NewEntry;

/// `commit.verified` for each commit a push brought (once each), `push.decided`,
/// and `bypass.used` when break glass let the push through.
pub fn push_decision(d: &PushDecision) -> Vec<NewEntry> {
    let actor = d.pusher.identity.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for c in d.refs.iter().flat_map(|r| &r.commits) {
        if seen.insert(c.id.as_str()) {
            out.push(c.event(&d.policy_digest).entry(c.id.clone(), actor.clone()));
        }
    }
    let subject = d.refs.iter().map(|r| r.update.refname.as_str()).collect::<Vec<_>>().join(" ");
    let decided = PushDecided {
        ref_updates: d
            .refs
            .iter()
            .map(|r| RefDecided {
                refname: r.update.refname.clone(),
                old: r.update.old.clone(),
                new: r.update.new.clone(),
                errors: r.errors(),
                findings: r.findings.clone(),
                commits: r.commits.iter().map(|c| c.id.clone()).collect(),
                controls: r.controls.clone(),
            })
            .collect(),
        accepted: d.accepted,
        pusher: d.pusher.clone(),
        policy_digest: d.policy_digest.clone(),
        reasons: d.reasons.clone(),
        bypass: d.bypass.clone(),
        violations: d.error_count(),
    };
    out.push(decided.entry(subject.clone(), actor.clone()));
    if let Some(b) = d.bypass.as_ref().filter(|b| b.allowed) {
        let used = BypassUsed {
            reason: b.reason.clone(),
            violations: d.error_count(),
            ref_updates: d.refs.iter().map(|r| r.update.clone()).collect(),
        };
        out.push(used.entry(subject, actor));
    }
    out
}

/// `ref.updated` after a push was accepted (post-receive).
pub fn ref_updated(updates: &[RefUpdate], pusher: &Pusher) -> NewEntry {
    let subject = updates.iter().map(|u| u.refname.as_str()).collect::<Vec<_>>().join(" ");
    RefUpdated { ref_updates: updates.to_vec(), pusher: pusher.clone() }.entry(subject, pusher.identity.clone().unwrap_or_default())
}
