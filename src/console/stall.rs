//! Stall details (RCU stalls, lockups, hung tasks) and log-level statistics.

use std::sync::LazyLock;

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use super::oops::compile;
use super::{Crash, Kind};

/// The stalled task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub comm: String,
    pub pid: u32,
}

/// What a stall report says about the stall.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stall {
    /// RCU flavor: rcu_sched, rcu_preempt, rcu_tasks, rcu_tasks_trace, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub self_detected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_by: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expedited: bool,
    /// Stalled CPUs (or the locked-up CPU).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticks_this_gp: Option<u64>,
    /// `t=` jiffies since the grace period started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jiffies: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub g: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fqs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kthread_starved_jiffies: Option<u64>,
    /// Seconds stuck (soft lockup) or blocked (hung task), or jiffies / HZ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rip_func: Option<String>,
}

struct Patterns {
    rcu_header: Regex,
    cpu_line: Regex,
    t_line: Regex,
    detected_by: Regex,
    fqs: Regex,
    starved: Regex,
    expedited: Regex,
    comm: Regex,
    rip: Regex,
    soft_lockup: Regex,
    hard_lockup: Regex,
    hung: Regex,
    tasks_task: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    rcu_header: compile(r"INFO: (rcu_[a-z_]+) (self-)?detected( expedited)? stalls?"),
    cpu_line: compile(r"^\s*(?:rcu:\s*)?([0-9]+)-[^ :]*: \((?:([0-9]+) ticks this GP)?"),
    t_line: compile(
        r"\(t=([0-9]+) jiffies g=(-?[0-9]+)(?: c=-?[0-9]+)? q=([0-9]+)(?: ncpus=([0-9]+))?\)",
    ),
    detected_by: compile(
        r"\(detected by ([0-9]+), t=([0-9]+) jiffies, g=(-?[0-9]+)(?:, c=-?[0-9]+)?, q=([0-9]+)(?: ncpus=([0-9]+))?\)",
    ),
    fqs: compile(r"fqs=([0-9]+)"),
    starved: compile(r"kthread starved for ([0-9]+) jiffies"),
    expedited: compile(r"expedited stalls on CPUs/tasks: \{ ?([^}]*)\} ([0-9]+) jiffies"),
    comm: compile(
        r"CPU: ([0-9]+) (?:UID: [0-9]+ )?PID: ([0-9]+) Comm: (.*?) (?:Not tainted|Tainted)",
    ),
    rip: compile(r"RIP: [0-9]+:(?:\[<[0-9a-f]+>\] )?([a-zA-Z0-9_.]+)\+0x"),
    soft_lockup: compile(r"soft lockup - CPU#([0-9]+) stuck for ([0-9]+)s! \[(.*):([0-9]+)\]"),
    hard_lockup: compile(r"hard LOCKUP on cpu ([0-9]+)"),
    hung: compile(
        r"INFO: task (.*):([0-9]+) blocked (?:in I/O wait )?for more than ([0-9]+) seconds",
    ),
    tasks_task: compile(r"task:(\S+)\s+state:\S.*? pid:\s*([0-9]+)"),
});

fn num<T: std::str::FromStr>(b: Option<regex::bytes::Match>) -> Option<T> {
    std::str::from_utf8(b?.as_bytes()).ok()?.parse().ok()
}

fn text(b: Option<regex::bytes::Match>) -> Option<String> {
    Some(String::from_utf8_lossy(b?.as_bytes()).trim().to_owned())
}

/// Stall details from a report's text (console prefixes stripped).
pub(crate) fn details(kind: Kind, report: &[u8]) -> Option<Stall> {
    let p = &*P;
    let mut s = Stall::default();
    match kind {
        Kind::RcuStall => {
            let h = p.rcu_header.captures(report)?;
            s.flavor = text(h.get(1));
            s.self_detected = h.get(2).is_some();
            s.expedited = h.get(3).is_some();
            for line in report.split(|&b| b == b'\n').take(64) {
                if let Some(c) = p.cpu_line.captures(line) {
                    if let Some(cpu) = num(c.get(1))
                        && !s.cpus.contains(&cpu)
                    {
                        s.cpus.push(cpu);
                    }
                    if s.ticks_this_gp.is_none() {
                        s.ticks_this_gp = num(c.get(2));
                    }
                }
                if s.fqs.is_none()
                    && let Some(c) = p.fqs.captures(line)
                {
                    s.fqs = num(c.get(1));
                }
            }
            if let Some(c) = p.t_line.captures(report) {
                s.jiffies = num(c.get(1));
                s.g = num(c.get(2));
                s.q = num(c.get(3));
                s.ncpus = num(c.get(4));
            } else if let Some(c) = p.detected_by.captures(report) {
                s.detected_by = num(c.get(1));
                s.jiffies = num(c.get(2));
                s.g = num(c.get(3));
                s.q = num(c.get(4));
                s.ncpus = num(c.get(5));
            }
            if let Some(c) = p.expedited.captures(report) {
                for cpu in c[1].split(|&b| b == b' ') {
                    let digits: Vec<u8> = cpu
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .copied()
                        .collect();
                    if let Some(n) = std::str::from_utf8(&digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        && !s.cpus.contains(&n)
                    {
                        s.cpus.push(n);
                    }
                }
                s.jiffies = num(c.get(2));
            }
            s.kthread_starved_jiffies = p.starved.captures(report).and_then(|c| num(c.get(1)));
            if let Some(c) = p.comm.captures(report) {
                s.task = Some(Task {
                    comm: text(c.get(3))?,
                    pid: num(c.get(2))?,
                });
            } else if let Some(c) = p.tasks_task.captures(report) {
                s.task = Some(Task {
                    comm: text(c.get(1))?,
                    pid: num(c.get(2))?,
                });
            }
            s.rip_func = p.rip.captures(report).and_then(|c| text(c.get(1)));
        }
        Kind::SoftLockup => {
            let c = p.soft_lockup.captures(report)?;
            s.cpus.push(num(c.get(1))?);
            s.seconds = num(c.get(2));
            s.task = Some(Task {
                comm: text(c.get(3))?,
                pid: num(c.get(4))?,
            });
            s.rip_func = p.rip.captures(report).and_then(|c| text(c.get(1)));
        }
        Kind::HardLockup => {
            let c = p.hard_lockup.captures(report)?;
            s.cpus.push(num(c.get(1))?);
            if let Some(c) = p.comm.captures(report) {
                s.task = Some(Task {
                    comm: text(c.get(3))?,
                    pid: num(c.get(2))?,
                });
            }
            s.rip_func = p.rip.captures(report).and_then(|c| text(c.get(1)));
        }
        Kind::HungTask => {
            let c = p.hung.captures(report)?;
            s.task = Some(Task {
                comm: text(c.get(1))?,
                pid: num(c.get(2))?,
            });
            s.seconds = num(c.get(3));
        }
        _ => return None,
    }
    Some(s)
}

/// One RCU grace period seen stalled, across reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GracePeriod {
    pub flavor: String,
    pub g: i64,
    pub reports: u32,
    pub max_jiffies: u64,
}

/// Log-level figures over all crashes in one log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub bytes: u64,
    pub lines: u64,
    pub crashes: usize,
    /// Reports of RCU stalls, soft and hard lockups and hung tasks.
    pub stall_reports: usize,
    pub first_stall_time_s: Option<f64>,
    pub longest_stall_jiffies: Option<u64>,
    pub longest_stall_s: Option<f64>,
    pub hz: Option<u32>,
    /// `given` (--hz) or `inferred` (from consecutive reports of one grace period).
    #[serde(skip_deserializing)]
    pub hz_source: Option<&'static str>,
    pub grace_periods: Vec<GracePeriod>,
    /// A grace period stayed stalled across consecutive reports (a livelock,
    /// not a transient delay).
    pub livelock: bool,
    /// A later stall report named a different grace period: the earlier
    /// stall cleared.
    pub stall_cleared: bool,
    /// The kernel panicked (a follow-up `Kernel panic - not syncing`).
    pub panicked: bool,
    /// Lines longer than the line limit, cut.
    pub truncated_lines: u64,
}

const COMMON_HZ: [u32; 4] = [100, 250, 300, 1000];

/// HZ from two reports of one grace period: jiffies advanced over seconds.
fn infer_hz(crashes: &[Crash]) -> Option<u32> {
    let rcu: Vec<(&Stall, f64)> = crashes
        .iter()
        .filter_map(|c| Some((c.stall.as_ref()?, c.time_s?)))
        .filter(|(s, _)| s.flavor.is_some() && s.jiffies.is_some() && s.g.is_some())
        .collect();
    for w in rcu.windows(2) {
        let ((a, ta), (b, tb)) = (w[0], w[1]);
        if a.g != b.g || a.flavor != b.flavor || tb <= ta {
            continue;
        }
        let dj = b.jiffies? as f64 - a.jiffies? as f64;
        if dj <= 0.0 {
            continue;
        }
        let hz = dj / (tb - ta);
        if let Some(&best) = COMMON_HZ
            .iter()
            .min_by(|x, y| ((**x as f64 - hz).abs()).total_cmp(&(**y as f64 - hz).abs()))
            && (best as f64 - hz).abs() / (best as f64) < 0.15
        {
            return Some(best);
        }
    }
    None
}

pub(crate) fn stats(crashes: &mut [Crash], hz: Option<u32>, bytes: u64, lines: u64) -> Stats {
    let mut st = Stats {
        bytes,
        lines,
        crashes: crashes.len(),
        ..Stats::default()
    };
    let (hz, source) = match hz {
        Some(h) => (Some(h), Some("given")),
        None => match infer_hz(crashes) {
            Some(h) => (Some(h), Some("inferred")),
            None => (None, None),
        },
    };
    st.hz = hz;
    st.hz_source = source;
    let mut last_gp: Option<(String, i64)> = None;
    for c in crashes.iter_mut() {
        if !c.kind.is_stall() {
            continue;
        }
        st.stall_reports += 1;
        if st.first_stall_time_s.is_none() {
            st.first_stall_time_s = c.time_s;
        }
        let Some(s) = c.stall.as_mut() else { continue };
        if let (Some(j), Some(h)) = (s.jiffies, hz)
            && s.seconds.is_none()
        {
            s.seconds = Some(j as f64 / h as f64);
        }
        if let Some(j) = s.jiffies {
            st.longest_stall_jiffies = Some(st.longest_stall_jiffies.unwrap_or(0).max(j));
        }
        if let Some(sec) = s.seconds {
            st.longest_stall_s = Some(st.longest_stall_s.unwrap_or(0.0).max(sec));
        }
        if let (Some(f), Some(g)) = (&s.flavor, s.g) {
            match st
                .grace_periods
                .iter_mut()
                .find(|p| p.flavor == *f && p.g == g)
            {
                Some(p) => {
                    p.reports += 1;
                    p.max_jiffies = p.max_jiffies.max(s.jiffies.unwrap_or(0));
                    st.livelock = true;
                }
                None => st.grace_periods.push(GracePeriod {
                    flavor: f.clone(),
                    g,
                    reports: 1,
                    max_jiffies: s.jiffies.unwrap_or(0),
                }),
            }
            if let Some((lf, lg)) = &last_gp
                && lf == f
                && *lg != g
            {
                st.stall_cleared = true;
            }
            last_gp = Some((f.clone(), g));
        }
    }
    st
}
