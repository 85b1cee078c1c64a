//! One integration test binary (keeps link time down on two cores).

mod support;

mod cli_policy;
mod fake_github;
mod hooks;
mod ledger;
mod rules;
mod signatures;
mod sync;
