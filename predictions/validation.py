"""Input validation for serving: the request's shape here, every value through the model's
rule table (`models_registry.rules`), the same rules batch files, ingestion and drift apply.

`records_check` checks JSON rows (the REST API and the web form): a finding the
model's policy refuses is an error naming row, field and problem; one it accepts
is a warning in the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import INVALID_INPUT, ApplicationError
from models_registry.rules import Finding, RulePath, RuleTable


@dataclass(frozen=True)
class FieldError:
    row: int | None  # None: the request as a whole
    field: str | None
    problem: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "problem": self.problem}


class InputValidationError(ApplicationError, ValueError):
    """Rows or fields that cannot be scored: each one named in `field_errors` (and `errors`, as the API shows them)."""

    def __init__(self, errors: list[FieldError]):
        super().__init__(INVALID_INPUT, errors=[error.as_dict() for error in errors])
        self.field_errors = errors
        self.description = "; ".join(_describe(e) for e in errors[:10])

    def __str__(self) -> str:
        return self.description


def _describe(error: FieldError) -> str:
    where = []
    if error.row is not None:
        where.append(f"row {error.row}")
    if error.field:
        where.append(f"field {error.field!r}")
    return f"{', '.join(where)}: {error.problem}" if where else error.problem


def _printable(text: str) -> str:
    """Caller's text as it can be echoed in a JSON answer (lone surrogates escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field_error(row: int, finding: Finding) -> FieldError:
    return FieldError(row, finding.field, _printable(finding.problem))


@dataclass(frozen=True)
class CheckedRecords:
    rows: list[dict]  # typed as the model takes them
    warnings: list[FieldError]  # accepted by the policy, worth telling the caller


def records_check(*, records, table: RuleTable, max_rows: int, path: RulePath = RulePath.API) -> CheckedRecords:
    """Check JSON rows against the model's rule table under its policy for ``path``; return them
    typed with the warnings, or raise `InputValidationError` naming every refused problem."""
    if not isinstance(records, list):
        raise InputValidationError([FieldError(None, None, "expected a list of rows (objects)")])
    if not records:
        raise InputValidationError([FieldError(None, None, "empty batch: send at least one row")])
    if len(records) > max_rows:
        raise InputValidationError(
            [FieldError(None, None, f"batch of {len(records)} rows is over the limit of {max_rows}")]
        )
    errors: list[FieldError] = []
    names = table.profile.specs
    absent: dict[int, set[str]] = {}  # row -> features it does not carry
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(FieldError(index, None, "expected an object of feature values"))
            continue
        for field in record.keys() - names.keys():
            errors.append(FieldError(index, _printable(str(field)[:200]), "unknown feature"))
        for name in names:
            if name not in record:
                errors.append(FieldError(index, name, "missing feature"))
                absent.setdefault(index, set()).add(name)
    if errors:
        # The rules still judge every value a row carries, so one answer names every problem. An absent
        # feature is already reported (not again as a missing value); a row that is no object is judged
        # no further; whole-row findings (duplicates) count only between complete rows.
        judged = [isinstance(record, dict) for record in records]
        readable = [
            {name: record.get(name) for name in names} if isinstance(record, dict) else dict.fromkeys(names)
            for record in records
        ]
        checked = table.records_check(readable, path=path)
        for index, finding in checked.refused:
            missing = absent.get(index, set())
            if judged[index] and (finding.field not in missing if finding.field else not missing):
                errors.append(_field_error(index, finding))
        raise InputValidationError(sorted(errors, key=lambda e: (e.row or 0, e.field or "")))
    checked = table.records_check(records, path=path)
    if checked.refused:
        raise InputValidationError(
            sorted((_field_error(i, f) for i, f in checked.refused), key=lambda e: (e.row or 0, e.field or ""))
        )
    return CheckedRecords(rows=checked.rows, warnings=[_field_error(i, f) for i, f in checked.warnings])
