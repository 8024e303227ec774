"""TotalSegmentator's CT ``total`` task: its five part models' values mapped onto the task's 117 classes."""

from __future__ import annotations

import numpy as np

from paraspinal.anatomy import load_scheme
from paraspinal.backends.totalseg import TASKS, TotalSegmentatorBackend, task_settings


def test_total_ct_settings_come_from_totalsegmentators_tables():
    settings = task_settings("total")
    assert settings.dataset_ids == (291, 292, 293, 294, 295)
    assert settings.folder_names[1] == "Dataset292_TotalSegmentator_part2_vertebrae_1532subj"
    assert settings.trainer == "nnUNetTrainerNoMirroring"
    assert TASKS["total"] == "total"


def test_total_ct_part_values_map_onto_the_total_scheme():
    from totalsegmentator.map_to_binary import class_map_5_parts

    backend = object.__new__(TotalSegmentatorBackend)  # only the settings are needed to build the tables
    backend.settings = task_settings("total")
    luts = backend._part_luts()
    scheme = load_scheme("total")
    by_name = {entry.name: value for value, entry in scheme.labels.items()}
    parts = ("class_map_part_organs", "class_map_part_vertebrae", "class_map_part_cardiac")
    parts += ("class_map_part_muscles", "class_map_part_ribs")
    for lut, part in zip(luts, parts, strict=True):
        names = class_map_5_parts[part]
        values = np.array(sorted(names))
        assert [by_name[names[v]] for v in values] == list(lut[values])
    muscles = dict(zip(class_map_5_parts["class_map_part_muscles"].values(), luts[3][1:], strict=False))
    assert scheme.entry(int(muscles["autochthon_left"])).structure == "autochthon"
    assert scheme.entry(int(muscles["iliopsoas_right"])).side == "right"
