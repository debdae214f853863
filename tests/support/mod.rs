//! Shared by integration tests: running commands, scratch directories, and
//! a local lore stand-in (scripts/lore-fixture: a real public-inbox served
//! on loopback).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Runs `cmd`; fails the test with its stderr unless it succeeds. Returns
/// its stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An empty scratch directory under `target/`, unique to this test process.
pub fn tempdir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("lorebot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Lore {
    pub dir: PathBuf,
    pub url: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Lore {
    /// Builds a fresh fixture under `target/` and serves it.
    pub fn start(name: &str) -> Lore {
        assert!(
            Command::new("sh")
                .args(["-c", "command -v public-inbox-httpd"])
                .output()
                .is_ok_and(|o| o.status.success()),
            "public-inbox is not installed: run scripts/install-test-deps"
        );
        let mut lore = Lore {
            dir: tempdir(&format!("lore-{name}")),
            url: String::new(),
        };
        let port = free_port().to_string();
        let out = run(&mut lore.script(&["--serve", &port]));
        lore.url = String::from_utf8_lossy(&out).trim().to_owned();
        lore
    }

    /// Serves a new, empty inbox `inbox`, then delivers `mails` (paths).
    pub fn start_empty(name: &str, inbox: &str, mails: &[PathBuf]) -> Lore {
        let mut lore = Lore {
            dir: tempdir(&format!("lore-{name}")),
            url: String::new(),
        };
        run(&mut lore.script(&["--empty", inbox]));
        run(lore.script(&["--add"]).args(mails));
        let port = free_port().to_string();
        let out = run(&mut lore.script(&["--serve", &port]));
        lore.url = String::from_utf8_lossy(&out).trim().to_owned();
        lore
    }

    /// `scripts/lore-fixture DIR ARGS...`, to run.
    pub fn script(&self, args: &[&str]) -> Command {
        let mut c = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lore-fixture"));
        c.arg(&self.dir).args(args);
        c
    }

    /// Delivers mails from the fixture's `mails/` directory.
    pub fn add(&self, mails: &[&str]) {
        let paths: Vec<PathBuf> = mails.iter().map(|m| self.mails().join(m)).collect();
        run(self.script(&["--add"]).args(&paths));
    }

    pub fn mails(&self) -> PathBuf {
        self.dir.join("mails")
    }
}

impl Drop for Lore {
    fn drop(&mut self) {
        let _ = self.script(&["--stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server started by a test, listening on `port`; killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Starts `cmd`, which is to listen on loopback `port`, and waits
    /// (20 s at most) until it accepts connections.
    pub fn start(cmd: &mut Command, port: u16) -> Server {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let server = Server { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{cmd:?} did not listen on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// lorebot's cache directory for tests: kernels built once are kept
/// between test runs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LOREBOT_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("lorebot")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lorebot")))
        .expect("HOME is set")
}

/// The git tree of Debian's Linux 6.1 source (scripts/kernel-tree).
pub fn kernel_tree() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kernel-tree");
    let out = run(&mut Command::new(script));
    PathBuf::from(String::from_utf8_lossy(&out).trim())
}

/// `lorebot build` of `job` (a path under the repository) at `rev` of
/// the kernel tree, with the tests' data directory: the bzImage. The first
/// build takes minutes; later ones come from the cache.
pub fn build_kernel(job: &str, rev: &str) -> PathBuf {
    let out = run(Command::new(env!("CARGO_BIN_EXE_lorebot"))
        .arg("build")
        .arg("--job")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(job))
        .arg("--tree")
        .arg(kernel_tree())
        .args(["--rev", rev])
        .arg("--data-dir")
        .arg(cache_dir().join("test-data")));
    let text = String::from_utf8_lossy(&out);
    let path = PathBuf::from(text.trim().lines().last().unwrap_or(""));
    assert!(path.is_file(), "lorebot build printed no bzImage: {text}");
    path
}

/// The demo tree (scripts/demo-tree: Linux 6.1 with the demo regression
/// committed on top) under the tests' cache, made once per test binary:
/// tests running at once wait for the first to make it.
pub fn demo_tree() -> PathBuf {
    static TREE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TREE.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/demo-tree");
        let out = run(Command::new(script).arg(cache_dir().join("demo-linux")));
        PathBuf::from(String::from_utf8_lossy(&out).trim())
    })
    .clone()
}

/// The demo job (jobs/filemap-stall.yaml) pointed at a demo tree under the
/// tests' cache, written into `dir`, with `replace` applied to its text.
pub fn demo_job(dir: &std::path::Path, replace: &[(&str, &str)]) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tree = demo_tree().display().to_string();
    let configs = repo.join("kernel-configs");
    let mut text = std::fs::read_to_string(repo.join("jobs/filemap-stall.yaml"))
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
    for (from, to) in replace {
        assert!(text.contains(from), "{from:?} not in the demo job");
        text = text.replace(from, to);
    }
    let job = dir.join("filemap-stall.yaml");
    std::fs::write(&job, text).unwrap();
    job
}
