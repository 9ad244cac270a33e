"""scikit-learn's random search (RandomizedSearchCV's sampler and scoring)
with a wall-clock budget, for `cargo bench --bench tune`.

    python3 tune_sklearn.py DATA.csv logistic|sgd BUDGET_SECONDS SEEDS

Prints the best 3-fold stratified CV accuracy (mean over seeds) and the mean
number of trials that fitted in the budget.
"""

import sys
import time
import warnings

import pandas as pd
from scipy.stats import loguniform, randint
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import ParameterSampler, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

warnings.filterwarnings("ignore")
path, model, budget, seeds = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
df = pd.read_csv(path, na_values=["NA", ""])
if model == "logistic":
    target = "species"
    features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
    estimator = LogisticRegression()
    space = {"c": loguniform(1e-4, 1e4), "tol": loguniform(1e-8, 1e-2), "max_iter": randint(1, 1001)}
    names = {"c": "C", "tol": "tol", "max_iter": "max_iter"}
else:
    target = "label"
    features = [c for c in df.columns if c != target]
    estimator = SGDClassifier(loss="log_loss", learning_rate="invscaling", power_t=1.0)
    space = {"alpha": loguniform(1e-6, 1), "eta0": loguniform(1e-4, 1), "max_iter": randint(1, 21)}
    names = {"alpha": "alpha", "eta0": "eta0", "max_iter": "max_iter"}
numeric = [c for c in features if df[c].dtype.kind in "fi"]
categorical = [c for c in features if c not in numeric]
X, y = df[features], df[target]


def pipeline(params):
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="mean"), numeric),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), categorical),
        ]
    )
    est = estimator.set_params(**{names[k]: v for k, v in params.items()})
    return make_pipeline(pre, StandardScaler(with_mean=False), est)


bests, counts = [], []
for seed in range(seeds):
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    started, best, n = time.perf_counter(), float("-inf"), 0
    for params in ParameterSampler(space, n_iter=100000, random_state=seed):
        if time.perf_counter() - started > budget:
            break
        score = cross_val_score(pipeline(params), X, y, cv=folds, scoring="accuracy").mean()
        best, n = max(best, score), n + 1
    bests.append(best)
    counts.append(n)
print(f"{sum(bests) / len(bests):.4f} {sum(counts) / len(counts):.1f}")
