//! Input that is not a well-formed console log: no panic, bounded memory,
//! and what can be found is still found.

use std::io::Read;

use lorebot::console::{Options, analyze, analyze_reader};

/// A deterministic byte stream (xorshift) with crash headers sprinkled in.
struct Garbage {
    state: u64,
    left: usize,
}

impl Read for Garbage {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left);
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = (self.state >> 24) as u8;
        }
        // Header fragments and frame-like text at random places.
        if n > 64 && self.state.is_multiple_of(3) {
            let at = (self.state as usize >> 8) % (n - 40);
            buf[at..at + 31].copy_from_slice(b"\nBUG: soft lockup - CPU#0 stuck");
        }
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn random_bytes_do_not_panic() {
    let g = Garbage {
        state: 0x9e3779b97f4a7c15,
        left: 8 << 20,
    };
    let a = analyze_reader(g, Options::default()).unwrap();
    assert_eq!(a.stats.bytes, 8 << 20);
    for c in &a.crashes {
        assert!(c.title.len() <= 120);
    }
}

/// One line of `len` bytes with no newline, generated on the fly.
struct LongLine {
    prefix: &'static [u8],
    left: usize,
}

impl Read for LongLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.prefix.get(i).copied().unwrap_or(b'x');
        }
        self.prefix = &self.prefix[self.prefix.len().min(n)..];
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn a_100_mb_line_without_newline_is_cut_not_buffered() {
    let r = LongLine {
        prefix: b"[    5.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b ",
        left: 100 << 20,
    };
    let a = analyze_reader(r, Options::default()).unwrap();
    assert_eq!(a.stats.truncated_lines, 1);
    assert_eq!(a.crashes.len(), 1);
    assert_eq!(a.crashes[0].title, "kernel panic: Attempted to kill init!");
    assert!(a.crashes[0].report.len() <= 64 * 1024 + 1);
}

#[test]
fn a_report_cut_off_mid_line_is_still_found() {
    let log = b"[   3.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
[   3.1] #PF: supervisor read access in kernel mode\n\
[   3.2] RIP: 0010:lkdtm_ACCESS_NU";
    let a = analyze(log, Options::default());
    assert_eq!(a.crashes.len(), 1);
    assert!(
        a.crashes[0]
            .title
            .starts_with("BUG: unable to handle kernel NULL pointer dereference in")
    );
    assert!(
        a.crashes[0].corrupted,
        "no call trace: the report is marked corrupted"
    );
}

#[test]
fn two_cpus_reports_interleaved_are_told_apart_by_caller_id() {
    let log = "\
[   20.000000][    T1] WARNING: CPU: 0 PID: 1 at fs/a.c:1 alpha_write+0x1/0x2
[   20.000001][    T2] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   20.000002][    T1] RIP: 0010:alpha_write+0x1/0x2
[   20.000003][    T2] RIP: 0010:beta_read+0x3/0x4
[   20.000004][    T1] Call Trace:
[   20.000005][    T2] Call Trace:
[   20.000006][    T1]  vfs_write+0x1/0x2
[   20.000007][    T2]  vfs_read+0x1/0x2
[   20.000008][    T1]  ksys_write+0x1/0x2
[   20.000009][    T2]  ksys_read+0x1/0x2
";
    let a = analyze(log.as_bytes(), Options::default());
    let titles: Vec<&str> = a.crashes.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "WARNING in alpha_write",
            "BUG: unable to handle kernel NULL pointer dereference in beta_read"
        ]
    );
    assert!(!a.crashes[0].report.contains("beta_read"));
}

#[test]
fn a_header_on_every_line_stays_linear() {
    let mut log = Vec::new();
    for i in 0..5_000 {
        log.extend_from_slice(
            format!("[ {i}.000000] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\n").as_bytes(),
        );
    }
    let a = analyze(&log, Options::default());
    assert_eq!(a.crashes.len(), 5_000);
}

#[test]
fn nul_bytes_and_carriage_returns_are_tolerated() {
    let log = b"\0\0\r\n[   1.0] \0WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\r\n[   1.1] RIP: 0010:f+0x1/0x2\r\n[   1.2] Call Trace:\r\n[   1.3]  g+0x1/0x2\r\n";
    let a = analyze(log, Options::default());
    assert_eq!(a.crashes[0].title, "WARNING in f");
    assert!(!a.crashes[0].report.contains('\r'));
}
