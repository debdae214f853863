//! Target trees: clones, base resolution, worktrees and `git am -3`.
//!
//! A [`Tree`] is a repository: a clone lorebot keeps (bare, its branches and
//! tags mirrored from `origin` by forced fetches) or any repository opened
//! in place. [`Tree::resolve`] turns a base (`base-commit:` hash, full or
//! abbreviated, branch, remote branch, tag) into a commit id.
//!
//! # Worktrees and incremental builds
//!
//! Kernel builds must stay incremental: `make O=<build dir>` records the
//! absolute source paths, and make compares mtimes, so a worktree at a new
//! path, or a checkout that rewrites every file, costs a full rebuild
//! (about 10 minutes). So a worktree is not made per job. It lives at a
//! stable path the caller chooses (one per build slot, e.g. per tree and
//! kernel config) and is reused:
//!
//! - [`Tree::worktree`] takes an exclusive lock (`flock`) on `<path>.lock`,
//!   beside the worktree, for as long as the [`Worktree`] lives: two lorebot
//!   processes never share one. The lock file holds the holder's pid.
//! - [`Worktree::prepare`] readies it for a job: it creates the worktree if
//!   missing (`git worktree add --detach --no-checkout`), aborts any
//!   leftover `git am`, clears other operations' state, then `git reset
//!   --hard <base>` (HEAD detached) and `git clean -ffdx` (ignored files
//!   too; the build directory lives outside). After `git update-index
//!   --refresh`, `git reset` rewrites only the files whose content differs,
//!   so unchanged files keep their mtimes.
//! - [`Worktree::apply`] applies a series with `git am -3`, one patch at a
//!   time (see below).
//! - [`Worktree::finish`] cleans up the same way after the job and releases
//!   the lock, leaving HEAD where the job left it.
//!
//! A crash skips `finish`: the kernel releases the lock when the process
//! dies, the pid stays in the lock file, and the next `prepare` finds and
//! undoes what was left ([`Leftovers`]).
//!
//! # Applying
//!
//! `git am -3` (libgit2 has no fuzz and no 3-way merge), with hooks
//! disabled, no user or system configuration, no network, no prompts, and
//! a fixed committer whose date is the author date: the same series on the
//! same base always gives the same commit ids. Each patch keeps its author,
//! date and message. Before anything is applied, every mail is read with
//! `git mailinfo` (what `git am` reads) and refused if it holds no diff or
//! touches a path outside the tree (absolute, `..`, through `.git`).
//!
//! A patch whose changes are already in the base leaves HEAD where it was
//! (`git am` says "No changes -- Patch already applied" after the 3-way
//! merge): it is reported as already applied, not as a failure. (`git am
//! --empty=drop` is about mails without a patch, which are refused instead.)
//! A patch that does not apply is reported with its index and subject, the
//! files and hunks that failed and git's own message; then `git am --abort`
//! and a reset leave the worktree clean at the base.

mod apply;
mod diff;
mod git;
mod worktree;

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository};
use thiserror::Error;

pub use apply::{
    Applied, ApplyError, ApplyFailure, ApplyOutcome, FailedPlace, FailureReason, Hunk, PatchResult,
};
pub use diff::PathProblem;
pub use git::{COMMITTER_EMAIL, COMMITTER_NAME, GitError};
pub use worktree::{Leftovers, Worktree, WorktreeError};

/// The remote a clone made by lorebot fetches from.
const ORIGIN: &str = "origin";
/// The refspec of a clone made by lorebot: the remote's branches are its own.
const MIRROR_BRANCHES: &str = "refs/heads/*:refs/heads/*";

#[derive(Debug, Error)]
pub enum OpenError {
    #[error("cannot open the repository {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot clone {url} into {path}: {source}")]
    Clone {
        url: String,
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("{path} is a clone of {origin}, not of {url}")]
    OtherOrigin {
        path: PathBuf,
        origin: String,
        url: String,
    },
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("cannot list the remotes of {path}: {source}")]
    Remotes {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot fetch {remote} ({url}) into {path}: {source}")]
    Fetch {
        remote: String,
        url: String,
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
}

#[derive(Debug, Error)]
pub enum ResolveError {
    #[error("unknown revision '{rev}' in {path}")]
    Unknown { rev: String, path: PathBuf },
    #[error("revision '{rev}' is ambiguous in {path}: give more hex digits")]
    Ambiguous { rev: String, path: PathBuf },
    #[error("revision '{rev}' in {path} is not a commit")]
    NotACommit {
        rev: String,
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot resolve '{rev}' in {path}: {source}")]
    Repo {
        rev: String,
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
}

/// A repository patches are applied to.
pub struct Tree {
    repo: Repository,
    /// As given when opened, for messages.
    path: PathBuf,
}

impl Tree {
    /// Opens an existing repository (bare, or a work tree's top directory).
    pub fn open(path: &Path) -> Result<Tree, OpenError> {
        let repo = Repository::open(path).map_err(|source| OpenError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Tree {
            repo,
            path: path.to_path_buf(),
        })
    }

    /// Opens lorebot's clone of `url` in `dir`, or makes it: a bare
    /// repository whose `origin` branches and tags are mirrored as its own
    /// (forced: a rebased branch follows its remote). `url` may be a local
    /// path, `file://` or `https://`.
    pub fn open_or_clone(url: &str, dir: &Path) -> Result<Tree, OpenError> {
        if dir.join("HEAD").exists() || dir.join(".git").exists() {
            let tree = Tree::open(dir)?;
            let origin = tree
                .repo
                .find_remote(ORIGIN)
                .ok()
                .and_then(|r| r.url().ok().map(str::to_owned));
            if origin.as_deref() != Some(url) {
                return Err(OpenError::OtherOrigin {
                    path: dir.to_path_buf(),
                    origin: origin.unwrap_or_else(|| "no origin".to_owned()),
                    url: url.to_owned(),
                });
            }
            return Ok(tree);
        }
        let clone_err = |source| OpenError::Clone {
            url: url.to_owned(),
            path: dir.to_path_buf(),
            source,
        };
        let existed = dir.exists();
        let cloned = (|| {
            let repo = Repository::init_bare(dir)?;
            repo.remote_with_fetch(ORIGIN, url, &format!("+{MIRROR_BRANCHES}"))?;
            repo.remote_add_fetch(ORIGIN, "+refs/tags/*:refs/tags/*")?;
            Ok(repo)
        })()
        .map_err(clone_err)?;
        let tree = Tree {
            repo: cloned,
            path: dir.to_path_buf(),
        };
        tracing::info!(url, dir = %dir.display(), "cloning");
        if let Err(e) = tree.fetch() {
            // Half a clone would pass for a clone next time.
            if !existed {
                let _ = std::fs::remove_dir_all(dir);
            }
            let (FetchError::Remotes { source, .. } | FetchError::Fetch { source, .. }) = e;
            return Err(clone_err(source));
        }
        Ok(tree)
    }

    /// The repository's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn remote_names(&self) -> Result<Vec<String>, git2::Error> {
        Ok(self
            .repo
            .remotes()?
            .iter()
            .filter_map(|name| name.ok().flatten().map(str::to_owned))
            .collect())
    }

    /// Whether `remote`'s branches are fetched as this repository's own
    /// (a clone made by `open_or_clone`).
    fn mirrors_branches(&self, remote: &str) -> bool {
        let Ok(remote) = self.repo.find_remote(remote) else {
            return false;
        };
        remote.fetch_refspecs().is_ok_and(|specs| {
            specs
                .iter()
                .any(|s| matches!(s, Ok(Some(s)) if s.trim_start_matches('+') == MIRROR_BRANCHES))
        })
    }

    /// Fetches every remote with its configured refspecs, and the tags
    /// pointing into what was fetched.
    pub fn fetch(&self) -> Result<(), FetchError> {
        let names = self.remote_names().map_err(|source| FetchError::Remotes {
            path: self.path.clone(),
            source,
        })?;
        for name in &names {
            let fetch_err = |url: &str, source| FetchError::Fetch {
                remote: name.clone(),
                url: url.to_owned(),
                path: self.path.clone(),
                source,
            };
            let mut remote = self
                .repo
                .find_remote(name)
                .map_err(|source| fetch_err("", source))?;
            let url = remote.url().unwrap_or("").to_owned();
            let start = std::time::Instant::now();
            remote
                .fetch::<&str>(&[], None, None)
                .map_err(|source| fetch_err(&url, source))?;
            tracing::info!(
                remote = name,
                url,
                elapsed_s = start.elapsed().as_secs_f64(),
                "fetched"
            );
        }
        Ok(())
    }

    /// Fetches one ref of `url` (a pull request's head, which no configured
    /// remote carries) into `local`, forced; returns its commit.
    pub fn fetch_ref(&self, url: &str, remote_ref: &str, local: &str) -> Result<Oid, FetchError> {
        let fetch_err = |source| FetchError::Fetch {
            remote: remote_ref.to_owned(),
            url: url.to_owned(),
            path: self.path.clone(),
            source,
        };
        let mut remote = self.repo.remote_anonymous(url).map_err(fetch_err)?;
        remote
            .fetch(&[format!("+{remote_ref}:{local}")], None, None)
            .map_err(fetch_err)?;
        self.repo
            .find_reference(local)
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id())
            .map_err(fetch_err)
    }

    /// The newest common ancestor of two commits: what a pull request's
    /// head changes is tested against it.
    pub fn merge_base(&self, a: Oid, b: Oid) -> Result<Oid, ResolveError> {
        self.repo
            .merge_base(a, b)
            .map_err(|source| ResolveError::Repo {
                rev: format!("merge-base {a} {b}"),
                path: self.path.clone(),
                source,
            })
    }

    /// Where `function` is defined at `commit`: the file and line of its C
    /// definition, when one file alone defines it (a `static` function of
    /// the same name in two files is ambiguous, and gives none).
    pub fn definition(&self, commit: Oid, function: &str) -> Option<(String, u32)> {
        // `filemap_get_read_batch.isra.0` is the compiler's copy of it.
        let function = function.split('.').next()?;
        if function.is_empty()
            || !function
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        let pattern = format!("^[A-Za-z_].*[^A-Za-z0-9_]{function}\\(");
        let rev = commit.to_string();
        let out = git::Git::on_repo(self.repo.path())
            .output(["grep", "-n", "-E", &pattern, &rev, "--", "*.c"], None)
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let prefix = format!("{rev}:");
        let mut found: Vec<(String, u32)> = out
            .text
            .lines()
            .filter_map(|line| {
                let (path, rest) = line.strip_prefix(&prefix)?.split_once(':')?;
                let (number, text) = rest.split_once(':')?;
                // A prototype, not the definition.
                if text.trim_end().ends_with(';') {
                    return None;
                }
                Some((path.to_owned(), number.parse().ok()?))
            })
            .collect();
        found.dedup_by(|a, b| a.0 == b.0);
        match found.len() {
            1 => found.pop(),
            _ => None,
        }
    }

    /// The commit `rev` names: a hash (full or abbreviated), a branch, a
    /// remote branch (`origin/master`), a tag, or any git revision. A
    /// branch missing locally is looked up among remote branches; in a
    /// clone made by lorebot, `origin/NAME` is the mirrored branch NAME.
    pub fn resolve(&self, rev: &str) -> Result<Oid, ResolveError> {
        let path = || self.path.clone();
        match self.repo.revparse_single(rev) {
            Ok(obj) => {
                return obj.peel_to_commit().map(|c| c.id()).map_err(|source| {
                    ResolveError::NotACommit {
                        rev: rev.to_owned(),
                        path: path(),
                        source,
                    }
                });
            }
            Err(e) if e.code() == ErrorCode::Ambiguous => {
                return Err(ResolveError::Ambiguous {
                    rev: rev.to_owned(),
                    path: path(),
                });
            }
            Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => {}
            Err(source) => {
                return Err(ResolveError::Repo {
                    rev: rev.to_owned(),
                    path: path(),
                    source,
                });
            }
        }
        let remotes = self.remote_names().map_err(|source| ResolveError::Repo {
            rev: rev.to_owned(),
            path: path(),
            source,
        })?;
        let mut candidates = Vec::new();
        if let Some((remote, branch)) = rev.split_once('/')
            && remotes.iter().any(|r| r == remote)
            && self.mirrors_branches(remote)
        {
            candidates.push(format!("refs/heads/{branch}"));
        }
        candidates.extend(
            remotes
                .iter()
                .map(|remote| format!("refs/remotes/{remote}/{rev}")),
        );
        candidates
            .iter()
            .find_map(|name| {
                let reference = self.repo.find_reference(name).ok()?;
                reference.peel_to_commit().ok().map(|c| c.id())
            })
            .ok_or_else(|| ResolveError::Unknown {
                rev: rev.to_owned(),
                path: path(),
            })
    }
}
