//! Linear-memory snapshots: a kernel that cannot export its state is still
//! rolled back, whole, when a state-changing call fails in any way.

use crate::common::*;
use kernel_host::bindings::{Frame, ParamValue};
use kernel_host::{Checkpoint, Fault, GiveBack, Grants, KernelInstance, Limits, Sandbox};
use kernel_host_guests as guests;

fn data() -> Frame {
    frame(vec![
        f64_column("a", vec![1.0, 2.0, 3.0, 6.0]),
        f64_column("b", vec![-4.0, 0.5, 0.25, 10.0]),
    ])
}

async fn opaque(sandbox: &Sandbox, fail: &str, limits: Limits) -> KernelInstance {
    opaque_holding(sandbox, fail, 1, limits).await
}

/// The `opaque` kernel holding `mib` MiB of state, failing as `fail` says
/// from its second fit on.
async fn opaque_holding(sandbox: &Sandbox, fail: &str, mib: i64, limits: Limits) -> KernelInstance {
    let params = [
        ("fail", text(fail)),
        ("fail-from", ParamValue::S64(2)),
        ("state-mib", ParamValue::S64(mib)),
    ];
    instance_with(
        sandbox,
        "opaque",
        guests::OPAQUE,
        &params,
        limits,
        Grants::default(),
    )
    .await
}

/// Every column of a transform, flattened, for exact comparison.
async fn outputs(kernel: &mut KernelInstance) -> Vec<Vec<f64>> {
    let out = kernel.transform(&data()).await.unwrap();
    out.columns.iter().map(|c| f64s(c).to_vec()).collect()
}

/// Fits once (succeeds), records the outputs, fits again (fails after
/// corrupting its state) and checks the outputs are exactly the old ones.
async fn rolls_back(fail: &str, limits: Limits) -> Fault {
    let sandbox = sandbox();
    let mut kernel = opaque(&sandbox, fail, limits).await;
    // The kernel refuses to export its state: only snapshots can help.
    assert!(kernel.save_state().await.is_err());
    kernel.fit(&data(), None).await.unwrap();
    let before = outputs(&mut kernel).await;
    let rollbacks = kernel.stats().rollbacks;
    let (name, fault) = fault_of(kernel.fit(&data(), None).await);
    assert_eq!(name, "opaque");
    assert_eq!(
        kernel.stats().rollbacks,
        rollbacks + 1,
        "{fail}: not rolled back"
    );
    // Onto the spare instance made after the first fit, which already
    // held the state (restored ahead): the rollback only swapped stores.
    assert_eq!(kernel.stats().spares_used, 1, "{fail}");
    assert_eq!(kernel.stats().restored_ahead, 1, "{fail}");
    assert_eq!(outputs(&mut kernel).await, before, "{fail}: state changed");
    // And the kernel keeps working from there: the third fit also fails
    // (fits count from the restored state), the outputs are still the same.
    assert!(kernel.fit(&data(), None).await.is_err());
    assert_eq!(
        outputs(&mut kernel).await,
        before,
        "{fail}: second rollback"
    );
    assert_eq!(kernel.stats().restored_ahead, 2, "{fail}");
    fault
}

#[tokio::test]
async fn a_trap_in_fit_is_rolled_back() {
    let fault = rolls_back("trap", Limits::default()).await;
    assert!(matches!(fault, Fault::Trap { .. }), "{fault}");
}

#[tokio::test]
async fn running_out_of_fuel_mid_update_is_rolled_back() {
    let fault = rolls_back("loop", limits(2_000_000_000, 256, 60_000)).await;
    assert!(matches!(fault, Fault::OutOfFuel { .. }), "{fault}");
}

#[tokio::test]
async fn a_deadline_mid_update_is_rolled_back() {
    let fault = rolls_back("loop", limits(u64::MAX / 2, 256, 300)).await;
    assert!(matches!(fault, Fault::Timeout { .. }), "{fault}");
}

#[tokio::test]
async fn a_refusal_after_a_partial_update_is_rolled_back() {
    let fault = rolls_back("refuse", Limits::default()).await;
    assert!(matches!(fault, Fault::Refused { .. }), "{fault}");
}

#[tokio::test]
async fn the_memory_limit_mid_update_is_rolled_back() {
    let fault = rolls_back("grow", limits(u64::MAX / 2, 64, 60_000)).await;
    assert!(matches!(fault, Fault::MemoryLimit { .. }), "{fault}");
}

#[tokio::test]
async fn a_checkpoint_returns_an_instance_to_an_earlier_state() {
    let sandbox = sandbox();
    let mut kernel = opaque(&sandbox, "none", Limits::default()).await;
    kernel.fit(&data(), None).await.unwrap();
    let before = outputs(&mut kernel).await;
    let checkpoint = kernel.checkpoint().await.unwrap();
    assert!(matches!(checkpoint, Checkpoint::Image { .. }));
    kernel.fit(&data(), None).await.unwrap();
    assert_ne!(outputs(&mut kernel).await, before);
    kernel.rollback_to(checkpoint).await.unwrap();
    assert_eq!(outputs(&mut kernel).await, before);
}

/// A kernel whose state is a few random pages of an 8 MiB ballast is
/// snapshotted as the pages that changed, and a rollback leaves its memory
/// byte for byte as the snapshot holds it.
#[tokio::test]
async fn a_sparse_snapshot_restores_the_memory_exactly() {
    let sandbox = sandbox();
    let params = [
        ("state-mib", ParamValue::S64(8)),
        ("dirty-pages", ParamValue::S64(40)),
    ];
    let mut kernel = instance_with(
        &sandbox,
        "opaque",
        guests::OPAQUE,
        &params,
        Limits::default(),
        Grants::default(),
    )
    .await;
    for round in 0..3 {
        kernel.fit(&data(), None).await.unwrap();
        let image = kernel.snapshot_now().await.unwrap().unwrap().clone();
        assert!(
            image.bytes() * 8 < image.memory_bytes(),
            "round {round}: {} of {} bytes held",
            image.bytes(),
            image.memory_bytes()
        );
        rolls_back_exactly(&mut kernel, &image, &format!("round {round}")).await;
    }
}

/// Checkpoints `kernel` (whose last snapshot is `image`), fits again (the
/// opaque kernel's state then differs), rolls back, and checks the memory
/// is byte for byte the image's, globals and outputs too.
async fn rolls_back_exactly(
    kernel: &mut KernelInstance,
    image: &kernel_host::snapshot::Image,
    what: &str,
) {
    let whole = image.materialize();
    let before = outputs(kernel).await;
    let checkpoint = kernel.checkpoint().await.unwrap();
    // Other random pages, another fit count.
    kernel.fit(&data(), None).await.unwrap();
    assert_ne!(outputs(kernel).await, before, "{what}");
    kernel.rollback_to(checkpoint).await.unwrap();
    let again = kernel.snapshot_now().await.unwrap().unwrap().clone();
    assert!(again.materialize() == whole, "{what}: memory differs");
    assert_eq!(again.globals, image.globals, "{what}");
    assert_eq!(outputs(kernel).await, before, "{what}");
}

#[tokio::test]
async fn sdk_kernels_roll_back_too() {
    // By copy: the guest loops over the frame and runs out of fuel (by
    // reference the host computes the statistics, bounded by the wall
    // clock instead).
    let sandbox = sandbox_from(|b| b.frames_by_reference(false));
    let component = load(&sandbox, "scaler", guests::STANDARD_SCALER).await;
    assert_eq!(component.snapshots(), Ok(()));
    let mut scaler = component
        .instantiate(limits(20_000_000, 256, 60_000), Grants::default())
        .await
        .unwrap();
    scaler.fit(&data(), None).await.unwrap();
    let before = scaler.transform(&data()).await.unwrap();
    // A fit too large for the fuel limit stops half way.
    let big = frame(vec![
        f64_column("a", vec![1.5; 1 << 21]),
        f64_column("b", vec![2.0; 1 << 21]),
    ]);
    let (_, fault) = fault_of(scaler.fit(&big, None).await);
    assert!(matches!(fault, Fault::OutOfFuel { .. }), "{fault}");
    assert_eq!(scaler.transform(&data()).await.unwrap(), before);
    let image = scaler.snapshot().unwrap();
    assert_eq!(image.host_handles, 0);
    assert!(image.bytes() > 0);
}

/// A chain of four opaque steps; the last fails from its second fit on, as
/// `how` says, with `on-failure` set to `policy`.
fn four_steps(dir: &tempfile::TempDir, how: &str, policy: &str) -> kernel_host::Plan {
    std::fs::write(dir.path().join("d.csv"), "a,b\n1,2\n3,5\n4,-1\n").unwrap();
    let mut text =
        "[pipeline]\nsteps = [\"s1\", \"s2\", \"s3\", \"s4\"]\n[data]\ntrain = \"d.csv\"\n"
            .to_string();
    for (i, fail) in ["none", "none", "none", how].iter().enumerate() {
        text += &format!(
            "[kernels.s{}]\nsource = {:?}\non-failure = {policy:?}\nparams = {{ fail = {fail:?}, fail-from = 2, state-mib = 1 }}\n",
            i + 1,
            guests::OPAQUE
        );
    }
    let path = dir.path().join("m.toml");
    std::fs::write(&path, text).unwrap();
    kernel_host::Plan::load(&path).unwrap()
}

/// What every step's transform gives on the same input.
async fn step_outputs(pipeline: &mut kernel_host::Pipeline) -> Vec<Vec<Vec<f64>>> {
    let mut all = Vec::new();
    for step in pipeline.steps_mut() {
        all.push(outputs(&mut step.instance).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipeline_fit_leaves_every_step_as_it_was() {
    for how in ["trap", "loop", "refuse"] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = four_steps(&dir, how, "fail");
        let sandbox = sandbox();
        let mut pipeline = kernel_host::Pipeline::load(&sandbox, manifest)
            .await
            .unwrap();
        pipeline.fit(data(), None).await.unwrap();
        let before = step_outputs(&mut pipeline).await;
        // Steps 1-3 fit (and change) before step 4 fails.
        let error = pipeline.fit(data(), None).await.unwrap_err();
        assert!(error.to_string().contains("s4"), "{how}: {error}");
        assert_eq!(step_outputs(&mut pipeline).await, before, "{how}");
        let rolled: u64 = pipeline.steps().iter().map(|s| s.stats().rollbacks).sum();
        assert_eq!(rolled, 5, "{how}: s4 after its call, then all four");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_rollback_keeps_the_old_state_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = four_steps(&dir, "trap", "rollback");
    let sandbox = sandbox();
    let mut pipeline = kernel_host::Pipeline::load(&sandbox, manifest)
        .await
        .unwrap();
    pipeline.fit(data(), None).await.unwrap();
    let before = step_outputs(&mut pipeline).await;
    // Step 4 fails again, is rolled back, and the fit succeeds without it.
    pipeline.fit(data(), None).await.unwrap();
    let after = step_outputs(&mut pipeline).await;
    assert_ne!(after[..3], before[..3], "steps 1-3 refitted");
    assert_eq!(after[3], before[3], "step 4 kept its state");
    assert_eq!(pipeline.steps()[3].skipped_fits, 1);
    let report = kernel_host::report::StepReport::of(&pipeline.steps()[3]);
    assert_eq!(report.rollbacks, 1);
    assert!(report.rollback_time > std::time::Duration::ZERO);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["rollback_seconds"].as_f64().unwrap() > 0.0, "{json}");
}

/// Freezes `kernel` into a file and loads it back.
async fn frozen_copy(
    sandbox: &Sandbox,
    component: &kernel_host::KernelComponent,
    kernel: &mut KernelInstance,
    dir: &tempfile::TempDir,
) -> kernel_host::KernelComponent {
    let bytes = kernel_host::freeze::freeze(component, kernel)
        .await
        .unwrap();
    let path = dir.path().join("frozen.wasm");
    std::fs::write(&path, bytes).unwrap();
    kernel_host::KernelComponent::load(sandbox, "frozen", &path, None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_frozen_kernel_predicts_without_configure_or_load_state() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    // An SDK kernel, and one that cannot export its state at all.
    for (path, params) in [
        (
            guests::LOGISTIC_REGRESSION,
            vec![("c", ParamValue::F64(0.5))],
        ),
        (guests::OPAQUE, vec![("state-mib", ParamValue::S64(1))]),
    ] {
        let component = load(&sandbox, "original", path).await;
        let mut kernel = component
            .instantiate(Limits::default(), Grants::default())
            .await
            .unwrap();
        kernel.configure(&params_of(&params)).await.unwrap();
        let y = kernel_host::bindings::Column {
            name: "y".into(),
            values: kernel_host::bindings::ColumnValues::String(
                kernel_host::bindings::Texts::from(["a", "b", "a", "b"]),
            ),
            nulls: None,
        };
        kernel.fit(&data(), Some(&y)).await.unwrap();
        let expected = if path == guests::OPAQUE {
            kernel.transform(&data()).await.unwrap()
        } else {
            kernel.predict_proba(&data()).await.unwrap()
        };

        let frozen = frozen_copy(&sandbox, &component, &mut kernel, &dir).await;
        let record = frozen.frozen().expect("marked frozen").clone();
        assert_eq!(record.source_sha256, component.sha256());
        assert!(record.state_bytes > 0);
        let mut thawed = frozen
            .instantiate(Limits::default(), Grants::default())
            .await
            .unwrap();
        let actual = if path == guests::OPAQUE {
            thawed.transform(&data()).await.unwrap()
        } else {
            thawed.predict_proba(&data()).await.unwrap()
        };
        assert_eq!(actual, expected, "{path}");
        // Reconfiguring would reset the baked-in state: refused.
        let (_, fault) = fault_of(thawed.configure(&params_of(&params)).await);
        assert!(fault.to_string().contains("frozen"), "{fault}");
    }
}

/// A sandbox that copies frames into every kernel: a large frame then
/// grows the kernel's own memory.
fn copying() -> Sandbox {
    sandbox_from(|b| b.frames_by_reference(false))
}

/// `rows` rows of three features and a three-class string target.
fn large(rows: usize) -> (Frame, kernel_host::bindings::Column) {
    let feature = |name: &str, k: f64| {
        f64_column(
            name,
            (0..rows)
                .map(|i| ((i % 97) as f64) * k + (i % 3) as f64)
                .collect(),
        )
    };
    let x = frame(vec![
        feature("a", 0.5),
        feature("b", -1.25),
        feature("c", 2.0),
    ]);
    let labels = (0..rows)
        .map(|i| ["x", "y", "z"][i % 3].to_string())
        .collect();
    let y = kernel_host::bindings::Column {
        name: "label".into(),
        values: kernel_host::bindings::ColumnValues::String(labels),
        nulls: None,
    };
    (x, y)
}

fn probe() -> Frame {
    let (x, _) = large(50);
    frame(x.columns)
}

/// After a fit on a large frame a kernel's memory stays at its peak until
/// it is given back: a fresh instance then holds the same state (its saved
/// state, checked), answers exactly as before, and the calls made to move
/// it are not counted as the kernel's. Once the snapshot is small, a later
/// peak (a large transform) is given back from the snapshot itself.
#[tokio::test]
async fn a_kernel_gives_back_the_memory_a_large_frame_grew() {
    let sandbox = copying();
    let component = load(&sandbox, "scaler", guests::STANDARD_SCALER).await;
    let mut scaler = component
        .instantiate(limits(100_000_000_000, 1024, 120_000), Grants::default())
        .await
        .unwrap();
    let (big, _) = large(1 << 20);
    scaler.fit(&big, None).await.unwrap();
    let before = scaler.transform(&probe()).await.unwrap();
    let from = scaler.memory();
    assert!(
        from > 24 << 20,
        "the fit grew the memory to {from} bytes only"
    );
    let calls = scaler.stats().calls;
    let done = scaler.give_back(4 << 20).await.unwrap();
    let GiveBack::Reloaded { from: was, to } = done else {
        panic!("{done:?}");
    };
    assert_eq!(was, from);
    assert!(to * 4 < from, "{to} of {from} bytes");
    assert_eq!(scaler.memory(), to);
    assert_eq!(
        scaler.stats().calls,
        calls,
        "give-back calls are not the kernel's"
    );
    assert_eq!(scaler.stats().give_backs, 1);
    assert!(scaler.stats().peak_memory >= from);
    assert_eq!(scaler.transform(&probe()).await.unwrap(), before);

    // The snapshot was retaken from the small instance: a transform's peak
    // goes back to it.
    let image = scaler.snapshot().unwrap().bytes();
    assert!(image * 4 < from, "snapshot of {image} bytes");
    scaler.transform(&big).await.unwrap();
    let from = scaler.memory();
    let done = scaler.give_back(4 << 20).await.unwrap();
    assert!(
        matches!(done, GiveBack::Restored { to, .. } if to * 4 < from),
        "{done:?}"
    );
    assert_eq!(scaler.transform(&probe()).await.unwrap(), before);

    // Below the threshold, nothing happens.
    assert_eq!(scaler.give_back(u64::MAX).await.unwrap(), GiveBack::Kept);
}

/// A kernel whose `save-state` leaves its model out saves the same bytes
/// again from the emptied instance, but answers the probe rows otherwise:
/// it keeps its memory and its model. The correct kernel it was made from
/// gives its memory back with the same predictions.
#[tokio::test]
async fn a_saved_state_that_loses_the_model_is_not_used_to_give_memory_back() {
    let sandbox = copying();
    let (big, y) = large(1 << 19);
    for (name, gives_back) in [("forgets-state", false), ("faultless", true)] {
        let path = guests::FAULTY
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap();
        let component = load(&sandbox, name, path).await;
        let mut kernel = component
            .instantiate(limits(100_000_000_000, 1024, 120_000), Grants::default())
            .await
            .unwrap();
        kernel.configure(&[]).await.unwrap();
        kernel.fit(&big, Some(&y)).await.unwrap();
        let before = kernel.predict(&probe()).await.unwrap();
        let from = kernel.memory();
        let done = kernel.give_back(4 << 20).await.unwrap();
        if gives_back {
            assert!(
                matches!(done, GiveBack::Reloaded { .. }),
                "{name}: {done:?}"
            );
            assert!(kernel.memory() * 4 < from, "{name}");
        } else {
            assert_eq!(done, GiveBack::Kept, "{name}");
            assert_eq!(kernel.memory(), from, "{name}");
            // Not asked again.
            assert_eq!(kernel.give_back(4 << 20).await.unwrap(), GiveBack::Kept);
        }
        assert_eq!(kernel.predict(&probe()).await.unwrap(), before, "{name}");
    }
}

/// A large dense state (24 MiB of random ballast) is restored through the
/// prefaulted, huge-page path, and the memory is byte for byte the image.
#[tokio::test]
async fn a_large_snapshot_restores_the_memory_exactly() {
    let sandbox = sandbox();
    let params = [("state-mib", ParamValue::S64(24))];
    let mut kernel = instance_with(
        &sandbox,
        "opaque",
        guests::OPAQUE,
        &params,
        limits(100_000_000_000, 256, 60_000),
        Grants::default(),
    )
    .await;
    kernel.fit(&data(), None).await.unwrap();
    let image = kernel.snapshot_now().await.unwrap().unwrap().clone();
    assert!(image.bytes() > 24 << 20, "{}", image.bytes());
    rolls_back_exactly(&mut kernel, &image, "24 MiB").await;
}

/// A spare instance (made ahead, grown and prefaulted for the snapshot it
/// expects) takes a rollback to any image at least as large, and the
/// memory is then exactly the image's; one grown past the image it is
/// asked to restore is not used, so the memory keeps the image's size.
#[tokio::test]
async fn a_spare_instance_takes_only_the_rollbacks_it_fits() {
    // States up to 16 MiB restored ahead: the 8 MiB one below too.
    let sandbox = sandbox_from(|b| b.restore_ahead(16 << 20));
    let mut kernel = opaque(&sandbox, "none", Limits::default()).await;
    kernel.fit(&data(), None).await.unwrap();
    let small = kernel.snapshot().unwrap().clone();
    let before = outputs(&mut kernel).await;
    let checkpoint = kernel.checkpoint().await.unwrap();

    // A larger state (8 MiB of ballast), then a fit that traps: rolled
    // back onto the spare made for the 1 MiB state (smaller: it grows).
    let larger = [("state-mib", ParamValue::S64(8)), ("fail", text("trap"))];
    kernel.configure(&params_of(&larger[..1])).await.unwrap();
    kernel.fit(&data(), None).await.unwrap();
    let large = kernel.snapshot().unwrap().clone();
    assert!(large.memory_bytes() > small.memory_bytes() + (6 << 20));
    kernel.configure(&params_of(&larger)).await.unwrap();
    let configured = kernel.snapshot().unwrap().clone();
    kernel.spare_ready().await;
    assert!(kernel.fit(&data(), None).await.is_err());
    assert_eq!(rollbacks(&kernel), (1, 1));
    let again = kernel.snapshot_now().await.unwrap().unwrap().clone();
    assert!(again.materialize() == configured.materialize());
    assert_eq!(again.globals, configured.globals);

    // The next spare was made for the large image: the small one cannot
    // use it (memories do not shrink).
    kernel.rollback_to(checkpoint).await.unwrap();
    let after = rollbacks(&kernel);
    let restored = kernel.snapshot_now().await.unwrap().unwrap().clone();
    assert_eq!(restored.memory_bytes(), small.memory_bytes());
    assert!(restored.materialize() == small.materialize());
    assert_eq!(outputs(&mut kernel).await, before);
    assert_eq!(after, (2, 1));
}

/// Small states are restored into a spare instance ahead: after every
/// snapshot, or while a checkpoint is held, with the checkpoint's state.
/// A rollback to an older checkpoint writes over the state the spare
/// holds; snapshots taken faster than the spare follows leave it holding
/// the newest. Each ends byte for byte where a fresh instance restored
/// with the image would, and the spare keeps one place.
#[tokio::test]
async fn a_spare_restored_ahead_ends_exactly_where_a_fresh_restore_would() {
    let sandbox = with_spares(4);
    let mut kernel = opaque(&sandbox, "none", Limits::default()).await;
    let counts = |kernel: &KernelInstance| {
        let stats = kernel.stats();
        (stats.rollbacks, stats.spares_used, stats.restored_ahead)
    };
    kernel.fit(&data(), None).await.unwrap();
    let first = kernel.snapshot().unwrap().clone();
    let before = outputs(&mut kernel).await;

    // A checkpoint held across fits: the spare keeps its state.
    let checkpoint = kernel.checkpoint().await.unwrap();
    for _ in 0..3 {
        kernel.fit(&data(), None).await.unwrap();
    }
    assert!(kernel.snapshot().unwrap().materialize() != first.materialize());
    assert_ne!(outputs(&mut kernel).await, before);
    kernel.spare_ready().await;
    kernel.rollback_to(checkpoint).await.unwrap();
    assert_eq!(counts(&kernel), (1, 1, 1));
    holds_exactly(&mut kernel, &first, &before).await;

    // Two checkpoints: the spare holds the later one's state, and the
    // rollback to the earlier one writes over it.
    let earlier = kernel.checkpoint().await.unwrap();
    kernel.fit(&data(), None).await.unwrap();
    let later = kernel.checkpoint().await.unwrap();
    kernel.fit(&data(), None).await.unwrap();
    kernel.spare_ready().await;
    kernel.rollback_to(earlier).await.unwrap();
    assert_eq!(counts(&kernel), (2, 2, 1));
    holds_exactly(&mut kernel, &first, &before).await;
    drop(later);

    // Snapshots in a row: each newer one supersedes the spare's work.
    kernel.fit(&data(), None).await.unwrap();
    for _ in 0..20 {
        kernel.snapshot_now().await.unwrap();
    }
    let latest = kernel.snapshot().unwrap().clone();
    let expected = outputs(&mut kernel).await;
    let checkpoint = kernel.checkpoint().await.unwrap();
    kernel.rollback_to(checkpoint).await.unwrap();
    assert_eq!(counts(&kernel), (3, 3, 2));
    holds_exactly(&mut kernel, &latest, &expected).await;
    // One spare at a time, whatever the chain of tasks behind it.
    assert!(sandbox.spares_held() <= 1);

    // Nothing restored ahead (`restore_ahead(0)`): the rollback writes the
    // image into a new instance in the failed one's slot, to the same end.
    let sandbox = sandbox_from(|b| b.restore_ahead(0));
    let mut kernel = opaque(&sandbox, "trap", Limits::default()).await;
    kernel.fit(&data(), None).await.unwrap();
    let image = kernel.snapshot().unwrap().clone();
    let expected = outputs(&mut kernel).await;
    assert!(kernel.fit(&data(), None).await.is_err());
    assert_eq!(counts(&kernel), (1, 0, 0));
    holds_exactly(&mut kernel, &image, &expected).await;
}

/// The kernel's memories and globals are exactly `image`'s, and it answers
/// `outputs`.
async fn holds_exactly(
    kernel: &mut KernelInstance,
    image: &kernel_host::snapshot::Image,
    outputs_then: &[Vec<f64>],
) {
    let now = kernel.snapshot_now().await.unwrap().unwrap().clone();
    assert!(now.materialize() == image.materialize());
    assert_eq!(now.globals, image.globals);
    assert_eq!(outputs(kernel).await, outputs_then);
}

/// A state larger than what is restored ahead rolls back without a spare
/// (in the failed store's own slot), unless its memory fits what a pooled
/// slot keeps resident: then onto a spare grown for it. Both exactly.
#[tokio::test]
async fn a_large_state_rolls_back_onto_a_spare_only_when_kept_resident() {
    for (keep_resident, spare) in [(None, 0), (Some(16 << 20), 1)] {
        let sandbox = sandbox_from(|b| match keep_resident {
            Some(bytes) => b.keep_resident(bytes),
            None => b,
        });
        let mut kernel = opaque_holding(&sandbox, "trap", 8, Limits::default()).await;
        kernel.fit(&data(), None).await.unwrap();
        let image = kernel.snapshot().unwrap().clone();
        assert!(image.bytes() > kernel_host::RESTORE_AHEAD);
        let expected = outputs(&mut kernel).await;
        kernel.spare_ready().await;
        assert!(kernel.fit(&data(), None).await.is_err());
        let stats = kernel.stats();
        assert_eq!(
            (stats.rollbacks, stats.spares_used, stats.restored_ahead),
            (1, spare, 0),
            "kept resident: {keep_resident:?}"
        );
        holds_exactly(&mut kernel, &image, &expected).await;
    }
}

/// A sandbox keeping at most `spares` spare instances.
fn with_spares(spares: usize) -> Sandbox {
    sandbox_from(|b| b.spare_instances(spares))
}

/// Rollbacks, and those onto a spare instance.
fn rollbacks(kernel: &KernelInstance) -> (u64, u64) {
    let stats = kernel.stats();
    (stats.rollbacks, stats.spares_used)
}

/// Spares are capped per sandbox, and a spare's place is given back when
/// its kernel goes; with none, rollbacks make their own instance.
#[tokio::test]
async fn spare_instances_are_capped_and_given_back() {
    let sandbox = with_spares(1);
    let mut first = opaque(&sandbox, "trap", Limits::default()).await;
    let mut second = opaque(&sandbox, "trap", Limits::default()).await;
    first.fit(&data(), None).await.unwrap();
    second.fit(&data(), None).await.unwrap();
    let expected = outputs(&mut second).await;
    // The first kernel holds the one spare.
    assert!(second.fit(&data(), None).await.is_err());
    assert_eq!(rollbacks(&second), (1, 0));
    assert!(first.fit(&data(), None).await.is_err());
    assert_eq!(rollbacks(&first), (1, 1));
    assert_eq!(sandbox.spares_held(), 1);
    drop(first);
    // Its place is freed once the task making its spare has seen it gone.
    let waited = std::time::Instant::now();
    while sandbox.spares_held() > 0 {
        assert!(waited.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The second kernel's next snapshot makes one.
    second.snapshot_now().await.unwrap();
    assert!(second.fit(&data(), None).await.is_err());
    assert_eq!(rollbacks(&second), (2, 1));
    assert_eq!(outputs(&mut second).await, expected);

    let none = with_spares(0);
    let mut kernel = opaque(&none, "trap", Limits::default()).await;
    kernel.fit(&data(), None).await.unwrap();
    let expected = outputs(&mut kernel).await;
    assert!(kernel.fit(&data(), None).await.is_err());
    assert_eq!(rollbacks(&kernel), (1, 0));
    assert_eq!(outputs(&mut kernel).await, expected);
}

/// A kernel holding host tensors cannot have its snapshot restored (a
/// fresh instance would not hold them): after a failure it is replaced by
/// a fresh instance, configured again — the spare, made fresh for that
/// rather than grown for an image it could not take.
#[tokio::test]
async fn a_kernel_holding_host_tensors_is_replaced_by_a_fresh_spare() {
    let sandbox = sandbox();
    let mut kernel = instance_with(
        &sandbox,
        "probe",
        guests::TENSOR_PROBE,
        &[("behaviour", text("matmul")), ("target", text("8"))],
        limits(u64::MAX / 2, 256, 500),
        Grants::default(),
    )
    .await;
    kernel.fit(&data(), None).await.unwrap();
    assert!(kernel.snapshot().unwrap().host_handles > 0);
    let looping = [("behaviour", text("matmul-loop")), ("target", text("8"))];
    kernel.configure(&params_of(&looping)).await.unwrap();
    let (_, fault) = fault_of(kernel.fit(&data(), None).await);
    assert!(matches!(fault, Fault::Timeout { .. }), "{fault}");
    let stats = kernel.stats();
    assert_eq!(
        (stats.restarts, stats.rollbacks, stats.spares_used),
        (1, 0, 1)
    );
    // Configured again (to loop), with no tensors.
    let (_, again) = fault_of(kernel.fit(&data(), None).await);
    assert!(matches!(again, Fault::Timeout { .. }), "{again}");
}
