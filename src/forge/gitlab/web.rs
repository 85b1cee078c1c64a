//! GitLab's page addresses.

/// GitLab (gitlab.com or self-managed).
#[derive(Debug)]
pub struct GitLab;

impl super::super::Forge for GitLab {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    /// A merge request's page (`ROOT/group/project/-/merge_requests/N`), or
    /// any page under the project's `/-/` (jobs, commits). GitLab also serves
    /// merge requests without the `/-/` (older `web_url`s).
    fn web_root(&self, page: &str, repo: &str) -> Option<String> {
        [format!("/{repo}/-/"), format!("/{repo}/merge_requests/")]
            .iter()
            .find_map(|m| page.find(m.as_str()).map(|i| page[..i].to_string()))
    }

    fn change_url(&self, root: &str, repo: &str, number: &str) -> String {
        format!("{root}/{repo}/-/merge_requests/{number}")
    }

    fn commit_url(&self, root: &str, repo: &str, sha: &str) -> String {
        format!("{root}/{repo}/-/commit/{sha}")
    }
}

#[cfg(test)]
mod tests {
    use crate::forge::Web;

    #[test]
    fn pages_give_the_root_and_the_root_gives_pages() {
        let web = Web::recognise("https://git.example.com/platform/infra/api/-/merge_requests/7", "platform/infra/api");
        assert_eq!(web.as_ref().map(|w| (w.forge.name(), w.root.as_str())), Some(("gitlab", "https://git.example.com")));
        assert_eq!(
            web.map(|w| w.change("platform/infra/api", "9")).as_deref(),
            Some("https://git.example.com/platform/infra/api/-/merge_requests/9")
        );
        let old = Web::recognise("http://gitlab.example.com/my-group/my-project/merge_requests/1", "my-group/my-project");
        assert_eq!(
            old.map(|w| w.commit("my-group/my-project", "abc")).as_deref(),
            Some("http://gitlab.example.com/my-group/my-project/-/commit/abc")
        );
        assert!(Web::recognise("https://gitlab.com/other/project/-/merge_requests/1", "my-group/my-project").is_none());
    }
}
