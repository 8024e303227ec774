"""``paraspinal labels``: list label schemes, or the labels of one scheme."""

from __future__ import annotations

import typer

from paraspinal.anatomy import list_schemes, load_registry, load_scheme
from paraspinal.cli.app import app
from paraspinal.cli.console import console, print_frame


@app.command("labels")
def labels_command(
    scheme: str | None = typer.Option(None, "--scheme", "-s", help="Scheme key or a TOML/JSON scheme file."),
) -> None:
    """List the bundled label schemes, or the values, structures and sides of one scheme."""
    import pandas as pd

    out = console()
    if scheme is None:
        rows = []
        for key in list_schemes():
            s = load_scheme(key)
            rows.append({"scheme": key, "name": s.name, "labels": len(s.labels)})
        print_frame(out, pd.DataFrame(rows), title="Label schemes (use --scheme KEY for details)")
        return
    s = load_scheme(scheme)
    registry = load_registry()
    rows = [
        {
            "value": e.value,
            "name": e.name,
            "structure": e.structure,
            "side": e.side,
            "category": registry[e.structure].category,
        }
        for e in (s.labels[v] for v in s.values)
    ]
    print_frame(out, pd.DataFrame(rows), title=f"{s.key}: {s.name}")
    if s.reference:
        out.print(f"reference: {s.reference}")
