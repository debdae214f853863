//! Reproducer runs in QEMU.
//!
//! A run boots the kernel with lorebot's initramfs (busybox-static, the
//! reproducer, an init that prints start and end markers), streams the
//! serial console through the console analyzer while the guest runs, and
//! stops the guest a grace period after a crash report starts, so the
//! report is complete. Every run ends as one [`Outcome`]; the
//! infrastructure's failures are told apart from the kernel's and are never
//! counted as passes.

mod initramfs;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::console::{self, Analysis};
pub use initramfs::{END_MARKER, Payload, START_MARKER};

#[derive(Debug, Error)]
pub enum VmError {
    #[error("busybox {}: {problem}", path.display())]
    Busybox { path: PathBuf, problem: String },
    #[error("{}: not an x86 kernel image (bzImage): {problem}", path.display())]
    Kernel { path: PathBuf, problem: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Checks that `path` is a bzImage (the boot protocol's `HdrS` magic), so
/// a wrong path is an error, not a run of QEMU that fails.
pub fn check_kernel(path: &Path) -> Result<(), VmError> {
    let kernel_err = |problem: String| VmError::Kernel {
        path: path.to_owned(),
        problem,
    };
    let mut header = [0u8; 0x206];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| {
            kernel_err(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "too short".to_owned(),
                _ => format!("cannot read it: {e}"),
            })
        })?;
    if &header[0x202..0x206] != b"HdrS" {
        return Err(kernel_err("no boot protocol header".to_owned()));
    }
    Ok(())
}

/// Builds the guest's initramfs at `dest`.
pub fn write_initramfs(dest: &Path, payload: &Payload<'_>) -> Result<(), VmError> {
    initramfs::write(dest, payload)
}

/// The machine a run boots.
#[derive(Clone, Debug)]
pub struct Guest {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Appended to lorebot's own kernel command line.
    pub cmdline: String,
    /// The kernel's CONFIG_HZ, which turns stall jiffies into seconds
    /// (inferred from the console when not known).
    pub hz: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// QEMU start to the start marker.
    pub boot: Duration,
    /// The reproducer's own limit (enforced in the guest).
    pub reproducer: Duration,
    /// No console output for this long: the guest is hung.
    pub silence: Duration,
    /// Kept collecting after a crash report starts.
    pub crash_grace: Duration,
}

impl Timeouts {
    /// The longest a healthy run can take: past it the guest is killed.
    fn whole_run(&self) -> Duration {
        self.boot + self.reproducer + self.crash_grace + Duration::from_secs(30)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The kernel reported a crash (or stall) while the reproducer ran.
    Crashed,
    /// The reproducer finished and the kernel reported nothing.
    Clean,
    /// The kernel crashed or stopped before the start marker.
    BootFailure,
    /// The guest hung: no output, or no end within the run's time.
    Timeout,
    /// QEMU or the host failed; says nothing about the kernel.
    Infra,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Crashed => "crashed",
            Outcome::Clean => "clean",
            Outcome::BootFailure => "boot-failure",
            Outcome::Timeout => "timeout",
            Outcome::Infra => "infra",
        }
    }
}

/// One run of the reproducer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// 1-based.
    pub index: u32,
    pub outcome: Outcome,
    /// Why, in a few words (the primary crash's title, the timeout, QEMU's error).
    pub reason: String,
    pub accel: Accel,
    /// The whole serial console.
    pub log: PathBuf,
    pub duration_s: f64,
    /// QEMU start to the start marker.
    pub boot_s: Option<f64>,
    /// The guest's uptime at the start marker: console timestamps minus
    /// this are times since the reproducer started.
    pub start_uptime_s: Option<f64>,
    /// The reproducer's exit status, from the end marker.
    pub exit_code: Option<i32>,
    pub analysis: Analysis,
}

/// The host's accelerator: `LOREBOT_ACCEL` (`kvm` or `tcg`), else KVM when
/// a guest makes progress under it within a few seconds, else TCG. Probed
/// once per process: where /dev/kvm exists but KVM guests hang, the probe
/// costs its timeout once.
pub fn accel(qemu: &str, kernel: &Path) -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| match std::env::var("LOREBOT_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ => probe_kvm(qemu, kernel),
    })
}

const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(8);

fn probe_kvm(qemu: &str, kernel: &Path) -> Accel {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !usable {
        tracing::info!("no usable /dev/kvm: using TCG");
        return Accel::Tcg;
    }
    let child = crate::child::dies_with_parent(&mut Command::new(qemu))
        .args(["-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1"])
        .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(kernel)
        .args([
            "-append",
            "console=ttyS0 panic=-1 rdinit=/lorebot-kvm-probe",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Accel::Tcg;
    };
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        let Some(mut out) = stdout else { return };
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if memchr::memmem::find(&seen, b"Linux version").is_some() {
                let _ = tx.send(());
                break;
            }
        }
    });
    let progressed = rx.recv_timeout(KVM_PROBE_TIMEOUT);
    let _ = child.kill();
    let _ = child.wait();
    match progressed {
        Ok(()) => {
            tracing::info!("KVM guests boot: using KVM");
            return Accel::Kvm;
        }
        Err(mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
            "a KVM guest printed nothing in {}s: using TCG",
            KVM_PROBE_TIMEOUT.as_secs()
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            tracing::warn!("a KVM guest stopped before it booted: using TCG")
        }
    }
    Accel::Tcg
}

/// The QEMU binary: `LOREBOT_QEMU`, else `qemu-system-x86_64`.
pub fn qemu_binary() -> String {
    std::env::var("LOREBOT_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_owned())
}

/// How many guests may run at once: at most `wanted`, one per `cpus` host
/// cores (an overcommitted host makes guests stall on their own, which
/// would be counted against the kernel), and what free memory allows.
pub fn parallelism(wanted: u32, guest: &Guest) -> u32 {
    let by_cpu = (host_cores() / guest.cpus.max(1)).max(1);
    let by_mem = available_memory_mib()
        .map_or(u64::MAX, |avail| avail / (guest.memory_mib + 256))
        .max(1);
    wanted
        .min(by_cpu)
        .min(by_mem.min(u32::MAX as u64) as u32)
        .max(1)
}

/// The host's CPUs, shared by every guest of this process (the runs of
/// one job, and of jobs tested at once): an overcommitted TCG host makes
/// guests stall on their own, which would count against the patch.
static HOST_CPUS: LazyLock<CpuBudget> = LazyLock::new(|| CpuBudget {
    free: Mutex::new(host_cores()),
    freed: Condvar::new(),
    total: host_cores(),
});

fn host_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

struct CpuBudget {
    free: Mutex<u32>,
    freed: Condvar,
    total: u32,
}

/// CPUs held by a running guest, given back when dropped.
struct CpuLease<'a> {
    budget: &'a CpuBudget,
    cpus: u32,
}

impl CpuBudget {
    /// Waits until `cpus` are free (all of them, for a guest wider than
    /// the host) and takes them.
    fn take(&self, cpus: u32) -> CpuLease<'_> {
        let cpus = cpus.clamp(1, self.total);
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free < cpus {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= cpus;
        CpuLease { budget: self, cpus }
    }
}

impl Drop for CpuLease<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += self.cpus;
        self.budget.freed.notify_all();
    }
}

fn available_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Runs the reproducer `n` times, up to `parallel` guests at once, writing
/// each console to `<log_dir>/run-NNN.log`. `on_run` sees each run as it
/// ends; the runs are returned in index order.
pub fn run_many(
    guest: &Guest,
    timeouts: &Timeouts,
    n: u32,
    parallel: u32,
    log_dir: &Path,
    mut on_run: impl FnMut(&Run),
) -> Vec<Run> {
    let accel = accel(&qemu_binary(), &guest.kernel);
    let next = std::sync::atomic::AtomicU32::new(1);
    let (tx, rx) = mpsc::channel();
    let mut runs = Vec::with_capacity(n as usize);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, n.max(1)) {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index > n {
                        break;
                    }
                    let log = log_dir.join(format!("run-{index:03}.log"));
                    let run = run_once(guest, timeouts, accel, index, &log);
                    if tx.send(run).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for run in rx {
            on_run(&run);
            runs.push(run);
        }
    });
    runs.sort_by_key(|r| r.index);
    runs
}

/// Why the host stopped watching the guest.
enum Stop {
    /// QEMU exited by itself.
    Exited(std::process::ExitStatus),
    BootTimeout,
    Silence,
    RunTimeout,
    /// The grace period after a crash report ended.
    CrashGrace,
}

/// Boots the guest once and watches it; never fails, a failure to run is
/// an [`Outcome::Infra`] run.
pub fn run_once(guest: &Guest, timeouts: &Timeouts, accel: Accel, index: u32, log: &Path) -> Run {
    let _cpus = HOST_CPUS.take(guest.cpus);
    let started = Instant::now();
    let mut run = Run {
        index,
        outcome: Outcome::Infra,
        reason: String::new(),
        accel,
        log: log.to_owned(),
        duration_s: 0.0,
        boot_s: None,
        start_uptime_s: None,
        exit_code: None,
        analysis: Analysis::default(),
    };
    match watch(guest, timeouts, accel, index, log, started) {
        Ok(watched) => classify(&mut run, watched, timeouts),
        Err(reason) => run.reason = reason,
    }
    run.duration_s = started.elapsed().as_secs_f64();
    tracing::info!(
        run = index,
        outcome = run.outcome.as_str(),
        reason = %run.reason,
        seconds = format_args!("{:.1}", run.duration_s),
        "run ended"
    );
    run
}

struct Watched {
    stop: Stop,
    analysis: Analysis,
    boot_s: Option<f64>,
    start_uptime_s: Option<f64>,
    exit_code: Option<i32>,
    qemu_stderr: String,
}

fn qemu_command(guest: &Guest, accel: Accel, index: u32) -> Command {
    let mut cmd = Command::new(qemu_binary());
    crate::child::dies_with_parent(&mut cmd);
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => cmd.args(["-accel", "tcg"]),
    };
    let append = format!(
        "console=ttyS0 panic=-1 lorebot.run={index} {}",
        guest.cmdline
    );
    cmd.args(["-m", &guest.memory_mib.to_string()])
        .args(["-smp", &guest.cpus.to_string()])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initramfs)
        .args(["-append", append.trim_end()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Console lines are scanned for the markers; a marker split across reads
/// is found once the line is complete.
#[derive(Default)]
struct Markers {
    partial: Vec<u8>,
    started: bool,
    start_uptime_s: Option<f64>,
    exit_code: Option<i32>,
}

/// The value of `key=` in a marker line.
fn marker_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

impl Markers {
    fn feed(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        let Some(last_nl) = memchr::memrchr(b'\n', &self.partial) else {
            if self.partial.len() > 64 * 1024 {
                self.partial.clear();
            }
            return;
        };
        for line in self.partial[..last_nl].split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            if let Some(pos) = line.find(START_MARKER) {
                self.started = true;
                self.start_uptime_s =
                    marker_field(&line[pos..], "uptime").and_then(|u| u.parse().ok());
            } else if let Some(pos) = line.find(END_MARKER) {
                let rc = marker_field(&line[pos..], "rc").and_then(|rc| rc.parse().ok());
                self.exit_code = rc.or(Some(-1));
            }
        }
        self.partial.drain(..=last_nl);
    }
}

fn watch(
    guest: &Guest,
    timeouts: &Timeouts,
    accel: Accel,
    index: u32,
    log: &Path,
    started: Instant,
) -> Result<Watched, String> {
    let log_file = std::fs::File::create(log)
        .map_err(|e| format!("cannot create console log {}: {e}", log.display()))?;
    let mut log_out = std::io::BufWriter::new(log_file);
    let mut child = qemu_command(guest, accel, index)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu_binary()))?;
    let stderr = collect_stderr(&mut child);
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().ok_or("QEMU has no stdout")?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut scanner = console::Scanner::new(console::Options {
        hz: guest.hz,
        mail: Some(false),
    });
    let mut markers = Markers::default();
    let mut boot_s = None;
    let mut last_output = Instant::now();
    let mut crash_deadline: Option<Instant> = None;
    let boot_deadline = started + timeouts.boot;
    let run_deadline = started + timeouts.whole_run();
    let stop = loop {
        let now = Instant::now();
        let mut deadline = (last_output + timeouts.silence).min(run_deadline);
        if !markers.started {
            deadline = deadline.min(boot_deadline);
        }
        if let Some(d) = crash_deadline {
            deadline = deadline.min(d);
        }
        match rx.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(data) => {
                last_output = Instant::now();
                if let Err(e) = log_out.write_all(&data) {
                    kill(&mut child);
                    return Err(format!("cannot write console log {}: {e}", log.display()));
                }
                scanner.feed(&data);
                markers.feed(&data);
                if markers.started && boot_s.is_none() {
                    boot_s = Some(started.elapsed().as_secs_f64());
                }
                if crash_deadline.is_none() && scanner.crash_seen() {
                    crash_deadline = Some(Instant::now() + timeouts.crash_grace);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break match child.wait() {
                    Ok(status) => Stop::Exited(status),
                    Err(e) => return Err(format!("cannot wait for QEMU: {e}")),
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let stop = if crash_deadline.is_some_and(|d| now >= d) {
                    Stop::CrashGrace
                } else if !markers.started && now >= boot_deadline {
                    Stop::BootTimeout
                } else if now >= run_deadline {
                    Stop::RunTimeout
                } else {
                    Stop::Silence
                };
                kill(&mut child);
                break stop;
            }
        }
    };
    log_out
        .flush()
        .map_err(|e| format!("cannot write console log {}: {e}", log.display()))?;
    Ok(Watched {
        stop,
        analysis: scanner.finish(),
        boot_s,
        start_uptime_s: markers.start_uptime_s,
        exit_code: markers.exit_code,
        qemu_stderr: stderr.join().unwrap_or_default(),
    })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// QEMU's own messages (it prints errors there), capped.
fn collect_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(e) = stderr {
            let _ = e.take(64 * 1024).read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).trim().to_owned()
    })
}

fn classify(run: &mut Run, w: Watched, timeouts: &Timeouts) {
    run.boot_s = w.boot_s;
    run.start_uptime_s = w.start_uptime_s;
    run.exit_code = w.exit_code;
    let started = w.boot_s.is_some();
    let crash = w.analysis.primary().map(|c| c.title.clone());
    let secs = |d: Duration| d.as_secs();
    (run.outcome, run.reason) = match (&w.stop, crash) {
        (Stop::Exited(status), None)
            if !started && !status.success() && w.analysis.stats.bytes == 0 =>
        {
            (
                Outcome::Infra,
                format!("QEMU failed ({status}): {}", first_line(&w.qemu_stderr)),
            )
        }
        (_, Some(title)) if !started => (Outcome::BootFailure, title),
        (_, Some(title)) => (Outcome::Crashed, title),
        (Stop::Exited(_), None) if w.exit_code.is_some() => (
            Outcome::Clean,
            format!(
                "reproducer exited with status {}",
                w.exit_code.unwrap_or_default()
            ),
        ),
        (Stop::Exited(_), None) if !started => (
            Outcome::BootFailure,
            "the guest stopped before the start marker".to_owned(),
        ),
        (Stop::Exited(_), None) => (
            // A guest that resets with nothing on the console (a triple
            // fault) failed, but no report says how.
            Outcome::Crashed,
            "the guest stopped without an end marker or a crash report".to_owned(),
        ),
        (Stop::BootTimeout, None) => (
            Outcome::BootFailure,
            format!("no start marker after {}s", secs(timeouts.boot)),
        ),
        (Stop::Silence, None) => (
            Outcome::Timeout,
            format!("no console output for {}s", secs(timeouts.silence)),
        ),
        (Stop::RunTimeout | Stop::CrashGrace, None) => (
            Outcome::Timeout,
            format!("still running after {}s", secs(timeouts.whole_run())),
        ),
    };
    if run.outcome != Outcome::Infra
        && let Some(oom) = w
            .qemu_stderr
            .lines()
            .find(|l| l.contains("Cannot allocate memory"))
    {
        run.outcome = Outcome::Infra;
        run.reason = format!("host out of memory: {oom}");
    }
    run.analysis = w.analysis;
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn guests_wait_for_host_cpus() {
        let budget = CpuBudget {
            free: Mutex::new(2),
            freed: Condvar::new(),
            total: 2,
        };
        let first = budget.take(2);
        let second_ran = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _lease = budget.take(1);
                second_ran.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(200));
            assert!(!second_ran.load(Ordering::SeqCst), "ran on taken CPUs");
            drop(first);
        });
        assert!(second_ran.load(Ordering::SeqCst));
        // A guest wider than the host takes all of it, and gives it back.
        let wide = budget.take(8);
        assert_eq!(*budget.free.lock().unwrap(), 0);
        drop(wide);
        assert_eq!(*budget.free.lock().unwrap(), 2);
    }
}
