"""The validation core: every rule, every whole-file failure, and the accounting on each.

Most tests quarantine what breaks a rule (``STRICT``: out of range and unseen categories too);
the default policy accepts those with a warning (see tests/test_rules_every_path.py).
"""

import json
import os
import time

import pandas as pd
import pytest

from models_registry.profile import profile_build
from models_registry.rules import RulePolicy
from monitoring.validation import ValidationConfig, file_is_complete, file_validate_and_split

HEADER = "age,income,plan"
STRICT = {"rules": {"out_of_range": "quarantine", "unknown_category": "quarantine"}}


@pytest.fixture(scope="module")
def profile():
    training = pd.DataFrame(
        {
            "age": [20, 30, 40, 50, 60] * 20,
            "income": [1000.0, 2000.5, 3000.0, 4000.0, 5000.0] * 20,
            "plan": ["basic", "premium"] * 50,
        }
    )
    return profile_build(
        features=training,
        target="y",
        task="classification",
        classes=["n", "y"],
        reference_predictions=pd.Series(["n", "y"] * 50),
    )


def _split(tmp_path, profile, content: bytes | str, *, policy=STRICT, **config):
    raw = tmp_path / "raw.csv"
    raw.write_bytes(content.encode() if isinstance(content, str) else content)
    config = ValidationConfig(**config)
    result = file_validate_and_split(
        raw_path=raw,
        profile=profile,
        good_path=tmp_path / "good.csv",
        bad_path=tmp_path / "bad.csv",
        config=config,
        policy=RulePolicy.from_overrides(policy, range_tolerance=config.range_tolerance),
    )
    assert result.rows_in == result.rows_good + result.rows_bad  # every row ends in one place
    assert not list(tmp_path.glob("*.part"))
    return result


def _rows(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")


def test_clean_rows_go_to_good_with_their_row_numbers(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n25,1500,basic\n35,2500.5,premium\n")

    assert (result.rows_in, result.rows_good, result.rows_bad, result.bad_path) == (2, 2, 0, None)
    assert [r["row_number"] for r in _rows(result.good_path)] == ["1", "2"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("25,,basic", "missing_value:income"),
        ("25,lots,basic", "wrong_type:income=lots"),
        ("25.5,1500,basic", "not_integer:age=25.5"),
        ("25,inf,basic", "wrong_type:income=inf"),
        ("250,1500,basic", "out_of_range:age=250"),
        ("25,1500,gold", "unknown_category:plan=gold"),
    ],
)
def test_each_row_rule_quarantines_the_row_with_its_reason(tmp_path, profile, row, reason):
    result = _split(tmp_path, profile, f"{HEADER}\n25,1500,basic\n{row}\n")

    assert (result.rows_good, result.rows_bad) == (1, 1)
    (bad,) = _rows(result.bad_path)
    assert bad["reason"] == reason and bad["row_number"] == "2"
    rule = reason.split(":")[0]
    (issue,) = [i for i in result.issues if i.rule == rule]
    assert issue.count == 1 and issue.severity == "error" and issue.sample_values


def test_a_row_lists_every_rule_it_breaks(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n250,lots,gold\n")
    assert (
        _rows(result.bad_path)[0]["reason"]
        == "out_of_range:age=250; wrong_type:income=lots; unknown_category:plan=gold"
    )


def test_by_default_out_of_range_and_unseen_categories_are_kept_with_a_warning(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n250,1500,basic\n25,1500,gold\n", policy={})

    assert (result.rows_good, result.rows_bad) == (2, 0)
    assert {(i.rule, i.severity, i.count) for i in result.issues} == {
        ("out_of_range", "warning", 1),
        ("unknown_category", "warning", 1),
    }


def test_range_tolerance_lets_near_misses_through(tmp_path, profile):
    # Training age 20..60: 10% of the range is 4 years.
    assert _split(tmp_path, profile, f"{HEADER}\n63,1500,basic\n").rows_good == 1
    assert _split(tmp_path, profile, f"{HEADER}\n63,1500,basic\n", range_tolerance=0).rows_bad == 1


def test_duplicates_are_found_across_chunks(tmp_path, profile):
    rows = "\n".join(["25,1500,basic", "26,1500,basic", "27,1500,basic", "25,1500,basic", "26,1500,basic"])
    result = _split(tmp_path, profile, f"{HEADER}\n{rows}\n", chunk_rows=3)

    assert (result.rows_good, result.rows_bad) == (3, 2)
    assert [r["row_number"] for r in _rows(result.bad_path)] == ["4", "5"]


def test_extra_column_is_a_warning_and_left_out_of_good_rows(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER},note\n25,1500,basic,hello\n")

    assert result.rows_good == 1 and "note" not in _rows(result.good_path)[0]
    (issue,) = result.issues
    assert (issue.rule, issue.column, issue.severity) == ("extra_column", "note", "warning")


def test_high_missing_share_is_a_column_issue(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n25,,basic\n26,,basic\n27,1500,basic\n")
    assert any(i.rule == "missing_share_high" and i.column == "income" for i in result.issues)


def test_quoted_newlines_stay_in_one_row(tmp_path, profile):
    result = _split(tmp_path, profile, f'{HEADER}\n25,1500,"bas\nic"\n26,1500,basic\n')

    assert (result.rows_in, result.rows_good, result.rows_bad) == (2, 1, 1)
    assert _rows(result.bad_path)[0]["row_number"] == "1"


@pytest.mark.parametrize(
    ("content", "rows", "reason"),
    [
        (b"", 0, "empty file"),
        (f"{HEADER}\n".encode(), 0, "header only"),
        (f"{HEADER}\n25,1500,b\xe4sic\n".encode("latin-1"), 1, "not UTF-8"),
        (f"{HEADER}\n25,1500,basic\n26,1500,basic\n".encode("utf-16"), 2, "UTF-16"),
        (b"age,income,plan\n25,1500,\xff\xfe\xfa\n", 1, "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", 0, "binary"),
        (b"age,plan\n25,basic\n", 1, "missing required column(s): income"),
    ],
)
def test_whole_file_failures_quarantine_everything_with_a_reason(tmp_path, profile, content, rows, reason):
    result = _split(tmp_path, profile, content)

    assert reason in result.whole_file_reason
    assert (result.rows_in, result.rows_good, result.rows_bad) == (rows, 0, rows)
    assert result.good_path is None and not (tmp_path / "good.csv").exists()


def test_invalid_bytes_late_in_a_large_file_leave_no_partial_output(tmp_path, profile):
    body = "\n".join(["25,1500,basic"] * 50)
    content = f"{HEADER}\n{body}\n".encode() + b"26,1500,\xff\n"
    result = _split(tmp_path, profile, content, chunk_rows=10)

    assert "not UTF-8" in result.whole_file_reason and result.rows_good == 0
    assert not (tmp_path / "good.csv").exists()


def test_a_file_is_complete_only_when_renamed_and_settled(tmp_path):
    partial = tmp_path / "incoming.csv.part"
    partial.write_text("a\n")
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("a\n")
    settled = tmp_path / "settled.csv"
    settled.write_text("a\n")
    old = time.time() - 60
    os.utime(settled, (old, old))
    os.utime(partial, (old, old))

    assert not file_is_complete(partial, min_age_seconds=5)
    assert not file_is_complete(fresh, min_age_seconds=5)
    assert file_is_complete(settled, min_age_seconds=5)


def test_nan_text_is_a_wrong_type_and_integers_may_be_written_as_floats(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n25.0,1500,basic\n26,nan,basic\n27,1e999,basic\n")

    assert [r["reason"] for r in _rows(result.bad_path)] == ["wrong_type:income=nan", "wrong_type:income=1e999"]
    assert [r["age"] for r in _rows(result.good_path)] == ["25.0"]


def test_good_rows_are_stripped_and_bad_rows_keep_the_original_text(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER},note\n 25 ,1500, basic,a\n26,1500,gold, b \n")

    assert _rows(result.good_path) == [{"row_number": "1", "age": "25", "income": "1500", "plan": "basic"}]
    assert _rows(result.bad_path) == [
        {
            "row_number": "2",
            "age": "26",
            "income": "1500",
            "plan": "gold",
            "note": " b ",
            "reason": "unknown_category:plan=gold",
        }
    ]


def test_a_utf8_byte_order_mark_is_fine(tmp_path, profile):
    result = _split(tmp_path, profile, f"\ufeff{HEADER}\n25,1500,basic\n".encode())
    assert (result.whole_file_reason, result.rows_good) == (None, 1)


def test_missing_values_seen_in_training_are_kept_with_a_warning(tmp_path):
    training = pd.DataFrame({"age": [20, 30, 40, 50] * 5, "income": [1000.0, None, 3000.0, 4000.0] * 5})
    gappy = profile_build(
        features=training,
        target="y",
        task="classification",
        classes=["n", "y"],
        reference_predictions=pd.Series(["n", "y"] * 10),
    )
    result = _split(tmp_path, gappy, "age,income\n25,\n26,NA\n27,1500\n,1500\n")

    assert (result.rows_good, result.rows_bad) == (3, 1)
    assert [r["income"] for r in _rows(result.good_path)] == ["", "", "1500"]  # missing written as empty
    assert _rows(result.bad_path)[0]["reason"] == "missing_value:age"
    issues = {(i.rule, i.column): i for i in result.issues}
    assert issues[("missing_value", "income")].severity == "warning" and issues[("missing_value", "income")].count == 2
    assert issues[("missing_value", "age")].severity == "error"
    # 2 of 4 missing (50%) is above the 20% threshold and above training's 25%.
    assert issues[("missing_share_high", "income")].severity == "warning"


def test_duplicates_compare_numbers_by_value_and_all_columns(tmp_path, profile):
    content = f"{HEADER},id\n25,1500,basic,a\n 25.0,1500.00,basic,a\n25,1500,basic,b\n"
    result = _split(tmp_path, profile, content)

    assert [(r["row_number"], r["reason"]) for r in _rows(result.bad_path)] == [("2", "duplicate_row")]
    (issue,) = [i for i in result.issues if i.rule == "duplicate_row"]
    assert issue.sample_values == ["2"]  # row numbers


def test_row_numbers_continue_across_chunks_and_samples_are_capped(tmp_path, profile):
    rows = "\n".join(f"{20 + i % 40},{1000 + i},gold{i}" for i in range(20))
    result = _split(tmp_path, profile, f"{HEADER}\n{rows}\n", chunk_rows=3)

    bad = _rows(result.bad_path)
    assert [r["row_number"] for r in bad] == [str(n) for n in range(1, 21)]
    (issue,) = result.issues
    assert (issue.rule, issue.count, issue.sample_values) == (
        "unknown_category",
        20,
        ["gold0", "gold1", "gold2", "gold3", "gold4"],
    )


def test_a_record_with_too_many_fields_quarantines_the_file(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n25,1500,basic\n26,1500,basic,extra\n")

    assert "not a valid CSV" in result.whole_file_reason
    assert (result.rows_in, result.rows_bad, result.good_path, result.bad_path) == (2, 2, None, None)
    assert not (tmp_path / "good.csv").exists() and not (tmp_path / "bad.csv").exists()


def test_a_semicolon_file_is_read_with_its_delimiter(tmp_path, profile):
    result = _split(tmp_path, profile, "age;income;plan\n25;1500;basic\n")

    assert result.whole_file_reason is None
    assert (result.rows_in, result.rows_good, result.rows_bad) == (1, 1, 0)
    assert '"25","1500","basic"' in result.good_path.read_text()


def test_a_header_no_delimiter_splits_names_the_missing_columns_and_the_delimiters_tried(tmp_path, profile):
    result = _split(tmp_path, profile, "age:income:plan\n25:1500:basic\n")

    assert result.whole_file_reason == (
        "missing required column(s): age, income, plan (one column in the header: no delimiter among "
        "comma ',', semicolon ';', tab, pipe '|' fits)"
    )
    assert (result.rows_in, result.rows_bad) == (1, 1)


def test_an_error_while_writing_leaves_no_output_at_all(tmp_path, profile):
    raw = tmp_path / "raw.csv"
    raw.write_text(f"{HEADER}\n25,1500,basic\n26,lots,basic\n")
    (tmp_path / "bad.csv").mkdir()  # in the way of the final rename

    with pytest.raises(IsADirectoryError):
        file_validate_and_split(
            raw_path=raw, profile=profile, good_path=tmp_path / "good.csv", bad_path=tmp_path / "bad.csv"
        )

    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "raw.csv"]


def test_the_result_is_json_serialisable(tmp_path, profile):
    result = _split(tmp_path, profile, f"{HEADER}\n25,1500,basic\n25,1500,gold\n")

    data = json.loads(json.dumps(result.as_dict()))
    assert data["good_path"] == str(tmp_path / "good.csv") and data["rows_in"] == 2
    assert data["issues"][0]["rule"] == "unknown_category"


def test_the_config_rejects_nonsense():
    with pytest.raises(ValueError, match="chunk_rows"):
        ValidationConfig(chunk_rows=0)
    with pytest.raises(ValueError, match="missing_share_threshold"):
        ValidationConfig(missing_share_threshold=1.5)


def test_completeness_uses_the_given_clock_and_ignores_dot_files_and_missing_files(tmp_path):
    hidden = tmp_path / ".incoming.csv"
    hidden.write_text("a\n")
    settled = tmp_path / "data.csv"
    settled.write_text("a\n")
    os.utime(settled, (1000, 1000))

    assert not file_is_complete(hidden, min_age_seconds=0, now=10_000)
    assert not file_is_complete(tmp_path / "gone.csv", min_age_seconds=0)
    assert not file_is_complete(settled, min_age_seconds=5, now=1004)
    assert file_is_complete(settled, min_age_seconds=5, now=1005)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("age,income,plan,plan", "duplicate column name(s) in the header: plan"),
        ("age,income,plan,reason", "reserved column name(s) in the header (added by validation): reason"),
    ],
)
def test_ambiguous_headers_quarantine_the_file(tmp_path, profile, header, reason):
    extra = ",x" if header.count(",") == 3 else ""
    result = _split(tmp_path, profile, f"{header}\n25,1500,basic{extra}\n")

    assert result.whole_file_reason == reason and (result.rows_in, result.rows_bad) == (1, 1)
