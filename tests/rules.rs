//! Commit metadata rules, modes, exemptions, baseline, and the output contract.

use anyhow::Result;

use crate::support::{commit_entry, keys, pinned_policy, rules, Repo, Sign};

const METADATA: &str = r#"
[commits]
required_trailers = ["Signed-off-by"]
signoff_matches_author = true
subject_pattern = '^(feat|fix|docs|refactor|test|chore|perf)(\(.+\))?!?: .+'
max_subject_length = 40
allowed_email_domains = ["example.com"]
"#;

#[test]
fn metadata_rules_each_fire_with_their_id() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let ok = repo.commit("feat: fine\n\nSigned-off-by: Alice <alice@example.com>", Sign::Pgp(&k.alice))?;
    let no_trailer = repo.commit("feat: no trailer", Sign::Pgp(&k.alice))?;
    let bad_subject = repo.commit("Updated stuff\n\nSigned-off-by: Alice <alice@example.com>", Sign::Pgp(&k.alice))?;
    let long =
        repo.commit("feat: a subject line that goes on and on and on\n\nSigned-off-by: Alice <alice@example.com>", Sign::Pgp(&k.alice))?;
    let wrong_signoff = repo.commit("fix: signed off by someone else\n\nSigned-off-by: Bob <bob@example.com>", Sign::Pgp(&k.alice))?;
    let outsider = repo.commit_as("fix: outsider\n\nSigned-off-by: Olga <olga@other.org>", Sign::None, Some(("Olga", "olga@other.org")))?;

    let policy = repo.policy(&pinned_policy(METADATA))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 1);
    assert_eq!(rules(commit_entry(&v, &ok)), Vec::<String>::new());
    assert_eq!(commit_entry(&v, &ok)["verdict"], "pass");
    assert_eq!(rules(commit_entry(&v, &no_trailer)), vec!["commits.trailer"]);
    assert_eq!(rules(commit_entry(&v, &bad_subject)), vec!["commits.subject"]);
    assert_eq!(rules(commit_entry(&v, &long)), vec!["commits.subject-length"]);
    assert_eq!(rules(commit_entry(&v, &wrong_signoff)), vec!["commits.signoff"]);
    assert_eq!(rules(commit_entry(&v, &outsider)), vec!["signing.required", "commits.email-domain", "commits.email-domain"]);
    // Every finding says what to do.
    for c in v["commits"].as_array().into_iter().flatten() {
        for f in c["findings"].as_array().into_iter().flatten() {
            assert!(f["fix"].as_str().is_some_and(|s| !s.is_empty()), "no fix in {f}");
            assert_eq!(f["severity"], "error");
        }
    }
    Ok(())
}

#[test]
fn json_has_the_documented_shape() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let a = repo.commit("feat: one", Sign::Pgp(&k.alice))?;
    let b = repo.commit("feat: two", Sign::None)?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["main"])?;
    assert_eq!(code, 1);
    let commits = v["commits"].as_array().expect("commits array");
    assert_eq!(commits.len(), 2);
    // Newest first.
    assert_eq!(commits[0]["id"], b.as_str());
    assert_eq!(commits[1]["id"], a.as_str());
    for c in commits {
        assert_eq!(c["id"].as_str().map(str::len), Some(40));
        assert!(c["subject"].is_string());
        assert!(c["verdict"] == "pass" || c["verdict"] == "fail");
        let s = &c["signature"];
        for field in ["status", "format", "signer", "key"] {
            assert!(s.get(field).is_some(), "signature.{field} missing in {s}");
        }
        assert!(c["findings"].is_array());
    }
    assert_eq!(commits[0]["findings"][0]["rule"], "signing.required");
    assert!(commits[0]["findings"][0]["message"].as_str().is_some_and(|m| m.contains("missing")));
    assert_eq!(v["summary"]["checked"], 2);
    assert_eq!(v["summary"]["failed"], 1);
    Ok(())
}

#[test]
fn text_output_names_commit_rule_and_fix() -> Result<()> {
    let repo = Repo::new()?;
    let id = repo.commit("feat: unsigned work", Sign::None)?;
    let policy = repo.policy(&pinned_policy("[commits]\nrequired_trailers = [\"Signed-off-by\"]\n"))?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "HEAD"])?;
    assert_eq!(code, 1, "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("FAIL {}", &id[..10])), "{out}");
    assert!(first.contains("feat: unsigned work") && first.contains("signing.required") && first.contains("commits.trailer"), "{out}");
    assert!(out.contains("git config commit.gpgsign true"), "{out}");
    assert!(out.contains("git commit --amend -s --no-edit"), "{out}");
    assert!(out.contains("1 commit checked: 1 failed"), "{out}");
    assert!(!out.contains('\x1b'), "no colour when not a TTY");
    Ok(())
}

#[test]
fn warn_mode_reports_without_failing() -> Result<()> {
    let repo = Repo::new()?;
    let id = repo.commit("feat: unsigned", Sign::None)?;
    // Global warn.
    let policy = repo.policy(&pinned_policy("").replacen("version = 1\n", "version = 1\nmode = \"warn\"\n", 1))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 0, "{v}");
    let e = commit_entry(&v, &id);
    assert_eq!(e["verdict"], "pass");
    assert_eq!(e["findings"][0]["severity"], "warning");
    assert_eq!(v["summary"]["warned"], 1);
    // Per-section warn, per-rule enforce wins over it.
    let policy = repo.policy(&pinned_policy("mode = \"warn\"\n[rules]\n\"signing.required\" = \"enforce\"\n"))?;
    let (code, _) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 1);
    // Per-rule off removes the finding.
    let policy = repo.policy(&pinned_policy("[rules]\n\"signing.required\" = \"off\"\n"))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 0);
    assert_eq!(rules(commit_entry(&v, &id)), Vec::<String>::new());
    Ok(())
}

#[test]
fn exempt_identities_skip_signing_visibly() -> Result<()> {
    // An exempt committer email holds only with a good signature by a pinned
    // key (here: a key that is not the bot's, as GitHub's web-flow key signs
    // dependabot's commits), never by the email alone.
    let k = crate::support::keys();
    let repo = Repo::new()?;
    let dependabot = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com");
    let claimed = repo.commit_as("chore: claims to be dependabot", Sign::None, Some(dependabot))?;
    let bot = repo.commit_as("chore: bump deps", Sign::Pgp(&k.bob), Some(dependabot))?;
    let human = repo.commit("feat: human, unsigned", Sign::None)?;
    let policy = repo.policy(&pinned_policy("exempt_identities = [\"*[bot]@users.noreply.github.com\"]\n"))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 1);
    let b = commit_entry(&v, &bot);
    assert_eq!(b["verdict"], "pass", "signed by a pinned key, identity binding skipped: {b}");
    assert!(b["exempt"].as_str().is_some_and(|s| s.contains("dependabot") && s.contains("signed by a pinned key")), "{b}");
    let c = commit_entry(&v, &claimed);
    assert_eq!(c["verdict"], "fail", "an email alone is never enough: {c}");
    assert!(c["findings"][0]["message"].as_str().unwrap_or("").contains("an email alone is never enough"), "{c}");
    assert_eq!(commit_entry(&v, &human)["verdict"], "fail");
    assert_eq!(v["summary"]["exempt"], 1);
    let (_, out, _) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "HEAD"])?;
    assert!(out.contains(&format!("exempt {}", &bot[..10])), "{out}");
    Ok(())
}

#[test]
fn baseline_accepts_old_history() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    repo.commit("old unsigned 1", Sign::None)?;
    let base = repo.commit("old unsigned 2", Sign::None)?;
    let new = repo.commit("feat: new and signed", Sign::Pgp(&k.alice))?;
    let policy = repo.policy(&pinned_policy("[commits]\nsubject_pattern = '^feat: '\n").replacen(
        "[signing]",
        &format!("baseline = \"{base}\"\n[signing]"),
        1,
    ))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["summary"]["checked"], 1);
    assert_eq!(v["commits"][0]["id"], new.as_str());
    // A baseline that is not in the repository is a configuration error naming the policy line.
    let policy =
        repo.policy(&pinned_policy("").replacen("[signing]", "baseline = \"deadbeefdeadbeefdeadbeefdeadbeefdeadbeef\"\n[signing]", 1))?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "HEAD"])?;
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("policy.toml:2:12") && err.contains("baseline deadbeef"), "{err}");
    Ok(())
}

#[test]
fn odd_commits_get_a_verdict_not_a_panic() -> Result<()> {
    let repo = Repo::new()?;
    repo.commit("feat: first", Sign::None)?;
    // Non-UTF-8 author name and message, declared Latin-1.
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"])?;
    let parent = repo.git(&["rev-parse", "HEAD"])?;
    let mut raw = format!("tree {tree}\nparent {parent}\n").into_bytes();
    raw.extend_from_slice(b"author J\xf6rg <jorg@example.com> 1767225600 +0000\ncommitter J\xf6rg <jorg@example.com> 1767225600 +0000\nencoding ISO-8859-1\n\nfeat: gr\xfc\xdfe\n");
    let latin = write_commit(&repo, &raw, "latin")?;
    // A huge message (4 MiB).
    let mut big = format!("tree {tree}\nparent {parent}\nauthor A <a@example.com> 1767225600 +0000\ncommitter A <a@example.com> 1767225600 +0000\n\nfeat: big\n\n").into_bytes();
    big.extend(std::iter::repeat_n(b'x', 4 << 20));
    let huge = write_commit(&repo, &big, "huge")?;
    // A garbage signature header.
    let garbage = format!("tree {tree}\nparent {parent}\nauthor A <a@example.com> 1767225600 +0000\ncommitter A <a@example.com> 1767225600 +0000\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n Zm9v\n -----END PGP SIGNATURE-----\n\nfeat: garbage sig\n");
    let bad_sig = write_commit(&repo, garbage.as_bytes(), "badsig")?;
    let ssh_garbage = format!("tree {tree}\nparent {parent}\nauthor A <a@example.com> 1767225600 +0000\ncommitter A <a@example.com> 1767225600 +0000\ngpgsig -----BEGIN SSH SIGNATURE-----\n AAAA\n -----END SSH SIGNATURE-----\n\nfeat: garbage ssh sig\n");
    let bad_ssh = write_commit(&repo, ssh_garbage.as_bytes(), "badssh")?;
    let x509 = format!("tree {tree}\nparent {parent}\nauthor A <a@example.com> 1767225600 +0000\ncommitter A <a@example.com> 1767225600 +0000\ngpgsig -----BEGIN SIGNED MESSAGE-----\n MIIB\n -----END SIGNED MESSAGE-----\n\nfeat: gitsign\n");
    let x509 = write_commit(&repo, x509.as_bytes(), "x509")?;

    let policy = repo.policy(&pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &["latin", "huge", "badsig", "badssh", "x509", "^main"])?;
    assert_eq!(code, 1);
    assert_eq!(v["summary"]["checked"], 5);
    let l = commit_entry(&v, &latin);
    assert!(l["author"].as_str().is_some_and(|a| a.contains("jorg@example.com")), "{l}");
    assert_eq!(l["signature"]["status"], "missing");
    assert_eq!(commit_entry(&v, &huge)["subject"], "feat: big");
    assert_eq!(commit_entry(&v, &bad_sig)["signature"]["status"], "error");
    assert_eq!(commit_entry(&v, &bad_ssh)["signature"]["status"], "error");
    let x = commit_entry(&v, &x509);
    assert_eq!(x["signature"]["format"], "x509");
    assert_eq!(x["signature"]["status"], "error");
    assert!(x["signature"]["detail"].as_str().is_some_and(|d| d.contains("x509 verification not supported yet")));
    Ok(())
}

fn write_commit(repo: &Repo, raw: &[u8], branch: &str) -> Result<String> {
    let path = repo.tmp.path().join(format!("{branch}.commit"));
    std::fs::write(&path, raw)?;
    let id = repo.git(&["hash-object", "-t", "commit", "-w", "--literally", path.to_str().unwrap_or_default()])?;
    repo.git(&["update-ref", &format!("refs/heads/{branch}"), &id])?;
    Ok(id)
}

#[test]
fn ranges_follow_git_syntax() -> Result<()> {
    let repo = Repo::new()?;
    let a = repo.commit("feat: a", Sign::None)?;
    let b = repo.commit("feat: b", Sign::None)?;
    repo.git(&["checkout", "-q", "-b", "topic", &a])?;
    let c = repo.commit("feat: c", Sign::None)?;
    let policy = repo.policy("version = 1\n")?;
    let count = |range: &[&str]| -> Result<Vec<String>> {
        let (_, v) = repo.verify_json(&policy, range)?;
        let mut ids: Vec<String> =
            v["commits"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str().map(String::from)).collect();
        ids.sort();
        Ok(ids)
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(count(&["main..topic"])?, vec![c.clone()]);
    assert_eq!(count(&["main...topic"])?, sorted(vec![b.clone(), c.clone()]));
    assert_eq!(count(&["topic", "^main"])?, vec![c.clone()]);
    assert_eq!(count(&["--all"])?, sorted(vec![a.clone(), b.clone(), c.clone()]));
    assert_eq!(count(&[&a])?, vec![a.clone()]);
    let (code, _, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "no-such-branch"])?;
    assert_eq!(code, 2);
    assert!(err.contains("no-such-branch"), "{err}");
    Ok(())
}

#[test]
fn works_as_a_git_subcommand() -> Result<()> {
    let repo = Repo::new()?;
    repo.commit("feat: x", Sign::None)?;
    repo.policy("version = 1\n")?;
    let bin_dir = std::path::Path::new(crate::support::BIN).parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let policy = repo.tmp.path().join("policy.toml");
    let out = repo
        .cmd("git")
        .env("PATH", path)
        .args(["audit", "--policy", policy.to_str().unwrap_or_default(), "verify", "--format", "json", "HEAD"])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["summary"]["checked"], 1);
    Ok(())
}
