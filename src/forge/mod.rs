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

/// The workflow run id in an Actions URL (`…/actions/runs/<id>…`): GitHub's,
/// and Gitea's and Forgejo's, which copy its shape.
pub fn run_id(url: &str) -> Option<u64> {
    let rest = &url[url.find("/actions/runs/")? + "/actions/runs/".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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
