//! `report dora`: deployment frequency, lead time for changes, change failure
//! rate and time to restore, per ISO week and over the window.
//!
//! Lead time is measured from each shipped commit's committer time to the
//! successful deployment that shipped it. A change failed when its deployment's
//! final status is `failure`/`error`, or when a later deployment to the same
//! environment rolled back to an ancestor of its sha. Time to restore runs from a
//! failed deployment to the next successful one in the same environment.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde_json::json;

use super::chart::{period_of, periods, Granularity, Period, Series, Shape};
use super::{Document, ReportError, Section};
use crate::facts::deployments::{rollback_unknown, rolled_back_by, shipped, DeploymentHistory};
use crate::git::Repo;
use crate::time::Timestamp;

fn at(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[m - 1] + v[m]) / 2.0 } else { v[m] })
}

fn hours(h: Option<f64>) -> String {
    h.map_or("—".into(), |h| format!("{h:.1}"))
}

/// A number for CSV: as computed (to 4 decimals), empty when there is none.
fn raw(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{}", (v * 10_000.0).round() / 10_000.0))
}

#[derive(Default)]
struct Week {
    deployments: u64,
    successful: u64,
    failed: u64,
    lead: Vec<f64>,
    restore: Vec<f64>,
}

pub fn dora(
    facts: &DeploymentHistory,
    repo: Option<&Repo>,
    env: &str,
    since: &Timestamp,
    until: &Timestamp,
) -> Result<Document, ReportError> {
    let all = facts.in_env(env);
    let commit_time = |id: &str| -> Option<DateTime<Utc>> {
        let (_, raw) = repo?.read_object(id).ok()?;
        let c = crate::git::ParsedCommit::parse(&raw, repo?.signature_header());
        DateTime::from_timestamp(c.committer?.time, 0)
    };
    let mut weeks: BTreeMap<String, Week> = BTreeMap::new();
    let mut total = Week::default();
    // Every period of the window, for the charts: empty ones are answers too.
    let end = if until.is_open_end() { Utc::now() } else { until.datetime() };
    let granularity = Granularity::for_span((end - since.datetime()).num_days());
    // `until` is exclusive: a window ending at midnight does not hold that day.
    let last = if until.is_open_end() { end } else { end - chrono::Duration::seconds(1) };
    let spans = periods(since.datetime(), last, granularity);
    let mut per: Vec<Week> = spans.iter().map(|_| Week::default()).collect();
    let mut commits_found = 0usize;
    let mut unchecked = 0u64;
    let mut lead_buckets = [0u64; 4];
    for (i, d) in all.iter().enumerate() {
        if !super::within(&d.time, since, until) {
            continue;
        }
        let Some(t) = at(&d.time) else { continue };
        let iso = t.iso_week();
        let key = format!("{}-W{:02}", iso.year(), iso.week());
        let w = weeks.entry(key).or_default();
        let mut none = Week::default();
        let p = period_of(&spans, t).and_then(|i| per.get_mut(i)).unwrap_or(&mut none);
        w.deployments += 1;
        p.deployments += 1;
        total.deployments += 1;
        // Rolled back: the next deployment to the same environment went to an earlier commit.
        let rolled_back = rolled_back_by(repo, &all, i).is_some();
        let failed = d.status.failed() || rolled_back;
        // Counted as not failed, but only because git could not tell: said beside the rate.
        if !failed && rollback_unknown(repo, &all, i) {
            unchecked += 1;
        }
        if failed {
            w.failed += 1;
            p.failed += 1;
            total.failed += 1;
            if let Some(next) =
                all[i + 1..].iter().find(|n| n.environment == d.environment && n.repository == d.repository && n.status.succeeded())
            {
                if let (Some(a), Some(b)) = (at(&d.status_time), at(&next.status_time)) {
                    let h = (b - a).num_seconds() as f64 / 3600.0;
                    w.restore.push(h);
                    total.restore.push(h);
                }
            }
        } else if d.status.succeeded() {
            w.successful += 1;
            p.successful += 1;
            total.successful += 1;
            let done = at(&d.status_time).unwrap_or(t);
            for id in shipped(repo, &all, i).map(|(_, ids)| ids).unwrap_or_default() {
                if let Some(ct) = commit_time(&id) {
                    commits_found += 1;
                    let h = ((done - ct).num_seconds().max(0)) as f64 / 3600.0;
                    w.lead.push(h);
                    p.lead.push(h);
                    total.lead.push(h);
                    lead_buckets[if h < 1.0 {
                        0
                    } else if h < 24.0 {
                        1
                    } else if h < 168.0 {
                        2
                    } else {
                        3
                    }] += 1;
                }
            }
        }
    }
    let days = ((end - since.datetime()).num_seconds() as f64 / 86400.0).max(1.0);
    let cfr = |w: &Week| if w.deployments == 0 { 0.0 } else { w.failed as f64 / w.deployments as f64 * 100.0 };
    let mut rows = Vec::new();
    let mut raw_rows = Vec::new();
    let mut json_weeks = Vec::new();
    for (k, w) in weeks.iter_mut() {
        let lead = median(&mut w.lead);
        let restore = median(&mut w.restore);
        rows.push(vec![
            k.clone(),
            w.deployments.to_string(),
            w.successful.to_string(),
            w.failed.to_string(),
            format!("{:.0}%", cfr(w)),
            hours(lead),
            hours(restore),
        ]);
        raw_rows.push(vec![
            k.clone(),
            w.deployments.to_string(),
            w.successful.to_string(),
            w.failed.to_string(),
            raw(Some(cfr(w) / 100.0)),
            raw(lead),
            raw(restore),
        ]);
        json_weeks.push(json!({"week": k, "deployments": w.deployments, "successful": w.successful, "failed": w.failed, "change_failure_rate": cfr(w) / 100.0, "median_lead_time_hours": lead, "median_time_to_restore_hours": restore}));
    }
    let (series, json_periods) = series(env, &spans, &mut per, granularity, &total, repo.is_some(), commits_found);
    let lead = median(&mut total.lead);
    let restore = median(&mut total.restore);
    let per_week = total.successful as f64 / (days / 7.0);
    let overall = vec![
        vec!["deployment frequency".into(), format!("{} successful deployments, {per_week:.1} per week", total.successful)],
        vec!["lead time for changes (commit time → successful deployment), median".into(), format!("{} h", hours(lead))],
        vec![
            "change failure rate".into(),
            format!("{:.0}% ({} of {}){}", cfr(&total), total.failed, total.deployments, unchecked_note(unchecked)),
        ],
        vec!["time to restore, median".into(), format!("{} h", hours(restore))],
    ];
    let overall_raw = vec![
        vec!["deployments".into(), total.deployments.to_string()],
        vec!["successful deployments".into(), total.successful.to_string()],
        vec!["failed deployments".into(), total.failed.to_string()],
        vec!["deployments per week".into(), raw(Some(per_week))],
        vec!["change failure rate".into(), raw(Some(cfr(&total) / 100.0))],
        vec!["median lead time (h)".into(), raw(lead)],
        vec!["median time to restore (h)".into(), raw(restore)],
    ];
    let lead_dist: Vec<(String, u64)> =
        ["< 1 h", "1–24 h", "1–7 days", "> 7 days"].iter().zip(lead_buckets).map(|(l, n)| (format!("lead time {l}"), n)).collect();
    Ok(Document {
        title: format!("DORA metrics for {env} {}", super::window_text(since, until)),
        sections: vec![
            Section::new("Overall", &["metric", "value"], overall).with_raw(overall_raw),
            Section::new(
                "Per week",
                &[
                    "week",
                    "deployments",
                    "successful",
                    "failed",
                    "change failure rate",
                    "median lead time (h)",
                    "median time to restore (h)",
                ],
                rows,
            )
            .with_raw(raw_rows),
            Section::new(
                "Lead time distribution",
                &["bucket", "commits"],
                lead_dist.iter().map(|(l, n)| vec![l.clone(), n.to_string()]).collect(),
            ),
        ],
        charts: vec![("Lead time distribution (commits)".into(), lead_dist.clone())],
        series,
        json: json!({
            "environment": env, "since": since.to_string(), "until": (!until.is_open_end()).then(|| until.to_string()),
            "lead_time_measured_from": "commit time",
            "overall": {"deployments": total.deployments, "successful": total.successful, "failed": total.failed, "deployments_per_week": per_week,
                        "change_failure_rate": cfr(&total) / 100.0, "median_lead_time_hours": lead, "median_time_to_restore_hours": restore,
                        "rollbacks_unchecked": unchecked},
            "weeks": json_weeks,
            "granularity": granularity.as_str(),
            "periods": json_periods,
            "lead_time_distribution": lead_dist.iter().map(|(l, n)| json!({"bucket": l, "commits": n})).collect::<Vec<_>>(),
        }),
    })
}

/// What the failure rate could not count: deployments that may have been
/// rolled back, where git could not tell (commits missing).
pub fn unchecked_note(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!("; {n} not checked for rollback: their commits are not in the local repository (git fetch)"),
    }
}

/// The charts over every period of the window, and the same numbers as JSON:
/// deployments (zero drawn), change failure rate and median lead time (gaps
/// where there is nothing to measure, and why when there is nothing at all).
fn series(
    env: &str,
    spans: &[Period],
    per: &mut [Week],
    g: Granularity,
    total: &Week,
    have_repo: bool,
    commits_found: usize,
) -> (Vec<Series>, Vec<serde_json::Value>) {
    let unit = g.as_str();
    let mut json_periods = Vec::new();
    let (mut count, mut bad, mut cfr, mut lead) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (p, w) in spans.iter().zip(per.iter_mut()) {
        let c = (w.deployments > 0).then(|| w.failed as f64 / w.deployments as f64);
        let l = median(&mut w.lead);
        count.push(Some(w.deployments as f64));
        bad.push(w.failed as f64);
        cfr.push(c.map(|c| (c * 1000.0).round() / 10.0));
        lead.push(l.map(|h| (h * 10.0).round() / 10.0));
        json_periods.push(json!({"period": p.label, "start": p.start.to_string(), "end": p.end.to_string(), "deployments": w.deployments, "successful": w.successful, "failed": w.failed, "change_failure_rate": c, "median_lead_time_hours": l}));
    }
    let none_deployed = format!("no deployments to {env} in the window");
    let mut deployments =
        Series::new("chart-deployments", &format!("Deployments per {unit}"), "deployments", Shape::Columns, spans.to_vec(), count);
    deployments.bad = bad;
    deployments.bad_label = "failed".into();
    deployments.drill = Some(("/deployments".into(), env.to_string()));
    deployments.empty_because = (total.deployments == 0).then(|| none_deployed.clone());
    let mut failure = Series::new("chart-cfr", &format!("Change failure rate per {unit}"), "%", Shape::Line, spans.to_vec(), cfr);
    failure.empty_because = (total.deployments == 0).then(|| none_deployed.clone());
    let mut lead_line = Series::new("chart-lead", &format!("Median lead time per {unit}"), "hours", Shape::Line, spans.to_vec(), lead);
    lead_line.empty_because = if total.successful == 0 {
        Some(format!("no successful deployments to {env} in the window; lead time is measured to one"))
    } else if !have_repo {
        Some("lead time needs the commits: run git-audit in a clone of the repository (or set GIT_DIR)".into())
    } else if commits_found == 0 {
        Some("lead time needs the commits: run `git fetch` (the deployed commits are not in the local repository)".into())
    } else {
        None
    };
    (vec![deployments, failure, lead_line], json_periods)
}
