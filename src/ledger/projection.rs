//! Projections: relational tables derived from the log for queries.
//!
//! Each entry kind maps to row upserts by one pure function ([`rows`]); the
//! append path writes them, `ledger rebuild` replays them, and `ledger verify`
//! compares the tables with an in-memory replay. Kinds without a projection
//! (and kinds added later) simply produce no rows.

use std::borrow::Cow;
use std::collections::HashMap;

use super::store::Value as Sql;

use super::entry::Entry;
use crate::event::{
    login, view, ChangeSynced, CommitPullsSynced, DeploymentRecorded, DeploymentStatusSynced, DeploymentSynced, Kind, Payload, ReviewSynced,
};

/// A projection table: its columns, and the columns that key a row.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub key: &'static [&'static str],
}

pub const COMMITS: Table = Table {
    name: "commits",
    columns: &[
        "id",
        "signature_status",
        "signature_format",
        "signer",
        "key",
        "verdict",
        "findings",
        "policy_digest",
        "verified_seq",
        "verified_time",
    ],
    key: &["id"],
};

pub const REF_UPDATES: Table =
    Table { name: "ref_updates", columns: &["seq", "ref", "old", "new", "pusher", "time", "accepted", "kind"], key: &["seq", "ref"] };

pub const PULL_REQUESTS: Table = Table {
    name: "pull_requests",
    columns: &[
        "repo",
        "number",
        "title",
        "author",
        "state",
        "draft",
        "base_ref",
        "base_sha",
        "head_ref",
        "head_sha",
        "merge_commit_sha",
        "merged",
        "merged_by",
        "merged_at",
        "created_at",
        "updated_at",
        "closed_at",
        "commit_count",
        "seq",
    ],
    key: &["repo", "number"],
};

pub const PR_COMMITS: Table = Table { name: "pr_commits", columns: &["repo", "number", "sha", "seq"], key: &["repo", "number", "sha"] };

pub const REVIEWS: Table = Table {
    name: "reviews",
    columns: &["repo", "id", "number", "reviewer", "state", "commit_id", "submitted_at", "seq"],
    key: &["repo", "id"],
};

pub const DEPLOYMENTS: Table = Table {
    name: "deployments",
    columns: &["repo", "id", "sha", "ref", "environment", "creator", "task", "created_at", "seq"],
    key: &["repo", "id"],
};

pub const DEPLOYMENT_STATUSES: Table = Table {
    name: "deployment_statuses",
    columns: &["repo", "id", "deployment_id", "state", "creator", "environment", "log_url", "created_at", "seq"],
    key: &["repo", "id"],
};

pub const COMMIT_PULLS: Table = Table { name: "commit_pulls", columns: &["repo", "sha", "pulls", "seq"], key: &["repo", "sha"] };

pub const TABLES: &[&Table] =
    &[&COMMITS, &REF_UPDATES, &PULL_REQUESTS, &PR_COMMITS, &REVIEWS, &DEPLOYMENTS, &DEPLOYMENT_STATUSES, &COMMIT_PULLS];

/// DDL for the projection tables and their indexes.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS commits (
    id TEXT PRIMARY KEY, signature_status TEXT, signature_format TEXT, signer TEXT, key TEXT,
    verdict TEXT, findings INTEGER, policy_digest TEXT, verified_seq INTEGER, verified_time TEXT
);
CREATE TABLE IF NOT EXISTS ref_updates (
    seq INTEGER NOT NULL, ref TEXT NOT NULL, old TEXT, new TEXT, pusher TEXT, time TEXT,
    accepted INTEGER, kind TEXT, PRIMARY KEY (seq, ref)
);
CREATE INDEX IF NOT EXISTS ref_updates_ref_time ON ref_updates (ref, time);
CREATE INDEX IF NOT EXISTS ref_updates_new ON ref_updates (new);
CREATE TABLE IF NOT EXISTS pull_requests (
    repo TEXT NOT NULL, number INTEGER NOT NULL, title TEXT, author TEXT, state TEXT, draft INTEGER,
    base_ref TEXT, base_sha TEXT, head_ref TEXT, head_sha TEXT, merge_commit_sha TEXT, merged INTEGER,
    merged_by TEXT, merged_at TEXT, created_at TEXT, updated_at TEXT, closed_at TEXT, commit_count INTEGER, seq INTEGER,
    PRIMARY KEY (repo, number)
);
CREATE INDEX IF NOT EXISTS pull_requests_merge ON pull_requests (merge_commit_sha);
CREATE TABLE IF NOT EXISTS pr_commits (repo TEXT NOT NULL, number INTEGER NOT NULL, sha TEXT NOT NULL, seq INTEGER, PRIMARY KEY (repo, number, sha));
CREATE INDEX IF NOT EXISTS pr_commits_sha ON pr_commits (sha);
CREATE TABLE IF NOT EXISTS reviews (
    repo TEXT NOT NULL, id INTEGER NOT NULL, number INTEGER, reviewer TEXT, state TEXT, commit_id TEXT, submitted_at TEXT, seq INTEGER,
    PRIMARY KEY (repo, id)
);
CREATE INDEX IF NOT EXISTS reviews_pr ON reviews (repo, number);
CREATE TABLE IF NOT EXISTS deployments (
    repo TEXT NOT NULL, id INTEGER NOT NULL, sha TEXT, ref TEXT, environment TEXT, creator TEXT, task TEXT, created_at TEXT, seq INTEGER,
    PRIMARY KEY (repo, id)
);
CREATE INDEX IF NOT EXISTS deployments_env_time ON deployments (environment, created_at);
CREATE INDEX IF NOT EXISTS deployments_sha ON deployments (sha);
CREATE TABLE IF NOT EXISTS deployment_statuses (
    repo TEXT NOT NULL, id INTEGER NOT NULL, deployment_id INTEGER, state TEXT, creator TEXT, environment TEXT, log_url TEXT, created_at TEXT, seq INTEGER,
    PRIMARY KEY (repo, id)
);
CREATE INDEX IF NOT EXISTS deployment_statuses_dep_id ON deployment_statuses (repo, deployment_id, id);
CREATE TABLE IF NOT EXISTS commit_pulls (repo TEXT NOT NULL, sha TEXT NOT NULL, pulls TEXT, seq INTEGER, PRIMARY KEY (repo, sha));
";

/// One row to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub table: &'static Table,
    pub values: Vec<Sql>,
}

impl Row {
    pub fn key(&self) -> String {
        if let [only] = self.table.key {
            if let Some(i) = self.table.columns.iter().position(|c| c == only) {
                return show(&self.values[i]);
            }
        }
        self.table
            .key
            .iter()
            .filter_map(|k| self.table.columns.iter().position(|c| c == k))
            .map(|i| show(&self.values[i]))
            .collect::<Vec<_>>()
            .join("/")
    }
}

pub fn show(v: &Sql) -> String {
    match v {
        Sql::Null => "NULL".into(),
        Sql::Int(i) => i.to_string(),
        Sql::Real(r) => r.to_string(),
        Sql::Text(t) => t.clone(),
        Sql::Blob(b) => hex::encode(b),
    }
}

fn opt(v: Option<Cow<'_, str>>) -> Sql {
    v.map_or(Sql::Null, |s| Sql::Text(s.into_owned()))
}

/// The rows an entry contributes, from its stored columns (`payload` is its JSON text).
/// A payload that does not have the expected shape contributes no rows.
pub fn rows(seq: u64, time: &str, kind: &str, subject: &str, actor: &str, payload: &str) -> Vec<Row> {
    let Some(kind) = Kind::parse(kind) else {
        return Vec::new();
    };
    match kind {
        Kind::CommitVerified => {
            let Ok(p) = serde_json::from_str::<view::CommitVerified<'_>>(payload) else {
                return Vec::new();
            };
            let (status, format, signer, key) = match p.signature {
                Some(s) => (opt(s.status), opt(s.format), opt(s.signer), opt(s.key)),
                None => (Sql::Null, Sql::Null, Sql::Null, Sql::Null),
            };
            vec![Row {
                table: &COMMITS,
                values: vec![
                    Sql::Text(subject.to_string()),
                    status,
                    format,
                    signer,
                    key,
                    opt(p.verdict),
                    Sql::Int(p.findings.map_or(0, |f| f.len() as i64)),
                    opt(p.policy_digest),
                    Sql::Int(seq as i64),
                    Sql::Text(time.to_string()),
                ],
            }]
        }
        Kind::PushDecided | Kind::RefUpdated => {
            let Ok(p) = serde_json::from_str::<view::RefUpdates<'_>>(payload) else {
                return Vec::new();
            };
            let accepted = if kind == Kind::RefUpdated { Sql::Int(1) } else { p.accepted.map_or(Sql::Null, |b| Sql::Int(b as i64)) };
            p.ref_updates
                .into_iter()
                .map(|u| Row {
                    table: &REF_UPDATES,
                    values: vec![
                        Sql::Int(seq as i64),
                        opt(u.refname),
                        opt(u.old),
                        opt(u.new),
                        Sql::Text(actor.to_string()),
                        Sql::Text(time.to_string()),
                        accepted.clone(),
                        Sql::Text(kind.as_str().to_string()),
                    ],
                })
                .collect()
        }
        Kind::PrSynced | Kind::ReviewSynced | Kind::DeploymentSynced | Kind::DeploymentStatusSynced | Kind::CommitPullsSynced => {
            sync_rows(seq, kind, payload)
        }
        Kind::DeploymentRecorded => recorded_rows(seq, time, payload),
        // Read from the entries themselves (`Ledger::events`), not from a
        // table. Every kind is named here: a new kind does not compile until
        // someone says whether it has a projection.
        Kind::PolicyLoaded
        | Kind::BypassUsed
        | Kind::LedgerGap
        | Kind::LedgerAnchored
        | Kind::DeploymentApprovalSynced
        | Kind::WorkflowRunSynced
        | Kind::EnvironmentSynced
        | Kind::TeamSynced
        | Kind::PrFilesSynced
        | Kind::ForgeAuditSynced
        | Kind::AttestationIssued
        | Kind::LedgerWriter => Vec::new(),
    }
}

fn text(v: Option<&str>) -> Sql {
    v.map_or(Sql::Null, |t| Sql::Text(t.to_string()))
}

fn int(v: Option<i64>) -> Sql {
    v.map_or(Sql::Null, Sql::Int)
}

fn flag(v: Option<bool>) -> Sql {
    v.map_or(Sql::Null, |b| Sql::Int(b as i64))
}

/// Status ids of recorded deployments start here (far below zero).
const RECORDED_STATUS_BASE: i64 = i64::MIN / 2;

/// A recorded deployment goes into the same tables as synced ones: the
/// deployment (kept under its id, so later records move it on) and one status.
fn recorded_rows(seq: u64, time: &str, payload: &str) -> Vec<Row> {
    let Some(d) = DeploymentRecorded::decode(Kind::DeploymentRecorded.as_str(), payload) else {
        return Vec::new();
    };
    let text = |s: &Option<String>| s.as_ref().map_or(Sql::Null, |v| Sql::Text(v.clone()));
    let repo = Sql::Text(d.repository.clone());
    vec![
        Row {
            table: &DEPLOYMENTS,
            values: vec![
                repo.clone(),
                Sql::Int(d.deployment_id),
                Sql::Text(d.sha.clone()),
                text(&d.git_ref),
                Sql::Text(d.environment.clone()),
                text(&d.actor),
                Sql::Text("deploy".into()),
                Sql::Text(time.to_string()),
                Sql::Int(seq as i64),
            ],
        },
        Row {
            table: &DEPLOYMENT_STATUSES,
            values: vec![
                repo,
                // Negative, like the deployment's id (never a GitHub status id), and
                // growing with seq, as reports take a deployment's highest status id as its latest.
                Sql::Int(RECORDED_STATUS_BASE + seq as i64),
                Sql::Int(d.deployment_id),
                Sql::Text(d.status.as_str().into()),
                text(&d.actor),
                Sql::Text(d.environment),
                text(&d.url),
                Sql::Text(time.to_string()),
                Sql::Int(seq as i64),
            ],
        },
    ]
}

/// Rows of the forge kinds (the typed vocabulary of [`crate::event::synced`]).
fn sync_rows(seq: u64, kind: Kind, payload: &str) -> Vec<Row> {
    let seq = Sql::Int(seq as i64);
    match kind {
        Kind::PrSynced => {
            let Some(p) = ChangeSynced::decode(kind.as_str(), payload) else {
                return Vec::new();
            };
            let repo = text(p.repository.as_deref());
            let (base, head) = (p.base.unwrap_or_default(), p.head.unwrap_or_default());
            let mut rows = vec![Row {
                table: &PULL_REQUESTS,
                values: vec![
                    repo.clone(),
                    int(p.number),
                    text(p.title.as_deref()),
                    text(login(&p.user)),
                    text(p.state.as_deref()),
                    flag(p.draft),
                    text(base.name.as_deref()),
                    text(base.sha.as_deref()),
                    text(head.name.as_deref()),
                    text(head.sha.as_deref()),
                    text(p.merge_commit_sha.as_deref()),
                    flag(p.merged),
                    text(login(&p.merged_by)),
                    text(p.merged_at.as_deref()),
                    text(p.created_at.as_deref()),
                    text(p.updated_at.as_deref()),
                    text(p.closed_at.as_deref()),
                    Sql::Int(p.commits.len() as i64),
                    seq.clone(),
                ],
            }];
            rows.extend(
                p.commits
                    .into_iter()
                    .map(|c| Row { table: &PR_COMMITS, values: vec![repo.clone(), int(p.number), Sql::Text(c), seq.clone()] }),
            );
            rows
        }
        Kind::ReviewSynced => {
            let Some(p) = ReviewSynced::decode(kind.as_str(), payload) else {
                return Vec::new();
            };
            vec![Row {
                table: &REVIEWS,
                values: vec![
                    text(p.repository.as_deref()),
                    int(p.id),
                    int(p.pull_number),
                    text(login(&p.user)),
                    text(p.state.as_ref().map(|s| s.recorded())),
                    text(p.commit_id.as_deref()),
                    text(p.submitted_at.as_deref()),
                    seq,
                ],
            }]
        }
        Kind::DeploymentSynced => {
            let Some(p) = DeploymentSynced::decode(kind.as_str(), payload) else {
                return Vec::new();
            };
            vec![Row {
                table: &DEPLOYMENTS,
                values: vec![
                    text(p.repository.as_deref()),
                    int(p.id),
                    text(p.sha.as_deref()),
                    text(p.git_ref.as_deref()),
                    text(p.environment.as_deref()),
                    text(login(&p.creator)),
                    text(p.task.as_deref()),
                    text(p.created_at.as_deref()),
                    seq,
                ],
            }]
        }
        Kind::DeploymentStatusSynced => {
            let Some(p) = DeploymentStatusSynced::decode(kind.as_str(), payload) else {
                return Vec::new();
            };
            vec![Row {
                table: &DEPLOYMENT_STATUSES,
                values: vec![
                    text(p.repository.as_deref()),
                    int(p.id),
                    int(p.deployment_id),
                    text(p.state.as_ref().map(|s| s.recorded())),
                    text(login(&p.creator)),
                    text(p.environment.as_deref()),
                    text(p.log_url.as_deref()),
                    text(p.created_at.as_deref()),
                    seq,
                ],
            }]
        }
        Kind::CommitPullsSynced => {
            let Some(p) = CommitPullsSynced::decode(kind.as_str(), payload) else {
                return Vec::new();
            };
            let pulls = serde_json::to_string(&p.pulls).unwrap_or_else(|_| "[]".into());
            vec![Row { table: &COMMIT_PULLS, values: vec![text(p.repository.as_deref()), text(p.sha.as_deref()), Sql::Text(pulls), seq] }]
        }
        _ => Vec::new(),
    }
}

/// The rows of a parsed entry.
pub fn entry_rows(e: &Entry) -> Vec<Row> {
    rows(e.seq, &e.time, &e.kind, &e.subject, &e.actor, &super::entry::canonical_json(&e.payload))
}

/// The SQL that upserts a row of `t`.
pub fn upsert_sql(t: &Table) -> String {
    let params: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}){}",
        t.name,
        t.columns.join(", "),
        params.join(", "),
        super::store::upsert_tail(t.columns, t.key)
    )
}

/// A 64-bit digest of a row's values (to compare replayed and stored rows
/// without keeping every replayed value in memory). Keyed with a random
/// per-run SipHash key, so someone editing the tables cannot aim for a collision.
pub fn digest(key: &std::collections::hash_map::RandomState, values: &[Sql]) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = key.build_hasher();
    for v in values {
        match v {
            Sql::Null => 0u8.hash(&mut h),
            Sql::Int(i) => (1u8, i).hash(&mut h),
            Sql::Real(r) => (2u8, r.to_bits()).hash(&mut h),
            Sql::Text(t) => (3u8, t).hash(&mut h),
            Sql::Blob(b) => (4u8, b).hash(&mut h),
        }
    }
    h.finish()
}

/// Projection state replayed in memory: table → key → digest of the values.
/// With `keep`, the full values of those keys are kept too (to say which
/// columns differ).
#[derive(Default)]
pub struct Replay {
    pub digest_key: std::collections::hash_map::RandomState,
    pub tables: HashMap<&'static str, HashMap<String, u64>>,
    pub keep: Option<std::collections::HashSet<(&'static str, String)>>,
    pub kept: HashMap<(&'static str, String), Vec<Sql>>,
}

impl Replay {
    pub fn apply(&mut self, rows: Vec<Row>) {
        for r in rows {
            let key = r.key();
            if let Some(keep) = &self.keep {
                let k = (r.table.name, key.clone());
                if keep.contains(&k) {
                    self.kept.insert(k, r.values.clone());
                }
            }
            let d = digest(&self.digest_key, &r.values);
            self.tables.entry(r.table.name).or_default().insert(key, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CommitVerified, DeployStatus, DeploymentRecorded, PushDecided, RefDecided};

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!("{}/fixtures/github/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Every kind with a projection, made by the code that makes it in
    /// production from GitHub's own shapes (fixtures), fills its table's key
    /// and `seq` columns and every column the table has: a view that names a
    /// field its payload lacks, or a row one value short, fails here.
    #[test]
    fn every_projected_kind_fills_its_tables_keys_from_what_its_producer_writes() {
        let repo = "acme/api";
        let sha = "a84d88e7554fc1fa21bcbc4efae3c782a70d2b9d";
        let verified = CommitVerified {
            commit: sha.into(),
            subject: "feat: one".into(),
            author: None,
            committer: None,
            policy_digest: "d".into(),
            verdict: crate::rule::CommitVerdict::Pass,
            signature: crate::signature::Verdict {
                signer: Some("Alice <alice@example.com>".into()),
                key: Some("SHA256:abc".into()),
                ..crate::signature::Verdict::new(crate::signature::SignatureStatus::Good, Some(crate::signature::SignatureFormat::Ssh))
            },
            findings: Vec::new(),
            exempt: None,
        };
        let pushed = PushDecided {
            ref_updates: vec![RefDecided { refname: "refs/heads/main".into(), old: "0".repeat(40), new: sha.into(), ..Default::default() }],
            accepted: true,
            ..Default::default()
        };
        let recorded = DeploymentRecorded {
            source: "gitlab-ci".into(),
            repository: repo.into(),
            environment: "production".into(),
            sha: sha.into(),
            status: DeployStatus::Success,
            git_ref: None,
            actor: Some("erin".into()),
            url: None,
            approved_by: Vec::new(),
            external_id: None,
            deployment_id: -7,
            attestation: None,
        };
        // The fixture is an open pull request; this one was merged.
        let mut merged = fixture("pull.json");
        merged["merged_by"] = serde_json::json!({"login": "bob"});
        merged["merged_at"] = "2011-01-26T20:01:12Z".into();
        merged["closed_at"] = "2011-01-26T20:01:12Z".into();
        let cases: Vec<(Kind, serde_json::Value, &[&str])> = vec![
            (Kind::CommitVerified, serde_json::to_value(&verified).unwrap_or_default(), &["commits"]),
            (Kind::PushDecided, serde_json::to_value(&pushed).unwrap_or_default(), &["ref_updates"]),
            (Kind::RefUpdated, serde_json::to_value(&pushed).unwrap_or_default(), &["ref_updates"]),
            (
                Kind::PrSynced,
                crate::forge::github::GithubPayload::pull_request(repo, &merged, true, &[sha.to_string()], false),
                &["pull_requests", "pr_commits"],
            ),
            (Kind::ReviewSynced, crate::forge::github::GithubPayload::review(repo, 12, &fixture("review.json")), &["reviews"]),
            (Kind::DeploymentSynced, crate::forge::github::GithubPayload::deployment(repo, &fixture("deployment.json")), &["deployments"]),
            (
                Kind::DeploymentStatusSynced,
                crate::forge::github::GithubPayload::deployment_status(repo, 1, &fixture("deployment_status.json")),
                &["deployment_statuses"],
            ),
            (
                Kind::CommitPullsSynced,
                crate::forge::github::GithubPayload::commit_pulls(repo, sha, &serde_json::json!([12])),
                &["commit_pulls"],
            ),
            (Kind::DeploymentRecorded, serde_json::to_value(&recorded).unwrap_or_default(), &["deployments", "deployment_statuses"]),
        ];
        for (kind, payload, tables) in &cases {
            let rows = rows(42, "2026-07-01T00:00:00.000Z", kind.as_str(), sha, "alice", &payload.to_string());
            let made: Vec<&str> = rows.iter().map(|r| r.table.name).collect();
            assert_eq!(&made, tables, "{kind}: {payload}");
            for r in &rows {
                assert_eq!(r.values.len(), r.table.columns.len(), "{kind}: a {} row of the wrong width", r.table.name);
                for (col, v) in r.table.columns.iter().zip(&r.values) {
                    // What these inputs leave empty on purpose: no ref or log
                    // for the recorded deployment.
                    let may_be_empty = matches!((r.table.name, *col), ("deployments", "ref") | ("deployment_statuses", "log_url"));
                    if !may_be_empty {
                        assert!(!matches!(v, Sql::Null), "{kind}: {}.{col} is empty: {payload}", r.table.name);
                    }
                }
            }
        }
        // Every kind with a table is exercised above; the rest are read from the entries.
        let projected: std::collections::BTreeSet<Kind> = cases.iter().map(|c| c.0).collect();
        for k in Kind::ALL.iter().filter(|k| !projected.contains(k)) {
            assert!(rows(1, "t", k.as_str(), "s", "a", "{}").is_empty(), "{k} makes rows but is not tested here");
        }
    }
}
