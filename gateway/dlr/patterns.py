"""Pieces of the regular expressions the API document states as JSON Schema patterns.

Each is written to mean the same in ECMA-262 (JSON Schema's dialect, which other clients and
Rust-based validators use) and in Python's ``re`` (which the gateway and Python validators
use), so that a value the document allows is one the gateway takes, whichever engine checks.
"""

from __future__ import annotations

__all__ = ["CONTROL_CHARACTERS", "END", "SURROGATES", "TEXT_PATTERN", "WHITESPACE"]

#: Characters no text field may hold: the C0 controls but tab, newline and carriage return,
#: DEL, and the noncharacters U+FFFE and U+FFFF. (Lone surrogates are refused too, but no
#: pattern names them: they are not characters, and other engines refuse a pattern that
#: mentions them. A JSON text carries one only as a stray ``\\ud800`` escape.)
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff"
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
