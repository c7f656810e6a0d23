"""ERC/EDC figures, the appendix grid and pair-quality distributions, from saved curves and pairs only."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._load import Results, protocol_heading, same_fmr
from ._style import COLUMN_WIDTH_IN, TEXT_WIDTH_IN, Style, theme

GENUINE_COLOR = "#0072B2"
IMPOSTOR_COLOR = "#D55E00"
XLABEL = {"ERC": "Fraction of pairs rejected", "EDC": "Fraction of pairs discarded"}
YLABEL = {"ERC": "FNMR (threshold recomputed)", "EDC": "FNMR (threshold fixed)"}
AREA = {"ERC": "AUC", "EDC": "pAUC"}


def _curve(res: Results, variant: str) -> str:
    """The curve family ("ERC" or "EDC") of a variant, from its saved protocol card."""
    return res.card(res.variant_protocol(variant)).kind.upper()


def _limit(res: Results, results: pd.DataFrame, curve: str) -> float | None:
    if curve == "ERC":
        return float(res.reject_fractions[-1]) if res.reject_fractions else None
    vals = results["discard_limit"].dropna() if "discard_limit" in results.columns else pd.Series(dtype=float)
    return float(vals.iloc[0]) if len(vals) else None


def _auc_label(name: str, auc: float) -> str:
    return f"{name} ({auc:.4f})" if math.isfinite(auc) else f"{name} (n/a)"


def draw_curves(
    ax: Axes,
    res: Results,
    styles: dict[str, Style],
    dataset: str,
    fr_model: str,
    protocol: str,
    fmr: float,
    *,
    legend_auc: bool = True,
) -> list[tuple[object, str]]:
    """Draw every method's curve for one (dataset, FR model, protocol variant, FMR); returns legend handles."""
    curve = _curve(res, protocol)
    cur = res.curves
    rows = res.results
    rsel = rows[
        (rows["dataset"] == dataset)
        & (rows["fr_model"] == fr_model)
        & (rows["variant"] == protocol)
        & same_fmr(rows["fmr"], fmr)
    ]
    curve_variant = (
        rsel["curve_variant"].iloc[0] if len(rsel) else protocol
    )  # e.g. one EDC curve, several discard limits
    sel = cur[
        (cur["dataset"] == dataset)
        & (cur["fr_model"] == fr_model)
        & (cur["variant"] == curve_variant)
        & same_fmr(cur["fmr"], fmr)
    ]
    aucs = dict(zip(rsel["method"], rsel["auc"], strict=True))
    handles: list[tuple[object, str]] = []
    drawn: list[tuple[np.ndarray, np.ndarray]] = []
    n_ranked = sum(1 for m in styles if not styles[m].reference)
    band_alpha = min(0.15, 0.5 / max(1, n_ranked))  # many overlapping bands must not bury the curves
    methods = [m for m in sorted(styles) if not styles[m].reference] + [
        m for m in sorted(styles) if styles[m].reference
    ]
    for i, method in enumerate(methods):
        c = sel[sel["method"] == method]
        if c.empty:
            continue
        x = c["fraction"].to_numpy(float)
        y = c["fnmr"].to_numpy(float)
        st = styles[method]
        step = "post" if curve == "EDC" else None
        kw = st.kwargs()
        if st.marker is not None:
            # Markers spread along the line and offset per method so they do not sit on top of each other.
            kw["markevery"] = (0.012 * (i % 6), 0.11)
        drawn.append((x, y))
        (line,) = ax.plot(
            x, y, drawstyle="steps-post" if step else "default", zorder=3 if not st.reference else 2, **kw
        )
        if not st.reference and {"fnmr_lo", "fnmr_hi"} <= set(
            c.columns
        ):  # no bands on reference lines: less clutter
            lo, hi = c["fnmr_lo"].to_numpy(float), c["fnmr_hi"].to_numpy(float)
            if np.isfinite(lo).any() and np.isfinite(hi).any():
                ax.fill_between(x, lo, hi, color=st.color, alpha=band_alpha, linewidth=0, step=step, zorder=1)
        label = _auc_label(method, float(aucs.get(method, float("nan")))) if legend_auc else method
        handles.append((line, label))
    limit = _limit(res, rsel, curve)
    if curve == "EDC" and limit is not None:
        ax.axvline(limit, color="#333333", linewidth=0.6, linestyle=(0, (1, 1.5)), zorder=0)
        ax.set_xlim(0, min(1.0, max(0.5, 2.5 * limit)))
    elif curve == "ERC" and limit:
        ax.set_xlim(0, limit)
    # y range from the curves in view (bands may extend beyond it and are clipped; the curves never are).
    xmax = ax.get_xlim()[1]
    top = max((float(np.nanmax(y[x <= xmax + 1e-9], initial=0.0)) for x, y in drawn), default=0.0)
    ax.set_ylim(0, top * 1.08 if top > 0 else 0.01)
    ax.grid(True)
    return handles


def _has_bands(res: Results) -> bool:
    return {"fnmr_lo", "fnmr_hi"} <= set(res.curves.columns) and bool(res.curves["fnmr_lo"].notna().any())


def _title(res: Results, dataset: str, fr_model: str, protocol: str, fmr: float) -> str:
    """'ERC (erc: CR-FIQA reference rule), FMR 1e-3' over '<dataset> | <FR model>'."""
    return f"{protocol_heading(res, protocol, fmr)}\n{dataset} | {fr_model}"


def curve_figure(
    res: Results, styles: dict[str, Style], dataset: str, fr_model: str, protocol: str, fmr: float
) -> Figure:
    """One column-wide ERC or EDC plot with the legend (method and AUC) below the axes."""
    with theme():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.3))
        handles = draw_curves(ax, res, styles, dataset, fr_model, protocol, fmr)
        curve = _curve(res, protocol)
        ax.set_xlabel(XLABEL.get(curve, "Fraction"))
        ax.set_ylabel(YLABEL.get(curve, "FNMR"))
        ax.set_title(_title(res, dataset, fr_model, protocol, fmr), fontsize=6.0)
        if handles:
            ncol = 2 if max(len(h[1]) for h in handles) > 16 else 3
            fig.legend(
                [h[0] for h in handles],
                [h[1] for h in handles],
                loc="upper center",
                bbox_to_anchor=(0.5, 0.0),
                ncol=ncol,
                handlelength=2.6,
                columnspacing=1.0,
                title=f"method ({AREA.get(curve, 'area')})"
                + ("; bands: 95% bootstrap CI" if _has_bands(res) else ""),
                title_fontsize=6.0,
            )
        # Fixed margins instead of tight_layout (slow): room for the x label above the legend; savefig's
        # bbox_inches="tight" then crops to the content.
        fig.subplots_adjust(left=0.14, right=0.98, top=0.86, bottom=0.2)
    return fig


def grid_figure(res: Results, styles: dict[str, Style], protocol: str, fmr: float) -> Figure:
    """Appendix figure: rows = datasets, columns = FR models, one shared legend at the bottom."""
    datasets, models = res.datasets, res.fr_models
    ncols = len(models)
    width = min(TEXT_WIDTH_IN, max(COLUMN_WIDTH_IN, 2.4 * ncols))
    with theme():
        fig, axes = plt.subplots(
            len(datasets), ncols, figsize=(width, 1.75 * len(datasets) + 0.3), squeeze=False, sharex=True
        )
        seen: dict[str, object] = {}
        for r, ds in enumerate(datasets):
            for c, fr in enumerate(models):
                ax = axes[r][c]
                for line, label in draw_curves(ax, res, styles, ds, fr, protocol, fmr, legend_auc=False):
                    seen.setdefault(label, line)
                if r == 0:
                    ax.set_title(fr)
                if c == 0:
                    ax.set_ylabel(f"{ds}\nFNMR")
                if r == len(datasets) - 1:
                    ax.set_xlabel(XLABEL.get(_curve(res, protocol), "Fraction"))
        for r in range(len(datasets)):
            # Same y range along a row (one dataset) so FR models compare at a glance.
            top = max(ax.get_ylim()[1] for ax in axes[r])
            for c, ax in enumerate(axes[r]):
                ax.set_ylim(0, top)
                if c:
                    ax.tick_params(labelleft=False)
        fig.suptitle(protocol_heading(res, protocol, fmr), fontsize=8)
        if seen:
            labels = sorted(seen, key=lambda m: (styles[m].reference, m))
            fig.legend(
                [seen[m] for m in labels],
                labels,
                loc="upper center",
                bbox_to_anchor=(0.5, 0.0),
                ncol=min(6, len(labels)),
                handlelength=2.6,
                columnspacing=1.0,
            )
        fig.tight_layout()
    return fig


def distribution_figure(
    arrays: dict[str, np.ndarray], methods: list[str], dataset: str, fr_model: str
) -> Figure:
    """Per method: pair quality of genuine vs impostor pairs (density histograms).

    A useful quality measure is not expected to separate genuine from impostor pairs; what it should do
    is put the genuine pairs that fail verification at the low end. The panels show the raw ranges and
    shapes, so ties (a spike) and outliers are visible.
    """
    genuine = arrays["genuine"]
    n = max(1, len(methods))
    ncols = 2 if n > 1 else 1
    nrows = math.ceil(n / ncols)
    with theme():
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(COLUMN_WIDTH_IN if ncols == 1 else TEXT_WIDTH_IN / 1.4, 1.35 * nrows + 0.45),
            squeeze=False,
        )
        for k, method in enumerate(methods):
            ax = axes[k // ncols][k % ncols]
            q = np.asarray(arrays[f"q__{method}"], dtype=float)
            finite = np.isfinite(q)
            lo, hi = np.quantile(q[finite], [0.005, 0.995]) if finite.any() else (0.0, 1.0)
            if not hi > lo:
                lo, hi = lo - 0.5, hi + 0.5
            bins = np.linspace(lo, hi, 31)
            qc = np.clip(q[finite], lo, hi)
            g = genuine[finite]
            ax.hist(
                qc[g],
                bins=bins,
                density=True,
                histtype="stepfilled",
                color=GENUINE_COLOR,
                alpha=0.35,
                linewidth=0,
            )
            ax.hist(
                qc[g],
                bins=bins,
                density=True,
                histtype="step",
                color=GENUINE_COLOR,
                linewidth=1.0,
                label=f"genuine ({int(g.sum())})",
            )
            ax.hist(
                qc[~g],
                bins=bins,
                density=True,
                histtype="step",
                color=IMPOSTOR_COLOR,
                linewidth=1.0,
                linestyle=(0, (3, 1.5)),
                label=f"impostor ({int((~g).sum())})",
            )
            ax.set_title(method)
            ax.set_yticks([])
            ax.grid(True, axis="x")
            if k // ncols == nrows - 1 or k + ncols >= n:
                ax.set_xlabel("pair quality (min of the two images)")
        for k in range(n, nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.suptitle(f"Pair-quality distributions | {dataset} | {fr_model}", fontsize=8)
        fig.legend(
            handles,
            [lab.split(" (")[0] + " pairs" for lab in labels],
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=2,
        )
        fig.tight_layout()
    return fig
