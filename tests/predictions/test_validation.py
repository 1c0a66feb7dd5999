"""Batch-chunk checks through the rule table: problems named per row, and the chunk typed as training typed it."""

import numpy as np
import pyarrow as pa

from models_registry.rules import Duplicates, RulePath, RuleTable

PROFILE = {
    "features": [
        {"name": "age", "kind": "numeric", "dtype": "integer", "min": 18.0, "max": 90.0, "missing_share": 0.0},
        {"name": "plan", "kind": "categorical", "categories": {"basic": 0.6, "premium": 0.4}, "missing_share": 0.1},
    ]
}
TABLE = RuleTable(PROFILE)


def _check(age, plan):
    return TABLE.chunk_check(
        {"age": pa.array(age), "plan": pa.array(plan)}, path=RulePath.BATCH, duplicates=Duplicates()
    )


def test_a_chunk_is_checked_and_typed_from_one_parse():
    check = _check([" 40 ", "abc", "", "1e400", "51"], ["basic", "premium", "", "basic", " "])

    assert check.reasons(stop=True, table=TABLE).tolist() == [
        "",
        "age: not a number 'abc'",
        "age: missing value: this feature was never missing in training",
        "age: non-finite number '1e400'",
        "",
    ]
    assert (~check.stopped).tolist() == [True, False, False, False, True]
    model_input = check.model_input(TABLE)
    assert model_input.columns.tolist() == ["age", "plan"]
    assert model_input["age"].dtype == np.float64 and model_input["age"].iloc[0] == 40.0
    # An empty category cell is missing (None), as training reads it, not an unseen "" category.
    assert model_input["plan"].dtype == object
    assert model_input["plan"].tolist() == ["basic", "premium", None, "basic", None]


def test_a_column_of_clean_numbers_gets_the_same_verdicts():
    """Arrow parses a column it fully accepts; a column with a bad value is parsed again: same results."""
    clean = [" 40 ", "1e400", "", "+5", ".5"]
    fast, slow = _check(clean, ["basic"] * 5), _check([*clean, "abc"], ["basic"] * 6)

    assert fast.reasons(stop=True, table=TABLE).tolist() == slow.reasons(stop=True, table=TABLE).tolist()[:5]
    np.testing.assert_array_equal(fast.model_input(TABLE)["age"], slow.model_input(TABLE)["age"].iloc[:5])
    assert fast.model_input(TABLE)["age"].tolist()[3:] == [5.0, 0.5]


def test_a_category_with_a_nul_character_is_a_bad_row():
    """PostgreSQL cannot store it in the inference log; the row is refused, not the job."""
    check = _check(["40", "41"], ["basic", "pre\x00mium"])

    assert check.reasons(stop=True, table=TABLE).tolist() == ["", "plan: text contains a NUL character (\\u0000)"]


def test_warnings_are_named_apart_from_errors():
    check = _check(["40", "3.5", "200", "40"], ["gold", "basic", "basic", "gold"])

    assert check.stopped.tolist() == [False, True, False, False]
    assert check.reasons(stop=True, table=TABLE)[1] == "age: expected a whole number (whole in training), got 3.5"
    warnings = check.reasons(stop=False, table=TABLE).tolist()
    assert warnings[0] == "plan: category 'gold' was not seen in training; treated as unknown"
    assert warnings[2].startswith("age: 200 is outside the training range 18..90")
    assert warnings[3].endswith("same values in every column as an earlier row")
