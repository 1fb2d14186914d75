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


class MapView:
    def __init__(self, tile_url: str | None) -> None:
        self.tile_url = tile_url

    def draw(self, found: Sequence[Device]) -> Drawing:
        located = [d for d in found if d.latitude is not None and d.longitude is not None]
        if not located:
            return Drawing(WIDTH, HEIGHT, [], [], 0)
        zoom = self._zoom(located)
        world = [_world(d.latitude or 0.0, d.longitude or 0.0, zoom) for d in located]
        xs = [x for x, _ in world]
        ys = [y for _, y in world]
        left = (min(xs) + max(xs)) / 2 - WIDTH / 2
        top = (min(ys) + max(ys)) / 2 - HEIGHT / 2
        points = [Point(x - left, y - top, d) for (x, y), d in zip(world, located, strict=True)]
        return Drawing(WIDTH, HEIGHT, points, self._tiles(zoom, left, top), zoom)

    @staticmethod
    def _zoom(located: Sequence[Device]) -> int:
        """The closest zoom at which every point fits inside the padded frame."""
        for zoom in range(_MAX_ZOOM, -1, -1):
            world = [_world(d.latitude or 0.0, d.longitude or 0.0, zoom) for d in located]
            span_x = max(x for x, _ in world) - min(x for x, _ in world)
            span_y = max(y for _, y in world) - min(y for _, y in world)
            if span_x <= WIDTH - 2 * _PAD and span_y <= HEIGHT - 2 * _PAD:
                return zoom
        return 0

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
