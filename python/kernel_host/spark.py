"""Predict a Spark DataFrame with a saved bundle, through `mapInArrow`.

    from kernel_host import spark as khs
    predicted = khs.predict(spark_df, "model.khb")

The bundle is broadcast once to the executors; each Python worker loads it
once and predicts Arrow record batches. A kernel fault raises the typed
exception naming the batch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pyarrow as pa

from . import KernelHostError
from ._worker import bundle_bytes, located, pipeline


def predict(df, bundle, features: Optional[Sequence[str]] = None, name: str = "prediction"):
    """`df` with a string column `name` of predictions."""
    from pyspark.sql.types import StringType, StructField, StructType

    spark = df.sparkSession
    shared = spark.sparkContext.broadcast(bundle_bytes(bundle))
    columns = list(features) if features is not None else None
    schema = StructType(df.schema.fields + [StructField(name, StringType(), True)])

    def run(batches):
        p = pipeline(shared.value)
        for i, batch in enumerate(batches):
            x = pa.Table.from_batches([batch])
            if columns:
                x = x.select(columns)
            try:
                values = p.predict(x, output="pyarrow").column(0).cast(pa.string())
            except KernelHostError as e:
                raise located(e, f"batch {i} of this partition ({batch.num_rows} rows)") from e
            for out in pa.Table.from_batches([batch]).append_column(name, values).to_batches():
                yield out

    return df.mapInArrow(run, schema)
