//! The README's CI recipes, run as written: their `verify` lines are taken from
//! README.md and run in the situation a pull request pipeline meets — GitHub's
//! synthetic merge commit checked out, a target branch the clone may lack.

use std::path::Path;

use anyhow::{Context, Result};

use crate::support::{keys, pinned_policy, Repo, Sign, BIN};

const README: &str = include_str!("../README.md");

/// The README line that holds `needle`, without its YAML list marker.
fn recipe_line(needle: &str) -> Result<String> {
    let line = README.lines().find(|l| l.contains(needle)).with_context(|| format!("README.md has no line with `{needle}`"))?;
    let line = line.trim().trim_start_matches("- ").trim_start_matches("run: ");
    Ok(line.to_string())
}

/// A pull request in a real repository: `main` with the policy, a topic
/// branch with one commit signed as `sign`, main moved on meanwhile, and the
/// merge commit GitHub makes for `pull_request` events (unsigned, "Merge X
/// into Y"). Returns (base sha, head sha, merge sha).
fn pull_request(repo: &Repo, sign: Sign<'_>) -> Result<(String, String, String)> {
    let k = keys();
    std::fs::write(repo.path.join(".git-audit.toml"), pinned_policy(""))?;
    repo.commit("chore: policy", Sign::Pgp(&k.alice))?;
    repo.git(&["checkout", "-q", "-b", "topic"])?;
    let head = repo.commit("feat: the change under review", sign)?;
    repo.git(&["checkout", "-q", "main"])?;
    let base = repo.commit("fix: main moved on", Sign::Pgp(&k.alice))?;
    // refs/pull/N/merge: GitHub's test merge of the head into the base.
    repo.git(&["checkout", "-q", "--detach", &base])?;
    repo.git(&["-c", "commit.gpgsign=false", "merge", "-q", "--no-ff", "-m", &format!("Merge {head} into {base}"), &head])?;
    let merge = repo.git(&["rev-parse", "HEAD"])?;
    repo.git(&["checkout", "-q", "main"])?;
    Ok((base, head, merge))
}

/// Runs a README command line (git-audit's arguments split on spaces) in `dir`.
fn run_line(repo: &Repo, dir: &Path, line: &str) -> Result<(i32, String)> {
    let args: Vec<&str> = line.split_whitespace().collect();
    anyhow::ensure!(args.first() == Some(&"git-audit"), "not a git-audit line: {line}");
    let out = repo.cmd(BIN).current_dir(dir).args(&args[1..]).output()?;
    Ok((out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))))
}

#[test]
fn the_github_actions_recipe_judges_the_pull_requests_own_commits() -> Result<()> {
    let line = recipe_line("git-audit verify --format github ${{ github.event.pull_request")?;
    let checkout = recipe_line("ref: ${{ github.event.pull_request.head.sha }}")?;
    assert!(checkout.starts_with("ref: ${{ github.event.pull_request.head.sha }}"), "the recipe checks out the PR's head: {checkout}");
    let k = keys();
    for (sign, passes) in [(Sign::Pgp(&k.alice), true), (Sign::None, false)] {
        let repo = Repo::new()?;
        let (base, head, merge) = pull_request(&repo, sign)?;
        // The old recipe on GitHub's default checkout (the merge commit) judged
        // a commit nobody made: it fails even a signed pull request.
        repo.git(&["checkout", "-q", "--detach", &merge])?;
        let (code, out) = run_line(&repo, &repo.path, &format!("git-audit verify --format github {base}..HEAD"))?;
        assert_eq!(code, 1, "the merge commit is unsigned: {out}");
        assert!(out.contains(&merge[..7]), "{out}");
        // The recipe: checkout at the PR head, verify base.sha..head.sha.
        repo.git(&["checkout", "-q", "--detach", &head])?;
        let cmd =
            line.replace("${{ github.event.pull_request.base.sha }}", &base).replace("${{ github.event.pull_request.head.sha }}", &head);
        let (code, out) = run_line(&repo, &repo.path, &cmd)?;
        assert_eq!(code == 0, passes, "{cmd}:\n{out}");
        if !passes {
            assert!(out.contains("::error") && out.contains("signing.required") && out.contains(&head[..7]), "{out}");
        }
        assert!(!out.contains(&merge[..10]), "the merge commit is not judged: {out}");
    }
    Ok(())
}

#[test]
fn the_gitlab_recipe_fetches_its_target_branch_and_judges_the_merge_requests_commits() -> Result<()> {
    let fetch = recipe_line("git fetch --no-tags origin \"$CI_MERGE_REQUEST_TARGET_BRANCH_NAME\"")?;
    let verify = recipe_line("git-audit verify \"${CI_MERGE_REQUEST_DIFF_BASE_SHA}")?;
    let k = keys();
    for (sign, passes) in [(Sign::Pgp(&k.alice), true), (Sign::None, false)] {
        let origin = Repo::new()?;
        let (base, head, merge) = pull_request(&origin, sign)?;
        // GitLab's clone: detached at the pipeline's commit (a merged-results
        // pipeline runs on GitLab's merge commit), without the target branch.
        let clone = origin.tmp.path().join("clone");
        origin.git(&["clone", "-q", "--no-checkout", origin.path.to_str().context("path")?, clone.to_str().context("path")?])?;
        let git = |args: &[&str]| -> Result<String> {
            let out = origin.cmd("git").current_dir(&clone).args(args).output()?;
            anyhow::ensure!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        git(&["fetch", "-q", "origin", &merge])?;
        git(&["checkout", "-q", "--detach", &merge])?;
        git(&["update-ref", "-d", "refs/remotes/origin/main"])?;
        let diff_base = git(&["merge-base", &base, &head]).or_else(|_| Ok::<_, anyhow::Error>(base.clone()))?;
        let bin_dir = Path::new(BIN).parent().context("bin dir")?;
        let script = format!("set -e\n{fetch}\ngit rev-parse --verify -q refs/remotes/origin/main >/dev/null\n{verify}\n");
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let out = origin
            .cmd("bash")
            .current_dir(&clone)
            .env("PATH", path)
            .env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
            .env("CI_MERGE_REQUEST_DIFF_BASE_SHA", &diff_base)
            .env("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", &head)
            .env("CI_COMMIT_SHA", &merge)
            .args(["-c", &script])
            .output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.success(), passes, "{script}\n{text}");
        assert!(!text.contains(&merge[..10]), "GitLab's merge commit is not judged: {text}");
        if !passes {
            assert!(text.contains("signing.required") && text.contains(&head[..10]), "{text}");
        }
    }
    Ok(())
}

#[test]
fn the_install_line_names_its_prerequisites() -> Result<()> {
    // The README's first command, and what it needs on a fresh machine.
    let install =
        README.lines().find(|l| l.contains("cargo install --locked --path . && git-audit verify HEAD")).context("install line")?;
    for pkg in ["apt-get update", "build-essential", "libgpgme-dev", "pkg-config", "gnupg", "git"] {
        assert!(install.contains(pkg), "the install line lacks {pkg}: {install}");
    }
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))?;
    let rust = manifest.lines().find_map(|l| l.strip_prefix("rust-version = ")).context("rust-version")?.trim_matches('"');
    assert!(README.contains(&format!("Rust {rust} or newer")), "README must say `Rust {rust} or newer` (Cargo.toml's rust-version)");
    assert!(README.contains("libgpgme11"), "README names the runtime library a copied binary needs");
    Ok(())
}

/// A shell line as words: quotes ('…', "…") group, an unquoted `#` after a
/// space starts a comment, and words that stand for a value (`<commit>`,
/// `$VAR`, `"$(…)"`) become `x`.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quote, mut placeholder, mut started) = (None, false, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if !started => break,
            (None, '\'') | (None, '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(if placeholder { "x".to_string() } else { std::mem::take(&mut word) });
                    word.clear();
                }
                (placeholder, started) = (false, false);
            }
            (_, c) => {
                if !started && (c == '<' || c == '$') || (quote == Some('"') && c == '$') {
                    placeholder = true;
                }
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(if placeholder { "x".to_string() } else { word });
    }
    words
}

/// Every `git-audit …` command line in the README's shell blocks, as words
/// (continuations joined; env assignments before it and redirections after it
/// dropped). Lines that show a choice (`a|b`, `…`) are left out.
fn readme_commands() -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in README.lines().enumerate() {
        if raw.starts_with("```") {
            in_sh = raw.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let (start, text) = match pending.take() {
            Some((n, acc)) => (n, format!("{acc} {}", raw.trim())),
            None => (i + 1, raw.trim().to_string()),
        };
        if let Some(t) = text.strip_suffix('\\') {
            pending = Some((start, t.trim_end().to_string()));
            continue;
        }
        for part in text.split("&&").map(str::trim) {
            let words = shell_words(part);
            let words: Vec<String> = words.into_iter().skip_while(|w| w.contains('=') && !w.starts_with('-')).collect();
            if words.first().map(String::as_str) != Some("git-audit")
                || part.contains('…')
                || words.iter().any(|w| w == "|" || w.contains('|'))
            {
                continue;
            }
            let words: Vec<String> = words.into_iter().take_while(|w| !matches!(w.as_str(), ">" | ">>" | "2>&1" | "<")).collect();
            out.push((start, words));
        }
    }
    out
}

#[test]
fn every_command_the_readme_shows_parses() -> Result<()> {
    use clap::Parser;
    let commands = readme_commands();
    assert!(commands.len() >= 30, "the README's shell blocks hold its commands: found {}", commands.len());
    let mut bad = Vec::new();
    for (line, words) in &commands {
        if let Err(e) = git_audit::cli::Cli::try_parse_from(words) {
            if !matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) {
                bad.push(format!("README.md:{line}: `{}`: {}", words.join(" "), e.kind()));
            }
        }
    }
    assert!(bad.is_empty(), "README commands git-audit does not accept:\n{}", bad.join("\n"));
    Ok(())
}

/// The README's `[review]` example is a policy `policy check` accepts, as written.
#[test]
fn the_review_example_is_a_valid_policy() -> Result<()> {
    let section = README.split("## Regular review").nth(1).context("README.md has no Regular review section")?;
    let block = section.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).context("no toml block there")?;
    assert!(block.contains("[review]") && block.contains("refusal_window"), "{block}");
    let repo = Repo::new()?;
    let policy = repo.policy(block)?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "policy", "check"])?;
    assert_eq!(code, 0, "{out}{err}");
    Ok(())
}

/// The README's GitLab server-hook files, as Gitaly would run them: the two
/// `exec … hook` lines in a bare repository's hooks, a push with `GL_USERNAME`
/// set. A signed commit lands and is recorded as that user's; an unsigned one
/// is refused.
#[test]
fn the_gitlab_server_hook_files_decide_and_record_pushes_as_gl_username() -> Result<()> {
    let k = keys();
    let repo = Repo::new()?;
    let tmp = repo.tmp.path();
    let policy = tmp.join("policy.toml");
    std::fs::write(&policy, pinned_policy(""))?;
    let ledger = tmp.join("gitlab-ledger.db");
    let server = tmp.join("server.git");
    repo.git(&["init", "-q", "--bare", "-b", "main", server.to_str().context("path")?])?;
    let bin = Path::new(BIN);
    let swap = |line: &str| {
        line.replace("/usr/local/bin/git-audit", &bin.display().to_string())
            .replace("/etc/git-audit/policy.toml", &policy.display().to_string())
            .replace("/var/opt/gitlab/git-audit/ledger.db", &ledger.display().to_string())
    };
    let init = recipe_line("git-audit --ledger /var/opt/gitlab/git-audit/ledger.db ledger init")?;
    let init = swap(init.trim_start_matches("sudo -u git "));
    let (code, out) = run_line(&repo, tmp, &init.replacen(&bin.display().to_string(), "git-audit", 1))?;
    assert_eq!(code, 0, "{init}: {out}");
    for hook in ["pre-receive", "post-receive"] {
        let line = recipe_line(&format!("ledger.db hook {hook}"))?;
        let path = server.join("hooks").join(hook);
        std::fs::write(&path, format!("#!/bin/sh\n{}\n", swap(&line)))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    let push = |label: &str| -> Result<(bool, String)> {
        let out = repo
            .cmd("git")
            .current_dir(&repo.path)
            .env("GL_USERNAME", "gitlab-alice")
            .args(["push", server.to_str().context("path")?, "HEAD:refs/heads/main"])
            .output()?;
        Ok((out.status.success(), format!("{label}: {}", String::from_utf8_lossy(&out.stderr))))
    };
    repo.commit("feat: signed", Sign::Pgp(&k.alice))?;
    let (ok, said) = push("signed")?;
    assert!(ok, "{said}");
    repo.commit("feat: unsigned", Sign::None)?;
    let (ok, said) = push("unsigned")?;
    assert!(!ok && said.contains("signing.required"), "{said}");
    let c = rusqlite::Connection::open(&ledger)?;
    let pushers: Vec<(String, i64)> = c
        .prepare("SELECT pusher, accepted FROM ref_updates ORDER BY seq")?
        .query_map([], |r| Ok((r.get::<_, Option<String>>(0)?.unwrap_or_default(), r.get::<_, Option<i64>>(1)?.unwrap_or(-1))))?
        .collect::<Result<_, _>>()?;
    assert!(pushers.contains(&("gitlab-alice".to_string(), 1)), "{pushers:?}");
    assert!(pushers.contains(&("gitlab-alice".to_string(), 0)), "{pushers:?}");
    Ok(())
}
