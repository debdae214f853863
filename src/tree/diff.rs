//! Just enough of a diff parser to check the paths a patch touches and to
//! name the hunk git could not apply. It follows `git apply`'s reading:
//! file headers (`diff --git`, `---`/`+++`, rename and copy lines) outside
//! hunks, and hunks measured by their `@@` line counts so that a removed
//! line starting with `--` is not taken for a header.

use serde::Serialize;

/// A path that would reach outside the work tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathProblem {
    Absolute,
    ParentDir,
    GitDir,
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathProblem::Absolute => "an absolute path",
            PathProblem::ParentDir => "a '..' component",
            PathProblem::GitDir => "a path through .git",
        })
    }
}

/// A hunk's `@@` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HunkHeader {
    pub old_start: u64,
    pub header: String,
}

/// One file's part of a patch. Names are as git applies them: without
/// the `a/` or `b/` prefix; `None` for /dev/null.
#[derive(Debug, Default)]
pub struct FileDiff {
    pub old: Option<String>,
    pub new: Option<String>,
    pub hunks: Vec<HunkHeader>,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub files: Vec<FileDiff>,
    /// The first path that reaches outside the tree, as written.
    pub outside: Option<(String, PathProblem)>,
}

impl Parsed {
    fn check(&mut self, raw: &str) {
        if self.outside.is_none()
            && let Some(problem) = path_problem(raw)
        {
            self.outside = Some((raw.to_owned(), problem));
        }
    }

    fn current(&mut self) -> &mut FileDiff {
        if self.files.is_empty() {
            self.files.push(FileDiff::default());
        }
        let last = self.files.len() - 1;
        &mut self.files[last]
    }

    /// The hunk of `file` that starts at old line `line`, numbered from 1.
    pub fn hunk(&self, file: &str, line: u64) -> Option<(usize, &HunkHeader)> {
        self.files
            .iter()
            .filter(|f| f.old.as_deref() == Some(file) || f.new.as_deref() == Some(file))
            .flat_map(|f| f.hunks.iter().enumerate())
            .find(|(_, h)| h.old_start == line)
            .map(|(i, h)| (i + 1, h))
    }
}

/// Why `raw` (a name as written in a patch, prefix included) reaches
/// outside the tree, if it does.
pub fn path_problem(raw: &str) -> Option<PathProblem> {
    if raw.starts_with('/') {
        return Some(PathProblem::Absolute);
    }
    for component in raw.split('/') {
        if component == ".." {
            return Some(PathProblem::ParentDir);
        }
        // Case-insensitive file systems would take `.GIT` for `.git`.
        if component.eq_ignore_ascii_case(".git") {
            return Some(PathProblem::GitDir);
        }
    }
    None
}

/// Drops the first component (`a/`, `b/`), as `git am` (-p1) does.
fn strip_prefix(name: &str) -> String {
    name.split_once('/')
        .map_or(name, |(_, rest)| rest)
        .to_owned()
}

/// Undoes git's C-style quoting of a name that starts with `"`; returns the
/// name and the rest of the line.
fn unquote(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut bytes = Vec::new();
    let mut it = body.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => {
                return Some((String::from_utf8_lossy(&bytes).into_owned(), &body[i + 1..]));
            }
            '\\' => {
                let (_, e) = it.next()?;
                match e {
                    'n' => bytes.push(b'\n'),
                    't' => bytes.push(b'\t'),
                    'a' => bytes.push(7),
                    'b' => bytes.push(8),
                    'f' => bytes.push(12),
                    'r' => bytes.push(b'\r'),
                    'v' => bytes.push(11),
                    '0'..='3' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            let (_, d) = it.next()?;
                            v = v * 8 + d.to_digit(8)?;
                        }
                        bytes.push(u8::try_from(v).ok()?);
                    }
                    other => {
                        let mut buf = [0; 4];
                        bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            other => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// The name on a `---` or `+++` line: quoted, or up to a tab (GNU diff
/// puts a timestamp there).
fn header_name(rest: &str) -> String {
    if let Some((name, _)) = unquote(rest) {
        return name;
    }
    rest.split('\t').next().unwrap_or(rest).to_owned()
}

/// The two names of a `diff --git` line, when they can be told apart: both
/// quoted, or unquoted and equal after their prefix (git's own rule).
fn git_names(rest: &str) -> Option<(String, String)> {
    if let Some((a, tail)) = unquote(rest) {
        let tail = tail.trim_start();
        let b = unquote(tail).map_or_else(|| tail.to_owned(), |(b, _)| b);
        return Some((a, b));
    }
    if let Some(idx) = rest.find(" \"") {
        let (b, _) = unquote(&rest[idx + 1..])?;
        return Some((rest[..idx].to_owned(), b));
    }
    rest.match_indices(' ').find_map(|(i, _)| {
        let (a, b) = (&rest[..i], &rest[i + 1..]);
        (strip_prefix(a) == strip_prefix(b)).then(|| (a.to_owned(), b.to_owned()))
    })
}

/// Parses the output of `git mailinfo` (the patch part of a mail).
pub fn parse(text: &str) -> Parsed {
    let mut p = Parsed::default();
    // Lines left in the current hunk, old side and new side.
    let mut left = (0u64, 0u64);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if left != (0, 0) {
            let in_hunk = match line.as_bytes().first() {
                // Mailers strip the space of empty context lines.
                None | Some(b' ') => {
                    left = (left.0.saturating_sub(1), left.1.saturating_sub(1));
                    true
                }
                Some(b'-') => {
                    left.0 = left.0.saturating_sub(1);
                    true
                }
                Some(b'+') => {
                    left.1 = left.1.saturating_sub(1);
                    true
                }
                Some(b'\\') => true,
                // A hunk shorter than its counts: read on as headers.
                _ => {
                    left = (0, 0);
                    false
                }
            };
            if in_hunk {
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("diff --git ") {
            p.files.push(FileDiff::default());
            match git_names(rest) {
                Some((a, b)) => {
                    p.check(&a);
                    p.check(&b);
                    let f = p.current();
                    f.old = Some(strip_prefix(&a));
                    f.new = Some(strip_prefix(&b));
                }
                // Names that cannot be told apart: check every piece.
                None => rest.split(' ').for_each(|piece| p.check(piece)),
            }
        } else if let Some(rest) = line.strip_prefix("--- ") {
            let name = header_name(rest);
            if p.files.last().is_none_or(|f| !f.hunks.is_empty()) {
                p.files.push(FileDiff::default());
            }
            if name == "/dev/null" {
                p.current().old = None;
            } else {
                p.check(&name);
                p.current().old = Some(strip_prefix(&name));
            }
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            let name = header_name(rest);
            if name == "/dev/null" {
                p.current().new = None;
            } else {
                p.check(&name);
                p.current().new = Some(strip_prefix(&name));
            }
        } else if let Some(rest) = line
            .strip_prefix("rename from ")
            .or_else(|| line.strip_prefix("copy from "))
        {
            let name = header_name(rest);
            p.check(&name);
            p.current().old = Some(name);
        } else if let Some(rest) = line
            .strip_prefix("rename to ")
            .or_else(|| line.strip_prefix("copy to "))
        {
            let name = header_name(rest);
            p.check(&name);
            p.current().new = Some(name);
        } else if line.starts_with("@@ -")
            && let Some((old_start, old_len, new_len)) = hunk_counts(line)
        {
            left = (old_len, new_len);
            p.current().hunks.push(HunkHeader {
                old_start,
                header: line.to_owned(),
            });
        }
    }
    p
}

/// `@@ -OLD[,LEN] +NEW[,LEN] @@`: the old start and both lengths.
fn hunk_counts(line: &str) -> Option<(u64, u64, u64)> {
    let mut parts = line.split(' ');
    let old = parts.nth(1)?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let range = |r: &str| -> Option<(u64, u64)> {
        match r.split_once(',') {
            Some((s, l)) => Some((s.parse().ok()?, l.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_len) = range(old)?;
    let (_, new_len) = range(new)?;
    Some((old_start, old_len, new_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_line_starting_with_dashes_is_not_a_file_header() {
        let p = parse(
            "diff --git a/x.sql b/x.sql\n--- a/x.sql\n+++ b/x.sql\n@@ -1,2 +1,1 @@\n--- /etc/passwd\n keep\n",
        );
        assert_eq!(p.outside, None);
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].old.as_deref(), Some("x.sql"));
    }

    #[test]
    fn quoted_names_are_unquoted_before_checking() {
        let p = parse("diff --git \"a/\\056\\056/x\" \"b/\\056\\056/x\"\n");
        assert_eq!(
            p.outside,
            Some(("a/../x".to_owned(), PathProblem::ParentDir))
        );
    }

    #[test]
    fn renames_are_checked_without_prefix() {
        let p = parse(
            "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to .GIT/config\n",
        );
        assert_eq!(
            p.outside,
            Some((".GIT/config".to_owned(), PathProblem::GitDir))
        );
    }

    #[test]
    fn hunks_are_numbered_per_file() {
        let p = parse(
            "--- a/f.c\n+++ b/f.c\n@@ -3,2 +3,2 @@ one\n-a\n+b\n x\n@@ -40 +40 @@ two\n-c\n+d\n",
        );
        let (n, h) = p.hunk("f.c", 40).unwrap();
        assert_eq!((n, h.header.as_str()), (2, "@@ -40 +40 @@ two"));
        assert!(p.hunk("f.c", 41).is_none());
    }
}
