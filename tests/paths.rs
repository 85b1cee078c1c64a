//! Path rules at push time: real pushes into a bare repository whose policy
//! says only bob may change the CI workflows (`[[paths]]` with `signers`).

use anyhow::{Context, Result};

use crate::hooks::{push, signing_policy, Server};
use crate::support::{keys, Pgp, Repo, Sign};

const RULES: &str = "[[paths]]\npattern = \".github/workflows/**\"\nsigners = [\"bob@example.com\"]\n";

/// Writes (`Some`) or deletes (`None`) files, then commits them signed by `key`.
fn change(repo: &Repo, files: &[(&str, Option<&str>)], key: &Pgp, message: &str) -> Result<String> {
    for (path, content) in files {
        let file = repo.path.join(path);
        match content {
            Some(text) => {
                std::fs::create_dir_all(file.parent().context("parent")?)?;
                std::fs::write(&file, text)?;
            }
            None => std::fs::remove_file(&file)?,
        }
    }
    repo.git(&["add", "-A"])?;
    repo.git(&["-c", "gpg.format=openpgp", "-c", &format!("user.signingkey={}", key.fpr), "commit", "-q", "-S", "-m", message])?;
    repo.git(&["rev-parse", "HEAD"])
}

fn setup() -> Result<(Repo, Server)> {
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(RULES), "sha1")?;
    change(&repo, &[(".github/workflows/ci.yml", Some("on: push\n")), ("README.md", Some("hi\n"))], &keys().bob, "chore: start")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok((repo, server))
}

#[test]
fn only_the_listed_signers_change_protected_files() -> Result<()> {
    let (repo, server) = setup()?;
    let k = keys();
    // A listed signer: accepted.
    change(&repo, &[(".github/workflows/ci.yml", Some("on: [push, pull_request]\n"))], &k.bob, "ci: run on PRs")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 0, "{err}");
    // Another pinned key: refused, naming the rule, the file, the commit and who may sign.
    let bad = change(&repo, &[(".github/workflows/ci.yml", Some("on: push\njobs: {}\n"))], &k.alice, "ci: drop the jobs")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("paths.signer") && err.contains(".github/workflows/ci.yml") && err.contains("bob@example.com"), "{err}");
    assert!(err.contains(&bad[..7]), "the commit is not named: {err}");
    assert!(err.contains("is signed by alice@example.com"), "{err}");
    // `verify` judges it the same way.
    let (code, out, _) =
        repo.audit(&["--policy", server.policy.to_str().context("path")?, "verify", "--format", "json", "HEAD~1..HEAD"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"rule\":\"paths.signer\""), "{out}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    // A rename out of the protected directory, and a deletion: both change protected files.
    repo.git(&["mv", ".github/workflows/ci.yml", "ci.yml"])?;
    change(&repo, &[], &k.alice, "chore: move the workflow")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert!(code != 0 && err.contains("paths.signer") && err.contains(".github/workflows/ci.yml"), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    change(&repo, &[(".github/workflows/ci.yml", None)], &k.alice, "chore: no CI")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert!(code != 0 && err.contains("paths.signer"), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    // A symlink put where the protected directory is (so its files could come
    // from anywhere): it changes the protected tree, and is refused.
    std::fs::remove_dir_all(repo.path.join(".github/workflows"))?;
    std::os::unix::fs::symlink("../ci", repo.path.join(".github/workflows"))?;
    change(&repo, &[], &k.alice, "chore: workflows live in ci/")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert!(code != 0 && err.contains("paths.signer") && err.contains(".github/workflows"), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    // Unrelated files, by anyone pinned: accepted.
    change(&repo, &[("README.md", Some("hello\n"))], &k.alice, "docs: hello")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 0, "{err}");
    // Everything refused stayed out; the decisions are on record.
    let tip = server.tip(&repo, "refs/heads/main").context("main")?;
    assert_eq!(tip, repo.git(&["rev-parse", "HEAD"])?);
    let kinds = server.kinds()?;
    let refused = kinds.iter().filter(|(k, p)| k == "push.decided" && p.contains("\"accepted\":false")).count();
    let judged = kinds.iter().filter(|(k, p)| k == "commit.verified" && p.contains("\"rule\":\"paths.signer\"")).count();
    assert_eq!((refused, judged), (4, 4), "{kinds:?}");
    Ok(())
}

/// A merge that brings a protected change in from a side branch changes the
/// file against its first parent: it is judged like any commit that does.
#[test]
fn a_merge_bringing_in_a_protected_change_is_judged() -> Result<()> {
    let (repo, _server) = setup()?;
    let k = keys();
    repo.git(&["checkout", "-q", "-b", "side"])?;
    change(&repo, &[(".github/workflows/ci.yml", Some("on: pull_request\n"))], &k.bob, "ci: PRs only")?;
    repo.git(&["checkout", "-q", "main"])?;
    change(&repo, &[("README.md", Some("main moves on\n"))], &k.alice, "docs: meanwhile")?;
    repo.git(&["-c", "gpg.format=openpgp", "-c", &format!("user.signingkey={}", k.alice.fpr), "merge", "-q", "-S", "--no-edit", "side"])?;
    let merge = repo.git(&["rev-parse", "HEAD"])?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("paths.signer") && err.contains(&merge[..7]), "the merge is not the one named: {err}");
    // The same merge signed by bob goes through.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    repo.git(&["-c", "gpg.format=openpgp", "-c", &format!("user.signingkey={}", k.bob.fpr), "merge", "-q", "-S", "--no-edit", "side"])?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[test]
fn policy_explain_and_bad_patterns() -> Result<()> {
    let repo = Repo::new()?;
    let policy = repo.policy(&format!(
        "version = 1\n[roles]\nsre = [\"bob@example.com\"]\n{RULES}[[paths]]\npattern = \"/deploy/\"\nsigners = [\"role:sre\"]\napprovers = [\"team:acme/sre\"]\nmode = \"warn\"\n[codeowners]\nenabled = true\n"
    ))?;
    std::fs::create_dir_all(repo.path.join(".github"))?;
    std::fs::write(repo.path.join(".github/CODEOWNERS"), "*  @acme/everyone\n/deploy/  @acme/sre @carol\n")?;
    let p = policy.to_str().context("path")?;
    let (code, out, err) = repo.audit(&["--policy", p, "policy", "explain", "deploy/k8s/app.yaml"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[[paths]] `/deploy/`") && out.contains("mode warn") && out.contains("signers: bob@example.com"), "{out}");
    assert!(
        out.contains("approvers: team:acme/sre") && out.contains("CODEOWNERS .github/CODEOWNERS:2 `/deploy/`: @acme/sre, @carol"),
        "{out}"
    );
    let (_, out, _) = repo.audit(&["--policy", p, "policy", "explain", "src/main.rs", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert!(v["paths_rule"].is_null() && v["codeowners"]["owners"][0] == "@acme/everyone", "{v}");
    let (_, out, _) = repo.audit(&["--policy", p, "policy", "explain", ".github/workflows/ci.yml", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["paths_rule"]["pattern"], ".github/workflows/**", "{v}");
    assert!(v["paths_rule"]["at"].as_str().is_some_and(|a| a.ends_with(":5:11")), "{v}");
    // Bad patterns and principals: policy check errors at file:line:col.
    let bad = repo.policy("version = 1\n[[paths]]\npattern = \"!keep\"\nsigners = [\"bob@example.com\"]\n[[paths]]\npattern = \"a[\"\n[[paths]]\npattern = \"ok/\"\napprovers = [\"team:nope\"]\n")?;
    let (code, _, err) = repo.audit(&["--policy", bad.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(":3:11") && err.contains("negated patterns"), "{err}");
    assert!(err.contains(":6:11") && err.contains("bad pattern"), "{err}");
    assert!(err.contains(":9:14") && err.contains("neither a login nor a team"), "{err}");
    let _ = Sign::None;
    Ok(())
}

/// Review time: merged pull requests whose changed files (synced from
/// `pulls/N/files`) fall under `[[paths]]` approvers or CODEOWNERS owners
/// need an approval on their final head by one of them.
#[test]
fn merged_pull_requests_need_their_owners_approval() -> Result<()> {
    use crate::fake_github::{sha, Fake, World, TOKEN};
    // The repository: CODEOWNERS arrives in `base`; each PR's merge commit is a
    // real commit after it (so its base at the merge holds that CODEOWNERS).
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    repo.commit("chore: before CODEOWNERS", Sign::None)?;
    std::fs::create_dir_all(repo.path.join(".github"))?;
    std::fs::write(repo.path.join(".github/CODEOWNERS"), "# GitHub's syntax\n*        @acme/everyone\n/src/    @erin\n")?;
    let base = repo.commit("chore: CODEOWNERS", Sign::None)?;
    let merges: Vec<String> = (1..=8).map(|n| repo.commit(&format!("merge {n}"), Sign::None)).collect::<Result<_>>()?;

    let mut w = World::new("acme/api");
    let pr = |w: &mut World, n: u64, files: &[(&str, &str, Option<&str>)], approver: &str, merge: &str| {
        let head = sha(&format!("head{n}"));
        w.pull(n, "alice", &format!("2026-07-{n:02}T00:00:00Z"), std::slice::from_ref(&head));
        w.review(n, approver, "APPROVED", &head, &format!("2026-07-{n:02}T01:00:00Z"));
        w.merge(n, "alice", &format!("2026-07-{n:02}T02:00:00Z"), merge);
        w.files(n, files);
    };
    pr(&mut w, 1, &[(".github/workflows/ci.yml", "modified", None)], "bob", &merges[0]); // a listed login
    pr(&mut w, 2, &[(".github/workflows/ci.yml", "modified", None), ("README.md", "modified", None)], "carol", &merges[1]); // not an owner
    pr(&mut w, 3, &[("deploy/app.yaml", "modified", None)], "dave", &merges[2]); // via team:acme/sre
    pr(&mut w, 4, &[("src/main.rs", "modified", None)], "frank", &merges[3]); // CODEOWNERS: the last match (/src/ @erin) wins
    pr(&mut w, 5, &[("ci.yml", "renamed", Some(".github/workflows/ci.yml"))], "carol", &merges[4]); // renamed out
    pr(&mut w, 6, &[("docs/guide.md", "added", None)], "frank", &merges[5]); // CODEOWNERS `*` @acme/everyone: frank is a member
                                                                             // GitHub's cap: 3,000 files listed of 3,001; the sync says so.
    let many: Vec<String> = (0..3001).map(|i| format!("gen/f{i}.txt")).collect();
    let many: Vec<(&str, &str, Option<&str>)> = many.iter().map(|f| (f.as_str(), "added", None)).collect();
    pr(&mut w, 7, &many, "carol", &merges[6]);
    // Owned by a team the token cannot read (404): could not verify, not a violation.
    pr(&mut w, 8, &[("secret/key.txt", "modified", None)], "zed", &merges[7]);
    // Merged into a base that had no CODEOWNERS yet: could not verify, never a pass.
    pr(&mut w, 9, &[("src/lib.rs", "modified", None)], "frank", &base);
    // Merged by a commit this repository does not have: could not verify either.
    pr(&mut w, 10, &[("src/lib.rs", "modified", None)], "frank", &sha("merge10"));
    w.teams.insert("acme/sre".into(), vec!["dave".into()]);
    w.teams.insert("acme/everyone".into(), vec!["frank".into(), "carol".into(), "bob".into(), "dave".into(), "zed".into()]);
    let fake = Fake::start(w);

    let policy = repo.policy(
        "version = 1\n[github]\nrepositories = [\"acme/api\"]\n[[paths]]\npattern = \".github/workflows/**\"\napprovers = [\"bob\"]\n[[paths]]\npattern = \"/deploy/\"\napprovers = [\"team:acme/sre\"]\n[[paths]]\npattern = \"/secret/\"\napprovers = [\"team:acme/hidden\"]\n[codeowners]\nenabled = true\n",
    )?;
    let p = policy.to_str().context("path")?;
    let out = repo.cmd(crate::support::BIN).env("GITHUB_TOKEN", TOKEN).args(["--policy", p, "sync", "--api-url", &fake.url]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("acme/api#7 changes 3000 files or more"), "{err}");
    let compliance = |extra: &[&str]| -> Result<serde_json::Value> {
        let mut args = extra.to_vec();
        args.extend(["--policy", p, "report", "compliance", "--since", "2000-01-01", "--format", "json"]);
        let (code, out, err) = repo.audit(&args)?;
        assert_eq!(code, 1, "{err}");
        Ok(serde_json::from_str(&out)?)
    };
    let of = |v: &serde_json::Value, rule: &str| -> Vec<(String, String)> {
        v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["rule"] == rule)
            .map(|f| (f["subject"].as_str().unwrap_or("").to_string(), f["message"].as_str().unwrap_or("").to_string()))
            .collect()
    };
    let v = compliance(&[])?;
    let found = of(&v, "pr.owner-approval-missing");
    let subjects: Vec<&str> = found.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subjects, ["acme/api#2", "acme/api#4", "acme/api#5"], "{found:?}");
    assert!(
        found[0].1.contains(".github/workflows/ci.yml") && found[0].1.contains("one of bob") && found[0].1.contains("approved by carol"),
        "{found:?}"
    );
    assert!(
        found[1].1.contains("src/main.rs") && found[1].1.contains(".github/CODEOWNERS:3") && found[1].1.contains("one of erin"),
        "{found:?}"
    );
    assert!(found[2].1.contains(".github/workflows/ci.yml"), "the rename's old name is protected: {found:?}");
    // README.md in #2 is owned by @acme/everyone, and carol is a member: only the workflow group fails.
    assert!(!found[0].1.contains("README.md"), "{found:?}");
    let evidence = v["findings"].as_array().into_iter().flatten().find(|f| f["subject"] == "acme/api#2").map(|f| f["evidence"].clone());
    assert!(evidence.and_then(|e| e.as_array().map(Vec::len)).is_some_and(|n| n >= 3), "PR, files and review entries");
    let unverified: Vec<&serde_json::Value> =
        v["findings"].as_array().into_iter().flatten().filter(|f| f["rule"] == "pr.owner-approval-unverified").collect();
    assert_eq!(unverified.len(), 1, "{unverified:?}");
    assert_eq!((unverified[0]["subject"].as_str(), unverified[0]["severity"].as_str()), (Some("acme/api#8"), Some("warning")));
    assert!(unverified[0]["message"].as_str().unwrap_or("").contains("team:acme/hidden was never recorded"), "{}", unverified[0]);
    let missing = of(&v, "pr.codeowners-missing");
    assert_eq!(missing.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["acme/api#9", "acme/api#10"], "{missing:?}");
    assert!(
        missing[0].1.contains("its base at the merge (")
            && missing[0].1.contains("has no CODEOWNERS in .github/, the root, docs/ or .gitlab/"),
        "{missing:?}"
    );
    assert!(missing[1].1.contains("is not in this repository (git fetch)"), "{missing:?}");
    assert_eq!(v["counts"]["could_not_verify"], 3);

    // A later edit of CODEOWNERS (committed, and in the work tree) changes no past answer.
    std::fs::write(repo.path.join(".github/CODEOWNERS"), "*  @acme/everyone\n/src/  @frank\n")?;
    repo.commit("chore: frank owns src now", Sign::None)?;
    let after = compliance(&[])?;
    assert_eq!(of(&after, "pr.owner-approval-missing"), found, "CODEOWNERS as of each merge");
    assert_eq!(of(&after, "pr.codeowners-missing"), missing);

    // A bare server repository reports the same owners (HEAD resolved properly).
    let bare = repo.tmp.path().join("server.git");
    repo.git(&["clone", "-q", "--bare", repo.path.to_str().context("path")?, bare.to_str().context("path")?])?;
    let db = repo.path.join(".git/audit/ledger.db");
    let in_bare = compliance(&["-C", bare.to_str().context("path")?, "--ledger", db.to_str().context("path")?])?;
    assert_eq!(of(&in_bare, "pr.owner-approval-missing"), found, "the bare repository and the clone agree");
    assert_eq!(of(&in_bare, "pr.codeowners-missing"), missing);
    Ok(())
}

#[test]
fn a_path_that_case_folds_or_normalises_to_a_protected_one_is_that_path() -> Result<()> {
    let repo = Repo::new()?;
    let rules = "[[paths]]\npattern = \"Dockerfile\"\nsigners = [\"bob@example.com\"]\n[[paths]]\npattern = \"/config/café.yml\"\nsigners = [\"bob@example.com\"]\n";
    let _server = Server::new(&repo, &signing_policy(rules), "sha1")?;
    let k = keys();
    change(&repo, &[("Dockerfile", Some("FROM debian\n"))], &k.bob, "chore: start")?;
    assert_eq!(push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?.0, 0);
    // `dockerfile` beside `Dockerfile`: on a case-insensitive checkout it wins.
    let folded = change(&repo, &[("dockerfile", Some("FROM evil\n"))], &k.alice, "chore: a lower-case twin")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("paths.signer") && err.contains("dockerfile") && err.contains(&folded[..7]), "{err}");
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    // The same name in the other Unicode normal form (as macOS writes it): the same file there.
    let nfd = "config/cafe\u{301}.yml";
    change(&repo, &[(nfd, Some("debug: true\n"))], &k.alice, "chore: decomposed")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("paths.signer"), "{err}");
    // The twin: an unrelated lower-case name, and the listed signer's change, pass.
    repo.git(&["reset", "-q", "--hard", "HEAD~1"])?;
    change(&repo, &[("docs/dockerfile-notes.md", Some("notes\n"))], &k.alice, "docs: notes")?;
    assert_eq!(push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?.0, 0);
    change(&repo, &[("dockerfile", Some("FROM debian:12\n"))], &k.bob, "chore: by the signer")?;
    let (code, err) = push(&repo, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}
