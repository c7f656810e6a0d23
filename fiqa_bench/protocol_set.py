"""Which evaluation protocols a run evaluates, and how their rows are named: the plumbing between the
run/evaluate commands and the evaluation core (``fiqa_bench.evaluation``).

``parse_protocols`` turns ``--protocols`` into registry names (default: the core's default set);
``evaluate_protocols`` runs the core on one score set and returns rows and curve points whose
``protocol`` column is the protocol's registry name; ``settings`` gives the cards and parameters
recorded in run.json (:class:`fiqa_bench.results.EvaluationSettings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import FiqaError, UnknownNameError
from .registry import split_list
from .results import EvaluationSettings, ProtocolCard

# The rules the core implements today, as cards. The core's row label ("ERC"/"EDC") -> registry name.
CARDS: dict[str, ProtocolCard] = {
    "erc_strict": ProtocolCard(
        name="erc_strict",
        kind="erc",
        title="one decision rule for FMR and FNMR",
        source="fiqa-bench (agrees with pyeer)",
        rule="threshold recomputed on the retained pairs at each reject fraction: the impostor score whose FMR "
        "(share of impostors strictly above it) is nearest the target; genuine pairs at or below it are false "
        "non-matches; trapezoid AUC over the reject fractions",
    ),
    "edc": ProtocolCard(
        name="edc",
        kind="edc",
        title="Schlett et al. error-versus-discard",
        source="dasec/quality-assessment-evaluation edc.py (ISO/IEC 29794-1)",
        rule="threshold fixed once on all pairs for the FMR target; pairs discarded lowest quality first, tied "
        "qualities together; stepwise pAUC up to the discard limit",
    ),
}
CORE_LABEL = {"ERC": "erc_strict", "EDC": "edc"}
DEFAULT_PROTOCOLS = ("erc_strict", "edc")


def parse_protocols(value: str | Sequence[str] | None) -> list[str]:
    """Comma list (or sequence) of protocol names, or 'all'; None/empty -> the default set. Unknown
    names raise UnknownNameError with a did-you-mean."""
    import difflib

    names = split_list(value) or list(DEFAULT_PROTOCOLS)
    out: list[str] = []
    for name in names:
        for n in list(CARDS) if name.lower() == "all" else [name.lower()]:
            if n not in CARDS:
                raise UnknownNameError(
                    "protocol", n, difflib.get_close_matches(n, list(CARDS), n=3, cutoff=0.5), list(CARDS)
                )
            if n not in out:
                out.append(n)
    return out


def parse_limits(value: str | float | Sequence[float] | None) -> list[float]:
    """--discard-limit '0.2,0.3' -> [0.2, 0.3]; None -> the core's default limit."""
    from .evaluation import DEFAULT_DISCARD_LIMIT

    if value is None or (isinstance(value, str) and not value.strip()):
        return [float(DEFAULT_DISCARD_LIMIT)]
    items = (
        split_list(value) if isinstance(value, str) else list(np.atleast_1d(np.asarray(value, dtype=float)))
    )
    out: list[float] = []
    for item in items:
        try:
            v = float(item)
        except ValueError:
            raise FiqaError(
                f"--discard-limit {item!r} is not a number; give fractions in (0, 1], e.g. 0.2,0.3."
            ) from None
        if not 0 < v <= 1:
            raise FiqaError(
                f"--discard-limit {v:g} is outside (0, 1]; give fractions of the pairs, e.g. 0.2,0.3."
            )
        if v not in out:
            out.append(v)
    return out


@dataclass(frozen=True)
class ProtocolRequest:
    """The protocols and parameters a run asks for (what ``--protocols``, ``--discard-limit``,
    ``--starting-error`` and ``--quality-scale`` say)."""

    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    discard_limits: tuple[float, ...] = (0.2,)
    starting_error: float | None = None
    quality_scale: str | None = None

    @classmethod
    def from_user(
        cls,
        protocols: Any = None,
        discard_limit: Any = None,
        starting_error: Any = None,
        quality_scale: Any = None,
    ) -> ProtocolRequest:
        se = None if starting_error in (None, "") else float(starting_error)
        if se is not None and not 0 <= se < 1:
            raise FiqaError(f"--starting-error {se:g} is outside [0, 1); give an FNMR, e.g. 0.05.")
        if se is not None or quality_scale not in (None, "", "none"):
            raise FiqaError(
                "--starting-error and --quality-scale need the protocol-registry evaluation core, which this "
                "build does not have yet; leave them out."
            )
        return cls(tuple(parse_protocols(protocols)), tuple(parse_limits(discard_limit)), se, None)

    @property
    def needs_flip_sum(self) -> bool:
        """True when a requested protocol needs flip-summed embeddings (insightface verification accuracy)."""
        return any("flip_sum" in CARDS[name].needs for name in self.protocols)

    def settings(self, fmrs: Sequence[float], bootstrap: int, seed: int) -> EvaluationSettings:
        from .evaluation import DEFAULT_REJECT_FRACTIONS

        cards = []
        for name in self.protocols:
            card = CARDS[name]
            params: dict[str, Any] = {"fmrs": list(fmrs)}
            if card.kind == "erc":
                params["reject_fractions"] = [float(r) for r in DEFAULT_REJECT_FRACTIONS]
            if card.kind == "edc":
                params |= {"discard_limits": list(self.discard_limits), "starting_error": self.starting_error}
            cards.append(
                ProtocolCard(card.name, card.kind, card.title, card.source, card.rule, params, card.needs)
            )
        return EvaluationSettings(
            protocols=cards,
            fmrs=list(fmrs),
            reject_fractions=[float(r) for r in DEFAULT_REJECT_FRACTIONS],
            discard_limits=list(self.discard_limits),
            starting_error=self.starting_error,
            quality_scale=self.quality_scale,
            bootstrap=bootstrap,
            seed=seed,
        )


def evaluate_protocols(
    similarity: np.ndarray,
    genuine: np.ndarray,
    qualities: Mapping[str, np.ndarray],
    fmrs: Sequence[float],
    request: ProtocolRequest,
    *,
    folds: np.ndarray | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    progress: bool = False,
    extra: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Rows and curve points (a DataFrame) of every requested protocol on one score set; the
    ``protocol`` column holds registry names. EDC is evaluated once per discard limit. ``extra``: inputs
    some protocols need (``similarity_flip_sum``: similarities of flip-summed embeddings)."""
    from .evaluation import evaluate

    rows: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    wanted = set(request.protocols)
    for k, limit in enumerate(request.discard_limits):
        if k and "edc" not in wanted:
            break
        got, points = evaluate(
            similarity,
            genuine,
            qualities,
            fmrs,
            folds=folds,
            bootstrap=bootstrap,
            seed=seed,
            discard_limit=limit,
            progress=progress,
        )
        keep = {"edc"} if k else wanted
        for r in got:
            name = CORE_LABEL[r["protocol"]]
            if name in keep:
                rows.append({**r, "protocol": name})
        frame = points.to_frame()
        frame["protocol"] = frame["protocol"].map(CORE_LABEL)
        frame = frame[frame["protocol"].isin(keep)]
        frame["discard_limit"] = np.where(frame["protocol"] == "edc", limit, np.nan)
        frames.append(frame)
    curves = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return rows, curves


def name_core_rows(results: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows and curve points of a direct ``fiqa_bench.evaluation.evaluate`` call with the core's ERC/EDC
    labels replaced by protocol registry names (and the EDC discard limit on the curve points)."""
    results = results.assign(protocol=results["protocol"].map(lambda p: CORE_LABEL.get(p, p)))
    curves = curves.assign(protocol=curves["protocol"].map(lambda p: CORE_LABEL.get(p, p)))
    limits = results.loc[results["protocol"] == "edc", "discard_limit"].dropna().unique()
    if len(limits) == 1:
        curves["discard_limit"] = np.where(curves["protocol"] == "edc", float(limits[0]), np.nan)
    return results, curves
