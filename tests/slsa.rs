//! SLSA source attestations from real pushes into a bare repository with the
//! hooks installed: the level and each control's "since" through a normal
//! push, a refused force push, break glass, a policy that drops signed
//! commits, and a synced two-party review; `attest verify` as a pipeline
//! runs it; and the envelopes checked by an independent implementation
//! (securesystemslib and the in-toto attestation bindings, from PyPI).

use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::hooks::{push, Server};
use crate::support::{keys, pinned_policy, Repo, Sign, BIN};

const PROTECTED: &str = "[[branches]]\npattern = \"refs/heads/main\"\nforbid_force_push = true\nforbid_deletion = true\n[[branches]]\npattern = \"refs/tags/*\"\nforbid_force_push = true\nforbid_deletion = true\n[roles]\npolicy-admin = [\"alice@example.com\"]\nbreakglass = [\"oncall@example.com\"]\n[attestations]\nenabled = true\nrepository = \"https://git.example.com/acme/api\"\n[attestations.properties]\nORG_SOURCE_SIGNED_BY_PINNED_KEYS = [\"signing.required\", \"signing.identity\"]\nORG_SOURCE_LINEAR = [\"branches.linear-history\"]\n";

fn attest(repo: &Repo, server: &Server, args: &[&str]) -> Result<(i32, String, String)> {
    let out = repo.cmd(BIN).env("GIT_DIR", &server.path).args(args).output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

/// The assessment (`attest COMMIT --json`) of `commit` on main, issued again.
fn assess(repo: &Repo, server: &Server, commit: &str) -> Result<serde_json::Value> {
    let (code, out, err) = attest(repo, server, &["attest", commit, "--ref", "refs/heads/main", "--json"])?;
    assert_eq!(code, 0, "{err}");
    Ok(serde_json::from_str(&out)?)
}

fn since(a: &serde_json::Value, control: &str) -> Option<String> {
    a["controls"].as_array()?.iter().find(|c| c["name"] == control).and_then(|c| c["since"].as_str().map(str::to_string))
}

fn note(repo: &Repo, server: &Server, commit: &str) -> Result<Vec<String>> {
    let out = repo.cmd("git").env("GIT_DIR", &server.path).args(["notes", "show", commit]).output()?;
    anyhow::ensure!(out.status.success(), "no note on {commit}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}

fn as_alice() -> [(&'static str, &'static str); 1] {
    [("GIT_AUDIT_USER", "alice@example.com")]
}

#[test]
fn levels_and_their_since_follow_what_the_ledger_recorded() -> Result<()> {
    let k = keys();
    let (repo, server, c1, err) = landed_on_main("feat: one")?;
    // Issued by post-receive, said to the pusher, in the note and the ledger.
    assert!(err.contains("SLSA_SOURCE_LEVEL_3") && err.contains("refs/notes/commits"), "{err}");
    assert_eq!(note(&repo, &server, &c1)?.len(), 2, "source provenance and VSA");
    let issued = server.kinds()?.iter().filter(|(k, _)| k == "attestation.issued").count();
    assert_eq!(issued, 1);
    let a1 = assess(&repo, &server, &c1)?;
    assert_eq!(a1["level"], 3, "{a1}");
    let first = since(&a1, "CONTINUITY_ENFORCED").context("continuity")?;
    for c in ["TAG_HYGIENE", "SIGNED_COMMITS", "POLICY_GOVERNED"] {
        assert_eq!(since(&a1, c).as_deref(), Some(first.as_str()), "{c}: {a1}");
    }

    // A pipeline: at least level 3 passes, level 4 does not (no review).
    let (code, out, err) = attest(&repo, &server, &["attest", "verify", &c1, "--ref", "refs/heads/main", "--min-level", "3"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SLSA_SOURCE_LEVEL_3") && out.contains("refs/heads/main"), "{out}");
    // The organisation's properties: one whose rules were enforced, not one the policy never set up.
    assert!(out.contains("ORG_SOURCE_SIGNED_BY_PINNED_KEYS") && !out.contains("ORG_SOURCE_LINEAR"), "{out}");
    let (code, _, err) = attest(&repo, &server, &["attest", "verify", &c1, "--min-level", "4"])?;
    assert_eq!(code, 1, "{err}");
    // A branch's short name is that branch.
    let (code, out, err) = attest(&repo, &server, &["attest", "verify", &c1, "--ref", "main", "--min-level", "3"])?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = attest(&repo, &server, &["attest", &c1, "--ref", "main"])?;
    assert!(code == 0 && out.contains("on refs/heads/main: SLSA_SOURCE_LEVEL_3"), "{out}{err}");
    // Another ref, or another key, is not this attestation.
    let (code, _, _) = attest(&repo, &server, &["attest", "verify", &c1, "--ref", "refs/heads/other"])?;
    assert_eq!(code, 1);
    // A key that signed nothing here (another ledger's owner) trusts none of them.
    let (code, out, err) = repo.audit(&["ledger", "init", "--ledger", repo.tmp.path().join("other.db").to_str().context("path")?])?;
    assert_eq!(code, 0, "{out}{err}");
    let stranger = format!("{out}{err}")
        .lines()
        .find_map(|l| l.strip_prefix("public key ").map(str::to_string))
        .context("the new ledger's public key")?;
    let (code, _, err) = attest(&repo, &server, &["attest", "verify", &c1, "--key", &stranger])?;
    assert_eq!(code, 1, "a key that signed nothing here: {err}");
    assert!(err.contains("no VSA signed by a trusted key") && err.contains("a VSA no trusted key signed"), "{err}");

    // A refused force push changes nothing: the next revision keeps the since.
    repo.git(&["commit", "-q", "--amend", "-m", "feat: one, rewritten", "--allow-empty"])?;
    let (code, _) = push(&repo, &["-f", "origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_ne!(code, 0, "force push refused");
    repo.git(&["reset", "-q", "--hard", &c1])?;
    let c2 = repo.commit("feat: two", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_eq!(code, 0, "{err}");
    let a2 = assess(&repo, &server, &c2)?;
    assert_eq!((a2["level"].as_u64(), since(&a2, "CONTINUITY_ENFORCED")), (Some(3), Some(first.clone())), "{a2}");

    // Break glass: the revision it landed gets level 1; the controls restart after it.
    let c3 = repo.commit("fix: unsigned, in a hurry", Sign::None)?;
    let (code, err) = push(
        &repo,
        &["-o", "audit.bypass=prod down, INC-7", "origin", "HEAD:refs/heads/main"],
        &[("GIT_AUDIT_USER", "oncall@example.com")],
    )?;
    assert_eq!(code, 0, "{err}");
    let a3 = assess(&repo, &server, &c3)?;
    assert_eq!(a3["level"], 1, "{a3}");
    assert!(a3["limits"].to_string().contains("break glass"), "{a3}");
    let c4 = repo.commit("feat: four", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_eq!(code, 0, "{err}");
    let a4 = assess(&repo, &server, &c4)?;
    assert_eq!(a4["level"], 3, "{a4}");
    let after = since(&a4, "CONTINUITY_ENFORCED").context("continuity")?;
    assert!(after > first, "break glass restarts continuity: {after} after {first}");
    assert_eq!(Some(after.clone()), a4["landed"]["time"].as_str().map(str::to_string), "since the first push after it");

    // The policy drops signed commits: level 2, and SIGNED_COMMITS is gone.
    std::fs::write(&server.policy, pinned_policy(PROTECTED).replace("required = true", "required = false"))?;
    let c5 = repo.commit("feat: five", Sign::None)?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_eq!(code, 0, "{err}");
    let a5 = assess(&repo, &server, &c5)?;
    assert_eq!(a5["level"], 2, "{a5}");
    assert_eq!(since(&a5, "SIGNED_COMMITS"), None);
    assert_eq!(since(&a5, "CONTINUITY_ENFORCED"), Some(after.clone()), "continuity itself held");
    let (_, out, _) = attest(&repo, &server, &["attest", "verify", &c5])?;
    assert!(out.contains("SLSA_SOURCE_LEVEL_2") && !out.contains("ORG_SOURCE_SIGNED_BY_PINNED_KEYS"), "{out}");
    // Signed commits back: their since starts again at that push.
    std::fs::write(&server.policy, pinned_policy(PROTECTED))?;
    let c6 = repo.commit("feat: six", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_eq!(code, 0, "{err}");
    let a6 = assess(&repo, &server, &c6)?;
    assert_eq!(a6["level"], 3, "{a6}");
    assert_eq!(since(&a6, "SIGNED_COMMITS").as_deref(), a6["landed"]["time"].as_str());
    assert_eq!(since(&a6, "CONTINUITY_ENFORCED"), Some(after), "{a6}");
    Ok(())
}

#[test]
fn a_two_party_review_synced_later_lifts_the_revision_to_level_4_with_a_new_attestation() -> Result<()> {
    use crate::fake_github::{Fake, World};
    let k = keys();
    let (repo, server, c1, _) = landed_on_main("feat: reviewed")?;
    assert_eq!(assess(&repo, &server, &c1)?["level"], 3, "no review recorded yet: the level the facts support");
    // The pull request: alice's, approved by bob on its final revision, fast-forwarded.
    let mut w = World::new("acme/api");
    w.pull(7, "alice", "2026-07-01T00:00:00Z", std::slice::from_ref(&c1));
    w.review(7, "bob", "APPROVED", &c1, "2026-07-01T01:00:00Z");
    w.merge(7, "alice", "2026-07-01T02:00:00Z", &c1);
    let fake = Fake::start(w);
    let ledger = server.ledger();
    sync(&repo, &ledger, &fake.url)?;
    // `attest --pending` (after each sync) re-attests what the new facts lift.
    let (code, out, err) = attest(&repo, &server, &["attest", "--pending"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{} on refs/heads/main: SLSA_SOURCE_LEVEL_4 (was SLSA_SOURCE_LEVEL_3)", &c1[..10])), "{out}");
    let (_, again, _) = attest(&repo, &server, &["attest", "--pending"])?;
    assert!(again.contains("nothing to attest again"), "{again}");
    // Re-attested: a new VSA beside the old ones, all kept.
    let lines = note(&repo, &server, &c1)?;
    assert_eq!(lines.len(), 6, "post-receive's two, the first assessment's two, --pending's two");
    let (code, out, err) = attest(&repo, &server, &["attest", "verify", &c1, "--min-level", "4"])?;
    assert_eq!(code, 0, "{out}{err}");
    let issued = server.kinds()?.iter().filter(|(k, _)| k == "attestation.issued").count();
    assert_eq!(issued, 3);
    let a = assess(&repo, &server, &c1)?;
    assert_eq!(a["level"], 4, "{a}");
    assert_eq!(a["review"]["approvers"], serde_json::json!(["bob"]), "{a}");
    // The report and the served pages show the branch's level and since when.
    let (code, out, err) = attest(&repo, &server, &["report", "sources", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["refs"][0]["ref"], "refs/heads/main", "{v}");
    assert_eq!(v["refs"][0]["level"], 4, "{v}");
    assert!(v["refs"][0]["since"].as_str().is_some_and(|s| s.starts_with("20")), "{v}");
    let served = crate::serve::serve(&repo, &["--ledger", ledger.to_str().context("path")?, "--listen", "127.0.0.1:0"], &[])?;
    let (code, _, body) = crate::serve::http(&served.addr, "GET", "/", &[])?;
    assert_eq!(code, 200);
    assert!(body.contains("source level: main") && body.contains("tile-source-0"), "{body}");
    let (code, _, body) = crate::serve::http(&served.addr, "GET", &format!("/api/attestations/{c1}"), &[])?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.lines().count(), 8, "every attestation the ledger holds for it: {body}");
    // A self-approval is not two-party.
    let c2 = repo.commit("feat: self-approved", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_eq!(code, 0, "{err}");
    fake.with_world(|w| {
        w.pull(8, "alice", "2026-07-02T00:00:00Z", std::slice::from_ref(&c2));
        w.review(8, "alice", "APPROVED", &c2, "2026-07-02T01:00:00Z");
        w.merge(8, "alice", "2026-07-02T02:00:00Z", &c2);
    });
    sync(&repo, &ledger, &fake.url)?;
    let a = assess(&repo, &server, &c2)?;
    assert_eq!(a["level"], 3, "{a}");
    assert!(a["limits"].to_string().contains("by someone other than its author"), "{a}");
    Ok(())
}

/// `git-audit sync` from the fake GitHub into the server's ledger.
fn sync(repo: &Repo, ledger: &std::path::Path, url: &str) -> Result<()> {
    let out = repo
        .cmd(BIN)
        .env("GITHUB_TOKEN", crate::fake_github::TOKEN)
        .args(["--ledger", ledger.to_str().context("path")?, "sync", "--github", "acme/api", "--api-url", url, "--pulls-api", "rest"])
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The Python that has securesystemslib and in-toto-attestation (.ci/run makes it).
fn python() -> Result<String> {
    let p = std::env::var("GIT_AUDIT_SLSA_PYTHON").unwrap_or_else(|_| "/opt/git-audit-ci/slsa/bin/python".into());
    let ok = Command::new(&p)
        .args(["-c", "import securesystemslib, in_toto_attestation, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    anyhow::ensure!(
        ok,
        "this test needs securesystemslib and in-toto-attestation: `python3 -m venv /opt/git-audit-ci/slsa && /opt/git-audit-ci/slsa/bin/pip install 'securesystemslib[crypto]' in-toto-attestation` (.ci/run does it), or set GIT_AUDIT_SLSA_PYTHON"
    );
    Ok(p)
}

#[test]
fn the_envelopes_verify_with_securesystemslib_and_the_statements_validate_with_in_toto() -> Result<()> {
    let py = python()?;
    let (repo, server, c1, _) = landed_on_main("feat: one")?;
    // The hooks' key signed them: its public half and key id, from the ledger's writers.
    let key_text = std::fs::read_to_string(server.hooks_key())?;
    let signer = git_audit::ledger::note::NoteSigner::parse(&key_text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let verifier = signer.verifier();
    let public = hex::encode(verifier.public_key());
    let keyid = git_audit::slsa::dsse::keyid(&verifier);
    let lines = note(&repo, &server, &c1)?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slsa_verify.py");
    let run = |input: &str, key: &str| -> Result<(bool, String)> {
        let mut child = Command::new(&py)
            .arg(&script)
            .args([key, keyid.as_str(), c1.as_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        use std::io::Write;
        child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        Ok((out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
    };
    let (ok, said) = run(&(lines.join("\n") + "\n"), &public)?;
    assert!(ok, "{said}");
    assert!(said.contains("https://git-audit.dev/source-provenance/v1"), "{said}");
    assert!(said.contains("https://slsa.dev/verification_summary/v1 SLSA_SOURCE_LEVEL_3,TAG_HYGIENE"), "{said}");
    // The independent verifier refuses a changed payload, and another key.
    let mut env: serde_json::Value = serde_json::from_str(&lines[1])?;
    let body = base64_decode(env["payload"].as_str().unwrap_or(""))?.replace("SLSA_SOURCE_LEVEL_3", "SLSA_SOURCE_LEVEL_4");
    env["payload"] = serde_json::json!(base64_encode(body.as_bytes()));
    let (ok, said) = run(&format!("{env}\n"), &public)?;
    assert!(!ok, "a changed VSA must not verify: {said}");
    let other = hex::encode([7u8; 32]);
    let (ok, _) = run(&format!("{}\n", lines[1]), &other)?;
    assert!(!ok, "another key must not verify");
    Ok(())
}

fn base64_decode(s: &str) -> Result<String> {
    use base64::Engine;
    Ok(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s)?)?)
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// One key for every writer is the attack: a sync or CI writer's key sits on
/// machines that decide nothing. It may not issue an attestation, and a VSA it
/// signed anyway (planted in the note) is not trusted by default.
#[test]
fn only_the_hooks_or_the_owner_issue_attestations_that_count() -> Result<()> {
    let (repo, server, c1, _) = landed_on_main("feat: one")?;
    // A sync writer, added by the owner.
    let ledger = server.ledger();
    let owner_key = ledger.with_extension("key");
    let sync_key = repo.tmp.path().join("sync.key");
    let out = repo
        .cmd(BIN)
        .args(["--ledger", ledger.to_str().context("path")?, "--ledger-key", owner_key.to_str().context("path")?])
        .args(["ledger", "writers", "add", "sync", "--role", "sync", "--key-out", sync_key.to_str().context("path")?])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // It may not issue.
    let out = repo
        .cmd(BIN)
        .env("GIT_DIR", &server.path)
        .args(["--ledger-key", sync_key.to_str().context("path")?, "attest", &c1, "--ref", "refs/heads/main"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("signed by the hooks' key or the ledger owner's") && err.contains("`sync` (sync)"),
        "{err}"
    );
    // A VSA it signed by hand, claiming level 4, planted in the note.
    let signer = git_audit::ledger::note::NoteSigner::parse(&std::fs::read_to_string(&sync_key)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let forged = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"gitCommit": c1}, "annotations": {"source_refs": ["refs/heads/main"]}}],
        "predicateType": "https://slsa.dev/verification_summary/v1",
        "predicate": {"verifier": {"id": "https://git-audit.dev/verifier"}, "timeVerified": "2099-01-01T00:00:00.000Z", "resourceUri": "git+https://git.example.com/acme/api",
                      "policy": {"uri": "x"}, "verificationResult": "PASSED", "verifiedLevels": ["SLSA_SOURCE_LEVEL_4"]}
    });
    let env = git_audit::slsa::dsse::Envelope::sign(git_audit::slsa::dsse::IN_TOTO_PAYLOAD_TYPE, forged.to_string().as_bytes(), &signer);
    let mut lines = note(&repo, &server, &c1)?;
    lines.push(serde_json::to_string(&env)?);
    let file = repo.tmp.path().join("note.txt");
    std::fs::write(&file, lines.join("\n") + "\n")?;
    let out = repo
        .cmd("git")
        .env("GIT_DIR", &server.path)
        .args([
            "-c",
            "user.name=mallory",
            "-c",
            "user.email=mallory@example.com",
            "notes",
            "add",
            "-f",
            "-F",
            file.to_str().context("path")?,
            &c1,
        ])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, out, err) = attest(&repo, &server, &["attest", "verify", &c1, "--min-level", "4"])?;
    assert_eq!(code, 1, "the sync writer's VSA must not count: {out}{err}");
    assert!(err.contains("a VSA no trusted key signed"), "{err}");
    let (code, out, err) = attest(&repo, &server, &["attest", "verify", &c1, "--min-level", "3"])?;
    assert_eq!(code, 0, "the hooks' own VSA still counts: {out}{err}");
    Ok(())
}

/// The README's pipeline lines, as written, in a fresh clone of the server:
/// fetch the notes, then `attest verify` with the hooks' public key in a file.
#[test]
fn the_readme_pipeline_recipe_verifies_a_pushed_revision() -> Result<()> {
    const README: &str = include_str!("../README.md");
    let line = |needle: &str| -> Result<String> {
        README
            .lines()
            .find(|l| l.contains(needle))
            .map(|l| l.split("  #").next().unwrap_or(l).trim().to_string())
            .context(needle.to_string())
    };
    let fetch = line("git fetch origin refs/notes/commits:refs/notes/commits")?;
    let verify = line("git-audit attest verify \"$COMMIT\"")?;
    let k = keys();
    let (repo, server, c1, _) = landed_on_main("feat: one")?;
    // The hooks writer's key, as the README says to take it.
    let (code, out, err) = attest(&repo, &server, &["ledger", "writers", "list", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let hooks_key = v["writers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["name"] == "hooks")
        .and_then(|w| w["key"].as_str())
        .context("hooks key")?;
    let key_file = repo.tmp.path().join("git-audit-server.pub");
    std::fs::write(&key_file, format!("{hooks_key}\n"))?;
    // The pipeline: a fresh clone, no ledger, the README's two lines.
    let ci = repo.tmp.path().join("ci");
    repo.git(&["clone", "-q", &format!("file://{}", server.path.display()), ci.to_str().context("path")?])?;
    let bin_dir = std::path::Path::new(BIN).parent().context("bin dir")?;
    let script = format!("set -e\n{fetch}\n{}\n", verify.replace("/etc/ci/git-audit-server.pub", &key_file.display().to_string()));
    let run = |commit: &str| -> Result<(bool, String)> {
        let out = repo
            .cmd("bash")
            .current_dir(&ci)
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env("COMMIT", commit)
            .args(["-c", &script])
            .output()?;
        Ok((out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
    };
    let (ok, said) = run(&c1)?;
    assert!(ok, "{script}\n{said}");
    assert!(said.contains("SLSA_SOURCE_LEVEL_3"), "{said}");
    // A revision that never landed through the hooks has no VSA: the pipeline stops.
    let stray = repo.commit("feat: never pushed", Sign::Pgp(&k.alice))?;
    repo.git(&["push", "-q", ci.to_str().context("path")?, &format!("{stray}:refs/heads/stray")])?;
    let (ok, said) = run(&stray)?;
    assert!(!ok && said.contains("no VSA signed by a trusted key"), "{said}");
    Ok(())
}

/// A repository and its server under the protected policy, with one commit
/// signed by alice pushed to main (accepted), and what the push said: the
/// start most tests share.
fn landed_on_main(message: &str) -> Result<(Repo, Server, String, String)> {
    let repo = Repo::new()?;
    let server = Server::new(&repo, &pinned_policy(PROTECTED), "sha1")?;
    let c1 = repo.commit(message, Sign::Pgp(&keys().alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &as_alice())?;
    assert_eq!(code, 0, "{err}");
    Ok((repo, server, c1, err))
}
