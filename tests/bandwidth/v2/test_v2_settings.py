"""``BANDWIDTH_API`` picks the carrier client; v2's follow timeout must fit the report's."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bandwidth.client import BandwidthClient
from gateway.bandwidth.upstreams import carrier_client
from gateway.bandwidth.v2.client import BandwidthV2Client
from gateway.settings import Settings, SettingsError

BASE = {
    "BANDWIDTH_BASE_URL": "https://carrier.test/api",
    "BANDWIDTH_ACCOUNT_ID": "5001232",
    "BANDWIDTH_USERNAME": "u",
    "BANDWIDTH_PASSWORD": "p",
}


def settings(**environ: str) -> Settings:
    return Settings.from_environ({**BASE, **environ}, env_file=None)


def test_the_api_setting_picks_the_client_and_its_urls() -> None:
    async def go() -> None:
        seed = carrier_client(settings())
        v2 = carrier_client(settings(BANDWIDTH_API=" V2 ", BANDWIDTH_V2_FOLLOW_TIMEOUT="3"))
        try:
            assert type(seed) is BandwidthClient
            assert isinstance(v2, BandwidthV2Client)
            assert v2.follow_timeout == 3.0
            assert v2._root == "https://carrier.test/api/v2/accounts/5001232/emergency"
            assert seed._root == "https://carrier.test/api/accounts/5001232/e911s"
        finally:
            await seed.aclose()
            await v2.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"BANDWIDTH_API": "v3"}, "BANDWIDTH_API must be seed or v2"),
        (
            {"BANDWIDTH_API": "v2", "BANDWIDTH_V2_FOLLOW_TIMEOUT": "8"},
            "shorter than GATEWAY_REPORT_DEADLINE",
        ),
        ({"BANDWIDTH_V2_FOLLOW_TIMEOUT": "0"}, "BANDWIDTH_V2_FOLLOW_TIMEOUT"),
    ],
)
def test_bad_values_stop_the_start(environ: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        settings(**environ)
