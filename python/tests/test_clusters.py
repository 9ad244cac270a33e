"""Bundles served on Dask and Ray (local clusters of 2 workers): identical
results to single-process predict, typed errors naming the batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kernel_host

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("KERNEL_HOST_BIN", ROOT / "target/release/kernel-host"))
MANIFEST = ROOT / "examples/penguins/pipeline.toml"
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "penguins.khb"
    kernel_host.Pipeline.from_manifest(MANIFEST).fit().save(path)
    return path


@pytest.fixture(scope="module")
def rows():
    df = pd.read_csv(ROOT / "examples/penguins/data/penguins.csv", na_values=["NA"])
    # Many rows, so every worker gets several partitions.
    return pd.concat([df] * 20, ignore_index=True)


def single_process(bundle, rows):
    return list(kernel_host.Pipeline.load(bundle).predict(rows[FEATURES]))


def test_dask_partitions_give_identical_predictions(bundle, rows):
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("dask.distributed")
    from kernel_host import dask as khd

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, distributed.Client(cluster):
        ddf = dd.from_pandas(rows, npartitions=8)
        predicted = khd.predict(ddf, bundle, features=FEATURES).compute()
        assert list(predicted) == single_process(bundle, rows)
        # A fault in one partition: the typed exception, naming it.
        broken = rows.copy()
        broken["bill_length_mm"] = "oops"
        with pytest.raises(kernel_host.KernelHostError) as e:
            khd.predict(dd.from_pandas(broken, npartitions=4), bundle, features=FEATURES).compute()
        assert "partition" in str(e.value)


def test_a_killed_dask_worker_is_retried_and_the_result_is_the_same(bundle, rows, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("dask.distributed")
    from kernel_host import dask as khd

    marker = tmp_path / "killed"

    def flaky(df):
        # Kills its worker process in the middle of the job, once; the
        # partition is fused with the prediction that follows it.
        if len(df) and int(df.index[0]) >= len(rows) // 2 and not marker.exists():
            marker.write_text("killed")
            os._exit(1)
        return df

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, distributed.Client(cluster):
        ddf = dd.from_pandas(rows, npartitions=8).map_partitions(flaky)
        predicted = khd.predict(ddf, bundle, features=FEATURES).compute()
        assert marker.exists(), "the worker was never killed"
        assert list(predicted) == single_process(bundle, rows)


def test_ray_map_batches_gives_identical_predictions(bundle, rows):
    ray = pytest.importorskip("ray")
    from kernel_host import ray as khr

    # Logical CPUs: 2 for the predicting actors, 2 for the read and split tasks.
    ray.init(num_cpus=4, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        ds = ray.data.from_pandas(rows).repartition(8)
        out = khr.predict(ds, bundle, features=FEATURES, concurrency=2, batch_size=500)
        predicted = out.to_pandas()["prediction"].tolist()
        assert predicted == single_process(bundle, rows)
        # A fault in one batch surfaces as the typed exception, not a hang.
        broken = rows.head(1000).copy()
        broken["bill_length_mm"] = "oops"
        with pytest.raises(Exception) as e:
            khr.predict(ray.data.from_pandas(broken), bundle, features=FEATURES, concurrency=1).to_pandas()
        cause = e.value
        while not isinstance(cause, kernel_host.KernelHostError) and cause.__cause__ is not None:
            cause = cause.__cause__
        text = str(e.value)
        assert isinstance(cause, kernel_host.DataError) or "DataError" in text, text
        assert "batch 1 of this worker" in text, text
    finally:
        ray.shutdown()


def test_spark_map_in_arrow_gives_identical_predictions_and_survives_a_killed_worker(bundle, rows, tmp_path):
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    from kernel_host import spark as khs

    # The Python workers must be this interpreter, which has kernel_host.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        # local[2, 3]: two cores, a failed task is tried up to 3 times.
        SparkSession.builder.master("local[2,3]")
        .appName("kernel-host-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    try:
        # Spark does not keep row order through a shuffle: compare by a row id.
        df = spark.createDataFrame(rows.assign(row_id=range(len(rows)))[FEATURES + ["row_id"]]).coalesce(4)
        out = khs.predict(df, bundle, features=FEATURES).toPandas().sort_values("row_id")
        assert out["prediction"].tolist() == single_process(bundle, rows)
        # A fault in one batch: the typed exception's name and the batch.
        broken = rows.head(100).assign(bill_length_mm="oops")[FEATURES]
        with pytest.raises(Exception) as e:
            khs.predict(spark.createDataFrame(broken), bundle, features=FEATURES).toPandas()
        assert "DataError" in str(e.value) and "batch 0 of this partition" in str(e.value), str(e.value)
        # A Python worker killed mid-job: Spark retries its task, same result.
        marker = tmp_path / "killed"

        def flaky(batches):
            for batch in batches:
                if not marker.exists():
                    marker.write_text("killed")
                    os._exit(1)
                yield batch

        source = spark.createDataFrame(rows.assign(row_id=range(len(rows)))[FEATURES + ["row_id"]]).coalesce(4)
        survived = khs.predict(source.mapInArrow(flaky, source.schema), bundle, features=FEATURES)
        out = survived.toPandas().sort_values("row_id")
        assert marker.exists(), "the worker was never killed"
        assert out["prediction"].tolist() == single_process(bundle, rows)
    finally:
        spark.stop()


def test_a_killed_ray_worker_is_retried_and_the_result_is_the_same(bundle, rows, tmp_path):
    ray = pytest.importorskip("ray")
    from kernel_host import ray as khr

    marker = tmp_path / "killed"

    class Flaky(khr._Predictor):
        """Kills its own worker process in the middle of its second batch, once."""

        def __call__(self, batch):
            if self.batches == 1 and not marker.exists():
                marker.write_text("killed")
                os._exit(1)
            return super().__call__(batch)

    ray.init(num_cpus=4, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        data = open(bundle, "rb").read()
        ds = ray.data.from_pandas(rows).repartition(8)
        out = ds.map_batches(
            Flaky,
            fn_constructor_args=(data, FEATURES, "prediction"),
            batch_format="pyarrow",
            batch_size=500,
            compute=khr.actor_pool(2),
        )
        predicted = out.to_pandas()["prediction"].tolist()
        assert marker.exists(), "the worker was never killed"
        assert predicted == single_process(bundle, rows)
    finally:
        ray.shutdown()


def cli_json(*args):
    done = subprocess.run([str(CLI), *map(str, args), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_tune_and_compare_trials_as_ray_tasks_match_the_cli(tmp_path):
    ray = pytest.importorskip("ray")
    from kernel_host import ray as khr

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        # One trial at a time: exactly the trials `tune --jobs 1` runs.
        tuned = khr.tune(MANIFEST, trials=6, cv=3, seed=7, concurrency=1)
        cli = cli_json("tune", MANIFEST, "--trials", 6, "--cv", 3, "--seed", 7, "--jobs", 1)
        trials = lambda t: [(x["number"], x["params"], x["score"], x["error"]) for x in t["trials"]]
        assert trials(tuned) == trials(cli)
        assert tuned["best"] == cli["best"] and tuned["metric"] == "accuracy"
        # Two at a time, writing the tuned manifest, which then scores the same.
        out = MANIFEST.parent / f"tuned-by-ray-{os.getpid()}.toml"
        try:
            tuned = khr.tune(MANIFEST, trials=6, cv=3, seed=7, concurrency=2, out=out,
                             params=["model.c=log(0.001,100)"])
            assert len(tuned["trials"]) == 6 and tuned["best"] is not None
            best = next(t for t in tuned["trials"] if t["number"] == tuned["best"])
            rerun = cli_json("run", out, "--cv", 3, "--cv-seed", 7)
            assert rerun["summary"]["accuracy"]["mean"] == best["score"], rerun
        finally:
            out.unlink(missing_ok=True)
        # compare: same candidates, scores and recommendation as the CLI.
        compared = khr.compare(MANIFEST, vary="model.c=0.0001,1", cv=3, seed=7)
        cli = cli_json("compare", MANIFEST, "--vary", "model.c=0.0001,1", "--cv", 3, "--seed", 7)
        rows = lambda c: [(r["name"], [f["scores"] for f in r["scored"]["folds"]]) for r in c["rows"]]
        assert rows(compared) == rows(cli)
        assert compared["recommendation"] == cli["recommendation"]
        # A candidate whose kernel panics on its worker is a row with the
        # typed error; the other candidate is still scored.
        broken = tmp_path / "broken.toml"
        hostile = ROOT / "target/guests/wasm32-wasip2/release/hostile.wasm"
        text = MANIFEST.read_text().replace('"../../', f'"{ROOT}/').replace('"data/', f'"{MANIFEST.parent}/data/')
        text = text.replace(f'source = "{ROOT}/target/guests/wasm32-wasip2/release/standard_scaler.wasm"',
                            f'source = "{hostile}"\nparams = {{ behaviour = "panic" }}')
        assert "hostile" in text
        broken.write_text(text)
        failing = khr.compare([MANIFEST, broken], cv=3, seed=7)
        assert "scored" in failing["rows"][0], failing["rows"][0]
        assert "KernelTrap" in failing["rows"][1]["failed"] and "panicked on purpose" in failing["rows"][1]["failed"], failing["rows"][1]
        assert failing["recommended"] == 0
    finally:
        ray.shutdown()
