//! Real data nobody here wrote: the public history of sharkdp/fd with GitHub's
//! own web-flow signatures, judged against git's own `%G?`; and older OpenPGP
//! keys (SHA-1 self-signatures, DSA-1024, SHA-1 data signatures) made by gpg at
//! test time, under both OpenPGP policies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::signatures::from_git;
use crate::support::{commit_entry, rules, Repo};

/// `../shared/real-world/`, beside the checkout (CI has the same folder).
fn real_world() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/real-world");
    dir.join("fd.bundle").is_file().then_some(dir)
}

fn private_home(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

fn gpg(home: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    ensure!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn fingerprint(home: &Path, uid: &str) -> Result<String> {
    let text = gpg(home, &["--with-colons", "--list-keys", uid])?;
    Ok(text.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).context("no fingerprint")?.to_string())
}

#[test]
fn every_commit_of_a_real_public_history_agrees_with_git() -> Result<()> {
    let Some(real) = real_world() else {
        ensure!(std::env::var_os("CI").is_none(), "../shared/real-world/fd.bundle is missing; CI must have it");
        eprintln!("skipped: ../shared/real-world/fd.bundle is not beside this checkout");
        return Ok(());
    };
    let repo = Repo::new()?;
    repo.git(&["fetch", "-q", real.join("fd.bundle").to_str().context("path")?, "HEAD"])?;
    repo.git(&["update-ref", "refs/heads/main", "FETCH_HEAD"])?;
    let keys = real.join("github-web-flow.asc");

    // The oracle: both web-flow keys at ultimate trust; SSH signers: nobody.
    let oracle = repo.tmp.path().join("oracle");
    private_home(&oracle)?;
    gpg(&oracle, &["--import", keys.to_str().context("path")?])?;
    let mut trust = String::new();
    for line in gpg(&oracle, &["--with-colons", "--list-keys"])?.lines().filter(|l| l.starts_with("fpr:")) {
        // Primary fingerprints only: each pub line is followed by its fpr line.
        trust.push_str(&format!("{}:6:\n", line.split(':').nth(9).unwrap_or_default()));
    }
    std::fs::write(repo.tmp.path().join("trust"), trust)?;
    gpg(&oracle, &["--import-ownertrust", repo.tmp.path().join("trust").to_str().context("path")?])?;
    let nobody = repo.tmp.path().join("allowed_signers");
    std::fs::write(&nobody, "# nobody\n")?;

    let out = repo
        .cmd("git")
        .env("GNUPGHOME", &oracle)
        .args(["-c", &format!("gpg.ssh.allowedSignersFile={}", nobody.display())])
        .args(["log", "--format=%H %G?", "main"])
        .output()?;
    let git_says: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    assert_eq!(git_says.len(), 2005, "fd.bundle's history");

    let policy = repo.policy(&format!(
        "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\nssh_allowed_signers = \"{}\"\n",
        keys.display(),
        nobody.display()
    ))?;
    let (code, v) = repo.verify_json(&policy, &["--no-cache", "main"])?;
    assert_eq!(code, 1, "unsigned commits fail signing.required");
    let mut agree = 0;
    let mut by_code = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (id, code) in &git_says {
        let ours = commit_entry(&v, id)["signature"]["status"].as_str().unwrap_or("?").to_string();
        *by_code.entry((code.clone(), ours.clone())).or_insert(0) += 1;
        if ours == from_git(code) {
            agree += 1;
        } else if disagreements.len() < 5 {
            disagreements.push(format!("{id}: git {code}, git-audit {ours}: {}", commit_entry(&v, id)["signature"]));
        }
    }
    assert_eq!(agree, 2005, "{by_code:?}\n{}", disagreements.join("\n"));
    // What the history holds, as git counts it.
    let count = |g: &str| by_code.iter().filter(|((c, _), _)| c == g).map(|(_, n)| n).sum::<i32>();
    assert_eq!((count("G"), count("Y"), count("N"), count("E"), count("U")), (404, 303, 1277, 16, 5), "{by_code:?}");

    // 501 of the web-flow signatures write their MPI with a bit count that does
    // not match the value: the leniency is what makes them readable.
    let ids: Vec<&str> = git_says.iter().map(|(id, _)| id.as_str()).collect();
    let list = repo.tmp.path().join("ids");
    std::fs::write(&list, ids.join("\n") + "\n")?;
    let objects = repo.cmd("git").args(["cat-file", "--batch"]).stdin(std::fs::File::open(&list)?).output()?.stdout;
    let mut non_canonical = 0;
    let mut rest = &objects[..];
    while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
        let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
        let size: usize = header.rsplit(' ').next().and_then(|s| s.parse().ok()).context("cat-file header")?;
        let body = &rest[nl + 1..nl + 1 + size];
        rest = &rest[nl + 2 + size..];
        let commit = git_audit::git::commit::ParsedCommit::parse(body, "gpgsig");
        if let Some(sig) = commit.signature.as_deref().filter(|s| s.starts_with(b"-----BEGIN PGP")) {
            let block = git_audit::signature::packets::read_signature_block(sig).map_err(anyhow::Error::msg)?;
            if block.normalised_mpis > 0 {
                non_canonical += 1;
            }
        }
    }
    assert_eq!(non_canonical, 501);
    Ok(())
}

/// A GnuPG home with the old-style keys, and a repository signed by them.
struct WeakKeys {
    home: PathBuf,
    oracle: PathBuf,
    /// (name, fingerprint, pinned key file)
    keys: Vec<(&'static str, String, PathBuf)>,
}

fn weak_keys(repo: &Repo) -> Result<WeakKeys> {
    let home = repo.tmp.path().join("weak-gnupg");
    let oracle = repo.tmp.path().join("weak-oracle");
    private_home(&home)?;
    private_home(&oracle)?;
    let mut keys = Vec::new();
    // (name, uid, algorithm, extra gpg options)
    let specs: [(&str, &str, &str, &[&str]); 3] = [
        ("sha1-self-signatures", "Old <old@example.com>", "rsa3072", &["--cert-digest-algo", "SHA1"]),
        ("dsa1024", "Dsa <dsa@example.com>", "dsa1024", &[]),
        ("sha1-data-signature", "Data <data@example.com>", "rsa3072", &[]),
    ];
    let mut trust = String::new();
    for (name, uid, algo, extra) in specs {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--quick-gen-key", uid, algo, "sign", "never"]);
        gpg(&home, &args)?;
        let fpr = fingerprint(&home, uid)?;
        let file = repo.tmp.path().join(format!("{name}.asc"));
        std::fs::write(&file, gpg(&home, &["--armor", "--export", &fpr])?)?;
        gpg(&oracle, &["--import", file.to_str().context("path")?])?;
        trust.push_str(&format!("{fpr}:6:\n"));
        keys.push((name, fpr, file));
    }
    std::fs::write(repo.tmp.path().join("weak-trust"), trust)?;
    gpg(&oracle, &["--import-ownertrust", repo.tmp.path().join("weak-trust").to_str().context("path")?])?;
    Ok(WeakKeys { home, oracle, keys })
}

#[test]
fn older_keys_are_refused_by_name_under_strict_and_accepted_with_a_warning_under_gnupg() -> Result<()> {
    let repo = Repo::new()?;
    let weak = weak_keys(&repo)?;
    let sha1 = repo.tmp.path().join("gpg-sha1");
    std::fs::write(&sha1, "#!/bin/sh\nexec gpg --digest-algo SHA1 \"$@\"\n")?;
    std::fs::set_permissions(&sha1, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut ids = BTreeMap::new();
    for (n, (name, fpr, _)) in weak.keys.iter().enumerate() {
        std::fs::write(repo.path.join(format!("{name}.txt")), format!("{n}\n"))?;
        repo.git(&["add", "."])?;
        let program = if *name == "sha1-data-signature" { sha1.to_str().context("path")? } else { "gpg" };
        let out = repo
            .cmd("git")
            .env("GNUPGHOME", &weak.home)
            .args(["-c", "gpg.format=openpgp", "-c", &format!("gpg.program={program}"), "-c", &format!("user.signingkey={fpr}")])
            .args(["commit", "-q", "-S", "-m", &format!("feat: signed by {name}")])
            .output()?;
        ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ids.insert(*name, repo.git(&["rev-parse", "HEAD"])?);
    }
    // git says G for every one of them.
    for id in ids.values() {
        let g = repo.cmd("git").env("GNUPGHOME", &weak.oracle).args(["log", "-1", "--format=%G?", id]).output()?;
        assert_eq!(String::from_utf8_lossy(&g.stdout).trim(), "G", "git's verdict on {id}");
    }
    let pinned: Vec<String> = weak.keys.iter().map(|(_, _, f)| format!("\"{}\"", f.display())).collect();
    let policy_text = |mode: &str| format!("version = 1\n[signing]\nrequired = true\n{mode}openpgp_keys = [{}]\n", pinned.join(", "));

    // strict (the default): error, with the packet, the algorithm and the fix.
    let strict = repo.policy(&policy_text(""))?;
    let (code, v) = repo.verify_json(&strict, &["HEAD"])?;
    assert_eq!(code, 1);
    let expect = [
        ("sha1-self-signatures", "user-ID self-signature on \"Old <old@example.com>\" uses SHA-1", "gpg --quick-set-expire"),
        ("dsa1024", "primary key uses DSA-1024", "make a new signing key"),
        ("sha1-data-signature", "data signature uses SHA-1", "sign with SHA-256"),
    ];
    for (name, named, fix) in expect {
        let e = commit_entry(&v, &ids[name]);
        assert_eq!(e["signature"]["status"], "error", "{name}: {e}");
        let detail = e["signature"]["detail"].as_str().unwrap_or("");
        assert!(detail.contains(named) && detail.contains("strict OpenPGP policy"), "{name}: {detail}");
        assert_eq!(rules(e), vec!["signing.required"], "{name}");
        // The finding's fix is the remedy for what was named, not a generic "re-sign".
        let how = e["findings"][0]["fix"].as_str().unwrap_or("");
        assert!(how.contains(fix) && how.contains("openpgp_policy = \"gnupg\""), "{name}: {how}");
    }
    // policy check says so up front, per key (a warning: the policy still loads).
    let (code, out, err) = repo.audit(&["--policy", strict.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    for (name, fpr, _) in &weak.keys {
        if *name == "sha1-data-signature" {
            assert!(!said.contains(fpr.as_str()), "a sound key is not named: {said}");
        } else {
            assert!(said.contains(fpr.as_str()) && said.contains("cannot be used under the strict OpenPGP policy"), "{name}: {said}");
        }
    }

    // keys list names the weakness and its remedy per key.
    let (code, out, err) = repo.audit(&["--policy", strict.to_str().context("path")?, "keys", "list", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out)?;
    let entry = |fpr: &str| listed.as_array().and_then(|a| a.iter().find(|k| k["fingerprint"] == fpr).cloned()).unwrap_or_default();
    let dsa = entry(&weak.keys[1].1);
    assert_eq!(dsa["status"], "valid", "valid as GnuPG judges it: {dsa}");
    assert!(dsa["weak"].to_string().contains("DSA-1024") && dsa["fix"].as_str().unwrap_or("").contains("new signing key"), "{dsa}");
    assert!(entry(&weak.keys[2].1).get("weak").is_none(), "a sound key lists no weakness");
    // keys add says it before the first commit is judged.
    let fresh = repo.tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh)?;
    std::fs::write(fresh.join("policy.toml"), "version = 1\n[signing]\nrequired = true\n")?;
    let (code, _, err) = repo.audit(&[
        "--policy",
        fresh.join("policy.toml").to_str().context("path")?,
        "keys",
        "add",
        "--gpg",
        weak.keys[0].2.to_str().context("path")?,
    ])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("relies on weak cryptography") && err.contains("SHA-1") && err.contains("quick-set-expire"), "{err}");

    // gnupg: git's verdicts, each with a signing.weak-algorithm warning naming it.
    let gnupg = repo.policy(&policy_text("openpgp_policy = \"gnupg\"\n"))?;
    let (code, v) = repo.verify_json(&gnupg, &["HEAD"])?;
    assert_eq!(code, 0, "warnings only: {v}");
    for (name, named, _) in expect {
        let e = commit_entry(&v, &ids[name]);
        assert_eq!(e["signature"]["status"], "good", "{name}: {e}");
        assert_eq!(e["verdict"], "pass");
        let f = &e["findings"][0];
        assert_eq!(f["rule"], "signing.weak-algorithm", "{name}: {e}");
        assert_eq!(f["severity"], "warning");
        assert!(f["message"].as_str().unwrap_or("").contains(named), "{name}: {f}");
    }
    // [rules] can make it enforce.
    let enforced = repo.policy(&(policy_text("openpgp_policy = \"gnupg\"\n") + "[rules]\n\"signing.weak-algorithm\" = \"enforce\"\n"))?;
    let (code, _) = repo.verify_json(&enforced, &["HEAD"])?;
    assert_eq!(code, 1);
    // A bad value is named at its place.
    let bad = repo.policy(&policy_text("openpgp_policy = \"lax\"\n"))?;
    let (code, _, err) = repo.audit(&["--policy", bad.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 2);
    assert!(err.contains(":4:") && err.contains("strict") && err.contains("gnupg"), "{err}");
    Ok(())
}
