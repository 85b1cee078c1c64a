//! `cargo bench --bench ledger`: the ledger on SQLite and on PostgreSQL, side
//! by side on this machine. Appends one entry per transaction (as a hook
//! does) and in batches (as sync does), by 1 and by 8 concurrent writers;
//! append → signed checkpoint latency; `ledger verify`; inclusion proofs.
//!
//! PostgreSQL is a real server started for the run (tests/support/pg.rs:
//! initdb/pg_ctl, else pg_virtualenv; `GIT_AUDIT_TEST_PG=postgres://…` uses
//! yours). `BENCH_ENTRIES` sets the ledger size (default 1,000,000);
//! `BENCH_STORES=sqlite` (or `postgres`) runs one column.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use git_audit::ledger::store::PgUrl;
use git_audit::ledger::{verify, Ledger, LedgerFiles, NewEntry};
use serde_json::json;

#[allow(dead_code)]
#[path = "../tests/support/pg.rs"]
mod pg;

fn entry(i: u64) -> NewEntry {
    // Shaped like a real commit.verified entry (~450 bytes).
    let id = format!("{:040x}", i.wrapping_mul(0x9e3779b97f4a7c15));
    NewEntry::new(
        "commit.verified",
        id.clone(),
        "ci@example.com",
        json!({
            "commit": id, "subject": format!("feat: change number {i}"), "author": "Alice <alice@example.com>",
            "committer": "Alice <alice@example.com>", "policy_digest": "9f4c5027036a7da859b39ef9d3821ad09b0b8d42a221ff3d9fc656bb6d4958da",
            "verdict": "pass", "findings": [],
            "signature": {"status": "good", "format": "openpgp", "signer": "Alice <alice@example.com>", "key": "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"},
        }),
    )
}

#[derive(Default, Clone)]
struct Column {
    single: [f64; 2],
    p50: [f64; 2],
    p99: [f64; 2],
    batched: [f64; 2],
    verify: f64,
    proof_us: f64,
    entries: u64,
}

/// `writers` threads, each with its own connection, append `per` entries in
/// transactions of `batch`; returns (entries/s, sorted latencies).
fn appends(loc: &LedgerFiles, writers: u64, per: u64, batch: u64, first: u64) -> Result<(f64, Vec<Duration>)> {
    let t = Instant::now();
    let lat = std::thread::scope(|s| -> Result<Vec<Duration>> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                s.spawn(move || -> Result<Vec<Duration>> {
                    let mut l = Ledger::open(loc)?;
                    let mut lat = Vec::with_capacity((per / batch) as usize);
                    let base = first + w * per;
                    let mut i = 0;
                    while i < per {
                        let n = batch.min(per - i);
                        let entries: Vec<NewEntry> = (base + i..base + i + n).map(entry).collect();
                        let s = Instant::now();
                        l.append(&entries)?;
                        lat.push(s.elapsed());
                        i += n;
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow::anyhow!("writer panicked"))??);
        }
        Ok(all)
    })?;
    let rate = (writers * per) as f64 / t.elapsed().as_secs_f64();
    let mut lat = lat;
    lat.sort();
    Ok((rate, lat))
}

fn pct(lat: &[Duration], p: f64) -> f64 {
    lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3
}

fn column(name: &str, loc: &LedgerFiles, total: u64) -> Result<Column> {
    let mut c = Column::default();
    let mut next = 0u64;
    for (k, writers) in [1u64, 8].into_iter().enumerate() {
        let per = 2000 / writers;
        let (rate, lat) = appends(loc, writers, per, 1, next)?;
        next += writers * per;
        c.single[k] = rate;
        c.p50[k] = pct(&lat, 0.5);
        c.p99[k] = pct(&lat, 0.99);
        eprintln!("{name}: {writers} writer(s), 1 entry/transaction: {rate:.0}/s, p50 {:.2} ms, p99 {:.2} ms", c.p50[k], c.p99[k]);
    }
    let remaining = total.saturating_sub(next);
    // Batches of 10,000: a tenth of the ledger by 8 writers, the rest by one.
    let eight = (remaining / 10 / 8 / 10_000).max(1) * 10_000;
    let (rate8, _) = appends(loc, 8, eight, 10_000, next)?;
    next += 8 * eight;
    let one = total.saturating_sub(next).max(10_000);
    let (rate1, _) = appends(loc, 1, one, 10_000, next)?;
    next += one;
    c.batched = [rate1, rate8];
    eprintln!("{name}: batched 1 writer {rate1:.0}/s, 8 writers {rate8:.0}/s");

    let ledger = Ledger::open(loc)?;
    let n = 1000u64;
    let t = Instant::now();
    for k in 0..n {
        ledger.prove((k * 7919) % next)?;
    }
    c.proof_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    let report = verify::verify(&ledger, None, &[])?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(report.ok(), "{name}: {:?}", report.problems.first());
    c.verify = report.entries as f64 / secs;
    c.entries = report.entries;
    eprintln!("{name}: verify {} entries in {secs:.2} s", report.entries);
    Ok(c)
}

fn main() -> Result<()> {
    let total: u64 = std::env::var("BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "sqlite,postgres".into());
    let tmp = tempfile::tempdir()?;
    let key = tmp.path().join("ledger.key");
    let mut cols: Vec<(&str, Column)> = Vec::new();
    if stores.contains("sqlite") {
        let loc = LedgerFiles::sqlite(tmp.path().join("ledger.db"), key.clone());
        Ledger::init(&loc, Some("bench.example/ledger"))?;
        cols.push(("SQLite", column("sqlite", &loc, total)?));
        let size = std::fs::metadata(&loc.db)?.len();
        eprintln!("sqlite file: {:.1} MB ({:.0} bytes/entry)", size as f64 / 1e6, size as f64 / total as f64);
    }
    if stores.contains("postgres") {
        // A durable server (fsync on), as SQLite runs with synchronous=FULL.
        std::env::set_var("GIT_AUDIT_PG_DURABLE", "1");
        let cluster = pg::cluster().context("no PostgreSQL server for the bench")?;
        let url = PgUrl::parse(&cluster.database()?).context("url")?;
        let loc = LedgerFiles::postgres(url, Some(tmp.path().join("pg.key")), tmp.path());
        Ledger::init(&loc, Some("bench.example/ledger"))?;
        cols.push(("PostgreSQL", column("postgres", &loc, total)?));
    }
    println!("ledger of {total} entries, on this machine ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    print!("{:<46}", "");
    for (name, _) in &cols {
        print!("{name:>14}");
    }
    println!();
    let row = |label: &str, f: &dyn Fn(&Column) -> String| {
        print!("{label:<46}");
        for (_, c) in &cols {
            print!("{:>14}", f(c));
        }
        println!();
    };
    for (k, w) in ["1 writer", "8 writers"].iter().enumerate() {
        row(&format!("appends/s, 1 entry/transaction, {w}"), &|c| format!("{:.0}", c.single[k]));
        row(&format!("  append→signed checkpoint p50 ms, {w}"), &|c| format!("{:.2}", c.p50[k]));
        row(&format!("  append→signed checkpoint p99 ms, {w}"), &|c| format!("{:.2}", c.p99[k]));
        row(&format!("entries/s, batches of 10,000, {w}"), &|c| format!("{:.0}", c.batched[k]));
    }
    row("ledger verify, entries/s", &|c| format!("{:.0}", c.verify));
    row("inclusion proof, µs", &|c| format!("{:.1}", c.proof_us));
    println!("targets: PostgreSQL batched ≥ 20,000/s, p99 append→checkpoint < 20 ms with 8 writers; SQLite batched ≥ 50,000/s, verify ≥ 500,000/s");
    println!("(Tessera's POSIX driver integrates ~10,000/s with seconds of latency; its shortest batch wait is 250 ms)");
    Ok(())
}
