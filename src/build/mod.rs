//! Kernel builds: a configuration merged from fragments, `make bzImage` in
//! a build directory kept per (tree, configuration) so that a patched
//! build after the base one is incremental, and built kernels cached by
//! (commit, configuration hash).
//!
//! Every failure is classified before it is reported, as syzkaller does:
//! the job's configuration ([`BuildError::Config`]), a source directory
//! that is not the commit asked for ([`BuildError::Checkout`]), the
//! source's own fault, i.e. the patch's ([`BuildError::Compile`]), or the
//! machine's ([`BuildError::Infra`]).
//!
//! Cache layout: `<cache_dir>/kernels/<commit>-<config hash, 16 digits>/`
//! holds `bzImage`, `config` (the final `.config`), `System.map` and
//! `build.log`. An entry appears whole or not at all (written to a
//! temporary directory, then renamed). A build directory holds
//! `lorebot-build.log` (the last build's make output, kept there when the
//! build fails) and `.lorebot-lock`, which keeps two lorebot processes
//! from running make in it at once.

mod config;
mod diagnose;
mod make;

use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use thiserror::Error;

pub use config::{
    ConfigBase, ConfigError, ConfigHash, ConfigPlan, DroppedOption, KernelConfig, OptionRequest,
    Override,
};
pub use diagnose::FirstError;

use config::PlannedBase;
use diagnose::Diagnosis;
use make::{Make, MakeFailure, Step};

/// What a build is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Another process holds the build directory; waiting for it.
    WaitingForLock { build_dir: PathBuf },
    /// Making the base configuration, merging fragments, olddefconfig.
    Configuring,
    /// One more object built (`objects` so far in this build).
    Compiling { objects: u32, file: String },
    /// Linking vmlinux and making the bzImage.
    Linking,
    /// The kernel is ready (`cached`: found in the cache, make not run).
    Done { cached: bool },
}

/// A built kernel, in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The cache entry holding the files below.
    pub dir: PathBuf,
    pub bzimage: PathBuf,
    /// The final `.config`.
    pub config_file: PathBuf,
    pub system_map: PathBuf,
    /// make's output for the build that made this kernel.
    pub log: PathBuf,
    pub config_hash: ConfigHash,
    /// Found in the cache: no make ran.
    pub cached: bool,
    /// Requested options that Kconfig did not keep.
    pub dropped: Vec<DroppedOption>,
}

/// A configured build directory (see [`Builder::configure`]).
#[derive(Debug, Clone)]
pub struct Configured {
    pub config_file: PathBuf,
    pub log: PathBuf,
    pub dropped: Vec<DroppedOption>,
}

/// Which make step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The base configuration or `make olddefconfig`.
    Configure,
    /// `make bzImage`.
    Compile,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Configure => "configuring",
            Stage::Compile => "make bzImage",
        })
    }
}

/// CONFIG_HZ of the kernel configuration at `config`, if it can be read.
pub fn config_hz(config: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(config).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|hz| hz.trim().parse().ok())
}

#[derive(Debug, Error)]
pub enum BuildError {
    /// The configuration cannot be read or parsed: the job's fault.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source directory is not the commit the kernel would be cached as.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// The source does not configure or compile: the patch's fault.
    #[error(transparent)]
    Compile(#[from] CompileFailure),
    /// The machine failed: a missing tool, a full disk, a killed process.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

#[derive(Debug, Error)]
pub enum CheckoutError {
    #[error("{commit:?} is not a full commit id (40 or 64 lowercase hexadecimal digits)")]
    BadCommit { commit: String },
    #[error("{}: not a git repository: {source}", dir.display())]
    NotRepository {
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("{}: HEAD is {head}, not commit {commit}", dir.display())]
    WrongHead {
        dir: PathBuf,
        head: String,
        commit: String,
    },
    #[error("{}: {file} differs from commit {commit}; a kernel cached as that commit must be built from it alone", dir.display())]
    Modified {
        dir: PathBuf,
        file: String,
        commit: String,
    },
    #[error("{}: {source}", dir.display())]
    Git {
        dir: PathBuf,
        #[source]
        source: git2::Error,
    },
}

/// The source failed to configure or build.
#[derive(Debug, Error)]
#[error("{stage} failed: {error} (build log: {})", log.display())]
pub struct CompileFailure {
    pub stage: Stage,
    /// The first error in make's output; make's own error line when no
    /// compiler or linker error was recognised.
    pub error: FirstError,
    pub log: PathBuf,
}

#[derive(Debug, Error)]
pub enum InfraError {
    #[error("{program} not found in PATH (scripts/install-kernel-deps installs the build tools)")]
    MissingProgram { program: &'static str },
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{stage} failed because of the machine, not the source: {reason} (build log: {})", log.display())]
    Make {
        stage: Stage,
        reason: String,
        log: PathBuf,
    },
    #[error("make bzImage succeeded without writing {} (build log: {})", path.display(), log.display())]
    NoImage { path: PathBuf, log: PathBuf },
}

impl BuildError {
    /// True when the source (the patch) is to blame, false when the job,
    /// the caller or the machine is.
    pub fn is_source_fault(&self) -> bool {
        matches!(self, BuildError::Compile(_))
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InfraError {
    let path = path.to_owned();
    move |source| InfraError::Io {
        action,
        path,
        source,
    }
}

/// Builds kernels into a cache.
#[derive(Debug, Clone)]
pub struct Builder {
    /// Built kernels go to `<cache_dir>/kernels/`.
    pub cache_dir: PathBuf,
    /// make's `-j`.
    pub jobs: usize,
}

/// Where a build log lives in a build directory.
const LOG_NAME: &str = "lorebot-build.log";
const LOCK_NAME: &str = ".lorebot-lock";

impl Builder {
    /// A builder that runs one make job per CPU.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Builder {
        Builder {
            cache_dir: cache_dir.into(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    fn entry_dir(&self, commit: &str, plan: &ConfigPlan) -> PathBuf {
        self.cache_dir
            .join("kernels")
            .join(format!("{commit}-{}", plan.hash().short()))
    }

    /// The cached kernel for `commit` built with `config`, if there is one.
    pub fn cached(
        &self,
        commit: &str,
        config: &KernelConfig,
    ) -> Result<Option<Kernel>, BuildError> {
        check_commit_id(commit)?;
        self.cached_plan(commit, &config.load()?)
    }

    fn cached_plan(&self, commit: &str, plan: &ConfigPlan) -> Result<Option<Kernel>, BuildError> {
        let dir = self.entry_dir(commit, plan);
        if !dir.is_dir() {
            return Ok(None);
        }
        let config_file = dir.join("config");
        let config = fs::read_to_string(&config_file)
            .map_err(io_error("cannot read cached config", &config_file))?;
        Ok(Some(Kernel {
            bzimage: dir.join("bzImage"),
            system_map: dir.join("System.map"),
            log: dir.join("build.log"),
            config_hash: plan.hash().clone(),
            dropped: plan.dropped(&config),
            config_file,
            cached: true,
            dir,
        }))
    }

    /// Builds `commit`, checked out (clean) in `source_dir`, with `config`,
    /// in `build_dir`, unless the cache has it. The fragments are read
    /// once, before anything runs: a bad one fails the build before make.
    ///
    /// Reuse one build directory per (source directory, configuration):
    /// make then rebuilds only what changed. Keep it at the same place
    /// relative to its source directory for every tree (e.g. `<dir>/linux`
    /// and `<dir>/build-<name>`): ccache's hits, which see paths relative to
    /// the build directory, then survive a tree that moved or was made anew.
    pub fn build(
        &self,
        source_dir: &Path,
        commit: &str,
        config: &KernelConfig,
        build_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Kernel, BuildError> {
        check_commit_id(commit)?;
        let plan = &config.load()?;
        if let Some(kernel) = self.cached_plan(commit, plan)? {
            tracing::info!(commit, config = %plan.hash(), dir = %kernel.dir.display(), "kernel cached");
            progress(Progress::Done { cached: true });
            return Ok(kernel);
        }
        check_checkout(source_dir, commit)?;
        let (_lock, source_dir, build_dir) = lock_build_dir(source_dir, build_dir, progress)?;
        // Another process may have built it while we waited.
        if let Some(kernel) = self.cached_plan(commit, plan)? {
            progress(Progress::Done { cached: true });
            return Ok(kernel);
        }
        let started = Instant::now();
        let make = Make::new(&source_dir, &build_dir)?;
        let log_path = build_dir.join(LOG_NAME);
        let mut log = File::create(&log_path).map_err(io_error("cannot create", &log_path))?;
        let dropped = configure_locked(&make, plan, &build_dir, &mut log, &log_path, progress)?;

        tracing::info!(commit, jobs = self.jobs, ccache = make.ccache(), build_dir = %build_dir.display(), "make bzImage");
        let mut objects = 0;
        let mut linking = false;
        let mut on_line = |line: &str| match make::step(line) {
            Some(Step::Compiled(file)) => {
                objects += 1;
                progress(Progress::Compiling {
                    objects,
                    file: file.to_owned(),
                });
            }
            Some(Step::Linking) if !linking => {
                linking = true;
                progress(Progress::Linking);
            }
            Some(Step::Linking) | None => {}
        };
        let args = [format!("-j{}", self.jobs.max(1)), "bzImage".to_owned()];
        make.run(Stage::Compile, &args, &mut log, &log_path, &mut on_line)
            .map_err(|failure| make_error(failure, Stage::Compile, &log_path))?;
        drop(log);
        let bzimage = build_dir.join("arch/x86/boot/bzImage");
        if !bzimage.is_file() {
            return Err(InfraError::NoImage {
                path: bzimage,
                log: log_path,
            }
            .into());
        }
        let kernel = self.store(commit, plan, &build_dir, dropped)?;
        tracing::info!(commit, objects, seconds = started.elapsed().as_secs_f64(), dir = %kernel.dir.display(), "kernel built");
        progress(Progress::Done { cached: false });
        Ok(kernel)
    }

    /// Only configures `build_dir` for `source_dir` (base, fragments,
    /// `make olddefconfig`) and reports the options Kconfig dropped.
    pub fn configure(
        &self,
        source_dir: &Path,
        config: &KernelConfig,
        build_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Configured, BuildError> {
        let plan = &config.load()?;
        let (_lock, source_dir, build_dir) = lock_build_dir(source_dir, build_dir, progress)?;
        let make = Make::new(&source_dir, &build_dir)?;
        let log_path = build_dir.join(LOG_NAME);
        let mut log = File::create(&log_path).map_err(io_error("cannot create", &log_path))?;
        let dropped = configure_locked(&make, plan, &build_dir, &mut log, &log_path, progress)?;
        Ok(Configured {
            config_file: build_dir.join(".config"),
            log: log_path,
            dropped,
        })
    }

    /// Copies the build's results into the cache, atomically.
    fn store(
        &self,
        commit: &str,
        plan: &ConfigPlan,
        build_dir: &Path,
        dropped: Vec<DroppedOption>,
    ) -> Result<Kernel, BuildError> {
        let dir = self.entry_dir(commit, plan);
        let kernels = self.cache_dir.join("kernels");
        fs::create_dir_all(&kernels).map_err(io_error("cannot create", &kernels))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        static STORES: AtomicU64 = AtomicU64::new(0);
        let tmp = kernels.join(format!(
            ".tmp-{name}-{}-{}",
            std::process::id(),
            STORES.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover with this name is from a process that died.
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_error("cannot remove", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(io_error("cannot create", &tmp))?;
        for (from, to) in [
            ("arch/x86/boot/bzImage", "bzImage"),
            (".config", "config"),
            ("System.map", "System.map"),
            (LOG_NAME, "build.log"),
        ] {
            let from = build_dir.join(from);
            fs::copy(&from, tmp.join(to)).map_err(io_error("cannot copy into the cache", &from))?;
        }
        if let Err(e) = fs::rename(&tmp, &dir) {
            // Another process stored the same kernel first: keep theirs.
            let _ = fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(io_error("cannot rename a cache entry to", &dir)(e).into());
            }
        }
        Ok(Kernel {
            bzimage: dir.join("bzImage"),
            config_file: dir.join("config"),
            system_map: dir.join("System.map"),
            log: dir.join("build.log"),
            config_hash: plan.hash().clone(),
            cached: false,
            dropped,
            dir,
        })
    }
}

/// Creates and locks `build_dir` (waiting for another holder), and returns
/// the lock with both directories made absolute.
fn lock_build_dir(
    source_dir: &Path,
    build_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<(File, PathBuf, PathBuf), BuildError> {
    let source_dir = fs::canonicalize(source_dir)
        .map_err(io_error("cannot open source directory", source_dir))?;
    fs::create_dir_all(build_dir).map_err(io_error("cannot create", build_dir))?;
    let build_dir =
        fs::canonicalize(build_dir).map_err(io_error("cannot open build directory", build_dir))?;
    let lock_path = build_dir.join(LOCK_NAME);
    let lock = File::create(&lock_path).map_err(io_error("cannot create", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            tracing::info!(build_dir = %build_dir.display(), "waiting for another build");
            progress(Progress::WaitingForLock {
                build_dir: build_dir.clone(),
            });
            lock.lock().map_err(io_error("cannot lock", &lock_path))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(io_error("cannot lock", &lock_path)(e).into());
        }
    }
    Ok((lock, source_dir, build_dir))
}

/// Writes the base config, merges the fragments, runs olddefconfig and
/// returns the requests Kconfig dropped (also logged, and noted in the
/// build log).
fn configure_locked(
    make: &Make,
    plan: &ConfigPlan,
    build_dir: &Path,
    log: &mut File,
    log_path: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<DroppedOption>, BuildError> {
    progress(Progress::Configuring);
    let config_path = build_dir.join(".config");
    let mut ignore = |_: &str| {};
    match plan.base() {
        PlannedBase::Target(target) => make
            .run(
                Stage::Configure,
                &[(*target).to_owned()],
                log,
                log_path,
                &mut ignore,
            )
            .map_err(|f| make_error(f, Stage::Configure, log_path))?,
        PlannedBase::File { path, contents } => {
            writeln!(log, "lorebot: base config {}", path.display())
                .map_err(io_error("cannot write build log", log_path))?;
            fs::write(&config_path, contents).map_err(io_error("cannot write", &config_path))?;
        }
    }
    let base = fs::read_to_string(&config_path).map_err(io_error("cannot read", &config_path))?;
    fs::write(&config_path, plan.merge_onto(&base))
        .map_err(io_error("cannot write", &config_path))?;
    make.run(
        Stage::Configure,
        &["olddefconfig".to_owned()],
        log,
        log_path,
        &mut ignore,
    )
    .map_err(|f| make_error(f, Stage::Configure, log_path))?;
    let config = fs::read_to_string(&config_path).map_err(io_error("cannot read", &config_path))?;
    let dropped = plan.dropped(&config);
    for d in &dropped {
        tracing::warn!("Kconfig dropped {d}");
        writeln!(log, "lorebot: Kconfig dropped {d}")
            .map_err(io_error("cannot write build log", log_path))?;
    }
    Ok(dropped)
}

fn make_error(failure: MakeFailure, stage: Stage, log: &Path) -> BuildError {
    match failure {
        MakeFailure::Infra(e) => e.into(),
        MakeFailure::Failed(Diagnosis::Infra(reason)) => InfraError::Make {
            stage,
            reason,
            log: log.to_owned(),
        }
        .into(),
        MakeFailure::Failed(Diagnosis::Source(error)) => CompileFailure {
            stage,
            error,
            log: log.to_owned(),
        }
        .into(),
    }
}

fn check_commit_id(commit: &str) -> Result<(), CheckoutError> {
    let hex = commit
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex && matches!(commit.len(), 40 | 64) {
        Ok(())
    } else {
        Err(CheckoutError::BadCommit {
            commit: commit.to_owned(),
        })
    }
}

/// The cache is keyed by commit: `source_dir` must be exactly that commit,
/// with no tracked file changed.
fn check_checkout(source_dir: &Path, commit: &str) -> Result<(), CheckoutError> {
    let dir = source_dir.to_owned();
    let repo =
        git2::Repository::open(source_dir).map_err(|source| CheckoutError::NotRepository {
            dir: dir.clone(),
            source,
        })?;
    let git = |source| CheckoutError::Git {
        dir: dir.clone(),
        source,
    };
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(git)?
        .id()
        .to_string();
    if head != commit {
        return Err(CheckoutError::WrongHead {
            dir,
            head,
            commit: commit.to_owned(),
        });
    }
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo.statuses(Some(&mut options)).map_err(git)?;
    if let Some(changed) = statuses
        .iter()
        .find(|s| s.status() != git2::Status::CURRENT)
    {
        return Err(CheckoutError::Modified {
            dir,
            file: changed.path().unwrap_or("(a non-UTF-8 path)").to_owned(),
            commit: commit.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hz_comes_from_the_config() {
        let dir = std::env::temp_dir().join(format!("lorebot-hz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            "CONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_HZ_PERIODIC=y\n",
        )
        .unwrap();
        assert_eq!(super::config_hz(&config), Some(250));
        std::fs::write(&config, "# CONFIG_HZ is not set\n").unwrap();
        assert_eq!(super::config_hz(&config), None);
        assert_eq!(super::config_hz(&dir.join("missing")), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
