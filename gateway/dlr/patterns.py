"""Pieces of the regular expressions the API document states as JSON Schema patterns.

Each is written to mean the same in ECMA-262 (JSON Schema's dialect, which other clients and
Rust-based validators use) and in Python's ``re`` (which the gateway and Python validators
use), so that a value the document allows is one the gateway takes, whichever engine checks.
"""

from __future__ import annotations

__all__ = [
    "CONTROL_CHARACTERS",
    "END",
    "FORMAT_CHARACTERS",
    "SURROGATES",
    "TEXT_PATTERN",
    "WHITESPACE",
]

#: Characters no text field may hold: the C0 controls but tab, newline and carriage return,
#: DEL, and the noncharacters U+FFFE and U+FFFF. (Lone surrogates are refused too, but no
#: pattern names them: they are not characters, and other engines refuse a pattern that
#: mentions them. A JSON text carries one only as a stray ``\\ud800`` escape.)
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff"
#: The invisible format characters that could change how a screen shows the text around them
#: (one entry shown as another): soft hyphen, zero-width characters, bidirectional controls,
#: line and paragraph separators, word joiners, the BOM and interlinear annotations. A fixed
#: list rather than ``str.isprintable``, whose answer changes with the Unicode version, so that
#: the API document can state it in a pattern.
FORMAT_CHARACTERS = r"\xad\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
#: Lone surrogates, for the gateway's own checks (Python only, never in a document's pattern).
SURROGATES = r"\ud800-\udfff"
#: What ``str.strip()`` strips (Python's whitespace), spelled out: ``\s`` means other things
#: in other engines (ECMA-262's has U+FEFF, not U+001C-U+001F or U+0085).
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: The end of the text: Python's ``$`` also matches before a final newline, which ``(?!\n)``
#: rules out.
END = r"$(?!\n)"
#: A text field: any characters but ``CONTROL_CHARACTERS``.
TEXT_PATTERN = f"^[^{CONTROL_CHARACTERS}]*$"
