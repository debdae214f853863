//! `lorebot run` on a real kernel (Linux 6.1 from Debian's linux-source-6.1,
//! built by `lorebot build` and cached) under real QEMU: each of the run
//! outcomes a verdict relies on, from a real guest.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// One guest at a time: guests competing for the two cores of a CI machine
/// would stall on their own and blur what each test asserts.
static GUESTS: Mutex<()> = Mutex::new(());

fn kernel() -> &'static Path {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| support::build_kernel("jobs/lkdtm-softlockup.yaml", "v6.1.192"))
}

fn job(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("jobs").join(format!("{name}.yaml"));
    if shipped.is_file() {
        shipped
    } else {
        root.join("tests/fixtures/jobs")
            .join(format!("{name}.yaml"))
    }
}

/// `lorebot run --json` of `job`, `n` runs: the report and the log dir.
fn run_job(name: &str, n: u32) -> Value {
    let kernel = kernel();
    let _one_at_a_time = GUESTS.lock().unwrap_or_else(|e| e.into_inner());
    let out_dir = support::tempdir(&format!("run-{name}"));
    let stdout = support::run(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .args(["run", "--json", "-n", &n.to_string(), "--job"])
            .arg(job(name))
            .arg("--kernel")
            .arg(kernel)
            .arg("--out")
            .arg(&out_dir)
            // /dev/kvm exists on these machines but KVM guests hang; the
            // probe is tested on its own.
            .env("LOREBOT_ACCEL", "tcg"),
    );
    let report: Value = serde_json::from_slice(&stdout).expect("run --json prints JSON");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), n as usize, "{report:#}");
    for r in runs {
        let log = PathBuf::from(r["log"].as_str().unwrap());
        assert!(log.starts_with(&out_dir), "log {log:?} kept in --out");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("Linux version 6.1"),
            "{log:?} holds the console"
        );
    }
    report
}

fn outcomes(report: &Value) -> Vec<&str> {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect()
}

#[test]
fn lkdtm_softlockup_stalls_in_every_run() {
    let report = run_job("lkdtm-softlockup", 2);
    assert_eq!(outcomes(&report), ["crashed", "crashed"], "{report:#}");
    for r in report["runs"].as_array().unwrap() {
        let primary = &r["analysis"]["crashes"][0];
        assert_eq!(
            primary["title"],
            "INFO: rcu detected stall in lkdtm_SOFTLOCKUP"
        );
        assert_eq!(primary["stall"]["rip_func"], "lkdtm_SOFTLOCKUP");
        assert!(r["boot_s"].as_f64().unwrap() < 60.0);
    }
    let s = &report["summary"];
    assert_eq!(s["target_runs"], 2);
    let stalls = &s["stalls"];
    assert_eq!(stalls["runs_with_stalls"], 2);
    assert_eq!(
        stalls["top_functions"][0],
        serde_json::json!(["lkdtm_SOFTLOCKUP", 2])
    );
    // RCU_CPU_STALL_TIMEOUT=5: the first report 5 s (a little more under
    // TCG) after the reproducer started.
    let median = stalls["first_stall_s"]["median"].as_f64().unwrap();
    assert!(
        (4.0..15.0).contains(&median),
        "time to first stall {median}"
    );
    // The grace period collects a second report of the same stall: HZ is
    // inferred and the stall is a livelock.
    assert_eq!(stalls["hz"], 250, "{stalls:#}");
    assert_eq!(stalls["livelock_runs"], 2);
    assert!(stalls["longest_stall_s"].as_f64().unwrap() >= 15.0);
}

#[test]
fn clean_reproducer_gives_clean_runs() {
    let report = run_job("clean", 2);
    assert_eq!(outcomes(&report), ["clean", "clean"], "{report:#}");
    for r in report["runs"].as_array().unwrap() {
        assert_eq!(r["exit_code"], 3, "the reproducer's exit status is kept");
        assert_eq!(r["analysis"]["crashes"].as_array().unwrap().len(), 0);
        let log = std::fs::read_to_string(r["log"].as_str().unwrap()).unwrap();
        assert!(
            log.contains("/sys/kernel/debug/provoke-crash/DIRECT"),
            "debugfs mounted"
        );
    }
    assert_eq!(report["summary"]["target_runs"], 0);
    assert_eq!(report["summary"]["stalls"]["runs_with_stalls"], 0);
}

#[test]
fn kernel_panic_at_boot_is_a_boot_failure() {
    let report = run_job("boot-panic", 1);
    assert_eq!(outcomes(&report), ["boot-failure"], "{report:#}");
    let r = &report["runs"][0];
    assert!(r["boot_s"].is_null());
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("kernel panic: Requested init"),
        "{reason}"
    );
    // The job counts any crash, but a crash at boot is not the reproducer's.
    assert_eq!(report["summary"]["target_runs"], 0);
    assert_eq!(report["summary"]["other_crashes"][0][1], 1);
}

#[test]
fn silently_hung_guest_is_killed_as_timeout() {
    let report = run_job("silent-hang", 1);
    assert_eq!(outcomes(&report), ["timeout"], "{report:#}");
    let r = &report["runs"][0];
    assert_eq!(r["reason"], "no console output for 10s");
    assert!(r["exit_code"].is_null());
    // Killed soon after 10 s of silence, not at the 120 s reproducer limit.
    assert!(r["duration_s"].as_f64().unwrap() < 60.0, "{r:#}");
}

#[test]
fn qemu_failure_is_infrastructure_not_a_pass() {
    let dir = support::tempdir("run-huge");
    let huge = dir.join("huge.yaml");
    let text = std::fs::read_to_string(job("clean"))
        .unwrap()
        .replace("memory: 256M", "memory: 1T");
    std::fs::write(&huge, text).unwrap();
    std::fs::create_dir_all(dir.join("kernel-configs")).unwrap();
    for f in ["vm-base.config", "lkdtm.config"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("kernel-configs")
                .join(f),
            dir.join("kernel-configs").join(f),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lorebot"))
        .args(["run", "--json", "--job"])
        .arg(&huge)
        .arg("--kernel")
        .arg(kernel())
        .arg("--out")
        .arg(dir.join("logs"))
        .env("LOREBOT_ACCEL", "tcg")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["runs"][0];
    assert_eq!(r["outcome"], "infra", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("Cannot allocate memory"),
        "{r:#}"
    );
    assert_eq!(report["summary"]["outcomes"]["infra"], 1);
    assert!(report["summary"]["outcomes"].get("clean").is_none());
}

#[test]
fn not_a_kernel_image_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_lorebot"))
        .args(["run", "--job"])
        .arg(job("clean"))
        .args(["--kernel", "Cargo.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Cargo.toml: not an x86 kernel image"), "{err}");
}
