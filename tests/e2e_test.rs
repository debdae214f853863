//! `lorebot test` end to end on the demo: a real Linux 6.1 tree with a
//! regression that makes reads stall in filemap_get_read_batch() in about
//! 40% of the runs, the fix posted in reply to the report, real builds and
//! real QEMU runs, and the reply.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The demo job, pointed at a demo tree under the tests' cache.
fn demo_job(dir: &Path) -> PathBuf {
    let tree = support::run(
        Command::new(repo().join("scripts/demo-tree")).arg(support::cache_dir().join("demo-linux")),
    );
    let tree = String::from_utf8_lossy(&tree).trim().to_owned();
    let configs = repo().join("kernel-configs");
    let text = std::fs::read_to_string(repo().join("jobs/filemap-stall.yaml"))
        .unwrap()
        .replace("~/.local/share/lorebot/demo/linux", &tree)
        .replace(
            "[vm-base.config, lkdtm.config]",
            &format!(
                "[{}, {}]",
                configs.join("vm-base.config").display(),
                configs.join("lkdtm.config").display()
            ),
        );
    let job = dir.join("filemap-stall.yaml");
    std::fs::write(&job, text).unwrap();
    job
}

/// The demo thread: the report, and the fix posted in reply to it.
fn thread(dir: &Path) -> PathBuf {
    let data = repo().join("scripts/demo-data");
    let mut mbox = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n".to_vec();
    mbox.extend(std::fs::read(data.join("report.eml")).unwrap());
    mbox.extend(b"\n");
    mbox.extend(std::fs::read(data.join("fix.patch")).unwrap());
    let path = dir.join("thread.mbox");
    std::fs::write(&path, mbox).unwrap();
    path
}

#[test]
fn fix_for_a_flaky_stall_is_fixed() {
    let dir = support::tempdir("e2e-fixed");
    let out = support::run(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .arg("test")
            .arg("--mbox")
            .arg(thread(&dir))
            .arg("--job")
            .arg(demo_job(&dir))
            .arg("--data-dir")
            .arg(support::cache_dir().join("test-data"))
            .args(["--from", "lorebot <bot@example.org>"])
            .env("LOREBOT_ACCEL", "tcg"),
    );
    let reply = String::from_utf8_lossy(&out);
    println!("{reply}");
    let mail = lorebot::mail::Mail::parse(&out, 1 << 20).unwrap();
    assert_eq!(
        mail.subject,
        "Re: [PATCH] mm/filemap: don't busy-loop on folios marked PG_private_2"
    );
    assert_eq!(
        mail.in_reply_to.as_deref(),
        Some("20240729090000-filemap-private-2-v1@example.org")
    );
    assert_eq!(mail.to[0].email, "fixer@example.org");
    let body = String::from_utf8_lossy(&mail.body);
    assert!(
        body.contains("Counted as the bug: kind rcu-stall, from the report"),
        "{body}"
    );
    assert!(body.contains("Verdict: FIXED"), "{body}");
    assert!(body.contains("filemap_get_read_batch ("), "{body}");
    assert!(
        body.trim_end()
            .ends_with("Tested-by: lorebot <bot@example.org>"),
        "{body}"
    );
    for line in body.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
    }
}
