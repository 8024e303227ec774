"""Spreadsheet-safe text: identifiers refused, free-text cells neutralised on write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paraspinal.safe_text import identifier_problem, safe_cell, write_csv


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1+2", "'+1+2"),
        ("-A1", "'-A1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-inf", "'-inf"),
        ("a\nb\rc\td", "a b c d"),
        ("\t=1", " =1"),  # a leading tab becomes a space: the cell no longer starts with a formula character
        ("-1.5", "-1.5"),  # plain numbers stay numbers
        ("+2e-3", "+2e-3"),
        ("P1", "P1"),
        ("a=b", "a=b"),
        (3, 3),
        (None, None),
    ],
)
def test_safe_cell(value: object, shown: object) -> None:
    assert safe_cell(value) == shown


def test_write_csv_neutralises_text_and_keeps_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "case_id": ["P1", "P2", "P3"],
            "error": ["=1+1", "", "line\nbreak"],
            "value": [-1.5, np.nan, 2.0],
            "slice": pd.array([1, None, -3], dtype="Int64"),
            "flag": [True, False, True],
        }
    )
    path = write_csv(frame, tmp_path / "t.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["case_id", "error", "value", "slice", "flag"],
        ["P1", "'=1+1", "-1.5", "1", "True"],
        ["P2", "", "", "", "False"],
        ["P3", "line break", "2.0", "-3", "True"],
    ]
    assert frame.loc[0, "error"] == "=1+1"  # the caller's frame is untouched


def test_identifier_problem() -> None:
    assert identifier_problem("L4/L5") is None
    assert identifier_problem("=x") == "starts with '=': spreadsheets would run it as a formula"
    assert identifier_problem("a\x7fb") == "holds a control character (U+007F): it would break table rows"
