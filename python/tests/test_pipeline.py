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
