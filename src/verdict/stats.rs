//! The statistics behind a verdict: binomial intervals, the one-sided
//! Fisher exact test, Wald's SPRT and the Beta-posterior rule.

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A rate with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rate {
    pub k: u32,
    pub n: u32,
    pub low: f64,
    pub high: f64,
    /// `wilson`, or `clopper-pearson` for 0/n and n/n.
    pub method: &'static str,
}

impl Rate {
    /// The 95% interval: Clopper-Pearson (exact) when k is 0 or n, where
    /// Wilson's is too narrow; Wilson otherwise.
    pub fn of(k: u32, n: u32) -> Rate {
        let (low, high, method) = if n == 0 {
            (0.0, 1.0, "none")
        } else if k == 0 || k == n {
            let (l, h) = clopper_pearson(k, n, 0.05);
            (l, h, "clopper-pearson")
        } else {
            let (l, h) = wilson(k, n, Z95);
            (l, h, "wilson")
        };
        Rate {
            k,
            n,
            low,
            high,
            method,
        }
    }

    pub fn value(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            f64::from(self.k) / f64::from(self.n)
        }
    }
}

/// Wilson score interval.
pub fn wilson(k: u32, n: u32, z: f64) -> (f64, f64) {
    let n = f64::from(n);
    let p = f64::from(k) / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Clopper-Pearson (exact) interval at level `1 - alpha`, two-sided.
pub fn clopper_pearson(k: u32, n: u32, alpha: f64) -> (f64, f64) {
    let (kf, nf) = (f64::from(k), f64::from(n));
    let low = if k == 0 {
        0.0
    } else {
        beta_quantile(alpha / 2.0, kf, nf - kf + 1.0)
    };
    let high = if k == n {
        1.0
    } else {
        beta_quantile(1.0 - alpha / 2.0, kf + 1.0, nf - kf)
    };
    (low, high)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// ln B(a, b).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The regularized incomplete beta function I_x(a, b).
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * (1.0 - x).ln() - ln_beta(a, b)).exp();
    // The continued fraction converges fast on this side of the mean.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

/// Lentz's method for the incomplete beta continued fraction.
fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < TINY {
            c = TINY;
        }
        h *= d * c;
        let num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The p-quantile of Beta(a, b), by bisection (the CDF is monotone).
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if beta_cdf(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn ln_choose(n: u32, k: u32) -> f64 {
    ln_gamma(f64::from(n) + 1.0) - ln_gamma(f64::from(k) + 1.0) - ln_gamma(f64::from(n - k) + 1.0)
}

/// One-sided Fisher exact test that the base arm crashes more often than
/// the patched arm: P(base crashes >= k_base) given the table's margins.
pub fn fisher_greater(k_base: u32, n_base: u32, k_patched: u32, n_patched: u32) -> f64 {
    let crashes = k_base + k_patched;
    let total = n_base + n_patched;
    let hi = crashes.min(n_base);
    let ln_denominator = ln_choose(total, crashes);
    let mut p = 0.0;
    for x in k_base..=hi {
        if crashes - x > n_patched {
            continue;
        }
        p += (ln_choose(n_base, x) + ln_choose(n_patched, crashes - x) - ln_denominator).exp();
    }
    p.min(1.0)
}

/// Wald's sequential probability ratio test of "the patched kernel still
/// crashes at the base rate p0" against "it crashes at p1 (fixed)".
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Sprt {
    pub p0: f64,
    pub p1: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// Where an SPRT stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SprtDecision {
    /// Accept H1: the patched rate is p1 (fixed).
    Fixed,
    /// Accept H0: the patched rate is p0 (still reproduces).
    StillReproduces,
    Continue,
}

impl Sprt {
    pub fn new(p0: f64, p1: f64, alpha: f64, beta: f64) -> Sprt {
        Sprt {
            p0,
            p1,
            alpha,
            beta,
        }
    }

    /// ln of the likelihood ratio H1/H0 after `crashes` in `runs`.
    pub fn llr(&self, crashes: u32, runs: u32) -> f64 {
        let clean = f64::from(runs - crashes.min(runs));
        f64::from(crashes) * (self.p1 / self.p0).ln()
            + clean * ((1.0 - self.p1) / (1.0 - self.p0)).ln()
    }

    /// Accept H1 at or above this.
    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    /// Accept H0 at or below this.
    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }

    pub fn decide(&self, crashes: u32, runs: u32) -> SprtDecision {
        let llr = self.llr(crashes, runs);
        if llr >= self.upper() {
            SprtDecision::Fixed
        } else if llr <= self.lower() {
            SprtDecision::StillReproduces
        } else {
            SprtDecision::Continue
        }
    }

    /// Clean runs in a row, from the start, that decide FIXED.
    pub fn clean_runs_to_fix(&self) -> u32 {
        let per_clean = ((1.0 - self.p1) / (1.0 - self.p0)).ln();
        (self.upper() / per_clean).ceil() as u32
    }
}

/// With the base rate known only as k crashes in n runs, the probability
/// that a kernel still buggy at that (uncertain) rate gives m clean runs
/// in a row: B(a, b + m) / B(a, b) with a = 1 + k, b = 1 + n - k (uniform
/// prior).
pub fn p_clean_given_buggy(k: u32, n: u32, m: u32) -> f64 {
    let a = 1.0 + f64::from(k);
    let b = 1.0 + f64::from(n - k.min(n));
    (ln_beta(a, b + f64::from(m)) - ln_beta(a, b)).exp()
}

/// The fewest clean runs in a row with P(clean | buggy) below `alpha`.
/// `None` when no number up to `cap` is enough (the base barely
/// reproduces).
pub fn clean_runs_needed(k: u32, n: u32, alpha: f64, cap: u32) -> Option<u32> {
    (0..=cap).find(|&m| p_clean_given_buggy(k, n, m) < alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn sprt_bounds_and_known_run_counts() {
        let s = Sprt::new(0.3, 0.01, 0.01, 0.01);
        assert!(close(s.upper(), 4.595, 1e-3) && close(s.lower(), -4.595, 1e-3));
        // DESIGN: p0 = 0.3 says FIXED after 14 clean runs...
        assert_eq!(s.clean_runs_to_fix(), 14);
        assert_eq!(s.decide(0, 13), SprtDecision::Continue);
        assert_eq!(s.decide(0, 14), SprtDecision::Fixed);
        // ...and STILL REPRODUCES after about 2 crashes.
        assert_eq!(s.decide(1, 1), SprtDecision::Continue);
        assert_eq!(s.decide(2, 2), SprtDecision::StillReproduces);
    }

    #[test]
    fn beta_rule_known_run_counts() {
        // DESIGN: base 6/20 needs 17 clean runs, 1/10 needs 95.
        assert_eq!(clean_runs_needed(6, 20, 0.01, 1000), Some(17));
        assert_eq!(clean_runs_needed(1, 10, 0.01, 1000), Some(95));
        assert_eq!(clean_runs_needed(1, 10, 0.01, 50), None);
    }

    #[test]
    fn intervals_known_values() {
        // Clopper-Pearson 0/40: upper 1 - 0.025^(1/40) = 8.8%.
        let r = Rate::of(0, 40);
        assert_eq!(r.method, "clopper-pearson");
        assert!(
            close(r.high, 1.0 - 0.025f64.powf(1.0 / 40.0), 1e-9),
            "{r:?}"
        );
        assert!(close(r.high, 0.0881, 1e-4));
        // Wilson 13/40: 20.1% - 48.0% (the sample reply's [20-48%]).
        let r = Rate::of(13, 40);
        assert_eq!(r.method, "wilson");
        assert!(
            close(r.low, 0.2008, 1e-4) && close(r.high, 0.4798, 1e-4),
            "{r:?}"
        );
        // Clopper-Pearson 5/10 (R: binom.test): 0.1871 - 0.8129.
        let (l, h) = clopper_pearson(5, 10, 0.05);
        assert!(close(l, 0.1871, 1e-4) && close(h, 0.8129, 1e-4), "{l} {h}");
    }

    #[test]
    fn fisher_known_values() {
        // The sample reply: base 13/40, patched 0/40, p = 3.8e-5.
        let p = fisher_greater(13, 40, 0, 40);
        assert!(close(p, 3.818e-5, 0.001e-5), "{p}");
        // No difference: p = 1 for 0 vs 0, 0.686 for 3/10 vs 3/10.
        assert!(close(fisher_greater(0, 10, 0, 10), 1.0, 1e-12));
        let p = fisher_greater(3, 10, 3, 10);
        assert!(close(p, 0.685_758_5, 1e-6), "{p}");
    }

    #[test]
    fn gamma_and_beta_functions() {
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-12));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
        assert!(close(beta_cdf(0.5, 2.0, 2.0), 0.5, 1e-12));
        assert!(close(beta_cdf(0.2, 1.0, 3.0), 1.0 - 0.8f64.powi(3), 1e-12));
        assert!(close(beta_quantile(0.5, 3.0, 3.0), 0.5, 1e-9));
    }
}
