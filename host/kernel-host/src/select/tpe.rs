//! The Tree-structured Parzen Estimator (Bergstra et al. 2011; the default
//! sampler of hyperopt and Optuna), over a space of independent dimensions.
//!
//! After `startup` random trials, each new point is drawn per dimension:
//! the trials so far are split into the best `γ(n) = min(⌈0.1·n⌉, 25)`
//! ("good") and the rest, each set becomes a Parzen density (a Gaussian per
//! observation plus a broad prior; counts for choices), and of `candidates`
//! draws from the good density the one with the largest good/bad ratio
//! wins. Floats and integers whose range spans decades are searched on a
//! log scale. Everything is seeded: the same seed and history give the same
//! suggestion.

use crate::data::generate::Rng;

/// One searchable parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Dimension {
    Float {
        low: f64,
        high: f64,
        log: bool,
    },
    Int {
        low: i64,
        high: i64,
        log: bool,
    },
    /// One of these (strings or bools), by index.
    Choice(usize),
}

/// A point: one value per dimension.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Float(f64),
    Int(i64),
    Choice(usize),
}

impl Dimension {
    /// The search interval on the internal (possibly log) scale.
    fn interval(&self) -> (f64, f64) {
        match *self {
            Dimension::Float { low, high, log } => scale(low, high, log),
            Dimension::Int { low, high, log } => {
                let (l, h) = (low as f64 - 0.5, high as f64 + 0.5);
                if log {
                    (l.max(0.5).ln(), h.ln())
                } else {
                    (l, h)
                }
            }
            Dimension::Choice(_) => (0.0, 1.0),
        }
    }

    fn is_log(&self) -> bool {
        matches!(
            self,
            Dimension::Float { log: true, .. } | Dimension::Int { log: true, .. }
        )
    }

    /// A value from a point on the internal scale, inside the bounds.
    fn value(&self, u: f64) -> Value {
        let x = if self.is_log() { u.exp() } else { u };
        match *self {
            Dimension::Float { low, high, .. } => Value::Float(x.clamp(low, high)),
            Dimension::Int { low, high, .. } => Value::Int((x.round() as i64).clamp(low, high)),
            Dimension::Choice(_) => Value::Choice(0),
        }
    }

    /// A value's point on the internal scale.
    fn internal(&self, v: &Value) -> f64 {
        let x = match *v {
            Value::Float(x) => x,
            Value::Int(i) => i as f64,
            Value::Choice(c) => c as f64,
        };
        if self.is_log() {
            x.max(f64::MIN_POSITIVE).ln()
        } else {
            x
        }
    }

    fn random(&self, rng: &mut Rng) -> Value {
        match *self {
            Dimension::Choice(n) => Value::Choice((rng.next_u64() % n.max(1) as u64) as usize),
            _ => {
                let (l, h) = self.interval();
                self.value(l + rng.unit() * (h - l))
            }
        }
    }
}

fn scale(low: f64, high: f64, log: bool) -> (f64, f64) {
    if log {
        (low.ln(), high.ln())
    } else {
        (low, high)
    }
}

/// Whether a positive range spanning `decades` or more is searched on a log
/// scale.
pub fn spans_decades(low: f64, high: f64) -> bool {
    low > 0.0 && high / low >= 100.0
}

/// The sampler's settings.
#[derive(Clone, Debug)]
pub struct Tpe {
    pub startup: usize,
    pub candidates: usize,
    rng: Rng,
}

impl Tpe {
    /// TPE after `startup` random trials (Optuna: 10; we default to 8 for
    /// short budgets), 24 candidates per suggestion, seeded.
    pub fn new(seed: u64, startup: usize) -> Tpe {
        Tpe {
            startup,
            candidates: 24,
            rng: Rng(seed ^ 0x7E5E_ED00),
        }
    }

    /// Random search: never leaves the startup phase.
    pub fn random(seed: u64) -> Tpe {
        Tpe::new(seed, usize::MAX)
    }

    /// The next point, given finished trials `(point, loss)` (lower loss is
    /// better; failed trials count as the worst).
    pub fn suggest(&mut self, space: &[Dimension], history: &[(Vec<Value>, f64)]) -> Vec<Value> {
        if history.len() < self.startup {
            return space.iter().map(|d| d.random(&mut self.rng)).collect();
        }
        let mut order: Vec<usize> = (0..history.len()).collect();
        order.sort_by(|&a, &b| history[a].1.total_cmp(&history[b].1));
        let n_good = (history.len().div_ceil(10)).clamp(1, 25);
        let (good, bad) = order.split_at(n_good);
        let point: Vec<Value> = space
            .iter()
            .enumerate()
            .map(|(d, dim)| {
                let of = |set: &[usize]| -> Vec<&Value> {
                    set.iter().map(|&i| &history[i].0[d]).collect()
                };
                self.dimension(dim, &of(good), &of(bad))
            })
            .collect();
        // A point already tried teaches nothing: explore instead.
        if history.iter().any(|(p, _)| *p == point) {
            return space.iter().map(|d| d.random(&mut self.rng)).collect();
        }
        point
    }

    fn dimension(&mut self, dim: &Dimension, good: &[&Value], bad: &[&Value]) -> Value {
        if let Dimension::Choice(n) = *dim {
            let weights = |set: &[&Value]| -> Vec<f64> {
                let mut w = vec![1.0 / n as f64; n];
                for v in set {
                    if let Value::Choice(c) = v
                        && *c < n
                    {
                        w[*c] += 1.0;
                    }
                }
                let total: f64 = w.iter().sum();
                w.into_iter().map(|x| x / total).collect()
            };
            let (l, g) = (weights(good), weights(bad));
            let mut best = (f64::NEG_INFINITY, 0);
            for _ in 0..self.candidates {
                let mut u = self.rng.unit();
                let mut c = n - 1;
                for (k, p) in l.iter().enumerate() {
                    if u < *p {
                        c = k;
                        break;
                    }
                    u -= p;
                }
                let ratio = l[c].ln() - g[c].ln();
                if ratio > best.0 {
                    best = (ratio, c);
                }
            }
            return Value::Choice(best.1);
        }
        let (low, high) = dim.interval();
        let points = |set: &[&Value]| -> Vec<f64> {
            set.iter()
                .map(|v| dim.internal(v).clamp(low, high))
                .collect()
        };
        let good = Parzen::new(&points(good), low, high);
        let bad = Parzen::new(&points(bad), low, high);
        let mut best = (f64::NEG_INFINITY, (low + high) / 2.0);
        for _ in 0..self.candidates {
            let x = good.sample(&mut self.rng);
            let ratio = good.log_density(x) - bad.log_density(x);
            if ratio > best.0 {
                best = (ratio, x);
            }
        }
        dim.value(best.1)
    }
}

/// A Parzen density on [low, high]: a truncated Gaussian per observation
/// (bandwidth: the larger gap to its neighbours, clipped as Optuna does)
/// plus a prior as wide as the range at its middle.
struct Parzen {
    low: f64,
    high: f64,
    /// (mean, sigma) of each component, the prior last.
    parts: Vec<(f64, f64)>,
}

impl Parzen {
    fn new(points: &[f64], low: f64, high: f64) -> Parzen {
        let width = (high - low).max(f64::MIN_POSITIVE);
        let mut sorted = points.to_vec();
        sorted.sort_by(f64::total_cmp);
        let floor = width / (1.0 + sorted.len() as f64).min(100.0);
        let mut parts: Vec<(f64, f64)> = sorted
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let left = m - if i == 0 { low } else { sorted[i - 1] };
                let right = if i + 1 == sorted.len() {
                    high
                } else {
                    sorted[i + 1]
                } - m;
                (m, left.max(right).clamp(floor, width))
            })
            .collect();
        parts.push(((low + high) / 2.0, width));
        Parzen { low, high, parts }
    }

    fn log_density(&self, x: f64) -> f64 {
        let total: f64 = self
            .parts
            .iter()
            .map(|&(m, s)| {
                let mass = phi((self.high - m) / s) - phi((self.low - m) / s);
                (-0.5 * ((x - m) / s).powi(2)).exp() / (s * mass.max(1e-12))
            })
            .sum();
        (total / self.parts.len() as f64)
            .max(f64::MIN_POSITIVE)
            .ln()
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let (m, s) = self.parts[(rng.next_u64() % self.parts.len() as u64) as usize];
        for _ in 0..32 {
            let x = m + rng.normal() * s;
            if (self.low..=self.high).contains(&x) {
                return x;
            }
        }
        m.clamp(self.low, self.high)
    }
}

/// The standard normal CDF (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn phi(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + if z < 0.0 { -erf } else { erf })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Vec<Dimension> {
        vec![
            Dimension::Float {
                low: 1e-4,
                high: 1e2,
                log: true,
            },
            Dimension::Int {
                low: 1,
                high: 50,
                log: false,
            },
            Dimension::Choice(3),
        ]
    }

    /// A loss with its minimum at x = 0.1, n = 20, choice 2.
    fn loss(p: &[Value]) -> f64 {
        let (Value::Float(x), Value::Int(n), Value::Choice(c)) = (&p[0], &p[1], &p[2]) else {
            unreachable!()
        };
        (x.ln() - 0.1f64.ln()).powi(2)
            + ((*n - 20) as f64 / 10.0).powi(2)
            + if *c == 2 { 0.0 } else { 1.0 }
    }

    fn best_after(mut sampler: Tpe, trials: usize) -> f64 {
        let space = space();
        let mut history = Vec::new();
        for _ in 0..trials {
            let p = sampler.suggest(&space, &history);
            let l = loss(&p);
            history.push((p, l));
        }
        history
            .iter()
            .map(|(_, l)| *l)
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn never_leaves_the_space_and_is_reproducible() {
        let space = space();
        let mut a = Tpe::new(3, 5);
        let mut b = Tpe::new(3, 5);
        let mut history = Vec::new();
        for _ in 0..60 {
            let p = a.suggest(&space, &history);
            assert_eq!(p, b.suggest(&space, &history));
            match (&p[0], &p[1], &p[2]) {
                (Value::Float(x), Value::Int(n), Value::Choice(c)) => {
                    assert!((1e-4..=1e2).contains(x), "{x}");
                    assert!((1..=50).contains(n), "{n}");
                    assert!(*c < 3);
                }
                other => panic!("{other:?}"),
            }
            let l = loss(&p);
            history.push((p, l));
        }
    }

    #[test]
    fn normal_cdf() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
        assert!((phi(1.96) - 0.975).abs() < 1e-4);
        assert!((phi(-1.0) - 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn beats_random_search_on_average() {
        let seeds = 0..20u64;
        let tpe: f64 = seeds
            .clone()
            .map(|s| best_after(Tpe::new(s, 8), 40))
            .sum::<f64>()
            / 20.0;
        let random: f64 = seeds.map(|s| best_after(Tpe::random(s), 40)).sum::<f64>() / 20.0;
        assert!(tpe < random, "TPE {tpe} vs random {random}");
    }
}
