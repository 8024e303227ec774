"""Text that ends up in CSV cells: identifiers are refused, free text is neutralised on write.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (also tab or carriage return)
as a formula, and control characters or newlines break rows. So:

* identifiers (case ids, level names, image names, label scheme keys and names) holding such text are
  refused where they are read (:func:`identifier_problem` says why, in words for a one-line error);
* free text (error messages, paths) is written through :func:`write_csv`, which makes every string
  cell safe (:func:`safe_cell`): a leading ``'`` before ``= + - @`` (so the cell shows as text) and
  each control character replaced by a space. Plain numbers (``-1.5``) are left as they are.

This module is the one place for these rules; every CSV the tool writes goes through :func:`write_csv`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMULA_STARTS", "identifier_problem", "safe_cell", "safe_table", "write_csv"]

FORMULA_STARTS = ("=", "+", "-", "@")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# control characters (C0, DEL, C1) and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE = "^[=+\\-@]|[\x00-\x1f\x7f-\x9f\u2028\u2029]"


def identifier_problem(text: str) -> str | None:
    """Why ``text`` cannot be an identifier written to tables (``"starts with '='..."``), or None when it can."""
    if text[:1] in FORMULA_STARTS:
        return f"starts with '{text[0]}': spreadsheets would run it as a formula"
    bad = _CONTROL.search(text)
    if bad is not None:
        return f"holds a control character (U+{ord(bad.group()):04X}): it would break table rows"
    return None


def safe_cell(value: object) -> object:
    """``value`` as a spreadsheet shows it as text: strings get control characters replaced by spaces and a
    leading ``'`` when they start with ``= + - @`` and are not a plain number; anything else is unchanged."""
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub(" ", value)
    if text[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def safe_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`safe_cell` applied to every text cell and column name."""
    import pandas as pd  # here, so that the identifier rules load without pandas (anatomy uses them)

    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        try:
            unsafe = values.str.contains(_UNSAFE, regex=True, na=False)
        except AttributeError:  # no text in the column
            continue
        if unsafe.any():
            out[column] = values.astype(object)
            out.loc[unsafe, column] = values[unsafe].map(safe_cell)
    out.columns = [safe_cell(c) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (no index) as CSV with every text cell made safe (:func:`safe_table`)."""
    safe_table(frame).to_csv(path, index=False)
    return Path(path)
