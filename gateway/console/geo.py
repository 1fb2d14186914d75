"""The console's map, drawn on the server: Web Mercator points in an SVG, over tiles when a
tile URL is configured (never a request to another host otherwise)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.console.queries import Device

WIDTH = 960
HEIGHT = 540
_TILE = 256
_MAX_ZOOM = 17
_MAX_LATITUDE = 85.0511
_PAD = 40


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    device: Device


@dataclass(frozen=True, slots=True)
class Tile:
    x: float
    y: float
    url: str


@dataclass(frozen=True, slots=True)
class Drawing:
    width: int
    height: int
    points: list[Point]
    tiles: list[Tile]
    zoom: int


def _world(latitude: float, longitude: float, zoom: int) -> tuple[float, float]:
    """The point's pixel in the whole world's map at ``zoom``."""
    size = _TILE * 2**zoom
    lat = math.radians(max(-_MAX_LATITUDE, min(_MAX_LATITUDE, latitude)))
    x = (longitude + 180.0) / 360.0 * size
    y = (1.0 - math.log(math.tan(lat) + 1.0 / math.cos(lat)) / math.pi) / 2.0 * size
    return x, y


def _zoom(span_x: float, span_y: float) -> int:
    """The closest zoom at which spans (in zoom-0 pixels) fit inside the padded frame."""
    fits = min(
        (WIDTH - 2 * _PAD) / span_x if span_x > 0 else math.inf,
        (HEIGHT - 2 * _PAD) / span_y if span_y > 0 else math.inf,
    )
    if fits == math.inf:
        return _MAX_ZOOM
    return max(0, min(_MAX_ZOOM, math.floor(math.log2(fits))))


class MapView:
    def __init__(self, tile_url: str | None) -> None:
        self.tile_url = tile_url

    def draw(self, found: Sequence[Device]) -> Drawing:
        located = [d for d in found if d.latitude is not None and d.longitude is not None]
        if not located:
            return Drawing(WIDTH, HEIGHT, [], [], 0)
        # Projected once at zoom 0; each zoom level doubles every distance.
        base = [_world(d.latitude or 0.0, d.longitude or 0.0, 0) for d in located]
        xs = [x for x, _ in base]
        ys = [y for _, y in base]
        zoom = _zoom(max(xs) - min(xs), max(ys) - min(ys))
        scale = 2**zoom
        left = (min(xs) + max(xs)) / 2 * scale - WIDTH / 2
        top = (min(ys) + max(ys)) / 2 * scale - HEIGHT / 2
        points = [
            Point(x * scale - left, y * scale - top, d)
            for (x, y), d in zip(base, located, strict=True)
        ]
        return Drawing(WIDTH, HEIGHT, points, self._tiles(zoom, left, top), zoom)

    def _tiles(self, zoom: int, left: float, top: float) -> list[Tile]:
        if not self.tile_url:
            return []
        count = 2**zoom
        tiles = []
        for ty in range(math.floor(top / _TILE), math.floor((top + HEIGHT) / _TILE) + 1):
            if not 0 <= ty < count:
                continue
            for tx in range(math.floor(left / _TILE), math.floor((left + WIDTH) / _TILE) + 1):
                url = (
                    self.tile_url.replace("{z}", str(zoom))
                    .replace("{x}", str(tx % count))
                    .replace("{y}", str(ty))
                )
                tiles.append(Tile(tx * _TILE - left, ty * _TILE - top, url))
        return tiles
