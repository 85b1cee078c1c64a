//! GitHub sync: pull requests (with commits and reviews), deployments and their
//! statuses, links from landed commits to pull requests, and Actions
//! deployment approvals — appended to the ledger, linked by commit id.

pub mod client;
pub mod payload;
pub mod sync;
pub mod web;

pub use client::{Auth, Client, ClientError};
pub use payload::GithubPayload;
pub use sync::{sync_repo, sync_teams, PullsApi, RepoSummary, SyncError};
pub use web::GitHub;
