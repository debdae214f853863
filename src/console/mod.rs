//! Console analysis: finds crash reports and stalls in kernel console output
//! and titles them the way syzkaller does.
//!
//! Input is bytes, streamed in constant memory: a fast multi-pattern search
//! skips ordinary boot output, and only the lines of a report are kept.

mod oops;
mod report;
mod stack;
mod stall;

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

pub use stack::Frame;
pub use stall::{GracePeriod, Stall, Stats, Task};

/// Titles are cut here, as syzkaller does.
pub const MAX_TITLE_LEN: usize = 120;
/// Longer lines are cut (and counted in `Stats::truncated_lines`).
const MAX_LINE: usize = 64 * 1024;
/// A report is collected up to this many lines or bytes.
const MAX_REPORT_LINES: usize = 2000;
const MAX_REPORT_BYTES: usize = 1 << 20;
/// A panic this close after a report's end is that report's consequence.
const PANIC_FOLLOW_LINES: u64 = 100;
/// Read size for streaming.
const CHUNK: usize = 1 << 20;

/// What kind of failure a crash is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    RcuStall,
    SoftLockup,
    HardLockup,
    HungTask,
    Gpf,
    NullDeref,
    PagingFault,
    Bug,
    Warning,
    Kasan,
    Kmsan,
    Kcsan,
    Ubsan,
    Lockdep,
    AtomicSleep,
    Panic,
    Leak,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::RcuStall,
        Kind::SoftLockup,
        Kind::HardLockup,
        Kind::HungTask,
        Kind::Gpf,
        Kind::NullDeref,
        Kind::PagingFault,
        Kind::Bug,
        Kind::Warning,
        Kind::Kasan,
        Kind::Kmsan,
        Kind::Kcsan,
        Kind::Ubsan,
        Kind::Lockdep,
        Kind::AtomicSleep,
        Kind::Panic,
        Kind::Leak,
        Kind::Other,
    ];

    /// Stalls and hangs: the kinds that carry stall details.
    pub fn is_stall(self) -> bool {
        matches!(
            self,
            Kind::RcuStall | Kind::SoftLockup | Kind::HardLockup | Kind::HungTask
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RcuStall => "rcu-stall",
            Kind::SoftLockup => "soft-lockup",
            Kind::HardLockup => "hard-lockup",
            Kind::HungTask => "hung-task",
            Kind::Gpf => "gpf",
            Kind::NullDeref => "null-deref",
            Kind::PagingFault => "paging-fault",
            Kind::Bug => "bug",
            Kind::Warning => "warning",
            Kind::Kasan => "kasan",
            Kind::Kmsan => "kmsan",
            Kind::Kcsan => "kcsan",
            Kind::Ubsan => "ubsan",
            Kind::Lockdep => "lockdep",
            Kind::AtomicSleep => "atomic-sleep",
            Kind::Panic => "panic",
            Kind::Leak => "leak",
            Kind::Other => "other",
        }
    }
}

/// One crash report found in the console output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    pub title: String,
    pub alt_titles: Vec<String>,
    pub kind: Kind,
    pub corrupted: bool,
    pub guilty_frame: Option<String>,
    /// 1-based line numbers of the report in the input.
    pub start_line: u64,
    pub end_line: u64,
    /// Console timestamp of the report's first line.
    pub time_s: Option<f64>,
    pub frames: Vec<Frame>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall: Option<Stall>,
    /// The report, console prefixes stripped.
    pub report: String,
}

/// The result of analyzing one console log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// In order of appearance; the first is the primary report.
    pub crashes: Vec<Crash>,
    pub stats: Stats,
}

impl Analysis {
    pub fn primary(&self) -> Option<&Crash> {
        self.crashes.first()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Kernel HZ, to turn jiffies into seconds; inferred when absent.
    pub hz: Option<u32>,
    /// The log was pasted into a mail: undo line wrapping and `> ` quoting.
    /// Detected from mail headers at the top of the input when not set.
    pub mail: Option<bool>,
}

struct Segment {
    lines: Vec<Vec<u8>>,
    /// Input line number of each line (mail unwrapping joins lines).
    line_nos: Vec<u64>,
    bytes: usize,
    /// The header starts a caller-tagged report (`[ T123]`): such reports
    /// may span other reports and are collected up to the limits.
    tagged: bool,
    /// A die() banner (`... [#1]`) was seen after the header.
    banner_seen: bool,
}

/// Streaming analyzer: feed it console output in pieces of any size.
pub struct Scanner {
    opts: Options,
    mail: Option<bool>,
    head: Vec<u8>,
    carry: Vec<u8>,
    carry_cut: bool,
    lines: u64,
    bytes: u64,
    truncated: u64,
    segment: Option<Segment>,
    /// Mail mode: the previous line, held back in case the next continues it.
    held: Option<(u64, Vec<u8>)>,
    crashes: Vec<Crash>,
    panicked: bool,
}

impl Scanner {
    pub fn new(opts: Options) -> Scanner {
        Scanner {
            mail: opts.mail,
            opts,
            head: Vec::new(),
            carry: Vec::new(),
            carry_cut: false,
            lines: 0,
            bytes: 0,
            truncated: 0,
            segment: None,
            held: None,
            crashes: Vec::new(),
            panicked: false,
        }
    }

    /// Crashes completed so far (a report still being collected is not
    /// included).
    pub fn crashes(&self) -> &[Crash] {
        &self.crashes
    }

    /// Whether a crash report has started (complete or not).
    pub fn crash_seen(&self) -> bool {
        !self.crashes.is_empty() || self.segment.is_some()
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.mail.is_none() {
            // Decide on the first 4 KiB whether this is a mail.
            let want = 4096usize.saturating_sub(self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..want]);
            if self.head.len() < 4096 {
                // Keep buffering until enough is seen (or the input ends).
                return;
            }
            self.decide_mail();
            let head = std::mem::take(&mut self.head);
            self.feed_lines(&head);
            data = &data[want..];
        }
        self.feed_lines(data);
    }

    fn decide_mail(&mut self) {
        let mail = self.head.split(|&b| b == b'\n').take(40).any(|l| {
            l.starts_with(b"From: ")
                || l.starts_with(b"Subject: ")
                || l.starts_with(b"Message-ID: ")
                || l.starts_with(b"Message-Id: ")
        });
        self.mail = Some(mail);
    }

    fn feed_lines(&mut self, mut data: &[u8]) {
        if !self.carry.is_empty() || self.carry_cut {
            match memchr::memchr(b'\n', data) {
                None => {
                    self.extend_carry(data);
                    return;
                }
                Some(i) => {
                    self.extend_carry(&data[..i]);
                    let line = std::mem::take(&mut self.carry);
                    self.carry_cut = false;
                    self.on_line(&line);
                    data = &data[i + 1..];
                }
            }
        }
        let split = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
        self.complete_lines(&data[..split]);
        self.extend_carry(&data[split..]);
    }

    fn extend_carry(&mut self, data: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.carry.len());
        if data.len() > room {
            if !self.carry_cut {
                self.truncated += 1;
            }
            self.carry_cut = true;
        }
        self.carry.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// `buf` holds whole lines, each ending in `\n`.
    fn complete_lines(&mut self, buf: &[u8]) {
        let mut pos = 0;
        while pos < buf.len() {
            if self.segment.is_none() && self.mail != Some(true) && self.held.is_none() {
                // Skip ordinary output up to the line of the next header.
                match report::ANY_HEADER.find(&buf[pos..]) {
                    None => {
                        self.lines += count_lines(&buf[pos..]);
                        return;
                    }
                    Some(m) => {
                        let at = pos + m.start();
                        let start =
                            memchr::memrchr(b'\n', &buf[pos..at]).map_or(pos, |i| pos + i + 1);
                        self.lines += count_lines(&buf[pos..start]);
                        pos = start;
                    }
                }
            }
            let end = memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i);
            let line = &buf[pos..end];
            if line.len() > MAX_LINE {
                self.truncated += 1;
                self.on_line(&line[..MAX_LINE]);
            } else {
                self.on_line(line);
            }
            pos = end + 1;
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        if self.mail != Some(true) {
            self.lines += 1;
            self.take_line(line.to_vec(), self.lines);
            return;
        }
        // Mail: unquote, and join a console line wrapped by the mailer.
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        while let Some(rest) = line.strip_prefix(b">") {
            line = rest.strip_prefix(b" ").unwrap_or(rest);
        }
        if let Some((_, prev)) = self.held.as_mut()
            && is_wrapped_continuation(prev, line)
        {
            prev.push(b' ');
            prev.extend_from_slice(line);
            self.lines += 1;
            return;
        }
        if let Some((no, prev)) = self.held.take() {
            self.take_line(prev, no);
        }
        self.lines += 1;
        self.held = Some((self.lines, line.to_vec()));
    }

    fn take_line(&mut self, line: Vec<u8>, line_no: u64) {
        match self.segment.as_mut() {
            None => {
                if report::oops_of(&line).is_some() {
                    let tagged = matches!(report::context(&line), report::Context::Caller(_));
                    self.segment = Some(Segment {
                        line_nos: vec![line_no],
                        bytes: line.len(),
                        lines: vec![line],
                        tagged,
                        banner_seen: false,
                    });
                }
            }
            Some(seg) => {
                let is_header = report::starts_next_report(&seg.lines[0], &line, seg.banner_seen);
                seg.banner_seen |= report::is_die_banner(&line);
                seg.bytes += line.len();
                seg.lines.push(line);
                seg.line_nos.push(line_no);
                if (is_header && !seg.tagged)
                    || seg.lines.len() >= MAX_REPORT_LINES
                    || seg.bytes >= MAX_REPORT_BYTES
                {
                    self.close_segment(false);
                }
            }
        }
    }

    /// Titles the collected report; lines after it that start another report
    /// become the next segment.
    fn close_segment(&mut self, at_end: bool) {
        let Some(seg) = self.segment.take() else {
            return;
        };
        let lines: Vec<&[u8]> = seg.lines.iter().map(Vec::as_slice).collect();
        let built = report::build(&lines, false);
        let crash = self.describe(&seg, &lines, &built);
        self.push_crash(crash);
        if let Some(next) = built.next_report {
            let rest: Vec<Vec<u8>> = seg.lines[next..].to_vec();
            let line_nos = seg.line_nos[next..].to_vec();
            let bytes = rest.iter().map(Vec::len).sum();
            let tagged = matches!(report::context(&rest[0]), report::Context::Caller(_));
            let banner_seen = rest.iter().skip(1).any(|l| report::is_die_banner(l));
            self.segment = Some(Segment {
                line_nos,
                lines: rest,
                bytes,
                tagged,
                banner_seen,
            });
            let again = self.segment.as_ref().is_some_and(|s| {
                let lines: Vec<&[u8]> = s.lines.iter().map(Vec::as_slice).collect();
                !s.tagged && report::next_report(&lines).is_some()
            });
            if at_end || again {
                self.close_segment(at_end);
            }
        }
    }

    fn describe(&self, seg: &Segment, lines: &[&[u8]], built: &report::Built) -> Crash {
        let oops = report::oops_of(lines[0])
            .map(|i| &report::OOPSES[i])
            .expect("a segment starts at a header line");
        let text = &built.text[..built.end];
        let mut desc = report::describe(text, oops, false);
        let mut report_text = text;
        let retry;
        // When the RIP line is missing (an abbreviated report) but the trace
        // shows the exception entry, the `? ` frame after the entry is where
        // the fault hit: admit `? ` frames.
        let abbreviated = desc.missed_anchor
            && lines
                .iter()
                .any(|l| memchr::memmem::find(l, b"? asm_exc_").is_some());
        if abbreviated {
            retry = report::build(lines, true);
            let again = report::describe(&retry.text[..retry.end], oops, true);
            if again.guilty_frame.is_some() {
                desc = again;
                report_text = &retry.text[..retry.end];
            }
        }
        let corrupted = desc.corrupted
            || (!desc.no_stack_trace && report::lacks_stack(report_text, &desc.title));
        let stall = stall::details(desc.kind, report_text);
        Crash {
            title: desc.title,
            alt_titles: desc.alt_titles,
            kind: desc.kind,
            corrupted,
            guilty_frame: desc.guilty_frame,
            start_line: seg.line_nos[0],
            end_line: seg.line_nos[built.last_line],
            time_s: report::timestamp(lines[0]),
            frames: stack::frames(report_text),
            stall,
            report: String::from_utf8_lossy(report_text).into_owned(),
        }
    }

    fn push_crash(&mut self, crash: Crash) {
        // `Kernel panic - not syncing` right after a report is its
        // consequence, not a second bug.
        if crash.kind == Kind::Panic
            && let Some(prev) = self.crashes.last_mut()
            && crash.start_line <= prev.end_line + PANIC_FOLLOW_LINES
        {
            self.panicked = true;
            prev.end_line = prev.end_line.max(crash.end_line);
            return;
        }
        if crash.kind == Kind::Panic {
            self.panicked = true;
        }
        self.crashes.push(crash);
    }

    /// Ends the input and returns the analysis.
    pub fn finish(mut self) -> Analysis {
        if self.mail.is_none() {
            self.decide_mail();
            let head = std::mem::take(&mut self.head);
            self.feed_lines(&head);
        }
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.on_line(&line);
        }
        if let Some((no, prev)) = self.held.take() {
            self.take_line(prev, no);
        }
        self.close_segment(true);
        let mut crashes = std::mem::take(&mut self.crashes);
        let mut stats = stall::stats(&mut crashes, self.opts.hz, self.bytes, self.lines);
        stats.panicked = self.panicked;
        stats.truncated_lines = self.truncated;
        Analysis { crashes, stats }
    }
}

/// A mailer wrapped a long console line: the previous line has a console
/// timestamp and is long, this one has none and does not start a new line of
/// its own.
fn is_wrapped_continuation(prev: &[u8], line: &[u8]) -> bool {
    prev.len() >= 50
        && report::timestamp(prev).is_some()
        && !line.is_empty()
        && !line[0].is_ascii_whitespace()
        && report::timestamp(line).is_none()
}

fn count_lines(buf: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', buf).count() as u64
}

/// Analyzes a whole log in memory.
pub fn analyze(input: &[u8], opts: Options) -> Analysis {
    let mut s = Scanner::new(opts);
    for chunk in input.chunks(CHUNK) {
        s.feed(chunk);
    }
    s.finish()
}

/// Analyzes a log read from `r`, in constant memory.
pub fn analyze_reader<R: Read>(mut r: R, opts: Options) -> io::Result<Analysis> {
    let mut s = Scanner::new(opts);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        s.feed(&buf[..n]);
    }
    Ok(s.finish())
}
