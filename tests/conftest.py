from __future__ import annotations

import sys
from pathlib import Path

# Tests import helpers from scripts/ (the OpenAPI builder) without installing them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
