//! Real-time notifications from a durable outbox.
//!
//! An event that should reach people (a refused push, break glass, a new
//! finding …) is written to `notify_outbox`, in the ledger's database, in the
//! same transaction as the ledger entry it reports — one row per sink that
//! selects it, with a stable message id. Delivery is separate: `drain` sends
//! what is due, retries failures with backoff (honouring `Retry-After`),
//! disables a sink that answers 410 Gone, and marks rows delivered. The hooks
//! start a drain in the background and never wait on the network; the sync job
//! and `git-audit notify drain` drain too. Delivery is at least once: a
//! receiver deduplicates on `webhook-id`.
//!
//! Sinks are resolved from the policy at delivery time: the outbox holds the
//! sink's *name* and the event, never a URL or a secret.

pub mod body;
pub mod format;
pub mod http;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ledger::state::{StateHandle, Statement};
use crate::ledger::{LedgerError, LedgerFiles, Receipt};
use crate::policy::notify::Sink;
use crate::rule::Finding;
use crate::time::Timestamp;

/// The outbox and the sinks' state, created where missing.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_outbox (
    msg_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt TEXT NOT NULL,
    lease TEXT,
    delivered TEXT,
    last_error TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (msg_id, sink)
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (status, next_attempt);
CREATE TABLE IF NOT EXISTS notify_sinks (name TEXT PRIMARY KEY, disabled TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS notify_seen (key TEXT PRIMARY KEY, first_seen TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notify_tests (sink TEXT PRIMARY KEY, sent INTEGER NOT NULL, failed INTEGER NOT NULL, last TEXT NOT NULL, last_result TEXT NOT NULL);
";

/// After this many failed attempts a message is given up (`dead`); with the
/// backoff capped at an hour that is about a day of trying.
pub const MAX_ATTEMPTS: i64 = 30;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Something that happened, to be told: its type (`push.refused` …) and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: String,
    pub data: body::Data,
    /// The index, among the entries appended with it, of the ledger entry it
    /// reports (its seq and checkpoint are added to the data).
    pub entry: Option<usize>,
    /// What makes it the same message however many times it is queued (a
    /// digest's period): its message id derives from it, so a second queueing
    /// is a no-op, even from another process on the same ledger.
    pub key: Option<String>,
}

impl Notice {
    pub fn new(kind: impl Into<String>, data: body::Data) -> Notice {
        Notice { kind: kind.into(), data, entry: None, key: None }
    }

    pub fn reporting(mut self, entry: usize) -> Notice {
        self.entry = Some(entry);
        self
    }
}

/// Where the entries a notice may report were written.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    pub receipt: &'a Receipt,
    /// The seq of entry index 0.
    pub first: u64,
}

/// The outbox rows for `notices`: one per sink that selects each. With
/// `written`, a notice that reports an entry carries its seq and checkpoint,
/// and its message id is derived from them (stable across retries and drains).
pub fn outbox_writes(sinks: &[Sink], notices: &[Notice], written: Option<Written<'_>>) -> Vec<Statement> {
    let now = Timestamp::now().canonical();
    let mut out = Vec::new();
    for (i, n) in notices.iter().enumerate() {
        let targets: Vec<&Sink> = sinks.iter().filter(|s| s.wants(&n.kind)).collect();
        if targets.is_empty() {
            continue;
        }
        let mut data = n.data.clone();
        let id = match (n.entry, written) {
            (Some(index), Some(w)) => {
                let seq = w.first + index as u64;
                data.ledger = Some(body::LedgerRef {
                    seq: Some(seq),
                    tree_size: Some(w.receipt.tree_size),
                    checkpoint: Some(w.receipt.checkpoint.clone()),
                });
                let origin = w.receipt.checkpoint.lines().next().unwrap_or_default();
                stable_id(&[origin, &seq.to_string(), &n.kind, &i.to_string()])
            }
            _ => match &n.key {
                Some(k) => keyed_id(&n.kind, k),
                None => random_id(),
            },
        };
        let body = body::Body { kind: n.kind.clone(), timestamp: now.clone(), data };
        let body = serde_json::to_string(&body).unwrap_or_default();
        for s in targets {
            out.push(Statement::new(
                "INSERT INTO notify_outbox (msg_id, sink, type, body, created, next_attempt) VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
                 ON CONFLICT (msg_id, sink) DO NOTHING",
                vec![id.clone().into(), s.name.clone().into(), n.kind.clone().into(), body.clone().into(), now.clone().into()],
            ));
        }
    }
    out
}

/// The message id of a keyed notice (see [`Notice::key`]).
pub fn keyed_id(kind: &str, key: &str) -> String {
    stable_id(&["keyed", kind, key])
}

/// True when a message with this id is in the outbox (for any sink, in any state).
pub fn is_queued(files: &LedgerFiles, id: &str) -> Result<bool, LedgerError> {
    let h = StateHandle::open(files, SCHEMA)?;
    Ok(!h.rows(&Statement::new("SELECT 1 FROM notify_outbox WHERE msg_id = ?1", vec![id.to_string().into()]))?.is_empty())
}

fn stable_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("msg_{}", &hex::encode(h.finalize())[..32])
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        let t = Timestamp::now().canonical();
        return stable_id(&[&t, &std::process::id().to_string()]);
    }
    format!("msg_{}", hex::encode(b))
}

/// Queues notices that report no ledger entry (a failed verification, a new
/// finding), in a transaction of their own.
pub fn enqueue(files: &LedgerFiles, sinks: &[Sink], notices: &[Notice]) -> Result<usize, LedgerError> {
    let writes = outbox_writes(sinks, notices, None);
    if writes.is_empty() {
        return Ok(0);
    }
    let h = StateHandle::open(files, SCHEMA)?;
    h.transaction(&writes)?;
    Ok(writes.len())
}

/// The `finding.<rule>` notice for a compliance finding, and the key that
/// makes it the same finding on the next pass (rule, subject, message).
pub fn finding_notice(repository: &str, f: &Finding) -> (String, Notice) {
    // A finding about a pull request (`owner/name#12`) names its repository.
    let repository = f.subject.as_deref().and_then(|s| s.split_once('#')).map_or(repository, |(r, _)| r);
    let key = stable_id(&["finding", f.rule.id(), f.subject.as_deref().unwrap_or_default(), &f.message]);
    let notice = Notice::new(
        f.rule.event(),
        body::Data {
            repository: repository.to_string(),
            summary: format!("{}{}: {}", f.rule.id(), f.subject.as_ref().map(|s| format!(" ({s})")).unwrap_or_default(), f.message),
            ledger: Some(body::LedgerRef { seq: f.evidence.last().copied(), tree_size: None, checkpoint: None }),
            detail: body::Detail::Finding(body::FindingData {
                rules: vec![f.rule.id().to_string()],
                severity: f.severity,
                answer: if f.rule.is_unverified() {
                    "could not verify"
                } else if f.rule.is_anomaly() {
                    "anomaly"
                } else {
                    "violation"
                }
                .to_string(),
                subject: f.subject.clone(),
                message: f.message.clone(),
                evidence: f.evidence.clone(),
            }),
        },
    );
    (key, notice)
}

/// Of `items` (a key and its notice), those not told before, and the writes
/// that mark them told (to run with their outbox rows). The first time —
/// nothing seen yet — everything is taken as the baseline and nothing is told:
/// a sink set up on a repository with years of history is not sent years of
/// findings, only what is new from then on.
pub fn fresh(files: &LedgerFiles, items: Vec<(String, Notice)>) -> Result<(Vec<Notice>, Vec<Statement>), LedgerError> {
    let h = StateHandle::open(files, SCHEMA)?;
    let baseline = h.rows(&Statement::new("SELECT 1 FROM notify_seen LIMIT 1", vec![]))?.is_empty();
    let now = Timestamp::now().canonical();
    let mut notices = Vec::new();
    let mut marks = Vec::new();
    let mut keys = HashSet::new();
    for (key, notice) in items {
        if !keys.insert(key.clone())
            || !h.rows(&Statement::new("SELECT 1 FROM notify_seen WHERE key = ?1", vec![key.clone().into()]))?.is_empty()
        {
            continue;
        }
        marks.push(Statement::new(
            "INSERT INTO notify_seen (key, first_seen) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            vec![key.into(), now.clone().into()],
        ));
        if !baseline {
            notices.push(notice);
        }
    }
    if baseline {
        // Marks the baseline as taken, even when there was nothing to take.
        marks.push(Statement::new(
            "INSERT INTO notify_seen (key, first_seen) VALUES ('baseline', ?1) ON CONFLICT (key) DO NOTHING",
            vec![now.clone().into()],
        ));
        tracing::info!("notify: {} existing finding(s) and failure(s) taken as the baseline; only new ones are sent", marks.len());
    }
    Ok((notices, marks))
}

/// Queues `notices` and runs `extra` writes, in one transaction.
pub fn enqueue_with(files: &LedgerFiles, sinks: &[Sink], notices: &[Notice], extra: Vec<Statement>) -> Result<usize, LedgerError> {
    let mut writes = outbox_writes(sinks, notices, None);
    let n = writes.len();
    writes.extend(extra);
    if writes.is_empty() {
        return Ok(0);
    }
    StateHandle::open(files, SCHEMA)?.transaction(&writes)?;
    Ok(n)
}

/// What a drain did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    pub delivered: u64,
    /// Attempts that failed (each is retried later unless the sink was disabled).
    pub failed: u64,
    /// Messages still waiting when the drain stopped.
    pub pending: u64,
    /// Messages given up after MAX_ATTEMPTS.
    pub dead: u64,
    /// Sinks disabled by this drain (410 Gone), with the reason.
    pub disabled: BTreeMap<String, String>,
    /// Messages for sinks the policy no longer names, or that are disabled.
    pub held: u64,
    /// One line per failed attempt (sink, message id, what happened; never a URL).
    pub errors: Vec<String>,
}

/// How long a drain may take, and how long one request may.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub total: Duration,
    pub request: Duration,
}

impl Budget {
    pub fn new(total: Duration) -> Budget {
        Budget { total, request: Duration::from_secs(10).min(total.max(Duration::from_millis(500))) }
    }
}

/// Delivers what is due, within `budget`. Runs its own small runtime on a
/// thread of its own, so it can be called from anywhere (also from inside the
/// sync worker's runtime).
pub fn drain(files: &LedgerFiles, sinks: &[Sink], budget: Budget) -> Result<DrainReport, LedgerError> {
    let files = files.clone();
    let sinks = sinks.to_vec();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| LedgerError::Io { path: files.db.clone(), source: e })?;
                rt.block_on(drain_async(&files, &sinks, budget))
            })
            .join()
            .unwrap_or_else(|_| Err(LedgerError::BadEntry("the notification drain stopped unexpectedly".into())))
    })
}

struct Row {
    msg_id: String,
    sink: String,
    body: String,
    attempts: i64,
}

async fn drain_async(files: &LedgerFiles, sinks: &[Sink], budget: Budget) -> Result<DrainReport, LedgerError> {
    let h = StateHandle::open(files, SCHEMA)?;
    let poster = http::Poster::default();
    let start = tokio::time::Instant::now();
    let deadline = start + budget.total;
    let mut report = DrainReport::default();
    let by_name: BTreeMap<&str, &Sink> = sinks.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut secrets: BTreeMap<String, Result<(String, Option<String>), String>> = BTreeMap::new();
    loop {
        let disabled = disabled_sinks(&h)?;
        let now = Timestamp::now().canonical();
        let rows: Vec<Row> = h
            .rows(&Statement::new(
                "SELECT msg_id, sink, body, attempts FROM notify_outbox WHERE status = 'pending' AND next_attempt <= ?1 \
                 AND (lease IS NULL OR lease < ?1) ORDER BY created, msg_id LIMIT 200",
                vec![now.clone().into()],
            ))?
            .into_iter()
            .filter_map(|r| {
                Some(Row {
                    msg_id: r.first()?.as_text()?.to_string(),
                    sink: r.get(1)?.as_text()?.to_string(),
                    body: r.get(2)?.as_text()?.to_string(),
                    attempts: r.get(3)?.as_int()?,
                })
            })
            .filter(|r| by_name.contains_key(r.sink.as_str()) && !disabled.contains_key(&r.sink))
            .collect();
        if rows.is_empty() {
            // Wait for the next retry if it falls within the budget.
            let next = next_due(&h, &by_name, &disabled)?;
            let Some(wait) = next.and_then(|t| Timestamp::parse(&t).ok()).map(|t| {
                let ms = (t.datetime() - Timestamp::now().datetime()).num_milliseconds().max(0) as u64;
                Duration::from_millis(ms)
            }) else {
                break;
            };
            if tokio::time::Instant::now() + wait >= deadline {
                break;
            }
            tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
            continue;
        }
        let mut progressed = false;
        for row in rows {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining < Duration::from_millis(100) {
                break;
            }
            if disabled_sinks(&h)?.contains_key(&row.sink) || report.disabled.contains_key(&row.sink) {
                continue;
            }
            let Some(sink) = by_name.get(row.sink.as_str()) else { continue };
            // Claim the row, so a drain running at the same time skips it.
            let lease = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::seconds(120)).canonical();
            let claimed = h.changed(&Statement::new(
                "UPDATE notify_outbox SET lease = ?3 WHERE msg_id = ?1 AND sink = ?2 AND status = 'pending' AND (lease IS NULL OR lease < ?4)",
                vec![row.msg_id.clone().into(), row.sink.clone().into(), lease.into(), Timestamp::now().canonical().into()],
            ))?;
            if claimed != 1 {
                continue;
            }
            progressed = true;
            let resolved = secrets.entry(sink.name.clone()).or_insert_with(|| resolve(sink)).clone();
            let outcome = match resolved {
                Err(e) => Err(e),
                Ok((url, secret)) => {
                    let event: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
                    match format::request(sink, &row.msg_id, &event, secret.as_deref(), chrono::Utc::now().timestamp()) {
                        Err(e) => Err(e),
                        Ok(req) => poster.post(&url, &req.headers, req.body, budget.request.min(remaining)).await,
                    }
                }
            };
            let attempts = row.attempts + 1;
            let key = vec![row.msg_id.clone().into(), row.sink.clone().into()];
            match outcome {
                Ok(a) if (200..300).contains(&a.status) => {
                    report.delivered += 1;
                    let mut p = key.clone();
                    p.extend([attempts.into(), Timestamp::now().canonical().into()]);
                    h.execute(&Statement::new(
                        "UPDATE notify_outbox SET status = 'delivered', attempts = ?3, delivered = ?4, lease = NULL, last_error = NULL \
                         WHERE msg_id = ?1 AND sink = ?2",
                        p,
                    ))?;
                }
                Ok(a) if a.status == 410 => {
                    let reason = format!("answered 410 Gone at {} (message {})", Timestamp::now().canonical(), row.msg_id);
                    tracing::warn!(
                        "notify: sink `{}` {reason}: disabled; re-enable it with `git-audit notify enable {}`",
                        sink.name,
                        sink.name
                    );
                    report.failed += 1;
                    report.errors.push(format!("{} {}: HTTP 410 Gone: the sink is disabled", sink.name, row.msg_id));
                    report.disabled.insert(sink.name.clone(), reason.clone());
                    let mut p = key.clone();
                    p.extend([attempts.into(), "HTTP 410 Gone".into()]);
                    h.transaction(&[
                        Statement::new(
                            "UPDATE notify_outbox SET attempts = ?3, last_error = ?4, lease = NULL WHERE msg_id = ?1 AND sink = ?2",
                            p,
                        ),
                        Statement::new(
                            "INSERT INTO notify_sinks (name, disabled, reason) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (name) DO UPDATE SET disabled = excluded.disabled, reason = excluded.reason",
                            vec![sink.name.clone().into(), Timestamp::now().canonical().into(), reason.into()],
                        ),
                    ])?;
                }
                other => {
                    let (error, wait) = match other {
                        Ok(a) if a.status == 429 || a.status == 503 => (
                            format!("HTTP {}{}", a.status, a.retry_after.map(|s| format!(" (Retry-After: {s} s)")).unwrap_or_default()),
                            a.retry_after.map(Duration::from_secs).unwrap_or_else(|| backoff(attempts)).min(MAX_BACKOFF),
                        ),
                        Ok(a) => (format!("HTTP {}", a.status), backoff(attempts)),
                        Err(e) => (e, backoff(attempts)),
                    };
                    report.failed += 1;
                    tracing::warn!("notify: {} {}: attempt {attempts} failed: {error}", sink.name, row.msg_id);
                    report.errors.push(format!("{} {}: {error}", sink.name, row.msg_id));
                    let next = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::milliseconds(wait.as_millis() as i64));
                    let status = if attempts >= MAX_ATTEMPTS { "dead" } else { "pending" };
                    if status == "dead" {
                        report.dead += 1;
                    }
                    let mut p = key.clone();
                    p.extend([attempts.into(), error.into(), next.canonical().into(), status.into()]);
                    h.execute(&Statement::new(
                        "UPDATE notify_outbox SET attempts = ?3, last_error = ?4, next_attempt = ?5, status = ?6, lease = NULL \
                         WHERE msg_id = ?1 AND sink = ?2",
                        p,
                    ))?;
                }
            }
        }
        // Nothing claimed means everything due is another drain's: leave it to that one.
        if !progressed || tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    let counts = status(files, sinks)?;
    report.pending = counts.iter().map(|s| s.pending).sum::<u64>();
    report.held = counts.iter().filter(|s| s.disabled.is_some() || !s.in_policy).map(|s| s.pending).sum::<u64>();
    Ok(report)
}

/// 1 s, 2 s, 4 s … up to an hour.
fn backoff(attempts: i64) -> Duration {
    let exp = (attempts - 1).clamp(0, 12) as u32;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

fn resolve(sink: &Sink) -> Result<(String, Option<String>), String> {
    let url = sink.url.read().map_err(|e| format!("cannot read the sink's URL ({}): {e}", sink.url.describe()))?;
    let secret = match &sink.secret {
        Some(s) => Some(s.read().map_err(|e| format!("cannot read the signing secret ({}): {e}", s.describe()))?),
        None => None,
    };
    Ok((url, secret))
}

fn disabled_sinks(h: &StateHandle) -> Result<BTreeMap<String, String>, LedgerError> {
    Ok(h.rows(&Statement::new("SELECT name, reason FROM notify_sinks WHERE disabled IS NOT NULL", vec![]))?
        .into_iter()
        .filter_map(|r| Some((r.first()?.as_text()?.to_string(), r.get(1).and_then(|v| v.as_text()).unwrap_or_default().to_string())))
        .collect())
}

fn next_due(h: &StateHandle, sinks: &BTreeMap<&str, &Sink>, disabled: &BTreeMap<String, String>) -> Result<Option<String>, LedgerError> {
    // A row another drain holds is due when its lease runs out.
    let rows = h.rows(&Statement::new(
        "SELECT sink, MIN(CASE WHEN lease IS NOT NULL AND lease > next_attempt THEN lease ELSE next_attempt END) \
         FROM notify_outbox WHERE status = 'pending' GROUP BY sink",
        vec![],
    ))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.first()?.as_text()?.to_string(), r.get(1)?.as_text()?.to_string())))
        .filter(|(s, _)| sinks.contains_key(s.as_str()) && !disabled.contains_key(s))
        .map(|(_, t)| t)
        .min())
}

/// One sink's state, for `notify status`.
#[derive(Debug, Clone, Serialize)]
pub struct SinkStatus {
    pub name: String,
    /// `webhook`, `slack`, `teams`; empty for a sink the policy no longer names.
    pub kind: String,
    pub in_policy: bool,
    pub disabled: Option<String>,
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub last_error: Option<String>,
    /// `notify test` messages sent to it, and how many of them failed.
    pub tests_sent: u64,
    pub tests_failed: u64,
    /// When the last test was sent, and what it got.
    pub last_test: Option<(String, String)>,
}

impl SinkStatus {
    /// A sink known by name only (the outbox or test log remembers it; the
    /// policy may no longer name it), with nothing counted yet.
    fn named(name: &str, disabled: Option<String>) -> SinkStatus {
        SinkStatus {
            name: name.to_string(),
            kind: String::new(),
            in_policy: false,
            disabled,
            pending: 0,
            delivered: 0,
            dead: 0,
            last_error: None,
            tests_sent: 0,
            tests_failed: 0,
            last_test: None,
        }
    }
}

/// Every sink the policy names or the outbox remembers.
pub fn status(files: &LedgerFiles, sinks: &[Sink]) -> Result<Vec<SinkStatus>, LedgerError> {
    let h = StateHandle::open(files, SCHEMA)?;
    let disabled = disabled_sinks(&h)?;
    let mut out: BTreeMap<String, SinkStatus> = sinks
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                SinkStatus { kind: s.kind.as_str().into(), in_policy: true, ..SinkStatus::named(&s.name, disabled.get(&s.name).cloned()) },
            )
        })
        .collect();
    let rows = h.rows(&Statement::new("SELECT sink, status, COUNT(*) FROM notify_outbox GROUP BY sink, status", vec![]))?;
    for r in rows {
        let (Some(sink), Some(st), Some(n)) =
            (r.first().and_then(|v| v.as_text()), r.get(1).and_then(|v| v.as_text()), r.get(2).and_then(|v| v.as_int()))
        else {
            continue;
        };
        let e = out.entry(sink.to_string()).or_insert_with(|| SinkStatus::named(sink, disabled.get(sink).cloned()));
        match st {
            "pending" => e.pending += n as u64,
            "delivered" => e.delivered += n as u64,
            _ => e.dead += n as u64,
        }
    }
    for r in h.rows(&Statement::new("SELECT sink, sent, failed, last, last_result FROM notify_tests", vec![]))? {
        let text = |i: usize| r.get(i).and_then(|v| v.as_text()).unwrap_or_default().to_string();
        let int = |i: usize| r.get(i).and_then(|v| v.as_int()).unwrap_or(0).max(0) as u64;
        let sink = text(0);
        let e = out.entry(sink.clone()).or_insert_with(|| SinkStatus::named(&sink, disabled.get(&sink).cloned()));
        e.tests_sent = int(1);
        e.tests_failed = int(2);
        e.last_test = Some((text(3), text(4)));
    }
    for e in out.values_mut() {
        let last = h.rows(&Statement::new(
            "SELECT last_error FROM notify_outbox WHERE sink = ?1 AND status <> 'delivered' AND last_error IS NOT NULL ORDER BY created DESC LIMIT 1",
            vec![e.name.clone().into()],
        ))?;
        e.last_error = last.first().and_then(|r| r.first()).and_then(|v| v.as_text()).map(str::to_string);
    }
    Ok(out.into_values().collect())
}

/// Re-enables a sink a 410 disabled; its held messages are sent by the next drain.
pub fn enable(files: &LedgerFiles, name: &str) -> Result<bool, LedgerError> {
    let h = StateHandle::open(files, SCHEMA)?;
    let n = h.changed(&Statement::new(
        "UPDATE notify_sinks SET disabled = NULL, reason = NULL WHERE name = ?1 AND disabled IS NOT NULL",
        vec![name.to_string().into()],
    ))?;
    Ok(n == 1)
}

/// Counts `notify test` sends per sink, for `notify status`.
pub fn record_tests(files: &LedgerFiles, results: &[(String, Result<u16, String>)]) -> Result<(), LedgerError> {
    let h = StateHandle::open(files, SCHEMA)?;
    let now = Timestamp::now().canonical();
    let writes: Vec<Statement> = results
        .iter()
        .map(|(sink, r)| {
            let (failed, said) = match r {
                Ok(status) => (0, format!("delivered (HTTP {status})")),
                Err(e) => (1, format!("FAILED: {e}")),
            };
            Statement::new(
                "INSERT INTO notify_tests (sink, sent, failed, last, last_result) VALUES (?1, 1, ?2, ?3, ?4)
                 ON CONFLICT (sink) DO UPDATE SET sent = notify_tests.sent + 1, failed = notify_tests.failed + excluded.failed,
                 last = excluded.last, last_result = excluded.last_result",
                vec![sink.clone().into(), crate::ledger::store::Value::Int(failed), now.clone().into(), said.into()],
            )
        })
        .collect();
    h.transaction(&writes)
}

/// Sends a `notify.test` message straight to each sink (not through the
/// outbox): what each answered, or why it could not be sent.
pub fn test(sinks: &[Sink], repository: &str, timeout: Duration) -> Vec<(String, Result<u16, String>)> {
    let sinks = sinks.to_vec();
    let repository = repository.to_string();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return sinks.iter().map(|s| (s.name.clone(), Err("cannot start the async runtime".to_string()))).collect();
                };
                rt.block_on(async {
                    let poster = http::Poster::default();
                    let mut out = Vec::new();
                    for s in &sinks {
                        let event = body::Body {
                            kind: "notify.test".into(),
                            timestamp: Timestamp::now().canonical(),
                            data: body::Data {
                                repository: repository.clone(),
                                summary: format!("git-audit can reach the `{}` sink", s.name),
                                ledger: None,
                                detail: body::Detail::SinkTest(body::SinkTest { sink: s.name.clone() }),
                            },
                        };
                        let event = serde_json::to_value(&event).unwrap_or_default();
                        let id = random_id();
                        let result = match resolve(s) {
                            Err(e) => Err(e),
                            Ok((url, secret)) => match format::request(s, &id, &event, secret.as_deref(), chrono::Utc::now().timestamp()) {
                                Err(e) => Err(e),
                                Ok(req) => poster.post(&url, &req.headers, req.body, timeout).await.and_then(|a| {
                                    if (200..300).contains(&a.status) {
                                        Ok(a.status)
                                    } else {
                                        Err(format!("HTTP {}", a.status))
                                    }
                                }),
                            },
                        };
                        out.push((s.name.clone(), result));
                    }
                    out
                })
            })
            .join()
            .unwrap_or_default()
    })
}

/// Starts `git-audit notify drain` in the background, detached from the hook
/// (no shared stdio, so git does not wait for it), with a short budget.
pub fn spawn_background_drain(files: &LedgerFiles, policy: Option<&Path>, budget: Duration) {
    let Ok(exe) = std::env::current_exe() else { return };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("notify").arg("drain").arg("--quiet").arg("--budget").arg(format!("{}s", budget.as_secs().max(1)));
    // Through the environment: a PostgreSQL URL may hold a password, and a
    // command line is visible to every user of the machine.
    cmd.env("GIT_AUDIT_LEDGER", files.secret_location());
    if let Some(p) = policy {
        cmd.arg("--policy").arg(p);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    if let Err(e) = cmd.spawn() {
        tracing::warn!("notify: cannot start the background delivery ({e}); `git-audit notify drain` will send the messages");
    }
}
