//! Real kernel builds: Linux 6.1 from the git tree that scripts/kernel-tree
//! makes of Debian's linux-source-6.1, configured from kernel-configs/.
//!
//! The tests build in a scratch clone of that tree, with build directories
//! kept between runs under `<lorebot cache>/test-builds/` (so only the first
//! run compiles everything: 7-10 minutes on 2 cores), and a fresh kernel
//! cache per test. They hold a lock on that directory while they use it,
//! so they run one after another, also across processes. Run with
//! `--nocapture` to see the build times.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lorebot::build::{
    BuildError, Builder, CheckoutError, ConfigBase, ConfigError, KernelConfig, Progress,
};
use support::{run, tempdir};

fn lorebot_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOREBOT_CACHE") {
        return dir.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    cache.join("lorebot")
}

fn kernel_configs(names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("kernel-configs")
                .join(n)
        })
        .collect()
}

/// The request the VM tests boot: tinyconfig + vm-base + lkdtm.
fn lkdtm_config() -> KernelConfig {
    KernelConfig {
        base: ConfigBase::Tinyconfig,
        fragments: kernel_configs(&["vm-base.config", "lkdtm.config"]),
    }
}

/// `scripts/kernel-tree`: the git repository of the Debian tree.
fn kernel_tree() -> PathBuf {
    let out = run(&mut Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/kernel-tree"
    )));
    PathBuf::from(String::from_utf8(out).unwrap().trim())
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = run(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.fsync=none", "-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "lorebot test")
        .env("GIT_AUTHOR_EMAIL", "test@lorebot")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_NAME", "lorebot test")
        .env("GIT_COMMITTER_EMAIL", "test@lorebot")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000"));
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// A scratch clone of the kernel tree (the cached tree itself is never
/// changed), locked for the caller, with its base commit.
struct Scratch {
    root: PathBuf,
    tree: PathBuf,
    base: String,
    _lock: File,
}

impl Scratch {
    fn new() -> Scratch {
        let origin = kernel_tree();
        let root = lorebot_cache().join("test-builds");
        std::fs::create_dir_all(&root).unwrap();
        let lock = File::create(root.join(".lock")).unwrap();
        lock.lock().unwrap();
        let tree = root.join("linux");
        if !tree.join(".git").is_dir() {
            let tmp = root.join("linux.tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            // --shared: objects stay in the cached tree, only files are copied.
            run(Command::new("git")
                .args(["clone", "-q", "--shared"])
                .arg(&origin)
                .arg(&tmp));
            std::fs::rename(&tmp, &tree).unwrap();
        }
        let base = git(&origin, &["rev-parse", "HEAD"]);
        git(&tree, &["fetch", "-q", origin.to_str().unwrap(), "HEAD"]);
        git(&tree, &["checkout", "-q", "-f", "--detach", &base]);
        Scratch {
            root,
            tree,
            base,
            _lock: lock,
        }
    }

    /// Checks out a commit of the base with `from` replaced by `to` in
    /// `file`; returns its id and the 1-based line where `to` starts.
    fn commit_change(&self, file: &str, from: &str, to: &str) -> (String, usize) {
        git(
            &self.tree,
            &["checkout", "-q", "-f", "--detach", &self.base],
        );
        let path = self.tree.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text
            .find(from)
            .unwrap_or_else(|| panic!("{from:?} not in {file}"));
        let line = text[..at].lines().count() + 1;
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        git(
            &self.tree,
            &["commit", "-q", "-a", "-m", &format!("test: change {file}")],
        );
        (git(&self.tree, &["rev-parse", "HEAD"]), line)
    }

    fn checkout(&self, commit: &str) {
        git(&self.tree, &["checkout", "-q", "-f", "--detach", commit]);
    }

    /// Kept between runs: builds after the first are incremental.
    fn build_dir(&self) -> PathBuf {
        self.root.join("build-lkdtm")
    }
}

/// Builds, recording the progress events and the time taken.
fn build(
    builder: &Builder,
    scratch: &Scratch,
    commit: &str,
    config: &KernelConfig,
) -> (
    Result<lorebot::build::Kernel, BuildError>,
    Vec<Progress>,
    Duration,
) {
    let mut events = Vec::new();
    let start = Instant::now();
    let result = builder.build(
        &scratch.tree,
        commit,
        config,
        &scratch.build_dir(),
        &mut |p| events.push(p),
    );
    (result, events, start.elapsed())
}

fn objects_compiled(events: &[Progress]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Progress::Compiling { file, .. } => Some(file.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn lkdtm_kernel_builds_then_comes_from_the_cache_without_make() {
    let scratch = Scratch::new();
    let cache = tempdir("kernel-cache");
    let builder = Builder::new(&cache);

    let (kernel, events, took) = build(&builder, &scratch, &scratch.base, &lkdtm_config());
    let kernel = kernel.unwrap();
    eprintln!(
        "build of {} (tinyconfig + vm-base + lkdtm): {:.1} s, {} objects compiled",
        &scratch.base[..12],
        took.as_secs_f64(),
        objects_compiled(&events).len()
    );
    assert!(!kernel.cached);
    assert_eq!(events.first(), Some(&Progress::Configuring));
    assert_eq!(events.last(), Some(&Progress::Done { cached: false }));
    // A bzImage: the boot protocol's "HdrS" magic at 0x202.
    let image = std::fs::read(&kernel.bzimage).unwrap();
    assert_eq!(
        &image[0x202..0x206],
        b"HdrS",
        "{}",
        kernel.bzimage.display()
    );
    assert!(kernel.bzimage.starts_with(cache.join("kernels")));
    let config = std::fs::read_to_string(&kernel.config_file).unwrap();
    for option in [
        "CONFIG_LKDTM=y",
        "CONFIG_SERIAL_8250_CONSOLE=y",
        "CONFIG_RCU_CPU_STALL_TIMEOUT=5",
    ] {
        assert!(config.lines().any(|l| l == option), "{option} missing");
    }
    assert!(kernel.dropped.is_empty(), "dropped: {:?}", kernel.dropped);
    // Fixed banner: "Linux version 6.1.x (lorebot@lorebot) ... #1 SMP Thu Jan  1 ... 2024".
    let generated = scratch.build_dir().join("include/generated");
    let compile_h = std::fs::read_to_string(generated.join("compile.h")).unwrap();
    for line in [
        "LINUX_COMPILE_BY\t\"lorebot\"",
        "LINUX_COMPILE_HOST\t\"lorebot\"",
    ] {
        assert!(compile_h.contains(line), "{compile_h}");
    }
    let uts_version = std::fs::read_to_string(generated.join("utsversion.h")).unwrap();
    assert!(
        uts_version.contains("\"#1 SMP Thu Jan  1 00:00:00 UTC 2024\""),
        "{uts_version}"
    );

    let log_before = std::fs::metadata(scratch.build_dir().join("lorebot-build.log"))
        .unwrap()
        .modified()
        .unwrap();
    let (again, events, took) = build(&builder, &scratch, &scratch.base, &lkdtm_config());
    let again = again.unwrap();
    eprintln!("same request again: {:.3} s", took.as_secs_f64());
    assert!(again.cached);
    assert_eq!(events, [Progress::Done { cached: true }]);
    assert_eq!(again.bzimage, kernel.bzimage);
    assert!(took < Duration::from_secs(1), "a cache hit took {took:?}");
    let log_after = std::fs::metadata(scratch.build_dir().join("lorebot-build.log"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(log_before, log_after, "make ran again");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn one_file_change_rebuilds_incrementally() {
    let scratch = Scratch::new();
    let cache = tempdir("kernel-cache-incremental");
    let builder = Builder::new(&cache);
    let (base, _, _) = build(&builder, &scratch, &scratch.base, &lkdtm_config());
    let base = base.unwrap();

    let (changed, _) = scratch.commit_change(
        "kernel/panic.c",
        "\"Kernel panic - not syncing: %s\\n\"",
        "\"Kernel panic - not syncing (lorebot test): %s\\n\"",
    );
    let (kernel, events, took) = build(&builder, &scratch, &changed, &lkdtm_config());
    let kernel = kernel.unwrap();
    let compiled = objects_compiled(&events);
    eprintln!(
        "incremental build after a change to kernel/panic.c: {:.1} s, {} objects compiled: {compiled:?}",
        took.as_secs_f64(),
        compiled.len()
    );
    assert!(!kernel.cached);
    assert_ne!(kernel.dir, base.dir);
    assert!(compiled.contains(&"kernel/panic.o"), "{compiled:?}");
    assert!(compiled.len() < 30, "not incremental: {compiled:?}");
    assert!(events.contains(&Progress::Linking));
    let image = std::fs::read(&kernel.bzimage).unwrap();
    assert_ne!(image, std::fs::read(&base.bzimage).unwrap());
    scratch.checkout(&scratch.base);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn compile_error_in_a_patch_names_the_file_and_line() {
    let scratch = Scratch::new();
    let cache = tempdir("kernel-cache-broken");
    let builder = Builder::new(&cache);
    let (broken, line) = scratch.commit_change(
        "kernel/panic.c",
        "int panic_on_oops = CONFIG_PANIC_ON_OOPS_VALUE;",
        "int panic_on_oops = lorebot_undeclared;",
    );
    let (result, _, took) = build(&builder, &scratch, &broken, &lkdtm_config());
    eprintln!("build with a compile error: {:.1} s", took.as_secs_f64());
    let err = result.unwrap_err();
    assert!(err.is_source_fault(), "{err}");
    let BuildError::Compile(failure) = err else {
        panic!("not a compile failure: {err}")
    };
    assert_eq!(
        failure.error.file.as_deref(),
        Some("kernel/panic.c"),
        "{failure}"
    );
    assert_eq!(failure.error.line, Some(line as u32), "{failure}");
    assert!(
        failure
            .error
            .message
            .contains("'lorebot_undeclared' undeclared"),
        "{failure}"
    );
    let log = std::fs::read_to_string(&failure.log).unwrap();
    assert!(
        log.contains("lorebot_undeclared"),
        "{}",
        failure.log.display()
    );
    assert!(!cache.join("kernels").exists(), "a failed build was cached");
    scratch.checkout(&scratch.base);
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn option_whose_dependency_is_off_is_reported_dropped() {
    // Only Kconfig runs: the cached tree is read, never written (O=).
    let tree = kernel_tree();
    let dir = tempdir("dropped");
    let fragment = dir.join("ext4.config");
    std::fs::write(
        &fragment,
        "# tinyconfig has no block layer\nCONFIG_EXT4_FS=y\n",
    )
    .unwrap();
    let mut config = lkdtm_config();
    config.fragments.push(fragment.clone());
    let builder = Builder::new(dir.join("cache"));
    let configured = builder
        .configure(
            &tree,
            &config,
            &lorebot_cache().join("test-builds/configure-only"),
            &mut |_| {},
        )
        .unwrap();
    let dropped: Vec<_> = configured
        .dropped
        .iter()
        .map(|d| {
            (
                d.request.name.as_str(),
                d.request.value.as_str(),
                d.actual.as_deref(),
            )
        })
        .collect();
    assert_eq!(dropped, [("CONFIG_EXT4_FS", "y", None)]);
    assert_eq!(configured.dropped[0].request.fragment, fragment);
    assert_eq!(configured.dropped[0].request.line, 2);
    let log = std::fs::read_to_string(&configured.log).unwrap();
    assert!(log.contains("Kconfig dropped CONFIG_EXT4_FS=y"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fragment_syntax_error_fails_the_build_before_make_naming_file_and_line() {
    let dir = tempdir("bad-fragment");
    let fragment = dir.join("typo.config");
    std::fs::write(&fragment, "CONFIG_LKDTM=y\n\nCONFIG_KASAN y\n").unwrap();
    let mut config = lkdtm_config();
    config.fragments.push(fragment.clone());
    let build_dir = dir.join("build");
    let err = Builder::new(dir.join("cache"))
        .build(
            &dir,
            "0123456789abcdef0123456789abcdef01234567",
            &config,
            &build_dir,
            &mut |p| panic!("progress {p:?} before the configuration was checked"),
        )
        .unwrap_err();
    assert!(!err.is_source_fault());
    assert!(
        matches!(err, BuildError::Config(ConfigError::Syntax { line: 3, .. })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: expected CONFIG_NAME=VALUE or # CONFIG_NAME is not set: \"CONFIG_KASAN y\"",
            fragment.display()
        )
    );
    assert!(!build_dir.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn source_that_is_not_the_commit_is_refused() {
    let scratch = Scratch::new();
    let cache = tempdir("kernel-cache-checkout");
    let builder = Builder::new(&cache);
    let other = "0123456789abcdef0123456789abcdef01234567";
    let (result, events, _) = build(&builder, &scratch, other, &lkdtm_config());
    assert!(
        matches!(
            result,
            Err(BuildError::Checkout(CheckoutError::WrongHead { .. }))
        ),
        "{result:?}"
    );
    assert!(events.is_empty());

    let panic_c = scratch.tree.join("kernel/panic.c");
    let text = std::fs::read_to_string(&panic_c).unwrap();
    std::fs::write(&panic_c, format!("{text}\n/* local edit */\n")).unwrap();
    let (result, _, _) = build(&builder, &scratch, &scratch.base, &lkdtm_config());
    scratch.checkout(&scratch.base);
    match result {
        Err(BuildError::Checkout(CheckoutError::Modified { file, .. })) => {
            assert_eq!(file, "kernel/panic.c")
        }
        other => panic!("expected a modified-file error, got {other:?}"),
    }

    let (result, _, _) = build(&builder, &scratch, "HEAD", &lkdtm_config());
    assert!(
        matches!(
            result,
            Err(BuildError::Checkout(CheckoutError::BadCommit { .. }))
        ),
        "{result:?}"
    );
    assert!(!cache.join("kernels").exists());
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn build_dir_in_use_by_another_process_is_waited_for() {
    let tree = kernel_tree();
    let build_dir = lorebot_cache().join("test-builds/configure-lock");
    std::fs::create_dir_all(&build_dir).unwrap();
    // What another lorebot process holds while it runs make there.
    let holder = File::create(build_dir.join(".lorebot-lock")).unwrap();
    holder.lock().unwrap();

    let config = lkdtm_config();
    let cache = tempdir("kernel-cache-lock");
    let (events_tx, events) = std::sync::mpsc::channel();
    let configuring = std::thread::spawn({
        let build_dir = build_dir.clone();
        move || {
            Builder::new(&cache)
                .configure(&tree, &config, &build_dir, &mut |p| {
                    events_tx.send(p).unwrap()
                })
                .map(|_| ())
        }
    });
    let first = events.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(first, Progress::WaitingForLock { .. }),
        "{first:?}"
    );
    assert!(
        events.recv_timeout(Duration::from_secs(2)).is_err(),
        "configured while the build directory was locked"
    );
    drop(holder);
    configuring.join().unwrap().unwrap();
    assert_eq!(
        events.try_iter().collect::<Vec<_>>(),
        [Progress::Configuring]
    );
}
