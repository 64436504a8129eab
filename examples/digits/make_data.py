"""Export scikit-learn's bundled 8x8 digits images as the example's train and golden CSVs.

Each image becomes 64 pixel columns `pixel_<row>_<col>` (values 0..16) and a `digit` label.
Deterministic: a stratified 70/30 split with a fixed seed, so the golden set never changes.

    python examples/digits/make_data.py [DEST]      # default: examples/digits/data
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main(dest: Path) -> None:
    bunch = load_digits(as_frame=True)
    df = bunch.frame.drop(columns="target").astype(int)
    df["digit"] = bunch.target.astype(int)
    train, golden = train_test_split(df, test_size=0.3, random_state=42, stratify=df["digit"])
    dest.mkdir(parents=True, exist_ok=True)
    train.to_csv(dest / "train.csv", index=False)
    golden.to_csv(dest / "golden.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "data")
