"""Valid input rows for the test models (tests/conftest.py trains them on the demo data)."""

from models_registry.demo_data import DEMO_ROWS

CHURN_ROW = DEMO_ROWS["churn"]
HOUSE_ROW = DEMO_ROWS["housing"]
