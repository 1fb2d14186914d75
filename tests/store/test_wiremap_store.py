"""The wiremap on both stores: writes, reloads, the version replicas poll, deletes."""

from __future__ import annotations

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
