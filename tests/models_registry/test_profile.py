"""Reading a stored training profile."""

from models_registry.profile import feature_specs


def test_feature_specs_list_categories_most_frequent_first_whatever_the_stored_order():
    # PostgreSQL's jsonb keeps keys in its own order (shortest first), not by share.
    stored = {"features": [{"name": "plan", "kind": "categorical", "categories": {"b": 0.2, "a": 0.2, "c": 0.6}}]}
    assert feature_specs(stored)[0].categories == ("c", "a", "b")
