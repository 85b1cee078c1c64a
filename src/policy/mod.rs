//! The policy: loading `.git-audit.toml`, validating it into a checked form,
//! and answering "how does this rule count here?".
//!
//! Every problem in a policy is reported at once, each with file:line:col,
//! what was expected and how to fix it (as cargo-deny does for its config).

pub mod applies;
pub mod notify;
pub mod paths;
pub mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use regex::Regex;
use sha2::{Digest, Sha256};

pub use schema::{Mode, Trust};

use crate::rule::{Kind, Rule, Severity};

impl Mode {
    /// How a finding of a rule in this mode counts; `off` reports nothing.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Mode::Off => None,
            Mode::Warn => Some(Severity::Warning),
            Mode::Enforce => Some(Severity::Error),
        }
    }
}

use crate::signature::allowed_signers::{matching_identity, AllowedSigners};
pub use crate::signature::KeyFile;
use crate::signature::{OpenpgpPolicy, SignatureChecker};

/// The file name looked for at the repository root.
pub const DEFAULT_FILE: &str = ".git-audit.toml";
/// The commented starter policy that `git-audit init` writes.
pub const STARTER: &str = include_str!("starter.toml");

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  Hint: {h}")?;
        }
        Ok(())
    }
}

/// A policy that could not be loaded: every problem found.
#[derive(Debug, thiserror::Error)]
pub struct PolicyError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        write!(f, "invalid policy ({n} problem{})", if n == 1 { "" } else { "s" })?;
        for d in &self.diagnostics {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// A place in the policy file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// `[signing]`, checked.
#[derive(Debug, Clone)]
pub struct Signing {
    pub required: bool,
    pub trust: Trust,
    /// What weak OpenPGP cryptography does (`[signing] openpgp_policy`).
    pub openpgp_policy: OpenpgpPolicy,
    pub openpgp_keys: Vec<KeyFile>,
    pub ssh_allowed_signers: Option<AllowedSigners>,
    pub match_committer: bool,
    pub exempt_identities: Vec<String>,
    pub mode: Option<Mode>,
}

/// `[commits]`, checked.
#[derive(Debug, Clone)]
pub struct Commits {
    pub required_trailers: Vec<String>,
    pub signoff_matches_author: bool,
    pub subject_pattern: Option<Regex>,
    pub max_subject_length: Option<usize>,
    pub allowed_email_domains: Vec<String>,
    pub mode: Option<Mode>,
}

/// One `[[branches]]` entry, checked.
#[derive(Debug, Clone)]
pub struct BranchRule {
    pub pattern: String,
    matcher: globset::GlobMatcher,
    pub forbid_force_push: bool,
    pub forbid_deletion: bool,
    pub require_signed_tags: bool,
    pub require_linear_history: bool,
    /// Any update of an existing ref is refused (a published tag never moves,
    /// not even forward): `immutable = true`, the default for a `refs/tags/`
    /// pattern that sets `forbid_force_push`.
    pub immutable: bool,
    pub allowed_pushers: Option<Vec<String>>,
    pub mode: Option<Mode>,
}

impl BranchRule {
    pub fn matches(&self, refname: &str) -> bool {
        self.matcher.is_match(refname)
    }
}

/// Someone named in `deployers` or `approvers`: a forge login, or a team
/// (`team:ORG/SLUG`, GitHub) or group (`group:PATH`, GitLab: a `Team` whose
/// `org` is empty and `slug` the group's full path) whose members are
/// expanded through the forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Login(String),
    Team { org: String, slug: String },
}

impl Principal {
    /// As written in a policy: `alice`, `team:acme/sre`, `group:platform/sre`.
    pub fn label(&self) -> String {
        match self {
            Principal::Login(l) => l.clone(),
            // The subject its members are recorded under (`event::TeamSynced::subject`).
            Principal::Team { org, slug } if org.is_empty() => format!("group:{slug}"),
            Principal::Team { org, slug } => format!("team:{org}/{slug}"),
        }
    }

    /// Parses `login`, `team:ORG/SLUG` or `group:PATH` (GitLab, subgroups
    /// allowed); `None` when a team is not `ORG/SLUG` or a group path is not one.
    pub fn parse(text: &str) -> Option<Principal> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("group:") {
            let ok = |s: &str| {
                !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            };
            return path.split('/').all(ok).then(|| Principal::Team { org: String::new(), slug: path.to_string() });
        }
        match text.strip_prefix("team:") {
            Some(team) => {
                let (org, slug) = team.split_once('/')?;
                let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                (ok(org) && ok(slug)).then(|| Principal::Team { org: org.to_string(), slug: slug.to_string() })
            }
            None if !text.is_empty() && !text.contains(char::is_whitespace) => Some(Principal::Login(text.to_string())),
            None => None,
        }
    }
}

/// One `[[environments]]` entry, checked.
#[derive(Debug, Clone)]
pub struct EnvironmentRule {
    pub pattern: String,
    matcher: globset::GlobMatcher,
    pub deployers: Vec<Principal>,
    pub approvers: Vec<Principal>,
    pub required_approvals: u32,
    pub prevent_self_approval: bool,
    branches: Vec<globset::GlobMatcher>,
    pub branch_patterns: Vec<String>,
    pub require_signed_commits: bool,
    /// A recorded deployment must be attested by a CI's OIDC token.
    pub require_attested: bool,
    pub mode: Option<Mode>,
}

/// `[[ci_issuers]]`: a CI whose OIDC ID tokens attest recorded deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiIssuer {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    /// `file:line:col` of the entry, for messages.
    pub origin: String,
}

/// Where an issuer's signing keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    /// The file, and its text as read when the policy loaded (in the digest).
    File(PathBuf, String),
}

/// An environment pattern (`production`, `prod-*`, `prod-[ab]`, `{staging,qa}`):
/// the one glob dialect for environments, in `[[environments]]`, `--env` and
/// the served pages' `?env=` alike.
pub fn environment_glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    globset::GlobBuilder::new(pattern).literal_separator(false).build().map(|g| g.compile_matcher())
}

/// Checks an environment pattern given on a command line or in a URL.
pub fn check_environment_pattern(pattern: &str) -> Result<(), String> {
    environment_glob(pattern).map(|_| ()).map_err(|e| {
        format!("`{pattern}` is not an environment pattern ({}); e.g. production, prod-*, prod-[ab] or {{staging,qa}}", e.kind())
    })
}

impl EnvironmentRule {
    pub fn matches(&self, environment: &str) -> bool {
        self.matcher.is_match(environment)
    }

    /// True when `git_ref` (`main`, `refs/heads/main`, `release/1`) may be
    /// deployed here; any ref when no `branches` are listed.
    pub fn allows_ref(&self, git_ref: &str) -> bool {
        let short = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        self.branches.is_empty() || self.branches.iter().any(|b| b.is_match(short) || b.is_match(git_ref))
    }
}

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    /// SHA-256 over the policy text and every key file it pins (hex).
    pub digest: String,
    pub mode: Mode,
    pub baseline: Option<String>,
    pub baseline_location: Option<Location>,
    pub signing: Signing,
    pub commits: Commits,
    pub branches: Vec<BranchRule>,
    pub rules: BTreeMap<Rule, Mode>,
    pub roles: BTreeMap<String, Vec<String>>,
    pub github_repositories: Vec<String>,
    /// `[audit] require_ledger`: refuse a push whose decision cannot be recorded.
    pub require_ledger: bool,
    /// `[[environments]]`: who may deploy where, and who may approve it.
    pub environments: Vec<EnvironmentRule>,
    /// `[[notify]]`: where events are sent.
    pub notify: Vec<notify::Sink>,
    /// `[[paths]]`: who may change which files (the first matching entry wins).
    pub paths: Vec<paths::PathRule>,
    /// `[codeowners] enabled`: CODEOWNERS owners must approve too.
    pub codeowners: bool,
    /// `[[ci_issuers]]`: CIs whose OIDC tokens attest recorded deployments.
    pub ci_issuers: Vec<CiIssuer>,
    /// `[review]`: the digest's schedule and the anomalies' thresholds.
    pub review: Review,
    /// `[attestations]`: SLSA source attestations.
    pub attestations: Attestations,
    /// Things that are allowed but probably not meant (shown by `policy check`;
    /// read them with [`Policy::warnings`], which adds the pinned keys' weaknesses).
    warnings: Vec<Diagnostic>,
    /// Pinned keys to judge for weak cryptography, with where the policy names
    /// them. Judged only when warnings are asked for: it parses every
    /// certificate, and hooks (which never show warnings) load a policy twice a push.
    weak_key_checks: Vec<(KeyFile, Diagnostic, OpenpgpPolicy)>,
}

/// `[attestations]`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attestations {
    pub enabled: bool,
    pub repository: Option<String>,
    pub policy_uri: Option<String>,
    /// `ORG_SOURCE_*` → the rules whose enforcement it stands for.
    pub properties: BTreeMap<String, Vec<Rule>>,
}

/// How often the scheduled digest goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestEvery {
    Day,
    Week,
}

/// `[review]`, checked (see the README's "Regular review").
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub digest: Option<DigestEvery>,
    pub digest_sinks: Vec<String>,
    /// Environment patterns counted as production (`anomaly.off-hours`).
    pub production: Vec<String>,
    /// Earlier events a series needs before anything in it is unusual.
    pub min_history: usize,
    /// Days a series (or the ledger) must span before anything in it is unusual.
    pub learning_days: i64,
    /// A weekday or hour that held at most this share of earlier events is rare.
    pub rare_share: f64,
    pub refusal_burst: usize,
    pub refusal_window: std::time::Duration,
    pub off: Vec<Rule>,
}

impl Default for Review {
    fn default() -> Review {
        Review {
            digest: None,
            digest_sinks: Vec::new(),
            production: vec!["production".into(), "prod".into(), "prod-*".into(), "prod_*".into()],
            min_history: 20,
            learning_days: 14,
            rare_share: 0.02,
            refusal_burst: 5,
            refusal_window: std::time::Duration::from_secs(600),
            off: Vec::new(),
        }
    }
}

impl Review {
    /// Whether an environment counts as production (the patterns compiled once).
    pub fn production_matcher(&self) -> impl Fn(&str) -> bool {
        let globs: Vec<globset::GlobMatcher> = self.production.iter().filter_map(|p| environment_glob(p).ok()).collect();
        move |environment: &str| globs.iter().any(|m| m.is_match(environment))
    }
}

impl Policy {
    /// Reads and validates the policy at `path`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let bytes = std::fs::read(path).map_err(|e| PolicyError {
            diagnostics: vec![Diagnostic {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read the policy: {e}"),
                hint: Some("create one with `git-audit init`, or name it with --policy FILE".into()),
            }],
        })?;
        let text = String::from_utf8(bytes).map_err(|e| PolicyError {
            diagnostics: vec![diag_at(path, &[], e.utf8_error().valid_up_to()..0, "the policy is not valid UTF-8".into(), None)],
        })?;
        Self::from_str(&text, path)
    }

    /// Validates policy text as if read from `path` (paths resolve against its folder).
    pub fn from_str(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        // Unknown keys and values of the wrong type or variant are reported all
        // at once: each such line is commented out (keeping every line and
        // column where it was) and the text read again, then the rest is
        // validated as usual. A field missing only because its line was
        // commented out is not reported again.
        let mut diagnostics = Vec::new();
        let mut working = text.to_string();
        let raw: schema::RawPolicy = loop {
            match toml::from_str(&working) {
                Ok(raw) => break raw,
                Err(e) => {
                    if e.message().contains("missing field") && !diagnostics.is_empty() {
                        return Err(PolicyError { diagnostics });
                    }
                    let span = e.span().unwrap_or(0..0);
                    diagnostics.push(diag_at(path, text.as_bytes(), span.clone(), clean_toml_message(e.message()), toml_hint(e.message())));
                    let line_start = working[..span.start.min(working.len())].rfind('\n').map_or(0, |i| i + 1);
                    let line_end = working[line_start..].find('\n').map_or(working.len(), |i| line_start + i);
                    let line = &working[line_start..line_end];
                    let balanced =
                        line.matches('[').count() == line.matches(']').count() && line.matches('{').count() == line.matches('}').count();
                    let recoverable = ["unknown field", "invalid type", "unknown variant", "invalid value", "invalid length"]
                        .iter()
                        .any(|m| e.message().contains(m));
                    if !recoverable || !balanced || line.starts_with('#') || diagnostics.len() > 50 {
                        return Err(PolicyError { diagnostics });
                    }
                    working.replace_range(line_start..line_start + 1, "#");
                }
            }
        };
        match (
            Validator { path, text, diags: Vec::new(), warnings: Vec::new(), weak_key_checks: Vec::new() }.run(raw),
            diagnostics.is_empty(),
        ) {
            (result, true) => result,
            (Ok(_), false) => Err(PolicyError { diagnostics }),
            (Err(mut e), false) => {
                diagnostics.append(&mut e.diagnostics);
                diagnostics.sort_by_key(|d| (d.file != path, d.file.clone(), d.line, d.column));
                Err(PolicyError { diagnostics })
            }
        }
    }

    /// Things that are allowed but probably not meant, the pinned keys' weak
    /// cryptography included (judged now: it parses every certificate).
    pub fn warnings(&self) -> Vec<Diagnostic> {
        let mut all = self.warnings.clone();
        for (k, at, mode) in &self.weak_key_checks {
            all.extend(weak_key_warnings(k, at, *mode));
        }
        all
    }

    /// Whether the policy sets `rule` up at all for a ref matching `branch`
    /// (its mode aside): `commits.signoff` only with `signoff_matches_author`,
    /// `branches.linear-history` only where the branch entry asks for it …
    pub fn configures(&self, rule: Rule, branch: Option<&BranchRule>) -> bool {
        let b = |f: fn(&BranchRule) -> bool| branch.is_some_and(f);
        match rule {
            Rule::SigningRequired => self.signing.required,
            Rule::SigningIdentity => self.signing.required && self.signing.match_committer,
            Rule::CommitsTrailer => !self.commits.required_trailers.is_empty(),
            Rule::CommitsSignoff => self.commits.signoff_matches_author,
            Rule::CommitsSubject => self.commits.subject_pattern.is_some(),
            Rule::CommitsSubjectLength => self.commits.max_subject_length.is_some(),
            Rule::CommitsEmailDomain => !self.commits.allowed_email_domains.is_empty(),
            Rule::BranchesForcePush => b(|r| r.forbid_force_push),
            Rule::BranchesDeletion => b(|r| r.forbid_deletion),
            Rule::BranchesImmutable => b(|r| r.immutable),
            Rule::BranchesSignedTags => b(|r| r.require_signed_tags),
            Rule::BranchesLinearHistory => b(|r| r.require_linear_history),
            Rule::BranchesPusher => b(|r| r.allowed_pushers.is_some()),
            Rule::PolicyAdmin => self.roles.get("policy-admin").is_some_and(|a| !a.is_empty()),
            Rule::PathsSigner => self.paths.iter().any(|p| !p.signers.is_empty()),
            Rule::CommitsMalformed | Rule::RefsNonCommit | Rule::RefsReserved => true,
            _ => false,
        }
    }

    /// How findings of `rule` count, for a ref matching `branch` if any.
    /// Precedence: `[rules]` > the branch entry's mode > the section's mode > the global mode.
    pub fn mode_for(&self, rule: Rule, branch: Option<&BranchRule>) -> Mode {
        if rule.kind() == Kind::Enforced {
            return Mode::Enforce;
        }
        if let Some(m) = self.rules.get(&rule) {
            return *m;
        }
        if rule == Rule::SigningWeakAlgorithm {
            // An audit note, not a refusal: the policy chose to accept it (`gnupg`).
            // Only `[rules]` can make it enforce; anything else off stays off.
            let inherited = branch.and_then(|b| b.mode).or(self.signing.mode).unwrap_or(self.mode);
            return if inherited == Mode::Off { Mode::Off } else { Mode::Warn };
        }
        if let Some(m) = branch.and_then(|b| b.mode) {
            return m;
        }
        let section = if rule.id().starts_with("signing.") {
            self.signing.mode
        } else if rule.id().starts_with("commits.") {
            self.commits.mode
        } else {
            None
        };
        section.unwrap_or(self.mode)
    }

    /// Every team (`org`, `slug`) named in `[[environments]]` and `[[paths]]`, once.
    pub fn teams(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .environments
            .iter()
            .flat_map(|e| e.deployers.iter().chain(&e.approvers))
            .chain(self.paths.iter().flat_map(|r| &r.approvers))
            .filter_map(|p| match p {
                Principal::Team { org, slug } => Some((org.clone(), slug.clone())),
                Principal::Login(_) => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The first `[[paths]]` entry matching the repository-relative `path`.
    pub fn path_rule(&self, path: &str) -> Option<&paths::PathRule> {
        self.paths.iter().find(|r| r.pattern.matches(path))
    }

    /// `signers` of a path rule with `role:NAME` entries replaced by the role's holders.
    pub fn path_signers(&self, rule: &paths::PathRule) -> Vec<String> {
        rule.signers
            .iter()
            .flat_map(|s| match s.strip_prefix("role:") {
                Some(role) => self.roles.get(role).cloned().unwrap_or_default(),
                None => vec![s.clone()],
            })
            .collect()
    }

    /// The first `[[environments]]` entry matching `environment`.
    pub fn environment_rule(&self, environment: &str) -> Option<&EnvironmentRule> {
        self.environments.iter().find(|e| e.matches(environment))
    }

    /// The first `[[branches]]` entry matching `refname`.
    pub fn branch_rule(&self, refname: &str) -> Option<&BranchRule> {
        self.branches.iter().find(|b| b.matches(refname))
    }

    /// The exemption pattern that `email` matches, if any.
    pub fn exemption_for(&self, email: &str) -> Option<&str> {
        matching_identity(email, &self.signing.exempt_identities).map(String::as_str)
    }

    /// A signature checker with this policy's trust set: its pinned OpenPGP keys
    /// and allowed signers (in `gnupg` trust, the user's keyring, and git's
    /// `gpg.ssh.allowedSignersFile` when the policy names none).
    pub fn signature_checker(&self, repo: Option<&crate::git::Repo>) -> SignatureChecker {
        let allowed = self.signing.ssh_allowed_signers.clone().or_else(|| {
            if self.signing.trust != Trust::Gnupg {
                return None;
            }
            let path = repo?.config_path("gpg.ssh.allowedSignersFile")?;
            AllowedSigners::load(&path).ok()
        });
        let checker = SignatureChecker::new(self.signing.trust, self.signing.openpgp_policy, self.signing.openpgp_keys.clone(), allowed);
        // With the user's keyring deciding, a verdict can change with no policy change: no cache.
        match self.signing.trust {
            Trust::Policy => checker.with_cache(&self.digest),
            Trust::Gnupg => checker,
        }
    }

    /// Where the policy lives relative to which key paths resolve.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Finds the policy to use: `--policy`, else `git config audit.policy`, else
/// `.git-audit.toml` at the root of the work tree.
pub fn locate(explicit: Option<&Path>, repo: Option<&crate::git::Repo>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let repo = repo?;
    if let Some(p) = repo.config_path("audit.policy") {
        return Some(p);
    }
    repo.workdir().map(|w| w.join(DEFAULT_FILE))
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    weak_key_checks: Vec<(KeyFile, Diagnostic, OpenpgpPolicy)>,
}

impl Validator<'_> {
    fn err(&mut self, span: Range<usize>, message: String, hint: Option<&str>) {
        self.diags.push(diag_at(self.path, self.text.as_bytes(), span, message, hint.map(str::to_string)));
    }

    fn location(&self, span: Range<usize>) -> Location {
        let (line, column) = line_col(self.text.as_bytes(), span.start);
        Location { file: self.path.to_path_buf(), line, column }
    }

    /// Says up front which pinned keys the strict OpenPGP policy cannot use (a
    /// warning under `strict`: their signatures will be `error`; a note under
    /// `gnupg`: their signatures will carry `signing.weak-algorithm`).
    fn weak_keys(&mut self, keys: &[KeyFile], spans: &[Range<usize>], mode: OpenpgpPolicy) {
        for (k, span) in keys.iter().zip(spans) {
            let at = diag_at(self.path, self.text.as_bytes(), span.clone(), String::new(), None);
            self.weak_key_checks.push((k.clone(), at, mode));
        }
    }
}

/// What `strict` refuses in the pinned key `k` (named in the policy at `at`),
/// said as `mode` treats it.
fn weak_key_warnings(k: &KeyFile, at: &Diagnostic, mode: OpenpgpPolicy) -> Vec<Diagnostic> {
    let Ok(certs) = crate::signature::native::certificate_weaknesses(std::slice::from_ref(k)) else { return Vec::new() };
    let mut out = Vec::new();
    for (fpr, uid, weak) in certs.into_iter().filter(|(_, _, w)| !w.is_empty()) {
        let who = uid.map(|u| format!(" ({u})")).unwrap_or_default();
        let list: Vec<String> = weak.iter().map(ToString::to_string).collect();
        let fix = crate::signature::native::remedies(&weak, &fpr);
        let (message, hint) = match mode {
            OpenpgpPolicy::Strict => (
                format!(
                    "pinned key {fpr}{who} in {} cannot be used under the strict OpenPGP policy: {}; its signatures will be `error`",
                    k.path.display(),
                    list.join("; ")
                ),
                Some(format!("{fix}; {}", crate::signature::native::GNUPG_ALTERNATIVE)),
            ),
            OpenpgpPolicy::Gnupg => (
                format!(
                    "pinned key {fpr}{who} in {} relies on weak cryptography: {}; accepted (openpgp_policy = \"gnupg\"), each signature by it gets a `signing.weak-algorithm` warning",
                    k.path.display(),
                    list.join("; ")
                ),
                Some(fix),
            ),
        };
        out.push(Diagnostic { message, hint, ..at.clone() });
    }
    out
}

impl Validator<'_> {
    fn resolve(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn run(mut self, raw: schema::RawPolicy) -> Result<Policy, PolicyError> {
        if *raw.version.get_ref() != 1 {
            self.err(
                raw.version.span(),
                format!("unsupported policy version {}; this git-audit reads version 1", raw.version.get_ref()),
                Some("set `version = 1`"),
            );
        }
        let mut hasher = Sha256::new();
        hasher.update(self.text.as_bytes());

        // [signing]
        let mut keys = Vec::new();
        let mut key_spans = Vec::new();
        // A committed policy (`.git-audit.toml`) may only load what the repository holds.
        let committed = self.path.file_name().is_some_and(|n| n == DEFAULT_FILE);
        let leaving = raw.signing.openpgp_keys.iter().chain(raw.signing.ssh_allowed_signers.iter());
        for entry in leaving.filter(|e| committed && e.get_ref().split('/').any(|c| c == "..")) {
            self.err(
                entry.span(),
                format!("`{}` leaves the repository: a committed policy may only load files it holds", entry.get_ref()),
                Some("keep key files in the repository (e.g. keys/) and name them relative to the policy"),
            );
        }
        for entry in &raw.signing.openpgp_keys {
            let origin = self.location(entry.span());
            let resolved = self.resolve(entry.get_ref());
            if resolved.is_dir() {
                let mut found: Vec<PathBuf> = match std::fs::read_dir(&resolved) {
                    Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "asc") && p.is_file()).collect(),
                    Err(e) => {
                        self.err(entry.span(), format!("cannot read key directory {}: {e}", resolved.display()), None);
                        continue;
                    }
                };
                found.sort();
                if found.is_empty() {
                    self.err(
                        entry.span(),
                        format!("key directory {} holds no *.asc files", resolved.display()),
                        Some("export keys with `gpg --armor --export KEYID > keys/NAME.asc`"),
                    );
                }
                for f in found {
                    if let Some(k) = self.read_key(&f, entry.span(), &origin) {
                        keys.push(k);
                        key_spans.push(entry.span());
                    }
                }
            } else if let Some(k) = self.read_key(&resolved, entry.span(), &origin) {
                keys.push(k);
                key_spans.push(entry.span());
            }
        }
        // Relative to the policy, so the same policy has the same digest wherever
        // it is read from (a server materialises it in a fresh temp dir per push).
        let base = self.path.parent().unwrap_or(Path::new("."));
        for k in &keys {
            hasher.update(k.path.strip_prefix(base).unwrap_or(&k.path).to_string_lossy().as_bytes());
            hasher.update(&k.armored);
        }
        let mut allowed = None;
        if let Some(s) = &raw.signing.ssh_allowed_signers {
            let resolved = self.resolve(s.get_ref());
            if !resolved.is_file() {
                self.err(
                    s.span(),
                    format!("allowed-signers file not found: {}", resolved.display()),
                    Some("paths are relative to the policy file; the format is git's gpg.ssh.allowedSignersFile"),
                );
            } else {
                match AllowedSigners::load(&resolved) {
                    Ok(a) => {
                        if let Ok(bytes) = std::fs::read(&resolved) {
                            hasher.update(&bytes);
                        }
                        allowed = Some(a)
                    }
                    Err(errors) => {
                        for e in errors {
                            self.diags.push(Diagnostic {
                                file: resolved.clone(),
                                line: e.line,
                                column: e.column,
                                message: e.message,
                                hint: Some("each line: `principals [namespaces=\"git\"] keytype base64-key`".into()),
                            });
                        }
                    }
                }
            }
        }
        let trust = raw.signing.trust.unwrap_or(Trust::Policy);
        let openpgp_policy = raw.signing.openpgp_policy.unwrap_or_default();
        if trust == Trust::Policy {
            self.weak_keys(&keys, &key_spans, openpgp_policy);
        }
        for id in &raw.signing.exempt_identities {
            if id.get_ref().trim().is_empty() {
                self.err(id.span(), "empty identity in exempt_identities".into(), Some("use a committer email, e.g. \"bot@example.com\""));
            }
        }
        if let Some(first) = raw.signing.exempt_identities.first() {
            self.warnings.push(diag_at(
                self.path,
                self.text.as_bytes(),
                first.span(),
                "exempt_identities match the committer email, which whoever makes the commit writes: an exemption holds only for a commit with a good signature by a pinned key, or one pushed by that identity as the server established it".into(),
                Some("for a bot's unsigned commits, have the server know the bot as the pusher (GIT_AUDIT_USER from the SSH forced command or HTTP front end)".into()),
            ));
        }

        // [commits]
        let subject_pattern = match &raw.commits.subject_pattern {
            Some(p) => match Regex::new(p.get_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    let msg = e.to_string().lines().last().unwrap_or("invalid").trim().trim_start_matches("error: ").to_string();
                    self.err(
                        p.span(),
                        format!("subject_pattern is not a valid regular expression: {msg}"),
                        Some("the syntax is Rust's regex crate; use single quotes to avoid TOML escapes"),
                    );
                    None
                }
            },
            None => None,
        };
        let max_subject_length = match &raw.commits.max_subject_length {
            Some(n) if *n.get_ref() <= 0 => {
                self.err(n.span(), format!("max_subject_length must be a positive number of characters, not {}", n.get_ref()), None);
                None
            }
            Some(n) => Some(*n.get_ref() as usize),
            None => None,
        };

        // [[branches]]
        let mut branches = Vec::new();
        for b in raw.branches {
            if b.forbid_force_push && !b.forbid_deletion {
                let (line, column) = line_col(self.text.as_bytes(), b.pattern.span().start);
                self.warnings.push(Diagnostic {
                    file: self.path.to_path_buf(),
                    line,
                    column,
                    message: format!("{} forbids force pushes but not deletion", b.pattern.get_ref()),
                    hint: Some("add `forbid_deletion = true`: without it, a deleted ref can be re-created elsewhere (git-audit refuses that only when the ledger recorded the old tip)".into()),
                });
            }
            match globset::GlobBuilder::new(b.pattern.get_ref()).literal_separator(false).build() {
                Ok(g) => branches.push(BranchRule {
                    pattern: b.pattern.get_ref().clone(),
                    matcher: g.compile_matcher(),
                    forbid_force_push: b.forbid_force_push,
                    forbid_deletion: b.forbid_deletion,
                    require_signed_tags: b.require_signed_tags,
                    require_linear_history: b.require_linear_history,
                    immutable: b.immutable.unwrap_or(b.forbid_force_push && b.pattern.get_ref().starts_with("refs/tags/")),
                    allowed_pushers: b.allowed_pushers.map(|v| v.into_iter().map(|s| s.into_inner()).collect()),
                    mode: b.mode,
                }),
                Err(e) => self.err(
                    b.pattern.span(),
                    format!("bad glob pattern: {}", e.kind()),
                    Some("e.g. \"refs/heads/main\" or \"refs/heads/release/*\""),
                ),
            }
        }

        // [[environments]]
        let mut environments = Vec::new();
        for e in raw.environments {
            let glob = |v: &toml::Spanned<String>, this: &mut Self| -> Option<globset::GlobMatcher> {
                match environment_glob(v.get_ref()) {
                    Ok(g) => Some(g),
                    Err(err) => {
                        this.err(v.span(), format!("bad glob pattern: {}", err.kind()), Some("e.g. \"production\" or \"release/*\""));
                        None
                    }
                }
            };
            let Some(matcher) = glob(&e.name, &mut self) else { continue };
            let deployers = self.principals(&e.deployers, "deployers");
            let approvers = self.principals(&e.approvers, "approvers");
            let required_approvals = match &e.required_approvals {
                Some(n) if *n.get_ref() < 0 || *n.get_ref() > 100 => {
                    self.err(n.span(), format!("required_approvals must be 0 to 100, not {}", n.get_ref()), None);
                    0
                }
                Some(n) => *n.get_ref() as u32,
                None => 0,
            };
            if required_approvals > 0 && approvers.is_empty() {
                if let Some(n) = &e.required_approvals {
                    self.err(
                        n.span(),
                        format!("{} requires {required_approvals} approval(s) but names no approvers", e.name.get_ref()),
                        Some("list who may approve: approvers = [\"team:ORG/SLUG\", \"login\"]"),
                    );
                }
            }
            let branches: Vec<globset::GlobMatcher> = e.branches.iter().filter_map(|b| glob(b, &mut self)).collect();
            environments.push(EnvironmentRule {
                pattern: e.name.get_ref().clone(),
                matcher,
                deployers,
                approvers,
                required_approvals,
                prevent_self_approval: e.prevent_self_approval.unwrap_or(true),
                branches,
                branch_patterns: e.branches.iter().map(|b| b.get_ref().clone()).collect(),
                require_signed_commits: e.require_signed_commits,
                require_attested: e.require_attested,
                mode: e.mode,
            });
        }

        // [[ci_issuers]]
        let mut ci_issuers = Vec::new();
        for c in raw.ci_issuers {
            let origin = self.location(c.issuer.span()).to_string();
            let issuer = c.issuer.get_ref().trim().to_string();
            if !issuer.starts_with("https://") {
                self.err(
                    c.issuer.span(),
                    format!("issuer `{issuer}` is not an https URL"),
                    Some("the token's `iss` exactly, e.g. \"https://token.actions.githubusercontent.com\" or \"https://gitlab.com\""),
                );
                continue;
            }
            let jwks = match (&c.jwks_url, &c.jwks_file) {
                (Some(u), None) if u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://") => {
                    JwksSource::Url(u.get_ref().clone())
                }
                (Some(u), None) => {
                    self.err(u.span(), format!("jwks_url `{}` is not an http(s) URL", u.get_ref()), None);
                    continue;
                }
                (None, Some(f)) => {
                    let resolved = self.resolve(f.get_ref());
                    match std::fs::read_to_string(&resolved) {
                        Ok(text) => {
                            hasher.update(text.as_bytes());
                            JwksSource::File(resolved, text)
                        }
                        Err(e) => {
                            self.err(
                                f.span(),
                                format!("cannot read jwks_file {}: {e}", resolved.display()),
                                Some("paths are relative to the policy file"),
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.err(
                        c.issuer.span(),
                        format!("[[ci_issuers]] {issuer} needs exactly one of jwks_url or jwks_file"),
                        Some("e.g. jwks_url = \"https://token.actions.githubusercontent.com/.well-known/jwks\""),
                    );
                    continue;
                }
            };
            ci_issuers.push(CiIssuer {
                issuer,
                audience: c.audience.map(|a| a.into_inner()).unwrap_or_else(|| "git-audit".into()),
                jwks,
                origin,
            });
        }

        // [rules]
        let mut rules = BTreeMap::new();
        if let Some(r) = raw.rules {
            let span = r.span();
            for (id, mode) in r.into_inner() {
                let at = self.text[span.start..].find(&id).map_or(span.clone(), |i| span.start + i..span.start + i + id.len());
                match Rule::from_id(&id).filter(|r| r.configurable()) {
                    Some(r) if r.kind() == Kind::Enforced && mode != Mode::Enforce => {
                        self.err(at, format!("`{id}` is always enforced and cannot be set to {mode:?}"), Some("remove it from [rules]"))
                    }
                    Some(r) => {
                        rules.insert(r, mode);
                    }
                    None => {
                        let known: Vec<&str> = Rule::ALL.iter().filter(|r| r.configurable()).map(|r| r.id()).collect();
                        self.err(at, format!("unknown rule id `{id}`"), Some(&format!("known rule ids: {}", known.join(", "))));
                    }
                }
            }
        }

        // baseline
        let mut baseline_location = None;
        if let Some(b) = &raw.baseline {
            let v = b.get_ref();
            if !(4..=64).contains(&v.len()) || !v.bytes().all(|c| c.is_ascii_hexdigit()) {
                self.err(b.span(), format!("baseline must be a commit id (hex), not `{v}`"), Some("use `git rev-parse HEAD` to get one"));
            }
            baseline_location = Some(self.location(b.span()));
        }

        let roles = raw.roles.into_iter().map(|(k, v)| (k, v.into_iter().map(|s| s.into_inner()).collect())).collect();
        let github_repositories: Vec<String> = raw
            .github
            .map(|g| {
                g.repositories
                    .into_iter()
                    .filter_map(|r| {
                        let ok = r.get_ref().split('/').count() == 2 && !r.get_ref().contains(' ');
                        if !ok {
                            self.err(r.span(), format!("`{}` is not an owner/name repository", r.get_ref()), Some("e.g. \"acme/api\""));
                        }
                        ok.then(|| r.into_inner())
                    })
                    .collect()
            })
            .unwrap_or_default();

        let notify = self.notify(raw.notify);
        let path_rules = self.paths(raw.paths);
        let review = self.review(raw.review, &notify);
        let attestations = self.attestations(raw.attestations);

        if raw.signing.required && trust == Trust::Policy && keys.is_empty() && allowed.is_none() && self.diags.is_empty() {
            self.warnings.push(Diagnostic {
                file: self.path.to_path_buf(),
                line: 1,
                column: 1,
                message: "signing.required is on but no keys are pinned: every signed commit will be `unknown-key`".into(),
                hint: Some("add openpgp_keys or ssh_allowed_signers under [signing]".into()),
            });
        }

        if !self.diags.is_empty() {
            // In file order, the policy's own problems first.
            let policy_file = self.path.to_path_buf();
            self.diags.sort_by_key(|d| (d.file != policy_file, d.file.clone(), d.line, d.column));
            return Err(PolicyError { diagnostics: self.diags });
        }
        Ok(Policy {
            path: self.path.to_path_buf(),
            digest: hex::encode(hasher.finalize()),
            mode: raw.mode.unwrap_or(Mode::Enforce),
            baseline: raw.baseline.map(|b| b.into_inner()),
            baseline_location,
            signing: Signing {
                required: raw.signing.required,
                trust,
                openpgp_policy,
                openpgp_keys: keys,
                ssh_allowed_signers: allowed,
                match_committer: raw.signing.match_committer,
                exempt_identities: raw.signing.exempt_identities.into_iter().map(|s| s.into_inner()).collect(),
                mode: raw.signing.mode,
            },
            commits: Commits {
                required_trailers: raw.commits.required_trailers,
                signoff_matches_author: raw.commits.signoff_matches_author,
                subject_pattern,
                max_subject_length,
                allowed_email_domains: raw
                    .commits
                    .allowed_email_domains
                    .iter()
                    .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                    .collect(),
                mode: raw.commits.mode,
            },
            branches,
            rules,
            roles,
            github_repositories,
            require_ledger: raw.audit.require_ledger,
            environments,
            notify,
            paths: path_rules,
            codeowners: raw.codeowners.is_some_and(|c| c.enabled),
            ci_issuers,
            review,
            attestations,
            warnings: self.warnings,
            weak_key_checks: self.weak_key_checks,
        })
    }

    /// `[review]`, checked; defaults where a key is missing.
    fn attestations(&mut self, raw: schema::RawAttestations) -> Attestations {
        let mut a = Attestations { enabled: raw.enabled.unwrap_or(false), ..Attestations::default() };
        if let Some(r) = raw.repository {
            let url = r.get_ref().trim_end_matches('/');
            let host_ok = url
                .strip_prefix("https://")
                .is_some_and(|rest| rest.split('/').next().is_some_and(|h| !h.is_empty()) && !rest.contains('@'));
            if host_ok {
                a.repository = Some(url.to_string());
            } else {
                self.err(
                    r.span(),
                    format!("[attestations] repository must be the repository's https URL (no credentials), not `{}`", r.get_ref()),
                    Some("repository = \"https://git.example.com/acme/api\""),
                );
            }
        }
        a.policy_uri = raw.policy_uri.map(|p| p.into_inner());
        for (name, rules) in raw.properties {
            let ok_name = name
                .strip_prefix("ORG_SOURCE_")
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
            if !ok_name {
                self.err(
                    rules.span(),
                    format!("[attestations.properties] `{name}` is not an organisation property: ORG_SOURCE_ and upper-case words"),
                    Some("ORG_SOURCE_SIGNED_OFF = [\"commits.signoff\"]"),
                );
                continue;
            }
            let mut list = Vec::new();
            for r in rules.get_ref() {
                match Rule::from_id(r.get_ref()) {
                    Some(rule) if matches!(rule.kind(), Kind::Commit | Kind::Ref | Kind::Enforced) => list.push(rule),
                    Some(_) => self.err(
                        r.span(),
                        format!(
                            "[attestations.properties] {name}: `{}` is found after the fact by reports, not enforced as a revision lands",
                            r.get_ref()
                        ),
                        Some("name rules the hooks enforce: signing.*, commits.*, branches.*, paths.signer, policy.admin, refs.*"),
                    ),
                    None => self.err(
                        r.span(),
                        format!("[attestations.properties] {name}: `{}` is not a rule id", r.get_ref()),
                        Some("see `Rule ids` in the README"),
                    ),
                }
            }
            if list.is_empty() {
                self.err(rules.span(), format!("[attestations.properties] {name} names no rule: it would hold for nothing"), None);
                continue;
            }
            a.properties.insert(name, list);
        }
        a
    }

    fn review(&mut self, raw: schema::RawReview, sinks: &[notify::Sink]) -> Review {
        let mut r = Review::default();
        if let Some(d) = &raw.digest {
            match d.get_ref().as_str() {
                "daily" => r.digest = Some(DigestEvery::Day),
                "weekly" => r.digest = Some(DigestEvery::Week),
                "off" => r.digest = None,
                other => self.err(d.span(), format!("[review] digest must be \"daily\", \"weekly\" or \"off\", not `{other}`"), None),
            }
        }
        for s in &raw.digest_sinks {
            if !sinks.iter().any(|k| &k.name == s.get_ref()) {
                let names: Vec<&str> = sinks.iter().map(|k| k.name.as_str()).collect();
                self.err(
                    s.span(),
                    format!("[review] digest_sinks names `{}`, which no [[notify]] entry is", s.get_ref()),
                    Some(&format!("sinks: {}", names.join(", "))),
                );
            }
        }
        r.digest_sinks = raw.digest_sinks.iter().map(|s| s.get_ref().clone()).collect();
        if let Some(list) = raw.production {
            r.production = Vec::new();
            for p in list {
                match environment_glob(p.get_ref()) {
                    Ok(_) => r.production.push(p.into_inner()),
                    Err(e) => self.err(p.span(), format!("[review] production: bad pattern `{}`: {e}", p.get_ref()), None),
                }
            }
        }
        let mut count = |v: &Option<toml::Spanned<i64>>, key: &str, min: i64, into: &mut usize| {
            if let Some(n) = v {
                if *n.get_ref() < min {
                    self.err(n.span(), format!("[review] {key} must be at least {min}"), None);
                } else {
                    *into = *n.get_ref() as usize;
                }
            }
        };
        count(&raw.min_history, "min_history", 1, &mut r.min_history);
        count(&raw.refusal_burst, "refusal_burst", 2, &mut r.refusal_burst);
        let mut days = r.learning_days as usize;
        count(&raw.learning_days, "learning_days", 0, &mut days);
        r.learning_days = days as i64;
        if let Some(s) = &raw.rare_share {
            if !(0.0..0.5).contains(s.get_ref()) {
                self.err(s.span(), "[review] rare_share must be at least 0 and below 0.5 (e.g. 0.02)".into(), None);
            } else {
                r.rare_share = *s.get_ref();
            }
        }
        if let Some(w) = &raw.refusal_window {
            match crate::time::parse_duration(w.get_ref()) {
                Ok(d) if d.as_secs() > 0 => r.refusal_window = d,
                _ => self.err(w.span(), format!("[review] refusal_window must be a duration like 10m, not `{}`", w.get_ref()), None),
            }
        }
        for o in &raw.off {
            match Rule::from_id(o.get_ref()).filter(|r| r.is_anomaly()) {
                Some(rule) => r.off.push(rule),
                None => {
                    let known: Vec<&str> = Rule::ALL.iter().filter(|r| r.is_anomaly()).map(|r| r.id()).collect();
                    self.err(
                        o.span(),
                        format!("[review] off names `{}`, which is no anomaly", o.get_ref()),
                        Some(&format!("anomalies: {}", known.join(", "))),
                    );
                }
            }
        }
        r
    }

    /// Logins and teams, each that is neither an error at its place.
    fn principals(&mut self, list: &[toml::Spanned<String>], key: &str) -> Vec<Principal> {
        list.iter()
            .filter_map(|p| {
                let parsed = Principal::parse(p.get_ref());
                if parsed.is_none() {
                    self.err(
                        p.span(),
                        format!("`{}` in {key} is neither a login nor a team", p.get_ref()),
                        Some("use a forge login (\"alice\"), a GitHub team (\"team:acme/sre\") or a GitLab group (\"group:acme/sre\")"),
                    );
                }
                parsed
            })
            .collect()
    }

    /// `[[paths]]`: patterns compiled, signers and approvers checked.
    fn paths(&mut self, raw: Vec<schema::RawPathRule>) -> Vec<paths::PathRule> {
        let mut out = Vec::new();
        for r in raw {
            let pattern = match paths::PathPattern::new(r.pattern.get_ref()) {
                Ok(p) => p,
                Err(why) => {
                    self.err(
                        r.pattern.span(),
                        format!("`{}`: {why}", r.pattern.get_ref()),
                        Some("e.g. \".github/workflows/**\", \"*.tf\" or \"/deploy/\""),
                    );
                    continue;
                }
            };
            for s in &r.signers {
                let v = s.get_ref();
                if v.trim().is_empty() || v.contains(char::is_whitespace) {
                    self.err(
                        s.span(),
                        format!("`{v}` in signers is not an identity"),
                        Some("an email (\"alice@example.com\"), an SSH principal, or \"role:NAME\""),
                    );
                }
            }
            let approvers = self.principals(&r.approvers, "approvers");
            let origin = self.location(r.pattern.span());
            if r.signers.is_empty() && r.approvers.is_empty() {
                self.warnings.push(Diagnostic {
                    file: origin.file.clone(),
                    line: origin.line,
                    column: origin.column,
                    message: format!("[[paths]] `{}` names neither signers nor approvers: it protects nothing", r.pattern.get_ref()),
                    hint: Some("add signers = [\"…\"] and/or approvers = [\"…\"]".into()),
                });
            }
            out.push(paths::PathRule {
                pattern,
                signers: r.signers.into_iter().map(|s| s.into_inner()).collect(),
                approvers,
                mode: r.mode,
                origin: origin.to_string(),
            });
        }
        out
    }

    fn read_key(&mut self, path: &Path, span: Range<usize>, origin: &Location) -> Option<KeyFile> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                if !text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                    self.err(
                        span,
                        format!("{} is not an armored OpenPGP public key", path.display()),
                        Some("export it with `gpg --armor --export KEYID`"),
                    );
                    return None;
                }
                Some(KeyFile { path: path.to_path_buf(), armored: bytes, origin: origin.to_string() })
            }
            Err(e) => {
                self.err(
                    span,
                    format!("key file {}: {e}", path.display()),
                    Some("paths are relative to the policy file; export keys with `gpg --armor --export KEYID > keys/NAME.asc`"),
                );
                None
            }
        }
    }
}

fn diag_at(file: &Path, text: &[u8], span: Range<usize>, message: String, hint: Option<String>) -> Diagnostic {
    let (line, column) = line_col(text, span.start);
    Diagnostic { file: file.to_path_buf(), line, column, message, hint }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &[u8], at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

fn clean_toml_message(m: &str) -> String {
    m.trim().replace('\n', " ")
}

fn toml_hint(m: &str) -> Option<String> {
    if m.contains("unknown field") || m.contains("unknown variant") {
        // toml says "unknown field `requird`, expected one of `required`, `trust`, …"
        // (and "unknown variant `enforced`, expected one of `enforce`, …").
        let quoted: Vec<&str> = m.split('`').skip(1).step_by(2).collect();
        let nearest = quoted.split_first().and_then(|(unknown, known)| {
            known.iter().map(|k| (strsim::levenshtein(unknown, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min_by_key(|(d, _)| *d)
        });
        Some(match nearest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None => "see the policy reference in README.md, or `git-audit init --stdout` for every option".into(),
        })
    } else if m.contains("missing field `version`") {
        Some("the first line of a policy is `version = 1`".into())
    } else if m.contains("invalid type") {
        Some("check the value's type: strings are quoted, lists use [ ], true/false are unquoted".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_str(text, Path::new("/nonexistent/.git-audit.toml"))
    }

    #[test]
    fn starter_policy_is_valid() {
        let p = load(STARTER).expect("starter policy must load");
        assert_eq!(p.mode, Mode::Warn);
        assert!(p.signing.required);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = load("version = 1\n[signing]\nrequird = true\n").unwrap_err();
        let d = &err.diagnostics[0];
        assert_eq!((d.line, d.column), (3, 1), "{d}");
        assert!(d.message.contains("requird"), "{d}");
    }

    #[test]
    fn wrong_type_and_bad_variant() {
        let err = load("version = 1\n[signing]\nrequired = \"yes\"\n").unwrap_err();
        assert_eq!(err.diagnostics[0].line, 3);
        let err = load("version = 1\nmode = \"warm\"\n").unwrap_err();
        assert_eq!(err.diagnostics[0].line, 2);
        assert!(err.diagnostics[0].message.contains("warn"), "{}", err.diagnostics[0]);
    }

    #[test]
    fn collects_every_validation_problem() {
        let text = "version = 2\nbaseline = \"nothex\"\n[signing]\nopenpgp_keys = [\"missing.asc\"]\n[commits]\nsubject_pattern = '(unclosed'\n[rules]\n\"commits.nope\" = \"warn\"\n";
        let err = load(text).unwrap_err();
        let lines: Vec<usize> = err.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 6, 8], "{err}");
        assert_eq!(err.diagnostics[2].column, 17);
        assert_eq!(err.diagnostics[4].column, 2);
        assert!(err.to_string().contains("missing.asc"));
    }

    #[test]
    fn mode_precedence() {
        let p = load("version = 1\nmode = \"warn\"\n[commits]\nmode = \"enforce\"\n[rules]\n\"commits.subject\" = \"off\"\n[[branches]]\npattern = \"refs/heads/main\"\nmode = \"warn\"\n").unwrap();
        assert_eq!(p.mode_for(Rule::SigningRequired, None), Mode::Warn);
        assert_eq!(p.mode_for(Rule::CommitsTrailer, None), Mode::Enforce);
        assert_eq!(p.mode_for(Rule::CommitsSubject, None), Mode::Off);
        let main = p.branch_rule("refs/heads/main");
        assert!(main.is_some());
        assert_eq!(p.mode_for(Rule::CommitsTrailer, main), Mode::Warn);
        assert!(p.branch_rule("refs/heads/dev").is_none());
    }

    #[test]
    fn digest_does_not_depend_on_where_the_policy_is() -> Result<(), Box<dyn std::error::Error>> {
        let text = "version = 1\n[signing]\nopenpgp_keys = [\"keys/\"]\n";
        let key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n";
        let mut digests = Vec::new();
        for _ in 0..2 {
            let dir = tempfile::tempdir()?;
            std::fs::create_dir_all(dir.path().join("keys"))?;
            std::fs::write(dir.path().join("keys/a.asc"), key)?;
            digests.push(Policy::from_str(text, &dir.path().join(DEFAULT_FILE))?.digest);
        }
        assert_eq!(digests[0], digests[1]);
        Ok(())
    }

    #[test]
    fn organisation_properties_name_enforced_rules_only() {
        let p = load("version = 1\n[attestations.properties]\nORG_SOURCE_SIGNED = [\"signing.required\"]\n").unwrap();
        assert_eq!(p.attestations.properties.get("ORG_SOURCE_SIGNED"), Some(&vec![Rule::SigningRequired]));
        assert!(!p.configures(Rule::SigningRequired, None), "the policy does not require signatures");
        for (bad, said) in [
            ("ORG_SOURCE_REVIEWED = [\"pr.no-approval\"]", "found after the fact"),
            ("ORG_SOURCE_X = [\"no.such-rule\"]", "is not a rule id"),
            ("SIGNED = [\"signing.required\"]", "is not an organisation property"),
            ("ORG_SOURCE_EMPTY = []", "names no rule"),
        ] {
            let err = load(&format!("version = 1\n[attestations.properties]\n{bad}\n")).unwrap_err().to_string();
            assert!(err.contains(said), "{bad}: {err}");
        }
    }

    #[test]
    fn gitlab_groups_are_principals_with_their_full_path() {
        let g = Principal::parse("group:acme/platform/sre");
        assert_eq!(g, Some(Principal::Team { org: String::new(), slug: "acme/platform/sre".into() }));
        assert_eq!(g.map(|p| p.label()).as_deref(), Some("group:acme/platform/sre"));
        assert_eq!(Principal::parse("team:acme/sre").map(|p| p.label()).as_deref(), Some("team:acme/sre"));
        for bad in ["group:", "group:a//b", "group:../x", "group:a b"] {
            assert_eq!(Principal::parse(bad), None, "{bad}");
        }
        let p = load("version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"group:acme/sre\"]\n").unwrap();
        assert_eq!(p.teams(), vec![(String::new(), "acme/sre".to_string())]);
    }

    #[test]
    fn environments_parse_validate_and_match_first() {
        let p = load("version = 1\n[[environments]]\nname = \"prod*\"\ndeployers = [\"alice\", \"team:acme/sre\"]\napprovers = [\"team:acme/leads\"]\nrequired_approvals = 1\nbranches = [\"main\", \"release/*\"]\nrequire_signed_commits = true\n[[environments]]\nname = \"*\"\n").unwrap();
        let prod = p.environment_rule("production").unwrap();
        assert_eq!(prod.deployers, vec![Principal::Login("alice".into()), Principal::Team { org: "acme".into(), slug: "sre".into() }]);
        assert!(prod.prevent_self_approval, "the default");
        assert!(prod.allows_ref("main") && prod.allows_ref("refs/heads/release/2") && !prod.allows_ref("feature/x"));
        assert_eq!(p.environment_rule("staging").map(|e| e.pattern.as_str()), Some("*"));
        assert!(p.environment_rule("staging").is_some_and(|e| e.allows_ref("anything")));

        let err =
            load("version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"team:acme\"]\nrequired_approvals = 2\nbogus = 1\n")
                .unwrap_err();
        // Every problem at once: the unknown key and the two semantic ones, in file order.
        let found: Vec<(usize, bool)> = err.diagnostics.iter().map(|d| (d.line, d.message.contains("`bogus`"))).collect();
        assert_eq!(found, vec![(4, false), (5, false), (6, true)], "{err}");
        let err = load("version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"team:acme\"]\nrequired_approvals = 2\n")
            .unwrap_err();
        let lines: Vec<usize> = err.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![4, 5], "{err}");
        assert!(err.to_string().contains("neither a login nor a team") && err.to_string().contains("names no approvers"), "{err}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d".as_bytes(), 7), (2, 4));
        assert_eq!(line_col(b"", 5), (1, 1));
    }
}
