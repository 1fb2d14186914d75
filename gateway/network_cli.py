"""``dlr-gateway network import|export``: the wiremap as CSV (Teams LIS column names).

Acts on the state store (``GATEWAY_DATABASE_URL``, or the embedded SQLite file); running
replicas see the change within ``GATEWAY_NETWORK_REFRESH_SECONDS``. A row given only a
``LocationId`` has its address looked up at the carrier (the ``BANDWIDTH_*`` settings).
Exit status: 0 done, 1 the file has bad rows (nothing written) or a wiremap conflict,
2 a bad setting or file, 3 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gateway.csv_import_cli import add_flags, say_some, sentence
from gateway.network.csvfile import MAX_FILE_BYTES, CsvTooLarge, write
from gateway.network.wiremap import Conflict, Kind, Stale
from gateway.settings import NO_DATABASE, Settings

if TYPE_CHECKING:  # every command's parser is built at start: nothing heavy until run
    from gateway.bandwidth.models import Address
    from gateway.network.importer import ImportResult, Lookup
    from gateway.network.service import Wiremap

#: Bad rows shown before "... and N more".
SHOWN_ERRORS = 50


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    network = commands.add_parser(
        "network",
        help="the wiremap (subnets, access points, switches, ports) as CSV",
        description=__doc__.split("\n\n", 1)[1].replace("``", "") if __doc__ else None,
    )
    sub = network.add_subparsers(dest="network_command", required=True)
    imp_help = "validate a wiremap CSV whole, then create or update its entries (idempotent)"
    imp = sub.add_parser("import", help=imp_help, description=sentence(imp_help))
    imp.add_argument("file", type=Path, help="the CSV (Subnet, BSSID, ChassisID, PortID, ...)")
    add_flags(imp)
    exp_help = "write the wiremap as CSV, in the columns import reads"
    exp = sub.add_parser("export", help=exp_help, description=sentence(exp_help))
    exp.add_argument(
        "--kind",
        choices=[k.value for k in Kind],
        help="only entries of this kind (default: every kind)",
    )
    exp.add_argument(
        "--output", "--out", "-o", type=Path, help="the file to write (default: stdout)"
    )


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[Wiremap]:
    from gateway.dlr.address import normalize
    from gateway.network.service import Wiremap
    from gateway.store import SqlStateStore, default_url, is_embedded
    from gateway.store.wiremap import SqlWiremapStore

    url = settings.database_url.strip() or default_url(settings.data_dir)
    store = await SqlStateStore.connect(url, create=is_embedded(url), pool_size=2)
    try:
        wiremap = Wiremap(SqlWiremapStore(store), normalize)
        await wiremap.refresh()
        yield wiremap
    finally:
        await store.close()


class NoCarrier(RuntimeError):
    """A row names a carrier location, and the carrier's settings are missing."""


@contextlib.asynccontextmanager
async def _carrier(settings: Settings) -> AsyncIterator[Lookup]:
    """Carrier location lookups, with a client made only when a row needs one."""
    from gateway.bandwidth.client import BandwidthClient
    from gateway.bandwidth.errors import UpstreamNotFound

    clients: list[BandwidthClient] = []

    async def lookup(location_id: str) -> Address | None:
        if not clients:
            missing = [p for p in settings.problems() if p.startswith("BANDWIDTH_")]
            if missing:
                raise NoCarrier(
                    f"LocationId {location_id} is looked up at the carrier: " + "; ".join(missing)
                )
            clients.append(BandwidthClient.from_settings(settings))
        try:
            return (await clients[0].get_location(location_id)).address
        except UpstreamNotFound:
            return None

    try:
        yield lookup
    finally:
        for client in clients:
            await client.aclose()


def _progress(stream: TextIO) -> Callable[[int, int], None]:
    """A bar on a terminal; plain lines (every tenth) otherwise."""
    tty = stream.isatty()
    shown = [-1]

    def show(done: int, total: int) -> None:
        if tty:
            filled = 30 * done // max(1, total)
            end = "\n" if done >= total else ""
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", end=end, file=stream)
            stream.flush()
            return
        tenth = 10 * done // max(1, total)
        if tenth != shown[0]:
            shown[0] = tenth
            print(f"written {done}/{total}", file=stream, flush=True)

    return show


def _report(result: ImportResult, *, dry_run: bool, out: TextIO, err: TextIO) -> None:
    for label, found in (("warning", result.warnings), ("", result.errors)):
        say_some((f"{label + ': ' if label else ''}{e}" for e in found), SHOWN_ERRORS, err)
    applied = result.applied
    if applied is None:
        print(
            f"{len(result.errors)} problem(s) in the file: nothing written "
            "(fix them, or --skip-invalid to apply the good rows)",
            file=err,
        )
        return
    verb = "would be" if dry_run else "were"
    skipped = f"; {len(result.errors)} invalid row(s) skipped" if result.errors else ""
    print(
        f"{applied.created} created, {applied.updated} updated, {applied.unchanged} unchanged "
        f"{verb} applied{skipped}",
        file=out,
    )


async def _import(
    args: argparse.Namespace, data: bytes, settings: Settings, out: TextIO, err: TextIO
) -> int:
    from gateway.network.importer import import_csv

    path: Path = args.file
    async with contextlib.AsyncExitStack() as stack:
        wiremap = await stack.enter_async_context(_opened(settings))
        lookup = await stack.enter_async_context(_carrier(settings))
        print(f"validating {path} ...", file=err, flush=True)
        try:
            result = await import_csv(
                wiremap,
                data,
                lookup=lookup,
                dry_run=args.dry_run,
                skip_invalid=args.skip_invalid,
                progress=_progress(err),
            )
        except (CsvTooLarge, NoCarrier) as exc:
            print(f"dlr-gateway: {path}: {exc}", file=err)
            return 2
        except Conflict as exc:  # another import landed in between
            print(f"dlr-gateway: {exc.message}", file=err)
            return 1
        except Stale:
            print("dlr-gateway: the wiremap kept changing at other replicas: try again", file=err)
            return 1
    _report(result, dry_run=args.dry_run, out=out, err=err)
    return 1 if result.applied is None else 0


async def _export(args: argparse.Namespace, settings: Settings) -> str:
    async with _opened(settings) as wiremap:
        return write(wiremap.entries(Kind(args.kind) if args.kind else None))


def run(args: argparse.Namespace) -> int:
    from gateway.store import StoreUnavailable

    out, err = sys.stdout, sys.stderr

    settings = Settings.from_environ()
    if settings.database_url.strip() == NO_DATABASE:
        print(
            f"dlr-gateway: GATEWAY_DATABASE_URL={NO_DATABASE}: the wiremap needs a state store",
            file=err,
        )
        return 2
    try:
        if args.network_command == "import":
            path: Path = args.file
            if not path.is_file():
                print(f"dlr-gateway: {path}: no such file", file=err)
                return 2
            if path.stat().st_size > MAX_FILE_BYTES:
                print(f"dlr-gateway: {path}: larger than {MAX_FILE_BYTES // 2**20} MiB", file=err)
                return 2
            return asyncio.run(_import(args, path.read_bytes(), settings, out, err))
        text = asyncio.run(_export(args, settings))
        if args.output is not None:
            try:
                args.output.write_text(text, encoding="utf-8")
            except OSError as exc:
                print(f"dlr-gateway: {args.output}: {exc}", file=err)
                return 2
        else:
            out.write(text)
        return 0
    except StoreUnavailable as exc:
        print(f"dlr-gateway: the state store cannot be reached: {exc}", file=err)
        return 3
