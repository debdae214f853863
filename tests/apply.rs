//! Target trees, worktrees and `git am -3`, on repositories and patches made
//! by `tests/fixtures/apply/make-repo.sh` (real `git format-patch` output).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use lorebot::tree::{
    Applied, ApplyFailure, ApplyOutcome, FailureReason, OpenError, PathProblem, Tree, WorktreeError,
};
use support::{run, tempdir};

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = tempdir(&format!("apply-{name}"));
        run(Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/apply/make-repo.sh"
        ))
        .arg(&dir));
        Fixture { dir }
    }

    fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    fn tree(&self) -> Tree {
        Tree::open(&self.repo()).unwrap()
    }

    /// The patch files of a set (`series`, `binary`), in order.
    fn patch_files(&self, set: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("patches").join(set))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    fn patches(&self, set: &str) -> Vec<Vec<u8>> {
        self.patch_files(set)
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    }

    fn hostile(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join("patches/hostile").join(name)).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// git without the user's configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .arg("-C")
        .arg(dir)
        .args(args));
    String::from_utf8(out).unwrap().trim_end().to_owned()
}

fn applied(outcome: ApplyOutcome) -> Applied {
    match outcome {
        ApplyOutcome::Applied(a) => a,
        ApplyOutcome::Failed(f) => panic!("expected the series to apply: {f}\n{}", f.message),
    }
}

fn failed(outcome: ApplyOutcome) -> ApplyFailure {
    match outcome {
        ApplyOutcome::Failed(f) => f,
        ApplyOutcome::Applied(a) => panic!("expected a failure, got {a:?}"),
    }
}

/// Clean: no change, no untracked or ignored file, no operation in
/// progress, HEAD at `at`.
fn assert_clean_at(wt: &Path, at: &str) {
    assert_eq!(git(wt, &["status", "--porcelain", "--ignored"]), "");
    assert_eq!(git(wt, &["rev-parse", "HEAD"]), at);
    let am_state = git(
        wt,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "rebase-apply",
        ],
    );
    assert!(!Path::new(&am_state).exists(), "{am_state} left behind");
}

/// Author, author date and message of a commit.
fn authorship(repo: &Path, commit: &str) -> String {
    git(repo, &["log", "-1", "--format=%an <%ae>%n%aD%n%B", commit])
}

#[test]
fn a_series_applied_on_its_exact_base_keeps_each_author_date_and_message() {
    let fx = Fixture::new("exact");
    let tree = fx.tree();
    let base = tree.resolve("v1.0").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    assert!(wt.prepare(base).unwrap().is_empty());
    let a = applied(wt.apply(&fx.patches("series")).unwrap());

    assert_eq!(a.base, base);
    assert_eq!(a.patches.len(), 3);
    assert!(!a.all_already_applied());
    let repo = fx.repo();
    // The result has exactly the content of the branch the patches came from.
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{}^{{tree}}", a.head)]),
        git(&repo, &["rev-parse", "series^{tree}"])
    );
    let subjects: Vec<&str> = a.patches.iter().map(|p| p.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "fs/foo: return 0 when reading at or past the end",
            "mm/bar: drop the unused counter",
            "foo: document reads past the end"
        ]
    );
    let mut parent = base.to_string();
    for (p, original) in a.patches.iter().zip(["series~2", "series~1", "series"]) {
        let commit = p.commit.expect("a new commit").to_string();
        assert_eq!(authorship(&repo, &commit), authorship(&repo, original));
        assert_eq!(git(&repo, &["rev-parse", &format!("{commit}^")]), parent);
        assert_eq!(
            git(&repo, &["log", "-1", "--format=%cn <%ce> %cD|%aD", &commit])
                .split_once('|')
                .map(|(c, a)| (c.to_owned(), a.to_owned()))
                .unwrap(),
            (
                format!(
                    "lorebot <lorebot@localhost> {}",
                    git(&repo, &["log", "-1", "--format=%aD", &commit])
                ),
                git(&repo, &["log", "-1", "--format=%aD", original])
            )
        );
        parent = commit;
    }
    assert_eq!(a.head.to_string(), parent);
    assert_clean_at(wt.path(), &parent);
    wt.finish().unwrap();
}

#[test]
fn the_same_series_on_the_same_base_gives_the_same_commits() {
    let fx = Fixture::new("same-ids");
    let tree = fx.tree();
    let base = tree.resolve("v1.0").unwrap();
    let heads: Vec<_> = ["wt-a", "wt-b"]
        .iter()
        .map(|name| {
            let mut wt = tree.worktree(&fx.dir.join(name)).unwrap();
            wt.prepare(base).unwrap();
            applied(wt.apply(&fx.patches("series")).unwrap()).head
        })
        .collect();
    assert_eq!(heads[0], heads[1]);
}

#[test]
fn hunks_moved_by_six_lines_still_apply() {
    let fx = Fixture::new("moved");
    let tree = fx.tree();
    let base = tree.resolve("moved").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    wt.prepare(base).unwrap();
    let a = applied(wt.apply(&fx.patches("series")).unwrap());
    assert!(a.patches.iter().all(|p| p.commit.is_some()));
    let foo = std::fs::read_to_string(wt.path().join("fs/foo.c")).unwrap();
    assert!(
        foo.contains(" *  - nothing ever grows it.\n"),
        "the base's change is kept"
    );
    assert!(foo.contains("\tif (*pos >= f->size)\n\t\treturn 0;\n\tavail = f->size - *pos;\n"));
}

#[test]
fn a_changed_context_line_is_merged_three_way() {
    let fx = Fixture::new("context");
    let tree = fx.tree();
    let base = tree.resolve("context").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    wt.prepare(base).unwrap();
    // Without a 3-way merge the first patch does not apply here.
    let plain = Command::new("git")
        .arg("-C")
        .arg(wt.path())
        .args(["apply", "--check"])
        .arg(&fx.patch_files("series")[0])
        .output()
        .unwrap();
    assert!(!plain.status.success());

    let a = applied(wt.apply(&fx.patches("series")).unwrap());
    assert_eq!(a.patches.len(), 3);
    let foo = std::fs::read_to_string(wt.path().join("fs/foo.c")).unwrap();
    assert!(foo.contains(
        "\tconst struct foo_file *f = file->private_data;\n\tsize_t avail;\n\n\tif (*pos >= f->size)\n"
    ));
}

#[test]
fn a_conflict_names_the_patch_file_and_hunk_and_leaves_the_base_clean() {
    let fx = Fixture::new("conflict");
    let tree = fx.tree();
    let base = tree.resolve("conflict").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    wt.prepare(base).unwrap();
    let f = failed(wt.apply(&fx.patches("series")).unwrap());

    assert_eq!((f.index, f.total), (2, 3));
    assert_eq!(f.subject, "mm/bar: drop the unused counter");
    assert_eq!(f.base, base);
    let FailureReason::DoesNotApply { places } = &f.reason else {
        panic!("{:?}", f.reason)
    };
    assert_eq!(places.len(), 1);
    assert_eq!(places[0].file, "mm/bar.c");
    assert!(places[0].conflict);
    let hunk = places[0].hunk.as_ref().expect("the failing hunk");
    assert_eq!((hunk.number, hunk.line), (2, 37));
    assert!(
        hunk.header
            .starts_with("@@ -37,7 +36,6 @@ unsigned long bar_usage(void)")
    );
    assert!(
        f.message
            .contains("CONFLICT (content): Merge conflict in mm/bar.c")
    );
    assert!(!f.message.contains("hint:"));
    assert_eq!(
        f.to_string(),
        "patch 2/3 \"mm/bar: drop the unused counter\" does not apply: mm/bar.c hunk #2 \
         at line 37 (@@ -37,7 +36,6 @@ unsigned long bar_usage(void)), merge conflict"
    );
    // Not even patch 1, which applied, is left.
    assert_clean_at(wt.path(), &base.to_string());

    // The worktree is usable at once.
    let a = applied(wt.apply(&fx.patches("series")[..1]).unwrap());
    assert_eq!(a.patches.len(), 1);
}

#[test]
fn patches_already_in_the_base_are_reported_as_such() {
    let fx = Fixture::new("already");
    let tree = fx.tree();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();

    // Patch 1 went upstream under another commit id.
    let base = tree.resolve("upstream").unwrap();
    wt.prepare(base).unwrap();
    let a = applied(wt.apply(&fx.patches("series")).unwrap());
    let applied_now: Vec<bool> = a.patches.iter().map(|p| p.already_applied()).collect();
    assert_eq!(applied_now, [true, false, false]);
    assert!(!a.all_already_applied());
    assert_eq!(
        git(&fx.repo(), &["rev-parse", &format!("{}~2", a.head)]),
        base.to_string()
    );

    // The whole series is in the base.
    let base = tree.resolve("series").unwrap();
    wt.prepare(base).unwrap();
    let a = applied(wt.apply(&fx.patches("series")).unwrap());
    assert!(a.all_already_applied());
    assert_eq!(a.head, base);
    assert_clean_at(wt.path(), &base.to_string());
}

#[test]
fn a_binary_patch_applies() {
    let fx = Fixture::new("binary");
    let tree = fx.tree();
    let base = tree.resolve("v1.0").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    wt.prepare(base).unwrap();
    let patches = fx.patches("binary");
    assert!(
        String::from_utf8_lossy(&patches[0]).contains("GIT binary patch"),
        "the fixture is a binary patch"
    );
    let a = applied(wt.apply(&patches).unwrap());
    let repo = fx.repo();
    for file in ["firmware/blob.bin", "firmware/new.bin"] {
        assert_eq!(
            git(&repo, &["rev-parse", &format!("{}:{file}", a.head)]),
            git(&repo, &["rev-parse", &format!("binary:{file}")]),
            "{file}"
        );
    }
}

#[test]
fn patches_reaching_outside_the_tree_are_refused_before_anything_is_applied() {
    let fx = Fixture::new("hostile");
    let tree = fx.tree();
    let base = tree.resolve("v1.0").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    let first = fx.patches("series").remove(0);
    for (name, path, problem) in [
        ("dotdot.patch", "a/../outside.c", PathProblem::ParentDir),
        (
            "dotgit.patch",
            "a/.git/hooks/post-checkout",
            PathProblem::GitDir,
        ),
        ("absolute.patch", "/etc/foo.c", PathProblem::Absolute),
    ] {
        wt.prepare(base).unwrap();
        let f = failed(wt.apply(&[first.clone(), fx.hostile(name)]).unwrap());
        assert_eq!(f.index, 2, "{name}");
        assert_eq!(
            f.reason,
            FailureReason::OutsideTree {
                path: path.to_owned(),
                problem
            },
            "{name}"
        );
        assert!(f.to_string().contains(path), "{f}");
        assert_clean_at(wt.path(), &base.to_string());
    }
    assert!(!fx.dir.join("outside.c").exists());
    assert!(!fx.repo().join(".git/hooks/post-checkout").exists());
}

#[test]
fn a_mail_without_a_diff_is_refused() {
    let fx = Fixture::new("no-diff");
    let tree = fx.tree();
    let base = tree.resolve("v1.0").unwrap();
    let mut wt = tree.worktree(&fx.dir.join("wt")).unwrap();
    wt.prepare(base).unwrap();
    let cover = git(
        &fx.repo(),
        &[
            "format-patch",
            "--cover-letter",
            "--stdout",
            "v1.0..series~2",
        ],
    );
    let cover = cover.split("\nFrom ").next().unwrap().as_bytes().to_vec();
    let f = failed(wt.apply(&[cover]).unwrap());
    assert_eq!(f.reason, FailureReason::NoDiff);
    assert!(
        f.to_string()
            .starts_with("patch 1/1 \"*** SUBJECT HERE ***\" holds no diff")
    );
}

#[test]
fn a_crashed_job_is_cleaned_up_by_the_next_prepare() {
    let fx = Fixture::new("crash");
    let tree = fx.tree();
    let path = fx.dir.join("wt");
    let base = tree.resolve("v1.0").unwrap();
    {
        let mut wt = tree.worktree(&path).unwrap();
        wt.prepare(tree.resolve("conflict").unwrap()).unwrap();
    }
    // A job died in the middle of `git am` (conflict markers written),
    // after a build left objects and a test left files.
    let am = Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_NAME", "x")
        .env("GIT_COMMITTER_EMAIL", "x@example.org")
        .arg("-C")
        .arg(&path)
        .args(["am", "-3"])
        .arg(&fx.patch_files("series")[1])
        .output()
        .unwrap();
    assert!(!am.status.success());
    assert!(
        std::fs::read_to_string(path.join("mm/bar.c"))
            .unwrap()
            .contains("<<<<<<<")
    );
    std::fs::write(path.join("fs/foo.o"), b"\x7fELF").unwrap();
    std::fs::write(path.join("junk.txt"), b"junk").unwrap();
    std::fs::write(path.join("Documentation/foo.rst"), b"edited").unwrap();
    let dead = {
        let mut child = Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    std::fs::write(fx.dir.join("wt.lock"), format!("{dead}\n")).unwrap();

    let mut wt = tree.worktree(&path).unwrap();
    let leftovers = wt.prepare(base).unwrap();
    assert_eq!(leftovers.unfinished_by, Some(dead));
    assert_eq!(leftovers.operation, Some("git am"));
    assert_clean_at(&path, &base.to_string());
    let a = applied(wt.apply(&fx.patches("series")).unwrap());
    assert_eq!(a.patches.len(), 3);
    wt.finish().unwrap();

    // A job that finished leaves nothing to report.
    let mut wt = tree.worktree(&path).unwrap();
    assert!(wt.prepare(base).unwrap().is_empty());
}

#[test]
fn a_worktree_is_held_by_one_job_at_a_time() {
    let fx = Fixture::new("lock");
    let tree = fx.tree();
    let path = fx.dir.join("wt");
    let wt = tree.worktree(&path).unwrap();
    match tree.worktree(&path) {
        Err(WorktreeError::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the worktree was handed out twice"),
    }
    // Another process too.
    let mbox = fx.patch_files("series")[0].clone();
    let out = Command::new(env!("CARGO_BIN_EXE_lorebot"))
        .arg("apply")
        .arg("--tree")
        .arg(fx.repo())
        .args(["--base", "v1.0", "--mbox"])
        .arg(&mbox)
        .arg("--worktree")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("is in use by pid {}", std::process::id())),
        "{stderr}"
    );
    drop(wt);
    tree.worktree(&path).unwrap();
}

#[test]
fn prepare_rewrites_only_the_files_that_differ() {
    let fx = Fixture::new("mtimes");
    let tree = fx.tree();
    let path = fx.dir.join("wt");
    let mut wt = tree.worktree(&path).unwrap();
    wt.prepare(tree.resolve("v1.0").unwrap()).unwrap();
    let files = [
        "fs/foo.c",
        "mm/bar.c",
        "Documentation/foo.rst",
        "firmware/blob.bin",
    ];
    // As if the last build was long ago.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    for f in files {
        std::fs::File::options()
            .write(true)
            .open(path.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let mtime = |f: &str| std::fs::metadata(path.join(f)).unwrap().modified().unwrap();

    // The docs branch differs from v1.0 in Documentation/foo.rst only.
    wt.prepare(tree.resolve("docs").unwrap()).unwrap();
    assert_ne!(mtime("Documentation/foo.rst"), old);
    for f in ["fs/foo.c", "mm/bar.c", "firmware/blob.bin"] {
        assert_eq!(mtime(f), old, "{f} was rewritten");
    }
    // After a series (fs/foo.c, mm/bar.c, the docs) and back.
    applied(wt.apply(&fx.patches("series")).unwrap());
    wt.prepare(tree.resolve("v1.0").unwrap()).unwrap();
    assert_eq!(mtime("firmware/blob.bin"), old);
    assert_eq!(wt.path(), path);
}

#[test]
fn bases_resolve_from_hashes_branches_remote_branches_and_tags() {
    let fx = Fixture::new("resolve");
    let repo = fx.repo();
    let tree = fx.tree();
    let master = git(&repo, &["rev-parse", "master"]);
    let series = git(&repo, &["rev-parse", "series"]);
    for (rev, want) in [
        (master.as_str(), &master),
        (&master[..8], &master),
        ("series", &series),
        ("v1.0", &master),
        ("series~1", &git(&repo, &["rev-parse", "series~1"])),
    ] {
        assert_eq!(&tree.resolve(rev).unwrap().to_string(), want, "{rev}");
    }
    let e = tree.resolve("no-such-branch").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("unknown revision 'no-such-branch' in {}", repo.display())
    );

    // lorebot's own clone, from a file:// URL.
    let url = format!("file://{}", repo.display());
    let clone = fx.dir.join("clone.git");
    let mirror = Tree::open_or_clone(&url, &clone).unwrap();
    assert_eq!(mirror.resolve("origin/series").unwrap().to_string(), series);
    assert_eq!(mirror.resolve("series").unwrap().to_string(), series);
    assert_eq!(mirror.resolve("v1.0").unwrap().to_string(), master);

    // A new commit upstream is seen after a fetch, on the reopened clone.
    git(&repo, &["checkout", "-q", "series"]);
    std::fs::write(repo.join("NEWS"), "news\n").unwrap();
    git(&repo, &["add", "NEWS"]);
    Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-C"])
        .arg(&repo)
        .args(["-c", "user.name=U", "-c", "user.email=u@example.org"])
        .args(["commit", "-q", "-m", "news"])
        .status()
        .unwrap();
    let new_tip = git(&repo, &["rev-parse", "series"]);
    assert_ne!(new_tip, series);
    let mirror = Tree::open_or_clone(&url, &clone).unwrap();
    assert_eq!(mirror.resolve("series").unwrap().to_string(), series);
    mirror.fetch().unwrap();
    assert_eq!(
        mirror.resolve("origin/series").unwrap().to_string(),
        new_tip
    );

    // A worktree of the clone works like one of the repository.
    let mut wt = mirror.worktree(&fx.dir.join("wt")).unwrap();
    wt.prepare(mirror.resolve("v1.0").unwrap()).unwrap();
    applied(wt.apply(&fx.patches("series")).unwrap());

    match Tree::open_or_clone("file:///elsewhere", &clone) {
        Err(e @ OpenError::OtherOrigin { .. }) => assert!(e.to_string().contains(&url), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a clone of another URL"),
    }
}

#[test]
fn a_main_checkout_or_another_directory_is_never_taken_for_a_worktree() {
    let fx = Fixture::new("not-wt");
    let tree = fx.tree();
    let e = tree.worktree(&fx.repo()).err().expect("refused");
    assert!(e.to_string().contains("main checkout"), "{e}");
    let other = fx.dir.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("precious"), "data").unwrap();
    let e = tree.worktree(&other).err().expect("refused");
    assert!(e.to_string().contains("not a git worktree"), "{e}");
    assert!(other.join("precious").exists());
}

fn lorebot_apply(fx: &Fixture, base: &str, extra: &[&str]) -> std::process::Output {
    let mbox = fx.dir.join("series.mbox");
    let mut data = Vec::new();
    for p in fx.patches("series") {
        data.extend_from_slice(&p);
    }
    std::fs::write(&mbox, data).unwrap();
    Command::new(env!("CARGO_BIN_EXE_lorebot"))
        .arg("apply")
        .arg("--tree")
        .arg(fx.repo())
        .args(["--base", base, "--mbox"])
        .arg(&mbox)
        .arg("--data-dir")
        .arg(fx.dir.join("data"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn cli_prints_the_commit_and_exits_1_when_a_patch_does_not_apply() {
    let fx = Fixture::new("cli");
    let out = lorebot_apply(&fx, "v1.0", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("applied 3 patches on "), "{stdout}");
    assert!(lines[1].starts_with("  [1/3] "));
    assert!(lines[1].ends_with(" fs/foo: return 0 when reading at or past the end"));
    let head = *lines.last().unwrap();
    assert_eq!(
        git(&fx.repo(), &["rev-parse", &format!("{head}^{{tree}}")]),
        git(&fx.repo(), &["rev-parse", "series^{tree}"])
    );

    let out = lorebot_apply(&fx, "conflict", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with(
            "APPLY FAILED: patch 2/3 \"mm/bar: drop the unused counter\" does not apply: mm/bar.c hunk #2"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("  | CONFLICT (content): Merge conflict in mm/bar.c\n"));

    let out = lorebot_apply(&fx, "conflict", &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["applied"], false);
    assert_eq!(v["failure"]["index"], 2);
    assert_eq!(v["failure"]["reason"]["places"][0]["hunk"]["number"], 2);

    let out = lorebot_apply(&fx, "series", &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["all_already_applied"], true);
    assert_eq!(v["patches"][0]["commit"], serde_json::Value::Null);

    let out = lorebot_apply(&fx, "no-such-rev", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown revision 'no-such-rev'"));
}
