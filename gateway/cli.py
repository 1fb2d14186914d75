"""``dlr-gateway serve | simulator | token | db | openapi | import | export``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import secrets
import shlex
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from starlette.datastructures import Secret

from gateway import __version__, network_cli
from gateway.api.auth import DeviceTokens
from gateway.bulk.command import add_commands as bulk_commands
from gateway.bulk.command import main as bulk_main
from gateway.csv_import_cli import sentence
from gateway.settings import CARRIER_APIS, NO_DATABASE, Settings, SettingsError, unknown_names

log = logging.getLogger("gateway.settings")

#: ``dlr-gateway db current``: the database's schema is not this release's.
EXIT_NOT_CURRENT = 3
#: ``dlr-gateway db``: the database could not be reached or refused the work.
EXIT_DATABASE = 1
#: The device the sandbox prints a token for.
SANDBOX_DEVICE = "sandbox-device-1"
#: Per statement during ``db upgrade``: a migration may rewrite a large table.
MIGRATION_STATEMENT_TIMEOUT = 600.0


def _listen(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=port, help="port to listen on (default: %(default)s)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlr-gateway", description="A Dynamic Location Routing gateway for 911."
    )
    parser.add_argument("--version", action="version", version=f"dlr-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway. Settings come from the environment or .env (see the "
        "README); without --sandbox it refuses to start until the carrier credentials and "
        "admin keys are set, and says which are missing.",
    )
    _listen(serve, 8080)
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in carrier simulator and the offline geocoder, and print an "
        "admin key, a device token and a query token to try it with (default: off)",
    )

    token = commands.add_parser(
        "token",
        help="mint a device token (JWT) for one AEUI",
        description="Print a device token for --aeui, signed with GATEWAY_DEVICE_JWT_SECRET "
        "(HS256) or GATEWAY_DEVICE_JWT_PRIVATE_KEY (RS256/ES256), with GATEWAY_DEVICE_JWT_AUDIENCE "
        "and _ISSUER when set.",
    )
    token.add_argument(
        "--aeui", required=True, help="the device's Alternate End User ID (required)"
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default: %(default)s)"
    )
    token.add_argument(
        "--phone-number",
        help="the callback number (E.164) the device is issued: its reports must carry it, "
        "and it may use it whoever else holds it (the OIDC phone_number claim) "
        "(default: none)",
    )

    db = commands.add_parser(
        "db",
        help="the state store's schema",
        description="Act on GATEWAY_DATABASE_URL, or without it on the embedded SQLite file "
        "under GATEWAY_DATA_DIR.",
    )
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = (
        "migrate the database to this release's schema (run it before starting the "
        "replicas of a new release on PostgreSQL); idempotent"
    )
    db_commands.add_parser("upgrade", help=upgrade, description=sentence(upgrade))
    current = (
        f"say whether the schema is this release's: exit 0 if so, {EXIT_NOT_CURRENT} if not, "
        f"{EXIT_DATABASE} when the database cannot be reached"
    )
    db_commands.add_parser("current", help=current, description=sentence(current))

    commands.add_parser(
        "openapi",
        help="print the API document (OpenAPI 3.1)",
        description="Print the gateway's API document, as gateway/openapi.json holds it and "
        "/openapi.json serves it.",
    )

    network_cli.add_parser(commands)

    sim = commands.add_parser(
        "simulator",
        help="run the carrier simulator alone",
        description="A stand-in for the carrier's API, with faults on demand; it accepts "
        "BANDWIDTH_ACCOUNT_ID, _USERNAME and _PASSWORD (the sandbox's when unset).",
    )
    _listen(sim, 8090)
    sim.add_argument(
        "--api",
        choices=CARRIER_APIS,
        default=os.environ.get("BANDWIDTH_API", "seed").strip().lower() or "seed",
        help="the carrier API to stand in for: the seed API or Bandwidth's v2 emergency "
        "provisioning API; BANDWIDTH_API sets the default (default: %(default)s)",
    )
    sim.add_argument(
        "--order-seconds",
        type=float,
        default=1.0,
        help="with --api v2: seconds an endpoint order stays in progress (default: %(default)s)",
    )
    sim.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="milliseconds added to every API call (default: %(default)s)",
    )
    sim.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of calls that fail, 0 to 1 (default: %(default)s)",
    )
    sim.add_argument(
        "--fault-kinds",
        default="500,503,429,timeout,reset",
        help="comma-separated, of 500, 503, 429, timeout, reset (default: %(default)s)",
    )
    sim.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="requests per second before 429, 0 = no limit (default: %(default)s)",
    )
    sim.add_argument(
        "--timeout-hold",
        type=float,
        default=30.0,
        help="seconds a timeout fault holds a request (default: %(default)s)",
    )
    sim.add_argument(
        "--seed", type=int, default=None, help="seed for reproducible faults (default: random)"
    )
    bulk_commands(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import SANDBOX_PREFIX, create_app
    from gateway.observability import configure_logging
    from gateway.server import serve

    settings = Settings.from_environ()
    configure_logging(settings.log_level)
    unknown = unknown_names()
    taken = _port_taken(args.host, args.port)
    if taken is not None:
        # Before the sandbox's banner: its keys would be for a gateway that never starts.
        print(f"dlr-gateway cannot start: {taken}", file=sys.stderr)
        return 2
    sandbox_app = None
    if args.sandbox:
        from gateway.simulator import SimulatorConfig, create_simulator

        settings = settings.for_sandbox(f"http://{args.host}:{args.port}{SANDBOX_PREFIX}/api")
        if not settings.admin_keys:
            settings = replace(settings, admin_keys=(Secret(secrets.token_urlsafe(24)),))
        if not (settings.device_jwt_secret or settings.device_jwt_public_key):
            settings = replace(settings, device_jwt_secret=Secret(secrets.token_urlsafe(32)))
        if settings.emergency_query_token is None:
            # The carrier's call-time query needs a credential; the README's example uses it.
            settings = replace(settings, emergency_query_token=Secret(secrets.token_urlsafe(24)))
        sandbox_config = SimulatorConfig(
            account_id=settings.bandwidth_account_id,
            username=settings.bandwidth_username,
            password=str(settings.bandwidth_password),
        )
        if settings.bandwidth_api == "v2":
            from gateway.simulator.v2 import create_v2_simulator

            sandbox_app = create_v2_simulator(sandbox_config)
        else:
            sandbox_app = create_simulator(sandbox_config)
        _print_sandbox_banner(settings, args.host, args.port)
    else:
        problems = settings.problems()
        if problems:
            print("dlr-gateway cannot start:", file=sys.stderr)
            for problem in [*problems, *unknown]:
                print(f"  - {problem}", file=sys.stderr)
            print("Set them in the environment or a .env file, or try --sandbox.", file=sys.stderr)
            return 2
    from gateway.store.exclusive import AlreadyServed, hold_sqlite_file
    from gateway.store.urls import default_url

    url = settings.database_url or default_url(settings.data_dir)
    try:
        held = None if url == NO_DATABASE else hold_sqlite_file(url)
    except (AlreadyServed, OSError, ValueError) as exc:
        print(f"dlr-gateway cannot start: {exc}", file=sys.stderr)
        return 2
    for typo in unknown:
        log.warning(typo)
    app = create_app(settings, sandbox_app=sandbox_app)
    serve(app, host=args.host, port=args.port, settings=settings)
    if held is not None:
        held.close()
    return 0


def _port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (another server holds it), or ``None``; bound
    as uvicorn binds, with ``SO_REUSEADDR``, so a port in ``TIME_WAIT`` is free."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server? try --port)"
    return None


def _print_sandbox_banner(settings: Settings, host: str, port: int) -> None:
    """The credentials the sandbox made up, and the ``export`` lines the README's calls use."""
    from gateway.app import SANDBOX_PREFIX

    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    values = {"GW": base, "KEY": str(settings.admin_keys[0])}
    ttl = min(24 * 3600, settings.device_jwt_max_lifetime)
    try:
        sample = DeviceTokens.from_settings(settings).mint(SANDBOX_DEVICE, ttl)
    except ValueError as exc:
        # A public key without its private key verifies tokens but cannot sign one.
        device = f"  device token:  none can be minted here: {exc}\n"
    else:
        device = f"  device token:  {sample}   (AEUI {SANDBOX_DEVICE}, {ttl / 3600:g} h)\n"
        values["TOKEN"] = sample
    values["QUERY_TOKEN"] = str(settings.emergency_query_token)
    if "TOKEN" in values and settings.device_jwt_secret:
        # `dlr-gateway token --aeui ID` signs with it: more devices' tokens.
        values["GATEWAY_DEVICE_JWT_SECRET"] = str(settings.device_jwt_secret)
    exports = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    print(
        "dlr-gateway sandbox: carrier simulator and offline geocoder built in.\n"
        f"  admin key:     {settings.admin_keys[0]}\n"
        f"{device}"
        f"  query token:   {settings.emergency_query_token}   (the carrier's location query)\n"
        f"  simulator:     {base}{SANDBOX_PREFIX}/_sim/state\n"
        f"  console:       {base}/console/   (sign in with the admin key)\n"
        "Paste these to follow the README (`dlr-gateway token --aeui ID` mints more tokens):\n"
        + "\n".join(f"  {line}" for line in exports),
        flush=True,
    )


def _token(args: argparse.Namespace) -> int:
    if not 0 < len(args.aeui) <= 30:
        print("dlr-gateway: --aeui must be 1 to 30 characters", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("dlr-gateway: --ttl must be positive", file=sys.stderr)
        return 2
    try:
        token = DeviceTokens.from_settings(Settings.from_environ()).mint(
            args.aeui, args.ttl, phone_number=args.phone_number
        )
    except ValueError as exc:
        print(f"dlr-gateway: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _scrub(text: str, url: str) -> str:
    """``text`` without the password of ``url`` (driver messages may quote what they were given)."""
    from urllib.parse import unquote

    match = re.match(r"[^:/]+://[^:@/]*:([^@/]+)@", url)
    if match is None:
        return text
    for password in {match[1], unquote(match[1])}:
        text = text.replace(password, "***")
    return text


async def _schema_revisions(url: str, *, upgrade: bool) -> tuple[str | None, str | None, bool]:
    """The database's revision before and after (an upgrade to head, when ``upgrade``), and
    whether it is a newer release's that this one may run on (``SchemaTooNew`` if not)."""
    from gateway.store import SchemaNotCurrent, SqlStateStore, head_revision
    from gateway.store.urls import ensure_directory, parse

    if upgrade:
        ensure_directory(parse(url))
    store = await SqlStateStore.connect(
        url,
        check_schema=False,
        pool_size=1,
        command_timeout=MIGRATION_STATEMENT_TIMEOUT if upgrade else 10.0,
    )
    try:
        before = await store.revision()
        if upgrade:
            await store.upgrade()
        after = await store.revision() if upgrade else before
        newer = False
        if after is not None and after != head_revision():
            try:
                await store.require_current_schema()
                newer = True
            except SchemaNotCurrent as exc:
                if type(exc) is not SchemaNotCurrent:  # SchemaTooNew
                    raise
        return before, after, newer
    finally:
        await store.close()


def _is_known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from gateway.store.migrate import alembic_config

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _db(args: argparse.Namespace) -> int:
    """``db upgrade`` and ``db current``: 0 done/current, 1 database failure, 2 bad setting, 3 not
    current (``current`` only)."""
    with _alembic_quiet():
        return _db_quietly(args)


@contextlib.contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic announces its plugins as it loads and its dialect on every connection: a
    command that migrates a database (``db``, and ``network``/``import``/``export`` on a new
    embedded file) prints its outcome instead."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


def _db_quietly(args: argparse.Namespace) -> int:
    import sqlalchemy.exc
    from alembic.util import CommandError

    from gateway.store import (
        SchemaTooNew,
        StoreUnavailable,
        default_url,
        head_revision,
        redacted,
    )
    from gateway.store.engine import describe
    from gateway.store.urls import is_memory, is_sqlite, parse

    settings = Settings.from_environ()
    url = settings.database_url.strip() or default_url(settings.data_dir)
    if url == NO_DATABASE:
        print(
            f"dlr-gateway: GATEWAY_DATABASE_URL={NO_DATABASE}: the gateway keeps no state store, "
            "so there is nothing to migrate",
            file=sys.stderr,
        )
        return 2
    try:
        parsed = parse(url)
    except ValueError as exc:
        print(f"dlr-gateway: GATEWAY_DATABASE_URL: {_scrub(str(exc), url)}", file=sys.stderr)
        return 2
    if is_memory(parsed):
        print(
            "dlr-gateway: GATEWAY_DATABASE_URL names an in-memory database, which lives inside "
            "one process only: there is nothing to migrate",
            file=sys.stderr,
        )
        return 2
    upgrading = args.db_command == "upgrade"
    print(f"database: {redacted(url)}", flush=True)
    no_file = is_sqlite(parsed) and not Path(parsed.database or "").expanduser().is_file()
    try:
        newer = False
        if no_file and not upgrading:
            before = after = None  # no file, no schema; and `current` creates none
        else:
            before, after, newer = asyncio.run(_schema_revisions(url, upgrade=upgrading))
    except SchemaTooNew as exc:
        print(f"dlr-gateway: {exc}", file=sys.stderr)
        return EXIT_NOT_CURRENT
    except StoreUnavailable as exc:
        reason = describe(exc.__cause__) if exc.__cause__ is not None else str(exc)
        print(
            f"dlr-gateway: cannot reach the database at {redacted(url)}: {_scrub(reason, url)}",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    except (sqlalchemy.exc.SQLAlchemyError, CommandError, OSError) as exc:
        verb = "migrate" if upgrading else "read the schema of"
        print(
            f"dlr-gateway: could not {verb} the database at {redacted(url)}: "
            f"{_scrub(describe(exc), url)}",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    head = head_revision()
    if newer:
        print(
            f"schema: {after}, newer than this release's ({head}) and usable by it "
            "(a rollback); nothing to do"
        )
        return 0
    if upgrading:
        was = "already current" if before == after else f"upgraded from {before or 'no schema'}"
        print(f"schema: {after} (head), {was}")
        return 0
    if after == head:
        print(f"schema: {after} (head), current")
        return 0
    if after is not None and not _is_known_revision(after):
        advice = "a newer release migrated it: run that release"
    else:
        advice = "run `dlr-gateway db upgrade`"
    print(f"schema: {after or 'no schema'}, not current (this release: {head}); {advice}")
    return EXIT_NOT_CURRENT


def _simulator(args: argparse.Namespace) -> int:
    from gateway.simulator import SimulatorConfig, run

    config = replace(
        SimulatorConfig.from_environ(),
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip()),
        rate_limit=args.rate_limit,
        timeout_hold=args.timeout_hold,
        seed=args.seed,
    )
    if args.api not in CARRIER_APIS:
        print(f"BANDWIDTH_API must be {' or '.join(CARRIER_APIS)}", file=sys.stderr)
        return 2
    run(args.host, args.port, config, api=args.api, order_seconds=args.order_seconds)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "simulator":
            return _simulator(args)
        if args.command == "token":
            return _token(args)
        if args.command == "db":
            return _db(args)
        if args.command == "openapi":
            from gateway.api.openapi import render

            sys.stdout.write(render())
            return 0
        if args.command == "network":
            with _alembic_quiet():
                return network_cli.run(args)
        if args.command in ("import", "export"):
            with _alembic_quiet():
                return bulk_main(args)
    except SettingsError as exc:
        print(f"dlr-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse requires a command
