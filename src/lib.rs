//! git-audit: makes every change to a codebase provable.
//!
//! The library does the work; the `git-audit` binary only parses arguments and
//! maps outcomes to exit codes. Flow: a [`policy`] is loaded, [`git`] selects
//! commits, [`signature`] verifies them, [`check`] turns the results into findings.

pub mod attest;
pub mod check;
pub mod cli;
pub mod deploy;
pub mod event;
pub mod evidence;
pub mod facts;
pub mod forge;
#[doc(hidden)]
pub mod fuzzing;
pub mod git;
pub mod hook;
pub mod install;
pub mod keys;
pub mod ledger;
pub mod net;
pub mod notify;
pub mod policy;
pub mod report;
pub mod rule;
pub mod signature;
pub mod slsa;
pub mod text;
pub mod time;
pub mod web;
