"""The churn model as a user's own training code (`mlci run -c mlci.entrypoint.yaml`).

mlci imports this file and calls `build`; the script part below runs only by hand.
"""

from __future__ import annotations


def build(x, y, params=None, seed=0, preprocessor=None):
    """x: the raw columns (strings, gaps, the date, the ID); preprocessor: mlci's default
    ColumnTransformer, unfitted. Returns the fitted pipeline that scores raw rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    model = HistGradientBoostingClassifier(random_state=seed, **(params or {}))
    return make_pipeline(preprocessor, model).fit(x, y)


if __name__ == "__main__":
    import pandas as pd

    df = pd.read_csv("data/churn-train.csv")
    print(build(df.drop(columns=["Churn"]), df["Churn"], {"max_iter": 100}))
