"""Hostile and real-world files: huge fields, CRLF and a BOM, formulas in exported cells."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateway.bulk.export import export
from gateway.bulk.formats import DEVICES, BadFile, read
from gateway.bulk.run import prepare
from gateway.cli import main
from gateway.rows import guard, unguard
from tests import procs
from tests.bulk.helpers import ADDRESSES, DEVICE_HEADER, bulk_gateway
from tests.harness import phone_of


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _gateway_is(answer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--url``'s client sends its requests to ``answer`` (an httpx mock transport's)."""
    import httpx

    from gateway.bulk import command

    real = command._client

    def mocked(args: object) -> httpx.AsyncClient:
        client: httpx.AsyncClient = real(args)
        client._transport = httpx.MockTransport(answer)
        return client

    monkeypatch.setattr(command, "_client", mocked)


def test_a_huge_field_is_a_bad_row_and_a_monstrous_one_a_bad_file() -> None:
    # Over the field limit (256): that row's column is bad, the rest of the file is read.
    long_row = f'dev-1,{"N" * 5000},+12025550143,"{ADDRESSES[0]}"\n'
    parsed = read(DEVICES, (DEVICE_HEADER + long_row).encode())
    assert parsed.rows[0].too_long == ("CallerName",)
    # Over what the CSV reader holds in memory for one field: the whole file, with its line.
    monster = f'dev-1,x,+12025550143,"{"A" * 300_000}"\n'
    with pytest.raises(BadFile, match="line 2"):
        read(DEVICES, (DEVICE_HEADER + monster).encode())


def test_a_spreadsheets_crlf_file_with_a_bom_is_read_with_its_line_numbers() -> None:
    async def main() -> None:
        async with bulk_gateway() as (_, rt):
            rows = [
                "AEUI,CallerName,CallbackNumber,Address",
                f'dev-1,ANN,{phone_of("dev-1")},"{ADDRESSES[0]}"',
                f'dev-2,BOB,{phone_of("dev-2")},"{ADDRESSES[1]}"',
                "dev-3,,123,nowhere",
            ]
            data = b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n"
            prepared = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            assert [r.aeui for r in prepared.checked.rows] == ["dev-1", "dev-2"]
            assert {p.line for p in prepared.problems} == {4}
            # No cell keeps a stray carriage return.
            assert all("\r" not in r.caller_name for r in prepared.checked.rows)

    run(main())


FORMULAS = ("=1+1", "+SUM(A1)", "-2+3", "@cmd", "'=quoted")


def test_exported_cells_never_run_as_formulas_and_round_trip() -> None:
    """AEUIs (free text) that a spreadsheet would run: export writes each behind a quote,
    and importing the export gives back the same devices, changing nothing."""

    async def main() -> None:
        async with bulk_gateway() as (gw, rt):
            lines = [DEVICE_HEADER.strip()]
            for i, aeui in enumerate(FORMULAS):
                lines.append(f'{guard(aeui)},USER {i},{phone_of(aeui)},"{ADDRESSES[i % 4]}"')
            data = ("\n".join(lines) + "\n").encode()
            first = await prepare(DEVICES, data, rt.pipeline, rt.imports, rt.limits)
            assert not first.problems, first.problems
            assert sorted(r.aeui for r in first.checked.rows) == sorted(FORMULAS)
            await rt.importer.apply(await rt.importer.start(first), first)
            text = await export(DEVICES, rt.imports)
            for row in list(csv.reader(io.StringIO(text)))[1:]:
                for cell in row:
                    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
            assert {unguard(r[0]) for r in list(csv.reader(io.StringIO(text)))[1:]} == set(FORMULAS)
            seq = gw.last_seq()
            again = await prepare(DEVICES, text.encode(), rt.pipeline, rt.imports, rt.limits)
            assert not again.problems and again.plan.carrier_calls == 0
            summary = await rt.importer.apply(await rt.importer.start(again), again)
            assert summary.outcomes == Counter({"unchanged": len(FORMULAS)})
            assert gw.calls(seq) == []

    run(main())


def test_an_output_that_cannot_be_written_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export to a folder, or a report of bad rows whose name a folder has taken, is said
    in a line (the operator's mistake), not a traceback."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    for name, value in procs.gateway_environ(9, database).items():
        monkeypatch.setenv(name, value)  # the carrier is never called: nothing is written
    assert main(["export", "devices", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dlr-gateway: {tmp_path}: ") and "Traceback" not in err
    bad = tmp_path / "fleet.csv"
    bad.write_text(DEVICE_HEADER + "dev-1,,123,nowhere\n")
    (tmp_path / "fleet.errors.csv").mkdir()
    assert main(["import", "devices", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'fleet.errors.csv'} not written" in err, err
    assert "line 2, CallerName: required" in err and "Traceback" not in err


def test_a_dry_run_of_a_file_with_bad_rows_exits_as_the_import_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A script gates on the dry run: bad rows exit 1, as the import (and ``network import
    --dry-run``) does; with ``--skip-invalid`` the good rows are planned and it exits 0."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    for name, value in procs.gateway_environ(9, database).items():
        monkeypatch.setenv(name, value)  # the carrier is never called: nothing is written
    fleet = tmp_path / "fleet.csv"
    good = f'dev-1,ADA,{phone_of("dev-1")},"{ADDRESSES[0]}"\n'
    fleet.write_text(DEVICE_HEADER + good + "dev-2,,123,nowhere\n")
    assert main(["import", "devices", str(fleet), "--dry-run"]) == 1
    assert "line 3, CallerName: required" in capsys.readouterr().err
    assert main(["import", "devices", str(fleet), "--dry-run", "--skip-invalid"]) == 0
    assert "1 created" in capsys.readouterr().out
    fleet.write_text(DEVICE_HEADER + good)
    assert main(["import", "devices", str(fleet), "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["export", "devices"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # the dry runs wrote nothing


def test_a_gateway_that_cannot_be_reached_or_is_lost_mid_import_is_said_in_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``import --url`` / ``export --url`` to a gateway that is down, or that goes away
    (restarted, killed) while the import is polled, ended in a traceback; it is a line
    saying what is known (the import may still run there; how to resume it), exit 3."""
    import socket

    import httpx

    from gateway.bulk import command

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(DEVICE_HEADER + f'dev-1,ADA,{phone_of("dev-1")},"{ADDRESSES[0]}"\n')
    remote = ["--url", f"http://127.0.0.1:{port}", "--key", "k"]
    assert main(["import", "devices", str(fleet), *remote]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and "Traceback" not in err, err
    assert main(["export", "devices", *remote]) == 2
    assert "cannot reach" in capsys.readouterr().err

    def gone(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            plan = {"created": 1, "moved": 0, "updated": 0, "unchanged": 0}
            plan |= {"newLocations": 1, "carrierCalls": 2}
            body = {"importId": "0123456789abcdef", "state": "running", "plan": plan}
            return httpx.Response(202, json=body | {"total": 1, "valid": 1, "rows": []})
        raise httpx.ConnectError("connection refused", request=request)

    _gateway_is(gone, monkeypatch)
    assert main(["import", "devices", str(fleet), *remote]) == command.EXIT_INCOMPLETE
    err = capsys.readouterr().err
    assert "0123456789abcdef" in err and "--resume 0123456789abcdef" in err, err
    assert "Traceback" not in err


def _import_from_an_endless_pipe(tmp_path: Path, *options: str) -> int:
    """``dlr-gateway import devices PIPE *options``, the pipe a stream that goes on until its
    reader is gone (a header, 4 KiB, then it waits): the command's exit status, once it is
    checked that the command did not wait for the stream's end."""
    pipe = tmp_path / "fleet.csv"
    os.mkfifo(pipe)
    done = threading.Event()

    def flow() -> None:
        with pipe.open("wb") as out:
            out.write(DEVICE_HEADER.encode() + b"x" * 4096)
            out.flush()
            done.wait(20)

    writer = threading.Thread(target=flow)
    writer.start()
    started = time.monotonic()
    try:
        status = main(["import", "devices", str(pipe), *options])
    finally:
        done.set()
        writer.join()
    assert time.monotonic() - started < 10
    return status


def test_a_stream_past_the_size_limit_is_refused_without_reading_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dlr-gateway import devices <(zcat huge.csv.gz)`` (a pipe, or ``/dev/zero``): the size
    check read the file's size (0 for a pipe), then read the whole stream into memory, for
    as long as it flowed. It reads no more than the limit and one byte now."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    for name, value in procs.gateway_environ(9, database).items():
        monkeypatch.setenv(name, value)  # the carrier is never called: nothing is written
    monkeypatch.setenv("GATEWAY_IMPORT_MAX_BYTES", "1024")
    assert _import_from_an_endless_pipe(tmp_path) == 2
    assert "larger than 1024 bytes" in capsys.readouterr().err


def test_import_url_streams_the_file_and_stops_past_the_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``import --url`` read the whole file into memory before sending it (a pipe: for as
    long as it flowed). It sends it a piece at a time and stops past
    ``GATEWAY_IMPORT_MAX_BYTES``, as the local path does; a file within it arrives whole."""
    import httpx

    from gateway.bulk import command

    monkeypatch.setenv("GATEWAY_IMPORT_MAX_BYTES", "1024")
    received: list[bytes] = []
    declared: list[str | None] = []

    async def gateway(request: httpx.Request) -> httpx.Response:
        declared.append(request.headers.get("content-length"))
        received.append(await request.aread())
        return httpx.Response(413, json={"detail": "too large"})

    _gateway_is(gateway, monkeypatch)
    monkeypatch.setattr(command, "UPLOAD_PIECE", 256, raising=False)
    remote = ["--url", "http://127.0.0.1:9", "--key", "k"]
    assert _import_from_an_endless_pipe(tmp_path, *remote) == 2
    assert "larger than 1024 bytes" in capsys.readouterr().err
    assert sum(map(len, received)) <= 1024
    big = tmp_path / "big.csv"
    big.write_bytes(DEVICE_HEADER.encode() + b"x" * 1_000_000)
    received.clear()
    assert main(["import", "devices", str(big), *remote]) == 2
    assert "larger than 1024 bytes" in capsys.readouterr().err
    assert received == []  # its size said so: not sent at all
    small = tmp_path / "small.csv"
    small.write_bytes(DEVICE_HEADER.encode() + b"y" * 700)
    received.clear()
    assert main(["import", "devices", str(small), *remote]) == 2  # the mock's 413
    assert b"".join(received) == small.read_bytes()  # sent in 256-byte pieces, whole
    # Its length declared: the gateway gives a large file its time (GATEWAY_BODY_TIMEOUT).
    assert declared[-1] == str(small.stat().st_size)


def test_url_without_an_admin_key_says_so_and_a_refused_key_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--url`` with no key sent ``Authorization: Bearer `` and said "cannot reach ...:
    Illegal header value b'Bearer '"; it now says where the key goes, before any request, and
    a 401 names the key to check."""
    import httpx

    from gateway.bulk import command

    monkeypatch.delenv(command.KEY_ENV, raising=False)
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(DEVICE_HEADER + f'dev-1,X,{phone_of("dev-1")},"{ADDRESSES[0]}"\n')
    for args in (["import", "devices", str(fleet)], ["export", "devices"]):
        assert main([*args, "--url", "http://127.0.0.1:9"]) == 2
        err = capsys.readouterr().err
        assert "--url needs an admin key" in err and command.KEY_ENV in err, err

    async def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "The credentials are not valid."})

    _gateway_is(gateway, monkeypatch)
    monkeypatch.setenv(command.KEY_ENV, "not-the-key")
    for args in (["import", "devices", str(fleet), "--dry-run"], ["export", "devices"]):
        assert main([*args, "--url", "http://127.0.0.1:9"]) == 2
        err = capsys.readouterr().err
        assert "401: The credentials are not valid. (the admin key: --key or" in err, err
