//! Properties, each checked on a few hundred random cases in seconds:
//! the Merkle proofs against a naive RFC 9162 tree, canonical entry bytes and
//! signed notes round-tripping, the commit parser agreeing with libgit2, and
//! the policy loader never panicking on random TOML.

use git_audit::git::ParsedCommit;
use git_audit::ledger::entry::{canonical_bytes, canonical_json};
use git_audit::ledger::merkle::{self, Hash, MemoryTree};
use git_audit::ledger::note::{Checkpoint, NoteSigner};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// RFC 9162 §2.1.1, written out as the RFC states it (no stored subtrees).
fn mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => Sha256::digest([&[0u8][..], &leaves[0]].concat()).into(),
        n => {
            let k = k_of(n);
            Sha256::digest([&[1u8][..], &mth(&leaves[..k]), &mth(&leaves[k..])].concat()).into()
        }
    }
}

/// The largest power of two smaller than `n` (n > 1).
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.3.1 PATH(m, D[n]).
fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b).
fn subproof(m: usize, leaves: &[Vec<u8>], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], complete);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 1..140)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn merkle_proofs_match_a_naive_tree(leaves in leaves_strategy(), a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let mut t = MemoryTree::new();
        for l in &leaves {
            t.push(merkle::leaf_hash(l));
        }
        let n = leaves.len();
        let root = merkle::root(&mut t, n as u64).map_err(|_| TestCaseError::fail("root"))?;
        prop_assert_eq!(root, mth(&leaves));
        // Inclusion of leaf m.
        let m = a.index(n);
        let proof = merkle::inclusion_proof(&mut t, m as u64, n as u64).map_err(|_| TestCaseError::fail("inclusion"))?;
        prop_assert_eq!(&proof, &path(m, &leaves));
        prop_assert!(merkle::verify_inclusion(&root, n as u64, m as u64, &leaves[m], &proof));
        // Another entry, or a flipped bit, does not verify.
        let mut other = leaves[m].clone();
        other.push(0x5a);
        prop_assert!(!merkle::verify_inclusion(&root, n as u64, m as u64, &other, &proof));
        if let Some(first) = proof.first() {
            let mut bad = proof.clone();
            bad[0][0] ^= 1;
            prop_assert!(*first != bad[0]);
            prop_assert!(!merkle::verify_inclusion(&root, n as u64, m as u64, &leaves[m], &bad));
        }
        // Consistency of the first `old` leaves with all of them.
        let old = 1 + b.index(n);
        let proof = merkle::consistency_proof(&mut t, old as u64, n as u64).map_err(|_| TestCaseError::fail("consistency"))?;
        let expected = if old == n { Vec::new() } else { subproof(old, &leaves, true) };
        prop_assert_eq!(&proof, &expected);
        let old_root = mth(&leaves[..old]);
        prop_assert!(merkle::verify_consistency(&old_root, old as u64, &root, n as u64, &proof));
        if old < n {
            let mut forged = old_root;
            forged[31] ^= 1;
            prop_assert!(!merkle::verify_consistency(&forged, old as u64, &root, n as u64, &proof));
        }
    }

    /// An entry's canonical bytes are sorted-key compact JSON of its fields:
    /// parsing them gives the fields back, and canonicalising that gives the
    /// same bytes (what a verifier in another language reproduces).
    #[test]
    fn canonical_entry_bytes_round_trip(
        seq in any::<u64>(),
        time in "[0-9T:.Z-]{0,30}",
        kind in "[a-z_]{1,12}(\\.[a-z_]{1,12}){0,2}",
        subject in any::<String>(),
        actor in any::<String>(),
        payload in json_value(),
    ) {
        let payload_json = canonical_json(&payload);
        let bytes = canonical_bytes(seq, &time, &kind, &subject, &actor, &payload_json);
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed["seq"].as_u64(), Some(seq));
        prop_assert_eq!(parsed["time"].as_str(), Some(time.as_str()));
        prop_assert_eq!(parsed["kind"].as_str(), Some(kind.as_str()));
        prop_assert_eq!(parsed["subject"].as_str(), Some(subject.as_str()));
        prop_assert_eq!(parsed["actor"].as_str(), Some(actor.as_str()));
        prop_assert_eq!(&parsed["payload"], &payload);
        prop_assert_eq!(canonical_json(&parsed).into_bytes(), bytes);
    }

    /// Signed notes: what is signed opens to the same text; another key, or a
    /// changed text, does not open.
    #[test]
    fn signed_notes_round_trip(lines in prop::collection::vec("[^\\p{Cc}]{0,40}", 1..6), size in any::<u64>(), root in any::<[u8; 32]>()) {
        let signer = NoteSigner::generate("fuzz.example/log").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let other = NoteSigner::generate("fuzz.example/log").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text: String = lines.iter().map(|l| format!("{}\n", l.replace('\u{2014}', "-"))).collect();
        if let Ok(note) = signer.sign(&text) {
            prop_assert_eq!(signer.verifier().open(&note), Ok(text.as_str()));
            prop_assert!(other.verifier().open(&note).is_err());
            let tampered = note.replacen('\n', " \n", 1);
            prop_assert!(signer.verifier().open(&tampered).is_err());
        }
        let cp = Checkpoint { origin: "fuzz.example/log".into(), size, root };
        prop_assert_eq!(Checkpoint::parse(&cp.to_text()).ok(), Some(cp.clone()));
        let note = signer.sign(&cp.to_text()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let body = signer.verifier().open(&note).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Checkpoint::parse(body).ok(), Some(cp));
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One header line of a generated commit.
#[derive(Debug, Clone)]
enum Header {
    Parent(String),
    Author(String),
    Committer(String),
    Encoding,
    Gpgsig(Vec<String>),
    Extra(String),
}

fn hex_id() -> impl Strategy<Value = String> {
    "[0-9a-f]{40}"
}

fn ident() -> impl Strategy<Value = String> {
    ("[A-Za-z][A-Za-z .'-]{0,12}", "[a-z]{1,8}@[a-z]{1,8}\\.example", 0i64..4_000_000_000, -720i32..840).prop_map(|(name, email, t, z)| {
        format!("{} <{email}> {t} {}{:02}{:02}", name.trim(), if z < 0 { '-' } else { '+' }, z.abs() / 60, z.abs() % 60)
    })
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        hex_id().prop_map(Header::Parent),
        ident().prop_map(Header::Author),
        ident().prop_map(Header::Committer),
        Just(Header::Encoding),
        prop::collection::vec("[A-Za-z0-9+/=]{0,30}", 1..5).prop_map(Header::Gpgsig),
        "[a-z]{3,8} [ -~]{0,20}".prop_map(Header::Extra),
    ]
}

fn render(h: &Header) -> String {
    match h {
        Header::Parent(p) => format!("parent {p}\n"),
        Header::Author(a) => format!("author {a}\n"),
        Header::Committer(c) => format!("committer {c}\n"),
        Header::Encoding => "encoding ISO-8859-1\n".into(),
        Header::Gpgsig(lines) => {
            let mut s = "gpgsig -----BEGIN PGP SIGNATURE-----\n".to_string();
            for l in lines {
                s.push_str(&format!(" {l}\n"));
            }
            s.push_str(" -----END PGP SIGNATURE-----\n");
            s
        }
        Header::Extra(e) => format!("{e}\n"),
    }
}

fn commit_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(hex_id(), 0..4),
        ident(),
        ident(),
        prop::collection::vec(header(), 0..3),
        any::<bool>(),
        "[ -~\n]{0,60}",
        prop::collection::vec(any::<prop::sample::Index>(), 0..2),
    )
        .prop_map(|(parents, author, committer, extra, signed, message, swaps)| {
            let mut headers: Vec<Header> = parents.into_iter().map(Header::Parent).collect();
            headers.push(Header::Author(author));
            headers.push(Header::Committer(committer));
            if signed {
                headers.push(Header::Gpgsig(vec!["iQEzBAABCAAdFiEE".into(), "=abcd".into()]));
            }
            headers.extend(extra);
            // Permute a little: git writes one order; the parser must agree on any.
            for s in swaps {
                let i = s.index(headers.len());
                if i + 1 < headers.len() {
                    headers.swap(i, i + 1);
                }
            }
            let mut raw = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n".to_string();
            for h in &headers {
                raw.push_str(&render(h));
            }
            raw.push('\n');
            raw.push_str(&message);
            raw.into_bytes()
        })
}

fn scratch_repo() -> Option<(tempfile::TempDir, git2::Repository)> {
    let dir = tempfile::tempdir().ok()?;
    let repo = git2::Repository::init_bare(dir.path()).ok()?;
    Some((dir, repo))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Where libgit2 reads a commit and our parser finds nothing wrong with it,
    /// both see the same parents, author, committer and signed payload.
    #[test]
    fn commit_parser_agrees_with_libgit2(raw in commit_strategy()) {
        let Some((_dir, repo)) = scratch_repo() else { return Err(TestCaseError::fail("no scratch repository")) };
        let ours = ParsedCommit::parse(&raw, "gpgsig");
        let Ok(odb) = repo.odb() else { return Err(TestCaseError::fail("odb")) };
        let Ok(oid) = odb.write(git2::ObjectType::Commit, &raw) else { return Ok(()) };
        let Ok(theirs) = repo.find_commit(oid) else {
            // libgit2 refused it: then something about it is wrong for us too.
            prop_assert!(!ours.problems.is_empty() || ours.author.is_none() || ours.committer.is_none(), "libgit2 refused {:?}", String::from_utf8_lossy(&raw));
            return Ok(());
        };
        if !ours.problems.is_empty() {
            return Ok(());
        }
        let parents: Vec<String> = theirs.parent_ids().map(|p| p.to_string()).collect();
        prop_assert_eq!(&ours.parents, &parents);
        let (a, c) = (theirs.author(), theirs.committer());
        let ours_a = ours.author.clone().unwrap_or_default();
        let ours_c = ours.committer.clone().unwrap_or_default();
        prop_assert_eq!(ours_a.email.as_str(), a.email().unwrap_or(""));
        prop_assert_eq!(ours_a.time, a.when().seconds());
        prop_assert_eq!(ours_c.email.as_str(), c.email().unwrap_or(""));
        prop_assert_eq!(ours_c.time, c.when().seconds());
        prop_assert_eq!(ours_c.offset_minutes, c.when().offset_minutes());
        match repo.extract_signature(&oid, Some("gpgsig")) {
            Ok((sig, data)) => {
                // git (commit.c, parse_buffer_signed_by_header) keeps each
                // signature line's newline; libgit2 drops the last one. We
                // follow git, whose `%G?` the verdicts agree with.
                let mut as_git = sig.to_vec();
                as_git.push(b'\n');
                prop_assert_eq!(ours.signature.as_deref(), Some(&as_git[..]));
                prop_assert_eq!(&ours.payload[..], &data[..]);
            }
            Err(_) => prop_assert!(ours.signature.is_none()),
        }
    }

    /// The policy loader answers every TOML document with a policy or an
    /// error naming where — it never panics.
    #[test]
    fn the_policy_loader_never_panics(doc in policy_toml()) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = git_audit::policy::Policy::from_str(&doc, &dir.path().join(".git-audit.toml"));
    }
}

/// TOML made of the policy's own tables and keys with values of any type, so
/// the cases reach the validator rather than stopping at an unknown key.
fn policy_toml() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<bool>().prop_map(|v| v.to_string()),
        "[ -~&&[^\"\\\\]]{0,16}".prop_map(|s| format!("\"{s}\"")),
        prop::collection::vec("[a-z*@.:/_-]{0,10}", 0..3)
            .prop_map(|v| format!("[{}]", v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "))),
        Just("\"enforce\"".to_string()),
        Just("\"warn\"".to_string()),
        Just("{ mode = \"off\" }".to_string()),
    ];
    let table = prop::sample::select(vec![
        "",
        "[signing]",
        "[rules]",
        "[branches]",
        "[commits]",
        "[pull_requests]",
        "[[environments]]",
        "[notify]",
        "[[notify.sinks]]",
        "[roles]",
        "[server]",
        "[breakglass]",
        "[[paths]]",
        "[ledger]",
    ]);
    let key = prop::sample::select(vec![
        "version",
        "mode",
        "require",
        "trust",
        "openpgp_keys",
        "ssh_allowed_signers",
        "protected",
        "allow_force_push",
        "allow_deletion",
        "conventional",
        "name",
        "deployers",
        "approvers",
        "min_approvals",
        "branches",
        "url",
        "kinds",
        "events",
        "pattern",
        "signers",
        "policy-admin",
        "require_ledger",
        "identity",
        "min",
        "max_age_days",
        "require_signed",
        "deny",
    ]);
    prop::collection::vec((table, prop::collection::vec((key, value), 0..4)), 0..5).prop_map(|tables| {
        let mut out = String::new();
        for (t, kvs) in tables {
            out.push_str(t);
            out.push('\n');
            for (k, v) in kvs {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    })
}
