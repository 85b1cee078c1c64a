//! Signature statuses on real signed commits, with git's own `%G?` as the oracle.

use anyhow::Result;

use crate::support::{commit_entry, keys, pinned_policy, rules, Repo, Sign};

/// git's `%G?` code → our status, under an equivalent trust setup.
pub(crate) fn from_git(code: &str) -> &'static str {
    match code {
        "G" => "good",
        "B" => "bad",
        "E" | "U" => "unknown-key",
        "X" | "Y" => "expired-key",
        "R" => "revoked-key",
        "N" => "missing",
        _ => "error",
    }
}

/// Rewrites a commit's message without re-signing it; returns the new id.
fn tamper(repo: &Repo, id: &str, branch: &str) -> Result<String> {
    let raw = repo.git(&["cat-file", "commit", id])?;
    let changed = raw.replacen("feat:", "feat(evil):", 1);
    assert_ne!(raw, changed, "tamper must change the commit");
    let path = repo.tmp.path().join("tampered");
    std::fs::write(&path, changed + "\n")?;
    let new = repo.git(&["hash-object", "-t", "commit", "-w", path.to_str().unwrap_or_default()])?;
    repo.git(&["update-ref", &format!("refs/heads/{branch}"), &new])?;
    Ok(new)
}

fn status(v: &serde_json::Value, id: &str) -> String {
    commit_entry(v, id)["signature"]["status"].as_str().unwrap_or("?").to_string()
}

#[test]
fn openpgp_statuses_match_git() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let root = repo.commit("feat: root by alice (ed25519)", Sign::Pgp(&k.alice))?;
    let rsa = repo.commit_as("feat: by bob (rsa3072)", Sign::Pgp(&k.bob), Some(("Bob", "bob@example.com")))?;
    let unsigned = repo.commit("feat: unsigned", Sign::None)?;
    let unknown = repo.commit_as("feat: by mallory", Sign::Pgp(&k.mallory), Some(("Mallory", "mallory@example.com")))?;
    let expired = repo.commit_as("feat: by carol, key since expired", Sign::PgpPast(&k.carol), Some(("Carol", "carol@example.com")))?;
    let revoked = repo.commit_as("feat: by dave, key since revoked", Sign::Pgp(&k.dave), Some(("Dave", "dave@example.com")))?;
    let mismatch = repo.commit_as("feat: alice's key, bob commits", Sign::Pgp(&k.alice), Some(("Bob", "bob@example.com")))?;
    let good_tip = repo.commit("feat: tip by alice", Sign::Pgp(&k.alice))?;
    let altered = tamper(&repo, &good_tip, "tampered")?;

    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["--all"])?;
    assert_eq!(code, 1, "{v}");

    let expected = [
        (&root, "good"),
        (&rsa, "good"),
        (&unsigned, "missing"),
        (&unknown, "unknown-key"),
        (&expired, "expired-key"),
        (&revoked, "revoked-key"),
        (&mismatch, "good"),
        (&good_tip, "good"),
        (&altered, "bad"),
    ];
    for (id, want) in expected {
        let got = status(&v, id);
        let git = repo.git_oracle(id)?;
        assert_eq!(got, want, "commit {id}: {}", commit_entry(&v, id));
        assert_eq!(from_git(&git), want, "git says {git} for {id}");
    }
    // Fingerprints and signers come from the pinned keys.
    assert_eq!(commit_entry(&v, &rsa)["signature"]["key"], k.bob.fpr.as_str());
    assert_eq!(commit_entry(&v, &rsa)["signature"]["signer"], "Bob <bob@example.com>");
    assert_eq!(commit_entry(&v, &rsa)["signature"]["format"], "openpgp");
    assert_eq!(commit_entry(&v, &unsigned)["signature"]["format"], serde_json::Value::Null);
    // Identity binding is its own rule; the others fail on signing.required.
    assert_eq!(rules(commit_entry(&v, &mismatch)), vec!["signing.identity"]);
    assert_eq!(commit_entry(&v, &root)["verdict"], "pass");
    for id in [&unsigned, &unknown, &expired, &revoked, &altered] {
        assert_eq!(rules(commit_entry(&v, id)), vec!["signing.required"], "{id}");
        assert_eq!(commit_entry(&v, id)["verdict"], "fail");
    }
    assert_eq!(v["summary"]["checked"], 9);
    assert_eq!(v["summary"]["failed"], 6);
    Ok(())
}

#[test]
fn user_keyring_does_not_count_in_policy_mode_but_does_in_gnupg_mode() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let id = repo.commit_as("feat: mallory", Sign::Pgp(&k.mallory), Some(("Mallory", "mallory@example.com")))?;
    // The developer's own keyring (GNUPGHOME = dev home) holds mallory's key, ultimately trusted.
    let policy = repo.policy(&pinned_policy(""))?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "unknown-key");

    let gnupg = repo.policy("version = 1\n[signing]\nrequired = true\ntrust = \"gnupg\"\n")?;
    let (code, v) = repo.verify_json(&gnupg, &["HEAD"])?;
    assert_eq!(status(&v, &id), "good", "{v}");
    assert_eq!(code, 0);
    // git agrees under the same keyring.
    let git = repo.git(&["log", "-1", "--format=%G?", &id])?;
    assert_eq!(git, "G");
    Ok(())
}

#[test]
fn ssh_statuses_match_git() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let good = repo.commit("feat: ssh by alice", Sign::Ssh(&k.ssh_alice))?;
    let unknown = repo.commit_as("feat: ssh by erin", Sign::Ssh(&k.ssh_erin), Some(("Erin", "erin@example.com")))?;
    let mismatch = repo.commit_as("feat: alice's ssh key, bob commits", Sign::Ssh(&k.ssh_alice), Some(("Bob", "bob@example.com")))?;
    let tip = repo.commit("feat: ssh tip", Sign::Ssh(&k.ssh_alice))?;
    let altered = tamper(&repo, &tip, "tampered")?;
    let expired = repo.commit_as("feat: ssh by old key", Sign::Ssh(&k.ssh_old), Some(("Old", "old@example.com")))?;

    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["--all"])?;
    assert_eq!(code, 1);
    for (id, want) in [(&good, "good"), (&unknown, "unknown-key"), (&mismatch, "good"), (&tip, "good"), (&altered, "bad")] {
        assert_eq!(status(&v, id), want, "{}", commit_entry(&v, id));
        let git = repo.git_oracle(id)?;
        assert_eq!(from_git(&git), want, "git says {git} for {id}");
    }
    // valid-before has passed: expired now. git judges by the commit date only and
    // does not find the principal either, so it does not call it good.
    assert_eq!(status(&v, &expired), "expired-key");
    assert_ne!(repo.git_oracle(&expired)?, "G");

    let e = commit_entry(&v, &good);
    assert_eq!(e["signature"]["format"], "ssh");
    assert_eq!(e["signature"]["signer"], "alice@example.com");
    assert!(e["signature"]["key"].as_str().unwrap_or("").starts_with("SHA256:"));
    assert_eq!(rules(commit_entry(&v, &mismatch)), vec!["signing.identity"]);
    Ok(())
}

#[test]
fn merge_commits_are_checked_and_do_not_vouch_for_parents() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let root = repo.commit("feat: root", Sign::Pgp(&k.alice))?;
    repo.git(&["checkout", "-q", "-b", "side"])?;
    let side = repo.commit("feat: unsigned side work", Sign::None)?;
    repo.git(&["checkout", "-q", "main"])?;
    let main2 = repo.commit("feat: main work", Sign::Pgp(&k.alice))?;
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "merge", "-q", "-S", "--no-ff", "-m", "feat: merge side", "side"])?;
    let merge = repo.git(&["rev-parse", "HEAD"])?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["main"])?;
    assert_eq!(code, 1);
    assert_eq!(v["summary"]["checked"], 4);
    assert_eq!(commit_entry(&v, &merge)["parents"], 2);
    assert_eq!(status(&v, &merge), "good");
    assert_eq!(repo.git_oracle(&merge)?, "G");
    assert_eq!(status(&v, &side), "missing");
    assert_eq!(commit_entry(&v, &side)["verdict"], "fail");
    assert_eq!(status(&v, &root), "good");
    assert_eq!(commit_entry(&v, &root)["parents"], 0);
    assert_eq!(status(&v, &main2), "good");
    // Only the range after root: root is not checked.
    let (_, v) = repo.verify_json(&policy, &[&format!("{root}..main")])?;
    assert_eq!(v["summary"]["checked"], 3);
    assert!(commit_entry(&v, &root).is_null());
    Ok(())
}

#[test]
fn large_ranges_are_checked_in_parallel_in_order_and_agree_with_git() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    // 140 commits (past the parallel threshold): every third unsigned, the rest signed.
    for i in 0..140 {
        let sign = if i % 3 == 0 { Sign::None } else { Sign::Pgp(&k.alice) };
        repo.commit(&format!("feat: commit {i}"), sign)?;
    }
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 1);
    let ours: Vec<(String, String)> = v["commits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["id"].as_str().unwrap_or("").to_string(), c["signature"]["status"].as_str().unwrap_or("").to_string()))
        .collect();
    let oracle = repo.cmd("git").env("GNUPGHOME", &k.oracle_home).args(["log", "--format=%H %G?", "HEAD"]).output()?;
    let theirs: Vec<(String, String)> = String::from_utf8_lossy(&oracle.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(id, g)| (id.to_string(), from_git(g).to_string())))
        .collect();
    assert_eq!(theirs.len(), 140);
    assert_eq!(ours, theirs, "same commits, same order, same verdicts as git");
    assert_eq!(v["summary"]["failed"], 47);
    Ok(())
}

#[test]
fn sha256_repositories_use_gpgsig_sha256_and_agree_with_git() -> Result<()> {
    let k = keys();
    let repo = Repo::with_format("sha256")?;
    let pgp = repo.commit("feat: pgp in sha256", Sign::Pgp(&k.alice))?;
    let ssh = repo.commit("feat: ssh in sha256", Sign::Ssh(&k.ssh_alice))?;
    let unsigned = repo.commit("feat: unsigned in sha256", Sign::None)?;
    let tip = repo.commit("feat: tip", Sign::Pgp(&k.alice))?;
    let altered = tamper(&repo, &tip, "tampered")?;
    assert_eq!(pgp.len(), 64);
    assert!(repo.git(&["cat-file", "commit", &pgp])?.contains("\ngpgsig-sha256 "));

    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["--all"])?;
    assert_eq!(code, 1, "{v}");
    for (id, want) in [(&pgp, "good"), (&ssh, "good"), (&unsigned, "missing"), (&tip, "good"), (&altered, "bad")] {
        assert_eq!(status(&v, id), want, "{}", commit_entry(&v, id));
        assert_eq!(from_git(&repo.git_oracle(id)?), want, "git on {id}");
    }
    // Ranges and unknown names behave as in SHA-1 repositories.
    let (_, v) = repo.verify_json(&policy, &[&format!("{pgp}..main")])?;
    assert_eq!(v["summary"]["checked"], 3);
    let (code, _, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "nope"])?;
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");
    // A spec may not smuggle options into git.
    let (code, _, _) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--output=/tmp/x"])?;
    assert_eq!(code, 2);
    Ok(())
}

#[test]
fn the_pinned_trust_set_is_exactly_the_policy_keys_and_nothing_on_disk_counts() -> Result<()> {
    // In policy mode OpenPGP is verified in process against the pinned keys:
    // no GnuPG home is built or cached, so there is none to tamper with. Keys
    // planted where the old keyring cache lived, or in the user's own keyring, do not count.
    let k = keys();
    let repo = Repo::new()?;
    let id = repo.commit_as("feat: mallory", Sign::Pgp(&k.mallory), Some(("Mallory", "mallory@example.com")))?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "unknown-key");
    let base = repo.home.join(".cache/git-audit/gnupg");
    assert!(!base.exists(), "policy mode made a GnuPG home at {}", base.display());
    use std::os::unix::fs::PermissionsExt;
    for dir in std::fs::read_dir(repo.tmp.path())?.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        assert!(!dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("git-audit-gnupg-")), "{}", dir.display());
    }
    // A private, complete-looking cache holding mallory's key, planted where gpgme's lived.
    let planted = base.join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&planted)?;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))?;
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700))?;
    let out = std::process::Command::new("gpg").env("GNUPGHOME", &planted).args(["--batch", "--import"]).arg(&k.mallory.asc).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(planted.join("complete"), b"")?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "unknown-key", "a planted keyring was trusted");
    // The developer's own keyring (GNUPGHOME) holds mallory too: still not in the trust set.
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "unknown-key");
    Ok(())
}

/// Runs gpg in `home` (batch, no passphrase), optionally at a faked time; returns stdout.
pub(crate) fn gpg_in(home: &std::path::Path, faked: Option<&str>, args: &[&str]) -> Result<Vec<u8>> {
    let mut c = std::process::Command::new("gpg");
    c.env("GNUPGHOME", home).args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]);
    if let Some(t) = faked {
        c.args(["--faked-system-time", t]);
    }
    let out = c.args(args).stdin(std::process::Stdio::null()).output()?;
    anyhow::ensure!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

fn fingerprints(home: &std::path::Path, uid: &str) -> Result<Vec<String>> {
    let text = String::from_utf8(gpg_in(home, None, &["--with-colons", "--list-keys", uid])?)?;
    Ok(text.lines().filter(|l| l.starts_with("fpr:")).filter_map(|l| l.split(':').nth(9)).map(str::to_string).collect())
}

#[test]
fn the_native_verifier_agrees_with_gpgme_on_every_scenario() -> Result<()> {
    use git_audit::signature::native::NativeVerifier;
    use git_audit::signature::openpgp::GpgmeVerifier;
    use git_audit::signature::{KeyFile, SignedObject, Verifier};

    let k = keys();
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("gnupg");
    std::fs::create_dir_all(&home)?;
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&home)?.permissions(), 0o700);
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let gen = |uid: &str, algo: &str, usage: &str, expire: &str, faked: Option<&str>| -> Result<String> {
        gpg_in(&home, faked, &["--quick-gen-key", uid, algo, usage, expire])?;
        Ok(fingerprints(&home, uid)?.remove(0))
    };
    // New shapes: ECDSA P-256, RSA-4096, a signing subkey under a certify-only
    // primary, an encryption-capable-only subkey, and a key expired then extended.
    let erin = gen("Erin <erin@example.com>", "nistp256", "sign", "never", None)?;
    let frank = gen("Frank <frank@example.com>", "rsa4096", "sign", "never", None)?;
    let grace = gen("Grace <grace@example.com>", "ed25519", "cert", "never", None)?;
    gpg_in(&home, None, &["--quick-add-key", &grace, "ed25519", "sign", "never"])?;
    let grace_sub = fingerprints(&home, "grace@example.com")?.pop().unwrap_or_default();
    let heidi = gen("Heidi <heidi@example.com>", "ed25519", "sign", "1d", Some("20200101T000000!"))?;
    gpg_in(&home, None, &["--quick-set-expire", &heidi, "never"])?;
    let mut pinned: Vec<KeyFile> = Vec::new();
    for (i, fpr) in [&erin, &frank, &grace, &heidi].into_iter().enumerate() {
        let armored = gpg_in(&home, None, &["--armor", "--export", fpr])?;
        pinned.push(KeyFile { path: tmp.path().join(format!("k{i}.asc")), armored, origin: format!("test:{i}") });
    }
    for p in [&k.alice, &k.bob, &k.carol, &k.dave] {
        pinned.push(KeyFile { path: p.asc.clone(), armored: std::fs::read(&p.asc)?, origin: p.email.clone() });
    }

    let payload = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 1767225600 +0000\ncommitter A <a@example.com> 1767225600 +0000\n\nfeat: x\n";
    let sign_in = |h: &std::path::Path, key: &str, faked: Option<&str>| -> Result<Vec<u8>> {
        let file = tmp.path().join("payload");
        std::fs::write(&file, payload)?;
        gpg_in(h, faked, &["--armor", "--detach-sign", "-u", &format!("{key}!"), "-o", "-", file.to_str().unwrap_or_default()])
    };
    let past = Some("20200101T120000!");
    let mut cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        ("ed25519", sign_in(&k.dev_home, &k.alice.fpr, None)?, payload),
        ("rsa3072", sign_in(&k.dev_home, &k.bob.fpr, None)?, payload),
        ("expired since", sign_in(&k.dev_home, &k.carol.fpr, past)?, payload),
        ("revoked after signing", sign_in(&k.dev_home, &k.dave.fpr, None)?, payload),
        ("unpinned", sign_in(&k.dev_home, &k.mallory.fpr, None)?, payload),
        ("altered", sign_in(&k.dev_home, &k.alice.fpr, None)?, b"tree 0\n\nsomething else\n"),
        ("ecdsa nistp256", sign_in(&home, &erin, None)?, payload),
        ("rsa4096", sign_in(&home, &frank, None)?, payload),
        ("signing subkey", sign_in(&home, &grace_sub, None)?, payload),
        ("expired then extended, signed while first valid", sign_in(&home, &heidi, past)?, payload),
        ("expired then extended, signed now", sign_in(&home, &heidi, None)?, payload),
    ];
    // A signature by grace's certify-only primary: gpg refuses to make one, so
    // it is made with Sequoia from the exported secret key.
    {
        use sequoia_openpgp::parse::Parse;
        use sequoia_openpgp::serialize::stream::{Armorer, Message, Signer};
        let tsk = sequoia_openpgp::Cert::from_bytes(&gpg_in(&home, None, &["--export-secret-keys", &grace])?)?;
        let primary = tsk.primary_key().key().clone().parts_into_secret()?.into_keypair()?;
        let mut sig = Vec::new();
        let message = Armorer::new(Message::new(&mut sig)).kind(sequoia_openpgp::armor::Kind::Signature).build()?;
        let mut signer = Signer::new(message, primary)?.detached().build()?;
        std::io::Write::write_all(&mut signer, payload)?;
        signer.finalize()?;
        cases.push(("primary without the signing flag", sig, payload));
    }
    cases.push(("garbage", b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n".to_vec(), payload));

    let mut native = NativeVerifier::pinned(&pinned, git_audit::signature::OpenpgpPolicy::Strict)?;
    let mut gpgme = GpgmeVerifier::pinned(&pinned)?;
    let mut disagreements = Vec::new();
    let mut seen = Vec::new();
    for (name, sig, data) in &cases {
        let object = SignedObject { signature: sig, payload: data, signed_at: 0 };
        let (n, g) = (native.verify(&object), gpgme.verify(&object));
        let same = n.status == g.status
            && (n.status == git_audit::signature::SignatureStatus::Error
                || (n.key == g.key && n.identities == g.identities && n.signer == g.signer));
        seen.push((*name, n.status.as_str()));
        if !same {
            disagreements.push(format!(
                "{name}: native {:?} {:?} {:?} {:?} {:?} / gpgme {:?} {:?} {:?} {:?} {:?}",
                n.status, n.key, n.identities, n.signer, n.detail, g.status, g.key, g.identities, g.signer, g.detail
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));

    // The one difference by default: a signature over a SHA-1 digest. gpg still
    // accepts it; under `openpgp_policy = "strict"` the in-process verifier
    // follows the standard OpenPGP policy, which has not trusted SHA-1 for
    // signatures since 2013 (chosen-prefix collisions are practical), and names
    // it; under `"gnupg"` it agrees with gpg and carries the weakness.
    let file = tmp.path().join("payload");
    let sha1 = gpg_in(
        &k.dev_home,
        None,
        &[
            "--armor",
            "--detach-sign",
            "--digest-algo",
            "SHA1",
            "-u",
            &format!("{}!", k.alice.fpr),
            "-o",
            "-",
            file.to_str().unwrap_or_default(),
        ],
    )?;
    let object = SignedObject { signature: &sha1, payload, signed_at: 0 };
    let (n, g) = (native.verify(&object), gpgme.verify(&object));
    assert_eq!(g.status, git_audit::signature::SignatureStatus::Good, "{g:?}");
    assert_eq!(n.status, git_audit::signature::SignatureStatus::Error, "{n:?}");
    assert!(n.detail.as_deref().is_some_and(|d| d.contains("the data signature uses SHA-1")), "{n:?}");
    let mut lenient = NativeVerifier::pinned(&pinned, git_audit::signature::OpenpgpPolicy::Gnupg)?;
    let l = lenient.verify(&object);
    assert_eq!((l.status, &l.key, &l.signer), (g.status, &g.key, &g.signer), "{l:?} / {g:?}");
    assert_eq!(l.weak, vec!["the data signature uses SHA-1".to_string()]);
    // Every other scenario means the same under both policies.
    for (name, sig, data) in &cases {
        let object = SignedObject { signature: sig, payload: data, signed_at: 0 };
        assert_eq!(lenient.verify(&object).status, native.verify(&object).status, "{name}");
    }

    // And what they agree on is what each scenario means.
    let want = [
        ("ed25519", "good"),
        ("rsa3072", "good"),
        ("expired since", "expired-key"),
        ("revoked after signing", "revoked-key"),
        ("unpinned", "unknown-key"),
        ("altered", "bad"),
        ("ecdsa nistp256", "good"),
        ("rsa4096", "good"),
        ("signing subkey", "good"),
        ("expired then extended, signed while first valid", "good"),
        ("expired then extended, signed now", "good"),
        ("primary without the signing flag", "error"),
        ("garbage", "error"),
    ];
    assert_eq!(seen, want);
    Ok(())
}

#[test]
fn verdicts_are_cached_per_policy_and_key_set_and_the_cache_can_be_bypassed() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let id = repo.commit("feat: by alice", Sign::Pgp(&k.alice))?;
    let key_copy = repo.tmp.path().join("alice-pinned.asc");
    std::fs::copy(&k.alice.asc, &key_copy)?;
    let policy = repo.policy(&format!("version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\n", key_copy.display()))?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "good");
    let db = repo.home.join(".cache/git-audit/verdicts.db");
    let c = rusqlite::Connection::open(&db)?;
    let n: i64 = c.query_row("SELECT count(*) FROM verdicts", [], |r| r.get(0))?;
    assert_eq!(n, 1, "one verdict kept");

    // Flip the stored verdict: the next run believes the cache (so it was consulted) …
    c.execute("UPDATE verdicts SET verdict = replace(verdict, '\"status\":\"good\"', '\"status\":\"bad\"')", [])?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "bad", "served from the cache");
    // … `--no-cache` judges afresh …
    let (code, out, err) =
        repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--no-cache", "--format", "json", "HEAD"])?;
    assert_eq!(code, 0, "{out}{err}");
    let fresh: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(status(&fresh, &id), "good");
    // … a verdict past its time is not used …
    c.execute("UPDATE verdicts SET valid_until = 1", [])?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "good", "an expired cache entry was used");
    c.execute("UPDATE verdicts SET verdict = replace(verdict, '\"status\":\"good\"', '\"status\":\"bad\"'), valid_until = NULL", [])?;
    assert_eq!(status(&repo.verify_json(&policy, &["HEAD"])?.1, &id), "bad");
    // … a changed key file is another key set: a miss …
    let mut bytes = std::fs::read(&key_copy)?;
    bytes.extend_from_slice(b"\n");
    std::fs::write(&key_copy, bytes)?;
    assert_eq!(status(&repo.verify_json(&policy, &["HEAD"])?.1, &id), "good", "a key change must invalidate");
    // … and a cache folder others can write is not trusted.
    c.execute("UPDATE verdicts SET verdict = replace(verdict, '\"status\":\"good\"', '\"status\":\"bad\"')", [])?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(repo.home.join(".cache/git-audit"), std::fs::Permissions::from_mode(0o777))?;
    assert_eq!(status(&repo.verify_json(&policy, &["HEAD"])?.1, &id), "good", "a non-private cache was used");
    Ok(())
}

#[test]
fn a_history_signed_by_web_flow_style_keys_agrees_with_git() -> Result<()> {
    // GitHub signs web commits with "GitHub (web-flow commit signing)" keys:
    // an RSA-2048 key that has since expired, then a newer RSA-4096 one, both
    // published in one key file. The same shapes, made here.
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("gnupg");
    std::fs::create_dir_all(&home)?;
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let uid = "GitHub (web-flow commit signing) <noreply@github.com>";
    gpg_in(&home, Some("20170816T000000!"), &["--quick-gen-key", uid, "rsa2048", "sign", "2024-01-16"])?;
    let old = fingerprints(&home, uid)?.remove(0);
    gpg_in(&home, None, &["--quick-gen-key", uid, "rsa4096", "sign", "never"])?;
    let new = fingerprints(&home, uid)?.into_iter().find(|f| *f != old).unwrap_or_default();
    let web_flow = tmp.path().join("web-flow.gpg");
    std::fs::write(&web_flow, gpg_in(&home, None, &["--armor", "--export", &old, &new])?)?;
    // git's oracle: both keys at ultimate trust.
    let oracle = tmp.path().join("oracle");
    std::fs::create_dir_all(&oracle)?;
    std::fs::set_permissions(&oracle, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    gpg_in(&oracle, None, &["--import", web_flow.to_str().unwrap_or_default()])?;
    std::fs::write(tmp.path().join("trust"), format!("{old}:6:\n{new}:6:\n"))?;
    gpg_in(&oracle, None, &["--import-ownertrust", tmp.path().join("trust").to_str().unwrap_or_default()])?;
    let past = tmp.path().join("gpg-2020");
    std::fs::write(&past, "#!/bin/sh\nexec gpg --faked-system-time '20200601T120000!' \"$@\"\n")?;
    std::fs::set_permissions(&past, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    let repo = Repo::new()?;
    let commit = |n: usize, key: &str, program: &str, date: &str| -> Result<()> {
        std::fs::write(repo.path.join(format!("web{n}.txt")), format!("{n}\n"))?;
        repo.git(&["add", "."])?;
        let out = repo
            .cmd("git")
            .env("GNUPGHOME", &home)
            .env("GIT_COMMITTER_NAME", "GitHub")
            .env("GIT_COMMITTER_EMAIL", "noreply@github.com")
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_DATE", date)
            .args(["-c", "gpg.format=openpgp", "-c", &format!("gpg.program={program}"), "-c", &format!("user.signingkey={key}!")])
            .args(["commit", "-q", "-S", "-m", &format!("Merge pull request #{n} from acme/topic")])
            .output()?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    for n in 0..6 {
        commit(n, &old, past.to_str().unwrap_or_default(), "2020-06-01T12:00:00Z")?;
    }
    for n in 6..12 {
        commit(n, &new, "gpg", "2026-11-01T12:00:00Z")?;
    }
    let policy = repo.policy(&format!("version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\n", web_flow.display()))?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    let oracle_out = repo.cmd("git").env("GNUPGHOME", &oracle).args(["log", "--format=%H %G?", "HEAD"]).output()?;
    let mut counts = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&oracle_out.stdout).lines() {
        let (id, code) = line.split_once(' ').unwrap_or_default();
        let ours = status(&v, id);
        assert_eq!(ours, from_git(code), "commit {id}: git says {code}");
        *counts.entry(ours).or_insert(0) += 1;
    }
    assert_eq!(counts.get("good"), Some(&6), "{counts:?}");
    assert_eq!(counts.get("expired-key"), Some(&6), "{counts:?}");
    Ok(())
}

#[test]
fn a_cached_ssh_verdict_does_not_outlive_a_valid_before() -> Result<()> {
    // `valid-before` is judged against now: a good verdict is kept only until then.
    let k = keys();
    let repo = Repo::new()?;
    let id = repo.commit("feat: ssh", Sign::Ssh(&k.ssh_alice))?;
    let signers = repo.tmp.path().join("signers");
    std::fs::write(&signers, format!("alice@example.com namespaces=\"git\",valid-before=\"20990101\" {}\n", k.ssh_alice.public_line))?;
    let policy = repo.policy(&format!("version = 1\n[signing]\nrequired = true\nssh_allowed_signers = \"{}\"\n", signers.display()))?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "good");
    let c = rusqlite::Connection::open(repo.home.join(".cache/git-audit/verdicts.db"))?;
    let until: Option<i64> = c.query_row("SELECT valid_until FROM verdicts", [], |r| r.get(0))?;
    assert_eq!(until, Some(4070908800), "kept until 2099-01-01T00:00:00Z, the valid-before");
    Ok(())
}

#[test]
fn a_signature_block_with_two_signatures_is_an_error_as_git_says_e() -> Result<()> {
    // gpg signs with every -u it is given: a pinned key and an unpinned one in
    // one block. git reports E; "good" would let the unpinned signer ride along.
    let k = keys();
    let repo = Repo::new()?;
    let both = repo.tmp.path().join("gpg-two");
    std::fs::write(&both, format!("#!/bin/sh\nexec gpg -u '{}!' \"$@\"\n", k.mallory.fpr))?;
    std::fs::set_permissions(&both, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::write(repo.path.join("two.txt"), "two\n")?;
    repo.git(&["add", "."])?;
    let out = repo
        .cmd("git")
        .args([
            "-c",
            "gpg.format=openpgp",
            "-c",
            &format!("gpg.program={}", both.display()),
            "-c",
            &format!("user.signingkey={}!", k.alice.fpr),
        ])
        .args(["commit", "-q", "-S", "-m", "feat: two signatures"])
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = repo.git(&["rev-parse", "HEAD"])?;
    let packets = repo.cmd("git").args(["cat-file", "commit", &id]).output()?;
    anyhow::ensure!(String::from_utf8_lossy(&packets.stdout).contains("gpgsig"), "signed");
    assert_eq!(repo.git_oracle(&id)?, "E");
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 1);
    assert_eq!(status(&v, &id), "error", "{}", commit_entry(&v, &id));
    assert!(commit_entry(&v, &id)["signature"]["detail"].as_str().unwrap_or("").contains("2 signatures"));
    Ok(())
}
