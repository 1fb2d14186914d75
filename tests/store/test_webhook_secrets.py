"""A webhook's secrets rotated several times within their overlap all keep signing (the
column of migration 0013), on both backends and both SQLite paths."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from gateway.events.signing import new_secret, signed_headers
from gateway.store import head_revision, open_store, upgrade
from gateway.store.deliveries import MAX_SECRETS, TooManySecrets, Webhook
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.tables import webhooks
from tests.store.conftest import Database
from tests.store.helpers import as_release, previous_release_store, run
from tests.store.test_outbox import Now, _event, _open
from tests.store.test_revocations_store import _to

DAY = 86_400.0
#: Revision 0013's column.
added = webhooks.c.older_secrets
BODY = '{"id":"evt_1"}'


def _verifies(secret: str, hook: Webhook, now: float) -> bool:
    """Whether a receiver holding ``secret`` verifies a delivery signed as ``hook`` signs at
    ``now`` (the headers' own timestamp is the real time: the verifier checks it)."""
    headers = signed_headers("evt_1", BODY, hook.secrets(now), datetime.now(UTC))
    try:
        Verifier(secret).verify(BODY, headers)
    except WebhookVerificationError:
        return False
    return True


def test_every_secret_rotated_out_within_its_overlap_still_signs(db: Database) -> None:
    """Rotated twice within a day (an admin retrying a rotation whose answer was lost), the
    first secret stopped signing at once: every receiver still holding it refused every
    delivery, 911 calls' included. Each now signs until its own overlap ends, up to
    ``MAX_SECRETS`` at once; past that a rotation is refused and nothing changes."""

    async def main() -> None:
        clock = Now()
        t0 = clock.now
        store, outbox = await _open(db, clock)
        async with store:
            s = [new_secret() for _ in range(MAX_SECRETS + 1)]
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["test_call"], s[0], None)
            assert await outbox.rotate_secret("wh_a", s[1], overlap=DAY) is not None
            clock.now += 10
            hook = await outbox.rotate_secret("wh_a", s[2], overlap=DAY)
            assert hook is not None and hook.secrets(clock.now) == (s[2], s[1], s[0])
            for secret in s[:3]:
                assert _verifies(secret, hook, clock.now)
            assert not _verifies(new_secret(), hook, clock.now)
            assert hook.secrets(t0 + DAY) == (s[2], s[1])  # s[0]'s day is over
            assert hook.secrets(t0 + 10 + DAY) == (s[2],)
            for n in range(3, MAX_SECRETS):
                hook = await outbox.rotate_secret("wh_a", s[n], overlap=DAY)
            assert hook is not None and hook.secrets(clock.now) == tuple(reversed(s[:-1]))
            with pytest.raises(TooManySecrets) as refused:
                await outbox.rotate_secret("wh_a", s[-1], overlap=DAY)
            assert refused.value.until == t0 + DAY  # when the oldest stops signing
            kept = await outbox.webhook("wh_a")
            assert kept is not None and kept.secrets(clock.now) == hook.secrets(clock.now)
            clock.now = t0 + DAY  # the oldest's overlap over: a rotation is taken again
            hook = await outbox.rotate_secret("wh_a", s[-1], overlap=DAY)
            assert hook is not None and hook.secrets(clock.now) == tuple(reversed(s[1:]))
            assert await outbox.rotate_secret("wh_none", new_secret(), overlap=DAY) is None

    run(main())


def test_the_rotated_out_secrets_end_at_once_when_asked(db: Database) -> None:
    """One leaked: every secret rotated out stops signing now, the current one signs on."""

    async def main() -> None:
        clock = Now()
        store, outbox = await _open(db, clock)
        async with store:
            s = [new_secret() for _ in range(3)]
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["test_call"], s[0], None)
            for secret in s[1:]:
                assert await outbox.rotate_secret("wh_a", secret, overlap=DAY) is not None
            clock.now += 10
            ended = await outbox.end_rotated_out("wh_a")
            assert ended is not None and ended.secrets(clock.now) == (s[2],)
            assert ended.updated_at == clock.now
            stored = await outbox.webhook("wh_a")
            assert stored is not None and stored.secrets(clock.now) == (s[2],)
            assert not _verifies(s[1], stored, clock.now) and _verifies(s[2], stored, clock.now)
            assert await outbox.end_rotated_out("wh_none") is None

    run(main())


def test_a_claim_reads_every_secret_on_both_sqlite_paths(tmp_path: Path) -> None:
    """The delivery worker's claim reads the subscription (``sqlite3`` and portable alike)."""
    secrets = [new_secret() for _ in range(3)]

    async def outcome(driver_sql: bool) -> tuple[str, ...]:
        url = f"sqlite+aiosqlite:///{tmp_path / f'secrets-{driver_sql}.db'}"
        async with await open_store(url, create=True, driver_sql=driver_sql) as store:
            assert isinstance(store, SqlStateStore) and store.uses_sqlite3 is driver_sql
            clock = Now()
            outbox = OutboxStore(store, clock=clock)
            hook_url = "http://127.0.0.1:1/a"
            await outbox.add_webhook("wh_a", hook_url, ["emergency_call"], secrets[0], None)
            await outbox.rotate_secret("wh_a", secrets[1], overlap=DAY)
            await outbox.rotate_secret("wh_a", secrets[2], overlap=DAY)
            await outbox.add_events([_event("evt_1", at=clock.now)])
            (claimed,) = await outbox.claim("r", lease=30)
            assert claimed.webhook is not None
            return claimed.webhook.secrets(clock.now)

    assert run(outcome(True)) == run(outcome(False)) == tuple(reversed(secrets))


def _columns(connection: sa.Connection) -> set[str]:
    return {str(c["name"]) for c in sa.inspect(connection).get_columns("webhooks")}


def test_migration_0013_up_and_down_and_the_previous_release_on_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0013 adds ``webhooks.older_secrets`` and takes it away again; additive (a nullable
    column the previous release neither reads nor writes), so a release whose head is 0012
    still runs on it."""

    def check(revision: str, present: bool) -> Callable[[sa.Connection], None]:
        def migrate(connection: sa.Connection) -> None:
            _to(revision)(connection)
            assert ("older_secrets" in _columns(connection)) is present

        return migrate

    async def main() -> None:
        async with await open_store(db.url, check_schema=False) as store:
            assert isinstance(store, SqlStateStore)
            for revision, present in (("0012", False), ("0013", True), ("0012", False)):
                async with store.engine.connect() as connection:
                    await connection.run_sync(check(revision, present))
                    await connection.commit()
            await store.upgrade()
            assert await store.revision() == head_revision()
            outbox = OutboxStore(store)
            await outbox.add_webhook("wh_a", "http://127.0.0.1:1/a", ["test_call"], "s0", None)
            await outbox.rotate_secret("wh_a", "s1", overlap=DAY)
            await outbox.rotate_secret("wh_a", "s2", overlap=DAY)

    run(main())
    upgrade(db.url)
    head = head_revision()
    as_release(monkeypatch, "0012")

    # The previous release's table: its statements name only these columns.
    old = sa.table("webhooks", *(sa.column(c.name) for c in webhooks.c if c is not added))

    async def previous_release() -> None:
        for create in (False, True):
            opened = previous_release_store(db.url, head, create=create, aeui=f"old-{create}")
            async with opened as store:
                async with store.transaction() as connection:
                    # Its rotation: the last secret rotated out signs beside the new one.
                    await connection.execute(
                        old.update()
                        .where(old.c.id == "wh_a")
                        .values(previous_secret=old.c.secret, secret=f"s3-{create}")
                    )
                    (row,) = await connection.execute(old.select())
                assert row.previous_secret in ("s2", "s3-False")

    run(previous_release())
    monkeypatch.undo()

    async def this_release_again() -> None:
        async with await open_store(db.url) as store:
            assert isinstance(store, SqlStateStore)
            hook = await OutboxStore(store).webhook("wh_a")
            assert hook is not None
            # What it dropped (s1, then s2) stays dropped; s0 still signs for its day.
            assert hook.secrets(0.0) == ("s3-True", "s3-False", "s0")

    run(this_release_again())
