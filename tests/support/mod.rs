//! A local lore stand-in (scripts/lore-fixture: a real public-inbox served
//! on loopback), shared by integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Lore {
    pub dir: PathBuf,
    pub url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/lore-fixture")
}

fn free_port() -> u16 {
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
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("lore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(script())
            .arg(&dir)
            .arg("--serve")
            .arg(free_port().to_string())
            .output()
            .expect("run scripts/lore-fixture");
        assert!(
            out.status.success(),
            "lore-fixture failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Lore { dir, url }
    }

    /// Delivers mails from the fixture's `mails/` directory.
    pub fn add(&self, mails: &[&str]) {
        let paths: Vec<PathBuf> = mails
            .iter()
            .map(|m| self.dir.join("mails").join(m))
            .collect();
        let out = Command::new(script())
            .arg(&self.dir)
            .arg("--add")
            .args(&paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn mails(&self) -> PathBuf {
        self.dir.join("mails")
    }

    pub fn tree(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Lore {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg(&self.dir).arg("--stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
