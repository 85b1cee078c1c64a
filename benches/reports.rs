//! `cargo bench --bench reports`: a synthetic ledger of 1,000,000 entries
//! (100,000 commits over a year, 20,000 merged PRs, 5,000 deployments) over a
//! 100,000-commit git repository; times `report deployments` over a quarter,
//! `report compliance` over a year and the dashboard page, through the real
//! binary — and, with `BENCH_BASELINE_BIN=PATH`, an earlier build beside it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use git_audit::ledger::{Ledger, LedgerFiles, NewEntry};
use serde_json::json;

const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default()
}

fn main() -> Result<()> {
    let commits: usize = std::env::var("BENCH_REPORT_COMMITS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let total: usize = std::env::var("BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir()?;
    // BENCH_KEEP=DIR keeps the repository and ledger there for inspection.
    let base = std::env::var_os("BENCH_KEEP").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo)?;
    let git = |args: &[&str]| Command::new("git").current_dir(&repo).env("GIT_CONFIG_GLOBAL", "/dev/null").args(args).output();
    git(&["init", "-q", "-b", "main"])?;
    // One commit every ~5 minutes for a year, through fast-import.
    let step = 365 * 86400 / commits as i64;
    let t = Instant::now();
    let mut fi = Command::new("git").current_dir(&repo).args(["fast-import", "--quiet"]).stdin(Stdio::piped()).spawn()?;
    {
        let mut w = std::io::BufWriter::new(fi.stdin.take().context("stdin")?);
        for i in 0..commits {
            let msg = format!("feat: change {i}\n");
            writeln!(
                w,
                "commit refs/heads/main\nmark :{}\ncommitter Dev <dev@example.com> {} +0000\ndata {}\n{msg}",
                i + 1,
                START + i as i64 * step,
                msg.len()
            )?;
            writeln!(w, "M 644 inline f{}\ndata 2\n{}\n", i % 100, i % 10)?;
        }
    }
    fi.wait()?;
    let ids: Vec<String> = String::from_utf8(git(&["rev-list", "--reverse", "main"])?.stdout)?.lines().map(str::to_string).collect();
    println!("git repository: {} commits in {:.1} s", ids.len(), t.elapsed().as_secs_f64());

    let loc = LedgerFiles::sqlite(base.join("ledger.db"), base.join("ledger.key"));
    let mut ledger = Ledger::init(&loc, Some("bench.example/reports"))?;
    let t = Instant::now();
    let mut batch: Vec<NewEntry> = Vec::with_capacity(10_000);
    let mut written = 0usize;
    let flush = |batch: &mut Vec<NewEntry>, ledger: &mut Ledger, written: &mut usize| -> Result<()> {
        *written += batch.len();
        ledger.append(batch)?;
        batch.clear();
        Ok(())
    };
    let repo_name = "acme/api";
    for (i, id) in ids.iter().enumerate() {
        let good = i % 10 != 0;
        batch.push(NewEntry::new("commit.verified", id.clone(), "ci@example.com", json!({
            "commit": id, "subject": format!("feat: change {i}"), "policy_digest": "d", "verdict": if good { "pass" } else { "fail" },
            "signature": {"status": if good { "good" } else { "missing" }, "format": if good { json!("openpgp") } else { serde_json::Value::Null }, "signer": if good { "Dev <dev@example.com>" } else { "" }, "key": null},
            "findings": if good { json!([]) } else { json!([{"rule": "signing.required", "severity": "error", "message": "signature missing"}]) },
        })));
        if batch.len() >= 10_000 {
            flush(&mut batch, &mut ledger, &mut written)?;
        }
    }
    // 20,000 pull requests of 5 commits each, merged as the last commit; reviews.
    let prs = commits / 5;
    for n in 0..prs {
        let c: Vec<&String> = ids[n * 5..n * 5 + 5].iter().collect();
        let merged_at = iso(START + ((n * 5 + 4) as i64) * step);
        batch.push(NewEntry::new(
            "pr.synced",
            format!("{repo_name}#{}", n + 1),
            "alice",
            json!({
                "repository": repo_name, "number": n + 1, "title": format!("feat: {n}"), "state": "closed", "draft": false, "merged": true,
                "merged_at": merged_at, "created_at": merged_at, "updated_at": merged_at, "closed_at": merged_at, "html_url": null,
                "merge_commit_sha": c[4], "user": {"login": "alice"}, "merged_by": {"login": "bob"},
                "base": {"ref": "main", "sha": null}, "head": {"ref": "t", "sha": c[4]}, "commits": c, "commits_capped": false,
            }),
        ));
        let reviewer = if n % 50 == 0 { "alice" } else { "carol" };
        batch.push(NewEntry::new("review.synced", format!("{repo_name}#{}", n + 1), reviewer, json!({
            "repository": repo_name, "pull_number": n + 1, "id": n + 1, "state": "APPROVED", "commit_id": if n % 30 == 0 { c[0] } else { c[4] },
            "submitted_at": merged_at, "html_url": null, "author_association": "MEMBER", "user": {"login": reviewer},
        })));
        if batch.len() >= 10_000 {
            flush(&mut batch, &mut ledger, &mut written)?;
        }
    }
    // 5,000 deployments (4 in 5 to production), one every 20 commits, with statuses.
    let deploys = commits / 20;
    for d in 0..deploys {
        let i = d * 20 + 19;
        let env = if d % 5 == 4 { "staging" } else { "production" };
        let at = iso(START + i as i64 * step + 600);
        batch.push(NewEntry::new(
            "deployment.synced",
            ids[i].clone(),
            "deployer",
            json!({
                "repository": repo_name, "id": d + 1, "sha": ids[i], "ref": "main", "environment": env, "task": "deploy",
                "created_at": at, "creator": {"login": "deployer"},
            }),
        ));
        let state = if d % 17 == 0 { "failure" } else { "success" };
        batch.push(NewEntry::new(
            "deployment_status.synced",
            ids[i].clone(),
            "deployer",
            json!({
                "repository": repo_name, "id": 100_000 + d, "deployment_id": d + 1, "state": state, "environment": env,
                "log_url": null, "created_at": at, "creator": {"login": "deployer"},
            }),
        ));
        if batch.len() >= 10_000 {
            flush(&mut batch, &mut ledger, &mut written)?;
        }
    }
    // The rest: other activity (pushes recorded by the hooks), to reach the total.
    let mut k = 0usize;
    while written + batch.len() < total {
        batch.push(NewEntry::new("ci.note", format!("job-{k}"), "ci", json!({"job": k, "result": "ok"})));
        k += 1;
        if batch.len() >= 10_000 {
            flush(&mut batch, &mut ledger, &mut written)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut ledger, &mut written)?;
    }
    drop(ledger);
    println!("ledger: {written} entries in {:.1} s", t.elapsed().as_secs_f64());

    // BENCH_BASELINE_BIN=PATH (an earlier build) is timed beside this one, on the same data.
    let bin = env!("CARGO_BIN_EXE_git-audit").to_string();
    let baseline = std::env::var("BENCH_BASELINE_BIN").ok().filter(|p| std::path::Path::new(p).exists());
    let db = loc.db.to_str().unwrap_or_default().to_string();
    for (label, args) in [
        (
            "report deployments, one quarter",
            vec!["report", "deployments", "--env", "production", "--since", "2026-04-01", "--until", "2026-06-30", "--format", "json"],
        ),
        ("report compliance, one year", vec!["report", "compliance", "--since", "2026-01-01", "--format", "json"]),
    ] {
        let run = |bin: &str| -> Result<(f64, Vec<u8>)> {
            let mut best = f64::MAX;
            let mut stdout = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                let out = Command::new(bin)
                    .current_dir(&repo)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .args(["--ledger", db.as_str()])
                    .args(&args)
                    .output()?;
                best = best.min(t.elapsed().as_secs_f64());
                anyhow::ensure!(out.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&out.stderr));
                stdout = out.stdout;
            }
            Ok((best, stdout))
        };
        let (best, stdout) = run(&bin)?;
        let size = stdout.len();
        let v: serde_json::Value = serde_json::from_slice(&stdout)?;
        let what = match v.get("deployments") {
            Some(d) => format!(
                "{} deployments, {} commits",
                d.as_array().map_or(0, Vec::len),
                d.as_array().into_iter().flatten().map(|x| x["commits"].as_array().map_or(0, Vec::len)).sum::<usize>()
            ),
            None => format!("{} findings", v["findings"].as_array().map_or(0, Vec::len)),
        };
        println!("{label:<34}: {best:>6.3} s ({what}; {size} bytes of JSON; target < 1 s)");
        if let Some(old) = &baseline {
            let (before, _) = run(old)?;
            println!("{:<34}  {before:>6.3} s with the baseline build: {:.2}x", "", before / best);
        }
    }
    // The dashboard: one request, every tile, chart and table, through `serve`.
    for (name, bin) in std::iter::once(("this build", bin.clone())).chain(baseline.map(|b| ("baseline", b))) {
        let (median, best) = dashboard(&bin, &repo, &db)?;
        println!("dashboard page (serve /), {name:<10}: median {median:.3} s, best {best:.3} s (target < 0.2 s)");
    }
    Ok(())
}

/// Median and best time of `GET /?since=2026-01-01&env=production` (seven requests).
fn dashboard(bin: &str, repo: &std::path::Path, db: &str) -> Result<(f64, f64)> {
    use std::io::{BufRead, Read};
    let mut child = Command::new(bin)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["--ledger", db, "serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().context("stderr")?).read_line(&mut line)?;
    let addr = line.split("http://").nth(1).and_then(|r| r.split('/').next()).map(str::to_string);
    let result = (|| -> Result<(f64, f64)> {
        let addr = addr.context(format!("serve did not start: {line}"))?;
        let mut times = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            let mut s = std::net::TcpStream::connect(&addr)?;
            write!(s, "GET /?since=2026-01-01&env=production HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
            let mut body = Vec::new();
            s.read_to_end(&mut body)?;
            anyhow::ensure!(body.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&body[..body.len().min(300)]));
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok((times[times.len() / 2], times[0]))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
