//! `cargo bench --bench sync`: requests to sync 1,000 pull requests (each with
//! 3 commits and 2 reviews) through REST and through GraphQL, first pass and a
//! second pass with nothing changed, against the local fake GitHub.

#[path = "../tests/fake_github.rs"]
mod fake_github;

use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use fake_github::{sha, Fake, World, TOKEN};

fn world(n: u64) -> World {
    let mut w = World::new("acme/api");
    for i in 1..=n {
        let t = format!("2026-07-{:02}T{:02}:{:02}:00Z", 1 + i / 1440, (i / 60) % 24, i % 60);
        w.pull(i, "alice", &t, &[sha(&format!("{i}a")), sha(&format!("{i}b")), sha(&format!("{i}c"))]);
        w.review(i, "bob", "COMMENTED", &sha(&format!("{i}b")), &t);
        w.review(i, "carol", "APPROVED", &sha(&format!("{i}c")), &t);
    }
    w
}

fn main() -> Result<()> {
    let n: u64 = std::env::var("BENCH_PULLS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    for api in ["rest", "graphql"] {
        let fake = Fake::start(world(n));
        let tmp = tempfile::tempdir()?;
        let db = tmp.path().join("ledger.db");
        let bin = env!("CARGO_BIN_EXE_git-audit");
        Command::new(bin).args(["--ledger", db.to_str().unwrap_or_default(), "ledger", "init"]).output()?;
        let pass = |label: &str| -> Result<()> {
            fake.take_log();
            let t = Instant::now();
            let out = Command::new(bin)
                .env("GITHUB_TOKEN", TOKEN)
                .args([
                    "--ledger",
                    db.to_str().unwrap_or_default(),
                    "sync",
                    "--github",
                    "acme/api",
                    "--api-url",
                    &fake.url,
                    "--pulls-api",
                    api,
                    "--json",
                ])
                .output()?;
            anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let secs = t.elapsed().as_secs_f64();
            let log = fake.take_log();
            let counted = log.iter().filter(|(s, _)| *s != 304).count();
            let not_modified = log.iter().filter(|(s, _)| *s == 304).count();
            println!(
                "{api:>7} {label:<12}: {:>5} requests for {n} pull requests ({} counted against the rate limit, {not_modified} answered 304) in {secs:.2} s",
                log.len(),
                counted
            );
            Ok(())
        };
        pass("first pass")?;
        pass("second pass")?;
    }
    Ok(())
}
