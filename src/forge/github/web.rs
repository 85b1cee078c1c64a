//! GitHub's page addresses.

/// GitHub (github.com or an Enterprise host).
#[derive(Debug)]
pub struct GitHub;

impl super::super::Forge for GitHub {
    fn name(&self) -> &'static str {
        "github"
    }

    /// A pull request's page (`ROOT/owner/name/pull/N`) or an Actions run's
    /// (`ROOT/owner/name/actions/runs/N`).
    fn web_root(&self, page: &str, repo: &str) -> Option<String> {
        ["pull", "actions/runs"].iter().find_map(|kind| page.find(&format!("/{repo}/{kind}/")).map(|i| page[..i].to_string()))
    }

    fn change_url(&self, root: &str, repo: &str, number: &str) -> String {
        format!("{root}/{repo}/pull/{number}")
    }

    fn commit_url(&self, root: &str, repo: &str, sha: &str) -> String {
        format!("{root}/{repo}/commit/{sha}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::Web;

    #[test]
    fn pages_give_the_root_and_the_root_gives_pages() {
        let web = Web::recognise("https://ghe.example.com/acme/api/pull/7", "acme/api");
        assert_eq!(web.as_ref().map(|w| w.root.as_str()), Some("https://ghe.example.com"));
        assert_eq!(web.as_ref().map(|w| w.change("acme/api", "9")).as_deref(), Some("https://ghe.example.com/acme/api/pull/9"));
        let run = Web::recognise("https://github.com/acme/api/actions/runs/30433642", "acme/api");
        assert_eq!(run.map(|w| w.commit("acme/api", "abc")).as_deref(), Some("https://github.com/acme/api/commit/abc"));
        // Another repository's page, or a page of no known shape, says nothing.
        assert!(Web::recognise("https://github.com/acme/web/pull/7", "acme/api").is_none());
        assert!(Web::recognise("https://github.com/acme/api/wiki/x", "acme/api").is_none());
        let _ = GitHub;
    }
}
