"""``python -m bench --smoke --api v2``: the same figures against Bandwidth's v2 API (the v2
simulator), and each kind of report at v2's floor of writes and status reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_bench_smoke import FIGURES, smoke


# Slow (~50 s): out of CI, which keeps the seed API's smoke run; `pytest -m slow` runs it.
@pytest.mark.slow
def test_smoke_run_on_v2_writes_the_same_figures(tmp_path: Path) -> None:
    results, _ = smoke(tmp_path, "--api", "v2", "--loadgen", "asyncio", timeout=240)
    assert results.keys() >= FIGURES
    assert results["plan"]["api"] == "v2"
    assert results["faults_500s"] == 0
    detail = results["details"]["upstream_calls"]
    # Writes: none unchanged, the PATCH for a known place, the address and the PATCH for a
    # new one, the address and the add for a new device (the same tolerance as seed's).
    floor = {"unchanged": 0, "move_known": 1, "move_new": 2, "new_device": 2}
    for kind, least in floor.items():
        assert least <= detail[kind]["writes_per_report"] <= least + 0.5, (kind, detail[kind])
        # Only v2 operations: nothing of the seed API's.
        assert not any(
            op.startswith(("createLocation", "createEndpoint")) for op in detail[kind]["calls"]
        )
    # Each endpoint write is followed by at least one order status read, and few more.
    reads = detail["move_known"]["calls"].get("getOrderDetails 200", 0)
    reports = detail["move_known"]["reports"]
    assert reports <= reads <= 2 * reports, detail["move_known"]
    assert results["upstream_calls_per_report"]["unchanged"] == 0
