"""The Python API against the CLI, on the penguins example."""

import asyncio
import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import kernel_host

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "examples/penguins/pipeline.toml"
TRAIN = ROOT / "examples/penguins/data/train.csv"
TEST = ROOT / "examples/penguins/data/test.csv"
CLI = Path(os.environ.get("KERNEL_HOST_BIN", ROOT / "target/release/kernel-host"))
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


def cli_predictions(tmp_path):
    out = tmp_path / "cli.csv"
    subprocess.run([str(CLI), "run", str(MANIFEST), "--output", str(out)], check=True, capture_output=True)
    with open(out) as f:
        return [row["prediction"] for row in csv.DictReader(f)]


def test_manifest_data_reproduces_the_cli_exactly(tmp_path):
    pipe = kernel_host.Pipeline.from_manifest(MANIFEST).fit()
    test = kernel_host.read_table(TEST)
    predicted = pipe.predict(test.select(FEATURES))
    assert list(predicted) == cli_predictions(tmp_path)
    truth = test.column("species").to_pylist()
    accuracy = np.mean(np.asarray(predicted) == np.asarray(truth))
    assert accuracy > 0.98


@pytest.mark.parametrize("compression", ["snappy", "zstd"])
def test_parquet_from_pandas_and_from_the_cli(tmp_path, compression):
    # pandas writes it (categories, nullable integers): kernel_host reads what pandas reads.
    frame = pd.read_csv(TRAIN, dtype={"island": "category", "sex": "category", "flipper_length_mm": "Int64"})
    path = tmp_path / f"train.{compression}.parquet"
    frame.to_parquet(path, compression=compression, index=False)
    table = kernel_host.read_table(path)
    assert table.num_rows == len(frame)
    assert table.column("island").to_pylist() == frame["island"].astype(str).tolist()
    assert table.column("sex").null_count == frame["sex"].isna().sum()
    assert table.column("bill_length_mm").null_count == frame["bill_length_mm"].isna().sum()
    # The CLI writes it (zstd): pyarrow reads what kernel_host reads.
    generated = tmp_path / "generated.parquet"
    subprocess.run([str(CLI), "generate", "--rows", "5000", "--out", str(generated)], check=True, capture_output=True)
    import pyarrow.parquet as pq

    ours = kernel_host.read_table(generated)
    theirs = pq.read_table(generated)
    assert theirs.num_rows == ours.num_rows == 5000
    assert pq.ParquetFile(generated).metadata.row_group(0).column(0).compression == "ZSTD"
    for name in ours.schema.names:
        assert theirs.column(name).to_pylist() == ours.column(name).to_pylist(), name


def test_pandas_in_numpy_and_pandas_out(tmp_path):
    train = pd.read_csv(TRAIN, na_values=["NA"])
    test = pd.read_csv(TEST, na_values=["NA"])
    pipe = kernel_host.Pipeline.from_manifest(MANIFEST)
    pipe.fit(train[FEATURES], train["species"])
    predicted = pipe.predict(test[FEATURES])
    assert isinstance(predicted, np.ndarray) and len(predicted) == len(test)
    assert list(predicted) == cli_predictions(tmp_path)
    proba = pipe.predict_proba(test[FEATURES], output="pandas")
    assert list(proba.columns) == ["Adelie", "Chinstrap", "Gentoo"]
    assert np.allclose(proba.sum(axis=1), 1.0)
    explained = pipe.explain()
    model = [s for s in explained if s["step"] == "model"][0]
    assert model["kernel"].startswith("logistic-regression@") and "summary" in model["learned"]
    report = pipe.report()
    assert [r["step"] for r in report] == ["impute", "encode", "scale", "model"]
    assert all(r["fuel"] > 0 for r in report)


def test_large_inputs_are_predicted_slice_by_slice(monkeypatch):
    pipe = kernel_host.Pipeline.from_manifest(MANIFEST).fit()
    test = kernel_host.read_table(TEST).select(FEATURES)
    whole = list(pipe.predict(test))
    monkeypatch.setattr(kernel_host, "BATCH_ROWS", 10)
    assert list(pipe.predict(test)) == whole
    assert pipe.predict_proba(test).shape == (test.num_rows, 3)


def test_save_and_load_a_bundle(tmp_path):
    pipe = kernel_host.Pipeline.from_manifest(MANIFEST).fit()
    bundle = tmp_path / "penguins.khb"
    pipe.save(bundle)
    test = kernel_host.read_table(TEST).select(FEATURES)
    again = kernel_host.Pipeline.load(bundle)
    assert list(again.predict(test)) == list(pipe.predict(test))


def test_async_predictions_run_together():
    pipe = kernel_host.Pipeline.from_manifest(MANIFEST).fit()
    test = kernel_host.read_table(TEST).select(FEATURES)

    async def main():
        return await asyncio.gather(*(pipe.predict_async(test) for _ in range(4)))

    results = asyncio.run(main())
    assert all(list(r) == list(results[0]) for r in results)


def test_errors_are_typed(tmp_path):
    with pytest.raises(kernel_host.ManifestError) as e:
        kernel_host.Pipeline.from_manifest(tmp_path / "missing.toml")
    assert "missing.toml" in str(e.value)
    pipe = kernel_host.Pipeline.from_manifest(MANIFEST)
    with pytest.raises(kernel_host.UsageError):
        pipe.predict(pa.table({"a": [1.0]}))
    pipe.fit()
    with pytest.raises(kernel_host.DataError) as e:
        pipe.predict(pa.table({"island": ["Dream"]}))
    assert "bill_length_mm" in str(e.value)
    assert issubclass(kernel_host.OutOfFuel, kernel_host.KernelError)
    assert issubclass(kernel_host.KernelError, kernel_host.KernelHostError)
    bad = tmp_path / "bad.toml"
    bad.write_text(MANIFEST.read_text().replace("c = 1.0", "c = -5.0").replace('"../../', f'"{ROOT}/').replace('"data/', f'"{ROOT}/examples/penguins/data/'))
    # Checked against the kernel's declared range: a manifest error with its line.
    with pytest.raises(kernel_host.ManifestError) as e:
        kernel_host.Pipeline.from_manifest(bad).fit()
    assert "bad.toml:" in str(e.value) and "parameter `c` = -5 is out of range" in str(e.value)


def test_a_trapping_kernel_raises_the_typed_exception(tmp_path):
    hostile = ROOT / "target/guests/wasm32-wasip2/release/hostile.wasm"
    manifest = tmp_path / "trap.toml"
    manifest.write_text(
        f"""[pipeline]
name = "trap"
steps = ["bad"]

[data]
train = "{TRAIN}"

[kernels.bad]
source = "{hostile}"
params = {{ behaviour = "panic" }}
"""
    )
    with pytest.raises(kernel_host.KernelTrap) as e:
        kernel_host.Pipeline.from_manifest(manifest).fit()
    assert "panicked on purpose" in str(e.value)


GUESTS = ROOT / "target/guests/wasm32-wasip2/release"


def test_one_kernel_from_python_with_params_limits_and_state():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 20.0, 40.0, 80.0]})
    k = kernel_host.Kernel.load(GUESTS / "standard_scaler.wasm", params={"with_mean": False}, limits={"fuel": 10**9, "memory_mib": 64})
    assert k.info()["name"] == "standard-scaler" and k.info()["kind"] == "transformer"
    assert k.limits["fuel"] == 10**9 and k.limits["memory_mib"] == 64
    out = k.fit(X).transform(X, output="numpy")
    # with_mean=False: scaled by the (population) standard deviation only.
    np.testing.assert_allclose(out[:, 0], X["a"] / X["a"].std(ddof=0))
    assert k.explain()["entries"]["columns"] == ["a", "b"]
    assert k.stats()["calls"] >= 3 and k.stats()["fuel"] > 0
    # The fitted state moves to a fresh instance and gives the same output.
    fresh = kernel_host.Kernel.load(GUESTS / "standard_scaler.wasm", params={"with_mean": False})
    np.testing.assert_array_equal(fresh.load_state(k.save_state()).transform(X, output="numpy"), out)
    # A refused fit leaves the fitted model as it was.
    ridge = kernel_host.Kernel.load(GUESTS / "ridge_regression.wasm")
    before = ridge.fit(X[["a"]], X["b"]).predict(X[["a"]])
    with pytest.raises(kernel_host.KernelError):
        ridge.fit(X[["a"]])  # no target
    np.testing.assert_array_equal(ridge.predict(X[["a"]]), before)


def test_one_kernel_refuses_bad_params_and_limits_with_typed_errors():
    path = GUESTS / "standard_scaler.wasm"
    with pytest.raises(kernel_host.InvalidParams) as e:
        kernel_host.Kernel.load(path, params={"with_mean": 3})
    assert "with_mean" in str(e.value) and "True or False" in str(e.value)
    with pytest.raises(kernel_host.InvalidParams) as e:
        kernel_host.Kernel.load(path, params={"center": True})
    assert "with_mean" in str(e.value)  # names what it does accept
    with pytest.raises(kernel_host.UsageError):
        kernel_host.Kernel.load(path, limits={"fuell": 5})
    with pytest.raises(kernel_host.UsageError):
        kernel_host.Kernel.load(path, limits={"memory_mib": 0})
    with pytest.raises(kernel_host.KernelError):
        kernel_host.Kernel.load(ROOT / "README.md")


@pytest.mark.parametrize(
    "behaviour, error",
    [("loop", kernel_host.OutOfFuel), ("memory-bomb", kernel_host.MemoryLimit), ("panic", kernel_host.KernelTrap)],
)
def test_one_hostile_kernel_raises_typed_errors_and_is_rolled_back(behaviour, error):
    X = pd.DataFrame({"a": [1.0, 2.0]})
    k = kernel_host.Kernel.load(GUESTS / "hostile.wasm", params={"behaviour": behaviour}, limits={"fuel": 10**8, "memory_mib": 32})
    with pytest.raises(error):
        k.fit(X)
    stats = k.stats()
    assert stats["faults"] == 1 and stats["restarts"] == 1, stats
