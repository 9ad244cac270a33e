"""Independent scikit-learn reference for examples/penguins.

Makes the train/test split that ships in data/ (stratified 25 % holdout,
random_state=0) and prints the accuracy scikit-learn reaches with the same
steps as pipeline.toml: mean/most-frequent imputation, one-hot encoding of
the string columns (numeric columns passed through), standard scaling of every
column, multinomial L2 logistic regression (C=1).

    pip install scikit-learn pandas
    python3 examples/penguins/reference.py
"""

from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

here = Path(__file__).parent / "data"
df = pd.read_csv(here / "penguins.csv", na_values=["NA"])
features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
categorical = ["island", "sex"]

train, test = train_test_split(df, test_size=0.25, random_state=0, stratify=df["species"])
train.to_csv(here / "train.csv", index=False, na_rep="NA", float_format="%g")
test.to_csv(here / "test.csv", index=False, na_rep="NA", float_format="%g")

prep = ColumnTransformer(
    [
        ("num", SimpleImputer(strategy="mean"), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", sparse_output=False)), categorical),
    ]
)
model = make_pipeline(prep, StandardScaler(), LogisticRegression(C=1.0, max_iter=10000, tol=1e-10))
model.fit(train[features], train["species"])
print(f"holdout accuracy: {model.score(test[features], test['species']):.6f} ({len(train)} train / {len(test)} test rows)")
cv = cross_val_score(model, df[features], df["species"], cv=5)
print(f"5-fold accuracy: {cv.mean():.6f}")
