//! RFC 9162 (RFC 6962) Merkle tree hashing and proof generation.
//!
//! Leaf hash = SHA-256(0x00 ‖ entry), node hash = SHA-256(0x01 ‖ left ‖ right).
//! Proofs are built from *complete subtrees*: the hash of the 2^level leaves
//! starting at index·2^level. Those are what the ledger stores, so every proof
//! reads O(log n) hashes. Verification is ct-merkle's (independent code).

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// SHA-256 of nothing: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where complete subtree hashes come from (the ledger's `nodes` table, or memory).
pub trait Subtrees {
    type Error;
    /// The hash of the complete subtree of 2^`level` leaves starting at leaf `index << level`.
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

fn largest_pow2_below(n: u64) -> u64 {
    debug_assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[start..start+n]) where `start` is a multiple of the largest power of two
/// not above `n` — true of every range RFC 9162's recursion produces.
pub fn range_hash<S: Subtrees>(s: &mut S, start: u64, n: u64) -> Result<Hash, S::Error> {
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return s.subtree(level, start >> level);
    }
    let k = largest_pow2_below(n);
    let left = range_hash(s, start, k)?;
    let right = range_hash(s, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the first `size` leaves.
pub fn root<S: Subtrees>(s: &mut S, size: u64) -> Result<Hash, S::Error> {
    range_hash(s, 0, size)
}

/// RFC 9162 §2.1.3.1 PATH(m, D[n]): the inclusion proof of leaf `m` in a tree of `n`.
pub fn inclusion_proof<S: Subtrees>(s: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    path(s, m, 0, n, &mut out)?;
    Ok(out)
}

fn path<S: Subtrees>(s: &mut S, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Result<(), S::Error> {
    if n <= 1 {
        return Ok(());
    }
    let k = largest_pow2_below(n);
    if m < k {
        path(s, m, start, k, out)?;
        out.push(range_hash(s, start + k, n - k)?);
    } else {
        path(s, m - k, start + k, n - k, out)?;
        out.push(range_hash(s, start, k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1 PROOF(m, D[n]): the consistency proof from size `m` to `n`.
pub fn consistency_proof<S: Subtrees>(s: &mut S, m: u64, n: u64) -> Result<Vec<Hash>, S::Error> {
    let mut out = Vec::new();
    if m > 0 && m < n {
        subproof(s, m, 0, n, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<S: Subtrees>(s: &mut S, m: u64, start: u64, n: u64, complete: bool, out: &mut Vec<Hash>) -> Result<(), S::Error> {
    if m == n {
        if !complete {
            out.push(range_hash(s, start, n)?);
        }
        return Ok(());
    }
    let k = largest_pow2_below(n);
    if m <= k {
        subproof(s, m, start, k, complete, out)?;
        out.push(range_hash(s, start + k, n - k)?);
    } else {
        subproof(s, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(s, start, k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof with ct-merkle (not our own code).
pub fn verify_inclusion(root: &Hash, size: u64, index: u64, entry: &[u8], proof: &[Hash]) -> bool {
    let root = ct_merkle::RootHash::<Sha256>::new((*root).into(), size);
    let bytes: Vec<u8> = proof.iter().flatten().copied().collect();
    root.verify_inclusion(&entry, index, &ct_merkle::InclusionProof::from_bytes(bytes)).is_ok()
}

/// Verifies a consistency proof with ct-merkle (not our own code).
pub fn verify_consistency(old_root: &Hash, old_size: u64, new_root: &Hash, new_size: u64, proof: &[Hash]) -> bool {
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let old = ct_merkle::RootHash::<Sha256>::new((*old_root).into(), old_size);
    let new = ct_merkle::RootHash::<Sha256>::new((*new_root).into(), new_size);
    let bytes: Vec<u8> = proof.iter().flatten().copied().collect();
    match ct_merkle::ConsistencyProof::try_from_bytes(bytes) {
        Ok(p) => new.verify_consistency(&old, &p).is_ok(),
        Err(_) => false,
    }
}

/// Complete subtrees over leaf hashes held in memory (tests, `ledger verify`).
pub struct MemoryTree {
    /// levels[0] are leaf hashes; levels[l][i] covers leaves [i·2^l, (i+1)·2^l).
    pub levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree { levels: vec![Vec::new()] }
    }

    /// Appends a leaf hash, completing every subtree it closes.
    pub fn push(&mut self, leaf: Hash) {
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let parent = node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }
}

impl Default for MemoryTree {
    fn default() -> Self {
        Self::new()
    }
}

/// A subtree asked of a [`MemoryTree`] that does not hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

impl Subtrees for MemoryTree {
    type Error = OutOfRange;
    fn subtree(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.levels.get(level as usize).and_then(|l| l.get(index as usize)).copied().ok_or(OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate-transparency test leaves and their published hashes.
    fn ct_leaves() -> Vec<Vec<u8>> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|h| hex::decode(h).unwrap_or_default())
            .collect()
    }
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn tree(n: usize) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in ct_leaves().iter().take(n) {
            t.push(leaf_hash(l));
        }
        t
    }

    fn hexes(v: &[Hash]) -> Vec<String> {
        v.iter().map(hex::encode).collect()
    }

    #[test]
    fn roots_match_published_vectors() {
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut t = tree(8);
        for (i, want) in ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&mut t, i as u64 + 1).unwrap_or_default()), *want, "size {}", i + 1);
        }
    }

    #[test]
    fn inclusion_proofs_match_published_vectors_and_verify() {
        let mut t = tree(8);
        let p0 = inclusion_proof(&mut t, 0, 8).unwrap_or_default();
        assert_eq!(
            hexes(&p0),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
            ]
        );
        let p5 = inclusion_proof(&mut t, 5, 8).unwrap_or_default();
        assert_eq!(
            hexes(&p5),
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
            ]
        );
        let leaves = ct_leaves();
        // Every (index, size) pair: our proofs verify under ct-merkle; a wrong leaf does not.
        for n in 1..=8u64 {
            let r = root(&mut t, n).unwrap_or_default();
            for m in 0..n {
                let p = inclusion_proof(&mut t, m, n).unwrap_or_default();
                assert!(verify_inclusion(&r, n, m, &leaves[m as usize], &p), "m={m} n={n}");
                assert!(!verify_inclusion(&r, n, m, b"forged", &p));
            }
        }
    }

    #[test]
    fn consistency_proofs_match_published_vectors_and_verify() {
        let mut t = tree(8);
        assert_eq!(
            hexes(&consistency_proof(&mut t, 6, 8).unwrap_or_default()),
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
            ]
        );
        assert_eq!(
            hexes(&consistency_proof(&mut t, 2, 5).unwrap_or_default()),
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
            ]
        );
        for n in 1..=8u64 {
            let rn = root(&mut t, n).unwrap_or_default();
            for m in 1..=n {
                let rm = root(&mut t, m).unwrap_or_default();
                let p = consistency_proof(&mut t, m, n).unwrap_or_default();
                assert!(verify_consistency(&rm, m, &rn, n, &p), "m={m} n={n}");
                if m < n {
                    assert!(!verify_consistency(&leaf_hash(b"x"), m, &rn, n, &p), "forged old root m={m} n={n}");
                }
            }
        }
    }
}
