//! A repository read through the `git` command: used for SHA-256 repositories,
//! which libgit2 (and so git2) cannot open. One `git rev-list` selects commits;
//! one long-lived `git cat-file --batch` reads them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::GitError;

/// A repository accessed through the `git` binary.
#[derive(Debug, Clone)]
pub struct ExecRepo {
    pub git_dir: PathBuf,
    pub workdir: Option<PathBuf>,
    pub object_format: String,
}

/// `git`, reading objects as git stores and serves them: replace refs and
/// grafts off, so a pushed `refs/replace/*` or an `info/grafts` file cannot
/// swap what the hook judges for something else.
pub fn git_command() -> Command {
    let mut c = Command::new("git");
    c.env("GIT_NO_REPLACE_OBJECTS", "1").env("GIT_GRAFT_FILE", "/dev/null");
    c
}

fn cli_err(what: &str, detail: impl std::fmt::Display) -> GitError {
    GitError::Command { what: what.to_string(), detail: detail.to_string() }
}

impl ExecRepo {
    /// Discovers the repository from the current directory and git's environment.
    pub fn discover(dir: Option<&Path>) -> Result<ExecRepo, GitError> {
        let run = |args: &[&str]| -> Option<String> {
            let mut c = git_command();
            if let Some(d) = dir {
                c.arg("-C").arg(d);
            }
            let out = c.args(args).stderr(Stdio::null()).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let git_dir =
            run(&["rev-parse", "--absolute-git-dir"]).ok_or_else(|| cli_err("git rev-parse --absolute-git-dir", "not a git repository"))?;
        let workdir = run(&["rev-parse", "--show-toplevel"]).filter(|s| !s.is_empty()).map(PathBuf::from);
        let object_format = run(&["rev-parse", "--show-object-format"]).unwrap_or_else(|| "sha1".into());
        Ok(ExecRepo { git_dir: PathBuf::from(git_dir), workdir, object_format })
    }

    fn git(&self) -> Command {
        let mut c = git_command();
        c.arg("--git-dir").arg(&self.git_dir);
        c
    }

    fn output(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.git().args(args).stdin(Stdio::null()).output().map_err(|e| cli_err(&args.join(" "), e))?;
        if !out.status.success() {
            return Err(cli_err(&format!("git {}", args.join(" ")), String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn config(&self, key: &str, path: bool) -> Option<String> {
        let mut args = vec!["config"];
        if path {
            args.push("--path");
        }
        args.extend(["--get", key]);
        self.output(&args).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// `git rev-list` over the specs; only `--all` is passed as an option, so a
    /// spec can never smuggle in other options.
    pub fn select(&self, specs: &[String], hide: &[String]) -> Result<Vec<String>, GitError> {
        let mut args: Vec<String> = vec!["rev-list".into(), "--topo-order".into(), "--date-order".into()];
        let mut revs = Vec::new();
        for s in specs {
            if s == "--all" {
                args.push("--exclude=refs/audit/*".into());
                args.push("--all".into());
            } else if s.starts_with('-') {
                return Err(GitError::BadSpec { spec: s.clone(), source: git2::Error::from_str("only --all may start with '-'") });
            } else {
                // Resolve each side now so an unknown name is reported by name.
                for part in s.trim_start_matches('^').split("..").filter(|p| !p.is_empty() && *p != ".") {
                    let part = part.trim_start_matches('.');
                    if !part.is_empty() {
                        self.resolve_commit(part)?;
                    }
                }
                revs.push(s.clone());
            }
        }
        args.extend(revs);
        for h in hide {
            args.push(format!("^{h}"));
        }
        args.push("--".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(self.output(&refs)?.lines().map(str::to_string).collect())
    }

    pub fn resolve_commit(&self, spec: &str) -> Result<String, GitError> {
        if spec.starts_with('-') {
            return Err(GitError::BadSpec { spec: spec.into(), source: git2::Error::from_str("names may not start with '-'") });
        }
        self.output(&["rev-parse", "--verify", "--quiet", "--end-of-options", &format!("{spec}^{{commit}}")])
            .map(|s| s.trim().to_string())
            .map_err(|_| GitError::BadSpec { spec: spec.into(), source: git2::Error::from_str("unknown revision") })
    }

    pub fn upstream(&self) -> Option<String> {
        self.output(&["rev-parse", "--symbolic-full-name", "@{upstream}"]).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// What a symbolic ref points at (`None` for a plain ref or none).
    pub fn symbolic_target(&self, refname: &str) -> Option<String> {
        self.output(&["symbolic-ref", "-q", refname]).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    pub fn refs(&self) -> Result<Vec<(String, String)>, GitError> {
        Ok(self
            .output(&["for-each-ref", "--format=%(objectname) %(refname)"])?
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(id, name)| (name.to_string(), id.to_string())))
            .collect())
    }

    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let status = self
            .git()
            .args(["merge-base", "--is-ancestor", ancestor, descendant])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| cli_err("git merge-base", e))?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(cli_err("git merge-base --is-ancestor", format!("{ancestor} {descendant}"))),
        }
    }

    pub fn path_blob(&self, commit: &str, path: &str) -> Option<String> {
        let out = self.output(&["ls-tree", commit, "--", path]).ok()?;
        let line = out.lines().next()?;
        let mut parts = line.split_whitespace();
        let (_, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
        (kind == "blob").then(|| id.to_string())
    }

    pub fn set_config(&self, key: &str, value: &str) -> Result<(), GitError> {
        self.output(&["config", key, value]).map(|_| ())
    }

    pub fn head_ref(&self) -> Option<String> {
        self.output(&["symbolic-ref", "-q", "HEAD"]).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// Paths `commit` adds, modifies or deletes against any of its parents
    /// (a rename is both of its paths), sorted, once each.
    pub fn changed_paths(&self, commit: &str) -> Result<Vec<String>, GitError> {
        let out = self.output(&["diff-tree", "-r", "-m", "--root", "--no-renames", "--no-commit-id", "--name-only", "-z", commit])?;
        let mut paths: Vec<String> = out.split('\0').filter(|p| !p.is_empty()).map(str::to_string).collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    pub fn path_entry(&self, commit: &str, path: &str) -> Option<String> {
        let out = self.output(&["ls-tree", commit, "--", path]).ok()?;
        let (meta, name) = out.lines().next()?.split_once('\t')?;
        (name == path).then(|| meta.split_whitespace().nth(2).map(str::to_string)).flatten()
    }

    pub fn tree_files(&self, commit: &str, path: &str) -> Result<Vec<(String, String)>, GitError> {
        let out = self.output(&["ls-tree", "-r", commit, "--", path.trim_end_matches('/')])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (meta, name) = l.split_once('\t')?;
                let mut parts = meta.split_whitespace();
                let (_, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
                (kind == "blob").then(|| (name.to_string(), id.to_string()))
            })
            .collect())
    }

    /// Starts a `git cat-file --batch` reader.
    pub fn reader(&self) -> Result<BatchReader, GitError> {
        let mut child = self
            .git()
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| cli_err("git cat-file --batch", e))?;
        let stdin = child.stdin.take().ok_or_else(|| cli_err("git cat-file --batch", "no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| cli_err("git cat-file --batch", "no stdout"))?);
        Ok(BatchReader { child, stdin, stdout })
    }
}

/// Reads objects from one `git cat-file --batch` process.
pub struct BatchReader {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl BatchReader {
    /// Returns (type, bytes) of the object `id`.
    pub fn read(&mut self, id: &str) -> Result<(String, Vec<u8>), GitError> {
        let fail = |d: &dyn std::fmt::Display| GitError::Read { id: id.to_string(), source: git2::Error::from_str(&d.to_string()) };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(&"not an object id"));
        }
        writeln!(self.stdin, "{id}").and_then(|_| self.stdin.flush()).map_err(|e| fail(&e))?;
        let mut header = String::new();
        self.stdout.read_line(&mut header).map_err(|e| fail(&e))?;
        let parts: Vec<&str> = header.split_whitespace().collect();
        if parts.len() != 3 {
            return Err(fail(&format!("git cat-file: {}", header.trim())));
        }
        let size: usize = parts[2].parse().map_err(|_| fail(&"bad size"))?;
        let mut data = vec![0u8; size + 1];
        self.stdout.read_exact(&mut data).map_err(|e| fail(&e))?;
        data.truncate(size);
        Ok((parts[1].to_string(), data))
    }
}

impl Drop for BatchReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
