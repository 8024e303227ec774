"""``paraspinal series``: list the DICOM series of a folder or zip; shared DICOM options for other commands.

The ``*_option`` functions build the Typer options that ``measure``, ``run`` and ``segment`` share,
so every command spells them the same way; :func:`series_choice` turns them into a
:class:`~paraspinal.io.dicom_select.SeriesChoice` for :func:`paraspinal.io.read_image`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paraspinal.cli.app import app
from paraspinal.cli.console import console
from paraspinal.io.choices import CONTRASTS, LABEL_OUTPUT_FORMATS, PLANES, SEG_PATIENT_POLICIES
from paraspinal.io.text import escape_control

if TYPE_CHECKING:
    from paraspinal.io.dicom import SeriesInfo
    from paraspinal.io.dicom_select import SeriesChoice


def series_option() -> list[str] | None:
    return typer.Option(
        None,
        "--series",
        help="DICOM series to read: UID, or ROLE=UID (ROLE image, water, fat or labels); repeatable.",
    )


def plane_option() -> str | None:
    return typer.Option(None, "--plane", help=f"Pick the DICOM series in this plane ({', '.join(PLANES)}).")


def contrast_option() -> str | None:
    return typer.Option(None, "--contrast", help=f"Pick the DICOM series with this contrast ({', '.join(CONTRASTS)}).")


def resample_uneven_option() -> bool:
    return typer.Option(
        False, "--resample-uneven", help="Resample unevenly spaced DICOM slices onto regular ones (else refused)."
    )


def case_id_from_option() -> str:
    return typer.Option(
        "path", "--case-id-from", help="Case id from the input 'path' (default) or the DICOM 'patient-id' (opt-in)."
    )


def output_format_option() -> str:
    return typer.Option(
        "nifti", "--output-format", help=f"Label map format: {' or '.join(LABEL_OUTPUT_FORMATS)} (needs DICOM input)."
    )


def seg_patient_option() -> str:
    return typer.Option(
        "pseudonymise",
        "--seg-patient",
        help="DICOM-SEG patient module: 'pseudonymise' (default: no name, IDs, birth date) or 'keep' (for the PACS).",
    )


def keep_descriptions_option() -> bool:
    return typer.Option(
        False,
        "--keep-descriptions",
        help="Copy DICOM series descriptions (free text that can name the patient) into outputs and messages.",
    )


def series_choice(
    series: list[str] | None,
    *,
    plane: str | None,
    contrast: str | None,
    resample_uneven: bool,
    role: str = "image",
    keep_descriptions: bool = False,
) -> SeriesChoice:
    """The series choice for one input of a command (``role`` as in ``--series ROLE=UID``)."""
    from paraspinal.io.dicom_select import choice_for_role

    return choice_for_role(
        tuple(series or ()),
        role=role,
        plane=plane,
        contrast=contrast,
        resample_uneven=resample_uneven,
        keep_descriptions=keep_descriptions,
    )


def check_output_format(output_format: str, *, seg_patient: str = "pseudonymise") -> None:
    """Refuse unknown ``--output-format`` / ``--seg-patient`` words as usage errors."""
    if output_format not in LABEL_OUTPUT_FORMATS:
        raise typer.BadParameter(f"choose from {', '.join(LABEL_OUTPUT_FORMATS)}", param_hint="--output-format")
    if seg_patient not in SEG_PATIENT_POLICIES:
        raise typer.BadParameter(f"choose from {', '.join(SEG_PATIENT_POLICIES)}", param_hint="--seg-patient")


@app.command("series")
def series_command(
    path: Path = typer.Argument(..., help="DICOM folder (searched recursively), .zip or file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the DICOM series: UID, description, plane and tilt, slices, spacing, contrast hints, problems."""
    from paraspinal.io.dicom import scan_dicom

    scan = scan_dicom(path)
    if as_json:
        document = {
            "source": str(path),
            "series": [s.to_dict() for s in scan.series],
            "skipped": scan.skipped,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    out = console()
    literal = {"markup": False, "emoji": False, "highlight": False}  # DICOM text is printed as it is, never styled
    out.print(f"{escape_control(str(path))}: {len(scan.series)} DICOM series", **literal)
    for info in scan.series:
        out.print(_line(info), overflow="ignore", crop=False, **literal)
    for reason, count in sorted(scan.skipped.items()):
        out.print(f"skipped {count} file(s): {escape_control(reason)}", **literal)


def _line(s: SeriesInfo) -> str:
    """One series as two lines: number and key (whole, to copy), then what it holds."""
    plane = s.plane if math.isnan(s.tilt_deg) else f"{s.plane}, tilt {s.tilt_deg:.1f} deg"
    spacing = (
        f"{s.pixel_spacing_mm[0]:.4g} x {s.pixel_spacing_mm[1]:.4g} x {s.slice_spacing_mm or 0:.4g} mm"
        if s.pixel_spacing_mm
        else "no pixel spacing"
    )
    frames = f"{s.n_slices} frames in {s.n_files} file(s)" if s.multiframe else f"{s.n_slices} slices"
    parts = [
        s.description or "(no description)",  # escaped when read (paraspinal.io.dicom_files)
        plane,
        f"{frames}, {s.columns} x {s.rows} px",
        spacing,
        "contrast: " + (", ".join(s.contrasts) or "?"),
    ]
    problems = [*s.problems, *([s.uneven] if s.uneven else [])]
    if problems:
        parts.append("PROBLEM: " + "; ".join(problems))
    number = "-" if s.number is None else str(s.number)
    return f"[{number}] {escape_control(s.key)}\n      " + escape_control(" | ".join(parts))
