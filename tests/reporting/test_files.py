"""All-or-nothing outputs: files appear under their names only when the whole block succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraspinal.reporting import AtomicOutputs


def test_files_appear_together_on_success(tmp_path: Path) -> None:
    with AtomicOutputs(tmp_path / "case") as out:
        a = out.path("a.csv")
        b = out.path("qc/b.png")
        a.write_text("x,y\n1,2\n", encoding="utf-8")
        b.write_bytes(b"png")
        assert not (tmp_path / "case" / "a.csv").exists()  # still under its temporary name
        assert a.parent == tmp_path / "case" and a.name != "a.csv"
    assert (tmp_path / "case" / "a.csv").read_text(encoding="utf-8") == "x,y\n1,2\n"
    assert (tmp_path / "case" / "qc" / "b.png").read_bytes() == b"png"
    assert out.final_paths == [tmp_path / "case" / "a.csv", tmp_path / "case" / "qc" / "b.png"]
    assert sorted(p.name for p in (tmp_path / "case").rglob("*")) == ["a.csv", "b.png", "qc"]


def test_an_error_removes_every_file_and_keeps_an_earlier_result(tmp_path: Path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "a.csv").write_text("old", encoding="utf-8")
    with pytest.raises(ValueError, match="boom"), AtomicOutputs(folder) as out:
        out.path("a.csv").write_text("new", encoding="utf-8")
        out.path("b.csv").write_text("new", encoding="utf-8")
        raise ValueError("boom")
    assert (folder / "a.csv").read_text(encoding="utf-8") == "old"
    assert [p.name for p in folder.iterdir()] == ["a.csv"]


def test_a_folder_it_created_is_removed_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError), AtomicOutputs(tmp_path / "new") as out:
        out.path("a.csv").write_text("x", encoding="utf-8")
        raise KeyError("x")
    assert not (tmp_path / "new").exists()
