"""Console sessions: an admin key signs in once, then a signed cookie carries the session.

The cookie (``dlr_console``) is signed with itsdangerous and carries its own issue time: it
is refused past ``GATEWAY_CONSOLE_SESSION_MINUTES``, after sign-out (its ID is remembered until
it would have expired, in the state store: every replica refuses it, after a restart too),
once its admin key is no longer one of ``GATEWAY_ADMIN_KEYS`` (it
carries an HMAC of the key, never the key), and when tampered with. It is ``HttpOnly``,
``SameSite=Strict``, scoped to ``/console`` and ``Secure`` over HTTPS (which the browser's
``Origin`` tells, behind a proxy that ends TLS). Every form carries the session's CSRF token;
the sign-in form, before there is a session, a token of its own paired with a signed cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from gateway.concurrency import REFRESH_SECONDS, every

log = logging.getLogger("gateway.console")


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in session: its ID (what sign-out revokes), who signed in, its CSRF token,
    and which admin key signed in (``Sessions.key_tag``)."""

    sid: str
    subject: str
    csrf: str
    key_tag: str


SESSION_COOKIE = "dlr_console"
SIGN_IN_COOKIE = "dlr_console_signin"
#: A browser that has signed in: which admin key it signed in with (its tag), signed. Its
#: sign-in attempts count against that key's budget, not its (perhaps shared) address's.
KNOWN_COOKIE = "dlr_console_known"
#: How long a browser stays known after its last sign-in.
KNOWN_SECONDS = 30 * 86_400
COOKIE_PATH = "/console"


class SignOutStore(Protocol):
    """Where sign-outs are kept, shared by every replica."""

    async def load(self, now: datetime) -> dict[str, datetime]:
        """Every sign-out not yet expired at ``now``: session ID -> its expiry."""
        ...

    async def add(self, sid: str, expires_at: datetime, now: datetime) -> None:
        """Record a sign-out (the ones expired at ``now`` may be purged)."""
        ...


class SignOuts:
    """The signed-out sessions this replica refuses, over the store that keeps them (none:
    this process's only)."""

    #: Sign-outs held at most (the soonest to expire are forgotten first).
    MAX = 100_000

    def __init__(
        self, store: SignOutStore | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._clock = clock
        #: Session ID -> when it would have expired (seconds since the epoch).
        self._until: dict[str, float] = {}

    def __contains__(self, sid: str) -> bool:
        return sid in self._until

    async def add(self, sid: str, lifetime: float) -> None:
        """Refuse ``sid`` from now on, here at once and, through the store, everywhere."""
        now = self._clock()
        until = now + lifetime
        self._until = self._kept({**self._until, sid: until})
        if self.store is not None:
            await self.store.add(
                sid, datetime.fromtimestamp(until, UTC), datetime.fromtimestamp(now, UTC)
            )

    async def refresh(self) -> None:
        """Reload the sign-outs from the store, keeping this replica's own."""
        if self.store is None:
            return
        loaded = await self.store.load(datetime.fromtimestamp(self._clock(), UTC))
        merged = {sid: until.timestamp() for sid, until in loaded.items()}
        self._until = self._kept({**self._until, **merged})  # one assignment

    async def refresh_forever(self, interval: float = REFRESH_SECONDS) -> None:
        await every(interval, self.refresh, log, "the console sign-outs could not be reloaded")

    def _kept(self, until: dict[str, float]) -> dict[str, float]:
        now = self._clock()
        live = {sid: t for sid, t in until.items() if t > now}
        if len(live) > self.MAX:
            live = dict(sorted(live.items(), key=lambda item: item[1])[-self.MAX :])
        return live


class Sessions:
    """Issues, reads and revokes console sessions."""

    #: How long a sign-in form may wait before it is sent.
    _SIGN_IN_SECONDS = 3600

    def __init__(
        self, secret: str | None, lifetime_seconds: float, admin_keys: Iterable[str] = ()
    ) -> None:
        key = secret or secrets.token_urlsafe(32)
        self._tag_key = hashlib.sha256(f"dlr-console-admin-key:{key}".encode()).digest()
        #: The admin keys sessions may still stand on: a key taken out of
        #: ``GATEWAY_ADMIN_KEYS`` ends the sessions it opened, on every replica.
        self._key_tags = frozenset(self.key_tag(k) for k in admin_keys)
        self._serializer = URLSafeTimedSerializer(key, salt="dlr-console-session")
        self._sign_in = URLSafeTimedSerializer(key, salt="dlr-console-sign-in")
        self._flash = URLSafeTimedSerializer(key, salt="dlr-console-flash")
        self._known = URLSafeTimedSerializer(key, salt="dlr-console-known-browser")
        self.lifetime = max(1, round(lifetime_seconds))
        self.signouts = SignOuts()

    def key_tag(self, admin_key: str) -> str:
        """Which admin key a session stands on, as a cookie may carry it (an HMAC)."""
        return hmac.new(self._tag_key, admin_key.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, response: Response, request: Request, subject: str, admin_key: str) -> Session:
        session = Session(
            secrets.token_urlsafe(16), subject, secrets.token_urlsafe(32), self.key_tag(admin_key)
        )
        value = self._serializer.dumps(
            [session.sid, session.subject, session.csrf, session.key_tag]
        )
        _set_cookie(response, request, SESSION_COOKIE, value, int(self.lifetime))
        known = self._known.dumps(session.key_tag)
        _set_cookie(response, request, KNOWN_COOKIE, known, KNOWN_SECONDS)
        response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return session

    def known_account(self, request: Request) -> str | None:
        """The admin key (its tag) this browser last signed in with, while that key is still
        one of ``GATEWAY_ADMIN_KEYS``: ``None`` for a browser never signed in here."""
        value = request.cookies.get(KNOWN_COOKIE, "")
        if not value or len(value) > 512:
            return None
        try:
            tag: Any = self._known.loads(value, max_age=KNOWN_SECONDS)
        except BadSignature:
            return None
        return tag if isinstance(tag, str) and tag in self._key_tags else None

    def read(self, request: Request) -> Session | None:
        value = request.cookies.get(SESSION_COOKIE)
        if not value or len(value) > 1024:
            return None
        try:
            data: Any = self._serializer.loads(value, max_age=self.lifetime)
        except BadSignature:  # SignatureExpired is one too
            return None
        if not (
            isinstance(data, list) and len(data) == 4 and all(isinstance(v, str) for v in data)
        ):
            return None
        session = Session(*data)
        if session.sid in self.signouts or session.key_tag not in self._key_tags:
            return None
        return session

    async def revoke(self, response: Response, session: Session) -> None:
        """End ``session``: its cookie deleted, its ID refused until it would have expired
        (here at once; if the store cannot be reached, only here, and logged)."""
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        try:
            await self.signouts.add(session.sid, self.lifetime)
        except Exception:
            log.error(
                "a console sign-out could not be stored: other replicas accept the session "
                "until it expires",
                exc_info=True,
            )

    def _sign_in_token(self, request: Request) -> str | None:
        value = request.cookies.get(SIGN_IN_COOKIE, "")
        if not value or len(value) > 512:
            return None
        try:
            token: Any = self._sign_in.loads(value, max_age=self._SIGN_IN_SECONDS)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None

    def sign_in_token(self, request: Request) -> tuple[str, str | None]:
        """The sign-in form's CSRF token, and the cookie value to set (``None``: kept)."""
        token = self._sign_in_token(request)
        if token is not None:
            return token, None
        token = secrets.token_urlsafe(32)
        return token, self._sign_in.dumps(token)

    def set_sign_in_cookie(self, response: Response, request: Request, value: str) -> None:
        _set_cookie(response, request, SIGN_IN_COOKIE, value, self._SIGN_IN_SECONDS)

    def sign_in_token_valid(self, request: Request, posted: str) -> bool:
        token = self._sign_in_token(request)
        return token is not None and same(token, posted)

    def sign_flash(self, words: list[str]) -> str:
        """A message for the next page, signed so that only the console can write one."""
        return self._flash.dumps(words)

    def read_flash(self, value: str) -> list[str] | None:
        if not value or len(value) > 2048:
            return None
        try:
            words: Any = self._flash.loads(value, max_age=600)
        except BadSignature:
            return None
        if isinstance(words, list) and len(words) == 3 and all(isinstance(w, str) for w in words):
            return words
        return None


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _set_cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        # A browser on https says so in its Origin, also through a proxy that ends TLS.
        secure=request.url.scheme == "https"
        or request.headers.get("origin", "").startswith("https://"),
    )
