//! Running the `git` command in a controlled environment: no user or system
//! configuration, no hooks, no network, no prompts, a fixed committer, and
//! messages in English so that they can be parsed.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use thiserror::Error;

/// The committer of every commit lorebot makes. With the committer date
/// taken from the author date, the same series on the same base always
/// gives the same commit ids.
pub const COMMITTER_NAME: &str = "lorebot";
pub const COMMITTER_EMAIL: &str = "lorebot@localhost";

/// Configuration given on the command line; it wins over the repository's
/// own, which lorebot does not control.
const CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.autocrlf=false",
    "protocol.allow=never",
    "commit.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "rerere.enabled=false",
    "merge.conflictStyle=merge",
    "am.keepcr=false",
    "am.messageId=false",
    "am.threeWay=false",
    "mailinfo.scissors=false",
    "apply.whitespace=warn",
    "advice.detachedHead=false",
];

/// Lines of git's output kept in messages.
const MESSAGE_LINES: usize = 30;

#[derive(Debug, Error)]
pub enum GitError {
    #[error("cannot run `git {args}` in {dir}: {source}")]
    Spawn {
        args: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`git {args}` in {dir} failed ({status}): {message}")]
    Failed {
        args: String,
        dir: PathBuf,
        status: ExitStatus,
        message: String,
    },
}

/// What a git command printed (stdout and stderr interleaved, as a
/// terminal shows them) and whether it succeeded.
pub struct GitOutput {
    pub status: ExitStatus,
    pub text: String,
}

/// `git` run in `dir` (a work tree), or on the repository `git_dir`.
pub struct Git {
    dir: PathBuf,
    git_dir: Option<PathBuf>,
}

impl Git {
    /// git in the work tree `dir`.
    pub fn in_worktree(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
            git_dir: None,
        }
    }

    /// git on the repository whose git directory is `git_dir`.
    pub fn on_repo(git_dir: &Path) -> Git {
        Git {
            dir: git_dir.to_path_buf(),
            git_dir: Some(git_dir.to_path_buf()),
        }
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.dir).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            c.env("PATH", path);
        }
        c.env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_COMMITTER_NAME", COMMITTER_NAME)
            .env("GIT_COMMITTER_EMAIL", COMMITTER_EMAIL);
        if let Some(g) = &self.git_dir {
            c.arg("--git-dir").arg(g);
        }
        for kv in CONFIG {
            c.arg("-c").arg(kv);
        }
        c.args(args);
        c
    }

    /// Runs git; its exit status is the caller's to judge. `stdin` is fed
    /// to it when given.
    pub fn output<I, S>(&self, args: I, stdin: Option<&[u8]>) -> Result<GitOutput, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let spawn_err = |source| GitError::Spawn {
            args: show_args(&args),
            dir: self.dir.clone(),
            source,
        };
        let (mut reader, writer) = io::pipe().map_err(spawn_err)?;
        let mut cmd = self.command(&args);
        cmd.stdout(writer.try_clone().map_err(spawn_err)?)
            .stderr(writer)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // The command holds the pipe's write ends: the read below ends only
        // once every write end is closed.
        drop(cmd);
        let mut input = child.stdin.take();
        let mut out = Vec::new();
        let read = std::thread::scope(|s| {
            if let (Some(mut pipe), Some(data)) = (input.take(), stdin) {
                // git may exit before reading everything (a broken pipe):
                // its exit status tells what went wrong.
                s.spawn(move || {
                    let _ = pipe.write_all(data);
                });
            }
            reader.read_to_end(&mut out)
        });
        let status = child.wait().map_err(spawn_err)?;
        read.map_err(spawn_err)?;
        tracing::debug!(args = %show_args(&args), dir = %self.dir.display(), %status, "git");
        Ok(GitOutput {
            status,
            text: String::from_utf8_lossy(&out).into_owned(),
        })
    }

    /// Runs git and fails unless it succeeds; returns its output.
    pub fn run<I, S>(&self, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.output(&args, None)?;
        if out.status.success() {
            return Ok(out.text);
        }
        Err(GitError::Failed {
            args: show_args(&args),
            dir: self.dir.clone(),
            status: out.status,
            message: trim_message(&out.text),
        })
    }
}

fn show_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// git's output for a person: without `hint:` lines, at most
/// `MESSAGE_LINES` lines.
pub fn trim_message(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect();
    let mut s = lines
        .iter()
        .take(MESSAGE_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > MESSAGE_LINES {
        s.push_str(&format!(
            "\n... ({} more lines)",
            lines.len() - MESSAGE_LINES
        ));
    }
    s
}
