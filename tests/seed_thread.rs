//! The report that started the project (../shared/seed): a console log pasted
//! into a mail, abbreviated and wrapped by the mailer.

use std::path::PathBuf;

use lorebot::console::{Kind, Options, analyze};

fn seed() -> Option<Vec<u8>> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seed/000_3c7c0774de43bee9.txt");
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            println!("notice: {} is absent; seed thread not checked", p.display());
            None
        }
    }
}

#[test]
fn seed_report_titles_match_what_the_reporter_saw() {
    let Some(log) = seed() else { return };
    let a = analyze(&log, Options::default());
    let titles: Vec<&str> = a.crashes.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "WARNING in ceph_put_wrbuffer_cap_refs",
            "BUG: unable to handle kernel NULL pointer dereference in ceph_invalidate_folio",
            "general protection fault in netfs_alloc_request",
            "INFO: rcu detected stall in filemap_get_read_batch",
            "INFO: rcu detected stall in filemap_get_read_batch",
        ]
    );
    // Abbreviated by the reporter, but each keeps a usable stack.
    assert!(a.crashes.iter().all(|c| !c.corrupted));
    let kinds: Vec<Kind> = a.crashes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Warning,
            Kind::NullDeref,
            Kind::Gpf,
            Kind::RcuStall,
            Kind::RcuStall
        ]
    );
}

#[test]
fn seed_stall_on_the_bisected_commit_has_its_details() {
    let Some(log) = seed() else { return };
    let a = analyze(&log, Options::default());
    let stall = a.crashes[4].stall.as_ref().expect("stall details");
    assert_eq!(stall.flavor.as_deref(), Some("rcu_sched"));
    assert!(stall.self_detected);
    assert_eq!(stall.cpus, [6]);
    assert_eq!(stall.ticks_this_gp, Some(46220));
    assert_eq!(stall.jiffies, Some(46221));
    assert_eq!(stall.g, Some(2577));
    assert_eq!(stall.q, Some(7220));
    assert_eq!(stall.ncpus, Some(16));
    assert_eq!(stall.fqs, Some(21190));
    let task = stall.task.as_ref().expect("stalled task");
    assert_eq!((task.comm.as_str(), task.pid), ("wordpress-manag", 3119));
    assert_eq!(stall.rip_func.as_deref(), Some("filemap_get_read_batch"));
    assert_eq!(a.stats.stall_reports, 2);
    assert_eq!(a.stats.longest_stall_jiffies, Some(46221));
    // Two different grace periods (g=4053, g=2577) on different kernels.
    assert!(!a.stats.livelock);
}

#[test]
fn seed_gpf_time_and_lines_point_into_the_mail() {
    let Some(log) = seed() else { return };
    let a = analyze(&log, Options::default());
    let gpf = &a.crashes[2];
    assert_eq!(gpf.time_s, Some(104.587469));
    let text = String::from_utf8_lossy(&log);
    let line = text.lines().nth(gpf.start_line as usize - 1).unwrap();
    assert!(line.contains("Oops: general protection fault"), "{line}");
}

#[test]
fn quoted_seed_in_a_reply_gives_the_same_titles() {
    let Some(log) = seed() else { return };
    let quoted: Vec<u8> = String::from_utf8_lossy(&log)
        .lines()
        .map(|l| format!("> {l}\n"))
        .collect::<String>()
        .into_bytes();
    let a = analyze(
        &quoted,
        Options {
            mail: Some(true),
            ..Options::default()
        },
    );
    let b = analyze(&log, Options::default());
    let ta: Vec<&str> = a.crashes.iter().map(|c| c.title.as_str()).collect();
    let tb: Vec<&str> = b.crashes.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(ta, tb);
}

/// The report in the seed thread, as the target of a test: the stall by
/// kind, the other crashes by title, and a sentence saying so.
#[test]
fn seed_report_is_the_default_target() {
    let Some(raw) = seed() else { return };
    let mail = lorebot::mail::Mail::parse(&raw, 1 << 20).unwrap();
    let (target, why) =
        lorebot::verdict::target::from_report(&mail).expect("the seed shows crashes");
    assert_eq!(target.kinds, ["rcu-stall"]);
    assert_eq!(
        target.titles,
        [
            "WARNING in ceph_put_wrbuffer_cap_refs",
            "BUG: unable to handle kernel NULL pointer dereference in ceph_invalidate_folio",
            "general protection fault in netfs_alloc_request",
        ]
    );
    assert!(
        why.starts_with("kind rcu-stall or \"WARNING in ceph_put_wrbuffer_cap_refs\""),
        "{why}"
    );
    assert!(
        why.contains("INFO: rcu detected stall in filemap_get_read_batch"),
        "{why}"
    );
}
