//! The reply mail: plain text within 80 columns, threaded under the mail
//! it answers, with the verdict and the numbers that justify it.

pub mod deliver;

use std::fmt::Write as _;

use crate::mail::{Address, Mail};
use crate::verdict::ArmSummary;
use crate::verdict::protocol::{Decision, Verdict};
use crate::verdict::stats::Rate;

/// Who the bot is in From: and Tested-by:.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Identity {
    /// `Name <address>`.
    pub fn parse(s: &str) -> std::result::Result<Identity, String> {
        let (name, rest) = s
            .split_once('<')
            .ok_or_else(|| format!("{s:?}: expected `Name <address>`"))?;
        let email = rest.trim_end().trim_end_matches('>').trim();
        if !email.contains('@') || name.trim().is_empty() {
            return Err(format!("{s:?}: expected `Name <address>`"));
        }
        Ok(Identity {
            name: name.trim().to_owned(),
            email: email.to_owned(),
        })
    }

    pub fn address(&self) -> Address {
        Address {
            name: Some(self.name.clone()),
            email: self.email.clone(),
        }
    }
}

/// What was tested.
#[derive(Clone, Debug)]
pub struct Tested {
    /// The job file, as the reader should see it (`jobs/ceph-fscache.yaml`).
    pub job: String,
    pub reproducer_timeout_s: u64,
    pub cpus: u32,
    /// The base's name (a tag or branch) and commit.
    pub base_label: String,
    pub base_commit: String,
    /// The series' subject, and the commit with it applied.
    pub patch_subject: String,
    pub patched_commit: Option<String>,
}

/// How the test ended.
#[derive(Clone, Debug)]
pub enum Result<'a> {
    Ran {
        decision: &'a Decision,
        base: &'a ArmSummary,
        patched: &'a ArmSummary,
        /// What counted as the bug, and why (`kind rcu-stall, from the
        /// report in the thread`).
        target: String,
        /// Where the console logs are, or the first target report inline.
        logs: Logs,
    },
    ApplyFailed {
        /// Which patch, and git's words (file, hunk).
        patch: String,
        detail: String,
    },
    BuildFailed {
        /// The first compiler or linker error, `file:line: message`.
        error: String,
        log: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub enum Logs {
    Url(String),
    /// No log URL configured: the first report, trimmed.
    Inline(String),
}

/// A reply ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Derived from what it answers and the commits, so a retry after a
    /// crash sends the same Message-ID (archives keep one copy).
    pub message_id: String,
    pub in_reply_to: String,
    pub references: Vec<String>,
    pub from: Address,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub subject: String,
    pub body: String,
}

const WIDTH: usize = 80;

/// Composes the reply to `answering` (the tested patch or cover letter).
/// `list` is the list's address, always Cc'd.
pub fn compose(
    answering: &Mail,
    list: Option<&Address>,
    bot: &Identity,
    tested: &Tested,
    result: &Result<'_>,
) -> Reply {
    let mut text = body(tested, result);
    if result.verdict() == Verdict::Fixed {
        let _ = writeln!(text, "\nTested-by: {} <{}>", bot.name, bot.email);
    }
    envelope(
        answering,
        list,
        bot,
        &[
            answering.message_id.as_bytes(),
            tested.base_commit.as_bytes(),
            tested.patched_commit.as_deref().unwrap_or("").as_bytes(),
            tested.job.as_bytes(),
        ],
        text,
    )
}

impl Result<'_> {
    pub fn verdict(&self) -> Verdict {
        match self {
            Result::Ran { decision, .. } => decision.verdict,
            Result::ApplyFailed { .. } => Verdict::ApplyFailed,
            Result::BuildFailed { .. } => Verdict::BuildFailed,
        }
    }
}

/// The report itself, within 80 columns: what was tested, the table, the
/// verdict and its justification. The mail and the GitHub check run both
/// carry it.
pub fn body(tested: &Tested, result: &Result<'_>) -> String {
    let mut body = String::new();
    let patched = tested
        .patched_commit
        .as_deref()
        .map_or_else(String::new, |c| format!(" ({})", short(c)));
    let _ = writeln!(
        body,
        "{}",
        wrap(
            &format!(
                "Tested: {} (base {}) vs base + \"{}\"{patched}",
                tested.base_label,
                short(&tested.base_commit),
                tested.patch_subject
            ),
            WIDTH
        )
    );
    match result {
        Result::Ran {
            decision,
            base,
            patched,
            target,
            logs,
        } => {
            let reproducer = format!(
                "Reproducer: {}, {} s/run, {} vCPU; arms interleaved",
                tested.job, tested.reproducer_timeout_s, tested.cpus
            );
            let _ = writeln!(body, "{}", wrap(&reproducer, WIDTH));
            let _ = writeln!(
                body,
                "{}",
                wrap(&format!("Counted as the bug: {target}"), WIDTH)
            );
            body.push('\n');
            table(&mut body, base, patched, decision);
            body.push('\n');
            let _ = writeln!(
                body,
                "{}",
                wrap(
                    &format!("Verdict: {} ({})", decision.verdict, decision.reason),
                    WIDTH
                )
            );
            let _ = write!(body, "Fisher p = {}.", sci(decision.fisher_p));
            match logs {
                Logs::Url(url) => {
                    let _ = writeln!(body, "  Logs: {url}");
                }
                Logs::Inline(report) => {
                    let _ = writeln!(body, "\n\nThe first report of the bug in the runs:\n");
                    for line in report.lines().take(60) {
                        let _ = writeln!(body, "{}", truncate(line, WIDTH));
                    }
                }
            }
        }
        Result::ApplyFailed { patch, detail } => {
            body.push('\n');
            let _ = writeln!(body, "Verdict: APPLY FAILED");
            let _ = writeln!(
                body,
                "{}",
                wrap(&format!("The series does not apply: {patch}"), WIDTH)
            );
            body.push('\n');
            for line in detail.lines().take(30) {
                let _ = writeln!(body, "  {}", truncate(line, WIDTH - 2));
            }
        }
        Result::BuildFailed { error, log } => {
            body.push('\n');
            let _ = writeln!(body, "Verdict: BUILD FAILED");
            let _ = writeln!(body, "The patched kernel does not build; the first error:");
            body.push('\n');
            for line in error.lines().take(20) {
                let _ = writeln!(body, "  {}", truncate(line, WIDTH - 2));
            }
            if let Some(log) = log {
                // A path is not wrapped: it stays whole on its own line.
                let _ = writeln!(body, "\nBuild log:\n{log}");
            }
        }
    }
    body
}

/// The reply to a request lorebot will not carry out, saying why and what
/// it understands.
pub fn refuse(answering: &Mail, list: Option<&Address>, bot: &Identity, reason: &str) -> Reply {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{}",
        wrap(
            &format!("lorebot cannot act on this request: {reason}"),
            WIDTH
        )
    );
    body.push_str(
        "\nIt understands, in a reply to a patch (or in a thread with one):\n\n  \
         #lorebot test\n  #lorebot test: <git url> <branch or commit>\n",
    );
    envelope(
        answering,
        list,
        bot,
        &[answering.message_id.as_bytes(), b"refused"],
        body,
    )
}

/// Addresses, threading and a Message-ID derived from `id_parts` (so that
/// a retry is the same mail) around `body`.
fn envelope(
    answering: &Mail,
    list: Option<&Address>,
    bot: &Identity,
    id_parts: &[&[u8]],
    body: String,
) -> Reply {
    let mut references = answering.references.clone();
    if references.last() != Some(&answering.message_id) {
        references.push(answering.message_id.clone());
    }
    let to: Vec<Address> = answering.from.iter().cloned().collect();
    let mut cc: Vec<Address> = Vec::new();
    for a in list.into_iter().chain(&answering.to).chain(&answering.cc) {
        let known = |x: &Address| x.email.eq_ignore_ascii_case(&a.email);
        if !to.iter().any(known)
            && !cc.iter().any(known)
            && !a.email.eq_ignore_ascii_case(&bot.email)
        {
            cc.push(a.clone());
        }
    }
    let subject = if answering
        .subject
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"))
    {
        answering.subject.clone()
    } else {
        format!("Re: {}", answering.subject)
    };
    let domain = bot.email.rsplit_once('@').map_or("lorebot", |(_, d)| d);
    let message_id = format!("lorebot-{:016x}@{domain}", fnv1a(id_parts));
    Reply {
        message_id,
        in_reply_to: answering.message_id.clone(),
        references,
        from: bot.address(),
        to,
        cc,
        subject,
        body,
    }
}

impl Reply {
    /// The mail as sent: RFC 5322, UTF-8 body, CRLF line ends. `date` is
    /// an RFC 2822 date.
    pub fn to_bytes(&self, date: &str) -> Vec<u8> {
        let mut m = String::new();
        let list = |v: &[Address]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",\r\n ")
        };
        let _ = write!(m, "From: {}\r\n", self.from);
        if !self.to.is_empty() {
            let _ = write!(m, "To: {}\r\n", list(&self.to));
        }
        if !self.cc.is_empty() {
            let _ = write!(m, "Cc: {}\r\n", list(&self.cc));
        }
        let _ = write!(m, "Subject: {}\r\n", encode_header(&self.subject));
        let _ = write!(m, "Date: {date}\r\n");
        let _ = write!(m, "Message-ID: <{}>\r\n", self.message_id);
        let _ = write!(m, "In-Reply-To: <{}>\r\n", self.in_reply_to);
        let refs: Vec<String> = self.references.iter().map(|r| format!("<{r}>")).collect();
        let _ = write!(m, "References: {}\r\n", refs.join("\r\n "));
        m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
        m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
        for line in self.body.lines() {
            m.push_str(line);
            m.push_str("\r\n");
        }
        m.into_bytes()
    }
}

/// RFC 2047 for a subject that is not plain ASCII.
fn encode_header(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    let mut out = String::from("=?UTF-8?Q?");
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'/' | b',' | b':' => {
                out.push(b as char)
            }
            b' ' => out.push('_'),
            _ => {
                let _ = write!(out, "={b:02X}");
            }
        }
    }
    out.push_str("?=");
    out
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(b"\0") {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn truncate(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut s: String = line.chars().take(width - 3).collect();
    s.push_str("...");
    s
}

/// Greedy word wrap; continuation lines are indented by two spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let indent = if out.is_empty() { 0 } else { 2 };
        if !line.is_empty() && indent + line.chars().count() + 1 + word.chars().count() > width {
            if !out.is_empty() {
                out.push_str("\n  ");
            }
            out.push_str(&line);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !out.is_empty() {
        out.push_str("\n  ");
    }
    out.push_str(&line);
    out
}

fn sci(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// A rate in percent: one decimal unless whole (`32.5%`, `0%`).
fn pct(x: f64) -> String {
    let p = format!("{:.1}", x * 100.0);
    format!("{}%", p.strip_suffix(".0").unwrap_or(&p))
}

/// An interval bound in percent: whole above 10%, one decimal below.
fn bound(x: f64) -> String {
    let p = x * 100.0;
    if p >= 10.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}").trim_end_matches(".0").to_owned()
    }
}

fn rate(r: &Rate) -> String {
    if r.n == 0 {
        return "no runs".to_owned();
    }
    format!(
        "{}/{} = {} [{}-{}%]",
        r.k,
        r.n,
        pct(r.value()),
        bound(r.low),
        bound(r.high)
    )
}

/// The summary table: one row per figure, base and patched side by side.
fn table(out: &mut String, base: &ArmSummary, patched: &ArmSummary, d: &Decision) {
    const LABEL: usize = 22;
    const COLUMN: usize = 29;
    let mut row = |label: &str, b: String, p: String| {
        let line = format!("{label:<LABEL$}{b:<COLUMN$}{p}");
        let _ = writeln!(out, "{}", truncate(line.trim_end(), WIDTH));
    };
    row("", "base (unpatched)".to_owned(), "patched".to_owned());
    row("the bug (runs)", rate(&d.base), rate(&d.patched));
    let arms = [base, patched];
    let [b, p] = arms.map(|a| {
        if a.stalls.runs_with_stalls == 0 {
            "none".to_owned()
        } else {
            format!("{}/{}", a.stalls.runs_with_stalls, a.runs)
        }
    });
    row("stalls (runs)", b, p);
    let [b, p] = arms.map(|a| {
        a.stalls.first_stall_s.map_or_else(
            || "-".to_owned(),
            |q| format!("median {:.0} s (IQR {:.0}-{:.0})", q.median, q.q1, q.q3),
        )
    });
    row("time to 1st stall", b, p);
    let [b, p] = arms.map(|a| {
        match (
            a.stalls.longest_stall_s,
            a.stalls.longest_stall_jiffies,
            a.stalls.hz,
        ) {
            (Some(s), Some(j), Some(hz)) => format!("{s:.0} s ({j} jiffies, HZ={hz})"),
            (Some(s), ..) => format!("{s:.0} s"),
            _ => "-".to_owned(),
        }
    });
    row("longest stall", b, p);
    let [b, p] = arms.map(|a| {
        a.stalls.top_functions.first().map_or_else(
            || "-".to_owned(),
            |(f, k)| format!("{f} ({k}/{})", a.stalls.runs_with_stalls),
        )
    });
    row("top stalled function", b, p);
    let [b, p] = arms.map(|a| {
        let not_counted: Vec<String> = a
            .outcomes
            .iter()
            .filter(|(k, _)| matches!(**k, "boot-failure" | "timeout" | "infra"))
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        if not_counted.is_empty() {
            "none".to_owned()
        } else {
            not_counted.join(", ")
        }
    });
    row("not counted", b, p);
    for (name, arm) in [("base", base), ("patched", patched)] {
        for (title, k) in &arm.other_crashes {
            let _ = writeln!(
                out,
                "{}",
                wrap(&format!("other crash ({name}): {k}x {title}"), WIDTH)
            );
        }
    }
}

/// The current time as an RFC 2822 date, in UTC.
pub fn date_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let (year, month, day) = crate::mail::civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day} {} {year} {h:02}:{m:02}:{s:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_width() {
        let text = "word ".repeat(50);
        for line in wrap(text.trim(), 30).lines() {
            assert!(line.len() <= 30, "{line:?}");
        }
        assert_eq!(wrap("short", 80), "short");
    }

    #[test]
    fn rates_read_like_the_sample() {
        assert_eq!(rate(&Rate::of(13, 40)), "13/40 = 32.5% [20-48%]");
        assert_eq!(rate(&Rate::of(0, 40)), "0/40 = 0% [0-8.8%]");
    }

    #[test]
    fn non_ascii_subject_is_encoded() {
        assert_eq!(encode_header("Re: plain"), "Re: plain");
        assert_eq!(encode_header("Re: ü"), "=?UTF-8?Q?Re:_=C3=BC?=");
    }
}
