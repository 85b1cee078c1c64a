//! Anchoring checkpoints into git: `refs/audit/checkpoints` is a chain of
//! commits whose tree holds `checkpoint` (the signed note) and
//! `consistency-proof` (from the previously anchored checkpoint), so every
//! clone of the repository carries evidence of the ledger's state.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Select;
use crate::event::{LedgerAnchored, Payload};
use base64::Engine;

use super::note::Checkpoint;
use super::{Ledger, LedgerError};

pub const REF: &str = "refs/audit/checkpoints";

/// What `anchor` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Anchored {
    pub commit: Option<String>,
    pub size: u64,
    pub previous_size: Option<u64>,
}

fn git(git_dir: &Path) -> Command {
    let mut c = Command::new("git");
    // As every git git-audit runs: replace refs and grafts play no part.
    c.env("GIT_NO_REPLACE_OBJECTS", "1").env("GIT_GRAFT_FILE", "/dev/null");
    c.arg("--git-dir").arg(git_dir);
    c
}

fn run(mut c: Command, input: Option<&[u8]>) -> Result<String, LedgerError> {
    let fail = |m: String| LedgerError::Io { path: PathBuf::from("git"), source: std::io::Error::other(m) };
    c.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| fail(format!("cannot run git: {e}")))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!("{c:?}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The signed checkpoint note at the tip of `refs/audit/checkpoints`, if any.
pub fn anchored_note(git_dir: &Path) -> Result<Option<(String, String)>, LedgerError> {
    let mut c = git(git_dir);
    c.args(["rev-parse", "--verify", "--quiet", REF]);
    let Ok(tip) = run(c, None) else {
        return Ok(None);
    };
    if tip.is_empty() {
        return Ok(None);
    }
    let mut c = git(git_dir);
    c.args(["cat-file", "blob", &format!("{tip}:checkpoint")]);
    Ok(Some((tip, run(c, None)? + "\n")))
}

/// The anchor the ledger last wrote: (checkpoint size, anchor commit).
pub fn remembered(ledger: &Ledger) -> Result<Option<(u64, String)>, LedgerError> {
    let last = ledger.events::<LedgerAnchored>(&Select { subject: Some(REF), newest: Some(1), ..Select::default() })?;
    Ok(last.into_iter().next().map(|r| (r.payload.size, r.payload.commit)))
}

/// Compares `refs/audit/checkpoints` with the anchor the ledger remembers: a
/// missing ref, or one holding a smaller checkpoint, is a problem to report.
pub fn check(ledger: &Ledger, git_dir: &Path) -> Result<Vec<String>, LedgerError> {
    let Some((size, commit)) = remembered(ledger)? else {
        return Ok(Vec::new());
    };
    let Some((tip, note)) = anchored_note(git_dir)? else {
        return Ok(vec![format!("{REF} is missing: the ledger last anchored size {size} at {commit} (the ref was deleted)")]);
    };
    let held = ledger.open_note(&note).ok().and_then(|t| Checkpoint::parse(t).ok()).map(|c| c.size);
    Ok(match held {
        Some(s) if s >= size => Vec::new(),
        Some(s) => vec![format!("{REF} went backwards: it holds size {s} ({tip}), but the ledger last anchored size {size} at {commit}")],
        None => vec![format!("{REF} at {tip} does not hold a checkpoint signed by this ledger (last anchored size {size} at {commit})")],
    })
}

/// Commits the latest signed checkpoint onto `refs/audit/checkpoints`, and
/// records the anchor in the log (`ledger.anchored`) so that a deleted or
/// rewound ref is noticed later.
pub fn anchor(ledger: &mut Ledger, git_dir: &Path) -> Result<Anchored, LedgerError> {
    let head = ledger.checkpoint()?;
    let inconsistent = |msg: String| LedgerError::Inconsistent { path: ledger.path.clone(), msg };
    let previous = anchored_note(git_dir)?;
    let mut previous_size = None;
    let mut proof_text = String::new();
    if let Some((_, note)) = &previous {
        let text = ledger.open_note(note).map_err(|e| inconsistent(format!("the anchored checkpoint in {REF}: {e}")))?;
        let prev = Checkpoint::parse(text).map_err(|e| inconsistent(e.to_string()))?;
        if prev.size > head.size {
            return Err(inconsistent(format!(
                "{REF} holds a checkpoint of size {} but the ledger has only {} entries (truncated?)",
                prev.size, head.size
            )));
        }
        if ledger.root_at(prev.size)? != prev.root {
            return Err(inconsistent(format!("the ledger no longer matches the checkpoint of size {} anchored in {REF}", prev.size)));
        }
        // Nothing new since the last anchor but the entry that recorded it.
        let only_the_record = head.size == prev.size + 1 && remembered(ledger)?.is_some_and(|(size, _)| size == prev.size);
        if prev.size == head.size || only_the_record {
            return Ok(Anchored { commit: None, size: head.size, previous_size: Some(prev.size) });
        }
        previous_size = Some(prev.size);
        proof_text = format!("from {}\nto {}\n", prev.size, head.size);
        for h in ledger.consistency(prev.size, head.size)? {
            proof_text.push_str(&base64::engine::general_purpose::STANDARD.encode(h));
            proof_text.push('\n');
        }
    }
    let blob = |data: &[u8]| -> Result<String, LedgerError> {
        let mut c = git(git_dir);
        c.args(["hash-object", "-w", "--stdin"]);
        run(c, Some(data))
    };
    let cp = blob(head.note.as_bytes())?;
    let mut listing = format!("100644 blob {cp}\tcheckpoint\n");
    if !proof_text.is_empty() {
        listing.push_str(&format!("100644 blob {}\tconsistency-proof\n", blob(proof_text.as_bytes())?));
    }
    let mut c = git(git_dir);
    c.arg("mktree");
    let tree = run(c, Some(listing.as_bytes()))?;
    let mut c = git(git_dir);
    c.args(["commit-tree", &tree, "-m", &format!("git-audit checkpoint {} size {}", ledger.origin, head.size)]);
    if let Some((tip, _)) = &previous {
        c.args(["-p", tip]);
    }
    for (k, v) in [
        ("GIT_AUTHOR_NAME", "git-audit"),
        ("GIT_AUTHOR_EMAIL", "git-audit@localhost"),
        ("GIT_COMMITTER_NAME", "git-audit"),
        ("GIT_COMMITTER_EMAIL", "git-audit@localhost"),
    ] {
        c.env(k, v);
    }
    let commit = run(c, None)?;
    // Compare-and-swap: never overwrite an anchor someone else wrote meanwhile.
    let mut c = git(git_dir);
    c.args(["update-ref", REF, &commit]);
    match &previous {
        Some((tip, _)) => c.arg(tip),
        None => c.arg(""),
    };
    run(c, None)?;
    let anchored =
        LedgerAnchored { size: head.size, commit: commit.clone(), root: base64::engine::general_purpose::STANDARD.encode(head.root) };
    ledger.append(&[anchored.entry(REF, "git-audit")])?;
    Ok(Anchored { commit: Some(commit), size: head.size, previous_size })
}
