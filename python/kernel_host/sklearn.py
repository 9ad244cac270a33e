"""scikit-learn estimators over kernel-host manifests.

    from kernel_host.sklearn import KernelHostClassifier
    clf = KernelHostClassifier("examples/penguins/pipeline.toml", params={"model.c": 0.5})
    cross_val_score(clf, X, y, cv=5)

`params` overrides step parameters (`"STEP.PARAM": value`); `clone`,
`get_params`/`set_params`, `Pipeline`, `cross_val_score` and
`GridSearchCV` (over `params`) work as with any estimator.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from . import Pipeline, UsageError


def _manifest_with(manifest: str, params: Optional[dict]) -> str:
    """`manifest` with `params` ("STEP.PARAM": value) written into its
    kernels' tables, as a file beside it (relative paths keep working)."""
    if not params:
        return manifest
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover
        import tomli as tomllib
    with open(manifest, "rb") as f:
        doc = tomllib.load(f)
    steps = doc.get("pipeline", {}).get("step")
    entries = {}
    if isinstance(steps, list):
        for s in steps:
            entries[s["id"]] = s.get("kernel", s["id"])
    for key, value in params.items():
        step, _, name = key.partition(".")
        if not name:
            raise UsageError(f"parameter {key!r}: expected 'STEP.PARAM'")
        entry = entries.get(step, step)
        kernels = doc.setdefault("kernels", {})
        if entry not in kernels:
            raise UsageError(f"parameter {key!r}: the manifest has no step {step!r}")
        kernels[entry].setdefault("params", {})[name] = value
    fd, path = tempfile.mkstemp(suffix=".toml", prefix=".sklearn-", dir=os.path.dirname(os.path.abspath(manifest)))
    with os.fdopen(fd, "w") as f:
        f.write(_dumps(doc))
    return path


def _dumps(doc: dict) -> str:
    """A small TOML writer for manifests (tables, arrays of tables, scalars)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    out = []

    def table(prefix: str, t: dict):
        scalars = {k: v for k, v in t.items() if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        if prefix and scalars:
            out.append(f"[{prefix}]")
        for k, v in scalars.items():
            out.append(f"{k} = {value(v)}")
        for k, v in t.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    out.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
                    for kk, vv in item.items():
                        out.append(f"{kk} = {value(vv)}")
        for k, v in t.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(out) + "\n"


class _KernelHostEstimator(BaseEstimator):
    def __init__(self, manifest: str = "", params: Optional[dict] = None):
        self.manifest = manifest
        self.params = params

    def fit(self, X, y=None):
        path = _manifest_with(self.manifest, self.params)
        try:
            self.pipeline_ = Pipeline.from_manifest(path)
        finally:
            if path != self.manifest:
                os.unlink(path)
        names = getattr(X, "columns", None)
        self.n_features_in_ = int(np.shape(X)[1])
        if names is not None:
            self.feature_names_in_ = np.asarray([str(c) for c in names], dtype=object)
        self.pipeline_.fit(X, y)
        return self

    def predict(self, X):
        return self.pipeline_.predict(X)


class KernelHostClassifier(ClassifierMixin, _KernelHostEstimator):
    """A classifier pipeline from a manifest, as a scikit-learn estimator."""

    def fit(self, X, y=None):
        super().fit(X, y)
        self.classes_ = np.unique(np.asarray(y))
        return self

    def predict_proba(self, X):
        table = self.pipeline_.predict_proba(X, output="pyarrow")
        by_name = {str(n): table.column(n).to_numpy() for n in table.column_names}
        return np.column_stack([by_name.get(str(c), np.zeros(table.num_rows)) for c in self.classes_])


class KernelHostRegressor(RegressorMixin, _KernelHostEstimator):
    """A regressor pipeline from a manifest, as a scikit-learn estimator."""
