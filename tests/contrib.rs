//! The files under `contrib/`, as an admin installs them: the systemd unit and
//! timer pass `systemd-analyze verify` with their environment file present,
//! have no value-trailing comments (systemd has none: the comment would become
//! part of the value), run as the repository's owner, and their ExecStart runs
//! a real sync with the environment file's settings; the cron line does the
//! same with cron's PATH. Paths are moved into a temporary directory; nothing
//! else is changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fake_github::{sha, Fake, World, TOKEN};
use crate::hooks::{signing_policy, Server};
use crate::support::{Repo, BIN};

fn contrib(rel: &str) -> Result<String> {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(rel)).with_context(|| format!("contrib/{rel}"))
}

/// `Key=Value` lines (systemd unit or environment file), comments skipped.
fn assignments(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

/// What systemd and cron would do wrong with a comment after a value.
fn no_trailing_comments(name: &str, text: &str) {
    for (k, v) in assignments(text) {
        assert!(!v.contains(" #") && !v.contains("\t#") && !v.contains(" ;"), "{name}: `{k}={v}`: systemd has no trailing comments");
    }
}

/// A server repository with the hooks, a ledger and a `sync` writer; a fake
/// GitHub with one merged pull request. Returns (server, sync key, fake).
fn server_with_sync_writer(repo: &Repo) -> Result<(Server, PathBuf, Fake)> {
    let server = Server::new(repo, &signing_policy(""), "sha1")?;
    let owner = server.path.join("audit/ledger.key");
    let sync_key = repo.tmp.path().join("etc/sync.key");
    std::fs::create_dir_all(sync_key.parent().context("dir")?)?;
    let (code, _, err) = repo.audit(&[
        "-C",
        server.path.to_str().context("path")?,
        "--ledger-key",
        owner.to_str().context("path")?,
        "ledger",
        "writers",
        "add",
        "sync",
        "--role",
        "sync",
        "--key-out",
        sync_key.to_str().context("path")?,
    ])?;
    assert_eq!(code, 0, "{err}");
    let mut w = World::new("acme/api");
    w.pull(1, "alice", "2026-07-01T00:00:00Z", &[sha("c1")]);
    w.merge(1, "bob", "2026-07-01T02:00:00Z", &sha("m1"));
    Ok((server, sync_key, Fake::start(w)))
}

/// The sync entries in the server's ledger, by writer.
fn synced_by(server: &Server) -> Result<BTreeMap<String, usize>> {
    let c = rusqlite::Connection::open(server.path.join("audit/ledger.db"))?;
    let mut out = BTreeMap::new();
    let mut st = c.prepare("SELECT writer FROM entries WHERE kind LIKE '%.synced'")?;
    for w in st.query_map([], |r| r.get::<_, Option<String>>(0))? {
        *out.entry(w?.unwrap_or_default()).or_insert(0) += 1;
    }
    Ok(out)
}

#[test]
fn the_systemd_unit_verifies_runs_as_the_owner_and_syncs_with_its_environment_file() -> Result<()> {
    let unit = contrib("systemd/git-audit-sync.service")?;
    let timer = contrib("systemd/git-audit-sync.timer")?;
    let env_example = contrib("systemd/sync.env.example")?;
    for (name, text) in [("service", &unit), ("timer", &timer), ("sync.env.example", &env_example)] {
        no_trailing_comments(name, text);
    }
    let settings: BTreeMap<String, String> = assignments(&unit).into_iter().collect();
    assert_eq!(settings.get("User").map(String::as_str), Some("git"), "the repository's owner, not root");
    assert_eq!(settings.get("EnvironmentFile").map(String::as_str), Some("/etc/git-audit/sync.env"));
    let exec = settings.get("ExecStart").context("ExecStart")?;
    assert!(exec.starts_with("/usr/local/bin/git-audit "), "where `cargo install --root /usr/local` puts it: {exec}");
    assert!(unit.contains("cargo install --locked --root /usr/local"), "the unit says how the binary gets there");
    let env_keys: Vec<String> = assignments(&env_example).into_iter().map(|(k, _)| k).collect();
    assert_eq!(env_keys, ["GITHUB_TOKEN", "GIT_AUDIT_LEDGER_KEY"]);

    let repo = Repo::new()?;
    let (server, sync_key, fake) = server_with_sync_writer(&repo)?;
    // The admin's files, in a temporary root.
    let root = repo.tmp.path().join("root");
    std::fs::create_dir_all(&root)?;
    let env_file = root.join("sync.env");
    std::fs::write(
        &env_file,
        env_example.replace("ghp_replace_me", TOKEN).replace("/etc/git-audit/sync.key", sync_key.to_str().context("path")?)
            + &format!("GITHUB_API_URL={}\n", fake.url),
    )?;
    let moved = |text: &str| {
        text.replace("/usr/local/bin/git-audit", BIN)
            .replace("/etc/git-audit/sync.env", env_file.to_str().unwrap_or_default())
            .replace("/srv/git/app.git", server.path.to_str().unwrap_or_default())
    };
    std::fs::write(root.join("git-audit-sync.service"), moved(&unit))?;
    std::fs::write(root.join("git-audit-sync.timer"), &timer)?;
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(root.join("git-audit-sync.service"))
        .arg(root.join("git-audit-sync.timer"))
        .output()?;
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What systemd would run: ExecStart, in WorkingDirectory, with the EnvironmentFile.
    let unit = moved(&unit);
    let settings: BTreeMap<String, String> = assignments(&unit).into_iter().collect();
    let env: Vec<(String, String)> = assignments(&std::fs::read_to_string(settings.get("EnvironmentFile").context("env")?)?);
    let argv: Vec<&str> = settings.get("ExecStart").context("exec")?.split_whitespace().collect();
    let mut c = repo.cmd(argv[0]);
    c.args(&argv[1..]).current_dir(settings.get("WorkingDirectory").context("wd")?);
    for (k, v) in &env {
        c.env(k, v);
    }
    let out = c.output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().all(|l| l.trim().is_empty() || serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "--log-format json: {stderr}"
    );
    assert!(!stderr.contains(TOKEN), "the token is never logged");
    let by = synced_by(&server)?;
    assert!(by.get("sync").is_some_and(|n| *n > 0) && by.len() == 1, "every synced fact is the sync writer's: {by:?}");
    Ok(())
}

#[test]
fn the_cron_line_finds_git_audit_on_its_path_and_syncs() -> Result<()> {
    let cron = contrib("cron/git-audit-sync")?;
    let path = cron.lines().find_map(|l| l.strip_prefix("PATH=")).context("a PATH line: cron's default PATH lacks /usr/local/bin")?;
    assert!(path.split(':').any(|p| p == "/usr/local/bin"), "{path}");
    let line = cron.lines().find(|l| l.starts_with("*/15")).context("the schedule line")?;
    let fields: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(fields.len(), 7, "minute hour day month weekday user command: {line}");
    assert_eq!(fields[5], "git", "runs as the repository's owner");
    let command = fields[6];

    let repo = Repo::new()?;
    let (server, sync_key, fake) = server_with_sync_writer(&repo)?;
    let env_file = repo.tmp.path().join("sync.env");
    std::fs::write(
        &env_file,
        contrib("systemd/sync.env.example")?
            .replace("ghp_replace_me", TOKEN)
            .replace("/etc/git-audit/sync.key", sync_key.to_str().context("path")?)
            + &format!("GITHUB_API_URL={}\n", fake.url),
    )?;
    let log = repo.tmp.path().join("sync.log");
    let command = command
        .replace("/srv/git/app.git", server.path.to_str().context("path")?)
        .replace("/etc/git-audit/sync.env", env_file.to_str().context("path")?)
        .replace("/var/log/git-audit/sync.log", log.to_str().context("path")?);
    // cron's environment: its PATH (with the test binary's directory where /usr/local/bin is).
    let bin_dir = Path::new(BIN).parent().context("bin dir")?;
    let path = path.replace("/usr/local/bin", bin_dir.to_str().context("path")?);
    let out = std::process::Command::new("/bin/sh").arg("-c").arg(&command).env_clear().env("PATH", &path).output()?;
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{command}\n{logged}");
    assert!(!logged.contains(TOKEN), "the token is never logged");
    assert!(synced_by(&server)?.get("sync").is_some_and(|n| *n > 0), "{logged}");
    Ok(())
}

/// The `args: [...]` of each container in a Kubernetes manifest, in order
/// (the manifests write them as JSON-style flow sequences).
fn container_args(manifest: &str) -> Result<Vec<Vec<String>>> {
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("args: "))
        .map(|a| serde_json::from_str::<Vec<String>>(a).with_context(|| format!("not a flow sequence: {a}")))
        .collect()
}

#[test]
fn the_image_recipe_runs_as_a_non_root_user_and_the_cronjob_initialises_its_ledger_once() -> Result<()> {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))?;
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "build, then a slim runtime: {stages:?}");
    assert!(stages[0].contains(" AS build") && stages[1].contains("slim"), "{stages:?}");
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))?;
    let rust = manifest.lines().find_map(|l| l.strip_prefix("rust-version = ")).context("rust-version")?.trim_matches('"');
    assert!(stages[0].starts_with(&format!("FROM rust:{rust}")), "built with the rust-version the crate declares: {}", stages[0]);
    let runtime = &dockerfile[dockerfile.rfind("FROM ").unwrap_or(0)..];
    for pkg in ["libgpgme11", "git", "gnupg", "ca-certificates"] {
        assert!(runtime.contains(pkg), "the runtime image lacks {pkg}");
    }
    let user = runtime.lines().find_map(|l| l.strip_prefix("USER ")).context("a USER line")?;
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as a non-root user: {user}");
    assert!(runtime.contains("useradd --system --uid 10001"), "the user the manifest runs as exists");

    let k8s = contrib("kubernetes/git-audit-sync.yaml")?;
    assert!(k8s.contains("runAsNonRoot: true, runAsUser: 10001"), "the manifest runs as the image's user");
    assert!(
        k8s.lines().filter(|l| l.trim_start().starts_with("image: ")).all(|l| l.contains("git-audit:")),
        "no container without an image"
    );
    let args = container_args(&k8s)?;
    assert_eq!(args.len(), 2, "an init step, then the sync: {args:?}");
    assert_eq!(args[0][2..], ["ledger", "init", "--if-missing"]);
    assert!(args[1].contains(&"sync".to_string()));

    // The containers' commands, with /data a fresh directory: the first run
    // creates the ledger, every later init does nothing, and the sync appends.
    let repo = Repo::new()?;
    let data = repo.tmp.path().join("data");
    std::fs::create_dir_all(&data)?;
    let run = |a: &[String], env: &[(&str, &str)]| -> Result<(i32, String, String)> {
        let a: Vec<String> = a.iter().map(|x| x.replace("/data", data.to_str().unwrap_or_default())).collect();
        // WORKDIR /data, as in the image (not a git repository).
        let mut c = repo.cmd(BIN);
        c.current_dir(&data).args(&a);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (code, out, err) = run(&args[0], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created ledger"), "{out}");
    let key = std::fs::read(data.join("ledger.key"))?;
    let (code, out, err) = run(&args[0], &[])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is already there") && out.contains("nothing to do"), "{out}");
    assert_eq!(std::fs::read(data.join("ledger.key"))?, key, "the key is left alone");
    let mut w = World::new("acme/api");
    w.pull(1, "alice", "2026-07-01T00:00:00Z", &[sha("c1")]);
    let fake = Fake::start(w);
    let (code, _, err) = run(&args[1], &[("GITHUB_TOKEN", TOKEN), ("GITHUB_API_URL", &fake.url)])?;
    assert_eq!(code, 0, "{err}");
    let (_, status, _) =
        repo.audit(&["--ledger", data.join("ledger.db").to_str().context("path")?, "ledger", "status", "--format", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&status)?;
    assert!(v["size"].as_u64().is_some_and(|n| n > 0), "{v}");
    // Anything that is not a ledger is not "already there": said, not overwritten.
    std::fs::write(data.join("other.db"), b"not a ledger")?;
    let (code, _, err) = repo.audit(&["--ledger", data.join("other.db").to_str().context("path")?, "ledger", "init", "--if-missing"])?;
    assert_eq!(code, 2);
    assert!(err.contains("is not a git-audit ledger"), "{err}");
    Ok(())
}
