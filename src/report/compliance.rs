//! `report compliance`: every finding in a window, grouped by rule, each with
//! its evidence (ledger seq numbers). Rule ids are stable.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Document, ReportError, Section};
use crate::deploy::{self, Facts};
use crate::event::EnvironmentSynced;
use crate::event::ReviewState;
use crate::event::{BypassUsed, LedgerGap, PushDecided};
use crate::facts::DeploymentHistory;
use crate::git::{short_id, Repo};
use crate::ledger::{Ledger, Select};
use crate::policy::Policy;
use crate::rule::{Finding, Rule, Severity};
use crate::time::Timestamp;

/// Finds, in entries recorded at or after `since`:
/// `pr.no-approval`, `pr.self-approval`, `pr.stale-approval`, `push.direct`,
/// `commits.unsigned-deployed`, `branches.force-push`, `branches.deletion`, `breakglass.used`, `ledger.gap`.
pub fn compliance(
    ledger: &Ledger,
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    since: &Timestamp,
    policy: Option<&Policy>,
) -> Result<(Document, Vec<Finding>), ReportError> {
    let mut out: Vec<Finding> = Vec::new();

    // Merged pull requests and their approvals.
    let merged = ledger.merged_pull_requests(since)?;
    for m in merged {
        let subject = format!("{}#{}", m.repository, m.number);
        let mut evidence = vec![m.seq];
        evidence.extend(&m.review_seqs);
        let approvers = &m.approvers;
        let author = m.author.as_str();
        if approvers.is_empty() {
            out.push(Finding {
                rule: Rule::PrNoApproval,
                severity: Severity::Error,
                fix: None,
                subject: Some(subject),
                message: format!("merged by {} without an approval: {}", m.merged_by, m.title),
                evidence,
            });
        } else if approvers.iter().all(|a| a == author) {
            out.push(Finding {
                rule: Rule::PrSelfApproval,
                severity: Severity::Error,
                fix: None,
                subject: Some(subject),
                message: format!("the only approvals are by its author {author}; merged by {}", m.merged_by),
                evidence,
            });
        } else if m.approvals_on_head == 0 {
            out.push(Finding {
                rule: Rule::PrStaleApproval,
                severity: Severity::Error,
                fix: None,
                subject: Some(subject),
                message: format!(
                    "no approval is on the final head {} (approved earlier by {})",
                    short_id(&m.head_sha),
                    approvers.join(", ")
                ),
                evidence,
            });
        }
    }

    // Path owners: files a merged PR changed that [[paths]] approvers or CODEOWNERS own.
    if let Some(p) = policy.filter(|p| p.codeowners || p.paths.iter().any(|r| !r.approvers.is_empty())) {
        out.extend(owner_approvals(ledger, repo, since, p)?);
    }

    // Changes that reached the default branch without a pull request.
    for l in ledger.landed_without_pull_request(since)? {
        out.push(Finding {
            rule: Rule::PushDirect,
            severity: Severity::Error,
            fix: None,
            subject: Some(format!("{} {}", l.repository, short_id(&l.sha))),
            message: "reached the default branch without a pull request".into(),
            evidence: vec![l.seq],
        });
    }

    // Commits deployed without a good signature: each deployment's shipped range
    // (from the previous successful deployment to its environment) is computed
    // once, so this stays linear in the number of commits deployed.
    let bad: std::collections::HashMap<String, (String, Option<u64>)> =
        ledger.commits_not_good()?.into_iter().map(|c| (c.id, (c.status, c.verified_seq))).collect();
    if !bad.is_empty() {
        let all = &facts.all;
        let mut shipped_by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        // A commit shipped to an environment that requires signed commits is
        // judged there (`deploy.unsigned-commits`): one commit, one finding.
        let mut judged_by_environment = std::collections::HashSet::new();
        for (i, d) in all.iter().enumerate() {
            if !super::within(&d.time, since, &Timestamp::open_end()) {
                continue;
            }
            let requires = policy.and_then(|p| {
                let rule = p.environment_rule(&d.environment)?;
                (rule.require_signed_commits && rule.mode.unwrap_or(p.mode).severity().is_some()).then_some(())
            });
            let shipped = crate::facts::deployments::shipped(repo, all, i);
            let known = shipped.is_some();
            let ids = match shipped {
                Some((_, ids)) => ids,
                None => vec![d.sha.clone()],
            };
            for id in ids.into_iter().filter(|id| bad.contains_key(id)) {
                if requires.is_some() && known {
                    judged_by_environment.insert(id.clone());
                }
                shipped_by.entry(id).or_default().push(i);
            }
        }
        for (id, deps) in shipped_by.into_iter().filter(|(id, _)| !judged_by_environment.contains(id)) {
            let (status, seq) = &bad[&id];
            let mut evidence: Vec<u64> = seq.iter().copied().collect();
            evidence.extend(deps.iter().map(|&i| all[i].seq));
            let envs: std::collections::BTreeSet<&str> = deps.iter().map(|&i| all[i].environment.as_str()).collect();
            out.push(Finding {
                rule: Rule::CommitsUnsignedDeployed,
                severity: Severity::Error,
                fix: None,
                subject: Some(short_id(&id).to_string()),
                message: format!(
                    "signature {status} but deployed to {} ({} deployment{})",
                    envs.into_iter().collect::<Vec<_>>().join(", "),
                    deps.len(),
                    if deps.len() == 1 { "" } else { "s" }
                ),
                evidence,
            });
        }
    }

    // Force pushes and deletions that got through (warn mode or break glass), and break glass itself.
    let window = Select { since: Some(since), ..Select::default() };
    for e in ledger.events::<PushDecided>(&window)?.into_iter().filter(|e| e.payload.accepted) {
        for u in &e.payload.ref_updates {
            for f in &u.findings {
                let what = match f.rule {
                    Rule::BranchesForcePush => "force-pushed",
                    Rule::BranchesDeletion => "deleted",
                    _ => continue,
                };
                out.push(Finding {
                    rule: f.rule,
                    severity: Severity::Error,
                    fix: None,
                    subject: Some(u.refname.clone()),
                    message: format!("{what} by {}", e.actor),
                    evidence: vec![e.seq],
                });
            }
        }
    }
    for e in ledger.events::<BypassUsed>(&window)? {
        out.push(Finding {
            rule: Rule::BreakglassUsed,
            severity: Severity::Warning,
            fix: None,
            subject: Some(e.subject.clone()),
            message: format!("break glass by {}: \"{}\"", e.actor, e.payload.reason),
            evidence: vec![e.seq],
        });
    }
    for e in ledger.events::<LedgerGap>(&window)? {
        let g = &e.payload;
        out.push(Finding {
            rule: Rule::LedgerGap,
            severity: Severity::Error,
            fix: None,
            subject: Some(format!("{} unrecorded", g.unrecorded)),
            message: format!(
                "{} hook event(s) between {} and {} were decided but could not be recorded in the ledger",
                g.unrecorded, g.first, g.last
            ),
            evidence: vec![e.seq],
        });
    }

    // Environment protection that changed: consecutive snapshots of one
    // environment, with who changed it where the forge's audit log says.
    let audits = ledger.events::<crate::event::ForgeAuditSynced>(&Select::default())?;
    let mut last: std::collections::HashMap<(String, String), crate::ledger::Recorded<EnvironmentSynced>> =
        std::collections::HashMap::new();
    for e in ledger.events::<EnvironmentSynced>(&Select::default())? {
        let key = (e.payload.repository.clone(), e.payload.name.clone());
        if let Some(prev) = last.get(&key) {
            if prev.payload != e.payload && super::within(&e.time, since, &Timestamp::open_end()) {
                let (from, to) = (Timestamp::parse(&prev.time).ok(), Timestamp::parse(&e.time).ok());
                let by: Vec<&crate::ledger::Recorded<crate::event::ForgeAuditSynced>> = audits
                    .iter()
                    .filter(|a| a.payload.repository == key.0 && a.payload.concerns_environment(&key.1))
                    .filter(|a| {
                        let at = a.payload.created_at.as_deref().and_then(|t| Timestamp::parse(t).ok());
                        matches!((&from, &at, &to), (Some(f), Some(at), Some(t)) if f < at && at <= t)
                    })
                    .collect();
                let mut message = format!("protection changed from \"{}\" to \"{}\"", prev.payload.summary(), e.payload.summary());
                if !by.is_empty() {
                    let said: Vec<String> = by.iter().map(|a| a.payload.summary()).collect();
                    message.push_str(&format!("; the forge's audit log: {}", said.join("; ")));
                }
                let mut evidence = vec![prev.seq, e.seq];
                evidence.extend(by.iter().map(|a| a.seq));
                out.push(Finding {
                    rule: Rule::EnvProtectionChanged,
                    severity: Severity::Warning,
                    fix: None,
                    subject: Some(format!("{} {}", key.0, key.1)),
                    message,
                    evidence,
                });
            }
        }
        last.insert(key, e);
    }

    if let Some(p) = policy.filter(|p| !p.environments.is_empty()) {
        out.extend(deployments(ledger, facts, repo, since, p)?);
    }

    // What is unusual against the ledger's own history, beside the violations.
    out.extend(super::anomaly::anomalies(ledger, facts, repo, since, policy)?);

    let doc = document(since, &out, None);
    Ok((doc, out))
}

/// The compliance document over `out`; `filter` says what the findings were
/// narrowed to (a served page's `?kind=` or `?rule=`), in the title and JSON.
pub fn document(since: &Timestamp, out: &[Finding], filter: Option<&str>) -> Document {
    let mut per_rule: BTreeMap<&str, u64> = BTreeMap::new();
    for f in out {
        *per_rule.entry(f.rule.id()).or_default() += 1;
    }
    let rows = out
        .iter()
        .map(|f| {
            vec![
                f.rule.to_string(),
                match f.severity {
                    Severity::Error => "error".to_string(),
                    Severity::Warning => "warning".to_string(),
                },
                f.subject.clone().unwrap_or_default(),
                f.message.clone(),
                f.evidence.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
            ]
        })
        .collect();
    // A violation is what broke a rule; "could not verify" is what the ledger
    // lacks to judge; an anomaly is what is unusual against its own history.
    let unverified = out.iter().filter(|f| f.rule.is_unverified()).count();
    let anomalies = out.iter().filter(|f| f.rule.is_anomaly()).count();
    let violations = out.len() - unverified - anomalies;
    let counts = json!({"violations": violations, "could_not_verify": unverified, "anomalies": anomalies});
    let shown = filter.map(|f| format!(" ({f})")).unwrap_or_default();
    let mut json = json!({"since": since.to_string(), "findings": out, "summary": per_rule, "counts": counts});
    if let (Some(f), Some(o)) = (filter, json.as_object_mut()) {
        o.insert("filter".into(), f.into());
    }
    Document {
        title: format!(
            "Compliance findings since {since}{shown}: {violations} violation(s), {unverified} could not verify{}",
            if anomalies > 0 { format!(", {anomalies} anomal{}", if anomalies == 1 { "y" } else { "ies" }) } else { String::new() }
        ),
        sections: vec![
            Section::new(
                "Findings by rule",
                &["rule", "findings"],
                per_rule.iter().map(|(r, n)| vec![r.to_string(), n.to_string()]).collect(),
            ),
            Section::new("Findings", &["rule", "severity", "subject", "message", "evidence (ledger seq)"], rows),
        ],
        charts: vec![("Findings per rule".into(), per_rule.iter().map(|(r, n)| (r.to_string(), *n)).collect())],
        series: Vec::new(),
        json,
    }
}

/// `pr.owner-approval-missing`: for each pull request merged in the window whose
/// recorded files fall under owners — the first `[[paths]]` entry with
/// `approvers` that matches a file, and the file's CODEOWNERS line (the last
/// that matches) — an approval on its final head by one owner of each group.
/// CODEOWNERS is the one the base branch held when the PR merged: in the first
/// parent of GitHub's merge (or squash, or last rebased) commit, else in the
/// base commit GitHub recorded; a later edit of CODEOWNERS changes no past answer.
fn owner_approvals(ledger: &Ledger, repo: Option<&Repo>, since: &Timestamp, policy: &Policy) -> Result<Vec<Finding>, ReportError> {
    use crate::event::PrFilesSynced;
    use crate::policy::Principal;
    let mut out = Vec::new();
    for m in ledger.merged_pull_requests(since)? {
        let subject = format!("{}#{}", m.repository, m.number);
        let Some(files) = ledger.events::<PrFilesSynced>(&Select { subject: Some(&subject), newest: Some(1), ..Select::default() })?.pop()
        else {
            continue;
        };
        let codeowners = match policy.codeowners {
            false => None,
            true => match codeowners_at_merge(repo, &m) {
                Ok(c) => Some(c),
                Err(why) => {
                    out.push(Finding {
                        rule: Rule::PrCodeownersMissing,
                        severity: Severity::Warning,
                        fix: Some(
                            "add CODEOWNERS to the base branch (.github/CODEOWNERS), or fetch the merged commits into the repository the report runs in (`git fetch`)"
                                .into(),
                        ),
                        subject: Some(subject.clone()),
                        message: format!("could not verify code owners' approval: {why}"),
                        evidence: vec![m.seq, files.seq],
                    });
                    None
                }
            },
        };
        let codeowners = codeowners.as_ref();
        let approved_on_head: Vec<String> = ledger
            .reviews(&m.repository, m.number)?
            .into_iter()
            .filter(|r| r.state == ReviewState::Approved && r.commit_id == m.head_sha && r.reviewer != m.author)
            .map(|r| r.reviewer)
            .collect();
        // Owner groups (who, and what they own), in the order first met.
        let mut groups: Vec<(Vec<Principal>, String, Vec<String>)> = Vec::new();
        let mut add = |owners: Vec<Principal>, source: String, file: &str| match groups.iter_mut().find(|g| g.1 == source) {
            Some(g) => g.2.push(file.to_string()),
            None => groups.push((owners, source, vec![file.to_string()])),
        };
        for file in &files.payload.files {
            if let Some(r) = policy.paths.iter().find(|r| r.pattern.matches(file)).filter(|r| !r.approvers.is_empty()) {
                add(r.approvers.clone(), format!("[[paths]] `{}` at {}", r.pattern.text, r.origin), file);
            }
            // GitLab's sections each need their owners; GitHub's file is one section.
            for c in codeowners.iter() {
                for line in c.owners_each(file).into_iter().filter(|l| !l.owners.is_empty()) {
                    let owners = line.owners.iter().map(|o| c.principal(o)).collect();
                    add(owners, format!("{}:{} `{}`", c.path, line.line, line.pattern.text), file);
                }
            }
        }
        for (owners, source, owned) in groups {
            // Membership as of the merge, or the earliest snapshot after it (said
            // in the finding); a team never recorded makes the answer "could not verify".
            let members = |org: &str, slug: &str| ledger.team_membership_at(org, slug, &m.merged_at).ok().flatten();
            let standings: Vec<deploy::Standing> = approved_on_head.iter().map(|a| deploy::standing(a, &owners, &members)).collect();
            if standings.contains(&deploy::Standing::Allowed) {
                continue;
            }
            // Unverified only when an approval exists whose approver could not be judged.
            let mut missing: Vec<String> = standings
                .into_iter()
                .flat_map(|s| match s {
                    deploy::Standing::Unverified { missing } => missing,
                    _ => Vec::new(),
                })
                .collect();
            let mut basis = Vec::new();
            for o in &owners {
                if let Principal::Team { org, slug } = o {
                    if let Some(t) = members(org, slug).filter(|t| t.after) {
                        basis.push(format!("membership of {} as of {}, after the merge", o.label(), t.as_of));
                    }
                }
            }
            missing.sort();
            missing.dedup();
            basis.sort();
            basis.dedup();
            let names: Vec<String> = owners.iter().map(Principal::label).collect();
            let shown: Vec<&str> = owned.iter().take(3).map(String::as_str).collect();
            let more = if owned.len() > 3 { format!(" and {} more", owned.len() - 3) } else { String::new() };
            let mut message = format!(
                "changes {}{more} ({source}) but no approval on its final head {} is by one of {}{}",
                shown.join(", "),
                short_id(&m.head_sha),
                names.join(", "),
                if approved_on_head.is_empty() { String::new() } else { format!(" (approved by {})", approved_on_head.join(", ")) }
            );
            if !basis.is_empty() {
                message.push_str(&format!(" ({})", basis.join("; ")));
            }
            let unverified = !missing.is_empty();
            if unverified {
                message = format!("could not verify: {message}; the membership of {} was never recorded", missing.join(", "));
            }
            if files.payload.capped {
                message.push_str("; GitHub listed only the first 3,000 files");
            }
            let mut evidence = vec![m.seq, files.seq];
            evidence.extend(&m.review_seqs);
            out.push(Finding {
                rule: if unverified { Rule::PrOwnerApprovalUnverified } else { Rule::PrOwnerApprovalMissing },
                severity: if unverified { Severity::Warning } else { Severity::Error },
                fix: unverified.then(|| "run `git-audit sync` with this policy so the team's members are recorded; a team the token cannot read (members: read) stays unverifiable".to_string()),
                subject: Some(subject.clone()),
                message,
                evidence,
            });
        }
    }
    Ok(out)
}

/// The CODEOWNERS of `m`'s base at its merge, or why it cannot be had.
fn codeowners_at_merge(repo: Option<&Repo>, m: &crate::ledger::query::MergedPull) -> Result<crate::policy::paths::CodeOwners, String> {
    let repo = repo.ok_or("the report ran outside a git repository, so CODEOWNERS as of the merge cannot be read")?;
    let valid = |s: &str| (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    let base = [format!("{}^1", m.merge_commit_sha), m.base_sha.clone()]
        .into_iter()
        .filter(|spec| valid(spec.trim_end_matches("^1")))
        .find_map(|spec| repo.resolve_commit(&spec).ok())
        .ok_or_else(|| {
            format!(
                "the base it merged into (the parent of {}, or {}) is not in this repository (git fetch)",
                short_id(&m.merge_commit_sha),
                short_id(&m.base_sha)
            )
        })?;
    crate::policy::paths::CodeOwners::read_at(repo, &base).ok_or_else(|| {
        format!(
            "[codeowners] is enabled, but its base at the merge ({}) has no CODEOWNERS in .github/, the root, docs/ or .gitlab/",
            short_id(&base)
        )
    })
}

/// `deploy.*`: every deployment in the window to an environment with an
/// `[[environments]]` rule, judged on what the ledger knows of it.
fn deployments(
    ledger: &Ledger,
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    since: &Timestamp,
    policy: &Policy,
) -> Result<Vec<Finding>, ReportError> {
    Ok(deployment_findings(ledger, facts, repo, since, policy)?.into_iter().flat_map(|(_, f)| f).collect())
}

pub use crate::ledger::query::DeploymentKey;

/// The `deploy.*` findings of each deployment in the window, by (repository, id), in deployment order.
pub fn deployment_findings(
    ledger: &Ledger,
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    since: &Timestamp,
    policy: &Policy,
) -> Result<Vec<(DeploymentKey, Vec<Finding>)>, ReportError> {
    let (approvals, runs, unknown_approvals, histories) = (&facts.approvals, &facts.runs, &facts.unknown_approvals, &facts.recorded);
    let all = &facts.all;
    let mut out = Vec::new();
    for (i, d) in all.iter().enumerate() {
        let Some(rule) = policy.environment_rule(&d.environment) else { continue };
        let Some(severity) = rule.mode.unwrap_or(policy.mode).severity() else { continue };
        if !super::within(&d.time, since, &Timestamp::open_end()) {
            continue;
        }
        let list = approvals.get(&d.key()).map(Vec::as_slice).unwrap_or_default();
        let history = histories.get(&d.key());
        // A recorded deployment is judged on what was first recorded.
        let approvers: Vec<String> = match history {
            Some(h) => h.approvers.clone(),
            None => list.iter().filter(|a| a.state == crate::event::APPROVAL_APPROVED).map(|a| a.user.clone()).collect(),
        };
        let mut evidence: Vec<u64> = list.iter().map(|a| a.seq).collect();
        evidence.insert(0, d.seq);
        evidence.sort_unstable();
        evidence.dedup();
        // A bot-created deployment (Actions) was deployed by whoever triggered
        // its run; so was a deployment recorded on a job's own word whose run
        // the forge describes (Gitea and Forgejo Actions): the forge outweighs the job.
        let run = runs
            .get(&d.key())
            .filter(|(who, _)| d.deployer.ends_with("[bot]") || (who.is_some() && history.is_some_and(|h| h.attestation.is_none())));
        if let Some((_, seq)) = run {
            evidence.push(*seq);
        }
        let deployer = match (run, history) {
            (Some((Some(who), _)), Some(h)) if h.attestation.is_none() => Some(who.clone()),
            (_, Some(h)) => h.actor.clone(),
            (Some((who, _)), None) => who.clone(),
            (None, None) => (!d.deployer.is_empty() && !d.deployer.ends_with("[bot]")).then(|| d.deployer.clone()),
        };
        if let Some(h) = history {
            evidence.extend(&h.correction_seqs);
            evidence.sort_unstable();
            evidence.dedup();
        }
        let bot = deployer.is_none() && d.deployer.ends_with("[bot]");
        let unsigned = match crate::facts::deployments::shipped(repo, all, i) {
            Some((_, ids)) => {
                let mut bad = Vec::new();
                for id in ids {
                    // No verdict recorded is not a good signature.
                    if ledger.commit_signature(&id)?.is_none_or(|(status, _)| status != "good") {
                        bad.push(id);
                    }
                }
                Some(bad)
            }
            None => None,
        };
        let facts = Facts {
            repository: d.repository.clone(),
            id: d.id,
            name: d.name.clone(),
            environment: d.environment.clone(),
            deployer,
            deployer_note: bot.then(|| format!("created by {} and its workflow run is not recorded", d.deployer)),
            git_ref: (!d.git_ref.is_empty()).then(|| d.git_ref.clone()),
            approvers: (!(approvers.is_empty() && unknown_approvals.contains(&d.key()))).then_some(approvers),
            unsigned,
            evidence,
            asserted: history.is_some_and(|h| h.attestation.is_none()),
            approvals_asserted: history.is_some(),
            corrections: history.map(|h| h.corrections.clone()).unwrap_or_default(),
        };
        let at = d.time.clone();
        let members = |org: &str, slug: &str| ledger.team_membership_at(org, slug, &at).ok().flatten();
        out.push(((d.repository.clone(), d.id), deploy::judge(&facts, rule, severity, &members)));
    }
    Ok(out)
}
