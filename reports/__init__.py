"""Reports: HTML, PNG and Markdown views of run records, comparisons and sweeps.

Reads run-record files only (README "Run records"), never the engines, so a report
can be made of any run, by either engine, from any machine.
"""
from __future__ import annotations

from pathlib import Path


def render(run_dirs: list[Path], out: Path | None = None) -> Path:
    """Write the report for `run_dirs` (default under reports/out/); returns the index.html path.

    Imported lazily so `import reports` does not pull in matplotlib and pandas.
    """
    from reports.render import render as _render

    return _render(run_dirs, out)
