//! The ledger as a user meets it, and as an attacker with write access to the
//! SQLite file meets it: every kind of tampering is caught and named.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use base64::Engine;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::support::{pinned_policy, Repo, Sign, BIN};

/// A repository with a ledger at <git-dir>/audit/ledger.db holding `n` test entries.
fn ledger_repo(n: usize) -> Result<(Repo, PathBuf)> {
    let repo = Repo::new()?;
    let (code, out, err) = repo.audit(&["ledger", "init", "--origin", "example.com/test-ledger"])?;
    assert_eq!(code, 0, "{out}{err}");
    for i in 0..n {
        let (code, _, err) = repo.audit(&[
            "ledger",
            "append",
            "--kind",
            "test.event",
            "--subject",
            &format!("s{i}"),
            "--actor",
            "tester",
            "--payload",
            &format!("{{\"i\":{i},\"note\":\"entry {i}\"}}"),
        ])?;
        assert_eq!(code, 0, "{err}");
    }
    let db = repo.path.join(".git/audit/ledger.db");
    Ok((repo, db))
}

fn verify(repo: &Repo, extra: &[&str]) -> Result<(i32, String)> {
    let mut args = vec!["ledger", "verify"];
    args.extend_from_slice(extra);
    let (code, out, err) = repo.audit(&args)?;
    Ok((code, out + &err))
}

fn sql(db: &Path, stmt: &str) -> Result<()> {
    let c = Connection::open(db)?;
    c.execute_batch(stmt)?;
    Ok(())
}

/// RFC 9162 MTH written from the RFC's definition, independent of the code under test.
fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => Sha256::digest([&[0u8][..], &leaves[0]].concat()).into(),
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (l, r) = (mth(&leaves[..k]), mth(&leaves[k..]));
            Sha256::digest([&[1u8][..], &l, &r].concat()).into()
        }
    }
}

fn public_key(repo: &Repo) -> Result<String> {
    let (_, out, _) = repo.audit(&["ledger", "status", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v["public_key"].as_str().context("public_key")?.to_string())
}

#[test]
fn init_record_status_prove_export_anchor() -> Result<()> {
    let k = crate::support::keys();
    let repo = Repo::new()?;
    let (code, out, _) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0);
    assert!(out.contains("public key git-audit.local/ledger/"), "{out}");
    let key = repo.path.join(".git/audit/ledger.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key)?.permissions().mode() & 0o777, 0o600);
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");

    // verify --record: policy.loaded + one commit.verified per commit, projected into `commits`.
    let signed = repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    let unsigned = repo.commit("feat: unsigned", Sign::None)?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, _, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--record", "HEAD"])?;
    assert_eq!(code, 1);
    assert!(err.contains("recorded 3 entries") && err.contains("signed checkpoint of size 3"), "{err}");
    let db = repo.path.join(".git/audit/ledger.db");
    let c = Connection::open(&db)?;
    let status: String = c.query_row("SELECT signature_status FROM commits WHERE id = ?1", [&signed], |r| r.get(0))?;
    assert_eq!(status, "good");
    let status: String = c.query_row("SELECT signature_status FROM commits WHERE id = ?1", [&unsigned], |r| r.get(0))?;
    assert_eq!(status, "missing");
    let kinds: Vec<String> = c.prepare("SELECT kind FROM entries ORDER BY seq")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    assert_eq!(kinds, vec!["policy.loaded", "commit.verified", "commit.verified"]);

    // Status (JSON) and the exported log: the root recomputed independently matches the checkpoint.
    let (_, out, _) = repo.audit(&["ledger", "status", "--format", "json"])?;
    let st: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(st["size"], 3);
    let (code, out, _) = repo.audit(&["ledger", "export", "--format", "jsonl"])?;
    assert_eq!(code, 0);
    let mut leaves = Vec::new();
    let mut hashes: Vec<[u8; 32]> = Vec::new();
    let owner = git_audit::ledger::note::NoteVerifier::parse(&public_key(&repo)?)?;
    let mut signed = 0;
    for line in out.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line)?;
        let obj = v.as_object_mut().context("object")?;
        let leaf_hash = obj.remove("leaf_hash").context("leaf_hash")?;
        // Format 2: written by a writer (here the owner).
        assert_eq!(obj.get("writer").and_then(|w| w.as_str()), Some("owner"), "{line}");
        let sig = obj.remove("sig");
        let seq = obj.get("seq").and_then(|s| s.as_u64()).context("seq")?;
        obj.insert("v".into(), serde_json::json!(2));
        // The documented canonical bytes: the entry (without its signature,
        // with `"v":2`) with sorted keys, compact.
        let bytes = v.to_string().into_bytes();
        let h: [u8; 32] = Sha256::digest([&[0u8][..], &bytes].concat()).into();
        assert_eq!(leaf_hash, hex::encode(h));
        hashes.push(h);
        // The last entry of each append carries the writer's signature over the append.
        if let Some(sig) = sig {
            let (first, b64) = git_audit::ledger::entry::parse_append_sig(sig.as_str().unwrap_or_default()).context("FIRST:SIG")?;
            let range = &hashes[first as usize..=seq as usize];
            assert!(owner.verify_bytes(&git_audit::ledger::entry::append_bytes(first, seq, "owner", range), b64), "{line}");
            signed += 1;
        }
        leaves.push(bytes);
    }
    assert_eq!(signed, 1, "verify --record is one append: one signature");
    assert_eq!(leaves.len(), 3);
    let root = base64::engine::general_purpose::STANDARD.encode(mth(&leaves));
    assert_eq!(st["root"], root.as_str());
    assert!(st["checkpoint"].as_str().unwrap_or("").contains(&format!("\n3\n{root}\n\n— ")));

    // prove + check-proof offline; a tampered proof or a wrong key fails.
    let proof = repo.tmp.path().join("proof.json");
    let (code, _, err) = repo.audit(&["ledger", "prove", "1", "--output", proof.to_str().unwrap_or_default()])?;
    assert_eq!(code, 0, "{err}");
    let pubkey = public_key(&repo)?;
    let (code, out, _) = repo.audit(&["ledger", "check-proof", proof.to_str().unwrap_or_default(), "--key", &pubkey])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("proof OK: entry seq 1"), "{out}");
    let original = std::fs::read_to_string(&proof)?;
    let forged = original.replace("feat: unsigned", "feat: forged");
    assert_ne!(forged, original);
    let forged_path = repo.tmp.path().join("forged.json");
    std::fs::write(&forged_path, forged)?;
    let (code, out, _) = repo.audit(&["ledger", "check-proof", forged_path.to_str().unwrap_or_default(), "--key", &pubkey])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INVALID") && out.contains("not included"), "{out}");
    let other = Repo::new()?;
    other.audit(&["ledger", "init"])?;
    let (code, out, _) = repo.audit(&["ledger", "check-proof", proof.to_str().unwrap_or_default(), "--key", &public_key(&other)?])?;
    assert_eq!(code, 1, "{out}");
    let (code, _, err) = repo.audit(&["ledger", "prove", "99"])?;
    assert_eq!(code, 2);
    assert!(err.contains("no entry with seq 99"), "{err}");

    // Anchor twice: a chain of commits, the second with a consistency proof.
    let (code, out, _) = repo.audit(&["ledger", "anchor"])?;
    assert_eq!(code, 0, "{out}");
    repo.audit(&["ledger", "append", "--kind", "test.event", "--subject", "later"])?;
    let (code, out, _) = repo.audit(&["ledger", "anchor"])?;
    assert_eq!(code, 0);
    assert!(out.contains("consistency proof from size 3"), "{out}");
    // Each anchor is also recorded in the log itself (`ledger.anchored`, seq 3 here),
    // so a deleted or rewound ref is noticed: size 3, + that record, + "later" = 5.
    let proof_text = repo.git(&["cat-file", "blob", "refs/audit/checkpoints:consistency-proof"])?;
    assert!(proof_text.starts_with("from 3\nto 5\n"), "{proof_text}");
    let (_, out, _) = repo.audit(&["ledger", "export"])?;
    let anchored: Vec<&str> = out.lines().filter(|l| l.contains("\"kind\":\"ledger.anchored\"")).collect();
    assert_eq!(anchored.len(), 2, "{out}");
    assert!(anchored[0].contains("\"size\":3") && anchored[0].contains("\"seq\":3"), "{out}");
    assert_eq!(repo.git(&["rev-list", "--count", "refs/audit/checkpoints"])?, "2");
    let (code, out, _) = repo.audit(&["ledger", "anchor"])?;
    assert_eq!(code, 0);
    assert!(out.contains("already anchored"), "{out}");
    // verify also checks the anchored checkpoint, and --all ignores refs/audit.
    let (code, out) = verify(&repo, &["--key", &pubkey])?;
    assert_eq!(code, 0, "{out}");
    let (_, v) = repo.verify_json(&policy, &["--all"])?;
    assert_eq!(v["summary"]["checked"], 2);
    Ok(())
}

#[test]
fn tampering_is_detected_and_named() -> Result<()> {
    type Tamper = (&'static str, &'static str, &'static [&'static str]);
    let cases: &[Tamper] = &[
        ("edited payload", "UPDATE entries SET payload = replace(payload, 'entry 3', 'entry 9') WHERE seq = 3", &["seq 3", "edited"]),
        ("deleted entry", "DELETE FROM entries WHERE seq = 2", &["entry seq 2 is missing"]),
        (
            "reordered entries",
            "UPDATE entries SET seq = -1 WHERE seq = 1; UPDATE entries SET seq = 1 WHERE seq = 2; UPDATE entries SET seq = 2 WHERE seq = -1",
            &["entry seq 1:", "entry seq 2:"],
        ),
        (
            "inserted entry",
            "INSERT INTO entries (seq, time, kind, subject, actor, payload, leaf) SELECT 6, time, kind, 'forged', actor, payload, leaf FROM entries WHERE seq = 5",
            &["seq 6", "not covered"],
        ),
        ("edited actor", "UPDATE entries SET actor = 'mallory' WHERE seq = 0", &["entry seq 0:"]),
        ("edited leaf hash", "UPDATE entries SET leaf = zeroblob(32) WHERE seq = 4", &["seq 4"]),
        ("edited tree node", "UPDATE nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 0", &["tree node (level 1, index 0)"]),
        ("checkpoint signature", "UPDATE head SET note = replace(note, '— example.com/test-ledger ', '— example.com/test-ledger AAAA')", &["latest checkpoint"]),
        ("rewritten head", "UPDATE head SET size = 3", &["seq 3..5 are not covered"]),
    ];
    for (what, stmt, needles) in cases {
        let (repo, db) = ledger_repo(6)?;
        let (code, out) = verify(&repo, &[])?;
        assert_eq!(code, 0, "{what}: clean ledger must verify: {out}");
        sql(&db, stmt)?;
        let (code, out) = verify(&repo, &[])?;
        assert_eq!(code, 1, "{what}: expected exit 1:\n{out}");
        assert!(out.contains("TAMPERED"), "{what}: {out}");
        for n in *needles {
            assert!(out.contains(n), "{what}: expected `{n}` in:\n{out}");
        }
    }
    Ok(())
}

#[test]
fn edited_projection_is_caught_and_rebuild_restores_it() -> Result<()> {
    let k = crate::support::keys();
    let (repo, db) = ledger_repo(1)?;
    let id = repo.commit("feat: x", Sign::None)?;
    let _ = k;
    let policy = repo.policy(&pinned_policy(""))?;
    repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--record", "HEAD"])?;
    sql(&db, &format!("UPDATE commits SET signature_status = 'good' WHERE id = '{id}'"))?;
    let (code, out) = verify(&repo, &[])?;
    assert_eq!(code, 1);
    assert!(out.contains(&format!("projection commits row {id} differs from a rebuild in signature_status")), "{out}");
    sql(&db, "INSERT INTO commits (id, signature_status) VALUES ('feedface', 'good')")?;
    let (_, out) = verify(&repo, &[])?;
    assert!(out.contains("row feedface is not derived from the log"), "{out}");
    let (code, out, _) = repo.audit(&["ledger", "rebuild"])?;
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(&repo, &[])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn truncation_is_caught_against_an_older_checkpoint() -> Result<()> {
    let (repo, db) = ledger_repo(4)?;
    let (_, four, _) = repo.audit(&["ledger", "checkpoint"])?;
    for i in 4..6 {
        repo.audit(&["ledger", "append", "--kind", "test.event", "--subject", &format!("s{i}")])?;
    }
    let six = repo.tmp.path().join("six.txt");
    repo.audit(&["ledger", "checkpoint", "--output", six.to_str().unwrap_or_default()])?;
    let (code, out) = verify(&repo, &["--checkpoint", six.to_str().unwrap_or_default()])?;
    assert_eq!(code, 0, "{out}");
    // An attacker without the key rolls the log back to the (genuinely signed) size-4 head.
    let c = Connection::open(&db)?;
    c.execute("DELETE FROM entries WHERE seq >= 4", [])?;
    c.execute("DELETE FROM nodes WHERE (idx + 1) << level > 4", [])?;
    c.execute("DELETE FROM checkpoints WHERE size > 4", [])?;
    c.execute("UPDATE head SET size = 4, note = ?1, root = (SELECT root FROM checkpoints WHERE size = 4)", [&four])?;
    drop(c);
    let (code, out) = verify(&repo, &[])?;
    assert_eq!(code, 0, "internally consistent after a clean rollback: {out}");
    let (code, out) = verify(&repo, &["--checkpoint", six.to_str().unwrap_or_default()])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated") && out.contains("covers 6 entries but only 4"), "{out}");
    Ok(())
}

#[test]
fn every_flipped_byte_of_an_entry_row_is_caught() -> Result<()> {
    let (repo, db) = ledger_repo(5)?;
    let loc = git_audit::ledger::LedgerFiles::sqlite(db.clone(), repo.path.join(".git/audit/ledger.key"));
    let columns = ["time", "kind", "subject", "actor", "payload", "leaf"];
    let c = Connection::open(&db)?;
    let mut flips = 0;
    for col in columns {
        let original: Vec<u8> = c.query_row(&format!("SELECT CAST({col} AS BLOB) FROM entries WHERE seq = 2"), [], |r| r.get(0))?;
        let is_text = col != "leaf";
        for i in 0..original.len() {
            let mut changed = original.clone();
            changed[i] ^= 0x01;
            let stmt = if is_text {
                format!("UPDATE entries SET {col} = CAST(?1 AS TEXT) WHERE seq = 2")
            } else {
                format!("UPDATE entries SET {col} = ?1 WHERE seq = 2")
            };
            c.execute(&stmt, [&changed])?;
            let ledger = git_audit::ledger::Ledger::open(&loc)?;
            let report = git_audit::ledger::verify::verify(&ledger, None, &[])?;
            assert!(!report.ok(), "flipping byte {i} of {col} went unnoticed");
            assert!(report.problems.iter().any(|p| p.seq == Some(2)), "{col}[{i}]: {:?}", report.problems);
            flips += 1;
        }
        let restore = if is_text {
            format!("UPDATE entries SET {col} = CAST(?1 AS TEXT) WHERE seq = 2")
        } else {
            format!("UPDATE entries SET {col} = ?1 WHERE seq = 2")
        };
        c.execute(&restore, [&original])?;
    }
    // The seq column too.
    c.execute("UPDATE entries SET seq = 3 WHERE seq = 2 AND NOT EXISTS (SELECT 1 FROM entries WHERE seq = 3)", [])?;
    c.execute("UPDATE entries SET seq = 7 WHERE seq = 2", [])?;
    let ledger = git_audit::ledger::Ledger::open(&loc)?;
    assert!(!git_audit::ledger::verify::verify(&ledger, None, &[])?.ok());
    assert!(flips > 80, "only {flips} bytes flipped");
    Ok(())
}

#[test]
fn foreign_and_newer_files_are_refused_untouched() -> Result<()> {
    let repo = Repo::new()?;
    let junk = repo.tmp.path().join("junk.db");
    std::fs::write(&junk, b"this is not sqlite at all, just text\n")?;
    let other = repo.tmp.path().join("other.db");
    Connection::open(&other)?.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?;
    for f in [&junk, &other] {
        let before = std::fs::read(f)?;
        let (code, _, err) = repo.audit(&["--ledger", f.to_str().unwrap_or_default(), "ledger", "status"])?;
        assert_eq!(code, 2);
        assert!(err.contains("is not a git-audit ledger") && err.contains("nothing was changed"), "{err}");
        assert_eq!(std::fs::read(f)?, before, "{} was modified", f.display());
    }
    let (repo, db) = ledger_repo(1)?;
    sql(&db, "PRAGMA user_version = 99")?;
    let (code, _, err) = repo.audit(&["ledger", "append", "--kind", "x.y", "--subject", "s"])?;
    assert_eq!(code, 2);
    assert!(err.contains("format version 99"), "{err}");
    // --ledger works after the subcommand too.
    let (code, _, err) = repo.audit(&["ledger", "status", "--ledger", junk.to_str().unwrap_or_default()])?;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = repo.audit(&["--ledger", "/nonexistent/x.db", "ledger", "status"])?;
    assert_eq!(code, 2);
    assert!(err.contains("no ledger at /nonexistent/x.db") && err.contains("ledger init"), "{err}");
    Ok(())
}

#[test]
fn sixteen_concurrent_writers_lose_nothing() -> Result<()> {
    let (repo, db) = ledger_repo(0)?;
    let children: Vec<_> = (0..16)
        .map(|w| {
            repo.cmd(BIN)
                .args(["ledger", "append", "--kind", "test.concurrent", "--subject", &format!("writer-{w}"), "--repeat", "10"])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        assert!(c.wait()?.success());
    }
    let c = Connection::open(&db)?;
    let (n, min, max, distinct): (i64, i64, i64, i64) =
        c.query_row("SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM entries", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    assert_eq!((n, min, max, distinct), (160, 0, 159, 160));
    for w in 0..16 {
        let k: i64 = c.query_row("SELECT count(*) FROM entries WHERE subject = ?1", [format!("writer-{w}")], |r| r.get(0))?;
        assert_eq!(k, 10, "writer {w}");
    }
    let (code, out) = verify(&repo, &[])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn kill_dash_nine_mid_append_leaves_a_valid_ledger() -> Result<()> {
    let (repo, db) = ledger_repo(0)?;
    let mut last = 0i64;
    for round in 0..8u64 {
        let mut child = repo
            .cmd(BIN)
            .args(["ledger", "append", "--kind", "test.crash", "--subject", &format!("round-{round}"), "--repeat", "1000000"])
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(40 + round * 23));
        Command::new("kill").args(["-9", &child.id().to_string()]).status()?;
        child.wait()?;
        let (code, out) = verify(&repo, &[])?;
        assert_eq!(code, 0, "round {round}: {out}");
        let n: i64 = Connection::open(&db)?.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))?;
        assert!(n >= last, "entries went from {last} to {n}");
        last = n;
    }
    assert!(last > 0, "no append ever landed before the kill");
    Ok(())
}

#[test]
fn the_ledger_and_its_key_can_live_apart_named_by_flags_or_environment() -> Result<()> {
    let repo = crate::support::Repo::new()?;
    let db = repo.tmp.path().join("org/ledger.db");
    let key = repo.tmp.path().join("keys/ledger.key");
    std::fs::create_dir_all(key.parent().unwrap_or(repo.tmp.path()))?;
    let db_s = db.to_str().unwrap_or_default();
    let key_s = key.to_str().unwrap_or_default();
    // GIT_AUDIT_LEDGER names the ledger; `init --key-file` puts the key elsewhere.
    let (code, out, err) = repo.audit_env(&["ledger", "init", "--key-file", key_s], &[("GIT_AUDIT_LEDGER", db_s)])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(db.exists() && key.exists(), "{out}");
    assert!(!db.with_extension("key").exists(), "no key beside the ledger");
    assert!(out.contains(&format!("signing key {key_s}")), "{out}");
    let append = ["ledger", "append", "--kind", "test.event", "--subject", "s"];
    // Writers without the key are told where it was looked for …
    let (code, _, err) = repo.audit_env(&append, &[("GIT_AUDIT_LEDGER", db_s)])?;
    assert_ne!(code, 0);
    assert!(err.contains("signing key") && err.contains("ledger.key") && err.contains("is missing"), "{err}");
    // … and find it through --ledger-key or GIT_AUDIT_LEDGER_KEY.
    let mut with_flag = vec!["--ledger-key", key_s];
    with_flag.extend_from_slice(&append);
    let (code, out, err) = repo.audit_env(&with_flag, &[("GIT_AUDIT_LEDGER", db_s)])?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = repo.audit_env(&append, &[("GIT_AUDIT_LEDGER", db_s), ("GIT_AUDIT_LEDGER_KEY", key_s)])?;
    assert_eq!(code, 0, "{out}{err}");
    // Reading and verifying need no private key.
    let (code, out, err) = repo.audit_env(&["ledger", "verify"], &[("GIT_AUDIT_LEDGER", db_s)])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 entries"), "{out}");
    // --ledger still wins over the environment.
    let other = repo.tmp.path().join("other.db");
    let (code, _, _) =
        repo.audit_env(&["--ledger", other.to_str().unwrap_or_default(), "ledger", "status"], &[("GIT_AUDIT_LEDGER", db_s)])?;
    assert_ne!(code, 0, "--ledger named a ledger that does not exist");
    Ok(())
}
