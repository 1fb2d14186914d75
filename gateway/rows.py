"""Rows of the CSV files imported and exported (devices, locations, the wiremap): what is
wrong with one, and cells a spreadsheet never runs as formulas.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and tab or carriage
return) as a formula. An export writes such a cell behind a single quote (``'+12025550143``),
which a spreadsheet shows as text, and a cell that starts with a quote behind one more
(``'=x`` is written ``''=x``); an import takes one such leading quote off again, so export ->
import round-trips whatever a value starts with.
"""

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


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def unguard(cell: str) -> str:
    """A cell as written, without the quote ``guard`` put before a formula's first sign."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in (*_FORMULA_START, "'"):
        return cell[1:]
    return cell


def guard(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + cell if cell.startswith((*_FORMULA_START, "'")) else cell
