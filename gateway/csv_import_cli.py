"""What the CSV import commands (``dlr-gateway import`` and ``network import``) share: the
file is checked whole, and nothing is written when a row is bad unless ``--skip-invalid``."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TextIO


def sentence(text: str) -> str:
    """A help line as a command's description: a capital first and a full stop, the rest as
    written (``str.capitalize`` would write ``CSV`` as ``csv``)."""
    return text[:1].upper() + text[1:] + "."


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--dry-run`` and ``--skip-invalid``."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the whole file and count what would change; write nothing; exit 1 when "
        "a row is bad, as the import would, unless --skip-invalid (default: off)",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="apply the good rows even when some are bad, and report the bad ones "
        "(default: off: nothing is written when a row is bad)",
    )


def say_some(lines: Iterable[str], most: int, out: TextIO) -> None:
    """The first ``most`` of ``lines``, indented, then how many more there are."""
    shown = list(lines)
    for line in shown[:most]:
        print(f"  {line}", file=out)
    if len(shown) > most:
        print(f"  ... and {len(shown) - most} more", file=out)
