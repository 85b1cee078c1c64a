//! Writers: each party appends with its own key and may write only its own
//! kinds. The attacks: a CI job's key stating a commit verdict (through the
//! CLI, the library, and by writing the database directly), a key claiming to
//! be another writer, a revoked key, a writer adding writers.

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::support::{pinned_policy, Repo, Sign};
use git_audit::ledger::merkle::{self, MemoryTree};
use git_audit::ledger::note::{Checkpoint, NoteSigner};
use git_audit::ledger::{entry, Ledger, LedgerFiles, NewEntry};

struct Setup {
    repo: Repo,
    db: std::path::PathBuf,
    keys: std::path::PathBuf,
    direct: String,
    policy: std::path::PathBuf,
}

impl Setup {
    fn key(&self, writer: &str) -> String {
        self.keys.join(format!("{writer}.key")).to_string_lossy().into_owned()
    }

    fn as_writer(&self, writer: &str, args: &[&str]) -> Result<(i32, String, String)> {
        self.repo.audit_env(args, &[("GIT_AUDIT_LEDGER_KEY", &self.key(writer))])
    }

    fn unsigned_deployed(&self, extra: &[&str]) -> Result<(i32, bool, String, serde_json::Value)> {
        let mut args = vec!["report", "compliance", "--since", "2000-01-01", "--format", "json"];
        args.extend(extra);
        let (code, out, err) = self.repo.audit(&args)?;
        let v: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("{out}{err}"))?;
        let found = v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["rule"] == "commits.unsigned-deployed" && f["subject"].as_str().is_some_and(|s| self.direct.starts_with(s)));
        Ok((code, found, err, v))
    }
}

/// A ledger with three writers (hooks, sync, ci), an unsigned commit the
/// hooks' writer verified and the CI's writer recorded as deployed.
fn setup() -> Result<Setup> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    let keys = repo.tmp.path().join("keys");
    std::fs::create_dir_all(&keys)?;
    for (name, role) in [("hooks", "hooks"), ("sync", "sync"), ("ci", "ci")] {
        let out = keys.join(format!("{name}.key"));
        let (code, msg, err) =
            repo.audit(&["ledger", "writers", "add", name, "--role", role, "--key-out", out.to_str().context("path")?])?;
        assert_eq!(code, 0, "{err}");
        assert!(msg.contains(&format!("added writer {name} ({role})")), "{msg}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out)?.permissions().mode() & 0o777, 0o600);
    }
    let direct = repo.commit("fix: straight to production", Sign::None)?;
    let policy = repo.policy(&pinned_policy(""))?;
    let s = Setup { db: repo.path.join(".git/audit/ledger.db"), repo, keys, direct, policy };
    let (code, out, err) = s.as_writer("hooks", &["--policy", s.policy.to_str().context("path")?, "verify", "--record", &s.direct])?;
    assert_eq!(code, 1, "unsigned: {out}{err}");
    let (code, _, err) = s.as_writer(
        "ci",
        &["record", "deployment", "--sha", &s.direct, "--environment", "production", "--actor", "deployer", "--id", "d1"],
    )?;
    assert_eq!(code, 0, "{err}");
    Ok(s)
}

/// A `commit.verified` entry saying "good, signed by Alice" for `commit`.
fn good_verdict(commit: &str) -> NewEntry {
    NewEntry::new(
        "commit.verified",
        commit,
        "git-audit",
        serde_json::json!({"commit": commit, "subject": "forged", "author": null, "committer": null, "policy_digest": "x",
            "verdict": "pass", "findings": [], "exempt": null,
            "signature": {"status": "good", "format": "openpgp", "signer": "Alice <alice@example.com>", "key": "A", "detail": "forged"}}),
    )
}

/// What an attacker with a writer's key and write access to the database
/// can do without git-audit: append an entry in format 2 as `claimed`,
/// signed with `key_file`, recompute the tree and sign the new head with the
/// same key. Returns the new entry's seq.
fn forge(db: &std::path::Path, key_file: &str, claimed: &str, e: &NewEntry) -> Result<u64> {
    forge_as(db, key_file, Some(claimed), e)
}

/// Like [`forge`], but the entry names no writer (format 1 bytes, no signature).
fn forge_v1(db: &std::path::Path, key_file: &str, e: &NewEntry) -> Result<u64> {
    forge_as(db, key_file, None, e)
}

fn forge_as(db: &std::path::Path, key_file: &str, claimed: Option<&str>, e: &NewEntry) -> Result<u64> {
    let signer = NoteSigner::parse(&std::fs::read_to_string(key_file)?)?;
    let c = Connection::open(db)?;
    let origin: String = c.query_row("SELECT value FROM meta WHERE key = 'origin'", [], |r| r.get(0))?;
    let size: i64 = c.query_row("SELECT size FROM head", [], |r| r.get(0))?;
    let seq = size as u64;
    let time = "2026-12-01T00:00:00.000Z";
    let payload = entry::canonical_json(&e.payload);
    let leaf = merkle::leaf_hash(&entry::canonical_bytes_by(seq, time, &e.kind, &e.subject, &e.actor, &payload, claimed));
    // An append of its own, signed as git-audit signs appends (format 2 only).
    let sig = claimed.map(|w| format!("{seq}:{}", signer.sign_bytes(&entry::append_bytes(seq, seq, w, &[leaf]))));
    c.execute(
        "INSERT INTO entries (seq, time, kind, subject, actor, payload, leaf, writer, sig) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        rusqlite::params![size, time, e.kind, e.subject, e.actor, payload, leaf.to_vec(), claimed, sig],
    )?;
    let mut tree = MemoryTree::new();
    let leaves: Vec<Vec<u8>> =
        c.prepare("SELECT leaf FROM entries ORDER BY seq")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for l in leaves {
        tree.push(l.try_into().map_err(|_| anyhow::anyhow!("leaf"))?);
    }
    c.execute("DELETE FROM nodes", [])?;
    for (level, hashes) in tree.levels.iter().enumerate().skip(1) {
        for (i, h) in hashes.iter().enumerate() {
            c.execute("INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)", rusqlite::params![level as i64, i as i64, h.to_vec()])?;
        }
    }
    let root = merkle::root(&mut tree, seq + 1).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let note = signer.sign(&Checkpoint { origin, size: seq + 1, root }.to_text())?;
    c.execute("UPDATE head SET size = ?1, root = ?2, note = ?3", rusqlite::params![size + 1, root.to_vec(), note])?;
    Ok(seq)
}

#[test]
fn a_writer_key_writes_only_its_own_kinds_however_it_tries() -> Result<()> {
    let s = setup()?;
    let (code, found, _, _) = s.unsigned_deployed(&[])?;
    assert!(code == 1 && found, "the honest answer: an unsigned commit was deployed");

    // 1. Through the CLI: git-audit's own kinds are not `ledger append`'s to write.
    let (code, _, err) = s.as_writer("ci", &["ledger", "append", "--kind", "commit.verified", "--subject", &s.direct])?;
    assert_eq!(code, 2);
    assert!(err.contains("`commit.verified` is one of git-audit's own kinds") && err.contains("x.commit-verified"), "{err}");
    // … and a CI writer may not write even the kinds outside it (an operator's).
    let (code, _, err) = s.as_writer("ci", &["ledger", "append", "--kind", "x.note", "--subject", "s"])?;
    assert_eq!(code, 2);
    assert!(err.contains("writer `ci` may not write `x.note` entries") && err.contains("deployment.recorded"), "{err}");

    // 2. Through the library (a patched binary): refused before anything is written.
    let files = LedgerFiles::sqlite(s.db.clone(), s.key("ci").into());
    let mut l = Ledger::open(&files)?;
    let before = l.head()?.size;
    let refused = l.append(&[good_verdict(&s.direct)]).map(|_| ()).map_err(|e| e.to_string());
    assert!(refused.as_ref().is_err_and(|e| e.contains("writer `ci` may not write `commit.verified`")), "{refused:?}");
    assert_eq!(l.head()?.size, before);
    drop(l);

    // 3. Straight into the database, the tree recomputed and the head signed
    //    with the CI key: verify names the entry; reports do not count it.
    let forged = forge(&s.db, &s.key("ci"), "ci", &good_verdict(&s.direct))?;
    let (code, out, _) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("entry seq {forged}: writer `ci` may not write `commit.verified` entries; reports ignore it")), "{out}");
    let (code, found, err, v) = s.unsigned_deployed(&[])?;
    assert!(code == 1 && found, "the forged verdict changed the answer: {v}");
    assert!(err.contains("1 entry ignored (written by a writer not allowed to: seq"), "{err}");
    assert_eq!(v["provenance"]["ground"]["ignored"], serde_json::json!([forged]), "{v}");
    // A rebuild of the projections leaves it out too.
    assert_eq!(s.repo.audit(&["ledger", "rebuild"])?.0, 0);
    let (_, found, _, _) = s.unsigned_deployed(&[])?;
    assert!(found, "rebuild counted the forged verdict");
    let (code, _, err) = s.repo.audit(&["report", "trace", &s.direct, "--format", "json"])?;
    assert_eq!(code, 0, "{err}");

    // 4. Claiming to be the hooks' writer, signed with the CI key.
    let claimed = forge(&s.db, &s.key("ci"), "hooks", &good_verdict(&s.direct))?;
    let (code, out, _) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("entries seq {claimed}..{claimed}: their append signature (`hooks`) does not verify (forged, or edited)")),
        "{out}"
    );

    // 4b. Naming no writer at all (a format 1 entry, after format 2 began).
    let unnamed = forge_v1(&s.db, &s.key("ci"), &good_verdict(&s.direct))?;
    let (code, out, _) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "entry seq {unnamed}: it names no writer, though every entry since format 2 must (inserted); reports ignore it"
        )),
        "{out}"
    );
    let (_, found, _, v) = s.unsigned_deployed(&[])?;
    assert!(found, "{v}");
    assert!(v["provenance"]["ground"]["ignored"].as_array().is_some_and(|a| a.iter().any(|x| x == unnamed)), "{v}");

    // 5. And the projection edited to match: the default answer is misled
    //    (only a full replay sees a projection row with no entry behind it),
    //    so --strict verifies first and fails; verify names the row.
    Connection::open(&s.db)?
        .execute("UPDATE commits SET signature_status = 'good', verdict = 'pass' WHERE id = ?1", rusqlite::params![s.direct])?;
    let (code, _, err, _) = s.unsigned_deployed(&["--strict"])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--strict: the ledger failed verification"), "{err}");
    let (_, out, _) = s.repo.audit(&["ledger", "verify"])?;
    assert!(out.contains("projection commits row") && out.contains("(edited)"), "{out}");
    Ok(())
}

#[test]
fn only_the_owner_changes_writers() -> Result<()> {
    let s = setup()?;
    // A writer cannot make writers (nor give itself more kinds).
    let out = s.keys.join("evil.key");
    let (code, _, err) =
        s.as_writer("ci", &["ledger", "writers", "add", "evil", "--role", "hooks", "--key-out", out.to_str().context("path")?])?;
    assert_eq!(code, 2);
    assert!(err.contains("only the ledger's owner key changes its writers"), "{err}");
    assert!(!out.exists());
    // A ledger.writer entry forged with a writer's key changes nothing and is named.
    let evil = NoteSigner::generate("x")?.verifier();
    let change = serde_json::json!({"action": "add", "name": "evil", "role": "hooks", "key": evil.to_string(),
        "kinds": ["commit.verified"]});
    let seq = forge(&s.db, &s.key("ci"), "owner", &NewEntry::new("ledger.writer", "ledger/writers", "owner", change))?;
    let (code, out, _) = s.repo.audit(&["ledger", "writers", "list", "--format", "json"])?;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let names: Vec<&str> = v["writers"].as_array().into_iter().flatten().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, vec!["owner", "hooks", "sync", "ci"]);
    assert_eq!(v["problems"][0]["seq"], seq, "{v}");
    let (code, out, _) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 1);
    assert!(out.contains(&format!("entry seq {seq}: a writer change not signed by the ledger's owner key; ignored")), "{out}");
    assert!(out.contains(&format!("entries seq {seq}..{seq}: their append signature (`owner`) does not verify")), "{out}");
    Ok(())
}

#[test]
fn revoked_writers_append_nothing_and_their_entries_still_verify() -> Result<()> {
    let s = setup()?;
    let (code, msg, err) = s.repo.audit(&["ledger", "writers", "revoke", "ci", "--reason", "runner compromised"])?;
    assert_eq!(code, 0, "{err}");
    assert!(msg.contains("revoked writer ci"), "{msg}");
    let (code, _, err) = s.as_writer("ci", &["record", "deployment", "--sha", &s.direct, "--environment", "production", "--id", "d2"])?;
    assert_eq!(code, 2);
    assert!(err.contains("is neither the ledger's owner key nor a writer's") && err.contains("ledger writers add"), "{err}");
    // What it wrote while it was a writer stands.
    let (code, out, _) = s.repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 0, "{out}");
    let (_, found, _, v) = s.unsigned_deployed(&[])?;
    assert!(found, "{v}");
    let (_, list, _) = s.repo.audit(&["ledger", "writers", "list"])?;
    assert!(list.contains("ci  ci  seq") && list.contains("until revoked at seq"), "{list}");
    // A proof of an entry under a checkpoint a writer signed checks with the owner's key alone.
    let proof = s.repo.tmp.path().join("proof.json");
    let (code, _, err) = s.as_writer("hooks", &["--policy", s.policy.to_str().context("path")?, "verify", "--record", &s.direct])?;
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = s.repo.audit(&["ledger", "prove", "1", "--output", proof.to_str().context("path")?])?;
    assert_eq!(code, 0, "{err}");
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&proof)?)?;
    assert_eq!(p["checkpoint_writer"]["payload"]["name"], "hooks", "{p}");
    let (_, status, _) = s.repo.audit(&["ledger", "status", "--format", "json"])?;
    let owner = serde_json::from_str::<serde_json::Value>(&status)?["public_key"].as_str().unwrap_or_default().to_string();
    let (code, out, err) = s.repo.audit(&["ledger", "check-proof", proof.to_str().context("path")?, "--key", &owner])?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}
