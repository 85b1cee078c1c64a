//! What the pusher reads (git prefixes each line with `remote: ` on a server):
//! per ref, each offending commit (short id + subject) or ref rule, grouped;
//! each fix once; long lists summarised.

use std::collections::BTreeSet;

use super::decide::PushDecision;
use crate::check::Severity;
use crate::git::short_id;

/// Commits listed per ref before the rest is summarised.
pub const LIST_LIMIT: usize = 20;

pub fn render(d: &PushDecision, policy_source: &str) -> String {
    let mut out = String::new();
    let errors = d.error_count();
    let warnings: usize = d
        .refs
        .iter()
        .map(|r| r.findings.iter().chain(r.commits.iter().flat_map(|c| &c.findings)).filter(|f| f.severity == Severity::Warning).count())
        .sum();
    if errors == 0 && warnings == 0 && d.reasons.is_empty() {
        return out;
    }
    let head = if !d.accepted {
        "git-audit: push refused"
    } else if errors > 0 {
        "git-audit: push accepted by break glass despite violations"
    } else {
        "git-audit: push accepted with warnings"
    };
    out.push_str(&format!("{head} (policy {policy_source})\n"));
    for r in &d.reasons {
        out.push_str(&format!("  {r}\n"));
    }
    let mut fixes: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut note_fix = |rule: &str, fix: &Option<String>| {
        if let Some(f) = fix {
            if seen.insert((rule.to_string(), f.clone())) {
                fixes.push((rule.to_string(), f.clone()));
            }
        }
    };
    for r in &d.refs {
        let bad: Vec<_> = r.commits.iter().filter(|c| !c.findings.is_empty()).collect();
        if r.findings.is_empty() && bad.is_empty() {
            continue;
        }
        out.push_str(&format!("\n  {}:\n", r.update.refname));
        // Fixes that rewrite history start from what the other side already has.
        let base = (!super::is_zero(&r.update.old)).then(|| short_id(&r.update.old).to_string());
        let with_base = |fix: &Option<String>| fix.as_ref().map(|f| base.as_ref().map_or_else(|| f.clone(), |b| f.replace("<base>", b)));
        for f in &r.findings {
            out.push_str(&format!("    {}{}: {}\n", f.rule, tag(f.severity), f.message));
            note_fix(f.rule.id(), &with_base(&f.fix));
        }
        for c in bad.iter().take(LIST_LIMIT) {
            let rules: Vec<String> = c.findings.iter().map(|f| format!("{}{} ({})", f.rule, tag(f.severity), f.message)).collect();
            out.push_str(&format!("    {} {} — {}\n", short_id(&c.id), c.subject, rules.join("; ")));
            for f in &c.findings {
                note_fix(f.rule.id(), &with_base(&f.fix));
            }
        }
        if bad.len() > LIST_LIMIT {
            let rules: BTreeSet<&str> = bad[LIST_LIMIT..].iter().flat_map(|c| c.findings.iter().map(|f| f.rule.id())).collect();
            out.push_str(&format!(
                "    … and {} more commits ({}); see them all with `git-audit verify {}..{}`\n",
                bad.len() - LIST_LIMIT,
                rules.into_iter().collect::<Vec<_>>().join(", "),
                if super::is_zero(&r.update.old) { "<base>" } else { short_id(&r.update.old) },
                short_id(&r.update.new)
            ));
        }
    }
    let broke_glass = d.accepted && errors > 0;
    if !fixes.is_empty() && !broke_glass {
        out.push_str("\nHow to fix:\n");
        for (rule, fix) in &fixes {
            out.push_str(&format!("  {rule}: {fix}\n"));
        }
    }
    if let Some(b) = &d.bypass {
        if b.allowed {
            out.push_str(&format!(
                "\nbreak glass used by {}: \"{}\" (recorded in the audit ledger)\n",
                d.pusher.identity.as_deref().unwrap_or("?"),
                b.reason
            ));
            out.push_str(&format!("{errors} violation(s) let through; fix them in a follow-up push\n"));
        }
    }
    if !d.accepted {
        let refs = d.refs.iter().filter(|r| r.errors() > 0).count();
        out.push_str(&format!("\n{errors} violation(s) in {refs} ref(s); nothing was updated.\n"));
    }
    out
}

fn tag(s: Severity) -> &'static str {
    match s {
        Severity::Error => "",
        Severity::Warning => " [warn]",
    }
}
