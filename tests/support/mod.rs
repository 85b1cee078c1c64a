//! Test environment: hermetic git, real GnuPG homes with real keys, real SSH
//! keys, and the real `git-audit` binary. Keys are made once per test run.

#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

pub const BIN: &str = env!("CARGO_BIN_EXE_git-audit");

/// Keys shared by all tests (made once).
pub struct Keys {
    pub dir: PathBuf,
    /// GnuPG home holding the developers' secret keys (signs commits).
    pub dev_home: PathBuf,
    /// GnuPG home with the pinned public keys at ultimate trust: git's oracle.
    pub oracle_home: PathBuf,
    /// `gpg` wrapper that runs at a fixed time in 2020 (for the expired key).
    pub gpg_past: PathBuf,
    pub alice: Pgp,   // ed25519
    pub bob: Pgp,     // rsa3072
    pub carol: Pgp,   // ed25519, expired (made in 2020, valid one day)
    pub dave: Pgp,    // ed25519, revoked after signing (pinned file carries the revocation)
    pub mallory: Pgp, // ed25519, never pinned
    pub ssh_alice: Ssh,
    pub ssh_erin: Ssh, // never in allowed signers
    pub ssh_old: Ssh,  // valid-before in the past
    /// allowed-signers file: alice and old.
    pub allowed_signers: PathBuf,
}

#[derive(Clone)]
pub struct Pgp {
    pub name: String,
    pub email: String,
    pub fpr: String,
    /// Armored public key as pinned in policies.
    pub asc: PathBuf,
}

#[derive(Clone)]
pub struct Ssh {
    pub email: String,
    pub private: PathBuf,
    pub public_line: String,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

pub fn keys() -> &'static Keys {
    KEYS.get_or_init(|| make_keys().expect("creating test keys"))
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home).args(["--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]);
    c
}

fn gen_key(home: &Path, dir: &Path, name: &str, email: &str, algo: &str, expire: &str, faked: Option<&str>) -> Result<Pgp> {
    let uid = format!("{name} <{email}>");
    let mut c = gpg(home);
    if let Some(t) = faked {
        c.args(["--faked-system-time", t]);
    }
    run(c.args(["--quick-gen-key", &uid, algo, "sign", expire]))?;
    let out = run(gpg(home).args(["--with-colons", "--list-keys", &uid]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fpr = text.lines().find(|l| l.starts_with("fpr:")).and_then(|l| l.split(':').nth(9)).context("no fingerprint")?.to_string();
    let asc = dir.join(format!("{}.asc", name.to_lowercase()));
    let out = run(gpg(home).args(["--armor", "--export", &fpr]))?;
    std::fs::write(&asc, &out.stdout)?;
    Ok(Pgp { name: name.into(), email: email.into(), fpr, asc })
}

fn make_keys() -> Result<Keys> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keys");
    if dir.exists() {
        for home in ["dev", "oracle", "scratch"] {
            let _ = Command::new("gpgconf").env("GNUPGHOME", dir.join(home)).args(["--kill", "all"]).output();
        }
        std::fs::remove_dir_all(&dir)?;
    }
    let dev_home = dir.join("dev");
    let oracle_home = dir.join("oracle");
    let scratch = dir.join("scratch");
    for d in [&dev_home, &oracle_home, &scratch] {
        std::fs::create_dir_all(d)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    let alice = gen_key(&dev_home, &dir, "Alice", "alice@example.com", "ed25519", "never", None)?;
    let bob = gen_key(&dev_home, &dir, "Bob", "bob@example.com", "rsa3072", "never", None)?;
    let carol = gen_key(&dev_home, &dir, "Carol", "carol@example.com", "ed25519", "1d", Some("20200101T000000!"))?;
    let mut dave = gen_key(&dev_home, &dir, "Dave", "dave@example.com", "ed25519", "never", None)?;
    let mallory = gen_key(&dev_home, &dir, "Mallory", "mallory@example.com", "ed25519", "never", None)?;

    // Dave's pinned key carries his revocation (made at key generation by gpg).
    let rev = std::fs::read_to_string(dev_home.join("openpgp-revocs.d").join(format!("{}.rev", dave.fpr)))?;
    let rev = rev.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----");
    let rev_file = dir.join("dave.rev");
    std::fs::write(&rev_file, rev)?;
    run(gpg(&scratch).arg("--import").arg(&dave.asc))?;
    run(gpg(&scratch).arg("--import").arg(&rev_file))?;
    let out = run(gpg(&scratch).args(["--armor", "--export", &dave.fpr]))?;
    let revoked = dir.join("dave-revoked.asc");
    std::fs::write(&revoked, &out.stdout)?;
    dave.asc = revoked;

    // The oracle: what the policy pins, at ultimate trust, for git's own %G?.
    let mut ownertrust = String::new();
    for k in [&alice, &bob, &carol, &dave] {
        run(gpg(&oracle_home).arg("--import").arg(&k.asc))?;
        ownertrust.push_str(&format!("{}:6:\n", k.fpr));
    }
    let trust_file = dir.join("ownertrust.txt");
    std::fs::write(&trust_file, ownertrust)?;
    run(gpg(&oracle_home).arg("--import-ownertrust").arg(&trust_file))?;
    run(gpg(&oracle_home).arg("--check-trustdb"))?;

    let gpg_past = dir.join("gpg-past");
    std::fs::write(&gpg_past, "#!/bin/sh\nexec gpg --faked-system-time '20200101T120000!' \"$@\"\n")?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gpg_past, std::fs::Permissions::from_mode(0o755))?;
    }
    let _ = Command::new("gpgconf").env("GNUPGHOME", &dev_home).args(["--launch", "gpg-agent"]).output();

    let ssh_alice = ssh_key(&dir, "alice@example.com", "id_alice")?;
    let ssh_erin = ssh_key(&dir, "erin@example.com", "id_erin")?;
    let ssh_old = ssh_key(&dir, "old@example.com", "id_old")?;
    let allowed_signers = dir.join("allowed_signers");
    std::fs::write(
        &allowed_signers,
        format!(
            "# test signers\n{} namespaces=\"git\" {}\n{} namespaces=\"git\",valid-before=\"20210101\" {}\n",
            ssh_alice.email, ssh_alice.public_line, ssh_old.email, ssh_old.public_line
        ),
    )?;
    Ok(Keys { dir, dev_home, oracle_home, gpg_past, alice, bob, carol, dave, mallory, ssh_alice, ssh_erin, ssh_old, allowed_signers })
}

fn ssh_key(dir: &Path, email: &str, file: &str) -> Result<Ssh> {
    let private = dir.join(file);
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", email, "-f"]).arg(&private))?;
    let public = std::fs::read_to_string(private.with_extension("pub"))?;
    let mut parts = public.split_whitespace();
    let public_line = format!("{} {}", parts.next().context("pub")?, parts.next().context("pub")?);
    Ok(Ssh { email: email.into(), private, public_line })
}

/// How to sign a commit.
#[derive(Clone)]
pub enum Sign<'a> {
    None,
    Pgp(&'a Pgp),
    /// Sign with an OpenPGP key at a faked time in 2020 (for keys that expired since).
    PgpPast(&'a Pgp),
    Ssh(&'a Ssh),
}

/// A hermetic git repository in a temp dir.
pub struct Repo {
    pub tmp: tempfile::TempDir,
    pub path: PathBuf,
    pub home: PathBuf,
    counter: std::cell::Cell<u32>,
}

impl Repo {
    pub fn new() -> Result<Repo> {
        Self::with_format("sha1")
    }

    /// A repository with the given object format (`sha1` or `sha256`).
    pub fn with_format(format: &str) -> Result<Repo> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&path)?;
        std::fs::create_dir_all(&home)?;
        std::fs::write(home.join(".gitconfig"), "")?;
        let r = Repo { tmp, path, home, counter: std::cell::Cell::new(0) };
        r.git(&["init", "-q", "-b", "main", &format!("--object-format={format}")])?;
        r.git(&["config", "user.name", "Alice"])?;
        r.git(&["config", "user.email", "alice@example.com"])?;
        Ok(r)
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GNUPGHOME", &keys().dev_home)
            .env("LANG", "C")
            .stdin(Stdio::null());
        c
    }

    pub fn git(&self, args: &[&str]) -> Result<String> {
        let out = run(self.cmd("git").args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs git-audit and returns (exit code, stdout, stderr).
    pub fn audit(&self, args: &[&str]) -> Result<(i32, String, String)> {
        self.audit_env(args, &[])
    }

    pub fn audit_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String, String)> {
        let mut c = self.cmd(BIN);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Appends an entry of git-audit's own vocabulary the way its producers
    /// do: through the library, signed by the ledger's owner key (the
    /// repository's default ledger). `ledger append` refuses those kinds.
    pub fn append_fact(&self, kind: &str, subject: &str, actor: &str, payload: &str) -> Result<(i32, String, String)> {
        let dir = self.path.join(".git/audit");
        let files = git_audit::ledger::LedgerFiles::sqlite(dir.join("ledger.db"), dir.join("ledger.key"));
        let mut l = git_audit::ledger::Ledger::open(&files)?;
        let payload: serde_json::Value = serde_json::from_str(payload)?;
        let r = l.append(&[git_audit::ledger::NewEntry::new(kind, subject, actor, payload)])?;
        Ok((0, format!("appended seq {}", r.first_seq), String::new()))
    }

    /// Makes a commit touching a new file; returns its id.
    pub fn commit(&self, message: &str, sign: Sign<'_>) -> Result<String> {
        self.commit_as(message, sign, None)
    }

    /// Like [`Repo::commit`], with a committer identity (name, email).
    pub fn commit_as(&self, message: &str, sign: Sign<'_>, who: Option<(&str, &str)>) -> Result<String> {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        std::fs::write(self.path.join(format!("file{n}.txt")), format!("{n}\n"))?;
        self.git(&["add", "."])?;
        let date = format!("2026-01-01T00:{:02}:{:02}Z", (n / 60) % 60, n % 60);
        let mut c = self.cmd("git");
        c.env("GIT_AUTHOR_DATE", &date).env("GIT_COMMITTER_DATE", &date);
        if let Some((name, email)) = who {
            c.env("GIT_AUTHOR_NAME", name).env("GIT_AUTHOR_EMAIL", email).env("GIT_COMMITTER_NAME", name).env("GIT_COMMITTER_EMAIL", email);
        }
        match &sign {
            Sign::None => {
                c.args(["-c", "commit.gpgsign=false"]);
            }
            Sign::Pgp(k) => {
                c.args(["-c", "gpg.format=openpgp", "-c", &format!("user.signingkey={}", k.fpr)]);
            }
            Sign::PgpPast(k) => {
                let past = "2020-01-01T12:00:00Z";
                c.env("GIT_AUTHOR_DATE", past).env("GIT_COMMITTER_DATE", past);
                c.args([
                    "-c",
                    "gpg.format=openpgp",
                    "-c",
                    &format!("gpg.program={}", keys().gpg_past.display()),
                    "-c",
                    &format!("user.signingkey={}", k.fpr),
                ]);
            }
            Sign::Ssh(k) => {
                c.args(["-c", "gpg.format=ssh", "-c", &format!("user.signingkey={}", k.private.display())]);
            }
        }
        c.args(["commit", "-q", "-m", message]);
        if !matches!(sign, Sign::None) {
            c.arg("-S");
        }
        run(&mut c)?;
        self.git(&["rev-parse", "HEAD"])
    }

    /// git's own verdict (`%G?`) for a commit under the policy-equivalent trust setup.
    pub fn git_oracle(&self, id: &str) -> Result<String> {
        let k = keys();
        let out = run(self
            .cmd("git")
            .env("GNUPGHOME", &k.oracle_home)
            .args(["-c", &format!("gpg.ssh.allowedSignersFile={}", k.allowed_signers.display())])
            .args(["log", "-1", "--format=%G?", id]))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Writes a policy file next to the repository and returns its path.
    pub fn policy(&self, text: &str) -> Result<PathBuf> {
        let p = self.tmp.path().join("policy.toml");
        std::fs::write(&p, text)?;
        Ok(p)
    }

    /// Runs `verify --format json` and returns (exit code, parsed JSON).
    pub fn verify_json(&self, policy: &Path, range: &[&str]) -> Result<(i32, serde_json::Value)> {
        let mut args = vec!["--policy", policy.to_str().context("utf8 path")?, "verify", "--format", "json"];
        args.extend_from_slice(range);
        let (code, out, err) = self.audit(&args)?;
        let v: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("not JSON (exit {code}): {out}\nstderr: {err}"))?;
        Ok((code, v))
    }
}

/// A policy that pins every test key, with signing required.
pub fn pinned_policy(extra: &str) -> String {
    let k = keys();
    format!(
        "version = 1\n[signing]\nrequired = true\ntrust = \"policy\"\nopenpgp_keys = [{}]\nssh_allowed_signers = \"{}\"\nmatch_committer = true\n{extra}",
        [&k.alice, &k.bob, &k.carol, &k.dave].iter().map(|p| format!("\"{}\"", p.asc.display())).collect::<Vec<_>>().join(", "),
        k.allowed_signers.display()
    )
}

/// The JSON entry for commit `id` in a verify report.
pub fn commit_entry<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["commits"].as_array().and_then(|a| a.iter().find(|c| c["id"] == id)).unwrap_or(&serde_json::Value::Null)
}

/// The rule ids of a commit entry's findings.
pub fn rules(entry: &serde_json::Value) -> Vec<String> {
    entry["findings"].as_array().map(|a| a.iter().filter_map(|f| f["rule"].as_str().map(String::from)).collect()).unwrap_or_default()
}

/// A SQLite value as text (for assertions).
pub fn show(v: &rusqlite::types::Value) -> String {
    match v {
        rusqlite::types::Value::Null => "NULL".into(),
        rusqlite::types::Value::Integer(i) => i.to_string(),
        rusqlite::types::Value::Real(r) => r.to_string(),
        rusqlite::types::Value::Text(t) => t.clone(),
        rusqlite::types::Value::Blob(b) => hex::encode(b),
    }
}

/// `report compliance --since 2000-01-01 --format json` under a policy written
/// from `policy_text`: (exit code, the report, stderr).
pub fn compliance_under(repo: &Repo, policy_text: &str) -> Result<(i32, serde_json::Value, String)> {
    let policy = repo.tmp.path().join("environments.toml");
    std::fs::write(&policy, policy_text)?;
    let (code, out, err) =
        repo.audit(&["--policy", policy.to_str().context("path")?, "report", "compliance", "--since", "2000-01-01", "--format", "json"])?;
    let v = serde_json::from_str(&out).with_context(|| format!("not JSON (exit {code}): {out}\nstderr: {err}"))?;
    Ok((code, v, err))
}

/// The `deploy.*` findings of a compliance report.
pub fn deploy_findings(report: &serde_json::Value) -> Vec<&serde_json::Value> {
    report["findings"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["rule"].as_str().is_some_and(|r| r.starts_with("deploy."))).collect())
        .unwrap_or_default()
}
