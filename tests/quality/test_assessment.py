"""The one shape of quality: statuses from calibrated thresholds, the worst part wins, the JSON document."""

from __future__ import annotations

import pytest

from paraspinal.quality import Assessment, LateralityCheck, StructureQuality, Thresholds, combine, status_of


def test_status_from_score_and_thresholds() -> None:
    t = Thresholds(ok=0.7, fail=0.3)
    assert [status_of(s, t) for s in (0.0, 0.29, 0.3, 0.69, 0.7, 1.0)] == [
        "fail",
        "fail",
        "review",
        "review",
        "ok",
        "ok",
    ]
    with pytest.raises(ValueError, match="fail <= ok"):
        Thresholds(ok=0.2, fail=0.5)


def test_bad_assessments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown quality status 'warning'"):
        Assessment("warning", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        Assessment("ok", 1.5)


def test_case_is_the_worst_part_and_rows_take_their_slice_and_level() -> None:
    es_r = StructureQuality("erector_spinae", "right", Assessment("ok", 0.9), {3: Assessment("review", 0.4, ("gap",))})
    mf_l = StructureQuality("multifidus", "left", Assessment("ok", 0.8))
    q = combine(structures=[es_r, mf_l], levels=Assessment("review", 0.5, ("vote margin 0.1",)))
    assert (q.status, q.score) == ("review", 0.5)
    assert q.assessment.reasons == ("levels: vote margin 0.1",)
    assert q.row_status(structure="erector_spinae", side="right") == "ok"
    assert q.row_status(structure="erector_spinae", side="right", slice_index=3) == "review"
    assert q.row_status(structure="multifidus", side="left", level=True) == "review"
    assert q.row_status(structure="erector_spinae", side="both", slice_index=3) == "review"
    failed = StructureQuality(
        "erector_spinae", "left", Assessment("fail", 0.2), {3: Assessment("fail", 0.0), 4: Assessment("ok", 0.95)}
    )
    q2 = combine(structures=[failed])
    assert q2.row_status(structure="erector_spinae", side="left", slice_index=4) == "ok"  # its own slice was fine
    assert q2.row_status(structure="erector_spinae", side="left", slice_index=3) == "fail"
    assert q2.row_status(structure="erector_spinae", side="left", slice_index=9) == "fail"  # not assessed: structure
    assert q2.row_status(structure="erector_spinae", side="left") == "fail"
    doc = q.to_json()
    assert doc["structures"][0]["slices"] == {"3": {"status": "review", "score": 0.4, "reasons": ["gap"]}}
    assert doc["structures"][1]["slices"] == {}


def test_a_contradicted_laterality_fails_every_sided_row() -> None:
    mf = StructureQuality("multifidus", "left", Assessment("ok", 0.9))
    q = combine(structures=[mf], laterality=LateralityCheck("contradicted", ("liver on the header's left",)))
    assert q.status == "fail" and q.score == 0.0
    assert q.row_status(structure="multifidus", side="left") == "fail"
    assert q.row_status(structure="multifidus", side="both") == "ok"
    assert q.to_json()["laterality"]["result"] == "contradicted"
