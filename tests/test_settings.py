"""Settings are declared once: the reader, the README table and the client's defaults follow."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.bandwidth.client import BandwidthClient, RetryPolicy
from gateway.settings import (
    Settings,
    SettingsError,
    configuration_table,
    declared,
    unknown_names,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_table() -> str:
    text = README.read_text()
    start = text.index("| variable | default | meaning |")
    return text[start : text.index("\n\n", start) + 1]


def test_readme_table_is_the_declarations() -> None:
    assert _readme_table() == configuration_table(), (
        "README's configuration table differs from gateway/settings/: "
        "paste the output of `python -m gateway.settings`"
    )


def test_module_prints_the_table() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "gateway.settings"], capture_output=True, text=True, check=True
    ).stdout
    assert printed == configuration_table()


def test_each_variable_is_declared_once() -> None:
    envs = [d.env for _, _, d in declared()]
    assert len(envs) == len(set(envs)) > 50


def test_defaults_are_read_when_nothing_is_set() -> None:
    assert Settings.from_environ({}, env_file=None) == Settings()


def _written(default: object) -> str:
    """A default as an operator would write it in the environment."""
    if isinstance(default, bool):
        return str(default).lower()
    if default is None:
        return ""
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default)
    if isinstance(default, dict):
        return json.dumps(default)
    return str(default)


def test_every_setting_reads_its_default_written_out() -> None:
    """Each declared type has a reader, and reading a default's text gives the default."""
    defaults = Settings()
    for _, default, d in declared():
        read = Settings.from_environ({d.env: _written(default)}, env_file=None)
        for other, _, _ in declared():  # Secret compares by identity: compare the values
            assert str(getattr(read, other)) == str(getattr(defaults, other)), (d.env, other)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("GATEWAY_UPSTREAM_TIMEOUT", "soon", "GATEWAY_UPSTREAM_TIMEOUT='soon' is not a number"),
        ("GATEWAY_UPSTREAM_TIMEOUT", "0", "GATEWAY_UPSTREAM_TIMEOUT must be greater than 0"),
        ("GATEWAY_REPORT_BURST", "2.5", "GATEWAY_REPORT_BURST='2.5' is not a whole number"),
        ("GATEWAY_UPSTREAM_ALLOW_INSECURE", "yes", "is not true or false"),
        ("GATEWAY_DEVICE_JWT_LEEWAY", "inf", "GATEWAY_DEVICE_JWT_LEEWAY must be a finite number"),
        ("GATEWAY_GEO_CONFLICT_MARGIN", "-1", "GATEWAY_GEO_CONFLICT_MARGIN must be 0 or more"),
        ("GEOCODER_OPTIONS", "[1]", "GEOCODER_OPTIONS must be a JSON object"),
        ("GATEWAY_EMERGENCY_QUERY_PATH", "v1", "GATEWAY_EMERGENCY_QUERY_PATH must be a path"),
        ("GATEWAY_EMERGENCY_QUERY_ALLOW_CIDRS", "10.0.0.0/8,nope", "'nope' is not a network"),
        ("GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER", "maybe", "must be 404 or default"),
        # NaN passed every bound before (NaN <= 0 is false): a timeout of NaN seconds.
        ("GATEWAY_UPSTREAM_TIMEOUT", "nan", "GATEWAY_UPSTREAM_TIMEOUT='nan' is not a number"),
        ("GATEWAY_BREAKER_COOLDOWN", "NaN", "GATEWAY_BREAKER_COOLDOWN='NaN' is not a number"),
        # Longer than the console's sign-in takes: a key that could never sign in there.
        (
            "GATEWAY_ADMIN_KEYS",
            "a-short-admin-key-0123," + "k" * 1025,
            "every key in GATEWAY_ADMIN_KEYS must be at most 1024 characters",
        ),
    ],
)
def test_a_bad_value_names_its_variable(env: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_environ({env: value}, env_file=None)


def test_values_are_read_and_cleaned(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("GATEWAY_REPORT_BURST=3\nGEOCODER= Nominatim \n")
    settings = Settings.from_environ(
        {
            "GATEWAY_UPSTREAM_TIMEOUT": "2.5",
            "GATEWAY_UPSTREAM_ALLOW_INSECURE": "TRUE",
            "GATEWAY_ADMIN_KEYS": " a , b ,",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_EMERGENCY_QUERY_DEFAULT_AEUI": "  ",
            "GATEWAY_EMERGENCY_QUERY_TOKEN": " t ",
        },
        env_file=dotenv,
    )
    assert settings.upstream_timeout == 2.5
    assert settings.upstream_allow_insecure is True
    assert [str(k) for k in settings.admin_keys] == ["a", "b"]
    assert settings.log_level == "DEBUG"
    assert settings.emergency_query_default_aeui == "account-default"
    assert str(settings.emergency_query_token) == "t"
    assert settings.report_burst == 3
    assert settings.geocoder == "nominatim"


def test_pairs_are_checked() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_EMERGENCY_QUERY_DEFAULT_LOCATION_ID"):
        Settings.from_environ({"GATEWAY_EMERGENCY_QUERY_UNKNOWN_CALLER": "default"}, env_file=None)
    with pytest.raises(SettingsError, match="set both"):
        Settings.from_environ({"GATEWAY_EMERGENCY_QUERY_USERNAME": "carrier"}, env_file=None)


def test_secrets_stay_out_of_the_repr() -> None:
    secrets = {
        "BANDWIDTH_PASSWORD": "pw-0123456789",
        "GATEWAY_ADMIN_KEYS": "admin-0123456789abcdef",
        "GATEWAY_DEVICE_JWT_SECRET": "jwt-0123456789abcdef0123456789abcdef",
        "GATEWAY_DATABASE_URL": "postgresql://u:dbpass-0123@db/x",
        "GEOCODER_OPTIONS": '{"api_key": "geo-0123456789"}',
        "GATEWAY_EMERGENCY_QUERY_TOKEN": "tok-0123456789",
    }
    settings = Settings.from_environ(secrets, env_file=None)
    shown = repr(settings)
    for value in ("pw-0123", "admin-0123", "jwt-0123", "dbpass", "geo-0123", "tok-0123"):
        assert value not in shown


def test_client_defaults_are_the_declared_ones() -> None:
    defaults = Settings()
    assert RetryPolicy() == RetryPolicy.from_settings(defaults)
    client = BandwidthClient("https://bw.example/api", "9900000", "u", "p")
    try:
        assert client.breaker.failure_threshold == defaults.breaker_failures
        assert client.breaker.cooldown == defaults.breaker_cooldown
        assert client.budget.ratio == defaults.retry_budget_ratio
    finally:
        asyncio.run(client.aclose())


def test_a_variable_that_looks_like_a_setting_but_is_none_is_named(tmp_path: Path) -> None:
    """A typo's variable (``GATEWAY_ADMIN_KEY``) did nothing, silently: it is named, with the
    setting meant, from the environment and from ``.env``; real settings, other programs'
    variables and the test suite's own are not."""
    (tmp_path / ".env").write_text("GATEWAY_DATABSE_URL=none\nGATEWAY_LOG_LEVEL=INFO\n")
    found = unknown_names(
        {
            "GATEWAY_ADMIN_KEY": "k" * 20,
            "GATEWAY_REPORT_RATE": "5",
            "GATEWAY_ADMIN_KEYS": "k" * 20,
            "GATEWAY_TEST_SKIP_POSTGRES": "1",
            "BANDWIDTH_USER": "u",
            "HOME": "/root",
        },
        env_file=tmp_path / ".env",
    )
    assert found == [
        "BANDWIDTH_USER is not a setting the gateway reads (did you mean BANDWIDTH_USERNAME?): "
        "it has no effect",
        "GATEWAY_ADMIN_KEY is not a setting the gateway reads (did you mean "
        "GATEWAY_ADMIN_KEYS?): it has no effect",
        "GATEWAY_DATABSE_URL is not a setting the gateway reads (did you mean "
        "GATEWAY_DATABASE_URL?): it has no effect",
        "GATEWAY_REPORT_RATE is not a setting the gateway reads (did you mean "
        "GATEWAY_REPORT_RATE_PER_MINUTE?): it has no effect",
    ]
    assert unknown_names({name: "x" for _, _, d in declared() for name in [d.env]}) == []


def test_serve_that_cannot_start_names_the_misspelt_setting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_ADMIN_KEY": "k" * 20}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(README.parent)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "GATEWAY_ADMIN_KEYS is not set" in done.stderr
    assert "GATEWAY_ADMIN_KEY is not a setting the gateway reads (did you mean" in done.stderr
