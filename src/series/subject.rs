//! Subject tags: `[RFC PATCH net-next v3 2/7] subsystem: change`.

use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// `Re:`/`Fwd:` in front: a reply, not a posting.
    pub is_reply: bool,
    pub is_patch: bool,
    pub rfc: bool,
    pub version: u32,
    pub index: Option<u32>,
    pub total: Option<u32>,
    /// Other tags (`net-next`, `RESEND`, ...).
    pub prefixes: Vec<String>,
    /// The subject without tags.
    pub text: String,
}

/// Parses a subject the way b4 does: leading reply markers, then bracketed
/// tag groups.
pub fn parse_subject(subject: &str) -> Subject {
    let mut s = Subject {
        version: 1,
        ..Subject::default()
    };
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        if let Some(marker) = ["re:", "fwd:", "fw:", "aw:"]
            .iter()
            .find(|m| lower.starts_with(**m))
        {
            s.is_reply = true;
            rest = rest[marker.len()..].trim_start();
            continue;
        }
        if let Some(inner_end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
            let inner = &rest[1..=inner_end];
            take_tags(inner, &mut s);
            rest = rest[inner_end + 2..].trim_start();
            continue;
        }
        break;
    }
    s.text = rest.to_owned();
    s
}

fn take_tags(inner: &str, s: &mut Subject) {
    for tok in inner.split_whitespace() {
        let upper = tok.to_ascii_uppercase();
        if upper == "PATCH" {
            s.is_patch = true;
        } else if upper == "RFC" {
            s.rfc = true;
        } else if let Some(v) = version(tok) {
            s.version = v;
        } else if let Some((m, n)) = tok.split_once('/')
            && let (Ok(m), Ok(n)) = (m.parse::<u32>(), n.parse::<u32>())
            && n > 0
            && m <= n
        {
            s.index = Some(m);
            s.total = Some(n);
        } else if let Some(v) = upper.strip_prefix("PATCHV").and_then(|v| v.parse().ok()) {
            s.is_patch = true;
            s.version = v;
        } else {
            s.prefixes.push(tok.to_owned());
        }
    }
}

/// `v3`, `V3`.
fn version(tok: &str) -> Option<u32> {
    let v = tok.strip_prefix('v').or_else(|| tok.strip_prefix('V'))?;
    v.parse().ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_prefixes_version_and_slot() {
        let s = parse_subject("[RFC PATCH net-next v3 2/7] net: do a thing");
        assert!(s.is_patch && s.rfc && !s.is_reply);
        assert_eq!((s.version, s.index, s.total), (3, Some(2), Some(7)));
        assert_eq!(s.prefixes, ["net-next"]);
        assert_eq!(s.text, "net: do a thing");
    }

    #[test]
    fn replies_and_plain_patches() {
        let s = parse_subject("Re: [PATCH] mm: fix");
        assert!(s.is_reply && s.is_patch);
        assert_eq!((s.version, s.index, s.total), (1, None, None));
        let s = parse_subject("[PATCHv2 0/3] cover");
        assert!(s.is_patch);
        assert_eq!((s.version, s.index), (2, Some(0)));
        let s = parse_subject("RCU stalls and GPFs in ceph/netfs");
        assert!(!s.is_patch);
    }
}
