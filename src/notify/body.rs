//! The webhook body's schema, as types. A receiver gets (Standard Webhooks)
//! `{"type": "...", "timestamp": "...", "data": {...}}`; `data` always has
//! `repository` and `summary`, `ledger` when the notice reports an entry, and
//! the fields of its family:
//!
//! | `type` | family | fields |
//! |---|---|---|
//! | `push.refused`, `bypass.used`, `policy.changed` | [`Push`] | `pusher`, `pusher_source`, `refs[]`, `rules`, `reasons`, `violations`, `policy_digest`; `reason` (break glass), `changes[]` (policy) |
//! | `finding.<rule id>`, `anomaly.<kind>` | [`FindingData`] | `rules`, `severity`, `answer` (`violation`, `could not verify` or `anomaly`), `subject`, `message`, `evidence` |
//! | `deployment.failed` | [`DeploymentFailed`] | `environment`, `sha`, `status`, `actor`, `url`, `source` |
//! | `ledger.gap` | [`Gap`] | `unrecorded` |
//! | `ledger.verify-failed` | [`VerifyFailed`] | `ledger_path`, `ledger_origin`, `problems[]` |
//! | `notify.test` | [`SinkTest`] | `sink` |
//! | `digest` | [`Digest`] | `since`, `until`, `counts`, `lines`, `checkpoint` |
//!
//! Producers build these types, never loose JSON, so a field the Slack or
//! Teams form reads cannot silently go missing; `tests` decode every family
//! back with [`Body::family_matches`].

use serde::{Deserialize, Serialize};

use crate::rule::Severity;

/// One webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub data: Data,
}

/// What every notice carries, and its family's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Data {
    /// `owner/name` (empty when not known).
    pub repository: String,
    /// One sentence a person reads first.
    pub summary: String,
    /// The ledger entry it reports, when it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerRef>,
    #[serde(flatten)]
    pub detail: Detail,
}

/// Where in the ledger the reported entry is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRef {
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// The signed checkpoint that covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// The fields of each family (see the table above). Decoded by shape; every
/// family has fields the others lack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detail {
    Push(Push),
    Finding(FindingData),
    DeploymentFailed(DeploymentFailed),
    Gap(Gap),
    VerifyFailed(VerifyFailed),
    SinkTest(SinkTest),
    Digest(Digest),
}

/// A review digest over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    pub since: String,
    pub until: Option<String>,
    /// `deployments`, `failed`, `refused_pushes`, `break_glass`, `violations`,
    /// `could_not_verify`, `anomalies`.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The first failures, refusals, break glass and anomalies, one line each.
    pub lines: Vec<String>,
    /// The checkpoint it was computed from: `origin`, `tree_size`, `root` (hex).
    pub checkpoint: DigestCheckpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestCheckpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root: String,
}

/// A push the server hook decided on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub pusher: String,
    pub pusher_source: Option<String>,
    pub refs: Vec<RefNotice>,
    /// The rule ids of the errors, sorted, once each.
    pub rules: Vec<String>,
    pub reasons: Vec<String>,
    pub violations: usize,
    pub policy_digest: String,
    /// The break-glass reason (`bypass.used`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The policy files changed, per commit (`policy.changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<PolicyChange>>,
}

/// One ref of a push, and its errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefNotice {
    #[serde(rename = "ref")]
    pub refname: String,
    pub old: String,
    pub new: String,
    pub commits: Vec<String>,
    pub findings: Vec<RefFinding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefFinding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// The commit it is about (absent for a ref-level finding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyChange {
    #[serde(rename = "ref")]
    pub refname: String,
    pub commit: String,
    pub path: String,
}

/// A compliance finding, new since the last pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingData {
    pub rules: Vec<String>,
    pub severity: Severity,
    /// `violation`, `could not verify`, or `anomaly`.
    pub answer: String,
    pub subject: Option<String>,
    pub message: String,
    /// The ledger entries it rests on.
    pub evidence: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentFailed {
    pub environment: String,
    pub sha: String,
    /// `failure` or `error`.
    pub status: String,
    pub actor: Option<String>,
    /// Its page (the CI job, the run).
    pub url: Option<String>,
    /// Where it was recorded from (`github`, `gitlab-ci` …).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// Events that happened but could not be recorded then.
    pub unrecorded: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyFailed {
    pub ledger_path: String,
    pub ledger_origin: String,
    pub problems: Vec<VerifyProblem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyProblem {
    pub seq: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkTest {
    pub sink: String,
}

impl Body {
    /// True when `data` is of the family its `type` names.
    pub fn family_matches(&self) -> bool {
        match (&self.data.detail, self.kind.as_str()) {
            (Detail::Push(_), "push.refused" | "bypass.used" | "policy.changed") => true,
            (Detail::Finding(_), k) => k.starts_with("finding.") || k.starts_with("anomaly."),
            (Detail::DeploymentFailed(_), "deployment.failed") => true,
            (Detail::Gap(_), "ledger.gap") => true,
            (Detail::VerifyFailed(_), "ledger.verify-failed") => true,
            (Detail::SinkTest(_), "notify.test") => true,
            (Detail::Digest(_), "digest") => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kind: &str, detail: Detail) {
        let body = Body {
            kind: kind.into(),
            timestamp: "2026-07-02T02:10:00.000Z".into(),
            data: Data { repository: "acme/api".into(), summary: "s".into(), ledger: None, detail },
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let back: Option<Body> = serde_json::from_str(&text).ok();
        assert_eq!(back.as_ref(), Some(&body), "{text}");
        assert!(back.is_some_and(|b| b.family_matches()), "{text}");
    }

    #[test]
    fn every_family_reads_back_as_itself() {
        let push = Push {
            pusher: "mallory".into(),
            pusher_source: None,
            refs: vec![RefNotice {
                refname: "refs/heads/main".into(),
                old: "a".into(),
                new: "b".into(),
                commits: vec!["b".into()],
                findings: vec![RefFinding {
                    rule: "sig.unsigned".into(),
                    severity: Severity::Error,
                    message: "m".into(),
                    commit: Some("b".into()),
                }],
            }],
            rules: vec!["sig.unsigned".into()],
            reasons: vec![],
            violations: 1,
            policy_digest: "d".into(),
            reason: Some("outage".into()),
            changes: None,
        };
        round_trip("bypass.used", Detail::Push(push));
        let finding = FindingData {
            rules: vec!["pr.no-approval".into()],
            severity: Severity::Error,
            answer: "violation".into(),
            subject: Some("acme/api#4".into()),
            message: "m".into(),
            evidence: vec![3],
        };
        round_trip("finding.pr.no-approval", Detail::Finding(finding));
        let failed = DeploymentFailed {
            environment: "production".into(),
            sha: "abc".into(),
            status: "failure".into(),
            actor: None,
            url: None,
            source: "github".into(),
        };
        round_trip("deployment.failed", Detail::DeploymentFailed(failed));
        round_trip("ledger.gap", Detail::Gap(Gap { unrecorded: 2 }));
        let problems = vec![VerifyProblem { seq: None, message: "m".into() }];
        round_trip(
            "ledger.verify-failed",
            Detail::VerifyFailed(VerifyFailed { ledger_path: "p".into(), ledger_origin: "o".into(), problems }),
        );
        round_trip("notify.test", Detail::SinkTest(SinkTest { sink: "ops".into() }));
        let digest = Digest {
            since: "2026-11-23T00:00:00Z".into(),
            until: Some("2026-11-30T00:00:00Z".into()),
            counts: [("deployments".to_string(), 3u64)].into_iter().collect(),
            lines: vec!["refused: mallory (signing.required)".into()],
            checkpoint: DigestCheckpoint { origin: "git-audit/x".into(), tree_size: 9, root: "ab".into() },
        };
        round_trip("digest", Detail::Digest(digest));
        // A body of one family under another family's type is caught.
        let wrong = Body {
            kind: "deployment.failed".into(),
            timestamp: "t".into(),
            data: Data { repository: "r".into(), summary: "s".into(), ledger: None, detail: Detail::Gap(Gap { unrecorded: 1 }) },
        };
        assert!(!wrong.family_matches());
    }
}
