//! The event vocabulary: every kind of entry git-audit writes, and a serde
//! payload struct for each. Producers (check, hook, forge) build these structs
//! and hand them to the ledger as [`NewEntry`]s; projections and reports read
//! them back into the same structs. Nothing outside this module spells a kind or
//! a payload field as a string, so adding or renaming a field is a
//! compile-checked change everywhere.
//!
//! This module is plain data: it knows rules, signature verdicts and git ref
//! updates, never the code that produces or consumes events. The payload shapes
//! are exactly those earlier releases wrote with `json!`, so old entries decode
//! into the same structs and new entries hash as they always did.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::git::RefUpdate;
use crate::rule::{CommitVerdict, Finding};
use crate::signature::Verdict;

/// An entry to append (seq and time are assigned by the ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub payload: Value,
}

impl NewEntry {
    pub fn new(kind: &str, subject: impl Into<String>, actor: impl Into<String>, payload: Value) -> NewEntry {
        NewEntry { kind: kind.to_string(), subject: subject.into(), actor: actor.into(), payload }
    }
}

macro_rules! kinds {
    ($($variant:ident = $text:literal,)*) => {
        /// Every kind of entry git-audit itself writes (`ledger append` may add others).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $($variant),* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The kind as stored in the `kind` column.
            pub const fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $text),* }
            }
        }
    };
}

kinds! {
    PolicyLoaded = "policy.loaded",
    CommitVerified = "commit.verified",
    PushDecided = "push.decided",
    BypassUsed = "bypass.used",
    RefUpdated = "ref.updated",
    LedgerGap = "ledger.gap",
    LedgerAnchored = "ledger.anchored",
    PrSynced = "pr.synced",
    ReviewSynced = "review.synced",
    DeploymentSynced = "deployment.synced",
    DeploymentStatusSynced = "deployment_status.synced",
    DeploymentApprovalSynced = "deployment_approval.synced",
    CommitPullsSynced = "commit_pulls.synced",
    DeploymentRecorded = "deployment.recorded",
    WorkflowRunSynced = "workflow_run.synced",
    EnvironmentSynced = "environment.synced",
    TeamSynced = "team.synced",
    PrFilesSynced = "pr_files.synced",
    LedgerWriter = "ledger.writer",
    ForgeAuditSynced = "forge_audit.synced",
    AttestationIssued = "attestation.issued",
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed payload: its kind, and how it becomes an entry and is read back.
/// Entries appended by scripts (`ledger append`) may carry only some fields, so
/// the structs readers meet that way take defaults for what is missing.
pub trait Payload: Serialize + DeserializeOwned {
    const KIND: Kind;

    /// The entry to append.
    fn entry(&self, subject: impl Into<String>, actor: impl Into<String>) -> NewEntry {
        // Serialising plain structs of strings, numbers and lists cannot fail.
        let payload = serde_json::to_value(self).unwrap_or(Value::Null);
        NewEntry::new(Self::KIND.as_str(), subject, actor, payload)
    }

    /// This payload from a stored entry's kind and JSON text; `None` for another
    /// kind or a payload of another shape.
    fn decode(kind: &str, payload: &str) -> Option<Self> {
        if kind != Self::KIND.as_str() {
            return None;
        }
        serde_json::from_str(payload).ok()
    }
}

macro_rules! payload {
    ($($ty:ty => $kind:ident),* $(,)?) => {
        $(impl Payload for $ty { const KIND: Kind = Kind::$kind; })*
    };
}

mod synced;
pub use synced::*;

/// `policy.loaded`: the policy a verification ran under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyLoaded {
    pub digest: String,
    pub path: String,
}

/// `commit.verified`: everything the checks concluded about one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitVerified {
    pub commit: String,
    pub subject: String,
    pub author: Option<String>,
    pub committer: Option<String>,
    pub policy_digest: String,
    pub verdict: CommitVerdict,
    pub signature: Verdict,
    pub findings: Vec<Finding>,
    pub exempt: Option<String>,
}

/// Who pushed, and where the identity came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pusher {
    pub identity: Option<String>,
    pub source: Option<String>,
    /// Set when a push certificate came with the push and verified.
    pub certificate_key: Option<String>,
}

/// A break-glass request (`-o audit.bypass=<reason>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bypass {
    pub reason: String,
    pub allowed: bool,
}

/// One ref update as decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefDecided {
    #[serde(rename = "ref")]
    pub refname: String,
    pub old: String,
    pub new: String,
    /// Findings that count as errors, on the ref and on its commits.
    pub errors: usize,
    /// Ref-level findings (force push, deletion, pusher, tags …).
    pub findings: Vec<Finding>,
    /// The commits this update brought, each with its own `commit.verified`.
    pub commits: Vec<String>,
    /// The source controls the policy enforced on the ref when it was decided
    /// (`CONTINUITY_ENFORCED`, `TAG_HYGIENE`, `SIGNED_COMMITS`,
    /// `POLICY_GOVERNED`); absent in entries written before they were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
}

/// `push.decided`: the decision on a whole push.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushDecided {
    pub ref_updates: Vec<RefDecided>,
    pub accepted: bool,
    pub pusher: Pusher,
    pub policy_digest: String,
    pub reasons: Vec<String>,
    pub bypass: Option<Bypass>,
    pub violations: usize,
}

/// `bypass.used`: break glass let a push through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BypassUsed {
    pub reason: String,
    pub violations: usize,
    pub ref_updates: Vec<RefUpdate>,
}

/// `ref.updated`: what an accepted push changed (post-receive).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefUpdated {
    pub ref_updates: Vec<RefUpdate>,
    pub pusher: Pusher,
}

/// One hook event that could not be recorded: what the hook decided, in short.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unrecorded {
    /// `pre-receive` or `post-receive`.
    pub hook: String,
    pub refs: Vec<RefUpdate>,
    /// The decision (pre-receive only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    pub pusher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_digest: Option<String>,
}

/// An [`Unrecorded`] event as spooled, with when it happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Spooled {
    pub time: String,
    pub event: Unrecorded,
}

/// `ledger.gap`: hook events that were decided but could not be recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerGap {
    pub unrecorded: u64,
    pub first: String,
    pub last: String,
    pub events: Vec<Spooled>,
}

/// `ledger.anchored`: a checkpoint committed to `refs/audit/checkpoints`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerAnchored {
    pub size: u64,
    pub commit: String,
    /// Base64 root hash of the anchored checkpoint.
    pub root: String,
}

/// A GitHub user as recorded (its login).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Login {
    pub login: Option<String>,
}

/// One review of a workflow run's deployment (`approved` or `rejected`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionsApproval {
    pub state: Option<String>,
    pub comment: Option<String>,
    pub user: Option<Login>,
    pub environments: Option<Vec<Value>>,
}

/// `deployment_approval.synced`: the reviews of the workflow run that made a deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentApprovalSynced {
    pub repository: String,
    pub run_id: u64,
    pub deployment_id: i64,
    pub approvals: Vec<ActionsApproval>,
    /// GitHub answered 404 for the run's approvals (garbage-collected): unknown, not none.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

/// `workflow_run.synced`: the Actions run that made a deployment — who started
/// it (`actor`) and who triggered this attempt (`triggering_actor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowRunSynced {
    pub repository: String,
    pub deployment_id: i64,
    pub id: u64,
    pub name: Option<String>,
    pub event: Option<String>,
    pub head_branch: Option<String>,
    pub head_sha: Option<String>,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    pub html_url: Option<String>,
    pub run_attempt: Option<u64>,
    pub created_at: Option<String>,
    pub actor: Option<Login>,
    pub triggering_actor: Option<Login>,
}

/// `environment.synced`: a snapshot of an environment's protection, recorded
/// whenever it differs from the last one (the environment's change record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvironmentSynced {
    pub repository: String,
    pub name: String,
    pub can_admins_bypass: Option<bool>,
    /// GitHub's rules, without ids: `required_reviewers` (reviewers, prevent_self_review),
    /// `wait_timer`, `branch_policy`.
    pub protection_rules: Vec<Value>,
    pub deployment_branch_policy: Value,
    /// With custom branch policies: their names (`main`, `release/*`), sorted.
    pub branch_policies: Vec<String>,
}

/// An environment's protection, read from its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// Reviewers are required (any one of `reviewers` may approve).
    pub reviewers_required: bool,
    pub reviewers: Vec<String>,
    pub prevent_self_review: bool,
    /// How many approvals a deployment needs (GitHub: one, when reviewers are required).
    pub required_approvals: u64,
    /// Who may deploy, where the forge says (GitLab's deploy access levels); `None`: not said.
    pub deployers: Option<Vec<String>>,
    pub wait_minutes: u64,
    /// `None`: any branch may deploy; else the branches that may (`protected
    /// branches` for "protected branches only").
    pub branches: Option<Vec<String>>,
    pub admins_bypass: bool,
}

impl Protection {
    /// How `self` is weaker than `before`, in words (empty: not weaker).
    pub fn weakened_from(&self, before: &Protection) -> Vec<String> {
        let mut out = Vec::new();
        if before.reviewers_required && !self.reviewers_required {
            out.push("required reviewers removed".to_string());
        } else if self.reviewers_required {
            let added: Vec<&str> = self.reviewers.iter().filter(|r| !before.reviewers.contains(r)).map(String::as_str).collect();
            if !added.is_empty() && before.reviewers_required {
                out.push(format!("may now approve: {}", added.join(", ")));
            }
        }
        if self.reviewers_required && before.reviewers_required && self.required_approvals < before.required_approvals {
            out.push(format!("required approvals lowered from {} to {}", before.required_approvals, self.required_approvals));
        }
        if let (Some(b), Some(n)) = (&before.deployers, &self.deployers) {
            let added: Vec<&str> = n.iter().filter(|x| !b.contains(x)).map(String::as_str).collect();
            if !added.is_empty() {
                out.push(format!("may now deploy: {}", added.join(", ")));
            }
        }
        if before.prevent_self_review && !self.prevent_self_review && self.reviewers_required {
            out.push("self-review now allowed".to_string());
        }
        if self.wait_minutes < before.wait_minutes {
            out.push(format!("wait timer lowered from {} to {} min", before.wait_minutes, self.wait_minutes));
        }
        match (&before.branches, &self.branches) {
            (Some(_), None) => out.push("any branch may now deploy".to_string()),
            (Some(b), Some(n)) => {
                let added: Vec<&str> = n.iter().filter(|x| !b.contains(x)).map(String::as_str).collect();
                if !added.is_empty() {
                    out.push(format!("branches added: {}", added.join(", ")));
                }
            }
            _ => {}
        }
        if self.admins_bypass && !before.admins_bypass {
            out.push("admins may now bypass".to_string());
        }
        out
    }
}

/// A reviewer (or deployer) of an environment rule as recorded: a login,
/// `team:SLUG` (GitHub), `group:PATH` (GitLab) or a GitLab role.
fn reviewer_name(x: &Value) -> String {
    let r = &x["reviewer"];
    match (r["login"].as_str(), r["slug"].as_str(), r["group"].as_str(), r["role"].as_str()) {
        (Some(l), ..) => l.to_string(),
        (None, Some(s), ..) => format!("team:{s}"),
        (None, None, Some(g), _) => format!("group:{g}"),
        (None, None, None, Some(role)) => format!("role:{role}"),
        _ => "?".into(),
    }
}

impl EnvironmentSynced {
    /// The protection as recorded, typed.
    pub fn protection(&self) -> Protection {
        let mut p = Protection { admins_bypass: self.can_admins_bypass == Some(true), ..Protection::default() };
        for r in &self.protection_rules {
            match r["type"].as_str() {
                Some("required_reviewers") => {
                    p.reviewers_required = true;
                    p.prevent_self_review = r["prevent_self_review"] == true;
                    p.required_approvals = r["required_approvals"].as_u64().unwrap_or(1);
                    p.reviewers = r["reviewers"].as_array().into_iter().flatten().map(reviewer_name).collect();
                }
                Some("deployers") => p.deployers = Some(r["deployers"].as_array().into_iter().flatten().map(reviewer_name).collect()),
                Some("wait_timer") => p.wait_minutes = r["wait_timer"].as_u64().unwrap_or(0),
                _ => {}
            }
        }
        let b = &self.deployment_branch_policy;
        p.branches = match (b["protected_branches"].as_bool(), b["custom_branch_policies"].as_bool()) {
            (Some(true), _) => Some(vec!["protected branches".into()]),
            (_, Some(true)) => Some(self.branch_policies.clone()),
            _ => None,
        };
        p
    }

    /// The protection in words: reviewers, wait, branches, bypass.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for r in &self.protection_rules {
            match r["type"].as_str() {
                Some("required_reviewers") => {
                    let who: Vec<String> = r["reviewers"].as_array().into_iter().flatten().map(reviewer_name).collect();
                    let self_review = if r["prevent_self_review"] == true { ", no self-review" } else { "" };
                    let count = match r["required_approvals"].as_u64() {
                        Some(n) if n > 1 => format!(" ({n} approvals)"),
                        _ => String::new(),
                    };
                    parts.push(format!("reviewers {}{count}{self_review}", if who.is_empty() { "none".into() } else { who.join(", ") }));
                }
                Some("deployers") => {
                    let who: Vec<String> = r["deployers"].as_array().into_iter().flatten().map(reviewer_name).collect();
                    parts.push(format!("deployers {}", if who.is_empty() { "maintainers".into() } else { who.join(", ") }));
                }
                Some("wait_timer") => parts.push(format!("wait {} min", r["wait_timer"].as_u64().unwrap_or(0))),
                Some(other) => parts.push(other.replace('_', " ")),
                None => {}
            }
        }
        let b = &self.deployment_branch_policy;
        parts.push(match (b["protected_branches"].as_bool(), b["custom_branch_policies"].as_bool()) {
            (Some(true), _) => "protected branches only".into(),
            (_, Some(true)) if self.branch_policies.is_empty() => "custom branch policies".into(),
            (_, Some(true)) => format!("branches {}", self.branch_policies.join(", ")),
            _ => "any branch".into(),
        });
        if self.can_admins_bypass == Some(true) {
            parts.push("admins may bypass".into());
        }
        parts.join("; ")
    }
}

/// `forge_audit.synced`: one entry of a forge's own audit log of settings
/// changes (GitLab's project audit events): who changed what, when, from what
/// to what, as the forge recorded it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForgeAuditSynced {
    pub repository: String,
    /// `gitlab`.
    pub forge: String,
    pub id: i64,
    /// The username of who made the change (else the name the forge gave).
    pub author: Option<String>,
    pub created_at: Option<String>,
    /// What changed, in the forge's words (`change`, else its `custom_message`).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_details: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The forge's `details` as it gave them.
    pub details: Value,
}

impl ForgeAuditSynced {
    /// The change in words: `alice: changed required approvals from 2 to 1 (production)`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {}", self.author.as_deref().unwrap_or("someone"), self.action.as_deref().unwrap_or("a change"));
        match (self.from.as_deref().filter(|f| !f.is_empty()), self.to.as_deref().filter(|t| !t.is_empty())) {
            (Some(f), Some(t)) => s.push_str(&format!(" from {f} to {t}")),
            (None, Some(t)) => s.push_str(&format!(" to {t}")),
            _ => {}
        }
        if let Some(t) = self.target_details.as_deref().filter(|t| !t.is_empty()) {
            s.push_str(&format!(" ({t})"));
        }
        s
    }

    /// Whether it concerns environment `name` (names it, or targets an environment).
    pub fn concerns_environment(&self, name: &str) -> bool {
        let said = |v: &Option<String>| v.as_deref().is_some_and(|t| t.contains(name));
        said(&self.target_details)
            || said(&self.action)
            || self.target_type.as_deref().is_some_and(|t| t.contains("Environment"))
            || self.details.to_string().contains(&format!("\"{name}\""))
    }
}

/// `attestation.issued`: a SLSA source attestation the server issued for a
/// revision on a ref — the level, the controls and since when they held, and
/// the signed envelopes themselves (source provenance, then the VSA), so an
/// attestation cannot be withdrawn quietly: a later one adds, never replaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttestationIssued {
    pub commit: String,
    #[serde(rename = "ref")]
    pub refname: String,
    pub level: u8,
    pub verified_levels: Vec<String>,
    /// `[{name, since}]`.
    pub controls: Vec<Value>,
    /// DSSE envelopes: the source provenance statement, then the VSA.
    pub envelopes: Vec<Value>,
}

/// `team.synced`: a team's members (logins, sorted), recorded whenever they change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TeamSynced {
    pub org: String,
    pub slug: String,
    pub members: Vec<String>,
}

impl TeamSynced {
    /// The subject its entries are recorded under (`team:ORG/SLUG`; a GitLab
    /// group, whose `org` is empty and `slug` its full path: `group:PATH`).
    pub fn subject(org: &str, slug: &str) -> String {
        if org.is_empty() {
            format!("group:{slug}")
        } else {
            format!("team:{org}/{slug}")
        }
    }

    /// A GitLab group's members (`group:PATH` in a policy).
    pub fn group(path: &str, members: Vec<String>) -> TeamSynced {
        TeamSynced { org: String::new(), slug: path.to_string(), members }
    }

    pub fn subject_of(&self) -> String {
        Self::subject(&self.org, &self.slug)
    }
}

/// `pr_files.synced`: the files a merged pull request changed
/// (`GET /repos/R/pulls/N/files`), for path rules and CODEOWNERS at review time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrFilesSynced {
    pub repository: String,
    pub number: u64,
    /// The head the list is for.
    pub head_sha: String,
    /// Every path the pull request touches: each file's name, and a renamed
    /// file's previous name too. Sorted, once each.
    pub files: Vec<String>,
    /// True when GitHub's list stopped at its 3,000-file cap: files past it are unknown.
    pub capped: bool,
}

/// GitHub lists at most this many files of a pull request.
pub const PR_FILES_CAP: usize = 3000;

/// The state a recorded deployment reached (GitHub's deployment states that
/// other CI/CD systems also have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    Success,
    Failure,
    Error,
    InProgress,
}

impl DeployStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Success => "success",
            DeployStatus::Failure => "failure",
            DeployStatus::Error => "error",
            DeployStatus::InProgress => "in_progress",
        }
    }
}

/// `deployment.recorded`: a deployment reported by any CI/CD system through
/// `git-audit record deployment` — distinct from GitHub-synced deployments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecorded {
    /// Where it was recorded from: `github-actions`, `gitea-actions`,
    /// `forgejo-actions`, `gitlab-ci`, `jenkins`, `circleci`, `buildkite`, or `manual`.
    pub source: String,
    /// `owner/name`, when known.
    pub repository: String,
    pub environment: String,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub status: DeployStatus,
    /// Who deployed (the CI's triggering user, or --actor).
    pub actor: Option<String>,
    /// The CI run or job.
    pub url: Option<String>,
    pub approved_by: Vec<String>,
    /// The CI's own id for this deployment (--id): records with the same id are
    /// one deployment moving through its states.
    pub external_id: Option<String>,
    /// The id the deployment has in the projections: negative, so it never
    /// meets a GitHub deployment id.
    pub deployment_id: i64,
    /// Present when the CI's OIDC ID token attested it (see [`crate::attest`]);
    /// absent, its facts are what the recording job asserted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<crate::attest::Attestation>,
}

payload! {
    PolicyLoaded => PolicyLoaded,
    CommitVerified => CommitVerified,
    PushDecided => PushDecided,
    BypassUsed => BypassUsed,
    RefUpdated => RefUpdated,
    LedgerGap => LedgerGap,
    LedgerAnchored => LedgerAnchored,
    DeploymentRecorded => DeploymentRecorded,
    DeploymentApprovalSynced => DeploymentApprovalSynced,
    WorkflowRunSynced => WorkflowRunSynced,
    EnvironmentSynced => EnvironmentSynced,
    TeamSynced => TeamSynced,
    PrFilesSynced => PrFilesSynced,
    WriterChanged => LedgerWriter,
    ForgeAuditSynced => ForgeAuditSynced,
    AttestationIssued => AttestationIssued,
}

/// In a writer's kinds: any kind outside git-audit's own vocabulary.
pub const OTHER_KINDS: &str = "other";

/// `ledger.writer`: who may append, with which key and kinds (see [`super::writers`]).
/// What a writer is for; each role has its kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A git server's hooks (`install --server`): pushes, refs, verified commits.
    Hooks,
    /// A forge sync job (`git-audit sync`): pull requests, reviews, deployments.
    Sync,
    /// A CI job that records deployments (`record deployment`).
    Ci,
    /// A person or script using `ledger append`: kinds outside the built-in vocabulary.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hooks => "hooks",
            Role::Sync => "sync",
            Role::Ci => "ci",
            Role::Operator => "operator",
        }
    }

    /// The kinds a writer of this role may append. Every role may note a gap
    /// or an anchor (facts about the ledger itself).
    pub fn kinds(self) -> Vec<String> {
        let own: &[Kind] = match self {
            Role::Hooks => {
                &[Kind::PolicyLoaded, Kind::CommitVerified, Kind::PushDecided, Kind::BypassUsed, Kind::RefUpdated, Kind::AttestationIssued]
            }
            Role::Sync => &[
                Kind::PrSynced,
                Kind::ReviewSynced,
                Kind::DeploymentSynced,
                Kind::DeploymentStatusSynced,
                Kind::DeploymentApprovalSynced,
                Kind::CommitPullsSynced,
                Kind::WorkflowRunSynced,
                Kind::EnvironmentSynced,
                Kind::TeamSynced,
                Kind::PrFilesSynced,
                Kind::ForgeAuditSynced,
            ],
            Role::Ci => &[Kind::DeploymentRecorded],
            Role::Operator => &[],
        };
        let mut kinds: Vec<String> = own.iter().map(|k| k.as_str().to_string()).collect();
        kinds.extend([Kind::LedgerGap.as_str().to_string(), Kind::LedgerAnchored.as_str().to_string()]);
        if self == Role::Operator {
            kinds.push(OTHER_KINDS.to_string());
        }
        kinds
    }
}

/// `ledger.writer`: a writer added or revoked (signed by the owner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterChanged {
    /// `add` or `revoke`.
    pub action: String,
    pub name: String,
    pub role: Option<Role>,
    /// The writer's verifier key (`name+hexid+base64`).
    pub key: String,
    pub kinds: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Borrowed views of the fields projections read, for speed on a replay of
/// millions of entries: parsing into these skips everything else (far cheaper
/// than the full structs above, or a JSON tree). Same field names, same shapes.
pub mod view {
    use std::borrow::Cow;

    use serde::de::IgnoredAny;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Signature<'a> {
        #[serde(borrow)]
        pub status: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub format: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub signer: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub key: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct CommitVerified<'a> {
        #[serde(borrow)]
        pub signature: Option<Signature<'a>>,
        #[serde(borrow)]
        pub verdict: Option<Cow<'a, str>>,
        pub findings: Option<Vec<IgnoredAny>>,
        #[serde(borrow)]
        pub policy_digest: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct RefUpdate<'a> {
        #[serde(borrow, rename = "ref")]
        pub refname: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub old: Option<Cow<'a, str>>,
        #[serde(borrow)]
        pub new: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct RefUpdates<'a> {
        #[serde(borrow, default)]
        pub ref_updates: Vec<RefUpdate<'a>>,
        pub accepted: Option<bool>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new kind must say who writes it: every kind but the owner's
    /// `ledger.writer` (and gap and anchor markers, which every writer may
    /// write) belongs to exactly one role.
    #[test]
    fn every_kind_has_exactly_one_writer_role() {
        for k in Kind::ALL.iter().filter(|k| !matches!(k, Kind::LedgerWriter | Kind::LedgerGap | Kind::LedgerAnchored)) {
            let roles: Vec<Role> = [Role::Hooks, Role::Sync, Role::Ci, Role::Operator]
                .into_iter()
                .filter(|r| r.kinds().iter().any(|x| x == k.as_str()))
                .collect();
            assert_eq!(roles.len(), 1, "{k} is written by {roles:?}");
        }
    }

    #[test]
    fn kinds_round_trip_and_are_valid() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
            assert!(crate::ledger::entry::valid_kind(k.as_str()), "{k}");
        }
    }

    #[test]
    fn payloads_keep_the_shapes_old_releases_wrote() {
        // A push.decided payload as 0.1 wrote it with json!.
        let old = r#"{"accepted":false,"bypass":null,"policy_digest":"d","pusher":{"certificate_key":null,"identity":"a@x","source":"GIT_AUDIT_USER"},"reasons":[],"ref_updates":[{"commits":["c1"],"errors":1,"findings":[],"new":"n","old":"o","ref":"refs/heads/main"}],"violations":1}"#;
        let decoded = PushDecided::decode("push.decided", old);
        assert!(decoded.as_ref().is_some_and(|d| d.ref_updates[0].refname == "refs/heads/main" && !d.accepted), "{decoded:?}");
        let again = decoded.map(|d| d.entry("s", "a").payload.to_string()).unwrap_or_default();
        assert_eq!(again, old, "re-encoding gives the same canonical JSON");
        assert!(PushDecided::decode("ref.updated", old).is_none());
    }
}
