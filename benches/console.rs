//! Throughput of the console analyzer on a large, realistic console log.
//!
//! `cargo bench --bench console` builds (or reuses) a log of at least
//! `LOREBOT_BENCH_MB` MB (default 200; 1 MB = 10^6 bytes) under
//! `target/bench-console/`, made of the real boot output in
//! `tests/fixtures/console/clean-boot.log`, repeated with its timestamps
//! rewritten to keep increasing, and with the crash parts of a few real
//! `lkdtm-*.log` captures inserted at spread-out positions. It then times
//! `lorebot::console::analyze_reader` over the file (best of 3, page cache
//! warmed first) against `grep -c` for the oops headers, and prints MB/s.
//!
//! `LOREBOT_BENCH_FIXTURES` points at another directory of such captures.
//!
//! Run without `--bench` (as `cargo test --benches` does) it only smoke-tests
//! itself on a small log, once.

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lorebot::console::{Analysis, Kind, Options, analyze, analyze_reader};

/// Bump when the generated log changes for the same inputs.
const GENERATOR_VERSION: u32 = 1;
const MB: u64 = 1_000_000;
const DEFAULT_MB: u64 = 200;
const SMOKE_MB: u64 = 4;
const RUNS: usize = 3;
const MIN_CRASH_LOGS: usize = 3;
const MAX_CRASH_LOGS: usize = 5;
/// lkdtm captures taken first when present: self-contained reports that end
/// without a `Kernel panic` (a panic is folded into the report before it,
/// wherever that is, so it would not count as a crash of its own).
const PREFERRED: &[&str] = &[
    "lkdtm-warning.log",
    "lkdtm-bug.log",
    "lkdtm-access_null.log",
    "lkdtm-read_after_free.log",
    "lkdtm-exception.log",
    "lkdtm-write_ro.log",
    "lkdtm-slab_free_double.log",
    "lkdtm-corrupt_list_add.log",
];
const GREP_PATTERN: &str = r"BUG:\|WARNING:\|INFO:\|general protection\|Kernel panic";

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let want_mb = match std::env::var("LOREBOT_BENCH_MB") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("LOREBOT_BENCH_MB={v:?} is not a positive integer")),
        Err(_) if bench => DEFAULT_MB,
        Err(_) => SMOKE_MB,
    };
    let runs = if bench { RUNS } else { 1 };

    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixtures = std::env::var_os("LOREBOT_BENCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("tests/fixtures/console"));
    let plan = Plan::load(&fixtures, want_mb * MB);
    let path = ensure_log(&plan, &target_dir(&manifest));
    let size = fs::metadata(&path).expect("stat bench log").len();
    let size_mb = size as f64 / MB as f64;
    println!(
        "log: {} ({:.1} MB, {} boot repetitions, {} crash parts from {})",
        path.display(),
        size_mb,
        plan.repetitions,
        plan.crashes.len(),
        plan.crashes
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Warm-up: one full read, so every timed run reads from the page cache.
    let t = Instant::now();
    let warm = read_all(&path);
    println!("warm-up read: {:.0} MB/s", mbps(warm, t.elapsed()));

    // 1. analyze_reader over the file.
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut analysis = None;
    for run in 1..=runs {
        let file = File::open(&path).expect("open bench log");
        let cpu = thread_cpu();
        let t = Instant::now();
        let a = analyze_reader(file, Options::default()).expect("analyze_reader");
        let dt = t.elapsed();
        let cpu = cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
        println!(
            "analyze_reader run {run}: {:.3} s, {:.0} MB/s{}",
            dt.as_secs_f64(),
            mbps(size, dt),
            on_cpu(size, cpu)
        );
        times.push(dt);
        cpu_times.extend(cpu);
        analysis = Some(a);
    }
    let lorebot = best(&times);
    let lorebot_cpu = cpu_times.iter().min().copied();
    let analysis = analysis.expect("at least one run");
    let same = check_crashes(&plan, &analysis);

    // 1b. analyze over the log in memory: the analyzer without the reads.
    let data = fs::read(&path).expect("read bench log");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let a = analyze(&data, Options::default());
        times.push(t.elapsed());
        assert_eq!(
            a.crashes.len(),
            analysis.crashes.len(),
            "analyze vs analyze_reader"
        );
    }
    drop(data);
    let in_memory = best(&times);
    println!(
        "analyze (in memory): best {:.3} s, {:.0} MB/s",
        in_memory.as_secs_f64(),
        mbps(size, in_memory)
    );

    // 2. grep -c over the same file.
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut count = 0;
    for run in 1..=runs {
        let cpu = children_cpu();
        let t = Instant::now();
        count = grep_count(&path);
        let dt = t.elapsed();
        let cpu = cpu.zip(children_cpu()).map(|(a, b)| b.saturating_sub(a));
        println!(
            "grep -c run {run}: {:.3} s, {:.0} MB/s{} ({count} matching lines)",
            dt.as_secs_f64(),
            mbps(size, dt),
            on_cpu(size, cpu)
        );
        times.push(dt);
        cpu_times.extend(cpu);
    }
    assert!(count > 0, "grep found no header lines");
    let grep = best(&times);
    let grep_cpu = cpu_times.iter().min().copied();
    if let (Some(a), Some(g)) = (lorebot_cpu, grep_cpu) {
        // The cores are shared: on-CPU time leaves out the time other
        // processes had them.
        println!(
            "on CPU (best): analyzer {:.0} MB/s, grep -c {:.0} MB/s, ratio {:.2}",
            mbps(size, a),
            mbps(size, g),
            g.as_secs_f64() / a.as_secs_f64().max(1e-9)
        );
    }

    let ours = mbps(size, lorebot);
    let theirs = mbps(size, grep);
    println!(
        "console analyzer: {:.0} MB/s on a {:.0} MB log (grep -c: {:.0} MB/s, ratio {:.2}), {} crashes",
        ours,
        size_mb,
        theirs,
        ours / theirs,
        analysis.crashes.len()
    );
    assert!(
        same,
        "the crashes found in the big log differ from those of the crash parts alone"
    );
}

// --- the log ----------------------------------------------------------------

/// One lkdtm capture's crash part, timestamps relative to its first line.
struct CrashPart {
    name: String,
    lines: Vec<Line>,
    /// Crashes `analyze` finds in the part on its own.
    titles: Vec<String>,
}

/// A console line split around its `[ seconds.micro]` timestamp, if any.
#[derive(Clone, Hash)]
struct Line {
    /// Microseconds, for a line that starts with a console timestamp.
    micros: Option<u64>,
    /// The line after the timestamp (or all of it), with its `\n`.
    rest: Vec<u8>,
}

struct Plan {
    target: u64,
    /// Lines of the clean boot before its first timestamped line: written once.
    preamble: Vec<u8>,
    /// The rest of the clean boot: repeated.
    body: Vec<Line>,
    body_span: u64,
    crashes: Vec<CrashPart>,
    repetitions: u64,
    /// Exact size of the log, in bytes.
    size: u64,
    fingerprint: u64,
}

impl Plan {
    fn load(dir: &Path, target: u64) -> Plan {
        let clean_path = dir.join("clean-boot.log");
        let clean = fs::read(&clean_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the console fixtures are needed)",
                clean_path.display()
            )
        });
        let lines = split_lines(&clean);
        let first = lines
            .iter()
            .position(|l| l.micros.is_some())
            .expect("clean-boot.log has console timestamps");
        let preamble: Vec<u8> = lines[..first].iter().flat_map(|l| l.rest.clone()).collect();
        let body = lines[first..].to_vec();
        let body_span = span(&body);

        let crashes = pick_crashes(dir);
        assert!(
            !crashes.is_empty(),
            "no usable lkdtm-*.log in {}",
            dir.display()
        );
        if crashes.len() < MIN_CRASH_LOGS {
            eprintln!(
                "warning: only {} usable lkdtm logs in {} (want {MIN_CRASH_LOGS})",
                crashes.len(),
                dir.display()
            );
        }

        let mut h = DefaultHasher::new();
        (GENERATOR_VERSION, target, &clean).hash(&mut h);
        for c in &crashes {
            (&c.name, &c.lines).hash(&mut h);
        }
        let mut plan = Plan {
            target,
            preamble,
            body,
            body_span,
            crashes,
            repetitions: 0,
            size: 0,
            fingerprint: h.finish(),
        };
        // A dry run counts the repetitions and the exact size.
        let mut sink = Counter(0);
        plan.repetitions = plan.write(&mut sink).expect("dry run");
        plan.size = sink.0;
        plan
    }

    /// Writes the log; returns the number of boot repetitions.
    fn write<W: Write>(&self, w: &mut W) -> io::Result<u64> {
        w.write_all(&self.preamble)?;
        let mut written = self.preamble.len() as u64;
        let mut base = 0u64;
        let mut reps = 0u64;
        let mut next_crash = 0;
        let mut ts = Vec::with_capacity(32);
        let mut emit =
            |w: &mut W, lines: &[Line], base: u64, written: &mut u64| -> io::Result<()> {
                let t0 = lines.iter().find_map(|l| l.micros).unwrap_or(0);
                for l in lines {
                    if let Some(m) = l.micros {
                        let t = base + (m - t0.min(m));
                        ts.clear();
                        write!(ts, "[{:5}.{:06}]", t / 1_000_000, t % 1_000_000)?;
                        w.write_all(&ts)?;
                        *written += ts.len() as u64;
                    }
                    w.write_all(&l.rest)?;
                    *written += l.rest.len() as u64;
                }
                Ok(())
            };
        let n = self.crashes.len() as u64;
        while written < self.target || next_crash < self.crashes.len() {
            // Crash i goes in at (i + 1) / (n + 1) of the target size.
            if next_crash < self.crashes.len()
                && written >= self.target * (next_crash as u64 + 1) / (n + 1)
            {
                let part = &self.crashes[next_crash].lines;
                emit(w, part, base, &mut written)?;
                base += span(part) + 100_000;
                next_crash += 1;
                continue;
            }
            emit(w, &self.body, base, &mut written)?;
            base += self.body_span + 500_000;
            reps += 1;
        }
        Ok(reps)
    }

    fn expected_crashes(&self) -> usize {
        self.crashes.iter().map(|c| c.titles.len()).sum()
    }
}

/// The usable lkdtm captures: preferred ones first, then any other, up to
/// `MAX_CRASH_LOGS`.
fn pick_crashes(dir: &Path) -> Vec<CrashPart> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("lkdtm-") && n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| {
        (
            PREFERRED
                .iter()
                .position(|p| p == n)
                .unwrap_or(PREFERRED.len()),
            n.clone(),
        )
    });
    let mut out = Vec::new();
    for name in names {
        if out.len() == MAX_CRASH_LOGS {
            break;
        }
        let data = fs::read(dir.join(&name)).expect("read lkdtm log");
        let Some(lines) = crash_part(&data) else {
            eprintln!("note: {name}: no LOREBOT-START marker, skipped");
            continue;
        };
        let mut bytes = Vec::new();
        for l in &lines {
            if let Some(m) = l.micros {
                write!(bytes, "[{:5}.{:06}]", m / 1_000_000, m % 1_000_000).unwrap();
            }
            bytes.extend_from_slice(&l.rest);
        }
        let a = analyze(&bytes, Options::default());
        if a.crashes.is_empty() {
            eprintln!("note: {name}: the analyzer finds no crash in its crash part, skipped");
            continue;
        }
        if a.crashes.iter().any(|c| c.kind == Kind::Panic) || a.stats.panicked {
            eprintln!("note: {name}: ends in a kernel panic, skipped");
            continue;
        }
        let titles = a.crashes.iter().map(|c| c.title.clone()).collect();
        out.push(CrashPart {
            name,
            lines,
            titles,
        });
    }
    out
}

/// The lines between the `LOREBOT-START` and `LOREBOT-END` markers (or the
/// end of the capture): what the guest printed once the crash was provoked.
fn crash_part(data: &[u8]) -> Option<Vec<Line>> {
    let lines = split_lines(data);
    let has = |l: &Line, m: &[u8]| memchr::memmem::find(&l.rest, m).is_some();
    let start = lines.iter().position(|l| has(l, b"LOREBOT-START"))?;
    let end = lines[start..]
        .iter()
        .position(|l| has(l, b"LOREBOT-END"))
        .map_or(lines.len(), |i| start + i);
    Some(lines[start + 1..end].to_vec())
}

fn split_lines(data: &[u8]) -> Vec<Line> {
    let mut out = Vec::new();
    for raw in data.split_inclusive(|&b| b == b'\n') {
        let mut rest = raw.to_vec();
        if rest.last() != Some(&b'\n') {
            rest.push(b'\n');
        }
        match parse_timestamp(&rest) {
            Some((micros, len)) => out.push(Line {
                micros: Some(micros),
                rest: rest[len..].to_vec(),
            }),
            None => out.push(Line { micros: None, rest }),
        }
    }
    out
}

/// `[    1.234567]` at the start of a line: (microseconds, length).
fn parse_timestamp(line: &[u8]) -> Option<(u64, usize)> {
    let close = line.iter().take(24).position(|&b| b == b']')?;
    let inner = std::str::from_utf8(line.get(1..close)?).ok()?;
    if line[0] != b'[' {
        return None;
    }
    let (secs, frac) = inner.trim_start().split_once('.')?;
    if frac.len() != 6 || secs.is_empty() {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let frac: u64 = frac.parse().ok()?;
    Some((secs * 1_000_000 + frac, close + 1))
}

/// Time from the first to the last timestamp of `lines`, in microseconds.
fn span(lines: &[Line]) -> u64 {
    let mut ts = lines.iter().filter_map(|l| l.micros);
    let first = ts.next().unwrap_or(0);
    ts.next_back().map_or(0, |last| last.saturating_sub(first))
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn target_dir(manifest: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { manifest.join(p) })
        .unwrap_or_else(|| manifest.join("target"))
        .join("bench-console")
}

/// The log file for `plan`, generated unless already there with the right
/// size. Logs of the same size made from other inputs are removed.
fn ensure_log(plan: &Plan, dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("create bench dir");
    let size = plan.size;
    let prefix = format!("console-{}MB-", plan.target / MB);
    let name = format!("{prefix}{:016x}.log", plan.fingerprint);
    let path = dir.join(&name);
    if fs::metadata(&path).is_ok_and(|m| m.len() == size) {
        return path;
    }
    // Logs of this size from other inputs are stale: they are big, drop them.
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && n != name {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let t = Instant::now();
    let tmp = dir.join(format!("{name}.tmp"));
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("create bench log"));
    plan.write(&mut w).expect("write bench log");
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .expect("flush bench log");
    fs::rename(&tmp, &path).expect("rename bench log");
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    println!(
        "generated {} ({} bytes) in {:.1} s",
        path.display(),
        size,
        t.elapsed().as_secs_f64()
    );
    path
}

// --- measuring --------------------------------------------------------------

/// Prints the crashes found; whether they are those of the parts analyzed
/// one by one.
fn check_crashes(plan: &Plan, a: &Analysis) -> bool {
    let expected = plan.expected_crashes();
    println!(
        "crashes found: {} ({} lkdtm crash parts inserted, in which the analyzer finds {expected} \
         when run on each alone; {} lines, {} bytes)",
        a.crashes.len(),
        plan.crashes.len(),
        a.stats.lines,
        a.stats.bytes
    );
    for c in &a.crashes {
        println!("  line {:>9}: {}", c.start_line, c.title);
    }
    assert!(
        !a.crashes.is_empty(),
        "the analyzer found none of the inserted crashes"
    );
    let want: Vec<&String> = plan.crashes.iter().flat_map(|c| &c.titles).collect();
    let got: Vec<&String> = a.crashes.iter().map(|c| &c.title).collect();
    if got != want {
        println!("MISMATCH: the crash parts alone give: {want:?}");
    }
    got == want
}

fn read_all(path: &Path) -> u64 {
    let mut f = File::open(path).expect("open bench log");
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read bench log: {e}"),
        }
    }
}

fn grep_count(path: &Path) -> u64 {
    let out = Command::new("grep")
        .env("LC_ALL", "C")
        .arg("-c")
        .arg(GREP_PATTERN)
        .arg(path)
        .output()
        .expect("run grep");
    // 0: matches, 1: none; anything else is an error.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "grep failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("grep -c prints a count")
}

/// Time this thread has run on a CPU (Linux), at nanosecond resolution.
fn thread_cpu() -> Option<Duration> {
    let s = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// User plus system time of the children waited for (Linux), in ticks of
/// 10 ms (USER_HZ is 100).
fn children_cpu() -> Option<Duration> {
    let s = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, from field 3 on: cutime and cstime are
    // fields 16 and 17.
    let f: Vec<&str> = s.get(s.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks: u64 = f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn on_cpu(size: u64, cpu: Option<Duration>) -> String {
    match cpu {
        Some(c) if !c.is_zero() => format!(
            " ({:.3} s on CPU: {:.0} MB/s)",
            c.as_secs_f64(),
            mbps(size, c)
        ),
        _ => String::new(),
    }
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().expect("at least one run")
}

fn mbps(bytes: u64, dt: Duration) -> f64 {
    bytes as f64 / MB as f64 / dt.as_secs_f64().max(1e-9)
}
