//! Stall details for each flavor of report, in the kernel's own formats.

use lorebot::console::{Kind, Options, analyze};

fn one(log: &str) -> lorebot::console::Crash {
    let a = analyze(log.as_bytes(), Options::default());
    assert_eq!(a.crashes.len(), 1, "{:#?}", a.crashes);
    a.crashes.into_iter().next().unwrap()
}

#[test]
fn expedited_rcu_stall_lists_the_stalled_cpus() {
    let c = one("\
[   60.100000] rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-.... 3-.... } 21 jiffies s: 697 root: 0x2/.
[   60.100001] rcu: blocking rcu_node structures (internal RCU debug):
[   60.100002] Sending NMI from CPU 0 to CPUs 1:
[   60.100003] NMI backtrace for cpu 1
[   60.100004] CPU: 1 PID: 77 Comm: spinner Not tainted 6.1.0 #1
[   60.100005] RIP: 0010:spin_forever+0x4/0x10
[   60.100006] Call Trace:
[   60.100007]  <TASK>
[   60.100008]  vfs_read+0x9d/0x1a0
[   60.100009]  ksys_read+0x5f/0xe0
[   60.100010]  do_syscall_64+0x3b/0x90
[   60.100011]  </TASK>
");
    assert_eq!(c.kind, Kind::RcuStall);
    assert_eq!(c.title, "INFO: rcu detected stall in spin_forever");
    let s = c.stall.unwrap();
    assert!(s.expedited);
    assert_eq!(s.flavor.as_deref(), Some("rcu_preempt"));
    assert_eq!(s.cpus, [1, 3]);
    assert_eq!(s.jiffies, Some(21));
}

#[test]
fn rcu_tasks_stall_names_the_holdout_task() {
    let c = one("\
[  700.000000] INFO: rcu_tasks detected stalls on tasks:
[  700.000001] 00000000a1b2c3d4: .. nvcsw: 2/2 holdout: 1 idle_cpu: -1/1
[  700.000002] task:looper          state:R  running task     stack:0     pid:  321 ppid:     1 flags:0x00004000
[  700.000003] Call Trace:
[  700.000004]  <TASK>
[  700.000005]  busy_loop+0x10/0x20
[  700.000006]  vfs_write+0xc8/0x3a0
[  700.000007]  ksys_write+0x5f/0xe0
[  700.000008]  </TASK>
");
    assert_eq!(c.kind, Kind::RcuStall);
    assert_eq!(c.title, "INFO: rcu detected stall in busy_loop");
    let s = c.stall.unwrap();
    assert_eq!(s.flavor.as_deref(), Some("rcu_tasks"));
    let t = s.task.unwrap();
    assert_eq!((t.comm.as_str(), t.pid), ("looper", 321));
}

#[test]
fn soft_lockup_gives_cpu_seconds_and_task() {
    let c = one("\
[   48.500000] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [rsync:2860]
[   48.500001] Modules linked in:
[   48.500002] CPU: 1 PID: 2860 Comm: rsync Not tainted 6.1.0 #1
[   48.500003] RIP: 0010:filemap_get_read_batch+0x7b/0x240
[   48.500004] Call Trace:
[   48.500005]  <TASK>
[   48.500006]  filemap_get_pages+0x9a/0x5c0
[   48.500007]  filemap_read+0xd9/0x310
[   48.500008]  ceph_read_iter+0x3e1/0x620
[   48.500009]  vfs_read+0x23a/0x330
[   48.500010]  ksys_read+0x63/0xe0
[   48.500011]  do_syscall_64+0x66/0x100
[   48.500012]  </TASK>
");
    assert_eq!(c.kind, Kind::SoftLockup);
    // As syzkaller does: the function the dispatcher (vfs_read) called.
    assert_eq!(c.title, "BUG: soft lockup in ceph_read_iter");
    assert_eq!(c.alt_titles, ["stall in ceph_read_iter"]);
    let s = c.stall.unwrap();
    assert_eq!(s.cpus, [1]);
    assert_eq!(s.seconds, Some(22.0));
    assert_eq!(s.task.unwrap().comm, "rsync");
    assert_eq!(s.rip_func.as_deref(), Some("filemap_get_read_batch"));
}

#[test]
fn repeated_reports_of_one_grace_period_are_a_livelock_and_give_hz() {
    let report = |t: f64, j: u64| {
        format!(
            "[{t:12.6}] rcu: INFO: rcu_sched self-detected stall on CPU
[{t:12.6}] rcu: \t1-....: ({j} ticks this GP) idle=b2c/1/0x4000000000000000 softirq=1/1 fqs=2
[{t:12.6}] \t(t={j} jiffies g=-1063 q=5 ncpus=2)
[{t:12.6}] CPU: 1 PID: 36 Comm: sh Not tainted 6.1.0 #1
[{t:12.6}] RIP: 0010:lkdtm_SOFTLOCKUP+0x8/0x10
[{t:12.6}] Call Trace:
[{t:12.6}]  <TASK>
[{t:12.6}]  lkdtm_do_action+0x16/0x24
[{t:12.6}]  vfs_write+0x9b/0x157
[{t:12.6}]  </TASK>
"
        )
    };
    let log = report(10.0, 1250) + &report(25.0, 5000);
    let a = analyze(log.as_bytes(), Options::default());
    assert_eq!(a.crashes.len(), 2);
    assert_eq!(a.stats.stall_reports, 2);
    assert!(a.stats.livelock);
    assert!(!a.stats.stall_cleared);
    assert_eq!(a.stats.hz, Some(250));
    assert_eq!(a.stats.hz_source, Some("inferred"));
    assert_eq!(a.stats.longest_stall_jiffies, Some(5000));
    assert_eq!(a.stats.longest_stall_s, Some(20.0));
    assert_eq!(a.stats.first_stall_time_s, Some(10.0));
    assert_eq!(a.stats.grace_periods.len(), 1);
    assert_eq!(a.stats.grace_periods[0].reports, 2);
}

#[test]
fn hung_task_gives_task_and_seconds() {
    let c = one("\
[  245.000000] INFO: task kworker/u4:2:53 blocked for more than 143 seconds.
[  245.000001]       Not tainted 6.1.0 #1
[  245.000002] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
[  245.000003] task:kworker/u4:2    state:D stack:0     pid:53    ppid:2      flags:0x00004000
[  245.000004] Call Trace:
[  245.000005]  <TASK>
[  245.000006]  __schedule+0x39d/0x3e0
[  245.000007]  schedule+0x67/0x94
[  245.000008]  rwsem_down_write_slowpath+0x1d2/0x4a0
[  245.000009]  ceph_writepages_start+0x80/0x1280
[  245.000010]  do_writepages+0xc4/0x190
[  245.000011]  </TASK>
");
    assert_eq!(c.kind, Kind::HungTask);
    assert_eq!(c.title, "INFO: task hung in ceph_writepages_start");
    let s = c.stall.unwrap();
    let t = s.task.unwrap();
    assert_eq!((t.comm.as_str(), t.pid), ("kworker/u4:2", 53));
    assert_eq!(s.seconds, Some(143.0));
}
