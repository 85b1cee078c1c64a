//! `git-audit ledger …`: create, inspect, verify, prove, export and anchor the ledger.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::style::{green, red};
use super::{emit, Global, Outcome, OutputFormat};
use crate::ledger::note::{Checkpoint, NoteVerifier};
use crate::ledger::{self, anchor, Ledger, LedgerFiles, NewEntry};

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create the ledger and its Ed25519 signing key.
    Init {
        /// The log's origin line (a schema-less URL naming it); random by default.
        #[arg(long)]
        origin: Option<String>,
        /// Where to write the new signing key (default: --ledger-key, else beside the ledger).
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
        /// Do nothing (exit 0) when a ledger is already there: for a deployment's
        /// init step that runs every time.
        #[arg(long)]
        if_missing: bool,
    },
    /// Size, head, latest checkpoint, key.
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the latest signed checkpoint (and keep it in the ledger's history).
    Checkpoint {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Recompute everything; exit 1 on any tampering, naming what and where.
    Verify {
        /// A signed checkpoint the log must still extend (proves it only grew).
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// The ledger's public key to trust (a `name+id+key` string or a file holding one).
        #[arg(long, value_name = "PUB")]
        key: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// A self-contained inclusion proof for one entry (JSON).
    Prove {
        seq: u64,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check a proof from `ledger prove` offline, against a public key you trust.
    CheckProof {
        file: PathBuf,
        #[arg(long, value_name = "PUB")]
        key: String,
    },
    /// Every entry, one JSON object per line.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Commit the latest signed checkpoint to refs/audit/checkpoints.
    Anchor,
    /// Rebuild the projection tables from the log.
    Rebuild,
    /// Copy this ledger into another store, entry for entry, keeping every hash
    /// (SQLite into PostgreSQL, or back); the copy is verified against this one.
    Migrate {
        /// The destination: `postgres://USER:PASS@HOST:PORT/DB` (or
        /// `postgresql://`), or the path of a new SQLite file.
        #[arg(long, value_name = "URL|PATH")]
        to: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Who may append, with which key and which kinds (see `ledger writers add --help`).
    Writers {
        #[command(subcommand)]
        command: WritersCommand,
    },
    /// Append an entry of a kind outside git-audit's own vocabulary (for
    /// scripts and other tools; e.g. `x.release-signoff`). git-audit's own
    /// kinds are written only by the hooks, `sync` and `record`.
    Append {
        #[arg(long)]
        kind: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "")]
        actor: String,
        /// JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Append this many entries, one transaction each.
        #[arg(long, default_value_t = 1)]
        repeat: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum WritersCommand {
    /// Make a writer (owner key only): a party that appends with its own key
    /// and may write only its role's kinds.
    Add {
        /// A name for it: lower-case letters, digits, `@._-` (e.g. `hooks@git1`, `ci-deploy`).
        name: String,
        #[arg(long, value_enum)]
        role: ledger::writers::Role,
        /// Make a new key for it and write the private half here (mode 0600).
        #[arg(long, value_name = "FILE", conflicts_with = "public_key", required_unless_present = "public_key")]
        key_out: Option<PathBuf>,
        /// Or use a key it made itself (`ledger writers keygen`): its public key or a file holding it.
        #[arg(long, value_name = "PUB")]
        public_key: Option<String>,
    },
    /// Every writer: name, role, kinds, key, when added or revoked.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Revoke a writer (owner key only): its key appends nothing more.
    Revoke {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Make a writer key on the machine that will use it; prints its public key for `writers add --public-key`.
    Keygen {
        /// Where to write the private key (mode 0600).
        file: PathBuf,
    },
}

/// Tells the sinks that selected `ledger.verify-failed` (every failing run
/// tells again: a tampered ledger is not news to be told once).
fn notify_verify_failed(
    global: &Global,
    repo: Option<&crate::git::Repo>,
    files: &LedgerFiles,
    l: &Ledger,
    problems: &[ledger::verify::Problem],
) {
    let sinks = super::notify::sinks(global, repo);
    if sinks.is_empty() {
        return;
    }
    let name = repo.map(crate::hook::notice::repository_name).unwrap_or_default();
    use crate::notify::body;
    let summary = format!(
        "the audit ledger of {name} failed verification: {} problem(s); first: {}",
        problems.len(),
        problems.first().map(|p| p.message.as_str()).unwrap_or_default()
    );
    let notice = crate::notify::Notice::new(
        "ledger.verify-failed",
        body::Data {
            repository: name,
            summary,
            // No `ledger` ({seq, tree_size, checkpoint} in other events): no entry reports this.
            ledger: None,
            detail: body::Detail::VerifyFailed(body::VerifyFailed {
                ledger_path: l.path.to_string_lossy().into_owned(),
                ledger_origin: l.origin.clone(),
                problems: problems.iter().map(|p| body::VerifyProblem { seq: p.seq, message: p.message.clone() }).collect(),
            }),
        },
    );
    match crate::notify::enqueue(files, &sinks, &[notice]) {
        Ok(n) if n > 0 => super::notify::deliver_soon(files, &sinks),
        Ok(_) => {}
        Err(e) => eprintln!("git-audit: note: could not queue the ledger.verify-failed notification: {e}"),
    }
}

fn read_key(s: &str) -> anyhow::Result<NoteVerifier> {
    let text = if Path::new(s).is_file() {
        std::fs::read_to_string(s).with_context(|| format!("cannot read key file {s}"))?
    } else {
        s.to_string()
    };
    NoteVerifier::parse(text.trim()).with_context(|| format!("`{}` is not a ledger public key (name+id+base64)", text.trim()))
}

fn write_out(output: &Option<PathBuf>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => emit(text),
    }
}

pub fn run(global: &Global, args: LedgerArgs) -> anyhow::Result<Outcome> {
    let repo = crate::git::Repo::open_from_env().ok();
    let loc = || super::location(global, repo.as_ref());
    match args.command {
        LedgerCommand::Init { origin, key_file, if_missing } => {
            let mut files = loc()?;
            if let Some(k) = key_file {
                files.key = k;
            }
            if if_missing {
                // Only a ledger counts as "already there": anything else is said.
                match Ledger::open(&files) {
                    Ok(l) => {
                        emit(&format!("ledger {} is already there (size {}); nothing to do\n", l.path.display(), l.head()?.size))?;
                        return Ok(Outcome::Pass);
                    }
                    Err(ledger::LedgerError::Missing { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let l = Ledger::init(&files, origin.as_deref())?;
            emit(&format!(
                "created ledger {}\nsigning key {} (the owner's: mode 0600; keep it secret)\npublic key {}\n\
                 give each party that appends a writer of its own: \
                 `git-audit ledger writers add NAME --role hooks|sync|ci|operator --key-out FILE`\n",
                l.path.display(),
                files.key.display(),
                l.verifier
            ))?;
        }
        LedgerCommand::Status { format } => {
            let l = Ledger::open(&loc()?)?;
            let head = l.head()?;
            let anchored = match &repo {
                Some(r) => anchor::anchored_note(&r.git_dir())?
                    .and_then(|(_, n)| l.open_note(&n).ok().and_then(|t| Checkpoint::parse(t).ok()))
                    .map(|c| c.size),
                None => None,
            };
            let remembered = anchor::remembered(&l)?;
            let anchor_problems = match &repo {
                Some(r) => anchor::check(&l, &r.git_dir())?,
                None => Vec::new(),
            };
            let anchored_text = match (anchored, &remembered) {
                (Some(s), _) if anchor_problems.is_empty() => format!("size {s} in {}", anchor::REF),
                (_, Some((size, commit))) if anchored.is_none() => {
                    format!("MISSING: {} is gone (last anchored size {size} at {commit})", anchor::REF)
                }
                (Some(s), Some((size, commit))) => {
                    format!("WENT BACKWARDS: size {s} in {} (last anchored size {size} at {commit})", anchor::REF)
                }
                _ => "never".to_string(),
            };
            let b64 = base64_encode(&head.root);
            // The head checked against its signature, the tree and the kept checkpoint.
            let ground = l.ground(&[])?;
            match format {
                OutputFormat::Json => emit(&(json!({"path": l.path, "origin": l.origin, "size": head.size, "root": b64, "checkpoint": head.note, "public_key": l.verifier.to_string(), "anchored_size": anchored, "last_anchored_size": remembered.as_ref().map(|r| r.0), "anchor_problems": anchor_problems, "ground": ground}).to_string() + "\n"))?,
                OutputFormat::Text => emit(&format!(
                    "ledger     {}\norigin     {}\nentries    {}\nroot       {b64}\npublic key {}\nanchored   {}\nground     {}\n",
                    l.path.display(),
                    l.origin,
                    head.size,
                    l.verifier,
                    anchored_text,
                    if ground.ok { green(global.color, &ground.summary()) } else { red(global.color, &ground.summary()) }
                ))?,
            }
            if !ground.ok {
                return Ok(Outcome::Violations);
            }
        }
        LedgerCommand::Checkpoint { output } => {
            let l = Ledger::open(&loc()?)?;
            write_out(&output, &l.checkpoint()?.note)?;
        }
        LedgerCommand::Verify { checkpoint, key, format } => {
            let l = Ledger::open(&loc()?)?;
            let trusted = key.as_deref().map(read_key).transpose()?;
            let mut older = Vec::new();
            for f in &checkpoint {
                let note = std::fs::read_to_string(f).with_context(|| format!("cannot read checkpoint {}", f.display()))?;
                older.push((format!("checkpoint {}", f.display()), note));
            }
            if let Some(r) = &repo {
                if let Some((tip, note)) = anchor::anchored_note(&r.git_dir())? {
                    older.push((format!("the checkpoint anchored at {tip}"), note));
                }
            }
            let started = std::time::Instant::now();
            let mut report = ledger::verify::verify(&l, trusted.as_ref(), &older)?;
            if let Some(r) = &repo {
                report
                    .problems
                    .extend(anchor::check(&l, &r.git_dir())?.into_iter().map(|message| ledger::verify::Problem { seq: None, message }));
            }
            let secs = started.elapsed().as_secs_f64();
            if !report.problems.is_empty() {
                notify_verify_failed(global, repo.as_ref(), &loc()?, &l, &report.problems);
            }
            match format {
                OutputFormat::Json => emit(&(serde_json::to_string(&report).unwrap_or_default() + "\n"))?,
                OutputFormat::Text => {
                    let mut out = String::new();
                    for p in &report.problems {
                        out.push_str(&format!("{} {}\n", red(global.color, "TAMPERED"), p.message));
                    }
                    for g in &report.gaps {
                        out.push_str(&format!(
                            "{} seq {}: {} event(s) went unrecorded between {} and {} (the hooks decided them while the ledger could not be written)\n",
                            red(global.color, "GAP"),
                            g.seq,
                            g.unrecorded,
                            g.first,
                            g.last
                        ));
                    }
                    if report.ok() {
                        out.push_str(&format!(
                            "{}: {} entries, tree and signed checkpoint (size {}) consistent, projections match a rebuild ({:.0} entries/s)\n",
                            green(global.color, "ledger OK"),
                            report.entries,
                            report.checkpoint_size,
                            report.entries as f64 / secs.max(1e-9)
                        ));
                    } else if report.problems.is_empty() {
                        out.push_str(&format!(
                            "ledger intact but incomplete: {} entries verified; {} gap marker(s) in {}\n",
                            report.entries,
                            report.gaps.len(),
                            l.path.display()
                        ));
                    } else {
                        out.push_str(&format!(
                            "ledger verification failed: {} problem(s) in {}\n",
                            report.problems.len(),
                            l.path.display()
                        ));
                    }
                    emit(&out)?;
                }
            }
            return Ok(if report.ok() { Outcome::Pass } else { Outcome::Violations });
        }
        LedgerCommand::Prove { seq, output } => {
            let l = Ledger::open(&loc()?)?;
            let proof = l.prove(seq)?;
            write_out(&output, &(serde_json::to_string_pretty(&proof).unwrap_or_default() + "\n"))?;
        }
        LedgerCommand::CheckProof { file, key } => return check_proof(&file, &key, global.color),
        LedgerCommand::Export { format: ExportFormat::Jsonl, output } => {
            let l = Ledger::open(&loc()?)?;
            let mut buf: Vec<u8> = Vec::new();
            match &output {
                Some(p) => {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?);
                    l.export_jsonl(&mut f)?;
                }
                None => {
                    l.export_jsonl(&mut buf)?;
                    emit(&String::from_utf8_lossy(&buf))?;
                }
            }
        }
        LedgerCommand::Anchor => {
            let mut l = Ledger::open(&loc()?)?;
            let r = repo.as_ref().context("`ledger anchor` needs a git repository to anchor into")?;
            let a = anchor::anchor(&mut l, &r.git_dir())?;
            match (&a.commit, a.previous_size) {
                (None, _) => emit(&format!("already anchored: {} holds the checkpoint of size {}\n", anchor::REF, a.size))?,
                (Some(c), Some(p)) => {
                    emit(&format!("anchored size {} at {c} in {} (consistency proof from size {p})\n", a.size, anchor::REF))?
                }
                (Some(c), None) => emit(&format!("anchored size {} at {c} in {}\n", a.size, anchor::REF))?,
            }
        }
        LedgerCommand::Rebuild => {
            let mut l = Ledger::open(&loc()?)?;
            let n = l.rebuild()?;
            emit(&format!("rebuilt projections from {n} entries\n"))?;
        }
        LedgerCommand::Migrate { to, format } => {
            let files = loc()?;
            let source = Ledger::open(&files)?;
            let dest = match ledger::store::PgUrl::parse(&to) {
                Some(url) => {
                    let spool = repo.as_ref().map(|r| r.git_dir().join("audit")).unwrap_or_else(std::env::temp_dir);
                    LedgerFiles::postgres(url, None, &spool)
                }
                None => LedgerFiles::sqlite(PathBuf::from(&to), PathBuf::from(&to).with_extension("key")),
            };
            let m = ledger::migrate::migrate(&source, &dest, &[crate::forge::state::SCHEMA, crate::notify::SCHEMA])?;
            let ok = m.problems.is_empty();
            match format {
                OutputFormat::Json => emit(&(serde_json::to_string(&m).unwrap_or_default() + "\n"))?,
                OutputFormat::Text => {
                    let mut out = format!("copied {} entries from {} to {}\n", m.entries, m.from, m.to);
                    for (t, n) in &m.tables {
                        out.push_str(&format!("  {t:<22} {n} rows\n"));
                    }
                    out.push_str(&format!("root {} (the same on both sides)\n", m.root));
                    for p in &m.problems {
                        out.push_str(&format!("{} {}\n", red(global.color, "PROBLEM"), p.message));
                    }
                    if ok {
                        out.push_str(&format!(
                            "{}: the copy verifies against this ledger's key and latest checkpoint\nWriters keep signing with the same key{}: name it with --ledger-key PATH, GIT_AUDIT_LEDGER_KEY or `git config audit.ledgerKey`\n",
                            green(global.color, "migrated"),
                            if files.key.as_os_str().is_empty() { String::new() } else { format!(" ({})", files.key.display()) }
                        ));
                    }
                    emit(&out)?;
                }
            }
            return Ok(if ok { Outcome::Pass } else { Outcome::Violations });
        }
        LedgerCommand::Writers { command } => return writers(global, &loc()?, command),
        LedgerCommand::Append { kind, subject, actor, payload, repeat } => {
            if let Some(k) = crate::event::Kind::parse(&kind) {
                return Err(anyhow::anyhow!(
                    "`{k}` is one of git-audit's own kinds: only its hooks, `sync` and `record` write those, so that no \
                     script can state a verdict, a review or a deployment\nHint: `ledger append` writes kinds outside that \
                     vocabulary, e.g. `x.{}`",
                    k.as_str().replace('.', "-")
                ));
            }
            let payload: serde_json::Value = serde_json::from_str(&payload).context("--payload is not JSON")?;
            let mut l = Ledger::open(&loc()?)?;
            let mut last = None;
            for _ in 0..repeat {
                last = Some(l.append(&[NewEntry::new(&kind, subject.clone(), actor.clone(), payload.clone())])?);
            }
            if let Some(r) = last {
                emit(&format!("appended seq {} (tree size {})\n", r.first_seq, r.tree_size))?;
            }
        }
    }
    Ok(Outcome::Pass)
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Verifies a `ledger prove` receipt offline: the checkpoint's signature with the
/// trusted key, then the entry's inclusion under the checkpoint's root (ct-merkle).
fn check_proof(file: &Path, key: &str, color: bool) -> anyhow::Result<Outcome> {
    let key = read_key(key)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let proof: ledger::Proof =
        serde_json::from_str(&text).with_context(|| format!("{} is not a proof from `git-audit ledger prove`", file.display()))?;
    match ledger::proof::verify(&proof, &key) {
        Ok(i) => {
            emit(&format!(
                "{}: entry seq {} ({} {}) is in the log {} of size {}, signed by {}\n",
                green(color, "proof OK"),
                i.seq,
                i.kind,
                i.subject,
                i.origin,
                i.size,
                i.signer
            ))?;
            Ok(Outcome::Pass)
        }
        Err(why) => {
            emit(&format!("{} {why}\n", red(color, "INVALID")))?;
            Ok(Outcome::Violations)
        }
    }
}

fn writers(global: &Global, files: &LedgerFiles, command: WritersCommand) -> anyhow::Result<Outcome> {
    use ledger::writers::{WriterChanged, OWNER};
    let owner_only = |l: &Ledger| -> anyhow::Result<()> {
        if l.writer_name()? != OWNER {
            return Err(anyhow::anyhow!(
                "only the ledger's owner key changes its writers; {} is a writer's key\nHint: run where the owner key is \
                 (the key `ledger init` made), with --ledger-key PATH",
                files.key.display()
            ));
        }
        Ok(())
    };
    match command {
        WritersCommand::Keygen { file } => {
            let origin = match Ledger::open(files) {
                Ok(l) => l.origin,
                Err(_) => "git-audit-writer".to_string(),
            };
            let signer = ledger::note::NoteSigner::generate(&origin).context("cannot make a key")?;
            ledger::write_private(&file, &signer.to_private_string())?;
            emit(&format!("{}\n", signer.verifier()))?;
        }
        WritersCommand::Add { name, role, key_out, public_key } => {
            let valid = !name.is_empty()
                && name != OWNER
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@._-".contains(&b));
            if !valid {
                return Err(anyhow::anyhow!("`{name}` is not a writer name: use lower-case letters, digits and @._- (and not `{OWNER}`)"));
            }
            let mut l = Ledger::open(files)?;
            owner_only(&l)?;
            if l.writers()?.list.iter().any(|w| w.name == name && w.revoked.is_none()) {
                return Err(anyhow::anyhow!("`{name}` is already a writer\nHint: revoke it first to give it a new key"));
            }
            let key = match (&key_out, &public_key) {
                (Some(out), _) => {
                    let signer = ledger::note::NoteSigner::generate(&l.origin).context("cannot make a key")?;
                    ledger::write_private(out, &signer.to_private_string())?;
                    signer.verifier()
                }
                (None, Some(k)) => read_key(k)?,
                (None, None) => anyhow::bail!("name the writer's key: --key-out FILE (a new key) or --public-key PUB"),
            };
            if key == l.verifier || l.writers()?.list.iter().any(|w| w.key == key) {
                return Err(anyhow::anyhow!("that key is already the owner's or another writer's: each writer has its own"));
            }
            let change = WriterChanged {
                action: "add".into(),
                name: name.clone(),
                role: Some(role),
                key: key.to_string(),
                kinds: role.kinds(),
                reason: None,
            };
            let r = l.append(&[crate::event::Payload::entry(&change, ledger::writers::SUBJECT, OWNER)])?;
            let kinds = role.kinds().join(", ");
            let key_note = key_out.map(|p| format!("; its key is in {} (give it to that writer only)", p.display())).unwrap_or_default();
            emit(&format!("added writer {name} ({}) at seq {}: it may write {kinds}{key_note}\n", role.as_str(), r.first_seq))?;
        }
        WritersCommand::Revoke { name, reason } => {
            let mut l = Ledger::open(files)?;
            owner_only(&l)?;
            let Some(w) = l.writers()?.list.iter().find(|w| w.name == name && w.revoked.is_none()).cloned() else {
                return Err(anyhow::anyhow!("`{name}` is not a writer of this ledger\nHint: `git-audit ledger writers list`"));
            };
            let change = WriterChanged {
                action: "revoke".into(),
                name: name.clone(),
                role: w.role,
                key: w.key.to_string(),
                kinds: w.kinds.clone(),
                reason,
            };
            let r = l.append(&[crate::event::Payload::entry(&change, ledger::writers::SUBJECT, OWNER)])?;
            emit(&format!("revoked writer {name} at seq {}: its key appends nothing from now on\n", r.first_seq))?;
        }
        WritersCommand::List { format } => {
            let l = Ledger::open(files)?;
            let w = l.writers()?;
            let rows: Vec<serde_json::Value> = std::iter::once(json!({"name": OWNER, "role": "owner", "kinds": ["*"], "key": l.verifier.to_string(), "added_seq": null, "revoked_seq": null}))
                .chain(w.list.iter().map(|x| json!({"name": x.name, "role": x.role.map(|r| r.as_str()), "kinds": x.kinds, "key": x.key.to_string(), "added_seq": x.added, "revoked_seq": x.revoked, "revoke_reason": x.revoke_reason})))
                .collect();
            match format {
                OutputFormat::Json => emit(
                    &(serde_json::to_string_pretty(
                        &json!({"writers": rows, "problems": w.problems.iter().map(|(seq, m)| json!({"seq": seq, "message": m})).collect::<Vec<_>>()}),
                    )? + "\n"),
                )?,
                OutputFormat::Text => {
                    let mut out = String::new();
                    for r in &rows {
                        let state = match (r["added_seq"].as_u64(), r["revoked_seq"].as_u64()) {
                            (None, _) => "the ledger's owner (may write every kind)".to_string(),
                            (Some(a), None) => format!("since seq {a}"),
                            (Some(a), Some(v)) => format!("seq {a} until revoked at seq {v}"),
                        };
                        out.push_str(&format!(
                            "{}  {}  {}\n    kinds: {}\n    key: {}\n",
                            r["name"].as_str().unwrap_or(""),
                            r["role"].as_str().unwrap_or(""),
                            state,
                            r["kinds"]
                                .as_array()
                                .map(|k| k.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                                .unwrap_or_default(),
                            r["key"].as_str().unwrap_or("")
                        ));
                    }
                    for (seq, m) in &w.problems {
                        out.push_str(&format!("{} seq {seq}: {m}\n", red(global.color, "IGNORED")));
                    }
                    emit(&out)?;
                }
            }
        }
    }
    Ok(Outcome::Pass)
}
