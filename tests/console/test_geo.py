"""The map's projection: every device inside the frame, tiles covering it, no tile twice."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.console.geo import HEIGHT, WIDTH, MapView
from gateway.console.queries import Device


def device(name: str, latitude: float, longitude: float) -> Device:
    now = datetime.now(UTC)
    return Device(
        name,
        name,
        "+12025550100",
        "loc",
        None,
        latitude,
        longitude,
        None,
        "report",
        True,
        now,
        now,
        "current",
    )


def test_points_fit_the_frame_at_the_closest_zoom() -> None:
    places = [device("nyc", 40.7484, -73.9857), device("sea", 47.6205, -122.3493)]
    drawing = MapView(None).draw(places)
    assert drawing.tiles == [] and len(drawing.points) == 2
    for p in drawing.points:
        assert 0 < p.x < WIDTH and 0 < p.y < HEIGHT
    east, west = sorted(drawing.points, key=lambda p: p.x, reverse=True)
    assert east.device.aeui == "nyc" and west.device.aeui == "sea"
    assert west.y < east.y  # Seattle lies north of New York
    # One place alone: the closest zoom, in the middle.
    (alone,) = MapView(None).draw(places[:1]).points
    assert (round(alone.x), round(alone.y)) == (WIDTH // 2, HEIGHT // 2)
    assert MapView(None).draw(places[:1]).zoom == 17


def test_tiles_cover_the_frame_once_each() -> None:
    view = MapView("https://t.example.test/{z}/{x}/{y}.png?k={x}")
    drawing = view.draw([device("a", 41.0, -87.6), device("b", 29.7, -95.4)])
    assert len({t.url for t in drawing.tiles}) == len(drawing.tiles)
    assert min(t.x for t in drawing.tiles) <= 0 and min(t.y for t in drawing.tiles) <= 0
    assert max(t.x for t in drawing.tiles) + 256 >= WIDTH
    assert max(t.y for t in drawing.tiles) + 256 >= HEIGHT
    assert all(t.url.startswith(f"https://t.example.test/{drawing.zoom}/") for t in drawing.tiles)
