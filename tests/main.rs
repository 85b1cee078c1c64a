//! One integration test binary (keeps link time down on two cores).

mod support;

mod attest;
mod cli_policy;
mod cli_surface;
mod compat;
mod contrib;
mod everyday;
mod fake_forges;
mod fake_github;
mod faults;
mod forges;
mod fuzz_regressions;
mod hook_integrity;
mod hooks;
mod ledger;
mod notify;
mod paths;
mod postgres;
mod properties;
mod readme;
mod real_world;
mod record;
mod reports;
mod review;
mod rules;
mod serve;
mod signatures;
mod slsa;
mod snapshots;
mod sync;
mod writers;

/// Commits listed per ref in a refusal before the rest is summarised.
fn hook_limit() -> usize {
    git_audit::hook::message::LIST_LIMIT
}
