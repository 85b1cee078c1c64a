//! `cargo bench --bench ledger`: append throughput (one entry per transaction,
//! as a hook does; batched, as sync does), append → signed checkpoint latency,
//! `ledger verify` over 1,000,000 entries, and inclusion-proof generation time.

use std::time::{Duration, Instant};

use anyhow::Result;
use git_audit::ledger::{verify, Ledger, LedgerFiles, NewEntry};
use serde_json::json;

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

fn main() -> Result<()> {
    let total: u64 = std::env::var("BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir()?;
    // BENCH_KEEP=DIR keeps the ledger there for inspection.
    let dir = std::env::var_os("BENCH_KEEP").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let loc = LedgerFiles::sqlite(dir.join("ledger.db"), dir.join("ledger.key"));
    let mut ledger = Ledger::init(&loc, Some("bench.example/ledger"))?;

    // One entry per transaction, as a hook appends: latency until the signed checkpoint exists.
    let singles = 2000u64;
    let mut lat: Vec<Duration> = Vec::with_capacity(singles as usize);
    let t = Instant::now();
    for i in 0..singles {
        let s = Instant::now();
        ledger.append(&[entry(i)])?;
        lat.push(s.elapsed());
    }
    let single_rate = singles as f64 / t.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "append, 1 entry/transaction (synchronous=FULL): {single_rate:>8.0} appends/s   append→signed checkpoint p50 {:.2} ms  p99 {:.2} ms  (Tessera's shortest batch wait 250 ms: {:.0}x sooner at p99)",
        pct(0.5),
        pct(0.99),
        250.0 / pct(0.99)
    );

    // Batched, as the sync worker appends.
    let batch = 10_000u64;
    let t = Instant::now();
    let mut i = singles;
    while i < total {
        let n = batch.min(total - i);
        let entries: Vec<NewEntry> = (i..i + n).map(entry).collect();
        ledger.append(&entries)?;
        i += n;
    }
    let batched = (total - singles) as f64 / t.elapsed().as_secs_f64();
    println!("append, batches of {batch}:                     {batched:>8.0} entries/s  (target ≥ 50,000)");

    // Inclusion proofs under the current head.
    let n = 1000u64;
    let t = Instant::now();
    for k in 0..n {
        ledger.prove((k * 7919) % total)?;
    }
    println!("inclusion proof over {total} entries:       {:>8.1} µs each", t.elapsed().as_secs_f64() * 1e6 / n as f64);

    // Full verification.
    let reopened = Ledger::open(&loc)?;
    let t = Instant::now();
    let report = verify::verify(&reopened, None, &[])?;
    let secs = t.elapsed().as_secs_f64();
    assert!(report.ok(), "{:?}", report.problems.first());
    println!(
        "ledger verify over {} entries:            {:>8.0} entries/s ({secs:.2} s; target ≥ 500,000)",
        report.entries,
        report.entries as f64 / secs
    );
    let size = std::fs::metadata(&loc.db)?.len();
    println!("ledger file: {:.1} MB ({:.0} bytes/entry)", size as f64 / 1e6, size as f64 / total as f64);
    Ok(())
}
