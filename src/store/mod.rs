//! The bot's state in one SQLite file: what was seen on each list, series,
//! commands, jobs, runs and replies.
//!
//! Every change a crash could interrupt is one transaction: after `kill -9`
//! at any point, a restart resumes with nothing lost and nothing done twice.

use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

mod jobs;
mod pages;

pub use jobs::{
    JobRow, NewCheck, NewReply, QueuedJob, QueuedPull, RecordedRun, UnsentCheck, UnsentReply,
};
pub use pages::{
    CheckRow, JobDetail, LatestTest, PullDetail, PullRow, RunRow, SeriesDetail, SeriesFilter,
    SeriesRow,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path} has schema version {found}, newer than this lorebot ({known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Schema migrations, applied in order; each runs in one transaction.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE lists (
    id INTEGER PRIMARY KEY,
    base_url TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE (base_url, name)
);
-- The last archive commit ingested, per epoch: where the next sync starts.
CREATE TABLE epoch_cursors (
    list_id INTEGER NOT NULL REFERENCES lists(id),
    epoch INTEGER NOT NULL,
    last_commit TEXT NOT NULL,
    PRIMARY KEY (list_id, epoch)
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id),
    msgid TEXT NOT NULL,
    msgid_derived INTEGER NOT NULL DEFAULT 0,
    epoch INTEGER,
    git_commit TEXT,
    blob TEXT,
    date INTEGER,
    author TEXT,
    subject TEXT NOT NULL,
    in_reply_to TEXT,
    refs TEXT NOT NULL DEFAULT '[]',
    deleted INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL,
    UNIQUE (list_id, msgid)
);
CREATE INDEX messages_in_reply_to ON messages (list_id, in_reply_to);
CREATE INDEX messages_blob ON messages (blob);
-- Mails that could not be ingested, with the reason.
CREATE TABLE rejected (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id),
    epoch INTEGER,
    git_commit TEXT,
    blob TEXT,
    size INTEGER NOT NULL,
    reason TEXT NOT NULL,
    UNIQUE (list_id, blob)
);
-- A patch series, one row per version.
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id),
    series_msgid TEXT NOT NULL,
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    total INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    base_commit TEXT,
    in_reply_to_report TEXT,
    superseded_by TEXT,
    author TEXT,
    assembled TEXT NOT NULL, -- the series as JSON (patches, trailers)
    first_seen INTEGER NOT NULL,
    UNIQUE (list_id, series_msgid)
);
CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id),
    msgid TEXT NOT NULL,
    series_msgid TEXT,
    command TEXT NOT NULL, -- the command as JSON
    UNIQUE (list_id, msgid, command)
);
-- A test of one series (or patch) with one job; state moves forward only.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    series_id INTEGER REFERENCES series(id),
    command_id INTEGER REFERENCES commands(id),
    job_name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    verdict TEXT,
    detail TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs (state);
-- One VM run of one arm (base or patched) of a job.
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    arm TEXT NOT NULL,
    kernel_commit TEXT NOT NULL,
    seq INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    analysis TEXT,
    log_path TEXT,
    started INTEGER NOT NULL,
    finished INTEGER,
    UNIQUE (job_id, arm, seq)
);
-- A reply is recorded before it is sent and marked sent after.
CREATE TABLE replies (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES jobs(id),
    msgid TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    body BLOB NOT NULL,
    created INTEGER NOT NULL,
    sent INTEGER
);
"#,
    r#"
-- Messages whose thread must be assembled again, written with the
-- messages: a crash before assembly leaves the mark for the next sync.
CREATE TABLE dirty_threads (
    list_id INTEGER NOT NULL REFERENCES lists(id),
    msgid TEXT NOT NULL,
    PRIMARY KEY (list_id, msgid)
);
"#,
    r#"
-- The lists each job follows, and since when: series posted before are
-- history, not news.
CREATE TABLE follows (
    list_id INTEGER NOT NULL REFERENCES lists(id),
    job_name TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (list_id, job_name)
);
ALTER TABLE jobs ADD COLUMN list_id INTEGER REFERENCES lists(id);
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- Seconds spent building, in guests, and in all (JSON).
ALTER TABLE jobs ADD COLUMN timing TEXT;
-- A series is tested once per job, and once more per command about it.
CREATE UNIQUE INDEX jobs_once ON jobs (ifnull(series_id, 0), ifnull(command_id, 0), job_name);
-- The run as JSON: a resumed job's summary has every run whole.
ALTER TABLE runs ADD COLUMN run TEXT;
ALTER TABLE replies ADD COLUMN sender TEXT NOT NULL DEFAULT '';
ALTER TABLE replies ADD COLUMN recipients TEXT NOT NULL DEFAULT '[]';
ALTER TABLE replies ADD COLUMN error TEXT;
"#,
    r#"
-- What a running job is doing (applying, building, testing), for the queue page.
ALTER TABLE jobs ADD COLUMN stage TEXT;
CREATE INDEX jobs_series ON jobs (series_id);
"#,
    r#"
-- A pull request's head commit as seen on GitHub: each new head is a row.
CREATE TABLE pulls (
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL, -- owner/name
    number INTEGER NOT NULL,
    head_sha TEXT NOT NULL,
    base_sha TEXT NOT NULL,
    base_ref TEXT NOT NULL,
    title TEXT NOT NULL,
    author TEXT,
    url TEXT NOT NULL,
    clone_url TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    UNIQUE (repo, number, head_sha)
);
ALTER TABLE jobs ADD COLUMN pull_id INTEGER REFERENCES pulls(id);
-- GitHub's id of the job's check run, once made.
ALTER TABLE jobs ADD COLUMN check_run INTEGER;
DROP INDEX jobs_once;
CREATE UNIQUE INDEX jobs_once
    ON jobs (ifnull(series_id, 0), ifnull(command_id, 0), ifnull(pull_id, 0), job_name);
-- A check (GitHub check run, patchwork check) is recorded with the
-- verdict and marked sent after, like a reply.
CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    forge TEXT NOT NULL, -- github or patchwork
    payload TEXT NOT NULL, -- JSON
    created INTEGER NOT NULL,
    sent INTEGER,
    error TEXT,
    UNIQUE (job_id, forge)
);
"#,
];

/// One message to record, as the archive holds it.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    pub msgid: &'a str,
    pub msgid_derived: bool,
    pub git_commit: &'a str,
    pub blob: &'a str,
    pub date: Option<i64>,
    pub author: Option<String>,
    pub subject: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub raw: &'a [u8],
}

/// What happened to one archive entry.
#[derive(Clone, Debug)]
pub enum Entry<'a> {
    Message(NewMessage<'a>),
    Rejected {
        git_commit: &'a str,
        blob: &'a str,
        size: usize,
        reason: String,
    },
    /// The archive deleted (or purged) the message stored as `blob`.
    Deleted {
        blob: &'a str,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub ingested: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub deleted: u64,
}

/// What [`Store::ingest`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub counts: BatchCounts,
    /// Per entry: whether it stored a new message.
    pub stored: Vec<bool>,
}

/// A message of a thread, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadMember {
    pub id: i64,
    pub msgid: String,
}

/// The series and commands found in one thread, and the dirty marks that
/// led to assembling it.
pub struct AssembledThread {
    pub dirty: Vec<String>,
    pub found: crate::series::Analysis,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// The default database: `$XDG_DATA_HOME/lorebot/lorebot.sqlite3`.
    pub fn default_path() -> PathBuf {
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        Store::path_in(&data.join("lorebot"))
    }

    /// The database in a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("lorebot.sqlite3")
    }

    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        // Pages of 16 KiB hold a typical mail whole (4 KiB pages chain it
        // over overflow pages). Only a new database takes it.
        conn.pragma_update(None, "page_size", 16384)
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // 64 MiB of page cache (2 MiB by default): a batch's inserts into
        // the Message-ID, reply and blob indexes land on pages all over
        // them.
        conn.pragma_update(None, "cache_size", -65536)
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(open_err)?;
        // The bundled SQLite has STAT4: without this, a statement whose
        // bound values might change its plan is compiled again on every
        // new binding (the thread query each time it runs). Plans here are
        // fixed by the queries themselves.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(open_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(open_err)?;
            tx.execute_batch(sql).map_err(open_err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(open_err)?;
            tx.commit().map_err(open_err)?;
        }
        Ok(Store { conn })
    }

    /// The id of a list, created on first use.
    pub fn list_id(&mut self, base_url: &str, name: &str) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO lists (base_url, name) VALUES (?1, ?2)",
            params![base_url, name],
        )?;
        Ok(self.conn.query_row(
            "SELECT id FROM lists WHERE base_url = ?1 AND name = ?2",
            params![base_url, name],
            |r| r.get(0),
        )?)
    }

    /// The last commit ingested from an epoch.
    pub fn cursor(&self, list_id: i64, epoch: u32) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_commit FROM epoch_cursors WHERE list_id = ?1 AND epoch = ?2",
                params![list_id, epoch],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Epochs with a cursor.
    pub fn epochs(&self, list_id: i64) -> Result<Vec<u32>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT epoch FROM epoch_cursors WHERE list_id = ?1 ORDER BY epoch")?;
        let rows = st.query_map([list_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records `entries` of `epoch` and moves its cursor to `cursor`, in one
    /// transaction. A message already stored (same list and Message-ID) is
    /// counted as a duplicate, never stored twice.
    pub fn ingest(
        &mut self,
        list_id: i64,
        epoch: u32,
        cursor: &str,
        entries: &[Entry],
    ) -> Result<BatchOutcome, StoreError> {
        let tx = self.conn.transaction()?;
        let mut counts = BatchCounts::default();
        let mut stored = Vec::with_capacity(entries.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                 (list_id, msgid, msgid_derived, epoch, git_commit, blob, date, author, subject,
                  in_reply_to, refs, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut reject = tx.prepare_cached(
                "INSERT OR IGNORE INTO rejected (list_id, epoch, git_commit, blob, size, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut delete = tx.prepare_cached(
                "UPDATE messages SET deleted = 1 WHERE list_id = ?1 AND blob = ?2",
            )?;
            let mut dirty = tx.prepare_cached(
                "INSERT OR IGNORE INTO dirty_threads (list_id, msgid) VALUES (?1, ?2)",
            )?;
            let mut dirty_blob = tx.prepare_cached(
                "INSERT OR IGNORE INTO dirty_threads (list_id, msgid)
                 SELECT list_id, msgid FROM messages WHERE list_id = ?1 AND blob = ?2",
            )?;
            for e in entries {
                let mut new_message = false;
                match e {
                    Entry::Message(m) => {
                        let refs =
                            serde_json::to_string(m.references).unwrap_or_else(|_| "[]".into());
                        let n = insert.execute(params![
                            list_id,
                            m.msgid,
                            m.msgid_derived,
                            epoch,
                            m.git_commit,
                            m.blob,
                            m.date,
                            m.author,
                            m.subject,
                            m.in_reply_to,
                            refs,
                            m.raw
                        ])?;
                        if n == 1 {
                            counts.ingested += 1;
                            new_message = true;
                            dirty.execute(params![list_id, m.msgid])?;
                        } else {
                            counts.duplicates += 1;
                        }
                    }
                    Entry::Rejected {
                        git_commit,
                        blob,
                        size,
                        reason,
                    } => {
                        counts.rejected += reject.execute(params![
                            list_id,
                            epoch,
                            git_commit,
                            blob,
                            *size as i64,
                            reason
                        ])? as u64;
                    }
                    Entry::Deleted { blob } => {
                        counts.deleted += delete.execute(params![list_id, blob])? as u64;
                        dirty_blob.execute(params![list_id, blob])?;
                    }
                }
                stored.push(new_message);
            }
        }
        tx.execute(
            "INSERT INTO epoch_cursors (list_id, epoch, last_commit) VALUES (?1, ?2, ?3)
             ON CONFLICT (list_id, epoch) DO UPDATE SET last_commit = excluded.last_commit",
            params![list_id, epoch, cursor],
        )?;
        tx.commit()?;
        Ok(BatchOutcome { counts, stored })
    }

    /// Counts of stored messages and rejections for a list.
    pub fn message_counts(&self, list_id: i64) -> Result<(u64, u64), StoreError> {
        let messages: i64 = self.conn.query_row(
            "SELECT count(*) FROM messages WHERE list_id = ?1 AND deleted = 0",
            [list_id],
            |r| r.get(0),
        )?;
        let rejected: i64 = self.conn.query_row(
            "SELECT count(*) FROM rejected WHERE list_id = ?1",
            [list_id],
            |r| r.get(0),
        )?;
        Ok((messages as u64, rejected as u64))
    }

    /// The parent of a stored message: `None` when the message is not
    /// stored, `Some(None)` for a thread root.
    pub fn parent(&self, list_id: i64, msgid: &str) -> Result<Option<Option<String>>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT in_reply_to FROM messages WHERE list_id = ?1 AND msgid = ?2")?;
        Ok(st
            .query_row(params![list_id, msgid], |r| r.get(0))
            .optional()?)
    }

    /// The messages of the thread under `root` (not deleted), in arrival
    /// order: `root` and the replies below it, 10,000 levels deep at most.
    pub fn thread_members(
        &self,
        list_id: i64,
        root: &str,
    ) -> Result<Vec<ThreadMember>, StoreError> {
        // One index lookup per message, level by level: a recursive query
        // builds temporary tables on every call, which costs more than the
        // lookups on the threads of a mailing list.
        let mut find = self
            .conn
            .prepare_cached("SELECT id, deleted FROM messages WHERE list_id = ?1 AND msgid = ?2")?;
        let mut replies = self.conn.prepare_cached(
            "SELECT id, msgid, deleted FROM messages INDEXED BY messages_in_reply_to
             WHERE list_id = ?1 AND in_reply_to = ?2",
        )?;
        let mut members = Vec::new();
        if let Some((id, false)) = find
            .query_row(params![list_id, root], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        {
            members.push(ThreadMember {
                id,
                msgid: root.to_owned(),
            });
        }
        let mut seen = std::collections::HashSet::from([root.to_owned()]);
        let mut level = vec![root.to_owned()];
        for _depth in 0..10_000 {
            if level.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for parent in &level {
                let mut rows = replies.query(params![list_id, parent])?;
                while let Some(r) = rows.next()? {
                    let msgid: String = r.get(1)?;
                    if !seen.insert(msgid.clone()) {
                        continue;
                    }
                    // A deleted message is left out; its replies are not.
                    if !r.get::<_, bool>(2)? {
                        members.push(ThreadMember {
                            id: r.get(0)?,
                            msgid: msgid.clone(),
                        });
                    }
                    next.push(msgid);
                }
            }
            level = next;
        }
        members.sort_unstable_by_key(|m| m.id);
        Ok(members)
    }

    /// A stored message, by Message-ID, as received.
    pub fn message(&self, list_id: i64, msgid: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT raw FROM messages WHERE list_id = ?1 AND msgid = ?2 AND NOT deleted",
        )?;
        Ok(st
            .query_row(params![list_id, msgid], |r| r.get(0))
            .optional()?)
    }

    /// A stored message as received.
    pub fn raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT raw FROM messages WHERE id = ?1")?;
        Ok(st.query_row([id], |r| r.get(0)).optional()?)
    }

    /// Messages whose threads need assembling.
    pub fn dirty_threads(&self, list_id: i64) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT msgid FROM dirty_threads WHERE list_id = ?1 ORDER BY msgid")?;
        let rows = st.query_map([list_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the series and commands found in `threads` and clears the
    /// dirty marks that led to them, in one transaction; returns how many
    /// series rows were new or changed and how many commands were new.
    pub fn save_threads(
        &mut self,
        list_id: i64,
        threads: &[AssembledThread],
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        let tx = self.conn.transaction()?;
        let mut series_changed = 0;
        let mut commands_new = 0;
        {
            let mut clear =
                tx.prepare_cached("DELETE FROM dirty_threads WHERE list_id = ?1 AND msgid = ?2")?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO series (list_id, series_msgid, subject, version, total, complete, base_commit,
                                     in_reply_to_report, superseded_by, author, assembled, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (list_id, series_msgid) DO UPDATE SET
                     subject = excluded.subject, version = excluded.version, total = excluded.total,
                     complete = excluded.complete, base_commit = excluded.base_commit,
                     in_reply_to_report = excluded.in_reply_to_report,
                     superseded_by = excluded.superseded_by, author = excluded.author,
                     assembled = excluded.assembled
                 WHERE series.assembled IS NOT excluded.assembled
                    OR series.superseded_by IS NOT excluded.superseded_by",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO commands (list_id, msgid, series_msgid, command) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for thread in threads {
                for m in &thread.dirty {
                    clear.execute(params![list_id, m])?;
                }
                for s in &thread.found.series {
                    let assembled = serde_json::to_string(s).unwrap_or_default();
                    let author = s.patches.first().and_then(|p| p.author.clone());
                    series_changed += upsert.execute(params![
                        list_id,
                        s.id,
                        s.subject,
                        s.version,
                        s.total,
                        s.complete,
                        s.base_commit,
                        s.in_reply_to_report,
                        s.superseded_by,
                        author,
                        assembled,
                        now
                    ])? as u64;
                }
                for c in &thread.found.commands {
                    let command = serde_json::to_string(&c.kind).unwrap_or_default();
                    commands_new +=
                        insert.execute(params![list_id, c.msgid, c.series_id, command])? as u64;
                }
            }
        }
        tx.commit()?;
        Ok((series_changed, commands_new))
    }

    /// Counts of series and commands stored for a list.
    pub fn series_counts(&self, list_id: i64) -> Result<(u64, u64), StoreError> {
        let series: i64 = self.conn.query_row(
            "SELECT count(*) FROM series WHERE list_id = ?1",
            [list_id],
            |r| r.get(0),
        )?;
        let commands: i64 = self.conn.query_row(
            "SELECT count(*) FROM commands WHERE list_id = ?1",
            [list_id],
            |r| r.get(0),
        )?;
        Ok((series as u64, commands as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<'a>(id: &'a str, parent: Option<&'a str>, blob: &'a str) -> Entry<'a> {
        Entry::Message(NewMessage {
            msgid: id,
            msgid_derived: false,
            git_commit: "c",
            blob,
            date: None,
            author: None,
            subject: "s",
            in_reply_to: parent,
            references: &[],
            raw: id.as_bytes(),
        })
    }

    #[test]
    fn ingest_is_idempotent_and_moves_the_cursor() {
        let dir = std::env::temp_dir().join(format!("lorebot-store-{}", std::process::id()));
        let path = dir.join("db.sqlite3");
        let _ = std::fs::remove_file(&path);
        let mut s = Store::open(&path).unwrap();
        let l = s.list_id("http://x", "l").unwrap();
        assert_eq!(s.list_id("http://x", "l").unwrap(), l);
        let batch = [
            msg("a", None, "b1"),
            msg("b", Some("a"), "b2"),
            msg("c", Some("b"), "b3"),
        ];
        let c = s.ingest(l, 0, "c1", &batch).unwrap();
        assert_eq!((c.counts.ingested, c.counts.duplicates), (3, 0));
        assert_eq!(c.stored, [true, true, true]);
        let c = s.ingest(l, 0, "c2", &batch).unwrap();
        assert_eq!((c.counts.ingested, c.counts.duplicates), (0, 3));
        assert_eq!(c.stored, [false, false, false]);
        assert_eq!(s.cursor(l, 0).unwrap().as_deref(), Some("c2"));
        assert_eq!(s.parent(l, "b").unwrap(), Some(Some("a".to_owned())));
        assert_eq!(s.parent(l, "a").unwrap(), Some(None));
        assert_eq!(s.parent(l, "zz").unwrap(), None);
        let members = s.thread_members(l, "a").unwrap();
        assert_eq!(
            members.iter().map(|m| m.msgid.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(s.raw(members[2].id).unwrap().as_deref(), Some(&b"c"[..]));
        assert_eq!(s.thread_members(l, "b").unwrap(), members[1..]);
        assert_eq!(s.dirty_threads(l).unwrap(), ["a", "b", "c"]);
        let c = s
            .ingest(l, 0, "c3", &[Entry::Deleted { blob: "b3" }])
            .unwrap();
        assert_eq!(c.counts.deleted, 1);
        assert_eq!(s.message_counts(l).unwrap(), (2, 0));
        assert_eq!(s.thread_members(l, "a").unwrap(), members[..2]);
        drop(s);
        // Reopening migrates nothing and keeps everything.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.epochs(l).unwrap(), [0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
