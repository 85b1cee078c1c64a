//! `cargo bench --bench verify`: commits/second of `git-audit verify` against
//! `git log --format=%G?` on the same repository (2,000 OpenPGP-signed commits,
//! and 2,000 SSH-signed commits). Both get the same trust setup and must agree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const N: usize = 2000;
const RUNS: usize = 3;

fn main() -> Result<()> {
    let n = std::env::var("BENCH_COMMITS").ok().and_then(|v| v.parse().ok()).unwrap_or(N);
    let tmp = tempfile::tempdir()?;
    let gnupg = tmp.path().join("gnupg");
    std::fs::create_dir_all(&gnupg)?;
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let fpr = make_pgp_key(&gnupg)?;
    let asc = tmp.path().join("bench.asc");
    std::fs::write(&asc, run(gpg(&gnupg).args(["--armor", "--export", &fpr]))?)?;
    std::fs::write(tmp.path().join("trust"), format!("{fpr}:6:\n"))?;
    run(gpg(&gnupg).arg("--import-ownertrust").arg(tmp.path().join("trust")))?;

    let ssh_key = tmp.path().join("id_bench");
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "bench@example.com", "-f"]).arg(&ssh_key))?;
    let public = std::fs::read_to_string(ssh_key.with_extension("pub"))?;
    let allowed = tmp.path().join("allowed_signers");
    std::fs::write(&allowed, format!("bench@example.com namespaces=\"git\" {public}"))?;
    let policy = tmp.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\n[signing]\nrequired = true\nopenpgp_keys = [\"{}\"]\nssh_allowed_signers = \"{}\"\nmatch_committer = true\n",
            asc.display(),
            allowed.display()
        ),
    )?;

    println!("building repositories of {n} signed commits …");
    let pgp_repo = tmp.path().join("pgp");
    build_repo(&pgp_repo, n, |payload| sign_pgp(&gnupg, &fpr, payload))?;
    let private = ssh_key::PrivateKey::read_openssh_file(&ssh_key)?;
    let ssh_repo = tmp.path().join("ssh");
    build_repo(&ssh_repo, n, |payload| {
        let sig = ssh_key::SshSig::sign(&private, "git", ssh_key::HashAlg::Sha512, payload)?;
        Ok(sig.to_pem(ssh_key::LineEnding::LF)?.into_bytes())
    })?;

    let cache = tmp.path().join("cache");
    for (name, repo) in [("OpenPGP (in process)", &pgp_repo), ("SSH (in process)", &ssh_repo)] {
        let verify = |extra: &[&str]| -> Result<()> {
            let out = Command::new(env!("CARGO_BIN_EXE_git-audit"))
                .current_dir(repo)
                .env("GNUPGHOME", &gnupg)
                .env("XDG_CACHE_HOME", &cache)
                .args(["--policy", policy.to_str().unwrap_or_default(), "verify", "--format", "json"])
                .args(extra)
                .arg("HEAD")
                .output()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("verify output")?;
            if v["summary"]["checked"] != n || v["summary"]["failed"] != 0 {
                bail!("unexpected verify result: {}", v["summary"]);
            }
            Ok(())
        };
        let cold = best_of(|| verify(&["--no-cache"]))?;
        let _ = std::fs::remove_dir_all(&cache);
        let first = best_of_n(1, || verify(&[]))?;
        let cached = best_of(|| verify(&[]))?;
        let git = best_of(|| {
            let out = Command::new("git")
                .current_dir(repo)
                .env("GNUPGHOME", &gnupg)
                .args(["-c", &format!("gpg.ssh.allowedSignersFile={}", allowed.display())])
                .args(["log", "--format=%G?", "HEAD"])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let good = text.lines().filter(|l| *l == "G").count();
            if good != n {
                bail!("git found {good} good signatures of {n}");
            }
            Ok(())
        })?;
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "{name:>20}: git-audit cold {:>8.0} commits/s ({:.3} s), first run filling the cache {:.3} s, cached {:>8.0} commits/s ({:.3} s)   git log --format=%G? {:>6.0} commits/s ({:.2} s)   cold {:.1}x git, cached {:.1}x cold",
            rate(cold),
            cold.as_secs_f64(),
            first.as_secs_f64(),
            rate(cached),
            cached.as_secs_f64(),
            rate(git),
            git.as_secs_f64(),
            rate(cold) / rate(git),
            rate(cached) / rate(cold)
        );
    }
    let _ = Command::new("gpgconf").env("GNUPGHOME", &gnupg).args(["--kill", "all"]).output();
    Ok(())
}

fn best_of(f: impl FnMut() -> Result<()>) -> Result<Duration> {
    best_of_n(RUNS, f)
}

fn best_of_n(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

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

fn make_pgp_key(home: &Path) -> Result<String> {
    run(gpg(home).args(["--quick-gen-key", "Bench <bench@example.com>", "ed25519", "sign", "never"]))?;
    let out = run(gpg(home).args(["--with-colons", "--list-keys", "bench@example.com"]))?;
    let text = String::from_utf8_lossy(&out);
    Ok(text.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).context("fingerprint")?.to_string())
}

fn sign_pgp(home: &Path, fpr: &str, payload: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = gpg(home)
        .args(["--armor", "--detach-sign", "--local-user", fpr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(payload)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gpg sign failed");
    }
    Ok(out.stdout)
}

/// A linear history of `n` commits, each signed by `sign` over its exact payload.
fn build_repo(path: &Path, n: usize, mut sign: impl FnMut(&[u8]) -> Result<Vec<u8>>) -> Result<PathBuf> {
    let repo = git2::Repository::init(path)?;
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
        let sig = sign(&buf)?;
        let sig = String::from_utf8(sig)?;
        let content = std::str::from_utf8(&buf)?;
        parent = Some(repo.commit_signed(content, sig.trim_end(), None)?);
    }
    let head = parent.context("no commits")?;
    repo.reference("refs/heads/main", head, true, "bench")?;
    repo.set_head("refs/heads/main")?;
    Ok(path.to_path_buf())
}
