"""Write a telecom-churn-like table: the shape of a real project's data, with strings,
categories, missing values, a signup date and a customer ID (seeded, so it is reproducible).

    python scripts/make_churn.py [--rows 2000] [--seed 0] [--out examples/churn/data/churn.csv]

Churn depends on the contract, tenure, monthly charges, support calls and the internet
service, so a model has something to learn; about a quarter of the customers churn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LETTERS = list("ABCDEFGHJKLMNPQRSTUVWXYZ")


def make(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.25, 0.2])
    internet = rng.choice(["DSL", "Fiber optic", "No"], rows, p=[0.35, 0.45, 0.2]).astype(object)
    tenure = np.clip(rng.gamma(1.6, 18, rows), 0, 72).round().astype(int)
    monthly = np.round(20 + 30 * (internet == "DSL") + 55 * (internet == "Fiber optic")
                       + rng.normal(0, 8, rows), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.05, rows), 2)
    calls = rng.poisson(1.5, rows)
    signup = pd.Timestamp("2024-06-30") - pd.to_timedelta(tenure * 30 + rng.integers(0, 30, rows),
                                                          unit="D")
    logit = (-1.5 + 2.2 * (contract == "Month-to-month") - 1.5 * (contract == "Two year")
             - 0.06 * tenure + 0.02 * (monthly - 65) + 0.6 * calls
             + 0.8 * (internet == "Fiber optic"))
    churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
    df = pd.DataFrame({
        "customerID": [f"{i:04d}-{''.join(rng.choice(LETTERS, 5))}" for i in range(rows)],
        "gender": rng.choice(["Female", "Male"], rows),
        "SeniorCitizen": (rng.random(rows) < 0.16).astype(int),
        "Partner": rng.choice(["Yes", "No"], rows),
        "tenure": tenure,
        "Contract": contract,
        "InternetService": internet,
        "PaymentMethod": rng.choice(["Electronic check", "Mailed check", "Bank transfer",
                                     "Credit card"], rows),
        "MonthlyCharges": monthly,
        "TotalCharges": total,
        "SupportCalls": calls,
        "signup_date": signup.strftime("%Y-%m-%d"),
        "Churn": np.where(churn, "Yes", "No"),
    })
    # gaps where real exports have them: new customers' totals, unknown services
    df.loc[rng.random(rows) < 0.03, "TotalCharges"] = np.nan
    df.loc[rng.random(rows) < 0.05, "InternetService"] = None
    df.loc[rng.random(rows) < 0.02, "PaymentMethod"] = None
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "examples" / "churn" / "data" / "churn.csv")
    a = ap.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    make(a.rows, a.seed).to_csv(a.out, index=False)
    print(f"wrote {a.out} ({a.rows} rows)")


if __name__ == "__main__":
    main()
