//! `cargo bench --bench history`: `git-audit verify --all` over a large,
//! unsigned history (a signing policy, so every commit fails and is written
//! out) against `git log --format=%G? --all` on the same repository: wall
//! time and peak memory, at 100,000 and 200,000 commits (`BENCH_HISTORY`
//! sets the sizes, comma-separated). Memory is `/usr/bin/time`'s maximum
//! resident set; the aim is that it does not grow with the history.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_HISTORY")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 200_000]);
    if !Path::new("/usr/bin/time").exists() {
        bail!("this bench reads peak memory through /usr/bin/time (apt-get install time)");
    }
    let bin = env!("CARGO_BIN_EXE_git-audit");
    let tmp = tempfile::tempdir()?;
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "version = 1\n[signing]\nrequired = true\n")?;
    for n in sizes {
        let repo = tmp.path().join(format!("h{n}"));
        history(&repo, n)?;
        let p = policy.to_str().context("path")?;
        let ours = measure(&repo, &[bin, "--policy", p, "verify", "--all", "--format", "json"])?;
        let git = measure(&repo, &["git", "log", "--format=%G?", "--all"])?;
        println!(
            "verify --all, {n} unsigned commits: {:.2} s, peak {:.0} MiB | git log --format=%G?: {:.2} s, peak {:.0} MiB | time ratio {:.2}x (aim: <1), memory aim ≤ 100 MiB",
            ours.0,
            ours.1,
            git.0,
            git.1,
            ours.0 / git.0
        );
    }
    Ok(())
}

/// A linear history of `n` unsigned commits, through `git fast-import`.
fn history(path: &Path, n: usize) -> Result<()> {
    let ok = Command::new("git").args(["init", "-q", "-b", "main"]).arg(path).status()?.success();
    if !ok {
        bail!("git init failed");
    }
    let mut fi = Command::new("git").current_dir(path).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn()?;
    {
        let mut w = std::io::BufWriter::new(fi.stdin.take().context("stdin")?);
        for i in 0..n {
            let msg = format!("feat: change {i}\n");
            let data = format!("{i}\n");
            write!(
                w,
                "commit refs/heads/main\nmark :{}\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{msg}",
                i + 1,
                1_767_225_600 + i * 60,
                msg.len()
            )?;
            if i > 0 {
                writeln!(w, "from :{i}")?;
            }
            write!(w, "M 644 inline file{}.txt\ndata {}\n{data}\n", i % 100, data.len())?;
        }
    }
    if !fi.wait()?.success() {
        bail!("git fast-import failed");
    }
    Ok(())
}

/// (median wall seconds of 3 runs, largest peak MiB) of `cmd` in `dir`.
fn measure(dir: &Path, cmd: &[&str]) -> Result<(f64, f64)> {
    let mut walls = Vec::new();
    let mut peak: f64 = 0.0;
    for _ in 0..3 {
        let out = Command::new("/usr/bin/time")
            .current_dir(dir)
            .args(["-f", "%e %M"])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        let mut it = last.split_whitespace();
        let wall: f64 = it.next().and_then(|x| x.parse().ok()).with_context(|| format!("{cmd:?}: {err}"))?;
        let kb: f64 = it.next().and_then(|x| x.parse().ok()).with_context(|| format!("{cmd:?}: {err}"))?;
        walls.push(wall);
        peak = peak.max(kb / 1024.0);
    }
    walls.sort_by(f64::total_cmp);
    Ok((walls[1], peak))
}
