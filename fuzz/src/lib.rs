//! The fuzz targets' shared harness: the pinned test keys of `fuzz/keys/`
//! and `git_audit::fuzzing`'s entry points, one harness per thread.

use std::cell::RefCell;

use git_audit::fuzzing::Harness;

thread_local! {
    static HARNESS: RefCell<Harness> =
        RefCell::new(Harness::new(include_bytes!("../keys/alice.asc"), include_str!("../keys/allowed_signers")));
}

/// Runs target `name` on `data` (the same entry point the regression replay uses).
pub fn run(name: &str, data: &[u8]) {
    HARNESS.with(|h| {
        let known = h.borrow_mut().run(name, data);
        assert!(known, "no fuzz target `{name}`");
    });
}
