"""The bulk import's API shapes, declared once: the query read, the answers written, and
their schemas in the API document (``gateway.api.openapi.imports``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.bulk.run import ID_LENGTH

Kind = Literal["devices", "locations"]


class ImportQuery(BaseModel):
    """``POST /v1/imports``'s query: what the file holds and how to run it."""

    model_config = ConfigDict(extra="forbid", strict=False)

    kind: Kind = Field(description="What the file holds.")
    dryRun: bool = Field(default=False, description="Check the file and plan it; write nothing.")
    skipInvalid: bool = Field(
        default=False, description="Apply the valid rows even when some are bad."
    )
    resume: str | None = Field(
        default=None,
        min_length=ID_LENGTH,
        max_length=ID_LENGTH,
        pattern="^[0-9a-f]+$",
        description="An import stopped part-way: continue it (the same kind and file).",
    )


class RowProblem(BaseModel):
    """A bad row: its line (the header is line 1), column and what is wrong."""

    line: int = Field(description="The file's line (the header is line 1).")
    field: str = Field(description="The column.")
    reason: str


class ImportPlan(BaseModel):
    """What applying the valid rows would change, and the carrier calls it costs."""

    created: int = Field(ge=0)
    moved: int = Field(ge=0)
    updated: int = Field(ge=0)
    unchanged: int = Field(ge=0)
    newLocations: int = Field(ge=0)
    carrierCalls: int = Field(ge=0, description="At most; a line applied meanwhile costs fewer.")


class ImportChecked(BaseModel):
    """The file's check: every bad row, and the plan of the valid ones."""

    importId: str | None = Field(default=None, description="Absent on a dry run.")
    state: Literal["running"] | None = None
    total: int = Field(description="Data rows in the file.")
    valid: int
    rows: list[RowProblem] = Field(description="Every bad row (at most 1000).")
    rowsOmitted: int | None = Field(default=None, description="Bad rows beyond those listed.")
    plan: ImportPlan


class LineFailure(BaseModel):
    line: int
    reason: str


class ImportStatus(BaseModel):
    """An import's progress and report."""

    importId: str
    kind: Kind
    state: Literal["running", "done", "incomplete"] = Field(
        description="`incomplete`: stopped with lines left, also a run whose process ended "
        "without finishing (no sign of life for 60 s); resume it."
    )
    total: int = Field(description="Valid rows to apply.")
    done: int
    failed: int
    outcomes: dict[str, int]
    left: int = Field(description="Lines left for a resume.")
    failures: list[LineFailure]
    error: str | None = Field(
        default=None,
        description="Why the run stopped before its end (the carrier refused the gateway's "
        "credentials, its process ended): the lines left are not failed; fix the cause, "
        "then resume.",
    )
