"""Reports built from saved results only: tables, plots, HTML/Markdown summaries, provenance.

``write_report(results_dir)`` rebuilds every artefact into ``results_dir/report/``; ``fiqa-bench report``
and ``fiqa-bench compare`` live in :mod:`fiqa_bench.reports.cli`. Nothing here imports torch or models.
"""

from ._load import Results, load_results
from ._style import style_map
from ._write import write_report

__all__ = ["Results", "load_results", "style_map", "write_report"]
