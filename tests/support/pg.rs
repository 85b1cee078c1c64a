//! A real PostgreSQL server for the test run: `initdb` + `pg_ctl` in a temp
//! dir on a free port (as the `postgres` user when we are root: initdb refuses
//! root), else Debian's `pg_virtualenv`. One cluster per test process, torn
//! down when the process ends (a watcher loop waits for our pid to go).
//! `GIT_AUDIT_TEST_PG` (an admin URL) uses a server you already run instead.
//!
//! No server under `CI=true` fails the tests; elsewhere they say loudly that
//! they did not run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

pub struct Cluster {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
    /// The CA that signed the server's certificate (for `localhost`), when the
    /// cluster was started here with TLS on; the role `tlsonly` may then
    /// connect only over TLS.
    pub ca: Option<PathBuf>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The cluster, or `None` (with a loud note) when none can be started outside CI.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(|| start().map_err(|e| format!("{e:#}"))) {
        Ok(c) => Some(c),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL could not be started for the tests under CI=true: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n*** NOT RUN: PostgreSQL tests need a server: {e}\n*** install postgresql (pg_virtualenv) or set GIT_AUDIT_TEST_PG\n"
            );
            None
        }
    }
}

impl Cluster {
    /// A fresh, empty database; returns its URL (with the password).
    pub fn database(&self) -> Result<String> {
        let name = format!("t{}_{}", std::process::id(), COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://{}:{}@{}:{}/{db}", self.user, self.password, self.host, self.port)
    }

    /// Runs SQL with `psql` (as an administrator would, straight into the
    /// database) and returns what it printed (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The database name in a URL made by [`Cluster::database`].
pub fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or("postgres")
}

fn start() -> Result<Cluster> {
    if let Ok(url) = std::env::var("GIT_AUDIT_TEST_PG") {
        return from_url(&url);
    }
    match initdb() {
        Ok(c) => Ok(c),
        Err(first) => virtualenv().map_err(|e| first.context(format!("and pg_virtualenv: {e:#}"))),
    }
}

/// `initdb` + `pg_ctl` in a temp dir, as the `postgres` user when we are
/// root (initdb refuses root), on a free port.
fn initdb() -> Result<Cluster> {
    let me = std::process::id();
    let initdb = bin("initdb").context("no initdb found (install postgresql)")?;
    let pg_ctl = bin("pg_ctl").context("no pg_ctl found")?;
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let root = uid == "0";
    let run = |prog: &std::path::Path| -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(prog);
            c
        } else {
            Command::new(prog)
        }
    };
    let dir = std::env::temp_dir().join(format!("git-audit-pg-{me}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let password = format!("pw{me}x{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos());
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, &password)?;
    // TLS: a CA and a certificate for localhost, made with openssl (when it is there).
    let tls = Command::new("sh")
        .current_dir(&dir)
        .args([
            "-c",
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=git-audit test CA' \
             && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost \
             && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\n' > ext.cnf \
             && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf \
             && chmod 600 server.key",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if root && !Command::new("chown").args(["-R", "postgres:"]).arg(&dir).status()?.success() {
        bail!("cannot hand {} to the postgres user", dir.display());
    }
    let data = dir.join("data");
    let out = run(&initdb)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=scram-sha-256", "--no-sync", "--pwfile"])
        .arg(&pwfile)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    if tls {
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba)?;
        std::fs::write(&hba, format!("hostnossl all tlsonly all reject\n{rest}"))?;
    }
    let ssl = if tls {
        format!(" -c ssl=on -c ssl_cert_file={d}/server.pem -c ssl_key_file={d}/server.key", d = dir.display())
    } else {
        String::new()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
    let out = run(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .args(["-w", "-l"])
        .arg(dir.join("log"))
        .arg("-o")
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=localhost -c max_connections=200{ssl}{}",
            dir.display(),
            // Tests need no durability; the benchmark keeps PostgreSQL's defaults.
            if std::env::var_os("GIT_AUDIT_PG_DURABLE").is_some() { "" } else { " -c fsync=off" }
        ))
        .arg("start")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("pg_ctl start failed: {} (see {}/log)", String::from_utf8_lossy(&out.stderr), dir.display());
    }
    let stop = if root { "runuser -u postgres -- " } else { "" };
    Command::new("sh")
        .args([
            "-c",
            &format!(
                "while kill -0 {me} 2>/dev/null; do sleep 1; done; {stop}{} -D {} -m immediate stop; rm -rf {}",
                pg_ctl.display(),
                data.display(),
                dir.display()
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Cluster { host: "localhost".into(), port, user: "postgres".into(), password, ca: tls.then(|| dir.join("ca.pem")) })
}

/// Debian's `pg_virtualenv`: the cluster's settings go to a file, and its own
/// output to /dev/null (it must still be able to write when it tears down).
fn virtualenv() -> Result<Cluster> {
    let me = std::process::id();
    which("pg_virtualenv").context("no pg_virtualenv")?;
    let watch = format!("while kill -0 {me} 2>/dev/null; do sleep 1; done");
    let envfile = std::env::temp_dir().join(format!("git-audit-pg-{me}.env"));
    let _ = std::fs::remove_file(&envfile);
    let mut child = Command::new("pg_virtualenv")
        .args(["sh", "-c", &format!("env | grep '^PG' > {f}.tmp; mv {f}.tmp {f}; {watch}", f = envfile.display())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting pg_virtualenv")?;
    let started = std::time::Instant::now();
    while !envfile.exists() {
        if let Some(status) = child.try_wait()? {
            bail!("pg_virtualenv ended ({status}) without starting a cluster");
        }
        if started.elapsed() > std::time::Duration::from_secs(120) {
            bail!("pg_virtualenv did not start a cluster in 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&envfile)?;
    let _ = std::fs::remove_file(&envfile);
    let env: std::collections::HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| env.get(k).map(|v| v.to_string());
    let (Some(host), Some(port), Some(user), Some(password)) = (get("PGHOST"), get("PGPORT"), get("PGUSER"), get("PGPASSWORD")) else {
        bail!("pg_virtualenv gave no PGHOST/PGPORT/PGUSER/PGPASSWORD");
    };
    // The child lives until this process ends.
    std::mem::forget(child);
    Ok(Cluster { host, port, user, password, ca: None })
}

fn from_url(url: &str) -> Result<Cluster> {
    let rest = url.split_once("://").context("GIT_AUDIT_TEST_PG is not a URL")?.1;
    let (auth, hostport) = rest.split('/').next().unwrap_or("").rsplit_once('@').context("GIT_AUDIT_TEST_PG: user:password@host:port")?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    Ok(Cluster { host: host.into(), port: port.into(), user: user.into(), password: password.into(), ca: None })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn bin(name: &str) -> Option<PathBuf> {
    which(name).or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}
