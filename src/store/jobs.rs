//! The bot's work: jobs queued from what the lists show, the runs of each
//! job as they finish, and the replies.
//!
//! A job moves `queued` -> `running` -> `done` (or `error`, `superseded`,
//! `refused`). A run is recorded as soon as it ends, so a job interrupted
//! by a crash resumes from its runs; a reply is recorded with the job's
//! verdict in one transaction, before it is sent, and marked sent after.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Store, StoreError};
use crate::checks::github::Pull;

/// A job taken from the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: i64,
    pub list_id: i64,
    pub list: String,
    pub job_name: String,
    /// How many times the job was taken, this one included.
    pub attempts: u32,
    /// The series to test (Message-ID), and whether a newer version
    /// replaced it.
    pub series: Option<(String, bool)>,
    /// The series' row, as the queue page names it.
    pub series_id: Option<i64>,
    /// The command that asked for the test: its mail and the command as
    /// JSON.
    pub command: Option<(String, String)>,
    /// The pull request head to test.
    pub pull: Option<QueuedPull>,
}

/// A pull request head taken from the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedPull {
    /// The head's row, as the queue page names it.
    pub id: i64,
    pub repo: String,
    pub pull: Pull,
    /// A newer head of the same pull request was seen.
    pub superseded: bool,
    /// The check run an earlier attempt made.
    pub check_run: Option<u64>,
}

/// A check to record with a job's result: for `forge`, its payload as
/// JSON.
pub struct NewCheck<'a> {
    pub forge: &'a str,
    pub payload: &'a str,
}

/// A check recorded but not yet sent.
#[derive(Clone, Debug)]
pub struct UnsentCheck {
    pub id: i64,
    pub job_id: i64,
    pub forge: String,
    pub payload: String,
    /// The job's pull request and check run, for GitHub.
    pub repo: Option<String>,
    pub check_run: Option<u64>,
}

/// One recorded run of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRun {
    pub arm: String,
    pub commit: String,
    pub seq: u32,
    /// The run as JSON.
    pub run: String,
}

/// A reply to record with a job's result.
pub struct NewReply<'a> {
    pub msgid: &'a str,
    pub channel: &'a str,
    pub sender: &'a str,
    /// Addresses as JSON.
    pub recipients: &'a str,
    pub body: &'a [u8],
}

/// A reply recorded but not yet sent.
#[derive(Clone, Debug)]
pub struct UnsentReply {
    pub id: i64,
    pub job_id: i64,
    pub msgid: String,
    pub channel: String,
    pub sender: String,
    pub recipients: String,
    pub body: Vec<u8>,
}

/// A job as `lorebot status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub job: String,
    /// The list, or the GitHub repository.
    pub list: Option<String>,
    pub state: String,
    /// What a running job is doing: applying, building, testing.
    pub stage: Option<String>,
    pub verdict: Option<String>,
    pub detail: Option<String>,
    /// The series' subject, or `#N title` of a pull request.
    pub subject: Option<String>,
    pub series: Option<String>,
    pub command: Option<String>,
    pub attempts: u32,
    pub base_runs: u32,
    pub patched_runs: u32,
    /// `sent`, `unsent` or `failed: ...`; none when there is no reply.
    pub reply: Option<String>,
    /// The checks, as `github check sent` (or `unsent`, `failed: ...`).
    pub checks: Option<String>,
    /// The pull request's page, for a pull request's test.
    pub pull_request: Option<String>,
    pub timing: Option<serde_json::Value>,
    pub created: i64,
    pub updated: i64,
}

impl Store {
    /// Records that `job_name` follows the list from `since` (Unix time)
    /// unless it already does; returns the recorded start.
    pub fn follow(&mut self, list_id: i64, job_name: &str, since: i64) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO follows (list_id, job_name, since) VALUES (?1, ?2, ?3)",
            params![list_id, job_name, since],
        )?;
        Ok(self.conn.query_row(
            "SELECT since FROM follows WHERE list_id = ?1 AND job_name = ?2",
            params![list_id, job_name],
            |r| r.get(0),
        )?)
    }

    /// Queues a job for every current, complete proposed fix on the list
    /// posted since `since`, and for every command mailed since then;
    /// returns how many jobs are new. Queuing again adds nothing.
    pub fn queue(
        &mut self,
        list_id: i64,
        job_name: &str,
        since: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let fixes = tx.execute(
            "INSERT OR IGNORE INTO jobs (series_id, job_name, list_id, created, updated)
             SELECT s.id, ?2, s.list_id, ?4, ?4 FROM series s
             JOIN messages m ON m.list_id = s.list_id AND m.msgid = s.series_msgid
             WHERE s.list_id = ?1 AND s.in_reply_to_report IS NOT NULL
               AND s.superseded_by IS NULL AND s.complete AND ifnull(m.date, 0) >= ?3
             ORDER BY s.id",
            params![list_id, job_name, since, now],
        )?;
        let commands = tx.execute(
            "INSERT OR IGNORE INTO jobs (series_id, command_id, job_name, list_id, created, updated)
             SELECT s.id, c.id, ?2, c.list_id, ?4, ?4 FROM commands c
             JOIN messages m ON m.list_id = c.list_id AND m.msgid = c.msgid
             LEFT JOIN series s ON s.list_id = c.list_id AND s.series_msgid = c.series_msgid
             WHERE c.list_id = ?1 AND ifnull(m.date, 0) >= ?3
             ORDER BY c.id",
            params![list_id, job_name, since, now],
        )?;
        tx.commit()?;
        Ok((fixes + commands) as u64)
    }

    /// Records the open pull requests of `repo` and queues a job for each
    /// head not tested yet by `job_name`; returns how many jobs are new.
    pub fn queue_pulls(
        &mut self,
        repo: &str,
        job_name: &str,
        pulls: &[Pull],
        now: i64,
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let mut new = 0;
        for p in pulls {
            tx.execute(
                "INSERT OR IGNORE INTO pulls (repo, number, head_sha, base_sha, base_ref, title,
                                              author, url, clone_url, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    repo,
                    p.number as i64,
                    p.head_sha,
                    p.base_sha,
                    p.base_ref,
                    p.title,
                    p.author,
                    p.url,
                    p.clone_url,
                    now
                ],
            )?;
            new += tx.execute(
                "INSERT OR IGNORE INTO jobs (pull_id, job_name, created, updated)
                 SELECT id, ?4, ?5, ?5 FROM pulls
                 WHERE repo = ?1 AND number = ?2 AND head_sha = ?3",
                params![repo, p.number as i64, p.head_sha, job_name, now],
            )?;
        }
        tx.commit()?;
        Ok(new as u64)
    }

    /// Notes the check run made for a job, so a restart finds it.
    pub fn set_check_run(&mut self, job_id: i64, check_run: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET check_run = ?2 WHERE id = ?1",
            params![job_id, check_run as i64],
        )?;
        Ok(())
    }

    /// The check run made for a job, if any.
    pub fn check_run(&self, job_id: i64) -> Result<Option<u64>, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT check_run FROM jobs WHERE id = ?1", [job_id], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        Ok(id.map(|id| id as u64))
    }

    /// Checks recorded and not yet sent, oldest first: all, or `job`'s.
    pub fn unsent_checks(&self, job: Option<i64>) -> Result<Vec<UnsentCheck>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT c.id, c.job_id, c.forge, c.payload, p.repo, j.check_run FROM checks c
             JOIN jobs j ON j.id = c.job_id
             LEFT JOIN pulls p ON p.id = j.pull_id
             WHERE c.sent IS NULL AND ifnull(?1, c.job_id) = c.job_id ORDER BY c.id",
        )?;
        let rows = st.query_map([job], |r| {
            Ok(UnsentCheck {
                id: r.get(0)?,
                job_id: r.get(1)?,
                forge: r.get(2)?,
                payload: r.get(3)?,
                repo: r.get(4)?,
                check_run: r.get::<_, Option<i64>>(5)?.map(|id| id as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a check sent, or notes why sending failed (it stays unsent).
    pub fn check_sent(
        &mut self,
        check_id: i64,
        result: Result<i64, &str>,
    ) -> Result<(), StoreError> {
        self.mark_sent("checks", check_id, result)
    }

    /// Puts back in the queue the jobs a dead process was running. Only
    /// the one process that runs jobs may call this.
    pub fn requeue_interrupted(&mut self, now: i64) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE jobs SET state = 'queued', updated = ?1 WHERE state = 'running'",
            [now],
        )? as u64)
    }

    /// Queues again the jobs that failed (not the kernel's fault: a
    /// fetch, a full disk) fewer than `attempts` times.
    pub fn retry_failed(&mut self, attempts: u32, now: i64) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE jobs SET state = 'queued', updated = ?2 WHERE state = 'error' AND attempts < ?1",
            params![attempts, now],
        )? as u64)
    }

    /// Takes the oldest queued job, if any, and marks it running.
    pub fn claim(&mut self, now: i64) -> Result<Option<QueuedJob>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let claimed = tx
            .query_row(
                "UPDATE jobs SET state = 'running', stage = NULL, attempts = attempts + 1, updated = ?1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1)
                 RETURNING id",
                [now],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        let job = match claimed {
            None => None,
            Some(id) => Some(tx.query_row(
                "SELECT j.id, ifnull(j.list_id, 0), j.job_name, j.attempts,
                        s.series_msgid, s.superseded_by IS NOT NULL, c.msgid, c.command,
                        ifnull(l.name, ''), j.series_id,
                        p.repo, p.number, p.title, p.author, p.url, p.head_sha, p.base_sha,
                        p.base_ref, p.clone_url, j.check_run,
                        EXISTS (SELECT 1 FROM pulls n
                                WHERE n.repo = p.repo AND n.number = p.number AND n.id > p.id),
                        p.id
                 FROM jobs j
                 LEFT JOIN lists l ON l.id = j.list_id
                 LEFT JOIN series s ON s.id = j.series_id
                 LEFT JOIN commands c ON c.id = j.command_id
                 LEFT JOIN pulls p ON p.id = j.pull_id
                 WHERE j.id = ?1",
                [id],
                |r| {
                    let series: Option<String> = r.get(4)?;
                    let superseded: Option<bool> = r.get(5)?;
                    let command: Option<String> = r.get(6)?;
                    Ok(QueuedJob {
                        id: r.get(0)?,
                        list_id: r.get(1)?,
                        list: r.get(8)?,
                        job_name: r.get(2)?,
                        attempts: r.get(3)?,
                        series: series.map(|s| (s, superseded.unwrap_or(false))),
                        series_id: r.get(9)?,
                        command: match command {
                            Some(msgid) => Some((msgid, r.get(7)?)),
                            None => None,
                        },
                        pull: match r.get::<_, Option<String>>(10)? {
                            Some(repo) => Some(QueuedPull {
                                repo,
                                pull: Pull {
                                    number: r.get::<_, i64>(11)? as u64,
                                    title: r.get(12)?,
                                    author: r.get(13)?,
                                    url: r.get(14)?,
                                    head_sha: r.get(15)?,
                                    base_sha: r.get(16)?,
                                    base_ref: r.get(17)?,
                                    clone_url: r.get(18)?,
                                },
                                check_run: r.get::<_, Option<i64>>(19)?.map(|id| id as u64),
                                superseded: r.get(20)?,
                                id: r.get(21)?,
                            }),
                            None => None,
                        },
                    })
                },
            )?),
        };
        tx.commit()?;
        Ok(job)
    }

    /// Sets a job's state (and the reason, shown by `lorebot status`).
    pub fn set_state(
        &mut self,
        job_id: i64,
        state: &str,
        detail: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET state = ?2, detail = ?3, updated = ?4 WHERE id = ?1",
            params![job_id, state, detail, now],
        )?;
        Ok(())
    }

    /// Notes what a running job is doing.
    pub fn set_stage(&mut self, job_id: i64, stage: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET stage = ?2 WHERE id = ?1 AND ifnull(stage, '') != ?2",
            params![job_id, stage],
        )?;
        Ok(())
    }

    /// Records one finished run; a run recorded again (a resumed job that
    /// found its kernel changed) replaces the old one.
    pub fn record_run(
        &mut self,
        job_id: i64,
        run: &RecordedRun,
        outcome: &str,
        log_path: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO runs (job_id, arm, kernel_commit, seq, outcome, log_path, run, started, finished)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![job_id, run.arm, run.commit, run.seq, outcome, log_path, run.run, now],
        )?;
        Ok(())
    }

    /// A job's recorded runs, by arm and order.
    pub fn runs(&self, job_id: i64) -> Result<Vec<RecordedRun>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT arm, kernel_commit, seq, run FROM runs
             WHERE job_id = ?1 AND run IS NOT NULL ORDER BY arm, seq",
        )?;
        let rows = st.query_map([job_id], |r| {
            Ok(RecordedRun {
                arm: r.get(0)?,
                commit: r.get(1)?,
                seq: r.get(2)?,
                run: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Ends a job in `state` (`done`, `refused`) with its verdict and
    /// records its reply and checks, in one transaction: they exist exactly
    /// when the job has ended.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        job_id: i64,
        state: &str,
        verdict: Option<&str>,
        detail: &str,
        timing: Option<&str>,
        reply: Option<&NewReply<'_>>,
        checks: &[NewCheck<'_>],
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE jobs SET state = ?6, verdict = ?2, detail = ?3, timing = ?4, updated = ?5
             WHERE id = ?1",
            params![job_id, verdict, detail, timing, now, state],
        )?;
        if let Some(r) = reply {
            tx.execute(
                "INSERT INTO replies (job_id, msgid, channel, sender, recipients, body, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    job_id,
                    r.msgid,
                    r.channel,
                    r.sender,
                    r.recipients,
                    r.body,
                    now
                ],
            )?;
        }
        for c in checks {
            tx.execute(
                "INSERT INTO checks (job_id, forge, payload, created) VALUES (?1, ?2, ?3, ?4)",
                params![job_id, c.forge, c.payload, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replies recorded and not yet sent, oldest first: all of them, or
    /// the one of `job`.
    pub fn unsent_replies(&self, job: Option<i64>) -> Result<Vec<UnsentReply>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, job_id, msgid, channel, sender, recipients, body FROM replies
             WHERE sent IS NULL AND ifnull(?1, job_id) = job_id ORDER BY id",
        )?;
        let rows = st.query_map([job], |r| {
            Ok(UnsentReply {
                id: r.get(0)?,
                job_id: r.get(1)?,
                msgid: r.get(2)?,
                channel: r.get(3)?,
                sender: r.get(4)?,
                recipients: r.get(5)?,
                body: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a reply sent, or notes why sending failed (it stays unsent).
    pub fn reply_sent(
        &mut self,
        reply_id: i64,
        result: Result<i64, &str>,
    ) -> Result<(), StoreError> {
        self.mark_sent("replies", reply_id, result)
    }

    /// Marks row `id` of an outgoing table (`replies`, `checks`) sent, or
    /// notes the error.
    fn mark_sent(
        &mut self,
        table: &'static str,
        id: i64,
        result: Result<i64, &str>,
    ) -> Result<(), StoreError> {
        match result {
            Ok(now) => self.conn.execute(
                &format!("UPDATE {table} SET sent = ?2, error = NULL WHERE id = ?1"),
                params![id, now],
            )?,
            Err(error) => self.conn.execute(
                &format!("UPDATE {table} SET error = ?2 WHERE id = ?1"),
                params![id, error],
            )?,
        };
        Ok(())
    }

    /// The most recent jobs, newest first.
    pub fn jobs(&self, limit: u32) -> Result<Vec<JobRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT j.id, j.job_name, ifnull(l.name, pr.repo), j.state, j.verdict, j.detail,
                    ifnull(s.subject, '#' || pr.number || ' ' || pr.title),
                    s.series_msgid, c.msgid, j.attempts,
                    (SELECT count(*) FROM runs r WHERE r.job_id = j.id AND r.arm = 'base'),
                    (SELECT count(*) FROM runs r WHERE r.job_id = j.id AND r.arm = 'patched'),
                    p.sent, p.error, p.id IS NOT NULL, j.timing, j.created, j.updated, j.stage,
                    (SELECT group_concat(k.forge || ' check ' || CASE
                                WHEN k.sent IS NOT NULL THEN 'sent'
                                WHEN k.error IS NOT NULL THEN 'failed: ' || k.error
                                ELSE 'unsent' END, ', ')
                     FROM checks k WHERE k.job_id = j.id),
                    pr.url
             FROM jobs j
             LEFT JOIN lists l ON l.id = j.list_id
             LEFT JOIN series s ON s.id = j.series_id
             LEFT JOIN commands c ON c.id = j.command_id
             LEFT JOIN replies p ON p.job_id = j.id
             LEFT JOIN pulls pr ON pr.id = j.pull_id
             ORDER BY j.id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            let sent: Option<i64> = r.get(12)?;
            let error: Option<String> = r.get(13)?;
            let has_reply: bool = r.get(14)?;
            let timing: Option<String> = r.get(15)?;
            Ok(JobRow {
                id: r.get(0)?,
                job: r.get(1)?,
                list: r.get(2)?,
                state: r.get(3)?,
                stage: r.get(18)?,
                verdict: r.get(4)?,
                detail: r.get(5)?,
                subject: r.get(6)?,
                series: r.get(7)?,
                command: r.get(8)?,
                attempts: r.get(9)?,
                base_runs: r.get(10)?,
                patched_runs: r.get(11)?,
                reply: match (has_reply, sent, error) {
                    (false, _, _) => None,
                    (true, Some(_), _) => Some("sent".to_owned()),
                    (true, None, Some(e)) => Some(format!("failed: {e}")),
                    (true, None, None) => Some("unsent".to_owned()),
                },
                checks: r.get(19)?,
                pull_request: r.get(20)?,
                timing: timing.and_then(|t| serde_json::from_str(&t).ok()),
                created: r.get(16)?,
                updated: r.get(17)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AssembledThread, Entry, NewMessage};

    fn store(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("lorebot-jobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir.join("db.sqlite3")).unwrap(), dir)
    }

    /// A list with a report (dated 100) and a fix in reply (dated `date`).
    fn list_with_fix(s: &mut Store, date: i64) -> i64 {
        let l = s.list_id("http://x", "l").unwrap();
        let message = |msgid, parent, date| {
            Entry::Message(NewMessage {
                msgid,
                msgid_derived: false,
                git_commit: "c",
                blob: msgid,
                date: Some(date),
                author: None,
                subject: "s",
                in_reply_to: parent,
                references: &[],
                raw: b"",
            })
        };
        s.ingest(
            l,
            0,
            "c1",
            &[
                message("report", None, 100),
                message("fix", Some("report"), date),
            ],
        )
        .unwrap();
        let fix = crate::series::Series {
            subject: "mm: fix".into(),
            version: 1,
            rfc: false,
            prefixes: vec![],
            total: 1,
            cover_msgid: None,
            complete: true,
            missing: vec![],
            base_commit: None,
            prerequisite_patch_ids: vec![],
            in_reply_to_report: Some("report".into()),
            superseded_by: None,
            patches: vec![],
            id: "fix".into(),
        };
        let thread = AssembledThread {
            dirty: vec![],
            found: crate::series::Analysis {
                series: vec![fix],
                commands: vec![],
            },
        };
        s.save_threads(l, &[thread], 1).unwrap();
        l
    }

    fn pull(number: u64, head: &str) -> Pull {
        Pull {
            number,
            title: format!("change {number}"),
            author: Some("dev".into()),
            url: format!("https://github.com/octo/linux/pull/{number}"),
            head_sha: head.into(),
            base_sha: "b".repeat(40),
            base_ref: "master".into(),
            clone_url: "https://github.com/octo/linux.git".into(),
        }
    }

    #[test]
    fn each_pull_request_head_is_queued_once_and_a_pushed_one_supersedes_it() {
        let (mut s, dir) = store("pulls");
        let first = [pull(1, "h1"), pull(2, "h2")];
        assert_eq!(s.queue_pulls("octo/linux", "job", &first, 1).unwrap(), 2);
        assert_eq!(s.queue_pulls("octo/linux", "job", &first, 2).unwrap(), 0);
        assert_eq!(s.queue_pulls("octo/linux", "other", &first, 2).unwrap(), 2);
        // Pull request 1 gets a new head before its test starts.
        assert_eq!(
            s.queue_pulls("octo/linux", "job", &[pull(1, "h3")], 3)
                .unwrap(),
            1
        );

        let job = s.claim(4).unwrap().unwrap();
        let queued = job.pull.unwrap();
        assert_eq!(
            (queued.repo.as_str(), queued.pull.number),
            ("octo/linux", 1)
        );
        assert_eq!(queued.pull.head_sha, "h1");
        assert!(queued.superseded, "h3 was pushed after h1");
        assert_eq!(queued.check_run, None);
        assert!(job.series.is_none() && job.command.is_none());

        let job = s.claim(5).unwrap().unwrap();
        let queued = job.pull.unwrap();
        assert_eq!(queued.pull, pull(2, "h2"));
        assert!(!queued.superseded);
        assert_eq!(s.check_run(job.id).unwrap(), None);
        s.set_check_run(job.id, 1000).unwrap();
        assert_eq!(s.check_run(job.id).unwrap(), Some(1000));
        let payload = r#"{"conclusion":"success"}"#;
        s.finish(
            job.id,
            "done",
            Some("FIXED"),
            "ok",
            None,
            None,
            &[NewCheck {
                forge: "github",
                payload,
            }],
            6,
        )
        .unwrap();
        let unsent = s.unsent_checks(None).unwrap();
        assert_eq!(unsent.len(), 1);
        assert_eq!(unsent[0].repo.as_deref(), Some("octo/linux"));
        assert_eq!(unsent[0].check_run, Some(1000));
        assert_eq!(unsent[0].payload, payload);
        s.check_sent(unsent[0].id, Err("GitHub 502")).unwrap();
        assert_eq!(
            s.unsent_checks(Some(job.id)).unwrap().len(),
            1,
            "tried again"
        );
        s.check_sent(unsent[0].id, Ok(7)).unwrap();
        assert!(s.unsent_checks(None).unwrap().is_empty());

        let rows = s.jobs(10).unwrap();
        let row = rows.iter().find(|r| r.id == job.id).unwrap();
        assert_eq!(row.list.as_deref(), Some("octo/linux"));
        assert_eq!(row.subject.as_deref(), Some("#2 change 2"));
        assert_eq!(row.checks.as_deref(), Some("github check sent"));
        assert_eq!(
            row.pull_request.as_deref(),
            Some("https://github.com/octo/linux/pull/2")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_fix_is_queued_once_and_only_when_new() {
        let (mut s, dir) = store("queue");
        let l = list_with_fix(&mut s, 500);
        assert_eq!(s.follow(l, "job", 1000).unwrap(), 1000);
        // Following again keeps the first start.
        assert_eq!(s.follow(l, "job", 2000).unwrap(), 1000);
        assert_eq!(s.queue(l, "job", 1000, 5).unwrap(), 0, "older than since");
        assert_eq!(s.queue(l, "job", 0, 5).unwrap(), 1);
        assert_eq!(s.queue(l, "job", 0, 6).unwrap(), 0, "queued once");
        assert_eq!(s.queue(l, "other-job", 0, 6).unwrap(), 1, "once per job");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_interrupted_job_is_resumed_and_its_reply_sent_once() {
        let (mut s, dir) = store("resume");
        let l = list_with_fix(&mut s, 500);
        s.queue(l, "job", 0, 5).unwrap();
        let job = s.claim(6).unwrap().unwrap();
        assert_eq!(job.series, Some(("fix".to_owned(), false)));
        assert_eq!(job.attempts, 1);
        assert_eq!(
            s.claim(6).unwrap(),
            None,
            "a running job is not taken twice"
        );
        let run = RecordedRun {
            arm: "base".into(),
            commit: "abc".into(),
            seq: 1,
            run: "{}".into(),
        };
        s.record_run(job.id, &run, "clean", "/x.log", 7).unwrap();
        // The process dies; the next one puts the job back.
        assert_eq!(s.requeue_interrupted(8).unwrap(), 1);
        let again = s.claim(9).unwrap().unwrap();
        assert_eq!((again.id, again.attempts), (job.id, 2));
        assert_eq!(s.runs(job.id).unwrap(), [run]);
        let reply = NewReply {
            msgid: "r@x",
            channel: "maildir",
            sender: "bot@x",
            recipients: "[]",
            body: b"mail",
        };
        s.finish(
            job.id,
            "done",
            Some("FIXED"),
            "ok",
            None,
            Some(&reply),
            &[],
            10,
        )
        .unwrap();
        let unsent = s.unsent_replies(None).unwrap();
        assert_eq!(s.unsent_replies(Some(job.id + 1)).unwrap().len(), 0);
        assert_eq!(unsent.len(), 1);
        s.reply_sent(unsent[0].id, Err("refused")).unwrap();
        assert_eq!(
            s.jobs(10).unwrap()[0].reply.as_deref(),
            Some("failed: refused")
        );
        s.reply_sent(unsent[0].id, Ok(11)).unwrap();
        assert!(s.unsent_replies(None).unwrap().is_empty());
        let rows = s.jobs(10).unwrap();
        assert_eq!(rows[0].state, "done");
        assert_eq!(rows[0].reply.as_deref(), Some("sent"));
        assert_eq!(rows[0].base_runs, 1);
        assert_eq!(s.requeue_interrupted(12).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
