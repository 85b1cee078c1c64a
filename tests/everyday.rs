//! Everyday use as a newcomer meets it: mistakes get clear errors, output
//! fits where it goes, configuration comes from the environment too.

use anyhow::Result;

use crate::hooks::{push, signing_policy, Server, MAIN_RULES};
use crate::support::{keys, pinned_policy, Repo, Sign};

#[test]
fn log_lines_carry_no_colour_codes_into_pipes() -> Result<()> {
    let repo = Repo::new()?;
    repo.commit("feat: one", Sign::None)?;
    let policy = repo.policy(&pinned_policy(""))?;
    for extra in [&[][..], &["--color", "never"][..], &["--color", "auto"][..]] {
        let mut args = vec!["--policy", policy.to_str().unwrap_or_default()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["verify", "HEAD"]);
        let (_, _, err) = repo.audit_env(&args, &[("GIT_AUDIT_LOG", "debug")])?;
        assert!(err.contains("DEBUG"), "debug lines are there: {err}");
        assert!(!err.contains('\x1b'), "escape codes in a pipe with {extra:?}: {err:?}");
    }
    Ok(())
}

#[test]
fn the_policy_and_ledger_can_come_from_the_environment() -> Result<()> {
    let repo = Repo::new()?;
    let elsewhere = repo.tmp.path().join("conf/policy.toml");
    std::fs::create_dir_all(elsewhere.parent().unwrap_or(repo.tmp.path()))?;
    std::fs::write(&elsewhere, "version = 1\n[commits]\nmax_subject_length = 10\n")?;
    repo.commit("feat: a subject longer than ten", Sign::None)?;
    let (code, out, err) = repo.audit_env(&["verify", "HEAD"], &[("GIT_AUDIT_POLICY", elsewhere.to_str().unwrap_or_default())])?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("commits.subject-length") && out.contains(&elsewhere.display().to_string()), "{out}");
    // A flag beats the environment.
    let other = repo.policy("version = 1\n")?;
    let (code, out, err) = repo.audit_env(
        &["--policy", other.to_str().unwrap_or_default(), "verify", "HEAD"],
        &[("GIT_AUDIT_POLICY", elsewhere.to_str().unwrap_or_default())],
    )?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}

#[test]
fn mistyped_flags_and_unknown_commits_are_usage_errors_in_words() -> Result<()> {
    let repo = Repo::new()?;
    repo.commit("feat: one", Sign::None)?;
    let policy = repo.policy("version = 1\n")?;
    let p = policy.to_str().unwrap_or_default();
    let (code, out, err) = repo.audit(&["--policy", p, "verify", "--formt", "json"])?;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("unexpected argument `--formt` (did you mean `--format`?)"), "{err}");
    let (code, _, err) = repo.audit(&["--policy", p, "verify", "deadbeef"])?;
    assert_eq!(code, 2);
    assert!(err.contains("cannot resolve `deadbeef`"), "{err}");
    assert!(!err.contains("class=") && !err.contains("code="), "libgit2 internals leaked: {err}");
    assert!(!err.contains("caused by"), "said once, not again as a cause: {err}");

    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    for unknown in ["deadbeef", "HEAD~100"] {
        let (code, out, err) = repo.audit(&["report", "trace", unknown])?;
        assert_eq!(code, 2, "{unknown}: {out}{err}");
        assert!(err.contains(&format!("unknown commit `{unknown}`")), "{err}");
    }
    Ok(())
}

#[test]
fn a_report_written_to_a_file_takes_its_format_from_the_extension() -> Result<()> {
    let repo = Repo::new()?;
    repo.commit("feat: one", Sign::None)?;
    let (code, _, err) = repo.audit(&["ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    for (file, starts) in [("r.html", "<!DOCTYPE html>"), ("r.json", "{"), ("r.md", "#")] {
        let path = repo.tmp.path().join(file);
        let (code, out, err) = repo.audit(&["report", "compliance", "--output", path.to_str().unwrap_or_default()])?;
        assert!(code == 0 || code == 1, "{out}{err}");
        let text = std::fs::read_to_string(&path)?;
        assert!(text.trim_start().starts_with(starts), "{file}: {}", &text[..text.len().min(80)]);
    }
    // --format still wins.
    let path = repo.tmp.path().join("r2.html");
    repo.audit(&["report", "compliance", "--format", "json", "--output", path.to_str().unwrap_or_default()])?;
    assert!(std::fs::read_to_string(&path)?.trim_start().starts_with('{'));
    Ok(())
}

#[test]
fn sync_without_a_ledger_says_how_to_make_one() -> Result<()> {
    let repo = Repo::new()?;
    let (code, _, err) = repo.audit_env(&["sync", "--github", "acme/api", "--api-url", "http://127.0.0.1:9"], &[("GITHUB_TOKEN", "t")])?;
    assert_eq!(code, 2);
    assert!(err.contains("no ledger at") && err.contains("git-audit ledger init"), "{err}");
    assert!(!err.contains("sync.lock"), "{err}");
    Ok(())
}

#[test]
fn an_accepted_break_glass_push_does_not_read_like_a_refusal() -> Result<()> {
    let repo = Repo::new()?;
    let _server = Server::new(&repo, &signing_policy(&format!("{MAIN_RULES}[roles]\nbreakglass = [\"oncall@example.com\"]\n")), "sha1")?;
    repo.commit("feat: first", Sign::Pgp(&keys().alice))?;
    assert_eq!(push(&repo, &["-q", "origin", "main"], &[])?.0, 0);
    repo.commit("feat: unsigned", Sign::None)?;
    let (code, said) = push(&repo, &["-o", "audit.bypass=INC-9", "origin", "main"], &[("GIT_AUDIT_USER", "oncall@example.com")])?;
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("push accepted by break glass despite violations"), "{said}");
    assert!(said.contains("1 violation(s) let through; fix them in a follow-up push"), "{said}");
    assert!(!said.contains("How to fix") && !said.contains("nothing was updated"), "{said}");
    Ok(())
}

#[test]
fn completions_and_a_man_page() -> Result<()> {
    let repo = Repo::new()?;
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef git-audit"),
        ("fish", "complete -c git-audit"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, out, err) = repo.audit(&["completions", shell])?;
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {}", &out[..out.len().min(200)]);
        assert!(out.contains("verify") && out.contains("ledger"), "{shell} completes the subcommands");
    }
    // bash really loads it.
    let script = repo.tmp.path().join("c.bash");
    std::fs::write(&script, repo.audit(&["completions", "bash"])?.1)?;
    let out = std::process::Command::new("bash").arg("-c").arg(format!("source {} && complete -p git-audit", script.display())).output()?;
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("git-audit"), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, man, _) = repo.audit(&["man"])?;
    assert_eq!(code, 0);
    assert!(man.contains(".TH git-audit 1") && man.contains("verify"), "{}", &man[..man.len().min(200)]);
    Ok(())
}

/// `verify` writes as it checks, batch by batch, so its memory stays flat
/// however long the history: in every format the streamed output is byte for
/// byte the output of one batch, with --record writing the same entries.
#[test]
fn verify_streams_in_batches_and_writes_what_one_batch_writes() -> Result<()> {
    let repo = Repo::new()?;
    let k = keys();
    for i in 0..7 {
        let sign = match i % 3 {
            0 => Sign::Pgp(&k.alice),
            1 => Sign::None,
            _ => Sign::Pgp(&k.bob),
        };
        repo.commit(&format!("{} {i}", if i == 4 { "wip:" } else { "feat:" }), sign)?;
    }
    let policy = repo.policy(&pinned_policy("[commits]\nsubject_pattern = '^(feat|fix): '\n"))?;
    let p = policy.to_str().unwrap_or_default();
    for format in ["json", "text", "github"] {
        let whole = repo.audit(&["--policy", p, "verify", "--format", format, "HEAD"])?;
        for batch in ["1", "3"] {
            let streamed = repo.audit_env(&["--policy", p, "verify", "--format", format, "HEAD"], &[("GIT_AUDIT_VERIFY_BATCH", batch)])?;
            assert_eq!(streamed, whole, "{format} in batches of {batch}");
        }
    }
    let (_, json, _) = repo.audit(&["--policy", p, "verify", "--format", "json", "HEAD"])?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(v["commits"].as_array().map(Vec::len), Some(7), "{v}");
    assert_eq!(v["summary"]["checked"], 7);
    // An empty range is a whole document too.
    let (_, empty, _) = repo.audit_env(&["--policy", p, "verify", "--format", "json", "HEAD..HEAD"], &[("GIT_AUDIT_VERIFY_BATCH", "2")])?;
    let v: serde_json::Value = serde_json::from_str(&empty)?;
    assert_eq!((v["commits"].as_array().map(Vec::len), &v["summary"]["checked"]), (Some(0), &serde_json::json!(0)), "{v}");
    // --record in batches: one policy.loaded, then each commit once.
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let (code, _, err) = repo.audit_env(&["--policy", p, "verify", "--record", "HEAD"], &[("GIT_AUDIT_VERIFY_BATCH", "3")])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("recorded 8 entries") && err.contains("(seq "), "{err}");
    let (code, out, err) = repo.audit(&["ledger", "verify"])?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}

#[test]
fn verify_speaks_github_workflow_commands() -> Result<()> {
    let repo = Repo::new()?;
    let good = repo.commit("feat: fine", Sign::Pgp(&keys().alice))?;
    let bad = repo.commit("wip: 50% done, really", Sign::None)?;
    let policy = repo.policy(&pinned_policy("[commits]\nsubject_pattern = '^(feat|fix): '\n"))?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "--format", "github", "HEAD"])?;
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "::error title=signing.required ({})::{} wip: 50%25 done, really: ",
            &bad[..10],
            &bad[..10]
        ))),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.starts_with("::error title=commits.subject (")), "{out}");
    assert!(lines.iter().all(|l| !l.contains(&good[..10])), "{out}");
    assert!(out.contains("%0AHow to fix: "), "the fix rides along, newline-escaped: {out}");
    assert!(out.lines().last().is_some_and(|l| l.contains("2 commit(s) checked") && l.contains("1 failed")), "{out}");
    Ok(())
}

#[test]
fn an_environment_nobody_deployed_to_is_a_warning_or_with_strict_an_error() -> Result<()> {
    let repo = Repo::new()?;
    repo.audit(&["ledger", "init"])?;
    repo.audit(&["record", "deployment", "--environment", "production", "--sha", &"ab".repeat(20), "--repo", "acme/api"])?;
    repo.audit(&["record", "deployment", "--environment", "staging", "--sha", &"ab".repeat(20), "--repo", "acme/api"])?;
    let (code, _, err) = repo.audit(&["report", "dora", "--env", "nope"])?;
    assert_eq!(code, 0);
    assert!(
        err.contains(
            "warning: no deployment in the ledger went to an environment matching `nope`; known environments: production, staging"
        ),
        "{err}"
    );
    let (code, _, err) = repo.audit(&["report", "dora", "--env", "nope", "--strict"])?;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = repo.audit(&["report", "deployments", "--env", "prod*"])?;
    assert_eq!(code, 0);
    assert!(!err.contains("warning"), "{err}");
    Ok(())
}

#[test]
fn a_shallow_clone_says_what_was_not_checked() -> Result<()> {
    let origin = Repo::new()?;
    for i in 0..3 {
        origin.commit(&format!("feat: {i}"), Sign::None)?;
    }
    let repo = Repo::new()?;
    let clone = repo.tmp.path().join("shallow");
    repo.git(&["clone", "-q", "--depth", "1", &format!("file://{}", origin.path.display()), clone.to_str().unwrap_or_default()])?;
    let policy = repo.policy("version = 1\n")?;
    let run = |extra: &[&str], env: &[(&str, &str)]| -> Result<(i32, String, String)> {
        let mut args = vec!["-C", clone.to_str().unwrap_or_default(), "--policy", policy.to_str().unwrap_or_default(), "verify"];
        args.extend_from_slice(extra);
        args.push("HEAD");
        repo.audit_env(&args, env)
    };
    let (code, out, err) = run(&[], &[])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("warning: this is a shallow clone") && err.contains("git fetch --unshallow"), "{err}");
    let (code, _, err) = run(&["--strict"], &[])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: this is a shallow clone"), "{err}");
    let (code, _, _) = run(&[], &[("CI", "true")])?;
    assert_eq!(code, 1, "enforce mode on CI fails on a shallow history");
    Ok(())
}

#[test]
fn every_policy_problem_at_once_with_the_nearest_key() -> Result<()> {
    let repo = Repo::new()?;
    let p = repo.tmp.path().join("p.toml");
    std::fs::write(
        &p,
        "version = 1\n[signing]\nrequird = true\ntrust = \"policy\"\n[commits]\nmax_subjct_length = 50\nsubject_pattern = \"(\"\n",
    )?;
    let (code, _, err) = repo.audit(&["--policy", p.to_str().unwrap_or_default(), "policy", "check"])?;
    assert_eq!(code, 2, "{err}");
    let file = p.display().to_string();
    assert!(err.contains("invalid policy (3 problems)"), "{err}");
    assert!(err.contains(&format!("{file}:3:1: unknown field `requird`")) && err.contains("Hint: did you mean `required`?"), "{err}");
    assert!(
        err.contains(&format!("{file}:6:1: unknown field `max_subjct_length`")) && err.contains("did you mean `max_subject_length`?"),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:7:19: subject_pattern is not a valid regular expression")), "{err}");
    // Far from any key: no guess, the pointer to the reference instead.
    std::fs::write(&p, "version = 1\n[signing]\nzzzzzzzz = 1\n")?;
    let (_, _, err) = repo.audit(&["--policy", p.to_str().unwrap_or_default(), "policy", "check"])?;
    assert!(!err.contains("did you mean") && err.contains("policy reference"), "{err}");
    Ok(())
}

#[test]
fn the_pre_commit_framework_runs_both_hooks() -> Result<()> {
    // The real `pre-commit` tool, reading this repository's .pre-commit-hooks.yaml.
    let repo = Repo::new()?;
    let hooks_repo = repo.tmp.path().join("git-audit-hooks");
    std::fs::create_dir_all(&hooks_repo)?;
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/.pre-commit-hooks.yaml"), hooks_repo.join(".pre-commit-hooks.yaml"))?;
    let git_in = |dir: &std::path::Path, args: &[&str]| -> Result<String> {
        let out = repo.cmd("git").current_dir(dir).args(args).output()?;
        anyhow::ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    git_in(&hooks_repo, &["init", "-q", "-b", "main"])?;
    git_in(&hooks_repo, &["add", "."])?;
    git_in(&hooks_repo, &["-c", "user.name=H", "-c", "user.email=h@example.com", "commit", "-q", "-m", "hooks"])?;
    let rev = git_in(&hooks_repo, &["rev-parse", "HEAD"])?;
    std::fs::write(
        repo.path.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: file://{}\n    rev: {rev}\n    hooks:\n      - id: git-audit-commit-msg\n      - id: git-audit-pre-push\n",
            hooks_repo.display()
        ),
    )?;
    std::fs::write(repo.path.join(".git-audit.toml"), "version = 1\n[commits]\nsubject_pattern = '^(feat|fix|chore): '\n")?;
    let bin_dir = std::path::Path::new(crate::support::BIN).parent().map(|p| p.display().to_string()).unwrap_or_default();
    // pre-commit ≥ 3.2 (the stage names `pre-push` …): on PATH, or where .ci/run installs it from PyPI.
    let path = format!("{bin_dir}:{}:{}", std::env::var("PATH").unwrap_or_default(), "/opt/git-audit-ci/pre-commit/bin");
    let version = std::process::Command::new("pre-commit").env("PATH", &path).arg("--version").output();
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let (major, minor) = version
        .trim_start_matches("pre-commit ")
        .split_once('.')
        .map_or((0, 0), |(a, b)| (a.parse::<u32>().unwrap_or(0), b.split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(0)));
    assert!(
        major > 3 || (major == 3 && minor >= 2),
        "this test needs the real pre-commit >= 3.2 (found: `{version}`): `python3 -m venv /opt/git-audit-ci/pre-commit && /opt/git-audit-ci/pre-commit/bin/pip install pre-commit` (.ci/run does it)"
    );
    let pre_commit_home = repo.tmp.path().join("pre-commit-cache");
    let run = |program: &str, args: &[&str]| -> Result<(bool, String)> {
        let out = repo.cmd(program).env("PATH", &path).env("PRE_COMMIT_HOME", &pre_commit_home).args(args).output()?;
        Ok((out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
    };
    let (ok, out) = run("pre-commit", &["install", "--hook-type", "commit-msg", "--hook-type", "pre-push"])?;
    assert!(ok, "{out}");
    repo.git(&["add", "."])?;
    // commit-msg: the message file arrives, so the rule is applied, not an exit 2.
    let (ok, out) = run("git", &["commit", "-q", "-m", "did things"])?;
    assert!(!ok, "a bad subject must be refused: {out}");
    assert!(out.contains("commits.subject") && !out.contains("error: the following required arguments"), "{out}");
    let (ok, out) = run("git", &["commit", "-q", "-m", "chore: adopt git-audit"])?;
    assert!(ok, "{out}");
    // pre-push: the first push of a branch to an empty remote.
    let remote = repo.tmp.path().join("empty.git");
    repo.git(&["init", "-q", "--bare", remote.to_str().unwrap_or_default()])?;
    repo.git(&["remote", "add", "origin", &format!("file://{}", remote.display())])?;
    let (ok, out) = run("git", &["push", "-q", "origin", "main"])?;
    assert!(ok, "{out}");
    assert!(!out.contains("cannot resolve"), "{out}");
    // And a later push checks just the new commits (a bad one is refused).
    std::fs::write(repo.path.join("y.txt"), "y")?;
    repo.git(&["add", "."])?;
    repo.git(&["-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "no prefix here"])?;
    let (ok, out) = run("git", &["push", "-q", "origin", "main"])?;
    assert!(!ok, "{out}");
    assert!(out.contains("no prefix here") && out.contains("commits.subject") && !out.contains("adopt git-audit —"), "{out}");
    Ok(())
}

#[test]
fn keys_are_pinned_listed_and_checked_without_hand_editing() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let policy = repo.path.join(".git-audit.toml");
    std::fs::write(&policy, "version = 1\n# our rules\n[signing]\nrequired = true   # everything signed\n")?;
    // OpenPGP, from the developer's keyring (GNUPGHOME): written beside the policy and named in it.
    let (code, out, err) = repo.audit(&["keys", "add", "--gpg", &k.alice.fpr])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("pinned {}", k.alice.fpr)) && out.contains("Alice <alice@example.com>"), "{out}");
    let text = std::fs::read_to_string(&policy)?;
    assert!(text.contains("# our rules") && text.contains("required = true   # everything signed"), "comments kept: {text}");
    assert!(text.contains("openpgp_keys = [\"keys/alice@example.com.asc\"]"), "{text}");
    let (code, _, err) = repo.audit(&["keys", "add", "--gpg", &k.alice.fpr])?;
    assert_eq!(code, 2);
    assert!(err.contains("already pinned"), "{err}");
    // SSH: a correct allowed-signers line.
    let pubkey = k.ssh_alice.private.with_extension("pub");
    let (code, out, err) =
        repo.audit(&["keys", "add", "--ssh", pubkey.to_str().unwrap_or_default(), "--principal", "alice@example.com"])?;
    assert_eq!(code, 0, "{out}{err}");
    // Under keys/, beside the OpenPGP keys, as the starter policy suggests.
    let signers = std::fs::read_to_string(repo.path.join("keys/allowed_signers"))?;
    assert_eq!(signers, format!("alice@example.com namespaces=\"git\" {}\n", k.ssh_alice.public_line));
    assert!(!repo.path.join("allowed_signers").exists());
    assert!(std::fs::read_to_string(&policy)?.contains("ssh_allowed_signers = \"keys/allowed_signers\""));
    // Both kinds now verify.
    let pgp = repo.commit("feat: pgp", Sign::Pgp(&k.alice))?;
    let ssh = repo.commit("feat: ssh", Sign::Ssh(&k.ssh_alice))?;
    let (code, v) = repo.verify_json(&policy, &["HEAD"])?;
    assert_eq!(code, 0, "{v}");
    for id in [&pgp, &ssh] {
        assert_eq!(crate::support::commit_entry(&v, id)["signature"]["status"], "good", "{v}");
    }
    let (code, out, _) = repo.audit(&["keys", "list", "--format", "json"])?;
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out)?;
    let kinds: Vec<&str> = list.as_array().into_iter().flatten().filter_map(|x| x["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["openpgp", "ssh"], "{list}");
    assert_eq!(list[0]["status"], "valid");
    assert_eq!(list[0]["fingerprint"], k.alice.fpr.as_str());
    // check: nothing expiring yet; then an expired key and one expiring in 10 days.
    let (code, out, _) = repo.audit(&["keys", "check"])?;
    assert_eq!(code, 0, "{out}");
    repo.audit(&["keys", "add", "--gpg", k.carol.asc.to_str().unwrap_or_default()])?;
    let home = repo.tmp.path().join("gnupg-soon");
    std::fs::create_dir_all(&home)?;
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let gpg = |args: &[&str]| crate::signatures::gpg_in(&home, None, args);
    gpg(&["--quick-gen-key", "Soon <soon@example.com>", "ed25519", "sign", "10d"])?;
    let soon = repo.tmp.path().join("soon.asc");
    std::fs::write(&soon, gpg(&["--armor", "--export", "soon@example.com"])?)?;
    let (code, out, err) = repo.audit(&["keys", "add", "--gpg", soon.to_str().unwrap_or_default()])?;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = repo.audit(&["keys", "check"])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("carol@example.com") && out.contains("expired"), "{out}");
    assert!(out.contains("soon@example.com") && !out.contains("alice@example.com"), "{out}");
    let (code, out, _) = repo.audit(&["keys", "check", "--days", "5"])?;
    assert_eq!(code, 1);
    assert!(out.contains("carol@example.com") && !out.contains("soon@example.com"), "{out}");
    Ok(())
}

#[test]
fn verify_fills_in_the_base_of_its_range_in_the_rebase_fix() -> Result<()> {
    let repo = Repo::new()?;
    let base = repo.commit("feat: base", Sign::Pgp(&keys().alice))?;
    repo.commit("feat: unsigned", Sign::None)?;
    let policy = repo.policy(&pinned_policy(""))?;
    let range = format!("{}..HEAD", &base[..12]);
    let (code, out, _) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", &range])?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("git rebase --exec 'git commit --amend -S --no-edit' {}`", &base[..12])), "{out}");
    assert!(!out.contains("<base>"), "{out}");
    // Without a range base there is nothing to fill in.
    let (_, out, _) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "HEAD"])?;
    assert!(out.contains("<base>"), "{out}");
    Ok(())
}

#[test]
fn a_repository_owned_by_another_user_is_named_with_gits_fix() -> Result<()> {
    // As a systemd unit without User= or a cron job as root finds it: the
    // repository belongs to `git` (here: nobody), the command runs as root.
    let repo = Repo::new()?;
    repo.commit("feat: one", Sign::None)?;
    let nobody = 65534;
    if std::os::unix::fs::chown(&repo.path, Some(nobody), Some(nobody)).is_err() {
        anyhow::ensure!(std::env::var_os("CI").is_none(), "CI runs as root and must test this");
        eprintln!("skipped: chown needs root");
        return Ok(());
    }
    std::os::unix::fs::chown(repo.path.join(".git"), Some(nobody), Some(nobody))?;
    let policy = repo.policy("version = 1\n")?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "HEAD"])?;
    assert_eq!(code, 2, "{out}{err}");
    assert!(!err.contains("not inside a git repository"), "{err}");
    assert!(err.contains("owned by another user") && err.contains("dubious ownership"), "{err}");
    assert!(err.contains(&format!("git config --global --add safe.directory {}", repo.path.display())), "{err}");
    // git's own fix works for git-audit too.
    repo.git(&["config", "--global", "--add", "safe.directory", repo.path.to_str().unwrap_or_default()])?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().unwrap_or_default(), "verify", "HEAD"])?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}

#[test]
fn break_glass_by_an_unknown_pusher_says_how_the_server_knows_pushers() -> Result<()> {
    let repo = Repo::new()?;
    let _server = Server::new(&repo, &signing_policy(&format!("{MAIN_RULES}[roles]\nbreakglass = [\"oncall@example.com\"]\n")), "sha1")?;
    repo.commit("fix: hotfix, unsigned", Sign::None)?;
    let (code, said) = push(&repo, &["-o", "audit.bypass=INC-9", "origin", "main"], &[])?;
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("break glass refused: an unknown pusher does not hold the breakglass role"), "{said}");
    assert!(said.contains("GIT_AUDIT_USER") && said.contains("audit.pusherSources") && said.contains("git push --signed"), "{said}");
    Ok(())
}

#[test]
fn a_failing_command_under_log_format_json_writes_only_json_to_stderr() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let (code, _, err) = repo.audit(&["--log-format", "json", "report", "trace", "0000000000"])?;
    assert_eq!(code, 2);
    let lines: Vec<serde_json::Value> =
        err.lines().map(serde_json::from_str).collect::<Result<_, _>>().map_err(|e| anyhow::anyhow!("{e}: {err}"))?;
    let fatal = lines.iter().find(|l| l["level"] == "ERROR").ok_or_else(|| anyhow::anyhow!("no ERROR line: {err}"))?;
    assert!(fatal["fields"]["message"].as_str().is_some_and(|m| m.contains("unknown commit `0000000000`")), "{fatal}");
    assert!(fatal["fields"]["hint"].as_str().is_some_and(|h| !h.is_empty()), "the hint is a field of its own: {fatal}");
    // Text logs keep the plain form.
    let (_, _, err) = repo.audit(&["report", "trace", "0000000000"])?;
    assert!(err.starts_with("error: unknown commit") && err.contains("\nHint: "), "{err}");
    Ok(())
}
