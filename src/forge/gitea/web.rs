//! Gitea's (and Forgejo's) page addresses.

/// Gitea or Forgejo.
#[derive(Debug)]
pub struct Gitea;

impl super::super::Forge for Gitea {
    fn name(&self) -> &'static str {
        "gitea"
    }

    /// A pull request's page (`ROOT/owner/name/pulls/N`).
    fn web_root(&self, page: &str, repo: &str) -> Option<String> {
        page.find(&format!("/{repo}/pulls/")).map(|i| page[..i].to_string())
    }

    fn change_url(&self, root: &str, repo: &str, number: &str) -> String {
        format!("{root}/{repo}/pulls/{number}")
    }

    fn commit_url(&self, root: &str, repo: &str, sha: &str) -> String {
        format!("{root}/{repo}/commit/{sha}")
    }
}

#[cfg(test)]
mod tests {
    use crate::forge::Web;

    #[test]
    fn pages_give_the_root_and_the_root_gives_pages() {
        let web = Web::recognise("https://codeberg.org/forgejo/forgejo/pulls/3", "forgejo/forgejo");
        assert_eq!(web.as_ref().map(|w| (w.forge.name(), w.root.as_str())), Some(("gitea", "https://codeberg.org")));
        assert_eq!(web.map(|w| w.commit("forgejo/forgejo", "abc")).as_deref(), Some("https://codeberg.org/forgejo/forgejo/commit/abc"));
    }
}
