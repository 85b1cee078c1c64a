//! Gitea and Forgejo sync (REST API v1): pull requests with their commits,
//! reviews (`official`, `stale` and `dismissed` as Gitea marks them) and
//! changed files, and the default branch's commits linked to them. Gitea has
//! no deployment environments: deployments come from `git-audit record
//! deployment` in the CI.

pub mod sync;
pub mod web;

pub use sync::{sync_repo, sync_teams};
pub use web::Gitea;

/// How Gitea wants to be spoken to: `Authorization: token …` (an access
/// token with `read:repository`; `read:organization` for team checks).
pub const DIALECT: crate::forge::rest::Dialect = crate::forge::rest::Dialect {
    forge: "Gitea",
    auth_header: "authorization",
    auth_prefix: "token ",
    credentials_hint: "check GITEA_TOKEN (expired or revoked?): it needs the read:repository scope",
};
