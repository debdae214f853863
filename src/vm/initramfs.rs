//! The guest's initramfs: busybox-static, the reproducer and a small init,
//! written as a gzip-compressed cpio (newc) archive.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::VmError;

/// Printed by the guest's init just before the reproducer starts.
pub const START_MARKER: &str = "LOREBOT-START";
/// Printed by the guest's init after the reproducer ended, with its status.
pub const END_MARKER: &str = "LOREBOT-END";

/// What goes into the guest besides busybox and init.
pub struct Payload<'a> {
    /// The reproducer, run by busybox `sh` as `/repro/run`.
    pub script: &'a str,
    /// Host file and its name in `/repro`.
    pub files: &'a [(PathBuf, String)],
    /// The reproducer is killed after this long.
    pub timeout: Duration,
}

/// Where busybox-static is: `LOREBOT_BUSYBOX`, else Debian's path.
fn busybox_path() -> PathBuf {
    std::env::var_os("LOREBOT_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            ["/bin/busybox", "/usr/bin/busybox"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
        })
}

/// Whether an ELF executable needs a dynamic loader (has PT_INTERP): such a
/// busybox cannot run alone in the initramfs.
fn needs_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None; // not a little-endian ELF64
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let phoff = u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?) as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let off = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(elf.get(off..off + 4)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

fn init_script(timeout: Duration) -> String {
    // The reproducer's timeout is enforced inside the guest so that its
    // end is an orderly one (end marker, power off); the host's own
    // timeouts only catch a guest that stops responding.
    format!(
        r#"#!/bin/sh
# lorebot guest init
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp
run=0
for arg in $(cat /proc/cmdline); do
    case $arg in
    lorebot.run=*) run=${{arg#lorebot.run=}} ;;
    esac
done
cd /repro
echo "{START_MARKER} run=$run uptime=$(cut -d' ' -f1 /proc/uptime)"
timeout -s KILL {secs} sh /repro/run
echo "{END_MARKER} run=$run rc=$?"
poweroff -f
"#,
        secs = timeout.as_secs().max(1)
    )
}

/// Writes the initramfs to `dest` (atomically: a temporary file renamed).
pub fn write(dest: &Path, payload: &Payload<'_>) -> Result<(), VmError> {
    let busybox = busybox_path();
    let busybox_bytes = std::fs::read(&busybox).map_err(|e| VmError::Busybox {
        path: busybox.clone(),
        problem: format!("cannot read it: {e} (install busybox-static)"),
    })?;
    match needs_interpreter(&busybox_bytes) {
        Some(false) => {}
        Some(true) => {
            return Err(VmError::Busybox {
                path: busybox,
                problem: "is dynamically linked (install busybox-static)".to_owned(),
            });
        }
        None => {
            return Err(VmError::Busybox {
                path: busybox,
                problem: "is not an x86_64 ELF executable".to_owned(),
            });
        }
    }
    let mut files = Vec::with_capacity(payload.files.len());
    for (host, name) in payload.files {
        let data = std::fs::read(host).map_err(|source| VmError::Io {
            what: format!("reading reproducer file {}", host.display()),
            source,
        })?;
        files.push((name.as_str(), data));
    }

    let tmp = dest.with_extension("tmp");
    let io_err = |source| VmError::Io {
        what: format!("writing {}", tmp.display()),
        source,
    };
    let file = std::fs::File::create(&tmp).map_err(io_err)?;
    let mut cpio = Cpio::new(GzEncoder::new(
        io::BufWriter::new(file),
        Compression::fast(),
    ));
    (|| -> io::Result<()> {
        for dir in ["/bin", "/dev", "/proc", "/sys", "/tmp", "/root", "/repro"] {
            cpio.dir(dir)?;
        }
        cpio.char_device("/dev/console", 5, 1)?;
        cpio.char_device("/dev/null", 1, 3)?;
        cpio.file("/bin/busybox", 0o755, &busybox_bytes)?;
        cpio.symlink("/bin/sh", "busybox")?;
        cpio.file("/init", 0o755, init_script(payload.timeout).as_bytes())?;
        cpio.file("/repro/run", 0o755, payload.script.as_bytes())?;
        for (name, data) in &files {
            cpio.file(&format!("/repro/{name}"), 0o644, data)?;
        }
        let mut gz = cpio.finish()?;
        gz.flush()?;
        gz.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    })()
    .map_err(io_err)?;
    std::fs::rename(&tmp, dest).map_err(|source| VmError::Io {
        what: format!("renaming {} to {}", tmp.display(), dest.display()),
        source,
    })
}

/// A cpio archive in the "newc" format the kernel unpacks.
struct Cpio<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Cpio<W> {
    fn new(out: W) -> Self {
        Cpio {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0,
        );
        self.ino += 1;
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(b"\0")?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.written += b.len() as u64;
        self.out.write_all(b)
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..n])
    }

    fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, 0o040755, (0, 0), &[])
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, 0o100000 | perm, (0, 0), data)
    }

    fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, 0o120777, (0, 0), target.as_bytes())
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, 0o020600, (major, minor), &[])
    }

    fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned() {
        let mut c = Cpio::new(Vec::new());
        c.file("/a", 0o644, b"hello").unwrap();
        c.symlink("/b", "a").unwrap();
        let out = c.finish().unwrap();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        // header (110) + "a\0" padded to 112, then 5 bytes of data padded to 8.
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..117], b"hello");
        assert_eq!(&out[120..126], b"070701");
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("TRAILER!!!"));
    }

    #[test]
    fn elf_interpreter() {
        let sh = std::fs::read("/bin/sh").unwrap();
        assert_eq!(needs_interpreter(&sh), Some(true));
        assert_eq!(needs_interpreter(b"#!/bin/sh\n"), None);
    }
}
