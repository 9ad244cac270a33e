"""Predict a Dask DataFrame with a saved bundle, partition by partition.

    import dask.dataframe as dd
    from kernel_host import dask as khd
    predictions = khd.predict(dd.read_csv("big-*.csv"), "model.khb")

Each worker process loads the bundle once; results are identical to
`Pipeline.load(bundle).predict` on the same rows, in the same order. A
kernel fault raises the typed exception naming the partition.
"""

from __future__ import annotations

from typing import Optional, Sequence

from . import KernelHostError
from ._worker import bundle_bytes, located, pipeline


def predict(ddf, bundle, features: Optional[Sequence[str]] = None, name: str = "prediction"):
    """A Dask Series of predictions, partitioned like `ddf`."""
    import pandas as pd

    data = bundle_bytes(bundle)
    columns = list(features) if features is not None else None

    def part(df: "pd.DataFrame", partition_info=None) -> "pd.Series":
        number = (partition_info or {}).get("number", "?")
        try:
            values = pipeline(data).predict(df[columns] if columns else df)
        except KernelHostError as e:
            raise located(e, f"partition {number} ({len(df)} rows)") from e
        return pd.Series(values, index=df.index, name=name)

    return ddf.map_partitions(part, meta=(name, object))
