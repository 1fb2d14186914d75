"""Reports through a carrier in partial trouble: ``faults_success_share`` and its latency.

The carrier (the simulator) answers every call in 200 ms, and 30 % of calls not at all: a
"timeout" fault holds the request for ``timeoutHold`` (30 s, far past the gateway's 5 s
attempt timeout), then applies a write late. Devices registered beforehand move between
known places (one ``updateEndpoint`` each when all goes well), ``connections`` reports in
flight, closed loop, for ``seconds``. The carrier answers 70 % of attempts: retries should
find them, so at least two thirds of the reports must succeed, and none may get a 500.

The same load with the same 200 ms latency and no faults runs first, in the same
invocation, as the baseline the figures are compared with. The simulator's own faults are
turned off again afterwards (a held write still lands when its hold ends).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.loadgen import LoadResult, closed_loop, report_request, send_all
from bench.procs import LOOPBACK

if TYPE_CHECKING:
    from bench.runner import Bench

#: The fault mix of issue 16: 30 % of calls time out, the rest answer in 200 ms.
LATENCY_MS = 200.0
FAULT_RATE = 0.3
#: Success share the phase must reach (the carrier answers 70 % of attempts).
TARGET_SUCCESS = 2 / 3


@dataclass(frozen=True)
class FaultPlan:
    devices: int
    addresses: int
    connections: int
    baseline_seconds: float
    seconds: float


def plan_for(mode: str) -> FaultPlan:
    if mode == "smoke":
        return FaultPlan(devices=40, addresses=4, connections=8, baseline_seconds=1.0, seconds=1.0)
    # Enough devices that one device's next report comes after its last one was answered
    # (the report deadline is 8 s): each report is then a move of its own, never queued
    # behind the same device's previous one.
    return FaultPlan(
        devices=1000, addresses=20, connections=100, baseline_seconds=10.0, seconds=20.0
    )


async def phase_faults(bench: Bench) -> None:
    plan = plan_for(bench.plan.mode)
    bench.log(
        f"faults: {plan.devices} devices registered, then moves with {plan.connections} in "
        f"flight: {plan.baseline_seconds:g} s at {LATENCY_MS:g} ms latency, then "
        f"{plan.seconds:g} s with {FAULT_RATE:.0%} of carrier calls timing out"
    )
    devices = bench.devices("faults", plan.devices)
    addresses = bench.addresses.fresh(plan.addresses)
    current = [i % plan.addresses for i in range(plan.devices)]
    statuses, failures = await send_all(
        LOOPBACK,
        bench.gw_port,
        (bench.request(d, addresses[current[i]]) for i, d in enumerate(devices)),
        concurrency=min(100, plan.devices),
        timeout_s=bench.plan.phase_timeout_s,
    )
    if statuses.get(200, 0) != plan.devices:
        raise RuntimeError(f"faults phase registration failed: {dict(statuses)} {failures[:2]}")
    bench.registered += plan.devices

    runs: dict[str, Any] = {}
    try:
        await _configure(bench, latencyMs=LATENCY_MS, faultRate=0.0)
        stream = bench.stream(devices, addresses, current, moving=True)
        runs["baseline"], sent = await _run(bench, stream, plan, plan.baseline_seconds)
        current = stream.final_current(sent)
        await _configure(bench, faultRate=FAULT_RATE, faultKinds=["timeout"])
        stream = bench.stream(devices, addresses, current, moving=True)
        runs["faults"], _ = await _run(bench, stream, plan, plan.seconds)
    finally:
        await _configure(bench, latencyMs=bench.plan.latency_ms, faultRate=0.0)

    faults, baseline = runs["faults"], runs["baseline"]
    bench.figures["faults_success_share"] = faults["success_share"]
    bench.figures["faults_500s"] = faults["statuses"].get("500", 0)
    bench.figures["faults_p50_ms"] = faults["latency_ms"]["p50"]
    bench.figures["faults_p99_ms"] = faults["latency_ms"]["p99"]
    bench.figures["faults_vs_baseline_rps_ratio"] = (
        round(faults["rps"] / baseline["rps"], 3) if baseline["rps"] else None
    )
    bench.details["faults"] = {
        "latency_ms": LATENCY_MS,
        "fault_rate": FAULT_RATE,
        "fault_kinds": ["timeout"],
        "devices": plan.devices,
        "addresses": plan.addresses,
        "connections": plan.connections,
        "target_success_share": round(TARGET_SUCCESS, 3),
        **runs,
    }


async def _configure(bench: Bench, **changes: Any) -> None:
    url = f"{bench.stack.simulator.base_url}/_sim/config"
    answer = await bench.control.post(url, json=changes)
    answer.raise_for_status()


async def _run(
    bench: Bench, stream: Any, plan: FaultPlan, seconds: float
) -> tuple[dict[str, Any], int]:
    """One closed-loop run of moves: what the devices got, what the carrier and the
    gateway's counters saw. Also answers how many requests were sent."""
    host = f"{LOOPBACK}:{bench.gw_port}"
    sent = 0

    def make(i: int) -> bytes:
        nonlocal sent
        sent = max(sent, i + 1)
        return report_request(host, stream.body(i), bench.stack.admin_key)

    await bench.sim_calls()
    before = await _counters(bench)
    sampler = bench.sampler()
    result: LoadResult = await closed_loop(
        LOOPBACK, bench.gw_port, make, connections=plan.connections, duration_s=seconds
    )
    shares = sampler.shares()
    after = await _counters(bench)
    calls = await bench.sim_calls()
    answered = sum(result.statuses.values())
    ok = result.statuses.get("200", 0)
    return {
        "seconds": round(result.duration_s, 2),
        "reports": answered,
        "socket_errors": result.errors,
        "rps": round(result.rps, 1),
        "success_share": round(ok / answered, 3) if answered else None,
        "statuses": result.statuses,
        "latency_ms": {k: round(v, 1) for k, v in result.latency_ms.items()},
        "carrier_calls": dict(
            Counter(f"{c['operation']} {c['fault'] or c['status']}" for c in calls)
        ),
        "gateway": {k: after[k] - before.get(k, 0.0) for k in after if k != "circuit"},
        "circuit_state_at_end": after["circuit"],
        "cpu_share": shares,
    }, sent


async def _counters(bench: Bench) -> dict[str, float]:
    out: dict[str, float] = {}
    for result in ("applied", "unchanged", "upstream_unavailable", "superseded", "error"):
        out[f"reports:{result}"] = await bench.metric("dlr_reports_total", result=result)
    for reason in ("timeout", "5xx", "429", "connection"):
        out[f"retries:{reason}"] = await bench.metric("dlr_upstream_retries_total", reason=reason)
    out["attempt_timeouts"] = await bench.metric(
        "dlr_upstream_request_duration_seconds_count", status="timeout"
    )
    out["slot_waits"] = await bench.metric("dlr_upstream_slot_wait_seconds_count")
    out["circuit"] = await bench.metric("dlr_upstream_circuit_state")
    return out
