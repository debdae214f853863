//! What the runs of one arm say: outcomes, crashes that match the target,
//! and stall statistics over the runs.

pub mod protocol;
pub mod stats;
pub mod target;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::job::Target;
use crate::vm::{Outcome, Run};

/// Figures over the runs of one arm.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ArmSummary {
    pub runs: u32,
    /// Runs by outcome (`crashed`, `clean`, `boot-failure`, `timeout`, `infra`).
    pub outcomes: BTreeMap<&'static str, u32>,
    /// Runs with a crash that matches the target.
    pub target_runs: u32,
    pub stalls: StallSummary,
    /// Crashes that do not match the target, by title: in how many runs.
    pub other_crashes: Vec<(String, u32)>,
}

/// Stall statistics over runs (RCU stalls, soft and hard lockups, hung
/// tasks).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StallSummary {
    /// Runs with at least one stall report.
    pub runs_with_stalls: u32,
    /// Time from the reproducer's start to each run's first stall report
    /// (console time when the start is unknown): median and quartiles.
    pub first_stall_s: Option<Quartiles>,
    pub longest_stall_s: Option<f64>,
    pub longest_stall_jiffies: Option<u64>,
    pub hz: Option<u32>,
    /// Stalled CPUs per stall report: mean and most.
    pub cpus_per_stall_mean: Option<f64>,
    pub cpus_per_stall_max: Option<u32>,
    /// The function each stalled run was caught in (the stalled task's RIP,
    /// else the guilty frame), counted once per run, most frequent first.
    pub top_functions: Vec<(String, u32)>,
    /// Runs where one grace period stayed stalled across reports.
    pub livelock_runs: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Quartiles {
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
}

impl Quartiles {
    /// Linear interpolation between order statistics (R's type 7).
    pub fn of(values: &[f64]) -> Option<Quartiles> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let h = (v.len() - 1) as f64 * p;
            let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
            v[lo] + (h - lo as f64) * (v[hi] - v[lo])
        };
        Some(Quartiles {
            q1: q(0.25),
            median: q(0.5),
            q3: q(0.75),
        })
    }
}

/// Whether a run reproduced the target. Boot failures and infrastructure
/// errors are not the reproducer's doing: their crashes never count.
pub fn hits_target(run: &Run, target: &Target) -> bool {
    ran(run) && run.analysis.crashes.iter().any(|c| target.matches(c))
}

fn ran(run: &Run) -> bool {
    matches!(
        run.outcome,
        Outcome::Crashed | Outcome::Clean | Outcome::Timeout
    )
}

fn count_sorted(counts: BTreeMap<String, u32>) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

impl ArmSummary {
    pub fn of(runs: &[Run], target: &Target) -> ArmSummary {
        let mut s = ArmSummary {
            runs: runs.len() as u32,
            ..ArmSummary::default()
        };
        let mut first_stalls = Vec::new();
        let mut cpus_per_stall = Vec::new();
        let mut functions = BTreeMap::new();
        let mut others = BTreeMap::new();
        for run in runs {
            *s.outcomes.entry(run.outcome.as_str()).or_insert(0) += 1;
            let crashes = &run.analysis.crashes;
            if hits_target(run, target) {
                s.target_runs += 1;
            }
            for title in crashes
                .iter()
                .filter(|c| !ran(run) || !target.matches(c))
                .map(|c| c.title.clone())
                .collect::<std::collections::BTreeSet<_>>()
            {
                *others.entry(title).or_insert(0) += 1;
            }

            let stats = &run.analysis.stats;
            if stats.stall_reports == 0 {
                continue;
            }
            s.stalls.runs_with_stalls += 1;
            first_stalls.extend(
                stats
                    .first_stall_time_s
                    .map(|t| (t - run.start_uptime_s.unwrap_or(0.0)).max(0.0)),
            );
            if stats.livelock {
                s.stalls.livelock_runs += 1;
            }
            if let Some(secs) = stats.longest_stall_s
                && s.stalls.longest_stall_s.is_none_or(|l| secs > l)
            {
                s.stalls.longest_stall_s = Some(secs);
                s.stalls.longest_stall_jiffies = stats.longest_stall_jiffies;
                s.stalls.hz = stats.hz;
            }
            let stalls = crashes.iter().filter(|c| c.kind.is_stall());
            let mut function = None;
            for c in stalls {
                let detail = c.stall.as_ref();
                if let Some(d) = detail
                    && !d.cpus.is_empty()
                {
                    cpus_per_stall.push(d.cpus.len() as u32);
                }
                function = function.or_else(|| {
                    detail
                        .and_then(|d| d.rip_func.clone())
                        .or_else(|| c.guilty_frame.clone())
                });
            }
            if let Some(f) = function {
                *functions.entry(f).or_insert(0) += 1;
            }
        }
        s.stalls.first_stall_s = Quartiles::of(&first_stalls);
        if !cpus_per_stall.is_empty() {
            let sum: u32 = cpus_per_stall.iter().sum();
            s.stalls.cpus_per_stall_mean = Some(f64::from(sum) / cpus_per_stall.len() as f64);
            s.stalls.cpus_per_stall_max = cpus_per_stall.iter().copied().max();
        }
        s.stalls.top_functions = count_sorted(functions);
        s.other_crashes = count_sorted(others);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate() {
        let q = Quartiles::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((q.q1, q.median, q.q3), (1.75, 2.5, 3.25));
        let q = Quartiles::of(&[7.0]).unwrap();
        assert_eq!((q.q1, q.median, q.q3), (7.0, 7.0, 7.0));
        assert_eq!(Quartiles::of(&[]), None);
    }
}
