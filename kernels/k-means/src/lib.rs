//! k-means clustering with greedy k-means++ seeding, like scikit-learn's
//! `KMeans(init="k-means++", algorithm="lloyd")`.
//!
//! - Seeding follows scikit-learn's greedy k-means++: each new centre is the
//!   best of `2 + ⌊ln k⌋` candidates drawn in proportion to squared distance.
//! - Lloyd iterations stop when the centres move less (in total squared
//!   distance) than `tol` times the mean per-feature variance, as in
//!   scikit-learn.
//! - `n_init` seeded restarts keep the lowest inertia. Everything is
//!   deterministic for a given `seed`.
//! - `predict` gives the nearest centre's index (s64); `transform` gives the
//!   distance to every centre.
//! - `partial_fit` streams: it keeps the first `init_size` rows, seeds and
//!   refines centres on them as `fit` would, then moves the nearest centre
//!   towards each further row by `1/count` (online k-means). Rows are taken
//!   one by one in order, so any chunking gives the same centres.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`KMeans`].
    pub struct KMeansParams {
        /// Number of clusters.
        k: u32 = 8, range(1, 100000);
        /// Independent seeded restarts; the one with the lowest inertia wins.
        n_init: u32 = 1, range(1, 1000);
        /// Most Lloyd iterations per restart.
        max_iter: u32 = 300, range(1, 1000000);
        /// Relative tolerance on centre movement.
        tol: f64 = 1e-4, range(0.0, 1.0);
        /// Seed of the k-means++ draws.
        seed: u64 = 0;
        /// Rows `partial_fit` keeps to seed the centres before updating online.
        init_size: u32 = 1000, range(1, 10000000);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub features: Vec<String>,
    /// `k` rows of `features.len()` values.
    pub centres: Vec<Vec<f64>>,
    /// Rows assigned to each centre at the end of fit.
    pub sizes: Vec<u64>,
    /// Sum of squared distances of the training rows to their centre.
    pub inertia: f64,
    pub iterations: usize,
}

impl Model {
    /// The centres as a host matrix (`k × features`).
    fn centre_matrix(&self) -> Result<HostMatrix, KernelError> {
        HostMatrix::from_list(
            self.centres.len(),
            self.features.len(),
            self.centres.concat(),
        )
    }
}

/// Streaming state of `partial_fit`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Online {
    features: Vec<String>,
    /// The first rows, until `init_size` have been seen.
    buffer: Vec<Vec<f64>>,
    centres: Vec<Vec<f64>>,
    counts: Vec<u64>,
    inertia: f64,
}

#[derive(Serialize, Deserialize)]
pub struct KMeans {
    params: KMeansParams,
    model: Option<Model>,
    online: Option<Online>,
}

impl KMeans {
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }
}

/// SplitMix64: small, fast, and good enough for seeding draws.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn nearest(row: &[f64], centres: &[Vec<f64>]) -> (usize, f64) {
    centres
        .iter()
        .enumerate()
        .map(|(j, c)| (j, distance2(row, c)))
        .fold(
            (0, f64::INFINITY),
            |best, cur| if cur.1 < best.1 { cur } else { best },
        )
}

/// Index of the row where the cumulative weight first exceeds `target`.
fn draw(weights: &[f64], target: f64) -> usize {
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if acc > target {
            return i;
        }
    }
    weights.len() - 1
}

/// The rows a fit runs on: a host matrix (the host computes distances and
/// sums), and how to read one row into the kernel (a seeding candidate).
struct Rows<'a> {
    host: HostMatrix,
    rows: usize,
    cols: usize,
    names: Vec<String>,
    row: &'a dyn Fn(usize) -> Result<Vec<f64>, KernelError>,
}

impl Rows<'_> {
    /// Each row's squared distance to `point`, computed by the host.
    fn distances(&self, point: &[f64]) -> Result<Vec<f64>, KernelError> {
        let centre = HostMatrix::from_list(1, self.cols, point.to_vec())?;
        self.host.squared_distances(&centre)?.to_vec()
    }
}

fn seed_centres(x: &Rows, k: usize, rng: &mut Rng) -> Result<Vec<Vec<f64>>, KernelError> {
    let trials = 2 + (k as f64).ln().floor() as usize;
    let first = (rng.unit() * x.rows as f64) as usize;
    let mut centres = vec![(x.row)(first.min(x.rows - 1))?];
    let mut closest = x.distances(&centres[0])?;
    while centres.len() < k {
        let total: f64 = closest.iter().sum();
        let mut best: Option<(Vec<f64>, f64, Vec<f64>)> = None;
        for _ in 0..trials {
            let candidate = if total > 0.0 {
                draw(&closest, rng.unit() * total)
            } else {
                (rng.unit() * x.rows as f64) as usize % x.rows
            };
            let point = (x.row)(candidate)?;
            let updated: Vec<f64> = closest
                .iter()
                .zip(x.distances(&point)?)
                .map(|(d, e)| d.min(e))
                .collect();
            let potential: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|b| potential < b.1) {
                best = Some((point, potential, updated));
            }
        }
        if let Some((point, _, updated)) = best {
            centres.push(point);
            closest = updated;
        }
    }
    Ok(centres)
}

/// One restart: seeding then Lloyd iterations, each an assignment and a
/// sum per cluster computed by the host.
fn lloyd(
    x: &Rows,
    k: usize,
    max_iter: usize,
    tol: f64,
    rng: &mut Rng,
) -> Result<Model, KernelError> {
    let d = x.cols;
    let mut centres = seed_centres(x, k, rng)?;
    let nearest_all = |centres: &[Vec<f64>]| -> Result<(Vec<u32>, Vec<f64>), KernelError> {
        let c = HostMatrix::from_list(k, d, centres.concat())?;
        x.host.squared_distances(&c)?.argmin_rows()
    };
    let mut iterations = 0;
    for _ in 0..max_iter {
        iterations += 1;
        let (labels, _) = nearest_all(&centres)?;
        let (sums, counts) = x.host.group_sums(&labels, k)?;
        let mut shift = 0.0;
        for j in 0..k {
            // An emptied cluster keeps its centre.
            if counts[j] > 0 {
                let updated: Vec<f64> = sums[j * d..(j + 1) * d]
                    .iter()
                    .map(|s| s / counts[j] as f64)
                    .collect();
                shift += distance2(&updated, &centres[j]);
                centres[j] = updated;
            }
        }
        if shift <= tol {
            break;
        }
    }
    let (labels, distances) = nearest_all(&centres)?;
    let mut sizes = vec![0u64; k];
    let mut inertia = 0.0;
    for (j, dist) in labels.iter().zip(&distances) {
        sizes[*j as usize] += 1;
        inertia += dist;
    }
    Ok(Model {
        features: x.names.clone(),
        centres,
        sizes,
        inertia,
        iterations,
    })
}

/// The buffered rows as a matrix.
fn buffered(online: &Online) -> Matrix {
    Matrix {
        rows: online.buffer.len(),
        cols: online.features.len(),
        data: online.buffer.iter().flatten().copied().collect(),
        names: online.features.clone(),
    }
}

impl KMeansParams {
    /// Restarts of seeding and Lloyd iterations on `m`; the best wins.
    /// The tolerance is relative to the data's mean per-feature variance.
    fn seeded(&self, m: &Matrix) -> Result<Model, KernelError> {
        let cols = m.cols;
        let mut variance = 0.0;
        for j in 0..cols {
            let mean = m.rows().map(|r| r[j]).sum::<f64>() / m.rows as f64;
            variance +=
                m.rows().map(|r| (r[j] - mean) * (r[j] - mean)).sum::<f64>() / m.rows as f64;
        }
        let row = |i: usize| Ok(m.row(i).to_vec());
        let rows = Rows {
            host: HostMatrix::from_matrix(m)?,
            rows: m.rows,
            cols,
            names: m.names.clone(),
            row: &row,
        };
        self.restarts(&rows, variance)
    }

    /// [`KMeansParams::seeded`] on host columns: the variance from the
    /// host's moments (the same sums in the same order), candidate rows
    /// read one by one.
    fn seeded_ref(&self, x: &FrameRef) -> Result<Model, KernelError> {
        let n = x.rows as usize;
        let mut variance = 0.0;
        for c in &x.columns {
            let m = c.moments()?;
            if m.count as usize != n || !m.min.is_finite() || !m.max.is_finite() {
                // Name the first bad row, as the plain path does.
                let frame = Frame::new(vec![c.read()?])?;
                frame.to_matrix()?.require_finite()?;
            }
            variance += m.m2 / n as f64;
        }
        let row = |i: usize| {
            x.columns
                .iter()
                .map(|c| {
                    let one = Frame::new(vec![c.read_rows(i, i + 1)?])?;
                    Ok(one.to_matrix()?.data[0])
                })
                .collect::<Result<Vec<f64>, KernelError>>()
        };
        let shares = x
            .columns
            .iter()
            .map(HostColumn::share)
            .collect::<Result<Vec<_>, _>>()?;
        let rows = Rows {
            host: HostMatrix::from_columns(shares)?,
            rows: n,
            cols: x.columns.len(),
            names: x.columns.iter().map(HostColumn::name).collect(),
            row: &row,
        };
        self.restarts(&rows, variance)
    }

    fn restarts(&self, rows: &Rows, variance: f64) -> Result<Model, KernelError> {
        let tol = self.tol * variance / rows.cols.max(1) as f64;
        let mut rng = Rng(self.seed);
        let mut best: Option<Model> = None;
        for _ in 0..self.n_init {
            let model = lloyd(rows, self.k as usize, self.max_iter as usize, tol, &mut rng)?;
            if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
                best = Some(model);
            }
        }
        Ok(best.unwrap_or(Model {
            features: rows.names.clone(),
            centres: Vec::new(),
            sizes: Vec::new(),
            inertia: 0.0,
            iterations: 0,
        }))
    }
}

impl KMeans {
    fn enough_rows(&self, rows: usize) -> Result<(), KernelError> {
        let k = self.params.k as usize;
        if rows < k {
            return Err(KernelError::invalid_input(format!(
                "{rows} rows cannot make {k} clusters"
            )));
        }
        Ok(())
    }
}

impl Kernel for KMeans {
    type Params = KMeansParams;

    fn meta() -> Meta {
        Meta::new("k-means", env!("CARGO_PKG_VERSION"), KernelKind::Clusterer)
            .description("k-means clustering with k-means++ seeding")
            .capabilities(Capabilities::PARTIAL_FIT)
            .by_reference(&["fit"])
    }

    fn new(params: KMeansParams) -> Self {
        KMeans {
            params,
            model: None,
            online: None,
        }
    }

    fn partial_fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        let k = self.params.k as usize;
        let init = (self.params.init_size as usize).max(k);
        let m = match &self.online {
            Some(o) => x.select_matrix(&o.features)?,
            None => x.to_matrix()?,
        };
        m.require_finite()?;
        let online = self.online.get_or_insert_with(|| Online {
            features: m.names.clone(),
            ..Online::default()
        });
        for row in m.rows() {
            if online.centres.is_empty() {
                online.buffer.push(row.to_vec());
                if online.buffer.len() == init {
                    let seeded = self.params.seeded(&buffered(online))?;
                    online.centres = seeded.centres;
                    online.counts = seeded.sizes;
                    online.inertia = seeded.inertia;
                    online.buffer.clear();
                }
                continue;
            }
            let (j, dist) = nearest(row, &online.centres);
            online.counts[j] += 1;
            online.inertia += dist;
            let step = 1.0 / online.counts[j] as f64;
            online.centres[j]
                .iter_mut()
                .zip(row)
                .for_each(|(c, v)| *c += (v - *c) * step);
        }
        // What predict uses: the online centres, or (before `init_size`
        // rows) centres fitted on the rows so far.
        self.model = if !online.centres.is_empty() {
            Some(Model {
                features: online.features.clone(),
                centres: online.centres.clone(),
                sizes: online.counts.clone(),
                inertia: online.inertia,
                iterations: 0,
            })
        } else if online.buffer.len() >= k {
            Some(self.params.seeded(&buffered(online))?)
        } else {
            None
        };
        Ok(())
    }

    fn fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        self.online = None;
        let m = x.to_matrix()?;
        m.require_finite()?;
        self.enough_rows(m.rows)?;
        self.model = Some(self.params.seeded(&m)?);
        Ok(())
    }

    /// By reference: distances and sums on a host matrix built from the
    /// input columns; only seeding candidates' rows are read in.
    fn fit_ref(&mut self, x: FrameRef, _y: Option<&HostColumn>) -> Result<(), KernelError> {
        self.online = None;
        self.enough_rows(x.rows as usize)?;
        for c in &x.columns {
            if !c.kind().is_numeric() {
                return Err(KernelError::invalid_input(format!(
                    "column `{}` is string; this kernel needs numeric columns (encode it first)",
                    c.name()
                )));
            }
        }
        self.model = Some(self.params.seeded_ref(&x)?);
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        // The host computes the distances and picks the nearest centre.
        let centres = model.centre_matrix()?;
        let mut labels = Vec::with_capacity(x.len());
        x.select_row_blocks(&model.features, kernel_sdk::HOST_BLOCK_ROWS, |block| {
            let (nearest, _) = HostMatrix::from_matrix(block)?
                .squared_distances(&centres)?
                .argmin_rows()?;
            labels.extend(nearest.into_iter().map(i64::from));
            Ok(())
        })?;
        Ok(Column::s64("cluster", labels))
    }

    fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let k = model.centres.len();
        let centres = model.centre_matrix()?;
        let mut columns = F64Columns::with_capacity(k, x.len());
        x.select_row_blocks(&model.features, kernel_sdk::HOST_BLOCK_ROWS, |block| {
            let squared = HostMatrix::from_matrix(block)?
                .squared_distances(&centres)?
                .to_vec()?;
            columns.push_rows(&squared, f64::sqrt);
            Ok(())
        })?;
        columns.into_frame((0..k).map(|j| format!("distance_{j}")))
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let table = Frame::new(
            model
                .features
                .iter()
                .enumerate()
                .map(|(f, name)| {
                    Column::f64(name.clone(), model.centres.iter().map(|c| c[f]).collect())
                })
                .collect(),
        )?;
        Ok(Explanation {
            summary: format!(
                "{} clusters, inertia {:.6}",
                model.centres.len(),
                model.inertia
            ),
            entries: vec![
                ExplainEntry {
                    name: "centres".into(),
                    value: ExplainValue::Table(table),
                },
                ExplainEntry {
                    name: "sizes".into(),
                    value: ExplainValue::Vector(model.sizes.iter().map(|s| *s as f64).collect()),
                },
                ExplainEntry {
                    name: "inertia".into(),
                    value: ExplainValue::Scalar(model.inertia),
                },
            ],
        })
    }
}

kernel_sdk::export_kernel!(KMeans);

#[cfg(test)]
mod tests {
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::KMeans>();
    }

    use super::*;
    use kernel_sdk::testing::Local;

    #[test]
    fn streaming_centres_do_not_depend_on_chunking() {
        let xs: Vec<f64> = (0..300)
            .map(|i| ((i * 37) % 101) as f64 + if i % 3 == 0 { 500.0 } else { 0.0 })
            .collect();
        let fit_in = |size: usize| {
            let mut k =
                Local::<KMeans>::with_params(&[("k", 2i64.into()), ("init_size", 50i64.into())])
                    .unwrap();
            for start in (0..300).step_by(size) {
                let chunk = Frame::new(vec![Column::f64(
                    "x",
                    xs[start..(start + size).min(300)].to_vec(),
                )])
                .unwrap();
                k.partial_fit(&chunk, None).unwrap();
            }
            k.kernel().model().cloned().unwrap()
        };
        let whole = fit_in(300);
        assert_eq!(whole.centres.len(), 2);
        for size in [1, 7, 64] {
            assert_eq!(fit_in(size), whole, "chunks of {size}");
        }
    }

    #[test]
    fn separated_blobs_are_found() {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (cx, cy) in [(0.0, 0.0), (10.0, 10.0), (-10.0, 10.0)] {
            for i in 0..20 {
                xs.push(cx + (i % 5) as f64 * 0.1);
                ys.push(cy + (i / 5) as f64 * 0.1);
            }
        }
        let x = Frame::new(vec![Column::f64("x", xs), Column::f64("y", ys)]).unwrap();
        let mut k =
            Local::<KMeans>::with_params(&[("k", 3i64.into()), ("n_init", 5i64.into())]).unwrap();
        k.fit(&x, None).unwrap();
        let m = k.kernel().model().unwrap();
        assert_eq!(m.sizes, [20, 20, 20]);
        let mut centres = m.centres.clone();
        centres.sort_by(|a, b| a[0].total_cmp(&b[0]));
        assert!(
            (centres[0][0] + 9.8).abs() < 1e-9 && (centres[0][1] - 10.15).abs() < 1e-9,
            "{centres:?}"
        );
    }

    #[test]
    fn by_reference_fits_the_same_model() {
        let xs: Vec<f64> = (0..300).map(|i| ((i * 37) % 101) as f64 * 0.1).collect();
        let ys: Vec<i64> = (0..300).map(|i| (i * 13) % 7).collect();
        let x = Frame::new(vec![Column::f64("x", xs), Column::s64("y", ys)]).unwrap();
        let params = [("k", 4i64.into()), ("n_init", 3i64.into())];
        let mut plain = Local::<KMeans>::with_params(&params).unwrap();
        plain.fit(&x, None).unwrap();
        let mut by_ref = Local::<KMeans>::with_params(&params).unwrap();
        by_ref.fit_ref(&x, None).unwrap();
        assert_eq!(plain.kernel().model(), by_ref.kernel().model());
        // NaN, a hole and a string are refused, by row and name, on both paths
        let nan = Frame::new(vec![Column::f64("a", vec![1.0, f64::NAN, 2.0, 3.0])]).unwrap();
        let holed = Frame::new(vec![Column {
            name: "a".into(),
            values: ColumnValues::F64(vec![1.0, 2.0, 3.0, 4.0]),
            nulls: Some(vec![0, 0, 1, 0]),
        }])
        .unwrap();
        let text = Frame::new(vec![Column::string(
            "s",
            ["a", "b", "c", "d"].map(String::from).to_vec(),
        )])
        .unwrap();
        let small = |x: &Frame, reference: bool| {
            let mut k = Local::<KMeans>::with_params(&[("k", 2i64.into())]).unwrap();
            let r = if reference {
                k.fit_ref(x, None)
            } else {
                k.fit(x, None)
            };
            r.unwrap_err().to_string()
        };
        for reference in [false, true] {
            let e = small(&nan, reference);
            assert!(e.contains("row 1") && e.contains("`a`"), "{e}");
            assert!(small(&holed, reference).contains("missing value in row 2"));
            assert!(small(&text, reference).contains("is string"));
        }
    }
}
