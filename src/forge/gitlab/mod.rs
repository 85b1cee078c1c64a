//! GitLab sync (REST API v4): merge requests with their commits, approvals
//! (as they stood at merge, approvals reset by a push told apart), changed
//! files, deployments with their statuses and approvals, protected
//! environments, the default branch's commits, and group members — appended
//! to the ledger in the shared vocabulary, so every judgement reads GitLab's
//! facts the way it reads GitHub's.

pub mod payload;
pub mod sync;
pub mod web;

pub use sync::{sync_groups, sync_project};
pub use web::GitLab;

/// How GitLab wants to be spoken to: `PRIVATE-TOKEN` (a personal, group or
/// project access token with `read_api`).
pub const DIALECT: crate::forge::rest::Dialect = crate::forge::rest::Dialect {
    forge: "GitLab",
    auth_header: "private-token",
    auth_prefix: "",
    credentials_hint: "check GITLAB_TOKEN (expired or revoked?): it needs the read_api scope, and Reporter access to the project",
};
