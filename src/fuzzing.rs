//! Entry points for the fuzz targets (`fuzz/`) and for the replay of the
//! inputs they found (`tests/fuzz_regressions/`): one function per parser at
//! an edge where git-audit reads what others wrote. Each takes raw bytes,
//! drives the parser the way the tool does, and must return — never panic,
//! hang or allocate without bound — whatever the bytes are.
//!
//! Not an API: the names follow the fuzz targets and may change with them.

use serde_json::Value;

use crate::forge::github::GithubPayload;
use crate::forge::github::{client, sync};
use crate::ledger::note::{Checkpoint, NoteVerifier};
use crate::ledger::{merkle, projection, proof, Proof};
use crate::signature::{allowed_signers, KeyFile, SignatureChecker, Trust};

/// Every target, by name: what `fuzz/run.sh` and the regression replay know.
pub const TARGETS: &[&str] = &[
    "commit",
    "tag",
    "openpgp",
    "ssh_signature",
    "allowed_signers",
    "policy",
    "checkpoint",
    "proof",
    "hook_stdin",
    "push_cert",
    "github_rest",
    "github_graphql",
];

/// The verifier key of the ledger the checkpoint and proof seeds came from
/// (`tests/fixtures/ledger-v1`).
pub const NOTE_KEY: &str = "git-audit.local/ledger/44162b859b2be38e+309143b2+AUMCnDjXPWWUumdJmr+l8s74Nl1wtTMNmjFDDQjLL9bB";

/// The payload the signature targets' seeds sign (a commit without its signature).
pub const SIGNED_PAYLOAD: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor Alice <alice@example.com> 1767225600 +0000\ncommitter Alice <alice@example.com> 1767225600 +0000\n\nfeat: fuzz seed\n";

/// What the signature targets verify against: the pinned keys of `fuzz/keys/`.
pub struct Harness {
    checker: SignatureChecker,
    note: Option<NoteVerifier>,
}

impl Harness {
    /// `openpgp` is an armored public key, `signers` an allowed-signers file.
    pub fn new(openpgp: &[u8], signers: &str) -> Harness {
        let keys = vec![KeyFile { path: "fuzz/keys/alice.asc".into(), armored: openpgp.to_vec(), origin: "fuzz".into() }];
        let allowed = allowed_signers::parse(signers)
            .ok()
            .map(|entries| allowed_signers::AllowedSigners { path: "fuzz/keys/allowed_signers".into(), entries });
        let mut checker = SignatureChecker::new(Trust::Policy, crate::signature::OpenpgpPolicy::Strict, keys, allowed);
        let _ = checker.prepare();
        Harness { checker, note: NoteVerifier::parse(NOTE_KEY).ok() }
    }

    /// Runs target `name` on `data`; false for a name that is not a target.
    pub fn run(&mut self, name: &str, data: &[u8]) -> bool {
        match name {
            "commit" => commit(data),
            "tag" => self.tag(data),
            "openpgp" | "ssh_signature" => {
                self.signature(data);
            }
            "allowed_signers" => allowed_signers_file(data),
            "policy" => policy(data),
            "checkpoint" => self.checkpoint(data),
            "proof" => self.proof(data),
            "hook_stdin" => hook_stdin(data),
            "push_cert" => self.push_cert(data),
            "github_rest" => github_rest(data),
            "github_graphql" => github_graphql(data),
            _ => return false,
        }
        true
    }

    /// A detached signature (armored or binary, OpenPGP or SSH) over [`SIGNED_PAYLOAD`].
    pub fn signature(&mut self, data: &[u8]) -> crate::signature::SignatureStatus {
        self.checker.check(Some(data), SIGNED_PAYLOAD, 1_767_225_600).status
    }

    /// A tag object: its headers, its tagger's time, its trailing signature.
    pub fn tag(&mut self, data: &[u8]) {
        let parsed = crate::git::ParsedCommit::parse(data, "gpgsig");
        let _ = parsed.subject();
        if let Some((payload, sig)) = crate::hook::identity::split_signed(data) {
            let at = crate::git::header_time(payload, "tagger");
            let _ = self.checker.check_object("tag", Some(sig), payload, at);
        }
    }

    /// A push certificate blob, as the pre-receive hook reads it.
    pub fn push_cert(&mut self, data: &[u8]) {
        if let Some((payload, sig)) = crate::hook::identity::split_signed(data) {
            let at = crate::git::header_time(payload, "pusher");
            let _ = self.checker.check_object("push certificate", Some(sig), payload, at);
            let text = String::from_utf8_lossy(payload);
            let _ = crate::hook::parse_receive(text.split("\n\n").nth(1).unwrap_or(""));
        }
    }

    /// A signed note: checkpoint text opened with the ledger's key, then parsed.
    pub fn checkpoint(&mut self, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let _ = NoteVerifier::parse(&text);
        let _ = Checkpoint::parse(&text);
        if let Some(key) = &self.note {
            if let Ok(body) = key.open(&text) {
                let _ = Checkpoint::parse(body);
            }
        }
    }

    /// A receipt (`ledger prove` JSON) checked as `ledger check-proof` does,
    /// plus the raw proof bytes through the consistency checker.
    pub fn proof(&mut self, data: &[u8]) {
        if let (Ok(p), Some(key)) = (serde_json::from_slice::<Proof>(data), &self.note) {
            let _ = proof::verify(&p, key);
        }
        if data.len() >= 72 {
            let (a, rest) = data.split_at(32);
            let (b, rest) = rest.split_at(32);
            let (m, n) =
                (u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]), u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]));
            let hashes: Vec<merkle::Hash> = rest[8..].chunks_exact(32).map(|c| <[u8; 32]>::try_from(c).unwrap_or([0; 32])).collect();
            let (a, b) = (<[u8; 32]>::try_from(a).unwrap_or([0; 32]), <[u8; 32]>::try_from(b).unwrap_or([0; 32]));
            let _ = merkle::verify_consistency(&a, u64::from(m), &b, u64::from(n), &hashes);
            let _ = merkle::verify_inclusion(&b, u64::from(n), u64::from(m), &rest[8..], &hashes);
        }
    }
}

/// A commit object, parsed as `verify` and the hooks parse it.
pub fn commit(data: &[u8]) {
    for header in ["gpgsig", "gpgsig-sha256"] {
        let c = crate::git::ParsedCommit::parse(data, header);
        let _ = (c.message_text(), c.subject());
    }
    let _ = crate::git::Ident::check(data);
    let _ = crate::git::Ident::parse(data);
}

/// An allowed-signers file (`ssh-keygen -Y verify`'s format).
pub fn allowed_signers_file(data: &[u8]) {
    if let Ok(entries) = allowed_signers::parse(&String::from_utf8_lossy(data)) {
        for e in &entries {
            let _ = (e.matches_principal("alice@example.com"), e.allows_namespace("git"));
        }
    }
}

/// A policy file through the whole validator (key files it names resolve
/// under a directory that does not exist, so nothing outside is read).
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::policy::Policy::from_str(&text, std::path::Path::new("/nonexistent/git-audit-fuzz/.git-audit.toml"));
}

/// Hook standard input: pre-receive/post-receive and pre-push lines.
pub fn hook_stdin(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::hook::parse_receive(&text);
    let _ = crate::hook::parse_pre_push(&text);
}

/// One REST body of each kind the sync records, made into its payload and
/// then into the projection rows the ledger would write.
pub fn github_rest(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let items: Vec<Value> = match &v {
        Value::Array(a) => a.iter().take(64).cloned().collect(),
        other => vec![other.clone()],
    };
    for item in &items {
        let commits: Vec<String> =
            item["commits"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_string)).collect();
        let payloads = [
            ("pr.synced", GithubPayload::pull_request("acme/api", item, item["merged"] == true, &commits, false)),
            ("review.synced", GithubPayload::review("acme/api", 1, item)),
            ("deployment.synced", GithubPayload::deployment("acme/api", item)),
            ("deployment_status.synced", GithubPayload::deployment_status("acme/api", 7, item)),
            ("workflow_run.synced", GithubPayload::workflow_run("acme/api", 7, item)),
            ("deployment_approval.synced", GithubPayload::deployment_approval("acme/api", 1, 7, &item["approvals"])),
            ("environment.synced", GithubPayload::environment_snapshot("acme/api", item, &item["branch_policies"])),
            ("commit_pulls.synced", item.clone()),
        ];
        for (kind, payload) in payloads {
            let _ = projection::rows(1, "2026-01-01T00:00:00Z", kind, "acme/api#1", "fuzz", &payload.to_string());
        }
        // Untrusted URLs in bodies: run ids, and never a credential in what is shown.
        for key in ["log_url", "target_url", "html_url", "url"] {
            if let Some(u) = item[key].as_str() {
                let _ = sync::run_id(u);
                let _ = client::strip_userinfo(u);
                let _ = client::redact(u);
            }
        }
    }
}

/// A GraphQL pull-request page, each node mapped to REST's shapes as the sync
/// does, recorded as payloads and projected.
pub fn github_graphql(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let page = &v["data"]["repository"]["pullRequests"];
    let _ = (page["pageInfo"]["hasNextPage"].as_bool(), page["pageInfo"]["endCursor"].as_str());
    for n in page["nodes"].as_array().into_iter().flatten().take(64) {
        let pr = sync::graphql_pull(n);
        let payload = GithubPayload::pull_request("acme/api", &pr.detail, pr.detail["merged"] == true, &pr.commits, false);
        let _ = projection::rows(1, "2026-01-01T00:00:00Z", "pr.synced", "acme/api#1", "fuzz", &payload.to_string());
        for r in &pr.reviews {
            let payload = GithubPayload::review("acme/api", 1, r);
            let _ = projection::rows(2, "2026-01-01T00:00:00Z", "review.synced", "acme/api#1", "fuzz", &payload.to_string());
        }
    }
}
