//! The reply mail, composed for a patch made by `git format-patch` in
//! reply to a bug report: threading, recipients, the table within 80
//! columns, and Tested-by only for FIXED.

mod support;

use std::process::Command;

use lorebot::mail::{Address, Mail};
use lorebot::reply::{self, Identity, Logs, Tested};
use lorebot::verdict::ArmSummary;
use lorebot::verdict::protocol::{self, Next, Policy, Tally, Verdict};

fn git(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    support::run(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.org")
            .env("GIT_COMMITTER_NAME", "Ada Author")
            .env("GIT_COMMITTER_EMAIL", "ada@example.org")
            .env("GIT_CONFIG_GLOBAL", "/dev/null"),
    )
}

/// `[PATCH] mm/filemap: ...` sent in reply to a report, To the list, Cc a
/// maintainer.
fn patch_mail() -> Mail {
    static MAIL: std::sync::OnceLock<Mail> = std::sync::OnceLock::new();
    MAIL.get_or_init(make_patch_mail).clone()
}

fn make_patch_mail() -> Mail {
    let dir = support::tempdir("reply-repo");
    git(&dir, &["init", "-q", "-b", "master"]);
    std::fs::write(dir.join("filemap.c"), "int x;\n").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "initial"]);
    std::fs::write(dir.join("filemap.c"), "int x;\nint y;\n").unwrap();
    git(
        &dir,
        &[
            "commit",
            "-qam",
            "mm/filemap: don't busy-loop on folios marked PG_private_2",
        ],
    );
    let raw = git(
        &dir,
        &[
            "format-patch",
            "-1",
            "--stdout",
            "--to=linux-mm@kvack.org",
            "--cc=Willy Maintainer <willy@example.org>",
            "--in-reply-to=<report-1@example.org>",
        ],
    );
    Mail::parse(&raw, 1 << 20).unwrap()
}

fn decision(t: Tally) -> protocol::Decision {
    match protocol::next(&Policy::new(40), &t) {
        Next::Done(d) => d,
        Next::Run(arm) => panic!("undecided, wants {arm:?}"),
    }
}

fn bot() -> Identity {
    Identity {
        name: "lorebot".to_owned(),
        email: "bot@example.org".to_owned(),
    }
}

fn tested() -> Tested {
    Tested {
        job: "jobs/ceph-fscache.yaml".to_owned(),
        reproducer_timeout_s: 600,
        cpus: 8,
        base_label: "v6.10.1".to_owned(),
        base_commit: "4c2b7a1e0d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b".to_owned(),
        patch_subject: "[PATCH] mm/filemap: don't busy-loop on folios marked PG_private_2"
            .to_owned(),
        patched_commit: Some("9e0d5120aabbccddeeff00112233445566778899".to_owned()),
    }
}

fn stalled_base() -> ArmSummary {
    let mut base = ArmSummary {
        runs: 20,
        target_runs: 6,
        ..ArmSummary::default()
    };
    base.outcomes.insert("crashed", 7);
    base.outcomes.insert("clean", 13);
    base.stalls.runs_with_stalls = 6;
    base.stalls.first_stall_s =
        lorebot::verdict::Quartiles::of(&[141.0, 212.0, 330.0, 200.0, 250.0, 180.0]);
    base.stalls.longest_stall_s = Some(63.0);
    base.stalls.longest_stall_jiffies = Some(15750);
    base.stalls.hz = Some(250);
    base.stalls.top_functions = vec![("filemap_get_read_batch".to_owned(), 5)];
    base.other_crashes = vec![("WARNING in ceph_put_wrbuffer_cap_refs".to_owned(), 1)];
    base
}

#[test]
fn fixed_reply_is_threaded_and_says_why() {
    let patch = patch_mail();
    let d = decision(Tally {
        base_crashes: 6,
        base_runs: 20,
        patched_runs: 17,
        ..Tally::default()
    });
    assert_eq!(d.verdict, Verdict::Fixed);
    let patched = ArmSummary {
        runs: 17,
        ..ArmSummary::default()
    };
    let list = Address {
        name: None,
        email: "linux-mm@kvack.org".to_owned(),
    };
    let r = reply::compose(
        &patch,
        Some(&list),
        &bot(),
        &tested(),
        &reply::Result::Ran {
            decision: &d,
            base: &stalled_base(),
            patched: &patched,
            target: "kind rcu-stall, from the report in the thread".to_owned(),
            logs: Logs::Url("https://lorebot.example.org/logs/42/".to_owned()),
        },
    );
    assert_eq!(
        r.subject,
        "Re: [PATCH] mm/filemap: don't busy-loop on folios marked PG_private_2"
    );
    assert_eq!(r.in_reply_to, patch.message_id);
    assert_eq!(
        r.references,
        ["report-1@example.org".to_owned(), patch.message_id.clone()]
    );
    assert_eq!(r.to[0].email, "ada@example.org");
    let cc: Vec<&str> = r.cc.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(cc, ["linux-mm@kvack.org", "willy@example.org"]);

    for line in r.body.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
    }
    let body = &r.body;
    assert!(body.starts_with("Tested: v6.10.1 (base 4c2b7a1e0d9f) vs base + \"[PATCH] mm/filemap"));
    assert!(
        body.contains("the bug (runs)        6/20 = 30% [15-52%]"),
        "{body}"
    );
    assert!(body.contains("0/17 = 0% [0-20%]"), "{body}");
    assert!(body.contains("filemap_get_read_batch (5/6)"));
    assert!(body.contains("63 s (15750 jiffies, HZ=250)"));
    assert!(body.contains("other crash (base): 1x WARNING in ceph_put_wrbuffer_cap_refs"));
    assert!(
        body.contains("Verdict: FIXED (after 17 clean runs: SPRT p0=0.30 vs p1=0.01 needs 14,"),
        "{body}"
    );
    assert!(body.contains("Logs: https://lorebot.example.org/logs/42/"));
    assert!(
        body.trim_end()
            .ends_with("Tested-by: lorebot <bot@example.org>")
    );

    // What goes on the wire parses back to the same thread position.
    let sent = Mail::parse(&r.to_bytes("Wed, 25 Nov 2026 12:00:00 +0000"), 1 << 20).unwrap();
    assert_eq!(sent.message_id, r.message_id);
    assert_eq!(sent.in_reply_to.as_deref(), Some(patch.message_id.as_str()));
    assert_eq!(sent.references, r.references);
    assert_eq!(sent.subject, r.subject);
}

#[test]
fn still_reproduces_has_no_tested_by() {
    let d = decision(Tally {
        base_crashes: 6,
        base_runs: 20,
        patched_crashes: 2,
        patched_runs: 2,
        ..Tally::default()
    });
    assert_eq!(d.verdict, Verdict::StillReproduces);
    let patched = ArmSummary {
        runs: 2,
        target_runs: 2,
        ..ArmSummary::default()
    };
    let r = reply::compose(
        &patch_mail(),
        None,
        &bot(),
        &tested(),
        &reply::Result::Ran {
            decision: &d,
            base: &stalled_base(),
            patched: &patched,
            target: "kind rcu-stall".to_owned(),
            logs: Logs::Inline("INFO: rcu detected stall in filemap_get_read_batch\nrcu: INFO: rcu_sched self-detected stall on CPU".to_owned()),
        },
    );
    assert!(r.body.contains("Verdict: STILL REPRODUCES"), "{}", r.body);
    assert!(
        r.body.contains("self-detected stall on CPU"),
        "the report inline without a log URL"
    );
    assert!(!r.body.contains("Tested-by"));
}

#[test]
fn apply_failure_names_patch_and_hunk() {
    let mut t = tested();
    t.patched_commit = None;
    let r = reply::compose(
        &patch_mail(),
        None,
        &bot(),
        &t,
        &reply::Result::ApplyFailed {
            patch: "patch 1/1 \"mm/filemap: don't busy-loop\"".to_owned(),
            detail:
                "error: patch failed: mm/filemap.c:2360\nerror: mm/filemap.c: patch does not apply"
                    .to_owned(),
        },
    );
    assert!(r.body.contains("Verdict: APPLY FAILED"));
    assert!(r.body.contains("patch 1/1"));
    assert!(r.body.contains("  error: patch failed: mm/filemap.c:2360"));
    assert!(!r.body.contains("Tested-by"));
    // The same answer to the same patch keeps its Message-ID: a retry after
    // a crash is one mail in the archive, not two.
    let again = reply::compose(
        &patch_mail(),
        None,
        &bot(),
        &t,
        &reply::Result::BuildFailed {
            error: "mm/filemap.c:2361:5: error: expected ';' before '}' token".to_owned(),
            log: None,
        },
    );
    assert_eq!(again.message_id, r.message_id);
    assert!(again.body.contains("Verdict: BUILD FAILED"));
    assert!(again.body.contains("mm/filemap.c:2361:5: error"));
}
