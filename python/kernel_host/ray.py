"""Predict a Ray Dataset with a saved bundle.

    import ray
    from kernel_host import ray as khr
    predicted = khr.predict(ray.data.read_csv("s3://.../*.csv"), "model.khb")

`map_batches` with a callable class: each worker actor loads the bundle
once (it travels once, as a constructor argument) and receives batches as
Arrow tables; the predictions are a new column. Results are identical to
`Pipeline.load(bundle).predict` on the same rows, in the same order; Ray
retries the tasks of a worker that dies. A kernel fault raises the typed
exception naming the batch (its size and its number on that worker).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pyarrow as pa

from . import KernelHostError
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
        concurrency=concurrency,
        # A worker that dies is restarted and its batches retried.
        max_restarts=-1,
        max_task_retries=-1,
    )
