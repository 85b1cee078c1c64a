//! Deployments from any CI/CD system: `git-audit record deployment`. What the
//! command is not told it reads from the CI's own variables (GitHub Actions,
//! GitLab CI, Jenkins, CircleCI, Buildkite), checks it, and builds the
//! `deployment.recorded` event.

use sha2::{Digest, Sha256};

use crate::event::{DeployStatus, DeploymentRecorded};
use crate::policy::{EnvironmentRule, Principal};
use crate::rule::{Finding, Rule, Severity};

/// What the person (or the CI job) said on the command line.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub environment: Option<String>,
    pub sha: Option<String>,
    pub status: Option<DeployStatus>,
    pub repository: Option<String>,
    pub git_ref: Option<String>,
    pub actor: Option<String>,
    pub url: Option<String>,
    pub approved_by: Vec<String>,
    pub id: Option<String>,
}

/// Why a deployment cannot be recorded (exit 2): what was wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("no commit to record: pass --sha <commit id> (or run inside a CI that sets it: {vars})")]
    NoSha { vars: &'static str },
    #[error("--sha `{0}` is not a commit id: expected 40 (SHA-1) or 64 (SHA-256) hex digits")]
    BadSha(String),
    #[error("no environment: pass --environment NAME (e.g. production){hint}")]
    NoEnvironment { hint: &'static str },
    #[error("--repo `{0}` is not a repository name like owner/name")]
    BadRepository(String),
    #[error("--approved-by `{0}` is empty or has spaces; pass one login per --approved-by")]
    BadApprover(String),
}

/// A CI system and what its variables say.
struct Ci {
    name: &'static str,
    repository: Option<String>,
    sha: Option<String>,
    git_ref: Option<String>,
    actor: Option<String>,
    url: Option<String>,
    environment: Option<String>,
}

/// The variables each CI sets for the commit (named in the error when none is set).
const SHA_VARS: &str = "GITHUB_SHA, CI_COMMIT_SHA, GIT_COMMIT, CIRCLE_SHA1, BUILDKITE_COMMIT";

/// `owner/name` from a clone URL (`git@github.com:acme/api.git`, `https://host/acme/api`).
fn repository_from_url(url: &str) -> Option<String> {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = path.rsplit(['/', ':']);
    let name = parts.next()?;
    let owner = parts.next()?;
    (!owner.is_empty() && !name.is_empty() && !owner.contains('@')).then(|| format!("{owner}/{name}"))
}

fn detect(env: &dyn Fn(&str) -> Option<String>) -> Ci {
    let get = |k: &str| env(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let is = |k: &str| get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is("GITHUB_ACTIONS") {
        let url = match (get("GITHUB_SERVER_URL"), get("GITHUB_REPOSITORY"), get("GITHUB_RUN_ID")) {
            (Some(s), Some(r), Some(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
            _ => None,
        };
        // Gitea's and Forgejo's runners set GitHub's variables too, and their own flag.
        let name = if is("GITEA_ACTIONS") {
            "gitea-actions"
        } else if is("FORGEJO_ACTIONS") {
            "forgejo-actions"
        } else {
            "github-actions"
        };
        return Ci {
            name,
            repository: get("GITHUB_REPOSITORY"),
            sha: get("GITHUB_SHA"),
            git_ref: get("GITHUB_REF"),
            actor: get("GITHUB_TRIGGERING_ACTOR").or_else(|| get("GITHUB_ACTOR")),
            url,
            environment: None,
        };
    }
    if is("GITLAB_CI") {
        return Ci {
            name: "gitlab-ci",
            repository: get("CI_PROJECT_PATH"),
            sha: get("CI_COMMIT_SHA"),
            git_ref: get("CI_COMMIT_REF_NAME"),
            actor: get("GITLAB_USER_LOGIN"),
            url: get("CI_JOB_URL").or_else(|| get("CI_PIPELINE_URL")),
            environment: get("CI_ENVIRONMENT_NAME"),
        };
    }
    if is("CIRCLECI") {
        let repository = match (get("CIRCLE_PROJECT_USERNAME"), get("CIRCLE_PROJECT_REPONAME")) {
            (Some(o), Some(n)) => Some(format!("{o}/{n}")),
            _ => None,
        };
        return Ci {
            name: "circleci",
            repository,
            sha: get("CIRCLE_SHA1"),
            git_ref: get("CIRCLE_BRANCH"),
            actor: get("CIRCLE_USERNAME"),
            url: get("CIRCLE_BUILD_URL"),
            environment: None,
        };
    }
    if is("BUILDKITE") {
        return Ci {
            name: "buildkite",
            repository: get("BUILDKITE_REPO").as_deref().and_then(repository_from_url),
            sha: get("BUILDKITE_COMMIT"),
            git_ref: get("BUILDKITE_BRANCH"),
            actor: get("BUILDKITE_BUILD_CREATOR_EMAIL").or_else(|| get("BUILDKITE_BUILD_CREATOR")),
            url: get("BUILDKITE_BUILD_URL"),
            environment: None,
        };
    }
    if get("JENKINS_URL").is_some() {
        return Ci {
            name: "jenkins",
            repository: get("GIT_URL").as_deref().and_then(repository_from_url),
            sha: get("GIT_COMMIT"),
            // The Git plugin says `origin/main`.
            git_ref: get("GIT_BRANCH").map(|b| b.strip_prefix("origin/").unwrap_or(&b).to_string()),
            // BUILD_USER_ID needs the build-user-vars plugin.
            actor: get("BUILD_USER_ID"),
            url: get("BUILD_URL"),
            environment: None,
        };
    }
    Ci { name: "manual", repository: None, sha: None, git_ref: None, actor: None, url: None, environment: None }
}

/// A stable id for `(repository, environment, external id)`, negative so it
/// never meets a GitHub deployment id; random when there is no external id.
fn deployment_id(repository: &str, environment: &str, external: Option<&str>) -> i64 {
    let bytes: [u8; 8] = match external {
        Some(id) => {
            let h = Sha256::digest(format!("{repository}\n{environment}\n{id}").as_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[..8]);
            b
        }
        None => {
            let mut b = [0u8; 8];
            if getrandom::getrandom(&mut b).is_err() {
                b = crate::time::Timestamp::now().datetime().timestamp_micros().to_le_bytes();
            }
            b
        }
    };
    -1 - (u64::from_le_bytes(bytes) >> 2) as i64
}

/// Builds the event from what was said and, for the rest, the CI's variables.
pub fn build(said: Recording, env: &dyn Fn(&str) -> Option<String>) -> Result<DeploymentRecorded, RecordError> {
    let ci = detect(env);
    let sha = said.sha.or(ci.sha).ok_or(RecordError::NoSha { vars: SHA_VARS })?.trim().to_ascii_lowercase();
    if !(sha.len() == 40 || sha.len() == 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RecordError::BadSha(sha));
    }
    let environment =
        said.environment.or(ci.environment).map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).ok_or(RecordError::NoEnvironment {
            hint: if ci.name == "gitlab-ci" { " or set `environment:` on the GitLab job" } else { "" },
        })?;
    let repository = said.repository.or(ci.repository).unwrap_or_default();
    if !repository.is_empty()
        && (repository.split('/').count() != 2 || repository.split('/').any(str::is_empty) || repository.contains(char::is_whitespace))
    {
        return Err(RecordError::BadRepository(repository));
    }
    if let Some(bad) = said.approved_by.iter().find(|a| a.trim().is_empty() || a.trim().contains(char::is_whitespace)) {
        return Err(RecordError::BadApprover(bad.clone()));
    }
    let external_id = said.id.filter(|i| !i.trim().is_empty());
    Ok(DeploymentRecorded {
        source: ci.name.to_string(),
        deployment_id: deployment_id(&repository, &environment, external_id.as_deref()),
        repository,
        environment,
        sha,
        git_ref: said.git_ref.or(ci.git_ref),
        status: said.status.unwrap_or(DeployStatus::Success),
        actor: said.actor.or(ci.actor),
        url: said.url.or(ci.url),
        approved_by: said.approved_by.into_iter().map(|a| a.trim().to_string()).collect(),
        external_id,
        attestation: None,
    })
}

/// What the ledger knows about one deployment, for judging it. `None` means
/// unknown — and unknown is never a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub repository: String,
    pub id: i64,
    /// The id people use (see [`crate::ledger::query::Deployment::name`]).
    pub name: String,
    pub environment: String,
    pub deployer: Option<String>,
    /// Why the deployer is unknown, when it is.
    pub deployer_note: Option<String>,
    pub git_ref: Option<String>,
    /// Who approved (`None`: the approvals are not known).
    pub approvers: Option<Vec<String>>,
    /// Shipped commits without a good signature (`None`: what it shipped is not known).
    pub unsigned: Option<Vec<String>>,
    /// Ledger seqs that show the deployment and its approvals.
    pub evidence: Vec<u64>,
    /// Recorded on the recording job's word (no CI OIDC attestation); synced
    /// deployments come from the forge itself.
    pub asserted: bool,
    /// The approvals are the recording job's claim (`--approved-by`): they never
    /// count towards `required_approvals`.
    pub approvals_asserted: bool,
    /// Later records that contradicted the first (see
    /// [`crate::ledger::query::RecordHistory`]).
    pub corrections: Vec<String>,
}

/// A team's membership as recorded for the deployment's time (`None`: never recorded).
pub type Members<'a> = &'a dyn Fn(&str, &str) -> Option<TeamMembership>;

pub use crate::ledger::query::TeamMembership;

/// Where someone stands against a list of logins and teams.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing {
    Allowed,
    /// Known not to be allowed; `basis` names snapshots taken after the moment judged.
    NotAllowed {
        basis: Vec<String>,
    },
    /// Not a listed login, and some listed team's membership was never recorded.
    Unverified {
        missing: Vec<String>,
    },
}

/// Where `who` stands: a listed login, or a member of a listed team as recorded
/// (at the time, or in the earliest snapshot after it when none was earlier).
pub fn standing(who: &str, list: &[Principal], members: Members<'_>) -> Standing {
    let mut missing = Vec::new();
    let mut basis = Vec::new();
    for p in list {
        match p {
            Principal::Login(l) if l.eq_ignore_ascii_case(who) => return Standing::Allowed,
            Principal::Login(_) => {}
            Principal::Team { org, slug } => match members(org, slug) {
                Some(m) if m.members.iter().any(|x| x.eq_ignore_ascii_case(who)) => return Standing::Allowed,
                Some(m) if m.after => basis.push(format!("membership of {} as of {}, after the deployment", p.label(), m.as_of)),
                Some(_) => {}
                None => missing.push(p.label()),
            },
        }
    }
    if missing.is_empty() {
        Standing::NotAllowed { basis }
    } else {
        Standing::Unverified { missing }
    }
}

fn basis_note(basis: &[String]) -> String {
    if basis.is_empty() {
        String::new()
    } else {
        format!(" ({})", basis.join("; "))
    }
}

const UNVERIFIED_HINT: &str = "run `git-audit sync` with this policy so the team's members are recorded; a team the token cannot read (members: read) stays unverifiable";

/// Judges one deployment against its environment's rule. What cannot be
/// known (a team never recorded, approvals the forge no longer has) is a
/// `*-unverified` warning, never a violation; what is known to break the rule
/// is a finding of `severity`, naming the membership it was judged by.
pub fn judge(f: &Facts, rule: &EnvironmentRule, severity: Severity, members: Members<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = if f.name.is_empty() { f.id.to_string() } else { f.name.clone() };
    let subject = format!("{} {} deployment {name}", f.repository, f.environment);
    let mut add = |r: Rule, sev: Severity, message: String| {
        let mut finding = Finding { subject: Some(subject.clone()), evidence: f.evidence.clone(), ..Finding::new(r, sev, message) };
        if r.is_unverified() {
            finding.fix = Some(UNVERIFIED_HINT.into());
        }
        out.push(finding);
    };
    for c in &f.corrections {
        add(Rule::DeployRecordChanged, Severity::Warning, format!("{c}; judged on what was first recorded"));
    }
    if rule.require_attested && f.asserted {
        add(
            Rule::DeployUnattested,
            severity,
            format!(
                "recorded on the recording job's word: no CI OIDC token attested it, and {} requires attested deployments",
                f.environment
            ),
        );
    }
    if !rule.deployers.is_empty() {
        match &f.deployer {
            Some(d) => match standing(d, &rule.deployers, members) {
                Standing::Allowed => {}
                Standing::NotAllowed { basis } => {
                    add(Rule::DeployDeployerNotAllowed, severity, format!("{d} may not deploy to {}{}", f.environment, basis_note(&basis)))
                }
                Standing::Unverified { missing } => add(
                    Rule::DeployDeployerUnverified,
                    Severity::Warning,
                    format!(
                        "could not verify that {d} may deploy to {}: not a listed deployer, and the membership of {} was never recorded",
                        f.environment,
                        missing.join(", ")
                    ),
                ),
            },
            None => add(
                Rule::DeployDeployerNotAllowed,
                severity,
                format!("the deployer is unknown{}", f.deployer_note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()),
            ),
        }
    }
    if !rule.branch_patterns.is_empty() {
        match &f.git_ref {
            Some(r) if rule.allows_ref(r) => {}
            Some(r) => add(
                Rule::DeployRefNotAllowed,
                severity,
                format!("{r} may not be deployed to {} (allowed: {})", f.environment, rule.branch_patterns.join(", ")),
            ),
            None => add(Rule::DeployRefNotAllowed, severity, "the deployed ref is unknown".into()),
        }
    }
    match &f.approvers {
        None if rule.required_approvals > 0 => add(
            Rule::DeployApproverUnverified,
            Severity::Warning,
            "could not verify its approvals: they were not recorded (the forge no longer returns them)".into(),
        ),
        None => {}
        Some(list) => {
            let mut valid = 0u32;
            let mut unverified = 0u32;
            for a in list {
                let is_self = f.deployer.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(a));
                let stand = if rule.approvers.is_empty() { Standing::Allowed } else { standing(a, &rule.approvers, members) };
                match &stand {
                    Standing::Allowed => {}
                    Standing::NotAllowed { basis } => add(
                        Rule::DeployApproverNotAllowed,
                        severity,
                        format!("{a} may not approve deployments to {}{}", f.environment, basis_note(basis)),
                    ),
                    Standing::Unverified { missing } => add(
                        Rule::DeployApproverUnverified,
                        Severity::Warning,
                        format!(
                            "could not verify that {a} may approve deployments to {}: not a listed approver, and the membership of {} was never recorded",
                            f.environment,
                            missing.join(", ")
                        ),
                    ),
                }
                if is_self && rule.prevent_self_approval {
                    add(Rule::DeploySelfApproval, severity, format!("{a} approved their own deployment"));
                    continue;
                }
                match stand {
                    Standing::Allowed => valid += 1,
                    Standing::Unverified { .. } => unverified += 1,
                    Standing::NotAllowed { .. } => {}
                }
            }
            // Approvals that could not be verified neither count nor make a violation.
            // Approvals the recording job asserted count for nothing.
            let asserted = if f.approvals_asserted { valid + unverified } else { 0 };
            let (valid, unverified) = if f.approvals_asserted { (0, 0) } else { (valid, unverified) };
            if valid + unverified < rule.required_approvals {
                let note = match asserted {
                    0 => String::new(),
                    n => format!(
                        "; {n} approval(s) the recording job asserted (--approved-by) do not count: approvals count when the forge records them (sync)"
                    ),
                };
                add(
                    Rule::DeployNoApproval,
                    severity,
                    format!("{valid} of the {} required approval(s) by allowed approvers{note}", rule.required_approvals),
                );
            }
        }
    }
    if rule.require_signed_commits {
        match &f.unsigned {
            Some(bad) if bad.is_empty() => {}
            Some(bad) => add(
                Rule::DeployUnsignedCommits,
                severity,
                format!(
                    "shipped {} commit(s) without a good signature: {}",
                    bad.len(),
                    bad.iter().map(|c| crate::git::short_id(c)).collect::<Vec<_>>().join(", ")
                ),
            ),
            None => add(
                Rule::DeployUnsignedCommits,
                severity,
                "what it shipped is unknown (the commits are not in the local repository: git fetch)".into(),
            ),
        }
    }
    out
}

/// The `deployment.failed` notice for a deployment that ended in failure or error.
pub fn failed_notice(d: &DeploymentRecorded) -> crate::notify::Notice {
    failure(&d.repository, &d.environment, &d.sha, d.status.as_str(), d.actor.as_deref(), d.url.as_deref(), &d.source)
}

/// The `deployment.failed` notice for a deployment status synced from a forge.
pub fn failure(
    repository: &str,
    environment: &str,
    sha: &str,
    status: &str,
    actor: Option<&str>,
    url: Option<&str>,
    source: &str,
) -> crate::notify::Notice {
    let summary = format!(
        "deployment of {} to {environment}{} ended in {status}{}",
        crate::git::short_id(sha),
        if repository.is_empty() { String::new() } else { format!(" ({repository})") },
        actor.map(|a| format!(", deployed by {a}")).unwrap_or_default()
    );
    use crate::notify::body;
    crate::notify::Notice::new(
        "deployment.failed",
        body::Data {
            repository: repository.to_string(),
            summary,
            ledger: None,
            detail: body::Detail::DeploymentFailed(body::DeploymentFailed {
                environment: environment.to_string(),
                sha: sha.to_string(),
                status: status.to_string(),
                actor: actor.map(str::to_string),
                url: url.map(str::to_string),
                source: source.to_string(),
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Vars = &'static [(&'static str, &'static str)];

    fn env_of(pairs: Vars) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn each_ci_fills_what_it_knows() {
        let sha = "a".repeat(40);
        let cases: [(Vars, &str, &str); 7] = [
            (&[("GITHUB_ACTIONS", "true"), ("GITHUB_REPOSITORY", "acme/api")], "github-actions", "acme/api"),
            // Gitea's and Forgejo's runners set GitHub's variables too.
            (&[("GITHUB_ACTIONS", "true"), ("GITEA_ACTIONS", "true"), ("GITHUB_REPOSITORY", "acme/api")], "gitea-actions", "acme/api"),
            (&[("GITHUB_ACTIONS", "true"), ("FORGEJO_ACTIONS", "true"), ("GITHUB_REPOSITORY", "acme/api")], "forgejo-actions", "acme/api"),
            (
                &[
                    ("GITLAB_CI", "true"),
                    ("CI_PROJECT_PATH", "acme/api"),
                    ("GITLAB_USER_LOGIN", "dave"),
                    ("CI_ENVIRONMENT_NAME", "production"),
                ],
                "gitlab-ci",
                "acme/api",
            ),
            (
                &[("JENKINS_URL", "http://ci/"), ("GIT_URL", "git@github.com:acme/api.git"), ("GIT_BRANCH", "origin/main")],
                "jenkins",
                "acme/api",
            ),
            (&[("CIRCLECI", "true"), ("CIRCLE_PROJECT_USERNAME", "acme"), ("CIRCLE_PROJECT_REPONAME", "api")], "circleci", "acme/api"),
            (&[("BUILDKITE", "true"), ("BUILDKITE_REPO", "https://github.com/acme/api.git")], "buildkite", "acme/api"),
        ];
        for (vars, name, repo) in cases {
            let said = Recording { sha: Some(sha.clone()), environment: Some("production".into()), ..Recording::default() };
            let d = build(said, &env_of(vars)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((d.source.as_str(), d.repository.as_str()), (name, repo));
            assert!(d.deployment_id < 0);
        }
        let jenkins = build(
            Recording { sha: Some(sha.clone()), environment: Some("p".into()), ..Recording::default() },
            &env_of(&[("JENKINS_URL", "x"), ("GIT_BRANCH", "origin/main")]),
        );
        assert_eq!(jenkins.ok().and_then(|d| d.git_ref).as_deref(), Some("main"));
    }

    #[test]
    fn bad_input_is_named() {
        let none = env_of(&[]);
        assert!(matches!(
            build(Recording { environment: Some("p".into()), ..Recording::default() }, &none),
            Err(RecordError::NoSha { .. })
        ));
        let bad = Recording { sha: Some("xyz".into()), environment: Some("p".into()), ..Recording::default() };
        assert_eq!(build(bad, &none), Err(RecordError::BadSha("xyz".into())));
        let no_env = Recording { sha: Some("b".repeat(64)), ..Recording::default() };
        assert!(matches!(build(no_env, &none), Err(RecordError::NoEnvironment { .. })));
        let bad_repo =
            Recording { sha: Some("b".repeat(40)), environment: Some("p".into()), repository: Some("nope".into()), ..Recording::default() };
        assert_eq!(build(bad_repo, &none), Err(RecordError::BadRepository("nope".into())));
    }

    #[test]
    fn judging_states_unknowns_and_counts_only_allowed_approvals() {
        let policy = crate::policy::Policy::from_str(
            "version = 1\n[[environments]]\nname = \"production\"\ndeployers = [\"alice\", \"team:acme/sre\"]\napprovers = [\"bob\", \"alice\"]\nrequired_approvals = 1\nbranches = [\"main\"]\nrequire_signed_commits = true\n",
            std::path::Path::new("/x/.git-audit.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rule = policy.environment_rule("production").unwrap_or_else(|| panic!("rule"));
        let clean = Facts {
            repository: "acme/api".into(),
            id: 1,
            environment: "production".into(),
            deployer: Some("alice".into()),
            git_ref: Some("main".into()),
            approvers: Some(vec!["bob".into()]),
            unsigned: Some(vec![]),
            ..Facts::default()
        };
        let none = |_: &str, _: &str| -> Option<TeamMembership> { None };
        assert!(judge(&clean, rule, Severity::Error, &none).is_empty());
        let rules = |f: &Facts| judge(f, rule, Severity::Error, &none).into_iter().map(|x| x.rule.id()).collect::<Vec<_>>();
        let bad = Facts {
            deployer: Some("mallory".into()),
            git_ref: Some("feature/x".into()),
            approvers: Some(vec!["mallory".into(), "carol".into()]),
            unsigned: Some(vec!["c".repeat(40)]),
            ..clean.clone()
        };
        assert_eq!(
            rules(&bad),
            vec![
                "deploy.deployer-unverified",
                "deploy.ref-not-allowed",
                "deploy.approver-not-allowed",
                "deploy.self-approval",
                "deploy.approver-not-allowed",
                "deploy.no-approval",
                "deploy.unsigned-commits"
            ]
        );
        let self_approved = Facts { approvers: Some(vec!["alice".into()]), ..clean.clone() };
        assert_eq!(rules(&self_approved), vec!["deploy.self-approval", "deploy.no-approval"]);
        let unknown = Facts { deployer: None, git_ref: None, approvers: None, unsigned: None, ..clean.clone() };
        assert_eq!(
            rules(&unknown),
            vec!["deploy.deployer-not-allowed", "deploy.ref-not-allowed", "deploy.approver-unverified", "deploy.unsigned-commits"],
            "unknown is never a pass, and what was never recorded is not a violation"
        );
        let f = judge(&bad, rule, Severity::Error, &none).remove(0);
        assert_eq!(f.severity, Severity::Warning, "could not verify is a warning");
        assert!(f.message.contains("team:acme/sre") && f.message.contains("never recorded"), "{}", f.message);
        // A member of the team (as of the deployment) may deploy; a known non-member may not.
        let sre = |org: &str, slug: &str| -> Option<TeamMembership> {
            (org == "acme" && slug == "sre").then(|| TeamMembership {
                members: vec!["zoe".into()],
                as_of: "2026-01-01T00:00:00Z".into(),
                after: false,
                seq: 1,
            })
        };
        let by_zoe = Facts { deployer: Some("zoe".into()), ..clean.clone() };
        assert!(judge(&by_zoe, rule, Severity::Error, &sre).is_empty());
        let by_yan = Facts { deployer: Some("yan".into()), ..clean.clone() };
        let msg = judge(&by_yan, rule, Severity::Error, &sre).remove(0).message;
        assert_eq!(msg, "yan may not deploy to production");
        // Judged by a snapshot taken after the deployment: said so.
        let later = |_: &str, _: &str| -> Option<TeamMembership> {
            Some(TeamMembership { members: vec!["zoe".into()], as_of: "2026-12-01T00:00:00Z".into(), after: true, seq: 9 })
        };
        assert!(judge(&by_zoe, rule, Severity::Error, &later).is_empty());
        let msg = judge(&by_yan, rule, Severity::Error, &later).remove(0).message;
        assert_eq!(msg, "yan may not deploy to production (membership of team:acme/sre as of 2026-12-01T00:00:00Z, after the deployment)");
    }

    #[test]
    fn the_same_external_id_is_the_same_deployment() {
        assert_eq!(deployment_id("a/b", "prod", Some("42")), deployment_id("a/b", "prod", Some("42")));
        assert_ne!(deployment_id("a/b", "prod", Some("42")), deployment_id("a/b", "staging", Some("42")));
        assert!(deployment_id("a/b", "prod", None) < 0 && deployment_id("a/b", "prod", Some("x")) < 0);
    }
}
