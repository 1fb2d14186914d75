"""What is wrong with one row of an imported CSV file (devices, locations or the wiremap)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RowProblem:
    """The row's line in the file, the column (or ``header``, ``row``), and what is wrong."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"

    def as_json(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "reason": self.reason}
