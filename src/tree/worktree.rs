//! A worktree at a stable path, locked by one job at a time (see the
//! module documentation of `tree`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use git2::{Oid, Repository, RepositoryState};
use serde::Serialize;
use thiserror::Error;

use super::Tree;
use super::git::{Git, GitError};

#[derive(Debug, Error)]
pub enum WorktreeError {
    #[error("worktree {path} is in use{}", .pid.map(|p| format!(" by pid {p}")).unwrap_or_default())]
    Busy { path: PathBuf, pid: Option<u32> },
    #[error("cannot lock {lock}: {source}")]
    Lock {
        lock: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a worktree of {tree}: {reason}")]
    NotAWorktree {
        path: PathBuf,
        tree: PathBuf,
        reason: String,
    },
    #[error("worktree {path}: {source}")]
    Repo {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("worktree {path}: {source}")]
    Git {
        path: PathBuf,
        #[source]
        source: GitError,
    },
}

/// What an earlier job left in a worktree, found (and undone) by
/// [`Worktree::prepare`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Leftovers {
    /// The pid of a holder that released the worktree without finishing
    /// (it crashed, or dropped it on an error).
    pub unfinished_by: Option<u32>,
    /// An operation that was in progress, e.g. "git am".
    pub operation: Option<&'static str>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.unfinished_by.is_none() && self.operation.is_none()
    }
}

/// A worktree held by this process until dropped (see `Tree::worktree`).
pub struct Worktree {
    path: PathBuf,
    /// The tree's git directory (shared by all its worktrees).
    common_dir: PathBuf,
    tree_path: PathBuf,
    lock: File,
    unfinished_by: Option<u32>,
}

/// `<path>.lock`, beside the worktree.
fn lock_path(path: &Path) -> Option<PathBuf> {
    let mut name = path.file_name()?.to_os_string();
    name.push(".lock");
    Some(path.with_file_name(name))
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(io::SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

fn write_pid(file: &mut File, pid: Option<u32>) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(io::SeekFrom::Start(0))?;
    if let Some(pid) = pid {
        writeln!(file, "{pid}")?;
    }
    file.sync_data()
}

fn operation_name(state: RepositoryState) -> Option<&'static str> {
    Some(match state {
        RepositoryState::Clean => return None,
        RepositoryState::ApplyMailbox => "git am",
        RepositoryState::ApplyMailboxOrRebase => "git am or rebase",
        RepositoryState::Merge => "merge",
        RepositoryState::Revert | RepositoryState::RevertSequence => "revert",
        RepositoryState::CherryPick | RepositoryState::CherryPickSequence => "cherry-pick",
        RepositoryState::Bisect => "bisect",
        RepositoryState::Rebase
        | RepositoryState::RebaseInteractive
        | RepositoryState::RebaseMerge => "rebase",
    })
}

impl Tree {
    /// Takes the worktree at `path` for a job: locks `<path>.lock` (or
    /// fails with [`WorktreeError::Busy`]) and checks that `path`, when it
    /// exists and is not empty, is a linked worktree of this tree. The
    /// worktree itself is made by the first [`Worktree::prepare`].
    pub fn worktree(&self, path: &Path) -> Result<Worktree, WorktreeError> {
        let lock_err = |lock: &Path, source| WorktreeError::Lock {
            lock: lock.to_path_buf(),
            source,
        };
        let path = std::path::absolute(path).map_err(|source| lock_err(path, source))?;
        let lock = lock_path(&path).ok_or_else(|| WorktreeError::NotAWorktree {
            path: path.clone(),
            tree: self.path.clone(),
            reason: "a worktree needs a directory name".to_owned(),
        })?;
        if let Some(parent) = lock.parent() {
            std::fs::create_dir_all(parent).map_err(|e| lock_err(&lock, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|e| lock_err(&lock, e))?;
        // A lock this process released can stay held for a moment by a
        // child another thread forked and has not yet exec'd (it shares
        // the descriptor): retry a while before calling it busy.
        let mut patience = std::time::Duration::from_secs(2);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let pid = read_pid(&mut file);
                    if pid != Some(std::process::id()) || patience.is_zero() {
                        return Err(WorktreeError::Busy { pid, path });
                    }
                    let step = std::time::Duration::from_millis(20);
                    std::thread::sleep(step);
                    patience = patience.saturating_sub(step);
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(&lock, e)),
            }
        }
        let unfinished_by = read_pid(&mut file);
        let mut wt = Worktree {
            common_dir: self.repo.commondir().to_path_buf(),
            tree_path: self.path.clone(),
            path,
            lock: file,
            unfinished_by,
        };
        wt.check_belongs()?;
        if let Some(pid) = unfinished_by {
            tracing::warn!(worktree = %wt.path.display(), pid, "the previous holder did not finish: cleaning up after it");
        }
        write_pid(&mut wt.lock, Some(std::process::id())).map_err(|e| lock_err(&lock, e))?;
        Ok(wt)
    }
}

impl Worktree {
    /// The worktree's directory (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn not_a_worktree(&self, reason: impl Into<String>) -> WorktreeError {
        WorktreeError::NotAWorktree {
            path: self.path.clone(),
            tree: self.tree_path.clone(),
            reason: reason.into(),
        }
    }

    fn git_err(&self, source: GitError) -> WorktreeError {
        WorktreeError::Git {
            path: self.path.clone(),
            source,
        }
    }

    fn repo_err(&self, source: git2::Error) -> WorktreeError {
        WorktreeError::Repo {
            path: self.path.clone(),
            source,
        }
    }

    /// Missing or an empty directory: `prepare` makes it.
    fn is_missing(&self) -> bool {
        std::fs::read_dir(&self.path).map_or(true, |mut d| d.next().is_none())
    }

    /// Refuses anything but a linked worktree of this tree: `prepare`
    /// resets and cleans it, which must never happen to a main checkout
    /// or to another repository.
    fn check_belongs(&self) -> Result<(), WorktreeError> {
        if self.is_missing() {
            return Ok(());
        }
        let repo = Repository::open(&self.path)
            .map_err(|e| self.not_a_worktree(format!("not a git worktree ({})", e.message())))?;
        if !repo.is_worktree() {
            return Err(self.not_a_worktree("it is a main checkout, not a linked worktree"));
        }
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same(repo.commondir(), &self.common_dir) {
            return Err(
                self.not_a_worktree(format!("it belongs to {}", repo.commondir().display()))
            );
        }
        Ok(())
    }

    pub(super) fn open_repo(&self) -> Result<Repository, WorktreeError> {
        Repository::open(&self.path).map_err(|e| self.repo_err(e))
    }

    pub(super) fn git(&self) -> Git {
        Git::in_worktree(&self.path)
    }

    /// Readies the worktree for a job at `base`: makes it if missing,
    /// undoes whatever an earlier job left, then resets it to `base`
    /// (HEAD detached), rewriting only the files that differ, and removes
    /// every untracked and ignored file.
    pub fn prepare(&mut self, base: Oid) -> Result<Leftovers, WorktreeError> {
        let start = std::time::Instant::now();
        if self.is_missing() {
            let git = Git::on_repo(&self.common_dir);
            // A worktree deleted by hand is still registered: forget it.
            git.run(["worktree", "prune"])
                .map_err(|e| self.git_err(e))?;
            git.run([
                "worktree".as_ref(),
                "add".as_ref(),
                "--detach".as_ref(),
                "--no-checkout".as_ref(),
                self.path.as_os_str(),
                base.to_string().as_ref(),
            ])
            .map_err(|e| self.git_err(e))?;
            tracing::info!(worktree = %self.path.display(), "created");
        }
        let operation = self.reset(Some(base))?;
        let leftovers = Leftovers {
            unfinished_by: self.unfinished_by.take(),
            operation,
        };
        tracing::info!(worktree = %self.path.display(), %base, ?leftovers, elapsed_s = start.elapsed().as_secs_f64(), "prepared");
        Ok(leftovers)
    }

    /// Ends the job: cleans the worktree like `prepare` (HEAD stays where
    /// the job left it) and releases the lock.
    pub fn finish(mut self) -> Result<(), WorktreeError> {
        self.reset(None)?;
        write_pid(&mut self.lock, None).map_err(|source| WorktreeError::Lock {
            lock: lock_path(&self.path).unwrap_or_default(),
            source,
        })?;
        tracing::info!(worktree = %self.path.display(), "finished");
        Ok(())
    }

    /// Aborts an operation in progress, detaches HEAD, `git reset --hard`
    /// to `target` (HEAD when `None`) and removes untracked and ignored
    /// files; returns the operation found.
    pub(super) fn reset(&self, target: Option<Oid>) -> Result<Option<&'static str>, WorktreeError> {
        let repo = self.open_repo()?;
        let operation = operation_name(repo.state());
        if let Some(op) = operation {
            tracing::warn!(worktree = %self.path.display(), operation = op, "aborting a leftover operation");
            if matches!(
                repo.state(),
                RepositoryState::ApplyMailbox | RepositoryState::ApplyMailboxOrRebase
            ) && let Err(e) = self.git().run(["am", "--abort"])
            {
                // The state may be half written; removing it is enough,
                // the reset that follows restores the files.
                tracing::warn!(worktree = %self.path.display(), error = %e, "git am --abort failed");
            }
            repo.cleanup_state().map_err(|e| self.repo_err(e))?;
        }
        if !repo.head_detached().unwrap_or(true)
            && let Ok(head) = repo.head().and_then(|h| h.peel_to_commit())
        {
            // `git reset` would move the branch HEAD is on.
            repo.set_head_detached(head.id())
                .map_err(|e| self.repo_err(e))?;
        }
        // `git reset --hard` rewrites every file whose stat data differs
        // from the index's, even when its content does not (a touched file,
        // or one written in the same second as the index): refresh first,
        // so that those keep their mtimes. Files that did change make it
        // exit non-zero; the reset takes care of them.
        self.git()
            .output(["update-index", "-q", "--refresh"], None)
            .map_err(|e| self.git_err(e))?;
        let mut args = vec![
            "reset".to_owned(),
            "--hard".to_owned(),
            "--quiet".to_owned(),
        ];
        args.extend(target.map(|t| t.to_string()));
        self.git().run(&args).map_err(|e| self.git_err(e))?;
        self.git()
            .run(["clean", "-ffdxq"])
            .map_err(|e| self.git_err(e))?;
        Ok(operation)
    }
}
