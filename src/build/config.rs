//! Kernel configurations: a base (`make tinyconfig`, ... or a file) plus
//! fragments merged onto it in order, the way the kernel's
//! `scripts/kconfig/merge_config.sh` does, then checked against what
//! `make olddefconfig` kept.
//!
//! Two steps: [`KernelConfig`] is the request as written (paths);
//! [`KernelConfig::load`] reads and parses it into a [`ConfigPlan`], which
//! holds the contents a build applies and the hash that names the result.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// What the fragments are merged onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigBase {
    /// `make tinyconfig`: the smallest kernel, for QEMU guests.
    Tinyconfig,
    /// `make allnoconfig`.
    Allnoconfig,
    /// `make defconfig`: the architecture's default configuration.
    Defconfig,
    /// A complete `.config` file, used as it is.
    File(PathBuf),
}

/// Where a base comes from.
pub(crate) enum BaseSource<'a> {
    Target(&'static str),
    File(&'a Path),
}

impl ConfigBase {
    pub(crate) fn source(&self) -> BaseSource<'_> {
        match self {
            ConfigBase::Tinyconfig => BaseSource::Target("tinyconfig"),
            ConfigBase::Allnoconfig => BaseSource::Target("allnoconfig"),
            ConfigBase::Defconfig => BaseSource::Target("defconfig"),
            ConfigBase::File(path) => BaseSource::File(path),
        }
    }
}

impl fmt::Display for ConfigBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source() {
            BaseSource::Target(target) => f.write_str(target),
            BaseSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A kernel configuration as requested: a base and fragment files, applied
/// in order (a later fragment wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    pub base: ConfigBase,
    pub fragments: Vec<PathBuf>,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config fragment {path}: {source}")]
    ReadFragment {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read base config {path}: {source}")]
    ReadBase {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}: {text:?}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        problem: &'static str,
        text: String,
    },
}

/// One option a fragment sets, where it does, and the value as `.config`
/// writes it: `y`, `m`, `n` (also for `# CONFIG_X is not set`), a quoted
/// string or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionRequest {
    /// With the `CONFIG_` prefix.
    pub name: String,
    pub value: String,
    pub fragment: PathBuf,
    pub line: usize,
}

/// A fragment that sets an option an earlier fragment (or an earlier line)
/// set to another value. The later one wins, as in `merge_config.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub earlier: OptionRequest,
    pub later: OptionRequest,
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}={} overrides {}={} from {}:{}",
            self.later.fragment.display(),
            self.later.line,
            self.later.name,
            self.later.value,
            self.earlier.name,
            self.earlier.value,
            self.earlier.fragment.display(),
            self.earlier.line
        )
    }
}

/// A requested option that Kconfig did not keep (an unmet dependency, a
/// choice, a value out of range, an option this tree does not have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedOption {
    pub request: OptionRequest,
    /// The value in the final `.config`; `None` when it is not set there.
    pub actual: Option<String>,
}

impl fmt::Display for DroppedOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} (asked by {}:{}) is ",
            self.request.name,
            self.request.value,
            self.request.fragment.display(),
            self.request.line
        )?;
        match &self.actual {
            Some(value) => write!(f, "{value}"),
            None => f.write_str("not set"),
        }
    }
}

/// The identity of a configuration: SHA-1 of its base and of its fragments'
/// contents, in order (their paths do not count).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigHash(String);

impl ConfigHash {
    /// The full hash, 40 hexadecimal digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 digits, which name cached kernels.
    pub fn short(&self) -> &str {
        &self.0[..16]
    }
}

impl fmt::Display for ConfigHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The base as a build makes it: a make target, or a file's contents.
#[derive(Debug, Clone)]
pub(crate) enum PlannedBase {
    Target(&'static str),
    File { path: PathBuf, contents: Vec<u8> },
}

/// A configuration read and checked: what a build applies.
#[derive(Debug, Clone)]
pub struct ConfigPlan {
    base: PlannedBase,
    /// The merged requests, one per option, in order of first appearance.
    requests: Vec<OptionRequest>,
    overrides: Vec<Override>,
    hash: ConfigHash,
}

impl KernelConfig {
    /// Reads the base file (if any) and the fragments, and parses the
    /// fragments. Overrides are logged as warnings and listed in the plan.
    pub fn load(&self) -> Result<ConfigPlan, ConfigError> {
        // Length-prefixed parts, so that no two different inputs serialize
        // the same way.
        let mut identity = b"lorebot kernel config v1\n".to_vec();
        let base = match self.base.source() {
            BaseSource::File(path) => {
                let contents = std::fs::read(path).map_err(|source| ConfigError::ReadBase {
                    path: path.to_owned(),
                    source,
                })?;
                identity.extend_from_slice(format!("base file {}\n", contents.len()).as_bytes());
                identity.extend_from_slice(&contents);
                PlannedBase::File {
                    path: path.to_owned(),
                    contents,
                }
            }
            BaseSource::Target(target) => {
                identity.extend_from_slice(format!("base make {target}\n").as_bytes());
                PlannedBase::Target(target)
            }
        };

        let mut requests: Vec<OptionRequest> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut overrides = Vec::new();
        for path in &self.fragments {
            let contents = std::fs::read(path).map_err(|source| ConfigError::ReadFragment {
                path: path.clone(),
                source,
            })?;
            identity.extend_from_slice(format!("fragment {}\n", contents.len()).as_bytes());
            identity.extend_from_slice(&contents);
            for request in parse_fragment(path, &contents)? {
                match index.get(&request.name) {
                    Some(&i) => {
                        if requests[i].value != request.value {
                            let o = Override {
                                earlier: requests[i].clone(),
                                later: request.clone(),
                            };
                            tracing::warn!("config fragment {o}");
                            overrides.push(o);
                        }
                        requests[i] = request;
                    }
                    None => {
                        index.insert(request.name.clone(), requests.len());
                        requests.push(request);
                    }
                }
            }
        }
        let hash = git2::Oid::hash_object(git2::ObjectType::Blob, &identity)
            .expect("hashing a buffer in memory does not fail")
            .to_string();
        Ok(ConfigPlan {
            base,
            requests,
            overrides,
            hash: ConfigHash(hash),
        })
    }
}

impl ConfigPlan {
    pub fn hash(&self) -> &ConfigHash {
        &self.hash
    }

    /// Every option the fragments set, with the value that wins.
    pub fn requests(&self) -> &[OptionRequest] {
        &self.requests
    }

    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    pub(crate) fn base(&self) -> &PlannedBase {
        &self.base
    }

    /// The base `.config` with every requested option replaced by the
    /// requested value (appended at the end, as `merge_config.sh` does).
    pub(crate) fn merge_onto(&self, base: &str) -> String {
        let requested: HashMap<&str, ()> = self
            .requests
            .iter()
            .map(|r| (r.name.as_str(), ()))
            .collect();
        let mut merged = String::with_capacity(base.len() + 64 * self.requests.len());
        for line in base.lines() {
            let sets_requested =
                config_line(line).is_some_and(|(name, _)| requested.contains_key(name));
            if !sets_requested {
                merged.push_str(line);
                merged.push('\n');
            }
        }
        for r in &self.requests {
            if r.value == "n" {
                merged.push_str(&format!("# {} is not set\n", r.name));
            } else {
                merged.push_str(&format!("{}={}\n", r.name, r.value));
            }
        }
        merged
    }

    /// The requests that the final `.config` (after `make olddefconfig`)
    /// does not honour.
    pub fn dropped(&self, final_config: &str) -> Vec<DroppedOption> {
        let actual: HashMap<&str, &str> = final_config.lines().filter_map(config_line).collect();
        self.requests
            .iter()
            .filter_map(|r| {
                let value = actual.get(r.name.as_str()).copied().filter(|v| *v != "n");
                let kept = match value {
                    Some(v) => v == r.value,
                    None => r.value == "n",
                };
                (!kept).then(|| DroppedOption {
                    request: r.clone(),
                    actual: value.map(str::to_owned),
                })
            })
            .collect()
    }
}

/// The option a `.config` line sets and its value (`n` for
/// `# CONFIG_X is not set`), or `None` for comments and blank lines.
fn config_line(line: &str) -> Option<(&str, &str)> {
    if let Some(rest) = line.strip_prefix("# ") {
        let name = rest.strip_suffix(" is not set")?;
        return is_option_name(name).then_some((name, "n"));
    }
    let (name, value) = line.split_once('=')?;
    is_option_name(name).then_some((name, value))
}

fn is_option_name(name: &str) -> bool {
    name.strip_prefix("CONFIG_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Parses a fragment: `CONFIG_X=y|m|n|"string"|123|0x1f`,
/// `# CONFIG_X is not set`, other comments and blank lines.
pub(crate) fn parse_fragment(
    path: &Path,
    contents: &[u8],
) -> Result<Vec<OptionRequest>, ConfigError> {
    let mut requests = Vec::new();
    for (i, raw) in contents.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let syntax = |problem, text: &str| ConfigError::Syntax {
            path: path.to_owned(),
            line,
            problem,
            text: text.to_owned(),
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(syntax("not UTF-8", &String::from_utf8_lossy(raw)));
        };
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        if let Some(comment) = text.strip_prefix('#') {
            if let Some(name) = comment
                .strip_prefix(' ')
                .and_then(|c| c.strip_suffix(" is not set"))
                .filter(|name| name.starts_with("CONFIG_"))
            {
                if !is_option_name(name) {
                    return Err(syntax("bad option name", text));
                }
                requests.push(OptionRequest {
                    name: name.to_owned(),
                    value: "n".to_owned(),
                    fragment: path.to_owned(),
                    line,
                });
            }
            continue;
        }
        let Some((name, value)) = text.split_once('=') else {
            return Err(syntax(
                "expected CONFIG_NAME=VALUE or # CONFIG_NAME is not set",
                text,
            ));
        };
        if !is_option_name(name) {
            return Err(syntax(
                "bad option name (CONFIG_ then letters, digits, _)",
                text,
            ));
        }
        if !is_value(value) {
            return Err(syntax(
                "bad value (y, m, n, a \"quoted string\", a decimal or 0x hex number)",
                text,
            ));
        }
        requests.push(OptionRequest {
            name: name.to_owned(),
            value: value.to_owned(),
            fragment: path.to_owned(),
            line,
        });
    }
    Ok(requests)
}

fn is_value(value: &str) -> bool {
    match value {
        "y" | "m" | "n" => true,
        _ if value.starts_with('"') => is_quoted_string(value),
        _ => {
            if let Some(hex) = value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
            {
                !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
            } else {
                let digits = value.strip_prefix('-').unwrap_or(value);
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            }
        }
    }
}

/// A Kconfig string: quoted, with `\"` and `\\` escapes, nothing after.
fn is_quoted_string(value: &str) -> bool {
    let mut chars = value.chars().skip(1);
    while let Some(c) = chars.next() {
        match c {
            '\\' if !matches!(chars.next(), Some('"' | '\\')) => return false,
            '"' => return chars.next().is_none(),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String, usize)>, ConfigError> {
        parse_fragment(Path::new("x.config"), text.as_bytes())
            .map(|rs| rs.into_iter().map(|r| (r.name, r.value, r.line)).collect())
    }

    fn syntax_error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(ConfigError::Syntax { line, text, .. }) => (line, text),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn fragment_values_of_every_kind() {
        let got = parse(
            "# lorebot: comment\n\nCONFIG_A=y\nCONFIG_B=m\nCONFIG_C=n\n# CONFIG_D is not set\n\
             CONFIG_E=\"console=ttyS0 \\\"quoted\\\"\"\nCONFIG_F=-5\nCONFIG_G=0x1f  \r\n",
        )
        .unwrap();
        let want = [
            ("CONFIG_A", "y", 3),
            ("CONFIG_B", "m", 4),
            ("CONFIG_C", "n", 5),
            ("CONFIG_D", "n", 6),
            ("CONFIG_E", "\"console=ttyS0 \\\"quoted\\\"\"", 7),
            ("CONFIG_F", "-5", 8),
            ("CONFIG_G", "0x1f", 9),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(n, v, l)| (n.to_string(), v.to_string(), *l))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn fragment_errors_name_the_line_and_its_text() {
        assert_eq!(
            syntax_error("CONFIG_A=y\nCONFIG_B = y\n"),
            (2, "CONFIG_B = y".to_owned())
        );
        assert_eq!(syntax_error("\n\nKASAN=y\n").0, 3);
        assert_eq!(syntax_error("CONFIG_A=yes\n").0, 1);
        assert_eq!(syntax_error("CONFIG_A=\"unterminated\n").0, 1);
        assert_eq!(syntax_error("CONFIG_A=\"a\" trailing\n").0, 1);
        assert_eq!(syntax_error("CONFIG_A\n").0, 1);
        assert_eq!(syntax_error("CONFIG_=y\n").0, 1);
        assert_eq!(syntax_error("# CONFIG_A-B is not set\n").0, 1);
        assert_eq!(syntax_error("CONFIG_A=0x\n").0, 1);
        let bad_utf8 = parse_fragment(Path::new("x.config"), b"CONFIG_A=y\nCONFIG_B=\"\xff\"\n");
        assert!(matches!(bad_utf8, Err(ConfigError::Syntax { line: 2, .. })));
        let shown = parse("CONFIG_A=y\nCONFIG_B = y\n").unwrap_err().to_string();
        assert!(shown.starts_with("x.config:2: "), "{shown}");
        assert!(shown.ends_with("\"CONFIG_B = y\""), "{shown}");
    }

    fn write_fragments(dir: &Path, fragments: &[(&str, &str)]) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).unwrap();
        fragments
            .iter()
            .map(|(name, text)| {
                let p = dir.join(name);
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect()
    }

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lorebot-config-{name}-{}", std::process::id()))
    }

    #[test]
    fn later_fragment_wins_and_the_override_is_reported() {
        let dir = scratch("override");
        let fragments = write_fragments(
            &dir,
            &[
                ("a.config", "CONFIG_A=y\nCONFIG_T=5\nCONFIG_S=y\n"),
                ("b.config", "CONFIG_T=5\n# CONFIG_A is not set\n"),
            ],
        );
        let plan = KernelConfig {
            base: ConfigBase::Tinyconfig,
            fragments: fragments.clone(),
        }
        .load()
        .unwrap();
        let requests: Vec<_> = plan
            .requests()
            .iter()
            .map(|r| (r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            requests,
            [("CONFIG_A", "n"), ("CONFIG_T", "5"), ("CONFIG_S", "y")]
        );
        // Setting the same value again is not an override.
        assert_eq!(plan.overrides().len(), 1);
        let o = &plan.overrides()[0];
        assert_eq!(
            (o.earlier.fragment.as_path(), o.earlier.line),
            (fragments[0].as_path(), 1)
        );
        assert_eq!(
            (o.later.fragment.as_path(), o.later.line),
            (fragments[1].as_path(), 2)
        );

        let merged = plan.merge_onto(
            "# comment\nCONFIG_A=y\nCONFIG_KEEP=y\n# CONFIG_S is not set\nCONFIG_T=60\n",
        );
        assert_eq!(
            merged,
            "# comment\nCONFIG_KEEP=y\n# CONFIG_A is not set\nCONFIG_T=5\nCONFIG_S=y\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_options_compare_with_the_final_config() {
        let dir = scratch("dropped");
        let fragments = write_fragments(
            &dir,
            &[(
                "f.config",
                "CONFIG_KEPT=y\nCONFIG_GONE=y\n# CONFIG_OFF is not set\nCONFIG_ABSENT_OFF=n\n\
                 CONFIG_CHANGED=5\nCONFIG_TURNED_ON=n\n",
            )],
        );
        let plan = KernelConfig {
            base: ConfigBase::Tinyconfig,
            fragments,
        }
        .load()
        .unwrap();
        let dropped = plan.dropped(
            "CONFIG_KEPT=y\n# CONFIG_GONE is not set\n# CONFIG_OFF is not set\n\
             CONFIG_CHANGED=60\nCONFIG_TURNED_ON=y\n",
        );
        let got: Vec<_> = dropped
            .iter()
            .map(|d| (d.request.name.as_str(), d.request.line, d.actual.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("CONFIG_GONE", 2, None),
                ("CONFIG_CHANGED", 5, Some("60")),
                ("CONFIG_TURNED_ON", 6, Some("y")),
            ]
        );
        assert!(
            dropped[0]
                .to_string()
                .starts_with("CONFIG_GONE=y (asked by ")
        );
        assert!(dropped[0].to_string().ends_with("f.config:2) is not set"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hash_depends_on_base_and_fragment_contents_in_order_not_paths() {
        let dir = scratch("hash");
        let f = write_fragments(
            &dir,
            &[
                ("a.config", "CONFIG_A=y\n"),
                ("b.config", "CONFIG_B=y\n"),
                ("a-copy.config", "CONFIG_A=y\n"),
            ],
        );
        let hash = |base: ConfigBase, fragments: &[&PathBuf]| {
            KernelConfig {
                base,
                fragments: fragments.iter().map(|p| p.to_path_buf()).collect(),
            }
            .load()
            .unwrap()
            .hash()
            .clone()
        };
        let ab = hash(ConfigBase::Tinyconfig, &[&f[0], &f[1]]);
        assert_eq!(ab, hash(ConfigBase::Tinyconfig, &[&f[2], &f[1]]));
        assert_ne!(ab, hash(ConfigBase::Tinyconfig, &[&f[1], &f[0]]));
        assert_ne!(ab, hash(ConfigBase::Defconfig, &[&f[0], &f[1]]));
        assert_ne!(ab, hash(ConfigBase::File(f[0].clone()), &[&f[0], &f[1]]));
        // A base file's contents count, not its path.
        assert_eq!(
            hash(ConfigBase::File(f[0].clone()), &[]),
            hash(ConfigBase::File(f[2].clone()), &[])
        );
        assert_eq!(ab.as_str().len(), 40);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_fragment_names_the_file() {
        let err = KernelConfig {
            base: ConfigBase::Tinyconfig,
            fragments: vec![PathBuf::from("/nonexistent/lkdtm.config")],
        }
        .load()
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read config fragment /nonexistent/lkdtm.config: "),
            "{err}"
        );
    }
}
