"""Demo datasets generated in code (no downloads), with optional drift.

`churn`: classification (target `churned`: yes/no), numeric and categorical
features; under drift the south's customers churn more as well (a concept
shift). `housing`: regression (target `price`). `drift` in [0, 1] shifts the
distributions (older customers, more month-to-month contracts, higher charges;
bigger, newer houses), so the drift detector has something to find.
"""

import numpy as np
import pandas as pd

DATASETS = ("churn", "housing")


def churn_frame(*, n_rows: int = 5000, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(42 + 8 * drift, 12, n_rows), 18, 90).round().astype(int)
    tenure = np.clip(rng.exponential(24 * (1 - 0.5 * drift), n_rows), 0, 120).round().astype(int)
    contract = rng.choice(
        ["month-to-month", "one-year", "two-year"],
        size=n_rows,
        p=[0.5 + 0.3 * drift, 0.3 - 0.15 * drift, 0.2 - 0.15 * drift],
    )
    internet = rng.choice(["dsl", "fiber", "none"], size=n_rows, p=[0.4, 0.45, 0.15])
    payment = rng.choice(
        ["card", "bank-transfer", "electronic-check", "mailed-check"],
        size=n_rows,
        p=[0.3, 0.25, 0.3, 0.15],
    )
    region = rng.choice(["north", "south", "east", "west"], size=n_rows)
    monthly = np.round(
        20 + 45 * (internet == "fiber") + 20 * (internet == "dsl") + rng.normal(15 + 20 * drift, 8, n_rows),
        2,
    )
    monthly = np.clip(monthly, 10, None)
    support_calls = rng.poisson(1.2 + 1.5 * drift, n_rows)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.1, n_rows), 2)

    logit = (
        -1.2
        + 1.6 * (contract == "month-to-month")
        - 0.9 * (contract == "two-year")
        - 0.05 * tenure
        + 0.025 * (monthly - 60)
        + 0.45 * support_calls
        + 0.5 * (payment == "electronic-check")
        - 0.01 * (age - 42)
        # Concept drift too: under drift, customers in the south churn far more (a model trained on calm
        # data cannot know it, a retrained one can: the demo's challenger has something to win).
        + 2.5 * drift * (region == "south")
    )
    churned = rng.random(n_rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support_calls,
            "contract": contract,
            "internet_service": internet,
            "payment_method": payment,
            "region": region,
            "churned": np.where(churned, "yes", "no"),
        }
    )


def housing_frame(*, n_rows: int = 5000, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = np.clip(rng.normal(120 + 30 * drift, 35, n_rows), 25, 400).round(1)
    rooms = np.clip(np.round(area / 30 + rng.normal(0, 0.8, n_rows)), 1, 10).astype(int)
    age = np.clip(rng.gamma(2.0, 15 * (1 - 0.6 * drift), n_rows), 0, 120).round().astype(int)
    district = rng.choice(["centre", "suburb", "rural"], size=n_rows, p=[0.3, 0.5, 0.2])
    heating = rng.choice(["gas", "electric", "heat-pump"], size=n_rows, p=[0.5, 0.3, 0.2])
    price = (
        50_000
        + 2_400 * area
        + 8_000 * rooms
        - 600 * age
        + 90_000 * (district == "centre")
        - 40_000 * (district == "rural")
        + 15_000 * (heating == "heat-pump")
        + rng.normal(0, 25_000, n_rows)
    ).round(-2)
    return pd.DataFrame(
        {
            "area_m2": area,
            "rooms": rooms,
            "building_age": age,
            "district": district,
            "heating": heating,
            "price": price,
        }
    )


def demo_frame(dataset: str, *, n_rows: int = 5000, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    if dataset == "churn":
        return churn_frame(n_rows=n_rows, seed=seed, drift=drift)
    if dataset == "housing":
        return housing_frame(n_rows=n_rows, seed=seed, drift=drift)
    raise ValueError(f"Unknown demo dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


# One typical row of each demo dataset's features (the README's curl example; tests and benches).
DEMO_ROWS = {
    "churn": {
        "age": 40,
        "tenure_months": 3,
        "monthly_charges": 80.5,
        "total_charges": 241.5,
        "support_calls": 2,
        "contract": "month-to-month",
        "internet_service": "fiber",
        "payment_method": "card",
        "region": "north",
    },
    "housing": {"area_m2": 95.0, "rooms": 3, "building_age": 20, "district": "suburb", "heating": "gas"},
}
# The demo model the bootstrap trains: under this name only, never into another model.
DEMO_MODEL_NAME = "churn-demo"
DEMO_TARGETS = {"churn": "churned", "housing": "price"}
