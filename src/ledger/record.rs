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
