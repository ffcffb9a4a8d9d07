"""Reports (layer 3): one self-contained HTML file for datasets (data cards with plots) and runs.

>>> from policyfit.report import write_report
>>> write_report(["hopper-medium", "runs/iql-hopper-medium-s0"], "report.html")   # doctest: +SKIP
PosixPath('report.html')
"""

from policyfit.report.html import build_report, write_report
from policyfit.report.runs import Run, load_run

__all__ = ["Run", "build_report", "load_run", "write_report"]
