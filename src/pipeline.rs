//! One test, through every stage: the series in a thread, applied to the
//! job's tree, both kernels built, base and patched runs interleaved until
//! the protocol decides, and the reply that says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use serde::Serialize;

use thiserror::Error;

use crate::build::{BuildError, Builder, Kernel, Progress};
use crate::job::{JobPlan, Target};
use crate::mail::{Address, Mail};
use crate::reply::{self, Identity, Logs, Reply, Tested};
use crate::series::Series;
use crate::tree::{ApplyOutcome, Tree};
use crate::verdict::ArmSummary;
use crate::verdict::protocol::{self, Arm, Decision, Next, Policy, Tally, Verdict};
use crate::vm::{self, Guest, Run, Timeouts};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("the thread has no patch series to test")]
    NoSeries,
    #[error("series \"{subject}\" is incomplete: missing {missing:?}")]
    Incomplete { subject: String, missing: Vec<u32> },
    #[error("patch {msgid} is not in the thread")]
    MissingMail { msgid: String },
    #[error("tree {url}: {message}")]
    Tree { url: String, message: String },
    #[error("kernel build: {0}")]
    Build(#[from] BuildError),
    #[error("worktree {}: {message}", path.display())]
    Worktree { path: PathBuf, message: String },
    #[error(transparent)]
    Vm(#[from] vm::VmError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What the pipeline is doing, for a progress display.
#[derive(Debug)]
pub enum Stage<'a> {
    Building {
        arm: Arm,
        progress: &'a Progress,
    },
    Applying,
    /// A run ended (or was taken from `Request::resume`).
    Ran {
        arm: Arm,
        /// The commit of the kernel it booted.
        commit: &'a str,
        run: &'a Run,
        tally: &'a Tally,
        resumed: bool,
    },
}

/// A run recorded by an earlier, interrupted attempt at the same test.
#[derive(Clone, Debug)]
pub struct PastRun {
    pub arm: Arm,
    pub commit: String,
    pub run: Run,
}

/// What to test, beyond the job.
pub struct Request<'a> {
    /// The thread: the series, the report it answers, commands.
    pub mails: &'a [Mail],
    pub series: Series,
    /// The mail the reply answers when not the series (a `#lorebot test`).
    pub answering: Option<&'a str>,
    /// The base to test on instead of the series' base or the job's branch.
    pub rev: Option<String>,
    /// The list, Cc'd on the reply.
    pub list: Option<&'a Address>,
    /// Runs an interrupted attempt recorded; those of the same kernels are
    /// taken in order before any new run.
    pub resume: Vec<PastRun>,
    /// Where the console logs go (default: `<data>/runs/<job>-<base>-<head>`).
    pub logs: Option<PathBuf>,
    /// Where readers of the reply find the logs (the queue page); without
    /// it the reply quotes the first report.
    pub logs_url: Option<String>,
}

/// Where the test's time went, in seconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timing {
    /// Building (or finding in the cache) both kernels.
    pub build_s: f64,
    /// QEMU, from start to exit, over the runs made by this attempt.
    pub guest_s: f64,
    /// Everything, from the request to the reply.
    pub total_s: f64,
}

impl Timing {
    /// What lorebot itself took: the total less builds and guests.
    pub fn overhead_s(&self) -> f64 {
        (self.total_s - self.build_s - self.guest_s).max(0.0)
    }
}

/// The test's result: the verdict, the reply that says it, and where the
/// time went.
pub struct Outcome {
    pub verdict: Verdict,
    /// Why, in one line: the deciding rule, or what failed.
    pub detail: String,
    pub reply: Reply,
    pub timing: Timing,
}

/// The series a test is about: the newest version of a proposed fix for
/// the report in the thread, else the newest series.
pub fn pick_series(mails: &[Mail]) -> Result<Series, PipelineError> {
    let analysis = crate::series::analyze(mails);
    let mut current = analysis
        .series
        .iter()
        .rev()
        .filter(|s| s.superseded_by.is_none());
    let series = current
        .clone()
        .find(|s| s.in_reply_to_report.is_some())
        .or_else(|| current.next())
        .cloned()
        .ok_or(PipelineError::NoSeries)?;
    if !series.complete {
        return Err(PipelineError::Incomplete {
            subject: series.subject.clone(),
            missing: series.missing.clone(),
        });
    }
    Ok(series)
}

/// The job's tree: a local repository is used in place, anything else is
/// cloned (and fetched) under the data directory.
pub fn open_tree(job: &JobPlan, data: &Path) -> Result<Tree, PipelineError> {
    let tree_err = |e: &dyn std::fmt::Display| PipelineError::Tree {
        url: job.tree.url.clone(),
        message: e.to_string(),
    };
    if Path::new(&job.tree.url).is_dir() {
        return Tree::open(Path::new(&job.tree.url)).map_err(|e| tree_err(&e));
    }
    let clone = data.join("trees").join(path_slug(Path::new(&job.tree.url)));
    let tree = Tree::open_or_clone(&job.tree.url, &clone).map_err(|e| tree_err(&e))?;
    tree.fetch().map_err(|e| tree_err(&e))?;
    Ok(tree)
}

/// The worktree and build directory of (tree, config), side by side.
fn slot(job: &JobPlan, tree: &Tree, data: &Path) -> Result<PathBuf, BuildError> {
    let hash = job.kernel.load()?.hash().short().to_owned();
    Ok(data
        .join("builds")
        .join(format!("{}-{hash}", path_slug(tree.path()))))
}

/// A path as one directory name: `/srv/linux` -> `srv-linux`.
pub fn path_slug(path: &Path) -> String {
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let name: String = full
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.trim_matches('-').trim_start_matches('.').to_owned()
}

/// The job's kernel at `commit`, from the cache or built in the slot's
/// worktree (kept, so the next build of a nearby commit is incremental).
pub fn build_kernel(
    job: &JobPlan,
    tree: &Tree,
    commit: &str,
    data: &Path,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Kernel, PipelineError> {
    let builder = Builder::new(data.join("cache"));
    if let Some(kernel) = builder.cached(commit, &job.kernel)? {
        progress(&Progress::Done { cached: true });
        return Ok(kernel);
    }
    let slot = slot(job, tree, data)?;
    let oid = commit
        .parse()
        .map_err(|e: git2::Error| PipelineError::Worktree {
            path: slot.join("linux"),
            message: format!("{commit}: {e}"),
        })?;
    let built = in_worktree(tree, &slot, oid, |worktree| {
        Ok(builder.build(
            worktree.path(),
            commit,
            &job.kernel,
            &slot.join("build"),
            &mut |p| progress(&p),
        ))
    })?;
    Ok(built?)
}

/// [`build_kernel`] for one arm, its time added to the test's.
fn timed_build(
    job: &JobPlan,
    tree: &Tree,
    commit: &str,
    data: &Path,
    arm: Arm,
    timing: &mut Timing,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<Kernel, PipelineError> {
    let t = Instant::now();
    let built = build_kernel(job, tree, commit, data, &mut |p| {
        progress(Stage::Building { arm, progress: p })
    });
    timing.build_s += t.elapsed().as_secs_f64();
    built
}

/// The slots this process works in, each taken by one job at a time:
/// jobs tested at once on the same tree and config take turns at its
/// worktree (another process finds it locked).
static SLOTS: LazyLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);

/// Runs `f` in the slot's worktree, prepared at `base` and cleaned after.
fn in_worktree<T>(
    tree: &Tree,
    slot: &Path,
    base: git2::Oid,
    f: impl FnOnce(&mut crate::tree::Worktree) -> Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    let turn = SLOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(slot.to_owned())
        .or_default()
        .clone();
    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
    let path = slot.join("linux");
    let err = |e: &dyn std::fmt::Display| PipelineError::Worktree {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut worktree = tree.worktree(&path).map_err(|e| err(&e))?;
    worktree.prepare(base).map_err(|e| err(&e))?;
    let result = f(&mut worktree);
    worktree.finish().map_err(|e| err(&e))?;
    result
}

/// Writes the job's initramfs (busybox, its reproducer and files) into
/// `dir`; every guest of the job boots it.
pub fn write_initramfs(job: &JobPlan, dir: &Path) -> Result<PathBuf, vm::VmError> {
    let initramfs = dir.join("initramfs.cpio.gz");
    vm::write_initramfs(
        &initramfs,
        &vm::Payload {
            script: &job.reproducer.script,
            files: &job.reproducer.files,
            timeout: job.reproducer.timeout,
        },
    )?;
    Ok(initramfs)
}

/// The job's machine booting `kernel` (its HZ read from the `config`
/// beside it, as lorebot's kernel cache keeps them).
pub fn guest(job: &JobPlan, kernel: &Path, initramfs: &Path) -> Guest {
    Guest {
        kernel: kernel.to_owned(),
        initramfs: initramfs.to_owned(),
        cpus: job.vm.cpus,
        memory_mib: job.vm.memory_mib,
        cmdline: job.vm.cmdline.clone(),
        hz: crate::build::config_hz(&kernel.with_file_name("config")),
    }
}

/// The job's limits on one run.
pub fn timeouts(job: &JobPlan) -> Timeouts {
    Timeouts {
        boot: job.limits.boot_timeout,
        reproducer: job.reproducer.timeout,
        silence: job.limits.silence_timeout,
        crash_grace: job.limits.crash_grace,
    }
}

/// Tests the series of a thread with `job`: the whole pipeline.
pub fn test_thread(
    mails: &[Mail],
    job: &JobPlan,
    data: &Path,
    bot: &Identity,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<Outcome, PipelineError> {
    let request = Request {
        mails,
        series: pick_series(mails)?,
        answering: None,
        rev: None,
        list: None,
        resume: Vec::new(),
        logs: None,
        logs_url: None,
    };
    test_series(request, job, data, bot, progress)
}

/// Tests one series with `job`: applied to the job's tree, both kernels
/// built, runs until the protocol decides, and the reply.
pub fn test_series(
    request: Request<'_>,
    job: &JobPlan,
    data: &Path,
    bot: &Identity,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<Outcome, PipelineError> {
    let started = Instant::now();
    let mut timing = Timing::default();
    let Request {
        mails,
        series,
        answering,
        rev,
        list,
        resume,
        logs,
        logs_url,
    } = request;
    let by_id = |id: &str| mails.iter().find(|m| m.message_id == id);
    let mut patches = Vec::new();
    for p in &series.patches {
        let mail = by_id(&p.msgid).ok_or_else(|| PipelineError::MissingMail {
            msgid: p.msgid.clone(),
        })?;
        patches.push(mail.raw.clone());
    }
    let answering = answering
        .and_then(by_id)
        .or_else(|| {
            series
                .cover_msgid
                .as_deref()
                .or(series.patches.first().map(|p| p.msgid.as_str()))
                .and_then(by_id)
        })
        .ok_or(PipelineError::NoSeries)?;
    let report = series.in_reply_to_report.as_deref().and_then(by_id);
    let (target, target_why) = job_target(job).unwrap_or_else(|| match report {
        Some(report) => crate::verdict::target::from_report(report).unwrap_or_else(|| {
            (
                Target::default(),
                "any crash (the report shows none)".to_owned(),
            )
        }),
        None => (
            Target::default(),
            "any crash (no report in the thread)".to_owned(),
        ),
    });

    let tree = open_tree(job, data)?;
    let rev = rev
        .or_else(|| {
            series
                .base_commit
                .clone()
                .filter(|c| tree.resolve(c).is_ok())
        })
        .or_else(|| job.tree.branch.clone())
        .unwrap_or_else(|| "HEAD".to_owned());
    let base = tree.resolve(&rev).map_err(|e| PipelineError::Tree {
        url: job.tree.url.clone(),
        message: e.to_string(),
    })?;
    let base_hex = base.to_string();
    let mut tested = tested(
        job,
        rev.clone(),
        base_hex.clone(),
        answering.subject.clone(),
    );
    let finish = |result: reply::Result<'_>, tested: &Tested| {
        reply::compose(answering, list, bot, tested, &result)
    };

    let base_kernel = timed_build(
        job,
        &tree,
        &base_hex,
        data,
        Arm::Base,
        &mut timing,
        progress,
    )?;

    progress(Stage::Applying);
    let slot = slot(job, &tree, data)?;
    let applied = in_worktree(&tree, &slot, base, |worktree| {
        worktree
            .apply(&patches)
            .map_err(|e| PipelineError::Worktree {
                path: worktree.path().to_owned(),
                message: e.to_string(),
            })
    })?;
    let head = match applied {
        ApplyOutcome::Applied(a) => a.head.to_string(),
        ApplyOutcome::Failed(f) => {
            let patch = format!("patch {}/{} \"{}\"", f.index, f.total, f.subject);
            let detail = format!("{patch}: {f}");
            let reply = finish(
                reply::Result::ApplyFailed {
                    patch,
                    detail: format!("{f}\n{}", f.message),
                },
                &tested,
            );
            timing.total_s = started.elapsed().as_secs_f64();
            return Ok(Outcome {
                verdict: Verdict::ApplyFailed,
                detail,
                reply,
                timing,
            });
        }
    };
    tested.patched_commit = Some(head.clone());
    let measured = run_arms(
        Arms {
            job,
            tree: &tree,
            data,
            base: &base_hex,
            base_kernel,
            head: &head,
            target: &target,
            resume,
            logs,
        },
        &mut timing,
        progress,
    )?;
    let reply = finish(measured.result(target_why, logs_url), &tested);
    timing.total_s = started.elapsed().as_secs_f64();
    let (verdict, detail) = measured.verdict();
    Ok(Outcome {
        verdict,
        detail,
        reply,
        timing,
    })
}

/// Two commits to test against each other: a pull request's head and the
/// base it branched from.
pub struct CommitsRequest {
    /// The base's name, as the report shows it (a branch).
    pub base_label: String,
    pub base: git2::Oid,
    pub head: git2::Oid,
    /// What the head is, in one line (`#7 "mm: fix ..."`).
    pub subject: String,
    pub resume: Vec<PastRun>,
    pub logs: Option<PathBuf>,
    pub logs_url: Option<String>,
}

/// The result of testing two commits: the verdict and the report that
/// says it, with the crashes of the head's runs for annotations.
pub struct CommitsOutcome {
    pub verdict: Verdict,
    pub detail: String,
    /// The plain-text report, as the mail's body has it.
    pub report: String,
    /// The protocol's decision, when the runs were made.
    pub decision: Option<Decision>,
    /// The crashes of the head's runs, one of each title, the target's
    /// first.
    pub head_crashes: Vec<HeadCrash>,
    /// Runs of the head that did not end clean: a crash of any kind, a
    /// hang, a boot failure.
    pub unclean_head_runs: u32,
    /// The head's first compiler or linker error, when it does not build.
    pub build_error: Option<crate::build::FirstError>,
    pub timing: Timing,
}

/// A crash seen in the head's runs.
pub struct HeadCrash {
    /// Whether it is the bug the job tests.
    pub target: bool,
    pub crash: crate::console::Crash,
}

/// Tests `head` against `base` with `job`: both kernels built, runs until
/// the protocol decides. The target is the job's, else any crash.
pub fn test_commits(
    tree: &Tree,
    request: CommitsRequest,
    job: &JobPlan,
    data: &Path,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<CommitsOutcome, PipelineError> {
    let started = Instant::now();
    let mut timing = Timing::default();
    let (target, target_why) = job_target(job).unwrap_or_else(|| {
        (
            Target::default(),
            "any crash (the job names none)".to_owned(),
        )
    });
    let (base, head) = (request.base.to_string(), request.head.to_string());
    let tested = Tested {
        patched_commit: Some(head.clone()),
        ..tested(job, request.base_label, base.clone(), request.subject)
    };
    let base_kernel = timed_build(job, tree, &base, data, Arm::Base, &mut timing, progress);
    let measured = run_arms(
        Arms {
            job,
            tree,
            data,
            base: &base,
            base_kernel: base_kernel?,
            head: &head,
            target: &target,
            resume: request.resume,
            logs: request.logs,
        },
        &mut timing,
        progress,
    )?;
    let report = reply::body(&tested, &measured.result(target_why, request.logs_url));
    timing.total_s = started.elapsed().as_secs_f64();
    let (verdict, detail) = measured.verdict();
    let mut outcome = CommitsOutcome {
        verdict,
        detail,
        report,
        decision: None,
        head_crashes: Vec::new(),
        unclean_head_runs: 0,
        build_error: None,
        timing,
    };
    match measured {
        Measured::BuildFailed(failure) => outcome.build_error = Some(failure.error),
        Measured::Ran {
            decision,
            patched_runs,
            ..
        } => {
            for crash in patched_runs.iter().flat_map(|r| &r.analysis.crashes) {
                if !outcome
                    .head_crashes
                    .iter()
                    .any(|c| c.crash.title == crash.title)
                {
                    outcome.head_crashes.push(HeadCrash {
                        target: target.matches(crash),
                        crash: crash.clone(),
                    });
                }
            }
            outcome.head_crashes.sort_by_key(|c| !c.target);
            outcome.unclean_head_runs = patched_runs
                .iter()
                .filter(|r| r.outcome != vm::Outcome::Clean)
                .count() as u32;
            outcome.decision = Some(decision);
        }
    }
    Ok(outcome)
}

/// The job's own target, when it names one, with why it counts.
fn job_target(job: &JobPlan) -> Option<(Target, String)> {
    (!job.target.is_empty()).then(|| {
        (
            job.target.clone(),
            format!("{}, as the job says", job.target),
        )
    })
}

/// What a reply or check says was tested, before the patched commit is
/// known.
fn tested(job: &JobPlan, base_label: String, base_commit: String, subject: String) -> Tested {
    Tested {
        job: display_job_path(&job.path),
        reproducer_timeout_s: job.reproducer.timeout.as_secs(),
        cpus: job.vm.cpus,
        base_label,
        base_commit,
        patch_subject: subject,
        patched_commit: None,
    }
}

/// What the arms are run with.
struct Arms<'a> {
    job: &'a JobPlan,
    tree: &'a Tree,
    data: &'a Path,
    base: &'a str,
    base_kernel: Kernel,
    head: &'a str,
    target: &'a Target,
    resume: Vec<PastRun>,
    logs: Option<PathBuf>,
}

/// The patched kernel built and both arms run.
// One value per test: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Measured {
    /// The patched kernel does not build: the patch's fault.
    BuildFailed(crate::build::CompileFailure),
    Ran {
        decision: Decision,
        base: ArmSummary,
        patched: ArmSummary,
        /// The first report of the target, with its title.
        first_report: Option<String>,
        patched_runs: Vec<Run>,
    },
}

impl Measured {
    /// The result as the report states it: what counted as the bug, and
    /// where the logs are (the first report inline without a URL).
    fn result(&self, target: String, logs_url: Option<String>) -> reply::Result<'_> {
        match self {
            Measured::BuildFailed(failure) => reply::Result::BuildFailed {
                error: failure.error.to_string(),
                log: Some(failure.log.display().to_string()),
            },
            Measured::Ran {
                decision,
                base,
                patched,
                first_report,
                ..
            } => reply::Result::Ran {
                decision,
                base,
                patched,
                target,
                logs: match logs_url {
                    Some(url) => Logs::Url(url),
                    None => Logs::Inline(first_report.clone().unwrap_or_default()),
                },
            },
        }
    }

    /// The verdict and, in one line, why.
    fn verdict(&self) -> (Verdict, String) {
        match self {
            Measured::BuildFailed(failure) => (Verdict::BuildFailed, failure.error.to_string()),
            Measured::Ran { decision, .. } => (decision.verdict, decision.reason.clone()),
        }
    }
}

/// Builds the head's kernel, then runs base and head interleaved until
/// the protocol decides, taking the recorded runs of an interrupted
/// attempt first.
fn run_arms(
    arms: Arms<'_>,
    timing: &mut Timing,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<Measured, PipelineError> {
    let Arms {
        job,
        tree,
        data,
        base,
        base_kernel,
        head,
        target,
        mut resume,
        logs,
    } = arms;
    let patched_kernel = match timed_build(job, tree, head, data, Arm::Patched, timing, progress) {
        Ok(k) => k,
        Err(PipelineError::Build(BuildError::Compile(failure))) => {
            return Ok(Measured::BuildFailed(failure));
        }
        Err(e) => return Err(e),
    };

    let run_dir = logs.unwrap_or_else(|| {
        data.join("runs")
            .join(format!("{}-{}-{}", job.name, &base[..12], &head[..12]))
    });
    std::fs::create_dir_all(&run_dir).map_err(|source| PipelineError::Io {
        what: format!("creating {}", run_dir.display()),
        source,
    })?;
    let initramfs = write_initramfs(job, &run_dir)?;
    let base_guest = guest(job, &base_kernel.bzimage, &initramfs);
    let patched_guest = guest(job, &patched_kernel.bzimage, &initramfs);
    let timeouts = timeouts(job);
    let policy = Policy::new(job.limits.runs);
    // Past runs of other kernels (the branch moved) are of no use.
    resume.retain(|p| p.commit == if p.arm == Arm::Base { base } else { head });
    let mut tally = Tally::default();
    let (mut base_runs, mut patched_runs) = (Vec::<Run>::new(), Vec::<Run>::new());
    let decision = loop {
        let arm = match protocol::next(&policy, &tally) {
            Next::Done(d) => break d,
            Next::Run(arm) => arm,
        };
        let (guest, runs, name, commit) = match arm {
            Arm::Base => (&base_guest, &mut base_runs, "base", base),
            Arm::Patched => (&patched_guest, &mut patched_runs, "patched", head),
        };
        let index = runs.len() as u32 + 1;
        let past = resume
            .iter()
            .position(|p| p.arm == arm && p.run.index == index)
            .map(|i| resume.swap_remove(i).run);
        let resumed = past.is_some();
        let run = match past {
            Some(run) => run,
            None => {
                let log = run_dir.join(format!("{name}-{index:03}.log"));
                let accel = vm::accel(&vm::qemu_binary(), &base_guest.kernel);
                let run = vm::run_once(guest, &timeouts, accel, index, &log);
                timing.guest_s += run.duration_s;
                run
            }
        };
        tally.add(arm, protocol::count(&run, target));
        progress(Stage::Ran {
            arm,
            commit,
            run: &run,
            tally: &tally,
            resumed,
        });
        runs.push(run);
    };

    let first_report = base_runs
        .iter()
        .chain(&patched_runs)
        .flat_map(|r| &r.analysis.crashes)
        .find(|c| target.matches(c))
        .map(|c| format!("{}\n\n{}", c.title, c.report));
    Ok(Measured::Ran {
        base: ArmSummary::of(&base_runs, target),
        patched: ArmSummary::of(&patched_runs, target),
        decision,
        first_report,
        patched_runs,
    })
}

/// `jobs/x.yaml` when the job is in a `jobs/` directory, else the path.
fn display_job_path(path: &Path) -> String {
    match (path.parent().and_then(Path::file_name), path.file_name()) {
        (Some(dir), Some(file)) if dir == "jobs" => format!("jobs/{}", file.to_string_lossy()),
        _ => path.display().to_string(),
    }
}
