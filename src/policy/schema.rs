//! The policy file as written: serde structs that mirror `.git-audit.toml`.
//! Spans are kept where validation needs to point back at the text.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// How a rule's findings count: `enforce` fails, `warn` reports only, `off` skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Warn,
    Off,
}

pub use crate::signature::Trust;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: Spanned<i64>,
    pub mode: Option<Mode>,
    pub baseline: Option<Spanned<String>>,
    #[serde(default)]
    pub signing: RawSigning,
    #[serde(default)]
    pub commits: RawCommits,
    #[serde(default)]
    pub branches: Vec<RawBranch>,
    pub rules: Option<Spanned<BTreeMap<String, Mode>>>,
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<Spanned<String>>>,
    pub github: Option<RawGithub>,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub environments: Vec<RawEnvironment>,
    #[serde(default)]
    pub notify: Vec<super::notify::RawNotify>,
    #[serde(default)]
    pub paths: Vec<RawPathRule>,
    pub codeowners: Option<RawCodeowners>,
    #[serde(default)]
    pub ci_issuers: Vec<RawCiIssuer>,
    #[serde(default)]
    pub review: RawReview,
    #[serde(default)]
    pub attestations: RawAttestations,
}

/// `[attestations]`: SLSA source attestations for protected refs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttestations {
    /// The server hooks issue one for every revision landing on a protected ref.
    pub enabled: Option<bool>,
    /// The repository's canonical https URL (the VSA's `resourceUri` is `git+` it).
    pub repository: Option<Spanned<String>>,
    /// The policy's URI in VSAs (default: `urn:git-audit:policy:sha256:DIGEST`).
    pub policy_uri: Option<Spanned<String>>,
    /// The organisation's own properties (`ORG_SOURCE_*`), each held when the
    /// rules it names were enforced on the ref as the revision landed.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
}

/// `[review]`: the digest's schedule, and the anomalies' thresholds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReview {
    /// `daily`, `weekly` or `off` (the default).
    pub digest: Option<Spanned<String>>,
    /// `[[notify]]` sink names the scheduled digest goes to (default: every
    /// sink whose `events` select `digest`).
    #[serde(default)]
    pub digest_sinks: Vec<Spanned<String>>,
    /// Environment patterns counted as production.
    pub production: Option<Vec<Spanned<String>>>,
    pub min_history: Option<Spanned<i64>>,
    pub learning_days: Option<Spanned<i64>>,
    pub rare_share: Option<Spanned<f64>>,
    pub refusal_burst: Option<Spanned<i64>>,
    pub refusal_window: Option<Spanned<String>>,
    /// `anomaly.*` ids not to report.
    #[serde(default)]
    pub off: Vec<Spanned<String>>,
}

/// One `[[ci_issuers]]` entry: a CI whose OIDC ID tokens `record deployment`
/// accepts as proof of who deployed what, from where.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCiIssuer {
    /// The token's `iss`, exactly (`https://token.actions.githubusercontent.com`).
    pub issuer: Spanned<String>,
    /// The `aud` the token must be for (default `git-audit`).
    pub audience: Option<Spanned<String>>,
    /// Where the issuer publishes its keys (`…/.well-known/jwks`).
    pub jwks_url: Option<Spanned<String>>,
    /// Or a file holding them (a JWKS document), relative to the policy.
    pub jwks_file: Option<Spanned<String>>,
}

/// One `[[paths]]` entry: who may change the files matching `pattern`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPathRule {
    pub pattern: Spanned<String>,
    #[serde(default)]
    pub signers: Vec<Spanned<String>>,
    #[serde(default)]
    pub approvers: Vec<Spanned<String>>,
    pub mode: Option<Mode>,
}

/// `[codeowners]`: take approvers from the repository's CODEOWNERS too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCodeowners {
    #[serde(default)]
    pub enabled: bool,
}

/// One `[[environments]]` entry: who may deploy to and approve deployments to
/// the environments whose name matches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    pub name: Spanned<String>,
    #[serde(default)]
    pub deployers: Vec<Spanned<String>>,
    #[serde(default)]
    pub approvers: Vec<Spanned<String>>,
    pub required_approvals: Option<Spanned<i64>>,
    pub prevent_self_approval: Option<bool>,
    #[serde(default)]
    pub branches: Vec<Spanned<String>>,
    #[serde(default)]
    pub require_signed_commits: bool,
    #[serde(default)]
    pub require_attested: bool,
    pub mode: Option<Mode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Refuse a push whose decision cannot be written to the ledger.
    #[serde(default)]
    pub require_ledger: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    #[serde(default)]
    pub required: bool,
    pub trust: Option<Trust>,
    pub openpgp_policy: Option<crate::signature::OpenpgpPolicy>,
    #[serde(default)]
    pub openpgp_keys: Vec<Spanned<String>>,
    pub ssh_allowed_signers: Option<Spanned<String>>,
    #[serde(default)]
    pub match_committer: bool,
    #[serde(default)]
    pub exempt_identities: Vec<Spanned<String>>,
    pub mode: Option<Mode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommits {
    #[serde(default)]
    pub required_trailers: Vec<String>,
    #[serde(default)]
    pub signoff_matches_author: bool,
    pub subject_pattern: Option<Spanned<String>>,
    pub max_subject_length: Option<Spanned<i64>>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    pub mode: Option<Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBranch {
    pub pattern: Spanned<String>,
    #[serde(default)]
    pub forbid_force_push: bool,
    #[serde(default)]
    pub forbid_deletion: bool,
    #[serde(default)]
    pub require_signed_tags: bool,
    #[serde(default)]
    pub require_linear_history: bool,
    /// No update of an existing ref at all (default: true for a `refs/tags/`
    /// pattern that sets `forbid_force_push`).
    pub immutable: Option<bool>,
    pub allowed_pushers: Option<Vec<Spanned<String>>>,
    pub mode: Option<Mode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGithub {
    #[serde(default)]
    pub repositories: Vec<Spanned<String>>,
    pub api_url: Option<String>,
}
