//! The read side: what the ledger's projections say, read once per command
//! or request and shared by every report and page that needs it. Reports
//! take facts from here rather than each querying the ledger again.

pub mod deployments;

pub use deployments::DeploymentHistory;
