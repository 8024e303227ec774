"""The case page read back: title, checks and their statuses, level and structure tables holding the
phantom's known values, QC images that exist, provenance and output links."""

from __future__ import annotations

import base64
import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from paraspinal.io.label_map import Provenance
from paraspinal.reporting import AtomicOutputs, write_measurements
from paraspinal.reporting.html import describe_model, write_case_page
from paraspinal.reporting.qc_case import write_case_qc
from paraspinal.reporting.qc_checks import case_checks, segmentation_check
from tests.reporting.support import CSA_MM2, FF_PERCENT, VOLUME_ML, phantom_case
from tests.reporting.test_html import assert_level_and_structure_tables_match, parse_page

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _PageParser(HTMLParser):
    """Checks (``li[data-check]``: status badge and text), figures (kind, src), the info list, h1 and title."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: dict[str, dict[str, str]] = {}
        self.figures: list[tuple[str, str]] = []
        self.info: dict[str, str] = {}
        self.text: dict[str, str] = {"title": "", "h1": ""}
        self._check: str | None = None
        self._kind: str | None = None
        self._in: str | None = None
        self._dt = ""

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "li" and "data-check" in a:
            self._check = a["data-check"]
            self.checks[self._check] = {"status": "", "text": ""}
        elif tag == "span" and self._check and "badge" in a.get("class", ""):
            self.checks[self._check]["status"] = a["class"].split("status-")[1]
        elif tag == "figure":
            self._kind = a["data-kind"]
        elif tag == "img" and self._kind is not None:
            self.figures.append((self._kind, a["src"]))
        elif tag in ("title", "h1", "dt", "dd"):
            self._in = tag

    def handle_data(self, data):
        if self._check:
            self.checks[self._check]["text"] += data
        if self._in in ("title", "h1"):
            self.text[self._in] += data
        elif self._in == "dt":
            self._dt += data
        elif self._in == "dd":
            self.info[self._dt] = self.info.get(self._dt, "") + data

    def handle_endtag(self, tag):
        if tag == "li":
            self._check = None
        elif tag == "figure":
            self._kind = None
        elif tag == self._in:
            if tag == "dd":
                self._dt = ""
            self._in = None


def _read(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _write_case(folder: Path, *, case_id: str = "ph", embed: bool = False, provenance: Provenance | None = None):
    case = phantom_case(case_id=case_id)
    label_map = case.label_map if provenance is None else dataclasses.replace(case.label_map, provenance=provenance)
    with AtomicOutputs(folder) as outputs:
        files = write_measurements(case.measurements, outputs, case_id=case_id, levels=case.levels)
    qc = write_case_qc(
        folder,
        case_id=case_id,
        label_map=label_map,
        levels=case.levels,
        background=case.water,
        table=case.measurements.table,
        water=case.water,
        fat=case.fat,
    )
    files = {**files, **{f"qc_{img.kind}_{i}": folder / img.path for i, img in enumerate(qc)}}
    checks = (
        segmentation_check(
            segmented=label_map.provenance.segmented, expected=(1, 2, 3, 4), present=(1, 2, 3, 4), cleanup=()
        ),
        *case_checks(case.measurements, dixon=True),
    )
    water = folder / f"{case_id}_water.nii.gz"
    page = write_case_page(
        folder,
        case_id=case_id,
        label_map=label_map,
        measurements=case.measurements,
        levels_source="mapping (L3/L4, L4/L5)",
        files=files,
        qc_images=qc,
        embed=embed,
        checks=checks,
        warnings=("a warning with <markup>",),
        inputs={"water": {"path": str(water), "bytes": 1234, "sha256": "ab" * 32}},
        timings={"measure": 0.5, "qc": 1.25},
    )
    return case, page, qc


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("case") / "ph"
    case, page, qc = _write_case(folder)
    return folder, case, page, qc


def test_title_checks_and_warnings(written) -> None:
    folder, _case, page, _qc = written
    assert page == folder / "ph_report.html"
    parsed = _read(page)
    assert parsed.text["title"] == "ph · paraspinal report" and parsed.text["h1"] == "ph"
    assert {name: c["status"] for name, c in parsed.checks.items()} == {
        "segmentation": "not_applicable",
        "fov_truncated": "warning",
        "fat_water_swap": "ok",
        "laterality": "ok",
    }
    assert "erector_spinae (left) touch the first or last slice" in parsed.checks["fov_truncated"]["text"]
    assert "erector_spinae (right)" not in parsed.checks["fov_truncated"]["text"]
    html = page.read_text(encoding="utf-8")
    assert "a warning with &lt;markup&gt;" in html  # escaped


def test_tables_hold_the_phantoms_known_values(written) -> None:
    folder, _case, page, _qc = written
    tables = parse_page(page)
    csv = pd.read_csv(folder / "ph_measurements.csv")
    assert assert_level_and_structure_tables_match(tables, csv) > 40
    levels = tables.tables["levels"]
    assert [r.attrs["level"] for r in levels][::6] == ["L3/L4", "L4/L5"]  # 6 structure/side rows per level
    for row in levels:
        key = (row.attrs["structure"], row.attrs["side"])
        disc = next(c for c in row.cells if (c.attrs.get("metric"), c.attrs.get("method")) == ("csa", "disc_slice"))
        expected = CSA_MM2.get(key) or sum(v for (s, _), v in CSA_MM2.items() if s == key[0])  # both = right + left
        assert float(disc.attrs["value"]) == pytest.approx(expected)
        assert disc.text == f"{expected:.1f}"
    structures = {(r.attrs["structure"], r.attrs["side"]): r for r in tables.tables["structures"]}
    assert list(structures)[:3] == [("erector_spinae", "right"), ("erector_spinae", "left"), ("erector_spinae", "both")]
    for key, volume in VOLUME_ML.items():
        cells = {(c.attrs.get("metric"), c.attrs.get("method")): c for c in structures[key].cells}
        assert cells[("volume", "voxel_count")].text == f"{volume:.2f}"
        assert float(cells[("fat_fraction", "signal_weighted")].attrs["value"]) == pytest.approx(FF_PERCENT[key])
        assert cells[("n_voxels", "voxel_count")].text == str(round(volume * 1000 / 4))  # 4 mm³ voxels
    assert structures[("erector_spinae", "left")].cells[-1].text == "fov_truncated"
    assert structures[("multifidus", "left")].cells[-1].text == ""


def test_qc_images_are_referenced_relative_and_exist(written) -> None:
    folder, _case, page, qc = written
    figures = _read(page).figures
    assert [kind for kind, _ in figures] == ["axial", "axial", "locator", "montage", "fat_fraction"]
    assert [img.path.as_posix() for img in qc] == [src for _, src in figures]
    assert [src for kind, src in figures if kind == "axial"] == ["qc/ph_axial_L3-L4.png", "qc/ph_axial_L4-L5.png"]
    for _, src in figures:
        png = folder / src
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000


def test_provenance_inputs_and_output_links(written) -> None:
    folder, _case, page, _qc = written
    parsed = _read(page)
    assert parsed.info["Segmentation"] == "label map given (ph_dseg.nii.gz), not segmented"
    assert parsed.info["Label scheme"].startswith("lpm4: ")
    assert parsed.info["Grid"] == "40 x 30 x 10 voxels of 1, 1, 4 mm, axes RAS"
    assert parsed.info["Axial slices"] == "10, 4 mm apart, tilt 0°"
    assert parsed.info["Timings (s)"] == "measure 0.50, qc 1.25"
    html = page.read_text(encoding="utf-8")
    inputs = re.search(r'<table class="data" data-table="inputs">(.*?)</table>', html, re.S)
    assert inputs is not None
    body = inputs.group(1).split("<tbody>")[1]
    assert re.findall(r"<td[^>]*>(.*?)</td>", body) == ["water", "ph_water.nii.gz", "1234", "ab" * 32]
    tables = parse_page(page)
    links = set(tables.links)
    assert "../report.html" in links and "ph_manifest.json" in links
    written_files = {
        "ph_measurements.csv",
        "ph_measurements.parquet",
        "ph_summary.csv",
        "ph_levels.csv",
        "ph_case.json",
    }
    assert written_files <= links
    assert all((folder / name).is_file() for name in written_files)
    assert not any(link.startswith("qc/") for link in links)  # QC images are shown, not listed


def test_embedded_images_are_the_png_files(tmp_path: Path) -> None:
    folder = tmp_path / "ph"
    _case, page, qc = _write_case(folder, embed=True)
    figures = _read(page).figures
    assert len(figures) == len(qc) == 5
    for (_kind, src), image in zip(figures, qc, strict=True):
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]) == (folder / image.path).read_bytes()
    assert not re.search(r'src="(?!data:)', page.read_text(encoding="utf-8"))


def test_a_segmented_case_names_its_model(tmp_path: Path) -> None:
    model = {"name": "unet_onnx", "model": "tum01_muscle", "version": "1.2", "weights_sha256": "0123456789abcdef0"}
    assert describe_model(model) == "tum01_muscle 1.2 (unet_onnx backend), weights 0123456789ab"
    assert describe_model({"name": "fake"}) == "fake"
    _case, page, _qc = _write_case(tmp_path / "ph", provenance=Provenance("segmented", model=model))
    parsed = _read(page)
    assert parsed.info["Segmentation"] == "segmented by tum01_muscle 1.2 (unet_onnx backend), weights 0123456789ab"
    assert parsed.info["Model version"] == "1.2" and parsed.info["Model weights_sha256"] == "0123456789abcdef0"
    assert parsed.checks["segmentation"]["status"] == "ok"
