//! `cargo bench --bench hooks`: the pre-receive hook's own wall time for a
//! one-commit push and for a push of 5,000 signed commits, each next to
//! `git log --format=%G?` over the same commits (OpenPGP, pinned keys).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home).args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]);
    c
}

fn run(c: &mut Command) -> Result<Vec<u8>> {
    let out = c.output().with_context(|| format!("{c:?}"))?;
    if !out.status.success() {
        bail!("{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

fn sign(home: &Path, fpr: &str, payload: &[u8]) -> Result<String> {
    let mut child =
        gpg(home).args(["--armor", "--detach-sign", "--local-user", fpr]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(payload)?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8(out.stdout)?)
}

/// A bare repository holding `n` signed commits on no ref (so all are "new").
fn build(path: &Path, n: usize, home: &Path, fpr: &str) -> Result<String> {
    let repo = git2::Repository::init_bare(path)?;
    let who = git2::Signature::new("Bench", "bench@example.com", &git2::Time::new(1_767_225_600, 0))?;
    let mut parent: Option<git2::Oid> = None;
    for i in 0..n {
        let blob = repo.blob(format!("{i}\n").as_bytes())?;
        let mut tb = repo.treebuilder(None)?;
        tb.insert("file.txt", blob, 0o100644)?;
        let tree = repo.find_tree(tb.write()?)?;
        let parents: Vec<git2::Commit<'_>> = parent.map(|p| repo.find_commit(p)).transpose()?.into_iter().collect();
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let buf = repo.commit_create_buffer(&who, &who, &format!("feat: commit {i}\n"), &tree, &refs)?;
        let sig = sign(home, fpr, &buf)?;
        parent = Some(repo.commit_signed(std::str::from_utf8(&buf)?, sig.trim_end(), None)?);
    }
    Ok(parent.context("no commits")?.to_string())
}

/// Runs the pre-receive hook as git would, with `input` on its stdin.
fn pre_receive(repo: &Path, home: &Path, policy: &Path, ledger: &Path, input: &str) -> Result<std::process::Output> {
    // Without the verdict cache: every run judges the signatures afresh (cold).
    let mut child = Command::new(env!("CARGO_BIN_EXE_git-audit"))
        .env("GIT_AUDIT_NO_CACHE", "1")
        .env("GIT_DIR", repo)
        .env("GNUPGHOME", home)
        .args(["--policy", policy.to_str().unwrap_or_default(), "--ledger", ledger.to_str().unwrap_or_default(), "hook", "pre-receive"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(input.as_bytes())?;
    Ok(child.wait_with_output()?)
}

fn best(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn main() -> Result<()> {
    let big: usize = std::env::var("BENCH_COMMITS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("gnupg");
    std::fs::create_dir_all(&home)?;
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    run(gpg(&home).args(["--quick-gen-key", "Bench <bench@example.com>", "ed25519", "sign", "never"]))?;
    let colons = String::from_utf8(run(gpg(&home).args(["--with-colons", "--list-keys", "bench@example.com"]))?)?;
    let fpr = colons.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).context("fpr")?.to_string();
    let asc = tmp.path().join("bench.asc");
    std::fs::write(&asc, run(gpg(&home).args(["--armor", "--export", &fpr]))?)?;
    std::fs::write(tmp.path().join("trust"), format!("{fpr}:6:\n"))?;
    run(gpg(&home).arg("--import-ownertrust").arg(tmp.path().join("trust")))?;
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, format!("version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\n[[branches]]\npattern = \"refs/heads/main\"\nforbid_force_push = true\n", asc.display()))?;

    for (label, n) in [("1-commit push", 1usize), ("push of many commits", big)] {
        let repo = tmp.path().join(format!("r{n}.git"));
        let tip = build(&repo, n, &home, &fpr)?;
        let zero = "0".repeat(40);
        let hook = best(if n == 1 { 20 } else { 3 }, || {
            let out = pre_receive(&repo, &home, &policy, Path::new("/nonexistent/ledger.db"), &format!("{zero} {tip} refs/heads/main\n"))?;
            if !out.status.success() {
                bail!("hook refused: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        })?;
        let git = best(if n == 1 { 20 } else { 3 }, || {
            let out = Command::new("git").env("GIT_DIR", &repo).env("GNUPGHOME", &home).args(["log", "--format=%G?", &tip]).output()?;
            let good = String::from_utf8_lossy(&out.stdout).lines().filter(|l| *l == "G").count();
            if good != n {
                bail!("git saw {good} good of {n}");
            }
            Ok(())
        })?;
        println!(
            "{label:>22} ({n} commits): pre-receive {:>8.1} ms ({:>6.0} commits/s)   git log --format=%G? {:>8.1} ms ({:>6.0} commits/s)   ratio {:.2}x",
            hook.as_secs_f64() * 1e3,
            n as f64 / hook.as_secs_f64(),
            git.as_secs_f64() * 1e3,
            n as f64 / git.as_secs_f64(),
            git.as_secs_f64() / hook.as_secs_f64()
        );
    }
    refused_push_with_notifications(tmp.path(), &home, &fpr, &asc)?;
    push_overhead(tmp.path(), &home, &fpr, &policy)?;
    let _ = Command::new("gpgconf").env("GNUPGHOME", &home).args(["--kill", "all"]).output();
    Ok(())
}

/// A refused 1-commit push recorded in a real ledger: without sinks, and with a
/// webhook sink whose receiver accepts connections and never answers. The hook
/// queues the message and leaves delivery to a detached drain, so the two
/// should take the same time.
fn refused_push_with_notifications(tmp: &Path, home: &Path, fpr: &str, asc: &Path) -> Result<()> {
    let hung = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = hung.local_addr()?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hung.incoming().flatten() {
            held.push(c);
        }
    });
    let secret = tmp.join("secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
    let repo = tmp.join("refused.git");
    let tip = build(&repo, 1, home, fpr)?;
    let zero = "0".repeat(40);
    let base = format!(
        "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\n[commits]\nrequired_trailers = [\"Change-Id\"]\n",
        asc.display()
    );
    let mut times = Vec::new();
    for (label, sinks) in [
        ("no sinks", String::new()),
        (
            "webhook sink, receiver hangs",
            format!("[[notify]]\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\nsecret_file = \"{}\"\n", secret.display()),
        ),
    ] {
        let policy = tmp.join(format!("refuse-{}.toml", times.len()));
        std::fs::write(&policy, format!("{base}{sinks}"))?;
        let ledger = tmp.join(format!("refuse-{}.db", times.len()));
        run(Command::new(env!("CARGO_BIN_EXE_git-audit")).args(["--ledger", ledger.to_str().unwrap_or_default(), "ledger", "init"]))?;
        let t = best(20, || {
            let out = pre_receive(&repo, home, &policy, &ledger, &format!("{zero} {tip} refs/heads/main\n"))?;
            if out.status.success() {
                bail!("the hook should have refused the push");
            }
            Ok(())
        })?;
        println!("{:>30}: refused 1-commit push, recorded: {:>6.1} ms", label, t.as_secs_f64() * 1e3);
        times.push(t);
    }
    println!("{:>30}: {:.2}x the time without sinks", "notifications cost", times[1].as_secs_f64() / times[0].as_secs_f64());
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// What the server hooks add to a real push (#32's aim: at most 10 ms): a
/// one-commit signed push into a bare repository with `install --server`
/// (pre-receive, post-receive, a ledger on disk) against the same push into
/// one without hooks, alternating, median of `BENCH_PUSHES` (default 41).
fn push_overhead(tmp: &Path, home: &Path, fpr: &str, policy: &Path) -> Result<()> {
    let n: usize = std::env::var("BENCH_PUSHES").ok().and_then(|v| v.parse().ok()).unwrap_or(41);
    let source = tmp.join("push-source.git");
    let tip = build(&source, n + 1, home, fpr)?;
    let chain = String::from_utf8(run(Command::new("git").env("GIT_DIR", &source).args(["rev-list", "--reverse", &tip]))?)?;
    let chain: Vec<&str> = chain.lines().collect();
    let (with, without) = (tmp.join("push-hooks.git"), tmp.join("push-plain.git"));
    for dest in [&with, &without] {
        run(Command::new("git").args(["init", "--quiet", "--bare", "-b", "main"]).arg(dest))?;
    }
    run(Command::new(env!("CARGO_BIN_EXE_git-audit")).args([
        "--policy",
        policy.to_str().unwrap_or_default(),
        "install",
        "--server",
        with.to_str().unwrap_or_default(),
    ]))?;
    let push = |dest: &Path, sha: &str| -> Result<Duration> {
        let t = Instant::now();
        let out = Command::new("git")
            .env("GIT_DIR", &source)
            .env("GNUPGHOME", home)
            .args(["push", "--quiet"])
            .arg(dest)
            .arg(format!("{sha}:refs/heads/main"))
            .output()?;
        let took = t.elapsed();
        if !out.status.success() {
            bail!("push to {} refused: {}", dest.display(), String::from_utf8_lossy(&out.stderr));
        }
        Ok(took)
    };
    // The first commit creates the branch in both (not timed).
    push(&with, chain[0])?;
    push(&without, chain[0])?;
    let (mut hooked, mut plain, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for (i, sha) in chain.iter().enumerate().skip(1) {
        let (h, p) = if i % 2 == 0 {
            let h = push(&with, sha)?;
            (h, push(&without, sha)?)
        } else {
            let p = push(&without, sha)?;
            (push(&with, sha)?, p)
        };
        hooked.push(h);
        plain.push(p);
        diff.push(h.saturating_sub(p));
    }
    let entries = String::from_utf8(run(Command::new(env!("CARGO_BIN_EXE_git-audit")).env("GIT_DIR", &with).args(["ledger", "verify"]))?)?;
    let (h, p, d) = (median(hooked), median(plain), median(diff));
    println!(
        "{:>30}: 1-commit signed push with the server hooks {:>6.1} ms, without {:>6.1} ms: the hooks add {:>5.1} ms (median of {n}; aim <= 10 ms)",
        "push overhead",
        h.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e3
    );
    println!("{:>30}: {}", "ledger after the pushes", entries.lines().next().unwrap_or(""));
    Ok(())
}
