//! Replays, through the fuzz targets' own entry points
//! (`git_audit::fuzzing`), every input the fuzzers kept: the crashes, hangs
//! and out-of-memory inputs fixed since (`tests/fuzz_regressions/<target>/`)
//! and the minimised corpora (`fuzz/corpus/<target>/`). None may panic.

use std::path::Path;

use anyhow::{Context, Result};
use git_audit::fuzzing::{Harness, TARGETS};
use git_audit::signature::SignatureStatus;

fn harness() -> Result<Harness> {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/keys");
    let openpgp = std::fs::read(keys.join("alice.asc")).context("fuzz/keys/alice.asc")?;
    let signers = std::fs::read_to_string(keys.join("allowed_signers")).context("fuzz/keys/allowed_signers")?;
    Ok(Harness::new(&openpgp, &signers))
}

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_fuzz_input_replays_without_a_panic() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut h = harness()?;
    let mut replayed = 0;
    for target in TARGETS {
        let found = inputs(&root.join("tests/fuzz_regressions").join(target));
        let corpus = inputs(&root.join("fuzz/corpus").join(target));
        assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty: run fuzz/seed.sh");
        for file in found.iter().chain(&corpus) {
            let data = match std::fs::read(file) {
                Ok(d) => d,
                // A running campaign minimises the corpus under our feet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| file.display().to_string()),
            };
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run(target, &data)));
            assert!(matches!(ok, Ok(true)), "{target}: {} panicked or is not a target", file.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "{replayed}");
    Ok(())
}

/// The signature targets verify against the pinned test keys: the seeds made
/// with them (kept beside the keys, since minimising renames corpus files)
/// are good, so the fuzzers start from inputs that reach the whole verifier,
/// not from ones refused at the first byte.
#[test]
fn the_fuzz_harness_verifies_its_own_seeds() -> Result<()> {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/keys");
    let mut h = harness()?;
    for seed in ["seed-openpgp.asc", "seed-ssh.sig"] {
        let data = std::fs::read(keys.join(seed)).with_context(|| format!("fuzz/keys/{seed}"))?;
        assert_eq!(h.signature(&data), SignatureStatus::Good, "{seed}");
        let mut bad = data.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x20;
        assert_ne!(h.signature(&bad), SignatureStatus::Good, "{seed} with a flipped bit");
    }
    Ok(())
}
