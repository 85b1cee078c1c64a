//! Real `git push` into bare repositories with the hooks installed by
//! `git-audit install --server`, and from clones with the pre-push hook.

use std::path::PathBuf;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::support::{keys, Repo, Sign, BIN};

/// A bare "server" repository with git-audit's server hooks and a pinned policy.
pub(crate) struct Server {
    pub(crate) path: PathBuf,
    pub(crate) policy: PathBuf,
}

impl Server {
    pub(crate) fn new(repo: &Repo, policy: &str, format: &str) -> Result<Server> {
        let path = repo.tmp.path().join("server.git");
        repo.git(&["init", "-q", "--bare", "-b", "main", &format!("--object-format={format}"), path.to_str().context("path")?])?;
        let policy_path = repo.tmp.path().join("server-policy.toml");
        std::fs::write(&policy_path, policy)?;
        let (code, out, err) =
            repo.audit(&["--policy", policy_path.to_str().context("path")?, "install", "--server", path.to_str().context("path")?])?;
        assert_eq!(code, 0, "{out}{err}");
        repo.git(&["remote", "add", "origin", &format!("file://{}", path.display())])?;
        Ok(Server { path, policy: policy_path })
    }

    pub(crate) fn ledger(&self) -> PathBuf {
        self.path.join("audit/ledger.db")
    }

    /// The key the hooks append with (their own writer's, made by `install --server`).
    pub(crate) fn hooks_key(&self) -> PathBuf {
        self.path.join("audit/hooks.key")
    }

    pub(crate) fn kinds(&self) -> Result<Vec<(String, String)>> {
        let c = Connection::open(self.ledger())?;
        let rows = c
            .prepare("SELECT kind, payload FROM entries ORDER BY seq")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub(crate) fn tip(&self, repo: &Repo, refname: &str) -> Option<String> {
        repo.cmd("git")
            .args(["--git-dir", self.path.to_str()?, "rev-parse", "--verify", "-q", refname])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

/// `git push` from `repo`; returns (exit code, what the pusher saw on stderr with `remote: ` removed).
pub(crate) fn push(repo: &Repo, args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String)> {
    let mut c = repo.cmd("git");
    c.arg("push").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output()?;
    let err = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| l.strip_prefix("remote: ").unwrap_or(l).trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    Ok((out.status.code().unwrap_or(-1), err))
}

pub(crate) fn signing_policy(extra: &str) -> String {
    let k = keys();
    format!(
        "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\", \"{}\"]\nssh_allowed_signers = \"{}\"\n{extra}",
        k.alice.asc.display(),
        k.bob.asc.display(),
        k.allowed_signers.display()
    )
}

pub(crate) const MAIN_RULES: &str = "[[branches]]\npattern = \"refs/heads/main\"\nforbid_force_push = true\nforbid_deletion = true\n";

#[test]
fn server_refuses_unsigned_work_with_a_readable_message_and_records_everything() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(MAIN_RULES), "sha1")?;
    let good = repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["-q", "origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(good.as_str()));

    let bad = repo.commit("feat: unsigned work", Sign::None)?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(good.as_str()), "nothing was updated");
    // The pusher learns which policy judged it (its digest), not the server's file path.
    let (_, checked, _) = repo.audit(&["--policy", server.policy.to_str().unwrap_or_default(), "policy", "check"])?;
    let digest = checked.trim().rsplit("digest ").next().unwrap_or_default().trim_end_matches(')').to_string();
    assert_eq!(digest.len(), 12, "{checked}");
    assert!(!err.contains(&server.policy.display().to_string()), "{err}");
    let expected = format!(
        "git-audit: push refused (policy of the server, digest {})\n\n  refs/heads/main:\n    {} feat: unsigned work — signing.required (signature missing: the commit is not signed)\n\nHow to fix:\n  signing.required: sign your commits: `git config commit.gpgsign true`, then re-sign: `git commit --amend -S --no-edit` (older commits: `git rebase --exec 'git commit --amend -S --no-edit' {}`)\n\n1 violation(s) in 1 ref(s); nothing was updated.",
        digest,
        &bad[..10],
        &good[..10]
    );
    assert!(err.contains(&expected), "pusher saw:\n{err}\n\nexpected:\n{expected}");

    let kinds: Vec<String> = server.kinds()?.into_iter().map(|(k, _)| k).collect();
    // `install --server` made the hooks a writer (signed by the owner); every
    // later entry is the hooks' own, signed with their key.
    assert_eq!(kinds, vec!["ledger.writer", "commit.verified", "push.decided", "ref.updated", "commit.verified", "push.decided"]);
    let writers: Vec<String> = Connection::open(server.ledger())?
        .prepare("SELECT writer FROM entries ORDER BY seq")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(writers, vec!["owner", "hooks", "hooks", "hooks", "hooks", "hooks"]);
    let decided: Vec<serde_json::Value> = server
        .kinds()?
        .into_iter()
        .filter(|(k, _)| k == "push.decided")
        .map(|(_, p)| serde_json::from_str(&p))
        .collect::<Result<_, _>>()?;
    assert_eq!(decided[0]["accepted"], true);
    assert_eq!(decided[1]["accepted"], false);
    let (code, out, _) = repo.audit(&["--ledger", server.ledger().to_str().unwrap_or_default(), "ledger", "verify"])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn force_push_deletion_and_new_branches() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(MAIN_RULES), "sha1")?;
    repo.commit("feat: one", Sign::Pgp(&k.alice))?;
    let two = repo.commit("feat: two", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    // Rewrite history and force-push: refused.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    repo.commit("feat: two, rewritten", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["-f", "origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("branches.force-push: refs/heads/main would be rewritten")
            && err.contains(&format!("{} is not an ancestor", &two[..10])),
        "{err}"
    );
    // Deleting main: refused.
    let (code, err) = push(&repo, &["origin", ":main"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("branches.deletion: refs/heads/main may not be deleted"), "{err}");
    // A new branch holding only commits the server has: nothing to re-check, accepted.
    repo.git(&["branch", "topic", &two])?;
    let (code, err) = push(&repo, &["origin", "topic"], &[])?;
    assert_eq!(code, 0, "{err}");
    // Deleting an unprotected branch is fine.
    let (code, err) = push(&repo, &["origin", ":topic"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(two.as_str()));
    Ok(())
}

#[test]
fn unsigned_work_parked_on_a_side_branch_cannot_walk_onto_main() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    // Side branches only warn; main enforces.
    let policy = signing_policy("").replacen("version = 1\n", "version = 1\nmode = \"warn\"\n", 1)
        + "[[branches]]\npattern = \"refs/heads/main\"\nmode = \"enforce\"\n";
    let _server = Server::new(&repo, &policy, "sha1")?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    repo.git(&["checkout", "-q", "-b", "side"])?;
    let parked = repo.commit("feat: parked, unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["origin", "side"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("push accepted with warnings") && err.contains("signing.required [warn]"), "{err}");
    repo.git(&["checkout", "-q", "main"])?;
    repo.git(&["merge", "-q", "--ff-only", "side"])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&parked[..10]) && err.contains("signing.required (signature missing"), "{err}");
    Ok(())
}

#[test]
fn tags_pushers_linear_history_and_policy_admins() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let rules = "[[branches]]\npattern = \"refs/tags/v*\"\nrequire_signed_tags = true\n[[branches]]\npattern = \"refs/heads/main\"\nrequire_linear_history = true\nallowed_pushers = [\"alice@example.com\", \"bob@example.com\"]\n[roles]\npolicy-admin = [\"bob@example.com\"]\n";
    let _server = Server::new(&repo, &signing_policy(rules), "sha1")?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "mallory@example.com")])?;
    assert_eq!(code, 1);
    assert!(err.contains("branches.pusher: mallory@example.com may not push to refs/heads/main"), "{err}");
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[("GIT_AUDIT_USER", "alice@example.com")])?.0, 0);
    // Tags: lightweight refused; signed by a pinned key accepted.
    repo.git(&["tag", "v1.0"])?;
    let (code, err) = push(&repo, &["origin", "v1.0"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("refs/tags/v1.0 is a lightweight tag"), "{err}");
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "tag", "-s", "-m", "release", "v1.1"])?;
    let (code, err) = push(&repo, &["origin", "v1.1"], &[])?;
    assert_eq!(code, 0, "{err}");
    repo.git(&["-c", &format!("user.signingkey={}", k.mallory.fpr), "tag", "-s", "-m", "release", "v1.2"])?;
    let (code, err) = push(&repo, &["origin", "v1.2"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("tag refs/tags/v1.2 signature unknown-key"), "{err}");
    // A merge commit on main: refused.
    repo.git(&["checkout", "-q", "-b", "feature"])?;
    repo.commit("feat: on a branch", Sign::Pgp(&k.alice))?;
    repo.git(&["checkout", "-q", "main"])?;
    repo.commit("feat: on main", Sign::Pgp(&k.alice))?;
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "merge", "-q", "-S", "--no-ff", "-m", "feat: merge", "feature"])?;
    let (code, err) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "alice@example.com")])?;
    assert_eq!(code, 1);
    assert!(err.contains("branches.linear-history: merge commit"), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    // Changing the policy file on main needs a policy admin's signature (bob), not alice's.
    std::fs::write(repo.path.join(".git-audit.toml"), "version = 1\n")?;
    repo.git(&["add", ".git-audit.toml"])?;
    repo.git(&[
        "-c",
        "commit.gpgsign=true",
        "-c",
        &format!("user.signingkey={}", k.alice.fpr),
        "commit",
        "-q",
        "-m",
        "chore: loosen the policy",
    ])?;
    let (code, err) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "alice@example.com")])?;
    assert_eq!(code, 1);
    assert!(err.contains("policy.admin (changes .git-audit.toml but is not signed by a policy admin (bob@example.com))"), "{err}");
    repo.git(&[
        "-c",
        "user.name=Bob",
        "-c",
        "user.email=bob@example.com",
        "-c",
        &format!("user.signingkey={}", k.bob.fpr),
        "commit",
        "-q",
        "--amend",
        "-S",
        "--no-edit",
        "--reset-author",
    ])?;
    let (code, err) = push(&repo, &["origin", "main"], &[("GIT_AUDIT_USER", "bob@example.com")])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn signed_pushes_identify_the_pusher() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let rules = "[[branches]]\npattern = \"refs/heads/main\"\nallowed_pushers = [\"alice@example.com\"]\n";
    let server = Server::new(&repo, &signing_policy(rules), "sha1")?;
    repo.git(&["--git-dir", server.path.to_str().unwrap_or_default(), "config", "receive.certNonceSeed", "test-seed"])?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    // Unsigned push: no identity, main is restricted: refused.
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("the pusher of refs/heads/main is unknown"), "{err}");
    // Signed by mallory (not pinned): the certificate does not verify.
    let (code, err) =
        push(&repo, &["--signed", "origin", "main"], &[("GIT_CONFIG_PARAMETERS", &format!("'user.signingkey={}'", k.mallory.fpr))])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("push certificate: signature unknown-key"), "{err}");
    // Signed by alice: verified, alice is the pusher.
    let (code, err) =
        push(&repo, &["--signed", "origin", "main"], &[("GIT_CONFIG_PARAMETERS", &format!("'user.signingkey={}'", k.alice.fpr))])?;
    assert_eq!(code, 0, "{err}");
    let decided: Vec<serde_json::Value> = server
        .kinds()?
        .into_iter()
        .filter(|(k, _)| k == "push.decided")
        .map(|(_, p)| serde_json::from_str(&p))
        .collect::<Result<_, _>>()?;
    let last = decided.last().context("a decision")?;
    assert_eq!(last["pusher"]["identity"], "alice@example.com");
    assert_eq!(last["pusher"]["source"], "push-cert");
    Ok(())
}

#[test]
fn break_glass_only_for_the_breakglass_role() -> Result<()> {
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy("[roles]\nbreakglass = [\"oncall@example.com\"]\n"), "sha1")?;
    repo.commit("fix: hotfix, unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["-o", "audit.bypass=prod down", "origin", "main"], &[("GIT_AUDIT_USER", "dev@example.com")])?;
    assert_eq!(code, 1);
    assert!(err.contains("break glass refused: dev@example.com does not hold the breakglass role"), "{err}");
    let (code, err) = push(&repo, &["-o", "audit.bypass=prod down, INC-7", "origin", "main"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("break glass used by oncall@example.com: \"prod down, INC-7\""), "{err}");
    let bypass: Vec<serde_json::Value> =
        server.kinds()?.into_iter().filter(|(k, _)| k == "bypass.used").map(|(_, p)| serde_json::from_str(&p)).collect::<Result<_, _>>()?;
    assert_eq!(bypass.len(), 1);
    assert_eq!(bypass[0]["reason"], "prod down, INC-7");
    assert_eq!(bypass[0]["violations"], 1);
    Ok(())
}

#[test]
fn the_server_fails_closed() -> Result<()> {
    let repo = Repo::new()?;
    let server = Server::new(&repo, "version = 1\n", "sha1")?;
    repo.commit("feat: x", Sign::None)?;
    std::fs::write(&server.policy, "version = 1\n[signing]\nrequird = true\n")?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("push refused: the policy check could not run") && err.contains("requird"), "{err}");
    // No policy at all (none pinned, none committed): refused.
    repo.git(&["--git-dir", server.path.to_str().unwrap_or_default(), "config", "--unset", "audit.policy"])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("no policy:") && err.contains("git config audit.policy") && err.contains("--from CLONE"), "{err}");
    // Without a ledger the hook still decides, and says the record was not written.
    repo.git(&[
        "--git-dir",
        server.path.to_str().unwrap_or_default(),
        "config",
        "audit.policy",
        server.policy.to_str().unwrap_or_default(),
    ])?;
    std::fs::write(&server.policy, "version = 1\n")?;
    std::fs::remove_file(server.ledger())?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the decision was not recorded in the audit ledger"), "{err}");
    Ok(())
}

#[test]
fn policy_from_the_default_branch_when_none_is_pinned() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, "version = 1\n", "sha1")?;
    repo.git(&["--git-dir", server.path.to_str().unwrap_or_default(), "config", "--unset", "audit.policy"])?;
    std::fs::create_dir_all(repo.path.join("keys"))?;
    std::fs::copy(&k.alice.asc, repo.path.join("keys/alice.asc"))?;
    std::fs::write(repo.path.join(".git-audit.toml"), "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\n")?;
    repo.git(&["add", "."])?;
    repo.git(&["-c", "commit.gpgsign=true", "-c", &format!("user.signingkey={}", k.alice.fpr), "commit", "-q", "-m", "chore: policy"])?;
    // The first push is judged by nothing yet committed on the server: no policy → refused.
    let (code, _) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    // Seed the default branch on the server directly (as an admin would; a fetch runs
    // no receive hooks), then pushes are judged by the policy committed there.
    repo.git(&["--git-dir", server.path.to_str().unwrap_or_default(), "fetch", "-q", repo.path.to_str().unwrap_or_default(), "main:main"])?;
    repo.commit("feat: unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(".git-audit.toml at ") && err.contains("signing.required"), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn sha256_servers_work() -> Result<()> {
    let k = keys();
    let repo = Repo::with_format("sha256")?;
    let server = Server::new(&repo, &signing_policy(MAIN_RULES), "sha256")?;
    let good = repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    repo.commit("feat: unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("signing.required"), "{err}");
    let (code, err) = push(&repo, &["origin", ":main"], &[])?;
    assert_eq!(code, 1);
    assert!(err.contains("may not be deleted"), "{err}");
    assert_eq!(server.tip(&repo, "refs/heads/main").as_deref(), Some(good.as_str()));
    Ok(())
}

#[test]
fn a_burst_of_concurrent_pushes_loses_nothing() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(""), "sha1")?;
    repo.commit("feat: base", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    let mut clones = Vec::new();
    for i in 0..6 {
        let c = Repo::new()?;
        c.git(&["fetch", "-q", &format!("file://{}", server.path.display()), "main"])?;
        c.git(&["reset", "-q", "--hard", "FETCH_HEAD"])?;
        c.git(&["remote", "add", "origin", &format!("file://{}", server.path.display())])?;
        c.git(&["checkout", "-q", "-b", &format!("b{i}")])?;
        std::fs::write(c.path.join(format!("work{i}.txt")), format!("{i}\n"))?;
        c.commit(&format!("feat: work {i}"), if i % 2 == 0 { Sign::Pgp(&k.alice) } else { Sign::None })?;
        clones.push(c);
    }
    let children: Vec<_> = clones
        .iter()
        .enumerate()
        .map(|(i, c)| c.cmd("git").args(["push", "-q", "origin", &format!("b{i}")]).stderr(std::process::Stdio::null()).spawn())
        .collect::<Result<_, _>>()?;
    let mut codes = Vec::new();
    for mut ch in children {
        codes.push(ch.wait()?.code().unwrap_or(-1));
    }
    assert_eq!(codes, vec![0, 1, 0, 1, 0, 1]);
    let decided = server.kinds()?.into_iter().filter(|(k, _)| k == "push.decided").count();
    assert_eq!(decided, 7);
    let updated = server.kinds()?.into_iter().filter(|(k, _)| k == "ref.updated").count();
    assert_eq!(updated, 4);
    let (code, out, _) = repo.audit(&["--ledger", server.ledger().to_str().unwrap_or_default(), "ledger", "verify"])?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn client_hooks_stop_problems_before_they_leave() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let server = repo.tmp.path().join("plain.git");
    repo.git(&["init", "-q", "--bare", "-b", "main", server.to_str().unwrap_or_default()])?;
    repo.git(&["remote", "add", "origin", &format!("file://{}", server.display())])?;
    // No policy yet: the pre-push hook says so and lets the push through.
    let (code, out, err) = repo.audit(&["install"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hooks/pre-push") && out.contains("hooks/commit-msg"), "{out}");
    repo.commit("first", Sign::None)?;
    let (code, err) = push(&repo, &["-q", "origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no policy (.git-audit.toml) here; pre-push check skipped"), "{err}");
    // With a policy: commit-msg refuses a bad subject at commit time.
    std::fs::write(repo.path.join(".git-audit.toml"), crate::support::pinned_policy("[commits]\nsubject_pattern = '^(feat|fix): '\n"))?;
    std::fs::write(repo.path.join("x.txt"), "x")?;
    repo.git(&["add", "."])?;
    let out = repo.cmd("git").args(["commit", "-q", "-m", "did things"]).output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("commits.subject") && err.contains("commit refused"), "{err}");
    // No commit exists yet: no `--amend` advice; retry with the kept message.
    assert!(!err.contains("--amend"), "{err}");
    assert!(err.contains("Hint: edit it and try again with `git commit -e -F ") && err.contains("COMMIT_EDITMSG`"), "{err}");
    repo.git(&["commit", "-q", "-m", "feat: add policy"])?;
    // pre-push refuses the unsigned commit; nothing reaches the remote.
    let before = repo.git(&["--git-dir", server.to_str().unwrap_or_default(), "rev-parse", "main"])?;
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("git-audit: push refused") && err.contains("feat: add policy — signing.required"), "{err}");
    assert!(err.contains("if the server runs git-audit, it checks again"), "{err}");
    assert!(!err.contains("first"), "commits already on the remote are not re-checked: {err}");
    assert_eq!(repo.git(&["--git-dir", server.to_str().unwrap_or_default(), "rev-parse", "main"])?, before);
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "commit", "-q", "--amend", "-S", "--no-edit"])?;
    let (code, err) = push(&repo, &["-q", "origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn install_respects_existing_hooks_and_uninstalls_cleanly() -> Result<()> {
    let repo = Repo::new()?;
    let hooks = repo.path.join(".git/hooks");
    std::fs::create_dir_all(&hooks)?;
    let mine = "#!/bin/sh\necho \"my own hook saw: $(cat)\" >&2\n";
    std::fs::write(hooks.join("pre-push"), mine)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(hooks.join("pre-push"), std::fs::Permissions::from_mode(0o755))?;
    let (code, _, err) = repo.audit(&["install"])?;
    assert_eq!(code, 2);
    assert!(err.contains("already exists and is not git-audit's") && err.contains("--chain"), "{err}");
    let (code, out, err) = repo.audit(&["install", "--chain"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs the previous pre-push first"), "{out}");
    // Both hooks run, both see the push's input.
    let server = repo.tmp.path().join("plain.git");
    repo.git(&["init", "-q", "--bare", "-b", "main", server.to_str().unwrap_or_default()])?;
    repo.git(&["remote", "add", "origin", &format!("file://{}", server.display())])?;
    repo.commit("first", Sign::None)?;
    let (code, err) = push(&repo, &["-q", "origin", "main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("my own hook saw: refs/heads/main ") && err.contains("pre-push check skipped"), "{err}");
    // core.hooksPath is respected.
    let (code, out, _) = repo.audit(&["install", "--uninstall"])?;
    assert_eq!(code, 0);
    assert!(out.contains("restored the previous hook"), "{out}");
    assert_eq!(std::fs::read_to_string(hooks.join("pre-push"))?, mine);
    assert!(!hooks.join("commit-msg").exists());
    repo.git(&["config", "core.hooksPath", "githooks"])?;
    let (code, _, err) = repo.audit(&["install"])?;
    assert_eq!(code, 0, "{err}");
    assert!(repo.path.join("githooks/pre-push").exists());
    let _ = BIN;
    Ok(())
}

#[test]
fn hundreds_of_bad_commits_are_summarised() -> Result<()> {
    let repo = Repo::new()?;
    let _server = Server::new(&repo, &signing_policy(""), "sha1")?;
    for i in 0..35 {
        repo.commit(&format!("feat: unsigned {i}"), Sign::None)?;
    }
    let (code, err) = push(&repo, &["origin", "main"], &[])?;
    assert_eq!(code, 1);
    let listed = err.lines().filter(|l| l.contains("— signing.required")).count();
    assert_eq!(listed, crate::hook_limit(), "{err}");
    assert!(err.contains("… and 15 more commits (signing.required); see them all with `git-audit verify"), "{err}");
    assert!(err.contains("35 violation(s) in 1 ref(s)"), "{err}");
    Ok(())
}

#[test]
fn the_first_default_branch_policy_is_seeded_by_install_from_a_clone() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let bare = repo.tmp.path().join("seeded.git");
    repo.git(&["init", "-q", "--bare", "-b", "main", bare.to_str().context("path")?])?;
    let (code, _, err) = repo.audit(&["install", "--server", bare.to_str().context("path")?])?;
    assert_eq!(code, 0, "{err}");
    repo.git(&["remote", "add", "seeded", &format!("file://{}", bare.display())])?;
    // The policy, its key, and the admin role, committed in the clone.
    std::fs::create_dir_all(repo.path.join("keys"))?;
    std::fs::copy(&k.alice.asc, repo.path.join("keys/alice.asc"))?;
    std::fs::write(
        repo.path.join(".git-audit.toml"),
        "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"keys/\"]\n[roles]\npolicy-admin = [\"alice@example.com\"]\n",
    )?;
    repo.git(&["add", "."])?;
    repo.git(&["-c", "commit.gpgsign=false", "commit", "-q", "-m", "chore: policy, unsigned"])?;
    // Pushing it cannot work (nothing could judge it): the refusal says how to seed.
    let (code, err) = push(&repo, &["seeded", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("git-audit install --server REPO --from CLONE"), "{err}");
    // An unsigned policy commit is not a seed: nothing changes.
    let (code, _, err) =
        repo.audit(&["install", "--server", bare.to_str().context("path")?, "--from", repo.path.to_str().context("path")?])?;
    assert_eq!(code, 2);
    assert!(err.contains("must be signed (good) by a policy admin") && err.contains("alice@example.com"), "{err}");
    assert!(repo.git(&["--git-dir", bare.to_str().context("path")?, "rev-parse", "--verify", "-q", "refs/heads/main"]).is_err());
    // Signed by the admin: seeded in one step, and on the record.
    repo.git(&["-c", &format!("user.signingkey={}", k.alice.fpr), "commit", "-q", "--amend", "-S", "--no-edit"])?;
    let seed = repo.git(&["rev-parse", "HEAD"])?;
    let (code, out, err) =
        repo.audit(&["install", "--server", bare.to_str().context("path")?, "--from", repo.path.to_str().context("path")?])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("seeded refs/heads/main with {}", &seed[..10])) && out.contains("signed by Alice"), "{out}");
    assert_eq!(repo.git(&["--git-dir", bare.to_str().context("path")?, "rev-parse", "refs/heads/main"])?, seed);
    let c = Connection::open(bare.join("audit/ledger.db"))?;
    let kinds: Vec<(String, String)> = c
        .prepare("SELECT kind, writer FROM entries ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    assert!(kinds.contains(&("ref.updated".to_string(), "hooks".to_string())), "{kinds:?}");
    assert!(kinds.contains(&("commit.verified".to_string(), "hooks".to_string())), "{kinds:?}");
    // From now on pushes are judged by that policy.
    repo.git(&["fetch", "-q", "seeded"])?;
    repo.commit("feat: unsigned", Sign::None)?;
    let (code, err) = push(&repo, &["seeded", "main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("signing.required"), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    assert_eq!(push(&repo, &["seeded", "main"], &[])?.0, 0);
    // A server with commits is never re-seeded.
    let (code, _, err) =
        repo.audit(&["install", "--server", bare.to_str().context("path")?, "--from", repo.path.to_str().context("path")?])?;
    assert_eq!(code, 2);
    assert!(err.contains("already has commits") && err.contains("--from seeds an empty repository only"), "{err}");
    Ok(())
}
