//! The forge kinds (`pr.synced`, `review.synced`, `deployment.synced`,
//! `deployment_status.synced`, `commit_pulls.synced`), typed.
//!
//! These are the ledger's own vocabulary for what a forge knows: a change (a
//! pull or merge request), a review, a deployment, one state a deployment
//! reached, and which changes a landed commit came in. The field names and the
//! spelling of states are those format 1 recorded — GitHub's, as the first
//! forge — and stay fixed, because entries are hashed as written. Each forge's
//! mapping (`forge/github/payload.rs`, later GitLab's and Gitea's) fills these
//! names from its own bodies and keeps anything else it wants as evidence in
//! `raw`; readers use only the typed fields and the state enums below, so no
//! forge's spelling leaks into reports or SQL.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Kind, Login, Payload};

/// The branch end of a change: its name and the commit it pointed at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BranchAt {
    #[serde(rename = "ref")]
    pub name: Option<String>,
    pub sha: Option<String>,
}

/// `pr.synced`: a change (pull request, merge request) as it stood when synced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeSynced {
    pub repository: Option<String>,
    pub number: Option<i64>,
    pub title: Option<String>,
    /// `open` or `closed` (a merged change is closed and `merged`).
    pub state: Option<String>,
    pub draft: Option<bool>,
    pub user: Option<Login>,
    pub merged: Option<bool>,
    pub merged_by: Option<Login>,
    pub merged_at: Option<String>,
    /// The commit that landed the change (merge or squash), null unless merged.
    pub merge_commit_sha: Option<String>,
    pub base: Option<BranchAt>,
    pub head: Option<BranchAt>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub closed_at: Option<String>,
    /// The change's page on the forge.
    pub html_url: Option<String>,
    pub commits: Vec<String>,
    /// True when the forge's commit list stopped at its cap.
    pub commits_capped: bool,
    /// Anything else the forge's mapping kept, as evidence.
    #[serde(flatten)]
    pub raw: BTreeMap<String, Value>,
}

/// What a review concluded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
    Pending,
    /// A state this release does not know, kept as recorded.
    Other(String),
}

impl ReviewState {
    /// As recorded in entries and the `reviews` table.
    pub fn recorded(&self) -> &str {
        match self {
            ReviewState::Approved => "APPROVED",
            ReviewState::ChangesRequested => "CHANGES_REQUESTED",
            ReviewState::Commented => "COMMENTED",
            ReviewState::Dismissed => "DISMISSED",
            ReviewState::Pending => "PENDING",
            ReviewState::Other(s) => s,
        }
    }

    pub fn parse(text: &str) -> ReviewState {
        [ReviewState::Approved, ReviewState::ChangesRequested, ReviewState::Commented, ReviewState::Dismissed, ReviewState::Pending]
            .into_iter()
            .find(|s| s.recorded() == text)
            .unwrap_or_else(|| ReviewState::Other(text.to_string()))
    }
}

/// `review.synced`: one review of a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewSynced {
    pub repository: Option<String>,
    pub pull_number: Option<i64>,
    pub id: Option<i64>,
    pub user: Option<Login>,
    pub state: Option<ReviewState>,
    /// The head the review was given on.
    pub commit_id: Option<String>,
    pub submitted_at: Option<String>,
    pub html_url: Option<String>,
    pub author_association: Option<String>,
    #[serde(flatten)]
    pub raw: BTreeMap<String, Value>,
}

/// `deployment.synced`: a deployment a forge made or was told of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentSynced {
    pub repository: Option<String>,
    pub id: Option<i64>,
    pub sha: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub task: Option<String>,
    pub environment: Option<String>,
    pub original_environment: Option<String>,
    pub description: Option<String>,
    pub creator: Option<Login>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub production_environment: Option<bool>,
    pub transient_environment: Option<bool>,
    #[serde(flatten)]
    pub raw: BTreeMap<String, Value>,
}

/// A state a deployment reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeploymentState {
    Success,
    Failure,
    Error,
    /// Superseded by a later deployment to the same environment: says nothing
    /// of how this one went.
    Inactive,
    InProgress,
    Queued,
    Pending,
    /// Waiting for an approval.
    Waiting,
    /// No state recorded at all.
    Unknown,
    Other(String),
}

impl DeploymentState {
    const NAMED: [DeploymentState; 9] = [
        DeploymentState::Success,
        DeploymentState::Failure,
        DeploymentState::Error,
        DeploymentState::Inactive,
        DeploymentState::InProgress,
        DeploymentState::Queued,
        DeploymentState::Pending,
        DeploymentState::Waiting,
        DeploymentState::Unknown,
    ];

    /// As recorded in entries and the `deployment_statuses` table.
    pub fn recorded(&self) -> &str {
        match self {
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Queued => "queued",
            DeploymentState::Pending => "pending",
            DeploymentState::Waiting => "waiting",
            DeploymentState::Unknown => "unknown",
            DeploymentState::Other(s) => s,
        }
    }

    pub fn parse(text: &str) -> DeploymentState {
        Self::NAMED.into_iter().find(|s| s.recorded() == text).unwrap_or_else(|| DeploymentState::Other(text.to_string()))
    }

    /// The deployment failed (`failure` or `error`).
    pub fn failed(&self) -> bool {
        matches!(self, DeploymentState::Failure | DeploymentState::Error)
    }

    pub fn succeeded(&self) -> bool {
        *self == DeploymentState::Success
    }
}

impl std::fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.recorded())
    }
}

impl std::fmt::Display for ReviewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.recorded())
    }
}

macro_rules! recorded_string {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.recorded())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok(<$ty>::parse(&text))
            }
        }
    )*};
}
recorded_string!(ReviewState, DeploymentState);

/// `deployment_status.synced`: one state a deployment reached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentStatusSynced {
    pub repository: Option<String>,
    pub deployment_id: Option<i64>,
    pub id: Option<i64>,
    pub state: Option<DeploymentState>,
    pub description: Option<String>,
    pub environment: Option<String>,
    pub creator: Option<Login>,
    /// Where the deployment's log is (its CI job).
    pub log_url: Option<String>,
    pub target_url: Option<String>,
    pub environment_url: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    #[serde(flatten)]
    pub raw: BTreeMap<String, Value>,
}

/// `commit_pulls.synced`: the changes a landed commit came in (none: pushed directly).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommitPullsSynced {
    pub repository: Option<String>,
    pub sha: Option<String>,
    pub pulls: Vec<u64>,
    pub direct_push: bool,
    #[serde(flatten)]
    pub raw: BTreeMap<String, Value>,
}

/// The state of one approval of a deployment (`approved` or `rejected`).
pub const APPROVAL_APPROVED: &str = "approved";

payload! {
    ChangeSynced => PrSynced,
    ReviewSynced => ReviewSynced,
    DeploymentSynced => DeploymentSynced,
    DeploymentStatusSynced => DeploymentStatusSynced,
    CommitPullsSynced => CommitPullsSynced,
}

/// A login's text, when there is one.
pub fn login(l: &Option<Login>) -> Option<&str> {
    l.as_ref().and_then(|u| u.login.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_recorded_and_unknown_ones_are_kept() {
        for s in ["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING", "SOMETHING_NEW"] {
            assert_eq!(ReviewState::parse(s).recorded(), s);
        }
        assert_eq!(ReviewState::parse("SOMETHING_NEW"), ReviewState::Other("SOMETHING_NEW".into()));
        for s in ["success", "failure", "error", "inactive", "in_progress", "queued", "pending", "waiting", "unknown", "blocked"] {
            assert_eq!(DeploymentState::parse(s).recorded(), s);
        }
        assert!(DeploymentState::parse("error").failed() && DeploymentState::parse("failure").failed());
        assert!(!DeploymentState::parse("inactive").failed() && !DeploymentState::parse("blocked").succeeded());
        let v: ReviewSynced = serde_json::from_str(r#"{"state":"APPROVED","id":1}"#).unwrap_or_default();
        assert_eq!(v.state, Some(ReviewState::Approved));
        assert_eq!(serde_json::to_value(&v).map(|v| v["state"].clone()).ok(), Some(Value::from("APPROVED")));
    }
}
