//! Mirrors of a list's public-inbox v2 git epochs (`<base>/<list>/N`).
//!
//! Each epoch is a bare repository whose commits each add one message (file
//! `m`) or a deletion (file `d`). Fetches are forced: a purge rewrites
//! history, and the mirror follows.

use std::path::{Path, PathBuf};

use git2::build::{CloneLocal, RepoBuilder};
use git2::{Repository, Sort};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MirrorError {
    #[error("epoch {epoch} at {url}: {source}")]
    Fetch {
        epoch: u32,
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("mirror {path}: {source}")]
    Repo {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("moving the clone {from} to {to}: {source}")]
    Move {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One archive entry.
pub enum Item {
    /// A message: its blob id and bytes.
    Message { blob: String, raw: Vec<u8> },
    /// A deletion (`d`) or a purged message (`m` emptied): the blob named.
    Deleted { blob: String },
}

pub struct Mirror {
    dir: PathBuf,
    base: String,
    list: String,
}

/// Sanitises a URL into a directory name.
fn dir_name(url: &str) -> String {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_start_matches("file://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Mirror {
    pub fn new(data_dir: &Path, base: &str, list: &str) -> Mirror {
        let base = base.trim_end_matches('/').to_owned();
        Mirror {
            dir: data_dir
                .join("mirrors")
                .join(dir_name(&base))
                .join(dir_name(list)),
            base,
            list: list.to_owned(),
        }
    }

    /// Where the mirror of `epoch` lives (a bare repository).
    pub fn epoch_path(&self, epoch: u32) -> PathBuf {
        self.dir.join(format!("{epoch}.git"))
    }

    fn url(&self, epoch: u32) -> String {
        format!("{}/{}/{}", self.base, self.list, epoch)
    }

    /// Fetches every epoch, discovering new ones after the last known;
    /// returns the epochs present.
    pub fn fetch(&self) -> Result<Vec<u32>, MirrorError> {
        let mut epochs = Vec::new();
        let mut epoch = 0;
        loop {
            let known = self.epoch_path(epoch).join("HEAD").exists();
            match self.fetch_epoch(epoch) {
                Ok(()) => epochs.push(epoch),
                // An epoch never seen that the server does not have: the
                // previous one is the newest.
                Err(e) if !known && epoch > 0 => {
                    tracing::debug!(epoch, error = %e, "no such epoch");
                    let _ = std::fs::remove_dir_all(self.epoch_path(epoch));
                    break;
                }
                Err(e) => return Err(e),
            }
            epoch += 1;
        }
        Ok(epochs)
    }

    fn fetch_epoch(&self, epoch: u32) -> Result<(), MirrorError> {
        let path = self.epoch_path(epoch);
        let repo_err = |source| MirrorError::Repo {
            path: path.clone(),
            source,
        };
        let url = self.url(epoch);
        let repo = match Repository::open_bare(&path) {
            Ok(r) => r,
            Err(_) if url.starts_with("file://") => return self.clone_local(epoch, &url),
            Err(_) => Repository::init_bare(&path).map_err(repo_err)?,
        };
        let mut remote = repo.remote_anonymous(&url).map_err(repo_err)?;
        remote
            .fetch(&["+refs/heads/*:refs/heads/*"], None, None)
            .map_err(|source| MirrorError::Fetch { epoch, url, source })
    }

    /// First fetch of a local epoch: its objects are hard-linked (copied
    /// across file systems), where a fetch would pack them again with a
    /// delta search. Cloned beside the mirror and renamed into place, so
    /// that an interrupted clone leaves no half mirror.
    fn clone_local(&self, epoch: u32, url: &str) -> Result<(), MirrorError> {
        let path = self.epoch_path(epoch);
        let partial = path.with_extension("git.partial");
        let _ = std::fs::remove_dir_all(&partial);
        let cloned = RepoBuilder::new()
            .bare(true)
            .clone_local(CloneLocal::Local)
            .remote_create(|repo, name, url| {
                repo.remote_with_fetch(name, url, "+refs/heads/*:refs/heads/*")
            })
            .clone(url, &partial);
        if let Err(source) = cloned {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(MirrorError::Fetch {
                epoch,
                url: url.to_owned(),
                source,
            });
        }
        // A mirror left by an earlier, failed init is replaced.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::rename(&partial, &path).map_err(|source| MirrorError::Move {
            from: partial,
            to: path,
            source,
        })
    }

    /// The newest commit of an epoch.
    pub fn head(&self, epoch: u32) -> Result<Option<String>, MirrorError> {
        let path = self.epoch_path(epoch);
        let repo =
            Repository::open_bare(&path).map_err(|source| MirrorError::Repo { path, source })?;
        Ok(branch_tip(&repo).map(|o| o.to_string()))
    }

    /// The commits of `epoch` after commit `since`, oldest first. When
    /// `since` is not in the history any more (a purge rewrote it), they are
    /// all of the epoch's and [`Walk::rewritten`] says so.
    pub fn walk(&self, epoch: u32, since: Option<&str>) -> Result<Walk, MirrorError> {
        skip_hash_checks();
        let path = self.epoch_path(epoch);
        let repo_err = |source| MirrorError::Repo {
            path: path.clone(),
            source,
        };
        let repo = Repository::open_bare(&path).map_err(repo_err)?;
        let Some(tip) = branch_tip(&repo) else {
            return Ok(Walk {
                commits: Vec::new(),
                rewritten: false,
            });
        };
        let since = since.and_then(|s| git2::Oid::from_str(s).ok());
        let continues = match since {
            Some(s) => s == tip || repo.graph_descendant_of(tip, s).unwrap_or(false),
            None => true,
        };
        let stop = since.filter(|_| continues);
        let commits = match first_parent_chain(&repo, tip, stop).map_err(repo_err)? {
            Some(chain) => chain,
            None => topological(&repo, tip, stop).map_err(repo_err)?,
        };
        Ok(Walk {
            commits,
            rewritten: !continues,
        })
    }

    /// Reads the entries of `epoch`'s commits. A reader serves one thread.
    pub fn reader(&self, epoch: u32) -> Result<EntryReader, MirrorError> {
        skip_hash_checks();
        let path = self.epoch_path(epoch);
        match Repository::open_bare(&path) {
            Ok(repo) => Ok(EntryReader { repo, path }),
            Err(source) => Err(MirrorError::Repo { path, source }),
        }
    }
}

/// A commit of the archive and its tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkedCommit {
    pub id: git2::Oid,
    pub tree: git2::Oid,
}

/// The commits of an epoch to ingest.
pub struct Walk {
    /// Oldest first.
    pub commits: Vec<WalkedCommit>,
    /// The history was rewritten since the commit the walk started after:
    /// the commits are all of the epoch's.
    pub rewritten: bool,
}

/// The tree and parents of a commit, from its raw object.
fn commit_links(id: git2::Oid, raw: &[u8]) -> Result<(git2::Oid, Vec<git2::Oid>), git2::Error> {
    let mut tree = None;
    let mut parents = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        // The headers end at the first empty line.
        if line.is_empty() {
            break;
        }
        let oid = |hex: &[u8]| {
            std::str::from_utf8(hex)
                .map_err(|_| git2::Error::from_str(&format!("commit {id}: malformed header")))
                .and_then(git2::Oid::from_str)
        };
        if let Some(hex) = line.strip_prefix(b"tree ") {
            tree = Some(oid(hex)?);
        } else if let Some(hex) = line.strip_prefix(b"parent ") {
            parents.push(oid(hex)?);
        }
    }
    let tree = tree.ok_or_else(|| git2::Error::from_str(&format!("commit {id} has no tree")))?;
    Ok((tree, parents))
}

/// The commits from `tip` back to `stop` (excluded) or the first commit,
/// oldest first, read straight from the object database: public-inbox
/// writes one line of history, and each commit is read once. `None` when a
/// commit has more than one parent.
fn first_parent_chain(
    repo: &Repository,
    tip: git2::Oid,
    stop: Option<git2::Oid>,
) -> Result<Option<Vec<WalkedCommit>>, git2::Error> {
    let odb = repo.odb()?;
    let mut commits = Vec::new();
    let mut at = Some(tip);
    while let Some(id) = at.filter(|&id| Some(id) != stop) {
        let (tree, parents) = commit_links(id, odb.read(id)?.data())?;
        if parents.len() > 1 {
            return Ok(None);
        }
        commits.push(WalkedCommit { id, tree });
        at = parents.first().copied();
    }
    commits.reverse();
    Ok(Some(commits))
}

/// The commits from `tip` back to `stop` (excluded), oldest first, in
/// topological order: for a history with merges.
fn topological(
    repo: &Repository,
    tip: git2::Oid,
    stop: Option<git2::Oid>,
) -> Result<Vec<WalkedCommit>, git2::Error> {
    let odb = repo.odb()?;
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(tip)?;
    if let Some(s) = stop {
        walk.hide(s)?;
    }
    walk.map(|id| {
        let id = id?;
        let (tree, _) = commit_links(id, odb.read(id)?.data())?;
        Ok(WalkedCommit { id, tree })
    })
    .collect()
}

pub struct EntryReader {
    repo: Repository,
    path: PathBuf,
}

impl EntryReader {
    /// The entry `commit` carries, if any.
    pub fn entry(&self, commit: &WalkedCommit) -> Result<Option<Item>, MirrorError> {
        self.read(commit).map_err(|source| MirrorError::Repo {
            path: self.path.clone(),
            source,
        })
    }

    fn read(&self, commit: &WalkedCommit) -> Result<Option<Item>, git2::Error> {
        let tree = self.repo.find_tree(commit.tree)?;
        if let Some(e) = tree.get_name("m") {
            let blob = self.repo.find_blob(e.id())?;
            if !blob.content().is_empty() {
                return Ok(Some(Item::Message {
                    blob: e.id().to_string(),
                    raw: blob.content().to_vec(),
                }));
            }
            // public-inbox-purge empties the message; the commit names the
            // blob it replaced.
            Ok(self
                .repo
                .find_commit(commit.id)?
                .summary()
                .ok()
                .flatten()
                .and_then(|s| s.strip_prefix("purged "))
                .map(|old| Item::Deleted {
                    blob: old.trim().to_owned(),
                }))
        } else {
            Ok(tree.get_name("d").map(|e| Item::Deleted {
                blob: e.id().to_string(),
            }))
        }
    }
}

/// libgit2 hashes every object it reads again to check it: 8% of a sync's
/// CPU time. The mirror's objects were hashed when fetched (or come from a
/// local archive), and git does not check them on reads either. The
/// setting is process-wide.
fn skip_hash_checks() {
    git2::opts::strict_hash_verification(false);
}

fn branch_tip(repo: &Repository) -> Option<git2::Oid> {
    ["refs/heads/master", "refs/heads/main"]
        .iter()
        .find_map(|r| repo.refname_to_id(r).ok())
}
