"""Free text from files (DICOM descriptions, UIDs, image types) made safe to print and to store.

A SeriesDescription can hold anything: terminal escape codes, newlines, bidirectional overrides.
:func:`escape_control` writes every control and format character as a Python-style escape
(``\\x1b``, ``\\n``, ``\\u202e``), so the text prints literally on one line and says what it holds.
"""

from __future__ import annotations

import unicodedata

_ESCAPED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")  # control, format (bidi), surrogates, line/paragraph breaks


def escape_control(text: str) -> str:
    """``text`` with control and format characters escaped: ``"a\\x1b[31mb"`` prints as ``a\\x1b[31mb``."""
    return "".join(_escaped(ch) if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    if ch in "\n\r\t":
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
