"""The report's laterality check told the anatomical result (issue 30 item 3)."""

from __future__ import annotations

import pytest

from paraspinal.anatomy import load_scheme
from paraspinal.io import Image
from paraspinal.io.label_map import LabelMap
from paraspinal.measurement import measure_case
from paraspinal.quality import LateralityCheck
from paraspinal.reporting.qc_checks import case_checks
from tests.phantoms import two_muscle_phantom


@pytest.fixture(scope="module")
def measured():
    labels, water, fat, affine = two_muscle_phantom()
    label_map = LabelMap.given(Image(labels, affine), load_scheme("lpm4"))
    return measure_case(label_map, case_id="ph", water=Image(water, affine), fat=Image(fat, affine))


def _laterality(measured, anatomy):
    return {c.name: c for c in case_checks(measured, dixon=True, anatomy=anatomy)}["laterality"]


def test_without_anatomy_the_affine_check_is_unchanged(measured) -> None:
    assert _laterality(measured, None) == {c.name: c for c in case_checks(measured, dixon=True)}["laterality"]
    assert _laterality(measured, None).status == "ok"


def test_a_contradiction_warns_and_agreement_or_not_checked_is_told(measured) -> None:
    swapped = _laterality(measured, LateralityCheck("contradicted", ("liver on the header's left",)))
    assert swapped.status == "warning"
    assert swapped.message == "anatomy contradicts the header: liver on the header's left"
    agrees = _laterality(measured, LateralityCheck("agrees", ("liver on the header's right",)))
    assert agrees.status == "ok" and agrees.message == "liver on the header's right"
    unknown = _laterality(measured, LateralityCheck("not checked", ("no liver in view",)))
    assert unknown.status == "ok" and unknown.message.endswith("; anatomy not checked: no liver in view")
