//! Frames by reference (`kernel-host:kernel/columns`, `kernel-ref`): the
//! same results as by copy, frames that stay out of the guest, handles a
//! kernel cannot forge or keep, and host columns counted against its cap.

use crate::common::*;
use kernel_host::bindings::{Column, ColumnValues, Frame, ParamValue};
use kernel_host::{Fault, Grants, Limits, Output, Pipeline, Plan, Sandbox};
use kernel_host_guests as guests;

fn sandbox_by(reference: bool) -> Sandbox {
    Sandbox::builder()
        .cache_dir(Some(workspace().join("target/test-cache")))
        .frames_by_reference(reference)
        .build()
        .unwrap()
}

/// Every f64 as its bits, so equality is exact (NaN included).
fn bits(frame: &Frame) -> Vec<(String, Vec<u64>, Option<Vec<u8>>)> {
    frame
        .columns
        .iter()
        .map(|c| {
            let values = match &c.values {
                ColumnValues::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
                ColumnValues::S64(v) => v.iter().map(|x| *x as u64).collect(),
                ColumnValues::Bool(v) => v.iter().map(|x| u64::from(*x)).collect(),
                ColumnValues::String(v) => v.iter().map(|s| s.len() as u64).collect(),
            };
            (c.name.clone(), values, c.nulls.clone())
        })
        .collect()
}

async fn fit_predict(sandbox: &Sandbox, plan: &Plan) -> (Column, Frame) {
    let data = prepare(plan).unwrap();
    let mut pipeline = Pipeline::load(sandbox, plan.clone()).await.unwrap();
    pipeline
        .fit(data.x_train, data.y_train.as_ref())
        .await
        .unwrap();
    match pipeline.predict(data.x_test.unwrap(), true).await.unwrap() {
        Output::Predictions {
            values,
            probabilities: Some(p),
        } => (values, p),
        _ => panic!("expected predictions with probabilities"),
    }
}

/// The penguins pipeline (its imputer, encoder and scaler take frames by
/// reference, and the model fits on host matrices built from its input
/// columns) predicts exactly what the all-copy pipeline predicts: same
/// labels, same probability bits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_by_reference_predicts_bit_for_bit_as_by_copy() {
    let plan = Plan::load(&workspace().join("examples/penguins/pipeline.toml")).unwrap();
    let by_ref = sandbox_by(true);
    let scaler = load(&by_ref, "scale", guests::STANDARD_SCALER).await;
    assert_eq!(scaler.by_reference(), ["fit", "partial-fit", "transform"]);
    let imputer = load(&by_ref, "impute", guests::SIMPLE_IMPUTER).await;
    assert_eq!(imputer.by_reference(), ["fit", "partial-fit", "transform"]);
    let encoder = load(&by_ref, "encode", guests::ONE_HOT_ENCODER).await;
    assert_eq!(encoder.by_reference(), ["fit", "partial-fit", "transform"]);
    let model = load(&by_ref, "model", guests::LOGISTIC_REGRESSION).await;
    assert_eq!(model.by_reference(), ["fit"]);
    let (labels_ref, proba_ref) = fit_predict(&by_ref, &plan).await;
    let (labels_copy, proba_copy) = fit_predict(&sandbox_by(false), &plan).await;
    assert_eq!(labels_ref, labels_copy);
    assert_eq!(bits(&proba_ref), bits(&proba_copy));
}

/// The row indices of `rows` rows in chunks of 37 (the last shorter).
fn chunks_of_37(rows: u32) -> impl Iterator<Item = Vec<usize>> {
    let rows: Vec<usize> = (0..rows as usize).collect();
    rows.chunks(37)
        .map(<[usize]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter()
}

/// `partial-fit` by reference, chunk after chunk, learns the same bytes of
/// state as by copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_fit_by_reference_learns_what_by_copy_learns() {
    let x = penguins("train.csv");
    let numeric: Vec<Column> = x
        .columns
        .into_iter()
        .filter(|c| !matches!(c.values, ColumnValues::String(_)))
        .collect();
    let x = frame(numeric);
    let mut states = Vec::new();
    for reference in [true, false] {
        let sandbox = sandbox_by(reference);
        let mut scaler = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
        for rows in chunks_of_37(x.rows) {
            scaler.partial_fit(&x.take_rows(&rows), None).await.unwrap();
        }
        states.push(scaler.save_state().await.unwrap());
    }
    assert_eq!(states[0], states[1]);

    // The imputer, on every column (strings and holes too): the host
    // counts the strings, the numbers are summed one by one.
    let x = penguins("train.csv");
    for strategy in ["mean", "most_frequent"] {
        let params = [("strategy", ParamValue::String(strategy.into()))];
        let mut states = Vec::new();
        for reference in [true, false] {
            let sandbox = sandbox_by(reference);
            let mut imputer = instance(&sandbox, "impute", guests::SIMPLE_IMPUTER, &params).await;
            for rows in chunks_of_37(x.rows) {
                imputer
                    .partial_fit(&x.take_rows(&rows), None)
                    .await
                    .unwrap();
            }
            states.push(imputer.save_state().await.unwrap());
        }
        assert_eq!(states[0], states[1], "{strategy}");
    }
}

/// The SGD classifier by reference (its features read in, its string
/// target as bulk text) learns, chunk after chunk and in a whole fit, the
/// same bytes of state as by copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sgd_classifier_learns_the_same_bytes_by_reference() {
    let sgd = load(&sandbox_by(true), "model", guests::SGD_CLASSIFIER).await;
    assert_eq!(sgd.by_reference(), ["fit", "partial-fit"]);
    let x = wide_frame(300, 4);
    let labels: Vec<String> = f64s(&x.columns[0])
        .iter()
        .zip(f64s(&x.columns[1]))
        .map(|(a, b)| {
            ["lo", "mid", "hi"][((a + b - 1.0) * 1.5).clamp(0.0, 2.0) as usize].to_string()
        })
        .collect();
    let with_y = |rows: &[usize]| {
        let part = x.take_rows(rows);
        let y = Column {
            name: "y".into(),
            values: ColumnValues::String(rows.iter().map(|r| labels[*r].clone()).collect()),
            nulls: None,
        };
        (part, y)
    };
    let mut states = Vec::new();
    for reference in [true, false] {
        let sandbox = sandbox_by(reference);
        let mut model = instance(&sandbox, "model", guests::SGD_CLASSIFIER, &[]).await;
        for rows in chunks_of_37(x.rows) {
            let (part, y) = with_y(&rows);
            model.partial_fit(&part, Some(&y)).await.unwrap();
        }
        let chunked = model.save_state().await.unwrap();
        let (all, y) = with_y(&(0..x.rows as usize).collect::<Vec<_>>());
        model.fit(&all, Some(&y)).await.unwrap();
        states.push((chunked, model.save_state().await.unwrap()));
    }
    assert!(
        states[0].0 == states[1].0,
        "partial-fit by reference learned other bytes"
    );
    assert!(
        states[0].1 == states[1].1,
        "fit by reference learned other bytes"
    );
}

fn wide_frame(rows: usize, cols: usize) -> Frame {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    frame(
        (0..cols)
            .map(|j| {
                f64_column(
                    &format!("c{j}"),
                    (0..rows)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            (state >> 11) as f64 / (1u64 << 53) as f64 + j as f64
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// By reference, a frame never enters the guest: its memory stays at its
/// empty size while by copy it grows to hold the frame twice; the outputs
/// are the same bits, whether the frame is lent (kept by the host) or moved
/// in (rewritten in place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_by_reference_stay_out_of_the_guest() {
    let x = wide_frame(200_000, 8); // 12.2 MiB
    let mut outputs = Vec::new();
    let mut peaks = Vec::new();
    for reference in [true, false] {
        let sandbox = sandbox_by(reference);
        let mut scaler = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
        scaler.fit(&x, None).await.unwrap();
        let lent = scaler.transform(&x).await.unwrap();
        let moved = scaler.transform_owned(x.clone()).await.unwrap();
        assert_eq!(bits(&lent), bits(&moved));
        peaks.push(scaler.stats().peak_memory);
        outputs.push(lent);
    }
    assert_eq!(bits(&outputs[0]), bits(&outputs[1]));
    let (by_ref, by_copy) = (peaks[0], peaks[1]);
    assert!(
        by_ref < 4 << 20,
        "by reference the guest grew to {by_ref} bytes"
    );
    assert!(
        by_copy > 12 << 20,
        "by copy the guest held only {by_copy} bytes"
    );
}

async fn thief(attack: &str, limits: Limits) -> kernel_host::KernelInstance {
    let sandbox = sandbox();
    let component = load(&sandbox, "thief", guests::COLUMN_THIEF).await;
    let mut k = component
        .instantiate(limits, Grants::default())
        .await
        .unwrap();
    k.configure(&params_of(&[("attack", text(attack))]))
        .await
        .unwrap();
    k
}

/// A handle number the kernel was never given (what another kernel's
/// handle is to it) is refused by the component runtime: a typed trap,
/// and the instance carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_column_handle_is_a_trap() {
    let x = wide_frame(10, 2);
    let mut k = thief("forge", Limits::default()).await;
    k.fit(&x, None).await.unwrap();
    let (kernel, fault) = fault_of(k.transform(&x).await);
    assert_eq!(kernel, "thief");
    assert!(matches!(fault, Fault::Trap { .. }), "{fault:?}");
    // Rolled back and alive.
    let mut honest = thief("none", Limits::default()).await;
    honest.fit(&x, None).await.unwrap();
    assert_eq!(bits(&honest.transform(&x).await.unwrap()), bits(&x));
}

/// A column lent for one call and kept: revoked when the call returned,
/// so reading it later fails (typed) instead of reading the host's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_column_handle_reads_nothing_after_its_call() {
    let x = wide_frame(10, 2);
    let mut k = thief("keep", Limits::default()).await;
    k.fit(&x, None).await.unwrap();
    // The first call keeps `c0` and returns `c1`.
    let first = k.transform(&x).await.unwrap();
    assert_eq!(first.columns.len(), 1);
    // The next reads what it kept: refused, whatever was lent since.
    let other = wide_frame(10, 3);
    let (kernel, fault) = fault_of(k.transform(&other).await);
    assert_eq!(kernel, "thief");
    let text = fault.to_string();
    assert!(
        text.contains("lent for one call, which has ended"),
        "{text}"
    );
}

/// Host columns a kernel makes count against its host-memory cap
/// (`tensor-mib`): hoarding copies ends in a refusal naming the cap, and
/// dropping the instance's columns gives the bytes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_columns_count_against_the_cap() {
    let x = wide_frame(65_536, 1); // 512 KiB a copy
    let limits = Limits {
        tensor_bytes: 4 << 20,
        ..Limits::default()
    };
    let mut k = thief("hoard", limits).await;
    k.fit(&x, None).await.unwrap();
    let (_, fault) = fault_of(k.transform(&x).await);
    let text = fault.to_string();
    assert!(text.contains("out of host memory"), "{text}");
    // A short column is refused as bad output, not passed on.
    let mut short = thief("short", Limits::default()).await;
    short.fit(&x, None).await.unwrap();
    let (_, fault) = fault_of(short.transform(&x).await);
    assert!(fault.to_string().contains("rows"), "{fault}");
}

/// A column op that would build far more than the kernel's host-memory cap
/// (a 1 MiB fill for each of 100 000 nulls: 98 GiB; 100 000 one-hot
/// columns of 100 000 rows: 75 GiB) is refused before the host builds it:
/// a typed out-of-memory fault naming the cap, and the host carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_op_too_big_for_the_cap_is_refused_before_it_is_built() {
    let rows = 100_000;
    let x = frame(vec![Column {
        name: "s".into(),
        values: ColumnValues::String((0..rows).map(|_| "").collect()),
        nulls: Some(vec![1; rows]),
    }]);
    for attack in ["bloat-fill", "bloat-one-hot"] {
        let mut k = thief(attack, Limits::default()).await;
        k.fit(&x, None).await.unwrap();
        let (kernel, fault) = fault_of(k.transform(&x).await);
        assert_eq!(kernel, "thief");
        let text = fault.to_string();
        assert!(text.contains("out of host memory"), "{attack}: {text}");
        assert!(text.contains("tensor-mib"), "{attack}: {text}");
    }
}

/// A model's host matrices count against its host-memory cap too: a fit
/// whose matrix does not fit is refused with the cap named, the kernel is
/// rolled back (still unfitted), and with room the same fit succeeds, by
/// reference and by copy alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_matrices_count_against_the_cap() {
    let x = wide_frame(65_536, 8); // a 4 MiB matrix
    let y = Column {
        name: "y".into(),
        values: ColumnValues::S64((0..65_536).map(|i| i64::from(i % 3 == 0)).collect()),
        nulls: None,
    };
    for reference in [true, false] {
        let sandbox = sandbox_by(reference);
        let tight = Limits {
            tensor_bytes: 2 << 20,
            ..Limits::default()
        };
        let mut k = instance_with(
            &sandbox,
            "model",
            guests::LOGISTIC_REGRESSION,
            &[("max_iter", ParamValue::S64(5))],
            tight,
            Grants::default(),
        )
        .await;
        let (_, fault) = fault_of(k.fit(&x, Some(&y)).await);
        let text = fault.to_string();
        // Lent rather than copied, the frame and target come back whole
        // from a refused fit too.
        let target = std::sync::Arc::new(y.clone());
        let (refused, back) = k.fit_owned(x.clone(), Some(target.clone())).await;
        assert!(refused.is_err());
        assert_eq!(bits(&back), bits(&x));
        assert_eq!(*target, y);
        assert!(
            text.contains("out of host memory") && text.contains("cap"),
            "by reference {reference}: {text}"
        );
        let (_, unfitted) = fault_of(k.predict(&x).await);
        assert!(unfitted.to_string().contains("fit"), "{unfitted}");
        let mut roomy = instance(
            &sandbox,
            "model",
            guests::LOGISTIC_REGRESSION,
            &[("max_iter", ParamValue::S64(5))],
        )
        .await;
        roomy.fit(&x, Some(&y)).await.unwrap();
        let predicted = roomy.predict(&x).await.unwrap();
        assert!(
            matches!(&predicted.values, ColumnValues::S64(v) if v.len() == 65_536),
            "{:?}",
            predicted.name
        );
    }
}

/// `fit_owned` lends the frame itself to a kernel that fits by reference
/// (no copy) and hands it back unchanged; the kernel learns what `fit`
/// learns from a copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_lent_for_fit_comes_back_unchanged() {
    let x = wide_frame(70_000, 4);
    let sandbox = sandbox_by(true);
    let mut lent = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
    let (fitted, back) = lent.fit_owned(x.clone(), None).await;
    fitted.unwrap();
    assert_eq!(bits(&back), bits(&x));
    let mut copied = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
    copied.fit(&x, None).await.unwrap();
    assert_eq!(
        lent.save_state().await.unwrap(),
        copied.save_state().await.unwrap()
    );
}

/// A kernel built against contract 0.1.2 that takes frames by reference
/// (its WIT frozen in `tests/guests/legacy-kernel/examples`) still loads
/// into this host, and its `kernel-ref` export is still called: by
/// reference and by copy it shifts each column by its mean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_built_for_contract_0_1_2_still_runs_by_reference() {
    let x = frame(vec![f64_column("a", vec![1.0, 2.0, 6.0])]);
    for reference in [true, false] {
        let sandbox = sandbox_by(reference);
        let component = load(&sandbox, "contract", guests::CONTRACT_0_1_2).await;
        assert_eq!(component.wit_version(), "0.1.2");
        assert_eq!(component.by_reference(), ["fit", "transform"]);
        let mut kernel = component
            .instantiate(Limits::default(), Grants::default())
            .await
            .unwrap();
        kernel.fit(&x, None).await.unwrap();
        let out = kernel.transform(&x).await.unwrap();
        assert!(
            matches!(&out.columns[0].values, ColumnValues::F64(v) if v == &[-2.0, -1.0, 3.0]),
            "by reference {reference}: {:?}",
            out.columns[0].values
        );
    }
}

/// String cells cross into a kernel and back intact, by copy (the host's
/// one-buffer strings lowered as a `list<string>` and the kernel's answer
/// lifted back into one) and by reference (the host's column ops on the
/// buffer): empty cells, multi-byte characters, a long cell, nulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_cells_cross_the_boundary_intact_both_ways() {
    let tricky = ["", "é", "日本語", "a\u{0}b", "plain", "\u{1F600} smile"];
    let rows = 5000;
    let cells: Vec<String> = (0..rows)
        .map(|i| match i % 97 {
            0 => "x".repeat(1000 + i),
            k => format!("{}{}", tricky[k % tricky.len()], i % 3),
        })
        .collect();
    let nulls: Vec<u8> = (0..rows).map(|i| u8::from(i % 13 == 5)).collect();
    let x = frame(vec![Column {
        name: "s".into(),
        values: ColumnValues::String(cells.clone().into()),
        nulls: Some(nulls.clone()),
    }]);
    let expected: Vec<String> = cells
        .iter()
        .zip(&nulls)
        .map(|(cell, null)| {
            if *null != 0 {
                "gap ✓".to_string()
            } else {
                cell.clone()
            }
        })
        .collect();
    let params = [
        ("string_strategy", ParamValue::String("constant".into())),
        ("string_fill_value", ParamValue::String("gap ✓".into())),
    ];
    for reference in [false, true] {
        let sandbox = sandbox_by(reference);
        let mut imputer = instance(&sandbox, "impute", guests::SIMPLE_IMPUTER, &params).await;
        imputer.fit(&x, None).await.unwrap();
        let out = imputer.transform(&x).await.unwrap();
        let ColumnValues::String(filled) = &out.columns[0].values else {
            panic!("a string column comes back as strings")
        };
        assert_eq!(filled.to_strings(), expected, "by reference: {reference}");
        assert!(
            out.columns[0]
                .nulls
                .as_ref()
                .is_none_or(|n| n.iter().all(|b| *b == 0))
        );
    }
}

/// The default limits with memory capped at `mib` MiB.
fn memory_limit(mib: u64) -> Limits {
    Limits {
        memory_bytes: mib << 20,
        ..Limits::default()
    }
}

/// `rows` string labels cycling through `a`, `b`, `c`.
fn abc_labels(rows: usize) -> Column {
    Column {
        name: "y".into(),
        values: ColumnValues::String((0..rows).map(|i| ["a", "b", "c"][i % 3]).collect()),
        nulls: None,
    }
}

/// A whole fit by reference reads the SGD classifier's matrix a block of
/// rows at a time: 200 000 rows of 16 features (a 24 MiB matrix) fit in a
/// 40 MiB memory limit, where reading the frame in beside the matrix
/// (48 MiB) did not; by copy the frame lands in the guest, so it is
/// refused with the limit named, and the instance carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_fit_by_reference_holds_the_matrix_not_the_frame_beside_it() {
    let rows = 200_000;
    let x = wide_frame(rows, 16);
    let y = abc_labels(rows);
    let limits = memory_limit(40);
    let params = [("epochs", ParamValue::S64(1))];
    for reference in [true, false] {
        let sandbox = sandbox_by(reference);
        let mut sgd = instance_with(
            &sandbox,
            "model",
            guests::SGD_CLASSIFIER,
            &params,
            limits,
            Grants::default(),
        )
        .await;
        let fitted = sgd.fit(&x, Some(&y)).await;
        if reference {
            fitted.unwrap();
            // Predicting takes the frame by copy and builds its features a
            // block of rows at a time: the whole frame fits beside one
            // block (beside a whole matrix it would not), and predicts what
            // a slice of it predicts.
            let all = sgd.predict(&x).await.unwrap();
            assert_eq!(kernel_host::frame::column_len(&all), rows);
            let some: Vec<usize> = (0..1000).collect();
            let part = sgd.predict(&x.take_rows(&some)).await.unwrap();
            let (ColumnValues::String(all), ColumnValues::String(part)) =
                (&all.values, &part.values)
            else {
                panic!("string labels expected");
            };
            assert!((0..1000).all(|i| all[i] == part[i]));
        } else {
            let (kernel, fault) = fault_of(fitted);
            assert_eq!(kernel, "model");
            assert!(fault.to_string().contains("memory"), "{fault}");
        }
    }
}

/// The bits of `frames` stacked by rows (the columns named as the first's).
fn stacked_bits(frames: &[Frame]) -> Vec<(String, Vec<u64>, Option<Vec<u8>>)> {
    let mut stacked = bits(&frames[0]);
    for frame in &frames[1..] {
        for (column, more) in stacked.iter_mut().zip(bits(frame)) {
            column.1.extend(more.1);
            if let (Some(nulls), Some(more)) = (&mut column.2, more.2) {
                nulls.extend(more);
            }
        }
    }
    stacked
}

/// Predictions computed by the host row by row (logistic regression and
/// the MLP's probabilities, k-means' clusters and distances, PCA's
/// projections) go to the host 8 192 rows at a time. The kernel then holds
/// its input frame and one block, not a whole matrix beside the frame:
/// 200 000 × 16 values (25.6 MB) predict inside a 40 MiB limit that a
/// matrix beside them (51.2 MB) would break. And each row is computed on
/// its own: 20 000 rows (three blocks) give, bit for bit, what three
/// slices of them give alone (one block each).
#[tokio::test]
async fn host_predictions_hold_one_block_beside_the_frame_and_give_each_rows_bits() {
    let rows = 200_000;
    let x = wide_frame(rows, 16);
    let y = abc_labels(rows);
    let limits = memory_limit(40);
    let rows_of = |range: std::ops::Range<usize>| x.take_rows(&range.collect::<Vec<_>>());
    let head = rows_of(0..20_000);
    let y_head = abc_labels(20_000);
    let slices = [
        rows_of(0..5_000),
        rows_of(5_000..13_000),
        rows_of(13_000..20_000),
    ];
    let kernels = [
        (
            "logistic-regression",
            guests::LOGISTIC_REGRESSION,
            vec![("max_iter", ParamValue::S64(5))],
        ),
        (
            "mlp-classifier",
            guests::MLP_CLASSIFIER,
            vec![
                ("epochs", ParamValue::S64(1)),
                ("batch_size", ParamValue::S64(256)),
            ],
        ),
        ("k-means", guests::K_MEANS, vec![("k", ParamValue::S64(3))]),
        (
            "pca",
            guests::PCA,
            vec![("n_components", ParamValue::S64(3))],
        ),
    ];
    for (name, path, params) in kernels {
        // Fitted on the 20 000 rows by copy, or on all of them by reference
        // where the kernel takes its fit's frame so (the host builds the
        // matrix: the fit stays in the limit too).
        let by_reference = name == "logistic-regression";
        let sandbox = sandbox_by(by_reference);
        let mut kernel =
            instance_with(&sandbox, name, path, &params, limits, Grants::default()).await;
        let supervised = name != "k-means" && name != "pca";
        match (by_reference, supervised) {
            (true, _) => kernel.fit(&x, Some(&y)).await,
            (false, true) => kernel.fit(&head, Some(&y_head)).await,
            (false, false) => kernel.fit(&head, None).await,
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut outputs = Vec::new();
        for input in [&x, &head, &slices[0], &slices[1], &slices[2]] {
            let out = if supervised {
                kernel.predict_proba(input).await
            } else {
                kernel.transform(input).await
            };
            outputs.push(out.unwrap_or_else(|e| panic!("{name}: {e}")));
        }
        assert_eq!(outputs[0].rows as usize, rows, "{name}");
        assert_eq!(bits(&outputs[1]), stacked_bits(&outputs[2..]), "{name}");
        // Predictions too, where the kernel has them.
        if name != "pca" {
            let all = kernel
                .predict(&x)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(kernel_host::frame::column_len(&all), rows, "{name}");
        }
    }
}

/// Ridge regression fits and predicts a block of rows at a time (its sums
/// run in row order, so the same bits): by copy, the 200 000 × 16 frame
/// (25.6 MB) fits and predicts inside 40 MiB, where a whole matrix beside
/// it (51.2 MB) did not.
#[tokio::test]
async fn a_ridge_fit_holds_the_frame_and_one_block() {
    let rows = 200_000;
    let x = wide_frame(rows, 16);
    let y = f64_column("y", (0..rows).map(|i| (i % 97) as f64).collect());
    let sandbox = sandbox_by(false);
    let mut ridge = instance_with(
        &sandbox,
        "ridge",
        guests::RIDGE_REGRESSION,
        &[],
        memory_limit(40),
        Grants::default(),
    )
    .await;
    ridge.fit(&x, Some(&y)).await.unwrap();
    let all = ridge.predict(&x).await.unwrap();
    assert_eq!(kernel_host::frame::column_len(&all), rows);
}
