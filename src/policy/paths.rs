//! Path rules: who may change which files. `[[paths]]` entries name a
//! gitignore-style pattern (repository-relative; the first entry that matches
//! a file wins), the identities one of whom must sign a commit that changes a
//! matching file, and the forge logins or teams one of whom must approve a
//! pull request that does. `[codeowners]` adds GitHub's CODEOWNERS (where the
//! *last* matching line wins, as on GitHub).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::schema::Mode;
use super::Principal;

/// A pattern as `.gitignore` (and CODEOWNERS) write them, compiled.
#[derive(Debug, Clone)]
pub struct PathPattern {
    pub text: String,
    set: GlobSet,
    /// The same globs, case-insensitive and over NFC text: what a case-folding,
    /// normalising checkout (macOS, Windows) takes for the same path.
    folded: GlobSet,
    /// For an anchored pattern, its leading directories without wildcards
    /// (`.github/workflows` of `.github/workflows/**`): a change to one of
    /// them *as a path* — a symlink or submodule put where the directory
    /// is, or would be — changes what the pattern protects.
    prefix: Option<String>,
}

impl PathPattern {
    /// Compiles `pattern`:
    /// - `/` at the start, or in the middle, anchors it at the repository root;
    ///   otherwise it matches at any depth (`*.tf`, `Dockerfile`);
    /// - `/` at the end matches a directory only, and everything under it;
    /// - a name matches the file, or the directory and everything under it;
    /// - `*` and `?` stay within one path component, `**` spans any number;
    /// - negation (`!`) is refused: a rule that protects must not be unsaid
    ///   by a later line (CODEOWNERS has no negation either).
    pub fn new(pattern: &str) -> Result<PathPattern, String> {
        let text = pattern.trim();
        if text.is_empty() {
            return Err("the pattern is empty".into());
        }
        if text.starts_with('!') {
            return Err("negated patterns (`!…`) are not supported: list what is protected, not what is not".into());
        }
        if text.contains('\0') {
            return Err("the pattern holds a NUL".into());
        }
        let dir_only = text.ends_with('/');
        let body = text.trim_end_matches('/');
        let anchored = body.starts_with('/') || body.trim_start_matches('/').contains('/');
        let body = body.trim_start_matches('/');
        if body.is_empty() {
            return Err("the pattern names the whole repository; use `**` for every file".into());
        }
        let base = if anchored || body.starts_with("**") { body.to_string() } else { format!("**/{body}") };
        let mut globs = vec![format!("{base}/**")];
        if !dir_only {
            globs.push(base);
        }
        let build = |fold: bool| -> Result<GlobSet, String> {
            let mut set = GlobSetBuilder::new();
            for g in &globs {
                let text = if fold { nfc(g) } else { g.clone() };
                let glob = GlobBuilder::new(&text)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .case_insensitive(fold)
                    .build()
                    .map_err(|e| format!("bad pattern: {}", e.kind()))?;
                set.add(glob);
            }
            set.build().map_err(|e| format!("bad pattern: {}", e.kind()))
        };
        let (set, folded) = (build(false)?, build(true)?);
        let literal: Vec<&str> = body.split('/').take_while(|c| !c.contains(['*', '?', '[', '{', '\\'])).collect();
        let prefix = (anchored && !literal.is_empty()).then(|| literal.join("/"));
        Ok(PathPattern { text: text.to_string(), set, folded, prefix })
    }

    /// True when the repository-relative `path` (`a/b.txt`) matches, or is
    /// one of the directories an anchored pattern's files live under.
    pub fn matches(&self, path: &str) -> bool {
        self.set.is_match(path) || self.prefix.as_deref().is_some_and(|p| p == path || p.starts_with(&format!("{path}/")))
    }

    /// Like [`PathPattern::matches`], as a case-insensitive, Unicode-normalising
    /// checkout sees paths: `dockerfile` beside a protected `Dockerfile` lands on
    /// the same file there, so a change to it is a change to the protected one.
    pub fn matches_as_checked_out(&self, path: &str) -> bool {
        if self.matches(path) {
            return true;
        }
        let path = nfc(path);
        let fold = |s: &str| nfc(s).to_lowercase();
        self.folded.is_match(&path)
            || self.prefix.as_deref().is_some_and(|p| fold(p) == fold(&path) || fold(p).starts_with(&format!("{}/", fold(&path))))
    }
}

/// `text` in Unicode normalisation form C.
fn nfc(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfc().collect()
}

/// One `[[paths]]` entry, checked.
#[derive(Debug, Clone)]
pub struct PathRule {
    pub pattern: PathPattern,
    /// Identities (OpenPGP user id email, SSH principal, globs as elsewhere,
    /// or `role:NAME` for a `[roles]` entry) one of whom must sign.
    pub signers: Vec<String>,
    /// Forge logins or teams one of whom must approve a pull request.
    pub approvers: Vec<Principal>,
    pub mode: Option<Mode>,
    /// `file:line:col` of the entry, for explanations.
    pub origin: String,
}

/// The repository's CODEOWNERS, as GitHub reads it.
#[derive(Debug, Clone, Default)]
pub struct CodeOwners {
    /// Where it was read from (`.github/CODEOWNERS`).
    pub path: String,
    pub rules: Vec<CodeOwnersRule>,
    /// Lines GitHub would skip (an invalid pattern), with why.
    pub errors: Vec<(usize, String)>,
    /// GitLab's dialect (`.gitlab/CODEOWNERS`, or a file with `[Section]`
    /// headers): `@a/b` is the group `a/b`, not a GitHub team.
    pub gitlab: bool,
}

#[derive(Debug, Clone)]
pub struct CodeOwnersRule {
    pub line: usize,
    pub pattern: PathPattern,
    /// `@login`, `@org/team` (as principals) and email addresses (as logins
    /// they are not: kept as written).
    pub owners: Vec<String>,
    /// GitLab: the section the line is in (`None`: before any section header).
    pub section: Option<String>,
    /// GitLab: the section is optional (`^[Section]`): its owners' approval is not required.
    pub optional: bool,
}

/// Where GitHub looks for CODEOWNERS, in its order.
/// (GitLab reads `CODEOWNERS`, `docs/` and `.gitlab/`: a repository keeps one.)
pub const CODEOWNERS_LOCATIONS: [&str; 4] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"];

impl CodeOwners {
    /// Parses CODEOWNERS text: `pattern owner…` per line, `#` comments,
    /// `\#` for a pattern that starts with `#`.
    ///
    /// GitLab's sections too: `[Section]`, `^[Optional section]` and
    /// `[Section][2]` headers, each with optional default owners that its
    /// lines without owners take.
    pub fn parse(path: &str, text: &str) -> CodeOwners {
        let mut out = CodeOwners { path: path.to_string(), gitlab: path.starts_with(".gitlab/"), ..CodeOwners::default() };
        let mut section: Option<(String, bool, Vec<String>)> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // An unescaped `#` starts a comment.
            let line = match line.find(" #") {
                Some(at) => line[..at].trim_end(),
                None => line,
            };
            if let Some(header) = section_header(line) {
                out.gitlab = true;
                section = Some(header);
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(pattern) = words.next() else { continue };
            let pattern = pattern.replace("\\#", "#");
            let mut owners: Vec<String> = words.map(str::to_string).collect();
            if owners.is_empty() {
                owners = section.as_ref().map(|(_, _, d)| d.clone()).unwrap_or_default();
            }
            let (name, optional) = match &section {
                Some((n, o, _)) => (Some(n.clone()), *o),
                None => (None, false),
            };
            match PathPattern::new(&pattern) {
                Ok(p) => out.rules.push(CodeOwnersRule { line: i + 1, pattern: p, owners, section: name, optional }),
                Err(e) => out.errors.push((i + 1, e)),
            }
        }
        out
    }

    /// The owners whose approval `path` needs: the last matching line of each
    /// required section (GitHub's files have one section: the whole file).
    pub fn owners_each(&self, path: &str) -> Vec<&CodeOwnersRule> {
        let mut out: Vec<&CodeOwnersRule> = Vec::new();
        for r in self.rules.iter().rev().filter(|r| r.pattern.matches(path)) {
            if !out.iter().any(|o| o.section == r.section) {
                out.push(r);
            }
        }
        out.retain(|r| !r.optional);
        out.reverse();
        out
    }

    /// The repository's CODEOWNERS where GitHub looks for it, from the work
    /// tree when there is one, else from HEAD (a bare server repository).
    pub fn read(repo: Option<&crate::git::Repo>) -> Option<CodeOwners> {
        let repo = repo?;
        if repo.workdir().is_none() {
            // A bare repository: HEAD names a commit only once resolved.
            return CodeOwners::read_at(repo, &repo.resolve_commit("HEAD").ok()?);
        }
        for loc in CODEOWNERS_LOCATIONS {
            let text = match repo.workdir().map(|w| w.join(loc)).filter(|p| p.is_file()) {
                Some(file) => std::fs::read(file).ok(),
                None => None,
            };
            if let Some(text) = text {
                return Some(CodeOwners::parse(loc, &String::from_utf8_lossy(&text)));
            }
        }
        None
    }

    /// CODEOWNERS as it was in `commit` (a full id), where GitHub looks for it.
    pub fn read_at(repo: &crate::git::Repo, commit: &str) -> Option<CodeOwners> {
        CODEOWNERS_LOCATIONS.iter().find_map(|loc| {
            let blob = repo.path_blob(commit, loc)?;
            let (_, text) = repo.read_object(&blob).ok()?;
            Some(CodeOwners::parse(loc, &String::from_utf8_lossy(&text)))
        })
    }

    /// An owner as a principal, in this file's dialect.
    pub fn principal(&self, owner: &str) -> Principal {
        match owner.strip_prefix('@') {
            Some(group) if self.gitlab && group.contains('/') => {
                Principal::parse(&format!("group:{group}")).unwrap_or_else(|| Principal::Login(owner.to_string()))
            }
            _ => owner_principal(owner),
        }
    }

    /// Teams (`org`, `slug`) its lines name as owners (GitLab groups: empty `org`).
    pub fn teams(&self) -> Vec<(String, String)> {
        self.rules
            .iter()
            .flat_map(|r| &r.owners)
            .filter_map(|o| match self.principal(o) {
                Principal::Team { org, slug } => Some((org, slug)),
                Principal::Login(_) => None,
            })
            .collect()
    }

    /// The owners of `path`: the last matching line's (none when it lists none).
    pub fn owners(&self, path: &str) -> Option<&CodeOwnersRule> {
        self.rules.iter().rev().find(|r| r.pattern.matches(path))
    }
}

/// A GitLab section header: `[Name]`, `^[Name]` (optional), `[Name][N]`,
/// each optionally followed by default owners.
fn section_header(line: &str) -> Option<(String, bool, Vec<String>)> {
    let (optional, rest) = match line.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, line),
    };
    let rest = rest.strip_prefix('[')?;
    let (name, after) = rest.split_once(']')?;
    if name.trim().is_empty() {
        return None;
    }
    // `[Name][2]`: the approval count (git-audit asks for one owner's approval).
    let after = match after.strip_prefix('[') {
        Some(a) => a.split_once(']').filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))?.1,
        None => after,
    };
    // A path pattern that merely starts with `[` (a glob class) has no space after `]`.
    if !after.is_empty() && !after.starts_with(char::is_whitespace) {
        return None;
    }
    Some((name.trim().to_string(), optional, after.split_whitespace().map(str::to_string).collect()))
}

/// An owner as written in CODEOWNERS, as a principal: `@org/team` is a team,
/// `@login` a login; an email address stays itself (GitHub maps it to the
/// account that verified it, which the ledger does not record).
pub fn owner_principal(owner: &str) -> Principal {
    match owner.strip_prefix('@') {
        Some(rest) if rest.contains('/') => {
            Principal::parse(&format!("team:{rest}")).unwrap_or_else(|| Principal::Login(owner.to_string()))
        }
        Some(login) => Principal::Login(login.to_string()),
        None => Principal::Login(owner.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_sections_each_need_their_owners_and_optional_ones_do_not() {
        let c = CodeOwners::parse(
            "CODEOWNERS",
            "* @acme/everyone\n[Backend][2] @acme/platform/backend\nsrc/\n*.rs @rustacean\n^[Docs] @writer\nsrc/\n[Security]\nsrc/auth/ @acme/security @sam\n",
        );
        assert!(c.gitlab);
        let each = |p: &str| c.owners_each(p).iter().map(|r| r.owners.join(" ")).collect::<Vec<_>>();
        assert_eq!(each("src/auth/login.rs"), vec!["@acme/everyone", "@rustacean", "@acme/security @sam"]);
        // A line without owners takes its section's defaults; optional sections are not required.
        assert_eq!(each("src/x.py"), vec!["@acme/everyone", "@acme/platform/backend"]);
        assert_eq!(c.principal("@acme/platform/backend"), Principal::Team { org: String::new(), slug: "acme/platform/backend".into() });
        assert!(c.teams().contains(&(String::new(), "acme/security".into())));
        // GitHub's files keep GitHub's meaning.
        let g = CodeOwners::parse(".github/CODEOWNERS", "* @acme/sre\n");
        assert_eq!(g.principal("@acme/sre"), Principal::Team { org: "acme".into(), slug: "sre".into() });
    }

    fn m(p: &str, path: &str) -> bool {
        PathPattern::new(p).map(|p| p.matches(path)).unwrap_or(false)
    }

    #[test]
    fn patterns_match_as_gitignore_does() {
        assert!(m(".github/workflows/**", ".github/workflows/ci.yml"));
        assert!(m(".github/workflows/**", ".github/workflows/sub/x.yml"));
        assert!(!m(".github/workflows/**", "src/.github/workflows/ci.yml"));
        assert!(m(".github/workflows/", ".github/workflows/ci.yml"));
        // A file, symlink or submodule where the protected directory is: protected too.
        assert!(m(".github/workflows/", ".github/workflows"));
        assert!(m("*.tf", "infra/prod/main.tf"));
        assert!(m("*.tf", "main.tf"));
        assert!(!m("*.tf", "main.tfvars"));
        assert!(m("/Dockerfile", "Dockerfile"));
        assert!(!m("/Dockerfile", "svc/Dockerfile"));
        assert!(m("Dockerfile", "svc/Dockerfile"));
        assert!(m("deploy", "deploy/k8s/app.yaml"));
        assert!(m("docs/*.md", "docs/a.md"));
        assert!(!m("docs/*.md", "docs/sub/a.md"));
        assert!(m("**/secrets/**", "a/b/secrets/key"));
        // The directories a protected tree lives under, as paths: a symlink
        // or submodule put there would change what the pattern protects.
        assert!(m(".github/workflows/**", ".github/workflows"));
        assert!(m(".github/workflows/**", ".github"));
        assert!(m("/deploy/", "deploy"));
        assert!(!m(".github/workflows/**", ".githubx"));
        assert!(!m("*.tf", "infra"));
        assert!(PathPattern::new("!keep.txt").is_err());
        assert!(PathPattern::new("").is_err());
        assert!(PathPattern::new("a[").is_err());
    }

    #[test]
    fn codeowners_last_match_wins() {
        let c = CodeOwners::parse(
            ".github/CODEOWNERS",
            "# owners\n*       @acme/everyone\n*.tf    @acme/sre  # infra\n/deploy/ @bob alice@example.com\n\\#odd @carol\ndocs/ \n[bad @x\n",
        );
        assert_eq!(c.owners("main.tf").map(|r| r.owners.clone()), Some(vec!["@acme/sre".to_string()]));
        assert_eq!(c.owners("deploy/app.yaml").map(|r| r.line), Some(4));
        assert_eq!(c.owners("README.md").map(|r| r.owners.clone()), Some(vec!["@acme/everyone".to_string()]));
        // A line with no owners: the path has none (GitHub's rule).
        assert_eq!(c.owners("docs/a.md").map(|r| r.owners.len()), Some(0));
        assert_eq!(c.owners("#odd").map(|r| r.owners.clone()), Some(vec!["@carol".to_string()]));
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        assert_eq!(owner_principal("@acme/sre"), Principal::Team { org: "acme".into(), slug: "sre".into() });
        assert_eq!(owner_principal("@bob"), Principal::Login("bob".into()));
    }
}
