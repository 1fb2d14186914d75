"""The emergency-call location query under load: ``emergency_query_p50_ms``, ``_p99_ms``, ``_rps``.

The carrier asks, as each 911 call arrives, where the caller is, and waits 450 ms. This phase
preloads devices with distinct callback numbers through ``POST /v1/location-reports`` (so
the state store and the gateway's in-process index hold them as in production), then sends
``GET /v1/emergency-calls/location?to=911&from=…&token=…`` open loop at a fixed rate (500/s:
the figure the issue sets), every query for a known number in a random order, and times each
from the moment it left to the moment its answer was read (loopback and the load generator
included). The gateway's own histogram gives the server-side share; its counters say how
many answers came from the state store and how many from process memory.

Then the same queries again, in slices, each slice sent three times in adjacent segments:
without a webhook subscription, with one (every call's event signed and POSTed to a receiver
on loopback), and once more without (the control), the order rotating from round to round.
The ``emergency_query_subscribed_*`` figures pool the segments of each kind, so that their
ratios say what delivering events costs the query, not how the machine's load moved between
two long runs; ``emergency_query_control_*_ratio`` compares two kinds of segment sent alike,
so it says how far apart such pooled figures fall on this machine in this run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench import profile as profiling
from bench.http import encode_request
from bench.loadgen import open_loop, percentile, send_all
from bench.procs import LOOPBACK
from bench.workload import Device

if TYPE_CHECKING:
    from bench.runner import Bench

#: The query token the gateway is started with (``GATEWAY_EMERGENCY_QUERY_TOKEN``).
#: Where ``python -m bench.receiver`` finds the package.
_PROJECT = Path(__file__).resolve().parent.parent
TOKEN = "bench-query-" + secrets.token_urlsafe(16)
PATH = "/v1/emergency-calls/location"


@dataclass(frozen=True)
class QueryPlan:
    devices: int
    addresses: int
    rate: float
    seconds: float
    #: Rounds of segments (without a subscription, with one, control) the queries are sent in.
    rounds: int


def plan_for(mode: str) -> QueryPlan:
    if mode == "smoke":
        return QueryPlan(devices=40, addresses=4, rate=100.0, seconds=1.0, rounds=1)
    if mode == "quick":
        return QueryPlan(devices=2000, addresses=50, rate=500.0, seconds=8.0, rounds=6)
    return QueryPlan(devices=3000, addresses=50, rate=500.0, seconds=30.0, rounds=9)


def number(i: int) -> str:
    """Distinct valid North American numbers (Chicago, exchanges 200 up)."""
    return f"+1312{200 + i // 10_000:03d}{i % 10_000:04d}"


async def phase_emergency_query(bench: Bench) -> None:
    plan = plan_for(bench.plan.mode)
    bench.log(
        f"emergency query: {plan.devices} devices preloaded, then {plan.rate:g} queries/s "
        f"for {plan.seconds:g} s"
    )
    names = bench.names.fresh("eq", plan.devices)
    devices = [Device(aeui, f"BENCH CALLER {i}", number(i)) for i, aeui in enumerate(names)]
    addresses = bench.addresses.fresh(plan.addresses)
    statuses, failures = await send_all(
        LOOPBACK,
        bench.gw_port,
        (bench.request(d, addresses[i % len(addresses)]) for i, d in enumerate(devices)),
        concurrency=min(100, len(devices)),
        timeout_s=bench.plan.phase_timeout_s,
    )
    if statuses.get(200, 0) != len(devices):
        raise RuntimeError(f"emergency query preload failed: {dict(statuses)} {failures[:2]}")
    bench.registered += len(devices)

    count = int(plan.rate * plan.seconds)
    rng = random.Random(911)
    picks = [rng.randrange(len(devices)) for _ in range(count)]
    host = bench.gw_host
    requests = [
        encode_request(
            "GET", f"{PATH}?to=911&from={devices[p].telephone_number}&token={TOKEN}", host
        )
        for p in picks
    ]
    # The main figures: no subscription (each call's event still goes to the outbox).
    spy = None
    if bench.plan.profile_dir is not None:
        spy = profiling.start(bench.gw_pid, bench.plan.profile_dir / "query.txt", None)
    try:
        plain = await _measure(bench, picks, requests, devices)
    finally:
        if spy is not None:
            summary = profiling.finish(spy, stop=True)
            if summary is not None:
                bench.details.setdefault("profile", {})["query"] = summary
    bench.figures.update(plain.pop("figures"))
    plain.pop("latencies")
    bench.details["emergency_query"] = plain
    await _baseline_floor(bench, requests)
    receiver = await Receiver.start(idle=bench.plan.pinned is not None)
    try:
        await _compare_subscribed(bench, receiver, devices, picks, requests)
    finally:
        receiver.close()
        await receiver.process.wait()


#: The kinds of segment of each round: ``control`` is sent exactly as ``without`` is.
KINDS = ("without", "with", "control")


async def _compare_subscribed(
    bench: Bench, receiver: Receiver, devices: list[Device], picks: list[int], requests: list[bytes]
) -> None:
    """The same queries without and with a webhook subscription, interleaved in rounds.

    Each round sends one slice of the queries three times in adjacent segments: without a
    subscription, with one (every call's event also signed and POSTed to ``receiver``, whose
    deliveries are awaited before the next segment), and again without (``control``), the
    order rotating from round to round so that each kind is first, second and third as often.
    The machine's load drifts from second to second; in adjacent segments it is nearly the
    same, so the pooled ratio measures the subscription rather than the drift, and the
    control's ratio (two segments sent alike) says how far apart two such samples fall here.
    """
    rounds = plan_for(bench.plan.mode).rounds
    size = max(1, len(requests) // rounds)
    pooled: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    child_cpu: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    server: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    segments: list[dict[str, Any]] = []
    await _first_delivery(bench, receiver, requests[0])
    for n in range(rounds):
        lo = (n * size) % len(requests)
        chunk, chosen = requests[lo : lo + size], picks[lo : lo + size]
        for kind in KINDS[n % 3 :] + KINDS[: n % 3]:
            hook_id: str | None = None
            if kind == "with":
                hook_id = await _subscribe(bench, receiver)
                received_before = await receiver.received()
            seg = await _measure(bench, chosen, chunk, devices, receiver)
            figures = seg.pop("figures")
            pooled[kind].extend(seg.pop("latencies"))
            cpu[kind] += seg["gateway_cpu_s"]
            child_cpu[kind] += seg["delivery_process_cpu_s"]
            server[kind].update(seg["server"])
            entry = {"round": n, "kind": kind, **figures, **seg}
            if hook_id is not None:
                # Its deliveries, before the next segment (which must not carry them).
                target = received_before + seg["answered_200"]
                waited = await _received(receiver, target)
                entry["deliveries_received"] = await receiver.received() - received_before
                entry["deliveries_drained_after_s"] = round(waited, 1)
                await _unsubscribe(bench, hook_id)
            segments.append(entry)

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return round(value * 1000, 3) if value == value else None

    def queries(counts: Counter[str]) -> float:
        return sum(v for k, v in counts.items() if k.startswith("result:"))

    summary: dict[str, Any] = {}
    for kind in KINDS:
        n_queries = queries(server[kind])
        summary[kind] = {
            "p50_ms": ms(pooled[kind], 0.5),
            "p99_ms": ms(pooled[kind], 0.99),
            "max_ms": ms(pooled[kind], 1.0),
            "answered_200": len(pooled[kind]),
            "gateway_cpu_us_per_query": (
                round(cpu[kind] / n_queries * 1e6, 1) if n_queries else None
            ),
            # Of which its delivery process's (the rest is the serving process's).
            "delivery_process_cpu_us_per_query": (
                round(child_cpu[kind] / n_queries * 1e6, 1) if n_queries else None
            ),
            "server_mean_ms": (
                round(server[kind]["server_seconds_sum"] / n_queries * 1000, 3)
                if n_queries
                else None
            ),
            "server_under_1ms": server[kind]["server_under_0.001s"],
        }
    for name in ("p50_ms", "p99_ms"):
        before = summary["without"][name]
        for kind, prefix in (("with", "subscribed"), ("control", "control")):
            after = summary[kind][name]
            if kind == "with":
                bench.figures[f"emergency_query_subscribed_{name}"] = after
            ratio = f"emergency_query_{prefix}_{name.removesuffix('_ms')}_ratio"
            bench.figures[ratio] = round(after / before, 3) if before and after else None
    bench.figures["emergency_query_subscribed_cpu_us_per_request"] = summary["with"][
        "gateway_cpu_us_per_query"
    ]
    by_round: dict[str, list[float | None]] = {"with": [], "control": []}
    for n in range(rounds):
        by = {s["kind"]: s["emergency_query_p99_ms"] for s in segments if s["round"] == n}
        for kind, ratios in by_round.items():
            a, b = by["without"], by[kind]
            ratios.append(round(b / a, 3) if a and b else None)
    bench.details["emergency_query_subscribed"] = {
        "rounds": rounds,
        "queries_per_segment": size,
        "pooled": summary,
        "p99_ratio_by_round": by_round,
        "segments": segments,
    }


async def _first_delivery(bench: Bench, receiver: Receiver, request: bytes) -> None:
    """One delivery before the rounds: the gateway starts its delivery process at its first
    (``GATEWAY_EVENT_DELIVERY=process``), as a gateway with subscriptions already has."""
    hook_id = await _subscribe(bench, receiver)
    target = await receiver.received() + 1
    await send_all(LOOPBACK, bench.gw_port, iter([request]), concurrency=1, timeout_s=30.0)
    await _received(receiver, target)
    await _unsubscribe(bench, hook_id)


async def _subscribe(bench: Bench, receiver: Receiver) -> str:
    """A subscription of ``receiver`` to ``emergency_call``; its id."""
    answer = await bench.control.post(
        f"http://{bench.gw_host}/v1/webhooks",
        json={"url": receiver.url, "eventTypes": ["emergency_call"]},
        headers={"Authorization": f"Bearer {bench.stack.admin_key}"},
    )
    if answer.status_code != 201:
        raise RuntimeError(f"subscription refused: {answer.status_code} {answer.text}")
    return str(answer.json()["id"])


async def _unsubscribe(bench: Bench, hook_id: str) -> None:
    await bench.control.delete(
        f"http://{bench.gw_host}/v1/webhooks/{hook_id}",
        headers={"Authorization": f"Bearer {bench.stack.admin_key}"},
    )


async def _received(receiver: Receiver, target: int, within: float = 30.0) -> float:
    """Wait until ``receiver`` has had ``target`` POSTs in all (at most ``within`` seconds);
    the seconds waited."""
    waited = 0.0
    while waited < within and await receiver.received() < target:
        await asyncio.sleep(0.1)
        waited += 0.1
    return waited


async def _measure(
    bench: Bench,
    picks: list[int],
    requests: list[bytes],
    devices: list[Device],
    receiver: Receiver | None = None,
) -> dict[str, Any]:
    """Send ``requests`` (queries for ``devices[picks[i]]``) open loop at the plan's rate."""
    plan = plan_for(bench.plan.mode)
    before = await _server_counts(bench)
    sampler = bench.sampler({} if receiver is None else {"webhook_receiver": receiver.process.pid})
    timed = await open_loop(
        LOOPBACK, bench.gw_port, requests, rate=plan.rate, timeout_s=bench.plan.phase_timeout_s
    )
    shares = sampler.shares()
    after = await _server_counts(bench)

    answered: Counter[int] = Counter(t.status for t in timed)
    wrong = 0
    for t in timed:
        if t.status == 200 and json.loads(t.body)["aeui"] != devices[picks[t.index]].aeui:
            wrong += 1
    ok = [t.end - t.start for t in timed if t.status == 200]
    span = (max(t.end for t in timed) - min(t.start for t in timed)) if timed else 0.0
    served = {k: after[k] - before.get(k, 0.0) for k in after}
    queries = sum(v for k, v in served.items() if k.startswith("result:"))

    def ms(q: float) -> float | None:
        value = percentile(ok, q)
        return round(value * 1000, 3) if value == value else None

    return {
        "figures": {
            "emergency_query_p50_ms": ms(0.5),
            "emergency_query_p99_ms": ms(0.99),
            "emergency_query_rps": round(len(ok) / span, 1) if span > 0 else None,
            "emergency_query_cpu_us_per_request": (
                round(shares["gateway"] * sampler.elapsed / queries * 1e6, 1) if queries else None
            ),
        },
        "devices_preloaded": len(devices),
        "offered_rate": plan.rate,
        "offered": len(requests),
        "sent": len(timed),
        "answered_200": len(ok),
        "statuses": {str(s): n for s, n in answered.items()},
        "wrong_device": wrong,
        "max_ms": round(max(ok) * 1000, 3) if ok else None,
        "p999_ms": ms(0.999),
        "over_450ms": sum(1 for d in ok if d > 0.45),
        "server": served,
        "cpu_share": shares,
        "seconds": round(span, 2),
        "gateway_cpu_s": round(shares["gateway"] * sampler.elapsed, 4),
        "delivery_process_cpu_s": round(shares["gateway_delivery_process"] * sampler.elapsed, 4),
        "latencies": ok,
    }


async def _baseline_floor(bench: Bench, requests: list[bytes]) -> None:
    """The bare Starlette app (``bench.baseline``) at the same open-loop rate: its CPU per
    request is the floor of the query's (the server's wake-up, parse and answer per request).

    The same requests, sent to the baseline's ``GET /`` (same query string and size), which
    answers a small JSON body; ``emergency_query_vs_baseline_cpu_ratio`` is the baseline's
    CPU per request over the gateway's, as ``unchanged_vs_baseline_cpu_ratio`` is.
    """
    plan = plan_for(bench.plan.mode)
    port = bench.stack.baseline.port
    to_root = [r.replace(PATH.encode(), b"/", 1) for r in requests]
    sampler = bench.sampler()
    timed = await open_loop(
        LOOPBACK, port, to_root, rate=plan.rate, timeout_s=bench.plan.phase_timeout_s
    )
    shares = sampler.shares()
    ok = sum(1 for t in timed if t.status == 200)
    base_us = shares["baseline"] * sampler.elapsed / ok * 1e6 if ok else None
    gw_us = bench.figures.get("emergency_query_cpu_us_per_request")
    bench.figures["emergency_query_baseline_cpu_us_per_request"] = (
        round(base_us, 1) if base_us else None
    )
    bench.figures["emergency_query_vs_baseline_cpu_ratio"] = (
        round(base_us / gw_us, 3) if base_us and gw_us else None
    )
    bench.details["emergency_query_baseline"] = {
        "sent": len(timed),
        "answered_200": ok,
        "cpu_share": shares,
    }


class Receiver:
    """The webhook receiver of ``bench.receiver``, in a process of its own on loopback."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.url = f"http://{LOOPBACK}:{port}/hook"
        self._count = f"http://{LOOPBACK}:{port}/count"

    @classmethod
    async def start(cls, *, idle: bool = False) -> Receiver:
        """Started, and listening; with ``idle``, in the idle scheduling class (``--pin`` puts
        it beside the load generator, whose timing it must not take CPU from)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.receiver",
            cwd=_PROJECT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if idle:
            os.sched_setscheduler(process.pid, os.SCHED_IDLE, os.sched_param(0))
        return cls(process, int(line))

    async def received(self) -> int:
        """How many deliveries it has had."""
        async with httpx.AsyncClient(trust_env=False) as client:
            return int((await client.get(self._count)).text)

    def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


async def _server_counts(bench: Bench) -> dict[str, float]:
    """The gateway's own counts: answers by result, and server-side time under 1 ms / 2.5 ms."""
    out: dict[str, float] = {}
    for result in ("store", "cache", "not_found", "unauthorized", "error"):
        out[f"result:{result}"] = await bench.metric("dlr_emergency_queries_total", result=result)
    for le in ("0.001", "0.0025"):
        out[f"server_under_{le}s"] = await bench.metric(
            "dlr_emergency_query_duration_seconds_bucket", le=le
        )
    out["server_seconds_sum"] = await bench.metric("dlr_emergency_query_duration_seconds_sum")
    return out
