"""Bundles served on Dask and Ray (local clusters of 2 workers): identical
results to single-process predict, typed errors naming the batch."""

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kernel_host

ROOT = Path(__file__).resolve().parents[2]
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


def test_spark_map_in_arrow_gives_identical_predictions(bundle, rows):
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    from kernel_host import spark as khs

    # The Python workers must be this interpreter, which has kernel_host.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
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
            concurrency=2,
            max_restarts=-1,
            max_task_retries=-1,
        )
        predicted = out.to_pandas()["prediction"].tolist()
        assert marker.exists(), "the worker was never killed"
        assert predicted == single_process(bundle, rows)
    finally:
        ray.shutdown()
