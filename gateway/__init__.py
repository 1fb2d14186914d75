"""dlr-gateway: a Dynamic Location Routing gateway for 911."""

from __future__ import annotations

__version__ = "0.1.0"
