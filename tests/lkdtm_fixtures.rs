//! Real console logs of a 6.1 kernel crashed by LKDTM under QEMU
//! (tests/fixtures/console, made by scripts/capture-lkdtm-logs).
//!
//! Each log's `lorebot analyze` output is committed beside it under
//! `expected/`; `LOREBOT_BLESS=1 cargo test --test lkdtm_fixtures` rewrites
//! those files after a deliberate change (review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

use lorebot::console::{Kind, Options, analyze};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (log, primary title, kind)
const PRIMARY: &[(&str, &str, Kind)] = &[
    (
        "lkdtm-warning.log",
        "WARNING in lkdtm_WARNING",
        Kind::Warning,
    ),
    ("lkdtm-bug.log", "kernel BUG in lkdtm_BUG", Kind::Bug),
    (
        "lkdtm-exception.log",
        "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION",
        Kind::NullDeref,
    ),
    (
        "lkdtm-access_null.log",
        "BUG: unable to handle kernel NULL pointer dereference in lkdtm_ACCESS_NULL",
        Kind::NullDeref,
    ),
    (
        "lkdtm-write_ro.log",
        "BUG: unable to handle kernel paging request in lkdtm_WRITE_RO",
        Kind::PagingFault,
    ),
    ("lkdtm-panic.log", "kernel panic: dumptest", Kind::Panic),
    // syzkaller names a stack overflow after the call the syscall dispatched
    // (here debugfs's write), not the recursing function.
    (
        "lkdtm-exhaust_stack.log",
        "BUG: stack guard page was hit in full_proxy_write",
        Kind::Bug,
    ),
    (
        "lkdtm-refcount_inc_overflow.log",
        "WARNING: refcount bug in lkdtm_REFCOUNT_INC_OVERFLOW",
        Kind::Warning,
    ),
    (
        "lkdtm-softlockup.log",
        "INFO: rcu detected stall in lkdtm_SOFTLOCKUP",
        Kind::RcuStall,
    ),
    (
        "lkdtm-hardlockup.log",
        "INFO: rcu detected stall in lkdtm_HARDLOCKUP",
        Kind::RcuStall,
    ),
    (
        "lkdtm-hung_task.log",
        "INFO: task hung in direct_entry",
        Kind::HungTask,
    ),
    (
        "lkdtm-read_after_free.log",
        "KASAN: use-after-free Read in lkdtm_READ_AFTER_FREE",
        Kind::Kasan,
    ),
    (
        "lkdtm-write_after_free.log",
        "KASAN: use-after-free Write in lkdtm_WRITE_AFTER_FREE",
        Kind::Kasan,
    ),
    (
        "lkdtm-slab_free_double.log",
        "KASAN: invalid-free in direct_entry",
        Kind::Kasan,
    ),
    (
        "lkdtm-corrupt_list_add.log",
        "WARNING in lkdtm_CORRUPT_LIST_ADD",
        Kind::Warning,
    ),
    (
        "lkdtm-spinlockup.log",
        "BUG: scheduling while atomic in exit_to_user_mode_prepare",
        Kind::AtomicSleep,
    ),
];

#[test]
fn each_lkdtm_crash_gets_its_syzkaller_title() {
    for (log, title, kind) in PRIMARY {
        let a = analyze(&read(log), Options::default());
        let c = a
            .primary()
            .unwrap_or_else(|| panic!("{log}: no crash found"));
        assert_eq!((c.title.as_str(), c.kind), (*title, *kind), "{log}");
        assert!(!c.corrupted, "{log}: a complete report is not corrupted");
    }
}

#[test]
fn every_fixture_log_is_covered() {
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("lkdtm-") && name.ends_with(".log") {
            assert!(
                PRIMARY.iter().any(|(l, ..)| *l == name),
                "{name} has no expectation"
            );
        }
    }
}

#[test]
fn a_clean_boot_has_no_crash() {
    let a = analyze(&read("clean-boot.log"), Options::default());
    assert!(a.crashes.is_empty(), "{:#?}", a.crashes);
    assert!(a.stats.lines > 100);
}

#[test]
fn softlockup_stalls_persist_in_one_grace_period_and_give_hz() {
    let a = analyze(&read("lkdtm-softlockup.log"), Options::default());
    let rcu: Vec<_> = a
        .crashes
        .iter()
        .filter(|c| c.kind == Kind::RcuStall)
        .collect();
    assert!(rcu.len() >= 2, "the stall is reported again while it lasts");
    for c in &rcu {
        let s = c.stall.as_ref().unwrap();
        assert_eq!(s.flavor.as_deref(), Some("rcu_sched"));
        assert!(s.self_detected);
        assert_eq!(s.task.as_ref().unwrap().comm, "sh");
        assert_eq!(s.rip_func.as_deref(), Some("lkdtm_SOFTLOCKUP"));
        assert!(s.ticks_this_gp.unwrap() <= s.jiffies.unwrap());
    }
    assert!(a.stats.livelock, "one grace period stays stalled");
    assert!(!a.stats.stall_cleared);
    // The kernel config has HZ=250; the reports' t= and timestamps agree.
    assert_eq!(
        (a.stats.hz, a.stats.hz_source),
        (Some(250), Some("inferred"))
    );
    assert!(a.stats.longest_stall_s.unwrap() > 20.0);
    assert!(a.crashes.iter().any(|c| c.kind == Kind::SoftLockup));
}

#[test]
fn hung_task_reports_give_the_blocked_seconds() {
    let a = analyze(&read("lkdtm-hung_task.log"), Options::default());
    let secs: Vec<f64> = a
        .crashes
        .iter()
        .map(|c| c.stall.as_ref().unwrap().seconds.unwrap())
        .collect();
    assert!(secs.len() >= 2 && secs[0] == 5.0, "{secs:?}");
}

#[test]
fn analyze_output_matches_the_committed_expectation() {
    let bless = std::env::var_os("LOREBOT_BLESS").is_some();
    let dir = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    for name in names {
        let out = Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .current_dir(&dir)
            .args(["analyze", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}");
        let expected_path = dir
            .join("expected")
            .join(Path::new(&name).with_extension("txt"));
        if bless {
            std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
            std::fs::write(&expected_path, &out.stdout).unwrap();
            continue;
        }
        let expected = std::fs::read(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if expected != out.stdout {
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "output differs from tests/fixtures/console/expected for {failures:?}"
    );
}
