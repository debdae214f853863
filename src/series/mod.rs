//! What a thread contains: patch series assembled by b4's rules, trailers
//! from replies, and `#lorebot` commands.

mod subject;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::mail::Mail;

pub use subject::{Subject, parse_subject};

/// Trailers collected from replies (the author's own trailers stay in the
/// patch).
const REPLY_TRAILERS: &[&str] = &[
    "Reviewed-by",
    "Acked-by",
    "Tested-by",
    "Reported-by",
    "Suggested-by",
    "Fixes",
    "Closes",
    "Link",
];

static TRAILER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Z][A-Za-z-]+-by|Fixes|Closes|Link):\s*(\S.*?)\s*$").expect("static")
});
static BASE_COMMIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^base-commit:\s*([0-9a-f]{7,64})\s*$").expect("static"));
static PREREQ: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^prerequisite-patch-id:\s*([0-9a-f]{40,64})\s*$").expect("static")
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trailer {
    pub name: String,
    pub value: String,
    /// Message-ID of the mail that gave it.
    pub from_msgid: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Patch {
    pub index: u32,
    pub total: u32,
    pub msgid: String,
    pub subject: String,
    pub author: Option<String>,
    /// Trailers from replies to this patch and to the cover letter.
    pub trailers: Vec<Trailer>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// The cover letter's subject, else patch 1's, without tags.
    pub subject: String,
    pub version: u32,
    pub rfc: bool,
    /// Subject prefixes other than PATCH/RFC/vN (e.g. `net-next`).
    pub prefixes: Vec<String>,
    pub total: u32,
    pub cover_msgid: Option<String>,
    pub complete: bool,
    pub missing: Vec<u32>,
    pub base_commit: Option<String>,
    pub prerequisite_patch_ids: Vec<String>,
    /// The series answers a mail that is not a patch (a bug report): it is
    /// a proposed fix for that report.
    pub in_reply_to_report: Option<String>,
    /// A newer version of this series in the same thread (its first mail).
    pub superseded_by: Option<String>,
    pub patches: Vec<Patch>,
    /// Message-ID identifying the series: the cover letter, else patch 1
    /// (else the lowest patch present).
    pub id: String,
}

/// A `#lorebot` request in a mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum CommandKind {
    /// Test the series (or the patch in the mail) against the job's tree,
    /// or against `repo` at `rev`.
    Test {
        repo: Option<String>,
        rev: Option<String>,
    },
    Bisect {
        good: String,
        bad: String,
    },
    /// Not understood; `error` says why, for the reply.
    Invalid {
        error: String,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct Command {
    pub msgid: String,
    pub from: Option<String>,
    /// The series the command is about: the one it replies to, if any.
    pub series_id: Option<String>,
    /// The mail itself carries a patch to test.
    pub has_patch: bool,
    #[serde(flatten)]
    pub kind: CommandKind,
}

/// Everything found in a set of mails (one thread or many).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Analysis {
    pub series: Vec<Series>,
    pub commands: Vec<Command>,
}

struct Node<'a> {
    mail: &'a Mail,
    subject: Subject,
    parent: Option<usize>,
    children: Vec<usize>,
}

impl Node<'_> {
    /// A patch or a cover letter (not a reply to one).
    fn is_patch_mail(&self) -> bool {
        self.subject.is_patch
            && !self.subject.is_reply
            && (self.mail.has_patch() || self.subject.index == Some(0))
    }
}

/// Threads the mails and finds series and commands.
pub fn analyze(mails: &[Mail]) -> Analysis {
    let nodes = thread(mails);
    let series = assemble(&nodes);
    let commands = commands(&nodes, &series);
    Analysis { series, commands }
}

/// Links each mail to its parent: In-Reply-To, else the nearest Reference
/// present. Missing parents leave a root; a cycle is cut where it closes.
fn thread(mails: &[Mail]) -> Vec<Node<'_>> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, m) in mails.iter().enumerate() {
        // Duplicate Message-IDs: the first mail keeps the id.
        by_id.entry(m.message_id.as_str()).or_insert(i);
    }
    let mut nodes: Vec<Node> = mails
        .iter()
        .map(|m| Node {
            mail: m,
            subject: parse_subject(&m.subject),
            parent: None,
            children: Vec::new(),
        })
        .collect();
    for (i, m) in mails.iter().enumerate() {
        let candidates = m
            .in_reply_to
            .iter()
            .chain(m.references.iter().rev())
            .map(String::as_str);
        let parent = candidates
            .filter(|p| *p != m.message_id)
            .find_map(|p| by_id.get(p).copied())
            .filter(|&p| p != i);
        if let Some(p) = parent
            && !creates_cycle(&nodes, i, p)
        {
            nodes[i].parent = Some(p);
        }
    }
    for i in 0..nodes.len() {
        if let Some(p) = nodes[i].parent {
            nodes[p].children.push(i);
        }
    }
    nodes
}

fn creates_cycle(nodes: &[Node], child: usize, parent: usize) -> bool {
    let mut at = Some(parent);
    let mut steps = 0;
    while let Some(a) = at {
        if a == child || steps > nodes.len() {
            return true;
        }
        at = nodes[a].parent;
        steps += 1;
    }
    false
}

fn ancestors<'n>(nodes: &'n [Node], i: usize) -> impl Iterator<Item = usize> + 'n {
    std::iter::successors(nodes[i].parent, move |&a| nodes[a].parent)
}

/// The mail a patch hangs from: its cover letter (0/N), else patch 1/N of
/// the same version, else itself.
fn anchor(nodes: &[Node], i: usize) -> usize {
    let s = &nodes[i].subject;
    if s.index == Some(0) {
        return i;
    }
    for a in ancestors(nodes, i) {
        let t = &nodes[a].subject;
        if nodes[a].is_patch_mail() && t.version == s.version && t.total == s.total {
            if t.index == Some(0) {
                return a;
            }
            if t.index == Some(1) {
                return anchor(nodes, a);
            }
        }
    }
    i
}

fn root(nodes: &[Node], i: usize) -> usize {
    ancestors(nodes, i).last().unwrap_or(i)
}

fn assemble(nodes: &[Node]) -> Vec<Series> {
    // Group patch mails by their anchor.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.is_patch_mail() {
            groups.entry(anchor(nodes, i)).or_default().push(i);
        }
    }
    let mut out: Vec<(usize, Series)> = Vec::new();
    for (anchor_idx, members) in &groups {
        out.push((*anchor_idx, build_series(nodes, *anchor_idx, members)));
    }
    // Newest version wins: an older version in the same thread with the same
    // subject, or whose anchor the newer one descends from, is superseded.
    let info: Vec<(usize, u32, String, usize, String)> = out
        .iter()
        .map(|(a, s)| {
            (
                root(nodes, *a),
                s.version,
                s.subject.clone(),
                *a,
                s.id.clone(),
            )
        })
        .collect();
    for (k, (_, s)) in out.iter_mut().enumerate() {
        let (root_k, version_k, subject_k, anchor_k, _) = &info[k];
        let newer = info
            .iter()
            .filter(|(r, v, subj, a, _)| {
                r == root_k
                    && v > version_k
                    && (subj == subject_k || ancestors(nodes, *a).any(|x| x == *anchor_k))
            })
            .max_by_key(|(_, v, ..)| *v);
        s.superseded_by = newer.map(|(.., id)| id.clone());
    }
    out.into_iter().map(|(_, s)| s).collect()
}

fn build_series(nodes: &[Node], anchor_idx: usize, members: &[usize]) -> Series {
    let a = &nodes[anchor_idx];
    let total = members
        .iter()
        .filter_map(|&m| nodes[m].subject.total)
        .max()
        .unwrap_or(1);
    let cover = members
        .iter()
        .copied()
        .find(|&m| nodes[m].subject.index == Some(0));
    // Slots by index; a patch re-sent in the same version replaces the
    // older one.
    let mut slots: BTreeMap<u32, usize> = BTreeMap::new();
    for &m in members {
        let idx = nodes[m].subject.index.unwrap_or(1);
        if idx == 0 {
            continue;
        }
        match slots.get(&idx) {
            Some(&old) if nodes[old].mail.date >= nodes[m].mail.date => {}
            _ => {
                slots.insert(idx, m);
            }
        }
    }
    let missing: Vec<u32> = (1..=total).filter(|i| !slots.contains_key(i)).collect();
    let cover_trailers = cover.map(|c| reply_trailers(nodes, c)).unwrap_or_default();
    let patches: Vec<Patch> = slots
        .iter()
        .map(|(&idx, &m)| {
            let n = &nodes[m];
            let mut trailers = reply_trailers(nodes, m);
            for t in &cover_trailers {
                if !trailers
                    .iter()
                    .any(|x| x.name == t.name && x.value == t.value)
                {
                    trailers.push(t.clone());
                }
            }
            Patch {
                index: idx,
                total,
                msgid: n.mail.message_id.clone(),
                subject: n.subject.text.clone(),
                author: n.mail.from.as_ref().map(ToString::to_string),
                trailers,
            }
        })
        .collect();
    let body_of = |i: usize| String::from_utf8_lossy(&nodes[i].mail.body).into_owned();
    let texts: Vec<String> = cover
        .into_iter()
        .chain(slots.values().copied())
        .map(body_of)
        .collect();
    let base_commit = texts
        .iter()
        .find_map(|t| BASE_COMMIT.captures(t).map(|c| c[1].to_owned()));
    let mut prerequisite_patch_ids: Vec<String> = texts
        .iter()
        .flat_map(|t| {
            PREREQ
                .captures_iter(t)
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    prerequisite_patch_ids.dedup();
    let first = cover
        .or_else(|| slots.values().next().copied())
        .unwrap_or(anchor_idx);
    let in_reply_to_report = nodes[first]
        .parent
        .filter(|&p| !nodes[p].is_patch_mail() && !nodes[p].subject.is_patch)
        .map(|p| nodes[p].mail.message_id.clone());
    Series {
        subject: nodes[first].subject.text.clone(),
        version: a.subject.version,
        rfc: a.subject.rfc,
        prefixes: a.subject.prefixes.clone(),
        total,
        cover_msgid: cover.map(|c| nodes[c].mail.message_id.clone()),
        complete: missing.is_empty(),
        missing,
        base_commit,
        prerequisite_patch_ids,
        in_reply_to_report,
        superseded_by: None,
        patches,
        id: nodes[first].mail.message_id.clone(),
    }
}

/// Trailers in the replies below mail `i`, not descending into other
/// patches or cover letters (a v2 posted in reply to v1 keeps its own).
fn reply_trailers(nodes: &[Node], i: usize) -> Vec<Trailer> {
    let mut out: Vec<Trailer> = Vec::new();
    let mut stack: Vec<usize> = nodes[i].children.clone();
    let mut seen = HashSet::new();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) || nodes[c].is_patch_mail() {
            continue;
        }
        for line in nodes[c].mail.own_lines() {
            let Some(cap) = TRAILER.captures(line) else {
                continue;
            };
            if !REPLY_TRAILERS.contains(&&cap[1]) {
                continue;
            }
            let t = Trailer {
                name: cap[1].to_owned(),
                value: cap[2].to_owned(),
                from_msgid: nodes[c].mail.message_id.clone(),
            };
            if !out.iter().any(|x| x.name == t.name && x.value == t.value) {
                out.push(t);
            }
        }
        stack.extend(nodes[c].children.iter().copied());
    }
    // Stable order: by arrival of the reply, then as written.
    out.sort_by_key(|t| {
        nodes
            .iter()
            .position(|n| n.mail.message_id == t.from_msgid)
            .unwrap_or(usize::MAX)
    });
    out
}

static COMMAND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^#lorebot\s+([A-Za-z0-9_-]+)(:)?\s*(.*?)\s*$").expect("static"));

fn commands(nodes: &[Node], series: &[Series]) -> Vec<Command> {
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for line in n.mail.own_lines() {
            let Some(c) = COMMAND.captures(line.trim_end()) else {
                continue;
            };
            let args: Vec<&str> = c[3].split_whitespace().collect();
            let kind = parse_command(&c[1], c.get(2).is_some(), &args);
            let series_id = std::iter::once(i)
                .chain(ancestors(nodes, i))
                .find_map(|a| {
                    let id = &nodes[a].mail.message_id;
                    series
                        .iter()
                        .find(|s| s.id == *id || s.patches.iter().any(|p| p.msgid == *id))
                        .map(|s| s.id.clone())
                })
                .or_else(|| thread_fix(nodes, series, i));
            out.push(Command {
                msgid: n.mail.message_id.clone(),
                from: n.mail.from.as_ref().map(ToString::to_string),
                series_id,
                has_patch: n.mail.has_patch(),
                kind,
            });
        }
    }
    out
}

/// A command elsewhere in a bug report's thread is about the newest fix
/// posted for that report.
fn thread_fix(nodes: &[Node], series: &[Series], i: usize) -> Option<String> {
    let thread = root(nodes, i);
    series
        .iter()
        .filter(|s| s.superseded_by.is_none() && s.in_reply_to_report.is_some())
        .filter_map(|s| {
            let at = nodes.iter().position(|n| n.mail.message_id == s.id)?;
            (root(nodes, at) == thread).then_some((at, s))
        })
        .max_by_key(|(at, _)| nodes[*at].mail.date)
        .map(|(_, s)| s.id.clone())
}

fn parse_command(name: &str, colon: bool, args: &[&str]) -> CommandKind {
    match (name, colon, args) {
        ("test", false, []) => CommandKind::Test {
            repo: None,
            rev: None,
        },
        ("test", true, [repo, rev]) => CommandKind::Test {
            repo: Some((*repo).to_owned()),
            rev: Some((*rev).to_owned()),
        },
        ("test", _, _) => CommandKind::Invalid {
            error: "usage: `#lorebot test` or `#lorebot test: <git url> <branch|commit>`".into(),
        },
        ("bisect", _, [good, bad]) => CommandKind::Bisect {
            good: (*good).to_owned(),
            bad: (*bad).to_owned(),
        },
        ("bisect", _, _) => CommandKind::Invalid {
            error: "usage: `#lorebot bisect <good> <bad>`".into(),
        },
        (other, _, _) => CommandKind::Invalid {
            error: format!("unknown command `{other}` (known: test, bisect)"),
        },
    }
}
