"""What the console's tests share: signing in through the form, as a browser does."""

from __future__ import annotations

import re

import httpx

from tests.harness import ADMIN_KEY

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html[:500]
    return found.group(1)


async def sign_in(
    http: httpx.AsyncClient, key: str = ADMIN_KEY, origin: str | None = None
) -> httpx.Response:
    """Sign in with ``key`` (from the page at ``origin``, as a browser says with its form); the
    client keeps the session cookie (the admin header dropped)."""
    http.headers.pop("Authorization", None)
    page = await http.get("/console/signin")
    assert page.status_code == 200
    return await http.post(
        "/console/signin",
        data={"csrf": csrf_of(page.text), "key": key, "next": "/console/"},
        headers={"Origin": origin} if origin is not None else None,
    )
