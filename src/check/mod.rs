//! Rules over commits → findings → a decision.
//!
//! A policy violation is a [`Finding`] (rule id, severity, message, fix), never
//! an error: errors are for when git-audit cannot do its job.

use serde::Serialize;

pub use crate::rule::{CommitVerdict, Finding, Rule, Severity};

use crate::event::{CommitVerified, Payload, PolicyLoaded};
use crate::git::{ParsedCommit, Repo};
use crate::ledger::NewEntry;
use crate::policy::{BranchRule, Policy};
use crate::signature::allowed_signers::identity_matches;
use crate::signature::{SignatureChecker, SignatureFormat, SignatureStatus, Verdict};

/// Everything the checks concluded about one commit.
#[derive(Debug, Clone, Serialize)]
pub struct CommitReport {
    pub id: String,
    pub subject: String,
    pub verdict: CommitVerdict,
    pub signature: Verdict,
    pub findings: Vec<Finding>,
    pub author: Option<String>,
    pub committer: Option<String>,
    pub parents: usize,
    /// Set when an `exempt_identities` entry let this commit skip the signing rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt: Option<String>,
}

/// Applies a policy's commit rules, verifying signatures as it goes.
pub struct CommitChecker<'p> {
    policy: &'p Policy,
    signatures: SignatureChecker,
    /// The pusher identity the server established (hooks only): an exempt
    /// identity holds for an unsigned commit only when it is the pusher.
    pusher: Option<String>,
}

impl<'p> CommitChecker<'p> {
    pub fn new(policy: &'p Policy, signatures: SignatureChecker) -> CommitChecker<'p> {
        CommitChecker { policy, signatures, pusher: None }
    }

    /// The pusher the server established (see [`CommitChecker::pusher`]).
    pub fn with_pusher(mut self, pusher: Option<String>) -> CommitChecker<'p> {
        self.pusher = pusher;
        self
    }

    pub fn signatures(&mut self) -> &mut SignatureChecker {
        &mut self.signatures
    }

    /// Checks one commit; `branch` is the `[[branches]]` entry of the ref it is
    /// being pushed to, when known (it can change how findings count).
    pub fn check(&mut self, id: &str, commit: &ParsedCommit, branch: Option<&BranchRule>) -> CommitReport {
        let committer_time = commit.committer.as_ref().map_or(0, |c| c.time);
        let verdict = if commit.duplicate_signature {
            // git hands both signatures to gpg and reports E; a second copy must
            // not let anyone re-hash a signed commit into a new id.
            let format = commit.signature.as_deref().and_then(SignatureFormat::detect);
            Verdict::new(SignatureStatus::Error, format).with_detail("the commit carries more than one signature header")
        } else {
            self.signatures.check(commit.signature.as_deref(), &commit.payload, committer_time)
        };
        let mut out = Findings { policy: self.policy, branch, list: Vec::new() };
        let committer_email = commit.committer.as_ref().map(|c| c.email.as_str()).unwrap_or("");
        let author_email = commit.author.as_ref().map(|a| a.email.as_str()).unwrap_or("");
        let policy = self.policy;

        for p in &commit.problems {
            out.add(Rule::CommitsMalformed, format!("malformed commit object: {p}"), None);
        }

        // Signing.
        // An email is what the committer writes: an exemption holds only with a
        // good signature by a pinned key, or for the pusher the server established.
        let good = verdict.status == SignatureStatus::Good;
        let claimed = policy.exemption_for(committer_email);
        let pushed_by_it = self.pusher.as_deref().filter(|p| claimed.is_some() && policy.exemption_for(p).is_some());
        let exempt = claimed.filter(|_| good || pushed_by_it.is_some()).map(|p| match pushed_by_it {
            Some(who) if !good => format!("committer {committer_email} matches exempt identity `{p}`, pushed by {who}"),
            _ => format!("committer {committer_email} matches exempt identity `{p}`, signed by a pinned key"),
        });
        if policy.signing.required && !good && exempt.is_none() {
            let detail = verdict.detail.clone().unwrap_or_default();
            let unvouched = claimed
                .map(|p| format!("; the committer claims exempt identity `{p}`, but an email alone is never enough (it needs a good signature by a pinned key, or a push by that identity)"))
                .unwrap_or_default();
            out.add(
                Rule::SigningRequired,
                format!("signature {}: {detail}{unvouched}", verdict.status.as_str()),
                Some(signing_fix(policy, &verdict, committer_email)),
            );
        }
        if verdict.status == SignatureStatus::Good && !verdict.weak.is_empty() {
            out.add(
                Rule::SigningWeakAlgorithm,
                format!("accepted under openpgp_policy = \"gnupg\", but {}", verdict.weak.join("; ")),
                verdict.fix.clone(),
            );
        }
        if policy.signing.match_committer && good && exempt.is_none() && !verdict.binds(committer_email) {
            let ids = if verdict.identities.is_empty() { "none".to_string() } else { verdict.identities.join(", ") };
            out.add(
                Rule::SigningIdentity,
                format!("signed by a key for {ids}, but the committer is {committer_email}"),
                Some(format!(
                    "commit as an identity of the key (`git config user.email {}`) or sign with a key bound to {committer_email}",
                    verdict.identities.first().map(String::as_str).unwrap_or("<key email>")
                )),
            );
        }

        // Metadata.
        let message = commit.message_text();
        let trailers = trailers(&commit.message);
        for key in &policy.commits.required_trailers {
            if !trailers.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                let fix = if key.eq_ignore_ascii_case("Signed-off-by") {
                    "add it with `git commit --amend -s --no-edit`".to_string()
                } else {
                    format!("add it with `git commit --amend --trailer '{key}: …'`")
                };
                out.add(Rule::CommitsTrailer, format!("missing trailer `{key}:`"), Some(fix));
            }
        }
        if policy.commits.signoff_matches_author {
            let signoffs: Vec<&String> = trailers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("Signed-off-by")).map(|(_, v)| v).collect();
            let named = signoffs.iter().any(|v| email_of(v).is_some_and(|e| e.eq_ignore_ascii_case(author_email)));
            let required = policy.commits.required_trailers.iter().any(|k| k.eq_ignore_ascii_case("Signed-off-by"));
            // Without any sign-off, a required Signed-off-by is already a commits.trailer finding.
            if !(named || signoffs.is_empty() && required) {
                out.add(
                    Rule::CommitsSignoff,
                    format!("no Signed-off-by trailer names the author {author_email}"),
                    Some("sign off as the author: `git commit --amend -s --no-edit` with user.email set to the author's".into()),
                );
            }
        }
        let subject = commit.subject();
        if let Some(re) = &policy.commits.subject_pattern {
            if !re.is_match(&subject) {
                out.add(
                    Rule::CommitsSubject,
                    format!("subject does not match `{}`", re.as_str()),
                    Some("reword it with `git commit --amend` (or `git rebase -i` for older commits)".into()),
                );
            }
        }
        if let Some(max) = policy.commits.max_subject_length {
            let len = subject.chars().count();
            if len > max {
                out.add(
                    Rule::CommitsSubjectLength,
                    format!("subject is {len} characters, more than {max}"),
                    Some(format!("shorten the subject to {max} characters and move detail to the body")),
                );
            }
        }
        if !policy.commits.allowed_email_domains.is_empty() {
            for (role, email) in [("author", author_email), ("committer", committer_email)] {
                let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
                if !policy.commits.allowed_email_domains.contains(&domain) {
                    out.add(
                        Rule::CommitsEmailDomain,
                        format!("{role} email {email} is not in {}", policy.commits.allowed_email_domains.join(", ")),
                        Some(format!("set `git config user.email` to an address in {}", policy.commits.allowed_email_domains.join(", "))),
                    );
                }
            }
        }
        let _ = message;

        let findings = out.list;
        let fail = findings.iter().any(|f| f.severity == Severity::Error);
        CommitReport {
            id: id.to_string(),
            subject,
            verdict: if fail { CommitVerdict::Fail } else { CommitVerdict::Pass },
            signature: verdict,
            findings,
            author: commit.author.as_ref().map(|a| a.display()),
            committer: commit.committer.as_ref().map(|c| c.display()),
            parents: commit.parents.len(),
            exempt: if policy.signing.required { exempt } else { None },
        }
    }
}

impl CommitReport {
    /// This report as the `commit.verified` event.
    pub fn event(&self, policy_digest: &str) -> CommitVerified {
        CommitVerified {
            commit: self.id.clone(),
            subject: self.subject.clone(),
            author: self.author.clone(),
            committer: self.committer.clone(),
            policy_digest: policy_digest.to_string(),
            verdict: self.verdict,
            signature: self.signature.clone(),
            findings: self.findings.clone(),
            exempt: self.exempt.clone(),
        }
    }
}

/// `policy.loaded`, then one `commit.verified` per checked commit (what
/// `verify --record` appends).
pub fn verification_entries(report: &RangeReport, policy: &Policy, actor: &str) -> Vec<NewEntry> {
    let loaded = PolicyLoaded { digest: policy.digest.clone(), path: policy.path.display().to_string() };
    let mut out = vec![loaded.entry(policy.digest.clone(), actor)];
    out.extend(report.commits.iter().map(|c| c.event(&policy.digest).entry(c.id.clone(), actor)));
    out
}

struct Findings<'a> {
    policy: &'a Policy,
    branch: Option<&'a BranchRule>,
    list: Vec<Finding>,
}

impl Findings<'_> {
    fn add(&mut self, rule: Rule, message: String, fix: Option<String>) {
        if let Some(severity) = self.policy.mode_for(rule, self.branch).severity() {
            self.list.push(Finding { fix, ..Finding::new(rule, severity, message) });
        }
    }
}

fn signing_fix(policy: &Policy, v: &Verdict, committer: &str) -> String {
    let policy_path = policy.path.display();
    if let Some(fix) = &v.fix {
        return fix.clone();
    }
    match (v.status, v.format) {
        (SignatureStatus::Missing, _) => {
            "sign your commits: `git config commit.gpgsign true`, then re-sign: `git commit --amend -S --no-edit` (older commits: `git rebase --exec 'git commit --amend -S --no-edit' <base>`)".into()
        }
        (SignatureStatus::UnknownKey, Some(SignatureFormat::Ssh)) => format!(
            "pin the key: add `{committer} namespaces=\"git\" <public key>` to the ssh_allowed_signers file named in {policy_path}"
        ),
        (SignatureStatus::UnknownKey, _) => format!(
            "pin the key: `gpg --armor --export {} > keys/<name>.asc` and list it in openpgp_keys in {policy_path}",
            v.key.as_deref().unwrap_or("<KEYID>")
        ),
        (SignatureStatus::ExpiredKey, Some(SignatureFormat::Ssh)) => {
            "re-sign with a key that is valid now, or extend valid-before in the allowed-signers file".into()
        }
        (SignatureStatus::ExpiredKey, _) => format!(
            "extend the key (`gpg --quick-set-expire {} 1y`), re-export it into the policy, or re-sign with a valid key",
            v.key.as_deref().unwrap_or("<FPR>")
        ),
        (SignatureStatus::RevokedKey, _) => "the key is revoked: re-sign the commit with a key that is not (`git commit --amend -S --no-edit`)".into(),
        (SignatureStatus::Bad, _) => "the commit was changed after it was signed: re-create and re-sign it".into(),
        _ => "re-sign the commit with a supported signature (OpenPGP or SSH)".into(),
    }
}

/// Trailers as git reads them (libgit2's parser); an unparsable message has none.
pub fn trailers(message: &[u8]) -> Vec<(String, String)> {
    let mut clean: Vec<u8> = message.iter().copied().filter(|&b| b != 0).collect();
    if !clean.ends_with(b"\n") {
        clean.push(b'\n');
    }
    match git2::message_trailers_bytes(clean) {
        Ok(t) => {
            t.iter().map(|(k, v)| (String::from_utf8_lossy(k).trim().to_string(), String::from_utf8_lossy(v).trim().to_string())).collect()
        }
        Err(_) => Vec::new(),
    }
}

fn email_of(v: &str) -> Option<&str> {
    let start = v.find('<')?;
    let end = start + v[start..].find('>')?;
    Some(v[start + 1..end].trim())
}

/// The result of checking a set of commits.
#[derive(Debug, Clone, Serialize)]
pub struct RangeReport {
    pub commits: Vec<CommitReport>,
    pub summary: Summary,
}

/// Counts over a [`RangeReport`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub checked: usize,
    pub failed: usize,
    /// Commits that pass but carry warnings.
    pub warned: usize,
    pub exempt: usize,
}

/// Errors that stop a range check.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(
        "{location}: baseline {id} is not a commit in this repository\nHint: set baseline to a commit id from `git log`, or remove it"
    )]
    Baseline { id: String, location: String },
    #[error(transparent)]
    Signature(#[from] crate::signature::SignatureError),
    #[error("a verification worker stopped unexpectedly")]
    Worker,
}

/// Selects the commits named by `specs` (git range syntax), leaving out the
/// policy's baseline history, and checks each one.
pub fn check_range(repo: &Repo, policy: &Policy, specs: &[String]) -> Result<RangeReport, RangeError> {
    let ids = select_range(repo, policy, specs)?;
    check_parallel(repo, policy, &ids, None, None)
}

/// The commits `specs` name, less the policy's baseline history, newest
/// first; with the pinned keys read (an unreadable one is an error now).
pub fn select_range(repo: &Repo, policy: &Policy, specs: &[String]) -> Result<Vec<String>, RangeError> {
    let mut hide = Vec::new();
    if let Some(b) = &policy.baseline {
        let id = repo.resolve_commit(b).map_err(|_| RangeError::Baseline {
            id: b.clone(),
            location: policy.baseline_location.as_ref().map(|l| l.to_string()).unwrap_or_default(),
        })?;
        hide.push(id);
    }
    let ids = repo.select(specs, &hide)?;
    // An unreadable pinned key is a configuration error here (exit 2), so build the keyring now.
    policy.signature_checker(Some(repo)).prepare()?;
    Ok(ids)
}

impl Summary {
    /// Adds another part's counts.
    pub fn add(&mut self, other: &Summary) {
        self.checked += other.checked;
        self.failed += other.failed;
        self.warned += other.warned;
        self.exempt += other.exempt;
    }
}

/// Below this many commits one thread is faster than starting more.
const PARALLEL_MIN: usize = 64;

/// Checks `ids` on every core: OpenPGP verification runs one gpg process per
/// signature, so workers (each with its own repository handle and gpgme
/// context) overlap them. Results come back in the order of `ids`.
pub fn check_parallel(
    repo: &Repo,
    policy: &Policy,
    ids: &[String],
    branch: Option<&BranchRule>,
    pusher: Option<&str>,
) -> Result<RangeReport, RangeError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(ids.len() / PARALLEL_MIN).max(1);
    let new_checker = |repo: &Repo| -> Result<CommitChecker<'_>, RangeError> {
        // The keyring is built on the first OpenPGP signature met (hooks pushing
        // unsigned or SSH-signed commits never start gpg).
        Ok(CommitChecker::new(policy, policy.signature_checker(Some(repo))).with_pusher(pusher.map(str::to_string)))
    };
    if workers == 1 {
        let mut checker = new_checker(repo)?;
        return check_ids(repo, &mut checker, ids, branch);
    }
    let chunk = ids.len().div_ceil(workers);
    let handles: Vec<Repo> = (0..workers).map(|_| repo.reopen()).collect::<Result<_, _>>()?;
    let parts: Vec<Result<RangeReport, RangeError>> = std::thread::scope(|scope| {
        let spawned: Vec<_> = ids
            .chunks(chunk)
            .zip(handles)
            .map(|(part, handle)| {
                scope.spawn(move || {
                    let mut checker = new_checker(&handle)?;
                    check_ids(&handle, &mut checker, part, branch)
                })
            })
            .collect();
        spawned.into_iter().map(|h| h.join().unwrap_or(Err(RangeError::Worker))).collect()
    });
    let mut all = RangeReport { commits: Vec::with_capacity(ids.len()), summary: Summary::default() };
    for part in parts {
        let part = part?;
        all.summary.add(&part.summary);
        all.commits.extend(part.commits);
    }
    Ok(all)
}

/// `paths.signer`: for each `[[paths]]` entry with signers that a file the
/// commit changes falls under (the first matching entry per file), a good
/// signature by one of the signers — one finding per entry, naming the files.
fn path_findings(repo: &Repo, policy: &Policy, branch: Option<&BranchRule>, report: &mut CommitReport) -> Result<(), RangeError> {
    let changed = repo.changed_paths(&report.id)?;
    let mut by_rule: Vec<(usize, Vec<String>)> = Vec::new();
    for path in changed {
        // As checkouts see paths: a case or normalisation variant of a protected path is that path.
        let Some(i) = policy.paths.iter().position(|r| r.pattern.matches_as_checked_out(&path)) else { continue };
        if policy.paths[i].signers.is_empty() {
            continue;
        }
        match by_rule.iter_mut().find(|(j, _)| *j == i) {
            Some((_, files)) => files.push(path),
            None => by_rule.push((i, vec![path])),
        }
    }
    for (i, files) in by_rule {
        let rule = &policy.paths[i];
        let mode = rule.mode.unwrap_or_else(|| policy.mode_for(Rule::PathsSigner, branch));
        let Some(severity) = mode.severity() else { continue };
        let signers = policy.path_signers(rule);
        let sig = &report.signature;
        let by_signer = sig.status == SignatureStatus::Good
            && (sig.identities.iter().any(|i| identity_matches(i, &signers))
                || sig.signer.as_deref().is_some_and(|s| identity_matches(s, &signers)));
        if by_signer {
            continue;
        }
        let shown: Vec<&str> = files.iter().take(3).map(String::as_str).collect();
        let more = if files.len() > 3 { format!(" and {} more", files.len() - 3) } else { String::new() };
        let who = match (sig.status, sig.identities.first().or(sig.signer.as_ref())) {
            (SignatureStatus::Good, Some(id)) => format!("is signed by {id}"),
            (SignatureStatus::Missing, _) => "is not signed".to_string(),
            (status, _) => format!("has no good signature ({})", status.as_str()),
        };
        let message = format!(
            "changes {}{more}, which only {} may sign ([[paths]] `{}` at {}), but {who}",
            shown.join(", "),
            if signers.is_empty() { "nobody (the role is empty)".to_string() } else { signers.join(", ") },
            rule.pattern.text,
            rule.origin
        );
        let fix = "have one of the listed signers sign the commit (`git commit --amend -S --no-edit` with their key), or move the change out of the protected path".to_string();
        report.findings.push(Finding { fix: Some(fix), ..Finding::new(Rule::PathsSigner, severity, message) });
        if severity == Severity::Error {
            report.verdict = CommitVerdict::Fail;
        }
    }
    Ok(())
}

/// Checks the given commits in order.
pub fn check_ids(
    repo: &Repo,
    checker: &mut CommitChecker<'_>,
    ids: &[String],
    branch: Option<&BranchRule>,
) -> Result<RangeReport, RangeError> {
    let mut reader = repo.reader()?;
    let mut commits = Vec::with_capacity(ids.len());
    let mut summary = Summary::default();
    let policy = checker.policy;
    let path_signers = policy.paths.iter().any(|r| !r.signers.is_empty());
    for id in ids {
        let parsed = reader.read(id)?;
        let mut report = checker.check(id, &parsed, branch);
        if path_signers {
            path_findings(repo, policy, branch, &mut report)?;
        }
        summary.checked += 1;
        match report.verdict {
            CommitVerdict::Fail => summary.failed += 1,
            CommitVerdict::Pass if !report.findings.is_empty() => summary.warned += 1,
            CommitVerdict::Pass => {}
        }
        if report.exempt.is_some() {
            summary.exempt += 1;
        }
        commits.push(report);
    }
    Ok(RangeReport { commits, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trailers_like_git() {
        let t = trailers(b"feat: x\n\nbody\n\nSigned-off-by: A <a@x>\nReviewed-by: B <b@x>\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], ("Signed-off-by".to_string(), "A <a@x>".to_string()));
        assert!(trailers(b"feat: no trailers here\n").is_empty());
        let _ = trailers(b"x\0y\xff"); // NUL and non-UTF-8 do not panic
        assert_eq!(email_of("Alice <alice@example.com>"), Some("alice@example.com"));
        assert_eq!(email_of("no email"), None);
    }
}
