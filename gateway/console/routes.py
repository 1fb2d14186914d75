"""The console's routes: server-rendered pages under ``/console/``, behind an admin sign-in."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.context import Services, services
from gateway.api.emergency import UNKNOWN_CALLER_KEY
from gateway.api.limits import DeviceRateLimiter
from gateway.api.source import client_address
from gateway.bandwidth.errors import UpstreamError
from gateway.console.auth import Session, Sessions, same
from gateway.console.geo import MapView
from gateway.console.queries import EMERGENCY_QUERY, STATES, ConsoleQueries, Thresholds
from gateway.settings import Settings
from gateway.settings.access import MAX_ADMIN_KEY
from gateway.store.errors import StoreUnavailable
from gateway.store.sql import SqlStateStore

_HERE = Path(__file__).parent
_MAX_FORM_BYTES = 4096
#: The sign-in form's, with the longest admin key percent-encoded (up to 12 bytes a character).
_MAX_SIGN_IN_BYTES = _MAX_FORM_BYTES + 12 * MAX_ADMIN_KEY
_CARRIER_ERROR_OUTCOMES = frozenset({"error", "timeout", "late_error"})
#: What a page's template is given (besides what every page is).
Context = dict[str, Any]


def _tile_origin(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    return f" {parts.scheme}://{parts.netloc}"


class _Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _Headers:
    """A strict Content-Security-Policy and friends on every console answer."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            # Not no-referrer: Chromium then sends "Origin: null" with the console's own forms.
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in self.headers}
                ]
                message["headers"] = kept + self.headers
            await send(message)

        await self.app(scope, receive, sending)


def duration(seconds: float | None) -> str:
    """A span a person reads at a glance: ``42 s``, ``5 min``, ``3 h``, ``2 d``."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{math.floor(seconds / size)} {unit}"
    return f"{math.floor(seconds)} s"


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, as ``duration`` writes it."""
    return "—" if moment is None else duration((now - moment).total_seconds())


def device_href(aeui: str) -> str:
    """A device page's address: the AEUI as one path segment (a ``/`` in it sent as ``%2F``),
    or, for ``.`` and ``..`` (which a browser takes for steps up the path), as a query."""
    if aeui in (".", ".."):
        return "/console/device?" + urlencode({"aeui": aeui})
    return "/console/devices/" + quote(aeui, safe="")


def _target(request: Request) -> str:
    """The page asked for, as the browser wrote its path (``%2F`` kept), with its query."""
    raw = request.scope.get("raw_path")
    path = raw.split(b"?", 1)[0].decode("latin-1") if raw else quote(request.url.path)
    return path + (f"?{request.url.query}" if request.url.query else "")


def address_line(address: dict[str, Any] | None) -> str:
    if not address:
        return "—"
    street = " ".join(
        str(address[k])
        for k in ("houseNumber", "houseSuffix", "preDirectional", "streetName", "streetSuffix")
        if address.get(k)
    )
    parts = [
        street,
        str(address.get("addressLine2") or ""),
        str(address.get("city") or ""),
        " ".join(str(address.get(k) or "") for k in ("stateCode", "zip")).strip(),
    ]
    line = ", ".join(p for p in parts if p)
    return line or "—"


class Console:
    """The console app: its templates, sessions and routes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret = settings.console_session_secret
        self.sessions = Sessions(
            str(secret) if secret is not None else None,
            settings.console_session_minutes * 60,
            [str(k) for k in settings.admin_keys],
        )
        self.thresholds = Thresholds(
            failed_after=settings.report_deadline + settings.upstream_settle_timeout,
            stale_after=settings.emergency_query_stale_after,
        )
        self.map_view = MapView(settings.console_tile_url)
        #: Sign-in attempts: 10 at once, then one every 6 seconds, per admin key from a
        #: browser that has signed in with it (``KNOWN_COOKIE``), else per client address.
        self.sign_ins = DeviceRateLimiter(10 / 60, 10, maxsize=10_000)
        #: Attempts from browsers never signed in, every address together: many addresses
        #: (a botnet) guess no faster than this.
        self.strangers = DeviceRateLimiter(1.0, 60, maxsize=1)
        self.env = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            address_line=address_line, device_href=device_href, duration=duration, states=STATES
        )
        tile = _tile_origin(settings.console_tile_url)
        self.csp = (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src 'self'{tile}; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; connect-src 'self'"
        )

    def routes(self) -> list[BaseRoute]:
        """The pages, under ``/console/``; ``/console`` itself, as a person types it, is sent
        there with a relative ``Location`` (never one built from the ``Host`` header)."""
        home = Route("/console", lambda _: RedirectResponse("/console/", 303), methods=["GET"])
        return [home, self.mount()]

    def mount(self) -> Mount:
        guarded: list[tuple[str, Callable[..., Awaitable[Response]], list[str]]] = [
            ("/", self.overview, ["GET"]),
            ("/devices", self._stored("devices.html", "Devices", self.devices), ["GET"]),
            # ``:path``: an AEUI may hold a ``/`` (sent as ``%2F``, which the server decodes).
            ("/devices/{aeui:path}", self._stored("device.html", "Device", self.device), ["GET"]),
            ("/device", self._stored("device.html", "Device", self.device), ["GET"]),
            ("/calls", self._stored("calls.html", "911 calls", self.calls), ["GET"]),
            ("/locations", self._stored("locations.html", "Locations", self.locations), ["GET"]),
            ("/failures", self._stored("failures.html", "Failures", self.failures), ["GET"]),
            ("/failures/retry", self.retry, ["POST"]),
            ("/map", self._stored("map.html", "Map", self.map), ["GET"]),
            ("/signout", self.sign_out, ["POST"]),
        ]
        routes: list[BaseRoute] = [
            Route("/signin", self.sign_in_page, methods=["GET"], name="console_signin"),
            Route("/signin", self.sign_in, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="console_static"),
        ]
        routes += [Route(path, self._guard(page), methods=m) for path, page, m in guarded]
        # No redirect for a trailing slash: Starlette's is absolute, built from ``Host``.
        pages = Router(routes, redirect_slashes=False)
        return Mount("/console", app=pages, middleware=[Middleware(_Headers, csp=self.csp)])

    # -- plumbing ------------------------------------------------------------

    def _guard(
        self, page: Callable[[Request, Session], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Signed in, or sent to the sign-in page; a form also needs its CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.read(request)
            if session is None:
                if request.method not in ("GET", "HEAD"):  # HEAD is GET without the body
                    return self._refused("Your session has ended: sign in again.", 401)
                return RedirectResponse(
                    "/console/signin?" + urlencode({"next": _target(request)}), status_code=303
                )
            try:
                if request.method == "POST":
                    request.state.form = await self._form(request, lambda t: same(session.csrf, t))
                return await page(request, session)
            except StoreUnavailable as exc:
                return self._refused(f"The state store cannot be reached: {exc}", 503)
            except _Refused as refused:
                return self._refused(refused.message, refused.status)

        return endpoint

    async def _form(
        self,
        request: Request,
        token_valid: Callable[[str], bool],
        max_bytes: int = _MAX_FORM_BYTES,
    ) -> FormData:
        """A small urlencoded form from this site (``Origin``, when sent, must be the console's)
        with a valid CSRF token."""
        origin = request.headers.get("origin")
        # Either scheme: behind a proxy that ends TLS the browser's origin is https while
        # this server is spoken to in http (it serves no TLS itself).
        host = request.url.netloc
        if origin is not None and origin not in (f"https://{host}", f"http://{host}"):
            raise _Refused("The form came from another site.", 403)
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise _Refused("The form's security token is missing or wrong.", 403)
        size = request.headers.get("content-length")
        if size is None or not size.isdigit() or int(size) > max_bytes:
            raise _Refused("The form is too large.", 413)
        form = await request.form(max_files=0, max_fields=16)
        if not token_valid(str(form.get("csrf", ""))):
            raise _Refused("The form's security token is missing or wrong.", 403)
        return form

    def _refused(self, message: str, status: int) -> Response:
        body = self.env.get_template("refused.html").render(message=message, status=status)
        return HTMLResponse(body, status_code=status)

    def render(
        self, request: Request, session: Session | None, name: str, **context: Any
    ) -> HTMLResponse:
        s = services(request)
        body = self.env.get_template(name).render(
            request=request,
            session=session,
            now=datetime.now().astimezone(),
            age=age,
            sandbox=s.settings.sandbox,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(body, status_code=context.get("status", 200))

    def _queries(self, request: Request) -> ConsoleQueries | None:
        store = services(request).store
        if isinstance(store, SqlStateStore):
            return ConsoleQueries(store, self.thresholds)
        return None

    def _stored(
        self,
        template: str,
        title: str,
        load: Callable[[Request, ConsoleQueries], Awaitable[Context]],
    ) -> Callable[[Request, Session], Awaitable[Response]]:
        """A page of what the store holds: what ``load`` reads, rendered with ``template`` (its
        ``title`` unless ``load`` gives one); without a store, a page saying so."""

        async def page(request: Request, session: Session) -> Response:
            queries = self._queries(request)
            if queries is None:
                return self.render(request, session, "no_store.html", title=title)
            context = {"title": title, **await load(request, queries)}
            return self.render(request, session, template, **context)

        return page

    # -- sign-in -------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        if self.sessions.read(request) is not None:
            return RedirectResponse("/console/", status_code=303)
        next_page = request.query_params.get("next", "")
        return self._sign_in_form(request, next_page, error=None, status=200)

    def _sign_in_form(
        self, request: Request, next_page: str, *, error: str | None, status: int
    ) -> Response:
        token, cookie = self.sessions.sign_in_token(request)
        response = self.render(
            request,
            None,
            "signin.html",
            title="Sign in",
            csrf=token,
            error=error,
            next=_safe_next(next_page),
            status=status,
        )
        if cookie is not None:
            self.sessions.set_sign_in_cookie(response, request, cookie)
        return response

    async def sign_in(self, request: Request) -> Response:
        try:
            form = await self._form(
                request, lambda t: self.sessions.sign_in_token_valid(request, t), _MAX_SIGN_IN_BYTES
            )
        except _Refused as refused:
            return self._refused(refused.message, refused.status)
        wait = self._sign_in_budget(request)
        if wait is not None:
            slow_down = self._refused("Too many sign-in attempts: wait a little.", 429)
            slow_down.headers["Retry-After"] = str(self.sign_ins.retry_after(wait))
            return slow_down
        key = str(form.get("key", ""))
        fits = 0 < len(key) <= MAX_ADMIN_KEY
        principal = services(request).admin_keys.match(key) if fits else None
        if principal is None:
            return self._sign_in_form(
                request,
                str(form.get("next", "")),
                error="That key is not an admin key.",
                status=401,
            )
        response = RedirectResponse(_safe_next(str(form.get("next", ""))), status_code=303)
        self.sessions.issue(response, request, principal.subject, key)
        return response

    def _sign_in_budget(self, request: Request) -> float | None:
        """An attempt taken from its budget (``None``), or the seconds until there is one. A
        browser that has signed in spends its admin key's, wherever it is: one guesser
        behind the proxy every operator shares does not lock them out, and a guesser with
        a stolen cookie gains nothing by changing address. Any other spends its address's
        (``client_address``) and the strangers' one."""
        account = self.sessions.known_account(request)
        if account is not None:
            return self.sign_ins.acquire(f"key:{account}")
        wait = self.sign_ins.acquire(f"address:{client_address(request)}")
        return wait if wait is not None else self.strangers.acquire("")

    async def sign_out(self, request: Request, session: Session) -> Response:
        response = RedirectResponse("/console/signin", status_code=303)
        await self.sessions.revoke(response, session)
        return response

    # -- pages ---------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        s = services(request)
        health = await s.readiness.check()
        queries = self._queries(request)
        counts: dict[str, int] | None = None
        hour: dict[str, int] = {}
        store_error = None
        if queries is not None:
            try:
                counts = await queries.state_counts()
                hour = await queries.last_hour()
            except StoreUnavailable as exc:
                store_error = str(exc)
        return self.render(
            request,
            session,
            "overview.html",
            title="Overview",
            health=health,
            counts=counts,
            hour=hour,
            store_error=store_error,
            since_start=_since_start(s),
        )

    async def devices(self, request: Request, queries: ConsoleQueries) -> Context:
        search = _param(request, "q")
        state = request.query_params.get("state", "")
        states = [state] if state in STATES else []
        page = await queries.devices(search=search, states=states, after=_key(request, "after"))
        return {"page": page, "search": search, "state": state if states else ""}

    async def device(self, request: Request, queries: ConsoleQueries) -> Context:
        aeui = str(request.path_params.get("aeui") or request.query_params.get("aeui", ""))[:64]
        if "\x00" in aeui:  # no device's (PostgreSQL could not even compare it)
            raise _Refused("There is no device with that AEUI.", 404)
        found = await queries.device(aeui)
        history = await queries.history(key=aeui, before=_int(request, "before"))
        if found is None and not history.items:
            raise _Refused("There is no device with that AEUI.", 404)
        return {
            "title": f"Device {aeui}",
            "aeui": aeui,
            "device": found,
            "history": history,
            "emergency": EMERGENCY_QUERY,
        }

    async def calls(self, request: Request, queries: ConsoleQueries) -> Context:
        unknown = request.query_params.get("unknown") == "1"
        page = await queries.history(
            key=UNKNOWN_CALLER_KEY if unknown else None,
            kind=EMERGENCY_QUERY,
            before=_int(request, "before"),
        )
        return {
            "page": page,
            "unknown": unknown,
            "unknown_key": UNKNOWN_CALLER_KEY,
            "latency": _query_latency(services(request)),
        }

    async def locations(self, request: Request, queries: ConsoleQueries) -> Context:
        return {"page": await queries.locations(after=_key(request, "after"))}

    async def failures(self, request: Request, queries: ConsoleQueries) -> Context:
        page = await queries.devices(states=("failed", "pending"), after=_key(request, "after"))
        return {
            "page": page,
            "flash": self.sessions.read_flash(request.query_params.get("flash", "")),
            "failed_after": self.thresholds.failed_after,
        }

    async def retry(self, request: Request, session: Session) -> Response:
        """Redo a device's write through the pipeline's repair (the reconciler's own path)."""
        aeui = str(request.state.form.get("aeui", ""))[:64]
        # An AEUI with a NUL is no device's (PostgreSQL could not even look it up).
        outcome, detail = ("unknown", "") if "\x00" in aeui else await _repair(request, aeui)
        # Signed: a link cannot put words in the carrier's mouth on an operator's screen.
        flash = self.sessions.sign_flash([aeui, outcome, detail[:300]])
        return RedirectResponse(f"/console/failures?{urlencode({'flash': flash})}", 303)

    async def map(self, request: Request, queries: ConsoleQueries) -> Context:
        page = await queries.mapped(after=_key(request, "after"))
        return {"page": page, "drawing": self.map_view.draw(page.items)}


async def _repair(request: Request, aeui: str) -> tuple[str, str]:
    """The outcome of a device's repair, and the carrier's or the store's words."""
    pipeline = services(request).pipeline
    try:
        wrote = await pipeline.repair(aeui)
    except UpstreamError as exc:
        return "carrier-error", str(exc)
    except StoreUnavailable as exc:
        return "store-error", str(exc)
    if await pipeline.stored(aeui) is None:
        return "unknown", ""
    return ("written" if wrote else "held"), ""


def _int(request: Request, name: str) -> int | None:
    """A history page's key (a row ID)."""
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _param(request: Request, name: str) -> str:
    """A query parameter; one with a NUL is none (no stored value holds one, and PostgreSQL
    cannot even compare it)."""
    value = request.query_params.get(name, "")
    return "" if "\x00" in value else value


def _key(request: Request, name: str) -> str | None:
    """A keyset page's key (an AEUI or a location ID: 64 characters at most)."""
    return _param(request, name)[:64] or None


def _safe_next(target: str) -> str:
    """Only a console path: never another site (``//evil``) nor a scheme."""
    if (
        target.startswith("/console/")
        and not target.startswith("/console//")
        and "\\" not in target
        and all(c.isprintable() for c in target)
    ):
        return target[:500]
    return "/console/"


def _since_start(s: Services) -> dict[str, int]:
    """Reports by result, and carrier calls (all; and those that failed: no answer, 429 or
    5xx), since this process started."""
    found = {"carrier_calls": 0, "carrier_errors": 0}
    for metric in s.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "dlr_reports_total":
                key = f"reports_{sample.labels.get('result', '')}"
                found[key] = found.get(key, 0) + int(sample.value)
            elif sample.name == "dlr_upstream_request_duration_seconds_count":
                outcome = sample.labels.get("status", "")
                # A 404 is an answer (an endpoint not there yet), not a carrier error.
                failed = outcome.isdigit() and (int(outcome) >= 500 or outcome == "429")
                if failed or outcome in _CARRIER_ERROR_OUTCOMES:
                    found["carrier_errors"] += int(sample.value)
                found["carrier_calls"] += int(sample.value)
    return found


def _query_latency(s: Services) -> dict[str, float]:
    """The call-time query's count and mean latency in this process, by result."""
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    for metric in s.metrics.registry.collect():
        for sample in metric.samples:
            result = sample.labels.get("result", "")
            if sample.name == "dlr_emergency_query_duration_seconds_count":
                counts[result] = sample.value
            elif sample.name == "dlr_emergency_query_duration_seconds_sum":
                sums[result] = sample.value
    return {r: 1000 * sums.get(r, 0.0) / n for r, n in counts.items() if n}
