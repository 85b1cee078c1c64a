//! The server hook under attack: each way a developer with push access tried to
//! land refused work or loosen the rules, as a real `git push` into a bare
//! repository with the hooks installed, next to its legitimate twin.

use std::io::Write;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::hooks::{push, signing_policy, Server, MAIN_RULES};
use crate::support::{keys, Pgp, Repo, Sign};

/// A server in default-branch policy mode: no `audit.policy`, the policy is
/// `.git-audit.toml` as committed on `main` (seeded directly, as an admin would).
fn default_branch_server(repo: &Repo, policy: &str, files: &[(&str, &[u8])]) -> Result<Server> {
    let server = Server::new(repo, "version = 1\n", "sha1")?;
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "config", "--unset", "audit.policy"])?;
    for (name, data) in files {
        let p = repo.path.join(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, data)?;
    }
    std::fs::write(repo.path.join(".git-audit.toml"), policy)?;
    repo.git(&["add", "."])?;
    commit_signed_by(repo, &keys().bob, "chore: policy")?;
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "fetch", "-q", repo.path.to_str().context("path")?, "main:main"])?;
    repo.git(&["fetch", "-q", "origin"])?;
    Ok(server)
}

/// Commits what is staged, signed by `k` and committed under its identity.
fn commit_signed_by(repo: &Repo, k: &Pgp, message: &str) -> Result<String> {
    repo.git(&[
        "-c",
        &format!("user.name={}", k.name),
        "-c",
        &format!("user.email={}", k.email),
        "-c",
        &format!("user.signingkey={}", k.fpr),
        "commit",
        "-q",
        "-S",
        "-m",
        message,
    ])?;
    repo.git(&["rev-parse", "HEAD"])
}

/// Writes a raw commit object (git would refuse to make most of these itself).
fn raw_commit(repo: &Repo, raw: &[u8]) -> Result<String> {
    let mut child = repo
        .cmd("git")
        .args(["hash-object", "-t", "commit", "-w", "--literally", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(raw)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("hash-object failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An armored detached OpenPGP signature over `payload` by `k`.
fn pgp_sign(repo: &Repo, k: &Pgp, payload: &[u8]) -> Result<String> {
    let mut child = repo
        .cmd("gpg")
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", "", "-u", &k.fpr, "--armor", "--detach-sign"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(payload)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gpg failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The signature as a `gpgsig` header (continuation lines start with a space).
fn gpgsig_header(sig: &str) -> String {
    format!("gpgsig {}\n", sig.trim_end().replace('\n', "\n "))
}

/// `git commit-tree` with these parents and tree, signed by `k`.
fn signed_commit_tree(repo: &Repo, k: &Pgp, parents: &[&str], tree: &str, message: &str) -> Result<String> {
    let signing_key = format!("user.signingkey={}", k.fpr);
    let mut args = vec!["-c", &signing_key, "commit-tree", "-S"];
    for p in parents {
        args.extend(["-p", p]);
    }
    args.extend(["-m", message, tree]);
    repo.git(&args)
}

fn ident(who: &Pgp) -> String {
    format!("{} <{}> 1767225600 +0000", who.name, who.email)
}

#[test]
fn unchecked_commits_cannot_walk_onto_a_new_protected_ref_or_tag() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let rules = "[[branches]]\npattern = \"refs/heads/wip/*\"\nmode = \"warn\"\n\
                 [[branches]]\npattern = \"refs/heads/release/*\"\nforbid_force_push = true\nforbid_deletion = true\n\
                 [[branches]]\npattern = \"refs/tags/v*\"\nrequire_signed_tags = true\n";
    let server = Server::new(&repo, &signing_policy(rules), "sha1")?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let parked = repo.commit("feat: parked, unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/wip/x"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("signing.required [warn]"), "{err}");

    // A new enforce-mode branch at the parked commit: the commit is checked now.
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/release/1"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refs/heads/release/1:") && err.contains(&format!("{} feat: parked, unsigned — signing.required", &parked[..10])),
        "{err}"
    );
    assert_eq!(server.tip(&repo, "refs/heads/release/1"), None);
    // A new unprotected branch (the global mode enforces) at the parked commit: checked too.
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/feature/x"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&parked[..10]), "{err}");
    // A signed annotated tag under the enforce-mode pattern, pointing at it.
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "tag", "-s", "-m", "release", "v1.0"])?;
    let (code, err) = push(&repo, &["origin", "v1.0"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refs/tags/v1.0:") && err.contains(&format!("{} feat: parked, unsigned — signing.required", &parked[..10])),
        "{err}"
    );

    // The legitimate twins: signed work parked on wip/ may be released and tagged.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    let signed = repo.commit("feat: parked, signed", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "HEAD:refs/heads/wip/y"], &[])?.0, 0);
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/release/2"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/release/2").as_deref(), Some(signed.as_str()));
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "tag", "-s", "-m", "release", "v2.0"])?;
    let (code, err) = push(&repo, &["origin", "v2.0"], &[])?;
    assert_eq!(code, 0, "{err}");
    // A branch made from protected, enforced history needs no new check.
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/topic"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn a_policy_rollback_by_merge_needs_a_policy_admin() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    // The loose policy first (no signing), then bob (the admin) tightens it.
    std::fs::write(repo.path.join(".git-audit.toml"), "version = 1\n[roles]\npolicy-admin = [\"bob@example.com\"]\n")?;
    repo.git(&["add", "."])?;
    let loose = commit_signed_by(&repo, &k.bob, "chore: loose policy")?;
    let strict = "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\n[roles]\npolicy-admin = [\"bob@example.com\"]\n";
    let alice_key = std::fs::read(&k.alice.asc)?;
    let bob_key = std::fs::read(&k.bob.asc)?;
    let server = default_branch_server(&repo, strict, &[("keys/alice.asc", &alice_key), ("keys/bob.asc", &bob_key)])?;
    let tip = repo.git(&["rev-parse", "HEAD"])?;

    // Alice signs a merge of the old loose commit that takes its tree (and so its policy).
    let old_tree = repo.git(&["rev-parse", &format!("{loose}^{{tree}}")])?;
    let merge = signed_commit_tree(&repo, &k.alice, &[&tip, &loose], &old_tree, "Merge old work")?;
    repo.git(&["reset", "-q", "--hard", &merge])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{} Merge old work — policy.admin (changes .git-audit.toml but is not signed by a policy admin (bob@example.com))",
            &merge[..10]
        )),
        "{err}"
    );
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(tip.as_str()));
    // A good merge that leaves the policy alone needs no admin.
    repo.git(&["reset", "-q", "--hard", &tip])?;
    repo.git(&["checkout", "-q", "-b", "side"])?;
    repo.commit("feat: side work", Sign::Pgp(&k.alice))?;
    repo.git(&["checkout", "-q", "main"])?;
    repo.commit("feat: main work", Sign::Pgp(&k.alice))?;
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "merge", "-q", "-S", "--no-ff", "-m", "Merge side", "side"])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    let tip = repo.git(&["rev-parse", "HEAD"])?;
    // The default branch can be neither force-pushed nor deleted in this mode.
    let (code, err) = push(&repo, &["origin", ":main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("branches.deletion: refs/heads/main may not be deleted"), "{err}");
    repo.git(&["reset", "-q", "--hard", &loose])?;
    let (code, err) = push(&repo, &["-f", "origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("branches.force-push"), "{err}");

    // The twin: bob, the admin, may sign the same rollback.
    let merge = signed_commit_tree(&repo, &k.bob, &[&tip, &loose], &old_tree, "Merge old work (admin)")?;
    repo.git(&["reset", "-q", "--hard", &merge])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(merge.as_str()));
    Ok(())
}

#[test]
fn a_hidden_parent_after_the_committer_is_ignored_as_git_ignores_it() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let admin_only = "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\n[roles]\npolicy-admin = [\"bob@example.com\"]\n";
    let alice_key = std::fs::read(&k.alice.asc)?;
    let bob_key = std::fs::read(&k.bob.asc)?;
    let server = default_branch_server(&repo, admin_only, &[("keys/alice.asc", &alice_key), ("keys/bob.asc", &bob_key)])?;
    let tip = repo.git(&["rev-parse", "HEAD"])?;
    // A side commit carrying a looser policy file (never pushed to main).
    repo.git(&["checkout", "-q", "-b", "loose"])?;
    let loose_text =
        admin_only.replace("[roles]\npolicy-admin = [\"bob@example.com\"]\n", "[roles]\npolicy-admin = [\"alice@example.com\"]\n");
    std::fs::write(repo.path.join(".git-audit.toml"), &loose_text)?;
    repo.git(&["add", "."])?;
    let loose = commit_signed_by(&repo, &k.alice, "chore: side")?;
    // The looser commit is on the server too (an unprotected branch may hold it).
    let (code, err) = push(&repo, &["origin", "loose:refs/heads/side"], &[])?;
    assert_eq!(code, 0, "{err}");
    let tree = repo.git(&["rev-parse", &format!("{loose}^{{tree}}")])?;
    // tree, parent <main tip>, author, committer, then a `parent <loose>` git ignores.
    let payload = format!(
        "tree {tree}\nparent {tip}\nauthor {a}\ncommitter {a}\nparent {loose}\n\nchore: make alice the admin\n",
        a = ident(&k.alice)
    );
    let sig = pgp_sign(&repo, &k.alice, payload.as_bytes())?;
    let raw = payload.replacen("\n\nchore:", &format!("\n{}\nchore:", gpgsig_header(&sig)), 1);
    let id = raw_commit(&repo, raw.as_bytes())?;
    // git sees one parent: a fast-forward of main.
    assert_eq!(repo.git(&["rev-list", "--parents", "--no-walk", &id])?, format!("{id} {tip}"));
    let parsed = git_audit::git::ParsedCommit::parse(raw.as_bytes(), "gpgsig");
    assert_eq!(parsed.parents, vec![tip.clone()]);
    repo.git(&["reset", "-q", "--hard", &id])?;
    let (code, err) = push(&repo, &["origin", "HEAD:main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy.admin (changes .git-audit.toml but is not signed by a policy admin (bob@example.com))"), "{err}");
    assert!(err.contains("commits.malformed") && err.contains("git ignores a `parent` line"), "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(tip.as_str()));
    Ok(())
}

#[test]
fn key_files_the_policy_loads_need_a_policy_admin_too() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let policy = "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\nssh_allowed_signers = \"allowed_signers\"\n[roles]\npolicy-admin = [\"bob@example.com\"]\n";
    let alice_key = std::fs::read(&k.alice.asc)?;
    let bob_key = std::fs::read(&k.bob.asc)?;
    let signers = format!("{} namespaces=\"git\" {}\n", k.ssh_alice.email, k.ssh_alice.public_line);
    let server = default_branch_server(
        &repo,
        policy,
        &[("keys/alice.asc", &alice_key), ("keys/bob.asc", &bob_key), ("allowed_signers", signers.as_bytes())],
    )?;
    let tip = repo.git(&["rev-parse", "HEAD"])?;
    // Alice adds erin's SSH key under the admin's email.
    let forged = format!("{signers}bob@example.com namespaces=\"git\" {}\n", k.ssh_erin.public_line);
    std::fs::write(repo.path.join("allowed_signers"), &forged)?;
    repo.git(&["add", "."])?;
    let id = commit_signed_by(&repo, &k.alice, "chore: add a signer")?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{} chore: add a signer — policy.admin (changes allowed_signers, which the policy loads, but is not signed by a policy admin",
            &id[..10]
        )),
        "{err}"
    );
    // Or an OpenPGP key into the pinned folder.
    repo.git(&["reset", "-q", "--hard", &tip])?;
    std::fs::copy(&k.mallory.asc, repo.path.join("keys/mallory.asc"))?;
    repo.git(&["add", "."])?;
    commit_signed_by(&repo, &k.alice, "chore: pin a key")?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy.admin (changes keys, which the policy loads, but is not signed by a policy admin"), "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(tip.as_str()));
    // The twin: bob adds the key; and other files need no admin.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    std::fs::copy(&k.mallory.asc, repo.path.join("keys/mallory.asc"))?;
    repo.git(&["add", "."])?;
    commit_signed_by(&repo, &k.bob, "chore: pin a key (admin)")?;
    repo.commit("feat: ordinary work", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn refs_audit_is_git_audits_own_and_the_ledger_remembers_its_anchor() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy("[roles]\nbreakglass = [\"oncall@example.com\"]\n"), "sha1")?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let in_server = |args: &[&str]| -> Result<(i32, String, String)> {
        let mut c = repo.cmd(crate::support::BIN);
        c.current_dir(&server.path).args(args);
        let out = c.output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (code, out, err) = in_server(&["ledger", "anchor"])?;
    assert_eq!(code, 0, "{out}{err}");
    let first_anchor = repo.git(&["--git-dir", server.path.to_str().context("path")?, "rev-parse", "refs/audit/checkpoints"])?;

    // No pusher may delete, move or create anything under refs/audit/, break glass or not.
    let (code, err) = push(&repo, &["origin", ":refs/audit/checkpoints"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refs.reserved: refs/audit/checkpoints is under refs/audit/"), "{err}");
    let (code, err) =
        push(&repo, &["-o", "audit.bypass=INC-1", "origin", ":refs/audit/checkpoints"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refs.reserved"), "{err}");
    let (code, err) = push(&repo, &["origin", "HEAD:refs/audit/forged"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refs.reserved: refs/audit/forged"), "{err}");
    // A ref named `refs/audit` itself would block every anchor (git's directory/file conflict).
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "update-ref", "-d", "refs/audit/checkpoints"])?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/audit"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refs.reserved: refs/audit is under refs/audit/"), "{err}");
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "update-ref", "refs/audit/checkpoints", &first_anchor])?;
    assert_eq!(server.tip(&repo, "refs/audit/checkpoints").as_deref(), Some(first_anchor.as_str()));

    // More entries, a second anchor; then the ref is rewound, then deleted behind git-audit's back.
    repo.commit("feat: more", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let (code, out, err) = in_server(&["ledger", "anchor"])?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = in_server(&["ledger", "verify"])?;
    assert_eq!(code, 0, "{out}");
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "update-ref", "refs/audit/checkpoints", &first_anchor])?;
    let (code, out, _) = in_server(&["ledger", "verify"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("went backwards"), "{out}");
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "update-ref", "-d", "refs/audit/checkpoints"])?;
    let (code, out, _) = in_server(&["ledger", "verify"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refs/audit/checkpoints is missing"), "{out}");
    let (code, out, _) = in_server(&["ledger", "status"])?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("MISSING") && out.contains("last anchored size"), "{out}");
    Ok(())
}

#[test]
fn a_duplicated_signature_header_is_an_error_as_git_says() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(MAIN_RULES), "sha1")?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let signed = repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    let raw = repo.git(&["cat-file", "commit", &signed])? + "\n";
    let (headers, message) = raw.split_once("\n\n").context("headers")?;
    let sig_start = headers.find("\ngpgsig ").context("gpgsig")? + 1;
    let sig = &headers[sig_start..];
    let doubled = format!("{headers}\n{sig}\n\n{message}");
    let copy = raw_commit(&repo, doubled.as_bytes())?;
    assert_ne!(copy, signed, "a new commit id for the same signed content");
    assert_eq!(repo.git_oracle(&copy)?, "E", "git's own verdict");
    let policy = repo.policy(&crate::support::pinned_policy(""))?;
    let (code, v) = repo.verify_json(&policy, &[&format!("{copy}~1..{copy}")])?;
    assert_eq!(code, 1);
    let entry = crate::support::commit_entry(&v, &copy);
    assert_eq!(entry["signature"]["status"], "error", "{v}");
    assert!(crate::support::rules(entry).contains(&"commits.malformed".to_string()), "{v}");
    repo.git(&["reset", "-q", "--hard", &copy])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("signing.required (signature error: the commit carries more than one signature header)"), "{err}");
    // The original, once, is fine.
    repo.git(&["reset", "-q", "--hard", &signed])?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(signed.as_str()));
    Ok(())
}

#[test]
fn malformed_commits_are_findings_not_crashes() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(MAIN_RULES), "sha1")?;
    let base = repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"])?;
    let a = ident(&k.alice);
    let policy = repo.policy(&crate::support::pinned_policy(""))?;
    let cases = [
        ("no author", format!("tree {tree}\nparent {base}\ncommitter {a}\n\nfeat: x\n"), "no author header"),
        (
            "absurd date",
            format!("tree {tree}\nparent {base}\nauthor Alice <alice@example.com> 99999999999999999999 +0000\ncommitter {a}\n\nfeat: x\n"),
            "out of range",
        ),
        ("gpgsig before parent", format!("tree {tree}\ngpgsig x\nparent {base}\nauthor {a}\ncommitter {a}\n\nfeat: x\n"), "out of place"),
    ];
    for (name, raw, says) in cases {
        let id = raw_commit(&repo, raw.as_bytes())?;
        let (code, err) = push(&repo, &["origin", &format!("+{id}:refs/heads/main")], &[])?;
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains("commits.malformed") && err.contains(says), "{name}: {err}");
        assert!(!err.contains("could not run"), "{name}: a finding, not an error: {err}");
        let (code, out, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--format", "json", &id])?;
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(out.contains("commits.malformed"), "{name}: {out}");
    }
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(base.as_str()));
    Ok(())
}

/// A tiny deterministic generator (no test needs real randomness).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn parents_agree_with_git_on_random_header_orders() -> Result<()> {
    let repo = Repo::new()?;
    let p1 = repo.commit("one", Sign::None)?;
    let p2 = repo.commit("two", Sign::None)?;
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"])?;
    let who = "A <a@example.com> 1767225600 +0000";
    let headers = [
        format!("tree {tree}"),
        format!("parent {p1}"),
        format!("parent {p2}"),
        format!("author {who}"),
        format!("committer {who}"),
        "encoding ISO-8859-1".to_string(),
        "gpgsig -----BEGIN PGP SIGNATURE-----\n x\n -----END PGP SIGNATURE-----".to_string(),
    ];
    let mut rng = Lcg(7);
    let mut disagreements = Vec::new();
    for round in 0..60 {
        let mut order: Vec<usize> = (0..headers.len()).collect();
        if round > 0 {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.next(i + 1));
            }
        }
        let keep = if round % 5 == 4 { order.len() - 1 } else { order.len() };
        let raw: String = order[..keep].iter().map(|&i| format!("{}\n", headers[i])).collect::<String>() + "\nmsg\n";
        let id = raw_commit(&repo, raw.as_bytes())?;
        let parsed = git_audit::git::ParsedCommit::parse(raw.as_bytes(), "gpgsig");
        let git = repo.cmd("git").args(["rev-list", "--parents", "--no-walk", &id]).output()?;
        let canonical = order[..keep].windows(2).all(|w| w[0] < w[1]) && keep == order.len();
        if git.status.success() {
            let line = String::from_utf8_lossy(&git.stdout).trim().to_string();
            let git_parents: Vec<String> = line.split(' ').skip(1).map(str::to_string).collect();
            if git_parents != parsed.parents {
                disagreements.push(format!("round {round}: git {git_parents:?} vs {:?}\n{raw}", parsed.parents));
            }
        } else if parsed.problems.is_empty() {
            disagreements.push(format!("round {round}: git refuses it, git-audit found nothing wrong\n{raw}"));
        }
        // libgit2, where it reads the object at all, agrees too.
        let lib = git2::Repository::open(&repo.path)?;
        if let Ok(c) = lib.find_commit(git2::Oid::from_str(&id)?) {
            let lib_parents: Vec<String> = c.parent_ids().map(|p| p.to_string()).collect();
            if lib_parents != parsed.parents {
                disagreements.push(format!("round {round}: libgit2 {lib_parents:?} vs {:?}\n{raw}", parsed.parents));
            }
        }
        if !canonical && parsed.problems.is_empty() {
            disagreements.push(format!("round {round}: not in git's order, yet no problem reported\n{raw}"));
        }
        if canonical && !parsed.problems.is_empty() {
            disagreements.push(format!("round {round}: git's own order reported as {:?}", parsed.problems));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    Ok(())
}

#[test]
fn recreating_a_deleted_ref_elsewhere_is_a_force_push() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server =
        Server::new(&repo, &signing_policy("[[branches]]\npattern = \"refs/heads/release/*\"\nforbid_force_push = true\n"), "sha1")?;
    let (code, _, err) = repo.audit(&["--policy", server.policy.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 0, "{err}");
    repo.commit("feat: one", Sign::Pgp(&k.alice))?;
    let two = repo.commit("feat: two", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main", "HEAD:refs/heads/release/1"], &[])?.0, 0);
    // Deleting is allowed (forbid_deletion is unset) ...
    assert_eq!(push(&repo, &["-q", "origin", ":refs/heads/release/1"], &[])?.0, 0);
    // ... but creating it again at rewritten history is a force push.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    let rewritten = repo.commit("feat: two, rewritten", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/release/1"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "branches.force-push: refs/heads/release/1 is being created again at {}, which does not descend from its last recorded tip {}",
            &rewritten[..10],
            &two[..10]
        )),
        "{err}"
    );
    // The twin: re-created on top of its last tip.
    repo.git(&["reset", "-q", "--hard", &two])?;
    repo.commit("feat: three", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/release/1"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn policy_check_warns_about_force_push_without_deletion() -> Result<()> {
    let repo = Repo::new()?;
    let p = repo.policy("version = 1\n[[branches]]\npattern = \"refs/heads/main\"\nforbid_force_push = true\n")?;
    let (code, out, err) = repo.audit(&["--policy", p.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains(":3:11") && all.contains("refs/heads/main forbids force pushes but not deletion"), "{all}");
    let p = repo.policy("version = 1\n[rules]\n\"refs.reserved\" = \"off\"\n")?;
    let (code, _, err) = repo.audit(&["--policy", p.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`refs.reserved` is always enforced"), "{err}");
    Ok(())
}

#[test]
fn recording_can_fail_closed_and_otherwise_leaves_a_visible_gap() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(""), "sha1")?;
    let key = server.hooks_key();
    let saved = std::fs::read(&key)?;
    let ledger = server.ledger();
    let ledger_arg = ledger.to_str().context("path")?;

    // Default: the push is decided and accepted, the gap is noted.
    std::fs::remove_file(&key)?;
    let first = repo.commit("feat: while the key was away", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the decision was not recorded in the audit ledger"), "{err}");
    std::fs::write(&key, &saved)?;
    repo.commit("feat: key is back", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let kinds: Vec<String> = server.kinds()?.into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"ledger.gap".to_string()), "{kinds:?}");
    let gap: serde_json::Value = serde_json::from_str(&server.kinds()?.into_iter().find(|(k, _)| k == "ledger.gap").context("gap")?.1)?;
    assert_eq!(gap["unrecorded"], 2, "the pre-receive decision and the post-receive update: {gap}");
    assert_eq!(gap["events"][0]["event"]["refs"][0]["new"], first.as_str(), "{gap}");
    let (code, out, _) = repo.audit(&["--ledger", ledger_arg, "ledger", "verify"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("GAP") && out.contains("2 event(s) went unrecorded"), "{out}");
    let (code, out, _) = repo.audit(&["--ledger", ledger_arg, "report", "compliance", "--format", "json", "--since", "2000-01-01"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"ledger.gap\""), "{out}");

    // Required by git config: the push is refused and nothing moves.
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "config", "audit.requireLedger", "true"])?;
    std::fs::remove_file(&key)?;
    let before = server.tip(&repo, "refs/heads/main");
    repo.commit("feat: must be recorded", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("git-audit: push refused") && err.contains("could not be recorded in the audit ledger"), "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main"), before);
    // Required by the policy: the same.
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "config", "--unset", "audit.requireLedger"])?;
    std::fs::write(&server.policy, signing_policy("[audit]\nrequire_ledger = true\n"))?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("recording is required"), "{err}");
    std::fs::write(&key, &saved)?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn tags_and_certificates_are_judged_at_their_own_date_and_named() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    // Alice's SSH key is valid only after 2020: a date of 1970 would refuse it.
    let signers = repo.tmp.path().join("signers-after");
    std::fs::write(&signers, format!("{} namespaces=\"git\",valid-after=\"20200101\" {}\n", k.ssh_alice.email, k.ssh_alice.public_line))?;
    let policy = format!(
        "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\nssh_allowed_signers = \"{}\"\n[[branches]]\npattern = \"refs/tags/v*\"\nrequire_signed_tags = true\n[roles]\nbreakglass = [\"oncall@example.com\"]\n",
        k.alice.asc.display(),
        signers.display()
    );
    let _server = Server::new(&repo, &policy, "sha1")?;
    repo.commit("feat: base", Sign::Ssh(&k.ssh_alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    repo.git(&["-c", "gpg.format=ssh", "-c", &format!("user.signingkey={}", k.ssh_alice.private.display()), "tag", "-s", "-m", "r", "v1"])?;
    let (code, err) = push(&repo, &["origin", "v1"], &[])?;
    assert_eq!(code, 0, "{err}");
    // An unsigned annotated tag is refused as a tag, not as "the commit".
    repo.git(&["tag", "-a", "-m", "r", "v2"])?;
    let (code, err) = push(&repo, &["origin", "v2"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tag refs/tags/v2 signature missing: the tag is not signed"), "{err}");
    assert!(!err.contains("the commit is not signed"), "{err}");
    // Break glass by the role holder with no reason says just that.
    repo.commit("fix: unsigned hotfix", Sign::None)?;
    let (code, err) = push(&repo, &["-o", "audit.bypass=", "origin", "main"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("break glass refused: no reason was given"), "{err}");
    assert!(!err.contains("does not hold the breakglass role"), "{err}");
    Ok(())
}

#[test]
fn ssh_signed_push_certificates_are_dated_and_verified() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let signers = repo.tmp.path().join("signers-after");
    std::fs::write(&signers, format!("{} namespaces=\"git\",valid-after=\"20200101\" {}\n", k.ssh_alice.email, k.ssh_alice.public_line))?;
    let policy = format!(
        "version = 1\n[signing]\nrequired = true\nssh_allowed_signers = \"{}\"\n[[branches]]\npattern = \"refs/heads/main\"\nallowed_pushers = [\"alice@example.com\"]\n",
        signers.display()
    );
    let server = Server::new(&repo, &policy, "sha1")?;
    repo.git(&["--git-dir", server.path.to_str().context("path")?, "config", "receive.certNonceSeed", "test-seed"])?;
    repo.commit("feat: base", Sign::Ssh(&k.ssh_alice))?;
    let (code, err) = push(
        &repo,
        &["--signed", "origin", "main"],
        &[("GIT_CONFIG_PARAMETERS", &format!("'gpg.format=ssh' 'user.signingkey={}'", k.ssh_alice.private.display()))],
    )?;
    assert_eq!(code, 0, "{err}");
    let decided: Vec<serde_json::Value> = server
        .kinds()?
        .into_iter()
        .filter(|(k, _)| k == "push.decided")
        .map(|(_, p)| serde_json::from_str(&p))
        .collect::<Result<_, _>>()?;
    assert_eq!(decided.last().context("a decision")?["pusher"]["source"], "push-cert");
    Ok(())
}

// ---- Round two: the hook judges exactly what git stores and serves ----

#[test]
fn replace_refs_can_neither_be_pushed_nor_change_what_the_hook_reads() -> Result<()> {
    let k = keys();
    for format in ["sha1", "sha256"] {
        let repo = Repo::with_format(format)?;
        let server = Server::new(&repo, &signing_policy(MAIN_RULES), format)?;
        let good = repo.commit("feat: signed by alice", Sign::Pgp(&k.alice))?;
        let (code, err) = push(&repo, &["origin", "main"], &[])?;
        assert_eq!(code, 0, "{format}: the legitimate twin: {err}");
        let unsigned = repo.commit("feat: unsigned", Sign::None)?;
        // 1. A replacement for the unsigned commit (and for a blob): refused, whatever it points at.
        repo.git(&["update-ref", &format!("refs/replace/{unsigned}"), &good])?;
        let (code, err) = push(&repo, &["origin", &format!("refs/replace/{unsigned}")], &[])?;
        assert_eq!(code, 1, "{format}: {err}");
        assert!(
            err.contains("refs.reserved") && err.contains(&format!("refs/replace/{unsigned}")) && err.contains("replacement ref"),
            "{format}: {err}"
        );
        let blob = repo.git(&["rev-parse", &format!("{good}:file1.txt")])?;
        let evil = repo.git(&["hash-object", "-w", "--stdin"]).or_else(|_| repo.git(&["rev-parse", &format!("{unsigned}:file2.txt")]))?;
        repo.git(&["update-ref", &format!("refs/replace/{blob}"), &evil])?;
        let (code, err) = push(&repo, &["origin", &format!("refs/replace/{blob}")], &[])?;
        assert_eq!(code, 1, "{format}: {err}");
        assert!(server.tip(&repo, &format!("refs/replace/{blob}")).is_none());
        // 2. One planted on the server by other means: the hook still reads the pushed
        //    commit itself (git's replace objects are off for every git it runs).
        let server_git = server.path.to_str().context("path")?;
        repo.git(&["update-ref", "-d", &format!("refs/replace/{unsigned}")])?;
        repo.git(&["update-ref", "-d", &format!("refs/replace/{blob}")])?;
        repo.git(&[
            "--git-dir",
            server_git,
            "fetch",
            "-q",
            repo.path.to_str().context("path")?,
            &format!("{unsigned}:refs/heads/staging-copy"),
        ])?;
        repo.git(&["--git-dir", server_git, "update-ref", &format!("refs/replace/{unsigned}"), &good])?;
        let (code, err) = push(&repo, &["origin", "main"], &[])?;
        assert_eq!(code, 1, "{format}: the unsigned commit must be judged as itself: {err}");
        assert!(err.contains(&format!("{} feat: unsigned", &unsigned[..10])) && err.contains("signing.required"), "{format}: {err}");
    }
    Ok(())
}

#[test]
fn every_ref_value_is_judged_whatever_it_names() -> Result<()> {
    for format in ["sha1", "sha256"] {
        let k = keys();
        let repo = Repo::with_format(format)?;
        let tags = "[[branches]]\npattern = \"refs/tags/v*\"\nforbid_force_push = true\nforbid_deletion = true\n";
        let server = Server::new(&repo, &signing_policy(&format!("{MAIN_RULES}{tags}")), format)?;
        let a = repo.commit("feat: a", Sign::Pgp(&k.alice))?;
        assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 0);
        let tree = repo.git(&["rev-parse", &format!("{a}^{{tree}}")])?;
        // A branch that names a tree, or a blob: refused.
        let (code, err) = push(&repo, &["origin", &format!("{tree}:refs/heads/tree")], &[])?;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("refs.non-commit") && err.contains("refs/heads/tree would name a tree"), "{err}");
        // A branch that names a tag (even of a commit): refused.
        repo.git(&["tag", "-a", "-m", "annotated", "ann", &a])?;
        let (code, err) = push(&repo, &["origin", "refs/tags/ann:refs/heads/tagged"], &[])?;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("refs/heads/tagged would name a tag"), "{err}");
        // A protected tag whose chain ends in a tree: refused.
        let tag_of_tree = repo.git(&["mktag"]).or_else(|_| -> Result<String> {
            let body = format!("object {tree}\ntype tree\ntag v9\ntagger Alice <alice@example.com> 1767225600 +0000\n\nof a tree\n");
            let path = repo.tmp.path().join("tag");
            std::fs::write(&path, body)?;
            repo.git(&["hash-object", "-t", "tag", "-w", path.to_str().context("path")?])
        })?;
        let (code, err) = push(&repo, &["origin", &format!("{tag_of_tree}:refs/tags/v9")], &[])?;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("refs.non-commit") && err.contains("refs/tags/v9"), "{err}");
        // The two-step move of a published tag through a tag of a tree: the first step is refused.
        repo.git(&["tag", "v1", &a])?;
        assert_eq!(push(&repo, &["origin", "v1"], &[])?.0, 0, "the legitimate twin: a tag of a commit");
        let (code, err) = push(&repo, &["-f", "origin", &format!("{tag_of_tree}:refs/tags/v1")], &[])?;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("refs.non-commit") || err.contains("branches.immutable"), "{err}");
        assert_eq!(server.tip(&repo, "refs/tags/v1").as_deref(), Some(a.as_str()));
    }
    Ok(())
}

#[test]
fn published_tags_are_immutable_even_forward() -> Result<()> {
    for format in ["sha1", "sha256"] {
        let k = keys();
        let repo = Repo::with_format(format)?;
        let tags = "[[branches]]\npattern = \"refs/tags/v*\"\nforbid_force_push = true\nforbid_deletion = true\n";
        let server = Server::new(&repo, &signing_policy(tags), format)?;
        let a = repo.commit("feat: a", Sign::Pgp(&k.alice))?;
        repo.git(&["tag", "v1", &a])?;
        assert_eq!(push(&repo, &["origin", "main", "v1"], &[])?.0, 0);
        let b = repo.commit("feat: b", Sign::Pgp(&k.alice))?;
        assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 0);
        // Forward is still a move: git itself calls it a forced update of a tag.
        repo.git(&["tag", "-f", "v1", &b])?;
        let (code, err) = push(&repo, &["-f", "origin", "v1"], &[])?;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("branches.immutable") && err.contains("refs/tags/v1 is immutable"), "{err}");
        assert_eq!(server.tip(&repo, "refs/tags/v1").as_deref(), Some(a.as_str()));
        // The twin: a new tag is fine; and a branch pattern that opts out may move forward.
        repo.git(&["tag", "v2", &b])?;
        assert_eq!(push(&repo, &["origin", "v2"], &[])?.0, 0);
        let (code, out, err) = repo.audit(&["--policy", server.policy.to_str().context("path")?, "policy", "check"])?;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("immutable: refs/tags/v*") && out.contains("`immutable = false`"), "policy check explains it: {out}");
    }
    Ok(())
}

#[test]
fn a_push_through_a_symbolic_ref_is_judged_and_recorded_as_the_ref_it_writes() -> Result<()> {
    for format in ["sha1", "sha256"] {
        let k = keys();
        let repo = Repo::with_format(format)?;
        let server = Server::new(&repo, &signing_policy(MAIN_RULES), format)?;
        let a = repo.commit("feat: a", Sign::Pgp(&k.alice))?;
        repo.commit("feat: b", Sign::Pgp(&k.alice))?;
        assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 0);
        let server_git = server.path.to_str().context("path")?;
        // A leftover of a rename: master is a symref to main on the server.
        repo.git(&["--git-dir", server_git, "symbolic-ref", "refs/heads/master", "refs/heads/main"])?;
        repo.git(&["reset", "-q", "--hard", &a])?;
        let rewritten = repo.commit("feat: rewritten history", Sign::Pgp(&k.alice))?;
        let (code, err) = push(&repo, &["-f", "origin", &format!("{rewritten}:refs/heads/master")], &[])?;
        assert_eq!(code, 1, "a force push to main through master: {err}");
        assert!(err.contains("branches.force-push") && err.contains("refs/heads/main would be rewritten"), "{err}");
        // The ledger names the ref that would have changed.
        let decided: Vec<String> = server.kinds()?.into_iter().filter(|(k, _)| k == "push.decided").map(|(_, p)| p).collect();
        let last = decided.last().context("a decision")?;
        assert!(last.contains("refs/heads/main") && !last.contains("refs/heads/master"), "{last}");
        // The twin: a fast-forward through the symref is judged as main's and accepted.
        repo.git(&["reset", "-q", "--hard", "origin/main"])?;
        let c = repo.commit("feat: c", Sign::Pgp(&k.alice))?;
        let (code, err) = push(&repo, &["origin", &format!("{c}:refs/heads/master")], &[])?;
        assert_eq!(code, 0, "{err}");
        assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(c.as_str()));
    }
    Ok(())
}

#[test]
fn break_glass_bypasses_content_checks_never_who_governs() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let policy = "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\n[roles]\npolicy-admin = [\"bob@example.com\"]\nbreakglass = [\"oncall@example.com\"]\n";
    let alice_key = std::fs::read(&k.alice.asc)?;
    let bob_key = std::fs::read(&k.bob.asc)?;
    let server = default_branch_server(&repo, policy, &[("keys/alice.asc", &alice_key), ("keys/bob.asc", &bob_key)])?;
    let tip = repo.git(&["rev-parse", "HEAD"])?;
    // The on-call holder adds himself to policy-admin and turns signing off, by break glass.
    std::fs::write(
        repo.path.join(".git-audit.toml"),
        policy
            .replace("required = true", "required = false")
            .replace("[\"bob@example.com\"]", "[\"bob@example.com\", \"oncall@example.com\"]"),
    )?;
    repo.git(&["add", "."])?;
    repo.git(&["-c", "user.email=oncall@example.com", "commit", "-q", "-m", "chore: emergency"])?;
    let (code, err) = push(&repo, &["-o", "audit.bypass=INC-7", "origin", "main"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("break glass does not pass policy.admin"), "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(tip.as_str()));
    // Content checks are what break glass is for: an unsigned fix goes through.
    repo.git(&["reset", "-q", "--hard", &tip])?;
    repo.commit("fix: hotfix, unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["-o", "audit.bypass=INC-7", "origin", "main"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn codeowners_is_governance_and_key_paths_stay_in_the_repository() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let policy = "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\n[roles]\npolicy-admin = [\"bob@example.com\"]\n[codeowners]\nenabled = true\n";
    let alice_key = std::fs::read(&k.alice.asc)?;
    let bob_key = std::fs::read(&k.bob.asc)?;
    let server = default_branch_server(
        &repo,
        policy,
        &[("keys/alice.asc", &alice_key), ("keys/bob.asc", &bob_key), (".github/CODEOWNERS", b"* @acme/reviewers\n")],
    )?;
    let tip = repo.git(&["rev-parse", "HEAD"])?;
    // A non-admin edits code ownership: refused.
    std::fs::write(repo.path.join(".github/CODEOWNERS"), "* @alice\n")?;
    repo.git(&["add", "."])?;
    let owned = commit_signed_by(&repo, &k.alice, "chore: I own everything now")?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{} chore: I own everything now — policy.admin (changes .github/CODEOWNERS", &owned[..10])), "{err}");
    // CODEOWNERS in another of GitHub's places counts the same.
    repo.git(&["reset", "-q", "--hard", &tip])?;
    std::fs::write(repo.path.join("CODEOWNERS"), "* @alice\n")?;
    repo.git(&["add", "."])?;
    commit_signed_by(&repo, &k.alice, "chore: a second CODEOWNERS")?;
    assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 1);
    // The twin: the admin may.
    repo.git(&["reset", "-q", "--hard", &tip])?;
    std::fs::write(
        repo.path.join(".github/CODEOWNERS"),
        "* @acme/reviewers @alice
",
    )?;
    repo.git(&["add", "."])?;
    let admin = commit_signed_by(&repo, &k.bob, "chore: owners by the admin")?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(admin.as_str()));
    // An admin's policy that loads a key from outside the repository: every push refused (fail closed).
    std::fs::write(repo.path.join(".git-audit.toml"), policy.replace("[\"keys/\"]", "[\"keys/\", \"../planted.asc\"]"))?;
    let (code, out, err) = repo.audit(&["policy", "check"])?;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("`../planted.asc` leaves the repository"), "{err}");
    repo.git(&["add", "."])?;
    let escape = commit_signed_by(&repo, &k.bob, "chore: a key from beside the repository")?;
    let server_git = server.path.to_str().context("path")?;
    repo.git(&["--git-dir", server_git, "fetch", "-q", repo.path.to_str().context("path")?, &format!("{escape}:main")])?;
    repo.commit("feat: anything", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("../planted.asc") && err.contains("outside the repository"), "{err}");
    Ok(())
}

#[test]
fn work_accepted_under_looser_rules_is_checked_again_when_it_moves_onto_a_protected_ref() -> Result<()> {
    for format in ["sha1", "sha256"] {
        let k = keys();
        let repo = Repo::with_format(format)?;
        let warn_release = "[[branches]]\npattern = \"refs/heads/release/*\"\nmode = \"warn\"\n";
        let server = Server::new(&repo, &signing_policy(&format!("{MAIN_RULES}{warn_release}")), format)?;
        repo.commit("feat: base", Sign::Pgp(&k.alice))?;
        assert_eq!(push(&repo, &["origin", "main"], &[])?.0, 0);
        // Unsigned work lands on release/1 while it is in warn mode.
        let unsigned = repo.commit("feat: unsigned on release", Sign::None)?;
        let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/release/1"], &[])?;
        assert_eq!(code, 0, "warn mode lets it in: {err}");
        // The policy switches release/* to enforce; release/1 is now as strict as main.
        std::fs::write(&server.policy, signing_policy(&format!("{MAIN_RULES}[[branches]]\npattern = \"refs/heads/release/*\"\n")))?;
        let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
        assert_eq!(code, 1, "judged by how it was accepted, not by how strict release/1 is today: {err}");
        assert!(err.contains(&format!("{} feat: unsigned on release", &unsigned[..10])) && err.contains("signing.required"), "{err}");
        // The twin: work accepted on release/2 under the current policy vouches for itself.
        repo.git(&["reset", "-q", "--hard", "origin/main"])?;
        let signed = repo.commit("feat: signed on release", Sign::Pgp(&k.alice))?;
        assert_eq!(push(&repo, &["origin", "HEAD:refs/heads/release/2"], &[])?.0, 0);
        let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
        assert_eq!(code, 0, "{err}");
        assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(signed.as_str()));
        // It was not judged a second time: one commit.verified for it in the ledger.
        let verified = server.kinds()?.into_iter().filter(|(k, p)| k == "commit.verified" && p.contains(&signed)).count();
        assert_eq!(verified, 1, "accepted under this policy on release/2, not re-checked on main");
    }
    Ok(())
}

#[test]
fn an_exempt_identity_holds_only_for_the_pusher_the_server_established() -> Result<()> {
    let repo = Repo::new()?;
    // (appended to [signing])
    let _server =
        Server::new(&repo, &signing_policy(&format!("exempt_identities = [\"*[bot]@users.noreply.github.com\"]\n{MAIN_RULES}")), "sha1")?;
    let dependabot = ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com");
    let forged = repo.commit_as("chore: bump deps (forged)", Sign::None, Some(dependabot))?;
    // Alice pushes an unsigned commit that claims dependabot's address: refused.
    let (code, err) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "alice@example.com")])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&forged[..10]) && err.contains("an email alone is never enough"), "{err}");
    // The twin: the bot itself, as the server knows the pusher, may push it.
    let (code, err) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "49699333+dependabot[bot]@users.noreply.github.com")])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}
