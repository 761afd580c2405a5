"""`distill run` and `distill report`: the three stages chained from one recipe, and what they produced.

    chain.py     the recipe, the plan (run / skip / resume per stage) and the run itself
    forecast.py  how long each stage will take, printed before anything runs
    report.py    the self-contained HTML report read from the run folders
    charts.py    the report's matplotlib charts

Torch-free: the plan and the report only read files.
"""

from distill.run.chain import run_pipeline
from distill.run.report import build_report

__all__ = ["build_report", "run_pipeline"]
