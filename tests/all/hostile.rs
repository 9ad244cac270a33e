//! Hostile guests are contained: each attempt ends in a typed fault naming
//! the kernel, nothing escapes, and the host goes on serving other kernels
//! (and the same kernel, once revived) in the same process.

use crate::common::*;
use kernel_host::{Error, Fault, Grants, KernelComponent, Limits, LoadProblem, Sandbox};
use kernel_host_guests as guests;
use std::path::Path;
use std::time::{Duration, Instant};

/// A healthy kernel in the same sandbox still works.
async fn host_still_serves(sandbox: &Sandbox) {
    let mut scaler = instance(sandbox, "healthy", guests::STANDARD_SCALER, &[]).await;
    let x = frame(vec![f64_column("a", vec![1.0, 3.0])]);
    scaler.fit(&x, None).await.unwrap();
    assert_eq!(
        f64s(&scaler.transform(&x).await.unwrap().columns[0]),
        [-1.0, 1.0]
    );
}

fn one_row() -> kernel_host::bindings::Frame {
    frame(vec![f64_column("x", vec![1.0])])
}

/// Runs `behaviour` in a hostile instance's `transform` and returns the
/// fault, checking it names the kernel and that the host carries on.
async fn fault_for(
    behaviour: &str,
    target: &str,
    limits: kernel_host::Limits,
    grants: Grants,
) -> Fault {
    let sandbox = sandbox();
    let params = [("behaviour", text(behaviour)), ("target", text(target))];
    let mut hostile = instance_with(
        &sandbox,
        "villain",
        guests::HOSTILE,
        &params,
        limits,
        grants,
    )
    .await;
    let (kernel, fault) = fault_of(hostile.transform(&one_row()).await);
    assert_eq!(kernel, "villain");
    // The same instance serves again once reconfigured: its poisoned store
    // was replaced.
    hostile
        .configure(&params_of(&[("behaviour", text("none"))]))
        .await
        .unwrap();
    assert_eq!(hostile.transform(&one_row()).await.unwrap(), one_row());
    host_still_serves(&sandbox).await;
    fault
}

/// The loot a hostile call returned; panics if the call failed.
async fn loot_of(behaviour: &str, target: &str, grants: Grants) -> String {
    let sandbox = sandbox();
    let params = [("behaviour", text(behaviour)), ("target", text(target))];
    let mut hostile = instance_with(
        &sandbox,
        "villain",
        guests::HOSTILE,
        &params,
        Default::default(),
        grants,
    )
    .await;
    let out = hostile.transform(&one_row()).await.unwrap();
    kernel_host::data::cell_text(&out.columns[0], 0).unwrap()
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel() {
    let fault = fault_for(
        "loop",
        "",
        limits(50_000_000, 64, 60_000),
        Grants::default(),
    )
    .await;
    assert_eq!(fault, Fault::OutOfFuel { limit: 50_000_000 });
}

#[tokio::test]
async fn infinite_loop_hits_the_wall_clock_timeout() {
    let started = Instant::now();
    let fault = fault_for("loop", "", limits(u64::MAX / 2, 64, 300), Grants::default()).await;
    assert_eq!(
        fault,
        Fault::Timeout {
            limit: Duration::from_millis(300)
        }
    );
    // Generous bound: only proves the call was cut short, not how fast.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let fault = fault_for(
        "memory-bomb",
        "",
        limits(u64::MAX / 2, 32, 60_000),
        Grants::default(),
    )
    .await;
    assert_eq!(
        fault,
        Fault::MemoryLimit {
            limit_bytes: 32 << 20
        }
    );
}

#[tokio::test]
async fn unbounded_recursion_traps_as_stack_overflow() {
    let fault = fault_for("recursion", "", Default::default(), Grants::default()).await;
    assert!(
        matches!(&fault, Fault::Trap { message } if message.contains("stack overflow")),
        "{fault}"
    );
}

#[tokio::test]
async fn panic_is_reported_with_its_message() {
    let fault = fault_for("panic", "", Default::default(), Grants::default()).await;
    assert!(
        matches!(&fault, Fault::Trap { message } if message.contains("hostile kernel panicked on purpose")),
        "{fault}"
    );
}

#[tokio::test]
async fn reading_etc_passwd_fails() {
    let fault = fault_for(
        "read-file",
        "/etc/passwd",
        Default::default(),
        Grants::default(),
    )
    .await;
    assert!(
        matches!(&fault, Fault::Trap { message } if message.contains("could not read /etc/passwd")),
        "{fault}"
    );
}

fn granted() -> Grants {
    let mut grants = Grants::default();
    grants.read_dirs.insert(
        "/granted".into(),
        workspace().join("tests/fixtures/granted"),
    );
    grants
}

#[tokio::test]
async fn a_granted_directory_is_readable_and_nothing_else() {
    assert_eq!(
        loot_of("read-file", "/granted/ok.txt", granted()).await,
        "granted content\n"
    );
    for escape in [
        "/granted/../outside/secret.txt",
        "/outside/secret.txt",
        "../outside/secret.txt",
    ] {
        let fault = fault_for("read-file", escape, Default::default(), granted()).await;
        assert!(
            matches!(&fault, Fault::Trap { message } if message.contains("could not read")),
            "{escape}: {fault}"
        );
    }
}

#[tokio::test]
async fn a_granted_directory_is_read_only() {
    let fault = fault_for(
        "write-file",
        "/granted/new.txt",
        Default::default(),
        granted(),
    )
    .await;
    assert!(
        matches!(&fault, Fault::Trap { message } if message.contains("could not write")),
        "{fault}"
    );
    assert!(!workspace().join("tests/fixtures/granted/new.txt").exists());
}

#[tokio::test]
async fn sockets_are_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let fault = fault_for("socket", &address, Default::default(), Grants::default()).await;
    assert!(
        matches!(&fault, Fault::Trap { message } if message.contains("could not connect")),
        "{fault}"
    );
    assert!(listener.accept().is_err(), "the guest reached the listener");
}

#[tokio::test]
async fn environment_variables_are_invisible() {
    assert!(
        std::env::vars().next().is_some(),
        "the test process itself has variables"
    );
    let fault = fault_for("env", "", Default::default(), Grants::default()).await;
    assert!(
        matches!(&fault, Fault::Trap { message } if message.contains("no environment variables")),
        "{fault}"
    );
}

#[tokio::test]
async fn clocks_are_frozen_unless_granted() {
    assert_eq!(loot_of("clock", "", Grants::default()).await, "0");
    let grants = Grants {
        clocks: true,
        ..Default::default()
    };
    let now: u64 = loot_of("clock", "", grants).await.parse().unwrap();
    assert!(now > 1_600_000_000, "{now}");
}

#[tokio::test]
async fn output_with_the_wrong_row_count_is_refused() {
    let fault = fault_for("wrong-rows", "", Default::default(), Grants::default()).await;
    assert!(
        matches!(&fault, Fault::BadOutput(m) if m.contains("2 rows for 1 input rows")),
        "{fault}"
    );
    let fault = fault_for("bad-column", "", Default::default(), Grants::default()).await;
    assert!(
        matches!(&fault, Fault::BadOutput(m) if m.contains("column `x` has 4 rows")),
        "{fault}"
    );
}

#[tokio::test]
async fn a_kernel_refusal_does_not_poison_the_instance() {
    let sandbox = sandbox();
    let mut hostile = instance(
        &sandbox,
        "picky",
        guests::HOSTILE,
        &[("behaviour", text("refuse"))],
    )
    .await;
    let (_, fault) = fault_of(hostile.fit(&one_row(), None).await);
    assert!(
        fault
            .to_string()
            .contains("invalid input: refused on purpose"),
        "{fault}"
    );
    assert_eq!(
        hostile.stats().faults,
        0,
        "a refusal is not a fault of the sandbox"
    );
}

async fn load_problem(path: &Path, pin: Option<&str>) -> LoadProblem {
    match kernel_host::KernelComponent::load(&sandbox(), "suspect", path, pin)
        .await
        .map_err(Error::from)
    {
        Err(Error::Load {
            kernel, problem, ..
        }) => {
            assert_eq!(kernel, "suspect");
            problem
        }
        Err(other) => panic!("expected a load error, got {other}"),
        Ok(_) => panic!("expected a load error, got a kernel"),
    }
}

#[tokio::test]
async fn non_components_are_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    assert!(
        matches!(load_problem(&module, None).await, LoadProblem::NotAComponent(m) if m.contains("core WebAssembly module"))
    );
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, b"just some text").unwrap();
    assert!(
        matches!(load_problem(&text, None).await, LoadProblem::NotAComponent(m) if m.contains("magic"))
    );
    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(guests::STANDARD_SCALER).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load_problem(&truncated, None).await,
        LoadProblem::Compile(_)
    ));
    host_still_serves(&sandbox()).await;
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let problem = load_problem(Path::new(guests::OTHER_WORLD), None).await;
    assert!(
        matches!(&problem, LoadProblem::WrongWorld { exports } if exports.contains("greet")),
        "{problem}"
    );
}

#[tokio::test]
async fn an_incompatible_wit_version_is_refused() {
    let problem = load_problem(Path::new(guests::FUTURE_KERNEL), None).await;
    assert!(
        matches!(&problem, LoadProblem::IncompatibleVersion { found, supported } if found == "0.2.0" && supported == "0.1.3"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_wrong_hash_pin_is_refused() {
    let problem = load_problem(Path::new(guests::STANDARD_SCALER), Some(&"0".repeat(64))).await;
    assert!(matches!(problem, LoadProblem::HashMismatch { .. }));
    let actual = kernel_host::sha256_hex(&std::fs::read(guests::STANDARD_SCALER).unwrap());
    kernel_host::KernelComponent::load(
        &sandbox(),
        "ok",
        Path::new(guests::STANDARD_SCALER),
        Some(&actual),
    )
    .await
    .unwrap();
}

/// A sandbox reuses what it loaded from a file only while the file is
/// unchanged: a second load of the same file is the same kernel, a file
/// replaced by another kernel loads as that kernel (never the stale one),
/// a pin is checked on every load, and `verify_loads` re-reads every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_kernel_file_is_never_served_from_the_load_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.wasm");
    std::fs::copy(guests::STANDARD_SCALER, &path).unwrap();
    let sandbox = sandbox();
    let first = KernelComponent::load(&sandbox, "k", &path, None)
        .await
        .unwrap();
    let again = KernelComponent::load(&sandbox, "k2", &path, Some(first.sha256()))
        .await
        .unwrap();
    assert_eq!(again.info().name, "standard-scaler");
    assert_eq!((again.id(), again.sha256()), ("k2", first.sha256()));
    // Another kernel under the same name.
    std::fs::copy(guests::SIMPLE_IMPUTER, &path).unwrap();
    let replaced = KernelComponent::load(&sandbox, "k", &path, None)
        .await
        .unwrap();
    assert_eq!(replaced.info().name, "simple-imputer");
    assert_ne!(replaced.sha256(), first.sha256());
    // The old pin no longer matches what is on disk, cached or not.
    let err = KernelComponent::load(&sandbox, "k", &path, Some(first.sha256()))
        .await
        .map_err(Error::from)
        .err()
        .unwrap();
    assert!(
        matches!(
            &err,
            Error::Load {
                problem: LoadProblem::HashMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    // Verifying loads re-read the file every time and agree.
    let verifying = Sandbox::builder()
        .cache_dir(Some(workspace().join("target/test-cache")))
        .verify_loads(true)
        .build()
        .unwrap();
    let verified = KernelComponent::load(&verifying, "k", &path, None)
        .await
        .unwrap();
    assert_eq!(verified.sha256(), replaced.sha256());
}

/// What a load records beside the compiled kernels lets a new process (a
/// new sandbox on the same cache directory) load the file without reading
/// it or asking `describe` again, and is never used for a changed file.
#[tokio::test]
async fn a_load_record_is_only_used_for_the_file_it_describes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let process = || {
        Sandbox::builder()
            .cache_dir(Some(cache.clone()))
            .build()
            .unwrap()
    };
    let path = dir.path().join("k.wasm");
    std::fs::copy(guests::STANDARD_SCALER, &path).unwrap();
    let first = KernelComponent::load(&process(), "k", &path, None)
        .await
        .unwrap();
    let records = || std::fs::read_dir(cache.join("loads")).map_or(0, |d| d.count());
    assert_eq!(records(), 1);
    // Another process: the same kernel, from the record.
    let recorded = KernelComponent::load(&process(), "k", &path, Some(first.sha256()))
        .await
        .unwrap();
    assert_eq!(recorded.info(), first.info());
    assert_eq!(recorded.sha256(), first.sha256());
    assert_eq!(recorded.by_reference(), first.by_reference());
    assert_eq!(&*recorded.bytes().unwrap(), &*first.bytes().unwrap());
    let mut scaler = recorded
        .instantiate(Limits::default(), Grants::default())
        .await
        .unwrap();
    let x = frame(vec![f64_column("a", vec![1.0, 2.0, 3.0])]);
    scaler.fit(&x, None).await.unwrap();
    assert_eq!(
        f64s(&scaler.transform(&x).await.unwrap().columns[0])[1],
        0.0
    );
    // A stale pin is refused from the record too.
    let err = KernelComponent::load(&process(), "k", &path, Some(&"0".repeat(64)))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            &err,
            kernel_host::SandboxError::Load {
                problem: LoadProblem::HashMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    // The file replaced: the record is not about it any more.
    std::fs::copy(guests::SIMPLE_IMPUTER, &path).unwrap();
    let replaced = KernelComponent::load(&process(), "k", &path, None)
        .await
        .unwrap();
    assert_eq!(replaced.info().name, "simple-imputer");
    // A kernel loaded from a record whose file then changes refuses to
    // hand out bytes that are not the ones it runs.
    std::fs::copy(guests::STANDARD_SCALER, &path).unwrap();
    let scaler = KernelComponent::load(&process(), "k", &path, None)
        .await
        .unwrap();
    let scaler = KernelComponent::load(&process(), "k", &path, Some(scaler.sha256()))
        .await
        .unwrap();
    std::fs::copy(guests::SIMPLE_IMPUTER, &path).unwrap();
    let err = scaler.bytes().err().unwrap();
    assert!(
        matches!(
            &err,
            kernel_host::SandboxError::Load {
                problem: LoadProblem::Changed { .. },
                ..
            }
        ),
        "{err}"
    );
}

/// A kernel whose `save-state` never returns costs a give-back at most 2 s,
/// not its own time limit (a minute here, fuel unbounded): it is rebuilt
/// from its snapshot with its state, keeps serving, and is not asked again.
#[tokio::test]
async fn a_save_state_that_never_returns_cannot_stall_a_give_back() {
    let sandbox = Sandbox::builder()
        .cache_dir(Some(workspace().join("target/test-cache")))
        .frames_by_reference(false)
        .build()
        .unwrap();
    let params = [("behaviour", text("save-state-loop"))];
    let mut hostile = instance_with(
        &sandbox,
        "villain",
        guests::HOSTILE,
        &params,
        limits(u64::MAX / 2, 1024, 60_000),
        Grants::default(),
    )
    .await;
    // A large frame copied in leaves its pages dirty: the snapshot is as
    // large as the memory, so the give-back asks the kernel's save-state.
    let big = frame(vec![f64_column("x", (0..1 << 21).map(f64::from).collect())]);
    hostile.fit(&big, None).await.unwrap();
    let started = Instant::now();
    let (kernel, fault) = fault_of(hostile.give_back(0).await);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(kernel, "villain");
    assert!(
        matches!(fault, Fault::Timeout { limit } if limit == Duration::from_secs(2)),
        "{fault}"
    );
    assert_eq!(hostile.transform(&one_row()).await.unwrap(), one_row());
    assert_eq!(hostile.stats().rollbacks, 0, "not a failed call");
    let started = Instant::now();
    assert_eq!(
        hostile.give_back(0).await.unwrap(),
        kernel_host::GiveBack::Kept
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    host_still_serves(&sandbox).await;
}
