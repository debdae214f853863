//! The base-versus-patched protocol: which arm runs next, and when the
//! runs say enough for a verdict.
//!
//! The base (unpatched) arm runs until it has shown the bug
//! `base_crashes` times or reached its cap, interleaved with the patched
//! arm so both see the same machine. The patched arm is judged by Wald's
//! SPRT with p0 the base's observed rate; because that rate is itself an
//! estimate, FIXED also needs enough clean runs under the Beta posterior of
//! the base rate. Only runs that reproduced the target or ran clean are
//! counted: other crashes, hangs and boot failures are reported apart, and
//! infrastructure failures never count as passes.

use std::fmt;

use serde::Serialize;

use super::stats::{
    Rate, Sprt, SprtDecision, clean_runs_needed, fisher_greater, p_clean_given_buggy,
};
use crate::job::Target;
use crate::vm::{Outcome, Run};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Base,
    Patched,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Fixed,
    StillReproduces,
    Reduced,
    Inconclusive,
    Infra,
    ApplyFailed,
    BuildFailed,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Fixed => "FIXED",
            Verdict::StillReproduces => "STILL REPRODUCES",
            Verdict::Reduced => "REDUCED",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Infra => "INFRA",
            Verdict::ApplyFailed => "APPLY FAILED",
            Verdict::BuildFailed => "BUILD FAILED",
        })
    }
}

/// The error rates and run limits of the protocol.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Policy {
    /// P(FIXED | still buggy).
    pub alpha: f64,
    /// P(STILL REPRODUCES | fixed).
    pub beta: f64,
    /// The crash rate of a fixed kernel under H1.
    pub p1: f64,
    /// Target crashes the base must show before FIXED can be said.
    pub base_crashes: u32,
    pub base_cap: u32,
    pub patched_cap: u32,
    /// Infrastructure failures that end the test as INFRA.
    pub infra_limit: u32,
}

impl Policy {
    /// alpha = beta = 1%, p1 = 1%, 3 base crashes; `cap` runs per arm.
    pub fn new(cap: u32) -> Policy {
        Policy {
            alpha: 0.01,
            beta: 0.01,
            p1: 0.01,
            base_crashes: 3,
            base_cap: cap,
            patched_cap: cap,
            infra_limit: 3.max(cap / 4),
        }
    }
}

/// What a run counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Reproduced the target.
    Target,
    Clean,
    /// Another crash, a hang or a boot failure: reported, not counted.
    Other,
    /// QEMU or the host failed.
    Infra,
}

pub fn count(run: &Run, target: &Target) -> Count {
    match run.outcome {
        Outcome::Infra => Count::Infra,
        Outcome::Clean => Count::Clean,
        _ if super::hits_target(run, target) => Count::Target,
        _ => Count::Other,
    }
}

/// The counted runs of both arms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    pub base_crashes: u32,
    pub base_runs: u32,
    pub patched_crashes: u32,
    pub patched_runs: u32,
    /// Runs of either arm that were neither target nor clean.
    pub other: u32,
    pub infra: u32,
}

impl Tally {
    pub fn add(&mut self, arm: Arm, c: Count) {
        let (crashes, runs) = match arm {
            Arm::Base => (&mut self.base_crashes, &mut self.base_runs),
            Arm::Patched => (&mut self.patched_crashes, &mut self.patched_runs),
        };
        match c {
            Count::Target => {
                *crashes += 1;
                *runs += 1;
            }
            Count::Clean => *runs += 1,
            Count::Other => self.other += 1,
            Count::Infra => self.infra += 1,
        }
    }
}

/// A verdict and the numbers that justify it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// One sentence: the rule that decided, with its figures.
    pub reason: String,
    pub base: Rate,
    pub patched: Rate,
    /// The SPRT's null rate (the base estimate), when the base reproduced.
    pub p0: Option<f64>,
    pub llr: Option<f64>,
    /// Clean patched runs FIXED needs (SPRT and Beta rule), when the base
    /// reproduced.
    pub clean_needed: Option<u32>,
    /// One-sided Fisher exact test, base rate > patched rate.
    pub fisher_p: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Run(Arm),
    Done(Decision),
}

/// The next step given the runs so far.
pub fn next(policy: &Policy, t: &Tally) -> Next {
    let base_wants = t.base_crashes < policy.base_crashes && t.base_runs < policy.base_cap;
    let patched_full = t.patched_runs >= policy.patched_cap;
    let decide = |verdict, reason: String| Next::Done(decision(policy, t, verdict, reason));

    if t.infra >= policy.infra_limit {
        return decide(
            Verdict::Infra,
            format!("{} runs failed for infrastructure reasons", t.infra),
        );
    }
    if t.base_crashes == 0 && !base_wants {
        return decide(
            Verdict::Inconclusive,
            format!("the base never reproduced the bug in {} runs", t.base_runs),
        );
    }
    let fisher = fisher_greater(
        t.base_crashes,
        t.base_runs,
        t.patched_crashes,
        t.patched_runs,
    );
    if t.base_crashes > 0 {
        let p0 = p0(policy, t);
        let sprt = Sprt::new(p0, policy.p1, policy.alpha, policy.beta);
        match sprt.decide(t.patched_crashes, t.patched_runs) {
            SprtDecision::StillReproduces if fisher < policy.alpha => {
                return decide(Verdict::Reduced, reduced_reason(policy, fisher));
            }
            SprtDecision::StillReproduces => {
                return decide(
                    Verdict::StillReproduces,
                    format!(
                        "SPRT p0={p0:.2} vs p1={}: accepted p0 after {} crash(es) in {} runs",
                        policy.p1, t.patched_crashes, t.patched_runs
                    ),
                );
            }
            SprtDecision::Fixed
                if t.patched_crashes > 0 && fisher < policy.alpha && !base_wants =>
            {
                return decide(Verdict::Reduced, reduced_reason(policy, fisher));
            }
            _ => {}
        }
        let enough_clean = t.patched_runs >= sprt.clean_runs_to_fix()
            && p_clean_given_buggy(t.base_crashes, t.base_runs, t.patched_runs) < policy.alpha;
        if !base_wants && t.patched_crashes == 0 && enough_clean {
            return decide(
                Verdict::Fixed,
                format!(
                    "after {} clean runs: SPRT p0={p0:.2} vs p1={} needs {}, the Beta rule for base {}/{} needs {}; alpha=beta={}%",
                    t.patched_runs,
                    policy.p1,
                    sprt.clean_runs_to_fix(),
                    t.base_crashes,
                    t.base_runs,
                    clean_runs_needed(t.base_crashes, t.base_runs, policy.alpha, t.patched_runs)
                        .unwrap_or(t.patched_runs),
                    policy.alpha * 100.0
                ),
            );
        }
    }
    if patched_full && !base_wants {
        if t.patched_crashes > 0 && fisher < policy.alpha {
            return decide(Verdict::Reduced, reduced_reason(policy, fisher));
        }
        return decide(
            Verdict::Inconclusive,
            format!(
                "neither bound reached in {} patched runs (the cap)",
                t.patched_runs
            ),
        );
    }
    // The base keeps pace with the patched arm after it reproduced: its
    // rate, estimated at a lucky early stop, would make p0 too high.
    let base_open = t.base_runs < policy.base_cap;
    if base_open && (t.base_runs <= t.patched_runs || patched_full) {
        Next::Run(Arm::Base)
    } else {
        Next::Run(Arm::Patched)
    }
}

fn reduced_reason(policy: &Policy, fisher: f64) -> String {
    format!(
        "the patched kernel still reproduces, less often than the base (Fisher p = {fisher:.1e} < {})",
        policy.alpha
    )
}

/// The base's observed rate, kept where the SPRT is defined.
fn p0(policy: &Policy, t: &Tally) -> f64 {
    let rate = f64::from(t.base_crashes) / f64::from(t.base_runs.max(1));
    rate.clamp(2.0 * policy.p1, 0.99)
}

/// Clean runs in a row FIXED needs: the SPRT's count at p0, and enough
/// that a kernel still buggy at the uncertain base rate would show a crash
/// with probability 1 - alpha. `None`: not reachable within the cap.
fn clean_needed(policy: &Policy, t: &Tally, sprt: &Sprt) -> Option<u32> {
    let beta_rule = clean_runs_needed(
        t.base_crashes,
        t.base_runs,
        policy.alpha,
        policy.patched_cap,
    )?;
    Some(beta_rule.max(sprt.clean_runs_to_fix()))
}

fn decision(policy: &Policy, t: &Tally, verdict: Verdict, reason: String) -> Decision {
    let reproduced = t.base_crashes > 0;
    let sprt = reproduced.then(|| Sprt::new(p0(policy, t), policy.p1, policy.alpha, policy.beta));
    Decision {
        verdict,
        reason,
        base: Rate::of(t.base_crashes, t.base_runs),
        patched: Rate::of(t.patched_crashes, t.patched_runs),
        p0: sprt.map(|s| s.p0),
        llr: sprt.map(|s| s.llr(t.patched_crashes, t.patched_runs)),
        clean_needed: sprt.and_then(|s| clean_needed(policy, t, &s)),
        fisher_p: fisher_greater(
            t.base_crashes,
            t.base_runs,
            t.patched_crashes,
            t.patched_runs,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic simulations without a dependency.
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Runs the protocol with true crash rates and returns the decision.
    fn simulate(policy: &Policy, base_rate: f64, patched_rate: f64, rng: &mut Rng) -> Decision {
        let mut t = Tally::default();
        loop {
            match next(policy, &t) {
                Next::Done(d) => return d,
                Next::Run(arm) => {
                    let rate = if arm == Arm::Base {
                        base_rate
                    } else {
                        patched_rate
                    };
                    let c = if rng.uniform() < rate {
                        Count::Target
                    } else {
                        Count::Clean
                    };
                    t.add(arm, c);
                }
            }
        }
    }

    fn verdict_rates(
        base: f64,
        patched: f64,
        trials: u32,
    ) -> std::collections::HashMap<Verdict, f64> {
        let policy = Policy::new(100);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (base.to_bits() >> 3) ^ patched.to_bits());
        let mut counts = std::collections::HashMap::new();
        for _ in 0..trials {
            *counts
                .entry(simulate(&policy, base, patched, &mut rng).verdict)
                .or_insert(0u32) += 1;
        }
        counts
            .into_iter()
            .map(|(v, c)| (v, f64::from(c) / f64::from(trials)))
            .collect()
    }

    #[test]
    fn sample_reply_numbers() {
        // base 6/20, patched clean: the Beta rule needs 17 clean runs,
        // more than the SPRT's 14 at p0 = 0.3.
        let p = Policy::new(40);
        let mut t = Tally {
            base_crashes: 6,
            base_runs: 20,
            patched_runs: 16,
            ..Tally::default()
        };
        assert_eq!(next(&p, &t), Next::Run(Arm::Patched));
        t.patched_runs = 17;
        let Next::Done(d) = next(&p, &t) else {
            panic!("undecided")
        };
        assert_eq!(d.verdict, Verdict::Fixed);
        assert_eq!(d.clean_needed, Some(17));
        assert_eq!(d.p0, Some(0.3));
    }

    #[test]
    fn arms_interleave() {
        let p = Policy::new(40);
        let mut t = Tally::default();
        let mut order = Vec::new();
        for _ in 0..8 {
            let Next::Run(arm) = next(&p, &t) else {
                panic!()
            };
            order.push(arm);
            let c = if arm == Arm::Base {
                Count::Target
            } else {
                Count::Clean
            };
            t.add(arm, c);
        }
        // The base reproduced 3 times by the fifth run and keeps pace.
        use Arm::*;
        assert_eq!(
            order,
            [Base, Patched, Base, Patched, Base, Patched, Base, Patched]
        );
    }

    #[test]
    fn base_that_never_reproduces_is_inconclusive() {
        let p = Policy::new(20);
        let t = Tally {
            base_runs: 20,
            patched_runs: 20,
            ..Tally::default()
        };
        let Next::Done(d) = next(&p, &t) else {
            panic!()
        };
        assert_eq!(d.verdict, Verdict::Inconclusive);
        assert!(d.reason.contains("never reproduced"), "{}", d.reason);
    }

    #[test]
    fn infrastructure_failures_end_as_infra_not_pass() {
        let p = Policy::new(20);
        let mut t = Tally::default();
        for _ in 0..p.infra_limit {
            t.add(Arm::Patched, Count::Infra);
        }
        let Next::Done(d) = next(&p, &t) else {
            panic!()
        };
        assert_eq!(d.verdict, Verdict::Infra);
        assert_eq!(d.patched.n, 0, "infra runs are not counted as runs");
    }

    /// A patch that fixes nothing is called FIXED at most alpha of the time
    /// (plus the simulation's noise: 2000 trials, sd 0.2%).
    #[test]
    fn unfixed_patch_is_rarely_called_fixed() {
        for rate in [0.1, 0.3, 0.7] {
            let r = verdict_rates(rate, rate, 2000);
            eprintln!("unfixed, rate {rate}: {r:?}");
            let fixed = r.get(&Verdict::Fixed).copied().unwrap_or(0.0);
            assert!(fixed <= 0.01 + 0.005, "rate {rate}: FIXED {fixed} {r:?}");
            let still = r.get(&Verdict::StillReproduces).copied().unwrap_or(0.0);
            assert!(
                still >= 0.9,
                "rate {rate}: STILL REPRODUCES only {still} {r:?}"
            );
        }
    }

    /// A real fix is called STILL REPRODUCES at most beta of the time, and
    /// FIXED almost always when the base reproduces often enough.
    #[test]
    fn real_fix_is_called_fixed() {
        for rate in [0.2, 0.3, 0.7] {
            let r = verdict_rates(rate, 0.0, 2000);
            eprintln!("fixed, base rate {rate}: {r:?}");
            let still = r.get(&Verdict::StillReproduces).copied().unwrap_or(0.0);
            assert!(still <= 0.01, "rate {rate}: STILL REPRODUCES {still} {r:?}");
            let fixed = r.get(&Verdict::Fixed).copied().unwrap_or(0.0);
            assert!(fixed >= 0.95, "rate {rate}: FIXED only {fixed} {r:?}");
        }
    }
}
