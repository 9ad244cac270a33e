//! Permutation feature importance of any pipeline, from outside: how much
//! the held-out score drops when one feature's values are shuffled among
//! the rows (scikit-learn's `permutation_importance`), over every fold and
//! several shuffles. The kernels are only called, in the sandbox, so it
//! works for the most opaque of them.

use super::{Dataset, mean_std, metrics};
use crate::bindings::{Frame, KernelKind};
use crate::{Error, Output, Pipeline, Plan, Sandbox};

/// One feature's importance: the drop of the metric, mean and standard
/// deviation over folds × repeats (positive: the model relies on it).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Importance {
    pub feature: String,
    pub mean: f64,
    pub std: f64,
}

/// The importances of every feature of `data`, sorted most important first.
pub async fn importance(
    sandbox: &Sandbox,
    plan: &Plan,
    data: &Dataset,
    repeats: usize,
    metric: Option<&str>,
) -> Result<(String, Vec<Importance>), Error> {
    let names: Vec<String> = data.x.columns.iter().map(|c| c.name.clone()).collect();
    let mut drops: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut metric_name = metric.map(str::to_string);
    let mut rng = crate::data::generate::Rng(data.seed ^ 0x1a9f);
    for fold in 0..data.folds.len() {
        let ((x_train, y_train), (x_test, y_test)) = data.split(fold);
        let mut pipeline = Pipeline::load(sandbox, plan.clone()).await?;
        let kind = pipeline.final_kind();
        let name = metric_name
            .get_or_insert_with(|| metrics::primary(kind).unwrap_or("accuracy").to_string())
            .clone();
        pipeline.fit(x_train, y_train.as_ref()).await?;
        let mut score = async |x: Frame| -> Result<f64, Error> {
            let features = x.clone();
            let (values, probabilities) =
                match pipeline.predict(x, kind == KernelKind::Classifier).await? {
                    Output::Predictions {
                        values,
                        probabilities,
                    } => (values, probabilities),
                    Output::Transformed(_) => {
                        return Err(Error::Usage(format!(
                            "`{}` ends in a transformer: there is no score to explain",
                            plan.name
                        )));
                    }
                };
            metrics::score(
                kind,
                &values,
                y_test.as_ref(),
                probabilities.as_ref(),
                &features,
            )
            .get(name.as_str())
            .copied()
            .ok_or_else(|| Error::Usage(format!("the held-out fold gives no {name}")))
        };
        let baseline = score(x_test.clone()).await?;
        let rows = x_test.rows as usize;
        for (j, drop) in drops.iter_mut().enumerate() {
            for _ in 0..repeats.max(1) {
                let mut order: Vec<usize> = (0..rows).collect();
                for i in (1..rows).rev() {
                    order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
                let shuffled = Frame {
                    rows: x_test.rows,
                    columns: vec![x_test.columns[j].clone()],
                }
                .take_rows(&order);
                let mut x = x_test.clone();
                x.columns[j] = shuffled
                    .columns
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| x_test.columns[j].clone());
                let permuted = score(x).await?;
                drop.push(if metrics::higher_is_better(&name) {
                    baseline - permuted
                } else {
                    permuted - baseline
                });
            }
        }
    }
    let mut out: Vec<Importance> = names
        .into_iter()
        .zip(drops)
        .map(|(feature, d)| {
            let (mean, std) = mean_std(&d);
            Importance { feature, mean, std }
        })
        .collect();
    out.sort_by(|a, b| b.mean.total_cmp(&a.mean));
    Ok((metric_name.unwrap_or_else(|| "accuracy".into()), out))
}
