"""Every setting the gateway reads, declared once: its variable, type, default, bounds and meaning.

Each area declares its own (``carrier``, ``access``, ``geocoding``, ``service``, ``network``,
``store``, ``emergency``, ``events``, ``console``); ``Settings`` is all of them.
``Settings.from_environ`` reads them from the environment and a ``.env`` file; the README's
configuration table is ``configuration_table()`` (``python -m gateway.settings`` prints it, and a
test holds the README to it). Secrets are held as ``starlette.config.Secret`` (repr
``'**********'``) or kept out of the repr.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from starlette.config import Config
from starlette.datastructures import Secret

from gateway.settings.access import AccessSettings
from gateway.settings.carrier import (
    CARRIER_APIS,
    PRODUCTION_BASE_URL,
    SANDBOX_ACCOUNT_ID,
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    CarrierResilienceSettings,
    CarrierSettings,
)
from gateway.settings.console import ConsoleSettings
from gateway.settings.emergency import UNKNOWN_CALLER_POLICIES, EmergencyQuerySettings
from gateway.settings.events import SMTP_TLS_MODES, EventSettings
from gateway.settings.geocoding import GeocodingSettings
from gateway.settings.network import NetworkSettings
from gateway.settings.reader import Declared, SettingsError, markdown_table, read
from gateway.settings.service import (
    ImportSettings,
    ReportLimitSettings,
    ReportSettings,
    ServerSettings,
)
from gateway.settings.store import NO_DATABASE, SANDBOX_DATABASE_URL, StoreSettings

__all__ = [
    "CARRIER_APIS",
    "DEFAULTS",
    "NO_DATABASE",
    "PRODUCTION_BASE_URL",
    "SANDBOX_ACCOUNT_ID",
    "SANDBOX_DATABASE_URL",
    "SANDBOX_PASSWORD",
    "SANDBOX_USERNAME",
    "SMTP_TLS_MODES",
    "UNKNOWN_CALLER_POLICIES",
    "Settings",
    "SettingsError",
    "configuration_table",
    "declared",
    "unknown_names",
]


# A dataclass takes its bases' fields from the last base to the first: listed bottom-up, the
# areas' settings come in the README's order, carrier first.
@dataclass(frozen=True)
class Settings(
    ConsoleSettings,
    EventSettings,
    EmergencyQuerySettings,
    StoreSettings,
    NetworkSettings,
    ReportLimitSettings,
    CarrierResilienceSettings,
    ServerSettings,
    ImportSettings,
    ReportSettings,
    GeocodingSettings,
    AccessSettings,
    CarrierSettings,
):
    """The gateway's configuration; times are in seconds."""

    #: Set by ``serve --sandbox`` (``for_sandbox``), never read from the environment.
    sandbox: bool = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read the settings; ``environ`` defaults to ``os.environ``."""
        env = dict(os.environ if environ is None else environ)
        path = Path(env_file) if env_file is not None else None
        config = Config(env_file=path if path is not None and path.is_file() else None, environ=env)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            d = f.metadata.get("setting")
            if d is None:
                continue
            raw = config(d.env, default=None)
            if raw is not None:
                given, value = read(f, raw)
                if given:
                    values[f.name] = value
        settings = cls(**values)
        settings._check_combinations()
        return settings

    def _check_combinations(self) -> None:
        """Settings that are only wrong together: a bad pair stops the start rather than
        failing the carrier's query at the moment of a 911 call."""
        if (
            self.emergency_query_unknown_caller == "default"
            and self.emergency_query_default_location_id is None
        ):
            raise SettingsError(
                "GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER=default needs "
                "GATEWAY_EMERGENCY_QUERY_DEFAULT_LOCATION_ID (a location ID at the carrier)"
            )
        if self.bandwidth_api == "v2" and self.bandwidth_v2_follow_timeout >= self.report_deadline:
            raise SettingsError(
                "BANDWIDTH_V2_FOLLOW_TIMEOUT must be shorter than GATEWAY_REPORT_DEADLINE: a "
                "report must answer 202 (pending) before its deadline, not 503"
            )
        if (self.emergency_query_username is None) != (self.emergency_query_password is None):
            raise SettingsError(
                "set both GATEWAY_EMERGENCY_QUERY_USERNAME and GATEWAY_EMERGENCY_QUERY_PASSWORD, "
                "or neither"
            )

    def for_sandbox(self, base_url: str) -> Settings:
        """These settings with the built-in simulator as the upstream."""
        return replace(
            self,
            sandbox=True,
            bandwidth_base_url=base_url,
            bandwidth_account_id=self.bandwidth_account_id or SANDBOX_ACCOUNT_ID,
            bandwidth_username=self.bandwidth_username or SANDBOX_USERNAME,
            bandwidth_password=self.bandwidth_password
            if str(self.bandwidth_password)
            else Secret(SANDBOX_PASSWORD),
            database_url=self.database_url or SANDBOX_DATABASE_URL,
            console=True,
        )

    def problems(self) -> list[str]:
        """What stops a production start, one sentence each; empty when the settings can serve."""
        found = []
        for name, value in (
            ("BANDWIDTH_ACCOUNT_ID", self.bandwidth_account_id),
            ("BANDWIDTH_USERNAME", self.bandwidth_username),
            ("BANDWIDTH_PASSWORD", str(self.bandwidth_password)),
        ):
            if not value:
                found.append(f"{name} is not set")
        if not self.admin_keys:
            found.append("GATEWAY_ADMIN_KEYS is not set (comma-separated admin API keys)")
        if any(len(str(k)) < 16 for k in self.admin_keys):
            found.append("every key in GATEWAY_ADMIN_KEYS must be at least 16 characters")
        if self.device_jwt_secret is not None and len(str(self.device_jwt_secret)) < 32:
            found.append("GATEWAY_DEVICE_JWT_SECRET must be at least 32 characters (HS256)")
        if self.console_session_secret is not None and len(str(self.console_session_secret)) < 32:
            found.append("GATEWAY_CONSOLE_SESSION_SECRET must be at least 32 characters")
        if not self.bandwidth_base_url.startswith(("https://", "http://")):
            found.append("BANDWIDTH_BASE_URL must be an http(s) URL")
        return found


#: The declared defaults, for code that takes a setting's value with a default of its own.
DEFAULTS: Final = Settings()


def declared() -> list[tuple[str, Any, Declared]]:
    """Every setting read from the environment: (attribute, default, declaration)."""
    return [
        (f.name, getattr(DEFAULTS, f.name), f.metadata["setting"])
        for f in dataclasses.fields(Settings)
        if "setting" in f.metadata
    ]


def configuration_table() -> str:
    """The README's configuration table, one row per setting, in declaration order."""
    return markdown_table(declared())


#: Prefixes of the settings' variables: a name with one that no setting has is a typo.
_PREFIXES = ("GATEWAY_", "BANDWIDTH_", "GEOCODE")
#: Read by the test suite, not the gateway.
_NOT_SETTINGS = ("GATEWAY_TEST_",)


def unknown_names(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> list[str]:
    """One sentence for each variable of the environment or ``.env`` that looks like a
    setting but is none (``GATEWAY_ADMIN_KEY``): it does nothing, so a typo is said, with
    the setting it most resembles."""
    env = os.environ if environ is None else environ
    path = Path(env_file) if env_file is not None else None
    given = set(env)
    if path is not None and path.is_file():
        given |= set(Config(env_file=path, environ={}).file_values)
    names = [d.env for _, _, d in declared()]
    found = []
    for name in sorted(given):
        if not name.startswith(_PREFIXES) or name.startswith(_NOT_SETTINGS) or name in names:
            continue
        # A name cut short (``GATEWAY_REPORT_RATE``) means the setting it begins.
        longer = [n for n in names if n.startswith(name)]
        close = longer or difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        guess = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{name} is not a setting the gateway reads{guess}: it has no effect")
    return found
