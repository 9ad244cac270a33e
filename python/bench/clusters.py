"""Batch prediction throughput, side by side in one run (not a test):
single process vs Ray with 1 and 2 workers vs Spark local[2], and the same
pipeline in scikit-learn inside Ray `map_batches` as the peer.

    target/python-venv/bin/python python/bench/clusters.py [ROWS]

Generates ROWS rows (default 2,000,000) of the synthetic data set with
`kernel-host generate`, fits impute -> one-hot -> scale -> SGD classifier on
the first 20,000 rows (kernel-host and scikit-learn alike), then predicts
every row with each engine. Prints rows/s and the speed-up over one process.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

import kernel_host

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "target/release/kernel-host"
GUESTS = ROOT / "target/guests/wasm32-wasip2/release"
ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000


def main():
    work = Path(tempfile.mkdtemp(prefix="kh-bench-"))
    data = work / "rows.csv"
    subprocess.run([str(CLI), "generate", "--rows", str(ROWS), "--seed", "3", "--out", str(data)], check=True)
    train = work / "train.csv"
    with open(data) as src, open(train, "w") as dst:
        for i, line in enumerate(src):
            if i > 20_000:
                break
            dst.write(line)
    manifest = work / "pipeline.toml"
    manifest.write_text(
        f"""[pipeline]
name = "bench"
steps = ["impute", "encode", "scale", "model"]
[data]
train = "{train}"
target = "label"
[kernels.impute]
source = "{GUESTS}/simple_imputer.wasm"
params = {{ strategy = "mean", string_strategy = "most_frequent" }}
[kernels.encode]
source = "{GUESTS}/one_hot_encoder.wasm"
params = {{ handle_unknown = "ignore" }}
[kernels.scale]
source = "{GUESTS}/standard_scaler.wasm"
[kernels.model]
source = "{GUESTS}/sgd_classifier.wasm"
"""
    )
    bundle = work / "model.khb"
    kernel_host.Pipeline.from_manifest(manifest).fit().save(bundle)
    table = kernel_host.read_table(data)
    features = [c for c in table.column_names if c != "label"]
    x = table.select(features)
    results = []

    started = time.perf_counter()
    single = kernel_host.Pipeline.load(bundle).predict(x)
    results.append(("single process (kernel-host)", time.perf_counter() - started))

    import ray

    from kernel_host import ray as khr

    for workers in (1, 2):
        ray.init(num_cpus=workers + 2, include_dashboard=False, log_to_driver=False)
        ds = ray.data.from_arrow(x).repartition(max(8, workers * 4)).materialize()
        started = time.perf_counter()
        out = khr.predict(ds, bundle, concurrency=workers, batch_size=65536).to_pandas()
        results.append((f"Ray, {workers} worker(s) (kernel-host)", time.perf_counter() - started))
        assert out["prediction"].tolist() == list(single)
        ray.shutdown()

    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from kernel_host import spark as khs

    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    df = spark.read.csv(str(data), header=True, inferSchema=True, nullValue="NA").drop("label")
    df = df.repartition(8).cache()
    df.count()
    started = time.perf_counter()
    khs.predict(df, bundle).write.format("noop").mode("overwrite").save()
    results.append(("Spark local[2] (kernel-host)", time.perf_counter() - started))
    spark.stop()

    # The peer: the same steps in scikit-learn, inside Ray map_batches.
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train_df = pd.read_csv(train, na_values=["NA"])
    numeric = [c for c in features if train_df[c].dtype.kind in "fi"]
    categorical = [c for c in features if c not in numeric]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(strategy="mean"), numeric),
                ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
            ]
        ),
        StandardScaler(with_mean=False),
        SGDClassifier(loss="log_loss"),
    ).fit(train_df[features], train_df["label"])

    class Sk:
        def __init__(self, m):
            self.m = m

        def __call__(self, batch):
            p = self.m.predict(batch.to_pandas())
            return batch.append_column("prediction", pa.array(p))

    for workers in (1, 2):
        ray.init(num_cpus=workers + 2, include_dashboard=False, log_to_driver=False)
        ds = ray.data.from_arrow(x).repartition(max(8, workers * 4)).materialize()
        started = time.perf_counter()
        ds.map_batches(Sk, fn_constructor_args=(model,), batch_format="pyarrow", batch_size=65536, concurrency=workers).materialize()
        results.append((f"Ray, {workers} worker(s) (scikit-learn)", time.perf_counter() - started))
        ray.shutdown()

    base = results[0][1]
    print(f"\n{ROWS:,} rows, predict only (fit on 20,000 rows)\n")
    print(f"{'engine':<36} {'seconds':>8} {'rows/s':>12} {'vs single':>10}")
    for name, secs in results:
        print(f"{name:<36} {secs:>8.2f} {ROWS / secs:>12,.0f} {base / secs:>9.2f}x")


if __name__ == "__main__":
    main()
