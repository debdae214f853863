//! Running the kernel's make: a fixed environment, output appended to the
//! build log and read line by line for progress and errors.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::diagnose::{Diagnoser, Diagnosis};
use super::{InfraError, Stage};

/// Fixed build identity: the version banner (and ccache's hits) do not
/// depend on who built the kernel, where or when.
const BUILD_ENV: &[(&str, &str)] = &[
    ("KBUILD_BUILD_USER", "lorebot"),
    ("KBUILD_BUILD_HOST", "lorebot"),
    ("KBUILD_BUILD_TIMESTAMP", "Thu Jan  1 00:00:00 UTC 2024"),
    ("KBUILD_BUILD_VERSION", "1"),
    // Messages in English with ASCII quotes, for the error parser.
    ("LC_ALL", "C"),
];

/// Variables passed through from lorebot's environment; every other one
/// (LLVM, CROSS_COMPILE, KCFLAGS, MAKEFLAGS...) would change the build.
const PASSED_ENV: &[&str] = &["PATH", "HOME", "TMPDIR", "USER", "LOGNAME"];

/// Searches PATH like a shell does.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// make for one source and build directory.
pub(crate) struct Make {
    make: PathBuf,
    nice: PathBuf,
    source_dir: PathBuf,
    build_dir: PathBuf,
    ccache: bool,
}

/// How a make run ended, when it did not succeed.
pub(crate) enum MakeFailure {
    /// make ran and failed; whose fault it is.
    Failed(Diagnosis),
    /// make could not run, or lorebot could not write the log.
    Infra(InfraError),
}

impl Make {
    /// Both directories absolute (canonical), so that file names in errors
    /// can be made relative to them.
    pub(crate) fn new(source_dir: &Path, build_dir: &Path) -> Result<Make, InfraError> {
        let program = |name: &'static str| {
            find_program(name).ok_or(InfraError::MissingProgram { program: name })
        };
        Ok(Make {
            make: program("make")?,
            nice: program("nice")?,
            source_dir: source_dir.to_owned(),
            build_dir: build_dir.to_owned(),
            ccache: find_program("ccache").is_some(),
        })
    }

    pub(crate) fn ccache(&self) -> bool {
        self.ccache
    }

    /// make's arguments before the targets.
    fn make_args(&self) -> Vec<String> {
        let mut args = vec![
            "-C".to_owned(),
            self.source_dir.display().to_string(),
            format!("O={}", self.build_dir.display()),
            "ARCH=x86_64".to_owned(),
        ];
        if self.ccache {
            args.push("CC=ccache gcc".to_owned());
        }
        args
    }

    fn command(&self, make_args: &[String]) -> Command {
        let mut cmd = Command::new(&self.nice);
        crate::child::dies_with_parent(&mut cmd);
        cmd.arg(&self.make).args(make_args);
        cmd.env_clear();
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        for (name, value) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CCACHE_") {
                cmd.env(name, value);
            }
        }
        cmd.envs(BUILD_ENV.iter().copied());
        if self.ccache {
            // Paths under the source become relative in ccache's hashes:
            // hits survive a tree that moved.
            cmd.env(
                "CCACHE_BASEDIR",
                OsString::from(self.source_dir.as_os_str()),
            );
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs make with `args`, appending its output (stdout and stderr in
    /// order) to `log` and handing each line to `on_line`.
    pub(crate) fn run(
        &self,
        stage: Stage,
        args: &[String],
        log: &mut File,
        log_path: &Path,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), MakeFailure> {
        let infra = MakeFailure::Infra;
        let log_error = |source| {
            infra(InfraError::Io {
                action: "cannot write build log",
                path: log_path.to_owned(),
                source,
            })
        };
        let mut make_args = self.make_args();
        make_args.extend_from_slice(args);
        writeln!(log, "lorebot: running make {}", make_args.join(" ")).map_err(log_error)?;
        let mut cmd = self.command(&make_args);
        let spawn_error = |source| {
            infra(InfraError::Spawn {
                program: self.make.clone(),
                source,
            })
        };
        let (reader, writer) = std::io::pipe().map_err(spawn_error)?;
        cmd.stdout(writer.try_clone().map_err(spawn_error)?)
            .stderr(writer);
        let mut child = cmd.spawn().map_err(spawn_error)?;
        // The pipe's write ends live in `cmd`; the reader sees the end of
        // the output only once they are closed.
        drop(cmd);

        let mut diagnoser =
            Diagnoser::new(&self.source_dir, &self.build_dir, stage == Stage::Configure);
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        let read_result = loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            if let Err(e) = log.write_all(&buf) {
                break Err(e);
            }
            let text = String::from_utf8_lossy(&buf);
            let text = text.trim_end_matches(['\n', '\r']);
            diagnoser.line(text);
            on_line(text);
        };
        let status = child.wait();
        read_result.map_err(log_error)?;
        let status = status.map_err(spawn_error)?;
        log.flush().map_err(log_error)?;
        if status.success() {
            return Ok(());
        }
        let described = describe(status);
        writeln!(log, "lorebot: make {described}").map_err(log_error)?;
        if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
            return Err(MakeFailure::Failed(Diagnosis::Infra(format!(
                "make was killed by signal {signal}"
            ))));
        }
        Err(MakeFailure::Failed(diagnoser.finish(&described)))
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => status.to_string(),
    }
}

/// What a line of kbuild's quiet output says about progress.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// One more object compiled or assembled.
    Compiled(&'a str),
    /// The final link of vmlinux starts.
    Linking,
}

/// Reads kbuild's `  CC      kernel/panic.o` lines.
pub(crate) fn step(line: &str) -> Option<Step<'_>> {
    let rest = line.strip_prefix("  ")?;
    let mut words = rest.split_whitespace();
    let tag = words.next()?;
    let target = words.next_back()?;
    match tag {
        "CC" | "AS" | "HOSTCC" | "HOSTCXX" => Some(Step::Compiled(target)),
        "LD" if target == "vmlinux.o" => Some(Step::Linking),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbuild_lines_give_progress() {
        assert_eq!(
            step("  CC      kernel/panic.o"),
            Some(Step::Compiled("kernel/panic.o"))
        );
        assert_eq!(
            step("  CC [M]  drivers/x.o"),
            Some(Step::Compiled("drivers/x.o"))
        );
        assert_eq!(
            step("  AS      arch/x86/entry/entry_64.o"),
            Some(Step::Compiled("arch/x86/entry/entry_64.o"))
        );
        assert_eq!(step("  LD      vmlinux.o"), Some(Step::Linking));
        assert_eq!(step("  LD      arch/x86/boot/setup.elf"), None);
        assert_eq!(step("  CC      "), None);
        assert_eq!(step("kernel/panic.c:5:1: error: x"), None);
    }
}
