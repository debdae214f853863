//! Mail messages: headers, the text body and patch attachments, decoded
//! byte-exact with LF line endings; mbox files.

mod mbox;

use std::panic::{AssertUnwindSafe, catch_unwind};

use mailparse::{DispositionType, ParsedMail};
use serde::Serialize;
use thiserror::Error;

pub use mbox::{read_mbox, read_mbox_gz, write_mboxrd};

/// Mails larger than this are rejected unless the caller sets its own cap.
pub const DEFAULT_MAX_SIZE: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum MailError {
    #[error("mail is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed MIME: {0}")]
    Mime(String),
    #[error("not a mail: no header section")]
    NoHeaders,
}

/// An address as written in From/To/Cc.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} <{}>", self.email),
            None => f.write_str(&self.email),
        }
    }
}

/// A file attached to a mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// One parsed mail.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Without angle brackets.
    pub message_id: String,
    /// The mail had no Message-ID: this one is derived from its content.
    pub message_id_derived: bool,
    pub in_reply_to: Option<String>,
    /// Oldest first, as in the header.
    pub references: Vec<String>,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// Seconds since the epoch, when the Date header parses.
    pub date: Option<i64>,
    /// RFC 2047 decoded.
    pub subject: String,
    /// The text/plain body, decoded, LF line endings.
    pub body: Vec<u8>,
    /// Patch-like attachments (text/x-patch, text/x-diff, or any file that
    /// holds a diff).
    pub attachments: Vec<Attachment>,
    /// The mail as received.
    pub raw: Vec<u8>,
}

impl Mail {
    /// Parses one mail (no mbox `From ` line) of at most `max_size` bytes.
    pub fn parse(raw: &[u8], max_size: usize) -> Result<Mail, MailError> {
        let mut mail = Mail::parse_fields(raw, max_size)?;
        mail.raw = raw.to_vec();
        Ok(mail)
    }

    /// [`Mail::parse`] of bytes the caller hands over: they become `raw`
    /// without a copy.
    pub fn parse_owned(raw: Vec<u8>, max_size: usize) -> Result<Mail, MailError> {
        let mut mail = Mail::parse_fields(&raw, max_size)?;
        mail.raw = raw;
        Ok(mail)
    }

    /// Everything but `raw`, left empty.
    fn parse_fields(raw: &[u8], max_size: usize) -> Result<Mail, MailError> {
        if raw.len() > max_size {
            return Err(MailError::TooLarge {
                size: raw.len(),
                limit: max_size,
            });
        }
        // mailparse is not known to panic, but a mail from the Internet must
        // never take the bot down: treat a panic as malformed input.
        let parsed = catch_unwind(AssertUnwindSafe(|| mailparse::parse_mail(raw)))
            .map_err(|_| MailError::Mime("parser failed on this input".into()))?
            .map_err(|e| MailError::Mime(e.to_string()))?;
        if parsed.headers.is_empty() {
            return Err(MailError::NoHeaders);
        }
        let h = Headers::of(&parsed.headers);
        let (message_id, message_id_derived) = match h.message_id.as_deref().and_then(first_msgid) {
            Some(id) => (id, false),
            None => (derive_msgid(raw), true),
        };
        let mut body = Vec::new();
        let mut attachments = Vec::new();
        collect_parts(&parsed, &mut body, &mut attachments, 0);
        Ok(Mail {
            message_id,
            message_id_derived,
            in_reply_to: h.in_reply_to.as_deref().and_then(first_msgid),
            references: h.references.as_deref().map(msgids).unwrap_or_default(),
            from: h.from.and_then(|v| addresses(&v).into_iter().next()),
            to: h.to.iter().flat_map(|v| addresses(v)).collect(),
            cc: h.cc.iter().flat_map(|v| addresses(v)).collect(),
            date: h.date.and_then(|d| mailparse::dateparse(&d).ok()),
            subject: h.subject.map(|s| unfold(&s)).unwrap_or_default(),
            body,
            attachments,
            raw: Vec::new(),
        })
    }

    /// The parent in the thread: In-Reply-To, else the last Reference.
    pub fn parent(&self) -> Option<&str> {
        self.in_reply_to
            .as_deref()
            .or(self.references.last().map(String::as_str))
            .filter(|p| *p != self.message_id)
    }

    /// Whether the body or an attachment carries a diff.
    pub fn has_patch(&self) -> bool {
        is_diff(&self.body) || self.attachments.iter().any(|a| is_diff(&a.data))
    }

    /// The body's lines that are not quoted from another mail.
    pub fn own_lines(&self) -> impl Iterator<Item = &str> {
        std::str::from_utf8(&self.body)
            .unwrap_or("")
            .lines()
            .filter(|l| !l.starts_with('>'))
    }
}

/// The header values a [`Mail`] is made of, decoded: the first of each
/// header, every To and Cc.
#[derive(Default)]
struct Headers {
    message_id: Option<String>,
    in_reply_to: Option<String>,
    references: Option<String>,
    from: Option<String>,
    to: Vec<String>,
    cc: Vec<String>,
    date: Option<String>,
    subject: Option<String>,
}

impl Headers {
    /// One pass over the headers (a mail from lore carries dozens of
    /// transport headers), decoding only the values wanted.
    fn of(headers: &[mailparse::MailHeader]) -> Headers {
        let mut h = Headers::default();
        for header in headers {
            let key = header.get_key_ref();
            let is = |name: &str| key.eq_ignore_ascii_case(name);
            let first = if is("Message-ID") {
                &mut h.message_id
            } else if is("In-Reply-To") {
                &mut h.in_reply_to
            } else if is("References") {
                &mut h.references
            } else if is("From") {
                &mut h.from
            } else if is("Date") {
                &mut h.date
            } else if is("Subject") {
                &mut h.subject
            } else if is("To") {
                h.to.push(header.get_value());
                continue;
            } else if is("Cc") {
                h.cc.push(header.get_value());
                continue;
            } else {
                continue;
            };
            if first.is_none() {
                *first = Some(header.get_value());
            }
        }
        h
    }
}

/// Walks the MIME tree: the first text/plain part that is not an attachment
/// is the body; patch-like parts are attachments.
fn collect_parts(
    part: &ParsedMail,
    body: &mut Vec<u8>,
    attachments: &mut Vec<Attachment>,
    depth: usize,
) {
    // A deeply nested multipart is hostile; real mail nests a few levels.
    if depth > 16 {
        return;
    }
    if !part.subparts.is_empty() {
        for sub in &part.subparts {
            collect_parts(sub, body, attachments, depth + 1);
        }
        return;
    }
    let mime = part.ctype.mimetype.to_ascii_lowercase();
    let disposition = part.get_content_disposition();
    let filename = disposition
        .params
        .get("filename")
        .cloned()
        .or_else(|| part.ctype.params.get("name").cloned());
    let data = match part.get_body_raw() {
        Ok(d) => to_lf(d),
        Err(_) => return,
    };
    let is_attachment =
        disposition.disposition == DispositionType::Attachment || filename.is_some();
    if mime == "text/plain" && !is_attachment && body.is_empty() {
        *body = data;
        return;
    }
    let patch_type = matches!(
        mime.as_str(),
        "text/x-patch" | "text/x-diff" | "text/x-diff-file"
    );
    if patch_type || (is_attachment && is_diff(&data)) {
        attachments.push(Attachment {
            filename,
            content_type: mime,
            data,
        });
    }
}

/// CRLF to LF (quoted-printable decoding and some mailers produce CRLF).
fn to_lf(data: Vec<u8>) -> Vec<u8> {
    if memchr::memmem::find(&data, b"\r\n").is_none() {
        return data;
    }
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// A unified diff: `diff --git`, or `--- a/` followed by `+++ b/` and a hunk.
pub fn is_diff(text: &[u8]) -> bool {
    let mut saw_minus = false;
    let mut saw_plus = false;
    for line in text.split(|&b| b == b'\n') {
        if line.starts_with(b"diff --git ") {
            return true;
        }
        if line.starts_with(b"--- ") {
            saw_minus = true;
        } else if saw_minus && line.starts_with(b"+++ ") {
            saw_plus = true;
        } else if saw_plus && line.starts_with(b"@@ ") {
            return true;
        }
    }
    false
}

fn unfold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `<id>` in a header value, without brackets.
fn msgids(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let id = after[..close].trim();
        if !id.is_empty() && !id.contains(char::is_whitespace) {
            out.push(id.to_owned());
        }
        rest = &after[close + 1..];
    }
    // Some mailers omit the brackets.
    if out.is_empty() {
        let bare = v.trim();
        if !bare.is_empty() && !bare.contains(char::is_whitespace) && bare.contains('@') {
            out.push(bare.to_owned());
        }
    }
    out
}

fn first_msgid(v: &str) -> Option<String> {
    msgids(v).into_iter().next()
}

fn addresses(v: &str) -> Vec<Address> {
    let Ok(list) = mailparse::addrparse(v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in list.iter() {
        match a {
            mailparse::MailAddr::Single(s) => out.push(Address {
                name: s.display_name.clone(),
                email: s.addr.clone(),
            }),
            mailparse::MailAddr::Group(g) => out.extend(g.addrs.iter().map(|s| Address {
                name: s.display_name.clone(),
                email: s.addr.clone(),
            })),
        }
    }
    out
}

/// A stable Message-ID for a mail without one: FNV-1a of its bytes.
fn derive_msgid(raw: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in raw {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}@lorebot.derived")
}

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's civil_from_days).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix time as an RFC 3339 UTC timestamp (`2026-12-06T03:07:06Z`).
pub fn rfc3339(t: i64) -> String {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    use super::*;

    #[test]
    fn quoted_printable_patch_comes_out_byte_exact_with_lf() {
        let raw = b"From: A <a@example.org>\r\nSubject: [PATCH] x\r\nMessage-ID: <1@x>\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
diff --git a/f.c b/f.c\r\n--- a/f.c\r\n+++ b/f.c\r\n@@ -1 +1 @@\r\n-a =3D 1;\r\n+a =3D 2; /* a long line that the mailer w=\r\nrapped */\r\n";
        let m = Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap();
        assert_eq!(
            m.body,
            b"diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a = 1;\n+a = 2; /* a long line that the mailer wrapped */\n"
        );
        assert!(m.has_patch());
    }

    #[test]
    fn missing_message_id_is_derived_stably() {
        let raw = b"From: a@example.org\nSubject: hi\n\nbody\n";
        let a = Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap();
        let b = Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap();
        assert!(a.message_id_derived);
        assert_eq!(a.message_id, b.message_id);
    }

    #[test]
    fn oversized_mail_is_rejected_with_its_size() {
        let raw = vec![b'a'; 100];
        match Mail::parse(&raw, 10) {
            Err(MailError::TooLarge {
                size: 100,
                limit: 10,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parent_prefers_in_reply_to_then_last_reference() {
        let raw = b"Message-ID: <c@x>\nReferences: <a@x> <b@x>\nSubject: Re: y\n\nz\n";
        assert_eq!(
            Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap().parent(),
            Some("b@x")
        );
        let raw = b"Message-ID: <c@x>\nIn-Reply-To: <a@x>\nReferences: <a@x> <b@x>\n\nz\n";
        assert_eq!(
            Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap().parent(),
            Some("a@x")
        );
        let raw = b"Message-ID: <c@x>\nIn-Reply-To: <c@x>\n\nz\n";
        assert_eq!(Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap().parent(), None);
    }

    #[test]
    fn rfc2047_subject_is_decoded_and_unfolded() {
        let raw = b"Message-ID: <c@x>\nSubject: =?utf-8?q?=5BPATCH=5D_caf=C3=A9?=\n fix\n\nz\n";
        assert_eq!(
            Mail::parse(raw, DEFAULT_MAX_SIZE).unwrap().subject,
            "[PATCH] caf\u{e9} fix"
        );
    }
}
