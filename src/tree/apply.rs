//! Applying a series with `git am -3`, one patch at a time.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use git2::Oid;
use serde::{Serialize, Serializer};
use thiserror::Error;

use super::diff::{self, PathProblem};
use super::git::{GitError, trim_message};
use super::worktree::{Worktree, WorktreeError};

/// Something went wrong that is not the patches' fault.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("no patches to apply")]
    NoPatches,
    #[error("cannot write {path}: {source}")]
    Scratch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Worktree(#[from] WorktreeError),
    #[error(transparent)]
    Git(#[from] GitError),
}

fn oid_hex<S: Serializer>(oid: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(oid)
}

fn oid_hex_opt<S: Serializer>(oid: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
    match oid {
        Some(o) => s.collect_str(o),
        None => s.serialize_none(),
    }
}

/// One patch of an applied series.
#[derive(Clone, Debug, Serialize)]
pub struct PatchResult {
    /// From 1, in the order given.
    pub index: usize,
    /// The subject as `git am` records it (without `[PATCH ...]`).
    pub subject: String,
    /// The commit made; `None` when the patch's changes were already in
    /// the base (or made by an earlier patch).
    #[serde(serialize_with = "oid_hex_opt")]
    pub commit: Option<Oid>,
}

impl PatchResult {
    pub fn already_applied(&self) -> bool {
        self.commit.is_none()
    }
}

/// A series applied: HEAD is at `head`.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    #[serde(serialize_with = "oid_hex")]
    pub base: Oid,
    #[serde(serialize_with = "oid_hex")]
    pub head: Oid,
    pub patches: Vec<PatchResult>,
}

impl Applied {
    /// Every patch was already in the base: nothing to test.
    pub fn all_already_applied(&self) -> bool {
        self.patches.iter().all(PatchResult::already_applied)
    }
}

/// The hunk git could not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hunk {
    /// From 1, among the file's hunks in the patch.
    pub number: usize,
    /// Where the hunk starts in the old file.
    pub line: u64,
    /// Its `@@` line.
    pub header: String,
}

/// A file of a patch that did not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedPlace {
    pub file: String,
    /// The first hunk that does not apply, when git names one.
    pub hunk: Option<Hunk>,
    /// The 3-way merge left a conflict in the file.
    pub conflict: bool,
}

/// Why a patch was not applied. All are the patch's fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureReason {
    /// `git mailinfo` could not read the mail.
    Unreadable,
    /// The mail holds no diff.
    NoDiff,
    /// Refused before anything was applied.
    OutsideTree { path: String, problem: PathProblem },
    /// Neither applying nor a 3-way merge worked.
    DoesNotApply { places: Vec<FailedPlace> },
}

/// A series that did not apply; the worktree is back at `base`, clean.
#[derive(Clone, Debug, Serialize)]
pub struct ApplyFailure {
    #[serde(serialize_with = "oid_hex")]
    pub base: Oid,
    /// The patch at fault, from 1.
    pub index: usize,
    pub total: usize,
    pub subject: String,
    pub reason: FailureReason,
    /// git's own message, trimmed; empty when git was not asked.
    pub message: String,
}

impl fmt::Display for FailedPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(h) = &self.hunk {
            write!(f, " hunk #{} at line {} ({})", h.number, h.line, h.header)?;
        }
        if self.conflict {
            write!(f, ", merge conflict")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApplyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "patch {}/{}", self.index, self.total)?;
        if !self.subject.is_empty() {
            write!(f, " \"{}\"", self.subject)?;
        }
        match &self.reason {
            FailureReason::Unreadable => write!(f, " is not a mail git can read"),
            FailureReason::NoDiff => write!(f, " holds no diff"),
            FailureReason::OutsideTree { path, problem } => write!(
                f,
                " is refused: it touches {path}, outside the tree ({problem})"
            ),
            FailureReason::DoesNotApply { places } if places.is_empty() => {
                write!(f, " does not apply")
            }
            FailureReason::DoesNotApply { places } => {
                let places: Vec<String> = places.iter().map(ToString::to_string).collect();
                write!(f, " does not apply: {}", places.join("; "))
            }
        }
    }
}

/// The result of applying a series: applied, or the patch at fault.
#[derive(Clone, Debug)]
pub enum ApplyOutcome {
    Applied(Applied),
    Failed(ApplyFailure),
}

/// A mail read by `git mailinfo`, ready for `git am`.
struct ReadMail<'a> {
    mail: &'a [u8],
    subject: String,
    patch_file: PathBuf,
    parsed: diff::Parsed,
}

/// Drops a leading mbox `From ` line (a `git format-patch` file has one;
/// a header line never starts with `From `).
fn without_from_line(mail: &[u8]) -> &[u8] {
    if mail.starts_with(b"From ") {
        return mail
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&[], |i| &mail[i + 1..]);
    }
    mail
}

/// Files named by git's messages: 3-way conflicts, and hunks or files
/// that did not apply (`error: patch failed: F:L`, `error: F: patch does
/// not apply`, ...), in order.
fn git_failures(text: &str) -> (Vec<String>, Vec<(String, Option<u64>)>) {
    const FILE_ERRORS: &[&str] = &[
        ": patch does not apply",
        ": does not exist in index",
        ": does not match index",
        ": already exists in index",
        ": already exists in working directory",
        ": No such file or directory",
    ];
    let mut conflicts = Vec::new();
    let mut failed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("CONFLICT (") {
            let file = match rest.split_once("Merge conflict in ") {
                Some((_, f)) => f.to_owned(),
                None => rest
                    .split_once("): ")
                    .and_then(|(_, r)| r.split(' ').next())
                    .unwrap_or("")
                    .to_owned(),
            };
            if !file.is_empty() && !conflicts.contains(&file) {
                conflicts.push(file);
            }
        } else if let Some(rest) = line.strip_prefix("error: patch failed: ")
            && let Some((file, l)) = rest.rsplit_once(':')
        {
            failed.push((file.to_owned(), l.trim().parse().ok()));
        } else if let Some(rest) = line.strip_prefix("error: ")
            && let Some(file) = FILE_ERRORS.iter().find_map(|e| rest.strip_suffix(e))
            && !failed.iter().any(|(f, _)| f == file)
        {
            failed.push((file.to_owned(), None));
        }
    }
    (conflicts, failed)
}

/// The places to report: conflicted files when the 3-way merge got that
/// far (other files merged), else every file git could not patch; with
/// the first failing hunk of each.
fn failed_places(
    conflicts: &[String],
    failed: &[(String, Option<u64>)],
    parsed: &diff::Parsed,
) -> Vec<FailedPlace> {
    let hunk_of = |file: &str| {
        failed
            .iter()
            .filter(|(f, _)| f == file)
            .find_map(|(_, line)| {
                let line = (*line)?;
                parsed.hunk(file, line).map(|(number, h)| Hunk {
                    number,
                    line,
                    header: h.header.clone(),
                })
            })
    };
    if !conflicts.is_empty() {
        return conflicts
            .iter()
            .map(|file| FailedPlace {
                file: file.clone(),
                hunk: hunk_of(file),
                conflict: true,
            })
            .collect();
    }
    let mut places: Vec<FailedPlace> = Vec::new();
    for (file, _) in failed {
        if !places.iter().any(|p| &p.file == file) {
            places.push(FailedPlace {
                file: file.clone(),
                hunk: hunk_of(file),
                conflict: false,
            });
        }
    }
    places
}

fn mailinfo_subject(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .trim()
        .to_owned()
}

impl Worktree {
    /// The commit HEAD is at.
    pub fn head(&self) -> Result<Oid, WorktreeError> {
        let repo = self.open_repo()?;
        repo.head()
            .and_then(|h| h.peel_to_commit())
            .map(|c| c.id())
            .map_err(|source| WorktreeError::Repo {
                path: self.path().to_path_buf(),
                source,
            })
    }

    /// Applies `mails` (each a patch mail, in order; a leading mbox `From `
    /// line is allowed) on HEAD with `git am -3`. On failure the worktree
    /// is reset to where HEAD was, clean.
    pub fn apply<M: AsRef<[u8]>>(&mut self, mails: &[M]) -> Result<ApplyOutcome, ApplyError> {
        if mails.is_empty() {
            return Err(ApplyError::NoPatches);
        }
        let start = std::time::Instant::now();
        let base = self.head()?;
        let scratch = self.open_repo()?.path().join("lorebot-apply");
        let scratch_err = |path: &Path, source| ApplyError::Scratch {
            path: path.to_path_buf(),
            source,
        };
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| scratch_err(&scratch, e))?;
        let outcome = self.apply_in(mails, base, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        let outcome = outcome?;
        match &outcome {
            ApplyOutcome::Applied(a) => tracing::info!(
                worktree = %self.path().display(), %base, head = %a.head,
                patches = a.patches.len(), elapsed_s = start.elapsed().as_secs_f64(), "applied"
            ),
            ApplyOutcome::Failed(f) => tracing::info!(
                worktree = %self.path().display(), %base, failure = %f,
                elapsed_s = start.elapsed().as_secs_f64(), "apply failed"
            ),
        }
        Ok(outcome)
    }

    fn apply_in<M: AsRef<[u8]>>(
        &mut self,
        mails: &[M],
        base: Oid,
        scratch: &Path,
    ) -> Result<ApplyOutcome, ApplyError> {
        let total = mails.len();
        let failure = |index: usize, subject: &str, reason, message: String| {
            ApplyOutcome::Failed(ApplyFailure {
                base,
                index,
                total,
                subject: subject.to_owned(),
                reason,
                message,
            })
        };
        // Every mail is read and checked before anything is applied.
        let mut read = Vec::with_capacity(total);
        for (i, mail) in mails.iter().enumerate() {
            let index = i + 1;
            let mail = without_from_line(mail.as_ref());
            let msg_file = scratch.join(format!("{index:04}.msg"));
            let patch_file = scratch.join(format!("{index:04}.patch"));
            let out = self.git().output(
                [
                    "mailinfo".as_ref(),
                    "-u".as_ref(),
                    msg_file.as_os_str(),
                    patch_file.as_os_str(),
                ],
                Some(mail),
            )?;
            if !out.status.success() {
                return Ok(failure(
                    index,
                    "",
                    FailureReason::Unreadable,
                    trim_message(&out.text),
                ));
            }
            let subject = mailinfo_subject(&out.text);
            let patch = std::fs::read(&patch_file).map_err(|e| ApplyError::Scratch {
                path: patch_file.clone(),
                source: e,
            })?;
            let parsed = diff::parse(&String::from_utf8_lossy(&patch));
            if parsed.files.is_empty() {
                return Ok(failure(
                    index,
                    &subject,
                    FailureReason::NoDiff,
                    String::new(),
                ));
            }
            if let Some((path, problem)) = parsed.outside.clone() {
                return Ok(failure(
                    index,
                    &subject,
                    FailureReason::OutsideTree { path, problem },
                    String::new(),
                ));
            }
            read.push(ReadMail {
                mail,
                subject,
                patch_file,
                parsed,
            });
        }

        let mut results = Vec::with_capacity(total);
        let mut head = base;
        for (i, m) in read.iter().enumerate() {
            let index = i + 1;
            let mut mbox = Vec::new();
            crate::mail::write_mboxrd(&[m.mail], &mut mbox).map_err(|e| ApplyError::Scratch {
                path: scratch.to_path_buf(),
                source: e,
            })?;
            let out = self.git().output(
                [
                    "am",
                    "-3",
                    "--committer-date-is-author-date",
                    "--patch-format=mboxrd",
                ],
                Some(&mbox),
            )?;
            if !out.status.success() {
                let reason = self.diagnose(&out.text, m)?;
                self.reset(Some(base))?;
                // git numbers patches within one `git am`, always 0001 here:
                // the report names the patch instead.
                let text: String = out
                    .text
                    .lines()
                    .filter(|l| !l.starts_with("Patch failed at "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                return Ok(failure(index, &m.subject, reason, trim_message(&text)));
            }
            let now = self.head()?;
            let commit = (now != head).then_some(now);
            if commit.is_none() {
                tracing::info!(index, subject = %m.subject, "already applied");
            }
            head = now;
            results.push(PatchResult {
                index,
                subject: m.subject.clone(),
                commit,
            });
        }
        Ok(ApplyOutcome::Applied(Applied {
            base,
            head,
            patches: results,
        }))
    }

    /// Names the files and hunks of a patch `git am` failed on. A 3-way
    /// merge names only files; the hunk comes from `git apply --check`
    /// once `git am --abort` put the worktree back before the patch.
    fn diagnose(&self, am_output: &str, m: &ReadMail<'_>) -> Result<FailureReason, ApplyError> {
        let (conflicts, mut failed) = git_failures(am_output);
        let aborted = self.git().output(["am", "--abort"], None)?;
        if aborted.status.success() && failed.iter().all(|(_, line)| line.is_none()) {
            let check = self.git().output(
                [
                    "apply".as_ref(),
                    "--check".as_ref(),
                    m.patch_file.as_os_str(),
                ],
                None,
            )?;
            failed.extend(git_failures(&check.text).1);
        }
        Ok(FailureReason::DoesNotApply {
            places: failed_places(&conflicts, &failed, &m.parsed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_messages_name_files_and_lines() {
        let (conflicts, failed) = git_failures(
            "Applying: x\nAuto-merging fs/a b.c\nCONFLICT (content): Merge conflict in fs/a b.c\n\
             CONFLICT (modify/delete): mm/x.c deleted in HEAD and modified in y.\n\
             error: patch failed: fs/foo.c:123\nerror: fs/foo.c: patch does not apply\n\
             error: net/n.c: does not exist in index\n",
        );
        assert_eq!(conflicts, ["fs/a b.c", "mm/x.c"]);
        assert_eq!(
            failed,
            [
                ("fs/foo.c".to_owned(), Some(123)),
                ("net/n.c".to_owned(), None)
            ]
        );
    }

    #[test]
    fn a_from_line_is_dropped_but_a_from_header_is_kept() {
        assert_eq!(
            without_from_line(b"From abc Mon Sep 17 00:00:00 2001\nFrom: a\n"),
            b"From: a\n"
        );
        assert_eq!(without_from_line(b"From: a\n"), b"From: a\n");
    }
}
