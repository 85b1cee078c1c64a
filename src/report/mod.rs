//! Reports: answers to an auditor's or a maintainer's questions, read from the
//! ledger's projections (and from git for commit ancestry). Reports never
//! change anything.

pub mod anomaly;
pub mod chart;
pub mod compliance;
pub mod deployments;
pub mod digest;
pub mod dora;
pub mod pushes;
pub mod render;
pub mod sources;
pub mod trace;

use crate::time::{TimeError, Timestamp};

pub use render::{Document, ReportFormat, Section};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error("{0}")]
    Input(String),
    /// What was asked for does not exist (an unknown commit).
    #[error("{0}")]
    NotFound(String),
}

/// A window as people read it: "since X" when it is open-ended (never the
/// far-future end it is stored as), else "from X to Y".
pub fn window_text(since: &Timestamp, until: &Timestamp) -> String {
    if until.is_open_end() {
        format!("since {since}")
    } else {
        format!("from {since} to {until}")
    }
}

/// True when `time` (any RFC 3339 text: an entry's, or GitHub's) lies in
/// `[since, until)`. Unparsable text lies nowhere.
pub(crate) fn within(time: &str, since: &Timestamp, until: &Timestamp) -> bool {
    Timestamp::parse(time).is_ok_and(|t| *since <= t && t < *until)
}
