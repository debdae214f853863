//! Titling one report: the lines of a crash, from its header on, become a
//! syzkaller-style title, a guilty frame and a `corrupted` flag.

use std::sync::LazyLock;

use regex::bytes::Regex;

use super::oops::{Format, Oops, compile, table};
use super::stack;
use super::{Kind, MAX_TITLE_LEN};

pub(crate) static OOPSES: LazyLock<Vec<Oops>> = LazyLock::new(table);

/// `[  108.043488]` with an optional `[ T1234]` / `[ C0]` caller field.
static CONSOLE_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:.* login: )?(?:\<[0-9]+\>)?\[ *([0-9]+\.[0-9]+)\](\[ *(?:C|T)[0-9]+\])? ",
    )
});

static QUESTIONABLE: LazyLock<Regex> = LazyLock::new(|| compile(r"^ *(\[\<[0-9a-f]+\>\])? ?\? "));

/// Where a line came from: program output, the console, or the console with a
/// printk caller id (task or CPU).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    Output,
    Console,
    Caller(Vec<u8>),
}

pub(crate) fn context(line: &[u8]) -> Context {
    match CONSOLE_PREFIX.captures(line) {
        None => Context::Output,
        Some(c) => match c.get(2) {
            None => Context::Console,
            Some(m) => Context::Caller(m.as_bytes().to_vec()),
        },
    }
}

/// Console timestamp of a line, in seconds.
pub(crate) fn timestamp(line: &[u8]) -> Option<f64> {
    let c = CONSOLE_PREFIX.captures(line)?;
    std::str::from_utf8(c.get(1)?.as_bytes()).ok()?.parse().ok()
}

/// Strips the console prefix; reports whether the line is a `? ` frame.
/// With `keep_questionable`, such frames come back without the `? `.
fn strip_prefix(line: &[u8], ctx: &Context, keep_questionable: bool) -> (Vec<u8>, bool) {
    let mut line = line.strip_suffix(b"\r").unwrap_or(line);
    if *ctx != Context::Output
        && let Some(m) = CONSOLE_PREFIX.find(line)
    {
        line = &line[m.end()..];
    }
    // PowerPC marks unreliable frames with a suffix.
    if let Some(rest) = line.strip_suffix(b" (unreliable)") {
        if keep_questionable {
            return (rest.to_vec(), false);
        }
        return (Vec::new(), true);
    }
    if let Some(m) = QUESTIONABLE.find(line) {
        if keep_questionable {
            let mut out = b" ".to_vec();
            out.extend_from_slice(&line[m.end()..]);
            return (out, false);
        }
        // Program output keeps its `? ` lines (they never parse as frames);
        // console lines drop them, as syzkaller does.
        if *ctx != Context::Output {
            return (Vec::new(), true);
        }
    }
    (line.to_vec(), false)
}

/// Any header at all: one pass before the per-oops checks.
pub(crate) static ANY_HEADER: LazyLock<aho_corasick::AhoCorasick> = LazyLock::new(|| {
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(OOPSES.iter().map(|o| o.header))
        .expect("static headers")
});

/// Each header's searcher, built once.
static HEADER_FINDERS: LazyLock<Vec<memchr::memmem::Finder<'static>>> = LazyLock::new(|| {
    OOPSES
        .iter()
        .map(|o| memchr::memmem::Finder::new(o.header))
        .collect()
});

/// The oops a line starts, if any.
pub(crate) fn oops_of(line: &[u8]) -> Option<usize> {
    if !ANY_HEADER.is_match(line) {
        return None;
    }
    OOPSES.iter().zip(HEADER_FINDERS.iter()).position(|(o, f)| {
        f.find(line).is_some() && !o.suppressions.iter().any(|s| s.is_match(line))
    })
}

/// The die() banner of an oops: `invalid opcode: 0000 [#1] SMP`.
static DIE_BANNER: LazyLock<Regex> = LazyLock::new(|| compile(r": [0-9a-f]+ \[#[0-9]+\]"));

pub(crate) fn is_die_banner(line: &[u8]) -> bool {
    DIE_BANNER.is_match(line)
}

/// Whether `line` starts a report of its own inside the report that starts
/// at `first`. A kernel panic after a report is its consequence;
/// `unregister_netdevice: waiting` repeats every few seconds in the middle
/// of other output; the first die() banner after `kernel BUG at` or a bad
/// access is the same oops (`banner_seen`: the report already had one).
pub(crate) fn starts_next_report(first: &[u8], line: &[u8], banner_seen: bool) -> bool {
    let Some(i) = oops_of(line) else {
        return false;
    };
    let o = &OOPSES[i];
    if o.kind == Kind::Panic || o.header == b"unregister_netdevice: waiting for" {
        return false;
    }
    if !banner_seen
        && is_die_banner(line)
        && oops_of(first).is_some_and(|f| {
            matches!(
                OOPSES[f].kind,
                Kind::Bug | Kind::NullDeref | Kind::PagingFault
            )
        })
    {
        return false;
    }
    true
}

/// Index of the first line after `lines[0]` that starts another report.
pub(crate) fn next_report(lines: &[&[u8]]) -> Option<usize> {
    let mut banner_seen = false;
    for (i, line) in lines.iter().enumerate().skip(1) {
        if starts_next_report(lines[0], line, banner_seen) {
            return Some(i);
        }
        banner_seen |= is_die_banner(line);
    }
    None
}

pub(crate) struct Built {
    /// The report text, console prefixes stripped.
    pub text: Vec<u8>,
    /// Length of `text` that belongs to this crash (up to the next one).
    pub end: usize,
    /// Index (into the lines given) of the next report's header, if any.
    pub next_report: Option<usize>,
    /// Index of the last line that belongs to this report.
    pub last_line: usize,
}

/// Collects the report that starts at `lines[0]`.
pub(crate) fn build(lines: &[&[u8]], keep_questionable: bool) -> Built {
    let ctx = context(lines[0]);
    let mut text = Vec::new();
    let mut end = 0;
    let mut last_line = 0;
    let mut text_lines = 0;
    let mut skip_rest = false;
    let next_report = self::next_report(lines);
    for (i, line) in lines.iter().enumerate() {
        let ctx1 = context(line);
        let (stripped, questionable) = strip_prefix(line, &ctx1, keep_questionable);
        if ctx1 != ctx {
            continue;
        }
        if questionable {
            continue;
        }
        text_lines += 1;
        let mut skip_line = skip_rest;
        if memchr::memmem::find(line, b"Disabling lock debugging due to kernel taint").is_some() {
            skip_line = true;
        } else if text_lines > 25
            && memchr::memmem::find(line, b"Kernel panic - not syncing").is_some()
        {
            // With panic_on_warn the panic repeats the report's stack.
            skip_rest = true;
            skip_line = true;
        }
        if !skip_line {
            text.extend_from_slice(&stripped);
            text.push(b'\n');
            if next_report.is_none_or(|n| i < n) || matches!(ctx, Context::Caller(_)) {
                end = text.len();
                last_line = i;
            }
        }
    }
    Built {
        text,
        end,
        next_report,
        last_line,
    }
}

pub(crate) struct Description {
    pub title: String,
    pub alt_titles: Vec<String>,
    pub guilty_frame: Option<String>,
    pub corrupted: bool,
    pub kind: Kind,
    pub no_stack_trace: bool,
    /// The stack format's first anchor line (such as RIP) was not found.
    pub missed_anchor: bool,
}

fn render(fmt: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let idx: usize = after[..close].parse().unwrap_or(0);
                if let Some(a) = idx.checked_sub(1).and_then(|i| args.get(i)) {
                    out.push_str(a);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Titles `report` (the text from the oops header on) with the formats of
/// `oops`; the earliest matching format wins.
pub(crate) fn describe(report: &[u8], oops: &Oops, questionable: bool) -> Description {
    let mut start = usize::MAX;
    let mut best: Option<Description> = None;
    let mut matched_title = false;
    for f in &oops.formats {
        let Some(m) = f.title.find(report) else {
            continue;
        };
        if m.start() > start || (m.start() == start && best.is_some()) {
            continue;
        }
        if m.start() < start {
            best = None;
            start = m.start();
        }
        matched_title = true;
        if let Some(d) = describe_with(report, m.start(), oops, f, questionable) {
            best = Some(d);
        }
    }
    best.unwrap_or_else(|| {
        // No format: the header line itself is the title.
        let pos = memchr::memmem::find(report, oops.header).unwrap_or(0);
        let end = memchr::memchr(b'\n', &report[pos..]).map_or(report.len(), |e| pos + e);
        Description {
            title: sanitize(&String::from_utf8_lossy(&report[pos..end])),
            alt_titles: Vec::new(),
            guilty_frame: None,
            corrupted: matched_title,
            kind: oops.kind,
            no_stack_trace: false,
            missed_anchor: false,
        }
    })
}

/// Titles `report` with format `f`, whose title matched at `at`; `None` when
/// the format's report pattern does not match.
fn describe_with(
    report: &[u8],
    at: usize,
    oops: &Oops,
    f: &Format,
    questionable: bool,
) -> Option<Description> {
    let caps = f.report.as_ref().unwrap_or(&f.title).captures(report)?;
    let mut args: Vec<String> = caps
        .iter()
        .skip(1)
        .map(|g| {
            g.map_or(String::new(), |g| {
                String::from_utf8_lossy(g.as_bytes()).into_owned()
            })
        })
        .collect();
    let mut corrupted = f.corrupted;
    let mut guilty_frame = None;
    let mut missed_anchor = false;
    if let Some(st) = &f.stack {
        let e = stack::extract(&report[at..], st, questionable);
        corrupted |= e.corrupted || e.frame.is_none();
        missed_anchor = e.missed_first;
        args.push(e.frame.clone().unwrap_or_else(|| "corrupted".to_owned()));
        guilty_frame = e.frame;
    }
    Some(Description {
        title: sanitize(&render(f.fmt, &args)),
        alt_titles: f.alt.iter().map(|a| sanitize(&render(a, &args))).collect(),
        guilty_frame,
        corrupted,
        kind: f.kind.unwrap_or(oops.kind),
        no_stack_trace: f.no_stack_trace,
        missed_anchor,
    })
}

struct Replacement {
    re: regex::Regex,
    with: &'static str,
}

/// Normalisations that keep titles stable across runs: pids, addresses,
/// line numbers, offsets, numbers.
static TITLE_REPLACEMENTS: LazyLock<Vec<Replacement>> = LazyLock::new(|| {
    let r = |re: &str, with| Replacement {
        re: regex::Regex::new(re).expect("static pattern"),
        with,
    };
    vec![
        r(r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        r(r"syz-executor[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        r(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", "${1}ADDR"),
        r(r"([^a-zA-Z0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}", "${1}IP"),
        r(r"(\.\w+)(:[0-9]+)+", "${1}:LINE"),
        r(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", "${1}"),
        r(r"CPU#[0-9]+", "CPU"),
        r(r"(\W)(\d+)(\W|$)", "${1}NUM${3}"),
    ]
});

pub(crate) fn sanitize(title: &str) -> String {
    let mut t = title.trim().replace('\r', "");
    // Control characters and invalid UTF-8 have no place in a title.
    t.retain(|c| !c.is_control());
    for rep in TITLE_REPLACEMENTS.iter() {
        // Overlapping matches ("0,1,2") need repeated passes.
        loop {
            let next = rep.re.replace_all(&t, rep.with).into_owned();
            if next == t {
                break;
            }
            t = next;
        }
    }
    if t.len() > MAX_TITLE_LEN {
        let mut cut = MAX_TITLE_LEN;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
    }
    t.trim().to_owned()
}

static STACK_KEYS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"Call (?:T|t)race",
        r"Allocated:",
        r"Allocated by task [0-9]+:",
        r"Freed:",
        r"Freed by task [0-9]+:",
        r"[^k] backtrace:",
        r"Backtrace:",
    ]
    .iter()
    .map(|r| compile(r))
    .collect()
});

/// A report is corrupted when it lacks a stack trace, or a trace header has
/// no frame after it.
pub(crate) fn lacks_stack(report: &[u8], title: &str) -> bool {
    if title.ends_with(" in corrupted") {
        return true;
    }
    let mut has_trace = false;
    for key in STACK_KEYS.iter() {
        let Some(m) = key.find(report) else { continue };
        let after = &report[m.start()..];
        // `? ` frames kept in program-output context count as absent, as
        // they are in console context (where they are dropped).
        let frames_after = after
            .split(|&b| b == b'\n')
            .skip(1)
            .filter(|l| !QUESTIONABLE.is_match(l))
            .take(15)
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .any(|l| stack::frame_captures(l).is_some());
        if !frames_after {
            return true;
        }
        has_trace = true;
    }
    !has_trace
}
