//! Queries over the projections, for reports: typed rows, and the SQL in one
//! place (the ledger owns the projection tables). Text columns that are NULL
//! read as empty strings, as reports show them.

use std::collections::HashMap;

use super::store::Value;
use super::{sql, Ledger, LedgerError, Select};
use crate::event::Payload;
use crate::event::{
    ChangeSynced, DeploymentApprovalSynced, DeploymentRecorded, DeploymentState, Kind, ReviewState, TeamSynced, WorkflowRunSynced,
    APPROVAL_APPROVED,
};
use crate::time::Timestamp;

/// A merged pull request and its reviews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPull {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub author: String,
    pub merged_by: String,
    pub head_sha: String,
    /// The seq of the entry that recorded it.
    pub seq: u64,
    /// Who approved it (in review order).
    pub approvers: Vec<String>,
    /// Approvals given on its final head commit.
    pub approvals_on_head: u64,
    /// The seqs of its reviews' entries.
    pub review_seqs: Vec<u64>,
    /// The commit GitHub made (merge, squash or rebase); its first parent is
    /// the base branch as it was at the merge.
    pub merge_commit_sha: String,
    /// The base branch's commit GitHub last recorded for it.
    pub base_sha: String,
    pub merged_at: String,
}

/// A commit that landed on the default branch, with the seq of its link entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedCommit {
    pub repository: String,
    pub sha: String,
    pub seq: u64,
}

/// A commit whose latest verification was not `good`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotGood {
    pub id: String,
    pub status: String,
    pub verified_seq: Option<u64>,
}

/// A synced deployment with its final state (the last status that is not
/// `inactive`: GitHub marks superseded deployments inactive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub repository: String,
    /// GitHub's id; negative for deployments recorded from other CI/CD systems.
    pub id: i64,
    pub environment: String,
    pub time: String,
    pub sha: String,
    pub deployer: String,
    pub status: DeploymentState,
    /// When that status was set.
    pub status_time: String,
    pub seq: u64,
    /// The entry that set `status` (none when no status was ever recorded).
    pub status_seq: Option<u64>,
    /// The ref deployed, as the forge or the CI said.
    pub git_ref: String,
    /// The id people use: the forge's number, or the id the CI gave a recorded
    /// deployment (`gl-77`, a build number), or `rec-` and a short hash. Always
    /// text: an internal id can pass 2^53, which JSON readers change.
    pub name: String,
    /// Its page: the run that made it, the CI job, or its newest status's log.
    pub url: Option<String>,
}

/// The merged change that landed a commit, and who (other than its author)
/// approved its final revision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChangeLanding {
    pub repository: String,
    pub number: i64,
    pub author: String,
    /// Approvers other than the author, on the final revision.
    pub approvers: Vec<String>,
    pub seq: u64,
}

/// A deployment's key: (repository, id). Ids are only unique within one forge.
pub type DeploymentKey = (String, i64);

impl Deployment {
    pub fn key(&self) -> DeploymentKey {
        (self.repository.clone(), self.id)
    }
}

/// The id people use for a deployment (see [`Deployment::name`]).
pub fn deployment_name(id: i64, external: Option<&str>) -> String {
    match external {
        Some(e) => e.to_string(),
        None if id < 0 => format!("rec-{:012x}", (id.unsigned_abs()) & 0xffff_ffff_ffff),
        None => id.to_string(),
    }
}

/// How a pull request is tied to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullLink {
    pub number: i64,
    /// `commit`, `squash/merge` or `rebase` (commit → pulls look-up).
    pub how: String,
}

/// A pull request that contains a commit (for `report trace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub repository: String,
    pub number: i64,
    pub title: String,
    pub author: String,
    pub state: String,
    pub merged_by: String,
    pub merged_at: String,
    pub head_sha: String,
    pub linked_by: String,
}

/// One review of a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub number: i64,
    pub reviewer: String,
    pub state: ReviewState,
    pub commit_id: String,
    pub submitted_at: String,
}

/// One approval (or rejection) of a deployment: an Actions review of the run
/// that made it, or an approver a CI recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeploymentApproval {
    pub user: String,
    /// `approved` or `rejected`.
    pub state: String,
    /// When it was given, where the source says (`null`: GitHub's run
    /// approvals carry no time, and a CI's `--approved-by` none either).
    pub time: Option<String>,
    /// When the ledger learnt of it.
    pub synced_at: String,
    #[serde(skip)]
    pub seq: u64,
}

fn text(r: &[Value], i: usize) -> String {
    r.get(i).map(Value::text_or_empty).unwrap_or_default()
}

fn int(r: &[Value], i: usize) -> i64 {
    r.get(i).and_then(Value::as_int).unwrap_or(0)
}

/// A `deployments` row: repo, id, environment, created_at, sha, creator, seq,
/// state, (when `status_time`) the time of that state, ref, and the seq of
/// the entry that set the state.
fn deployment(r: &[Value], status_time: bool) -> Deployment {
    Deployment {
        repository: text(r, 0),
        id: int(r, 1),
        environment: text(r, 2),
        time: text(r, 3),
        sha: text(r, 4),
        deployer: text(r, 5),
        seq: int(r, 6).max(0) as u64,
        status: DeploymentState::parse(&text(r, 7)),
        status_time: if status_time { text(r, 8) } else { String::new() },
        git_ref: text(r, if status_time { 9 } else { 8 }),
        status_seq: r.get(if status_time { 10 } else { 9 }).and_then(Value::as_int).and_then(|n| u64::try_from(n).ok()),
        name: String::new(),
        url: None,
    }
}

fn list<T: std::str::FromStr>(joined: &str) -> Vec<T> {
    joined.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

impl Ledger {
    fn rows<T>(&self, query: &str, params: &[Value], mut row: impl FnMut(&[Value]) -> T) -> Result<Vec<T>, LedgerError> {
        let mut out = Vec::new();
        self.store()
            .query(query, params, &mut |r| {
                out.push(row(&r));
                Ok(())
            })
            .map_err(sql(&self.path))?;
        Ok(out)
    }

    /// `json_each` over a column holding a JSON array of numbers, as a FROM
    /// item `j` with the element as `j.value` (each engine says it its way).
    fn json_numbers(&self, column: &str) -> String {
        self.store().json_numbers(column)
    }

    /// `column`, kept off its index where the engine can be told so.
    fn unindexed(&self, column: &str) -> String {
        self.store().unindexed(column)
    }

    /// Pull requests merged at or after `since`, oldest first.
    pub fn merged_pull_requests(&self, since: &Timestamp) -> Result<Vec<MergedPull>, LedgerError> {
        self.rows(
            &format!("SELECT p.repo, p.number, p.author, p.merged_by, p.head_sha, p.seq, p.title,
                    (SELECT group_concat(r.reviewer, ',') FROM reviews r WHERE r.repo = p.repo AND r.number = p.number AND r.state = '{approved}'),
                    (SELECT count(*) FROM reviews r WHERE r.repo = p.repo AND r.number = p.number AND r.state = '{approved}' AND r.commit_id = p.head_sha),
                    (SELECT group_concat(CAST(r.seq AS TEXT), ',') FROM reviews r WHERE r.repo = p.repo AND r.number = p.number),
                    p.merged_at, p.merge_commit_sha, p.base_sha
             FROM pull_requests p WHERE p.merged = 1 AND p.merged_at >= ?1 ORDER BY p.merged_at", approved = ReviewState::Approved.recorded()),
            &[since.canonical().into()],
            |r| MergedPull {
                repository: text(r, 0),
                number: int(r, 1),
                author: text(r, 2),
                merged_by: text(r, 3),
                head_sha: text(r, 4),
                seq: int(r, 5).max(0) as u64,
                title: text(r, 6),
                approvers: text(r, 7).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                approvals_on_head: int(r, 8).max(0) as u64,
                review_seqs: list(&text(r, 9)),
                merged_at: text(r, 10),
                merge_commit_sha: text(r, 11),
                base_sha: text(r, 12),
            },
        )
    }

    /// The merged change (pull or merge request) that landed `commit` — as its
    /// merge, squash or (fast-forward) head commit — with who approved its
    /// final head other than its author: (repository, number, author,
    /// approvers, the change's seq).
    pub fn change_landing(&self, commit: &str) -> Result<Option<ChangeLanding>, LedgerError> {
        let found = self.rows(
            "SELECT repo, number, author, head_sha, seq FROM pull_requests WHERE merged = 1 AND (merge_commit_sha = ?1 OR head_sha = ?1) ORDER BY seq DESC LIMIT 1",
            &[commit.into()],
            |r| (text(r, 0), int(r, 1), text(r, 2), text(r, 3), int(r, 4).max(0) as u64),
        )?;
        let Some((repo, number, author, head, seq)) = found.into_iter().next() else { return Ok(None) };
        let mut approvers = self.rows(
            &format!(
                "SELECT DISTINCT reviewer FROM reviews WHERE repo = ?1 AND number = ?2 AND state = '{}' AND commit_id = ?3",
                ReviewState::Approved.recorded()
            ),
            &[repo.clone().into(), number.into(), head.into()],
            |r| text(r, 0),
        )?;
        approvers.retain(|a| !a.is_empty() && !a.eq_ignore_ascii_case(&author));
        approvers.sort();
        Ok(Some(ChangeLanding { repository: repo, number, author, approvers, seq }))
    }

    /// Commits that landed on the default branch in no pull request, linked at or after `since`.
    pub fn landed_without_pull_request(&self, since: &Timestamp) -> Result<Vec<LandedCommit>, LedgerError> {
        self.rows(
            "SELECT cp.repo, cp.sha, cp.seq FROM commit_pulls cp JOIN entries e ON e.seq = cp.seq
             WHERE cp.pulls = '[]' AND e.time >= ?1 ORDER BY cp.seq",
            &[since.canonical().into()],
            |r| LandedCommit { repository: text(r, 0), sha: text(r, 1), seq: int(r, 2).max(0) as u64 },
        )
    }

    /// Commits whose latest verification was `good`: id → (signer, key, the
    /// `commit.verified` seq).
    pub fn good_signatures(&self) -> Result<HashMap<String, (String, String, u64)>, LedgerError> {
        Ok(self
            .rows("SELECT id, signer, key, verified_seq FROM commits WHERE signature_status = 'good'", &[], |r| {
                (text(r, 0), (text(r, 1), text(r, 2), int(r, 3).max(0) as u64))
            })?
            .into_iter()
            .collect())
    }

    /// Commits whose latest verification was not `good`.
    pub fn commits_not_good(&self) -> Result<Vec<NotGood>, LedgerError> {
        self.rows("SELECT id, signature_status, verified_seq FROM commits WHERE signature_status IS DISTINCT FROM 'good'", &[], |r| {
            NotGood { id: text(r, 0), status: text(r, 1), verified_seq: r.get(2).and_then(Value::as_int).map(|s| s.max(0) as u64) }
        })
    }

    /// Every synced deployment with its final state, oldest first.
    pub fn deployments(&self) -> Result<Vec<Deployment>, LedgerError> {
        let mut list = self.rows(
            &format!("SELECT d.repo, d.id, d.environment, d.created_at, d.sha, d.creator, d.seq,
                    coalesce((SELECT state FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id AND s.state != '{inactive}' ORDER BY s.id DESC LIMIT 1),
                             (SELECT state FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id ORDER BY s.id DESC LIMIT 1), 'unknown'),
                    coalesce((SELECT created_at FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id AND s.state != '{inactive}' ORDER BY s.id DESC LIMIT 1), d.created_at),
                    d.ref,
                    coalesce((SELECT seq FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id AND s.state != '{inactive}' ORDER BY s.id DESC LIMIT 1),
                             (SELECT seq FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id ORDER BY s.id DESC LIMIT 1))
             FROM deployments d ORDER BY d.created_at, d.id", inactive = DeploymentState::Inactive.recorded()),
            &[],
            |r| deployment(r, true),
        )?;
        self.name_deployments(&mut list)?;
        Ok(list)
    }

    /// Fills each deployment's [`Deployment::name`] and [`Deployment::url`].
    fn name_deployments(&self, list: &mut [Deployment]) -> Result<(), LedgerError> {
        let external: HashMap<DeploymentKey, String> = self
            .events::<DeploymentRecorded>(&Select::default())?
            .into_iter()
            .filter_map(|e| e.payload.external_id.map(|x| ((e.payload.repository, e.payload.deployment_id), x)))
            .collect();
        let pages = self.deployment_pages()?;
        for d in list {
            d.name = deployment_name(d.id, external.get(&d.key()).map(String::as_str));
            d.url = pages.get(&d.key()).cloned();
        }
        Ok(())
    }

    /// Every synced deployment with its very latest state (`inactive` too), by creation time.
    pub fn deployments_latest_state(&self) -> Result<Vec<Deployment>, LedgerError> {
        self.rows(
            "SELECT d.repo, d.id, d.environment, d.created_at, d.sha, d.creator, d.seq,
                    (SELECT state FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id ORDER BY s.id DESC LIMIT 1),
                    d.ref,
                    (SELECT seq FROM deployment_statuses s WHERE s.repo = d.repo AND s.deployment_id = d.id ORDER BY s.id DESC LIMIT 1)
             FROM deployments d ORDER BY d.created_at",
            &[],
            |r| deployment(r, false),
        )
        .and_then(|mut list| {
            self.name_deployments(&mut list)?;
            Ok(list)
        })
    }

    /// Every deployment's approvals, by deployment id (synced Actions reviews for
    /// GitHub's ids, recorded approvers for recorded deployments' negative ids).
    pub fn deployment_approvals(&self) -> Result<HashMap<DeploymentKey, Vec<DeploymentApproval>>, LedgerError> {
        let mut out: HashMap<DeploymentKey, Vec<DeploymentApproval>> = HashMap::new();
        for e in self.events::<DeploymentRecorded>(&Select::default())? {
            let list = out.entry((e.payload.repository.clone(), e.payload.deployment_id)).or_default();
            for user in &e.payload.approved_by {
                if !list.iter().any(|a| &a.user == user) {
                    list.push(DeploymentApproval {
                        user: user.clone(),
                        state: APPROVAL_APPROVED.into(),
                        time: None,
                        synced_at: e.time.clone(),
                        seq: e.seq,
                    });
                }
            }
        }
        for e in self.events::<DeploymentApprovalSynced>(&Select::default())? {
            let list = out.entry((e.payload.repository.clone(), e.payload.deployment_id)).or_default();
            for a in &e.payload.approvals {
                list.push(DeploymentApproval {
                    user: a.user.as_ref().and_then(|u| u.login.clone()).unwrap_or_default(),
                    state: a.state.clone().unwrap_or_default(),
                    time: None,
                    synced_at: e.time.clone(),
                    seq: e.seq,
                });
            }
        }
        Ok(out)
    }

    /// Deployments whose approvals GitHub no longer has (so they are unknown).
    pub fn deployments_with_unknown_approvals(&self) -> Result<std::collections::HashSet<DeploymentKey>, LedgerError> {
        Ok(self
            .events::<DeploymentApprovalSynced>(&Select::default())?
            .into_iter()
            .filter(|e| e.payload.gone)
            .map(|e| (e.payload.repository, e.payload.deployment_id))
            .collect())
    }

    /// The Actions run that made each synced deployment, by deployment id: who
    /// triggered it (else who started it), and the entry's seq.
    pub fn deployment_runs(&self) -> Result<HashMap<DeploymentKey, (Option<String>, u64)>, LedgerError> {
        Ok(self
            .events::<WorkflowRunSynced>(&Select::default())?
            .into_iter()
            .map(|e| {
                let login = |l: &Option<crate::event::Login>| l.as_ref().and_then(|u| u.login.clone());
                let who = login(&e.payload.triggering_actor).or_else(|| login(&e.payload.actor));
                ((e.payload.repository, e.payload.deployment_id), (who, e.seq))
            })
            .collect())
    }

    /// A team's members as of `time`: the last snapshot recorded at or before
    /// it; failing that (every event before the first team sync), the earliest
    /// snapshot after it, marked as such; `None` when the team was never recorded.
    pub fn team_membership_at(&self, org: &str, slug: &str, time: &str) -> Result<Option<TeamMembership>, LedgerError> {
        let at = crate::time::Timestamp::parse(time).ok();
        let subject = TeamSynced::subject(org, slug);
        let snapshots = self.events::<TeamSynced>(&Select { subject: Some(&subject), ..Select::default() })?;
        let dated = |e: &super::Recorded<TeamSynced>| crate::time::Timestamp::parse(&e.time).ok();
        let before = snapshots.iter().rev().find(|e| at.is_some_and(|at| dated(e).is_some_and(|t| t <= at)));
        let chosen = match before {
            Some(e) => Some((e, false)),
            None => snapshots.iter().find(|e| dated(e).is_some()).map(|e| (e, true)),
        };
        Ok(chosen.map(|(e, after)| TeamMembership { members: e.payload.members.clone(), as_of: e.time.clone(), after, seq: e.seq }))
    }

    /// One page on its forge of each repository: the newest change's or CI
    /// run's, as synced (which forge, and its web root, follow from it: see
    /// [`crate::forge::Web::recognise`]). Repositories with neither are left out.
    pub fn forge_pages(&self) -> Result<std::collections::BTreeMap<String, String>, LedgerError> {
        let repos =
            self.rows("SELECT DISTINCT repo FROM pull_requests UNION SELECT DISTINCT repo FROM deployments", &[], |r| text(r, 0))?;
        let mut out = std::collections::BTreeMap::new();
        for repo in repos {
            // `owner/name#N` subjects: a range on the (subject, seq) index ('$' follows '#').
            let url = self
                .rows(
                    &format!(
                        "SELECT payload FROM entries WHERE {} = ?1 AND subject >= ?2 AND subject < ?3 ORDER BY seq DESC LIMIT 1",
                        self.unindexed("kind")
                    ),
                    &[Kind::PrSynced.as_str().into(), format!("{repo}#").into(), format!("{repo}$").into()],
                    |r| text(r, 0),
                )?
                .into_iter()
                .next()
                .and_then(|p| ChangeSynced::decode(Kind::PrSynced.as_str(), &p))
                .and_then(|p| p.html_url);
            let url = match url {
                Some(u) => Some(u),
                None => self
                    .events::<WorkflowRunSynced>(&Select::default())?
                    .into_iter()
                    .rev()
                    .find(|e| e.payload.repository == repo)
                    .and_then(|e| e.payload.html_url),
            };
            if let Some(page) = url {
                out.insert(repo, page);
            }
        }
        Ok(out)
    }

    /// Each deployment's page, by id: the Actions run that made it, the CI job
    /// a recorded deployment names, else its newest status's log.
    pub fn deployment_pages(&self) -> Result<HashMap<DeploymentKey, String>, LedgerError> {
        let mut out: HashMap<DeploymentKey, String> = self
            .rows(
                "SELECT repo, deployment_id, log_url FROM deployment_statuses WHERE log_url IS NOT NULL AND log_url != '' ORDER BY id",
                &[],
                |r| ((text(r, 0), r.get(1).and_then(Value::as_int).unwrap_or(0)), text(r, 2)),
            )?
            .into_iter()
            .collect();
        for e in self.events::<WorkflowRunSynced>(&Select::default())? {
            out.extend(e.payload.html_url.map(|u| ((e.payload.repository.clone(), e.payload.deployment_id), u)));
        }
        for e in self.events::<DeploymentRecorded>(&Select::default())? {
            out.extend(e.payload.url.map(|u| ((e.payload.repository.clone(), e.payload.deployment_id), u)));
        }
        Ok(out)
    }

    /// Where each recorded deployment came from (`gitlab-ci`, `jenkins` …), by id;
    /// deployments not in it were synced from GitHub.
    /// Each recorded deployment's history: what its first record claimed, how
    /// those claims are known, and every later record that contradicts them.
    pub fn recorded_histories(&self) -> Result<HashMap<DeploymentKey, RecordHistory>, LedgerError> {
        let mut by_id: HashMap<DeploymentKey, Vec<super::Recorded<DeploymentRecorded>>> = HashMap::new();
        for e in self.events::<DeploymentRecorded>(&Select::default())? {
            by_id.entry((e.payload.repository.clone(), e.payload.deployment_id)).or_default().push(e);
        }
        Ok(by_id.into_iter().filter_map(|(id, records)| RecordHistory::of(&records).map(|h| (id, h))).collect())
    }

    pub fn recorded_sources(&self) -> Result<HashMap<DeploymentKey, String>, LedgerError> {
        Ok(self
            .events::<DeploymentRecorded>(&Select::default())?
            .into_iter()
            .map(|e| ((e.payload.repository, e.payload.deployment_id), e.payload.source))
            .collect())
    }

    /// Every commit id the ledger knows (verified, pushed, in a pull request or
    /// review, deployed) that starts with `prefix` (lowercase hex), at most
    /// `limit`, sorted. Range scans on the id columns, so it stays fast.
    pub fn commits_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>, LedgerError> {
        // Hex digits sort below 'g': [prefix, prefix + "g") holds exactly the ids that start with it.
        let (lo, hi) = (prefix.to_string(), format!("{prefix}g"));
        let columns = [
            ("commits", "id"),
            ("ref_updates", "new"),
            ("ref_updates", "old"),
            ("pull_requests", "head_sha"),
            ("pull_requests", "merge_commit_sha"),
            ("pr_commits", "sha"),
            ("reviews", "commit_id"),
            ("deployments", "sha"),
            ("commit_pulls", "sha"),
        ];
        let query = columns
            .iter()
            .map(|(t, c)| format!("SELECT {c} AS id FROM {t} WHERE {c} >= ?1 AND {c} < ?2"))
            .collect::<Vec<_>>()
            .join(" UNION ");
        let mut ids =
            self.rows(&format!("SELECT id FROM ({query}) AS known ORDER BY id LIMIT {limit}"), &[lo.into(), hi.into()], |r| text(r, 0))?;
        ids.retain(|id| !id.is_empty());
        Ok(ids)
    }

    /// Each ref's value as last accepted by a push decision made under the
    /// policy with `digest`, without break glass: what the hooks may take as
    /// checked under today's rules. A ref last accepted under another policy
    /// (or by break glass) is left out, so its commits are checked again as
    /// they move onto a protected ref. One query, one row per ref.
    pub fn checked_tips(&self, digest: &str) -> Result<HashMap<String, String>, LedgerError> {
        let kind = Kind::PushDecided.as_str();
        let rows = self.rows(
            "SELECT r.ref, r.new, e.payload FROM ref_updates r JOIN entries e ON e.seq = r.seq
             WHERE r.seq IN (SELECT max(seq) FROM ref_updates WHERE kind = ?1 AND accepted = 1 GROUP BY ref) AND r.kind = ?1",
            &[kind.into()],
            |r| (text(r, 0), text(r, 1), text(r, 2)),
        )?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, payload)| {
                serde_json::from_str::<crate::event::PushDecided>(payload)
                    .is_ok_and(|p| p.accepted && p.policy_digest == digest && !p.bypass.is_some_and(|b| b.allowed))
            })
            .map(|(r, new, _)| (r, new))
            .collect())
    }

    /// The latest signature status and signer recorded for a commit.
    pub fn commit_signature(&self, id: &str) -> Result<Option<(String, String)>, LedgerError> {
        Ok(self
            .rows("SELECT signature_status, signer FROM commits WHERE id = ?1", &[id.into()], |r| (text(r, 0), text(r, 1)))?
            .into_iter()
            .next())
    }

    /// The pull requests of `repo` a commit is tied to, by number.
    pub fn pulls_of_commit(&self, repo: &str, sha: &str) -> Result<Vec<PullLink>, LedgerError> {
        // `+repo`: look commits up by sha (indexed), not by scanning a repository's rows.
        let (plus_repo, each) = (self.unindexed("repo"), self.json_numbers("cp.pulls"));
        self.rows(
            &format!(
                "SELECT number, how FROM (
                SELECT number, 'commit' AS how FROM pr_commits WHERE {plus_repo} = ?1 AND sha = ?2
                UNION SELECT number, 'squash/merge' FROM pull_requests WHERE {plus_repo} = ?1 AND merge_commit_sha = ?2
                UNION SELECT CAST(j.value AS BIGINT), 'rebase' FROM commit_pulls cp, {each} WHERE cp.repo = ?1 AND cp.sha = ?2) x ORDER BY number"
            ),
            &[repo.into(), sha.into()],
            |r| PullLink { number: int(r, 0), how: text(r, 1) },
        )
    }

    /// True when the commit → pulls look-up found no pull request for `sha`.
    pub fn pushed_directly(&self, repo: &str, sha: &str) -> Result<bool, LedgerError> {
        Ok(!self
            .rows("SELECT 1 FROM commit_pulls WHERE repo = ?1 AND sha = ?2 AND pulls = '[]'", &[repo.into(), sha.into()], |_| ())?
            .is_empty())
    }

    /// Who approved pull request `number` of `repo`, space-separated as reports show them.
    pub fn approvers(&self, repo: &str, number: i64) -> Result<String, LedgerError> {
        let rows = self.rows(
            &format!(
                "SELECT group_concat(reviewer, ' ') FROM reviews WHERE repo = ?1 AND number = ?2 AND state = '{approved}'",
                approved = ReviewState::Approved.recorded()
            ),
            &[repo.into(), number.into()],
            |r| text(r, 0),
        )?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Pull requests that contain `commit` (in their commits, as their merge
    /// commit, or through the commit → pulls look-up), with how they are linked.
    pub fn pulls_containing(&self, commit: &str) -> Result<Vec<PullRequest>, LedgerError> {
        let each = self.json_numbers("cp.pulls");
        self.rows(
            &format!(
                "SELECT p.repo, p.number, p.title, p.author, p.state, p.merged_by, p.merged_at, p.head_sha, how FROM (
                SELECT repo, number, 'in its commits' AS how FROM pr_commits WHERE sha = ?1
                UNION SELECT repo, number, 'its merge commit' FROM pull_requests WHERE merge_commit_sha = ?1
                UNION SELECT cp.repo, CAST(j.value AS BIGINT), 'commit → pulls look-up' FROM commit_pulls cp, {each} WHERE cp.sha = ?1
             ) x JOIN pull_requests p ON p.repo = x.repo AND p.number = x.number ORDER BY p.repo, p.number"
            ),
            &[commit.into()],
            |r| PullRequest {
                repository: text(r, 0),
                number: int(r, 1),
                title: text(r, 2),
                author: text(r, 3),
                state: text(r, 4),
                merged_by: text(r, 5),
                merged_at: text(r, 6),
                head_sha: text(r, 7),
                linked_by: text(r, 8),
            },
        )
    }

    /// The reviews of a pull request, in the order they were submitted.
    pub fn reviews(&self, repo: &str, number: i64) -> Result<Vec<Review>, LedgerError> {
        self.rows(
            "SELECT number, reviewer, state, commit_id, submitted_at FROM reviews WHERE repo = ?1 AND number = ?2 ORDER BY submitted_at",
            &[repo.into(), number.into()],
            |r| Review {
                number: int(r, 0),
                reviewer: text(r, 1),
                state: ReviewState::parse(&text(r, 2)),
                commit_id: text(r, 3),
                submitted_at: text(r, 4),
            },
        )
    }
}

/// A team's membership as recorded, and on what basis it answers for a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMembership {
    pub members: Vec<String>,
    /// When the snapshot used was recorded.
    pub as_of: String,
    /// The snapshot was recorded after the moment asked about (nothing earlier was).
    pub after: bool,
    /// The snapshot's ledger seq (evidence).
    pub seq: u64,
}

/// A recorded deployment as first claimed, and what later records changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordHistory {
    pub source: String,
    /// The deployer as first claimed (the first record that names one).
    pub actor: Option<String>,
    /// The approvers as first claimed.
    pub approvers: Vec<String>,
    /// The first record's attestation; `None`: asserted by the recording job.
    pub attestation: Option<crate::attest::Attestation>,
    /// Later records that contradict the first: what changed, by which writer, when.
    pub corrections: Vec<String>,
    /// The seqs of the records that made corrections.
    pub correction_seqs: Vec<u64>,
}

impl RecordHistory {
    /// From one deployment's records, oldest first.
    pub fn of(records: &[super::Recorded<DeploymentRecorded>]) -> Option<RecordHistory> {
        let first = records.first()?;
        let mut h = RecordHistory {
            source: first.payload.source.clone(),
            actor: records.iter().find_map(|r| r.payload.actor.clone()),
            approvers: first.payload.approved_by.clone(),
            attestation: first.payload.attestation.clone(),
            ..RecordHistory::default()
        };
        for r in &records[1..] {
            let p = &r.payload;
            let mut changed = Vec::new();
            if p.sha != first.payload.sha {
                changed.push(format!("sha {} → {}", crate::git::short_id(&first.payload.sha), crate::git::short_id(&p.sha)));
            }
            if let (Some(was), Some(now)) = (&h.actor, &p.actor) {
                if !was.eq_ignore_ascii_case(now) {
                    changed.push(format!("deployer {was} → {now}"));
                }
            }
            let added: Vec<&str> = p.approved_by.iter().filter(|a| !h.approvers.contains(a)).map(String::as_str).collect();
            let removed: Vec<&str> = h.approvers.iter().filter(|a| !p.approved_by.contains(a)).map(String::as_str).collect();
            if !added.is_empty() {
                changed.push(format!("approvers added after the fact: {}", added.join(", ")));
            }
            if !removed.is_empty() && !p.approved_by.is_empty() {
                changed.push(format!("approvers dropped: {}", removed.join(", ")));
            }
            if p.repository != first.payload.repository {
                changed.push(format!("repository {} → {}", first.payload.repository, p.repository));
            }
            if p.source != first.payload.source || p.attestation.as_ref().map(|a| &a.issuer) != h.attestation.as_ref().map(|a| &a.issuer) {
                let how = |a: &Option<crate::attest::Attestation>| {
                    a.as_ref().map_or("asserted".to_string(), |a| format!("attested by {}", a.issuer))
                };
                changed.push(format!("source {} ({}) → {} ({})", first.payload.source, how(&h.attestation), p.source, how(&p.attestation)));
            }
            if !changed.is_empty() {
                h.corrections.push(format!(
                    "re-recorded at {} by writer {} (seq {}): {}",
                    r.time,
                    r.writer.as_deref().unwrap_or("(format 1)"),
                    r.seq,
                    changed.join("; ")
                ));
                h.correction_seqs.push(r.seq);
            }
        }
        Some(h)
    }
}
