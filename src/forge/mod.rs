//! Forges: where pull requests, reviews and deployments come from. Async
//! (tokio) lives here and in the `sync` command only.

pub mod github;
