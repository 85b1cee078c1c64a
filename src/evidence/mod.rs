//! The evidence package: what an auditor takes away, checkable offline.
//!
//! `report evidence` writes one `.tar.gz` (format [`FORMAT`]): the reports for
//! a window (JSON, HTML, CSV), every ledger entry they cite with its RFC 9162
//! inclusion proof, the C2SP signed checkpoint they are proven against, the
//! ledger's public key and writers, the policy in force, optionally a
//! consistency proof from an earlier package's checkpoint, a manifest of
//! SHA-256 digests, and a README.txt on how to check it. `evidence verify`
//! checks all of that with no access to the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ledger::note::{Checkpoint, NoteVerifier};
use crate::ledger::{merkle, Ledger, Proof};

mod recompute;

/// The package format this code writes and reads.
pub const FORMAT: &str = "git-audit-evidence/1";

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Bad(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io { path: path.display().to_string(), source }
}

/// One report as it goes into the package: its name and its renderings.
pub struct ReportFiles {
    pub name: String,
    pub json: Value,
    pub html: String,
    pub csv: String,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub entries: usize,
    pub tree_size: u64,
    pub files: usize,
}

const README: &str = "\
git-audit evidence package (format git-audit-evidence/1)

Check it:  git-audit evidence verify THIS.tar.gz   (needs no access to the ledger)

Or with other tools:
- manifest.json: the SHA-256 of every other file.
- checkpoint.txt: the ledger's signed tree head, a C2SP tlog-checkpoint body
  (origin, tree size, base64 root) in a C2SP signed-note, Ed25519 (Go's
  golang.org/x/mod/sumdb/note checks it). The key is in keys.json (`owner`,
  name+hexid+base64); when a writer signed it, keys.json holds that writer's
  key and the owner-signed entry that made it a writer.
- entries.jsonl: one inclusion proof per line: {entry, leaf_index, tree_size,
  inclusion_proof, checkpoint, key}. The leaf is SHA-256(0x00 || bytes) of the
  entry's canonical bytes: the entry object (without `sig`, with \"v\":2 when it
  names a `writer`) as compact JSON with sorted keys; the proof is an RFC 9162
  (certificate transparency v2) inclusion proof, node hash SHA-256(0x01||l||r).
- reports/: the reports for the window, as JSON (what programs read), HTML
  (prints to PDF from a browser) and CSV. Every `seq` and `evidence` number in
  the JSON names an entry proven in entries.jsonl. The manifest is not
  signed: the reports are evidence because their rows agree with the entries
  they cite. In deployments.json each deployment's `seq` is its
  deployment.synced/deployment.recorded entry and `evidence` adds the entry
  that set its status; compliance.json's findings cite their `evidence`;
  dora.json's counts follow from deployments.json's rows (`evidence verify`
  recomputes all of this; lead time needs the commits' times, from git).
- consistency.json (when made with --since-package): the earlier package's
  checkpoint and an RFC 9162 consistency proof from it to checkpoint.txt:
  nothing that earlier package saw was removed or changed since.
- policy.toml: the policy the reports were judged by (its digest is in the reports).
";

/// Writes the package to `out`.
pub fn build(
    ledger: &Ledger,
    reports: &[ReportFiles],
    policy_text: Option<&str>,
    window: Value,
    previous: Option<&Path>,
    out: &Path,
) -> Result<Written, EvidenceError> {
    let head = ledger.head()?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut cited = BTreeSet::new();
    for r in reports {
        cited.extend(crate::ledger::ground::cited(&r.json));
        files.insert(
            format!("reports/{}.json", r.name),
            format!("{}\n", serde_json::to_string_pretty(&r.json).unwrap_or_default()).into_bytes(),
        );
        files.insert(format!("reports/{}.html", r.name), r.html.clone().into_bytes());
        files.insert(format!("reports/{}.csv", r.name), r.csv.clone().into_bytes());
    }
    let mut lines = String::new();
    let mut proven = 0;
    for seq in cited.iter().copied().filter(|s| *s < head.size) {
        let p = ledger.prove_under(seq, &head)?;
        lines.push_str(&serde_json::to_string(&p).unwrap_or_default());
        lines.push('\n');
        proven += 1;
    }
    files.insert("entries.jsonl".into(), lines.into_bytes());
    files.insert("checkpoint.txt".into(), head.note.clone().into_bytes());
    let writers = ledger.writers()?;
    let mut listed = Vec::new();
    for w in &writers.list {
        listed.push(json!({"name": w.name, "role": w.role.map(|r| r.as_str()), "key": w.key.to_string(), "kinds": w.kinds,
            "added_seq": w.added, "revoked_seq": w.revoked, "entry": ledger.prove_under(w.added, &head)?}));
    }
    files.insert(
        "keys.json".into(),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({"owner": ledger.verifier.to_string(), "writers": listed})).unwrap_or_default()
        )
        .into_bytes(),
    );
    if let Some(text) = policy_text {
        files.insert("policy.toml".into(), text.as_bytes().to_vec());
    }
    if let Some(old) = previous {
        let old_files = read(old)?;
        let note = String::from_utf8_lossy(
            old_files.get("checkpoint.txt").ok_or_else(|| EvidenceError::Bad(format!("{} holds no checkpoint.txt", old.display())))?,
        )
        .into_owned();
        let cp = ledger.open_note(&note).ok().and_then(|t| Checkpoint::parse(t).ok()).ok_or_else(|| {
            EvidenceError::Bad(format!("the checkpoint of {} is not this ledger's (its signature does not verify)", old.display()))
        })?;
        if cp.size > head.size {
            return Err(EvidenceError::Bad(format!(
                "the ledger holds {} entries, fewer than the {} the earlier package {} saw: entries were removed",
                head.size,
                cp.size,
                old.display()
            )));
        }
        let proof = ledger.consistency(cp.size, head.size)?;
        if cp.size > 0 && !merkle::verify_consistency(&cp.root, cp.size, &head.root, head.size, &proof) {
            return Err(EvidenceError::Bad(format!(
                "the ledger no longer extends the checkpoint of {} (size {}): its history was rewritten",
                old.display(),
                cp.size
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        files.insert(
            "consistency.json".into(),
            format!(
                "{}\n",
                serde_json::to_string_pretty(
                    &json!({"from": note, "from_size": cp.size, "to_size": head.size, "proof": proof.iter().map(|h| b64.encode(h)).collect::<Vec<_>>()})
                )
                .unwrap_or_default()
            )
            .into_bytes(),
        );
    }
    files.insert("README.txt".into(), README.as_bytes().to_vec());
    let digests: BTreeMap<&String, String> = files.iter().map(|(k, v)| (k, hex::encode(Sha256::digest(v)))).collect();
    let manifest = json!({
        "format": FORMAT,
        "created": crate::time::Timestamp::now().canonical(),
        "generator": format!("git-audit {}", env!("CARGO_PKG_VERSION")),
        "ledger_origin": ledger.origin,
        "tree_size": head.size,
        "window": window,
        "files": digests,
    });
    files.insert("manifest.json".into(), format!("{}\n", serde_json::to_string_pretty(&manifest).unwrap_or_default()).into_bytes());
    let n = files.len();
    write(out, &files)?;
    Ok(Written { entries: proven, tree_size: head.size, files: n })
}

fn write(out: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), EvidenceError> {
    let f = std::fs::File::create(out).map_err(io(out))?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, format!("evidence/{name}"), data.as_slice()).map_err(io(out))?;
    }
    let gz = tar.into_inner().map_err(io(out))?;
    gz.finish().map_err(io(out))?.flush().map_err(io(out))
}

/// The files of a package, by name (without the `evidence/` prefix).
pub fn read(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let f = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = BTreeMap::new();
    for entry in archive.entries().map_err(io(path))? {
        let mut entry = entry.map_err(io(path))?;
        let name = entry.path().map_err(io(path))?.to_string_lossy().into_owned();
        let name = name.strip_prefix("evidence/").unwrap_or(&name).to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(io(path))?;
        out.insert(name, data);
    }
    Ok(out)
}

/// What `evidence verify` found: the facts checked, and every problem.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Checked {
    pub origin: String,
    pub tree_size: u64,
    pub entries: usize,
    pub reports: Vec<String>,
    pub consistent_from: Option<u64>,
    /// What was recomputed from the proven entries (one line per report).
    pub recomputed: Vec<String>,
    /// What cannot be recomputed offline, and why.
    pub not_recomputed: Vec<String>,
    pub problems: Vec<String>,
}

/// Checks a package offline.
pub fn verify(path: &Path) -> Result<Checked, EvidenceError> {
    let files = read(path)?;
    let mut c = Checked::default();
    let text = |name: &str| files.get(name).map(|b| String::from_utf8_lossy(b).into_owned());
    let manifest: Value = text("manifest.json")
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| EvidenceError::Bad("no readable manifest.json: not an evidence package".into()))?;
    if manifest["format"] != FORMAT {
        return Err(EvidenceError::Bad(format!("package format {}, this git-audit reads {FORMAT}", manifest["format"])));
    }
    // 1. Every file is the one the manifest names, and nothing is added.
    let listed = manifest["files"].as_object().cloned().unwrap_or_default();
    for (name, data) in &files {
        if name == "manifest.json" {
            continue;
        }
        match listed.get(name).and_then(Value::as_str) {
            Some(d) if d == hex::encode(Sha256::digest(data)) => {}
            Some(_) => c.problems.push(format!("{name}: its content is not what the manifest lists (altered)")),
            None => c.problems.push(format!("{name}: not in the manifest (added)")),
        }
    }
    for name in listed.keys().filter(|n| !files.contains_key(*n)) {
        c.problems.push(format!("{name}: listed in the manifest but missing (removed)"));
    }
    // 2. The checkpoint, by the owner's key or a writer the owner made.
    let keys: Value = text("keys.json").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let owner = NoteVerifier::parse(keys["owner"].as_str().unwrap_or_default())
        .map_err(|e| EvidenceError::Bad(format!("keys.json: the owner key is unreadable ({e})")))?;
    let note = text("checkpoint.txt").unwrap_or_default();
    let mut signers = vec![owner.clone()];
    for w in keys["writers"].as_array().into_iter().flatten() {
        // A writer's key counts when the entry that made it one is proven and owner-signed.
        let made = serde_json::from_value::<Proof>(w["entry"].clone()).ok().filter(|p| crate::ledger::proof::verify(p, &owner).is_ok());
        if let (Some(_), Ok(k)) = (made, NoteVerifier::parse(w["key"].as_str().unwrap_or_default())) {
            signers.push(k);
        }
    }
    let cp = match crate::ledger::open_by_any(&signers, &note)
        .map_err(|e| e.to_string())
        .and_then(|t| Checkpoint::parse(t).map_err(|e| e.to_string()))
    {
        Ok(cp) => cp,
        Err(e) => {
            c.problems.push(format!("checkpoint.txt does not verify with the ledger's keys: {e}"));
            return Ok(c);
        }
    };
    c.origin = cp.origin.clone();
    c.tree_size = cp.size;
    // 3. Every entry is in the tree the checkpoint signs.
    let mut proven = BTreeSet::new();
    let mut entries: BTreeMap<u64, Value> = BTreeMap::new();
    for (i, line) in text("entries.jsonl").unwrap_or_default().lines().enumerate() {
        let p: Proof = match serde_json::from_str(line) {
            Ok(p) => p,
            Err(e) => {
                c.problems.push(format!("entries.jsonl line {}: not a proof ({e})", i + 1));
                continue;
            }
        };
        if p.checkpoint != note {
            c.problems.push(format!("entries.jsonl line {}: proven against another checkpoint than checkpoint.txt", i + 1));
            continue;
        }
        match crate::ledger::proof::verify(&p, &owner) {
            Ok(inc) => {
                proven.insert(inc.seq);
                entries.insert(inc.seq, p.entry.clone());
            }
            Err(e) => c.problems.push(format!("entries.jsonl line {} (seq {}): {}", i + 1, p.leaf_index, e.0)),
        }
    }
    c.entries = proven.len();
    // 4. Every report cites only proven entries.
    for (name, data) in files.iter().filter(|(n, _)| n.starts_with("reports/") && n.ends_with(".json")) {
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            c.problems.push(format!("{name}: not JSON"));
            continue;
        };
        let missing: Vec<u64> = crate::ledger::ground::cited(&v).into_iter().filter(|s| !proven.contains(s)).collect();
        if !missing.is_empty() {
            c.problems.push(format!("{name} cites seq {:?}, which the package does not prove", missing));
        }
        c.reports.push(name.clone());
    }
    // 5. Every row stands on its entries, and every number recomputes from the rows.
    let recomputed = recompute::all(&files, &entries);
    c.problems.extend(recomputed.problems);
    c.recomputed = recomputed.checked;
    c.not_recomputed = recomputed.not_recomputed;
    // 6. The earlier package's checkpoint, still a prefix of this one.
    if let Some(t) = text("consistency.json") {
        let v: Value = serde_json::from_str(&t).unwrap_or_default();
        let from = v["from"].as_str().unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD;
        let proof: Vec<merkle::Hash> = v["proof"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().and_then(|h| b64.decode(h).ok()).and_then(|b| b.try_into().ok()))
            .collect();
        match crate::ledger::open_by_any(&signers, from).ok().and_then(|t| Checkpoint::parse(t).ok()) {
            None => c.problems.push("consistency.json: the earlier checkpoint does not verify with the ledger's keys".into()),
            Some(old) if old.size > cp.size => c.problems.push(format!(
                "consistency.json: the earlier package saw {} entries, this one {}: entries were removed",
                old.size, cp.size
            )),
            Some(old) if old.size > 0 && !merkle::verify_consistency(&old.root, old.size, &cp.root, cp.size, &proof) => c.problems.push(
                format!("consistency.json: no valid consistency proof from size {} to {}: the history was rewritten", old.size, cp.size),
            ),
            Some(old) => c.consistent_from = Some(old.size),
        }
    }
    Ok(c)
}
