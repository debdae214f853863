//! `lorebot watch`: the bot. Follows the configured lists, queues each new
//! proposed fix and `#lorebot test` request, tests them through the
//! pipeline a few at a time, and replies.
//!
//! Everything it does is in the store first: a job is queued once, its
//! runs are recorded as they end, its reply is recorded with its verdict
//! and marked sent after sending. After `kill -9` the next start puts the
//! interrupted job back in the queue, resumes it from its recorded runs,
//! and sends what was recorded and not sent.

pub mod config;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::checks::github::{GitHub, GitHubError};
use crate::checks::patchwork::{self, SeriesCheck};
use crate::checks::{CheckReport, Conclusion};
use crate::lore::{SyncOptions, SyncReport};
use crate::mail::{Address, DEFAULT_MAX_SIZE, Mail};
use crate::pipeline::{self, PastRun, Request, Stage, Timing};
use crate::reply::deliver::{self, Transport};
use crate::series::CommandKind;
use crate::store::{
    NewCheck, NewReply, QueuedJob, QueuedPull, RecordedRun, Store, StoreError, UnsentReply,
};
use crate::verdict::protocol::{Arm, Verdict};

pub use config::Config;

/// Times a job that failed for reasons other than the kernel is tried.
const ATTEMPTS: u32 = 3;

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("another lorebot watch uses {} (lock {})", data_dir.display(), lock.display())]
    Busy { data_dir: PathBuf, lock: PathBuf },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    GitHub(#[from] GitHubError),
}

/// What the bot is doing, for the display.
#[derive(Debug)]
pub enum Event<'a> {
    /// Jobs a dead process was running, queued again.
    Requeued(u64),
    Synced {
        list: &'a str,
        report: &'a SyncReport,
    },
    /// A list (or a GitHub repository) could not be read this round.
    SyncFailed {
        list: &'a str,
        error: String,
    },
    /// Jobs queued from a list (or a GitHub repository).
    Queued {
        list: &'a str,
        job: &'a str,
        new: u64,
    },
    Started {
        id: i64,
        job: &'a str,
        subject: &'a str,
        attempt: u32,
        resumed_runs: usize,
    },
    Stage {
        id: i64,
        stage: Stage<'a>,
    },
    /// The job ends without a test: superseded, or a request refused.
    Skipped {
        id: i64,
        state: &'a str,
        reason: &'a str,
    },
    Finished {
        id: i64,
        verdict: String,
        detail: &'a str,
        timing: &'a Timing,
    },
    Failed {
        id: i64,
        error: String,
    },
    Sent {
        job: i64,
        msgid: &'a str,
        channel: &'a str,
    },
    SendFailed {
        job: i64,
        msgid: &'a str,
        error: String,
    },
    /// A check reached its forge (`github`, `patchwork`), or did not.
    CheckSent {
        job: i64,
        forge: &'a str,
        result: Result<(), String>,
    },
    /// Nothing left to do until `next`.
    Idle {
        next: Duration,
    },
}

/// Runs the bot: once through (sync, queue, test, reply) when `once`,
/// else forever, every `config.poll`.
pub fn watch(
    config: &Config,
    once: bool,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), WatchError> {
    let _lock = lock(&config.data_dir)?;
    let github = match &config.github {
        Some(g) => Some(GitHub::new(&g.api, g.auth.clone())?),
        None => None,
    };
    let github = github.as_ref();
    let db = Store::path_in(&config.data_dir);
    let mut store = Store::open(&db)?;
    let requeued = store.requeue_interrupted(now())?;
    if requeued > 0 {
        events(Event::Requeued(requeued));
    }
    loop {
        send_unsent(&mut store, config, github, None, events)?;
        store.retry_failed(ATTEMPTS, now())?;
        for list in &config.lists {
            follow(&mut store, config, &list.name, events)?;
        }
        if let Some(github) = github {
            for job in &config.jobs {
                if let Some(repo) = &job.github {
                    follow_pulls(&mut store, github, repo, &job.name, events)?;
                }
            }
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..config.concurrency)
                .map(|_| scope.spawn(|| work(&db, config, github, events)))
                .collect();
            for worker in workers {
                match worker.join() {
                    Ok(result) => result?,
                    Err(_) => tracing::error!(
                        "a worker panicked; its job is queued again at the next start"
                    ),
                }
            }
            Ok::<(), WatchError>(())
        })?;
        if once {
            return Ok(());
        }
        events(Event::Idle { next: config.poll });
        std::thread::sleep(config.poll);
    }
}

/// Holds `<data_dir>/watch.lock`: one watch per data directory, so that
/// a job found running belongs to a dead process.
fn lock(data_dir: &Path) -> Result<File, WatchError> {
    std::fs::create_dir_all(data_dir).map_err(|source| WatchError::Io {
        what: "cannot create",
        path: data_dir.to_owned(),
        source,
    })?;
    let path = data_dir.join("watch.lock");
    let file = File::create(&path).map_err(|source| WatchError::Io {
        what: "cannot create",
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(WatchError::Busy {
            data_dir: data_dir.to_owned(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(WatchError::Io {
            what: "cannot lock",
            path,
            source,
        }),
    }
}

/// Syncs one list and queues what its jobs should test. A list that
/// cannot be fetched is reported and left for the next round.
fn follow(
    store: &mut Store,
    config: &Config,
    list: &str,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), WatchError> {
    match crate::lore::sync(
        store,
        &config.data_dir,
        &config.lore,
        list,
        &SyncOptions::default(),
    ) {
        Ok(report) => events(Event::Synced {
            list,
            report: &report,
        }),
        Err(e) => {
            events(Event::SyncFailed {
                list,
                error: e.to_string(),
            });
            return Ok(());
        }
    }
    let list_id = store.list_id(&config.lore, list)?;
    for job in config.jobs_on(list) {
        let since = match config.backlog {
            config::Backlog::All => 0,
            config::Backlog::Last(d) => now() - d.as_secs() as i64,
        };
        let since = store.follow(list_id, &job.name, since)?;
        let new = store.queue(list_id, &job.name, since, now())?;
        if new > 0 {
            events(Event::Queued {
                list,
                job: &job.name,
                new,
            });
        }
    }
    Ok(())
}

/// Lists the open pull requests of `repo` and queues each new head. A
/// repository GitHub does not answer for is reported and left for the
/// next round.
fn follow_pulls(
    store: &mut Store,
    github: &GitHub,
    repo: &str,
    job: &str,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), WatchError> {
    let pulls = match github.open_pulls(repo) {
        Ok(pulls) => pulls,
        Err(e) => {
            events(Event::SyncFailed {
                list: repo,
                error: e.to_string(),
            });
            return Ok(());
        }
    };
    let new = store.queue_pulls(repo, job, &pulls, now())?;
    if new > 0 {
        events(Event::Queued {
            list: repo,
            job,
            new,
        });
    }
    Ok(())
}

/// One worker: takes queued jobs until none is left.
fn work(
    db: &Path,
    config: &Config,
    github: Option<&GitHub>,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), WatchError> {
    let mut store = Store::open(db)?;
    while let Some(job) = store.claim(now())? {
        let id = job.id;
        let tested = match &job.pull {
            Some(pull) => test_pull(&mut store, config, github, &job, pull, events),
            None => test(&mut store, config, &job, events),
        };
        match tested {
            Ok(()) => {}
            Err(Failure::Skip { state, reason }) => {
                match &job.command {
                    // A request is answered, even when refused.
                    Some((msgid, _)) => refuse(&mut store, config, &job, msgid, &reason)?,
                    None => end_untested(&mut store, id, state, &reason)?,
                }
                events(Event::Skipped {
                    id,
                    state,
                    reason: &reason,
                });
            }
            Err(Failure::Error(error)) if job.attempts >= ATTEMPTS => {
                end_untested(&mut store, id, "error", &error)?;
                events(Event::Failed { id, error });
            }
            Err(Failure::Error(error)) => {
                store.set_state(id, "error", Some(&error), now())?;
                events(Event::Failed { id, error });
            }
            Err(Failure::Store(e)) => return Err(e.into()),
        }
        // Only this job's reply: another worker sends its own.
        send_unsent(&mut store, config, github, Some(id), events)?;
    }
    Ok(())
}

/// Ends a job that will not be tested in `state`; a check run it had
/// started is ended too, neutral, saying why.
fn end_untested(store: &mut Store, id: i64, state: &str, reason: &str) -> Result<(), StoreError> {
    if store.check_run(id)?.is_none() {
        return store.set_state(id, state, Some(reason), now());
    }
    let report = CheckReport {
        conclusion: Conclusion::Neutral,
        title: format!("not tested: {reason}"),
        summary: format!("lorebot did not test this commit: {reason}.\n"),
        annotations: Vec::new(),
    };
    let payload = serde_json::to_string(&report).unwrap_or_default();
    store.finish(
        id,
        state,
        None,
        reason,
        None,
        None,
        &[NewCheck {
            forge: GITHUB,
            payload: &payload,
        }],
        now(),
    )
}

/// Why a job ended without a verdict.
enum Failure {
    /// Nothing to test: the job ends in `state`.
    Skip {
        state: &'static str,
        reason: String,
    },
    /// The test could not be done; tried again later.
    Error(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

fn skip(state: &'static str, reason: impl Into<String>) -> Failure {
    Failure::Skip {
        state,
        reason: reason.into(),
    }
}

/// Tests one job and records its verdict and reply.
fn test(
    store: &mut Store,
    config: &Config,
    job: &QueuedJob,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), Failure> {
    let mut plan = plan_of(config, job)?;
    let mut rev = None;
    let mut answering = None;
    if let Some((msgid, command)) = &job.command {
        answering = Some(msgid.as_str());
        match serde_json::from_str::<CommandKind>(command) {
            Ok(CommandKind::Test { repo, rev: r }) => {
                if let Some(repo) = repo.filter(|r| *r != plan.tree.url) {
                    plan.tree.url = repo;
                }
                rev = r;
            }
            Ok(CommandKind::Bisect { .. }) => {
                return Err(skip("refused", "#lorebot bisect is not supported"));
            }
            Ok(CommandKind::Invalid { error }) => return Err(skip("refused", error)),
            Err(e) => return Err(skip("refused", format!("unreadable command: {e}"))),
        }
    }
    let (series_id, superseded) = job
        .series
        .clone()
        .ok_or_else(|| skip("refused", "no patch series in the thread to test"))?;
    if superseded {
        return Err(skip("superseded", "a newer version was posted"));
    }

    let mails = thread_mails(store, job.list_id, &series_id)?;
    let series = crate::series::analyze(&mails)
        .series
        .into_iter()
        .find(|s| s.id == series_id)
        .ok_or_else(|| Failure::Error(format!("series {series_id} is not in its thread")))?;
    let resume: Vec<PastRun> = store
        .runs(job.id)?
        .into_iter()
        .filter_map(|r| past_run(&r))
        .collect();
    events(Event::Started {
        id: job.id,
        job: &plan.name,
        subject: &series.subject,
        attempt: job.attempts,
        resumed_runs: resume.len(),
    });
    let list = config.list_address(&job.list);
    let request = Request {
        mails: &mails,
        series,
        answering,
        rev,
        list,
        resume,
        logs: Some(config.data_dir.join("runs").join(format!("job-{}", job.id))),
        logs_url: config
            .web_url
            .as_ref()
            .zip(job.series_id)
            .map(|(web, id)| format!("{web}/series/{id}")),
    };
    let patch_msgids: Vec<String> = request
        .series
        .patches
        .iter()
        .map(|p| p.msgid.clone())
        .collect();
    let logs_url = request.logs_url.clone();
    let outcome = pipeline::test_series(
        request,
        &plan,
        &config.work_dir,
        &config.bot,
        &mut |stage| on_stage(store, job.id, events, stage),
    )
    .map_err(|e| Failure::Error(e.to_string()))?;

    let stored = new_reply(&outcome.reply, &config.transport);
    let patchwork = plan.patchwork.as_ref().map(|pw| {
        let description = format!("{}: {}", outcome.verdict, outcome.detail);
        serde_json::to_string(&SeriesCheck {
            url: pw.url.clone(),
            project: pw.project.clone(),
            msgids: patch_msgids,
            state: patchwork::State::of(outcome.verdict),
            context: format!("lorebot-{}", plan.name),
            description: description.chars().take(250).collect(),
            target_url: logs_url,
        })
        .unwrap_or_default()
    });
    let checks: Vec<NewCheck<'_>> = patchwork
        .iter()
        .map(|payload| NewCheck {
            forge: PATCHWORK,
            payload,
        })
        .collect();
    record_verdict(
        store,
        job.id,
        (outcome.verdict, &outcome.detail, &outcome.timing),
        Some(&stored.as_new()),
        &checks,
        events,
    )
}

/// Ends a tested job: its verdict, reply and checks recorded in one
/// transaction, then announced.
fn record_verdict(
    store: &mut Store,
    job_id: i64,
    (verdict, detail, timing): (Verdict, &str, &Timing),
    reply: Option<&NewReply<'_>>,
    checks: &[NewCheck<'_>],
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), Failure> {
    let timing_json = serde_json::to_string(timing).unwrap_or_default();
    store.finish(
        job_id,
        "done",
        Some(&verdict.to_string()),
        detail,
        Some(&timing_json),
        reply,
        checks,
        now(),
    )?;
    events(Event::Finished {
        id: job_id,
        verdict: verdict.to_string(),
        detail,
        timing,
    });
    Ok(())
}

/// The job's plan in the config.
fn plan_of(config: &Config, job: &QueuedJob) -> Result<crate::job::JobPlan, Failure> {
    config
        .jobs
        .iter()
        .find(|j| j.name == job.job_name)
        .cloned()
        .ok_or_else(|| {
            skip(
                "refused",
                format!("job {} is not in the config", job.job_name),
            )
        })
}

/// Notes a stage of the job's test: the stage for the queue page, a run
/// in the store as soon as it ends, and the event for the display.
fn on_stage(store: &mut Store, job_id: i64, events: &(dyn Fn(Event<'_>) + Sync), stage: Stage<'_>) {
    let name = match stage {
        Stage::Building { .. } => "building",
        Stage::Applying => "applying",
        Stage::Ran { .. } => "testing",
    };
    if let Err(e) = store.set_stage(job_id, name) {
        tracing::warn!(job = job_id, error = %e, "cannot note the job's stage");
    }
    if let Stage::Ran {
        arm,
        commit,
        run,
        resumed: false,
        ..
    } = &stage
    {
        record(store, job_id, *arm, commit, run);
    }
    events(Event::Stage { id: job_id, stage });
}

/// The forges' names in the store.
const GITHUB: &str = "github";
const PATCHWORK: &str = "patchwork";

/// Tests a pull request's head against its merge base with the base
/// branch, with a check run on the head: in progress from the start, its
/// conclusion recorded with the verdict.
fn test_pull(
    store: &mut Store,
    config: &Config,
    github: Option<&GitHub>,
    job: &QueuedJob,
    queued: &QueuedPull,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), Failure> {
    let plan = plan_of(config, job)?;
    let pull = &queued.pull;
    if queued.superseded {
        return Err(skip("superseded", "a newer head was pushed"));
    }
    let github = github.ok_or_else(|| skip("refused", "the config says no way to reach GitHub"))?;
    let name = format!("lorebot/{}", plan.name);
    // The head's page on the queue, with its runs and console logs.
    let page = config
        .web_url
        .as_ref()
        .map(|web| format!("{web}/pulls/{}", queued.id));
    let check_run = match queued.check_run {
        Some(id) => id,
        None => {
            let id = github
                .start(
                    &queued.repo,
                    &pull.head_sha,
                    &name,
                    &job.id.to_string(),
                    page.as_deref(),
                )
                .map_err(|e| Failure::Error(e.to_string()))?;
            store.set_check_run(job.id, id)?;
            id
        }
    };
    tracing::info!(job = job.id, check_run, repo = %queued.repo, pull = pull.number, "check run in progress");
    let tree =
        pipeline::open_tree(&plan, &config.work_dir).map_err(|e| Failure::Error(e.to_string()))?;
    let fetch = |what: &str, local: &str| {
        tree.fetch_ref(&pull.clone_url, what, local)
            .map_err(|e| Failure::Error(e.to_string()))
    };
    let n = pull.number;
    let head = fetch(
        &format!("refs/pull/{n}/head"),
        &format!("refs/lorebot/pull/{n}/head"),
    )?;
    if head.to_string() != pull.head_sha {
        return Err(skip(
            "superseded",
            format!("the pull request's head moved to {head}"),
        ));
    }
    let base_tip = fetch(
        &format!("refs/heads/{}", pull.base_ref),
        &format!("refs/lorebot/pull/{n}/base"),
    )?;
    let base_sha = tree.resolve(&pull.base_sha).unwrap_or(base_tip);
    let base = tree
        .merge_base(base_sha, head)
        .map_err(|e| Failure::Error(e.to_string()))?;
    let resume: Vec<PastRun> = store
        .runs(job.id)?
        .into_iter()
        .filter_map(|r| past_run(&r))
        .collect();
    let subject = format!("#{n} {}", pull.title);
    events(Event::Started {
        id: job.id,
        job: &plan.name,
        subject: &subject,
        attempt: job.attempts,
        resumed_runs: resume.len(),
    });
    let outcome = pipeline::test_commits(
        &tree,
        pipeline::CommitsRequest {
            base_label: pull.base_ref.clone(),
            base,
            head,
            subject,
            resume,
            logs: Some(config.data_dir.join("runs").join(format!("job-{}", job.id))),
            logs_url: page,
        },
        &plan,
        &config.work_dir,
        &mut |stage| on_stage(store, job.id, events, stage),
    )
    .map_err(|e| Failure::Error(e.to_string()))?;
    let report = crate::checks::report(&outcome, &tree, head);
    let payload = serde_json::to_string(&report).unwrap_or_default();
    record_verdict(
        store,
        job.id,
        (outcome.verdict, &outcome.detail, &outcome.timing),
        None,
        &[NewCheck {
            forge: GITHUB,
            payload: &payload,
        }],
        events,
    )
}

/// A reply as the store keeps it.
struct StoredReply {
    msgid: String,
    channel: String,
    sender: String,
    recipients: String,
    body: Vec<u8>,
}

impl StoredReply {
    fn as_new(&self) -> NewReply<'_> {
        NewReply {
            msgid: &self.msgid,
            channel: &self.channel,
            sender: &self.sender,
            recipients: &self.recipients,
            body: &self.body,
        }
    }
}

fn new_reply(reply: &crate::reply::Reply, transport: &Transport) -> StoredReply {
    let recipients: Vec<&Address> = reply.to.iter().chain(&reply.cc).collect();
    StoredReply {
        msgid: reply.message_id.clone(),
        channel: transport.describe(),
        sender: serde_json::to_string(&reply.from).unwrap_or_default(),
        recipients: serde_json::to_string(&recipients).unwrap_or_default(),
        body: reply.to_bytes(&crate::reply::date_now()),
    }
}

/// Ends a refused request with a reply that says why.
fn refuse(
    store: &mut Store,
    config: &Config,
    job: &QueuedJob,
    msgid: &str,
    reason: &str,
) -> Result<(), WatchError> {
    let mail = store
        .message(job.list_id, msgid)?
        .and_then(|raw| Mail::parse_owned(raw, DEFAULT_MAX_SIZE).ok());
    let reply = mail.map(|mail| {
        new_reply(
            &crate::reply::refuse(&mail, config.list_address(&job.list), &config.bot, reason),
            &config.transport,
        )
    });
    store.finish(
        job.id,
        "refused",
        None,
        reason,
        None,
        reply.as_ref().map(StoredReply::as_new).as_ref(),
        &[],
        now(),
    )?;
    Ok(())
}

/// Records a run as soon as it ends. A run that cannot be recorded is run
/// again if the job is interrupted: logged, not fatal.
fn record(store: &mut Store, job_id: i64, arm: Arm, commit: &str, run: &crate::vm::Run) {
    let recorded = RecordedRun {
        arm: arm_name(arm).to_owned(),
        commit: commit.to_owned(),
        seq: run.index,
        run: serde_json::to_string(run).unwrap_or_default(),
    };
    let log = run.log.display().to_string();
    if let Err(e) = store.record_run(job_id, &recorded, run.outcome.as_str(), &log, now()) {
        tracing::error!(job = job_id, run = run.index, error = %e, "cannot record run");
    }
}

fn arm_name(arm: Arm) -> &'static str {
    match arm {
        Arm::Base => "base",
        Arm::Patched => "patched",
    }
}

fn past_run(r: &RecordedRun) -> Option<PastRun> {
    let arm = match r.arm.as_str() {
        "base" => Arm::Base,
        "patched" => Arm::Patched,
        _ => return None,
    };
    match serde_json::from_str(&r.run) {
        Ok(run) => Some(PastRun {
            arm,
            commit: r.commit.clone(),
            run,
        }),
        Err(e) => {
            tracing::warn!(arm = %r.arm, seq = r.seq, error = %e, "recorded run unreadable; running it again");
            None
        }
    }
}

/// The mails of the thread holding `msgid`, from the store.
fn thread_mails(store: &Store, list_id: i64, msgid: &str) -> Result<Vec<Mail>, Failure> {
    let mut root = msgid.to_owned();
    let mut seen = std::collections::HashSet::new();
    while let Some(Some(parent)) = store.parent(list_id, &root)? {
        if !seen.insert(parent.clone()) {
            break;
        }
        root = parent;
    }
    let mut mails = Vec::new();
    for member in store.thread_members(list_id, &root)? {
        let Some(raw) = store.raw(member.id)? else {
            continue;
        };
        match Mail::parse_owned(raw, DEFAULT_MAX_SIZE) {
            Ok(m) => mails.push(m),
            Err(e) => tracing::warn!(msgid = %member.msgid, error = %e, "skipping mail"),
        }
    }
    Ok(mails)
}

/// Sends the recorded replies and checks not yet sent (all, or `job`'s).
/// A failure is recorded and the reply tried again next time.
fn send_unsent(
    store: &mut Store,
    config: &Config,
    github: Option<&GitHub>,
    job: Option<i64>,
    events: &(dyn Fn(Event<'_>) + Sync),
) -> Result<(), WatchError> {
    for check in store.unsent_checks(job)? {
        let sent = match check.forge.as_str() {
            GITHUB => match (github, &check.repo, check.check_run) {
                (Some(github), Some(repo), Some(id)) => {
                    serde_json::from_str::<CheckReport>(&check.payload)
                        .map_err(|e| format!("recorded check unreadable: {e}"))
                        .and_then(|r| github.complete(repo, id, &r).map_err(|e| e.to_string()))
                }
                _ => Err("no GitHub client, pull request or check run for it".to_owned()),
            },
            PATCHWORK => match &config.patchwork_token {
                Some(token) => serde_json::from_str::<SeriesCheck>(&check.payload)
                    .map_err(|e| format!("recorded check unreadable: {e}"))
                    .and_then(|c| patchwork::post(&c, token).map_err(|e| e.to_string())),
                None => Err("no patchwork token in the config".to_owned()),
            },
            other => Err(format!("unknown forge {other:?}")),
        };
        match &sent {
            Ok(()) => store.check_sent(check.id, Ok(now()))?,
            Err(error) => store.check_sent(check.id, Err(error))?,
        }
        events(Event::CheckSent {
            job: check.job_id,
            forge: &check.forge,
            result: sent,
        });
    }
    for reply in store.unsent_replies(job)? {
        match send(&config.transport, &reply) {
            Ok(()) => {
                store.reply_sent(reply.id, Ok(now()))?;
                events(Event::Sent {
                    job: reply.job_id,
                    msgid: &reply.msgid,
                    channel: &reply.channel,
                });
            }
            Err(error) => {
                store.reply_sent(reply.id, Err(&error))?;
                events(Event::SendFailed {
                    job: reply.job_id,
                    msgid: &reply.msgid,
                    error,
                });
            }
        }
    }
    Ok(())
}

fn send(transport: &Transport, reply: &UnsentReply) -> Result<(), String> {
    let from: Address = serde_json::from_str(&reply.sender).map_err(|e| e.to_string())?;
    let to: Vec<Address> = serde_json::from_str(&reply.recipients).map_err(|e| e.to_string())?;
    deliver::send(transport, &reply.msgid, &from, &to, &reply.body).map_err(|e| e.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
