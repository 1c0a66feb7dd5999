"""Valid input rows for the test models (tests/conftest.py trains them on the demo data)."""

CHURN_ROW = {
    "age": 40,
    "tenure_months": 3,
    "monthly_charges": 80.5,
    "total_charges": 241.5,
    "support_calls": 2,
    "contract": "month-to-month",
    "internet_service": "fiber",
    "payment_method": "card",
    "region": "north",
}
HOUSE_ROW = {"area_m2": 95.0, "rooms": 3, "building_age": 20, "district": "suburb", "heating": "gas"}
