//! Signature statuses on real signed commits, with git's own `%G?` as the oracle.

use anyhow::Result;

use crate::support::{commit_entry, keys, pinned_policy, rules, Repo, Sign};

/// git's `%G?` code → our status, under an equivalent trust setup.
fn from_git(code: &str) -> &'static str {
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
fn the_pinned_keyring_cache_is_private_and_a_tampered_one_is_ignored() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let id = repo.commit_as("feat: mallory", Sign::Pgp(&k.mallory), Some(("Mallory", "mallory@example.com")))?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "unknown-key");
    let base = repo.home.join(".cache/git-audit/gnupg");
    let dirs: Vec<_> = std::fs::read_dir(&base)?.flatten().map(|e| e.path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dirs[0])?.permissions().mode() & 0o777, 0o700);
    assert!(dirs[0].join("complete").exists());
    // Someone plants mallory's key in a cache that is no longer private: it must not count.
    std::fs::set_permissions(&dirs[0], std::fs::Permissions::from_mode(0o777))?;
    let out = std::process::Command::new("gpg").env("GNUPGHOME", &dirs[0]).args(["--batch", "--import"]).arg(&k.mallory.asc).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(status(&v, &id), "unknown-key", "a non-private cache was trusted");
    Ok(())
}
