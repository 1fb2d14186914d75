from __future__ import annotations

from gateway.entry import run

raise SystemExit(run())
