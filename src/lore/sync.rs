//! `lorebot lore sync`: mirror a list's epochs and ingest what is new.
//!
//! Worker threads read and parse the archive's mails while the store
//! records them. The mails parsed on the way are kept, within a memory
//! budget, for thread assembly, which otherwise reads them back from the
//! store and parses them again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use thiserror::Error;

use super::mirror::{Item, Mirror, MirrorError, WalkedCommit};
use crate::mail::{DEFAULT_MAX_SIZE, Mail};
use crate::store::{AssembledThread, BatchCounts, Entry, NewMessage, Store, StoreError};

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
    /// Bytes of parsed mail kept in memory for thread assembly; mails
    /// beyond it are read back from the store.
    pub parsed_mail_budget: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_mail_size: DEFAULT_MAX_SIZE,
            batch: 2000,
            parsed_mail_budget: 512 << 20,
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

/// Commits a worker reads and parses at a time: consecutive, so that its
/// delta base cache serves the blobs' delta chains.
const CHUNK: usize = 500;
/// Chunks a worker may have ready before the store takes them.
const CHUNKS_AHEAD: usize = 2;
/// Worker threads at most.
const MAX_WORKERS: usize = 4;
/// Threads a worker may have waiting to be analysed.
const JOBS_AHEAD: usize = 4;
/// Threads saved per transaction.
const THREADS_PER_SAVE: usize = 500;

/// Mails stored by this sync, parsed, by Message-ID, for thread assembly.
struct ParsedMails {
    mails: HashMap<String, Box<Mail>>,
    bytes: usize,
    budget: usize,
}

impl ParsedMails {
    fn new(budget: usize) -> ParsedMails {
        ParsedMails {
            mails: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// Keeps `mail` if the budget allows. Its raw bytes are dropped: the
    /// store has them and assembly reads only the parsed fields.
    fn keep(&mut self, mut mail: Box<Mail>) {
        mail.raw = Vec::new();
        let size = std::mem::size_of::<Mail>()
            + mail.body.len()
            + mail.attachments.iter().map(|a| a.data.len()).sum::<usize>()
            + mail.subject.len()
            + mail.references.iter().map(String::len).sum::<usize>();
        if self.bytes + size <= self.budget {
            self.bytes += size;
            self.mails.insert(mail.message_id.clone(), mail);
        }
    }

    /// The parent of a kept mail, as the store records it: `None` when the
    /// mail is not kept.
    fn parent(&self, msgid: &str) -> Option<Option<String>> {
        self.mails.get(msgid).map(|m| m.parent().map(str::to_owned))
    }

    fn take(&mut self, msgid: &str) -> Option<Box<Mail>> {
        self.mails.remove(msgid)
    }
}

/// A mail of a thread to assemble: kept from the walk, or as stored.
enum ThreadMail {
    Parsed(Box<Mail>),
    Raw(Vec<u8>),
}

/// A thread to assemble: its mails in arrival order and the dirty marks
/// that led to it.
struct ThreadJob {
    dirty: Vec<String>,
    mails: Vec<ThreadMail>,
}

/// Finds the series and commands of each thread it receives. The mails
/// are dropped here too, off the store's thread.
fn assemble_jobs(input: Receiver<ThreadJob>, out: Sender<AssembledThread>) {
    for job in input {
        let mut mails = Vec::with_capacity(job.mails.len());
        for mail in job.mails {
            match mail {
                ThreadMail::Parsed(mail) => mails.push(*mail),
                ThreadMail::Raw(raw) => mails.extend(Mail::parse_owned(raw, usize::MAX).ok()),
            }
        }
        let found = crate::series::analyze(&mails);
        if out
            .send(AssembledThread {
                dirty: job.dirty,
                found,
            })
            .is_err()
        {
            return;
        }
    }
}

/// The root of each dirty message's thread, and the dirty messages of each
/// root.
fn dirty_roots(
    store: &Store,
    list_id: i64,
    parsed: &ParsedMails,
) -> Result<BTreeMap<String, Vec<String>>, SyncError> {
    let mut roots: BTreeMap<String, Vec<String>> = Default::default();
    // Root of each message seen, so that a long reply chain costs one walk.
    let mut root_of: HashMap<String, String> = Default::default();
    for msgid in store.dirty_threads(list_id)? {
        let mut path = vec![msgid.clone()];
        let mut on_path = HashSet::from([msgid.clone()]);
        let root = loop {
            let at = path.last().expect("path starts non-empty").clone();
            if let Some(r) = root_of.get(&at) {
                break r.clone();
            }
            let parent = match parsed.parent(&at) {
                Some(p) => Some(p),
                None => store.parent(list_id, &at)?,
            };
            match parent {
                Some(Some(p)) if !on_path.contains(&p) && path.len() < 100_000 => {
                    on_path.insert(p.clone());
                    path.push(p);
                }
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
    Ok(roots)
}

/// Re-assembles the threads marked dirty (they received or lost mail) and
/// stores their series and commands. This thread gathers each thread's
/// mails and saves the results; workers analyse the threads.
fn assemble_threads(
    store: &mut Store,
    list_id: i64,
    parsed: &mut ParsedMails,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let roots = dirty_roots(store, list_id, parsed)?;
    if roots.is_empty() {
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let workers = workers();
    std::thread::scope(|s| {
        let (done_tx, done_rx) = channel();
        let jobs: Vec<SyncSender<ThreadJob>> = (0..workers)
            .map(|_| {
                let (tx, rx) = sync_channel(JOBS_AHEAD);
                let done_tx = done_tx.clone();
                s.spawn(move || assemble_jobs(rx, done_tx));
                tx
            })
            .collect();
        drop(done_tx);
        let mut assembled: Vec<AssembledThread> = Vec::new();
        for (i, (root, dirty)) in roots.into_iter().enumerate() {
            let members = store.thread_members(list_id, &root)?;
            let mut mails = Vec::with_capacity(members.len());
            for member in members {
                if let Some(mail) = parsed.take(&member.msgid) {
                    mails.push(ThreadMail::Parsed(mail));
                } else if let Some(raw) = store.raw(member.id)? {
                    mails.push(ThreadMail::Raw(raw));
                }
            }
            // A worker that hangs up has panicked: the scope raises its
            // panic when it ends, and nothing after it runs.
            if jobs[i % workers].send(ThreadJob { dirty, mails }).is_err() {
                break;
            }
            assembled.extend(done_rx.try_iter());
            if assembled.len() >= THREADS_PER_SAVE {
                save_threads(store, list_id, &mut assembled, now, report)?;
            }
        }
        drop(jobs);
        for thread in done_rx {
            assembled.push(thread);
            if assembled.len() >= THREADS_PER_SAVE {
                save_threads(store, list_id, &mut assembled, now, report)?;
            }
        }
        save_threads(store, list_id, &mut assembled, now, report)
    })
}

fn save_threads(
    store: &mut Store,
    list_id: i64,
    assembled: &mut Vec<AssembledThread>,
    now: i64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    if assembled.is_empty() {
        return Ok(());
    }
    let (series, commands) = store.save_threads(list_id, assembled, now)?;
    report.threads += assembled.len() as u64;
    report.series += series;
    report.commands += commands;
    assembled.clear();
    Ok(())
}

/// An archive entry, parsed, waiting for its transaction.
struct Pending {
    commit: String,
    entry: Parsed,
}

enum Parsed {
    Message {
        blob: String,
        mail: Box<Mail>,
    },
    Rejected {
        blob: String,
        size: usize,
        reason: String,
    },
    Deleted {
        blob: String,
    },
}

impl Pending {
    fn entry(&self) -> Entry<'_> {
        let commit = &self.commit;
        match &self.entry {
            Parsed::Message { blob, mail } => Entry::Message(NewMessage {
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
            Parsed::Rejected { blob, size, reason } => Entry::Rejected {
                git_commit: commit,
                blob,
                size: *size,
                reason: reason.clone(),
            },
            Parsed::Deleted { blob } => Entry::Deleted { blob },
        }
    }
}

/// Parses one archive entry.
fn parse_entry(epoch: u32, commit: String, item: Item, max_mail_size: usize) -> Pending {
    let entry = match item {
        Item::Message { blob, raw } => {
            let size = raw.len();
            match Mail::parse_owned(raw, max_mail_size) {
                Ok(mail) => {
                    if mail.message_id_derived {
                        tracing::warn!(epoch, commit, msgid = %mail.message_id, "no Message-ID; derived one");
                    }
                    Parsed::Message {
                        blob,
                        mail: Box::new(mail),
                    }
                }
                Err(e) => {
                    tracing::warn!(epoch, commit, error = %e, "rejected mail");
                    Parsed::Rejected {
                        blob,
                        size,
                        reason: e.to_string(),
                    }
                }
            }
        }
        Item::Deleted { blob } => Parsed::Deleted { blob },
    };
    Pending { commit, entry }
}

/// Records `batch` with `cursor` in one transaction and keeps the mails it
/// stored for assembly.
fn flush(
    store: &mut Store,
    list_id: i64,
    epoch: u32,
    cursor: &str,
    batch: Vec<Pending>,
    parsed: &mut ParsedMails,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let entries: Vec<Entry> = batch.iter().map(Pending::entry).collect();
    let outcome = store.ingest(list_id, epoch, cursor, &entries)?;
    drop(entries);
    report.add(outcome.counts);
    for (p, stored) in batch.into_iter().zip(outcome.stored) {
        if let (Parsed::Message { mail, .. }, true) = (p.entry, stored) {
            parsed.keep(mail);
        }
    }
    Ok(())
}

/// Worker threads for reading, parsing and analysing: one per CPU.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

/// Reads and parses the commits of every `workers`-th chunk from the
/// `worker`-th on, and sends them in order. Stops at the first error, or
/// when the receiver has hung up (the store failed and reports why).
fn read_chunks(
    mirror: &Mirror,
    epoch: u32,
    commits: &[WalkedCommit],
    (worker, workers): (usize, usize),
    max_mail_size: usize,
    out: SyncSender<Result<Vec<Pending>, MirrorError>>,
) {
    let reader = match mirror.reader(epoch) {
        Ok(r) => r,
        Err(e) => {
            let _ = out.send(Err(e));
            return;
        }
    };
    for chunk in commits.chunks(CHUNK).skip(worker).step_by(workers) {
        let parsed: Result<Vec<Pending>, MirrorError> = chunk
            .iter()
            .filter_map(|commit| match reader.entry(commit) {
                Ok(Some(item)) => Some(Ok(parse_entry(
                    epoch,
                    commit.id.to_string(),
                    item,
                    max_mail_size,
                ))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            })
            .collect();
        let failed = parsed.is_err();
        if out.send(parsed).is_err() || failed {
            return;
        }
    }
}

/// Ingests what `epoch` has after the store's cursor. Worker threads read
/// and parse consecutive chunks of commits, round robin; this thread takes
/// their chunks in commit order and stores them.
fn ingest_epoch(
    store: &mut Store,
    mirror: &Mirror,
    list_id: i64,
    epoch: u32,
    opts: &SyncOptions,
    parsed: &mut ParsedMails,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let since = store.cursor(list_id, epoch)?;
    let batch_size = opts.batch.max(1);
    let walk = mirror.walk(epoch, since.as_deref())?;
    let workers = workers();
    let mut pending: Vec<Pending> = Vec::new();
    std::thread::scope(|s| {
        let chunks: Vec<_> = (0..workers)
            .map(|worker| {
                let (tx, rx) = sync_channel(CHUNKS_AHEAD);
                let commits = &walk.commits;
                s.spawn(move || {
                    read_chunks(
                        mirror,
                        epoch,
                        commits,
                        (worker, workers),
                        opts.max_mail_size,
                        tx,
                    )
                });
                rx
            })
            .collect();
        for i in 0..walk.commits.len().div_ceil(CHUNK) {
            // A worker that hangs up early has panicked: the scope raises
            // its panic when it ends, and nothing after it runs.
            let Ok(chunk) = chunks[i % workers].recv() else {
                break;
            };
            pending.extend(chunk?);
            while pending.len() >= batch_size {
                let rest = pending.split_off(batch_size);
                let batch = std::mem::replace(&mut pending, rest);
                let cursor = batch[batch_size - 1].commit.clone();
                flush(store, list_id, epoch, &cursor, batch, parsed, report)?;
            }
        }
        // Returning drops the receivers: on an error, the workers stop at
        // their next send.
        Ok::<(), SyncError>(())
    })?;
    if walk.rewritten {
        tracing::warn!(epoch, "history rewritten (purge): re-walked the epoch");
        report.rewritten_epochs.push(epoch);
    }
    // Commits that carried no entry still move the cursor.
    let last = pending.last().map(|p| p.commit.clone());
    if let Some(cursor) = mirror.head(epoch)?.or(last)
        && (!pending.is_empty() || since.as_deref() != Some(cursor.as_str()))
    {
        flush(store, list_id, epoch, &cursor, pending, parsed, report)?;
    }
    Ok(())
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
    let mut parsed = ParsedMails::new(opts.parsed_mail_budget);
    for epoch in report.epochs.clone() {
        ingest_epoch(
            store,
            &mirror,
            list_id,
            epoch,
            opts,
            &mut parsed,
            &mut report,
        )?;
    }
    assemble_threads(store, list_id, &mut parsed, &mut report)?;
    Ok(report)
}
