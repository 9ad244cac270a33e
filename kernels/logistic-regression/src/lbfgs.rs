//! Limited-memory BFGS with a backtracking (Armijo) line search: enough to
//! minimize a smooth convex objective to a tight gradient tolerance.

pub struct Minimum {
    pub x: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

const HISTORY: usize = 10;

/// Relative decrease of the objective below which progress has stalled at
/// machine precision (scipy's L-BFGS-B `ftol` as scikit-learn sets it).
const FTOL: f64 = 64.0 * f64::EPSILON;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimizes `f`, which returns the value at `x` and writes the gradient.
pub fn minimize(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    mut x: Vec<f64>,
    max_iter: usize,
    tol: f64,
) -> Minimum {
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    for iteration in 0..max_iter {
        if max_abs(&g) <= tol {
            return Minimum {
                x,
                iterations: iteration,
                converged: true,
            };
        }
        // Two-loop recursion: d = -H·g.
        let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let a = dot(s, &d) / dot(y, s);
            d.iter_mut().zip(y).for_each(|(di, yi)| *di -= a * yi);
            alphas.push(a);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / max_abs(&g).max(1.0),
        };
        d.iter_mut().for_each(|di| *di *= gamma);
        for ((s, y), a) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = dot(y, &d) / dot(y, s);
            d.iter_mut().zip(s).for_each(|(di, si)| *di += (a - b) * si);
        }
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (curvature lost): restart from -g.
            s_hist.clear();
            y_hist.clear();
            d = g.iter().map(|v| -v).collect();
            slope = dot(&g, &d);
        }
        let mut step = 1.0;
        let f_new = loop {
            x_new
                .iter_mut()
                .zip(&x)
                .zip(&d)
                .for_each(|((xn, xi), di)| *xn = xi + step * di);
            let value = f(&x_new, &mut g_new);
            if value <= fx + 1e-4 * step * slope {
                break Some(value);
            }
            step *= 0.5;
            if step < 1e-20 {
                break None;
            }
        };
        let Some(f_new) = f_new else {
            // No decrease is possible at this precision: as good as it gets.
            let converged = max_abs(&g) <= tol.max(1e-6);
            return Minimum {
                x,
                iterations: iteration,
                converged,
            };
        };
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&s, &y) > 1e-12 {
            if s_hist.len() == HISTORY {
                s_hist.remove(0);
                y_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
        }
        let stalled = (fx - f_new) <= FTOL * fx.abs().max(f_new.abs()).max(1.0);
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        fx = f_new;
        if stalled {
            return Minimum {
                x,
                iterations: iteration + 1,
                converged: true,
            };
        }
    }
    let converged = max_abs(&g) <= tol;
    Minimum {
        x,
        iterations: max_iter,
        converged,
    }
}
