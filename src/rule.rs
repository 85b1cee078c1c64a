//! Every rule git-audit reports, and the one [`Finding`] type checks, hooks and
//! the compliance report share. Rule ids are stable dotted kebab-case and never
//! change once released: reports and users' CI depend on them. The README's
//! rule table is generated from [`Rule::markdown_table`] (a test keeps it so).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the check (mode `enforce`).
    Error,
    /// Reported only (mode `warn`).
    Warning,
}

/// Pass or fail for one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitVerdict {
    Pass,
    Fail,
}

impl CommitVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitVerdict::Pass => "pass",
            CommitVerdict::Fail => "fail",
        }
    }
}

macro_rules! rules {
    ($($variant:ident = $id:literal, $kind:ident, $summary:literal;)*) => {
        /// A rule. `Kind` says who reports it and whether `[rules]` can set its mode.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule { $($variant),* }

        impl Rule {
            /// Every rule, in the order of the README's table.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// The stable id, e.g. `signing.required`.
            pub const fn id(self) -> &'static str {
                match self { $(Rule::$variant => $id),* }
            }

            pub const fn kind(self) -> Kind {
                match self { $(Rule::$variant => Kind::$kind),* }
            }

            /// When it fires, in a phrase (the README's table).
            pub const fn summary(self) -> &'static str {
                match self { $(Rule::$variant => $summary),* }
            }
        }
    };
}

/// Who reports a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Checked on each commit (verify, hooks); mode set by `[rules]`, sections, branches.
    Commit,
    /// Checked on a ref update by the hooks; mode set by `[rules]` and branches.
    Ref,
    /// Checked on a ref update and always enforced.
    Enforced,
    /// Found by `report compliance` in the ledger.
    Compliance,
    /// Found by `report compliance` as unusual against the ledger's own
    /// history (`[review]`): a warning to look at, never a violation.
    Anomaly,
}

rules! {
    SigningRequired = "signing.required", Commit, "the signature is not `good` (and the committer is not exempt)";
    SigningIdentity = "signing.identity", Commit, "a good signature's key is not bound to the committer email (`match_committer`)";
    SigningWeakAlgorithm = "signing.weak-algorithm", Commit, "a good signature relies on cryptography the strict OpenPGP policy refuses (SHA-1, DSA-1024, RSA-1024 …), accepted under `openpgp_policy = \"gnupg\"`; a warning naming the packet and algorithm";
    CommitsTrailer = "commits.trailer", Commit, "a required trailer is missing";
    CommitsSignoff = "commits.signoff", Commit, "no `Signed-off-by` names the author";
    CommitsSubject = "commits.subject", Commit, "the subject does not match `subject_pattern`";
    CommitsSubjectLength = "commits.subject-length", Commit, "the subject is longer than `max_subject_length`";
    CommitsEmailDomain = "commits.email-domain", Commit, "the author or committer email is outside `allowed_email_domains`";
    CommitsMalformed = "commits.malformed", Commit, "the commit object is not one git's own tools would write: headers out of git's order (`tree`, `parent`…, `author`, `committer`, then others), a repeated `tree`/`author`/`committer`/`encoding`/`gpgsig`/`gpgsig-sha256`, a `parent` line git ignores, a bad date or zone, a NUL in the headers, no blank line after them";
    BranchesForcePush = "branches.force-push", Ref, "a protected ref would be rewritten, or re-created away from its last recorded tip (in `report compliance`: one that got through by warn mode or break glass)";
    BranchesImmutable = "branches.immutable", Ref, "an existing ref under an `immutable` pattern (by default a `refs/tags/` pattern with `forbid_force_push`) would move at all, even forward, or be re-created elsewhere";
    RefsNonCommit = "refs.non-commit", Ref, "a ref would name something other than a commit: a tree or blob under `refs/heads/`, or under a protected pattern a tag whose chain does not end in a commit";
    BranchesDeletion = "branches.deletion", Ref, "a protected ref would be deleted (in `report compliance`: one that got through)";
    BranchesSignedTags = "branches.signed-tags", Ref, "a tag under the pattern is lightweight or not signed by a pinned key";
    BranchesPusher = "branches.pusher", Ref, "the pusher is not in `allowed_pushers` (or is unknown)";
    BranchesLinearHistory = "branches.linear-history", Ref, "a merge commit would land on the ref";
    PolicyAdmin = "policy.admin", Ref, "a commit on a protected ref changes the policy file or a file it loads, and is not signed by a `policy-admin`";
    PathsSigner = "paths.signer", Commit, "a commit adds, changes, deletes or renames a file a `[[paths]]` entry protects and is not signed (good) by one of that entry's `signers`";
    RefsReserved = "refs.reserved", Enforced, "a push creates, updates or deletes anything under `refs/audit/` (git-audit's anchors) or `refs/replace/` (git's replacement objects, which would make the server serve other content than was judged); always enforced, break glass does not pass it";
    PrNoApproval = "pr.no-approval", Compliance, "a pull request was merged without an approval";
    PrSelfApproval = "pr.self-approval", Compliance, "a pull request's only approvals are by its author";
    PrStaleApproval = "pr.stale-approval", Compliance, "no approval was for the pull request's final head commit";
    PrOwnerApprovalMissing = "pr.owner-approval-missing", Compliance, "a merged pull request changed files a `[[paths]]` entry gives `approvers` (or, with `[codeowners] enabled`, that CODEOWNERS assigns) without an approval on its final head from one of them";
    PrOwnerApprovalUnverified = "pr.owner-approval-unverified", Compliance, "could not verify owner approval of a merged pull request: its owners include a team whose membership was never recorded, and no approval is by a listed owner (a warning)";
    PrCodeownersMissing = "pr.codeowners-missing", Compliance, "`[codeowners] enabled`, but the base a pull request merged into had no CODEOWNERS (`.github/`, the root, `docs/`, `.gitlab/`), or that base is not in the repository the report ran in: its owners could not be judged (a warning, never a pass)";
    PushDirect = "push.direct", Compliance, "a commit reached the default branch without a pull request";
    CommitsUnsignedDeployed = "commits.unsigned-deployed", Compliance, "a commit without a good signature was deployed";
    BreakglassUsed = "breakglass.used", Compliance, "a push went through by break glass";
    LedgerGap = "ledger.gap", Compliance, "hook events were decided but could not be recorded in the ledger";
    DeployDeployerNotAllowed = "deploy.deployer-not-allowed", Compliance, "a deployment to an `[[environments]]` environment was made by someone not in its `deployers` (or by someone unknown)";
    DeployApproverNotAllowed = "deploy.approver-not-allowed", Compliance, "a deployment was approved by someone not in the environment's `approvers` (team membership as recorded then, or in the earliest snapshot after it, which the finding names)";
    DeployApproverUnverified = "deploy.approver-unverified", Compliance, "could not verify a deployment's approval: the approver is not a listed login and a listed team's membership was never recorded, or the approvals themselves were not (a warning: never counted as a violation)";
    DeployDeployerUnverified = "deploy.deployer-unverified", Compliance, "could not verify the deployer: not a listed login, and a listed team's membership was never recorded (a warning)";
    DeploySelfApproval = "deploy.self-approval", Compliance, "the deployer approved their own deployment (`prevent_self_approval`)";
    DeployNoApproval = "deploy.no-approval", Compliance, "fewer than `required_approvals` approvals by allowed approvers, even counting those that could not be verified";
    DeployRefNotAllowed = "deploy.ref-not-allowed", Compliance, "the deployed ref is not in the environment's `branches` (or is unknown)";
    EnvProtectionChanged = "env.protection-changed", Compliance, "an environment's protection (reviewers, wait timer, branch policy, admin bypass) changed between two syncs; a warning with before and after";
    DeployRecordChanged = "deploy.record-changed", Compliance, "a recorded deployment was recorded again with other facts (deployer, approvers added after the fact, sha, source): shown as a correction with its writer and time; the deployment stays judged on what was first recorded";
    DeployUnattested = "deploy.unattested", Compliance, "a deployment to an environment with `require_attested = true` was recorded on the recording job's word (flags, CI variables), not attested by a CI OIDC token from a `[[ci_issuers]]` issuer";
    DeployUnsignedCommits = "deploy.unsigned-commits", Compliance, "the deployment shipped commits without a good signature (`require_signed_commits`), or what it shipped is unknown";
    AnomalyFirstDeployer = "anomaly.first-deployer", Anomaly, "someone deploys to an environment for the first time, once it has `min_history` earlier deployments over at least `learning_days` (a warning, as are all `anomaly.*`)";
    AnomalyOffHours = "anomaly.off-hours", Anomaly, "a production deployment (`[review] production`) or a push to a protected branch falls on a weekday or an hour of the day (UTC) that held at most `rare_share` of the `min_history` or more before it; the finding says what was usual";
    AnomalyNewSigner = "anomaly.new-signer", Anomaly, "a key (OpenPGP fingerprint or SSH key) signs a commit that lands on a protected branch for the first time, once `min_history` signed commits over `learning_days` have landed";
    AnomalyRefusalBurst = "anomaly.refusal-burst", Anomaly, "one pusher has `refusal_burst` or more pushes refused within `refusal_window` (probing); one finding per burst, citing every refusal";
    AnomalyGovernance = "anomaly.governance", Anomaly, "the rules changed: the policy file changed on a protected branch (naming who it adds to `policy-admin` or `breakglass`), the policy the hooks judge by changed, an environment's protection was weakened, or a ledger writer was added or revoked (quiet for the first `learning_days` of the ledger: set-up)";
}

impl Rule {
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }

    /// Rules whose mode a policy's `[rules]` may set.
    pub fn configurable(self) -> bool {
        matches!(self.kind(), Kind::Commit | Kind::Ref | Kind::Enforced)
    }

    /// "Could not verify": what the ledger lacks, not what broke a rule. Counted
    /// apart from violations everywhere (reports, dashboard, notifications).
    pub fn is_anomaly(self) -> bool {
        self.kind() == Kind::Anomaly
    }

    /// The event a sink selects to be told of it: `anomaly.<kind>` for an
    /// anomaly (told as it is found), `finding.<rule id>` for the rest.
    pub fn event(self) -> String {
        if self.is_anomaly() {
            self.id().to_string()
        } else {
            format!("finding.{}", self.id())
        }
    }

    pub fn is_unverified(self) -> bool {
        matches!(
            self,
            Rule::DeployApproverUnverified | Rule::DeployDeployerUnverified | Rule::PrOwnerApprovalUnverified | Rule::PrCodeownersMissing
        )
    }

    /// Judged per commit — what "checked as strictly" compares for the hooks:
    /// every commit rule, the policy footprint and linear history.
    pub fn per_commit(self) -> bool {
        self.kind() == Kind::Commit || matches!(self, Rule::PolicyAdmin | Rule::BranchesLinearHistory)
    }

    /// The README's rule table.
    pub fn markdown_table() -> String {
        let mut out = String::from("| rule | fires when |\n|---|---|\n");
        for r in Rule::ALL {
            out.push_str(&format!("| `{}` | {} |\n", r.id(), r.summary()));
        }
        out
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let id = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Rule::from_id(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown rule id `{id}`")))
    }
}

/// One broken rule: from a check on a commit, a hook on a ref update, or the
/// compliance report over the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What it is about, where that is not implied (compliance: a PR, a commit, a ref).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Ledger seq numbers that show it (compliance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<u64>,
}

impl Finding {
    pub fn new(rule: Rule, severity: Severity, message: impl Into<String>) -> Finding {
        Finding { rule, severity, message: message.into(), fix: None, subject: None, evidence: Vec::new() }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_dotted_kebab_case_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Rule::ALL {
            let id = r.id();
            assert!(seen.insert(id), "{id} twice");
            assert!(id.split('.').count() == 2 && id.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '-'), "{id}");
            assert_eq!(Rule::from_id(id), Some(*r));
            assert_eq!(serde_json::to_string(r).unwrap_or_default(), format!("\"{id}\""));
        }
        assert_eq!(Rule::from_id("ref.force-push"), None, "the compliance report's old spelling is gone");
    }

    #[test]
    fn the_readme_rule_table_is_this_enum() {
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&Rule::markdown_table()),
            "README.md's rule table differs; paste Rule::markdown_table():\n{}",
            Rule::markdown_table()
        );
    }
}
