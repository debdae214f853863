//! Ingest rate of `lorebot::lore::sync` over a local public-inbox v2 archive.
//!
//! `cargo bench --bench ingest` builds (or reuses) an archive of
//! `LOREBOT_BENCH_MESSAGES` mails (default 50,000) under
//! `target/bench-ingest/archive-N-vV/` (V: the generator's version):
//! `bench/0` and `bench/1` (the last 5,000 mails, or a tenth of a smaller
//! archive) are bare git repositories laid out as public-inbox v2 epochs
//! (branch `master`, one commit per mail adding the file `m`, author and date
//! from the mail, subject as the commit message), written with
//! `git fast-import` as public-inbox itself writes them.
//!
//! The mails are list traffic made from real `git format-patch` output: a
//! kernel-like git repository of a few hundred commits of real C diffs is
//! generated first, and series of 1 to 24 patches (with cover letters, v2..v6
//! resends with change logs, RFC and subsystem prefixes, some quoted-printable
//! or attached patches, some 50-100 KB ones) are cut from it with
//! `git format-patch --cover-letter --thread`. Around them: review replies
//! quoting the patches with comments and `Reviewed-by:`/`Acked-by:`/
//! `Tested-by:` trailers, discussions, "applied" notes, build-bot reports,
//! bug reports with real console logs (`tests/fixtures/console`), pull
//! requests; plain text, format=flowed, quoted-printable, multipart/
//! alternative and PGP-signed mails, with the transport headers lore keeps
//! (Received, DKIM, ARC, List-*). Every mail has its own Message-ID, date and
//! sender; replies thread by In-Reply-To/References to earlier mails.
//! Everything is deterministic (a fixed seed).
//!
//! It then times, in a fresh directory: `git clone --mirror` of the epochs
//! (the floor of any fetch), reading every mail with libgit2,
//! `lorebot::mail::Mail::parse` on all of them in memory, and the real thing:
//! `lorebot::lore::sync` into a new store (fetch + parse + store + thread
//! assembly), then a second, no-op sync; and, to show what the fetch costs,
//! one more sync into a new store whose mirrors `git clone --mirror` made
//! beforehand. The last line sums it up: `ingest: N messages in T s =
//! R msg/s (fetch+parse+store), re-sync T2 s; without the fetch R2 msg/s`.
//! `LOREBOT_BENCH_KEEP=1` keeps the run's store and mirrors.
//!
//! Run without `--bench` (as `cargo test --benches` does), it only smoke-tests
//! itself on an archive of 300 mails.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bump when the generated archive changes for the same message count.
const GENERATOR_VERSION: u32 = 3;
const DEFAULT_MESSAGES: u64 = 50_000;
const SMOKE_MESSAGES: u64 = 300;
/// Mails in the last epoch (at most a tenth of the archive).
const LAST_EPOCH: u64 = 5_000;
const LIST: &str = "bench";
const LIST_ADDR: &str = "bench@lists.example.org";
const SEED: u64 = 0x6c6f_7265_626f_7431;
/// Commits of the generated kernel-like repository the patches come from.
const SEED_SERIES: usize = 110;
const TARGET_RATE: f64 = 10_000.0;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = match std::env::var("LOREBOT_BENCH_MESSAGES") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 20)
            .unwrap_or_else(|| panic!("LOREBOT_BENCH_MESSAGES={v:?} is not an integer >= 20")),
        Err(_) if bench => DEFAULT_MESSAGES,
        Err(_) => SMOKE_MESSAGES,
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = target_dir(&manifest);
    fs::create_dir_all(&root).expect("create bench dir");
    clean_stale_runs(&root);

    let arch = ensure_archive(&root, n, &manifest);
    arch.describe();

    let run = root.join(format!("run-{}", std::process::id()));
    let _ = fs::remove_dir_all(&run);
    fs::create_dir_all(&run).expect("create run dir");

    // The floors: git's own clone of the epochs, libgit2 reading every mail,
    // and the mail parser alone.
    let t = Instant::now();
    for e in 0..arch.epochs.len() {
        git_ok(
            Command::new("git")
                .args(["clone", "--mirror", "--quiet"])
                .arg(format!("file://{}", arch.epoch_dir(e).display()))
                .arg(run.join(format!("ref/{e}.git"))),
            "git clone --mirror",
        );
    }
    let clone = t.elapsed();
    println!(
        "reference: git clone --mirror of {} epochs: {:.2} s",
        arch.epochs.len(),
        clone.as_secs_f64()
    );
    let t = Instant::now();
    let mut mails = Vec::with_capacity(n as usize);
    for e in 0..arch.epochs.len() {
        read_epoch(&run.join(format!("ref/{e}.git")), &mut mails);
    }
    let read = t.elapsed();
    assert_eq!(mails.len() as u64, n, "mails read back from the epochs");
    println!(
        "reference: libgit2 walk + blob reads of {} mails: {:.2} s = {:.0} msg/s",
        mails.len(),
        read.as_secs_f64(),
        rate(n, read)
    );
    let _ = fs::remove_dir_all(run.join("ref"));
    let t = Instant::now();
    let mut parsed = 0u64;
    for raw in &mails {
        if lorebot::mail::Mail::parse(raw, lorebot::mail::DEFAULT_MAX_SIZE).is_ok() {
            parsed += 1;
        }
    }
    let parse = t.elapsed();
    drop(mails);
    assert_eq!(parsed, n, "mails that Mail::parse accepts");
    println!(
        "reference: Mail::parse of every mail (in memory): {:.2} s = {:.0} msg/s",
        parse.as_secs_f64(),
        rate(n, parse)
    );

    // The real thing: a fresh store and data dir, then a no-op re-sync.
    let db_path = run.join("lorebot.sqlite3");
    let data_dir = run.join("data");
    let base_url = format!("file://{}", arch.dir.display());
    let opts = lorebot::lore::SyncOptions::default();
    // Resets the peak RSS (Linux), so that it tells the sync's own.
    let rss_reset = fs::write("/proc/self/clear_refs", "5").is_ok();
    let cpu = process_cpu();
    let t = Instant::now();
    let mut store = lorebot::store::Store::open(&db_path).expect("open store");
    let report = lorebot::lore::sync(&mut store, &data_dir, &base_url, LIST, &opts)
        .unwrap_or_else(|e| panic!("sync: {e} ({e:?})"));
    let full = t.elapsed();
    let cpu = cpu.zip(process_cpu()).map(|(a, b)| b.saturating_sub(a));
    println!(
        "sync: epochs {:?}, ingested {}, duplicates {}, rejected {}, deleted {}, threads {}, series {}, commands {}",
        report.epochs,
        report.ingested,
        report.duplicates,
        report.rejected,
        report.deleted,
        report.threads,
        report.series,
        report.commands
    );
    println!(
        "sync (fetch+parse+store): {:.2} s = {:.0} msg/s{}",
        full.as_secs_f64(),
        rate(n, full),
        cpu.map(|c| format!(", {:.2} s on CPU", c.as_secs_f64()))
            .unwrap_or_default()
    );
    assert_eq!(
        report.epochs,
        (0..arch.epochs.len() as u32).collect::<Vec<_>>()
    );
    assert_eq!(report.ingested, n, "every mail ingested once");
    assert_eq!((report.duplicates, report.rejected), (0, 0));

    let t = Instant::now();
    let again = lorebot::lore::sync(&mut store, &data_dir, &base_url, LIST, &opts)
        .unwrap_or_else(|e| panic!("re-sync: {e} ({e:?})"));
    let resync = t.elapsed();
    println!(
        "re-sync (no-op): {:.3} s, ingested {}",
        resync.as_secs_f64(),
        again.ingested
    );
    assert_eq!(again.ingested, 0, "a re-sync ingests nothing");
    drop(store);
    println!(
        "store: {:.1} MB (+ WAL {:.1} MB), mirrors {:.1} MB, peak RSS {} {}",
        mb(file_size(&db_path)),
        mb(file_size(&run.join("lorebot.sqlite3-wal"))),
        mb(dir_size(&data_dir)),
        peak_rss().map_or("?".into(), |k| format!("{:.0} MB", k as f64 / 1024.0)),
        if rss_reset {
            "(during the syncs)"
        } else {
            "(of the whole run)"
        }
    );

    // The same sync without the fetch: mirrors cloned by git beforehand where
    // lorebot keeps them (checked: the sync must not have made others).
    let data2 = run.join("data-precloned");
    let mirror = lorebot::lore::mirror::Mirror::new(&data2, &base_url, LIST);
    for e in 0..arch.epochs.len() {
        git_ok(
            Command::new("git")
                .args(["clone", "--mirror", "--quiet"])
                .arg(format!("file://{}", arch.epoch_dir(e).display()))
                .arg(mirror.epoch_path(e as u32)),
            "git clone --mirror",
        );
    }
    let t = Instant::now();
    let mut store2 =
        lorebot::store::Store::open(&run.join("precloned.sqlite3")).expect("open store");
    let report2 = lorebot::lore::sync(&mut store2, &data2, &base_url, LIST, &opts)
        .unwrap_or_else(|e| panic!("sync: {e} ({e:?})"));
    let no_fetch = t.elapsed();
    drop(store2);
    assert_eq!(report2.ingested, n, "every mail ingested once");
    let entries = |p: &Path| fs::read_dir(p).map_or(0, |rd| rd.count());
    let list_dir = mirror.epoch_path(0).parent().map(Path::to_path_buf);
    let used = list_dir.is_some_and(|list_dir| {
        entries(&data2.join("mirrors")) == 1
            && list_dir.parent().is_some_and(|lists| entries(lists) == 1)
            && entries(&list_dir) == arch.epochs.len()
    });
    println!(
        "sync into mirrors pre-cloned by git (parse+store, no fetch): {:.2} s = {:.0} msg/s{}",
        no_fetch.as_secs_f64(),
        rate(n, no_fetch),
        if used {
            ""
        } else {
            " [lorebot's mirror layout changed: it fetched anyway]"
        }
    );

    if std::env::var_os("LOREBOT_BENCH_KEEP").is_none() {
        let _ = fs::remove_dir_all(&run);
    } else {
        println!("kept {}", run.display());
    }
    let r = rate(n, full);
    println!(
        "ingest: {n} messages in {:.1} s = {:.0} msg/s (fetch+parse+store), re-sync {:.2} s; without the fetch {:.0} msg/s{}",
        full.as_secs_f64(),
        r,
        resync.as_secs_f64(),
        rate(n, no_fetch),
        if !bench {
            " [smoke run]".to_string()
        } else if r >= TARGET_RATE {
            format!(" [target {TARGET_RATE:.0} msg/s: met]")
        } else {
            format!(" [target {TARGET_RATE:.0} msg/s: missed]")
        }
    );
}

// --- measuring ----------------------------------------------------------------

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn file_size(p: &Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else {
        return file_size(p);
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// User + system time of this process, from /proc (Linux).
fn process_cpu() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture lorebot runs on.
    Some(Duration::from_millis(ticks * 10))
}

/// Peak resident set, in KiB.
fn peak_rss() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Every mail of an epoch, oldest first, as lorebot's mirror walks it.
fn read_epoch(repo: &Path, out: &mut Vec<Vec<u8>>) {
    let repo = git2::Repository::open_bare(repo).expect("open clone");
    let tip = repo
        .refname_to_id("refs/heads/master")
        .expect("master branch");
    let mut walk = repo.revwalk().expect("revwalk");
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .expect("sorting");
    walk.push(tip).expect("push tip");
    for oid in walk {
        let commit = repo.find_commit(oid.expect("walk")).expect("commit");
        let tree = commit.tree().expect("tree");
        let e = tree.get_name("m").expect("m in every commit");
        out.push(repo.find_blob(e.id()).expect("blob").content().to_vec());
    }
}

// --- the archive --------------------------------------------------------------

fn target_dir(manifest: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { manifest.join(p) })
        .unwrap_or_else(|| manifest.join("target"))
        .join("bench-ingest")
}

/// Removes run directories left by killed runs (their process is gone).
fn clean_stale_runs(root: &Path) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("run-")
            .or_else(|| name.split_once(".tmp-").map(|(_, p)| p));
        if let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A generated archive: `dir/bench/0`, `dir/bench/1`.
struct Archive {
    dir: PathBuf,
    /// Mails per epoch.
    epochs: Vec<u64>,
    stats: SizeStats,
    generated: Option<Duration>,
}

#[derive(Default, Debug)]
struct SizeStats {
    total: u64,
    max: u64,
    over_50k: u64,
    patches: u64,
    replies: u64,
    multipart: u64,
    quoted_printable: u64,
}

impl SizeStats {
    fn add(&mut self, m: &Rendered) {
        let len = m.raw.len() as u64;
        self.total += len;
        self.max = self.max.max(len);
        self.over_50k += u64::from(len > 50_000);
        match m.kind {
            Kind::Patch | Kind::Cover => self.patches += 1,
            _ => self.replies += 1,
        }
        let head = &m.raw[..m.raw.len().min(8192)];
        self.multipart +=
            u64::from(memchr::memmem::find(head, b"Content-Type: multipart/").is_some());
        self.quoted_printable += u64::from(
            memchr::memmem::find(&m.raw, b"Content-Transfer-Encoding: quoted-printable").is_some(),
        );
    }

    fn to_text(&self) -> String {
        format!(
            "total={}\nmax={}\nover_50k={}\npatches={}\nreplies={}\nmultipart={}\nquoted_printable={}\n",
            self.total,
            self.max,
            self.over_50k,
            self.patches,
            self.replies,
            self.multipart,
            self.quoted_printable
        )
    }

    fn from_kv(kv: &HashMap<String, String>) -> SizeStats {
        let g = |k: &str| kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        SizeStats {
            total: g("total"),
            max: g("max"),
            over_50k: g("over_50k"),
            patches: g("patches"),
            replies: g("replies"),
            multipart: g("multipart"),
            quoted_printable: g("quoted_printable"),
        }
    }
}

impl Archive {
    fn epoch_dir(&self, e: usize) -> PathBuf {
        self.dir.join(LIST).join(e.to_string())
    }

    fn messages(&self) -> u64 {
        self.epochs.iter().sum()
    }

    fn describe(&self) {
        let n = self.messages();
        let s = &self.stats;
        println!(
            "archive: {} ({} messages: {} epochs of {:?}; {})",
            self.dir.display(),
            n,
            self.epochs.len(),
            self.epochs,
            self.generated.map_or("re-used".to_string(), |d| format!(
                "generated in {:.1} s",
                d.as_secs_f64()
            ))
        );
        println!(
            "mails: {:.1} MB raw, {:.1} KB average, largest {:.1} KB, {} over 50 KB; {} patches/covers, {} other; {} multipart, {} quoted-printable; git packs {:.1} MB",
            mb(s.total),
            s.total as f64 / n.max(1) as f64 / 1e3,
            s.max as f64 / 1e3,
            s.over_50k,
            s.patches,
            s.replies,
            s.multipart,
            s.quoted_printable,
            mb(dir_size(&self.dir.join(LIST)))
        );
    }
}

fn git_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn git_out(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git output is UTF-8")
}

/// git isolated from the user's and the system's configuration.
fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_COMMITTER_NAME", "Bench Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.org")
        .env("GIT_AUTHOR_NAME", "Bench Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("TZ", "UTC")
        .env("LC_ALL", "C");
    for v in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
    ] {
        c.env_remove(v);
    }
    c
}

fn epoch_sizes(n: u64) -> Vec<u64> {
    let last = LAST_EPOCH.min(n / 10).max(1);
    vec![n - last, last]
}

fn read_marker(path: &Path) -> Option<HashMap<String, String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The archive of `n` mails, generated unless already there (same generator
/// version, same commit count in every epoch).
fn ensure_archive(root: &Path, n: u64, manifest: &Path) -> Archive {
    let dir = root.join(format!("archive-{n}-v{GENERATOR_VERSION}"));
    let marker = dir.join("bench-archive.txt");
    let epochs = epoch_sizes(n);
    if let Some(kv) = read_marker(&marker) {
        let arch = Archive {
            dir: dir.clone(),
            epochs: epochs.clone(),
            stats: SizeStats::from_kv(&kv),
            generated: None,
        };
        let fresh = kv.get("version") == Some(&GENERATOR_VERSION.to_string())
            && kv.get("messages") == Some(&n.to_string())
            && epochs.iter().enumerate().all(|(e, &want)| {
                Command::new("git")
                    .arg("-C")
                    .arg(arch.epoch_dir(e))
                    .args(["rev-list", "--count", "refs/heads/master"])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
                    == Some(want)
            });
        if fresh {
            // Marks it in use, for remove_old_archives.
            let _ = fs::File::options()
                .write(true)
                .open(&marker)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return arch;
        }
    }
    let _ = fs::remove_dir_all(&dir);
    remove_old_archives(root);
    let t = Instant::now();
    let tmp = root.join(format!(
        "archive-{n}-v{GENERATOR_VERSION}.tmp-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join(LIST)).expect("create archive dir");
    println!("generating an archive of {n} mails in {}", tmp.display());

    let templates = build_templates(&tmp.join("seed"), manifest);
    println!(
        "  seed repository: {} series ({} patches) from git format-patch in {:.1} s",
        templates.series.len(),
        templates
            .series
            .iter()
            .map(|s| s.patches.len())
            .sum::<usize>(),
        t.elapsed().as_secs_f64()
    );
    let mut traffic = Traffic::new(templates);
    traffic.warm_up(START + WARM_UP);
    let mut stats = SizeStats::default();
    let mut ids = HashSet::new();
    for (e, &count) in epochs.iter().enumerate() {
        let repo = tmp.join(LIST).join(e.to_string());
        let mut w = EpochWriter::start(&repo);
        for _ in 0..count {
            let m = traffic.next_mail();
            assert!(ids.insert(m.id.clone()), "duplicate Message-ID {}", m.id);
            stats.add(&m);
            w.add(&m);
            let done = stats.patches + stats.replies;
            if done % 10_000 == 0 {
                println!("  {done} mails ({:.1} s)", t.elapsed().as_secs_f64());
            }
        }
        w.finish();
    }
    let _ = fs::remove_dir_all(tmp.join("seed"));
    let text = format!(
        "version={GENERATOR_VERSION}\nmessages={n}\nepochs={}\n{}",
        epochs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        stats.to_text()
    );
    fs::write(tmp.join("bench-archive.txt"), text).expect("write marker");
    if let Err(e) = fs::rename(&tmp, &dir) {
        // Another run generated the same archive meanwhile: use either.
        assert!(
            dir.join("bench-archive.txt").exists(),
            "rename archive: {e}"
        );
        let _ = fs::remove_dir_all(&tmp);
    }
    Archive {
        dir,
        epochs,
        stats,
        generated: Some(t.elapsed()),
    }
}

/// Archives of earlier generator versions are big: removes those no run
/// started to use for an hour (another run may still read a recent one).
fn remove_old_archives(root: &Path) {
    let Ok(rd) = fs::read_dir(root) else { return };
    let current = format!("-v{GENERATOR_VERSION}");
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("archive-") || name.ends_with(&current) || name.contains(".tmp-") {
            continue;
        }
        let idle = fs::metadata(e.path().join("bench-archive.txt"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|d| d > Duration::from_secs(3600));
        if idle {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// One public-inbox v2 epoch being written by `git fast-import`.
struct EpochWriter {
    child: std::process::Child,
    input: BufWriter<std::process::ChildStdin>,
}

impl EpochWriter {
    fn start(repo: &Path) -> EpochWriter {
        fs::create_dir_all(repo).expect("create epoch dir");
        git_ok(
            git(repo).args(["init", "--quiet", "--bare", "--initial-branch=master"]),
            "git init",
        );
        git_ok(
            git(repo).args(["config", "core.logAllRefUpdates", "false"]),
            "git config",
        );
        let mut child = git(repo)
            .args(["fast-import", "--quiet", "--done", "--date-format=raw"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start git fast-import");
        let input = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("stdin"));
        EpochWriter { child, input }
    }

    /// One commit adding the mail as `m`, as public-inbox writes it: author
    /// and date from the mail, the list as committer, the subject as message.
    fn add(&mut self, m: &Rendered) {
        let clean = |s: &str| s.replace(['<', '>', '\n'], "");
        let tz = tz_str(m.tz);
        let subject = format!("{}\n", m.subject);
        let w = &mut self.input;
        let r: std::io::Result<()> = (|| {
            write!(
                w,
                "commit refs/heads/master\nauthor {} <{}> {} {tz}\ncommitter {LIST} <{LIST_ADDR}> {} {tz}\ndata {}\n{subject}M 100644 inline m\ndata {}\n",
                clean(&m.name),
                clean(&m.email),
                m.date,
                m.date,
                subject.len(),
                m.raw.len()
            )?;
            w.write_all(&m.raw)?;
            w.write_all(b"\n")
        })();
        r.expect("write to git fast-import");
    }

    fn finish(mut self) {
        self.input
            .write_all(b"done\n")
            .and_then(|()| self.input.flush())
            .expect("write to git fast-import");
        drop(self.input);
        let status = self.child.wait().expect("wait for git fast-import");
        assert!(status.success(), "git fast-import failed");
    }
}

// --- the seed repository and its format-patch series --------------------------

/// A series cut from the seed repository by `git format-patch`.
struct SeriesT {
    comp: usize,
    /// The cover letter's body (`*** BLURB HERE ***`, shortlog, diffstat).
    cover: Option<String>,
    patches: Vec<PatchT>,
}

struct PatchT {
    /// The subject without its `[PATCH n/m]` tag.
    title: String,
    /// The body as format-patch wrote it: message, `---`, diffstat, diff,
    /// signature (its git version replaced by `GITVERSION`).
    body: String,
}

struct Templates {
    series: Vec<SeriesT>,
    /// Crash parts of real console logs, for bug reports.
    consoles: Vec<String>,
}

const AUTHOR_PLACEHOLDER: &str = "AUTHORNAME";
const AUTHOR_EMAIL_PLACEHOLDER: &str = "author@placeholder.invalid";

/// Builds the seed repository with `git fast-import` and cuts its series
/// with `git format-patch --cover-letter --thread`.
fn build_templates(dir: &Path, manifest: &Path) -> Templates {
    let mut rng = Rng::new(SEED ^ 0x5eed);
    fs::create_dir_all(dir).expect("create seed dir");
    git_ok(
        git(dir).args(["init", "--quiet", "--bare", "--initial-branch=master"]),
        "git init seed",
    );
    let mut child = git(dir)
        .args(["fast-import", "--quiet", "--done", "--date-format=raw"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start git fast-import");
    let mut w = BufWriter::with_capacity(1 << 20, child.stdin.take().expect("stdin"));
    let mut tree = Tree::new(&mut rng);
    let mut ts: i64 = 1_688_000_000;
    write_seed_commit(&mut w, &mut tree, ts, "Initial import\n");
    let mut plans = Vec::new();
    for _ in 0..SEED_SERIES {
        let size = series_size(&mut rng);
        let comp = rng.below(COMPS.len());
        for _ in 0..size {
            ts += 3600 + rng.below(86_400) as i64;
            let change = tree.mutate(&mut rng, comp);
            let msg = commit_message(&mut rng, comp, &change);
            write_seed_commit(&mut w, &mut tree, ts, &msg);
        }
        plans.push((comp, size));
    }
    w.write_all(b"done\n")
        .and_then(|()| w.flush())
        .expect("write to git fast-import");
    drop(w);
    assert!(child.wait().expect("git fast-import").success());

    let shas: Vec<String> = git_out(
        git(dir).args(["rev-list", "--reverse", "refs/heads/master"]),
        "git rev-list",
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(
        shas.len(),
        1 + plans.iter().map(|p| p.1).sum::<usize>(),
        "seed commits"
    );
    let mut series = Vec::new();
    let mut idx = 1;
    for (comp, size) in plans {
        let base = &shas[idx - 1];
        let last = &shas[idx + size - 1];
        let mut cmd = git(dir);
        cmd.args(["format-patch", "--stdout", "--thread"]);
        let cover = size > 1 || rng.chance(0.12);
        if cover {
            cmd.arg("--cover-letter");
        }
        if rng.chance(0.5) {
            cmd.arg(format!("--base={base}"));
        }
        cmd.arg(format!("{base}..{last}"));
        let out = git_out(&mut cmd, "git format-patch");
        let mut mails = split_format_patch(&out);
        assert_eq!(mails.len(), size + usize::from(cover), "format-patch mails");
        let cover = cover.then(|| mails.remove(0).1);
        series.push(SeriesT {
            comp,
            cover,
            patches: mails
                .into_iter()
                .map(|(title, body)| PatchT { title, body })
                .collect(),
        });
        idx += size;
    }
    Templates {
        series,
        consoles: console_parts(&manifest.join("tests/fixtures/console")),
    }
}

fn series_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..45 => 1,
        45..57 => 2,
        57..69 => 3,
        69..81 => rng.range(4, 5),
        81..91 => rng.range(6, 9),
        91..97 => rng.range(10, 16),
        _ => rng.range(17, 24),
    }
}

fn write_seed_commit<W: Write>(w: &mut W, tree: &mut Tree, ts: i64, msg: &str) {
    let mut s = format!(
        "commit refs/heads/master\nauthor {AUTHOR_PLACEHOLDER} <{AUTHOR_EMAIL_PLACEHOLDER}> {ts} +0000\ncommitter Bench Committer <committer@example.org> {ts} +0000\ndata {}\n{msg}",
        msg.len()
    );
    for path in std::mem::take(&mut tree.dirty) {
        match tree.files.get(&path) {
            Some(f) => {
                let content = f.render();
                let _ = write!(
                    s,
                    "M 100644 inline {path}\ndata {}\n{content}\n",
                    content.len()
                );
            }
            None => {
                let _ = writeln!(s, "D {path}");
            }
        }
    }
    s.push('\n');
    w.write_all(s.as_bytes()).expect("write to git fast-import");
}

/// The mails of `git format-patch --stdout` output: (title, body).
fn split_format_patch(out: &str) -> Vec<(String, String)> {
    let mut raw: Vec<String> = Vec::new();
    for line in out.split_inclusive('\n') {
        if line.starts_with("From ") && line.trim_end().ends_with(" Mon Sep 17 00:00:00 2001") {
            raw.push(String::new());
        } else if let Some(cur) = raw.last_mut() {
            cur.push_str(line);
        }
    }
    raw.into_iter()
        .map(|m| {
            let (head, body) = m.split_once("\n\n").expect("format-patch mail has a body");
            let unfolded = head.replace("\n ", " ");
            let subject = unfolded
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .expect("format-patch mail has a subject");
            let title = match subject.strip_prefix('[') {
                Some(rest) => rest.split_once("] ").map_or(rest, |(_, t)| t),
                None => subject,
            };
            let body = match body.rfind("\n-- \n") {
                Some(i) => {
                    let after = &body[i + 5..];
                    let end = after.find('\n').map_or(after.len(), |e| e);
                    format!("{}\n-- \nGITVERSION{}", &body[..i], &after[end..])
                }
                None => body.to_string(),
            };
            (title.to_string(), body)
        })
        .collect()
}

/// The crash parts of the console captures in `dir` (real kernel output), or
/// a short built-in one.
fn console_parts(dir: &Path) -> Vec<String> {
    let mut parts = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for p in names {
        if p.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let Ok(text) = fs::read(&p) else { continue };
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let Some(start) = lines.iter().position(|l| {
            [
                "BUG:",
                "WARNING:",
                "Oops",
                "INFO:",
                "general protection",
                "Kernel panic",
            ]
            .iter()
            .any(|k| l.contains(k))
        }) else {
            continue;
        };
        let from = start.saturating_sub(3);
        let to = (start + 70).min(lines.len());
        parts.push(lines[from..to].join("\n"));
    }
    if parts.is_empty() {
        parts.push(
            "[   42.123456] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
             [   42.123789] #PF: supervisor read access in kernel mode\n\
             [   42.124001] Oops: 0000 [#1] PREEMPT SMP NOPTI\n\
             [   42.124321] RIP: 0010:qorvix_poll_ring+0x4c/0x1f0\n\
             [   42.124654] Call Trace:\n\
             [   42.124700]  <TASK>\n\
             [   42.124812]  __napi_poll+0x2b/0x1c0\n\
             [   42.124935]  net_rx_action+0x2a5/0x340\n\
             [   42.125061]  handle_softirqs+0xd3/0x2b0\n\
             [   42.125199]  </TASK>"
                .to_string(),
        );
    }
    parts
}

// --- a kernel-like source tree that changes commit by commit -------------------

struct Comp {
    dir: &'static str,
    prefix: &'static str,
    area: &'static str,
    /// The driver name can be swapped for another in each mail.
    alias: bool,
    hw: &'static str,
}

const COMPS: &[Comp] = &[
    Comp {
        dir: "drivers/net/ethernet/qorvix",
        prefix: "qorvix",
        area: "net: qorvix",
        alias: true,
        hw: "QX-2200 10GbE controller",
    },
    Comp {
        dir: "drivers/net/wireless/tellurn",
        prefix: "tellurn",
        area: "wifi: tellurn",
        alias: true,
        hw: "TL8852 WLAN chip",
    },
    Comp {
        dir: "drivers/gpu/drm/brisca",
        prefix: "brisca",
        area: "drm/brisca",
        alias: true,
        hw: "Brisca display engine",
    },
    Comp {
        dir: "sound/soc/codecs",
        prefix: "vantor",
        area: "ASoC: vantor",
        alias: true,
        hw: "VT5682 codec",
    },
    Comp {
        dir: "drivers/iio/adc",
        prefix: "mezzo",
        area: "iio: adc: mezzo",
        alias: true,
        hw: "MZ7124 ADC",
    },
    Comp {
        dir: "drivers/usb/host",
        prefix: "palkan",
        area: "usb: host: palkan",
        alias: true,
        hw: "Palkan xHCI controller",
    },
    Comp {
        dir: "drivers/i2c/busses",
        prefix: "orvid",
        area: "i2c: orvid",
        alias: true,
        hw: "Orvid I2C controller",
    },
    Comp {
        dir: "drivers/spi",
        prefix: "hexlo",
        area: "spi: hexlo",
        alias: true,
        hw: "Hexlo QSPI controller",
    },
    Comp {
        dir: "drivers/scsi/sarnet",
        prefix: "sarnet",
        area: "scsi: sarnet",
        alias: true,
        hw: "Sarnet SAS HBA",
    },
    Comp {
        dir: "drivers/pinctrl/kelvo",
        prefix: "kelvo",
        area: "pinctrl: kelvo",
        alias: true,
        hw: "Kelvo K3 SoC",
    },
    Comp {
        dir: "drivers/clk/dunmar",
        prefix: "dunmar",
        area: "clk: dunmar",
        alias: true,
        hw: "Dunmar clock unit",
    },
    Comp {
        dir: "drivers/hwmon",
        prefix: "zephra",
        area: "hwmon: zephra",
        alias: true,
        hw: "ZP4410 sensor",
    },
    Comp {
        dir: "drivers/input/touchscreen",
        prefix: "lumic",
        area: "Input: lumic",
        alias: true,
        hw: "Lumic touch panel",
    },
    Comp {
        dir: "fs/torvane",
        prefix: "torvane",
        area: "torvane",
        alias: true,
        hw: "torvane volumes",
    },
    Comp {
        dir: "mm",
        prefix: "mm",
        area: "mm",
        alias: false,
        hw: "NUMA machines",
    },
    Comp {
        dir: "kernel/sched",
        prefix: "sched",
        area: "sched/fair",
        alias: false,
        hw: "big.LITTLE systems",
    },
    Comp {
        dir: "net/ipv4",
        prefix: "tcp",
        area: "tcp",
        alias: false,
        hw: "100G links",
    },
    Comp {
        dir: "block",
        prefix: "blk",
        area: "block",
        alias: false,
        hw: "NVMe arrays",
    },
    Comp {
        dir: "arch/x86/kernel",
        prefix: "x86",
        area: "x86/cpu",
        alias: false,
        hw: "Zen 4 machines",
    },
    Comp {
        dir: "drivers/nvme/host",
        prefix: "nvme",
        area: "nvme",
        alias: false,
        hw: "dual-port NVMe drives",
    },
];

const FILE_SUFFIXES: &[&str] = &[
    "main", "core", "hw", "dma", "irq", "debugfs", "ethtool", "phy", "ring", "pm", "sysfs",
    "trace", "fw", "ctrl", "mbox", "stats", "regs", "pci", "of", "acpi",
];

struct CFunc {
    name: String,
    lines: Vec<String>,
}

enum SrcFile {
    C {
        head: Vec<String>,
        funcs: Vec<CFunc>,
    },
    Text(Vec<String>),
}

impl SrcFile {
    fn render(&self) -> String {
        let mut s = String::new();
        match self {
            SrcFile::C { head, funcs } => {
                for l in head {
                    s.push_str(l);
                    s.push('\n');
                }
                for f in funcs {
                    s.push('\n');
                    for l in &f.lines {
                        s.push_str(l);
                        s.push('\n');
                    }
                }
            }
            SrcFile::Text(lines) => {
                for l in lines {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }
}

/// What a commit did, for its message.
enum Change {
    Tweak(Vec<String>),
    AddFunc(String),
    RemoveFunc(String),
    Rename(String, String),
    NewFile,
    Big,
    Convert(String),
    Doc,
    Header(String),
}

struct Tree {
    files: BTreeMap<String, SrcFile>,
    /// C files of each component.
    comp_c: Vec<Vec<String>>,
    names: HashSet<String>,
    dirty: std::collections::BTreeSet<String>,
}

fn header_path(c: &Comp) -> String {
    format!("{}/{}.h", c.dir, c.prefix)
}

fn doc_path(c: &Comp) -> String {
    format!(
        "Documentation/{}/{}.rst",
        c.dir.split('/').next().unwrap_or("misc"),
        c.prefix
    )
}

impl Tree {
    fn new(rng: &mut Rng) -> Tree {
        let mut t = Tree {
            files: BTreeMap::new(),
            comp_c: vec![Vec::new(); COMPS.len()],
            names: HashSet::new(),
            dirty: Default::default(),
        };
        let mut maintainers = vec![
            "List of maintainers".to_string(),
            "===================".to_string(),
            String::new(),
        ];
        for (ci, c) in COMPS.iter().enumerate() {
            let up = c.prefix.to_uppercase();
            for _ in 0..rng.range(2, 4) {
                t.new_c_file(rng, ci, 4, 10);
            }
            let mut h = vec![
                "/* SPDX-License-Identifier: GPL-2.0-only */".to_string(),
                format!("#ifndef __{up}_H"),
                format!("#define __{up}_H"),
                String::new(),
                "#include <linux/types.h>".to_string(),
                "#include <linux/spinlock.h>".to_string(),
                String::new(),
            ];
            for _ in 0..rng.range(15, 40) {
                h.push(define_line(rng, &up));
            }
            h.push(String::new());
            h.push(format!("struct {}_priv {{", c.prefix));
            h.push("\tstruct device *dev;".to_string());
            h.push("\tvoid __iomem *base;".to_string());
            h.push("\tspinlock_t lock;".to_string());
            h.push("\tstruct mutex mutex;".to_string());
            for _ in 0..rng.range(5, 15) {
                h.push(format!(
                    "\t{} {}_{};",
                    rng.pick(&[
                        "u32",
                        "u64",
                        "int",
                        "bool",
                        "unsigned long",
                        "struct list_head"
                    ]),
                    rng.pick(NOUNS),
                    rng.pick(FIELDS)
                ));
            }
            h.push("};".to_string());
            h.push(String::new());
            for f in t.comp_c[ci].clone() {
                if let Some(SrcFile::C { funcs, .. }) = t.files.get(&f) {
                    for func in funcs.iter().filter(|_| rng.chance(0.3)) {
                        h.push(format!(
                            "int {}(struct {}_priv *priv);",
                            func.name, c.prefix
                        ));
                    }
                }
            }
            h.push(String::new());
            h.push(format!("#endif /* __{up}_H */"));
            t.put(header_path(c), SrcFile::Text(h));
            let objs: Vec<String> = t.comp_c[ci]
                .iter()
                .map(|p| {
                    format!(
                        "{}.o",
                        p.rsplit('/').next().unwrap_or(p).trim_end_matches(".c")
                    )
                })
                .collect();
            t.put(
                format!("{}/Makefile", c.dir),
                SrcFile::Text(vec![
                    "# SPDX-License-Identifier: GPL-2.0".to_string(),
                    format!("obj-$(CONFIG_{up}) += {}.o", c.prefix),
                    format!("{}-y := {}", c.prefix, objs.join(" ")),
                ]),
            );
            let mut kc = vec![
                format!("config {up}"),
                format!("\ttristate \"Support for the {}\"", c.hw),
                "\tdepends on HAS_IOMEM".to_string(),
                "\thelp".to_string(),
            ];
            for l in wrap(
                &sentences(rng, COMMIT_SENTENCES, 2, &Fill::new(c, "probe")),
                60,
            ) {
                kc.push(format!("\t  {l}"));
            }
            t.put(format!("{}/Kconfig", c.dir), SrcFile::Text(kc));
            let title = format!("{} driver", c.hw);
            let mut doc = vec![
                ".. SPDX-License-Identifier: GPL-2.0".to_string(),
                String::new(),
                "=".repeat(title.len()),
                title.clone(),
                "=".repeat(title.len()),
                String::new(),
            ];
            for _ in 0..rng.range(3, 8) {
                doc.extend(wrap(
                    &sentences(rng, COMMIT_SENTENCES, 3, &Fill::new(c, "probe")),
                    76,
                ));
                doc.push(String::new());
            }
            t.put(doc_path(c), SrcFile::Text(doc));
            maintainers.push(c.hw.to_uppercase());
            maintainers.push(format!("F:\t{}/", c.dir));
            maintainers.push(String::new());
        }
        t.put("MAINTAINERS".to_string(), SrcFile::Text(maintainers));
        t
    }

    fn put(&mut self, path: String, f: SrcFile) {
        self.dirty.insert(path.clone());
        self.files.insert(path, f);
    }

    fn unique_name(&mut self, rng: &mut Rng, p: &str) -> String {
        loop {
            let mut n = format!("{p}_{}_{}", rng.pick(VERBS), rng.pick(NOUNS));
            if rng.chance(0.15) {
                n.push_str(rng.pick(&["_locked", "_hw", "_one", "_all", "_work", "_cb"]));
            }
            if self.names.insert(n.clone()) {
                return n;
            }
        }
    }

    fn gen_func(&mut self, rng: &mut Rng, p: &str) -> CFunc {
        let name = self.unique_name(rng, p);
        let mut lines = Vec::new();
        if rng.chance(0.3) {
            lines.push("/**".to_string());
            lines.push(format!(
                " * {name}() - {} the {}",
                rng.pick(VERBS),
                rng.pick(NOUNS)
            ));
            lines.push(" * @priv: driver private data".to_string());
            lines.push(" *".to_string());
            for l in wrap(&fill_any(rng, COMMIT_SENTENCES, &Fill::plain(p, &name)), 70) {
                lines.push(format!(" * {l}"));
            }
            lines.push(" *".to_string());
            lines.push(" * Return: 0 on success or a negative error code.".to_string());
            lines.push(" */".to_string());
        }
        let arg = rng.chance(0.5);
        lines.push(format!(
            "{}int {name}(struct {p}_priv *priv{})",
            if rng.chance(0.7) { "static " } else { "" },
            if arg {
                format!(", u32 {}", rng.pick(FIELDS))
            } else {
                String::new()
            }
        ));
        lines.push("{".to_string());
        lines.push("\tu32 val;".to_string());
        lines.push("\tint ret;".to_string());
        if rng.chance(0.4) {
            lines.push("\tunsigned long flags;".to_string());
        }
        if rng.chance(0.3) {
            lines.push("\tint i;".to_string());
        }
        lines.push(String::new());
        for _ in 0..rng.range(3, 11) {
            stmt(rng, p, 1, &mut lines);
        }
        lines.push(String::new());
        lines.push("\treturn 0;".to_string());
        lines.push("}".to_string());
        CFunc { name, lines }
    }

    fn new_c_file(&mut self, rng: &mut Rng, ci: usize, min: usize, max: usize) -> Option<String> {
        let c = &COMPS[ci];
        let free: Vec<&str> = FILE_SUFFIXES
            .iter()
            .copied()
            .filter(|s| {
                !self
                    .files
                    .contains_key(&format!("{}/{}_{s}.c", c.dir, c.prefix))
            })
            .collect();
        if free.is_empty() {
            return None;
        }
        let path = format!("{}/{}_{}.c", c.dir, c.prefix, rng.pick(&free));
        let mut head = vec![
            "// SPDX-License-Identifier: GPL-2.0-only".to_string(),
            "/*".to_string(),
            format!(" * {}", c.hw),
            " *".to_string(),
            format!(
                " * Copyright (C) 20{} {} Inc.",
                rng.range(12, 24),
                rng.pick(COMPANIES)
            ),
            " */".to_string(),
            String::new(),
        ];
        let mut incs: Vec<&str> = INCLUDES.to_vec();
        for _ in 0..rng.range(3, 8) {
            let i = rng.below(incs.len());
            head.push(format!("#include <linux/{}.h>", incs.remove(i)));
        }
        head.push(format!("#include \"{}.h\"", c.prefix));
        if rng.chance(0.4) {
            head.push(String::new());
            head.push(format!(
                "#define {}_{}_TIMEOUT_MS\t{}",
                c.prefix.to_uppercase(),
                rng.pick(NOUNS).to_uppercase(),
                rng.range(10, 5000)
            ));
        }
        let funcs = (0..rng.range(min, max))
            .map(|_| self.gen_func(rng, c.prefix))
            .collect();
        self.put(path.clone(), SrcFile::C { head, funcs });
        self.comp_c[ci].push(path.clone());
        Some(path)
    }

    fn funcs_mut(&mut self, path: &str) -> &mut Vec<CFunc> {
        self.dirty.insert(path.to_string());
        match self.files.get_mut(path) {
            Some(SrcFile::C { funcs, .. }) => funcs,
            _ => panic!("{path} is not a C file"),
        }
    }

    fn text_mut(&mut self, path: &str) -> &mut Vec<String> {
        self.dirty.insert(path.to_string());
        match self.files.get_mut(path) {
            Some(SrcFile::Text(lines)) => lines,
            _ => panic!("{path} is not a text file"),
        }
    }

    fn tweak(&mut self, rng: &mut Rng, path: &str, p: &str) -> String {
        let funcs = self.funcs_mut(path);
        let i = rng.below(funcs.len());
        let f = &mut funcs[i];
        let body_start = f.lines.iter().position(|l| l.is_empty()).unwrap_or(2) + 1;
        let body_end = f.lines.len().saturating_sub(3).max(body_start);
        for _ in 0..rng.range(1, 3) {
            let at = rng.range(body_start, body_end);
            match rng.below(4) {
                0 | 1 => {
                    let mut new = Vec::new();
                    stmt(rng, p, 1, &mut new);
                    let at = (body_start..=at)
                        .rev()
                        .find(|&k| {
                            k == body_start
                                || f.lines[k - 1].ends_with(';')
                                    && !f.lines[k - 1].starts_with("\t\t")
                        })
                        .unwrap_or(body_start);
                    f.lines.splice(at..at, new);
                }
                2 => {
                    if let Some(k) = (body_start..body_end.min(f.lines.len())).find(|&k| {
                        let l = &f.lines[k];
                        k >= at
                            && l.starts_with('\t')
                            && !l.starts_with("\t\t")
                            && l.ends_with(';')
                            && !l.contains("return")
                    }) {
                        f.lines.remove(k);
                    }
                }
                _ => {
                    if at < f.lines.len() {
                        let l = f.lines[at].clone();
                        f.lines[at] = modify_line(rng, &l, p);
                    }
                }
            }
        }
        f.name.clone()
    }

    fn mutate(&mut self, rng: &mut Rng, ci: usize) -> Change {
        let c = &COMPS[ci];
        let p = c.prefix;
        let files = self.comp_c[ci].clone();
        match rng.below(1000) {
            0..520 => {
                let path = rng.pick_ref(&files).clone();
                Change::Tweak(
                    (0..rng.range(1, 2))
                        .map(|_| self.tweak(rng, &path, p))
                        .collect(),
                )
            }
            520..620 => {
                let mut names = Vec::new();
                for path in &files {
                    if rng.chance(0.7) {
                        names.push(self.tweak(rng, path, p));
                    }
                }
                if names.is_empty() {
                    names.push(self.tweak(rng, &files[0], p));
                }
                Change::Tweak(names)
            }
            620..720 => {
                let path = rng.pick_ref(&files).clone();
                let f = self.gen_func(rng, p);
                let name = f.name.clone();
                let funcs = self.funcs_mut(&path);
                let at = rng.below(funcs.len() + 1);
                funcs.insert(at, f);
                // Call it from another function.
                let j = rng.below(funcs.len());
                if funcs[j].name != name {
                    let l = &mut funcs[j].lines;
                    let k = l.len().saturating_sub(2);
                    l.splice(
                        k..k,
                        [
                            format!("\tret = {name}(priv);"),
                            "\tif (ret)".to_string(),
                            "\t\treturn ret;".to_string(),
                        ],
                    );
                }
                Change::AddFunc(name)
            }
            720..770 => {
                let path = rng.pick_ref(&files).clone();
                let funcs = self.funcs_mut(&path);
                if funcs.len() < 3 {
                    return Change::Tweak(vec![self.tweak(rng, &path, p)]);
                }
                let f = funcs.remove(rng.below(funcs.len()));
                Change::RemoveFunc(f.name)
            }
            770..820 => {
                let path = rng.pick_ref(&files).clone();
                let funcs = self.funcs_mut(&path);
                let old = funcs[rng.below(funcs.len())].name.clone();
                let new = self.unique_name(rng, p);
                let (from, to) = (format!("{old}("), format!("{new}("));
                for f in files.iter().chain([&header_path(c)]) {
                    let text = match self.files.get_mut(f) {
                        Some(SrcFile::C { funcs, .. }) => {
                            for func in funcs.iter_mut() {
                                if func.name == old {
                                    func.name = new.clone();
                                }
                                for l in &mut func.lines {
                                    if l.contains(&from) || l.contains(&format!("{old}()")) {
                                        *l = l
                                            .replace(&from, &to)
                                            .replace(&format!("{old}()"), &format!("{new}()"));
                                    }
                                }
                            }
                            true
                        }
                        Some(SrcFile::Text(lines)) => {
                            for l in lines.iter_mut() {
                                *l = l.replace(&from, &to);
                            }
                            true
                        }
                        None => false,
                    };
                    if text {
                        self.dirty.insert(f.clone());
                    }
                }
                Change::Rename(old, new)
            }
            820..860 => match self.new_c_file(rng, ci, 8, 18) {
                Some(path) => {
                    let obj = format!(
                        "{}.o",
                        path.rsplit('/')
                            .next()
                            .unwrap_or(&path)
                            .trim_end_matches(".c")
                    );
                    let mk = self.text_mut(&format!("{}/Makefile", c.dir));
                    mk.push(format!("{p}-y += {obj}"));
                    Change::NewFile
                }
                None => Change::Tweak(vec![self.tweak(rng, &files[0], p)]),
            },
            860..890 => {
                if rng.chance(0.3) {
                    // A mechanical conversion over the whole driver.
                    let helper = format!("{p}_read");
                    for path in &files {
                        for f in self.funcs_mut(path).iter_mut() {
                            for l in &mut f.lines {
                                if l.contains("readl(priv->base + ") {
                                    *l = l.replace(
                                        "readl(priv->base + ",
                                        &format!("{helper}(priv, "),
                                    );
                                } else if l.contains("dev_dbg(") {
                                    *l = l.replace("dev_dbg(", "dev_info_ratelimited(");
                                }
                            }
                        }
                    }
                    Change::Convert(helper)
                } else {
                    big_file(self, rng, ci);
                    Change::Big
                }
            }
            890..940 => {
                let doc = self.text_mut(&doc_path(c));
                let at = rng.range(6, doc.len());
                let n = rng.range(2, 5);
                let mut para = wrap(
                    &sentences(rng, COMMIT_SENTENCES, n, &Fill::new(c, "probe")),
                    76,
                );
                para.push(String::new());
                doc.splice(at..at, para);
                if rng.chance(0.4) && doc.len() > 8 {
                    let k = rng.range(6, doc.len() - 1);
                    doc.remove(k);
                }
                Change::Doc
            }
            _ => {
                let up = p.to_uppercase();
                let h = self.text_mut(&header_path(c));
                let at = rng.range(7, h.len().saturating_sub(3).max(7));
                let new: Vec<String> = (0..rng.range(2, 8))
                    .map(|_| define_line(rng, &up))
                    .collect();
                h.splice(at..at, new);
                let path = rng.pick_ref(&files).clone();
                let f = self.tweak(rng, &path, p);
                Change::Header(f)
            }
        }
    }
}

/// A 50-100 KB new file: register definitions or a firmware table.
fn big_file(t: &mut Tree, rng: &mut Rng, ci: usize) {
    let c = &COMPS[ci];
    let up = c.prefix.to_uppercase();
    let blk = rng.pick(NOUNS).to_uppercase();
    let mut lines = Vec::new();
    let path;
    if rng.chance(0.6) {
        path = format!("{}/{}_regs_{}.h", c.dir, c.prefix, blk.to_lowercase());
        lines.push("/* SPDX-License-Identifier: GPL-2.0-only */".to_string());
        lines.push(format!("/* Register map of the {} {} block. */", c.hw, blk));
        lines.push(format!("#ifndef __{up}_REGS_{blk}_H"));
        lines.push(format!("#define __{up}_REGS_{blk}_H"));
        lines.push(String::new());
        let target = rng.range(1050, 1900);
        let mut off = 0u32;
        while lines.len() < target {
            let reg = format!(
                "{}_{}",
                rng.pick(NOUNS).to_uppercase(),
                rng.pick(FIELDS).to_uppercase()
            );
            lines.push(format!("#define {up}_{blk}_{reg}\t\t0x{off:04x}"));
            let mut bit = 31i32;
            while bit > 0 && rng.chance(0.8) {
                let w = rng.range(1, 8) as i32;
                let lo = (bit - w + 1).max(0);
                let field = rng.pick(FIELDS).to_uppercase();
                if w == 1 {
                    lines.push(format!("#define   {up}_{blk}_{reg}_{field}\t\tBIT({bit})"));
                } else {
                    lines.push(format!(
                        "#define   {up}_{blk}_{reg}_{field}\t\tGENMASK({bit}, {lo})"
                    ));
                }
                bit = lo - 1;
            }
            off += 4 * rng.range(1, 4) as u32;
        }
        lines.push(String::new());
        lines.push(format!("#endif /* __{up}_REGS_{blk}_H */"));
    } else {
        path = format!("{}/{}_{}_table.c", c.dir, c.prefix, blk.to_lowercase());
        lines.push("// SPDX-License-Identifier: GPL-2.0-only".to_string());
        lines.push(format!(
            "/* {} initialisation sequence, from the vendor's firmware 3.{}. */",
            c.hw,
            rng.range(0, 40)
        ));
        lines.push(String::new());
        lines.push(format!("#include \"{}.h\"", c.prefix));
        lines.push(String::new());
        let target = rng.range(650, 1250);
        lines.push(format!(
            "const u32 {}_{}_table[] = {{",
            c.prefix,
            blk.to_lowercase()
        ));
        while lines.len() < target {
            let words: Vec<String> = (0..6)
                .map(|_| format!("0x{:08x}", rng.next() as u32))
                .collect();
            lines.push(format!("\t{},", words.join(", ")));
        }
        lines.push("};".to_string());
    }
    t.put(path, SrcFile::Text(lines));
}

fn define_line(rng: &mut Rng, up: &str) -> String {
    format!(
        "#define {up}_{}_{}\t{}",
        rng.pick(NOUNS).to_uppercase(),
        rng.pick(FIELDS).to_uppercase(),
        match rng.below(3) {
            0 => format!("BIT({})", rng.below(32)),
            1 => format!("0x{:x}", rng.below(0x1000) * 4),
            _ => format!("GENMASK({}, {})", rng.range(8, 31), rng.below(8)),
        }
    )
}

/// One C statement (maybe a block) at `ind` tabs.
fn stmt(rng: &mut Rng, p: &str, ind: usize, out: &mut Vec<String>) {
    let t = "\t".repeat(ind);
    let up = p.to_uppercase();
    let n = rng.pick(NOUNS);
    let nu = n.to_uppercase();
    let v = rng.pick(VERBS);
    let f = rng.pick(FIELDS);
    match rng.below(15) {
        0 | 1 => {
            out.push(format!("{t}ret = {p}_{v}_{n}(priv, {});", arg(rng)));
            out.push(format!("{t}if (ret)"));
            out.push(format!("{t}\treturn ret;"));
        }
        2 => out.push(format!("{t}val = readl(priv->base + {up}_REG_{nu});")),
        3 => {
            out.push(format!("{t}val &= ~{up}_{nu}_MASK;"));
            out.push(format!(
                "{t}val |= FIELD_PREP({up}_{nu}_MASK, {});",
                arg(rng)
            ));
            out.push(format!("{t}writel(val, priv->base + {up}_REG_{nu});"));
        }
        4 if ind < 3 => {
            out.push(format!("{t}spin_lock_irqsave(&priv->lock, flags);"));
            for _ in 0..rng.range(1, 3) {
                stmt(rng, p, ind, out);
            }
            out.push(format!("{t}spin_unlock_irqrestore(&priv->lock, flags);"));
        }
        5 if ind < 3 => {
            out.push(format!(
                "{t}for (i = 0; i < {}; i++) {{",
                rng.pick(&[
                    "priv->num_queues",
                    "ARRAY_SIZE(priv->regs)",
                    "8",
                    "16",
                    "priv->nr_entries"
                ])
            ));
            for _ in 0..rng.range(1, 3) {
                stmt(rng, p, ind + 1, out);
            }
            out.push(format!("{t}}}"));
        }
        6 => out.push(format!("{t}dev_dbg(priv->dev, \"{v} {n}: %d\\n\", ret);")),
        7 if ind < 3 => {
            out.push(format!("{t}if (!priv->{n}_{f}) {{"));
            out.push(format!("{t}\tdev_err(priv->dev, \"no {n} {f}\\n\");"));
            out.push(format!(
                "{t}\treturn -{};",
                rng.pick(&["ENODEV", "EINVAL", "ENOMEM", "EIO", "EBUSY", "ETIMEDOUT"])
            ));
            out.push(format!("{t}}}"));
        }
        8 => {
            let s = fill_any(rng, REVIEW_SENTENCES, &Fill::plain(p, "this"));
            let s = s.trim_end_matches(['.', '?']).to_lowercase();
            out.push(format!(
                "{t}/* {} */",
                s.chars().take(70).collect::<String>()
            ));
        }
        9 => out.push(format!("{t}priv->{n}_{f} = {};", arg(rng))),
        10 => {
            let a = rng.range(1, 50) * 10;
            out.push(format!("{t}usleep_range({a}, {});", a * 2));
        }
        11 => out.push(format!("{t}memset(&priv->{n}, 0, sizeof(priv->{n}));")),
        12 if ind < 3 => {
            out.push(format!("{t}if (val & {up}_{nu}_{})", f.to_uppercase()));
            out.push(format!("{t}\tpriv->{n}_{f}++;"));
        }
        13 => out.push(format!("{t}{p}_{v}_{n}(priv);")),
        _ => out.push(format!(
            "{t}ret = regmap_update_bits(priv->regmap, {up}_REG_{nu}, {up}_{nu}_MASK, {});",
            arg(rng)
        )),
    }
}

fn arg(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => "0".to_string(),
        1 => "val".to_string(),
        2 => "i".to_string(),
        3 => format!("priv->{}_{}", rng.pick(NOUNS), rng.pick(FIELDS)),
        4 => format!("BIT({})", rng.below(32)),
        5 => "flags".to_string(),
        _ => rng.range(1, 4096).to_string(),
    }
}

fn modify_line(rng: &mut Rng, l: &str, p: &str) -> String {
    if let Some(i) = l.find(|c: char| c.is_ascii_digit()) {
        let end = l[i..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(l.len(), |e| i + e);
        return format!("{}{}{}", &l[..i], rng.range(1, 9999), &l[end..]);
    }
    for (a, b) in [
        ("readl(", "readl_relaxed("),
        ("writel(", "writel_relaxed("),
        ("dev_dbg(", "dev_info("),
        ("dev_err(", "dev_err_probe("),
        ("spin_lock_irqsave(", "spin_lock_bh("),
        ("-EINVAL", "-EOPNOTSUPP"),
        ("return ret;", "goto err_unlock;"),
    ] {
        if l.contains(a) {
            return l.replacen(a, b, 1);
        }
    }
    let mut out = Vec::new();
    stmt(rng, p, 1, &mut out);
    out.remove(0)
}

/// A commit message in the kernel's style; the author is a placeholder.
fn commit_message(rng: &mut Rng, ci: usize, change: &Change) -> String {
    let c = &COMPS[ci];
    let (f, pool): (String, &[&str]) = match change {
        Change::Tweak(fs) => (fs[0].clone(), TWEAK_SUBJECTS),
        Change::Header(f) => (f.clone(), TWEAK_SUBJECTS),
        Change::AddFunc(f) => (f.clone(), ADD_SUBJECTS),
        Change::RemoveFunc(f) => (f.clone(), REMOVE_SUBJECTS),
        Change::Rename(a, b) => (format!("{a}() to {b}"), &["Rename {f}()"]),
        Change::NewFile => (format!("{}_probe", c.prefix), NEWFILE_SUBJECTS),
        Change::Big => (format!("{}_init", c.prefix), BIG_SUBJECTS),
        Change::Convert(h) => (h.clone(), &["Convert register reads to {f}()"]),
        Change::Doc => (format!("{}_probe", c.prefix), DOC_SUBJECTS),
    };
    let fl = Fill::new(c, &f);
    let subject = fill_any(rng, pool, &fl);
    let area = if matches!(change, Change::Doc) {
        format!("docs: {}", c.prefix)
    } else {
        c.area.to_string()
    };
    let mut msg = format!("{area}: {subject}\n\n");
    for _ in 0..rng.range(1, 3) {
        let n = rng.range(1, 4);
        for l in wrap(&sentences(rng, COMMIT_SENTENCES, n, &fl), 72) {
            msg.push_str(&l);
            msg.push('\n');
        }
        msg.push('\n');
    }
    if rng.chance(0.2) {
        let _ = writeln!(
            msg,
            "Fixes: {} (\"{}: {}\")",
            rng.hex(12),
            c.area,
            fill_any(rng, TWEAK_SUBJECTS, &fl)
        );
    }
    if rng.chance(0.1) {
        msg.push_str("Reported-by: REPORTER\nCloses: https://lore.example.org/r/REPORTID/\n");
    }
    if rng.chance(0.06) {
        msg.push_str("Suggested-by: SUGGESTER\n");
    }
    if rng.chance(0.1) {
        msg.push_str("Cc: stable@vger.example.org\n");
    }
    let _ = writeln!(
        msg,
        "Signed-off-by: {AUTHOR_PLACEHOLDER} <{AUTHOR_EMAIL_PLACEHOLDER}>"
    );
    msg
}

// --- words ----------------------------------------------------------------------

const VERBS: &[&str] = &[
    "init", "setup", "reset", "enable", "disable", "get", "set", "update", "alloc", "free",
    "start", "stop", "poll", "handle", "parse", "validate", "read", "write", "flush", "sync",
    "config", "release", "map", "unmap", "queue", "submit", "complete", "check", "restore",
    "suspend", "resume", "clear", "refill", "drain", "program", "lookup",
];

const NOUNS: &[&str] = &[
    "ring", "queue", "irq", "clock", "regs", "link", "phy", "mac", "stats", "buffer", "desc",
    "dma", "fw", "state", "caps", "port", "channel", "timer", "work", "ctx", "page", "entry",
    "table", "cache", "mode", "power", "events", "status", "fifo", "mailbox", "vector", "doorbell",
    "watchdog", "tag", "slot", "lane", "pll", "gpio", "sensor", "frame", "extent", "inode",
    "folio", "bio", "request", "socket", "window", "rate",
];

const FIELDS: &[&str] = &[
    "count", "size", "flags", "mask", "idx", "len", "base", "addr", "cfg", "mode", "level",
    "limit", "shift", "width", "id", "num", "pending", "enabled", "offset", "budget",
];

const INCLUDES: &[&str] = &[
    "module",
    "kernel",
    "slab",
    "delay",
    "io",
    "interrupt",
    "platform_device",
    "of",
    "clk",
    "dma-mapping",
    "bitfield",
    "iopoll",
    "mutex",
    "workqueue",
    "regmap",
    "pm_runtime",
    "debugfs",
    "firmware",
    "etherdevice",
    "pci",
];

const COMPANIES: &[&str] = &[
    "Qorvix",
    "Tellurn Semiconductor",
    "Brisca Graphics",
    "Vantor Audio",
    "Mezzo Devices",
    "Palkan",
    "Dunmar Systems",
    "Zephra Labs",
    "Lumic Displays",
];

const HELPERS: &[&str] = &[
    "devm_kzalloc",
    "readl_poll_timeout",
    "FIELD_GET",
    "dev_err_probe",
    "guard(mutex)",
    "kvmalloc_array",
    "struct_size",
    "clamp",
    "min_t",
    "devm_clk_get_enabled",
    "pm_runtime_resume_and_get",
    "scoped_guard",
    "kmemdup_array",
    "sysfs_emit",
];

const TOOLS: &[&str] = &[
    "KASAN",
    "syzkaller",
    "lockdep",
    "smatch",
    "Coverity",
    "UBSAN",
    "KCSAN",
    "sparse",
    "the kernel test robot",
    "kmemleak",
];

const WORKLOADS: &[&str] = &[
    "iperf3 with 16 streams",
    "fio random writes",
    "a suspend/resume loop",
    "stress-ng",
    "kernel builds",
    "hackbench",
    "a hot-unplug test",
    "netperf TCP_RR",
    "blktests",
    "the kselftests",
    "LTP",
    "a reboot loop",
];

const KVERS: &[&str] = &[
    "v6.1", "v6.6", "v6.8", "v6.9", "v6.10", "v6.11", "v6.12", "v6.13",
];

const TREES: &[&str] = &[
    "net-next",
    "linux-next",
    "the mainline",
    "char-misc-next",
    "drm-misc-next",
    "for-next",
    "the tip tree",
];

const TWEAK_SUBJECTS: &[&str] = &[
    "Fix error handling in {f}()",
    "Fix {n} leak in {f}()",
    "Check {n} before use in {f}()",
    "Avoid {n} overflow in {f}()",
    "Fix race between {f}() and {f2}()",
    "Handle {n} timeout in {f}()",
    "Use {h}() in {f}()",
    "Drop redundant {n} check in {f}()",
    "Correct the {n} mask in {f}()",
    "Fix NULL pointer dereference in {f}()",
    "Fix off-by-one in {f}()",
    "Simplify {f}()",
    "Reset the {n} state in {f}()",
    "Don't {v} the {n} twice in {f}()",
    "Fix use-after-free of {n} in {f}()",
    "Take the lock in {f}()",
    "Propagate errors from {f}()",
    "Fix {n} refcount imbalance",
    "Clear the {n} flags on reset",
];

const ADD_SUBJECTS: &[&str] = &[
    "Add {f}() helper",
    "Introduce {f}()",
    "Factor out {f}()",
    "Add support for {hw} {n} control",
    "Add {n} statistics",
    "Add tracepoints for {n} events",
];

const REMOVE_SUBJECTS: &[&str] = &[
    "Remove unused {f}()",
    "Drop {f}()",
    "Remove dead {n} code",
    "Fold {f}() into its only caller",
];

const NEWFILE_SUBJECTS: &[&str] = &[
    "Add {n} support",
    "Add driver for the {hw} {n} block",
    "Add debugfs interface",
    "Add {n} offload",
    "Support {hw} revision B",
];

const BIG_SUBJECTS: &[&str] = &[
    "Add register definitions for the {n} block",
    "Add {hw} initialisation tables",
    "Import the {n} register map",
];

const DOC_SUBJECTS: &[&str] = &[
    "Describe {n} handling",
    "Fix typos",
    "Update the {n} section",
    "Document the {n} module parameters",
];

const COMMIT_SENTENCES: &[&str] = &[
    "When {f}() fails, the {n} allocated earlier is never released.",
    "The {n} is {v}ed before {f}() has finished with it, which can leave the {n2} in an inconsistent state.",
    "{f}() reads the {n} register without holding the lock, so a concurrent {f2}() can observe a half-updated value.",
    "Commit {hex} (\"{p}: {v} the {n} earlier\") moved the {n} setup into {f2}(), but the error path still expects the old ordering.",
    "This was found by {tool} while running {w}.",
    "Use {h}() instead of open-coding it.",
    "No functional change intended.",
    "On {hw}, the {n} register reads back as zero until the {n2} is enabled.",
    "Without this, {w} occasionally hangs with the {n} stuck in the busy state.",
    "Tested on {hw} with {w}.",
    "Move the {n} handling into a helper so that {f}() and {f2}() can share it.",
    "The {n} count can exceed {x} on large systems, which overflows the 16-bit field.",
    "Drop the check, the caller already guarantees that the {n} is valid.",
    "The documentation says the {n} must be reset before the {n2} is reprogrammed; do that.",
    "This matches what the other drivers in the subsystem do.",
    "While at it, fix the indentation of the {n} definitions.",
    "Return the error instead of silently ignoring it, so that the caller can retry.",
    "A later patch in this series relies on this.",
    "Since {kver} the {n} can be released from interrupt context, so a mutex is no longer appropriate here.",
    "Make the {n} array dynamic so that variants with more than {x} entries work.",
    "The previous code assumed that the {n} and the {n2} are always in the same page.",
    "Add a comment explaining why the barrier is needed.",
    "The delay was chosen empirically: {x} microseconds is enough on every board I have.",
    "This fixes a regression introduced in {kver}.",
    "Keep the old behaviour for older revisions, which do not have the {n} register.",
    "The {n} interrupt can fire before {f}() has set up the {n2}, so request it last.",
    "Nothing checks the return value of {f}(), so a failure goes unnoticed until the {n} times out.",
    "Split the function in two to make the locking easier to follow.",
];

const REVIEW_SENTENCES: &[&str] = &[
    "Why is this needed? {f}() already checks the {n}.",
    "This looks racy: what prevents {f2}() from running concurrently?",
    "Please use {h}() here.",
    "nit: the {n} variable can be declared inside the loop.",
    "Can this overflow when the {n} is larger than {x}?",
    "I think the {n2} case also needs handling.",
    "Shouldn't this be done under the lock?",
    "Doesn't this leak the {n} on the error path?",
    "The error code should be propagated to the caller, not replaced with -EINVAL.",
    "This changes the behaviour on {hw}; is that intended?",
    "Could you split this into a separate patch? It is unrelated to the {n} fix.",
    "The commit message talks about the {n}, but the code changes the {n2}.",
    "This deserves a Fixes: tag.",
    "Please keep the declarations in reverse christmas tree order.",
    "Is the delay really required? This is called from the hot path.",
    "This should probably use READ_ONCE().",
    "Looks fine to me.",
    "Same comment as on the previous patch.",
    "How was this tested? I cannot reproduce the problem here.",
    "The kerneldoc of {f}() needs an update as well.",
    "What happens if {f}() is called again after a failed resume?",
    "I'd rather see the {n} handled in {f2}(), where the other limits are checked.",
];

const DISCUSS_SENTENCES: &[&str] = &[
    "Good point, I will fix that in the next version.",
    "No, {f}() is only called from {f2}(), which holds the lock.",
    "I tested it on {hw} with {w} for a few hours and saw no problem.",
    "Agreed, let's keep it simple for now.",
    "That was my first idea too, but it breaks older revisions.",
    "Right, the {n} can indeed be NULL there if the probe failed.",
    "I'd rather not add another flag to the {n}.",
    "Fair enough. I'll drop this patch from the series.",
    "The datasheet is not very clear about it, but the vendor driver does the same.",
    "Can you share the config and the reproducer?",
    "This has been like that since {kver}; I'd rather fix it in a separate series.",
    "Ping? This fixes a crash that people hit in production.",
    "Makes sense.",
    "With {w}, the difference is within noise.",
    "Before: {x} ops/s, after: {x2} ops/s.",
    "I don't think that can happen: the {n} is only freed after {f2}() returns.",
    "Would a WARN_ON_ONCE() be enough here, or do we need to bail out?",
    "OK, then the {n} handling in {f2}() has the same problem.",
    "Thanks for the explanation, that was not obvious from the commit message.",
    "I'll send a follow-up patch for the {n2} part.",
];

const BLURB_SENTENCES: &[&str] = &[
    "This series fixes several problems in the {n} handling of the {p} driver that showed up while running {w} on {hw}.",
    "The first patches are preparatory cleanups; the last one contains the actual fix.",
    "It applies on top of {tree}.",
    "The fixes could go to stable; the rest is cleanup.",
    "This is an RFC: I would like feedback on the approach before polishing it.",
    "With this series, {w} no longer triggers the {n} timeout.",
    "The {n} rework is needed for the upcoming {hw} support, which I will send separately.",
    "Tested on {hw}, with and without lockdep.",
];

const CHANGE_ITEMS: &[&str] = &[
    "Rebased on {tree}",
    "Fixed the {n} leak on the error path",
    "Split the {n} change into its own patch",
    "Collected the review tags",
    "Reworded the commit messages",
    "Use {h}() instead of open-coding it",
    "Dropped the {n} patch, it is no longer needed",
    "Added a Fixes: tag",
    "Moved the {n} check into {f}()",
    "Addressed the review comments on the {n2} locking",
];

const FIRST_NAMES: &[&str] = &[
    "Alice",
    "Bjorn",
    "Chen",
    "Dmitri",
    "Elena",
    "Farid",
    "Gustavo",
    "Hannah",
    "Ivan",
    "Jun",
    "Katarzyna",
    "Lars",
    "Mei",
    "Nikhil",
    "Olga",
    "Pavel",
    "Quentin",
    "Rafael",
    "Sanjay",
    "Tomasz",
    "Ulrike",
    "Vikram",
    "Wei",
    "Xavier",
    "Yuki",
    "Zoltan",
    "Amir",
    "Beatriz",
    "Ciprian",
    "Dana",
    "Emil",
    "Fatima",
    "Giorgio",
    "Hiroshi",
    "Ingrid",
    "Jakub",
    "Kenji",
    "Leonie",
    "Marek",
    "Nadia",
    "Oskar",
    "Priya",
    "Radu",
    "Sofia",
    "Thierry",
    "Uwe",
    "Vera",
    "Wojciech",
    "Yann",
    "Jörg",
    "Łukasz",
    "Søren",
    "José",
    "Frédéric",
    "Michał",
    "Ákos",
];

const LAST_NAMES: &[&str] = &[
    "Abbott",
    "Bergstrom",
    "Castillo",
    "Dvorak",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvath",
    "Ivanov",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yamamoto",
    "Zimmermann",
    "Andersson",
    "Brennan",
    "Costa",
    "Dumitru",
    "Engel",
    "Ferrari",
    "Gupta",
    "Hoffmann",
    "Iyer",
    "Jovanovic",
    "Kim",
    "Larsen",
    "Mendes",
    "Nakamura",
    "Olsen",
    "Popescu",
    "Reddy",
    "Sato",
    "Takahashi",
    "Urban",
    "Vogel",
    "Wang",
    "Yilmaz",
    "Zhou",
    "Müller",
    "Sørensen",
    "Wójcik",
    "Gonçalves",
    "Lefèvre",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "corp.example.com",
    "linux.example.org",
    "chipmaker.example",
    "cloud.example.net",
    "kernel.example.org",
    "uni.example.edu",
    "embedded.example.com",
    "distro.example.org",
];

/// What the placeholders of a sentence stand for.
struct Fill {
    f: String,
    p: String,
    hw: String,
}

impl Fill {
    fn new(c: &Comp, f: &str) -> Fill {
        Fill {
            f: f.to_string(),
            p: c.prefix.to_string(),
            hw: c.hw.to_string(),
        }
    }

    fn plain(p: &str, f: &str) -> Fill {
        Fill {
            f: f.to_string(),
            p: p.to_string(),
            hw: "the test board".to_string(),
        }
    }
}

/// Replaces `{f}`, `{n}`, ... in `t`.
fn fill(rng: &mut Rng, t: &str, fl: &Fill) -> String {
    let mut out = String::with_capacity(t.len() + 40);
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        let key = &rest[i + 1..i + j];
        match key {
            "f" => out.push_str(&fl.f),
            "f2" => {
                let _ = write!(out, "{}_{}_{}", fl.p, rng.pick(VERBS), rng.pick(NOUNS));
            }
            "n" | "n2" => out.push_str(rng.pick(NOUNS)),
            "v" => out.push_str(rng.pick(VERBS)),
            "h" => out.push_str(rng.pick(HELPERS)),
            "hw" => out.push_str(&fl.hw),
            "p" => out.push_str(&fl.p),
            "tool" => out.push_str(rng.pick(TOOLS)),
            "w" => out.push_str(rng.pick(WORKLOADS)),
            "x" | "x2" => {
                let _ = write!(out, "{}", rng.range(2, 65_536));
            }
            "hex" => out.push_str(&rng.hex(12)),
            "kver" => out.push_str(rng.pick(KVERS)),
            "tree" => out.push_str(rng.pick(TREES)),
            _ => {
                out.push('{');
                out.push_str(key);
                out.push('}');
            }
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

fn fill_any(rng: &mut Rng, pool: &[&str], fl: &Fill) -> String {
    let t = pool[rng.below(pool.len())];
    fill(rng, t, fl)
}

/// `n` sentences from `pool`, no template twice.
fn sentences(rng: &mut Rng, pool: &[&str], n: usize, fl: &Fill) -> String {
    let mut used = Vec::new();
    let mut out = Vec::new();
    while out.len() < n.clamp(1, pool.len()) {
        let i = rng.below(pool.len());
        if !used.contains(&i) {
            used.push(i);
            out.push(fill(rng, pool[i], fl));
        }
    }
    out.join(" ")
}

/// Greedy word wrap.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

fn paragraphs(rng: &mut Rng, pool: &[&str], count: usize, fl: &Fill) -> String {
    let mut s = String::new();
    for i in 0..count.max(1) {
        if i > 0 {
            s.push('\n');
        }
        let n = rng.range(1, 3);
        for l in wrap(&sentences(rng, pool, n, fl), 72) {
            s.push_str(&l);
            s.push('\n');
        }
    }
    s
}

// --- utilities ------------------------------------------------------------------

/// splitmix64: small, fast, deterministic.
#[derive(Clone)]
struct Rng(u64);

/// The splitmix64 finaliser: a bijection on u64, so distinct serial numbers
/// give distinct tokens.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn pick_ref<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(n);
        s
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down local time.
struct Tm {
    y: i64,
    mo: usize,
    d: u32,
    h: i64,
    mi: i64,
    s: i64,
    wd: usize,
}

fn tm(ts: i64, tz_min: i32) -> Tm {
    let t = ts + i64::from(tz_min) * 60;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = lorebot::mail::civil_from_days(days);
    Tm {
        y,
        mo: (m - 1) as usize,
        d,
        h: secs / 3600,
        mi: secs / 60 % 60,
        s: secs % 60,
        wd: (days + 4).rem_euclid(7) as usize,
    }
}

fn tz_str(tz_min: i32) -> String {
    let sign = if tz_min < 0 { '-' } else { '+' };
    let a = tz_min.abs();
    format!("{sign}{:02}{:02}", a / 60, a % 60)
}

/// RFC 5322 date; `pad` writes the day as `%e` does (git send-email).
fn rfc_date(ts: i64, tz_min: i32, pad: bool) -> String {
    let t = tm(ts, tz_min);
    format!(
        "{}, {}{} {} {} {:02}:{:02}:{:02} {}",
        DAYS[t.wd],
        if pad && t.d < 10 { " " } else { "" },
        t.d,
        MONTHS[t.mo],
        t.y,
        t.h,
        t.mi,
        t.s,
        tz_str(tz_min)
    )
}

/// `20240806120001`-style stamp (UTC).
fn stamp(ts: i64) -> String {
    let t = tm(ts, 0);
    format!(
        "{}{:02}{:02}{:02}{:02}{:02}",
        t.y,
        t.mo + 1,
        t.d,
        t.h,
        t.mi,
        t.s
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(B64[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Base64 in lines of `width`, each ending in LF.
fn base64_lines(data: &[u8], width: usize) -> String {
    let b = base64(data);
    let mut s = String::with_capacity(b.len() + b.len() / width + 1);
    for chunk in b.as_bytes().chunks(width) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s
}

/// Quoted-printable (RFC 2045), soft line breaks at 76 columns.
fn qp_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 10);
    let lines: Vec<&str> = text.split('\n').collect();
    for (li, line) in lines.iter().enumerate() {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let tok = if b == b'='
                || b > 126
                || (b < 32 && b != b'\t')
                || (last && (b == b' ' || b == b'\t'))
            {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + tok.len() > 75 {
                out.push_str("=\n");
                col = 0;
            }
            col += tok.len();
            out.push_str(&tok);
        }
        if li + 1 < lines.len() {
            out.push('\n');
        }
    }
    out
}

/// A display name as it goes in a header: RFC 2047 for non-ASCII, quoted
/// when it has specials.
fn display_name(name: &str) -> String {
    if name.is_ascii() {
        if name.contains(['.', ',', '(', ')', '"']) {
            format!("\"{}\"", name.replace('"', ""))
        } else {
            name.to_string()
        }
    } else {
        let mut s = String::from("=?UTF-8?q?");
        for &b in name.as_bytes() {
            if b.is_ascii_alphanumeric() {
                s.push(b as char);
            } else if b == b' ' {
                s.push('_');
            } else {
                let _ = write!(s, "={b:02X}");
            }
        }
        s.push_str("?=");
        s
    }
}

/// `Name: value`, folded at spaces before 78 columns.
fn header(out: &mut String, name: &str, value: &str) {
    let mut col = name.len() + 2;
    out.push_str(name);
    out.push_str(": ");
    let mut first = true;
    for w in value.split(' ') {
        if !first {
            if col + 1 + w.len() > 78 && col > name.len() + 2 {
                out.push_str("\n ");
                col = 1;
            } else {
                out.push(' ');
                col += 1;
            }
        }
        out.push_str(w);
        col += w.len();
        first = false;
    }
    out.push('\n');
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' => Some(c.to_ascii_lowercase()),
            'ö' | 'ó' | 'ø' => Some('o'),
            'é' | 'è' => Some('e'),
            'ü' => Some('u'),
            'ç' => Some('c'),
            'ł' | 'Ł' => Some('l'),
            'ą' | 'á' | 'Á' => Some('a'),
            'ś' => Some('s'),
            _ => None,
        })
        .collect()
}

// --- list traffic ---------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Mutt,
    Thunderbird,
    Gmail,
    Outlook,
    Notmuch,
    Evolution,
    Kmail,
    Bot,
}

struct Person {
    name: String,
    email: String,
    tz: i32,
    client: Client,
    git: &'static str,
    /// Sends patches with b4 rather than git send-email.
    b4: bool,
    /// PGP-signs replies.
    signs: bool,
}

impl Person {
    fn first(&self) -> &str {
        self.name.split(' ').next().unwrap_or(&self.name)
    }

    fn addr(&self) -> String {
        format!("{} <{}>", display_name(&self.name), self.email)
    }

    fn plain_addr(&self) -> String {
        format!("{} <{}>", self.name, self.email)
    }

    fn domain(&self) -> &str {
        self.email.split('@').nth(1).unwrap_or("example.org")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Cover,
    Patch,
    Reply,
    Report,
    Pull,
}

/// One mail as it goes into the archive.
struct Rendered {
    raw: Vec<u8>,
    id: String,
    name: String,
    email: String,
    date: i64,
    tz: i32,
    subject: String,
    kind: Kind,
}

/// A mail already sent, that others may answer.
struct Msg {
    id: String,
    refs: Vec<String>,
    subject: String,
    from: usize,
    date: i64,
    /// The plain text, for quoting.
    text: Rc<String>,
    kind: Kind,
    depth: u32,
    series: Option<Rc<Posted>>,
}

/// One version of a series, as posted.
struct Posted {
    version: u32,
    prefix: String,
    titles: Vec<String>,
    area: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PatchEnc {
    Plain,
    Qp,
    Attach,
}

/// A series across its versions.
struct SeriesCtx {
    t: usize,
    alias: Option<String>,
    author: usize,
    prefix: String,
    area: String,
    cover_title: String,
    blurb: String,
    enc: PatchEnc,
    maintainer: usize,
    reviewers: Vec<usize>,
    slug: String,
    /// A fix for a bug report: its reporter and Message-ID.
    report: Option<(usize, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RKind {
    Review,
    Trailer,
    Discuss,
    Short,
    Applied,
    Bot,
    Pulled,
}

enum Ev {
    NewThread,
    Series {
        ctx: Rc<SeriesCtx>,
        version: u32,
        prev: Option<Rc<Msg>>,
    },
    Reply {
        parent: Rc<Msg>,
        from: usize,
        kind: RKind,
    },
}

struct Item {
    at: i64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Item {
    /// Reversed: the heap pops the earliest event.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

const START: i64 = 1_704_067_200; // 2024-01-01
/// Simulated time before the archive starts.
const WARM_UP: i64 = 2 * 86_400;
const GIT_VERSIONS: &[&str] = &[
    "2.34.1", "2.39.5", "2.43.0", "2.45.2", "2.46.0", "2.47.1", "2.48.1",
];
const TIMEZONES: &[i32] = &[
    0, 60, 120, -420, -300, -240, 480, 330, 540, 60, 120, 0, 180, -180,
];

struct Bots {
    robot: usize,
    syzbot: usize,
    patchwork: usize,
    prtracker: usize,
    top: usize,
}

/// Simulated list traffic: threads start at random, replies come hours or
/// days later, series get resent, applied, built by bots.
struct Traffic {
    rng: Rng,
    tpl: Templates,
    people: Vec<Person>,
    humans: usize,
    maint: Vec<Vec<usize>>,
    bots: Bots,
    heap: BinaryHeap<Item>,
    seq: u64,
    serial: u64,
    out: std::collections::VecDeque<Rendered>,
    aliases: Vec<String>,
}

impl Traffic {
    fn new(tpl: Templates) -> Traffic {
        let mut rng = Rng::new(SEED ^ 0x7a_f1c);
        let mut people = Vec::new();
        let mut seen = HashSet::new();
        while people.len() < 400 {
            let first = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            if !seen.insert((first, last)) {
                continue;
            }
            let client = match rng.below(100) {
                0..25 => Client::Mutt,
                25..45 => Client::Thunderbird,
                45..60 => Client::Gmail,
                60..70 => Client::Outlook,
                70..80 => Client::Notmuch,
                80..90 => Client::Evolution,
                _ => Client::Kmail,
            };
            let (f, l) = (ascii_fold(first), ascii_fold(last));
            let email = if client == Client::Gmail {
                format!("{f}.{l}{}@gmail.example.com", rng.range(1, 99))
            } else {
                let domain = rng.pick(DOMAINS);
                match rng.below(3) {
                    0 => format!("{f}.{l}@{domain}"),
                    1 => format!("{f}@{domain}"),
                    _ => format!("{}{l}@{domain}", &f[..1]),
                }
            };
            let signs = matches!(client, Client::Mutt | Client::Notmuch | Client::Kmail)
                && rng.chance(0.25);
            people.push(Person {
                name: format!("{first} {last}"),
                email,
                tz: rng.pick(TIMEZONES),
                client,
                git: rng.pick(GIT_VERSIONS),
                b4: rng.chance(0.3),
                signs,
            });
        }
        let humans = people.len();
        let mut bot = |name: &str, email: String| {
            people.push(Person {
                name: name.to_string(),
                email,
                tz: 0,
                client: Client::Bot,
                git: "2.43.0",
                b4: false,
                signs: false,
            });
            people.len() - 1
        };
        let bots = Bots {
            robot: bot("kernel test robot", "lkp@example.com".into()),
            syzbot: bot("syzbot", "syzbot@syzkaller.example.com".into()),
            patchwork: bot(
                "patchwork-bot+netdevbpf",
                "patchwork-bot+netdevbpf@example.org".into(),
            ),
            prtracker: bot("pr-tracker-bot", "pr-tracker-bot@example.org".into()),
            top: 0,
        };
        let maint = COMPS
            .iter()
            .map(|_| {
                let mut m: Vec<usize> = (0..rng.range(1, 2)).map(|_| 1 + rng.below(60)).collect();
                m.dedup();
                m
            })
            .collect();
        let mut aliases = Vec::new();
        let mut names = HashSet::new();
        const SYL: &[&str] = &[
            "ka", "ri", "to", "ven", "dal", "mor", "si", "qua", "lex", "bri", "nor", "tal", "zen",
            "ov", "ar", "iss", "ul", "pe", "gor", "wyn", "fa", "cel", "dro", "mi", "su", "rax",
            "tem", "bel", "ko", "ny",
        ];
        while aliases.len() < 300 {
            let n: String = (0..rng.range(2, 3)).map(|_| rng.pick(SYL)).collect();
            if n.len() >= 4
                && !COMPS
                    .iter()
                    .any(|c| c.prefix.contains(&n) || n.contains(c.prefix))
                && names.insert(n.clone())
            {
                aliases.push(n);
            }
        }
        let mut t = Traffic {
            rng,
            tpl,
            people,
            humans,
            maint,
            bots,
            heap: BinaryHeap::new(),
            seq: 0,
            serial: 0,
            out: Default::default(),
            aliases,
        };
        t.schedule(START, Ev::NewThread);
        t
    }

    fn schedule(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Item {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn human(&mut self) -> usize {
        // A third of the traffic comes from the 60 most active people.
        if self.rng.chance(0.35) {
            1 + self.rng.below(60)
        } else {
            1 + self.rng.below(self.humans - 1)
        }
    }

    fn next_mail(&mut self) -> Rendered {
        loop {
            if let Some(m) = self.out.pop_front() {
                return m;
            }
            let it = self.heap.pop().expect("the traffic never runs dry");
            self.handle(it);
        }
    }

    fn handle(&mut self, it: Item) {
        match it.ev {
            Ev::NewThread => self.new_thread(it.at),
            Ev::Series { ctx, version, prev } => self.post_series(it.at, &ctx, version, prev),
            Ev::Reply { parent, from, kind } => self.reply(it.at, &parent, from, kind),
        }
    }

    /// Runs the list for a while without keeping its mails, so that the
    /// archive starts with the usual mix of patches and replies.
    fn warm_up(&mut self, until: i64) {
        while self.heap.peek().is_some_and(|it| it.at < until) {
            let it = self.heap.pop().expect("peeked");
            self.handle(it);
            self.out.clear();
        }
    }

    fn new_thread(&mut self, at: i64) {
        let gap = (self.rng.exp(170.0) as i64).max(3);
        self.schedule(at + gap, Ev::NewThread);
        let r = self.rng.unit();
        if r < 0.87 {
            let ctx = self.new_series(None, false);
            self.post_series(at, &ctx, 1, None);
        } else if r < 0.93 {
            self.post_report(at);
        } else if r < 0.96 {
            self.post_pull(at);
        } else {
            let ctx = self.new_series(None, true);
            self.post_series(at, &ctx, 1, None);
        }
    }

    fn alias_text(&self, ctx: &SeriesCtx, text: &str) -> String {
        match &ctx.alias {
            Some(a) => {
                let p = COMPS[self.tpl.series[ctx.t].comp].prefix;
                text.replace(p, a)
                    .replace(&p.to_uppercase(), &a.to_uppercase())
            }
            None => text.to_string(),
        }
    }

    fn new_series(&mut self, report: Option<(usize, String)>, attach: bool) -> Rc<SeriesCtx> {
        let single = attach || report.is_some();
        let t = loop {
            let t = self.rng.below(self.tpl.series.len());
            let s = &self.tpl.series[t];
            if !single || (s.patches.len() == 1 && s.cover.is_none()) {
                break t;
            }
        };
        let ci = self.tpl.series[t].comp;
        let c = &COMPS[ci];
        let alias =
            (c.alias && self.rng.chance(0.9)).then(|| self.rng.pick_ref(&self.aliases).clone());
        let author = self.human();
        let net = c.area.starts_with("net") || c.area.starts_with("wifi") || c.area == "tcp";
        let prefix = match self.rng.below(100) {
            0..70 => "PATCH".to_string(),
            70..80 if net => format!(
                "PATCH {}",
                if self.rng.chance(0.6) {
                    "net-next"
                } else {
                    "net"
                }
            ),
            70..80 => format!(
                "PATCH {}",
                self.rng.pick(&["for-next", "next", "fixes", "6.12"])
            ),
            80..88 => "RFC PATCH".to_string(),
            88..91 => "PATCH RFC".to_string(),
            91..95 => format!("PATCH {}", self.rng.pick(&["6.6.y", "6.1.y", "6.12.y"])),
            _ => "PATCH".to_string(),
        };
        let fl = Fill::new(c, &format!("{}_{}", c.prefix, self.rng.pick(VERBS)));
        let title = fill_any(
            &mut self.rng,
            &[
                "fix {n} handling",
                "{n} fixes",
                "cleanups and {n} rework",
                "convert to {h}()",
                "improve {n} error handling",
                "fix races in {n} teardown",
                "add {n} offload",
                "support for the {hw} revision C",
                "{n} and {n2} improvements",
            ],
            &fl,
        );
        let maintainer = self.rng.pick(&self.maint[ci]);
        let mut reviewers = self.maint[ci].clone();
        for _ in 0..self.rng.range(1, 4) {
            let h = self.human();
            reviewers.push(h);
        }
        reviewers.sort_unstable();
        reviewers.dedup();
        reviewers.retain(|&r| r != author);
        if reviewers.is_empty() {
            reviewers.push(maintainer);
        }
        let blurb_n = self.rng.range(1, 3);
        let blurb = paragraphs(&mut self.rng, BLURB_SENTENCES, blurb_n, &fl);
        let enc = if attach {
            PatchEnc::Attach
        } else if self.rng.chance(0.04) {
            PatchEnc::Qp
        } else {
            PatchEnc::Plain
        };
        let slug: String = title
            .split(|ch: char| !ch.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(4)
            .collect::<Vec<_>>()
            .join("-")
            .to_lowercase();
        let mut ctx = SeriesCtx {
            t,
            alias,
            author,
            prefix,
            area: String::new(),
            cover_title: String::new(),
            blurb,
            enc,
            maintainer,
            reviewers,
            slug,
            report,
        };
        ctx.area = self.alias_text(&ctx, c.area);
        ctx.cover_title = format!("{}: {}", ctx.area, self.alias_text(&ctx, &title));
        ctx.blurb = self.alias_text(&ctx, &ctx.blurb);
        Rc::new(ctx)
    }

    fn patch_msgid(
        &mut self,
        p: usize,
        at: i64,
        post: u64,
        k: usize,
        version: u32,
        slug: &str,
    ) -> String {
        let person = &self.people[p];
        let local = person.email.split('@').next().unwrap_or("dev");
        if person.b4 {
            let d = &stamp(at)[..8];
            format!(
                "{d}-{slug}-v{version}-{k}-{:016x}@{}",
                mix(post ^ 0xb4),
                person.domain()
            )
        } else {
            format!(
                "{}.{}-{k}-{local}@{}",
                stamp(at),
                1000 + post,
                person.domain()
            )
        }
    }

    fn reply_msgid(&mut self, p: usize, at: i64) -> String {
        let serial = self.next_serial();
        let tok = mix(serial ^ 0x05ee_d1d5);
        let person = &self.people[p];
        let domain = person.domain().to_string();
        match person.client {
            Client::Mutt => format!("<Z{}{}@{}>", base36(tok), self.rng.hex(3), domain),
            Client::Thunderbird => {
                let r = self.rng.next();
                format!(
                    "<{:08x}-{:04x}-{:04x}-{:04x}-{:012x}@{domain}>",
                    tok >> 32,
                    (tok >> 16) & 0xffff,
                    tok & 0xffff,
                    r >> 48,
                    r & 0xffff_ffff_ffff
                )
            }
            Client::Gmail => {
                let mut b = tok.to_be_bytes().to_vec();
                b.extend(self.rng.bytes(22));
                format!(
                    "<CA{}@mail.gmail.example.com>",
                    base64(&b).replace(['/', '+'], "_").trim_end_matches('=')
                )
            }
            Client::Outlook => {
                let host = format!(
                    "AM{}PR{:02}MB{}",
                    self.rng.range(0, 9),
                    self.rng.range(1, 9),
                    self.rng.range(1000, 9999)
                );
                format!(
                    "<{host}{:016X}@{host}.eurprd04.prod.outlook.example.com>",
                    tok
                )
            }
            Client::Notmuch => format!("<87{}.fsf@{domain}>", base36(tok)),
            Client::Evolution => format!("<{:016x}{}.camel@{domain}>", tok, self.rng.hex(24)),
            Client::Kmail => format!(
                "<{}.{}@{domain}>",
                self.rng.range(1_000_000, 9_999_999),
                base36(tok)
            ),
            Client::Bot => format!(
                "<{}.{:016x}-{}@{domain}>",
                stamp(at),
                tok,
                self.rng.range(1, 9)
            ),
        }
    }

    fn post_series(&mut self, at: i64, ctx: &Rc<SeriesCtx>, version: u32, prev: Option<Rc<Msg>>) {
        let st = &self.tpl.series[ctx.t];
        let cover = st.cover.clone();
        let patches: Vec<(String, String)> = st
            .patches
            .iter()
            .map(|p| (p.title.clone(), p.body.clone()))
            .collect();
        let n = patches.len();
        let post = self.next_serial();
        let width = n.to_string().len();
        let ver = if version > 1 {
            format!(" v{version}")
        } else {
            String::new()
        };
        let root_k = usize::from(cover.is_none());
        let tag = |k: usize| {
            if n == 1 && root_k == 1 {
                format!("[{}{ver}]", ctx.prefix)
            } else {
                format!("[{}{ver} {k:0width$}/{n}]", ctx.prefix)
            }
        };
        let ids: Vec<String> = (0..=n)
            .map(|k| {
                format!(
                    "<{}>",
                    self.patch_msgid(ctx.author, at, post, k, version, &ctx.slug)
                )
            })
            .collect();
        let root_id = ids[root_k].clone();
        let base_refs: Vec<String> = prev
            .as_ref()
            .map(|p| {
                let mut r = p.refs.clone();
                r.push(p.id.clone());
                r
            })
            .unwrap_or_default();
        let titles: Vec<String> = patches
            .iter()
            .map(|(t, _)| self.alias_text(ctx, t))
            .collect();
        let posted = Rc::new(Posted {
            version,
            prefix: ctx.prefix.clone(),
            titles: titles.clone(),
            area: ctx.area.clone(),
        });
        let mut msgs = Vec::new();
        for k in root_k..=n {
            let date = at + (k - root_k) as i64;
            let (irt, refs) = if k == root_k {
                (prev.as_ref().map(|p| p.id.clone()), base_refs.clone())
            } else {
                let mut r = base_refs.clone();
                r.push(root_id.clone());
                (Some(root_id.clone()), r)
            };
            let title = if k == 0 {
                ctx.cover_title.clone()
            } else {
                titles[k - 1].clone()
            };
            let subject = format!("{} {title}", tag(k));
            let text = if k == 0 {
                self.cover_text(
                    cover.as_deref().unwrap_or_default(),
                    ctx,
                    version,
                    prev.as_deref(),
                )
            } else {
                self.patch_text(&patches[k - 1].1, ctx, version)
            };
            let kind = if k == 0 { Kind::Cover } else { Kind::Patch };
            let raw = self.render_patch(
                ctx,
                date,
                &ids[k],
                irt.as_deref(),
                &refs,
                &subject,
                &text,
                k,
                n,
            );
            let p = &self.people[ctx.author];
            self.out.push_back(Rendered {
                raw,
                id: ids[k].clone(),
                name: p.name.clone(),
                email: p.email.clone(),
                date,
                tz: p.tz,
                subject: subject.clone(),
                kind,
            });
            msgs.push(Rc::new(Msg {
                id: ids[k].clone(),
                refs,
                subject,
                from: ctx.author,
                date,
                text: Rc::new(text),
                kind,
                depth: 0,
                series: Some(posted.clone()),
            }));
        }
        // Reviews.
        for m in &msgs {
            let mean = match m.kind {
                Kind::Cover => 0.9,
                _ if n > 8 => 0.3,
                _ => 0.6,
            };
            while self.rng.chance(mean / (1.0 + mean)) {
                let from = if self.rng.chance(0.7) {
                    self.rng.pick(&ctx.reviewers)
                } else {
                    self.human()
                };
                let kind = match (m.kind, self.rng.below(100)) {
                    (Kind::Cover, 0..45) => RKind::Trailer,
                    (Kind::Cover, 45..85) => RKind::Discuss,
                    (Kind::Cover, _) => RKind::Short,
                    (_, 0..50) => RKind::Review,
                    (_, 50..85) => RKind::Trailer,
                    (_, 85..92) => RKind::Short,
                    _ => RKind::Discuss,
                };
                let delay = 120 + self.rng.exp(8.0 * 3600.0) as i64;
                self.schedule(
                    m.date + delay,
                    Ev::Reply {
                        parent: m.clone(),
                        from,
                        kind,
                    },
                );
            }
        }
        let root = msgs[0].clone();
        if version < 6 && self.rng.chance(if version == 1 { 0.3 } else { 0.22 }) {
            let later = at + 86_400 * self.rng.range(2, 14) as i64 + self.rng.below(86_400) as i64;
            let prev = self.rng.chance(0.3).then(|| root.clone());
            self.schedule(
                later,
                Ev::Series {
                    ctx: ctx.clone(),
                    version: version + 1,
                    prev,
                },
            );
        } else if self.rng.chance(0.5) {
            let later = at + 86_400 * self.rng.range(1, 12) as i64 + self.rng.below(86_400) as i64;
            let from = if self.rng.chance(0.3) {
                self.bots.patchwork
            } else {
                ctx.maintainer
            };
            self.schedule(
                later,
                Ev::Reply {
                    parent: root.clone(),
                    from,
                    kind: RKind::Applied,
                },
            );
        }
        if self.rng.chance(0.05) {
            let m = self.rng.pick_ref(&msgs).clone();
            let later = at + 3600 * self.rng.range(4, 40) as i64;
            self.schedule(
                later,
                Ev::Reply {
                    parent: m,
                    from: self.bots.robot,
                    kind: RKind::Bot,
                },
            );
        }
    }

    fn person_text(&mut self) -> String {
        let p = self.human();
        self.people[p].plain_addr()
    }

    fn patch_text(&mut self, body: &str, ctx: &SeriesCtx, version: u32) -> String {
        let author = self.people[ctx.author].plain_addr();
        let sob = format!("Signed-off-by: {AUTHOR_PLACEHOLDER} <{AUTHOR_EMAIL_PLACEHOLDER}>");
        let mut s = body.replace("GITVERSION", self.people[ctx.author].git);
        if s.contains("REPORTER") {
            let r = self.person_text();
            s = s.replacen("REPORTER", &r, 1);
            let id = format!("{}.{}@example.com", stamp(START), self.rng.hex(10));
            s = s.replacen("REPORTID", &id, 1);
        }
        if s.contains("SUGGESTER") {
            let r = self.person_text();
            s = s.replacen("SUGGESTER", &r, 1);
        }
        let mut extra = String::new();
        if let Some((reporter, id)) = &ctx.report {
            let _ = writeln!(
                extra,
                "Reported-by: {}",
                self.people[*reporter].plain_addr()
            );
            let _ = writeln!(
                extra,
                "Closes: https://lore.example.org/r/{}/",
                id.trim_matches(['<', '>'])
            );
        }
        if version > 1 {
            for _ in 0..self.rng.range(0, 2) {
                let r = self.rng.pick(&ctx.reviewers);
                let tag = self
                    .rng
                    .pick(&["Reviewed-by", "Reviewed-by", "Acked-by", "Tested-by"]);
                let _ = writeln!(extra, "{tag}: {}", self.people[r].plain_addr());
            }
        }
        if !extra.is_empty() {
            s = s.replacen(&sob, &format!("{extra}{sob}"), 1);
        }
        if version > 1
            && self.rng.chance(0.7)
            && let Some(i) = s.find("\n---\n")
        {
            let fl = Fill::plain(COMPS[self.tpl.series[ctx.t].comp].prefix, "probe");
            let mut log = String::new();
            for v in (2..=version).rev() {
                let _ = writeln!(
                    log,
                    "{}",
                    if self.rng.chance(0.5) {
                        format!("Changes in v{v}:")
                    } else {
                        format!("v{} -> v{v}:", v - 1)
                    }
                );
                for _ in 0..self.rng.range(1, 3) {
                    let item = fill_any(&mut self.rng, CHANGE_ITEMS, &fl);
                    let _ = writeln!(log, "- {item}");
                }
                log.push('\n');
            }
            s.insert_str(i + 5, &log);
        }
        let s = s.replace(&sob, &format!("Signed-off-by: {author}"));
        self.alias_text(ctx, &s)
    }

    fn cover_text(
        &mut self,
        body: &str,
        ctx: &SeriesCtx,
        version: u32,
        prev: Option<&Msg>,
    ) -> String {
        let p = &self.people[ctx.author];
        let mut blurb = ctx.blurb.clone();
        if version > 1 {
            let fl = Fill::plain(COMPS[self.tpl.series[ctx.t].comp].prefix, "probe");
            let _ = writeln!(blurb, "\nChanges in v{version}:");
            for _ in 0..self.rng.range(1, 4) {
                let item = fill_any(&mut self.rng, CHANGE_ITEMS, &fl);
                let _ = writeln!(blurb, "- {item}");
            }
            if let Some(prev) = prev {
                let _ = writeln!(
                    blurb,
                    "- Link to v{}: https://lore.example.org/r/{}",
                    version - 1,
                    prev.id.trim_matches(['<', '>'])
                );
            }
        }
        let s = body
            .replace("*** BLURB HERE ***\n", &blurb)
            .replace(AUTHOR_PLACEHOLDER, &p.name)
            .replace("GITVERSION", p.git);
        self.alias_text(ctx, &s)
    }

    #[allow(clippy::too_many_arguments)]
    fn render_patch(
        &mut self,
        ctx: &SeriesCtx,
        date: i64,
        id: &str,
        irt: Option<&str>,
        refs: &[String],
        subject: &str,
        text: &str,
        k: usize,
        n: usize,
    ) -> Vec<u8> {
        let mut h = String::with_capacity(text.len() + 4096);
        let p = ctx.author;
        self.transport(&mut h, p, date);
        let person = &self.people[p];
        let to = format!("{}, {LIST_ADDR}", self.people[ctx.maintainer].addr());
        let mut cc: Vec<String> = ctx
            .reviewers
            .iter()
            .filter(|&&r| r != ctx.maintainer)
            .map(|&r| self.people[r].addr())
            .collect();
        cc.push("linux-kernel@vger.example.org".to_string());
        let cc = cc.join(", ");
        let date_s = rfc_date(date, person.tz, !person.b4);
        let refs_s = refs.join("\n ");
        let ascii = text.is_ascii();
        let (ctype, cte, body) = match ctx.enc {
            PatchEnc::Plain => (
                (!ascii || person.b4).then_some("text/plain; charset=\"utf-8\"".to_string()),
                if ascii { "7bit" } else { "8bit" }.to_string(),
                text.to_string(),
            ),
            PatchEnc::Qp => (
                Some("text/plain; charset=UTF-8".to_string()),
                "quoted-printable".to_string(),
                qp_encode(text),
            ),
            PatchEnc::Attach => {
                let b = format!("------------{}", self.rng.hex(24));
                let file = format!(
                    "0001-{}.patch",
                    subject
                        .rsplit("] ")
                        .next()
                        .unwrap_or("fix")
                        .chars()
                        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                        .collect::<String>()
                        .chars()
                        .take(52)
                        .collect::<String>()
                );
                let patch = format!(
                    "From {} Mon Sep 17 00:00:00 2001\nFrom: {}\nDate: {}\nSubject: [PATCH] {}\n\n{}",
                    self.rng.hex(40),
                    person.addr(),
                    rfc_date(date - 3600, person.tz, false),
                    subject.rsplit("] ").next().unwrap_or(subject),
                    text
                );
                let (pcte, pbody) = if self.rng.chance(0.5) {
                    ("base64", base64_lines(patch.as_bytes(), 76))
                } else {
                    (if patch.is_ascii() { "7bit" } else { "8bit" }, patch)
                };
                let ptype = self.rng.pick(&[
                    "text/x-patch",
                    "text/x-patch",
                    "text/x-diff",
                    "application/octet-stream",
                ]);
                let intro = format!(
                    "Hi,\n\nthe attached patch fixes the problem we discussed; I could not get\nmy mailer to send it inline, sorry.\n\nThanks,\n{}\n",
                    person.first()
                );
                let body = format!(
                    "This is a multi-part message in MIME format.\n--{b}\nContent-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 7bit\n\n{intro}\n--{b}\nContent-Type: {ptype}; charset=UTF-8; name=\"{file}\"\nContent-Disposition: attachment; filename=\"{file}\"\nContent-Transfer-Encoding: {pcte}\n\n{pbody}\n--{b}--\n"
                );
                (
                    Some(format!("multipart/mixed; boundary=\"{b}\"")),
                    "7bit".to_string(),
                    body,
                )
            }
        };
        if person.b4 && ctx.enc != PatchEnc::Attach {
            header(&mut h, "From", &person.addr());
            h.push_str(&format!("Date: {date_s}\n"));
            header(&mut h, "Subject", subject);
            h.push_str("MIME-Version: 1.0\n");
            h.push_str(&format!(
                "Content-Type: {}\n",
                ctype.unwrap_or_else(|| "text/plain; charset=\"utf-8\"".into())
            ));
            h.push_str(&format!("Content-Transfer-Encoding: {cte}\n"));
            h.push_str(&format!("Message-Id: {id}\n"));
            if !refs.is_empty() {
                h.push_str(&format!("References: {refs_s}\n"));
            }
            if let Some(irt) = irt {
                h.push_str(&format!("In-Reply-To: {irt}\n"));
            }
            header(&mut h, "To", &to);
            header(&mut h, "Cc", &cc);
            h.push_str("X-Mailer: b4 0.14.2\n");
            let _ = writeln!(
                h,
                "X-Developer-Signature: v=1; a=openpgp-sha256; l={}; i={};\n h=from:subject:message-id; bh={}\n b={}",
                text.len(),
                base64(&self.rng.bytes(15)),
                base64(&self.rng.bytes(32)),
                base64(&self.rng.bytes(64))
            );
            let _ = writeln!(
                h,
                "X-Developer-Key: i={}; a=openpgp;\n fpr={}",
                person.email,
                self.rng.hex(40).to_uppercase()
            );
        } else {
            header(&mut h, "From", &person.addr());
            header(&mut h, "To", &to);
            header(&mut h, "Cc", &cc);
            header(&mut h, "Subject", subject);
            h.push_str(&format!("Date: {date_s}\n"));
            h.push_str(&format!("Message-Id: {id}\n"));
            h.push_str(&format!("X-Mailer: git-send-email {}\n", person.git));
            if let Some(irt) = irt {
                h.push_str(&format!("In-Reply-To: {irt}\n"));
            }
            if !refs.is_empty() {
                h.push_str(&format!("References: {refs_s}\n"));
            }
            h.push_str("MIME-Version: 1.0\n");
            if let Some(ct) = ctype {
                h.push_str(&format!("Content-Type: {ct}\n"));
            }
            h.push_str(&format!("Content-Transfer-Encoding: {cte}\n"));
        }
        let _ = (k, n);
        self.list_headers(&mut h);
        h.push('\n');
        h.push_str(&body);
        h.into_bytes()
    }

    /// The headers that the list server and lore's intake add on top.
    fn transport(&mut self, h: &mut String, p: usize, at: i64) {
        let arrive = at + self.rng.range(1, 40) as i64;
        let d_utc = format!("{} (UTC)", rfc_date(arrive, 0, true));
        let domain = self.people[p].domain().to_string();
        let host = format!(
            "mail-{}{}.{domain}",
            self.rng.pick(&["ej1-f", "wm1-f", "pl1-f", "lf1-f", "out-"]),
            self.rng.range(10, 199)
        );
        let ip = format!(
            "{}.{}",
            self.rng.pick(&["198.51.100", "203.0.113", "192.0.2"]),
            self.rng.range(1, 254)
        );
        let _ = writeln!(
            h,
            "Received: from smtp.subspace.example.org (smtp.subspace.example.org [192.0.2.201])\n\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))\n\t(No client certificate requested)\n\tby lore.example.org (Postfix) with ESMTPS id {}\n\tfor <{LIST_ADDR}>; {d_utc}",
            self.rng.hex(10).to_uppercase()
        );
        if self.people[p].client != Client::Bot && self.rng.chance(0.6) {
            let _ = writeln!(
                h,
                "ARC-Seal: i=1; a=rsa-sha256; d=subspace.example.org;\n\ts=arc-20240116; t={arrive}; cv=none;\n\tb={}",
                folded_b64(&mut self.rng, 256)
            );
            let _ = writeln!(
                h,
                "ARC-Message-Signature: i=1; a=rsa-sha256; d=subspace.example.org;\n\ts=arc-20240116; t={arrive}; c=relaxed/simple;\n\tbh={};\n\th=From:To:Cc:Subject:Date:Message-ID:MIME-Version; b={}",
                base64(&self.rng.bytes(32)),
                folded_b64(&mut self.rng, 256)
            );
            let _ = writeln!(
                h,
                "ARC-Authentication-Results: i=1; smtp.subspace.example.org; dmarc=pass (p=none dis=none) header.from={domain}; spf=pass smtp.mailfrom={domain}; dkim=pass (2048-bit key) header.d={domain} header.i=@{domain} header.b=\"{}\"",
                &base64(&self.rng.bytes(6))
            );
        }
        let _ = writeln!(
            h,
            "Authentication-Results: smtp.subspace.example.org;\n\tdkim=pass (2048-bit key) header.d={domain} header.i=@{domain} header.b=\"{}\"",
            &base64(&self.rng.bytes(6))
        );
        let _ = writeln!(
            h,
            "Received: from {host} ({host} [{ip}])\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n\t(No client certificate requested)\n\tby smtp.subspace.example.org (Postfix) with ESMTPS id {}\n\tfor <{LIST_ADDR}>; {d_utc}",
            self.rng.hex(10).to_uppercase()
        );
        let _ = writeln!(
            h,
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain};\n\ts={}; t={at}; bh={};\n\th=From:To:Cc:Subject:Date:Message-ID:MIME-Version:From:Subject;\n\tb={}",
            self.rng
                .pick(&["20230601", "k20201202", "google", "selector1", "mail"]),
            base64(&self.rng.bytes(32)),
            folded_b64(&mut self.rng, 256)
        );
    }

    fn list_headers(&mut self, h: &mut String) {
        let _ = writeln!(
            h,
            "X-Mailing-List: {LIST_ADDR}\nList-Id: <{LIST}.lists.example.org>\nList-Subscribe: <mailto:{LIST}+subscribe@lists.example.org>\nList-Unsubscribe: <mailto:{LIST}+unsubscribe@lists.example.org>\nPrecedence: bulk"
        );
    }

    fn attribution(&self, me: usize, parent: &Msg) -> Option<String> {
        let pp = &self.people[parent.from];
        let t = tm(parent.date, pp.tz);
        let (h12, ampm) = match t.h {
            0 => (12, "AM"),
            1..12 => (t.h, "AM"),
            12 => (12, "PM"),
            _ => (t.h - 12, "PM"),
        };
        Some(match self.people[me].client {
            Client::Mutt | Client::Bot => format!(
                "On {}, {} {:02}, {} at {:02}:{:02}:{:02}{ampm} {}, {} wrote:",
                DAYS[t.wd],
                MONTHS[t.mo],
                t.d,
                t.y,
                h12,
                t.mi,
                t.s,
                tz_str(pp.tz),
                pp.name
            ),
            Client::Thunderbird => format!(
                "On {}/{}/{} {:02}:{:02}, {} wrote:",
                t.mo + 1,
                t.d,
                t.y % 100,
                t.h,
                t.mi,
                pp.name
            ),
            Client::Gmail => format!(
                "On {}, {} {}, {} at {}:{:02} {ampm} {} <{}> wrote:",
                DAYS[t.wd], MONTHS[t.mo], t.d, t.y, h12, t.mi, pp.name, pp.email
            ),
            Client::Outlook => return None,
            Client::Notmuch => format!("{} <{}> writes:", pp.name, pp.email),
            Client::Evolution => format!(
                "On {}, {}-{:02}-{:02} at {:02}:{:02} {}, {} wrote:",
                DAYS[t.wd],
                t.y,
                t.mo + 1,
                t.d,
                t.h,
                t.mi,
                tz_str(pp.tz),
                pp.name
            ),
            Client::Kmail => format!(
                "On {} {} {} {} {:02}:{:02}:{:02} {} {} wrote:",
                DAYS[t.wd],
                t.d,
                MONTHS[t.mo],
                t.y,
                t.h,
                t.mi,
                t.s,
                tz_str(pp.tz),
                pp.name
            ),
        })
    }

    fn signature(&mut self, me: usize) -> String {
        let p = &self.people[me];
        match self.rng.below(5) {
            0 => format!("\n-- \n{}\n", p.name),
            1 => format!("\nThanks,\n{}\n", p.first()),
            2 => format!("\nRegards,\n{}\n", p.name),
            3 => format!("\n-- \nCheers,\n{}\n", p.first()),
            _ => format!("\n{}\n", p.first()),
        }
    }

    fn reply_text(&mut self, me: usize, parent: &Msg, kind: RKind) -> String {
        let comp_prefix = parent
            .series
            .as_ref()
            .map_or("drv", |s| s.area.rsplit(": ").next().unwrap_or("drv"))
            .to_string();
        let fl = Fill::plain(
            &comp_prefix,
            &format!("{comp_prefix}_{}", self.rng.pick(VERBS)),
        );
        let attribution = self.attribution(me, parent);
        let lines: Vec<&str> = parent.text.lines().collect();
        let mut out = String::new();
        let outlook = attribution.is_none();
        if let Some(a) = &attribution {
            out.push_str(a);
            out.push('\n');
        }
        let me_addr = self.people[me].plain_addr();
        match kind {
            RKind::Review if !outlook => {
                let big = parent.text.len() > 20_000;
                let cands: Vec<usize> = lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.starts_with('+') && !l.starts_with("+++"))
                    .map(|(i, _)| i)
                    .collect();
                let mut points: Vec<usize> = (0..self.rng.range(1, 3))
                    .map(|_| {
                        if cands.is_empty() {
                            self.rng.below(lines.len().max(1))
                        } else {
                            self.rng.pick(&cands)
                        }
                    })
                    .collect();
                points.sort_unstable();
                points.dedup();
                let mut pos = 0;
                for pt in points {
                    if pt >= lines.len() {
                        continue;
                    }
                    if big || self.rng.chance(0.35) {
                        let from = pt.saturating_sub(self.rng.range(2, 8)).max(pos);
                        if from > pos {
                            out.push_str(self.rng.pick(&[
                                "\n[...]\n\n",
                                "\n[ ... ]\n\n",
                                "\n<snip>\n\n",
                                "\n",
                            ]));
                        }
                        quote_into(&mut out, &lines[from..=pt]);
                    } else {
                        quote_into(&mut out, &lines[pos..=pt]);
                    }
                    out.push('\n');
                    let n = self.rng.range(1, 3);
                    for l in wrap(&sentences(&mut self.rng, REVIEW_SENTENCES, n, &fl), 72) {
                        out.push_str(&l);
                        out.push('\n');
                    }
                    out.push('\n');
                    pos = pt + 1;
                }
                if !big && pos < lines.len() && self.rng.chance(0.3) {
                    quote_into(&mut out, &lines[pos..]);
                }
                if self.rng.chance(0.25) {
                    let _ = write!(out, "\nWith that fixed:\n\nReviewed-by: {me_addr}\n");
                }
            }
            RKind::Trailer | RKind::Review => {
                let n = self.rng.range(3, 12).min(lines.len());
                if !outlook {
                    quote_into(&mut out, &lines[..n]);
                    if n < lines.len() {
                        out.push_str(self.rng.pick(&["\n[...]\n", "\n...\n", "\n"]));
                    }
                }
                out.push('\n');
                if parent.kind == Kind::Cover && self.rng.chance(0.5) {
                    out.push_str("For the series:\n\n");
                } else if self.rng.chance(0.3) {
                    out.push_str(self.rng.pick(&[
                        "Looks good to me.\n\n",
                        "LGTM.\n\n",
                        "Nice cleanup.\n\n",
                        "Thanks for fixing this.\n\n",
                    ]));
                }
                let tag = self.rng.pick(&[
                    "Reviewed-by",
                    "Reviewed-by",
                    "Reviewed-by",
                    "Acked-by",
                    "Acked-by",
                    "Tested-by",
                ]);
                let _ = writeln!(out, "{tag}: {me_addr}");
                if tag == "Tested-by" && self.rng.chance(0.5) {
                    let _ = writeln!(out, "# on {}", fill(&mut self.rng, "{hw}", &fl));
                }
            }
            RKind::Discuss | RKind::Short => {
                let own: Vec<&str> = lines
                    .iter()
                    .copied()
                    .filter(|l| !l.ends_with("wrote:") && !l.ends_with("writes:"))
                    .collect();
                let chunks = if kind == RKind::Short {
                    1
                } else {
                    self.rng.range(1, 2)
                };
                let mut pos = 0;
                for _ in 0..chunks {
                    if !outlook && pos < own.len() {
                        let start = pos + self.rng.below((own.len() - pos).min(6));
                        let len = self.rng.range(2, 10).min(own.len() - start);
                        quote_into(&mut out, &own[start..start + len]);
                        out.push('\n');
                        pos = start + len;
                    }
                    let pool = if kind == RKind::Short {
                        &[
                            "Thanks!",
                            "Thanks, queued.",
                            "Ping?",
                            "Any comments on this one?",
                            "Makes sense to me.",
                        ][..]
                    } else {
                        DISCUSS_SENTENCES
                    };
                    let n = if kind == RKind::Short {
                        1
                    } else {
                        self.rng.range(1, 4)
                    };
                    for l in wrap(&sentences(&mut self.rng, pool, n, &fl), 72) {
                        out.push_str(&l);
                        out.push('\n');
                    }
                    out.push('\n');
                }
            }
            RKind::Applied => return self.applied_text(me, parent),
            RKind::Bot => return self.bot_text(parent),
            RKind::Pulled => {
                let t = tm(parent.date, 0);
                let _ = write!(
                    out,
                    "The pull request you sent on {}, {} {} {} {:02}:{:02}:{:02} {}:\n\n> git://git.example.org/pub/scm/linux/kernel/git/{}.git tags/for-linus\n\nhas been merged into torvalds/linux.git:\nhttps://git.example.org/torvalds/c/{}\n\nThank you!\n\n-- \nDeet-doot-dot, I am a bot.\nhttps://korg.docs.example.org/prtracker.html\n",
                    DAYS[t.wd],
                    t.d,
                    MONTHS[t.mo],
                    t.y,
                    t.h,
                    t.mi,
                    t.s,
                    tz_str(0),
                    self.people[parent.from]
                        .email
                        .split('@')
                        .next()
                        .unwrap_or("x"),
                    self.rng.hex(40)
                );
                return out;
            }
        }
        let sig = self.signature(me);
        out.push_str(&sig);
        if outlook {
            let pp = &self.people[parent.from];
            let _ = write!(
                out,
                "\n-----Original Message-----\nFrom: {} <{}>\nSent: {}\nTo: {LIST_ADDR}\nSubject: {}\n\n{}",
                pp.name,
                pp.email,
                rfc_date(parent.date, pp.tz, false),
                parent.subject,
                &parent.text[..floor_char(&parent.text, 6000)]
            );
        }
        out
    }

    fn applied_text(&mut self, me: usize, parent: &Msg) -> String {
        let Some(s) = parent.series.clone() else {
            return "Applied, thanks!\n".to_string();
        };
        let n = s.titles.len();
        let width = n.to_string().len();
        let mut out = String::new();
        if me == self.bots.patchwork {
            let tree = if s.prefix.contains("net") {
                "netdev/net-next.git (main)"
            } else {
                "netdev/net.git (main)"
            };
            let m = &self.people[self.rng.pick(&self.maint[0])];
            let _ = write!(
                out,
                "Hello:\n\nThis series was applied to {tree}\nby {} <{}>:\n\nOn {} you wrote:\n",
                m.name,
                m.email,
                rfc_date(parent.date, 0, false)
            );
            for l in parent.text.lines().take(3) {
                let _ = writeln!(out, "> {l}");
            }
            out.push_str("\nHere is the summary with links:\n");
            for (i, t) in s.titles.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  - [{},{:0width$}/{n}] {t}\n    https://git.example.org/netdev/net-next/c/{}",
                    s.prefix.replace("PATCH ", ""),
                    i + 1,
                    self.rng.hex(12)
                );
            }
            out.push_str("\nYou are awesome, thank you!\n-- \nDeet-doot-dot, I am a bot.\nhttps://korg.docs.example.org/prtracker.html\n");
        } else {
            let a = self.attribution(me, parent).unwrap_or_default();
            let _ = writeln!(out, "{a}");
            for l in parent.text.lines().take(4) {
                let _ = writeln!(out, "> {l}");
            }
            let _ = write!(
                out,
                "\nApplied to {}, thanks!\n\n",
                self.rng.pick(&[
                    "for-next",
                    "the fixes branch",
                    "next",
                    "char-misc-next",
                    "drm-misc-next"
                ])
            );
            for (i, t) in s.titles.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "[{:0width$}/{n}] {t}\n      commit: {}",
                    i + 1,
                    self.rng.hex(12)
                );
            }
            let p = &self.people[me];
            let _ = write!(out, "\nBest regards,\n-- \n{} <{}>\n", p.name, p.email);
        }
        let _ = s.version;
        out
    }

    fn bot_text(&mut self, parent: &Msg) -> String {
        let author = &self.people[parent.from];
        let file = parent
            .text
            .lines()
            .find_map(|l| l.strip_prefix("+++ b/"))
            .unwrap_or("drivers/misc/dummy.c")
            .to_string();
        let code: Vec<String> = parent
            .text
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .take(30)
            .map(|l| l[1..].to_string())
            .collect();
        let line = self.rng.range(40, 900);
        let kind = if self.rng.chance(0.6) {
            "warnings"
        } else {
            "errors"
        };
        let mut out = format!(
            "Hi {},\n\nkernel test robot noticed the following build {kind}:\n\n[auto build test {} on {}/master]\n[also build test {} on linus/master v6.{}-rc{}]\n[If your patch is applied to the wrong git tree, kindly drop us a note.\nAnd when submitting patch, we suggest to use '--base' as documented in\nhttps://git-scm.example.org/docs/git-format-patch#_base_tree_information]\n\n",
            author.first(),
            kind.trim_end_matches('s').to_uppercase(),
            self.rng.pick(TREES).replace(' ', "-"),
            kind.trim_end_matches('s').to_uppercase(),
            self.rng.range(8, 13),
            self.rng.range(1, 7)
        );
        let d = &stamp(parent.date)[..8];
        let _ = write!(
            out,
            "url:    https://github.example.com/intel-lab-lkp/linux/commits/{}/{}\nbase:   {}\npatch link:    https://lore.example.org/r/{}\npatch subject: {}\nconfig: {}-randconfig-{:03}-{d} (https://download.example.org/0day-ci/archive/{d}/config)\ncompiler: {}\nreproduce (this is a W=1 build): (https://download.example.org/0day-ci/archive/{d}/reproduce)\n\n",
            author.name.replace(' ', "-"),
            self.rng.hex(12),
            self.rng.hex(40),
            parent.id.trim_matches(['<', '>']),
            parent
                .subject
                .rsplit("] ")
                .next()
                .unwrap_or(&parent.subject),
            self.rng
                .pick(&["x86_64", "arm64", "i386", "riscv", "powerpc", "s390"]),
            self.rng.range(1, 999),
            self.rng.pick(&[
                "clang version 19.1.3 (https://github.example.com/llvm/llvm-project ab51eccf88f5)",
                "gcc-14 (Debian 14.2.0-8) 14.2.0",
                "gcc-12 (Debian 12.2.0-14) 12.2.0"
            ])
        );
        let _ = write!(
            out,
            "If you fix the issue in a separate patch/commit (i.e. not just a new version of\nthe same patch/commit), kindly add following tags\n| Reported-by: kernel test robot <lkp@example.com>\n| Closes: https://lore.example.org/oe-kbuild-all/{}-lkp@example.com/\n\nAll {kind} (new ones prefixed by >>):\n\n>> {file}:{line}:{}: {}: variable 'ret' set but not used [-Wunused-but-set-variable]\n     {line} |         int ret;\n          |             ^\n\n\nvim +/ret +{line} {file}\n\n",
            stamp(parent.date),
            self.rng.range(2, 40),
            kind.trim_end_matches('s')
        );
        for (i, l) in code.iter().enumerate() {
            let _ = writeln!(out, "  {:4}  {l}", line - 10 + i);
        }
        out.push_str("\n-- \n0-DAY CI Kernel Test Service\nhttps://github.example.com/intel/lkp-tests/wiki\n");
        out
    }

    fn reply(&mut self, at: i64, parent: &Rc<Msg>, from: usize, kind: RKind) {
        let text = self.reply_text(from, parent, kind);
        let id = self.reply_msgid(from, at);
        let mut refs = parent.refs.clone();
        refs.push(parent.id.clone());
        let base = parent
            .subject
            .trim_start_matches("Re: ")
            .trim_start_matches("RE: ")
            .trim_start_matches("Re: ");
        let subject = if self.people[from].client == Client::Outlook {
            format!("RE: {base}")
        } else {
            format!("Re: {base}")
        };
        let raw = self.render_reply(from, at, &id, parent, &refs, &subject, &text);
        let p = &self.people[from];
        self.out.push_back(Rendered {
            raw,
            id: id.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            date: at,
            tz: p.tz,
            subject: subject.clone(),
            kind: Kind::Reply,
        });
        let depth = parent.depth + 1;
        let msg = Rc::new(Msg {
            id,
            refs,
            subject,
            from,
            date: at,
            text: Rc::new(text),
            kind: Kind::Reply,
            depth,
            series: parent.series.clone(),
        });
        let p_follow = match kind {
            RKind::Review | RKind::Discuss => {
                [0.0, 0.55, 0.42, 0.32, 0.24, 0.16, 0.1][depth.min(6) as usize]
            }
            RKind::Trailer | RKind::Short => 0.08,
            RKind::Bot => 0.3,
            _ => 0.0,
        };
        if self.rng.chance(p_follow) {
            let responder = if self.rng.chance(0.65) && parent.from < self.humans {
                parent.from
            } else {
                self.human()
            };
            if responder != from {
                let delay = 300 + self.rng.exp(5.0 * 3600.0) as i64;
                self.schedule(
                    at + delay,
                    Ev::Reply {
                        parent: msg,
                        from: responder,
                        kind: RKind::Discuss,
                    },
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn render_reply(
        &mut self,
        me: usize,
        at: i64,
        id: &str,
        parent: &Msg,
        refs: &[String],
        subject: &str,
        text: &str,
    ) -> Vec<u8> {
        let mut h = String::with_capacity(text.len() + 4096);
        self.transport(&mut h, me, at);
        let to = self.people[parent.from].addr();
        let mut cc = vec![LIST_ADDR.to_string()];
        if parent.series.is_some() && self.rng.chance(0.6) {
            for _ in 0..self.rng.range(1, 4) {
                let h = self.human();
                cc.push(self.people[h].addr());
            }
        }
        let p = &self.people[me];
        let client = p.client;
        let cc = cc.join(", ");
        let date_s = rfc_date(at, p.tz, false);
        let refs_s = refs.join("\n ");
        let ascii = text.is_ascii();
        let charset = if ascii { "us-ascii" } else { "utf-8" };
        let (content, body) = match client {
            Client::Gmail if self.rng.chance(0.6) => alternative(&mut self.rng, text, "000000000000", true),
            Client::Outlook if self.rng.chance(0.5) => alternative(&mut self.rng, text, "_000_", false),
            Client::Outlook => (
                "Content-Type: text/plain; charset=\"us-ascii\"\nContent-Transfer-Encoding: quoted-printable\n".to_string(),
                qp_encode(text),
            ),
            Client::Thunderbird => (
                format!("Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: {}\n", if ascii { "7bit" } else { "8bit" }),
                flowed(text),
            ),
            Client::Evolution | Client::Kmail if self.rng.chance(0.5) => (
                "Content-Type: text/plain; charset=\"UTF-8\"\nContent-Transfer-Encoding: quoted-printable\n".to_string(),
                qp_encode(text),
            ),
            Client::Mutt | Client::Notmuch | Client::Kmail if p.signs => signed(&mut self.rng, text),
            _ => (
                format!(
                    "Content-Type: text/plain; charset={charset}\nContent-Disposition: inline\n{}",
                    if ascii { String::new() } else { "Content-Transfer-Encoding: 8bit\n".to_string() }
                ),
                text.to_string(),
            ),
        };
        let p = &self.people[me];
        match client {
            Client::Mutt | Client::Notmuch | Client::Bot => {
                h.push_str(&format!("Date: {date_s}\n"));
                header(&mut h, "From", &p.addr());
                header(&mut h, "To", &to);
                header(&mut h, "Cc", &cc);
                header(&mut h, "Subject", subject);
                h.push_str(&format!("Message-ID: {id}\n"));
                h.push_str(&format!("References: {refs_s}\n"));
                h.push_str("MIME-Version: 1.0\n");
                h.push_str(&content);
                h.push_str(&format!("In-Reply-To: {}\n", parent.id));
                if client == Client::Mutt {
                    h.push_str("User-Agent: NeoMutt/20231103\n");
                } else if client == Client::Notmuch {
                    h.push_str("User-Agent: Notmuch/0.38.3 (https://notmuchmail.org) Emacs/29.4 (x86_64-pc-linux-gnu)\n");
                }
            }
            Client::Outlook => {
                header(&mut h, "From", &p.addr());
                header(&mut h, "To", &to);
                header(&mut h, "CC", &cc);
                header(&mut h, "Subject", subject);
                h.push_str(&format!(
                    "Thread-Topic: {}\n",
                    parent
                        .subject
                        .trim_start_matches("Re: ")
                        .trim_start_matches("RE: ")
                        .chars()
                        .take(60)
                        .collect::<String>()
                ));
                h.push_str(&format!("Thread-Index: {}\n", base64(&self.rng.bytes(30))));
                h.push_str(&format!("Date: {date_s}\n"));
                h.push_str(&format!("Message-ID: {id}\n"));
                h.push_str(&format!("References: {refs_s}\n"));
                h.push_str(&format!("In-Reply-To: {}\n", parent.id));
                h.push_str("Accept-Language: en-US\nContent-Language: en-US\nX-MS-Has-Attach:\nX-MS-TNEF-Correlator:\n");
                h.push_str(&format!("x-ms-exchange-messagesentrepresentingtype: 1\nx-ms-traffictypediagnostic: AM9PR04MB{}:EE_|DU0PR04MB{}:EE_\n", self.rng.range(1000, 9999), self.rng.range(1000, 9999)));
                h.push_str(&content);
                h.push_str("MIME-Version: 1.0\n");
            }
            _ => {
                h.push_str("MIME-Version: 1.0\n");
                h.push_str(&format!("Date: {date_s}\n"));
                h.push_str(&format!("Message-ID: {id}\n"));
                h.push_str(&format!("In-Reply-To: {}\n", parent.id));
                h.push_str(&format!("References: {refs_s}\n"));
                header(&mut h, "From", &p.addr());
                header(&mut h, "To", &to);
                header(&mut h, "Cc", &cc);
                header(&mut h, "Subject", subject);
                match client {
                    Client::Thunderbird => {
                        h.push_str("User-Agent: Mozilla Thunderbird\nContent-Language: en-US\n")
                    }
                    Client::Evolution => {
                        h.push_str("User-Agent: Evolution 3.52.4 (3.52.4-1.fc40)\n")
                    }
                    Client::Kmail => h.push_str(
                        "User-Agent: KMail/6.2.2 (Linux/6.12.9-arch1-1; KDE/6.10.0; x86_64)\n",
                    ),
                    _ => {}
                }
                h.push_str(&content);
            }
        }
        self.list_headers(&mut h);
        h.push('\n');
        h.push_str(&body);
        h.into_bytes()
    }

    fn post_report(&mut self, at: i64) {
        let ci = self.rng.below(COMPS.len());
        let c = &COMPS[ci];
        let console = self.rng.pick_ref(&self.tpl.consoles).clone();
        let crash = console
            .lines()
            .find(|l| {
                [
                    "BUG:",
                    "WARNING:",
                    "Oops",
                    "INFO:",
                    "general protection",
                    "Kernel panic",
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .unwrap_or("BUG: crash")
            .to_string();
        let crash = match crash.find("] ") {
            Some(i) if crash.starts_with('[') => crash[i + 2..].to_string(),
            _ => crash,
        };
        let crash: String = crash.chars().take(70).collect();
        let syz = self.rng.chance(0.6);
        let (from, subject, text) = if syz {
            let hash = self.rng.hex(10);
            let subject = format!(
                "[syzbot] [{}?] {crash} in {}_{}",
                c.prefix,
                c.prefix,
                self.rng.pick(VERBS)
            );
            let text = format!(
                "Hello,\n\nsyzbot found the following issue on:\n\nHEAD commit:    {} Merge tag '{}-fixes' of git://git.example.org/..\ngit tree:       {}\nconsole output: https://syzkaller.example.com/x/log.txt?x={}\nkernel config:  https://syzkaller.example.com/x/.config?x={}\ndashboard link: https://syzkaller.example.com/bug?extid={hash}\ncompiler:       Debian clang version 15.0.6, GNU ld (GNU Binutils for Debian) 2.40\n\nUnfortunately, I don't have any reproducer for this issue yet.\n\nIMPORTANT: if you fix the issue, please add the following tag to the commit:\nReported-by: syzbot+{hash}@syzkaller.example.com\n\n{console}\n\n\n---\nThis report is generated by a bot. It may contain errors.\nSee https://syzkaller.example.com/docs for more information about syzbot.\nsyzbot engineers can be reached at syzkaller@example.com.\n",
                self.rng.hex(12),
                c.prefix,
                self.rng.pick(TREES),
                self.rng.hex(16),
                self.rng.hex(16)
            );
            (self.bots.syzbot, subject, text)
        } else {
            let who = self.human();
            let fl = Fill::new(c, &format!("{}_{}", c.prefix, self.rng.pick(VERBS)));
            let subject = fill_any(
                &mut self.rng,
                &[
                    "[REGRESSION] {hw}: crash since {kver}",
                    "{hw}: {n} timeout after resume",
                    "Oops in {f}() with {w}",
                    "BUG: {n} hang on {hw}",
                ],
                &fl,
            );
            let para = paragraphs(&mut self.rng, COMMIT_SENTENCES, 1, &fl);
            let text = format!(
                "Hi,\n\nafter updating to {}, I see the following on {} while running {}:\n\n{console}\n\n{para}\nI can test patches.\n\nThanks,\n{}\n",
                self.rng.pick(KVERS),
                c.hw,
                self.rng.pick(WORKLOADS),
                self.people[who].first()
            );
            (who, subject, text)
        };
        let id = self.reply_msgid(from, at);
        let maint = self.maint[ci].clone();
        let mut h = String::with_capacity(text.len() + 4096);
        self.transport(&mut h, from, at);
        let p = &self.people[from];
        h.push_str(&format!("Date: {}\n", rfc_date(at, p.tz, false)));
        header(&mut h, "From", &p.addr());
        let to: Vec<String> = maint.iter().map(|&m| self.people[m].addr()).collect();
        header(&mut h, "To", &to.join(", "));
        header(
            &mut h,
            "Cc",
            &format!("{LIST_ADDR}, linux-kernel@vger.example.org"),
        );
        header(&mut h, "Subject", &subject);
        h.push_str(&format!(
            "Message-ID: {id}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=\"UTF-8\"\n"
        ));
        if !text.is_ascii() {
            h.push_str("Content-Transfer-Encoding: 8bit\n");
        }
        self.list_headers(&mut h);
        h.push('\n');
        h.push_str(&text);
        let p = &self.people[from];
        self.out.push_back(Rendered {
            raw: h.into_bytes(),
            id: id.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            date: at,
            tz: p.tz,
            subject: subject.clone(),
            kind: Kind::Report,
        });
        let msg = Rc::new(Msg {
            id: id.clone(),
            refs: Vec::new(),
            subject,
            from,
            date: at,
            text: Rc::new(text),
            kind: Kind::Report,
            depth: 0,
            series: None,
        });
        for _ in 0..self.rng.range(0, 3) {
            let who = if self.rng.chance(0.6) {
                self.rng.pick(&maint)
            } else {
                self.human()
            };
            let later = at + 600 + self.rng.exp(10.0 * 3600.0) as i64;
            self.schedule(
                later,
                Ev::Reply {
                    parent: msg.clone(),
                    from: who,
                    kind: RKind::Discuss,
                },
            );
        }
        if self.rng.chance(0.35) {
            let ctx = self.new_series(Some((from, id)), false);
            let later = at + 3600 + self.rng.exp(2.0 * 86_400.0) as i64;
            self.schedule(
                later,
                Ev::Series {
                    ctx,
                    version: 1,
                    prev: Some(msg),
                },
            );
        }
    }

    fn post_pull(&mut self, at: i64) {
        let with_cover: Vec<usize> = (0..self.tpl.series.len())
            .filter(|&i| self.tpl.series[i].cover.is_some())
            .collect();
        let t = self.rng.pick(&with_cover);
        let ci = self.tpl.series[t].comp;
        let c = &COMPS[ci];
        let from = self.rng.pick(&self.maint[ci]);
        let cover = self.tpl.series[t].cover.clone().unwrap_or_default();
        let shortlog = cover
            .split_once("*** BLURB HERE ***\n")
            .map_or(cover.as_str(), |(_, s)| s);
        let shortlog = shortlog.split("\nbase-commit:").next().unwrap_or(shortlog);
        let shortlog = shortlog.split("\n-- \n").next().unwrap_or(shortlog);
        let who = self.human();
        let shortlog = shortlog.replace(AUTHOR_PLACEHOLDER, &self.people[who].name);
        let kver = self.rng.pick(KVERS).to_string();
        let rc = self.rng.range(1, 7);
        let fl = Fill::new(c, &format!("{}_{}", c.prefix, self.rng.pick(VERBS)));
        let summary = paragraphs(&mut self.rng, BLURB_SENTENCES, 2, &fl);
        let top = &self.people[self.bots.top];
        let (top_first, top_addr) = (top.first().to_string(), top.addr());
        let p = &self.people[from];
        let user = p.email.split('@').next().unwrap_or("maint").to_string();
        let subject = format!("[GIT PULL] {} fixes for {kver}-rc{rc}", c.area);
        let text = format!(
            "Hi {},\n\nThe following changes since commit {}:\n\n  Linux {kver}-rc{} ({})\n\nare available in the Git repository at:\n\n  git://git.example.org/pub/scm/linux/kernel/git/{user}/{}.git tags/{}-fixes-{kver}-rc{rc}\n\nfor you to fetch changes up to {}:\n\n  {} ({})\n\n----------------------------------------------------------------\n{summary}\n----------------------------------------------------------------\n{shortlog}\n",
            top_first,
            self.rng.hex(40),
            rc.saturating_sub(1).max(1),
            &rfc_date(at - 7 * 86_400, 0, false)[..16],
            c.prefix,
            c.prefix,
            self.rng.hex(40),
            c.area,
            &rfc_date(at - 86_400, 0, false)[..16]
        );
        let id = self.reply_msgid(from, at);
        let mut h = String::with_capacity(text.len() + 4096);
        self.transport(&mut h, from, at);
        let p = &self.people[from];
        h.push_str(&format!("Date: {}\n", rfc_date(at, p.tz, false)));
        header(&mut h, "From", &p.addr());
        header(&mut h, "To", &top_addr);
        header(
            &mut h,
            "Cc",
            &format!("{LIST_ADDR}, linux-kernel@vger.example.org"),
        );
        header(&mut h, "Subject", &subject);
        h.push_str(&format!("Message-ID: {id}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-Disposition: inline\n"));
        if !text.is_ascii() {
            h.push_str("Content-Transfer-Encoding: 8bit\n");
        }
        self.list_headers(&mut h);
        h.push('\n');
        h.push_str(&text);
        let p = &self.people[from];
        self.out.push_back(Rendered {
            raw: h.into_bytes(),
            id: id.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            date: at,
            tz: p.tz,
            subject: subject.clone(),
            kind: Kind::Pull,
        });
        if self.rng.chance(0.6) {
            let msg = Rc::new(Msg {
                id,
                refs: Vec::new(),
                subject,
                from,
                date: at,
                text: Rc::new(text),
                kind: Kind::Pull,
                depth: 0,
                series: None,
            });
            let later = at + 3600 + self.rng.exp(86_400.0) as i64;
            self.schedule(
                later,
                Ev::Reply {
                    parent: msg,
                    from: self.bots.prtracker,
                    kind: RKind::Pulled,
                },
            );
        }
    }
}

fn quote_into(out: &mut String, lines: &[&str]) {
    for l in lines {
        if l.is_empty() {
            out.push_str(">\n");
        } else if l.starts_with('>') {
            out.push('>');
            out.push_str(l);
            out.push('\n');
        } else {
            out.push_str("> ");
            out.push_str(l);
            out.push('\n');
        }
    }
}

fn floor_char(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn base36(mut v: u64) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(D[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn folded_b64(rng: &mut Rng, n: usize) -> String {
    let b = base64(&rng.bytes(n));
    b.as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n\t ")
}

/// format=flowed: soft line breaks (a trailing space) inside paragraphs.
fn flowed(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + lines.len());
    for (i, l) in lines.iter().enumerate() {
        out.push_str(l);
        let next = lines.get(i + 1);
        if !l.is_empty()
            && !l.starts_with('>')
            && *l != "-- "
            && next.is_some_and(|n| !n.is_empty() && !n.starts_with('>'))
            && l.len() > 50
        {
            out.push(' ');
        }
        out.push('\n');
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// multipart/alternative: the text, and an HTML rendering of it.
fn alternative(rng: &mut Rng, text: &str, boundary_prefix: &str, gmail: bool) -> (String, String) {
    let b = format!("{boundary_prefix}{}", rng.hex(12));
    let mut html = String::from(
        "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div dir=\"ltr\">",
    );
    let mut in_quote = false;
    for l in text.lines() {
        let q = l.starts_with('>');
        if q && !in_quote {
            html.push_str("<blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\">");
        } else if !q && in_quote {
            html.push_str("</blockquote>");
        }
        in_quote = q;
        html.push_str(&html_escape(l.trim_start_matches(['>', ' '])));
        html.push_str("<br>\n");
    }
    if in_quote {
        html.push_str("</blockquote>");
    }
    html.push_str("</div></body></html>\n");
    let (plain_cs, html_cte, html_body) = if gmail {
        ("UTF-8", "quoted-printable", qp_encode(&html))
    } else {
        ("us-ascii", "base64", base64_lines(html.as_bytes(), 76))
    };
    let body = format!(
        "--{b}\nContent-Type: text/plain; charset=\"{plain_cs}\"\nContent-Transfer-Encoding: quoted-printable\n\n{}\n--{b}\nContent-Type: text/html; charset=\"UTF-8\"\nContent-Transfer-Encoding: {html_cte}\n\n{html_body}\n--{b}--\n",
        qp_encode(text)
    );
    (
        format!("Content-Type: multipart/alternative; boundary=\"{b}\"\n"),
        body,
    )
}

/// multipart/signed with a (made-up) PGP signature.
fn signed(rng: &mut Rng, text: &str) -> (String, String) {
    let b = rng.hex(16);
    let cte = if text.is_ascii() {
        ""
    } else {
        "Content-Transfer-Encoding: 8bit\n"
    };
    let body = format!(
        "\n--{b}\nContent-Type: text/plain; charset={}\nContent-Disposition: inline\n{cte}\n{text}\n--{b}\nContent-Type: application/pgp-signature; name=\"signature.asc\"\nContent-Description: PGP signature\n\n-----BEGIN PGP SIGNATURE-----\n\n{}={}\n-----END PGP SIGNATURE-----\n\n--{b}--\n",
        if text.is_ascii() { "us-ascii" } else { "utf-8" },
        base64_lines(&rng.bytes(280), 64),
        &base64(&rng.bytes(3))
    );
    (
        format!(
            "Content-Type: multipart/signed; micalg=pgp-sha512;\n\tprotocol=\"application/pgp-signature\"; boundary=\"{b}\"\nContent-Disposition: inline\n"
        ),
        body,
    )
}
