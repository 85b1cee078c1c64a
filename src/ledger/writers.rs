//! Who may write what: the ledger's writers.
//!
//! Every party that appends (a git server's hooks, a sync job, a CI job that
//! records deployments, an operator) holds its own Ed25519 key. Each entry it
//! appends names it (`writer`, inside the hashed bytes, entry format 2) and
//! carries its signature over those bytes; the checkpoint of its append is
//! signed by the same key. The list of writers lives in the ledger itself:
//! `ledger.writer` entries under the subject [`SUBJECT`], each signed by the
//! ledger's owner key (the key `ledger init` made), saying who was added or
//! revoked, with which key and which kinds. So a writer's key can write only
//! its own kinds: `ledger verify` reports any other entry, and reports ignore
//! it and say so.
//!
//! The owner may write every kind (it can add writers anyway); keep its key
//! offline once the writers are set up.

use super::note::NoteVerifier;
use crate::event::Kind;
pub use crate::event::{Role, WriterChanged, OTHER_KINDS};

/// The subject every `ledger.writer` entry has (so loading them is one index lookup).
pub const SUBJECT: &str = "ledger/writers";
/// The writer name entries signed by the owner key carry.
pub const OWNER: &str = "owner";

/// One writer, over the span of seqs its key was valid for.
#[derive(Debug, Clone)]
pub struct Writer {
    pub name: String,
    pub role: Option<Role>,
    pub key: NoteVerifier,
    pub kinds: Vec<String>,
    /// The seq of the `ledger.writer` entry that added it.
    pub added: u64,
    /// The seq of the one that revoked it.
    pub revoked: Option<u64>,
    pub revoke_reason: Option<String>,
}

impl Writer {
    /// Valid for an entry at `seq` (added before it, not yet revoked).
    pub fn valid_at(&self, seq: u64) -> bool {
        self.added < seq && self.revoked.is_none_or(|r| seq < r)
    }

    pub fn may_write(&self, kind: &str) -> bool {
        may_write(&self.kinds, kind)
    }
}

/// True when `kinds` (a writer's list) allows `kind`.
pub fn may_write(kinds: &[String], kind: &str) -> bool {
    kinds.iter().any(|k| k == kind || (k == OTHER_KINDS && Kind::parse(kind).is_none() && kind != Kind::LedgerWriter.as_str()))
}

/// The ledger's writers, as its owner-signed entries say.
#[derive(Debug, Clone, Default)]
pub struct Writers {
    pub list: Vec<Writer>,
    /// `ledger.writer` entries that do not count (not signed by the owner,
    /// malformed), with why.
    pub problems: Vec<(u64, String)>,
    /// The first entry that names a writer: every later entry must name one
    /// too (a format 1 entry after it was inserted by hand).
    pub first_v2: Option<u64>,
}

/// Why an entry does not count as its writer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No writer of that name was valid at that seq.
    Unknown(String),
    /// An entry without a writer after entries began to name theirs.
    Unattributed,
    /// The writer may not write that kind.
    NotItsKind { writer: String, kind: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unknown(w) => write!(f, "writer `{w}` was not a writer of this ledger at that point"),
            Refusal::Unattributed => write!(f, "it names no writer, though every entry since format 2 must (inserted)"),
            Refusal::NotItsKind { writer, kind } => write!(f, "writer `{writer}` may not write `{kind}` entries"),
        }
    }
}

impl Writers {
    /// Folds the `ledger.writer` entries (seq, writer, payload JSON), oldest
    /// first. Whether each is signed by the owner is the caller's check
    /// (`owner_signed`); an unsigned one is a problem and changes nothing.
    pub fn fold(entries: impl IntoIterator<Item = (u64, Option<String>, String, bool)>) -> Writers {
        let mut w = Writers::default();
        for (seq, writer, payload, owner_signed) in entries {
            if writer.as_deref() != Some(OWNER) || !owner_signed {
                w.problems.push((seq, "a writer change not signed by the ledger's owner key; ignored".into()));
                continue;
            }
            let change: WriterChanged = match serde_json::from_str(&payload) {
                Ok(c) => c,
                Err(e) => {
                    w.problems.push((seq, format!("a writer change that does not parse ({e}); ignored")));
                    continue;
                }
            };
            let key = match NoteVerifier::parse(&change.key) {
                Ok(k) => k,
                Err(e) => {
                    w.problems.push((seq, format!("writer `{}` has an unusable key ({e}); ignored", change.name)));
                    continue;
                }
            };
            match change.action.as_str() {
                "add" => {
                    if w.active(&change.name, seq).is_some() {
                        w.problems.push((seq, format!("writer `{}` added twice; the second is ignored", change.name)));
                        continue;
                    }
                    w.list.push(Writer {
                        name: change.name,
                        role: change.role,
                        key,
                        kinds: change.kinds,
                        added: seq,
                        revoked: None,
                        revoke_reason: None,
                    });
                }
                "revoke" => match w.list.iter_mut().find(|x| x.name == change.name && x.revoked.is_none() && x.key == key) {
                    Some(x) => {
                        x.revoked = Some(seq);
                        x.revoke_reason = change.reason;
                    }
                    None => w.problems.push((seq, format!("revokes writer `{}`, which is not a writer; ignored", change.name))),
                },
                other => w.problems.push((seq, format!("unknown writer action `{other}`; ignored"))),
            }
        }
        w
    }

    /// The writer named `name` valid at `seq`.
    pub fn active(&self, name: &str, seq: u64) -> Option<&Writer> {
        self.list.iter().find(|w| w.name == name && w.valid_at(seq))
    }

    /// The writer that holds `key` now (not revoked).
    pub fn by_key(&self, key: &NoteVerifier) -> Option<&Writer> {
        self.list.iter().find(|w| &w.key == key && w.revoked.is_none())
    }

    /// Whether an entry at `seq` of `kind` by `writer` counts. Format 1
    /// entries (no writer) and the owner's count; the integrity of format 1
    /// entries is the tree's.
    pub fn judge(&self, seq: u64, kind: &str, writer: Option<&str>) -> Result<(), Refusal> {
        if writer.is_none() && self.first_v2.is_some_and(|f| seq > f) {
            return Err(Refusal::Unattributed);
        }
        let Some(name) = writer.filter(|w| *w != OWNER) else { return Ok(()) };
        let w = self.active(name, seq).ok_or_else(|| Refusal::Unknown(name.to_string()))?;
        if w.may_write(kind) {
            Ok(())
        } else {
            Err(Refusal::NotItsKind { writer: name.to_string(), kind: kind.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::note::NoteSigner;

    fn change(action: &str, name: &str, key: &NoteVerifier, role: Role) -> String {
        serde_json::to_string(&WriterChanged {
            action: action.into(),
            name: name.into(),
            role: Some(role),
            key: key.to_string(),
            kinds: role.kinds(),
            reason: None,
        })
        .unwrap_or_default()
    }

    #[test]
    fn writers_write_their_own_kinds_while_valid() {
        let k = NoteSigner::generate("o").map(|s| s.verifier()).expect("key");
        let owner = Some(OWNER.to_string());
        let w = Writers::fold([
            (3, owner.clone(), change("add", "ci", &k, Role::Ci), true),
            (4, Some("ci".into()), change("add", "evil", &k, Role::Hooks), true),
            (5, owner.clone(), change("add", "forged", &k, Role::Hooks), false),
            (9, owner, change("revoke", "ci", &k, Role::Ci), true),
        ]);
        assert_eq!(w.list.len(), 1);
        assert_eq!(w.problems.len(), 2, "{:?}", w.problems);
        assert_eq!(w.judge(5, "deployment.recorded", Some("ci")), Ok(()));
        assert!(matches!(w.judge(5, "commit.verified", Some("ci")), Err(Refusal::NotItsKind { .. })));
        assert!(matches!(w.judge(3, "deployment.recorded", Some("ci")), Err(Refusal::Unknown(_))), "not before it was added");
        assert!(matches!(w.judge(9, "deployment.recorded", Some("ci")), Err(Refusal::Unknown(_))), "not once revoked");
        assert_eq!(w.judge(5, "commit.verified", None), Ok(()), "format 1");
        let later = Writers { first_v2: Some(3), ..w.clone() };
        assert_eq!(later.judge(5, "commit.verified", None), Err(Refusal::Unattributed), "format 1 after format 2 began");
        assert_eq!(later.judge(2, "commit.verified", None), Ok(()), "format 1 before it");
        assert_eq!(w.judge(5, "commit.verified", Some(OWNER)), Ok(()));
    }

    #[test]
    fn operators_write_only_kinds_outside_the_vocabulary() {
        let kinds = Role::Operator.kinds();
        assert!(may_write(&kinds, "x.note") && may_write(&kinds, "release.signed-off"));
        for k in Kind::ALL.iter().filter(|k| !matches!(k, Kind::LedgerGap | Kind::LedgerAnchored)) {
            assert!(!may_write(&kinds, k.as_str()), "{k}");
        }
    }
}
