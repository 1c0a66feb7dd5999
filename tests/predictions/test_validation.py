"""Batch-chunk validation: problems named per row, and the chunk typed as training typed it."""

import numpy as np
import pandas as pd

from predictions.validation import frame_validate

PROFILE = {
    "features": [
        {"name": "age", "kind": "numeric", "dtype": "integer", "min": 18.0, "max": 90.0, "missing_share": 0.0},
        {"name": "plan", "kind": "categorical", "categories": {"basic": 0.6, "premium": 0.4}, "missing_share": 0.1},
    ]
}


def test_a_chunk_is_checked_and_typed_from_one_parse():
    chunk = pd.DataFrame({"age": [" 40 ", "abc", "", "1e400", "51"], "plan": ["basic", "premium", "", "basic", " "]})

    check = frame_validate(chunk, PROFILE)

    assert check.problems.tolist() == [
        "",
        "age: not a number 'abc'",
        "age: missing value",
        "age: non-finite number",
        "",
    ]
    assert check.valid.tolist() == [True, False, False, False, True]
    assert check.model_input.columns.tolist() == ["age", "plan"]
    assert check.model_input["age"].dtype == np.float64 and check.model_input["age"].iloc[0] == 40.0
    # An empty category cell is missing (None), as training reads it, not an unseen "" category.
    assert check.model_input["plan"].dtype == object
    assert check.model_input["plan"].tolist() == ["basic", "premium", None, "basic", None]


def test_a_column_of_clean_numbers_gets_the_same_verdicts():
    """Arrow parses a column it fully accepts; pandas re-parses one with a bad value: same results."""
    clean = pd.DataFrame({"age": [" 40 ", "1e400", "", "+5", ".5"], "plan": ["basic"] * 5})
    with_bad_value = pd.concat([clean, pd.DataFrame({"age": ["abc"], "plan": ["basic"]})], ignore_index=True)

    fast, slow = frame_validate(clean, PROFILE), frame_validate(with_bad_value, PROFILE)

    assert fast.problems.tolist() == ["", "age: non-finite number", "age: missing value", "", ""]
    assert slow.problems.tolist()[:5] == fast.problems.tolist()
    np.testing.assert_array_equal(fast.model_input["age"], slow.model_input["age"].iloc[:5])
    assert fast.model_input["age"].tolist()[3:] == [5.0, 0.5]


def test_a_category_with_a_nul_character_is_a_bad_row():
    """PostgreSQL cannot store it in the inference log; the row is refused, not the job."""
    chunk = pd.DataFrame({"age": ["40", "41"], "plan": ["basic", "pre\x00mium"]})

    check = frame_validate(chunk, PROFILE)

    assert check.problems.tolist() == ["", "plan: text contains a NUL character (\\u0000)"]
