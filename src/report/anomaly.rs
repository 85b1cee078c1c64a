//! Anomalies: what is unusual against the ledger's own history — no model to
//! train, nothing leaving the machine. Each is a warning finding with its
//! evidence and a plain sentence, reported by `report compliance` beside the
//! violations (counted apart), shown on the dashboard, in the digest, and told
//! as it is found (`anomaly.*` events).
//!
//! Every kind learns before it speaks: a series (an environment's deployments,
//! a branch's pushes, the signers of protected commits) needs
//! `[review] min_history` earlier events over at least `learning_days` before
//! anything in it is "first" or "rare", so a new repository, or the first
//! weeks of a ledger, say nothing; writers added before anything else was
//! recorded are the ledger's set-up, never a finding. Each event is judged against what came
//! before it only, so a finding never changes when later history arrives.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::event::{EnvironmentSynced, PushDecided, WriterChanged};
use crate::facts::DeploymentHistory;
use crate::git::{short_id, Repo};
use crate::ledger::{Ledger, Select};
use crate::policy::{Policy, Review, DEFAULT_FILE};
use crate::rule::{Finding, Rule, Severity};
use crate::time::Timestamp;

use super::ReportError;

fn at(time: &str) -> Option<DateTime<Utc>> {
    Timestamp::parse(time).ok().map(|t| t.datetime())
}

/// A finding, and when what it is about happened.
type Dated = (DateTime<Utc>, Finding);

fn finding(when: DateTime<Utc>, rule: Rule, subject: String, message: String, evidence: Vec<u64>) -> Dated {
    (when, Finding { rule, severity: Severity::Warning, message, fix: None, subject: Some(subject), evidence })
}

/// The anomalies among events at or after `since` (judged against all that came before).
pub fn anomalies(
    ledger: &Ledger,
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    since: &Timestamp,
    policy: Option<&Policy>,
) -> Result<Vec<Finding>, ReportError> {
    let default = Review::default();
    let review = policy.map_or(&default, |p| &p.review);
    let on = |r: Rule| !review.off.contains(&r);
    let pushes = ledger.events::<PushDecided>(&Select::default())?;
    let since = since.datetime();
    let mut out = Vec::new();
    if on(Rule::AnomalyFirstDeployer) {
        out.extend(first_deployers(facts, review));
    }
    if on(Rule::AnomalyOffHours) {
        out.extend(off_hours(facts, &pushes, policy, review));
    }
    // The signatures are read only when something landed through the hooks.
    if on(Rule::AnomalyNewSigner) && pushes.iter().any(|p| p.payload.accepted) {
        out.extend(new_signers(&pushes, &ledger.good_signatures()?, policy, review));
    }
    if on(Rule::AnomalyRefusalBurst) {
        out.extend(refusal_bursts(&pushes, review));
    }
    if on(Rule::AnomalyGovernance) {
        // The record's own start (its first entry): what happens in its first
        // `learning_days` is set-up, not a change of the rules.
        let first = match ledger.entry(0)? {
            Some(e) => Some(e),
            None => ledger.entry(1)?,
        };
        let start = first.and_then(|e| at(&e.time));
        let envs = ledger.events::<EnvironmentSynced>(&Select::default())?;
        // Writers added before anything else was recorded set the ledger up.
        let first_record = [pushes.first().map(|p| p.seq), envs.first().map(|e| e.seq), facts.all.iter().map(|d| d.seq).min()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
        let writers: Vec<_> = ledger.events::<WriterChanged>(&Select::default())?.into_iter().filter(|w| w.seq > first_record).collect();
        out.extend(governance(&pushes, &envs, &writers, repo, policy, review, start));
    }
    Ok(out.into_iter().filter(|(t, _)| *t >= since).map(|(_, f)| f).collect())
}

/// One environment's deployments so far: since when, how many, by whom (and how often).
type Series<'a> = (DateTime<Utc>, usize, BTreeMap<&'a str, usize>);

/// `anomaly.first-deployer`.
fn first_deployers(facts: &DeploymentHistory, review: &Review) -> Vec<Dated> {
    // Per (repository, environment): first time, count, who deployed so far.
    let mut seen: HashMap<(&str, &str), Series<'_>> = HashMap::new();
    let mut out = Vec::new();
    for d in &facts.all {
        let Some(t) = at(&d.time) else { continue };
        let e = seen.entry((d.repository.as_str(), d.environment.as_str())).or_insert((t, 0, BTreeMap::new()));
        let who = d.deployer.as_str();
        if !who.is_empty() && !e.2.contains_key(who) && learned(e.1, e.0, t, review) {
            let mut usual: Vec<(&str, usize)> = e.2.iter().map(|(k, v)| (*k, *v)).collect();
            usual.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let names: Vec<String> = usual.iter().take(5).map(|(k, n)| format!("{k} ({n})")).collect();
            out.push(finding(
                t,
                Rule::AnomalyFirstDeployer,
                format!("{} {} {}", d.repository, d.environment, d.name),
                format!(
                    "{who} deployed to {} for the first time; the {} earlier deployments since {} were by {}{}",
                    d.environment,
                    e.1,
                    e.0.format("%Y-%m-%d"),
                    names.join(", "),
                    if usual.len() > 5 { format!(" and {} more", usual.len() - 5) } else { String::new() }
                ),
                vec![d.seq],
            ));
        }
        if !who.is_empty() {
            *e.2.entry(who).or_default() += 1;
        }
        e.1 += 1;
    }
    out
}

/// Enough history to call something unusual: `min_history` events over `learning_days`.
fn learned(count: usize, first: DateTime<Utc>, now: DateTime<Utc>, review: &Review) -> bool {
    count >= review.min_history && (now - first).num_days() >= review.learning_days
}

/// Who pushed: the identity the hooks established, else the entry's actor.
fn pusher(p: &crate::ledger::Recorded<PushDecided>) -> String {
    [p.payload.pusher.identity.as_deref(), Some(p.actor.as_str())]
        .into_iter()
        .flatten()
        .find(|w| !w.is_empty())
        .unwrap_or("an unknown pusher")
        .to_string()
}

/// Whether a ref is protected: a `[[branches]]` entry names it; with no policy,
/// the usual default branches.
fn protected(policy: Option<&Policy>, refname: &str) -> bool {
    match policy {
        Some(p) if !p.branches.is_empty() => p.branch_rule(refname).is_some(),
        _ => matches!(refname, "refs/heads/main" | "refs/heads/master"),
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// When events of one series happen: counts per weekday and per hour (UTC).
#[derive(Default)]
struct Rhythm {
    days: [usize; 7],
    hours: [usize; 24],
    n: usize,
    first: Option<DateTime<Utc>>,
}

impl Rhythm {
    fn add(&mut self, t: DateTime<Utc>) {
        self.days[t.weekday().num_days_from_monday() as usize] += 1;
        self.hours[t.hour() as usize] += 1;
        self.n += 1;
        self.first.get_or_insert(t);
    }

    /// Why `t` is off the usual rhythm, when it is (its weekday or its hour
    /// held at most `rare_share` of the events before it).
    fn unusual(&self, t: DateTime<Utc>, review: &Review) -> Option<String> {
        let first = self.first?;
        if !learned(self.n, first, t, review) {
            return None;
        }
        let rare = |count: usize| (count as f64) <= review.rare_share * self.n as f64;
        let day = t.weekday().num_days_from_monday() as usize;
        let hour = t.hour() as usize;
        let (rare_day, rare_hour) = (rare(self.days[day]), rare(self.hours[hour]));
        if !rare_day && !rare_hour {
            return None;
        }
        let what = match (rare_day, rare_hour) {
            (true, true) => format!("{} {:02}:{:02} UTC", DAYS[day], hour, t.minute()),
            (true, false) => format!("a {}", DAYS[day]),
            _ => format!("{:02}:{:02} UTC", hour, t.minute()),
        };
        Some(format!("{}; this one was at {what}", self.usual()))
    }

    /// "95% of the 120 earlier happened Mon–Fri 08:00–18:00 UTC": the fewest
    /// weekdays, and the shortest span of hours, that hold 95% of them.
    fn usual(&self) -> String {
        let goal = (self.n as f64 * 0.95).ceil() as usize;
        let mut order: Vec<usize> = (0..7).collect();
        order.sort_by(|a, b| self.days[*b].cmp(&self.days[*a]).then(a.cmp(b)));
        let mut days = Vec::new();
        let mut held = 0;
        for d in order {
            if held >= goal {
                break;
            }
            held += self.days[d];
            days.push(d);
        }
        days.sort_unstable();
        let contiguous = days.windows(2).all(|w| w[1] == w[0] + 1);
        let day_text = match (days.first(), days.last()) {
            (Some(a), Some(b)) if contiguous && a != b => format!("{}–{}", DAYS[*a], DAYS[*b]),
            _ => days.iter().map(|d| DAYS[*d]).collect::<Vec<_>>().join(", "),
        };
        // The shortest run of hours (wrapping midnight) holding the goal.
        let mut best = (24usize, 0usize);
        for start in 0..24 {
            let mut sum = 0;
            for len in 1..=24 {
                sum += self.hours[(start + len - 1) % 24];
                if sum >= goal {
                    if len < best.0 {
                        best = (len, start);
                    }
                    break;
                }
            }
        }
        let (len, start) = best;
        format!("95% of the {} earlier happened {day_text} {:02}:00–{:02}:00 UTC", self.n, start, (start + len) % 24)
    }
}

/// `anomaly.off-hours`: production deployments, and pushes to protected branches.
fn off_hours(
    facts: &DeploymentHistory,
    pushes: &[crate::ledger::Recorded<PushDecided>],
    policy: Option<&Policy>,
    review: &Review,
) -> Vec<Dated> {
    let mut out = Vec::new();
    let mut rhythms: HashMap<String, Rhythm> = HashMap::new();
    let production = review.production_matcher();
    let mut is_production: HashMap<&str, bool> = HashMap::new();
    for d in facts.all.iter().filter(|d| *is_production.entry(d.environment.as_str()).or_insert_with(|| production(&d.environment))) {
        let Some(t) = at(&d.time) else { continue };
        let r = rhythms.entry(format!("{} {}", d.repository, d.environment)).or_default();
        if let Some(why) = r.unusual(t, review) {
            out.push(finding(
                t,
                Rule::AnomalyOffHours,
                format!("{} {} {}", d.repository, d.environment, d.name),
                format!(
                    "{} deployed {} to {} off the usual hours: {why} (deployments to {})",
                    d.deployer,
                    short_id(&d.sha),
                    d.environment,
                    d.environment
                ),
                vec![d.seq],
            ));
        }
        r.add(t);
    }
    for p in pushes.iter().filter(|p| p.payload.accepted) {
        let Some(t) = at(&p.time) else { continue };
        for u in p.payload.ref_updates.iter().filter(|u| protected(policy, &u.refname)) {
            let r = rhythms.entry(u.refname.clone()).or_default();
            if let Some(why) = r.unusual(t, review) {
                let who = pusher(p);
                out.push(finding(
                    t,
                    Rule::AnomalyOffHours,
                    format!("{} {}", u.refname, short_id(&u.new)),
                    format!("{who} pushed to {} off the usual hours: {why} (pushes to {})", u.refname, u.refname),
                    vec![p.seq],
                ));
            }
            r.add(t);
        }
    }
    out
}

/// `anomaly.new-signer`: the first commit a key signs that lands on a protected branch.
fn new_signers(
    pushes: &[crate::ledger::Recorded<PushDecided>],
    good: &HashMap<String, (String, String, u64)>,
    policy: Option<&Policy>,
    review: &Review,
) -> Vec<Dated> {
    let mut keys: HashSet<&str> = HashSet::new();
    let (mut n, mut first) = (0usize, None::<DateTime<Utc>>);
    let mut out = Vec::new();
    for p in pushes.iter().filter(|p| p.payload.accepted) {
        let Some(t) = at(&p.time) else { continue };
        for u in p.payload.ref_updates.iter().filter(|u| protected(policy, &u.refname)) {
            for c in &u.commits {
                let Some((signer, key, seq)) = good.get(c) else { continue };
                if key.is_empty() {
                    continue;
                }
                let start = *first.get_or_insert(t);
                if !keys.contains(key.as_str()) && learned(n, start, t, review) {
                    out.push(finding(
                        t,
                        Rule::AnomalyNewSigner,
                        format!("{} {}", u.refname, short_id(c)),
                        format!(
                            "key {key} ({signer}) signed a commit on {} for the first time; {} signed commits by {} other key(s) landed before it",
                            u.refname,
                            n,
                            keys.len()
                        ),
                        vec![*seq, p.seq],
                    ));
                }
                keys.insert(key.as_str());
                n += 1;
            }
        }
    }
    out
}

/// `anomaly.refusal-burst`: `refusal_burst` refusals of one pusher, each
/// within `refusal_window` of the burst's first.
fn refusal_bursts(pushes: &[crate::ledger::Recorded<PushDecided>], review: &Review) -> Vec<Dated> {
    let window = chrono::Duration::from_std(review.refusal_window).unwrap_or(chrono::Duration::minutes(10));
    let mut by: BTreeMap<String, Vec<(DateTime<Utc>, u64)>> = BTreeMap::new();
    for p in pushes.iter().filter(|p| !p.payload.accepted) {
        let Some(t) = at(&p.time) else { continue };
        let who = pusher(p);
        by.entry(who).or_default().push((t, p.seq));
    }
    let mut out = Vec::new();
    for (who, list) in by {
        let mut recent: VecDeque<(DateTime<Utc>, u64)> = VecDeque::new();
        // The burst being reported (its index in `out`), while refusals keep coming.
        let mut open: Option<usize> = None;
        for (t, seq) in list {
            while recent.front().is_some_and(|(f, _)| t - *f > window) {
                recent.pop_front();
            }
            recent.push_back((t, seq));
            match open {
                Some(i) if recent.len() > 1 => {
                    let (when, f): &mut Dated = &mut out[i];
                    *when = t;
                    f.evidence.push(seq);
                    f.message = burst_message(&who, f.evidence.len(), review);
                }
                _ if recent.len() >= review.refusal_burst => {
                    let evidence: Vec<u64> = recent.iter().map(|(_, s)| *s).collect();
                    out.push(finding(t, Rule::AnomalyRefusalBurst, who.clone(), burst_message(&who, evidence.len(), review), evidence));
                    open = Some(out.len() - 1);
                }
                _ => open = None,
            }
            if recent.len() == 1 {
                open = None;
            }
        }
    }
    out
}

fn burst_message(who: &str, n: usize, review: &Review) -> String {
    format!(
        "{n} pushes by {who} were refused in a burst ({} or more within {}): probing the rules?",
        review.refusal_burst,
        humantime(&review.refusal_window)
    )
}

fn humantime(d: &std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// The members of `policy-admin` and `breakglass` in a policy text.
fn governed_roles(text: &[u8]) -> BTreeMap<String, BTreeSet<String>> {
    let v: Option<toml::Value> = toml::from_str(&String::from_utf8_lossy(text)).ok();
    ["policy-admin", "breakglass"]
        .iter()
        .map(|role| {
            let members = v
                .as_ref()
                .and_then(|v| v.get("roles"))
                .and_then(|r| r.get(*role))
                .and_then(|m| m.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            (role.to_string(), members)
        })
        .collect()
}

/// `anomaly.governance`.
fn governance(
    pushes: &[crate::ledger::Recorded<PushDecided>],
    envs: &[crate::ledger::Recorded<EnvironmentSynced>],
    writers: &[crate::ledger::Recorded<WriterChanged>],
    repo: Option<&Repo>,
    policy: Option<&Policy>,
    review: &Review,
    start: Option<DateTime<Utc>>,
) -> Vec<Dated> {
    let settled = |time: &str| match (start, at(time)) {
        (Some(s), Some(t)) => (t - s).num_days() >= review.learning_days,
        _ => false,
    };
    let mut out = Vec::new();
    // The policy changed on a protected branch: its file, or any file its
    // footprint holds — the keys it loads, CODEOWNERS (with the commits at hand).
    let mut explained = HashSet::new();
    if let Some(repo) = repo {
        let zero = |c: &str| c.bytes().all(|b| b == b'0');
        let text = |c: &str| -> Vec<u8> {
            if zero(c) {
                return Vec::new();
            }
            repo.path_blob(c, DEFAULT_FILE).and_then(|id| repo.read_object(&id).ok()).map(|(_, d)| d).unwrap_or_default()
        };
        let files = |c: &str, path: &str| -> BTreeSet<(String, String)> {
            if zero(c) {
                return BTreeSet::new();
            }
            repo.tree_files(c, path).map(|v| v.into_iter().collect()).unwrap_or_default()
        };
        for p in pushes.iter().filter(|p| p.payload.accepted && settled(&p.time)) {
            for u in p.payload.ref_updates.iter().filter(|u| protected(policy, &u.refname) && !zero(&u.new)) {
                let (before, after) = (text(&u.old), text(&u.new));
                let mut footprint: BTreeSet<String> = crate::policy::applies::footprint_paths(&before).into_iter().collect();
                footprint.extend(crate::policy::applies::footprint_paths(&after));
                footprint.insert(DEFAULT_FILE.to_string());
                let mut changed = BTreeSet::new();
                for path in &footprint {
                    let (was, now) = (files(&u.old, path), files(&u.new, path));
                    changed.extend(was.symmetric_difference(&now).map(|(f, _)| f.clone()));
                }
                if changed.is_empty() {
                    continue;
                }
                let (was, now) = (governed_roles(&before), governed_roles(&after));
                let mut said = Vec::new();
                for (role, members) in &now {
                    let added: Vec<&str> =
                        members.iter().filter(|m| !was.get(role).is_some_and(|w| w.contains(*m))).map(String::as_str).collect();
                    if !added.is_empty() {
                        said.push(format!("adds {} to {role}", added.join(", ")));
                    }
                }
                let who = pusher(p);
                out.push(finding(
                    at(&p.time).unwrap_or_default(),
                    Rule::AnomalyGovernance,
                    format!("{} {}", u.refname, short_id(&u.new)),
                    format!(
                        "{who} changed the policy on {} ({}){}",
                        u.refname,
                        changed.into_iter().collect::<Vec<_>>().join(", "),
                        if said.is_empty() { String::new() } else { format!(": {}", said.join("; ")) }
                    ),
                    vec![p.seq],
                ));
                explained.insert(p.seq);
            }
        }
    }
    // The policy the hooks judge by changed (told when the commits above could not say why).
    if explained.is_empty() {
        let mut last: Option<&str> = None;
        for p in pushes.iter().filter(|p| !p.payload.policy_digest.is_empty()) {
            let digest = p.payload.policy_digest.as_str();
            if let Some(prev) = last.filter(|prev| *prev != digest) {
                if settled(&p.time) {
                    out.push(finding(
                        at(&p.time).unwrap_or_default(),
                        Rule::AnomalyGovernance,
                        format!("policy {}", &digest[..digest.len().min(12)]),
                        format!(
                            "pushes are judged by another policy from here on (digest {} → {})",
                            &prev[..prev.len().min(12)],
                            &digest[..digest.len().min(12)]
                        ),
                        vec![p.seq],
                    ));
                }
            }
            last = Some(digest);
        }
    }
    // An environment's protection weakened between two syncs.
    let mut last: HashMap<(&str, &str), &crate::ledger::Recorded<EnvironmentSynced>> = HashMap::new();
    for e in envs {
        let key = (e.payload.repository.as_str(), e.payload.name.as_str());
        if let Some(prev) = last.get(&key) {
            let weaker = e.payload.protection().weakened_from(&prev.payload.protection());
            if !weaker.is_empty() {
                out.push(finding(
                    at(&e.time).unwrap_or_default(),
                    Rule::AnomalyGovernance,
                    format!("{} {}", key.0, key.1),
                    format!("the protection of {} was weakened: {}", key.1, weaker.join("; ")),
                    vec![prev.seq, e.seq],
                ));
            }
        }
        last.insert(key, e);
    }
    // Who may write the record changed.
    for w in writers.iter().filter(|w| settled(&w.time)) {
        let role = w.payload.role.map(|r| format!(" (role {})", r.as_str())).unwrap_or_default();
        out.push(finding(
            at(&w.time).unwrap_or_default(),
            Rule::AnomalyGovernance,
            format!("writer {}", w.payload.name),
            format!(
                "ledger writer `{}`{role} was {} by the owner",
                w.payload.name,
                if w.payload.action == "add" { "added" } else { "revoked" }
            ),
            vec![w.seq],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        at(s).unwrap_or_default()
    }

    #[test]
    fn rare_is_at_most_rare_share_of_the_history_and_only_after_learning() {
        let review = Review { min_history: 50, learning_days: 14, rare_share: 0.02, ..Review::default() };
        let mut r = Rhythm::default();
        // 50 weekday deployments at 10:00 over ten weeks (Mon 2026-01-05 on).
        for i in 0..50 {
            let day = (i / 5) * 7 + i % 5;
            r.add(t("2026-01-05T10:00:00Z") + chrono::Duration::days(day));
        }
        let saturday = t("2026-03-21T03:00:00Z");
        let why = r.unusual(saturday, &review);
        assert!(why.as_deref().is_some_and(|w| w.contains("Mon–Fri 10:00–11:00 UTC") && w.contains("Sat 03:00")), "{why:?}");
        assert_eq!(r.unusual(t("2026-03-18T10:30:00Z"), &review), None, "a Wednesday at 10:30 is usual");
        // One Saturday in 50 is 2%: still rare (at most 2%); two are 3.9%: usual.
        r.add(t("2026-03-14T10:00:00Z"));
        let n = r.n;
        assert_eq!(n, 51);
        assert!(r.unusual(saturday.with_hour(10).unwrap_or(saturday), &review).is_some(), "1 of 51 Saturdays ≤ 2%");
        r.add(t("2026-03-14T11:00:00Z"));
        assert!(r.unusual(saturday.with_hour(10).unwrap_or(saturday), &review).is_none(), "2 of 52 > 2%");
        // Not before min_history.
        let mut young = Rhythm::default();
        for i in 0..49 {
            young.add(t("2026-01-05T10:00:00Z") + chrono::Duration::days(i));
        }
        assert!(young.unusual(saturday, &review).is_none());
    }

    #[test]
    fn learning_ends_at_min_history_events_and_learning_days() {
        let review = Review { min_history: 20, learning_days: 14, ..Review::default() };
        let first = t("2026-03-01T00:00:00Z");
        assert!(learned(20, first, t("2026-03-15T00:00:00Z"), &review), "20 events over exactly 14 days");
        assert!(!learned(19, first, t("2026-03-15T00:00:00Z"), &review), "one event short");
        assert!(!learned(20, first, t("2026-03-14T23:59:59Z"), &review), "a second short of 14 days");
        let eager = Review { min_history: 1, learning_days: 0, ..Review::default() };
        assert!(learned(1, first, first, &eager));
    }

    #[test]
    fn a_burst_is_refusal_burst_refusals_within_the_window_and_is_reported_once() {
        let review = Review { refusal_burst: 3, refusal_window: std::time::Duration::from_secs(600), ..Review::default() };
        let push = |seq: u64, time: &str, who: &str| crate::ledger::Recorded {
            seq,
            time: time.into(),
            subject: String::new(),
            actor: who.into(),
            payload: PushDecided { accepted: false, ..PushDecided::default() },
            writer: None,
        };
        // Two refusals then a pause: no burst. Then 4 within minutes: one burst of 4.
        let pushes = vec![
            push(1, "2026-03-02T10:00:00Z", "mallory"),
            push(2, "2026-03-02T10:05:00Z", "mallory"),
            push(3, "2026-03-02T12:00:00Z", "mallory"),
            push(4, "2026-03-02T12:03:00Z", "mallory"),
            push(5, "2026-03-02T12:06:00Z", "mallory"),
            push(6, "2026-03-02T12:09:00Z", "mallory"),
            push(7, "2026-03-02T12:04:00Z", "alice"),
            push(8, "2026-03-02T12:05:00Z", "alice"),
        ];
        let found = refusal_bursts(&pushes, &review);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1.evidence, vec![3, 4, 5, 6]);
        assert_eq!(found[0].0, t("2026-03-02T12:09:00Z"), "dated by its last refusal");
        assert!(found[0].1.message.starts_with("4 pushes by mallory"), "{}", found[0].1.message);
        // The edge: exactly the window apart still counts; a second longer does not.
        let edge = vec![push(1, "2026-03-02T10:00:00Z", "m"), push(2, "2026-03-02T10:05:00Z", "m"), push(3, "2026-03-02T10:10:00Z", "m")];
        assert_eq!(refusal_bursts(&edge, &review).len(), 1);
        let past = vec![push(1, "2026-03-02T10:00:00Z", "m"), push(2, "2026-03-02T10:05:00Z", "m"), push(3, "2026-03-02T10:10:01Z", "m")];
        assert_eq!(refusal_bursts(&past, &review).len(), 0);
    }

    #[test]
    fn weakened_protection_is_named_and_tightening_is_not() {
        use crate::event::Protection;
        let strict = Protection {
            reviewers_required: true,
            reviewers: vec!["carol".into()],
            prevent_self_review: true,
            wait_minutes: 30,
            branches: Some(vec!["main".into()]),
            admins_bypass: false,
            required_approvals: 2,
            deployers: Some(vec!["group:acme/sre".into()]),
        };
        let loose = Protection {
            reviewers: vec!["carol".into(), "mallory".into()],
            wait_minutes: 0,
            branches: None,
            admins_bypass: true,
            required_approvals: 1,
            deployers: Some(vec!["group:acme/sre".into(), "role:Developers".into()]),
            ..strict.clone()
        };
        let said = loose.weakened_from(&strict);
        assert_eq!(
            said,
            vec![
                "may now approve: mallory",
                "required approvals lowered from 2 to 1",
                "may now deploy: role:Developers",
                "wait timer lowered from 30 to 0 min",
                "any branch may now deploy",
                "admins may now bypass"
            ]
        );
        assert!(strict.weakened_from(&loose).is_empty(), "tightening is not a finding");
        let none = Protection::default();
        assert_eq!(none.weakened_from(&strict)[0], "required reviewers removed");
    }
}
