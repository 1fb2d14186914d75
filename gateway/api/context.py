"""What the routes need, built once by the app's lifespan and found on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from gateway.api.auth import AdminKeys, DeviceTokens
from gateway.api.limits import DeviceRateLimiter
from gateway.metrics import Metrics
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.api.health import Readiness
    from gateway.api.memo import ReportMemo
    from gateway.api.unchanged import UnchangedAnswers
    from gateway.bandwidth.client import BandwidthClient
    from gateway.dlr.pipeline import Geocoder, Normalizer, Pipeline
    from gateway.store import StateStore


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    admin_keys: AdminKeys
    device_tokens: DeviceTokens
    upstream: BandwidthClient
    geocoding: Geocoder
    normalize: Normalizer
    pipeline: Pipeline
    #: The state store (imports' progress, the console's pages); ``None`` without one.
    store: StateStore | None
    readiness: Readiness
    report_limiter: DeviceRateLimiter
    #: The same per-device limit for location reads (its own buckets).
    read_limiter: DeviceRateLimiter
    report_memo: ReportMemo
    #: The answers of unchanged reports, written once per device and binding.
    unchanged_answers: UnchangedAnswers


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found
