"""kernel-host from Python: sandboxed machine-learning pipelines.

    import kernel_host
    pipe = kernel_host.Pipeline.from_manifest("examples/penguins/pipeline.toml")
    pipe.fit(X, y)                 # pandas DataFrame / pyarrow Table / numpy array
    pipe.predict(X)                # numpy array of predictions

Every kernel runs in its own WebAssembly sandbox under the manifest's fuel,
memory and time limits; frames cross as Arrow through the C data interface;
the GIL is released while kernels run. Errors are typed (see the exception
classes below), never a bare RuntimeError.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import pyarrow as pa

from . import _native
from ._native import (  # noqa: F401  (re-exported)
    BundleError,
    DataError,
    HostError,
    InvalidInput,
    InvalidParams,
    KernelError,
    KernelHostError,
    KernelTimeout,
    KernelTrap,
    ManifestError,
    MemoryLimit,
    OutOfFuel,
    UsageError,
)

__all__ = [
    "Pipeline",
    "Kernel",
    "read_table",
    "version",
    "KernelHostError",
    "ManifestError",
    "DataError",
    "BundleError",
    "UsageError",
    "KernelError",
    "OutOfFuel",
    "MemoryLimit",
    "KernelTimeout",
    "KernelTrap",
    "InvalidInput",
    "InvalidParams",
    "HostError",
]


def version() -> str:
    """The host's version and the kernel contract it implements."""
    return _native.version()


def read_table(path: str) -> pa.Table:
    """A CSV or Arrow file read exactly as the `kernel-host` CLI reads it."""
    return pa.Table.from_batches([_native.read_table(str(path))])


def _batch(x: Any, default_name: str = "x") -> pa.RecordBatch:
    """X as one Arrow record batch: pandas, pyarrow or numpy."""
    if isinstance(x, pa.RecordBatch):
        return x
    if isinstance(x, pa.Table):
        x = x.combine_chunks()
        batches = x.to_batches()
        if not batches:
            return pa.RecordBatch.from_pylist([], schema=x.schema)
        return batches[0]
    module = type(x).__module__
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(x, pd.Series):
            x = x.to_frame(name=x.name if x.name is not None else default_name)
        return _batch(pa.Table.from_pandas(x, preserve_index=False))
    if module.startswith("numpy"):
        import numpy as np

        arr = np.asarray(x)
        if arr.ndim == 1:
            return pa.RecordBatch.from_arrays([pa.array(arr)], names=[default_name])
        if arr.ndim == 2:
            return pa.RecordBatch.from_arrays(
                [pa.array(arr[:, j]) for j in range(arr.shape[1])],
                names=[f"x{j}" for j in range(arr.shape[1])],
            )
        raise UsageError(f"a numpy array of {arr.ndim} dimensions cannot be a table")
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        return pa.RecordBatch.from_arrays([pa.concat_arrays(x.chunks) if isinstance(x, pa.ChunkedArray) else x], names=[default_name])
    if isinstance(x, (list, tuple)):
        return pa.RecordBatch.from_arrays([pa.array(x)], names=[default_name])
    raise UsageError(f"cannot use a {type(x).__name__} as a table: give a pandas DataFrame, a pyarrow Table or RecordBatch, or a numpy array")


def _output(batch: pa.RecordBatch, as_: str):
    if as_ == "pyarrow":
        return pa.Table.from_batches([batch])
    if as_ == "pandas":
        return batch.to_pandas()
    if as_ == "numpy":
        if batch.num_columns == 1:
            return batch.column(0).to_numpy(zero_copy_only=False)
        import numpy as np

        return np.column_stack([c.to_numpy(zero_copy_only=False) for c in batch.columns])
    raise UsageError(f"output {as_!r}: use 'numpy', 'pandas' or 'pyarrow'")


#: Rows per kernel call: a larger input is predicted slice by slice (zero-copy
#: slices of the batch), so a guest's memory holds one slice, not the table.
BATCH_ROWS = 65536


class Pipeline:
    """A pipeline of sandboxed kernels, from a manifest or a saved bundle."""

    def __init__(self, native: "_native.Pipeline"):
        self._native = native

    @classmethod
    def from_manifest(cls, path: str) -> "Pipeline":
        """The pipeline a manifest describes, not fitted yet."""
        return cls(_native.Pipeline.from_manifest(str(path)))

    @classmethod
    def load(cls, path: str) -> "Pipeline":
        """A bundle (from `save()` or `kernel-host fit --save`), as fitted."""
        return cls(_native.Pipeline.load(str(path)))

    @property
    def target(self) -> Optional[str]:
        return self._native.target

    @property
    def features(self) -> Optional[list]:
        return self._native.features

    def fit(self, X: Any = None, y: Any = None) -> "Pipeline":
        """Fits on X (and the target y); with no X, on the manifest's own data."""
        if X is None:
            self._native.fit()
            return self
        xb = _batch(X)
        yb = None if y is None else _batch(y, self.target or "target")
        self._native.fit(xb, yb)
        return self

    def _run(self, X: Any, probabilities: bool):
        """(values, probabilities) for every row of X, BATCH_ROWS at a time."""
        batch = _batch(X)
        parts = [batch.slice(start, BATCH_ROWS) for start in range(0, batch.num_rows, BATCH_ROWS)] or [batch]
        values, proba = [], []
        for part in parts:
            v, p = self._native.predict(part, probabilities)
            values.append(v)
            proba.append(p)
        join = lambda batches: pa.Table.from_batches(batches).combine_chunks().to_batches()[0] if len(batches) > 1 else batches[0]
        return join(values), (None if any(p is None for p in proba) else join(proba))

    def predict(self, X: Any, output: str = "numpy"):
        """One prediction per row (numpy by default; 'pandas' or 'pyarrow')."""
        values, _ = self._run(X, False)
        return _output(values, output)

    def predict_proba(self, X: Any, output: str = "numpy"):
        """One probability column per class, named by the class."""
        _, proba = self._run(X, True)
        if proba is None:
            raise UsageError("the final kernel gives no probabilities")
        return _output(proba, output)

    def transform(self, X: Any, output: str = "pyarrow"):
        """The output of a pipeline that ends in a transformer."""
        values, _ = self._run(X, False)
        return _output(values, output)

    async def predict_async(self, X: Any, output: str = "numpy"):
        """`predict` in a worker thread: `asyncio.gather` runs pipelines at once."""
        return await asyncio.to_thread(self.predict, X, output)

    def explain(self) -> list:
        """What each step learned, in its own words, with what the host observed."""
        import json

        return json.loads(self._native.explain())

    def save(self, path: str) -> None:
        """Saves kernels, fitted state and plan as one bundle file."""
        self._native.save(str(path))

    def report(self) -> list:
        """Per step: kernel, calls, busy seconds, fuel, peak memory, faults, rollbacks, cache hits."""
        return self._native.report()


class Kernel:
    """One kernel component in its own sandbox, called directly.

        k = kernel_host.Kernel.load("standard_scaler.wasm",
                                    params={"with-mean": False},
                                    limits={"fuel": 10**9, "memory_mib": 64})
        k.fit(X)
        k.transform(X, output="pandas")

    Nothing is granted (no files, frozen clocks, seeded randomness). A call
    that faults (out of fuel, over memory, past its timeout, a trap) raises
    its typed exception and the kernel is rolled back to its state before
    the call, so it can be used again.
    """

    def __init__(self, native: "_native.Kernel"):
        self._native = native

    @classmethod
    def load(cls, path: str, params: Optional[dict] = None, limits: Optional[dict] = None) -> "Kernel":
        """Loads, verifies and compiles the component at `path`, configured
        with `params` (typed by what it declares) under `limits`
        (`fuel`, `memory_mib`, `timeout_ms`, `tensor_mib`; defaults otherwise)."""
        return cls(_native.Kernel.load(str(path), params, limits))

    def info(self) -> dict:
        """Name, version, kind, capabilities, parameters, sha256 (as `kernel-host inspect --json`)."""
        import json

        return json.loads(self._native.info())

    @property
    def limits(self) -> dict:
        return self._native.limits()

    def fit(self, X: Any, y: Any = None) -> "Kernel":
        self._native.fit(_batch(X), None if y is None else _batch(y, "target"))
        return self

    def partial_fit(self, X: Any, y: Any = None) -> "Kernel":
        self._native.partial_fit(_batch(X), None if y is None else _batch(y, "target"))
        return self

    def transform(self, X: Any, output: str = "pyarrow"):
        return _output(self._native.transform(_batch(X)), output)

    def predict(self, X: Any, output: str = "numpy"):
        return _output(self._native.predict(_batch(X)), output)

    def predict_proba(self, X: Any, output: str = "numpy"):
        return _output(self._native.predict_proba(_batch(X)), output)

    def save_state(self) -> bytes:
        """The fitted state, as the kernel saves it."""
        return bytes(self._native.save_state())

    def load_state(self, state: bytes) -> "Kernel":
        self._native.load_state(bytes(state))
        return self

    def explain(self) -> dict:
        """What the kernel says it learned: a summary and named entries."""
        import json

        return json.loads(self._native.explain())

    def stats(self) -> dict:
        """Calls, busy seconds, fuel, peak memory, faults, restarts, rollbacks, cache hits."""
        import json

        return json.loads(self._native.stats())
