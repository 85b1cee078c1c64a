//! The shared store: a PostgreSQL database, for an organisation whose git
//! servers, sync jobs and reporting hosts write and read one ledger.
//!
//! The client is `tokio-postgres` (pure Rust, no libpq). It runs on a thread of
//! its own with a single-threaded runtime, so the store can be called from
//! plain code and from inside the sync worker's runtime alike; calls block the
//! caller as SQLite's do. Writes whose row counts nobody reads are queued and
//! sent pipelined — one round trip for a whole append — before the next query,
//! `execute` or commit.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{pin_mut, TryStreamExt};
use rustls::pki_types::pem::PemObject;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use super::{Begin, EachRow, PgUrl, Store, StoreError, Tx, Value};

/// Parameters per statement PostgreSQL accepts (65,535), with room.
const MAX_PARAMS: usize = 60_000;
/// Rows handed from the connection thread to the caller at a time.
const CHUNK: usize = 2048;
/// Prepared statements kept per connection.
const MAX_PREPARED: usize = 512;
/// Serialises schema changes of concurrent processes ("GAUD").
const SCHEMA_LOCK: i64 = 0x4741_5544;

type Job = Box<dyn FnOnce(&mut Conn) + Send>;

pub struct PgStore {
    jobs: mpsc::Sender<Job>,
    url: PgUrl,
    /// Writes queued on the caller's side, handed over with the next call.
    queued: std::cell::RefCell<Vec<(String, Vec<Value>)>>,
}

struct Conn {
    rt: tokio::runtime::Runtime,
    db: Db,
}

struct Db {
    client: Client,
    prepared: HashMap<String, Statement>,
    pending: Vec<(String, Vec<Value>)>,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        match e.as_db_error() {
            Some(db) => {
                let mut message = format!("{}: {}", db.severity(), db.message());
                if let Some(d) = db.detail() {
                    message.push_str(&format!(" ({d})"));
                }
                if let Some(h) = db.hint() {
                    message.push_str(&format!("\nHint: {h}"));
                }
                StoreError { message, code: Some(db.code().code().to_string()) }
            }
            None => {
                let mut message = e.to_string();
                if let Some(src) = e.source() {
                    if !message.contains(&src.to_string()) {
                        message.push_str(&format!(": {src}"));
                    }
                }
                StoreError { message, code: None }
            }
        }
    }
}

fn lost() -> StoreError {
    StoreError::new("the connection to PostgreSQL was lost")
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let texty = matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN);
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ if texty => i.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("cannot bind an integer as {ty}").into()),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                _ if texty => r.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("cannot bind a real as {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ if texty => std::str::from_utf8(b)?.to_sql(ty, out),
                _ => Err(format!("cannot bind bytes as {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn value(row: &Row, i: usize) -> Result<Value, tokio_postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::OID => row.try_get::<_, Option<u32>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map_or(Value::Null, Value::Real),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i)?.map_or(Value::Null, |v| Value::Real(v.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Value::Null, Value::Blob),
        _ => row.try_get::<_, Option<String>>(i)?.map_or(Value::Null, Value::Text),
    })
}

fn values(row: &Row) -> Result<Vec<Value>, StoreError> {
    (0..row.len()).map(|i| value(row, i).map_err(StoreError::from)).collect()
}

/// `?N` → `$N`, outside quoted text.
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// SQLite DDL → PostgreSQL: 64-bit integers, `bytea`, no `WITHOUT ROWID`.
pub fn ddl(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.to_ascii_uppercase().as_str() {
            "INTEGER" => out.push_str("BIGINT"),
            "BLOB" => out.push_str("BYTEA"),
            _ => out.push_str(word),
        }
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out.replace(" WITHOUT ROWID", "")
}

/// The tables a piece of DDL creates.
fn created_tables(sql: &str) -> Vec<String> {
    let upper = sql.to_ascii_uppercase();
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(at) = upper[rest..].find("CREATE TABLE") {
        let start = rest + at + "CREATE TABLE".len();
        let mut words = sql[start..].split(|c: char| c.is_whitespace() || c == '(').filter(|w| !w.is_empty());
        let mut name = words.next().unwrap_or("");
        if name.eq_ignore_ascii_case("IF") {
            let _ = (words.next(), words.next());
            name = words.next().unwrap_or("");
        }
        out.push(name.to_string());
        rest = start;
    }
    out
}

/// Splits off the libpq parameters tokio-postgres does not take, and maps
/// libpq's sslmode values onto its own. The bool: use TLS. git-audit encrypts
/// when asked (`require`, `verify-ca`, `verify-full`) and then always verifies
/// the server's certificate (libpq's `require` does not); `disable`, `allow`,
/// `prefer` and no sslmode connect without TLS.
fn config(url: &PgUrl) -> Result<(tokio_postgres::Config, Option<String>, bool), StoreError> {
    let raw = url.secret();
    let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
    let mut kept = Vec::new();
    let mut root_cert = None;
    let mut encrypt = false;
    let mut has_timeout = false;
    for p in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k {
            "sslrootcert" => root_cert = Some(percent_decode(v)),
            "sslmode" => {
                encrypt = match v {
                    "disable" | "allow" | "prefer" => false,
                    "require" | "verify-ca" | "verify-full" => true,
                    other => {
                        return Err(StoreError::new(format!(
                            "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        )))
                    }
                };
            }
            _ => {
                has_timeout |= k == "connect_timeout";
                kept.push(p.to_string());
            }
        }
    }
    kept.push(format!("sslmode={}", if encrypt { "require" } else { "disable" }));
    let cleaned = format!("{base}?{}", kept.join("&"));
    let mut config = tokio_postgres::Config::from_str(&cleaned)
        .map_err(|e| StoreError::new(format!("{} is not a PostgreSQL URL: {e}", url.redacted())))?;
    if !has_timeout {
        config.connect_timeout(Duration::from_secs(15));
    }
    if config.get_password().is_none() {
        if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            config.password(p.to_string_lossy().as_bytes());
        }
    }
    if config.get_application_name().is_none() {
        config.application_name("git-audit");
    }
    Ok((config, root_cert, encrypt))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tls(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| StoreError::new(format!("sslrootcert {path}: {e}")))?;
            let mut found = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| StoreError::new(format!("sslrootcert {path}: not PEM certificates: {e}")))?;
                roots.add(cert).map_err(|e| StoreError::new(format!("sslrootcert {path}: {e}")))?;
                found += 1;
            }
            if found == 0 {
                return Err(StoreError::new(format!("sslrootcert {path}: holds no PEM certificate")));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::new(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Runs the connection's I/O in the background of the connection thread's runtime.
fn drive(client: Client, conn: impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static) -> Client {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    client
}

impl PgStore {
    /// Connects (on a thread of its own) and checks the server answers.
    pub fn connect(url: &PgUrl) -> Result<PgStore, StoreError> {
        let (config, root_cert, encrypt) = config(url)?;
        let tls = if encrypt { Some(tls(root_cert.as_deref())?) } else { None };
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("git-audit-postgres".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::new(format!("cannot start the PostgreSQL client: {e}"))));
                        return;
                    }
                };
                let connected = rt.block_on(async {
                    match tls {
                        Some(tls) => config.connect(tls).await.map(|(c, conn)| drive(c, conn)),
                        None => config.connect(tokio_postgres::NoTls).await.map(|(c, conn)| drive(c, conn)),
                    }
                });
                let client = match connected {
                    Ok(c) => c,
                    Err(e) => {
                        let e = StoreError::from(e);
                        let _ = ready_tx.send(Err(StoreError { message: format!("cannot connect: {}", e.message), code: e.code }));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut conn = Conn { rt, db: Db { client, prepared: HashMap::new(), pending: Vec::new() } };
                while let Ok(job) = inbox.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::new(format!("cannot start the PostgreSQL client thread: {e}")))?;
        ready_rx.recv().map_err(|_| lost())??;
        Ok(PgStore { jobs, url: url.clone(), queued: Default::default() })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Conn) -> R + Send + 'static) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let queued = self.queued.take();
        self.jobs
            .send(Box::new(move |c: &mut Conn| {
                c.db.pending.extend(queued);
                let _ = tx.send(f(c));
            }))
            .map_err(|_| lost())?;
        rx.recv().map_err(|_| lost())
    }

    /// Queues `head (…), (…) … tail` statements of up to MAX_PARAMS parameters.
    fn multi_row(&self, head: &str, tail: &str, width: usize, rows: Vec<Vec<Value>>) -> Result<(), StoreError> {
        let per = (MAX_PARAMS / width.max(1)).clamp(1, 8000);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let slice: Vec<Vec<Value>> = rows.by_ref().take(per).collect();
            let mut sql = String::with_capacity(head.len() + tail.len() + slice.len() * width * 6);
            sql.push_str(head);
            let mut n = 0;
            for (i, r) in slice.iter().enumerate() {
                sql.push_str(if i > 0 { ", (" } else { "(" });
                for j in 0..r.len() {
                    n += 1;
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('?');
                    sql.push_str(&n.to_string());
                }
                sql.push(')');
            }
            sql.push_str(tail);
            self.defer(&sql, slice.into_iter().flatten().collect())?;
        }
        Ok(())
    }
}

impl Conn {
    /// Runs an async piece of work on the connection, to its end.
    fn run<'a, F, R>(&'a mut self, work: impl FnOnce(&'a mut Db) -> F) -> R
    where
        F: std::future::Future<Output = R> + 'a,
    {
        self.rt.block_on(work(&mut self.db))
    }
}

impl Db {
    /// Prepares every statement not yet prepared, all at once (pipelined).
    async fn prepare_all<'a>(&mut self, sqls: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
        let mut missing: Vec<&str> = sqls.filter(|s| !self.prepared.contains_key(*s)).collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        if self.prepared.len() + missing.len() > MAX_PREPARED {
            self.prepared.clear();
        }
        let client = &self.client;
        let texts: Vec<String> = missing.iter().map(|s| placeholders(s)).collect();
        let made = futures_util::future::try_join_all(texts.iter().map(|t| client.prepare(t))).await?;
        for (sql, st) in missing.into_iter().zip(made) {
            self.prepared.insert(sql.to_string(), st);
        }
        Ok(())
    }

    /// Sends the queued writes and then `last`, pipelined (one round trip),
    /// and returns `last`'s row count. The first error is returned; in a
    /// transaction it aborts the rest (a queued COMMIT then rolls back).
    async fn pipeline(&mut self, last: Option<(String, Vec<Value>)>) -> Result<u64, StoreError> {
        let mut work = std::mem::take(&mut self.pending);
        let has_last = last.is_some();
        work.extend(last);
        if work.is_empty() {
            return Ok(0);
        }
        self.prepare_all(work.iter().map(|(s, _)| s.as_str())).await?;
        let client = &self.client;
        let prepared = &self.prepared;
        let runs = work.iter().map(|(sql, params)| {
            let st = prepared.get(sql).cloned();
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            async move {
                let st = st.ok_or_else(|| StoreError::new("statement not prepared"))?;
                client.execute(&st, &refs).await.map_err(StoreError::from)
            }
        });
        let counts = futures_util::future::try_join_all(runs).await?;
        Ok(if has_last { counts.last().copied().unwrap_or(0) } else { 0 })
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        self.pipeline(None).await.map(|_| ())
    }
}

/// PostgreSQL lacks SQLite's `group_concat`; the shared queries use it.
const FUNCTIONS: &str = "
CREATE OR REPLACE FUNCTION git_audit_concat(acc text, v text, sep text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN v IS NULL THEN acc WHEN acc IS NULL THEN v ELSE acc || sep || v END $$;
CREATE OR REPLACE AGGREGATE group_concat(text, text) (SFUNC = git_audit_concat, STYPE = text);
";

impl Store for PgStore {
    fn install_functions(&self) -> Result<(), StoreError> {
        self.schema(FUNCTIONS)
    }

    fn try_job_lock(&self, job: i64) -> Result<bool, StoreError> {
        let row = super::first(self, "SELECT pg_try_advisory_lock(?1)", &[Value::Int(job)])?;
        Ok(row.and_then(|r| r.first().and_then(Value::as_int)) == Some(1))
    }

    fn row_lock(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn locked_head_with_frontier(&self, append_lock: i64) -> Result<Option<Vec<Vec<Value>>>, StoreError> {
        // The advisory lock serialises appends; the statement after it starts
        // only once the lock is held, so its snapshot sees the append before.
        self.defer("SELECT pg_advisory_xact_lock(?1)", vec![Value::Int(append_lock)])?;
        super::rows(
            self,
            "WITH h AS (SELECT size, root, note FROM head WHERE id = 0 FOR UPDATE),
                  f AS (SELECT l AS level, (h.size >> l) - 1 AS idx FROM h, generate_series(0, 62) AS l WHERE (h.size >> l) & 1 = 1)
             SELECT h.size, h.root, h.note, f.level, f.idx,
                    CASE WHEN f.level = 0 THEN (SELECT leaf FROM entries WHERE seq = f.idx)
                         ELSE (SELECT hash FROM nodes WHERE level = f.level AND idx = f.idx) END
             FROM h LEFT JOIN f ON true ORDER BY f.level DESC",
            &[],
        )
        .map(Some)
    }

    fn swap_head_and_commit(&self, tx: Tx<'_>, cas: &str, params: Vec<Value>, new_size: i64) -> Result<bool, StoreError> {
        // Sent with the commit in one round trip: the guard divides by zero
        // (aborting the transaction, so the COMMIT rolls back) unless the swap took.
        self.defer(cas, params)?;
        self.defer("SELECT 1 / (CASE WHEN size = ?1 THEN 1 ELSE 0 END) FROM head WHERE id = 0", vec![Value::Int(new_size)])?;
        match tx.commit() {
            Ok(()) => Ok(true),
            Err(e) if e.code.as_deref() == Some("22012") => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn set_format_version(&self, version: i64) -> Result<(), StoreError> {
        self.execute("UPDATE meta SET value = ?1 WHERE key = 'format_version'", &[version.to_string().into()]).map(|_| ())
    }

    fn batch_reads(&self) -> bool {
        true
    }

    fn json_numbers(&self, column: &str) -> String {
        format!("json_array_elements_text({column}::json) AS j(value)")
    }

    fn schema(&self, sql: &str) -> Result<(), StoreError> {
        let tables = created_tables(sql);
        let ddl = ddl(sql);
        self.call(move |c| {
            c.run(|c| async move {
                c.flush().await?;
                if !tables.is_empty() {
                    let probe = tables.iter().map(|t| format!("to_regclass('{t}') IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
                    let row = c.client.query_one(&format!("SELECT {probe}"), &[]).await?;
                    if row.try_get::<_, bool>(0)? {
                        return Ok(());
                    }
                }
                // Concurrent `CREATE … IF NOT EXISTS` can collide in PostgreSQL's
                // catalogs: one process at a time.
                let made = c.client.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {ddl}; COMMIT")).await;
                if made.is_err() {
                    let _ = c.client.batch_execute("ROLLBACK").await;
                }
                Ok(made?)
            })
        })?
    }

    fn query(&self, sql: &str, params: &[Value], each: &mut EachRow<'_>) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<Vec<Value>>, StoreError>>(2);
        let sql = sql.to_string();
        let params = params.to_vec();
        let queued = self.queued.take();
        self.jobs
            .send(Box::new(move |c: &mut Conn| {
                c.db.pending.extend(queued);
                let sender = &tx;
                let result: Result<(), StoreError> = c.run(|c| async move {
                    // The queued writes (a BEGIN …) go out with the query, in one round trip.
                    let pending = std::mem::take(&mut c.pending);
                    c.prepare_all(pending.iter().map(|(s, _)| s.as_str()).chain([sql.as_str()])).await?;
                    let st = c.prepared.get(&sql).cloned().ok_or_else(|| StoreError::new("statement not prepared"))?;
                    let client = &c.client;
                    let prepared = &c.prepared;
                    let writes = futures_util::future::try_join_all(pending.iter().map(|(s, params)| {
                        let st = prepared.get(s).cloned();
                        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                        async move {
                            let st = st.ok_or_else(|| StoreError::new("statement not prepared"))?;
                            client.execute(&st, &refs).await.map_err(StoreError::from)
                        }
                    }));
                    let (written, stream) = futures_util::future::join(writes, client.query_raw(&st, params.iter())).await;
                    written?;
                    let stream = stream?;
                    pin_mut!(stream);
                    let mut chunk = Vec::with_capacity(CHUNK);
                    while let Some(row) = stream.try_next().await? {
                        chunk.push(values(&row)?);
                        if chunk.len() == CHUNK && sender.send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))).is_err() {
                            return Ok(()); // the caller stopped reading
                        }
                    }
                    let _ = sender.send(Ok(chunk));
                    Ok(())
                });
                if let Err(e) = result {
                    let _ = tx.send(Err(e));
                }
            }))
            .map_err(|_| lost())?;
        for chunk in rx {
            for row in chunk? {
                each(row)?;
            }
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let sql = sql.to_string();
        let params = params.to_vec();
        self.call(move |c| c.run(|c| c.pipeline(Some((sql, params)))))?
    }

    fn defer(&self, sql: &str, params: Vec<Value>) -> Result<(), StoreError> {
        let full = {
            let mut q = self.queued.borrow_mut();
            q.push((sql.to_string(), params));
            q.len() >= 4096
        };
        // Keep the queue bounded: a long batch is sent in slices.
        if full {
            self.call(|c| c.run(|c| c.flush()))??;
        }
        Ok(())
    }

    fn insert_rows(&self, table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> Result<(), StoreError> {
        let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        self.multi_row(&head, "", columns.len(), rows)
    }

    fn upsert_rows(&self, table: &str, columns: &[&str], key: &[&str], rows: Vec<Vec<Value>>) -> Result<(), StoreError> {
        let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let tail = super::upsert_tail(columns, key);
        let key_at: Vec<usize> = key.iter().filter_map(|k| columns.iter().position(|c| c == k)).collect();
        // One statement may not touch a row twice: a key seen again starts the next statement.
        let mut part: Vec<Vec<Value>> = Vec::new();
        let mut keys = std::collections::HashSet::new();
        for r in rows {
            let k: Vec<String> = key_at.iter().map(|&i| format!("{:?}", r.get(i))).collect();
            if !keys.insert(k.clone()) {
                self.multi_row(&head, &tail, columns.len(), std::mem::take(&mut part))?;
                keys.clear();
                keys.insert(k);
            }
            part.push(r);
        }
        self.multi_row(&head, &tail, columns.len(), part)
    }

    fn begin(&self, how: Begin) -> Result<(), StoreError> {
        let sql = match how {
            Begin::Write => "BEGIN",
            Begin::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        // Queued: it goes out with the transaction's first statement.
        self.defer(sql, Vec::new())
    }

    fn commit(&self) -> Result<(), StoreError> {
        // The queued writes and the COMMIT in one round trip; after an error
        // PostgreSQL turns the COMMIT into a rollback.
        self.call(|c| {
            let done = c.run(|c| c.pipeline(Some(("COMMIT".to_string(), Vec::new()))));
            if done.is_err() {
                // Whatever did not reach the server (a statement that would not
                // prepare …), the transaction ends here.
                let _ = c.run(|c| async move { c.client.batch_execute("ROLLBACK").await });
            }
            done.map(|_| ())
        })?
    }

    fn rollback(&self) -> Result<(), StoreError> {
        self.call(|c| {
            let sent = c.db.pending.first().is_none_or(|(s, _)| !s.starts_with("BEGIN"));
            c.db.pending.clear();
            // Nothing to end when the BEGIN itself was never sent.
            if sent {
                c.run(|c| async move { Ok(c.client.batch_execute("ROLLBACK").await?) })
            } else {
                Ok(())
            }
        })?
    }

    fn reopen(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(PgStore::connect(&self.url)?))
    }

    fn tables(&self) -> Result<Vec<String>, StoreError> {
        super::texts(self, "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1", &[])
    }

    fn columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        super::texts(
            self,
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
            &[table.into()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_what_differs() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
        assert_eq!(
            ddl("CREATE TABLE nodes (level INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level)) WITHOUT ROWID;"),
            "CREATE TABLE nodes (level BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level));"
        );
        assert_eq!(ddl("CREATE TABLE t (integers TEXT)"), "CREATE TABLE t (integers TEXT)");
        assert_eq!(
            created_tables("CREATE TABLE IF NOT EXISTS a (x INTEGER);\nCREATE INDEX i ON a (x); CREATE TABLE b(y TEXT)"),
            vec!["a", "b"]
        );
    }

    #[test]
    fn libpq_parameters_are_taken_or_refused() {
        let url = PgUrl::parse("postgres://u:pw@h:5433/d?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x").unwrap();
        let (c, root, encrypt) = config(&url).unwrap();
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        assert!(encrypt);
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(c.get_ports(), &[5433]);
        let plain = PgUrl::parse("postgres://u:pw@h/d").unwrap();
        let (c, _, encrypt) = config(&plain).unwrap();
        assert!(!encrypt && c.get_ssl_mode() == tokio_postgres::config::SslMode::Disable);
        let bad = PgUrl::parse("postgres://u:pw@h/d?sslmode=sometimes").unwrap();
        let e = config(&bad).err().unwrap().message;
        assert!(e.contains("sslmode=sometimes") && !e.contains("pw@"), "{e}");
    }
}
