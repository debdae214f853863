//! `lorebot lore sync`: mirror a list's epochs and ingest what is new.

use std::path::Path;

use thiserror::Error;

use super::mirror::{Item, Mirror, MirrorError};
use crate::mail::{DEFAULT_MAX_SIZE, Mail};
use crate::store::{BatchCounts, Entry, NewMessage, Store, StoreError};

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Larger mails are rejected (recorded with the reason).
    pub max_mail_size: usize,
    /// Entries per transaction.
    pub batch: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_mail_size: DEFAULT_MAX_SIZE,
            batch: 2000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub epochs: Vec<u32>,
    pub ingested: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub deleted: u64,
    /// Epochs whose history was rewritten (a purge) since the last sync.
    pub rewritten_epochs: Vec<u32>,
    /// Threads with new mail, re-assembled.
    pub threads: u64,
    /// Series versions new or changed (new patches, trailers, a newer version).
    pub series: u64,
    /// New `#lorebot` commands.
    pub commands: u64,
}

impl SyncReport {
    fn add(&mut self, c: BatchCounts) {
        self.ingested += c.ingested;
        self.duplicates += c.duplicates;
        self.rejected += c.rejected;
        self.deleted += c.deleted;
    }
}

/// Re-assembles the threads marked dirty (they received or lost mail) and
/// stores their series and commands.
fn assemble_threads(
    store: &mut Store,
    list_id: i64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut roots: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    // Root of each message seen, so that a long reply chain costs one walk.
    let mut root_of: std::collections::HashMap<String, String> = Default::default();
    for msgid in store.dirty_threads(list_id)? {
        let mut path = vec![msgid.clone()];
        let root = loop {
            let at = path.last().expect("path starts non-empty").clone();
            if let Some(r) = root_of.get(&at) {
                break r.clone();
            }
            match store.parent(list_id, &at)? {
                Some(Some(p)) if !path.contains(&p) && path.len() < 100_000 => path.push(p),
                // A root, or a cycle.
                Some(_) => break at,
                // A parent the archive lacks: the child is the root here.
                None => {
                    path.pop();
                    break path.last().cloned().unwrap_or(at);
                }
            }
        };
        for p in path {
            root_of.insert(p, root.clone());
        }
        roots.entry(root).or_default().push(msgid);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for (root, dirty) in roots {
        let mails: Vec<Mail> = store
            .thread_below(list_id, &root)?
            .iter()
            .filter_map(|raw| Mail::parse(raw, usize::MAX).ok())
            .collect();
        let found = crate::series::analyze(&mails);
        let (series, commands) = store.save_thread(list_id, &dirty, &found, now)?;
        report.threads += 1;
        report.series += series;
        report.commands += commands;
    }
    Ok(())
}

/// An entry waiting for its transaction.
enum Pending {
    Message {
        commit: String,
        blob: String,
        mail: Box<Mail>,
    },
    Rejected {
        commit: String,
        blob: String,
        size: usize,
        reason: String,
    },
    Deleted {
        blob: String,
    },
}

fn entry(p: &Pending) -> Entry<'_> {
    match p {
        Pending::Message { commit, blob, mail } => Entry::Message(NewMessage {
            msgid: &mail.message_id,
            msgid_derived: mail.message_id_derived,
            git_commit: commit,
            blob,
            date: mail.date,
            author: mail.from.as_ref().map(ToString::to_string),
            subject: &mail.subject,
            in_reply_to: mail.parent(),
            references: &mail.references,
            raw: &mail.raw,
        }),
        Pending::Rejected {
            commit,
            blob,
            size,
            reason,
        } => Entry::Rejected {
            git_commit: commit,
            blob,
            size: *size,
            reason: reason.clone(),
        },
        Pending::Deleted { blob } => Entry::Deleted { blob },
    }
}

/// Fetches the list's epochs into `data_dir` and ingests every message not
/// yet in `store`. Each batch and its epoch cursor commit together, so an
/// interrupted sync resumes where it stopped and never ingests twice.
pub fn sync(
    store: &mut Store,
    data_dir: &Path,
    base: &str,
    list: &str,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let list_id = store.list_id(base.trim_end_matches('/'), list)?;
    let mirror = Mirror::new(data_dir, base, list);
    let mut report = SyncReport {
        epochs: mirror.fetch()?,
        ..SyncReport::default()
    };
    for &epoch in &report.epochs.clone() {
        let since = store.cursor(list_id, epoch)?;
        let mut pending: Vec<Pending> = Vec::new();
        let mut last_commit: Option<String> = None;
        let flush = |store: &mut Store,
                     pending: &mut Vec<Pending>,
                     cursor: &str,
                     report: &mut SyncReport| {
            let entries: Vec<Entry> = pending.iter().map(entry).collect();
            let counts = store.ingest(list_id, epoch, cursor, &entries)?;
            report.add(counts);
            pending.clear();
            Ok::<(), SyncError>(())
        };
        let rewritten = mirror.walk(epoch, since.as_deref(), |commit, item| {
            pending.push(match item {
                Item::Message { blob, raw } => match Mail::parse(&raw, opts.max_mail_size) {
                    Ok(mail) => {
                        if mail.message_id_derived {
                            tracing::warn!(epoch, commit, msgid = %mail.message_id, "no Message-ID; derived one");
                        }
                        Pending::Message {
                            commit: commit.to_owned(),
                            blob,
                            mail: Box::new(mail),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(epoch, commit, error = %e, "rejected mail");
                        Pending::Rejected {
                            commit: commit.to_owned(),
                            blob,
                            size: raw.len(),
                            reason: e.to_string(),
                        }
                    }
                },
                Item::Deleted { blob } => Pending::Deleted { blob },
            });
            last_commit = Some(commit.to_owned());
            if pending.len() >= opts.batch {
                flush(store, &mut pending, commit, &mut report)?;
            }
            Ok::<(), SyncError>(())
        })?;
        if rewritten {
            tracing::warn!(epoch, "history rewritten (purge): re-walked the epoch");
            report.rewritten_epochs.push(epoch);
        }
        // Commits that carried no entry still move the cursor.
        let head = mirror.head(epoch)?;
        if let Some(cursor) = head.or(last_commit)
            && (!pending.is_empty() || since.as_deref() != Some(cursor.as_str()))
        {
            flush(store, &mut pending, &cursor, &mut report)?;
        }
    }
    assemble_threads(store, list_id, &mut report)?;
    Ok(report)
}
