//! `report pushes`: every push decision the hooks recorded in a window —
//! accepted and refused, with the rules each refusal broke — and every break
//! glass, with its reason.

use serde_json::json;

use super::{Document, ReportError, Section};
use crate::event::{BypassUsed, CommitVerified, PushDecided};
use crate::ledger::{Ledger, Select};
use crate::time::Timestamp;

/// Which decisions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    Accepted,
    Refused,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Refused => "refused",
        }
    }
}

/// Push decisions in the window, refusals and break glass first in mind.
pub fn pushes(ledger: &Ledger, since: &Timestamp, until: &Timestamp, only: Option<Decision>) -> Result<Document, ReportError> {
    let decided = ledger.events::<PushDecided>(&Select { since: Some(since), ..Select::default() })?;
    let bypasses = ledger.events::<BypassUsed>(&Select { since: Some(since), ..Select::default() })?;
    let within = |t: &str| Timestamp::parse(t).is_ok_and(|t| t < *until);
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    let (mut refused, mut accepted) = (0u64, 0u64);
    let wanted = only.map(|d| d == Decision::Accepted);
    for d in decided.iter().filter(|d| within(&d.time) && wanted.is_none_or(|a| d.payload.accepted == a)) {
        let refs: Vec<&str> = d.payload.ref_updates.iter().map(|r| r.refname.as_str()).collect();
        let pusher = d.payload.pusher.identity.clone().unwrap_or_default();
        let verdict = if d.payload.accepted { "accepted" } else { "refused" };
        if d.payload.accepted {
            accepted += 1;
        } else {
            refused += 1;
        }
        // The rules it was judged under: the refs' own findings, and each pushed
        // commit's (from its commit.verified, the newest for that commit).
        let mut rules = std::collections::BTreeSet::new();
        for r in &d.payload.ref_updates {
            rules.extend(r.findings.iter().map(|f| f.rule.id().to_string()));
            for c in &r.commits {
                let v = ledger.events::<CommitVerified>(&Select { subject: Some(c), newest: Some(1), ..Select::default() })?;
                rules.extend(v.iter().flat_map(|v| v.payload.findings.iter().map(|f| f.rule.id().to_string())));
            }
        }
        let rules: Vec<String> = rules.into_iter().collect();
        rows.push(vec![
            d.time.clone(),
            verdict.to_string(),
            pusher.clone(),
            refs.join(", "),
            d.payload.violations.to_string(),
            if rules.is_empty() { d.payload.reasons.join("; ") } else { rules.join(" ") },
            d.seq.to_string(),
        ]);
        json_rows.push(json!({"time": d.time, "accepted": d.payload.accepted, "pusher": pusher, "refs": refs, "violations": d.payload.violations, "rules": rules, "reasons": d.payload.reasons, "seq": d.seq}));
    }
    let breaks: Vec<Vec<String>> = bypasses
        .iter()
        .filter(|b| within(&b.time))
        .map(|b| vec![b.time.clone(), b.actor.clone(), b.payload.reason.clone(), b.payload.violations.to_string(), b.seq.to_string()])
        .collect();
    let shown = only.map(|d| format!(" ({} only)", d.as_str())).unwrap_or_default();
    Ok(Document {
        title: format!("Push decisions {}{shown}", super::window_text(since, until)),
        sections: vec![
            Section::new("Decisions", &["time", "decision", "pusher", "refs", "violations", "rules", "seq"], rows),
            Section::new("Break glass", &["time", "actor", "reason", "violations", "seq"], breaks.clone()),
        ],
        charts: vec![("Push decisions".into(), vec![("accepted".into(), accepted), ("refused".into(), refused)])],
        series: Vec::new(),
        json: json!({"since": since.to_string(), "until": (!until.is_open_end()).then(|| until.to_string()), "accepted": accepted, "refused": refused,
                     "decisions": json_rows, "break_glass": breaks.len()}),
    })
}
