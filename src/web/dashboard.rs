//! The dashboard: the window's numbers as tiles (each linked to the list it
//! counts), its charts over real time, what shipped and who approved it, and
//! every environment side by side — all from one reading of the deployment
//! history.

use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;

use super::window::WindowQuery;
use super::{blocking, failure, html, open, pushes, Shared};
use crate::report::render::escape;
use crate::report::{self, Document, Section};
use crate::rule::Rule;
use crate::time::Timestamp;

/// Deployments the dashboard lists, newest first.
const LATEST_SHOWN: usize = 20;

/// The newest deployments of the window (at most 20): what shipped, who
/// deployed and approved it, its findings and how it ended.
fn latest_deployments(report: &Document, env: &str, total: usize) -> Section {
    const COLUMNS: [&str; 11] =
        ["time", "environment", "id", "sha", "deployer", "source", "approvers", "findings", "status", "note", "seq"];
    let mut rows = Vec::new();
    if let Some(all) = report.sections.first() {
        let at: Vec<Option<usize>> = COLUMNS.iter().map(|c| all.columns.iter().position(|x| x == c)).collect();
        rows = all
            .rows
            .iter()
            .rev()
            .take(LATEST_SHOWN)
            .map(|r| at.iter().map(|i| i.and_then(|i| r.get(i)).cloned().unwrap_or_default()).collect())
            .collect();
    }
    let title = if total > LATEST_SHOWN {
        format!("Latest deployments to {env}, of {total} (all on /deployments)")
    } else {
        format!("Deployments to {env}")
    };
    Section::new(&title, &COLUMNS, rows)
}

/// DORA's bands (State of DevOps 2023) for one metric.
fn band(metric: &str, value: Option<f64>) -> &'static str {
    let Some(v) = value else { return "" };
    match metric {
        // Successful deployments per week.
        "frequency" if v >= 7.0 => "elite",
        "frequency" if v >= 1.0 => "high",
        "frequency" if v >= 0.25 => "medium",
        "frequency" => "low",
        // Hours.
        "lead" if v < 24.0 => "elite",
        "lead" if v < 24.0 * 7.0 => "high",
        "lead" if v < 24.0 * 30.0 => "medium",
        "lead" => "low",
        // A fraction.
        "cfr" if v <= 0.05 => "elite",
        "cfr" if v <= 0.10 => "high",
        "cfr" if v <= 0.15 => "medium",
        "cfr" => "low",
        "restore" if v < 1.0 => "elite",
        "restore" if v < 24.0 => "high",
        "restore" if v < 24.0 * 7.0 => "medium",
        "restore" => "low",
        _ => "",
    }
}

/// A number on the dashboard, linked to the list it counts.
fn tile(label: &str, value: &str, note: &str, class: &str, id: &str, href: &str) -> String {
    format!(
        "<a class=\"tile-link\" href=\"{}\"><div class=\"tile\" id=\"{id}\"><div class=\"label\">{}</div><div class=\"value {class}\">{}</div><div class=\"note\">{}</div></div></a>",
        escape(href),
        escape(label),
        escape(value),
        escape(note)
    )
}

pub async fn dashboard(State(opts): State<Shared>, Query(q): Query<WindowQuery>) -> Response {
    let r = blocking(move || {
        let ctx = open(&opts)?;
        // Every number on the page comes from one reading of the deployment history (`ctx.facts`).
        let (w, chose) = q.resolve_finding_data(&ctx.ledger, &ctx.facts)?;
        let dora = report::dora::dora(&ctx.facts, ctx.repo.as_ref(), &w.env, &w.since, &w.until)?;
        let (_, findings) = report::compliance::compliance(&ctx.ledger, &ctx.facts, ctx.repo.as_ref(), &w.since, ctx.policy.as_ref())?;
        let pushes = pushes(&ctx.ledger, &w)?;
        // What shipped to the environment and who approved it, newest first:
        // the report over the newest deployments only (the page lists 20).
        let in_window: Vec<Timestamp> = ctx
            .facts
            .in_env(&w.env)
            .iter()
            .filter_map(|d| Timestamp::parse(&d.time).ok())
            .filter(|t| w.since <= *t && *t < w.until)
            .collect();
        let from = in_window.iter().rev().nth(LATEST_SHOWN - 1).map_or(w.since, |t| *t.max(&w.since));
        let shipped =
            report::deployments::deployments(&ctx.ledger, &ctx.facts, ctx.repo.as_ref(), &w.env, &from, &w.until, ctx.policy.as_ref())?;
        // Every environment deployed to, side by side (the page's own environment computed above).
        let mut per_env = Vec::new();
        for env in ctx.facts.environments() {
            let overall = match env == w.env {
                true => dora.json["overall"].clone(),
                false => report::dora::dora(&ctx.facts, ctx.repo.as_ref(), &env, &w.since, &w.until)?.json["overall"].clone(),
            };
            per_env.push((env, overall));
        }
        let total = in_window.len();
        let levels = crate::slsa::ref_levels(&ctx.ledger)?;
        let served = ctx.served_over(&w);
        Ok((w, chose, dora, findings, pushes, shipped, per_env, total, served, levels))
    })
    .await;
    let (w, chose, dora, findings, pushes, shipped, per_env, total, p, levels) = match r {
        Ok(x) => x,
        Err(e) => return failure(e.status(), e.message()),
    };
    let o = &dora.json["overall"];
    let f = |k: &str| o[k].as_f64();
    let per_week = f("deployments_per_week");
    let cfr = f("change_failure_rate");
    let lead = f("median_lead_time_hours");
    let restore = f("median_time_to_restore_hours");
    // Small rates (a long window) say so rather than rounding to 0.0.
    let shown = |v: Option<f64>, unit: &str| match v {
        None => "—".to_string(),
        Some(v) if v > 0.0 && v < 0.05 => format!("<0.1{unit}"),
        Some(v) => format!("{v:.1}{unit}"),
    };
    let band_class = |m: &str, v: Option<f64>| {
        let b = band(m, v);
        (
            if b.is_empty() { String::new() } else { format!("band-{b}") },
            if b.is_empty() { "no data".to_string() } else { format!("DORA: {b}") },
        )
    };
    // The window, changeable on the page (a plain GET form: no script).
    let field = |name: &str, value: &str, hint: &str| {
        format!("<label>{name} <input name=\"{name}\" value=\"{}\" placeholder=\"{}\" size=\"12\"></label> ", escape(value), escape(hint))
    };
    let mut tiles = format!(
        "<form class=\"window\" method=\"get\" action=\"/\">{}{}{}<button>Show</button></form>",
        field("since", &w.since_text, "90d or 2026-07-01"),
        field("until", &w.until_text, "now"),
        field("env", &w.env, "production")
    );
    if let Some(c) = &chose {
        tiles.push_str(&format!("<p id=\"window-chosen\">{}</p>", escape(c)));
    }
    tiles.push_str("<div class=\"tiles\">");
    // Every number links to the list it counts, over the same window.
    let to = |path: &str, extra: &[(&str, &str)]| format!("{path}{}", p.links.window_query_with(extra));
    let (c, n) = band_class("frequency", per_week);
    tiles += &tile(
        &format!("deployments to {}", w.env),
        &o["deployments"].as_u64().unwrap_or(0).to_string(),
        &format!("{} per week successful; {n}", shown(per_week, "")),
        &c,
        "tile-deployments",
        &to("/deployments", &[]),
    );
    let (c, n) = band_class("cfr", cfr);
    tiles += &tile(
        "change failure rate",
        &cfr.map_or("—".into(), |v| format!("{:.0}%", v * 100.0)),
        &format!(
            "{} failed; {n}{}",
            o["failed"].as_u64().unwrap_or(0),
            report::dora::unchecked_note(o["rollbacks_unchecked"].as_u64().unwrap_or(0))
        ),
        &c,
        "tile-cfr",
        &to("/deployments", &[("status", "failed")]),
    );
    let (c, n) = band_class("lead", lead);
    tiles += &tile("median lead time", &shown(lead, " h"), &n, &c, "tile-lead", &to("/dora", &[]));
    let (c, n) = band_class("restore", restore);
    tiles += &tile("median time to restore", &shown(restore, " h"), &n, &c, "tile-restore", &to("/deployments", &[("status", "failed")]));
    let refused = pushes.json["refused"].as_u64().unwrap_or(0);
    let breaks = pushes.json["break_glass"].as_u64().unwrap_or(0);
    tiles += &tile(
        "refused pushes",
        &refused.to_string(),
        &format!("{} accepted; {breaks} break glass", pushes.json["accepted"].as_u64().unwrap_or(0)),
        if refused > 0 { "bad" } else { "good" },
        "tile-refused",
        &to("/pushes", &[("decision", "refused")]),
    );
    // Violations and "could not verify" are different answers: counted and listed apart.
    let unverified = findings.iter().filter(|f| f.rule.is_unverified()).count();
    let anomalies = findings.iter().filter(|f| f.rule.is_anomaly()).count();
    let violations = findings.len() - unverified - anomalies;
    tiles += &tile(
        "violations",
        &violations.to_string(),
        "compliance findings, in the window",
        if violations == 0 { "good" } else { "bad" },
        "tile-findings",
        &to("/compliance", &[("kind", "violation")]),
    );
    tiles += &tile(
        "could not verify",
        &unverified.to_string(),
        "what the ledger lacks to judge (e.g. a team never synced)",
        if unverified == 0 { "good" } else { "warn" },
        "tile-unverified",
        &to("/compliance", &[("kind", "unverified")]),
    );
    tiles += &tile(
        "anomalies",
        &anomalies.to_string(),
        "unusual against this ledger's own history: to look at",
        if anomalies == 0 { "good" } else { "warn" },
        "tile-anomalies",
        &to("/compliance", &[("kind", "anomaly")]),
    );
    // Each protected ref's SLSA source level, from its latest attestation.
    for (i, l) in levels.iter().take(4).enumerate() {
        let short = l.refname.strip_prefix("refs/heads/").unwrap_or(&l.refname);
        tiles += &tile(
            &format!("source level: {short}"),
            &format!("L{}", l.level),
            &l.since.as_deref().map_or("no controls held".to_string(), |s| format!("since {s}")),
            if l.level >= 3 { "good" } else { "warn" },
            &format!("tile-source-{i}"),
            "/sources",
        );
    }
    tiles.push_str("</div>");
    let mut by_rule: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for f in &findings {
        *by_rule.entry(f.rule.id().to_string()).or_default() += 1;
    }
    let until = if w.until.is_open_end() { "now".to_string() } else { w.until.to_string() };
    let hours = |v: &serde_json::Value| v.as_f64().map_or("—".to_string(), |h| format!("{h:.1}"));
    let env_rows: Vec<Vec<String>> = per_env
        .iter()
        .map(|(env, o)| {
            let cfr = o["change_failure_rate"].as_f64();
            vec![
                env.clone(),
                o["deployments"].as_u64().unwrap_or(0).to_string(),
                o["failed"].as_u64().unwrap_or(0).to_string(),
                cfr.map_or("—".into(), |c| format!("{:.0}%", c * 100.0)),
                band("cfr", cfr).to_string(),
                hours(&o["median_lead_time_hours"]),
                hours(&o["median_time_to_restore_hours"]),
            ]
        })
        .collect();
    let doc = Document {
        title: format!("Dashboard: {} since {} (to {until})", w.env, w.since),
        sections: vec![
            latest_deployments(&shipped, &w.env, total),
            Section::new(
                "Environments",
                &[
                    "environment",
                    "deployments",
                    "failed",
                    "change failure rate",
                    "DORA band (CFR)",
                    "median lead time (h)",
                    "median time to restore (h)",
                ],
                env_rows,
            ),
            Section::new(
                "Findings by rule",
                &["rule", "kind", "findings"],
                by_rule
                    .iter()
                    .map(|(r, n)| {
                        let kind = match Rule::from_id(r) {
                            Some(x) if x.is_unverified() => "could not verify",
                            Some(x) if x.is_anomaly() => "anomaly",
                            _ => "violation",
                        };
                        vec![r.clone(), kind.to_string(), n.to_string()]
                    })
                    .collect(),
            ),
        ],
        charts: Vec::new(),
        series: dora.series.clone(),
        json: json!({}),
    };
    html(&doc, tiles, String::new(), &p)
}
