//! Forges: where pull requests, reviews and deployments come from. Async
//! (tokio) lives here and in the `sync` command only.
//!
//! What the rest of git-audit needs from a forge is the [`Forge`] trait (its
//! web pages' shapes) and the vocabulary in [`crate::event::synced`], which each
//! forge's mapping fills from its own bodies (`github/payload.rs`). Nothing
//! outside a forge's folder spells its states, URL shapes or field names.

pub mod batch;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod rest;
pub mod state;
pub mod worker;

/// One forge's shapes, as the read side needs them.
pub trait Forge: Sync + std::fmt::Debug {
    /// Its name (`github`).
    fn name(&self) -> &'static str;
    /// The web root of `repo` (`https://github.com`, an Enterprise host), from
    /// the address of one of its pages a sync recorded; `None` when the page is
    /// not one of this forge's.
    fn web_root(&self, page: &str, repo: &str) -> Option<String>;
    /// The page of change (pull or merge request) `number`.
    fn change_url(&self, root: &str, repo: &str, number: &str) -> String;
    /// The page of commit `sha`.
    fn commit_url(&self, root: &str, repo: &str, sha: &str) -> String;
}

/// Every forge this release knows.
pub const FORGES: &[&dyn Forge] = &[&github::GitHub, &gitlab::GitLab, &gitea::Gitea];

/// A repository's place on its forge.
#[derive(Debug, Clone)]
pub struct Web {
    pub forge: &'static dyn Forge,
    pub root: String,
}

impl Web {
    /// The forge and root of `repo`, from one of its recorded pages.
    pub fn recognise(page: &str, repo: &str) -> Option<Web> {
        FORGES.iter().find_map(|f| f.web_root(page, repo).map(|root| Web { forge: *f, root }))
    }

    pub fn change(&self, repo: &str, number: &str) -> String {
        self.forge.change_url(&self.root, repo, number)
    }

    pub fn commit(&self, repo: &str, sha: &str) -> String {
        self.forge.commit_url(&self.root, repo, sha)
    }
}
