//! git access through git2: opening a repository the way git's environment
//! says, selecting commits with git's range syntax, reading raw commit objects.

pub mod commit;
pub mod exec;

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, RevparseMode, Sort};

pub use commit::{header_time, Ident, ParsedCommit};

/// Errors from git access; each names the spec, commit or path involved.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not inside a git repository (searched from {path}): {}", .source.message())]
    NoRepository { path: PathBuf, source: git2::Error },
    #[error("the repository at {path} is owned by another user, so git refuses it (\"detected dubious ownership\"): {}\nHint: run git-audit as the repository's owner (e.g. `User=git` in a systemd unit, `sudo -u git` in cron), or trust it: `git config --global --add safe.directory {path}`", .source.message())]
    DubiousOwnership { path: PathBuf, source: git2::Error },
    #[error("cannot resolve `{spec}`: {}\nHint: use a branch, tag, commit id or a range such as `origin/main..HEAD`", .source.message())]
    BadSpec { spec: String, source: git2::Error },
    #[error("`{spec}` names a {kind}, not a commit")]
    NotACommit { spec: String, kind: String },
    #[error("cannot read commit {id}: {}", .source.message())]
    Read { id: String, source: git2::Error },
    #[error("walking history failed: {}", .0.message())]
    Walk(git2::Error),
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
}

/// One ref update: a ref moving from `old` to `new` (as hooks see pushes).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefUpdate {
    #[serde(rename = "ref")]
    pub refname: String,
    pub old: String,
    pub new: String,
}

/// An object id shortened for people (its first 10 characters).
pub fn short_id(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

/// All zeros, in SHA-1 (40) or SHA-256 (64) repositories: "no object".
pub fn is_zero(id: &str) -> bool {
    (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b == b'0')
}

impl RefUpdate {
    pub fn is_create(&self) -> bool {
        is_zero(&self.old)
    }
    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }
}

/// A repository, read through git2 or — for SHA-256 repositories, which
/// libgit2 cannot open — through the `git` command.
pub enum Repo {
    Git2(Repository),
    Exec(exec::ExecRepo),
}

/// Why a repository did not open: git's ownership check (named as git names
/// it, with git's fix), or no repository at all.
fn not_opened(searched: PathBuf, source: git2::Error) -> GitError {
    if source.code() == git2::ErrorCode::Owner {
        // libgit2 says "repository path '/srv/git/app.git/' is not owned by current user".
        let path = source.message().split('\'').nth(1).map(|p| PathBuf::from(p.trim_end_matches('/'))).unwrap_or(searched);
        return GitError::DubiousOwnership { path, source };
    }
    GitError::NoRepository { path: searched, source }
}

impl Repo {
    /// Opens the repository git's environment names (`GIT_DIR`, quarantine
    /// object directories …), discovering it from the current directory otherwise.
    pub fn open_from_env() -> Result<Repo, GitError> {
        match Repository::open_from_env() {
            Ok(r) => Ok(Repo::Git2(r)),
            Err(e) if e.message().contains("object format") => Ok(Repo::Exec(exec::ExecRepo::discover(None)?)),
            Err(source) => Err(not_opened(std::env::current_dir().unwrap_or_default(), source)),
        }
    }

    /// Opens the repository at or above `path` (a work tree or a bare repository).
    pub fn discover(path: &Path) -> Result<Repo, GitError> {
        match Repository::discover(path) {
            Ok(r) => Ok(Repo::Git2(r)),
            Err(e) if e.message().contains("object format") => Ok(Repo::Exec(exec::ExecRepo::discover(Some(path))?)),
            Err(source) => Err(not_opened(path.to_path_buf(), source)),
        }
    }

    /// Sets a config value in the repository's own config (`git config key value`).
    pub fn set_config(&self, key: &str, value: &str) -> Result<(), GitError> {
        match self {
            Repo::Git2(r) => r.config().and_then(|mut c| c.set_str(key, value)).map_err(GitError::Walk),
            Repo::Exec(c) => c.set_config(key, value),
        }
    }

    /// Another handle on the same repository, for a worker thread.
    pub fn reopen(&self) -> Result<Repo, GitError> {
        match self {
            Repo::Git2(r) => Ok(Repo::Git2(reopen(r.path())?)),
            Repo::Exec(c) => Ok(Repo::Exec(c.clone())),
        }
    }

    pub fn git2(&self) -> Option<&Repository> {
        match self {
            Repo::Git2(r) => Some(r),
            Repo::Exec(_) => None,
        }
    }

    pub fn git_dir(&self) -> PathBuf {
        match self {
            Repo::Git2(r) => r.path().to_path_buf(),
            Repo::Exec(c) => c.git_dir.clone(),
        }
    }

    pub fn workdir(&self) -> Option<PathBuf> {
        match self {
            Repo::Git2(r) => r.workdir().map(Path::to_path_buf),
            Repo::Exec(c) => c.workdir.clone(),
        }
    }

    /// A path-valued git config entry (e.g. `audit.policy`).
    pub fn config_path(&self, key: &str) -> Option<PathBuf> {
        match self {
            Repo::Git2(r) => r.config().ok()?.get_path(key).ok(),
            Repo::Exec(c) => c.config(key, true).map(PathBuf::from),
        }
    }

    /// `gpgsig` or `gpgsig-sha256`, by the repository's object format.
    pub fn signature_header(&self) -> &'static str {
        match self {
            Repo::Git2(r) => signature_header(r),
            Repo::Exec(c) if c.object_format == "sha256" => commit::SIG_HEADER_SHA256,
            Repo::Exec(_) => commit::SIG_HEADER_SHA1,
        }
    }

    /// Commit ids (hex) selected by git range specs, minus history reachable from `hide`.
    pub fn select(&self, specs: &[String], hide: &[String]) -> Result<Vec<String>, GitError> {
        match self {
            Repo::Git2(r) => {
                let walk = || -> Result<Vec<String>, GitError> {
                    let hide: Vec<Oid> = hide.iter().map(|h| peel(r, h)).collect::<Result<_, _>>()?;
                    Ok(select_commits(r, specs, &hide)?.into_iter().map(|o| o.to_string()).collect())
                };
                walk().or_else(|e| as_git_sees_it(r).select(specs, hide).map_err(|_| e))
            }
            Repo::Exec(c) => c.select(specs, hide),
        }
    }

    /// The commit id a name resolves to.
    pub fn resolve_commit(&self, spec: &str) -> Result<String, GitError> {
        match self {
            Repo::Git2(r) => peel(r, spec).map(|o| o.to_string()).or_else(|e| as_git_sees_it(r).resolve_commit(spec).map_err(|_| e)),
            Repo::Exec(c) => c.resolve_commit(spec),
        }
    }

    /// See [`default_specs`].
    pub fn default_specs(&self) -> Vec<String> {
        match self {
            Repo::Git2(r) => default_specs(r),
            Repo::Exec(c) => match c.upstream() {
                Some(u) => vec![format!("{u}..HEAD")],
                None => vec!["HEAD".into()],
            },
        }
    }

    /// Every ref and the object it points at (`refs/audit/*` included).
    /// The ref a push to `refname` would change: `refname` itself, or the ref
    /// its chain of symbolic refs ends at (`refs/heads/master` → `refs/heads/main`).
    pub fn symref_target(&self, refname: &str) -> String {
        let mut name = refname.to_string();
        for _ in 0..5 {
            let next = match self {
                Repo::Git2(r) => r.find_reference(&name).ok().and_then(|x| x.symbolic_target().map(str::to_string)),
                Repo::Exec(c) => c.symbolic_target(&name),
            };
            match next {
                Some(n) if n != name => name = n,
                _ => break,
            }
        }
        name
    }

    pub fn refs(&self) -> Result<Vec<(String, String)>, GitError> {
        match self {
            Repo::Git2(r) => {
                let mut out = Vec::new();
                for reference in r.references().map_err(GitError::Walk)?.flatten() {
                    if let (Some(name), Some(target)) = (reference.name(), reference.resolve().ok().and_then(|x| x.target())) {
                        out.push((name.to_string(), target.to_string()));
                    }
                }
                Ok(out)
            }
            Repo::Exec(c) => c.refs(),
        }
    }

    /// True when `ancestor` is reachable from `descendant` (or equal to it).
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        if ancestor == descendant {
            return Ok(true);
        }
        match self {
            Repo::Git2(r) => {
                let a = Oid::from_str(ancestor).map_err(|source| GitError::Read { id: ancestor.into(), source })?;
                let d = Oid::from_str(descendant).map_err(|source| GitError::Read { id: descendant.into(), source })?;
                r.graph_descendant_of(d, a)
                    .map_err(GitError::Walk)
                    .or_else(|e| as_git_sees_it(r).is_ancestor(ancestor, descendant).map_err(|_| e))
            }
            Repo::Exec(c) => c.is_ancestor(ancestor, descendant),
        }
    }

    /// The raw bytes and type of any object.
    pub fn read_object(&self, id: &str) -> Result<(String, Vec<u8>), GitError> {
        match self {
            Repo::Git2(r) => {
                let oid = Oid::from_str(id).map_err(|source| GitError::Read { id: id.into(), source })?;
                let odb = r.odb().map_err(GitError::Walk)?;
                let obj = odb.read(oid).map_err(|source| GitError::Read { id: id.into(), source })?;
                Ok((obj.kind().str().to_string(), obj.data().to_vec()))
            }
            Repo::Exec(c) => c.reader()?.read(id),
        }
    }

    /// The blob id at `path` in `commit`'s tree, if there is a file there.
    pub fn path_blob(&self, commit: &str, path: &str) -> Option<String> {
        match self {
            Repo::Git2(r) => match r.find_commit(Oid::from_str(commit).ok()?) {
                Ok(c) => {
                    let entry = c.tree().ok()?.get_path(Path::new(path)).ok()?;
                    (entry.kind() == Some(git2::ObjectType::Blob)).then(|| entry.id().to_string())
                }
                Err(_) => as_git_sees_it(r).path_blob(commit, path),
            },
            Repo::Exec(c) => c.path_blob(commit, path),
        }
    }

    /// The id of whatever `commit`'s tree holds at `path` (a blob, a tree, a
    /// link), if anything: equal ids mean equal content, for files and folders alike.
    pub fn path_entry(&self, commit: &str, path: &str) -> Option<String> {
        let path = path.trim_end_matches('/');
        match self {
            Repo::Git2(r) => match r.find_commit(Oid::from_str(commit).ok()?) {
                Ok(c) => c.tree().ok()?.get_path(Path::new(path)).ok().map(|e| e.id().to_string()),
                Err(_) => as_git_sees_it(r).path_entry(commit, path),
            },
            Repo::Exec(c) => c.path_entry(commit, path),
        }
    }

    /// Paths `commit` adds, modifies or deletes against any of its parents
    /// (all of its files for a root commit; both paths of a rename), sorted,
    /// once each. Parents are the commit's own (`parent` lines after `tree`).
    pub fn changed_paths(&self, commit: &str) -> Result<Vec<String>, GitError> {
        match self {
            Repo::Git2(r) => {
                let bad = |source| GitError::Read { id: commit.into(), source };
                let c = r.find_commit(Oid::from_str(commit).map_err(bad)?).map_err(bad)?;
                let tree = c.tree().map_err(bad)?;
                let mut opts = git2::DiffOptions::new();
                opts.ignore_submodules(false).include_typechange(true);
                let parents: Vec<Option<git2::Tree<'_>>> =
                    if c.parent_count() == 0 { vec![None] } else { c.parents().map(|p| p.tree().ok()).collect() };
                let mut paths = Vec::new();
                for parent in &parents {
                    let diff = r.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut opts)).map_err(bad)?;
                    for d in diff.deltas() {
                        for f in [d.old_file(), d.new_file()] {
                            if let Some(p) = f.path().and_then(|p| p.to_str()) {
                                paths.push(p.to_string());
                            }
                        }
                    }
                }
                paths.sort();
                paths.dedup();
                Ok(paths)
            }
            Repo::Exec(c) => c.changed_paths(commit),
        }
    }

    /// Files under `path` (a file or a directory) in `commit`'s tree: (path, blob id).
    pub fn tree_files(&self, commit: &str, path: &str) -> Result<Vec<(String, String)>, GitError> {
        match self {
            Repo::Git2(r) => {
                let bad = |source| GitError::Read { id: commit.into(), source };
                let c = r.find_commit(Oid::from_str(commit).map_err(bad)?).map_err(bad)?;
                let tree = c.tree().map_err(bad)?;
                let path = path.trim_end_matches('/');
                let Ok(entry) = tree.get_path(Path::new(path)) else {
                    return Ok(Vec::new());
                };
                match entry.kind() {
                    Some(git2::ObjectType::Blob) => Ok(vec![(path.to_string(), entry.id().to_string())]),
                    Some(git2::ObjectType::Tree) => {
                        let sub = r.find_tree(entry.id()).map_err(bad)?;
                        let mut out = Vec::new();
                        sub.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
                            if e.kind() == Some(git2::ObjectType::Blob) {
                                out.push((format!("{path}/{dir}{}", e.name().unwrap_or("")), e.id().to_string()));
                            }
                            git2::TreeWalkResult::Ok
                        })
                        .map_err(bad)?;
                        Ok(out)
                    }
                    _ => Ok(Vec::new()),
                }
            }
            Repo::Exec(c) => c.tree_files(commit, path),
        }
    }

    /// The ref HEAD points at (`refs/heads/main` in a bare server repository).
    pub fn head_ref(&self) -> Option<String> {
        match self {
            Repo::Git2(r) => r.find_reference("HEAD").ok()?.symbolic_target().map(str::to_string),
            Repo::Exec(c) => c.head_ref(),
        }
    }

    /// A string-valued git config entry.
    pub fn config_string(&self, key: &str) -> Option<String> {
        match self {
            Repo::Git2(r) => r.config().ok()?.get_string(key).ok(),
            Repo::Exec(c) => c.config(key, false),
        }
    }

    /// A boolean git config entry (`true/yes/on/1`, `false/no/off/0`); anything else is unset.
    pub fn config_bool(&self, key: &str) -> Option<bool> {
        match self.config_string(key)?.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        }
    }

    /// The all-zero object id of this repository's hash (40 or 64 digits).
    pub fn zero_id(&self) -> String {
        if self.signature_header() == commit::SIG_HEADER_SHA256 {
            "0".repeat(64)
        } else {
            "0".repeat(40)
        }
    }

    /// A reader of commit objects.
    pub fn reader(&self) -> Result<CommitReader<'_>, GitError> {
        let header = self.signature_header();
        match self {
            Repo::Git2(r) => Ok(CommitReader::Git2(r.odb().map_err(GitError::Walk)?, header)),
            Repo::Exec(c) => Ok(CommitReader::Exec(c.reader()?, header)),
        }
    }
}

/// The same repository read through the `git` command. libgit2 refuses some
/// commits that git itself reads (no author, a signature header before the
/// parents …); where git2 fails, git's own view decides, so a malformed commit
/// becomes a `commits.malformed` finding instead of a library error.
fn as_git_sees_it(r: &Repository) -> exec::ExecRepo {
    exec::ExecRepo { git_dir: r.path().to_path_buf(), workdir: r.workdir().map(Path::to_path_buf), object_format: "sha1".into() }
}

/// Reads and parses commit objects from either backend.
pub enum CommitReader<'r> {
    Git2(git2::Odb<'r>, &'static str),
    Exec(exec::BatchReader, &'static str),
}

impl CommitReader<'_> {
    pub fn read(&mut self, id: &str) -> Result<ParsedCommit, GitError> {
        match self {
            CommitReader::Git2(odb, header) => {
                let oid = Oid::from_str(id).map_err(|source| GitError::Read { id: id.to_string(), source })?;
                let obj = odb.read(oid).map_err(|source| GitError::Read { id: id.to_string(), source })?;
                if obj.kind() != git2::ObjectType::Commit {
                    return Err(GitError::NotACommit { spec: id.to_string(), kind: obj.kind().str().to_string() });
                }
                Ok(ParsedCommit::parse(obj.data(), header))
            }
            CommitReader::Exec(reader, header) => {
                let (kind, data) = reader.read(id)?;
                if kind != "commit" {
                    return Err(GitError::NotACommit { spec: id.to_string(), kind });
                }
                Ok(ParsedCommit::parse(&data, header))
            }
        }
    }
}

/// Opens another handle on the same repository (for a worker thread), seeing
/// the same objects: those in git's quarantine or alternates named by the
/// environment (`GIT_OBJECT_DIRECTORY`, `GIT_ALTERNATE_OBJECT_DIRECTORIES`) too.
pub fn reopen(git_dir: &Path) -> Result<Repository, GitError> {
    let path = git_dir.to_path_buf();
    let again = Repository::open(&path).map_err(|source| GitError::NoRepository { path: path.clone(), source })?;
    let mut extra: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("GIT_OBJECT_DIRECTORY") {
        extra.push(PathBuf::from(d));
    }
    if let Some(list) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
        extra.extend(std::env::split_paths(&list));
    }
    if !extra.is_empty() {
        let odb = again.odb().map_err(GitError::Walk)?;
        for d in extra {
            if let Some(s) = d.to_str() {
                let _ = odb.add_disk_alternate(s);
            }
        }
    }
    Ok(again)
}

/// Opens the repository at or above `path`.
pub fn open(path: &Path) -> Result<Repository, GitError> {
    Repository::discover(path).map_err(|source| GitError::NoRepository { path: path.to_path_buf(), source })
}

/// The signature header for this repository's object format.
pub fn signature_header(repo: &Repository) -> &'static str {
    let sha256 =
        repo.config().and_then(|c| c.get_string("extensions.objectformat")).map(|f| f.eq_ignore_ascii_case("sha256")).unwrap_or(false);
    if sha256 {
        commit::SIG_HEADER_SHA256
    } else {
        commit::SIG_HEADER_SHA1
    }
}

/// Selects commits the way `git rev-list` does for the given specs: `A..B`,
/// `A...B`, `^X`, `Y`, `--all` (every ref but git-audit's own `refs/audit/*`).
/// Commits reachable from any of `hide` (e.g. the policy's baseline) are left out.
/// Newest first, parents after children.
pub fn select_commits(repo: &Repository, specs: &[String], hide: &[Oid]) -> Result<Vec<Oid>, GitError> {
    let mut walk = repo.revwalk().map_err(GitError::Walk)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME).map_err(GitError::Walk)?;
    for spec in specs {
        if spec == "--all" {
            for r in repo.references().map_err(GitError::Walk)?.flatten() {
                if r.name().is_some_and(|n| n.starts_with("refs/audit/")) {
                    continue;
                }
                if let Ok(c) = r.peel_to_commit() {
                    walk.push(c.id()).map_err(GitError::Walk)?;
                }
            }
            continue;
        }
        if let Some(rest) = spec.strip_prefix('^') {
            walk.hide(peel(repo, rest)?).map_err(GitError::Walk)?;
            continue;
        }
        let rs = repo.revparse(spec).map_err(|source| GitError::BadSpec { spec: spec.clone(), source })?;
        let mode = rs.mode();
        let commit_of = |o: Option<&git2::Object<'_>>| -> Result<Option<Oid>, GitError> {
            match o {
                None => Ok(None),
                Some(o) => o
                    .peel_to_commit()
                    .map(|c| Some(c.id()))
                    .map_err(|_| GitError::NotACommit { spec: spec.clone(), kind: o.kind().map_or("object", |k| k.str()).to_string() }),
            }
        };
        let from = commit_of(rs.from())?;
        let to = commit_of(rs.to())?;
        if mode.contains(RevparseMode::MERGE_BASE) {
            let (a, b) = (from.ok_or_else(|| bad(spec))?, to.ok_or_else(|| bad(spec))?);
            walk.push(a).map_err(GitError::Walk)?;
            walk.push(b).map_err(GitError::Walk)?;
            if let Ok(base) = repo.merge_base(a, b) {
                walk.hide(base).map_err(GitError::Walk)?;
            }
        } else if mode.contains(RevparseMode::RANGE) {
            if let Some(f) = from {
                walk.hide(f).map_err(GitError::Walk)?;
            }
            if let Some(t) = to {
                walk.push(t).map_err(GitError::Walk)?;
            }
        } else if let Some(f) = from {
            walk.push(f).map_err(GitError::Walk)?;
        }
    }
    for h in hide {
        walk.hide(*h).map_err(GitError::Walk)?;
    }
    walk.collect::<Result<Vec<_>, _>>().map_err(GitError::Walk)
}

fn bad(spec: &str) -> GitError {
    GitError::BadSpec { spec: spec.to_string(), source: git2::Error::from_str("incomplete range") }
}

fn peel(repo: &Repository, spec: &str) -> Result<Oid, GitError> {
    let obj = repo.revparse_single(spec).map_err(|source| GitError::BadSpec { spec: spec.to_string(), source })?;
    obj.peel_to_commit()
        .map(|c| c.id())
        .map_err(|_| GitError::NotACommit { spec: spec.to_string(), kind: obj.kind().map_or("object", |k| k.str()).to_string() })
}

/// The default range when none is given: the commits on HEAD that its upstream
/// does not have yet, or all of HEAD when there is no upstream.
pub fn default_specs(repo: &Repository) -> Vec<String> {
    let upstream = repo
        .head()
        .ok()
        .and_then(|h| h.shorthand().map(str::to_string))
        .and_then(|b| repo.find_branch(&b, git2::BranchType::Local).ok())
        .and_then(|b| b.upstream().ok())
        .and_then(|u| u.get().name().map(str::to_string));
    match upstream {
        Some(u) => vec![format!("{u}..HEAD")],
        None => vec!["HEAD".to_string()],
    }
}
