//! The command-line edge: reads inputs, calls the pipeline stages, prints.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::console::{self, Analysis, Crash, Options};
use crate::mail::Mail;

/// Logs go to stderr; `LOREBOT_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_logging() {
    let filter = std::env::var("LOREBOT_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(io::stderr)
        .init();
}

fn analyze_path(path: &Path, opts: Options) -> anyhow::Result<Analysis> {
    if path == Path::new("-") {
        return console::analyze_reader(io::stdin().lock(), opts)
            .context("cannot read standard input");
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    console::analyze_reader(file, opts).with_context(|| format!("cannot read {}", path.display()))
}

/// `lorebot analyze`: exit 0 when every input was analyzed, crash or not;
/// 2 when an input could not be read (the others are still analyzed).
pub fn analyze(
    files: &[PathBuf],
    json: bool,
    hz: Option<u32>,
    mail: bool,
) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut failed = false;
    for (i, path) in files.iter().enumerate() {
        let opts = Options {
            hz,
            mail: mail.then_some(true),
        };
        let analysis = match analyze_path(path, opts) {
            Ok(a) => a,
            Err(e) => {
                out.flush()?;
                eprintln!("error: {e:#}");
                failed = true;
                continue;
            }
        };
        tracing::info!(file = %path.display(), crashes = analysis.crashes.len(), "analyzed");
        if json {
            serde_json::to_writer(&mut out, &analysis)?;
            writeln!(out)?;
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            out.write_all(render_text(&path.display().to_string(), &analysis).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Lines of a report shown in the human output.
const REPORT_LINES: usize = 40;

fn render_text(name: &str, a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{name}: {}", summary(a));
    for (i, c) in a.crashes.iter().enumerate() {
        let _ = writeln!(s);
        render_crash(&mut s, i, a.crashes.len(), c);
    }
    let st = &a.stats;
    if st.stall_reports > 0 {
        let _ = writeln!(s);
        let _ = write!(s, "stalls: {} report(s)", st.stall_reports);
        if let Some(t) = st.first_stall_time_s {
            let _ = write!(s, ", first at {t:.2} s");
        }
        if let Some(j) = st.longest_stall_jiffies {
            let _ = write!(s, ", longest {j} jiffies");
        }
        if let Some(sec) = st.longest_stall_s {
            let _ = write!(s, " ({sec:.1} s");
            if let (Some(hz), Some(src)) = (st.hz, st.hz_source) {
                let _ = write!(s, " at HZ={hz}, {src}");
            }
            let _ = write!(s, ")");
        }
        let _ = writeln!(s);
        if st.livelock {
            let _ = writeln!(
                s,
                "a grace period stayed stalled across consecutive reports (livelock)"
            );
        }
        if st.stall_cleared {
            let _ = writeln!(
                s,
                "a later report names a new grace period: an earlier stall cleared"
            );
        }
    }
    s
}

fn summary(a: &Analysis) -> String {
    match a.crashes.len() {
        0 => "no crash".to_owned(),
        1 => "1 crash".to_owned(),
        n => format!("{n} crashes"),
    }
}

fn render_crash(s: &mut String, i: usize, n: usize, c: &Crash) {
    let _ = writeln!(s, "crash {}/{n}: {}", i + 1, c.title);
    let _ = write!(s, "  kind:    {}", c.kind.as_str());
    if c.corrupted {
        let _ = write!(s, " (corrupted report)");
    }
    let _ = writeln!(s);
    let _ = write!(s, "  where:   lines {}-{}", c.start_line, c.end_line);
    if let Some(t) = c.time_s {
        let _ = write!(s, ", console time {t:.2} s");
    }
    let _ = writeln!(s);
    if let Some(f) = &c.guilty_frame {
        let _ = writeln!(s, "  frame:   {f}");
    }
    if let Some(st) = &c.stall {
        let mut parts = Vec::new();
        if let Some(f) = &st.flavor {
            let how = if st.self_detected {
                "self-detected".to_owned()
            } else if let Some(by) = st.detected_by {
                format!("detected by CPU {by}")
            } else {
                "detected".to_owned()
            };
            parts.push(format!(
                "{f} {how}{}",
                if st.expedited { " (expedited)" } else { "" }
            ));
        }
        if !st.cpus.is_empty() {
            let cpus: Vec<String> = st.cpus.iter().map(u32::to_string).collect();
            parts.push(format!("CPU {}", cpus.join(",")));
        }
        if let Some(t) = st.ticks_this_gp {
            parts.push(format!("{t} ticks this GP"));
        }
        if let Some(j) = st.jiffies {
            parts.push(format!("t={j} jiffies"));
        }
        if let Some(g) = st.g {
            parts.push(format!("g={g}"));
        }
        if let Some(sec) = st.seconds {
            parts.push(format!("{sec:.1} s"));
        }
        if let Some(j) = st.kthread_starved_jiffies {
            parts.push(format!("kthread starved {j} jiffies"));
        }
        let _ = writeln!(s, "  stall:   {}", parts.join(", "));
        if let Some(t) = &st.task {
            let _ = write!(s, "  task:    {} (pid {})", t.comm, t.pid);
            if let Some(r) = &st.rip_func {
                let _ = write!(s, ", RIP in {r}");
            }
            let _ = writeln!(s);
        }
    }
    let lines: Vec<&str> = c.report.lines().collect();
    for l in lines.iter().take(REPORT_LINES) {
        let _ = writeln!(s, "  | {l}");
    }
    if lines.len() > REPORT_LINES {
        let _ = writeln!(s, "  | ... ({} more lines)", lines.len() - REPORT_LINES);
    }
}

/// Where `lorebot series` reads a thread from.
/// Where a thread comes from, as the command line says.
#[derive(clap::Args)]
pub struct ThreadArgs {
    /// An mbox (or single mail) holding the thread.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["msgid", "url", "list"], required_unless_present = "msgid")]
    pub mbox: Option<PathBuf>,
    /// A Message-ID in the thread, fetched from lore.
    #[arg(long, value_name = "ID", requires_all = ["url", "list"])]
    pub msgid: Option<String>,
    /// lore's base URL, e.g. https://lore.kernel.org
    #[arg(long, value_name = "BASE")]
    pub url: Option<String>,
    /// The list's name on lore, e.g. linux-fsdevel
    #[arg(long, value_name = "NAME")]
    pub list: Option<String>,
    /// Contact sent in the User-Agent.
    #[arg(long, env = "LOREBOT_CONTACT", default_value = "unset")]
    pub contact: String,
}

impl ThreadArgs {
    pub fn source(self) -> ThreadSource {
        match (self.mbox, self.msgid, self.url, self.list) {
            (Some(path), ..) => ThreadSource::Mbox(path),
            (None, Some(msgid), Some(base), Some(list)) => ThreadSource::Lore {
                base,
                list,
                msgid,
                contact: self.contact,
            },
            // clap requires --mbox, or --msgid with --url and --list.
            _ => ThreadSource::Mbox(PathBuf::from("-")),
        }
    }
}

pub enum ThreadSource {
    Mbox(PathBuf),
    Lore {
        base: String,
        list: String,
        msgid: String,
        contact: String,
    },
}

/// Parses raw mails; a mail that does not parse is reported and skipped.
fn parse_mails(raws: Vec<Vec<u8>>, origin: &str) -> Vec<Mail> {
    raws.into_iter()
        .enumerate()
        .filter_map(|(i, raw)| match Mail::parse(&raw, crate::mail::DEFAULT_MAX_SIZE) {
            Ok(m) => {
                if m.message_id_derived {
                    tracing::warn!(origin, mail = i + 1, msgid = %m.message_id, "mail has no Message-ID; derived one");
                }
                Some(m)
            }
            Err(e) => {
                tracing::warn!(origin, mail = i + 1, error = %e, "skipping mail");
                None
            }
        })
        .collect()
}

/// `lorebot series`.
/// The mails of a thread, from an mbox (or `t.mbox.gz`) or from lore.
fn thread_mails(source: &ThreadSource) -> anyhow::Result<Vec<Mail>> {
    Ok(match source {
        ThreadSource::Mbox(path) => {
            let data =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let raws = if data.starts_with(&[0x1f, 0x8b]) {
                crate::mail::read_mbox_gz(&data, 1 << 30)
                    .with_context(|| format!("cannot decompress {}", path.display()))?
            } else {
                crate::mail::read_mbox(&data)
            };
            parse_mails(raws, &path.display().to_string())
        }
        ThreadSource::Lore {
            base,
            list,
            msgid,
            contact,
        } => {
            let client = crate::lore::Client::new(contact);
            let raws = client.thread(base, list, msgid)?;
            parse_mails(raws, msgid)
        }
    })
}

pub fn series(source: ThreadSource, json: bool) -> anyhow::Result<ExitCode> {
    let mails = thread_mails(&source)?;
    let analysis = crate::series::analyze(&mails);
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &analysis)?;
        writeln!(out)?;
    } else {
        out.write_all(render_series(&analysis).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn render_series(a: &crate::series::Analysis) -> String {
    let mut s = String::new();
    if a.series.is_empty() {
        let _ = writeln!(s, "no patch series");
    }
    for (i, ser) in a.series.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(s);
        }
        let tag = if ser.rfc { "RFC " } else { "" };
        let _ = writeln!(s, "[{tag}v{} {}] {}", ser.version, ser.total, ser.subject);
        let _ = writeln!(s, "  id:        {}", ser.id);
        if let Some(b) = &ser.base_commit {
            let _ = writeln!(s, "  base:      {b}");
        }
        if let Some(r) = &ser.in_reply_to_report {
            let _ = writeln!(s, "  fixes the report in {r}");
        }
        if let Some(n) = &ser.superseded_by {
            let _ = writeln!(s, "  superseded by {n}");
        }
        if !ser.complete {
            let missing: Vec<String> = ser
                .missing
                .iter()
                .map(|m| format!("{m}/{}", ser.total))
                .collect();
            let _ = writeln!(s, "  incomplete: missing {}", missing.join(", "));
        }
        for p in &ser.patches {
            let _ = writeln!(s, "  {}/{} {}", p.index, p.total, p.subject);
            for t in &p.trailers {
                let _ = writeln!(s, "      {}: {}", t.name, t.value);
            }
        }
    }
    for c in &a.commands {
        let what = match &c.kind {
            crate::series::CommandKind::Test { repo: None, .. } => "test".to_owned(),
            crate::series::CommandKind::Test { repo: Some(r), rev } => {
                format!("test {r} {}", rev.as_deref().unwrap_or(""))
            }
            crate::series::CommandKind::Bisect { good, bad } => format!("bisect {good} {bad}"),
            crate::series::CommandKind::Invalid { error } => format!("invalid: {error}"),
        };
        let _ = writeln!(s, "#lorebot {what}  (in {})", c.msgid);
    }
    s
}

/// `lorebot lore sync`.
pub fn lore_sync(
    url: &str,
    list: &str,
    db: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    max_mail_size: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let db = db.unwrap_or_else(crate::store::Store::default_path);
    let data_dir = data_dir
        .or_else(|| db.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let mut store = crate::store::Store::open(&db)?;
    let opts = crate::lore::SyncOptions {
        max_mail_size,
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let r = crate::lore::sync(&mut store, &data_dir, url, list, &opts)
        .with_context(|| format!("syncing {list} from {url}"))?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
    } else {
        let epochs: Vec<String> = r.epochs.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "{list}: epochs {}: {} new, {} already seen, {} rejected, {} deleted ({:.1} s)",
            if epochs.is_empty() {
                "none".to_owned()
            } else {
                epochs.join(",")
            },
            r.ingested,
            r.duplicates,
            r.rejected,
            r.deleted,
            start.elapsed().as_secs_f64()
        )?;
        writeln!(
            out,
            "{} thread(s) assembled: {} series version(s) new or changed, {} new command(s)",
            r.threads, r.series, r.commands
        )?;
        if !r.rewritten_epochs.is_empty() {
            writeln!(
                out,
                "history rewritten in epoch(s) {:?} (purge): re-walked",
                r.rewritten_epochs
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lorebot run`: boots `kernel` `n` times with the job's reproducer.
pub fn run(
    job: &Path,
    kernel: &Path,
    n: u32,
    out_dir: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let plan = crate::job::load(job)?;
    crate::vm::check_kernel(kernel)?;
    let out_dir = out_dir.unwrap_or_else(|| default_runs_dir(&plan.name));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let initramfs = crate::pipeline::write_initramfs(&plan, &out_dir)?;
    let guest = crate::pipeline::guest(&plan, &std::path::absolute(kernel)?, &initramfs);
    let timeouts = crate::pipeline::timeouts(&plan);
    let parallel = crate::vm::parallelism(plan.limits.parallel.min(n), &guest);
    eprintln!(
        "{}: {n} run(s) of {}, {} at a time, {} vCPU, {} MiB; logs in {}",
        plan.name,
        guest.kernel.display(),
        parallel,
        guest.cpus,
        guest.memory_mib,
        out_dir.display()
    );
    let runs = crate::vm::run_many(&guest, &timeouts, n, parallel, &out_dir, |r| {
        let line = render_run(r, n, &plan.target);
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    });
    let summary = crate::verdict::ArmSummary::of(&runs, &plan.target);
    let mut out = io::stdout().lock();
    if json {
        let report = serde_json::json!({
            "job": plan.name,
            "kernel": guest.kernel,
            "target": plan.target.to_string(),
            "log_dir": out_dir,
            "runs": runs,
            "summary": summary,
        });
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(render_summary(&summary, &plan.target).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn default_runs_dir(job: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    data_dir(None).join("runs").join(format!("{job}-{secs}"))
}

/// Where lorebot keeps its data: `given`, else the default database's
/// directory ($XDG_DATA_HOME/lorebot).
fn data_dir(given: Option<&Path>) -> PathBuf {
    given.map_or_else(
        || {
            crate::store::Store::default_path()
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        },
        Path::to_path_buf,
    )
}

fn render_run(r: &crate::vm::Run, n: u32, target: &crate::job::Target) -> String {
    let boot = r
        .boot_s
        .map_or_else(|| "no start".to_owned(), |b| format!("boot {b:.1}s"));
    let mark = if crate::verdict::hits_target(r, target) {
        " [target]"
    } else {
        ""
    };
    format!(
        "run {}/{n}: {:<12} {}{mark} ({boot}, {:.1}s, {})",
        r.index,
        r.outcome.as_str(),
        r.reason,
        r.duration_s,
        r.log.display()
    )
}

fn percent(k: u32, n: u32) -> String {
    if n == 0 {
        return "-".to_owned();
    }
    format!("{k}/{n} = {:.0}%", 100.0 * f64::from(k) / f64::from(n))
}

fn render_summary(s: &crate::verdict::ArmSummary, target: &crate::job::Target) -> String {
    let mut o = String::new();
    let outcomes: Vec<String> = s.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(o, "\n{} run(s): {}", s.runs, outcomes.join(", "));
    let _ = writeln!(o, "  target ({target}): {}", percent(s.target_runs, s.runs));
    let st = &s.stalls;
    let _ = writeln!(
        o,
        "  runs with stalls:     {}",
        percent(st.runs_with_stalls, s.runs)
    );
    if let Some(q) = st.first_stall_s {
        let _ = writeln!(
            o,
            "  time to 1st stall:    median {:.1} s (IQR {:.1}-{:.1})",
            q.median, q.q1, q.q3
        );
    }
    if let Some(secs) = st.longest_stall_s {
        let detail = match (st.longest_stall_jiffies, st.hz) {
            (Some(j), Some(hz)) => format!(" ({j} jiffies, HZ={hz})"),
            _ => String::new(),
        };
        let _ = writeln!(o, "  longest stall:        {secs:.1} s{detail}");
    }
    if let (Some(mean), Some(max)) = (st.cpus_per_stall_mean, st.cpus_per_stall_max) {
        let _ = writeln!(o, "  stalled CPUs/report:  mean {mean:.1}, max {max}");
    }
    if st.livelock_runs > 0 {
        let _ = writeln!(
            o,
            "  livelock (one GP across reports): {} run(s)",
            st.livelock_runs
        );
    }
    for (f, k) in st.top_functions.iter().take(5) {
        let _ = writeln!(
            o,
            "  stalled in:           {f} ({k}/{})",
            st.runs_with_stalls
        );
    }
    for (title, k) in &s.other_crashes {
        let _ = writeln!(o, "  other crash:          {k}x {title}");
    }
    o
}

/// `lorebot apply`'s arguments.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The git repository to apply to.
    #[arg(long, value_name = "DIR")]
    pub tree: PathBuf,
    /// The commit to apply on: a hash (full or abbreviated), a branch, a
    /// remote branch or a tag.
    #[arg(long, value_name = "REV")]
    pub base: String,
    /// The patch mails in order: an mbox, or one mail; `-` reads
    /// standard input.
    #[arg(long, value_name = "FILE")]
    pub mbox: PathBuf,
    /// The worktree to use (default: under the data directory, named
    /// after the tree). Made if missing; must be a worktree of the tree.
    #[arg(long, value_name = "DIR")]
    pub worktree: Option<PathBuf>,
    /// Where lorebot keeps its data (default: $XDG_DATA_HOME/lorebot).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The worktree `lorebot apply` uses for `tree` unless told: one per tree,
/// under the data directory, named after the tree's path.
fn default_worktree(data_dir: Option<&Path>, tree: &Path) -> PathBuf {
    self::data_dir(data_dir)
        .join("worktrees")
        .join(crate::pipeline::path_slug(tree))
}

/// `lorebot apply`: exit 0 when the series applied (or was already in the
/// base), 1 when a patch was refused or did not apply.
pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    use crate::tree::{ApplyOutcome, Tree};

    let data = if args.mbox == Path::new("-") {
        let mut d = Vec::new();
        io::Read::read_to_end(&mut io::stdin().lock(), &mut d)
            .context("cannot read standard input")?;
        d
    } else {
        std::fs::read(&args.mbox).with_context(|| format!("cannot read {}", args.mbox.display()))?
    };
    let mails = if data.starts_with(&[0x1f, 0x8b]) {
        crate::mail::read_mbox_gz(&data, 1 << 30)
            .with_context(|| format!("cannot decompress {}", args.mbox.display()))?
    } else {
        crate::mail::read_mbox(&data)
    };
    anyhow::ensure!(!mails.is_empty(), "{}: no mails", args.mbox.display());

    let tree = Tree::open(&args.tree)?;
    let base = tree.resolve(&args.base)?;
    let path = args
        .worktree
        .clone()
        .unwrap_or_else(|| default_worktree(args.data_dir.as_deref(), &args.tree));
    let mut wt = tree.worktree(&path)?;
    wt.prepare(base)?;
    let outcome = wt.apply(&mails)?;
    let path = wt.path().to_path_buf();
    wt.finish()?;

    let base_name = format!("{} ({})", &base.to_string()[..12], args.base);
    let mut out = io::stdout().lock();
    match &outcome {
        ApplyOutcome::Applied(a) if args.json => {
            let v = serde_json::json!({
                "applied": true, "worktree": path,
                "all_already_applied": a.all_already_applied(),
                "base": a.base.to_string(), "head": a.head.to_string(), "patches": a.patches,
            });
            writeln!(out, "{v}")?;
        }
        ApplyOutcome::Failed(f) if args.json => {
            let v = serde_json::json!({ "applied": false, "worktree": path, "failure": f });
            writeln!(out, "{v}")?;
        }
        ApplyOutcome::Applied(a) => {
            let n = a.patches.len();
            let plural = if n == 1 { "" } else { "es" };
            if a.all_already_applied() {
                writeln!(
                    out,
                    "nothing applied: the patch{plural} {} already in {base_name}",
                    if n == 1 { "is" } else { "are all" }
                )?;
            } else {
                writeln!(
                    out,
                    "applied {n} patch{plural} on {base_name} in {}",
                    path.display()
                )?;
            }
            for p in &a.patches {
                match p.commit {
                    Some(c) => writeln!(
                        out,
                        "  [{}/{n}] {} {}",
                        p.index,
                        &c.to_string()[..12],
                        p.subject
                    )?,
                    None => writeln!(out, "  [{}/{n}] already applied: {}", p.index, p.subject)?,
                }
            }
            writeln!(out, "{}", a.head)?;
        }
        ApplyOutcome::Failed(f) => {
            writeln!(out, "APPLY FAILED: {f}")?;
            if !f.message.is_empty() {
                writeln!(out, "git said:")?;
                for line in f.message.lines() {
                    writeln!(out, "  | {line}")?;
                }
            }
            writeln!(out, "worktree {} left clean at {base_name}", path.display())?;
        }
    }
    Ok(match outcome {
        ApplyOutcome::Applied(_) => ExitCode::SUCCESS,
        ApplyOutcome::Failed(_) => ExitCode::from(1),
    })
}

/// `lorebot build`'s arguments.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The job file (jobs/*.yaml): its kernel config and tree.
    #[arg(long, value_name = "JOB")]
    pub job: PathBuf,
    /// The git repository to build from (default: the job's tree,
    /// cloned under the data directory).
    #[arg(long, value_name = "DIR")]
    pub tree: Option<PathBuf>,
    /// The commit, branch or tag (default: the job's branch).
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Where lorebot keeps its data (default: $XDG_DATA_HOME/lorebot).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `lorebot build`: the job's kernel at a revision, from the cache or
/// built; prints the bzImage's path.
pub fn build(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let plan = crate::job::load(&args.job)?;
    let data = data_dir(args.data_dir.as_deref());
    let tree = match &args.tree {
        Some(dir) => crate::tree::Tree::open(dir)?,
        None => crate::pipeline::open_tree(&plan, &data)?,
    };
    let rev = args
        .rev
        .clone()
        .or_else(|| plan.tree.branch.clone())
        .unwrap_or_else(|| "HEAD".to_owned());
    let commit = tree
        .resolve(&rev)
        .with_context(|| format!("resolving {rev}"))?;
    let commit = commit.to_string();
    let mut progress = BuildProgress::new(&format!("kernel {}", &commit[..12]));
    let kernel =
        crate::pipeline::build_kernel(&plan, &tree, &commit, &data, &mut |p| progress.show(p));
    progress.end();
    let kernel = kernel?;
    for dropped in &kernel.dropped {
        eprintln!("warning: {dropped}");
    }
    println!("{}", kernel.bzimage.display());
    Ok(ExitCode::SUCCESS)
}

/// Build progress on stderr: one updating line on a terminal, a line per
/// stage and per 200 objects otherwise.
struct BuildProgress {
    label: String,
    tty: bool,
    started: std::time::Instant,
    drawn: bool,
}

impl BuildProgress {
    fn new(label: &str) -> BuildProgress {
        use std::io::IsTerminal as _;
        BuildProgress {
            label: label.to_owned(),
            tty: io::stderr().is_terminal(),
            started: std::time::Instant::now(),
            drawn: false,
        }
    }

    fn show(&mut self, p: &crate::build::Progress) {
        use crate::build::Progress;
        let secs = self.started.elapsed().as_secs();
        let line = match p {
            Progress::WaitingForLock { build_dir } => {
                format!("waiting for another build in {}", build_dir.display())
            }
            Progress::Configuring => "configuring".to_owned(),
            Progress::Compiling { objects, file } => {
                if !self.tty && objects % 200 != 0 {
                    return;
                }
                format!("compiling: {objects} objects ({file})")
            }
            Progress::Linking => "linking".to_owned(),
            Progress::Done { cached: true } => "cached".to_owned(),
            Progress::Done { cached: false } => "built".to_owned(),
        };
        let text = format!("{} [{secs:>4}s] {line}", self.label);
        if self.tty {
            let width = 100;
            let text: String = text.chars().take(width).collect();
            eprint!("\r{text:<width$}");
            self.drawn = true;
        } else {
            eprintln!("{text}");
        }
    }

    fn end(&mut self) {
        if self.drawn {
            eprintln!();
        }
    }
}

/// A test's stages on stderr: build progress, then a line per run.
#[derive(Default)]
struct StageDisplay {
    build: Option<BuildProgress>,
}

impl StageDisplay {
    fn show(&mut self, prefix: &str, stage: &crate::pipeline::Stage<'_>) {
        use crate::pipeline::Stage;
        match stage {
            Stage::Building { arm, progress } => {
                let b = self.build.get_or_insert_with(|| {
                    BuildProgress::new(&format!("{prefix}{arm:?} kernel").to_lowercase())
                });
                b.show(progress);
                if matches!(progress, crate::build::Progress::Done { .. }) {
                    b.end();
                    self.build = None;
                }
            }
            Stage::Applying => eprintln!("{prefix}applying the series"),
            Stage::Ran {
                arm,
                run,
                tally,
                resumed,
                ..
            } => eprintln!(
                "{prefix}{arm:?} run {}: {} {} ({:.0}s{}) | base {}/{}, patched {}/{}",
                run.index,
                run.outcome.as_str(),
                run.reason,
                run.duration_s,
                if *resumed { ", recorded before" } else { "" },
                tally.base_crashes,
                tally.base_runs,
                tally.patched_crashes,
                tally.patched_runs
            ),
        }
    }
}

/// `lorebot test`: the whole pipeline for one thread; prints the reply.
pub fn test(
    source: ThreadSource,
    job: &Path,
    data_dir: Option<&Path>,
    from: &str,
) -> anyhow::Result<ExitCode> {
    let plan = crate::job::load(job)?;
    let mails = thread_mails(&source)?;
    let data = self::data_dir(data_dir);
    let bot = crate::reply::Identity::parse(from).map_err(|e| anyhow::anyhow!("--from {e}"))?;
    let mut display = StageDisplay::default();
    let outcome = crate::pipeline::test_thread(&mails, &plan, &data, &bot, &mut |stage| {
        display.show("", &stage)
    })?;
    eprintln!("verdict: {} ({})", outcome.verdict, outcome.detail);
    let mail = outcome.reply.to_bytes(&crate::reply::date_now());
    io::stdout().write_all(
        &String::from_utf8_lossy(&mail)
            .replace("\r\n", "\n")
            .into_bytes(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `lorebot watch`: the bot, once through or forever.
pub fn watch(config: &Path, once: bool) -> anyhow::Result<ExitCode> {
    use crate::watch::Event;
    let config = crate::watch::config::load(config, &data_dir(None))?;
    let lists: Vec<&str> = config.lists.iter().map(|l| l.name.as_str()).collect();
    let repos: Vec<&str> = config
        .jobs
        .iter()
        .filter_map(|j| j.github.as_deref())
        .collect();
    let mut watched = Vec::new();
    if !lists.is_empty() {
        watched.push(format!("{} on {}", lists.join(", "), config.lore));
    }
    if !repos.is_empty() {
        watched.push(format!("{} on GitHub", repos.join(", ")));
    }
    eprintln!(
        "watching {} with {} job(s), {} at a time; replies to {}",
        watched.join(" and "),
        config.jobs.len(),
        config.concurrency,
        config.transport.describe()
    );
    let display = std::sync::Mutex::new(StageDisplay::default());
    let events = |event: Event<'_>| match event {
        Event::Requeued(n) => eprintln!("{n} interrupted job(s) queued again"),
        Event::Synced { list, report } => eprintln!(
            "{list}: {} new mail(s), {} series new or changed, {} new command(s)",
            report.ingested, report.series, report.commands
        ),
        Event::SyncFailed { list, error } => eprintln!("{list}: sync failed: {error}"),
        Event::Queued { list, job, new } => eprintln!("{list}: {new} job(s) queued for {job}"),
        Event::Started {
            id,
            job,
            subject,
            attempt,
            resumed_runs,
        } => {
            let mut note = String::new();
            if attempt > 1 {
                let _ = write!(note, " (attempt {attempt}, {resumed_runs} run(s) recorded)");
            }
            eprintln!("job {id}: testing \"{subject}\" with {job}{note}");
        }
        Event::Stage { id, stage } => {
            if let Ok(mut d) = display.lock() {
                d.show(&format!("job {id}: "), &stage);
            }
        }
        Event::Skipped { id, state, reason } => eprintln!("job {id}: {state}: {reason}"),
        Event::Finished {
            id,
            verdict,
            detail,
            timing,
        } => eprintln!(
            "job {id}: {verdict} ({detail})\njob {id}: {:.0} s: kernels {:.0} s, guests {:.0} s, lorebot {:.1} s",
            timing.total_s,
            timing.build_s,
            timing.guest_s,
            timing.overhead_s()
        ),
        Event::Failed { id, error } => eprintln!("job {id}: failed: {error}"),
        Event::Sent {
            job,
            msgid,
            channel,
        } => {
            eprintln!("job {job}: reply <{msgid}> sent ({channel})")
        }
        Event::CheckSent {
            job,
            forge,
            result: Ok(()),
        } => eprintln!("job {job}: {forge} check sent"),
        Event::CheckSent {
            job,
            forge,
            result: Err(error),
        } => eprintln!("job {job}: {forge} check not sent, will retry: {error}"),
        Event::SendFailed { job, msgid, error } => {
            eprintln!("job {job}: reply <{msgid}> not sent, will retry: {error}")
        }
        Event::Idle { next } => eprintln!("idle; next look in {} s", next.as_secs()),
    };
    crate::watch::watch(&config, once, &events)?;
    Ok(ExitCode::SUCCESS)
}

/// The watch configuration at `config`, when given.
fn bot_config(
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<Option<crate::watch::Config>> {
    Ok(config
        .map(|c| crate::watch::config::load(c, &self::data_dir(data_dir)))
        .transpose()?)
}

/// The database of the bot configured by `config`, else in `data_dir`.
fn bot_database(
    config: Option<&crate::watch::Config>,
    data_dir: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let data = match config {
        Some(c) => c.data_dir.clone(),
        None => self::data_dir(data_dir),
    };
    let db = crate::store::Store::path_in(&data);
    anyhow::ensure!(db.is_file(), "no lorebot database in {}", data.display());
    Ok(db)
}

/// `lorebot serve`: the patch queue over HTTP.
pub fn serve(
    listen: std::net::SocketAddr,
    config: Option<&Path>,
    data_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = bot_config(config, data_dir)?;
    let db = bot_database(config.as_ref(), data_dir)?;
    let webhook = config.and_then(|config| {
        let secret = config.github?.webhook_secret?;
        Some(crate::queue::Webhook {
            secret,
            jobs: config
                .jobs
                .iter()
                .filter_map(|j| Some((j.github.clone()?, j.name.clone())))
                .collect(),
        })
    });
    eprintln!("serving the queue of {} on http://{listen}/", db.display());
    if webhook.is_some() {
        eprintln!("taking GitHub's pull_request webhook at http://{listen}/github/webhook");
    }
    crate::queue::serve(listen, &db, webhook)?;
    Ok(ExitCode::SUCCESS)
}

/// `lorebot export --kcidb`.
pub fn export_kcidb(config: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = bot_config(config, data_dir)?;
    let store = crate::store::Store::open(&bot_database(config.as_ref(), data_dir)?)?;
    let tree = |job: &str| {
        let plan = config.as_ref()?.jobs.iter().find(|j| j.name == job)?;
        Some(crate::queue::kcidb::TreeInfo {
            url: plan.tree.url.clone(),
            branch: plan.tree.branch.clone(),
        })
    };
    let web_url = config.as_ref().and_then(|c| c.web_url.as_deref());
    let doc = crate::queue::kcidb::export(&store, web_url, &tree)?;
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

/// `lorebot status`: the jobs, newest first.
pub fn status(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    limit: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = bot_config(config, data_dir)?;
    let store = crate::store::Store::open(&bot_database(config.as_ref(), data_dir)?)?;
    let jobs = store.jobs(limit)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &jobs)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        writeln!(out, "no jobs")?;
    }
    for j in &jobs {
        let what = match (&j.verdict, j.state.as_str(), &j.stage) {
            (Some(v), _, _) => v.clone(),
            (None, "running", Some(stage)) => stage.to_uppercase(),
            (None, state, _) => state.to_uppercase(),
        };
        writeln!(
            out,
            "{:>5} {:<17} {:<14} base {:>2} patched {:>2}  {}",
            j.id,
            what,
            j.job,
            j.base_runs,
            j.patched_runs,
            j.subject.as_deref().unwrap_or("(no series)")
        )?;
        let mut notes = Vec::new();
        match (&j.list, &j.pull_request) {
            (Some(repo), Some(url)) => notes.push(format!("{repo}, {url}")),
            (Some(l), None) => notes.push(format!("list {l}")),
            _ => {}
        }
        if let Some(c) = &j.command {
            notes.push(format!("asked in <{c}>"));
        }
        if let Some(r) = &j.reply {
            notes.push(format!("reply {r}"));
        }
        if let Some(c) = &j.checks {
            notes.push(c.clone());
        }
        if j.attempts > 1 {
            notes.push(format!("{} attempts", j.attempts));
        }
        writeln!(out, "      {}", notes.join(", "))?;
        if let Some(d) = &j.detail {
            writeln!(out, "      {d}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
