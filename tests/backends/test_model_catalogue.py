"""The published-model catalogue as data: the bundled file's entries, and broken files refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.backends.catalog import BACKENDS
from paraspinal.backends.model_catalogue import load_catalogue
from paraspinal.errors import InputError

GOOD = """\
[[models]]
key = "mine"
name = "my model"
backend = "nnunet"
scheme = "lpm4"
role = "muscle"
modality = "MR"
contrast = "T2"
plane = "axial"
licence = "MIT"
citation = "me"
project_page = "https://example.org"
get = "mine.zip"
source = "here"

[models.layout]
model_dir = ["."]
files = ["dataset.json"]
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return load_catalogue(path), path


def test_bundled_catalogue_lists_the_published_models():
    catalogue = load_catalogue()
    assert catalogue.keys == (
        "lpm_segmentator",
        "paraspinalseg",
        "musclemap_abdomen",
        "musclemap_wholebody",
        "totalseg_total_mr",
        "totalseg_vertebrae_mr",
        "totalseg_total_ct",
        "totalspineseg",
        "spineps",
    )
    names = {spec.name for spec in BACKENDS}
    for entry in catalogue.entries:
        assert entry.backend is None or entry.backend in names
        assert load_scheme(entry.scheme).key == entry.scheme
    para = catalogue.entry("paraspinalseg")
    assert para.structures == ("psoas_major", "quadratus_lumborum", "erector_spinae", "multifidus", "epifascial_fat")
    assert (para.backend, para.licence, para.folds) == ("nnunet", "Apache-2.0", ("0", "1", "2", "3", "4"))
    assert "iliacus" in catalogue.entry("musclemap_wholebody").structures
    assert "vertebra_T13" in catalogue.entry("spineps").structures
    assert catalogue.entry("totalseg_total_ct").task == "total"
    assert all(e.sha256 is None for e in catalogue.entries)  # none of these projects publishes a checksum


def test_a_good_user_catalogue_loads(tmp_path):
    catalogue, _ = _load(tmp_path, GOOD)
    assert catalogue.entry("mine").structures == ("erector_spinae", "multifidus")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('backend = "nnunet"', 'backend = "nnunet3"'),
            "model 'mine': backend 'nnunet3' is not one of",
        ),
        (
            lambda t: t.replace('scheme = "lpm4"', 'scheme = "nope"'),
            "model 'mine': scheme: no bundled label scheme or file named 'nope'",
        ),
        (
            lambda t: t.replace('role = "muscle"', 'role = "liver"'),
            "model 'mine': role 'liver' is not one of muscle, spine",
        ),
        (lambda t: t.replace('licence = "MIT"\n', ""), "model 'mine': 'licence' must be a non-empty string"),
        (lambda t: t + 'sha256 = "abc"\n', "model 'mine': unknown layout field sha256"),
        (lambda t: t.replace('source = "here"', 'source = "here"\nsha256 = "abc"'), "'sha256' must be 64 lowercase"),
        (lambda t: t.replace('files = ["dataset.json"]', 'files = ["../x"]'), "layout.files must hold relative paths"),
        (lambda t: t + "\n" + t, "model 'mine' is listed twice"),
        (lambda t: t.replace("[models.layout]", "[models.layou]"), "model 'mine': unknown field layou"),
        (lambda t: t.replace('key = "mine"', 'key = "Mine"'), "key must start with a lowercase letter"),
    ],
)
def test_broken_catalogues_are_refused_in_one_line(tmp_path, edit, message):
    path = tmp_path / "models.toml"
    path.write_text(edit(GOOD), encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_invalid_toml_is_refused(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text("[[models]\nkey=", encoding="utf-8")
    with pytest.raises(InputError, match=r"models.toml: model catalogue is not valid TOML: "):
        load_catalogue(path)
