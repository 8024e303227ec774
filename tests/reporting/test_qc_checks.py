"""The report's checks on phantoms where each check must come out ok, warning or not applicable."""

from __future__ import annotations

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.measurement import measure_case
from paraspinal.reporting.qc_checks import CLEANUP_WARN_FRACTION, case_checks, segmentation_check
from tests.phantoms import box_labels, ras_affine
from tests.reporting.support import phantom_case


def _by_name(checks) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.message) for c in checks}


def test_the_plain_phantom_warns_only_about_the_truncated_muscle() -> None:
    checks = _by_name(case_checks(phantom_case().measurements, dixon=True))
    assert list(checks) == ["fov_truncated", "fat_water_swap", "laterality"]
    assert checks["fov_truncated"] == (
        "warning",
        "erector_spinae (left) touch the first or last slice: their volumes are lower bounds",
    )
    assert checks["fat_water_swap"][0] == "ok" and checks["laterality"][0] == "ok"


def test_swapped_fat_and_water_are_a_warning_quoting_the_measurement() -> None:
    checks = _by_name(case_checks(phantom_case(swap=True).measurements, dixon=True))
    status, message = checks["fat_water_swap"]
    assert status == "warning"
    assert message.startswith("fat and water look swapped") and "(median 270 vs 100)" in message


def test_labels_on_the_wrong_side_are_a_laterality_warning() -> None:
    checks = _by_name(case_checks(phantom_case(mirror=True).measurements, dixon=True))
    status, message = checks["laterality"]
    assert status == "warning"
    assert message.startswith("labels named right lie left of those named left (per the affine): ")
    assert "erector_spinae (right)" in message and "multifidus (right)" in message


def test_single_slice_and_one_sided_cases_are_not_applicable() -> None:
    labels = box_labels((40, 30, 1), {1: (slice(24, 32), slice(5, 15), slice(0, 1))})
    label_map = LabelMap.given(Image(labels, ras_affine((1.0, 1.0, 4.0))), load_scheme("lpm4"))
    measurements = measure_case(label_map, case_id="one")
    checks = _by_name(case_checks(measurements, dixon=False))
    assert checks == {
        "fov_truncated": ("not_applicable", "single-slice image: no slices above or below to tell"),
        "fat_water_swap": ("not_applicable", "no Dixon water/fat pair measured"),
        "laterality": ("not_applicable", "no structure labelled on both sides"),
    }


def test_inside_stack_every_structure_ends_is_ok() -> None:
    labels = box_labels(
        (40, 30, 6), {1: (slice(24, 32), slice(5, 15), slice(1, 5)), 4: (slice(8, 16), slice(5, 15), slice(1, 5))}
    )
    label_map = LabelMap.given(Image(labels, ras_affine((1.0, 1.0, 4.0), (-20.0, 0.0, 0.0))), load_scheme("lpm4"))
    checks = _by_name(case_checks(measure_case(label_map, case_id="in"), dixon=False))
    assert checks["fov_truncated"] == ("ok", "every structure ends inside the image stack")
    assert checks["laterality"][0] == "ok"


def test_cleanup_share_at_the_threshold_is_ok_and_above_it_a_warning() -> None:
    at = round(1000 * CLEANUP_WARN_FRACTION)
    record = {"label": 2, "voxels_kept": 1000 - at, "voxels_removed": at}
    assert segmentation_check(segmented=True, expected=(2,), present=(2,), cleanup=[record]).status == "ok"
    above = {**record, "voxels_kept": 1000 - at - 1, "voxels_removed": at + 1}
    check = segmentation_check(segmented=True, expected=(2,), present=(2,), cleanup=[above])
    assert check.status == "warning"
    assert check.message == "label 2: 10% outside its largest part: check the label outlines"
    empty = {"label": 3, "voxels_kept": 0, "voxels_removed": 0}
    assert segmentation_check(segmented=True, expected=(3,), present=(3,), cleanup=[empty]).status == "ok"
