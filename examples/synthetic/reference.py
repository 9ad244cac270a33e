"""scikit-learn peer of examples/synthetic/pipeline.toml (the benchmark's
baseline): the same steps on the same generated CSVs, writing predictions
for the test rows.

    python3 examples/synthetic/reference.py [DATA_DIR]
"""

import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data"
started = time.perf_counter()
train = pd.read_csv(data / "train.csv")
test = pd.read_csv(data / "test.csv")
target = "label"
features = [c for c in train.columns if c != target]
categorical = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
numeric = [c for c in features if c not in categorical]
prep = ColumnTransformer(
    [
        ("num", SimpleImputer(strategy="mean"), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", sparse_output=False)), categorical),
    ]
)
model = make_pipeline(prep, StandardScaler(), LogisticRegression(C=1.0, max_iter=100))
model.fit(train[features], train[target])
predicted = model.predict(test[features])
out = Path(__file__).parent / "out"
out.mkdir(exist_ok=True)
pd.DataFrame({"prediction": predicted}).to_csv(out / "reference-predictions.csv", index=False)
accuracy = (predicted == test[target].to_numpy()).mean()
print(f"accuracy {accuracy:.4f} in {time.perf_counter() - started:.2f} s")
