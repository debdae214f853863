//! `lorebot analyze` as a user runs it.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lorebot");

const WARNING_LOG: &str = "\
[   10.100000] ------------[ cut here ]------------
[   10.100001] WARNING: CPU: 1 PID: 77 at fs/foo.c:12 foo_write+0x1a/0x40
[   10.100002] Modules linked in:
[   10.100003] CPU: 1 PID: 77 Comm: sh Not tainted 6.1.0 #1
[   10.100004] RIP: 0010:foo_write+0x1a/0x40
[   10.100005] Call Trace:
[   10.100006]  <TASK>
[   10.100007]  vfs_write+0xc8/0x3a0
[   10.100008]  ksys_write+0x5f/0xe0
[   10.100009]  do_syscall_64+0x3b/0x90
[   10.100010]  entry_SYSCALL_64_after_hwframe+0x63/0xcd
[   10.100011]  </TASK>
";

fn run(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lorebot");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_is_one_object_per_input_with_the_documented_fields() {
    let dir = support::tempdir("analyze-1");
    let crash = dir.join("crash.log");
    let clean = dir.join("clean.log");
    std::fs::write(&crash, WARNING_LOG).unwrap();
    std::fs::write(
        &clean,
        "[    0.000000] Linux version 6.1.0\n[    1.0] Run /init as init process\n",
    )
    .unwrap();
    let (code, out, _) = run(
        &[
            "analyze",
            "--json",
            crash.to_str().unwrap(),
            clean.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let c = &first["crashes"][0];
    assert_eq!(c["title"], "WARNING in foo_write");
    assert_eq!(c["kind"], "warning");
    assert_eq!(c["corrupted"], false);
    assert_eq!(c["guilty_frame"], "foo_write");
    assert_eq!(c["start_line"], 2);
    assert_eq!(c["time_s"], 10.100001);
    assert_eq!(c["frames"][0]["func"], "vfs_write");
    assert_eq!(c["frames"][0]["offset"], 0xc8);
    assert_eq!(c["frames"][0]["size"], 0x3a0);
    assert_eq!(c["frames"][0]["questionable"], false);
    assert!(first["stats"].is_object());
    let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(second["crashes"].as_array().unwrap().len(), 0);
}

#[test]
fn reads_standard_input_with_a_dash() {
    let (code, out, _) = run(&["analyze", "-"], Some(WARNING_LOG));
    assert_eq!(code, 0);
    assert!(out.contains("crash 1/1: WARNING in foo_write"), "{out}");
    assert!(out.contains("frame:   foo_write"), "{out}");
}

#[test]
fn unreadable_input_exits_2_naming_the_file_and_still_analyzes_the_others() {
    let dir = support::tempdir("analyze-2");
    let crash = dir.join("crash.log");
    std::fs::write(&crash, WARNING_LOG).unwrap();
    let missing = dir.join("missing.log");
    let (code, out, err) = run(
        &[
            "analyze",
            "--json",
            missing.to_str().unwrap(),
            crash.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(err.contains("missing.log"), "{err}");
    assert_eq!(
        out.lines().count(),
        1,
        "the readable file is still analyzed"
    );
}

#[test]
fn hz_turns_stall_jiffies_into_seconds() {
    let log = "\
[  100.000000] rcu: INFO: rcu_preempt self-detected stall on CPU
[  100.000001] rcu: \t0-....: (5000 ticks this GP) idle=b2c/1/0x4000000000000000 softirq=1/1 fqs=2
[  100.000002] rcu: \t(t=5001 jiffies g=1234 q=5 ncpus=2)
[  100.000003] CPU: 0 PID: 61 Comm: spin Not tainted 6.1.0 #1
[  100.000004] RIP: 0010:spin_read+0x10/0x20
[  100.000005] Call Trace:
[  100.000006]  <IRQ>
[  100.000007]  </IRQ>
[  100.000008]  <TASK>
[  100.000009]  vfs_read+0x9d/0x1a0
[  100.000010]  ksys_read+0x5f/0xe0
[  100.000011]  do_syscall_64+0x3b/0x90
[  100.000012]  </TASK>
";
    let (code, out, _) = run(&["analyze", "--json", "--hz", "250", "-"], Some(log));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let c = &v["crashes"][0];
    assert_eq!(c["title"], "INFO: rcu detected stall in spin_read");
    assert_eq!(c["stall"]["jiffies"], 5001);
    assert_eq!(c["stall"]["seconds"], 20.004);
    assert_eq!(v["stats"]["longest_stall_s"], 20.004);
    assert_eq!(v["stats"]["hz_source"], "given");
}
