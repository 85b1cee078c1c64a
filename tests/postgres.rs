//! One ledger for an organisation, in a real PostgreSQL server started for the
//! test run: every command against it, two git servers and a sync job writing
//! it at once, writers killed mid-append, rows tampered with in PostgreSQL
//! itself, and a SQLite ledger migrated there and back with the same root.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::fake_github::{Fake, TOKEN};
use crate::hooks::{signing_policy, Server};
use crate::support::pg::{cluster, db_name, Cluster};
use crate::support::{keys, pinned_policy, Repo, Sign, BIN};

/// A PostgreSQL ledger made with `ledger init --key-file`, and a workspace.
struct Org {
    pg: &'static Cluster,
    repo: Repo,
    url: String,
    key: PathBuf,
}

impl Org {
    /// `None` when no server can be started (outside CI; see support::pg).
    fn new() -> Result<Option<Org>> {
        let Some(pg) = cluster() else { return Ok(None) };
        let url = pg.database()?;
        let repo = Repo::new()?;
        let key = repo.tmp.path().join("keys/ledger.key");
        let (code, out, err) = repo.audit(&["--ledger", &url, "ledger", "init", "--key-file", key.to_str().context("path")?])?;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("created ledger postgres://") && !out.contains(&pg.password) && !err.contains(&pg.password), "{out}{err}");
        Ok(Some(Org { pg, repo, url, key }))
    }

    /// Runs git-audit in the workspace against the shared ledger, found through
    /// the environment (as a sync job or a reporting host would be set up).
    fn audit(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let (code, out, err) =
            self.repo.audit_env(args, &[("GIT_AUDIT_LEDGER", &self.url), ("GIT_AUDIT_LEDGER_KEY", self.key.to_str().context("path")?)])?;
        assert!(!out.contains(&self.pg.password) && !err.contains(&self.pg.password), "the password leaked:\n{out}\n{err}");
        Ok((code, out, err))
    }

    /// `git-audit sync` of the fake GitHub's acme/api from `repo` (a host),
    /// into the shared ledger.
    fn sync(&self, repo: &Repo, api_url: &str, extra: &[&str]) -> Command {
        let mut c = repo.cmd(BIN);
        c.env("GIT_AUDIT_LEDGER", &self.url)
            .env("GIT_AUDIT_LEDGER_KEY", &self.key)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GIT_AUDIT_SYNC_BACKOFF_MS", "20")
            .args(["sync", "--json", "--api-url", api_url, "--github", "acme/api"])
            .args(extra);
        c
    }

    fn sql(&self, sql: &str) -> Result<String> {
        self.pg.psql(db_name(&self.url), sql)
    }

    fn verify(&self) -> Result<(i32, String)> {
        let (code, out, err) = self.audit(&["ledger", "verify"])?;
        Ok((code, out + &err))
    }

    /// A bare repository with the server hooks, writing the shared ledger
    /// (its `audit.ledger` and `audit.ledgerKey` set as an admin would).
    fn server(&self, repo: &Repo, name: &str, extra_policy: &str) -> Result<Server> {
        let path = repo.tmp.path().join(format!("{name}.git"));
        let p = path.to_str().context("path")?;
        repo.git(&["init", "-q", "--bare", "-b", "main", p])?;
        repo.git(&["--git-dir", p, "config", "audit.ledger", &self.url])?;
        repo.git(&["--git-dir", p, "config", "audit.ledgerKey", self.key.to_str().context("path")?])?;
        repo.git(&["--git-dir", p, "config", "audit.name", name])?;
        let policy = repo.tmp.path().join(format!("{name}-policy.toml"));
        std::fs::write(&policy, signing_policy(extra_policy))?;
        let (code, out, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "install", "--server", p])?;
        assert_eq!(code, 0, "{out}{err}");
        assert!(!path.join("audit/ledger.db").exists(), "install made a SQLite ledger beside the shared one");
        Ok(Server { path, policy })
    }
}

fn count(org: &Org, sql: &str) -> Result<i64> {
    Ok(org.sql(sql)?.parse()?)
}

#[test]
fn every_command_works_against_a_postgres_ledger() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    let repo = &org.repo;
    // Found through git config too, as on a git server.
    repo.git(&["config", "audit.ledger", &org.url])?;
    repo.git(&["config", "audit.ledgerKey", org.key.to_str().context("path")?])?;
    let a = repo.commit("feat: signed", Sign::Pgp(&keys().alice))?;
    let policy = repo.policy(&pinned_policy(""))?;
    let (code, out, err) = repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(org.sql(&format!("SELECT signature_status FROM commits WHERE id = '{a}'"))?, "good");

    let ci = [("CI", "true"), ("GITLAB_CI", "true"), ("CI_COMMIT_SHA", a.as_str()), ("CI_ENVIRONMENT_NAME", "production")];
    let mut env: Vec<(&str, &str)> = ci.to_vec();
    env.push(("GIT_AUDIT_LEDGER", &org.url));
    let (code, out, err) = repo.audit_env(&["record", "deployment", "--approved-by", "erin"], &env)?;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count(&org, "SELECT count(*) FROM deployments")?, 1);

    let (code, out, err) = org.audit(&["ledger", "status", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out)?;
    let size = count(&org, "SELECT count(*) FROM entries")?;
    assert!(size >= 2 && status["size"] == size, "{status}");
    assert!(status["path"].as_str().is_some_and(|p| p.starts_with("postgres://postgres:***@")), "{status}");
    let pubkey = status["public_key"].as_str().context("public_key")?.to_string();

    let dir = repo.tmp.path();
    let cp = dir.join("cp.note");
    assert_eq!(org.audit(&["ledger", "checkpoint", "--output", cp.to_str().context("path")?])?.0, 0);
    assert_eq!(count(&org, &format!("SELECT count(*) FROM checkpoints WHERE size = {size}"))?, 1);
    let proof = dir.join("proof.json");
    assert_eq!(org.audit(&["ledger", "prove", "1", "--output", proof.to_str().context("path")?])?.0, 0);
    let (code, out, _) = org.audit(&["ledger", "check-proof", proof.to_str().context("path")?, "--key", &pubkey])?;
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = org.audit(&["ledger", "export"])?;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count() as i64, size);
    assert!(out.contains("commit.verified") && out.contains("deployment.recorded"), "{out}");
    let (code, out, err) = org.audit(&["ledger", "anchor"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("anchored size {size}")), "{out}");
    org.sql("UPDATE commits SET signer = 'mallory'")?;
    let (code, out) = org.verify()?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("projection commits row") && out.contains("signer"), "{out}");
    let (code, out, _) = org.audit(&["ledger", "rebuild"])?;
    assert_eq!(code, 0, "{out}");
    let (code, out) = org.verify()?;
    assert_eq!(code, 0, "{out}");
    // `ledger anchor` recorded the anchoring too.
    assert!(out.contains(&format!("ledger OK: {} entries", count(&org, "SELECT count(*) FROM entries")?)), "{out}");
    let (code, out, err) =
        org.audit(&["--policy", policy.to_str().context("path")?, "report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    assert!(code == 0 || code == 1, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    assert!(report.is_object(), "{out}");
    let (code, out, err) = org.audit(&["report", "deployments", "--env", "production", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{err}");
    let deps: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(deps["deployments"][0]["sha"], a.as_str(), "{deps}");
    assert_eq!(deps["deployments"][0]["approvals"][0]["user"], "erin", "{deps}");
    let (code, out, err) = org.audit(&["--policy", policy.to_str().context("path")?, "report", "trace", &a, "--format", "json"])?;
    assert_eq!(code, 0, "{out}{err}");
    let trace: serde_json::Value = serde_json::from_str(&out)?;
    assert!(trace.to_string().contains(&a), "{trace}");
    let (code, out, err) = org.audit(&["report", "dora", "--since", "2000-01-01", "--format", "json"])?;
    assert_eq!(code, 0, "{out}{err}");
    let dora: serde_json::Value = serde_json::from_str(&out)?;
    assert!(dora.to_string().contains("deployments"), "{dora}");
    let (code, out, err) = org.audit(&["--policy", policy.to_str().context("path")?, "notify", "status"])?;
    assert_eq!(code, 0, "{out}{err}");

    // Reading and verifying need no key; appending without one names the fix.
    let (code, out, err) = repo.audit_env(&["ledger", "verify"], &[("GIT_AUDIT_LEDGER", &org.url), ("GIT_AUDIT_LEDGER_KEY", "")])?;
    assert_eq!(code, 0, "{out}{err}");
    repo.git(&["config", "--unset", "audit.ledgerKey"])?;
    let (code, _, err) = repo.audit(&["ledger", "append", "--kind", "test.event", "--subject", "x"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no signing key is named") && err.contains("--ledger-key"), "{err}");

    // A wrong password, a server that is not there, a database that is not a
    // ledger: named, with the password hidden.
    let wrong = org.url.replace(&org.pg.password, "not-the-password");
    let (code, _, err) = repo.audit(&["--ledger", &wrong, "ledger", "status"])?;
    assert_eq!(code, 2);
    assert!(err.contains("password authentication failed") && err.contains(":***@") && !err.contains("not-the-password"), "{err}");
    let empty = org.pg.database()?;
    let (code, _, err) = repo.audit(&["--ledger", &empty, "ledger", "status"])?;
    assert_eq!(code, 2);
    assert!(err.contains("no ledger at postgres://") && err.contains("ledger init"), "{err}");
    let (code, _, err) =
        repo.audit(&["--ledger", &org.url, "ledger", "init", "--key-file", dir.join("other.key").to_str().context("path")?])?;
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    Ok(())
}

#[test]
fn two_servers_and_a_sync_job_write_one_ledger_at_once() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    let admin = Repo::new()?;
    admin.commit("chore: root", Sign::Pgp(&keys().alice))?;
    // team-b tells a SIEM of refused pushes: its outbox rows go into the shared ledger too.
    let rx = crate::notify::Receiver::start();
    let secret = admin.tmp.path().join("siem.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")?;
    let siem = format!(
        "[[notify]]\nkind = \"webhook\"\nname = \"siem\"\nurl = \"{}/siem\"\nsecret_file = \"{}\"\nevents = [\"push.refused\"]\n",
        rx.url,
        secret.display()
    );
    let servers = [org.server(&admin, "team-a", "")?, org.server(&admin, "team-b", &siem)?];
    for s in &servers {
        admin.git(&["push", "-q", &format!("file://{}", s.path.display()), "main"])?;
    }
    // 16 clones, 8 per server; every fourth pushes unsigned work and is refused.
    let mut clones = Vec::new();
    for i in 0..16usize {
        let server = &servers[i % 2];
        let c = Repo::new()?;
        c.git(&["fetch", "-q", &format!("file://{}", server.path.display()), "main"])?;
        c.git(&["reset", "-q", "--hard", "FETCH_HEAD"])?;
        c.git(&["remote", "add", "origin", &format!("file://{}", server.path.display())])?;
        let refused = i % 4 == 3;
        let sign = if refused { Sign::None } else { Sign::Pgp(&keys().alice) };
        c.git(&["checkout", "-q", "-b", &format!("topic-{i}")])?;
        std::fs::write(c.path.join(format!("work-{i}.txt")), format!("work {i}\n"))?;
        c.git(&["add", "."])?;
        let id = c.commit(&format!("feat: work {i}"), sign)?;
        clones.push((c, i, id, refused));
    }
    let fake = Fake::start(crate::sync::world());
    let sync = org.sync(&org.repo, &fake.url, &[]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()?;
    // All 16 pushes at once, as processes.
    let pushes: Vec<_> = clones
        .iter()
        .map(|(c, i, _, _)| {
            c.cmd("git")
                .args(["push", "-q", "origin", &format!("topic-{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut results = Vec::new();
    for ((_, i, id, refused), p) in clones.iter().zip(pushes) {
        let out = p.wait_with_output()?;
        results.push((*i, id.clone(), *refused, out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let sync_out = sync.wait_with_output()?;
    assert!(sync_out.status.success(), "sync: {}", String::from_utf8_lossy(&sync_out.stderr));
    for (i, _, refused, code, err) in &results {
        assert_eq!(*code != 0, *refused, "clone {i}: {err}");
        assert!(!err.contains(&org.pg.password), "the password leaked to a pusher: {err}");
    }
    // Every decision is there once, accepted or refused, for its ref.
    for (i, id, refused, _, _) in &results {
        let rows = org.sql(&format!(
            "SELECT count(*), min(accepted) FROM ref_updates WHERE ref = 'refs/heads/topic-{i}' AND new = '{id}' AND kind = 'push.decided'"
        ))?;
        assert_eq!(rows, format!("1|{}", if *refused { 0 } else { 1 }), "clone {i}");
    }
    // The sync job's entries landed between them, and nothing was lost or doubled.
    assert_eq!(count(&org, "SELECT count(*) FROM entries WHERE kind = 'pr.synced'")?, 131);
    let (n, max, distinct) = {
        let row = org.sql("SELECT count(*) || ',' || max(seq) || ',' || count(DISTINCT seq) FROM entries")?;
        let v: Vec<i64> = row.split(',').map(str::parse).collect::<Result<_, _>>()?;
        (v[0], v[1], v[2])
    };
    assert_eq!((n, distinct), (max + 1, max + 1), "seqs are not 0..{max} without gaps");
    assert_eq!(count(&org, "SELECT size FROM head")?, n);
    let (code, out) = org.verify()?;
    assert_eq!(code, 0, "{out}");

    // The four refusals (all on team-b), each told once, from the shared outbox.
    let (code, out, err) = org.audit(&["--policy", servers[1].policy.to_str().context("path")?, "notify", "drain", "--budget", "10s"])?;
    assert_eq!(code, 0, "{out}{err}");
    let got = rx.wait_for("/siem", 4);
    let refs: std::collections::BTreeSet<String> =
        got.iter().map(|g| g.json()["data"]["summary"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(got.len(), 4, "{refs:?}");
    assert_eq!(refs.len(), 4, "a refusal was told twice: {refs:?}");
    assert!(got.iter().all(|g| g.json()["type"] == "push.refused" && g.json()["data"]["repository"] == "team-b"), "{refs:?}");
    assert_eq!(count(&org, "SELECT count(*) FROM notify_outbox WHERE sink = 'siem' AND status = 'delivered'")?, 4);
    Ok(())
}

#[test]
fn writers_killed_mid_append_leave_a_valid_postgres_ledger() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    let mut last = 0i64;
    for round in 0..6u64 {
        // Four writers at once; all killed at an arbitrary moment.
        let mut children: Vec<_> = (0..4)
            .map(|w| {
                org.repo
                    .cmd(BIN)
                    .env("GIT_AUDIT_LEDGER", &org.url)
                    .env("GIT_AUDIT_LEDGER_KEY", &org.key)
                    .args(["ledger", "append", "--kind", "test.crash", "--subject", &format!("round-{round}-{w}"), "--repeat", "1000000"])
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        std::thread::sleep(std::time::Duration::from_millis(300 + round * 37));
        for c in &children {
            Command::new("kill").args(["-9", &c.id().to_string()]).status()?;
        }
        for c in &mut children {
            c.wait()?;
        }
        let (code, out) = org.verify()?;
        assert_eq!(code, 0, "round {round}: {out}");
        let n = count(&org, "SELECT count(*) FROM entries")?;
        assert_eq!(count(&org, "SELECT size FROM head")?, n, "round {round}: entries beyond the signed head");
        assert!(n >= last, "entries went from {last} to {n}");
        last = n;
    }
    assert!(last > 0, "no append ever landed before the kills");
    Ok(())
}

#[test]
fn tampering_in_postgres_is_caught_as_in_sqlite() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    for i in 0..20 {
        let (code, _, err) = org.audit(&[
            "ledger",
            "append",
            "--kind",
            "test.event",
            "--subject",
            &format!("s{i}"),
            "--payload",
            &format!("{{\"i\":{i}}}"),
        ])?;
        assert_eq!(code, 0, "{err}");
    }
    let (code, out) = org.verify()?;
    assert_eq!(code, 0, "{out}");
    let cases: &[(&str, &str)] = &[
        ("UPDATE entries SET subject = 'forged' WHERE seq = 7", "entry seq 7: its content does not match its leaf hash"),
        ("DELETE FROM entries WHERE seq = 12", "entry seq 12 is missing (deleted)"),
        ("UPDATE nodes SET hash = decode(repeat('00', 32), 'hex') WHERE level = 1 AND idx = 2", "tree node (level 1, index 2)"),
        ("DELETE FROM entries WHERE seq >= 18", "the log is truncated"),
        (
            "INSERT INTO entries (seq, time, kind, subject, actor, payload, leaf) SELECT 20, time, kind, 'x', actor, payload, leaf FROM entries WHERE seq = 0",
            "not covered by the signed checkpoint",
        ),
        ("UPDATE head SET note = replace(note, 'git-audit', 'git-audiT')", "the latest checkpoint"),
    ];
    for (n, (tamper, expect)) in cases.iter().enumerate() {
        // Each on a fresh copy of the ledger: a database made from this one as a
        // template (retried while the last verify's backend is still leaving).
        let copy = format!("{}_c{n}", db_name(&org.url));
        let mut made = org.pg.psql("postgres", &format!("CREATE DATABASE {copy} TEMPLATE {}", db_name(&org.url)));
        for _ in 0..50 {
            if made.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            made = org.pg.psql("postgres", &format!("CREATE DATABASE {copy} TEMPLATE {}", db_name(&org.url)));
        }
        made?;
        org.pg.psql(&copy, tamper)?;
        let (code, out, err) = org.repo.audit_env(&["ledger", "verify"], &[("GIT_AUDIT_LEDGER", &org.pg.url(&copy))])?;
        assert_eq!(code, 1, "{tamper}: {out}{err}");
        assert!(out.contains(expect), "{tamper}: expected `{expect}` in:\n{out}");
        assert!(out.contains("ledger verification failed"), "{out}");
    }
    // The original is untouched and still whole.
    let (code, out) = org.verify()?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn a_sqlite_ledger_migrates_to_postgres_and_back_with_the_same_root() -> Result<()> {
    let Some(pg) = cluster() else { return Ok(()) };
    let repo = Repo::new()?;
    assert_eq!(repo.audit(&["ledger", "init"])?.0, 0);
    let a = repo.commit("feat: signed", Sign::Pgp(&keys().alice))?;
    let policy = repo.policy(&pinned_policy(""))?;
    assert_eq!(repo.audit(&["--policy", policy.to_str().context("path")?, "verify", "--record", "HEAD"])?.0, 0);
    for i in 0..40 {
        assert_eq!(repo.audit(&["ledger", "append", "--kind", "test.event", "--subject", &format!("s{i}")])?.0, 0);
    }
    let dir = repo.tmp.path();
    let before = dir.join("before.note");
    assert_eq!(repo.audit(&["ledger", "checkpoint", "--output", before.to_str().context("path")?])?.0, 0);
    let status = |args: &[&str]| -> Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["ledger", "status", "--format", "json"]);
        let (code, out, err) = repo.audit(&all)?;
        assert_eq!(code, 0, "{err}");
        Ok(serde_json::from_str(&out)?)
    };
    let root = status(&[])?["root"].clone();

    let url = pg.database()?;
    let (code, out, err) = repo.audit(&["ledger", "migrate", "--to", &url])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("copied 42 entries") && out.contains("migrated") && !out.contains(&pg.password), "{out}");
    assert_eq!(status(&["--ledger", &url])?["root"], root);
    let (code, out, err) = repo.audit(&["--ledger", &url, "ledger", "verify", "--checkpoint", before.to_str().context("path")?])?;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(pg.psql(db_name(&url), &format!("SELECT signature_status FROM commits WHERE id = '{a}'"))?, "good");
    // It takes new entries with the same key (beside the SQLite file).
    let key = repo.path.join(".git/audit/ledger.key");
    let (code, _, err) = repo.audit(&[
        "--ledger",
        &url,
        "--ledger-key",
        key.to_str().context("path")?,
        "ledger",
        "append",
        "--kind",
        "test.event",
        "--subject",
        "after-the-move",
    ])?;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = repo.audit(&["--ledger", &url, "ledger", "verify", "--checkpoint", before.to_str().context("path")?])?;
    assert_eq!(code, 0, "{out}{err}");

    // And back into a new SQLite file: the same root as PostgreSQL's now.
    let back = dir.join("back/ledger.db");
    let pg_root = status(&["--ledger", &url])?["root"].clone();
    let (code, out, err) = repo.audit(&["--ledger", &url, "ledger", "migrate", "--to", back.to_str().context("path")?])?;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(status(&["--ledger", back.to_str().context("path")?])?["root"], pg_root);
    let (code, out, err) =
        repo.audit(&["--ledger", back.to_str().context("path")?, "ledger", "verify", "--checkpoint", before.to_str().context("path")?])?;
    assert_eq!(code, 0, "{out}{err}");
    // A destination that already holds a ledger is refused, untouched.
    let (code, _, err) = repo.audit(&["ledger", "migrate", "--to", &url])?;
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    Ok(())
}

#[test]
fn tls_is_used_when_asked_and_the_server_certificate_is_checked() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    let Some(ca) = &org.pg.ca else {
        eprintln!("*** NOT RUN: the PostgreSQL server was not started here with TLS (no openssl, or GIT_AUDIT_TEST_PG)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "under CI=true the TLS test must run");
        return Ok(());
    };
    // `tlsonly` is refused by the server unless the connection is encrypted.
    org.sql("CREATE ROLE tlsonly LOGIN PASSWORD 'tls-pw'; GRANT ALL ON ALL TABLES IN SCHEMA public TO tlsonly")?;
    let base = format!("postgres://tlsonly:tls-pw@localhost:{}/{}", org.pg.port, db_name(&org.url));
    let status = |url: &str| org.repo.audit(&["--ledger", url, "ledger", "status"]);
    let (code, _, err) = status(&base)?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no encryption") && !err.contains("tls-pw"), "{err}");
    let ca = ca.to_str().context("path")?;
    let (code, out, err) = status(&format!("{base}?sslmode=verify-full&sslrootcert={ca}"))?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("postgres://tlsonly:***@localhost"), "{out}");
    // `require` verifies too: without the CA the certificate is not trusted.
    let (code, _, err) = status(&format!("{base}?sslmode=require"))?;
    assert_eq!(code, 2, "{err}");
    assert!(err.to_lowercase().contains("certificate") && !err.contains("tls-pw"), "{err}");
    let (code, _, err) = status(&format!("{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"))?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslrootcert /nonexistent/ca.pem"), "{err}");
    Ok(())
}

#[test]
fn one_sync_at_a_time_across_machines_sharing_the_ledger() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    let fake = Fake::start(crate::sync::world());
    // Two hosts: two workspaces, so two local lock files; only the database is shared.
    let other = Repo::new()?;
    let sync = |repo: &Repo, extra: &[&str]| org.sync(repo, &fake.url, extra);
    let mut first =
        sync(&org.repo, &["--interval", "1h"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn()?;
    // Wait for its first pass (the summary line).
    let mut stdout = first.stdout.take().context("stdout")?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while std::io::Read::read(&mut stdout, &mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&line).contains("\"requests\""), "{}", String::from_utf8_lossy(&line));
    let out = sync(&other, &[]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("another `git-audit sync` is running") && err.contains("PostgreSQL advisory lock"), "{err}");
    assert!(!err.contains(&org.pg.password), "{err}");
    // Killed outright, its connection closes and the lock goes with it.
    Command::new("kill").args(["-9", &first.id().to_string()]).status()?;
    first.wait()?;
    let mut ok = None;
    for _ in 0..50 {
        let out = sync(&other, &[]).output()?;
        if out.status.success() {
            ok = Some(out);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok.is_some(), "the lock was not released after kill -9");
    assert_eq!(count(&org, "SELECT count(*) FROM entries WHERE kind = 'pr.synced'")?, 131);
    let (code, out) = org.verify()?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

/// `[review] digest = "weekly"`: two sync jobs started at once on one
/// PostgreSQL ledger, and a third after them, send last week's digest once.
#[test]
fn a_weekly_digest_goes_out_once_through_concurrent_sync_jobs() -> Result<()> {
    let Some(org) = Org::new()? else { return Ok(()) };
    let fake = Fake::start(crate::sync::world());
    let rx = crate::notify::Receiver::start();
    let secret = org.repo.tmp.path().join("digest.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")?;
    let policy = org.repo.tmp.path().join("review-policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\n[review]\ndigest = \"weekly\"\n\n[[notify]]\nkind = \"webhook\"\nname = \"review\"\nurl = \"{}/review\"\nsecret_file = \"{}\"\nevents = [\"digest\"]\n",
            rx.url,
            secret.display()
        ),
    )?;
    let other = Repo::new()?;
    let job = |repo: &Repo| {
        let mut c = org.sync(repo, &fake.url, &[]);
        c.env("GIT_AUDIT_POLICY", &policy).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        c
    };
    let (a, b) = (job(&org.repo).spawn()?, job(&other).spawn()?);
    let (a, b) = (a.wait_with_output()?, b.wait_with_output()?);
    // One of them may find the other holding the sync lock (exit 2); at least one synced.
    let codes = [a.status.code(), b.status.code()];
    assert!(codes.contains(&Some(0)), "{codes:?}: {} / {}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    assert!(codes.iter().all(|c| matches!(c, Some(0 | 2))), "{codes:?}");
    let third = job(&other).output()?;
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));
    let got = rx.wait_for("/review", 1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let got_all = rx.got("/review");
    assert_eq!(
        got_all.len(),
        1,
        "exactly once: {:?}",
        got_all.iter().map(|g| String::from_utf8_lossy(&g.body).into_owned()).collect::<Vec<_>>()
    );
    let body: git_audit::notify::body::Body = serde_json::from_slice(&got[0].body)?;
    assert!(body.kind == "digest" && body.family_matches(), "{body:?}");
    // Last whole ISO week, Monday to Monday.
    let git_audit::notify::body::Detail::Digest(dg) = &body.data.detail else { anyhow::bail!("not a digest: {body:?}") };
    let since = chrono::DateTime::parse_from_rfc3339(&dg.since)?;
    assert_eq!(chrono::Datelike::weekday(&since), chrono::Weekday::Mon, "{dg:?}");
    assert_eq!(count(&org, "SELECT count(*) FROM notify_outbox WHERE type = 'digest'")?, 1);
    Ok(())
}
