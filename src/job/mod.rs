//! Jobs: what to test and how, read from `jobs/*.yaml`.
//!
//! Read in two steps, like ripgrep's config: the YAML is parsed literally
//! into a [`JobSpec`] (unknown fields are errors, so a typo never silently
//! drops a setting), then checked and resolved into a [`JobPlan`]: paths
//! made absolute, durations and sizes parsed, defaults filled in. Every
//! error names the job file, the line and the field.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::build::{ConfigBase, KernelConfig};
use crate::console::{Crash, Kind};

/// An error in a file lorebot reads (a job, the watch config), naming the
/// file, the line and the field.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{}: {message}", path.display(), line.map_or_else(|| "?".to_owned(), |l| l.to_string()))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

/// The job file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub tree: TreeSpec,
    #[serde(default)]
    pub lists: Vec<String>,
    /// A GitHub repository (`owner/name`) whose open pull requests are
    /// tested, each head commit against its base.
    #[serde(default)]
    pub github: Option<String>,
    /// A patchwork instance that gets a check on each tested patch.
    #[serde(default)]
    pub patchwork: Option<PatchworkSpec>,
    pub kernel: KernelSpec,
    pub reproducer: ReproducerSpec,
    #[serde(default)]
    pub vm: VmSpec,
    #[serde(default)]
    pub target: TargetSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Free text: what the job needs that a plain machine lacks.
    #[serde(default)]
    pub requires: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    pub url: String,
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchworkSpec {
    /// `https://patchwork.kernel.org`.
    pub url: String,
    /// The project's link name (`linux-mm`), to narrow the lookup.
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// `tinyconfig`, `defconfig`, `allnoconfig`, or a path to a .config.
    pub base: String,
    /// Config fragments: paths relative to the job file, or names of
    /// fragments in the nearest `kernel-configs/` directory above the job.
    #[serde(default)]
    pub fragments: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReproducerSpec {
    /// The reproducer, a shell script run by busybox `sh` in the guest.
    #[serde(default)]
    pub script: Option<String>,
    /// Or a script file, relative to the job file.
    #[serde(default)]
    pub script_file: Option<String>,
    /// Extra files copied into the guest's `/repro`, relative to the job file.
    #[serde(default)]
    pub files: Vec<String>,
    /// How long one run of the reproducer may take (`90s`, `10m`).
    pub timeout: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    #[serde(default)]
    pub cpus: Option<u32>,
    /// `512M`, `2G`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Appended to the kernel command line.
    #[serde(default)]
    pub cmdline: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Crash titles that count as the bug; `prefix*` matches a prefix.
    #[serde(default)]
    pub titles: Vec<String>,
    /// Crash kinds that count as the bug (`rcu-stall`, `soft-lockup`, ...).
    #[serde(default)]
    pub kinds: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Most runs per arm.
    #[serde(default)]
    pub runs: Option<u32>,
    /// Most guests at once (further bounded by host cores and memory).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// From QEMU start to the start marker.
    #[serde(default)]
    pub boot_timeout: Option<String>,
    /// No console output for this long: the guest is hung.
    #[serde(default)]
    pub silence_timeout: Option<String>,
    /// Console collected after a crash starts, so its report is complete.
    #[serde(default)]
    pub crash_grace: Option<String>,
}

/// A checked job, ready to run.
#[derive(Clone, Debug)]
pub struct JobPlan {
    pub name: String,
    /// The job file.
    pub path: PathBuf,
    pub description: String,
    pub tree: Tree,
    pub lists: Vec<String>,
    /// `owner/name` on GitHub.
    pub github: Option<String>,
    pub patchwork: Option<PatchworkSpec>,
    pub kernel: KernelConfig,
    pub reproducer: Reproducer,
    pub vm: Vm,
    pub target: Target,
    pub limits: Limits,
    pub requires: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Tree {
    /// A URL, or an absolute path (`~/` expanded, relative to the job file).
    pub url: String,
    pub branch: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Reproducer {
    pub script: String,
    /// Host file and its name in the guest's `/repro`.
    pub files: Vec<(PathBuf, String)>,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Vm {
    pub cpus: u32,
    pub memory_mib: u64,
    pub cmdline: String,
}

/// What counts as "the bug". Empty: every crash counts.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub titles: Vec<String>,
    pub kinds: Vec<String>,
}

impl Target {
    pub fn is_empty(&self) -> bool {
        self.titles.is_empty() && self.kinds.is_empty()
    }

    /// Whether `crash` is the bug: its kind is listed, or its title or one
    /// of its alternative titles matches a listed title (`prefix*` matches
    /// a prefix).
    pub fn matches(&self, crash: &Crash) -> bool {
        if self.is_empty() {
            return true;
        }
        if self.kinds.iter().any(|k| k == crash.kind.as_str()) {
            return true;
        }
        let titles = std::iter::once(&crash.title).chain(&crash.alt_titles);
        titles.into_iter().any(|t| {
            self.titles.iter().any(|want| match want.strip_suffix('*') {
                Some(prefix) => t.starts_with(prefix),
                None => t == want,
            })
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("any crash");
        }
        let parts: Vec<String> = self
            .kinds
            .iter()
            .map(|k| format!("kind {k}"))
            .chain(self.titles.iter().map(|t| format!("\"{t}\"")))
            .collect();
        f.write_str(&parts.join(" or "))
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub runs: u32,
    pub parallel: u32,
    pub boot_timeout: Duration,
    pub silence_timeout: Duration,
    pub crash_grace: Duration,
}

/// Reads and checks a job file.
pub fn load(path: &Path) -> Result<JobPlan, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and checks job text; `path` names it in errors and anchors
/// relative paths.
pub fn parse(path: &Path, text: &str) -> Result<JobPlan, FileError> {
    let spec: JobSpec = serde_norway::from_str(text).map_err(|e| FileError::Invalid {
        path: path.to_owned(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    Checker { path, text }.plan(spec)
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn err(&self, field: &str, message: impl fmt::Display) -> FileError {
        FileError::Invalid {
            path: self.path.to_owned(),
            line: line_of(self.text, field),
            message: format!("{field}: {message}"),
        }
    }

    fn base_dir(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
    }

    /// A path from the job: `~/` is the home directory, relative paths
    /// are relative to the job file.
    fn host_path(&self, p: &str) -> PathBuf {
        path_in(self.path, p)
    }

    fn existing_file(&self, field: &str, p: &str) -> Result<PathBuf, FileError> {
        let path = self.host_path(p);
        if path.is_file() {
            Ok(path)
        } else {
            Err(self.err(field, format_args!("no such file: {}", path.display())))
        }
    }

    fn duration(
        &self,
        field: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, FileError> {
        match value {
            None => Ok(default),
            Some(v) => parse_duration(v).ok_or_else(|| {
                self.err(
                    field,
                    format_args!("`{v}` is not a duration (like 90s, 10m, 1h)"),
                )
            }),
        }
    }

    fn plan(&self, spec: JobSpec) -> Result<JobPlan, FileError> {
        let name = spec.name.trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(self.err(
                "name",
                format_args!("`{}` must be letters, digits, `-`, `_` or `.`", spec.name),
            ));
        }

        let url = spec.tree.url.trim();
        if url.is_empty() {
            return Err(self.err("tree.url", "empty"));
        }
        let url = if url.contains("://") || url.starts_with("git@") {
            url.to_owned()
        } else {
            self.host_path(url).display().to_string()
        };

        let base = match spec.kernel.base.trim() {
            "tinyconfig" => ConfigBase::Tinyconfig,
            "defconfig" => ConfigBase::Defconfig,
            "allnoconfig" => ConfigBase::Allnoconfig,
            "" => return Err(self.err("kernel.base", "empty")),
            file => ConfigBase::File(self.existing_file("kernel.base", file)?),
        };
        let mut fragments = Vec::new();
        for f in &spec.kernel.fragments {
            let beside_job = self.host_path(f);
            if beside_job.is_file() {
                fragments.push(beside_job);
                continue;
            }
            // A bare name is one of the shipped fragments: `kernel-configs/`
            // in the job's directory or the nearest one above it.
            let shipped = (!f.contains('/'))
                .then(|| {
                    self.base_dir()
                        .ancestors()
                        .map(|d| d.join("kernel-configs").join(f))
                        .find(|p| p.is_file())
                })
                .flatten();
            match shipped {
                Some(p) => fragments.push(p),
                None => {
                    return Err(self.err(
                        "kernel.fragments",
                        format_args!(
                            "no fragment `{f}` (not at {} nor in a kernel-configs/ directory above the job)",
                            beside_job.display()
                        ),
                    ));
                }
            }
        }

        let r = &spec.reproducer;
        let script = match (&r.script, &r.script_file) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "reproducer.script",
                    "give `script` or `script_file`, not both",
                ));
            }
            (None, None) => {
                return Err(self.err("reproducer", "needs `script` or `script_file`"));
            }
            (Some(s), None) => s.clone(),
            (None, Some(f)) => {
                let p = self.existing_file("reproducer.script_file", f)?;
                std::fs::read_to_string(&p).map_err(|e| {
                    self.err(
                        "reproducer.script_file",
                        format_args!("{}: {e}", p.display()),
                    )
                })?
            }
        };
        if script.trim().is_empty() {
            return Err(self.err("reproducer.script", "empty"));
        }
        let mut files = Vec::new();
        for f in &r.files {
            let host = self.existing_file("reproducer.files", f)?;
            let name = host
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "run" || files.iter().any(|(_, n)| *n == name) {
                return Err(self.err(
                    "reproducer.files",
                    format_args!("two files would be /repro/{name} in the guest"),
                ));
            }
            files.push((host, name));
        }
        let timeout = parse_duration(&r.timeout).ok_or_else(|| {
            self.err(
                "reproducer.timeout",
                format_args!("`{}` is not a duration (like 90s, 10m, 1h)", r.timeout),
            )
        })?;
        if timeout.is_zero() {
            return Err(self.err("reproducer.timeout", "must be more than 0"));
        }

        let cpus = spec.vm.cpus.unwrap_or(2);
        if !(1..=64).contains(&cpus) {
            return Err(self.err("vm.cpus", format_args!("{cpus} is not within 1..=64")));
        }
        let memory_mib = match &spec.vm.memory {
            None => 512,
            Some(m) => parse_size_mib(m)
                .filter(|&m| (64..=1 << 20).contains(&m))
                .ok_or_else(|| {
                    self.err(
                        "vm.memory",
                        format_args!("`{m}` is not a size from 64M to 1T (like 512M, 2G)"),
                    )
                })?,
        };
        let cmdline = spec.vm.cmdline.unwrap_or_default().trim().to_owned();
        if cmdline.contains('\n') {
            return Err(self.err("vm.cmdline", "must be one line"));
        }

        let known = Kind::ALL.map(Kind::as_str);
        for k in &spec.target.kinds {
            if !known.contains(&k.as_str()) {
                return Err(self.err(
                    "target.kinds",
                    format_args!("unknown kind `{k}` (known: {})", known.join(", ")),
                ));
            }
        }
        if spec.target.titles.iter().any(|t| t.trim().is_empty()) {
            return Err(self.err("target.titles", "an empty title"));
        }

        let github = match spec.github.as_deref().map(str::trim) {
            None => None,
            Some(repo) if crate::checks::github::split_repo(repo).is_ok() => Some(repo.to_owned()),
            Some(repo) => {
                return Err(self.err(
                    "github",
                    format_args!("`{repo}` is not a repository (owner/name)"),
                ));
            }
        };
        if let Some(pw) = &spec.patchwork
            && !is_http_url(&pw.url)
        {
            return Err(self.err(
                "patchwork.url",
                format_args!("`{}` is not an http(s) URL", pw.url),
            ));
        }

        let l = &spec.limits;
        let runs = l.runs.unwrap_or(20);
        if runs == 0 {
            return Err(self.err("limits.runs", "must be at least 1"));
        }
        let parallel = l.parallel.unwrap_or(2);
        if parallel == 0 {
            return Err(self.err("limits.parallel", "must be at least 1"));
        }
        let limits = Limits {
            runs,
            parallel,
            boot_timeout: self.duration(
                "limits.boot_timeout",
                l.boot_timeout.as_deref(),
                Duration::from_secs(120),
            )?,
            silence_timeout: self.duration(
                "limits.silence_timeout",
                l.silence_timeout.as_deref(),
                Duration::from_secs(300),
            )?,
            crash_grace: self.duration(
                "limits.crash_grace",
                l.crash_grace.as_deref(),
                Duration::from_secs(15),
            )?,
        };

        Ok(JobPlan {
            name,
            path: std::path::absolute(self.path).unwrap_or_else(|_| self.path.to_owned()),
            description: spec.description.unwrap_or_default().trim().to_owned(),
            tree: Tree {
                url,
                branch: spec.tree.branch,
            },
            lists: spec.lists,
            github,
            patchwork: spec.patchwork,
            kernel: KernelConfig { base, fragments },
            reproducer: Reproducer {
                script,
                files,
                timeout,
            },
            vm: Vm {
                cpus,
                memory_mib,
                cmdline,
            },
            target: Target {
                titles: spec.target.titles,
                kinds: spec.target.kinds,
            },
            limits,
            requires: spec.requires,
        })
    }
}

/// Whether `url` is an http or https URL.
pub(crate) fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// A path written in `file`: `~/` is the home directory, relative paths
/// are relative to the file's directory.
pub(crate) fn path_in(file: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_owned())
        .join(p)
}

/// `90`, `90s`, `10m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `512M`, `2G`, `1024` (MiB) to MiB.
fn parse_size_mib(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, mult) = match s.char_indices().last()? {
        (i, 'M' | 'm') => (&s[..i], 1),
        (i, 'G' | 'g') => (&s[..i], 1024),
        (i, 'T' | 't') => (&s[..i], 1024 * 1024),
        _ => (s, 1),
    };
    n.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// The 1-based line of a dotted field (`limits.runs`) in block-style YAML,
/// or of its nearest parent that is present.
pub(crate) fn line_of(text: &str, field: &str) -> Option<usize> {
    let mut found = None;
    let mut from = 0;
    let mut min_indent = 0;
    let lines: Vec<&str> = text.lines().collect();
    for key in field.split('.') {
        let block = lines.iter().enumerate().skip(from).filter(|(_, l)| {
            let body = l.trim_start();
            !body.is_empty() && !body.starts_with('#')
        });
        // A nested key is looked for in its parent's block only (a parent
        // written `{url: x}` has none).
        let hit = block
            .take_while(|(_, l)| l.len() - l.trim_start().len() >= min_indent)
            .find_map(|(i, l)| {
                let indent = l.len() - l.trim_start().len();
                let body = l.trim_start().trim_start_matches("- ");
                (body.starts_with(key) && body[key.len()..].trim_start().starts_with(':'))
                    .then_some((i, indent))
            });
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                from = i + 1;
                min_indent = indent + 1;
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "s", "10x", "m10", "1.5s", "-3s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("512M"), Some(512));
        assert_eq!(parse_size_mib("2G"), Some(2048));
        assert_eq!(parse_size_mib("300"), Some(300));
        assert_eq!(parse_size_mib("lots"), None);
    }

    #[test]
    fn field_lines() {
        let text = "name: x\nvm:\n  cpus: 3\nlimits:\n  runs: 0\n";
        assert_eq!(line_of(text, "limits.runs"), Some(5));
        assert_eq!(line_of(text, "vm.cpus"), Some(3));
        assert_eq!(line_of(text, "vm.memory"), Some(2));
        assert_eq!(line_of(text, "tree"), None);
    }
}
