"""Export scikit-learn's bundled Iris data as the example's train and golden CSVs.

Deterministic: a stratified 80/20 split with a fixed seed, so the golden set never changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split


def main(dest: Path) -> None:
    bunch = load_iris(as_frame=True)
    df = bunch.frame.drop(columns="target")
    df.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    df["species"] = [str(bunch.target_names[i]) for i in bunch.target]
    train, golden = train_test_split(df, test_size=0.2, random_state=42, stratify=df["species"])
    dest.mkdir(parents=True, exist_ok=True)
    train.to_csv(dest / "train.csv", index=False)
    golden.to_csv(dest / "golden.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples/iris/data"))
