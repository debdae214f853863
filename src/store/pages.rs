//! What the maintainer's queue page reads: every series (and pull request
//! head) with the state of its latest test, and one of them with its jobs,
//! runs, replies and checks.

use std::sync::LazyLock;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};

/// Which series to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct SeriesFilter {
    pub list: Option<String>,
    /// A state as [`SeriesRow::state`] shows it (`new`, `queued`,
    /// `testing`, `FIXED`, ...).
    pub state: Option<String>,
    /// Part of the author's name or address.
    pub author: Option<String>,
    /// 0-based.
    pub page: u32,
    pub per_page: u32,
}

/// A series and its latest test.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesRow {
    pub id: i64,
    pub list: String,
    pub lore: String,
    pub msgid: String,
    pub subject: String,
    pub version: u32,
    pub total: u32,
    pub author: Option<String>,
    pub first_seen: i64,
    /// The state is `new`, `incomplete`, `superseded`, `queued`,
    /// `applying`, `building`, `testing`, `error`, or the verdict.
    #[serde(flatten)]
    pub latest: LatestTest,
}

/// The latest test of a series or pull request head, as its row shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LatestTest {
    /// The verdict, what the test is doing, or (untested) what the row is.
    pub state: String,
    pub job: Option<i64>,
    pub detail: Option<String>,
    pub base_runs: u32,
    pub patched_runs: u32,
}

/// One run, as listed on a series' page.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub arm: String,
    pub seq: u32,
    pub commit: String,
    pub outcome: String,
    pub log_path: Option<String>,
    /// When it was recorded (Unix time).
    pub recorded: i64,
    /// The run as JSON, when it was recorded whole.
    #[serde(skip)]
    pub run: Option<String>,
}

/// A test of a series.
#[derive(Clone, Debug, Serialize)]
pub struct JobDetail {
    pub id: i64,
    pub job: String,
    pub state: String,
    pub stage: Option<String>,
    pub verdict: Option<String>,
    pub detail: Option<String>,
    /// The `#lorebot test` mail that asked for it.
    pub command: Option<String>,
    pub timing: Option<serde_json::Value>,
    pub created: i64,
    pub updated: i64,
    pub runs: Vec<RunRow>,
    /// The reply as sent (or to be sent).
    pub reply: Option<String>,
    pub reply_sent: Option<i64>,
    /// The checks reported to GitHub or patchwork.
    pub checks: Vec<CheckRow>,
}

/// A check as recorded with a verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckRow {
    /// `github` or `patchwork`.
    pub forge: String,
    /// What was (or is to be) sent, as JSON.
    pub payload: serde_json::Value,
    pub sent: Option<i64>,
    /// Why the last try to send it failed.
    pub error: Option<String>,
}

/// A pull request head and its latest test.
#[derive(Clone, Debug, Serialize)]
pub struct PullRow {
    pub id: i64,
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub author: Option<String>,
    /// Its page on GitHub.
    pub url: String,
    pub head: String,
    pub base_ref: String,
    pub first_seen: i64,
    /// The state is `new`, `superseded`, `queued`, `building`, `testing`,
    /// `error`, or the verdict.
    #[serde(flatten)]
    pub latest: LatestTest,
}

/// A pull request head with its tests.
#[derive(Clone, Debug, Serialize)]
pub struct PullDetail {
    #[serde(flatten)]
    pub pull: PullRow,
    pub jobs: Vec<JobDetail>,
}

/// A series with everything done about it.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesDetail {
    #[serde(flatten)]
    pub series: SeriesRow,
    pub jobs: Vec<JobDetail>,
}

/// The state a row shows, from its latest job (`job_state`, `stage`,
/// `verdict`) and, untested, from what it is.
const STATE: &str = "CASE
        WHEN job_state = 'done' THEN verdict
        WHEN job_state = 'running' THEN ifnull(stage, 'testing')
        WHEN job_state IS NOT NULL THEN job_state";

/// One page of rows (`?1` the list or repository, `?2` the state, `?3`
/// part of the author, `?4` one id, `?5` and `?6` the page), newest first,
/// with the runs of each one's latest job and how many rows match.
fn paged(latest: &str, untested: &str, columns: &str) -> String {
    format!(
        "WITH latest AS ({latest}),
        stated AS (SELECT *, {STATE} {untested} END AS state FROM latest),
        page AS (
            SELECT *, count(*) OVER () AS matching FROM stated
            WHERE (?1 IS NULL OR place = ?1) AND (?2 IS NULL OR state = ?2)
              AND (?3 IS NULL OR instr(lower(author), lower(?3)) > 0) AND (?4 IS NULL OR id = ?4)
            ORDER BY id DESC LIMIT ?5 OFFSET ?6
        )
        -- Runs are counted for the page's rows only.
        SELECT {columns}, job_id, detail,
               (SELECT count(*) FROM runs r WHERE r.job_id = page.job_id AND r.arm = 'base'),
               (SELECT count(*) FROM runs r WHERE r.job_id = page.job_id AND r.arm = 'patched'),
               matching
        FROM page ORDER BY id DESC"
    )
}

static SERIES_ROWS: LazyLock<String> = LazyLock::new(|| {
    paged(
        "SELECT s.id, l.name AS place, l.base_url, s.series_msgid, s.subject, s.version, s.total,
                s.author, s.first_seen, s.superseded_by IS NOT NULL AS superseded, s.complete,
                j.id AS job_id, j.state AS job_state, j.stage, j.verdict, j.detail
         FROM series s
         JOIN lists l ON l.id = s.list_id
         -- A refused request says nothing about the series.
         LEFT JOIN jobs j ON j.id =
             (SELECT max(id) FROM jobs WHERE series_id = s.id AND state != 'refused')",
        "WHEN superseded THEN 'superseded' WHEN NOT complete THEN 'incomplete' ELSE 'new'",
        "id, place, base_url, series_msgid, subject, version, total, author, first_seen, state",
    )
});

static PULL_ROWS: LazyLock<String> = LazyLock::new(|| {
    paged(
        "SELECT p.id, p.repo AS place, p.number, p.title, p.author, p.url, p.head_sha,
                p.base_ref, p.first_seen,
                EXISTS (SELECT 1 FROM pulls n
                        WHERE n.repo = p.repo AND n.number = p.number AND n.id > p.id) AS superseded,
                j.id AS job_id, j.state AS job_state, j.stage, j.verdict, j.detail
         FROM pulls p
         LEFT JOIN jobs j ON j.id = (SELECT max(id) FROM jobs WHERE pull_id = p.id)",
        "WHEN superseded THEN 'superseded' ELSE 'new'",
        "id, place, number, title, author, url, head_sha, base_ref, first_seen, state",
    )
});

fn series_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(SeriesRow, u64)> {
    Ok((
        SeriesRow {
            id: r.get(0)?,
            list: r.get(1)?,
            lore: r.get(2)?,
            msgid: r.get(3)?,
            subject: r.get(4)?,
            version: r.get(5)?,
            total: r.get(6)?,
            author: r.get(7)?,
            first_seen: r.get(8)?,
            latest: latest_test(r)?,
        },
        r.get::<_, i64>(14)? as u64,
    ))
}

/// Columns 9 to 13 of a [`paged`] row.
fn latest_test(r: &rusqlite::Row<'_>) -> rusqlite::Result<LatestTest> {
    Ok(LatestTest {
        state: r.get(9)?,
        job: r.get(10)?,
        detail: r.get(11)?,
        base_runs: r.get(12)?,
        patched_runs: r.get(13)?,
    })
}

fn pull_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(PullRow, u64)> {
    Ok((
        PullRow {
            id: r.get(0)?,
            repo: r.get(1)?,
            number: r.get::<_, i64>(2)? as u64,
            title: r.get(3)?,
            author: r.get(4)?,
            url: r.get(5)?,
            head: r.get(6)?,
            base_ref: r.get(7)?,
            first_seen: r.get(8)?,
            latest: latest_test(r)?,
        },
        r.get::<_, i64>(14)? as u64,
    ))
}

impl Store {
    /// One page of series, newest first, and how many match in all.
    pub fn series_rows(&self, f: &SeriesFilter) -> Result<(Vec<SeriesRow>, u64), StoreError> {
        self.rows(&SERIES_ROWS, f, series_row)
    }

    /// One page of pull request heads (`f.list` is the repository), newest
    /// first, and how many match in all.
    pub fn pull_rows(&self, f: &SeriesFilter) -> Result<(Vec<PullRow>, u64), StoreError> {
        self.rows(&PULL_ROWS, f, pull_row)
    }

    fn rows<T>(
        &self,
        sql: &str,
        f: &SeriesFilter,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<(T, u64)>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let mut st = self.conn.prepare_cached(sql)?;
        let per_page = f.per_page.max(1);
        let rows = st.query_map(
            params![
                f.list,
                f.state,
                f.author,
                None::<i64>,
                per_page,
                i64::from(f.page) * i64::from(per_page)
            ],
            row,
        )?;
        let mut total = 0;
        let mut page = Vec::new();
        for r in rows {
            let (r, count) = r?;
            total = count;
            page.push(r);
        }
        Ok((page, total))
    }

    /// The one row of `sql` with this id.
    fn row<T>(
        &self,
        sql: &str,
        id: i64,
        row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<(T, u64)>,
    ) -> Result<Option<T>, StoreError> {
        let mut st = self.conn.prepare_cached(sql)?;
        Ok(st
            .query_row(
                params![None::<String>, None::<String>, None::<String>, id, 1, 0],
                row,
            )
            .optional()?
            .map(|(r, _)| r))
    }

    /// A series with its jobs (newest first), their runs and replies.
    pub fn series_detail(&self, id: i64) -> Result<Option<SeriesDetail>, StoreError> {
        let Some(series) = self.row(&SERIES_ROWS, id, series_row)? else {
            return Ok(None);
        };
        let jobs = self.job_details("series_id", id)?;
        Ok(Some(SeriesDetail { series, jobs }))
    }

    /// A pull request head with its jobs (newest first), their runs and
    /// checks.
    pub fn pull_detail(&self, id: i64) -> Result<Option<PullDetail>, StoreError> {
        let Some(pull) = self.row(&PULL_ROWS, id, pull_row)? else {
            return Ok(None);
        };
        let jobs = self.job_details("pull_id", id)?;
        Ok(Some(PullDetail { pull, jobs }))
    }

    /// The jobs whose `column` (`series_id`, `pull_id`) is `id`, newest
    /// first, with their runs, reply and checks.
    fn job_details(&self, column: &'static str, id: i64) -> Result<Vec<JobDetail>, StoreError> {
        let mut jobs_st = self.conn.prepare_cached(&format!(
            "SELECT j.id, j.job_name, j.state, j.stage, j.verdict, j.detail, c.msgid, j.timing,
                    j.created, j.updated, p.body, p.sent
             FROM jobs j
             LEFT JOIN commands c ON c.id = j.command_id
             LEFT JOIN replies p ON p.job_id = j.id
             WHERE j.{column} = ?1 ORDER BY j.id DESC"
        ))?;
        let mut jobs = jobs_st
            .query_map([id], |r| {
                let timing: Option<String> = r.get(7)?;
                let body: Option<Vec<u8>> = r.get(10)?;
                Ok(JobDetail {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    state: r.get(2)?,
                    stage: r.get(3)?,
                    verdict: r.get(4)?,
                    detail: r.get(5)?,
                    command: r.get(6)?,
                    timing: timing.and_then(|t| serde_json::from_str(&t).ok()),
                    created: r.get(8)?,
                    updated: r.get(9)?,
                    runs: Vec::new(),
                    reply: body.map(|b| String::from_utf8_lossy(&b).replace("\r\n", "\n")),
                    reply_sent: r.get(11)?,
                    checks: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut runs_st = self.conn.prepare_cached(
            "SELECT id, arm, seq, kernel_commit, outcome, log_path, run, started FROM runs
             WHERE job_id = ?1 ORDER BY started, id",
        )?;
        let mut checks_st = self.conn.prepare_cached(
            "SELECT forge, payload, sent, error FROM checks WHERE job_id = ?1 ORDER BY id",
        )?;
        for job in &mut jobs {
            job.runs = runs_st
                .query_map([job.id], |r| {
                    Ok(RunRow {
                        id: r.get(0)?,
                        arm: r.get(1)?,
                        seq: r.get(2)?,
                        commit: r.get(3)?,
                        outcome: r.get(4)?,
                        log_path: r.get(5)?,
                        run: r.get(6)?,
                        recorded: r.get(7)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            job.checks = checks_st
                .query_map([job.id], |r| {
                    let payload: String = r.get(1)?;
                    Ok(CheckRow {
                        forge: r.get(0)?,
                        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                        sent: r.get(2)?,
                        error: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        Ok(jobs)
    }

    /// The console log of a run, by the run's id: the only files the queue
    /// page serves.
    pub fn run_log_path(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT log_path FROM runs WHERE id = ?1")?;
        Ok(st
            .query_row([run_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// The series with a finished test, oldest first.
    pub fn tested_series(&self) -> Result<Vec<i64>, StoreError> {
        self.tested("series_id")
    }

    /// The pull request heads with a finished test, oldest first.
    pub fn tested_pulls(&self) -> Result<Vec<i64>, StoreError> {
        self.tested("pull_id")
    }

    /// The distinct `column` (`series_id`, `pull_id`) of finished jobs.
    fn tested(&self, column: &'static str) -> Result<Vec<i64>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT DISTINCT {column} FROM jobs
             WHERE state = 'done' AND {column} IS NOT NULL ORDER BY {column}"
        ))?;
        Ok(st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// The latest verdicts, newest first, for a feed.
    pub fn verdicts(&self, limit: u32) -> Result<Vec<(SeriesRow, i64)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT series_id, updated FROM jobs
             WHERE state = 'done' AND series_id IS NOT NULL ORDER BY updated DESC, id DESC LIMIT ?1",
        )?;
        let done: Vec<(i64, i64)> = st
            .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for (series, updated) in done {
            if let Some(d) = self.series_detail(series)? {
                out.push((d.series, updated));
            }
        }
        Ok(out)
    }
}
