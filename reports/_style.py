"""One style per method, the same in every figure, and byte-reproducible figure files.

Colours are Okabe-Ito (safe for the common colour-vision deficiencies); every method also gets its own
marker and line style so curves stay distinguishable in greyscale print. Reference lines (random,
oracle) are grey and dashed so they never compete with the methods.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports never need a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design"; yellow last (weak on white), used only with 8+ methods.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*"]
LINESTYLES = ["-", (0, (5, 1.5)), (0, (1, 1)), (0, (5, 1.5, 1, 1.5)), (0, (3, 1, 1, 1, 1, 1))]
REFERENCE_GREYS = ["#555555", "#999999", "#777777", "#BBBBBB"]
REFERENCE_DASHES = [(0, (4, 2)), (0, (2, 2)), (0, (6, 2, 1, 2)), (0, (1, 2))]

COLUMN_WIDTH_IN = 3.5  # one column of a two-column paper (IEEE/CVPR)
TEXT_WIDTH_IN = 7.0  # full text width, for the appendix grid


@dataclass(frozen=True)
class Style:
    color: str
    marker: str | None
    linestyle: object
    linewidth: float
    reference: bool

    def kwargs(self) -> dict[str, object]:
        return {
            "color": self.color,
            "marker": self.marker,
            "linestyle": self.linestyle,
            "linewidth": self.linewidth,
            "markersize": 3.5,
            "markeredgewidth": 0.6,
            "markerfacecolor": "white" if self.reference else self.color,
        }


def style_map(methods: Iterable[str], reference: Iterable[str] = ()) -> dict[str, Style]:
    """Deterministic method -> style from the sorted method names (reference lines styled apart).

    Colours cycle every 8 methods, markers every 12 and line styles every 5, so the (colour, marker,
    line style) triple stays unique for up to 120 methods.
    """
    ref = set(reference)
    styles: dict[str, Style] = {}
    for i, name in enumerate(sorted(m for m in set(methods) if m not in ref)):
        styles[name] = Style(
            OKABE_ITO[i % len(OKABE_ITO)],
            MARKERS[i % len(MARKERS)],
            LINESTYLES[i % len(LINESTYLES)],
            1.2,
            False,
        )
    for i, name in enumerate(sorted(ref)):
        styles[name] = Style(
            REFERENCE_GREYS[i % len(REFERENCE_GREYS)],
            None,
            REFERENCE_DASHES[i % len(REFERENCE_DASHES)],
            1.0,
            True,
        )
    return styles


RC = {
    "font.family": "DejaVu Sans",
    "font.size": 7.0,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7.0,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.0,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "lines.linewidth": 1.2,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,  # TrueType: text stays selectable/editable in the PDF
    "svg.hashsalt": "fiqa-bench",  # fixed ids in SVG output
    "path.simplify": False,
}


def theme() -> matplotlib.RcParams:
    """rc context for every report figure (seaborn's paper context, overridden to fixed sizes)."""
    import seaborn as sns

    params = dict(sns.axes_style("whitegrid"))
    params.update(sns.plotting_context("paper"))
    params.update(RC)
    return matplotlib.rc_context(params)


# Metadata fixed so that regenerating a report gives the same bytes: no dates, fixed producer strings.
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "fiqa-bench"}
PNG_METADATA = {"Software": "fiqa-bench"}


def save_figure(fig: Figure, stem: Path, formats: Iterable[str]) -> list[Path]:
    """Write ``stem.<fmt>`` for each format with fixed metadata; returns the paths. Closes the figure."""
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")  # not with_suffix: stems like 'erc_fmr2.5e-1' hold dots
        buf = io.BytesIO()
        meta = (
            PDF_METADATA
            if fmt == "pdf"
            else PNG_METADATA
            if fmt == "png"
            else {"Date": None}
            if fmt == "svg"
            else None
        )
        fig.savefig(buf, format=fmt, metadata=meta, bbox_inches="tight", pad_inches=0.02)
        path.write_bytes(buf.getvalue())
        written.append(path)
    plt.close(fig)
    return written


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=PNG_METADATA, bbox_inches="tight", pad_inches=0.02, dpi=dpi)
    return buf.getvalue()
