//! `lorebot test` end to end on the demo: a real Linux 6.1 tree with a
//! regression that makes reads stall in filemap_get_read_batch() in about
//! 40% of the runs, a patch posted in reply to the report, real builds and
//! real QEMU runs, and the reply. (The fix itself goes through `lorebot
//! watch` in tests/watch.rs.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One test at a time: they share the tree's worktree and the two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The demo thread: the report, and `patch` posted in reply to it.
fn thread(dir: &Path, patch: &[u8]) -> PathBuf {
    let data = repo().join("scripts/demo-data");
    let mut mbox = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n".to_vec();
    mbox.extend(std::fs::read(data.join("report.eml")).unwrap());
    mbox.extend(b"\n");
    mbox.extend(patch);
    let path = dir.join("thread.mbox");
    std::fs::write(&path, mbox).unwrap();
    path
}

/// `lorebot test` on the demo thread with `patch` as the proposed fix:
/// the reply.
fn lorebot_test(name: &str, patch: &[u8]) -> lorebot::mail::Mail {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = support::tempdir(name);
    let out = support::run(
        Command::new(env!("CARGO_BIN_EXE_lorebot"))
            .arg("test")
            .arg("--mbox")
            .arg(thread(&dir, patch))
            .arg("--job")
            .arg(support::demo_job(&dir, &[]))
            .arg("--data-dir")
            .arg(support::cache_dir().join("test-data"))
            .args(["--from", "lorebot <bot@example.org>"])
            .env("LOREBOT_ACCEL", "tcg"),
    );
    println!("{}", String::from_utf8_lossy(&out));
    let mail = lorebot::mail::Mail::parse(&out, 1 << 20).unwrap();
    // Within 80 columns, but for a path or URL alone on its line.
    for line in String::from_utf8_lossy(&mail.body).lines() {
        let alone = !line.trim().contains(' ') && line.trim().contains('/');
        assert!(
            line.chars().count() <= 80 || alone,
            "over 80 columns: {line:?}"
        );
    }
    mail
}

/// A patch on the demo tree made with `git format-patch`: `edit` changes
/// mm/filemap.c in a scratch clone; with `on_top_of`, that edit is
/// committed first and left out of the patch (so the patch does not
/// apply to the tree).
fn demo_patch(
    name: &str,
    on_top_of: Option<(&str, &str)>,
    edit: (&str, &str),
    subject: &str,
) -> Vec<u8> {
    let dir = support::tempdir(&format!("patch-{name}"));
    let clone = dir.join("linux");
    let tree = support::demo_tree();
    let git = |args: &[&str]| {
        support::run(
            Command::new("git")
                .arg("-C")
                .arg(&clone)
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "Pat Cher")
                .env("GIT_AUTHOR_EMAIL", "pat@example.org")
                .env("GIT_COMMITTER_NAME", "Pat Cher")
                .env("GIT_COMMITTER_EMAIL", "pat@example.org"),
        )
    };
    support::run(
        Command::new("git")
            .args(["clone", "-q", "--shared", "--no-checkout"])
            .arg(&tree)
            .arg(&clone),
    );
    git(&["sparse-checkout", "set", "mm"]);
    git(&["checkout", "-q", "master"]);
    let file = clone.join("mm/filemap.c");
    let commit = |(from, to): (&str, &str), message: &str| {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{from:?} not in mm/filemap.c");
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
        git(&["commit", "-q", "-am", message]);
    };
    if let Some(first) = on_top_of {
        commit(first, "mm/filemap: an unposted change");
    }
    commit(edit, subject);
    let mut patch = git(&["format-patch", "-1", "--stdout"]);
    let headers = "In-Reply-To: <demo-report-1@example.org>\nReferences: <demo-report-1@example.org>\nSubject: ";
    let text = String::from_utf8(patch)
        .unwrap()
        .replacen("Subject: ", headers, 1);
    patch = text.into_bytes();
    patch
}

#[test]
fn patch_that_does_not_fix_still_reproduces() {
    let patch = demo_patch(
        "nofix",
        None,
        (
            "The copy fails about once in 100000 folios.",
            "The copy fails now and then.",
        ),
        "mm/filemap: say less about how often the cache copy fails",
    );
    let body = String::from_utf8_lossy(&lorebot_test("e2e-still", &patch).body).into_owned();
    assert!(body.contains("Verdict: STILL REPRODUCES"), "{body}");
    assert!(!body.contains("Tested-by"), "{body}");
}

#[test]
fn patch_on_other_context_does_not_apply() {
    let patch = demo_patch(
        "noapply",
        Some((
            "static void filemap_cache_folio(struct folio *folio)\n{",
            "static void filemap_cache_folio(struct folio *folio)\n{\n\t/* first */",
        )),
        ("\t/* first */", "\t/* first, then second */"),
        "mm/filemap: a change on top of one never posted",
    );
    let body = String::from_utf8_lossy(&lorebot_test("e2e-apply", &patch).body).into_owned();
    assert!(body.contains("Verdict: APPLY FAILED"), "{body}");
    assert!(
        body.contains("patch 1/1 \"mm/filemap: a change on top of one never posted\""),
        "{body}"
    );
    assert!(body.contains("mm/filemap.c"), "the file is named: {body}");
}

#[test]
fn patch_that_breaks_the_build_is_build_failed() {
    let patch = demo_patch(
        "nobuild",
        None,
        (
            "\tfolio_clear_private_2(folio);\n}",
            "\tfolio_clear_private_2(folio)\n}",
        ),
        "mm/filemap: clear the mark (without a semicolon)",
    );
    let body = String::from_utf8_lossy(&lorebot_test("e2e-build", &patch).body).into_owned();
    assert!(body.contains("Verdict: BUILD FAILED"), "{body}");
    assert!(
        body.contains("mm/filemap.c:"),
        "the error names file:line: {body}"
    );
}
