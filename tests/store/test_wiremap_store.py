"""The wiremap on both stores: writes, reloads, the version replicas poll, deletes."""

from __future__ import annotations

import logging

import pytest

from gateway.dlr.address import normalize
from gateway.network.csvfile import write
from gateway.network.importer import import_csv
from gateway.network.service import Wiremap
from gateway.network.wiremap import Entry, Kind, Stale
from gateway.store import SqlStateStore, open_store
from gateway.store.wiremap import SqlWiremapStore
from tests.network.observe import observe
from tests.network.test_csv import CANONICAL
from tests.network.test_wiremap import HQ, ap, at, subnet
from tests.store.conftest import Database
from tests.store.helpers import run


def test_wiremap_round_trips_and_replicas_follow(db: Database) -> None:
    async def main() -> None:
        one = await open_store(db.url, create=True)
        two = await open_store(db.url)
        assert isinstance(one, SqlStateStore) and isinstance(two, SqlStateStore)
        try:
            a, b = (
                Wiremap(SqlWiremapStore(one), normalize),
                Wiremap(SqlWiremapStore(two), normalize),
            )
            await a.refresh()
            await b.refresh()
            port = Entry(Kind.PORT, "00-11-22-33-44-55", HQ, "Gi1/0/7", "LOC9", "desk 7")
            entries = [subnet("2001:db8::/32"), ap("AA-BB-CC-DD-EE-1*"), port]
            await a.apply(entries)
            assert await b.refresh()
            assert sorted(b.entries(), key=lambda e: e.id) == sorted(entries, key=lambda e: e.id)
            observed = observe({"chassisId": "00:11:22:33:44:55", "portId": "Gi1/0/7"})
            match = b.resolve(observed)
            assert match is not None and match.entry == port
            await b.update(entries[0].id, subnet("2001:db8::/32", "FL 9"))
            await b.delete(entries[1].id)
            assert await a.refresh()
            assert a.get(entries[1].id) is None
            held = a.get(entries[0].id)
            assert held is not None and held.address == at("FL 9")
            version = await a.store.version()
            await a.apply([held])  # unchanged: nothing written, the version stays
            assert await a.store.version() == version
        finally:
            await one.close()
            await two.close()

    run(main())


def test_a_write_on_a_stale_version_is_refused_whole(db: Database) -> None:
    async def main() -> None:
        store = await open_store(db.url, create=True)
        assert isinstance(store, SqlStateStore)
        try:
            sql = SqlWiremapStore(store)
            version = await sql.version()
            assert await sql.put([subnet("10.0.0.0/8")], expect=version) == version + 1
            with pytest.raises(Stale):  # another write landed since ``version`` was read
                await sql.put([subnet("10.1.0.0/16")], expect=version)
            held, entries = await sql.load()
            assert held == version + 1 and [e.key for e in entries] == ["10.0.0.0/8"]
        finally:
            await store.close()

    run(main())


def test_csv_import_round_trips_on_each_store(db: Database) -> None:
    async def main() -> None:
        store = await open_store(db.url, create=True)
        assert isinstance(store, SqlStateStore)
        try:
            held = Wiremap(SqlWiremapStore(store), normalize)
            result = await import_csv(held, CANONICAL.encode())
            assert result.written and not result.errors
            reread = Wiremap(SqlWiremapStore(store), normalize)
            await reread.refresh()
            assert write(reread.entries()) == CANONICAL
            again = await import_csv(reread, CANONICAL.encode())
            assert again.applied is not None and again.applied.unchanged == 5
        finally:
            await store.close()

    run(main())


def test_entries_stored_before_the_current_checks_are_listed_never_served(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """An older version stored a subnet wider than /8 (it would locate every client in it
    at one address) and text with invisible format characters: they are listed with a
    warning, matched by nothing, counted in one log line, and the admin deletes them."""

    async def main() -> None:
        store = await open_store(db.url, create=True)
        assert isinstance(store, SqlStateStore)
        try:
            sql = SqlWiremapStore(store)
            wide = Entry(Kind.SUBNET, "8.0.0.0/5", at("FL 1"))
            wide6 = Entry(Kind.SUBNET, "2000::/3", at("FL 1"))
            bidi = Entry(Kind.SUBNET, "10.1.0.0/16", at("FL 2"), description="desk \u202e7")
            hidden = Entry(Kind.ACCESS_POINT, "AA-BB-CC-DD-EE-FF", at("FL\u200b 3"))
            good = subnet("10.2.0.0/16")
            await sql.put([wide, wide6, bidi, hidden, good])
            held = Wiremap(SqlWiremapStore(store), normalize)
            with caplog.at_level(logging.WARNING, logger="gateway.network"):
                await held.refresh()
            skipped = [r for r in caplog.records if "not served" in r.getMessage()]
            assert len(skipped) == 1 and "4 wiremap entries" in skipped[0].getMessage()
            assert held.resolve(observe({"ip": "9.1.2.3"})) is None
            assert held.resolve(observe({"ip": "2001:db8::1"})) is None
            assert held.resolve(observe({"ip": "10.1.0.5"})) is None
            assert held.resolve(observe({"bssid": "AA-BB-CC-DD-EE-FF"})) is None
            match = held.resolve(observe({"ip": "10.2.0.5"}))
            assert match is not None and match.entry == good
            assert len(held.entries()) == 5
            for entry in (wide, wide6, bidi, hidden):
                (warning,) = held.index.warnings(entry)
                assert "not served" in warning.message
            assert held.index.warnings(good) == ()
            for entry in (wide, wide6, bidi, hidden):
                await held.delete(entry.id)
            assert [e.id for e in held.entries()] == [good.id]
            caplog.clear()
            reloaded = Wiremap(SqlWiremapStore(store), normalize)
            await reloaded.refresh()
            assert not [r for r in caplog.records if "not served" in r.getMessage()]
        finally:
            await store.close()

    run(main())
