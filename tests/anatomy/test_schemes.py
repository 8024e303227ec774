"""Anatomy registry and label schemes: bundled data, hierarchy queries and file validation."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from paraspinal.anatomy import (
    AnatomyRegistry,
    LabelScheme,
    Structure,
    list_schemes,
    load_registry,
    load_scheme,
)
from paraspinal.errors import LabelSchemeError

BUNDLED = [
    "balerdi8",
    "ivd_t2",
    "lpm4",
    "lumbar_bodies",
    "musclemap",
    "musclemap_abdomen",
    "paraspinalseg",
    "spider",
    "spine_bodies",
    "spineps",
    "total",
    "total_mr",
    "total_vertebrae_mr",
    "totalspineseg",
    "xu7",
]


@pytest.fixture(scope="module")
def registry() -> AnatomyRegistry:
    return load_registry()


def _write(tmp_path: Path, text: str, name: str = "scheme.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _scheme_file(tmp_path: Path, labels: str, *, header: str = 'key = "mine"\nname = "my scheme"\n') -> Path:
    return _write(tmp_path, header + labels)


# --------------------------------------------------------------------------- bundled schemes


def test_bundled_schemes_are_listed_sorted():
    assert list_schemes() == BUNDLED


@pytest.mark.parametrize("key", BUNDLED)
def test_every_bundled_scheme_loads_and_validates(key, registry):
    scheme = load_scheme(key)
    assert scheme.key == key
    assert Path(scheme.source).name == f"{key}.toml"
    assert scheme.description and scheme.reference
    assert 0 not in scheme.values and list(scheme.values) == sorted(scheme.values)
    for value in scheme.values:
        entry = scheme.entry(value)
        assert entry.value == value and entry.structure in registry
    swap = scheme.side_swap_map()  # every bundled sided label has its counterpart
    assert sorted(swap) == list(scheme.values)
    assert all(swap[swap[value]] == value for value in scheme.values)


def test_lpm4_values_and_sides_are_exact():
    scheme = load_scheme("lpm4")
    assert {v: (e.structure, e.side) for v, e in scheme.labels.items()} == {
        1: ("erector_spinae", "right"),
        2: ("multifidus", "right"),
        3: ("multifidus", "left"),
        4: ("erector_spinae", "left"),
    }
    assert scheme.side_swap_map() == {1: 4, 2: 3, 3: 2, 4: 1}


def test_lpm4_sides_match_the_bundled_tum01_mask():
    """Right-side labels lie at larger RAS x (patient right); multifidus is medial to erector spinae."""
    nib = pytest.importorskip("nibabel")
    np = pytest.importorskip("numpy")
    sample = resources.files("paraspinal").joinpath("sample", "TUM01_labels.nii.gz")
    if not sample.is_file():
        pytest.skip("TUM01 sample mask not available")
    image = nib.load(str(sample))
    data = np.asarray(image.dataobj)
    x = {}
    for value in (1, 2, 3, 4):
        centroid = np.argwhere(data == value).mean(axis=0)
        x[value] = (image.affine[:3, :3] @ centroid + image.affine[:3, 3])[0]
    scheme = load_scheme("lpm4")
    right = scheme.values_for("autochthon", side="right")
    left = scheme.values_for("autochthon", side="left")
    assert (right, left) == ((1, 2), (3, 4))
    assert min(x[v] for v in right) > max(x[v] for v in left)
    midline = sum(x.values()) / 4
    for muscle in ("multifidus", "erector_spinae"):
        assert len(scheme.values_for(muscle)) == 2
    lateral = [abs(x[v] - midline) for v in scheme.values_for("erector_spinae")]
    medial = [abs(x[v] - midline) for v in scheme.values_for("multifidus")]
    assert min(lateral) > max(medial)


def test_balerdi8_follows_the_authors_label_order():
    scheme = load_scheme("balerdi8")
    assert [(e.structure, e.side) for e in scheme.labels.values()] == [
        ("psoas_major", "left"),
        ("iliacus", "left"),
        ("quadratus_lumborum", "left"),
        ("autochthon", "left"),
        ("psoas_major", "right"),
        ("iliacus", "right"),
        ("quadratus_lumborum", "right"),
        ("autochthon", "right"),
    ]
    assert scheme.values_for("iliopsoas", side="right") == (5, 6)
    assert scheme.values_for("erector_spinae") == ()  # combined ES+M sits above erector spinae


def test_xu7_is_unsided():
    scheme = load_scheme("xu7")
    assert {e.side for e in scheme.labels.values()} == {"none"}
    assert scheme.values_for("erector_spinae") == (5, 6)
    assert scheme.values_for("vertebra") == (2,)  # the vertebral arch is part of a vertebra


def test_musclemap_last_digit_encodes_side():
    scheme = load_scheme("musclemap")
    assert len(scheme.values) == 99
    for value, entry in scheme.labels.items():
        assert entry.side == {0: "none", 1: "left", 2: "right"}[value % 10]
    assert (scheme.entry(5111).structure, scheme.entry(5111).side) == ("erector_spinae", "left")
    assert scheme.side_swap_map()[5101] == 5102
    assert scheme.values_for("autochthon", side="right") == (1112, 1122, 1132, 5102, 5112)


def test_total_mr_class_map():
    scheme = load_scheme("total_mr")
    assert scheme.values == tuple(range(1, 51))
    assert (scheme.entry(46).name, scheme.entry(46).structure, scheme.entry(46).side) == (
        "autochthon_left",
        "autochthon",
        "left",
    )
    assert scheme.values_for("iliopsoas") == (48, 49)
    assert scheme.values_for("psoas_major") == ()  # total_mr cannot separate psoas from iliacus
    assert scheme.values_for("vertebra", include_descendants=False) == (19,)
    assert scheme.side_swap_map()[2] == 3  # kidney_right <-> kidney_left


def test_total_ct_class_map_follows_totalsegmentators_own_table(registry):
    """Every value 1..117 in TotalSegmentator's class order; muscles sided, vertebrae levelled, organs unsided."""
    scheme = load_scheme("total")
    assert scheme.values == tuple(range(1, 118))
    try:
        from totalsegmentator.map_to_binary import class_map
    except ImportError:
        class_map = None
    if class_map is not None:
        assert {v: e.name for v, e in scheme.labels.items()} == class_map["total"]
    sided = {v: (e.structure, e.side) for v, e in scheme.labels.items()}
    assert sided[86] == ("autochthon", "left") and sided[87] == ("autochthon", "right")
    assert sided[88] == ("iliopsoas", "left") and sided[89] == ("iliopsoas", "right")
    assert sided[5] == ("liver", "none") and sided[1] == ("spleen", "none")
    assert scheme.values_for("autochthon", side="right") == (87,)
    assert [registry[scheme.entry(v).structure].level for v in (29, 31, 32, 26)] == ["L3", "L1", "T12", "S1"]
    assert scheme.values_for("vertebra") == tuple(range(27, 51)) and scheme.values_for("sacrum") == (25, 26)
    assert scheme.values_for("rib", side="left") == tuple(range(92, 104))
    assert scheme.side_swap_map()[86] == 87 and scheme.side_swap_map()[92] == 104


def test_spider_numbers_vertebrae_and_discs_from_the_bottom(registry):
    scheme = load_scheme("spider")
    assert scheme.entry(1).structure == "vertebra_L5"
    assert scheme.entry(6).structure == "vertebra_T12"
    assert scheme.entry(100).structure == "spinal_canal"
    assert scheme.entry(201).structure == "disc_L5_S1"
    assert scheme.entry(206).structure == "disc_T12_L1"
    assert scheme.values_for("vertebra_L3") == (3, 103)
    assert scheme.values_for("disc_L4_L5") == (202,)
    for k in range(1, 25):  # disc 200+k lies directly below vertebra k
        vertebra = registry[scheme.entry(k).structure]
        disc = registry[scheme.entry(200 + k).structure]
        assert scheme.entry(100 + k).structure == vertebra.key
        if vertebra.level != "C1":
            assert disc.level is not None and disc.level.startswith(f"{vertebra.level}/")


# --------------------------------------------------------------------------- registry


def test_hierarchy_queries(registry):
    assert registry.common_ancestor("erector_spinae", "multifidus") == "autochthon"
    assert registry.common_ancestor("longissimus", "erector_spinae") == "erector_spinae"
    assert registry.common_ancestor("erector_spinae", "longissimus") == "erector_spinae"
    assert registry.common_ancestor("vertebra_L3", "disc_L3_L4") == "vertebral_column"
    assert registry.common_ancestor("psoas_major", "multifidus") is None
    assert registry.ancestors("longissimus") == ("erector_spinae", "autochthon")
    assert set(registry.descendants("iliopsoas")) == {"psoas_major", "iliacus"}
    assert {"erector_spinae", "iliocostalis", "multifidus"} <= set(registry.descendants("autochthon"))
    assert registry.descendants("multifidus") == ()


def test_registry_contents(registry):
    required = [
        "erector_spinae", "iliocostalis", "longissimus", "multifidus", "autochthon", "psoas_major",
        "iliacus", "iliopsoas", "quadratus_lumborum", "vertebra", "vertebral_arch", "disc",
        "spinal_canal", "vertebra_S1", "sacrum",
    ]  # fmt: skip
    required += [f"vertebra_L{i}" for i in range(1, 6)]
    required += ["disc_L1_L2", "disc_L2_L3", "disc_L3_L4", "disc_L4_L5", "disc_L5_S1"]
    assert all(key in registry for key in required)
    for structure in registry.structures.values():
        if structure.key.startswith("vertebra_"):
            assert structure.category == "vertebra" and structure.level == structure.key.split("_")[1]
        if structure.key.startswith("disc_"):
            assert structure.level == "/".join(structure.key.split("_")[1:])
        if structure.code is not None:
            assert structure.code.scheme == "SCT" and structure.code.value.isdigit()
    assert registry["erector_spinae"].code.value == "44947003"
    assert registry["vertebra_L3"].code.value == "36470004"


def test_unknown_structure_lookup_suggests_a_key(registry):
    with pytest.raises(KeyError, match="unknown structure 'psoas' \\(did you mean 'psoas_major'\\?\\)"):
        registry["psoas"]
    with pytest.raises(KeyError, match="unknown structure 'erector_spina' \\(did you mean 'erector_spinae'\\?\\)"):
        registry["erector_spina"]
    with pytest.raises(KeyError, match="unknown structure 'nope'"):
        registry.ancestors("nope")


def test_bundled_registry_is_cached():
    assert load_registry() is load_registry()


REGISTRY_CASES = [
    (
        (
            '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\nbilateral = true\nparent = "b"\n'
            '[[structures]]\nkey = "b"\nname = "B"\ncategory = "muscle"\nbilateral = true\nparent = "a"\n'
        ),
        "structures form a cycle: a -> b -> a",
    ),
    (
        '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\nbilateral = true\nparent = "ghost"\n',
        "structure 'a': parent 'ghost' does not exist",
    ),
    (
        (
            '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\nbilateral = true\n'
            '[[structures]]\nkey = "a"\nname = "A again"\ncategory = "muscle"\nbilateral = true\n'
        ),
        "duplicate structure key 'a'",
    ),
    (
        '[[structures]]\nkey = "a"\nname = "A"\ncategory = "organ"\nbilateral = false\n',
        ("structure 'a': category 'organ' is not one of muscle, muscle_group, vertebra, disc, canal, bone, other"),
    ),
    (
        '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\n',
        "structure 'a': missing required field 'bilateral'",
    ),
    (
        '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\nbilateral = true\nshade = "red"\n',
        "structure 'a': unknown field 'shade'",
    ),
    (
        '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\nbilateral = true\ncolour = "red"\n',
        "structure 'a': 'colour' must be a hex colour like \"#E69F00\"",
    ),
    (
        '[[structures]]\nkey = "d"\nname = "D"\ncategory = "disc"\nbilateral = false\nlevel = "+L4/L5"\n',
        "structure 'd': level '+L4/L5' starts with '+': spreadsheets would run it as a formula",
    ),
    (
        (
            '[[structures]]\nkey = "g"\nname = "G"\ncategory = "muscle_group"\nbilateral = true\n'
            '[[structures]]\nkey = "m"\nname = "M"\ncategory = "muscle"\nbilateral = false\nparent = "g"\n'
        ),
        "structure 'm' is not bilateral but its parent 'g' is",
    ),
    (
        (
            '[[structures]]\nkey = "a"\nname = "A"\ncategory = "muscle"\nbilateral = true\n'
            'code = { scheme = "SCT", value = "1" }\n'
        ),
        "structure 'a': code field 'meaning' must be a non-empty string",
    ),
]


@pytest.mark.parametrize(("text", "message"), REGISTRY_CASES)
def test_invalid_registry_files_are_rejected(tmp_path, text, message):
    path = _write(tmp_path, text, "anatomy.toml")
    with pytest.raises(LabelSchemeError, match=f"{re.escape(message)}$") as caught:
        load_registry(path)
    assert caught.value.message == message
    assert caught.value.path == str(path)
    assert str(caught.value) == f"{path}: {message}"


def test_registry_built_in_code_is_checked_too():
    with pytest.raises(LabelSchemeError, match="structure 'a': parent 'b' does not exist"):
        AnatomyRegistry({"a": Structure("a", "A", "muscle", True, parent="b")})


# --------------------------------------------------------------------------- user schemes


USER_SCHEME = """\
key = "mine"
name = "my scheme"
description = "two muscles"

[[labels]]
value = 10
name = "L ES"
structure = "erector_spinae"
side = "left"

[[labels]]
value = 11
name = "R ES"
structure = "erector_spinae"
side = "right"

[[labels]]
value = 20
name = "psoas"
structure = "psoas_major"
side = "none"
"""


def test_user_toml_scheme_loads(tmp_path):
    path = _write(tmp_path, USER_SCHEME)
    scheme = load_scheme(path)
    assert isinstance(scheme, LabelScheme)
    assert (scheme.key, scheme.values, scheme.reference, scheme.source) == (
        "mine",
        (10, 11, 20),
        "",
        str(path),
    )
    assert scheme.side_swap_map() == {10: 11, 11: 10, 20: 20}
    assert scheme.values_for("autochthon") == (10, 11)
    assert load_scheme(str(path)).labels == scheme.labels  # a str path works too


def test_user_json_scheme_loads(tmp_path):
    document = {
        "key": "js",
        "name": "json scheme",
        "labels": [{"value": 3, "name": "canal", "structure": "spinal_canal", "side": "none"}],
    }
    path = _write(tmp_path, json.dumps(document), "scheme.json")
    assert load_scheme(path).entry(3).structure == "spinal_canal"


def test_user_scheme_may_use_a_custom_registry(tmp_path):
    anatomy = _write(
        tmp_path,
        '[[structures]]\nkey = "widget"\nname = "W"\ncategory = "other"\nbilateral = false\n',
        "a.toml",
    )
    custom = load_registry(anatomy)
    path = _scheme_file(tmp_path, 'labels = [{ value = 1, name = "w", structure = "widget", side = "none" }]\n')
    assert load_scheme(path, registry=custom).values_for("widget", registry=custom) == (1,)
    with pytest.raises(LabelSchemeError, match="label 1 refers to unknown structure 'widget'"):
        load_scheme(path)


def _label(value: object = 1, structure: str = "erector_spinae", side: str = "left", extra: str = "") -> str:
    return f'[[labels]]\nvalue = {value}\nname = "x"\nstructure = "{structure}"\nside = "{side}"\n{extra}'


SCHEME_CASES = [
    (
        _label(7, "psoas_minor"),
        "label 7 refers to unknown structure 'psoas_minor' (did you mean 'psoas_major'?)",
    ),
    (_label(2) + _label(2, side="right"), "label value 2 is listed twice"),
    (_label(0), "label value 0 is background and must not be listed"),
    (_label(-3), "label value -3 is negative; values must be positive"),
    (_label(1.5), "label #1: value must be an integer, not 1.5"),
    (
        _label(1, "vertebra_L3", "left"),
        "label 1: side 'left' is not allowed on midline structure 'vertebra_L3' (use side \"none\")",
    ),
    (_label(1, side="both"), "label 1: side 'both' is not one of 'left', 'right', 'none'"),
    (
        '[[labels]]\nvalue = 1\nname = "x"\nstructure = "erector_spinae"\n',
        "label 1: missing required field 'side'",
    ),
    (_label(extra='colour = "red"\n'), "label 1: unknown field 'colour'"),
    (_label(1) + _label(2), "labels 1 and 2 both mean 'erector_spinae' on the left side"),
    (
        _label(1, side="none") + _label(2, side="right"),
        "structure 'erector_spinae' has labels both with a side and without (labels 1 and 2)",
    ),
    (
        _label().replace('name = "x"', 'name = "=HYPERLINK(1)"'),
        "label 1: name '=HYPERLINK(1)' starts with '=': spreadsheets would run it as a formula",
    ),
    (
        _label().replace('name = "x"', 'name = "x\\ny"'),
        "label 1: name 'x\\ny' holds a control character (U+000A): it would break table rows",
    ),
]


@pytest.mark.parametrize(("labels", "message"), SCHEME_CASES)
def test_invalid_user_schemes_are_rejected(tmp_path, labels, message):
    path = _scheme_file(tmp_path, labels)
    with pytest.raises(LabelSchemeError, match=f"{re.escape(message)}$") as caught:
        load_scheme(path)
    assert caught.value.message == message
    assert caught.value.path == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('key = "k"\nname = "n"\n', "missing required field 'labels'"),
        ('key = "k"\nname = "n"\nversion = 2\n' + _label(), "unknown field 'version'"),
        ('key = "k"\nname = "n"\nlabels = []\n', "'labels' must be a non-empty list of label tables"),
        ('key = "k"\nname = ', "not a valid TOML file: "),
        (
            'key = "@k"\nname = "n"\n' + _label(),
            "scheme key '@k' starts with '@': spreadsheets would run it as a formula",
        ),
    ],
)
def test_invalid_scheme_top_level(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(LabelSchemeError, match=re.escape(message)) as caught:
        load_scheme(path)
    assert caught.value.message.startswith(message)


def test_unknown_scheme_name_lists_the_bundled_ones():
    with pytest.raises(
        LabelSchemeError,
        match="no bundled label scheme or file named 'lpm5' \\(bundled schemes: balerdi8, ivd_t2, lpm4",
    ):
        load_scheme("lpm5")


def test_scheme_file_with_other_suffix_is_rejected(tmp_path):
    path = _write(tmp_path, USER_SCHEME, "scheme.yaml")
    with pytest.raises(LabelSchemeError, match=r"must end in \.toml or \.json"):
        load_scheme(path)


# --------------------------------------------------------------------------- scheme methods


def test_check_values_lists_unknown_values():
    scheme = load_scheme("lpm4")
    scheme.check_values([0, 1, 2, 3, 4], path="mask.nii.gz")  # background and known values pass
    with pytest.raises(LabelSchemeError) as caught:
        scheme.check_values([0, 9, 1, 7, 7], path="mask.nii.gz")
    assert str(caught.value) == "mask.nii.gz: label values [7, 9] are not in scheme 'lpm4' (known: 1, 2, 3, 4)"


def test_check_values_accepts_numpy_values_and_shortens_long_lists():
    np = pytest.importorskip("numpy")
    scheme = load_scheme("spider")
    scheme.check_values(np.unique(np.array([0, 1, 100, 201], dtype=np.uint8)), path=None)
    with pytest.raises(LabelSchemeError, match=r"known: 1, 2, 3, .*, \.\.\., 225 \(76 values\)\)$"):
        scheme.check_values(np.array([26]), path=None)


def test_entry_of_unknown_value_raises():
    with pytest.raises(LabelSchemeError, match="label value 5 is not in scheme 'lpm4' \\(known: 1, 2, 3, 4\\)"):
        load_scheme("lpm4").entry(5)


def test_side_swap_needs_both_sides(tmp_path):
    scheme = load_scheme(_scheme_file(tmp_path, _label(1, "psoas_major", "left")))
    with pytest.raises(LabelSchemeError, match="label 1 \\(x\\) has no right-side counterpart in scheme 'mine'"):
        scheme.side_swap_map()


def test_values_for_options():
    scheme = load_scheme("lpm4")
    assert scheme.values_for("autochthon") == (1, 2, 3, 4)
    assert scheme.values_for("autochthon", include_descendants=False) == ()
    assert scheme.values_for("erector_spinae", side="left") == (4,)
    with pytest.raises(KeyError, match="unknown structure"):
        scheme.values_for("erector")
