"""Kernel-host on Ray: predict a Ray Dataset with a saved bundle, and run
the trials of `tune` and the candidates of `compare` as Ray tasks.

    import ray
    from kernel_host import ray as khr
    predicted = khr.predict(ray.data.read_csv("s3://.../*.csv"), "model.khb")
    tuned = khr.tune("pipeline.toml", trials=40, concurrency=8)
    compared = khr.compare(["a.toml", "b.toml"], cv=5)

`map_batches` with a callable class: each worker actor loads the bundle
once (it travels once, as a constructor argument) and receives batches as
Arrow tables; the predictions are a new column. Results are identical to
`Pipeline.load(bundle).predict` on the same rows, in the same order; Ray
retries the tasks of a worker that dies. A kernel fault raises the typed
exception naming the batch (its size and its number on that worker).
"""

from __future__ import annotations

import json
import time
from typing import Callable, Optional, Sequence

import pyarrow as pa

from . import KernelHostError, _native
from ._worker import bundle_bytes, located, pipeline


class _Predictor:
    def __init__(self, data: bytes, columns: Optional[list], name: str):
        self.pipeline = pipeline(data)
        self.columns = columns
        self.name = name
        self.batches = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        self.batches += 1
        x = batch.select(self.columns) if self.columns else batch
        try:
            values = self.pipeline.predict(x, output="pyarrow")
        except KernelHostError as e:
            raise located(e, f"batch {self.batches} of this worker ({batch.num_rows} rows)") from e
        return batch.append_column(self.name, values.column(0))


def predict(dataset, bundle, features: Optional[Sequence[str]] = None, name: str = "prediction",
            concurrency: int = 2, batch_size: int = 4096):
    """`dataset` with a `name` column of predictions, rows in input order
    (this turns on Ray Data's `preserve_order` for `dataset`: a dataset
    keeps the context it was made with)."""
    dataset.context.execution_options.preserve_order = True
    data = bundle_bytes(bundle)
    return dataset.map_batches(
        _Predictor,
        fn_constructor_args=(data, list(features) if features is not None else None, name),
        batch_format="pyarrow",
        batch_size=batch_size,
        # Ray Data restarts an actor that dies and retries its batches
        # (max_restarts and max_task_retries default to -1 for actor pools).
        compute=actor_pool(concurrency),
    )


def actor_pool(size: int):
    """A fixed pool of `size` actors (Ray >= 2.9; `concurrency=` is deprecated)."""
    import ray

    return ray.data.ActorPoolStrategy(size=size)


def _evaluate(plan_json: str, shipment) -> str:
    """One trial on a Ray worker: cross-validated in that worker's sandbox."""
    kernels, x, y, folds, seed = shipment
    return _native.evaluate(plan_json, kernels, x, y, folds, seed)


def _cause(error: BaseException) -> str:
    """The kernel-host error inside a Ray task error, as its message."""
    cause = getattr(error, "cause", None) or error.__cause__ or error
    if isinstance(cause, KernelHostError):
        return f"{type(cause).__name__}: {cause}"
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__


def _run(jobs, concurrency: int, budget: Optional[float], num_cpus: float, on_done):
    """Runs `jobs` (an iterator of (key, plan_json)) as Ray tasks, at most
    `concurrency` at once, calling `on_done(key, result, error, seconds)`;
    stops starting tasks at `budget` seconds and cancels those still running.
    Returns how many were cancelled."""
    import ray

    remote = ray.remote(num_cpus=num_cpus, max_retries=3)(_evaluate)
    started = time.monotonic()
    running: dict = {}
    exhausted = False
    while True:
        while not exhausted and len(running) < concurrency and (budget is None or time.monotonic() - started < budget):
            job = next(jobs, None)
            if job is None:
                exhausted = True
                break
            key, plan_json, shipped = job
            running[remote.remote(plan_json, shipped)] = (key, time.monotonic())
        if not running:
            return 0
        timeout = None if budget is None else max(0.0, budget - (time.monotonic() - started))
        done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
        if not done:
            for ref in running:
                ray.cancel(ref, force=True)
            return len(running)
        ref = done[0]
        key, at = running.pop(ref)
        try:
            result, error = ray.get(ref), None
        except Exception as e:  # a RayTaskError wrapping the typed error
            result, error = None, _cause(e)
        on_done(key, result, error, time.monotonic() - at)


def tune(manifest, *, trials: int = 20, cv: int = 5, seed: int = 0, params: Sequence[str] = (),
         metric: Optional[str] = None, random: bool = False, concurrency: int = 2,
         budget: Optional[float] = None, out=None, num_cpus: float = 1,
         progress: Optional[Callable[[int, Optional[float], Optional[str]], None]] = None) -> dict:
    """`kernel-host tune` with each trial a Ray task (call `ray.init` first).

    The search (space, TPE, trial 0 = the manifest as written) and the
    scoring are the host's own, so with `concurrency=1` the trials are
    exactly those of `kernel-host tune --jobs 1` with the same seed. The
    kernels, rows and folds travel once through Ray's object store (the
    workers need not see the manifest's files); each trial is
    cross-validated in its worker's sandbox. A trial whose kernel fails is
    recorded with its error; a worker that dies has its trial retried.

    `params`: `STEP.NAME=RANGE` overrides, as `--param`. `out`: write the
    tuned manifest there (beside `manifest`). Returns the document of
    `kernel-host tune --json`.
    """
    import ray

    study = _native.Study(str(manifest), list(params), cv, seed, metric, trials, random)
    shipped = ray.put(study.shipment())

    def jobs():
        while True:
            asked = study.ask()
            if asked is None:
                return
            number, plan_json, _ = asked
            yield number, plan_json, shipped

    def done(number, result, error, seconds):
        score, err = study.tell(number, result, error, seconds)
        if progress is not None:
            progress(number, score, err)

    # Trials asked for but cancelled at the budget are counted by finish().
    _run(jobs(), max(1, concurrency), budget, num_cpus, done)
    tuned = json.loads(study.finish())
    if out is not None:
        study.write_manifest(str(out))
    return tuned


def compare(manifests: Sequence, *, vary: Optional[str] = None, cv: int = 5, seed: int = 0,
            metric: Optional[str] = None, concurrency: int = 2, num_cpus: float = 1) -> dict:
    """`kernel-host compare` with each candidate a Ray task: the same
    candidates (the manifests, or one manifest with `vary="STEP.PARAM=V1,V2"`),
    rows, folds and recommendation. Returns the document of
    `kernel-host compare --json`."""
    import ray

    if isinstance(manifests, (str, bytes)) or hasattr(manifests, "__fspath__"):
        manifests = [manifests]
    candidates = _native.Candidates([str(m) for m in manifests], vary, cv, seed, metric)
    shipped = ray.put(candidates.shipment())
    listed = candidates.candidates()
    outcomes: list = [(None, "not run")] * len(listed)

    def done(index, result, error, seconds):
        outcomes[index] = (result, error)

    _run(((i, plan_json, shipped) for i, (_, plan_json) in enumerate(listed)), max(1, concurrency), None, num_cpus, done)
    return json.loads(candidates.finish(outcomes))
