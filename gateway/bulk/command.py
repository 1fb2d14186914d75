"""``dlr-gateway import devices|locations FILE`` and ``dlr-gateway export devices|locations``.

Against the gateway's database (its own settings: ``GATEWAY_DATABASE_URL``, the carrier's
credentials), or with ``--url`` through a running gateway's admin API (``/v1/imports``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from gateway.bulk.formats import KINDS, BadFile, Limits
from gateway.csv_import_cli import add_flags, say_some
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.bulk.run import Prepared
    from gateway.rows import RowProblem

#: Exit statuses: rows refused (nothing written unless --skip-invalid); lines left for a
#: resume (the carrier stayed unavailable, or Ctrl-C).
EXIT_INVALID = 1
EXIT_DATABASE = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130
#: Where --url mode finds the admin key when --key is not given.
KEY_ENV = "DLR_GATEWAY_ADMIN_KEY"
#: Bad rows printed on the terminal; the report file has all of them.
SHOWN_PROBLEMS = 20
#: Bytes of the file read and sent at a time by ``import --url``.
UPLOAD_PIECE = 64 * 1024


def add_commands(commands: Any) -> None:
    """The ``import`` and ``export`` subcommands, on the CLI's subparsers."""
    imp = commands.add_parser(
        "import",
        help="import devices or locations from a CSV file",
        description="Check the whole file, say what would change, then apply it through the "
        "report pipeline with progress. Against the gateway's database (its settings), or "
        "through a running gateway with --url. See the README for the columns.",
    )
    imp.add_argument("kind", choices=KINDS, help="what the file holds")
    imp.add_argument("file", type=Path, help="the CSV file (UTF-8, a header row first)")
    add_flags(imp)
    imp.add_argument(
        "--resume", metavar="ID", help="continue the import with this ID (default: a new import)"
    )
    _remote(imp)
    exp = commands.add_parser(
        "export",
        help="export devices or locations as CSV, in the import format",
        description="Write what the gateway holds in the format `import` reads.",
    )
    exp.add_argument("kind", choices=KINDS, help="what to export")
    exp.add_argument(
        "--out",
        "--output",
        "-o",
        dest="out",
        type=Path,
        help="the file to write (default: standard output)",
    )
    _remote(exp)


def _remote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="a running gateway's base URL: use its admin API (default: the database)"
    )
    parser.add_argument(
        "--key", help=f"the admin key for --url (default: ${KEY_ENV}; a flag shows in ps)"
    )


def main(args: argparse.Namespace) -> int:
    # One line per carrier call would bury the progress.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from gateway.bulk.runtime import NoCarrier, NoDatabase
    from gateway.store import SchemaNotCurrent, StoreUnavailable

    if args.url and not (args.key or os.environ.get(KEY_ENV)):
        print(f"dlr-gateway: --url needs an admin key: set {KEY_ENV}, or --key", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "export":
            return asyncio.run(_export(args))
        return asyncio.run(_import(args))
    except KeyboardInterrupt:
        print("interrupted: what finished is kept; resume with --resume <ID>", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (NoCarrier, NoDatabase, SchemaNotCurrent, StoreUnavailable) as exc:
        print(f"dlr-gateway: {exc}", file=sys.stderr)
        return EXIT_DATABASE


def _read(path: Path, limits: Limits) -> bytes:
    """The file, read no further than the limit: a pipe's size says nothing of its length."""
    with path.open("rb") as file:
        data = file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise BadFile(f"the file is larger than {limits.max_bytes} bytes")
    return data


async def _pieces(file: BinaryIO, max_bytes: int) -> AsyncIterator[bytes]:
    """An open file sent a piece at a time, never whole in memory; ``BadFile`` past the limit
    (a pipe can flow for ever)."""
    sent = 0
    while chunk := await asyncio.to_thread(file.read, UPLOAD_PIECE):
        sent += len(chunk)
        if sent > max_bytes:
            raise BadFile(f"the file is larger than {max_bytes} bytes")
        yield chunk


def report_path(path: Path) -> Path:
    """Where the report of bad rows goes: ``FILE.errors.csv`` next to ``FILE.csv``."""
    return path.with_name(path.stem + ".errors.csv")


def _say_problems(path: Path, total: int, problems: list[RowProblem]) -> None:
    from gateway.bulk.validate import problems_csv

    out = report_path(path)
    lines = len({p.line for p in problems})
    try:
        out.write_text(problems_csv(problems), encoding="utf-8")
    except OSError as exc:  # a read-only folder, a directory of that name: say so, go on
        print(f"{lines} of {total} rows are bad; {out} not written: {exc}", file=sys.stderr)
    else:
        print(f"{lines} of {total} rows are bad; every one is in {out}", file=sys.stderr)
    say_some(
        (f"line {p.line}, {p.field}: {p.reason}" for p in problems), SHOWN_PROBLEMS, sys.stderr
    )


def _say_counted(path: Path, total: int, valid: int) -> None:
    """The check's count: the first line either way (``--url`` or not)."""
    print(f"{path}: {total} rows, {valid} valid", flush=True)


def _say_plan(plan: dict[str, Any]) -> None:
    print(
        f"plan: {plan['created']} created, {plan['moved']} moved, {plan['updated']} updated, "
        f"{plan['unchanged']} unchanged; {plan['newLocations']} new locations; "
        f"at most {plan['carrierCalls']} carrier calls",
        flush=True,
    )


def _say_summary(summary: dict[str, Any]) -> int:
    outcomes = ", ".join(f"{n} {k}" for k, n in summary["outcomes"].items()) or "nothing"
    print(f"import {summary['importId']}: {summary['state']}: {outcomes}", flush=True)
    for failure in summary["failures"][:SHOWN_PROBLEMS]:
        print(f"  line {failure['line']}: {failure['reason']}", file=sys.stderr)
    if summary.get("error"):
        print(f"stopped: {summary['error']}", file=sys.stderr)
    if summary["state"] != "done":
        print(
            f"{summary['left']} lines left: resume with --resume {summary['importId']}",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    return 0


async def _import(args: argparse.Namespace) -> int:
    if args.url:
        return await _import_remote(args)
    from gateway.bulk.progress import for_terminal
    from gateway.bulk.run import ResumeRefused, prepare
    from gateway.bulk.runtime import runtime

    settings = Settings.from_environ()
    async with runtime(settings) as rt:
        try:
            data = _read(args.file, rt.limits)
            prepared = await prepare(args.kind, data, rt.pipeline, rt.imports, rt.limits)
        except (BadFile, OSError) as exc:
            print(f"dlr-gateway: {args.file}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        invalid = _checked(args, prepared)
        if invalid is not None:
            return invalid
        _say_plan(prepared.plan.as_json())
        if args.dry_run:
            return _dry_run_exit(args, bool(prepared.problems))
        try:
            import_id = await rt.importer.start(prepared, args.resume)
        except ResumeRefused as exc:
            print(f"dlr-gateway: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"import {import_id} (resume it with --resume {import_id})", flush=True)
        summary = await rt.importer.apply(import_id, prepared, for_terminal(f"import {import_id}"))
        return _say_summary(summary.as_json())


def _checked(args: argparse.Namespace, prepared: Prepared) -> int | None:
    checked = prepared.checked
    _say_counted(args.file, checked.total, len(checked.rows))
    if prepared.problems:
        _say_problems(args.file, checked.total, list(prepared.problems))
        if not args.skip_invalid and not args.dry_run:
            print("nothing written (--skip-invalid applies the valid rows)", file=sys.stderr)
            return EXIT_INVALID
    return None


def _dry_run_exit(args: argparse.Namespace, bad_rows: bool) -> int:
    """A dry run exits as the import would refuse the file: a validation gate for scripts."""
    return EXIT_INVALID if bad_rows and not args.skip_invalid else 0


def _client(args: argparse.Namespace) -> Any:
    key = args.key or os.environ.get(KEY_ENV, "")
    return httpx.AsyncClient(
        base_url=args.url.rstrip("/"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=120.0,
    )


async def _import_remote(args: argparse.Namespace) -> int:
    from gateway.bulk.progress import for_terminal
    from gateway.rows import RowProblem

    params = {"kind": args.kind}
    if args.dry_run:
        params["dryRun"] = "true"
    if args.skip_invalid:
        params["skipInvalid"] = "true"
    if args.resume:
        params["resume"] = args.resume
    max_bytes = Settings.from_environ().import_max_bytes  # the gateway's own may be less
    try:
        file = args.file.open("rb")
    except OSError as exc:
        print(f"dlr-gateway: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    headers = {"Content-Type": "text/csv"}
    async with _client(args) as http:
        try:
            with file:
                size = os.fstat(file.fileno())
                if stat.S_ISREG(size.st_mode):
                    # Declared, the gateway gives the body its time (GATEWAY_BODY_TIMEOUT):
                    # sent chunked, it would have 30 s, however large.
                    if size.st_size > max_bytes:
                        raise BadFile(f"the file is larger than {max_bytes} bytes")
                    headers["Content-Length"] = str(size.st_size)
                answer = await http.post(
                    "/v1/imports",
                    params=params,
                    content=_pieces(file, max_bytes),
                    headers=headers,
                )
        except (BadFile, OSError) as exc:
            print(f"dlr-gateway: {args.file}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except httpx.HTTPError as exc:
            return _unreachable(args, exc)
        body = _json(answer)
        if answer.status_code == 422 and body.get("rows"):
            problems = [RowProblem(r["line"], r["field"], r["reason"]) for r in body["rows"]]
            _say_problems(args.file, body.get("total", 0), problems)
            print("nothing written (--skip-invalid applies the valid rows)", file=sys.stderr)
            return EXIT_INVALID
        if answer.status_code >= 400:
            return _refused(answer.status_code, str(body.get("detail", body)))
        _say_counted(args.file, body["total"], body["valid"])
        if body.get("rows"):
            problems = [RowProblem(r["line"], r["field"], r["reason"]) for r in body["rows"]]
            _say_problems(args.file, body.get("total", 0), problems)
        _say_plan(body["plan"])
        if args.dry_run:
            return _dry_run_exit(args, bool(body.get("rows")))
        import_id = body["importId"]
        print(f"import {import_id} (resume it with --resume {import_id})", flush=True)
        progress = for_terminal(f"import {import_id}")
        try:
            while True:
                try:
                    polled = await http.get(f"/v1/imports/{import_id}")
                except httpx.HTTPError as exc:
                    return _lost(import_id, str(exc) or type(exc).__name__)
                status = _json(polled)
                if polled.status_code != 200 or "state" not in status:
                    return _lost(import_id, f"{polled.status_code}: {status.get('detail', '')}")
                progress.update(status["done"], status["failed"], status["total"])
                if status["state"] != "running":
                    break
                await asyncio.sleep(1.0)
        finally:
            progress.close()
        return _say_summary(status)


def _json(answer: Any) -> dict[str, Any]:
    """An answer's JSON object; ``{}`` for none (a proxy's HTML error page, say)."""
    try:
        body = answer.json() if answer.content else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refused(status: int, detail: str) -> int:
    """The gateway refused the request: its words, and which key to check on a 401."""
    hint = f" (the admin key: --key or {KEY_ENV})" if status == 401 else ""
    print(f"dlr-gateway: {status}: {detail}{hint}", file=sys.stderr)
    return EXIT_USAGE


def _unreachable(args: argparse.Namespace, exc: Exception) -> int:
    print(f"dlr-gateway: cannot reach {args.url}: {exc or type(exc).__name__}", file=sys.stderr)
    return EXIT_USAGE


def _lost(import_id: str, why: str) -> int:
    """The gateway stopped answering about the import: it may still run there, or not."""
    print(
        f"dlr-gateway: lost touch with the gateway ({why}): import {import_id} may still be "
        f"running there (GET /v1/imports/{import_id} says); if it stopped, resume it with "
        f"--resume {import_id}",
        file=sys.stderr,
    )
    return EXIT_INCOMPLETE


async def _export(args: argparse.Namespace) -> int:
    if args.url:
        async with _client(args) as http:
            try:
                answer = await http.get(f"/v1/exports/{args.kind}")
            except httpx.HTTPError as exc:
                return _unreachable(args, exc)
            if answer.status_code != 200:
                return _refused(
                    answer.status_code, str(_json(answer).get("detail", answer.text[:500]))
                )
            text = answer.text
    else:
        from gateway.bulk.export import export
        from gateway.bulk.runtime import runtime

        async with runtime(Settings.from_environ()) as rt:
            text = await export(args.kind, rt.imports)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            args.out.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            print(f"dlr-gateway: {args.out}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        rows = text.count("\n") - 1
        print(f"{rows} {args.kind} written to {args.out}", file=sys.stderr)
    return 0
