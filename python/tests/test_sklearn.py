"""kernel_host.sklearn with scikit-learn's own machinery."""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from kernel_host.sklearn import KernelHostClassifier

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = str(ROOT / "examples/penguins/pipeline.toml")
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


def data():
    df = pd.read_csv(ROOT / "examples/penguins/data/penguins.csv", na_values=["NA"])
    return df[FEATURES], df["species"]


def test_clone_params_and_cross_val_score():
    X, y = data()
    clf = KernelHostClassifier(MANIFEST, params={"model.c": 1.0})
    assert clf.get_params()["params"] == {"model.c": 1.0}
    other = clone(clf).set_params(params={"model.c": 0.001})
    assert other.params == {"model.c": 0.001} and clf.params == {"model.c": 1.0}
    scores = cross_val_score(clf, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert scores.mean() > 0.97
    clf.fit(X, y)
    assert list(clf.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    assert clf.n_features_in_ == 6
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(axis=1), 1)


def test_grid_search_picks_the_better_penalty():
    X, y = data()
    search = GridSearchCV(
        KernelHostClassifier(MANIFEST),
        {"params": [{"model.c": 0.0001}, {"model.c": 1.0}]},
        cv=3,
    )
    search.fit(X, y)
    assert search.best_params_ == {"params": {"model.c": 1.0}}
