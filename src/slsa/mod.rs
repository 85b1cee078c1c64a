//! SLSA Source Track (v1.2): the source level a revision met when it landed
//! on a protected ref, from what the ledger recorded then — the controls the
//! hooks enforced (each with the time since when it has held without a
//! lapse), who pushed it, and the review of its change — and the documents
//! that say so: a source provenance statement and a Verification Summary
//! Attestation (in-toto Statement v1), each in a DSSE envelope signed by the
//! server's ledger key, kept in git notes and in the ledger.
//!
//! Levels, as git-audit reads them (the README has the table):
//! - L1: the revision is in git (a content-addressed commit id).
//! - L2: it landed by a push the hooks decided and recorded at the time
//!   (contemporaneous provenance, an identified pusher) on a ref whose
//!   continuity was enforced (no force push, no deletion) while tags were
//!   immutable (`CONTINUITY_ENFORCED`, `TAG_HYGIENE`).
//! - L3: the controls are declared in a policy only policy admins change and
//!   enforced continuously, signed commits by pinned keys among them
//!   (`POLICY_GOVERNED`, `SIGNED_COMMITS`).
//! - L4: the change was reviewed by someone other than its author on its
//!   final revision (a synced approval on the merged head).
//!
//! Unknown is never a level: a revision whose review was not synced yet gets
//! what the recorded facts support, and a new attestation when they arrive.

pub mod dsse;
pub mod issue;

use serde::Serialize;
use serde_json::{json, Value};

use crate::event::{LedgerGap, PushDecided};
use crate::ledger::{Ledger, LedgerError, Select};

pub const VSA_PREDICATE: &str = "https://slsa.dev/verification_summary/v1";
pub const PROVENANCE_PREDICATE: &str = "https://git-audit.dev/source-provenance/v1";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const VERIFIER_ID: &str = "https://git-audit.dev/verifier";
/// Where consumers of source-tool look for attestations: git's default notes ref.
pub const NOTES_REF: &str = "refs/notes/commits";

pub const LEVELS: [&str; 4] = ["SLSA_SOURCE_LEVEL_1", "SLSA_SOURCE_LEVEL_2", "SLSA_SOURCE_LEVEL_3", "SLSA_SOURCE_LEVEL_4"];

/// A control and the time since when it has held on the ref without a lapse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    pub name: String,
    pub since: String,
}

/// What the ledger says of one revision on one ref.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub commit: String,
    #[serde(rename = "ref")]
    pub refname: String,
    /// 1 to 4.
    pub level: u8,
    pub controls: Vec<Control>,
    /// The push that landed it: seq, time, pusher, the ref's previous tip.
    pub landed: Option<Landing>,
    /// The change (pull or merge request) and who approved its final revision.
    pub review: Option<Review>,
    /// Why the level is not higher, in words.
    pub limits: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Landing {
    pub seq: u64,
    pub time: String,
    pub pusher: String,
    pub previous: String,
    /// The policy the push was decided under.
    pub policy_digest: String,
}

/// The change that landed the revision, and its approvers on the final revision.
pub use crate::ledger::query::ChangeLanding as Review;

impl Assessment {
    pub fn level_name(&self) -> &'static str {
        LEVELS[(self.level.clamp(1, 4) - 1) as usize]
    }
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Assesses `commit` on `refname` from the ledger.
pub fn assess(ledger: &Ledger, commit: &str, refname: &str) -> Result<Assessment, LedgerError> {
    let pushes = ledger.events::<PushDecided>(&Select::default())?;
    let gaps: Vec<u64> = ledger.events::<LedgerGap>(&Select::default())?.into_iter().map(|g| g.seq).collect();
    let mut a = Assessment {
        commit: commit.into(),
        refname: refname.into(),
        level: 1,
        controls: Vec::new(),
        landed: None,
        review: None,
        limits: Vec::new(),
    };
    // The accepted push that brought the revision onto the ref (the latest, if several).
    let landing = pushes.iter().rev().filter(|p| p.payload.accepted).find_map(|p| {
        p.payload
            .ref_updates
            .iter()
            .find(|u| u.refname == refname && (u.new == commit || u.commits.iter().any(|c| c == commit)))
            .map(|u| (p, u))
    });
    let Some((push, update)) = landing else {
        a.limits.push(format!("no recorded push landed {} on {refname}: no contemporaneous provenance", crate::git::short_id(commit)));
        return Ok(a);
    };
    let pusher = push.payload.pusher.identity.clone().unwrap_or_default();
    a.landed = Some(Landing {
        seq: push.seq,
        time: push.time.clone(),
        pusher: pusher.clone(),
        previous: update.old.clone(),
        policy_digest: push.payload.policy_digest.clone(),
    });
    let bypassed = push.payload.bypass.as_ref().is_some_and(|b| b.allowed);
    // Each control the landing push was decided under, and since when it held:
    // back through the ref's accepted pushes while each held it, was not break
    // glass, and no gap in the record lies between.
    let on_ref: Vec<&crate::ledger::Recorded<PushDecided>> = pushes
        .iter()
        .filter(|p| p.payload.accepted && p.seq <= push.seq && p.payload.ref_updates.iter().any(|u| u.refname == refname))
        .collect();
    if !bypassed {
        for name in &update.controls {
            let mut since = push;
            for p in on_ref.iter().rev() {
                let held = p.payload.bypass.as_ref().is_none_or(|b| !b.allowed)
                    && p.payload.ref_updates.iter().filter(|u| u.refname == refname).all(|u| u.controls.contains(name));
                let gap_between = gaps.iter().any(|g| *g > p.seq && *g < since.seq);
                if !held || gap_between {
                    break;
                }
                since = p;
            }
            // Tag hygiene is the repository's: break glass on a tag breaks it too.
            if name == "TAG_HYGIENE" {
                if let Some(b) = pushes.iter().rev().find(|p| {
                    p.seq <= push.seq
                        && p.seq > since.seq
                        && p.payload.accepted
                        && p.payload.bypass.as_ref().is_some_and(|b| b.allowed)
                        && p.payload.ref_updates.iter().any(|u| u.refname.starts_with("refs/tags/"))
                }) {
                    since = pushes.iter().find(|p| p.seq > b.seq && p.payload.accepted).unwrap_or(push);
                }
            }
            a.controls.push(Control { name: name.clone(), since: since.time.clone() });
        }
    } else {
        a.limits.push("it landed by break glass: the controls did not hold for it".into());
    }
    let has = |n: &str| a.controls.iter().any(|c| c.name == n);
    // L2: history and provenance.
    let mut missing = Vec::new();
    if pusher.is_empty() {
        missing.push("the pusher was not identified".to_string());
    }
    for c in ["CONTINUITY_ENFORCED", "TAG_HYGIENE"] {
        if !has(c) {
            missing.push(format!("{c} did not hold"));
        }
    }
    if !missing.is_empty() {
        a.limits.push(format!("not level 2: {}", missing.join(", ")));
        return Ok(a);
    }
    a.level = 2;
    let missing: Vec<String> =
        ["POLICY_GOVERNED", "SIGNED_COMMITS"].iter().filter(|c| !has(c)).map(|c| format!("{c} did not hold")).collect();
    if !missing.is_empty() {
        a.limits.push(format!("not level 3: {}", missing.join(", ")));
        return Ok(a);
    }
    a.level = 3;
    // L4: two-party review of the final revision.
    match ledger.change_landing(commit)? {
        Some(r) if !r.approvers.is_empty() => {
            a.review = Some(r);
            a.level = 4;
        }
        Some(r) => {
            a.limits.push(format!(
                "not level 4: {}#{} has no approval of its final revision by someone other than its author {}",
                r.repository, r.number, r.author
            ));
            a.review = Some(r);
        }
        None => a.limits.push("not level 4: no synced pull or merge request landed it (pushed directly, or not synced yet)".into()),
    }
    Ok(a)
}

/// The two statements: source provenance (our predicate, documented in the
/// README) and the VSA.
pub fn statements(a: &Assessment, repository: &str, policy_uri: &str, now: &str, properties: &[String]) -> (Value, Value) {
    let refs = vec![a.refname.clone()];
    let mut levels = vec![a.level_name().to_string()];
    levels.extend(a.controls.iter().map(|c| c.name.clone()).filter(|n| n == "TAG_HYGIENE"));
    levels.extend(properties.iter().cloned());
    let subject = |refs: &[String]| json!([{"uri": format!("{repository}/commit/{}", a.commit), "digest": {"gitCommit": a.commit}, "annotations": {"source_refs": refs, "sourceRefs": refs}}]);
    let provenance = json!({
        "_type": STATEMENT_TYPE,
        "subject": subject(&refs),
        "predicateType": PROVENANCE_PREDICATE,
        "predicate": {
            "repo_uri": repository,
            "branch": a.refname,
            "prev_commit": a.landed.as_ref().map(|l| l.previous.clone()).filter(|p| !is_zero(p)),
            "actor": a.landed.as_ref().map(|l| l.pusher.clone()),
            "created_on": a.landed.as_ref().map(|l| l.time.clone()),
            "controls": a.controls,
            "review": a.review,
            "ledger": {"landing_seq": a.landed.as_ref().map(|l| l.seq)},
        }
    });
    let vsa = json!({
        "_type": STATEMENT_TYPE,
        "subject": subject(&refs),
        "predicateType": VSA_PREDICATE,
        "predicate": {
            "verifier": {"id": VERIFIER_ID},
            "slsaVersion": "1.2",
            "timeVerified": now,
            "resourceUri": format!("git+{repository}"),
            "policy": {"uri": policy_uri},
            "verificationResult": "PASSED",
            "verifiedLevels": levels,
        }
    });
    (provenance, vsa)
}

/// A protected ref's latest attestation: its tip then, the level, and since
/// when that level's controls have all held.
#[derive(Debug, Clone, Serialize)]
pub struct RefLevel {
    #[serde(rename = "ref")]
    pub refname: String,
    pub commit: String,
    pub level: u8,
    pub level_name: String,
    /// The latest of the level's controls' since (L1: none).
    pub since: Option<String>,
    pub attested: String,
    pub seq: u64,
}

/// The controls a level needs (L4 adds a review per revision, not a control).
pub fn level_controls(level: u8) -> &'static [&'static str] {
    match level {
        0 | 1 => &[],
        2 => &["CONTINUITY_ENFORCED", "TAG_HYGIENE"],
        _ => &["CONTINUITY_ENFORCED", "TAG_HYGIENE", "POLICY_GOVERNED", "SIGNED_COMMITS"],
    }
}

/// Each ref's latest `attestation.issued`, by ref.
pub fn ref_levels(ledger: &Ledger) -> Result<Vec<RefLevel>, LedgerError> {
    let mut latest: std::collections::BTreeMap<String, RefLevel> = std::collections::BTreeMap::new();
    for e in ledger.events::<crate::event::AttestationIssued>(&Select::default())? {
        let p = &e.payload;
        let needed = level_controls(p.level);
        let since = p
            .controls
            .iter()
            .filter(|c| c["name"].as_str().is_some_and(|n| needed.contains(&n)))
            .filter_map(|c| c["since"].as_str().map(str::to_string))
            .max();
        let level_name = LEVELS[(p.level.clamp(1, 4) - 1) as usize].to_string();
        latest.insert(
            p.refname.clone(),
            RefLevel {
                refname: p.refname.clone(),
                commit: p.commit.clone(),
                level: p.level,
                level_name,
                since,
                attested: e.time.clone(),
                seq: e.seq,
            },
        );
    }
    Ok(latest.into_values().collect())
}

/// The latest attestation of each revision on each ref: (commit, ref, level).
pub fn attested(ledger: &Ledger) -> Result<Vec<(String, String, u8)>, LedgerError> {
    let mut latest: std::collections::BTreeMap<(String, String), u8> = std::collections::BTreeMap::new();
    for e in ledger.events::<crate::event::AttestationIssued>(&Select::default())? {
        latest.insert((e.payload.commit, e.payload.refname), e.payload.level);
    }
    Ok(latest.into_iter().map(|((c, r), l)| (c, r, l)).collect())
}
