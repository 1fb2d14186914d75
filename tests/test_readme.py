"""The README works verbatim: its commands, run as a reader runs them, against a real sandbox.

``dlr-gateway serve --sandbox`` runs as a process; its banner's ``export`` lines are pasted
into a shell as they are printed; then every ``sh`` block of the README that talks to the
gateway (``$GW``) is run step by step (steps are separated by blank lines), in the README's
order, with bash and curl, and each answer is checked against what the README says of it.
A step added to or removed from the README without its check here fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as ET
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

README = Path(__file__).resolve().parent.parent / "README.md"
PIDF = "{urn:ietf:params:xml:ns:pidf}"
HELD = "{urn:ietf:params:xml:ns:geopriv:held}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_environment() -> dict[str, str]:
    """The reader's environment: none of the gateway's settings configured."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BANDWIDTH_", "GATEWAY_"))}


@contextlib.contextmanager
def serving(directory: Path, **environ: str) -> Iterator[str]:
    """``dlr-gateway serve --sandbox`` running in ``directory``, with ``environ`` added to the
    reader's environment: what it printed up to its start."""
    log = directory / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--sandbox", "--port", str(free_port())],
            cwd=directory,
            env=clean_environment() | environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "Application startup complete" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def banner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """What ``dlr-gateway serve --sandbox`` printed, the process running."""
    with serving(tmp_path_factory.mktemp("sandbox")) as printed:
        yield printed


def test_a_sandbox_with_only_a_public_key_starts_and_says_no_token_can_be_minted(
    tmp_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with serving(tmp_path, GATEWAY_DEVICE_JWT_PUBLIC_KEY=pem.decode()) as printed:
        assert "Traceback" not in printed, printed
        assert "device token:  none can be minted here" in printed, printed
        assert "GATEWAY_DEVICE_JWT_PRIVATE_KEY" in printed
        assert "export TOKEN=" not in printed
        assert "export KEY=" in printed


def shell(lines: list[str]) -> subprocess.CompletedProcess[str]:
    """``lines`` run by bash as a reader pastes them (``-euo pipefail``), in a clean
    environment."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def exports(banner: str) -> list[str]:
    return [line.strip() for line in banner.splitlines() if line.strip().startswith("export ")]


def readme_steps() -> list[str]:
    """Every step of every ``sh`` block that talks to the gateway, in the README's order."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    steps: list[str] = []
    for block in blocks:
        if "$GW" in block:
            steps += [step for step in re.split(r"\n\s*\n", block) if step.strip()]
    return steps


def documents(output: str) -> list[Any]:
    """The JSON documents a step printed, one after the other (curl adds no newline)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(output, at)
        found.append(value)
    return found


# -- what the README says each step answers -----------------------------------------------------


def created_location(out: str) -> None:
    [location] = documents(out)
    assert location["locationId"] == "HQ1"
    assert location["status"] == "GEOCODED"
    assert isinstance(location["latitude"], float) and isinstance(location["longitude"], float)


def created_endpoint(out: str) -> None:
    [endpoint] = documents(out)
    assert endpoint["alternateEndUserId"] == "alice-laptop"
    assert endpoint["locationId"] == "HQ1"
    assert endpoint["endpointId"]


def listed_both(out: str) -> None:
    locations, endpoints = documents(out)
    assert locations["totalCount"] == 1 and len(locations["locations"]) == 1
    assert endpoints["totalCount"] == 1 and len(endpoints["endpoints"]) == 1


def reported(out: str) -> None:
    [answer] = documents(out)
    assert answer["changes"] == {"location": "created", "endpoint": "created"}, answer
    assert answer["address"]["addressLine2"] == "STE 3000"
    assert answer["endpointId"] and answer["locationId"]
    assert answer["telephoneNumber"] == "+12025550199"


def reported_again(out: str) -> None:
    [answer] = documents(out)
    assert answer["changes"] == {"location": "unchanged", "endpoint": "unchanged"}, answer


def device_location_and_validation(out: str) -> None:
    binding, verdict = documents(out)
    assert binding["alternateEndUserId"] == "sandbox-device-1"
    assert binding["address"]["streetName"] == "5TH"
    assert binding["status"] == "GEOCODED"
    assert binding["latitude"] is not None and binding["longitude"] is not None
    assert verdict["valid"] is True
    assert verdict["address"]["city"] == "CUPERTINO"
    assert verdict["precision"] == "postal"


def gps_report(out: str) -> None:
    [answer] = documents(out)
    address = answer["address"]
    assert (address["houseNumber"], address["streetName"], address["city"]) == (
        "400",
        "BROAD",
        "SEATTLE",
    ), answer
    assert (answer["latitude"], answer["longitude"]) == (47.6205, -122.3493)


def simulator_state_and_calls(out: str) -> None:
    state, calls = documents(out)
    assert len(state["endpoints"]) == 2
    assert len(state["locations"]) == 3  # HQ1, 350 5th Ave, 400 Broad St
    assert calls, "the call log"


def emergency_query(out: str) -> None:
    [answer] = documents(out)
    assert answer == {
        "aeui": "alice-laptop",
        "location_id": "HQ1",
        "callback": "+12025550101",
        "name": "ALICE SMITH",
    }


def pidf_report(out: str) -> None:
    [answer] = documents(out)
    assert answer["callerName"] == "BOB JONES"
    assert answer["address"]["addressLine2"] == "FL 30"
    assert answer["changes"]["location"] == "created", answer


def pidf_out(out: str) -> None:
    presence = ET.fromstring(out)
    assert presence.tag == f"{PIDF}presence"
    assert presence.get("entity", "").startswith("pres:sandbox-device-1@")
    assert "tel:+12025550199" in out


def held_answer(out: str) -> None:
    response = ET.fromstring(out)
    assert response.tag == f"{HELD}locationResponse", out
    assert response.find(f"{PIDF}presence") is not None


def created_subnet(out: str) -> None:
    [entry] = documents(out)
    assert entry["subnet"] == "10.20.0.0/16", entry
    assert entry["address"]["addressLine2"] == "FL 3 RM 301"


def held_by_ip(out: str) -> None:
    response = ET.fromstring(out)
    assert response.tag == f"{HELD}locationResponse", out
    method = response.find(".//{urn:ietf:params:xml:ns:pidf:geopriv10}method")
    assert method is not None and method.text == "Wiremap", out
    assert ">FL 3 RM 301<" in out or (">3<" in out and ">301<" in out), out


#: (a fragment of the step's command, the check of its answer), in the README's order.
EXPECTED: list[tuple[str, Callable[[str], None]]] = [
    ("-X POST $GW/v1/locations", created_location),
    ("-X POST $GW/v1/endpoints", created_endpoint),
    ("curl -s $GW/v1/endpoints", listed_both),
    ('"address": "350 Fifth Avenue', reported),
    ("The same report again", reported_again),
    ("/v1/addresses/validate", device_location_and_validation),
    ('"geo":', gps_report),
    ("_sim/calls", simulator_state_and_calls),
    ("/v1/emergency-calls/location", emergency_query),
    ("application/pidf+xml' --data-binary", pidf_report),
    ("Accept: application/pidf+xml", pidf_out),
    ("/v1/held", held_answer),
    ("-X POST $GW/v1/network/subnets", created_subnet),
    ('<ip v="4">10.20.7.42</ip>', held_by_ip),
]


def test_the_readme_walkthrough_works_verbatim(banner: str) -> None:
    assert shutil.which("bash") and shutil.which("curl"), "the README's commands use bash and curl"
    pasted = exports(banner)
    assert [line.split("=")[0] for line in pasted] == [
        "export GW",
        "export KEY",
        "export TOKEN",
        "export QUERY_TOKEN",
        "export GATEWAY_DEVICE_JWT_SECRET",
    ], banner
    steps = readme_steps()
    assert len(steps) == len(EXPECTED), [s.splitlines()[0] for s in steps]
    for step, (fragment, check) in zip(steps, EXPECTED, strict=True):
        assert fragment in step, (fragment, step)
        done = shell([*pasted, step])
        assert done.returncode == 0, (step, done.stderr)
        try:
            check(done.stdout)
        except Exception as exc:
            raise AssertionError(f"{step}\n-> {done.stdout}") from exc


def test_a_token_minted_with_the_printed_secret_is_a_device_token(banner: str) -> None:
    """The banner says `dlr-gateway token --aeui ID` mints more tokens after the exports."""
    pasted = exports(banner)
    done = shell(
        [
            *pasted,
            f'T=$("{sys.executable}" -m gateway token --aeui sandbox-device-2)',
            'curl -s -o /dev/null -w "%{http_code}" '
            '$GW/v1/devices/sandbox-device-2/location -H "Authorization: Bearer $T"',
        ]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "404"  # accepted, and no location yet (a wrong token is 401)


def test_the_readmes_devices_file_imports_through_the_sandbox(banner: str, tmp_path: Path) -> None:
    """The bulk import's example file, as printed under "Columns", passes the whole-file
    check of `dlr-gateway import devices FILE --dry-run --url` against the sandbox."""
    [example] = [
        block
        for block in re.findall(r"^```text\n(.*?)^```", README.read_text(), flags=re.M | re.S)
        if block.startswith("AEUI,CallerName,CallbackNumber,Address\n")
    ]
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(example)
    pasted = exports(banner)
    done = shell(
        [
            *pasted,
            'export DLR_GATEWAY_ADMIN_KEY="$KEY"',
            f'"{sys.executable}" -m gateway import devices {fleet} --dry-run --url "$GW"',
        ]
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    # As the README's sample shows it: the count, then the plan.
    assert done.stdout.startswith(f"{fleet}: 2 rows, 2 valid\nplan: "), (done.stdout, done.stderr)


def test_a_sandbox_on_a_port_in_use_says_so_before_printing_any_key(tmp_path: Path) -> None:
    """A second `serve --sandbox` (the first still running on 8080) printed a fresh admin key,
    token and `export` lines to paste, then failed to bind: the pasted keys were refused by
    the first sandbox. It now stops first, naming the port."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--sandbox", "--port", str(port)],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "export KEY" not in done.stdout and "admin key" not in done.stdout, done.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert "try --port" in done.stderr
