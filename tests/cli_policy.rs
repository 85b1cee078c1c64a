//! `init`, `policy check` and malformed policies, as a user meets them.

use anyhow::Result;

use crate::support::{keys, Repo};

#[test]
fn init_outside_a_repository_writes_nothing_and_says_where_it_would_go() -> Result<()> {
    let repo = Repo::new()?;
    let outside = repo.tmp.path().join("not-a-repo");
    std::fs::create_dir_all(&outside)?;
    let out = repo.cmd(crate::support::BIN).current_dir(&outside).arg("init").output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not inside a git repository") && err.contains("--stdout") && err.contains("--policy FILE"), "{err}");
    assert!(!outside.join(".git-audit.toml").exists(), "nothing written");
    // A bare repository (a server) has no work tree for it either.
    let bare = repo.tmp.path().join("bare.git");
    repo.git(&["init", "-q", "--bare", bare.to_str().unwrap_or_default()])?;
    let out = repo.cmd(crate::support::BIN).current_dir(&bare).arg("init").output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bare repository"));
    assert!(!bare.join(".git-audit.toml").exists());
    Ok(())
}

#[test]
fn init_writes_a_starter_that_checks_and_verifies() -> Result<()> {
    let repo = Repo::new()?;
    let (code, out, err) = repo.audit(&["init"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".git-audit.toml"));
    let text = std::fs::read_to_string(repo.path.join(".git-audit.toml"))?;
    // Every option is there, commented.
    for key in [
        "required",
        "trust",
        "openpgp_policy",
        "openpgp_keys",
        "ssh_allowed_signers",
        "match_committer",
        "exempt_identities",
        "required_trailers",
        "signoff_matches_author",
        "subject_pattern",
        "max_subject_length",
        "allowed_email_domains",
        "[[branches]]",
        "forbid_force_push",
        "forbid_deletion",
        "baseline",
        "mode",
    ] {
        assert!(text.contains(key), "starter policy lacks {key}");
    }
    // A second init refuses to overwrite.
    let (code, _, err) = repo.audit(&["init"])?;
    assert_eq!(code, 2);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    let (code, out, err) = repo.audit(&["policy", "check"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("policy OK"), "{out}");
    assert!(err.contains("no keys are pinned"), "a warning explains the empty trust set: {err}");
    // The starter is in warn mode: an unsigned commit is reported but does not fail.
    repo.commit("feat: first", crate::support::Sign::None)?;
    let (code, out, _) = repo.audit(&["verify"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warn") && out.contains("signing.required"), "{out}");
    Ok(())
}

fn check(repo: &Repo, text: &str) -> Result<(i32, String)> {
    let p = repo.policy(text)?;
    let (code, _, err) = repo.audit(&["--policy", p.to_str().unwrap_or_default(), "policy", "check"])?;
    Ok((code, err))
}

#[test]
fn malformed_policies_name_file_line_and_column() -> Result<()> {
    let repo = Repo::new()?;
    let cases: &[(&str, &str, &[&str])] = &[
        ("version = 1\n[signing]\nrequird = true\n", "policy.toml:3:1", &["unknown field `requird`", "Hint:"]),
        ("version = 1\n[signing]\nrequired = \"yes\"\n", "policy.toml:3:12", &["invalid type", "bool"]),
        ("version = 1\n[commits]\nsubject_pattern = '(feat'\n", "policy.toml:3:19", &["not a valid regular expression"]),
        ("version = 1\n[signing]\nopenpgp_keys = [\"keys/nobody.asc\"]\n", "policy.toml:3:17", &["nobody.asc", "No such file"]),
        ("version = 1\n[signing]\nssh_allowed_signers = \"nope\"\n", "policy.toml:3:23", &["allowed-signers file not found"]),
        ("version = 1\n[signing]\ntrust = \"everyone\"\n", "policy.toml:3:9", &["policy", "gnupg"]),
        ("version = 3\n", "policy.toml:1:11", &["unsupported policy version 3"]),
        ("[signing]\nrequired = true\n", "policy.toml:1:1", &["missing field `version`"]),
        ("version = 1\n[[branches]]\npattern = \"refs/heads/[\"\n", "policy.toml:3:11", &["bad glob pattern"]),
        ("version = 1\n[rules]\n\"signing.requird\" = \"warn\"\n", "policy.toml:3:2", &["unknown rule id `signing.requird`"]),
        ("version = 1\nthis is not toml\n", "policy.toml:2:6", &["expected"]),
    ];
    for (text, at, needles) in cases {
        let (code, err) = check(&repo, text)?;
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(at), "{text}: expected {at} in:\n{err}");
        for n in *needles {
            assert!(err.contains(n), "{text}: expected `{n}` in:\n{err}");
        }
    }
    Ok(())
}

#[test]
fn one_broken_file_is_told_in_one_round() -> Result<()> {
    // An unknown variant, two wrong types, an unknown key, a value out of range
    // and a type error on a required key: every problem, each at its place.
    let repo = Repo::new()?;
    let text = "version = 1\nmode = \"enforced\"\n[signing]\nrequired = \"yes\"\n[commits]\nmax_subject_length = \"long\"\n[[branches]]\npattern = \"refs/heads/main\"\nforbid_force_pushh = true\n[[environments]]\nname = \"production\"\nrequired_approvals = 200\n";
    let (code, err) = check(&repo, text)?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid policy (5 problems)"), "{err}");
    for (at, what) in [
        ("policy.toml:2:8", "unknown variant `enforced`"),
        ("policy.toml:4:12", "invalid type: string \"yes\", expected a boolean"),
        ("policy.toml:6:22", "invalid type: string \"long\""),
        ("policy.toml:9:1", "unknown field `forbid_force_pushh`"),
        ("policy.toml:12:22", "required_approvals must be 0 to 100, not 200"),
    ] {
        assert!(err.contains(&format!("{at}: {what}")), "expected `{at}: {what}` in:\n{err}");
    }
    assert!(err.contains("did you mean `enforce`?") && err.contains("did you mean `forbid_force_push`?"), "{err}");
    // A required key of the wrong type: said once, not again as "missing".
    let (code, err) = check(&repo, "version = \"1\"\n[signing]\nrequird = true\n")?;
    assert_eq!(code, 2);
    assert!(
        err.contains("policy.toml:1:11: invalid type") && err.contains("unknown field `requird`") && !err.contains("missing field"),
        "{err}"
    );
    Ok(())
}

#[test]
fn unreadable_keys_and_signers_are_reported() -> Result<()> {
    let repo = Repo::new()?;
    let dir = repo.tmp.path().join("keys");
    std::fs::create_dir_all(&dir)?;
    // Armor header but no key inside: passes the quick check, fails the import.
    std::fs::write(dir.join("broken.asc"), "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n")?;
    std::fs::write(dir.join("text.asc"), "hello\n")?;
    let (code, err) = check(&repo, "version = 1\n[signing]\nopenpgp_keys = [\"keys/text.asc\"]\n")?;
    assert_eq!(code, 2);
    assert!(err.contains("policy.toml:3:17") && err.contains("not an armored OpenPGP public key"), "{err}");
    let (code, err) = check(&repo, "version = 1\n[signing]\nopenpgp_keys = [\n  \"keys/broken.asc\",\n]\n")?;
    assert_eq!(code, 2);
    assert!(err.contains("policy.toml:4:3") && err.contains("could not be imported"), "{err}");
    std::fs::write(
        dir.join("signers"),
        format!("alice@example.com {}\nbob@example.com ssh-ed25519 not-a-key\n", keys().ssh_alice.public_line),
    )?;
    let (code, err) = check(&repo, "version = 1\n[signing]\nssh_allowed_signers = \"keys/signers\"\n")?;
    assert_eq!(code, 2);
    assert!(err.contains("keys/signers:2:1") && err.contains("cannot parse the public key"), "{err}");
    Ok(())
}

#[test]
fn key_directories_and_relative_paths() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let team = repo.path.join("keys/team");
    std::fs::create_dir_all(&team)?;
    std::fs::copy(&k.alice.asc, team.join("alice.asc"))?;
    std::fs::copy(&k.bob.asc, team.join("bob.asc"))?;
    std::fs::copy(&k.allowed_signers, repo.path.join("keys/allowed_signers"))?;
    std::fs::write(
        repo.path.join(".git-audit.toml"),
        "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/team/\"]\nssh_allowed_signers = \"keys/allowed_signers\"\n",
    )?;
    let (code, out, err) = repo.audit(&["policy", "check"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 OpenPGP key files") && out.contains("2 SSH signers"), "{out}");
    let id = repo.commit_as("feat: by bob", crate::support::Sign::Pgp(&k.bob), Some(("Bob", "bob@example.com")))?;
    // Run from a subdirectory: the policy is found at the repository root.
    let sub = repo.path.join("keys");
    let out = repo.cmd(crate::support::BIN).current_dir(&sub).args(["verify", "--format", "json", "HEAD"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(crate::support::commit_entry(&v, &id)["signature"]["status"], "good");
    Ok(())
}

#[test]
fn usage_errors_exit_2_and_logs_can_be_json() -> Result<()> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit(&["verify", "--format", "yaml"])?;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = repo.audit(&["verify"])?;
    assert_eq!(code, 2);
    assert!(err.contains("no policy at") && err.contains("git-audit init"), "{err}");
    repo.commit("feat: x", crate::support::Sign::None)?;
    repo.audit(&["init"])?;
    let (code, _, err) = repo.audit_env(&["--log-format", "json", "verify", "HEAD"], &[("GIT_AUDIT_LOG", "debug")])?;
    assert_eq!(code, 0, "{err}");
    let first = err.lines().next().unwrap_or_default();
    let line: serde_json::Value = serde_json::from_str(first).map_err(|e| anyhow::anyhow!("{e}: {err}"))?;
    assert_eq!(line["level"], "DEBUG");
    Ok(())
}
