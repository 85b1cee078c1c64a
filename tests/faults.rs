//! Fault campaigns, test-sized (`fault/campaign.sh` runs the same tests with
//! many more rounds): every writer killed with SIGKILL at random points, the
//! ledger's writes failing (a file-size limit: SIGXFSZ, or EFBIG when the
//! signal is ignored), and fifty pushes at once into one repository. After
//! each, `ledger verify` is clean and a re-run completes, exactly once.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::fake_github::{Fake, TOKEN};
use crate::hooks::{push, signing_policy, Server};
use crate::support::{keys, Repo, Sign, BIN};

/// Rounds per operation: `GIT_AUDIT_FAULT_ROUNDS` (default 40; `verify
/// --record`, the cheapest, runs three times as many).
fn rounds() -> u64 {
    std::env::var("GIT_AUDIT_FAULT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

/// A small seeded xorshift: a failing round replays from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs `cmd` in a process group of its own and kills the whole group with
/// SIGKILL after `ms` (git, its receive-pack and the hooks alike). True when
/// it had finished by then.
fn kill_after(mut cmd: Command, ms: u64) -> Result<bool> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The child leads its own group (process_group(0)): its id is the group's.
    let group = i32::try_from(child.id()).context("pid")?;
    if group > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    let _ = child.kill();
    child.wait()?;
    Ok(false)
}

fn ledger_verify(repo: &Repo, db: &std::path::Path) -> Result<()> {
    let (code, out, err) = repo.audit(&["--ledger", db.to_str().context("path")?, "ledger", "verify"])?;
    assert_eq!(code, 0, "ledger verify after a fault:\n{out}{err}");
    Ok(())
}

fn count(db: &std::path::Path, sql: &str) -> Result<i64> {
    Ok(Connection::open(db)?.query_row(sql, [], |r| r.get(0))?)
}

/// `verify --record` of 30 commits, killed at random: each batch lands whole
/// or not at all, and a re-run adds exactly one more whole batch.
#[test]
fn verify_record_killed_anywhere_lands_whole_batches() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    for i in 0..30 {
        repo.commit(&format!("feat: change {i}"), if i % 2 == 0 { Sign::Pgp(&keys().alice) } else { Sign::None })?;
    }
    let policy = repo.policy(&crate::support::pinned_policy(""))?;
    let db = repo.path.join(".git/audit/ledger.db");
    let verified = || count(&db, "SELECT count(*) FROM entries WHERE kind = 'commit.verified'");
    let mut rng = Rng(0x5eed_0001);
    let (mut killed, mut finished) = (0, 0);
    for _ in 0..rounds() * 3 {
        let mut c = repo.cmd(BIN);
        c.args(["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"]);
        if kill_after(c, 5 + rng.below(150))? {
            finished += 1;
        } else {
            killed += 1;
        }
        ledger_verify(&repo, &db)?;
        assert_eq!(verified()? % 30, 0, "a partial batch landed");
    }
    let before = verified()?;
    let (code, _, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"])?;
    assert_eq!(code, 1, "{err}"); // half the commits are unsigned
    assert_eq!(verified()? - before, 30);
    let distinct = count(&db, "SELECT count(DISTINCT subject) FROM entries WHERE kind = 'commit.verified'")?;
    assert_eq!(distinct, 30);
    ledger_verify(&repo, &db)?;
    eprintln!("verify --record: {} rounds, {killed} killed, {finished} finished first", rounds() * 3);
    Ok(())
}

/// Pushes killed at random (git, receive-pack and the hooks, all at once):
/// the server's ledger always verifies, and nothing reaches a branch without
/// an accepted decision on record naming its tip (require_ledger).
#[test]
fn pushes_killed_anywhere_never_land_unrecorded() -> Result<()> {
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy("[audit]\nrequire_ledger = true\n"), "sha1")?;
    let mut rng = Rng(0x5eed_0002);
    let (mut killed, mut finished) = (0, 0);
    for round in 0..rounds() {
        repo.commit(&format!("feat: round {round}"), Sign::Pgp(&keys().alice))?;
        let mut c = repo.cmd("git");
        c.args(["push", "-q", "origin", &format!("HEAD:refs/heads/topic-{round}")]);
        if kill_after(c, 10 + rng.below(300))? {
            finished += 1;
        } else {
            killed += 1;
        }
        ledger_verify(&repo, &server.ledger())?;
    }
    // A receive-pack killed while it held a ref's lock leaves `<ref>.lock`
    // behind (git's own crash residue, not git-audit's): cleared as an admin
    // would after a crash. Then every branch is pushed to the end.
    let heads = server.path.join("refs/heads");
    for e in std::fs::read_dir(&heads).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "lock") {
            std::fs::remove_file(e.path())?;
        }
    }
    for round in 0..rounds() {
        let (code, err) = push(&repo, &["-q", "origin", &format!("HEAD~{}:refs/heads/topic-{round}", rounds() - 1 - round)], &[])?;
        assert_eq!(code, 0, "{err}");
    }
    ledger_verify(&repo, &server.ledger())?;
    let accepted: Vec<String> = Connection::open(server.ledger())?
        .prepare("SELECT payload FROM entries WHERE kind = 'push.decided'")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    for round in 0..rounds() {
        let refname = format!("refs/heads/topic-{round}");
        let tip = server.tip(&repo, &refname).context("branch missing")?;
        let named = accepted.iter().any(|p| {
            let v: serde_json::Value = serde_json::from_str(p).unwrap_or_default();
            v["accepted"] == true
                && v["ref_updates"].as_array().into_iter().flatten().any(|u| u["ref"] == refname.as_str() && u["new"] == tip.as_str())
        });
        assert!(named, "{refname} at {tip} landed without an accepted decision on record");
    }
    eprintln!("pushes: {} rounds, {killed} killed, {finished} finished first", rounds());
    Ok(())
}

/// `sync` and `ledger anchor` killed at random: the ledger verifies after
/// each kill, and a re-run records everything exactly once.
#[test]
fn sync_and_anchor_killed_anywhere_resume_exactly_once() -> Result<()> {
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    repo.commit("feat: base", Sign::Pgp(&keys().alice))?;
    let db = repo.path.join(".git/audit/ledger.db");
    let fake = Fake::start(crate::sync::world());
    let sync = || {
        let mut c = repo.cmd(BIN);
        c.env("GITHUB_TOKEN", TOKEN).env("GIT_AUDIT_SYNC_BACKOFF_MS", "5").args(["sync", "--github", "acme/api", "--api-url", &fake.url]);
        c
    };
    let mut rng = Rng(0x5eed_0003);
    let mut killed = 0;
    for round in 0..rounds() {
        let c = if round % 3 == 2 {
            let mut c = repo.cmd(BIN);
            c.args(["ledger", "anchor"]);
            c
        } else {
            sync()
        };
        if !kill_after(c, 5 + rng.below(200))? {
            killed += 1;
        }
        ledger_verify(&repo, &db)?;
        // Held locks die with their holder: the next run is never locked out.
    }
    let out = sync().output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kinds: BTreeMap<String, i64> = Connection::open(&db)?
        .prepare("SELECT kind, count(*) FROM entries GROUP BY kind")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    assert_eq!(kinds.get("pr.synced"), Some(&131), "{kinds:?}");
    assert_eq!(kinds.get("review.synced"), Some(&4), "{kinds:?}");
    assert_eq!(kinds.get("deployment_status.synced"), Some(&3), "{kinds:?}");
    let dup = count(&db, "SELECT count(*) FROM (SELECT kind, subject, payload FROM entries WHERE kind != 'ledger.anchored' GROUP BY kind, subject, payload HAVING count(*) > 1)")?;
    assert_eq!(dup, 0, "an object was recorded twice");
    let (code, _, err) = repo.audit(&["ledger", "anchor"])?;
    assert_eq!(code, 0, "{err}");
    ledger_verify(&repo, &db)?;
    eprintln!("sync/anchor: {} rounds, {killed} killed", rounds());
    Ok(())
}

/// `prlimit --fsize` around a command: the ledger cannot grow. With SIGXFSZ
/// ignored the write fails with EFBIG (an error to handle); otherwise the
/// signal kills the writer mid-write.
fn limited(repo: &Repo, bytes: u64, ignore_signal: bool, args: &[&str]) -> Command {
    let mut c = repo.cmd("sh");
    let trap = if ignore_signal { "trap '' XFSZ; " } else { "" };
    c.arg("-c").arg(format!("{trap}exec prlimit --fsize={bytes} \"$@\"")).arg("sh").args(args);
    c
}

/// Writes that fail (file-size limit, both as SIGXFSZ and as EFBIG) lose
/// nothing and leave the ledger verifiable; the server hook fails closed when
/// recording is required and says the decision was not recorded otherwise;
/// sync resumes from its cursors.
#[test]
fn ledger_writes_that_fail_lose_nothing() -> Result<()> {
    // verify --record.
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    for i in 0..5 {
        repo.commit(&format!("feat: {i}"), Sign::Pgp(&keys().alice))?;
    }
    let policy = repo.policy(&crate::support::pinned_policy(""))?;
    let db = repo.path.join(".git/audit/ledger.db");
    let before = count(&db, "SELECT count(*) FROM entries")?;
    for ignore in [true, false] {
        let out =
            limited(&repo, 4096, ignore, &[BIN, "--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"]).output()?;
        assert!(!out.status.success(), "the write should have failed");
        if ignore {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("ledger"), "the error does not say what failed: {err}");
        }
        ledger_verify(&repo, &db)?;
        assert_eq!(count(&db, "SELECT count(*) FROM entries")?, before, "a failed write left entries");
    }
    let (code, _, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM entries WHERE kind = 'commit.verified'")?, 5);

    // The server hook. A ledger that cannot even be opened (SQLite's shared
    // memory file cannot grow to 32 KiB): refused, saying it was an I/O error.
    let required = Repo::new()?;
    let server = Server::new(&required, &signing_policy("[audit]\nrequire_ledger = true\n"), "sha1")?;
    required.commit("feat: signed", Sign::Pgp(&keys().alice))?;
    let out = limited(&required, 4096, true, &["git", "push", "origin", "HEAD:refs/heads/main"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pushed although the ledger could not be read:\n{err}");
    assert!(err.contains("push refused") && err.contains("disk I/O error") && !err.contains("not a git-audit ledger"), "{err}");
    assert_eq!(err.matches("disk I/O error").count(), 1, "said twice: {err}");
    assert!(server.tip(&required, "refs/heads/main").is_none());
    // A ledger that opens but cannot take the append (a push of 40 commits
    // needs more than 32 KiB of write-ahead log): recording required, refused.
    for i in 0..40 {
        required.commit(&format!("feat: batch {i}"), Sign::Pgp(&keys().alice))?;
    }
    let out = limited(&required, 32768, true, &["git", "push", "origin", "HEAD:refs/heads/main"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pushed although the decision could not be recorded:\n{err}");
    assert!(err.contains("could not be recorded") && err.contains("recording is required"), "{err}");
    assert!(server.tip(&required, "refs/heads/main").is_none());
    ledger_verify(&required, &server.ledger())?;
    // The same limit with SIGXFSZ at its default (a plain `ulimit -f`): the hook
    // ignores the signal, so it refuses with the reason instead of dying of it.
    let out = limited(&required, 32768, false, &["git", "push", "origin", "HEAD:refs/heads/main"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pushed although the decision could not be recorded:\n{err}");
    assert!(err.contains("could not be recorded") && err.contains("recording is required") && !err.contains("signal"), "{err}");
    assert!(server.tip(&required, "refs/heads/main").is_none());
    ledger_verify(&required, &server.ledger())?;

    // Recording not required: accepted, said, and the hole is on record at the next write.
    let lax = Repo::new()?;
    let server = Server::new(&lax, &signing_policy(""), "sha1")?;
    for i in 0..40 {
        lax.commit(&format!("feat: batch {i}"), Sign::Pgp(&keys().alice))?;
    }
    let out = limited(&lax, 32768, true, &["git", "push", "origin", "HEAD:refs/heads/main"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("the decision was not recorded in the audit ledger"), "{err}");
    lax.commit("feat: more", Sign::Pgp(&keys().alice))?;
    let (code, err) = push(&lax, &["origin", "HEAD:refs/heads/main"], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        count(&server.ledger(), "SELECT count(*) FROM entries WHERE kind = 'ledger.gap'")? >= 1,
        "the unrecorded decision is not on record"
    );
    // Intact, and honest about the hole: exit 1, the gap named.
    let (code, out, err) = lax.audit(&["--ledger", server.ledger().to_str().context("path")?, "ledger", "verify"])?;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("went unrecorded") && out.contains("ledger intact but incomplete"), "{out}{err}");

    // sync: fails, then resumes from its cursors, everything once.
    let fake = Fake::start(crate::sync::world());
    let sync_args = [BIN, "sync", "--github", "acme/api", "--api-url", &fake.url];
    let mut c = limited(&repo, 4096, true, &sync_args);
    c.env("GITHUB_TOKEN", TOKEN);
    let out = c.output()?;
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(TOKEN));
    ledger_verify(&repo, &db)?;
    let out = repo.cmd(BIN).env("GITHUB_TOKEN", TOKEN).args(&sync_args[1..]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&db, "SELECT count(*) FROM entries WHERE kind = 'pr.synced'")?, 131);
    ledger_verify(&repo, &db)
}

/// Fifty pushes at once into one bare repository (loopback only: a local
/// `file://` remote): every decision recorded once, the ledger verifies.
/// Prints p50/p99 of the push latency (the hooks run inside it).
#[test]
fn fifty_concurrent_pushes_are_each_recorded_once() -> Result<()> {
    let n: usize = std::env::var("GIT_AUDIT_LOAD_PUSHES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let repo = Repo::new()?;
    let server = Server::new(&repo, &signing_policy(""), "sha1")?;
    let mut tips = Vec::new();
    for i in 0..n {
        repo.git(&["checkout", "-q", "--orphan", &format!("b{i}")])?;
        tips.push(repo.commit(&format!("feat: branch {i}"), Sign::Pgp(&keys().alice))?);
    }
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut c = repo.cmd("git");
            c.args(["push", "-q", "origin", &format!("b{i}:refs/heads/load-{i}")]).stdout(Stdio::null()).stderr(Stdio::piped());
            let t = Instant::now();
            (t, c.spawn())
        })
        .collect();
    let mut latencies = Vec::new();
    for (t, child) in handles {
        let out = child?.wait_with_output()?;
        latencies.push(t.elapsed());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let wall = started.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    eprintln!("{n} concurrent pushes: wall {wall:?}, push latency p50 {:?}, p99 {:?}", pct(50), pct(99));
    let db = server.ledger();
    ledger_verify(&repo, &db)?;
    for (i, tip) in tips.iter().enumerate() {
        let refname = format!("refs/heads/load-{i}");
        assert_eq!(server.tip(&repo, &refname).as_deref(), Some(tip.as_str()));
        let decided =
            count(&db, &format!("SELECT count(*) FROM entries WHERE kind = 'push.decided' AND payload LIKE '%\"ref\":\"{refname}\"%'"))?;
        assert_eq!(decided, 1, "{refname}: {decided} decisions");
    }
    Ok(())
}

/// A full filesystem (a small tmpfs, where the test may mount one: root; CI
/// runs as root and must): appends fail with a clear error, nothing partial
/// is left, `ledger verify` is clean, and the ledger takes entries again once
/// there is room.
#[test]
fn a_full_filesystem_loses_nothing() -> Result<()> {
    let repo = Repo::new()?;
    let dir = repo.tmp.path().join("small-fs");
    std::fs::create_dir_all(&dir)?;
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=640k", "tmpfs"]).arg(&dir).output()?;
    if !mounted.status.success() {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to mount a tmpfs: {}", String::from_utf8_lossy(&mounted.stderr));
        eprintln!("full filesystem: not run (cannot mount a tmpfs here: {})", String::from_utf8_lossy(&mounted.stderr).trim());
        return Ok(());
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(dir.clone());
    let db = dir.join("ledger.db");
    let at = db.to_str().context("path")?;
    let (code, _, err) = repo.audit(&["--ledger", at, "ledger", "init"])?;
    assert_eq!(code, 0, "{err}");
    let pad = "x".repeat(3000);
    let payload = format!("{{\"pad\":\"{pad}\"}}");
    let mut last = 0;
    let mut failures = 0;
    for round in 0..400 {
        let (code, _, err) = repo.audit(&[
            "--ledger",
            at,
            "ledger",
            "append",
            "--kind",
            "test.fill",
            "--subject",
            &format!("r{round}"),
            "--payload",
            &payload,
            "--repeat",
            "5",
        ])?;
        ledger_verify(&repo, &db)?;
        let n = count(&db, "SELECT count(*) FROM entries")?;
        if code == 0 {
            assert!(n > last, "round {round}: an append that succeeded added nothing");
        } else {
            failures += 1;
            assert!(err.contains("ledger") && (err.contains("full") || err.contains("space")), "round {round}: unclear error: {err}");
            assert_eq!(n % 5, 0, "round {round}: a partial batch was left ({n} entries)");
            if failures >= 3 {
                break;
            }
        }
        last = n;
    }
    assert!(failures >= 3, "the filesystem never filled");
    // Room again (the filesystem grows): the same ledger takes entries.
    let grown = Command::new("mount").args(["-o", "remount,size=4m"]).arg(&dir).status()?;
    assert!(grown.success());
    let (code, _, err) =
        repo.audit(&["--ledger", at, "ledger", "append", "--kind", "test.fill", "--subject", "after", "--payload", "{}"])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM entries")?, last + 1);
    eprintln!("full filesystem: {last} entries before it filled, {failures} clean failures, then one more once it grew");
    ledger_verify(&repo, &db)
}
