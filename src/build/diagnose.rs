//! Reading a failed make's output: is it the source's fault (then which
//! error comes first, with file and line) or the machine's (a missing
//! tool, a full disk, a killed compiler)?
//!
//! Fed line by line while make runs, so that a log of any size costs no
//! memory.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// The first error of a failed build, as the compiler, assembler, linker,
/// Kconfig or make printed it. `file` is relative to the source (or build)
/// directory when it is inside one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstError {
    pub file: Option<String>,
    pub line: Option<u32>,
    pub message: String,
}

impl fmt::Display for FirstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// Whose fault a failed make is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Diagnosis {
    /// The source does not build; the first error found.
    Source(FirstError),
    /// The machine failed; what gave it away.
    Infra(String),
}

/// gcc and Kconfig: `file:line[:col]: [fatal ]error: message`; GNU as:
/// `file:line: Error: message`.
static LOCATED_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)? (?:fatal error|error|Error): (?P<msg>.*)$",
    )
    .expect("valid regex")
});

/// Kconfig's own errors: `file:line: message` (only while configuring).
static KCONFIG_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>[^\s:][^:]*Kconfig[^:]*):(?P<line>\d+):(?: error:)? (?P<msg>.*)$")
        .expect("valid regex")
});

/// ld: `ld: kernel/panic.o: in function `panic':` then
/// `panic.c:(.text+0x2b): undefined reference to `foo'`.
static LD_IN_FUNCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:\S*ld(?:\.bfd|\.gold|\.lld)?: )?(?P<obj>[^:\s]+): in function `(?P<func>[^']+)':$",
    )
    .expect("valid regex")
});
static LD_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:\S*ld(?:\.bfd|\.gold|\.lld)?: )?(?P<file>[^\s:]+)(?::\([^)]*\))?: (?P<msg>(?:undefined reference to|multiple definition of|relocation truncated|undefined symbol) .*)$",
    )
    .expect("valid regex")
});

/// Compiler driver errors with no location: `gcc: error: ...`, `cc1: error: ...`.
static DRIVER_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\S*/)?(?:gcc|cc1|cc|as|ld|objcopy|cc1plus)(?:-\d+)?: (?:fatal error|error): (?P<msg>.*)$")
        .expect("valid regex")
});

/// make's own failure line, the fallback when nothing else was recognised.
/// `make[3]: *** [scripts/Makefile.build:255: kernel/panic.o] Error 1`
/// also names the target that failed.
static MAKE_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^g?make(?:\[\d+\])?: \*\*\* (?P<msg>(?:\[[^\]]*: (?P<target>[^\]:]+)\] )?.*)$")
        .expect("valid regex")
});

/// A shell that cannot find a program: `/bin/sh: 1: flex: not found`,
/// `bash: line 1: bison: command not found`, or make running one directly:
/// `make[2]: flex: No such file or directory`.
static PROGRAM_MISSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:(?:\S*/)?(?:sh|bash|dash)(?:: line)?(?:: \d+)?: (?P<a>[\w.+-]+): (?:command )?not found|g?make(?:\[\d+\])?: (?P<b>[\w.+-]+): No such file or directory)$",
    )
    .expect("valid regex")
});

/// A missing header in a host program (scripts/, tools/, certs/): a
/// development package is not installed.
static HOST_HEADER_MISSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|/)(?:scripts|tools|certs)/[^:]*:\d+:\d+: fatal error: (?P<header>[^:]+): No such file or directory$")
        .expect("valid regex")
});

/// Messages only a failing machine prints.
const INFRA_MARKERS: &[&str] = &[
    "No space left on device",
    "Disk quota exceeded",
    "Killed signal terminated program",
    "internal compiler error",
    "virtual memory exhausted",
    "Cannot allocate memory",
    "out of memory allocating",
    "Read-only file system",
    // The kernel's hints for missing packages (libelf-dev, libssl-dev, ...).
    "please install",
];

#[derive(Debug)]
pub(crate) struct Diagnoser {
    source_dir: PathBuf,
    /// make runs the compiler there: relative file names start from it.
    build_dir: PathBuf,
    kconfig: bool,
    first_error: Option<FirstError>,
    first_make_error: Option<String>,
    /// The target of the first make error line: the file a compiler
    /// driver error (which names none) was about.
    first_make_target: Option<String>,
    infra: Option<String>,
    /// The last `in function` line from ld, for the error that follows it.
    ld_context: Option<(String, String)>,
}

impl Diagnoser {
    /// `configuring`: the output is Kconfig's (its errors have no `error:`).
    pub(crate) fn new(source_dir: &Path, build_dir: &Path, configuring: bool) -> Diagnoser {
        Diagnoser {
            source_dir: source_dir.to_owned(),
            build_dir: build_dir.to_owned(),
            kconfig: configuring,
            first_error: None,
            first_make_error: None,
            first_make_target: None,
            infra: None,
            ld_context: None,
        }
    }

    /// A file name as make's tools print it (absolute, or relative to the
    /// build directory, e.g. `../linux/kernel/panic.c`), relative to the
    /// source directory, or else to the build directory.
    fn relative(&self, file: &str) -> String {
        let path = normalize(&self.build_dir.join(file));
        [&self.source_dir, &self.build_dir]
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())
            .map_or_else(|| file.to_owned(), |p| p.display().to_string())
    }

    pub(crate) fn line(&mut self, line: &str) {
        if self.infra.is_none() {
            self.infra = infra_reason(line);
        }
        if self.first_error.is_none() {
            self.first_error = self.error(line);
        }
        if self.first_make_error.is_none()
            && let Some(c) = MAKE_ERROR.captures(line)
        {
            self.first_make_error = Some(format!("make: {}", &c["msg"]));
            self.first_make_target = c.name("target").map(|t| self.relative(t.as_str()));
        }
    }

    fn error(&mut self, line: &str) -> Option<FirstError> {
        if let Some(c) = LD_IN_FUNCTION.captures(line) {
            self.ld_context = Some((self.relative(&c["obj"]), c["func"].to_owned()));
            return None;
        }
        if let Some(c) = LD_ERROR.captures(line) {
            let (file, message) = match self.ld_context.take() {
                Some((obj, func)) => (obj, format!("{} (in function {func})", &c["msg"])),
                None => (self.relative(&c["file"]), c["msg"].to_owned()),
            };
            return Some(FirstError {
                file: Some(file),
                line: None,
                message,
            });
        }
        self.ld_context = None;
        let located = LOCATED_ERROR
            .captures(line)
            .or_else(|| self.kconfig.then(|| KCONFIG_ERROR.captures(line)).flatten());
        if let Some(c) = located {
            return Some(FirstError {
                file: Some(self.relative(&c["file"])),
                line: c["line"].parse().ok(),
                message: c["msg"].to_owned(),
            });
        }
        DRIVER_ERROR.captures(line).map(|c| FirstError {
            file: None,
            line: None,
            message: c["msg"].to_owned(),
        })
    }

    /// The verdict once make has failed with `status` (its description).
    pub(crate) fn finish(self, status: &str) -> Diagnosis {
        if let Some(reason) = self.infra {
            return Diagnosis::Infra(reason);
        }
        let error = match self.first_error {
            // A compiler driver's error names no file: make's target does.
            Some(FirstError {
                file: None,
                line,
                message,
            }) => FirstError {
                file: self.first_make_target,
                line,
                message,
            },
            Some(located) => located,
            None => FirstError {
                file: None,
                line: None,
                message: self
                    .first_make_error
                    .unwrap_or_else(|| format!("make {status}")),
            },
        };
        Diagnosis::Source(error)
    }
}

/// Resolves `.` and `..` without touching the file system (the file may
/// be gone, and symlinks in a kernel tree do not lead out of it).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn infra_reason(line: &str) -> Option<String> {
    if let Some(c) = PROGRAM_MISSING.captures(line) {
        let program = c
            .name("a")
            .or_else(|| c.name("b"))
            .map_or("", |m| m.as_str());
        return Some(format!("program {program} not found: {line}"));
    }
    if let Some(c) = HOST_HEADER_MISSING.captures(line) {
        return Some(format!(
            "header {} of a host development package is missing: {line}",
            &c["header"]
        ));
    }
    INFRA_MARKERS
        .iter()
        .any(|marker| line.contains(marker))
        .then(|| line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where tests/fixtures/build/ logs were made (see the README there).
    const SOURCE: &str = "/root/.cache/lorebot/test-builds/linux";
    const BUILD: &str = "/root/.cache/lorebot/test-builds/build-lkdtm";

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/build/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn diagnose_lines<'a>(
        lines: impl Iterator<Item = &'a str>,
        build_dir: &str,
        configuring: bool,
    ) -> Diagnosis {
        let mut d = Diagnoser::new(Path::new(SOURCE), Path::new(build_dir), configuring);
        lines.for_each(|line| d.line(line));
        d.finish("exited with status 2")
    }

    fn diagnose(name: &str) -> Diagnosis {
        diagnose_lines(fixture(name).lines(), BUILD, false)
    }

    fn source_error(file: &str, line: Option<u32>, message: &str) -> Diagnosis {
        Diagnosis::Source(FirstError {
            file: Some(file.to_owned()),
            line,
            message: message.to_owned(),
        })
    }

    #[test]
    fn gcc_errors_name_the_source_file_and_line() {
        // gcc prints ../linux/kernel/panic.c: relative to the build directory.
        assert_eq!(
            diagnose("gcc-undeclared.log"),
            source_error(
                "kernel/panic.c",
                Some(53),
                "'lorebot_undeclared' undeclared here (not in a function)"
            )
        );
        assert_eq!(
            diagnose("gcc-syntax.log"),
            source_error("kernel/panic.c", Some(338), "expected ';' before 'if'")
        );
    }

    #[test]
    fn missing_kernel_header_is_the_sources_fault() {
        assert_eq!(
            diagnose("gcc-missing-header.log"),
            source_error(
                "kernel/panic.c",
                Some(36),
                "linux/lorebot_missing.h: No such file or directory"
            )
        );
    }

    #[test]
    fn undefined_reference_names_the_object_and_function() {
        assert_eq!(
            diagnose("ld-undefined.log"),
            source_error(
                "kernel/panic.o",
                None,
                "undefined reference to `lorebot_missing_function' (in function panic)"
            )
        );
    }

    #[test]
    fn multiple_definition_names_the_second_object() {
        assert_eq!(
            diagnose("ld-multiple-definition.log"),
            source_error(
                "kernel/exit.o",
                None,
                "multiple definition of `lorebot_defined_twice'; kernel/panic.o:(.data+0x0): first defined here"
            )
        );
    }

    #[test]
    fn compiler_driver_error_names_the_target_make_was_building() {
        assert_eq!(
            diagnose("gcc-bad-option.log"),
            source_error(
                "kernel/panic.o",
                None,
                "unrecognized command-line option '-mlorebot-no-such-option'"
            )
        );
    }

    #[test]
    fn kconfig_syntax_error_names_the_kconfig_file() {
        let log = fixture("kconfig-syntax.log");
        assert_eq!(
            diagnose_lines(log.lines(), BUILD, true),
            source_error("kernel/Kconfig.hz", Some(8), "syntax error")
        );
    }

    #[test]
    fn make_error_line_is_the_fallback() {
        let log = fixture("gcc-syntax.log");
        let make_lines = log.lines().filter(|l| l.starts_with("make"));
        assert_eq!(
            diagnose_lines(make_lines, BUILD, false),
            Diagnosis::Source(FirstError {
                file: None,
                line: None,
                message: format!(
                    "make: [{SOURCE}/scripts/Makefile.build:255: kernel/panic.o] Error 1"
                ),
            })
        );
        assert_eq!(
            diagnose_lines(std::iter::empty(), BUILD, false),
            Diagnosis::Source(FirstError {
                file: None,
                line: None,
                message: "make exited with status 2".to_owned(),
            })
        );
    }

    #[test]
    fn missing_program_is_the_machines_fault() {
        let log = fixture("missing-bison.log");
        let build = "/work/wt-build/target/tmp/lorebot-fresh-build-5984";
        let Diagnosis::Infra(reason) = diagnose_lines(log.lines(), build, true) else {
            panic!("not infra")
        };
        assert_eq!(
            reason,
            "program bison not found: /bin/sh: 1: bison: not found"
        );
    }

    #[test]
    fn compiler_out_of_memory_is_the_machines_fault() {
        for (name, reason) in [
            (
                "cc1-out-of-memory.log",
                "cc1: out of memory allocating 65536 bytes after a total of 5001216 bytes",
            ),
            (
                "cc1-virtual-memory-exhausted.log",
                "virtual memory exhausted: Cannot allocate memory",
            ),
        ] {
            assert_eq!(
                diagnose(name),
                Diagnosis::Infra(reason.to_owned()),
                "{name}"
            );
        }
    }

    #[test]
    fn missing_host_library_header_is_the_machines_fault() {
        // What a defconfig build prints without libssl-dev.
        let line =
            "certs/extract-cert.c:21:10: fatal error: openssl/bio.h: No such file or directory";
        let Diagnosis::Infra(reason) = diagnose_lines([line].into_iter(), BUILD, false) else {
            panic!("not infra")
        };
        assert!(reason.starts_with("header openssl/bio.h of a host development package"));
    }
}
