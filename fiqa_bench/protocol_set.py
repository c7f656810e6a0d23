"""Which evaluation protocols a run evaluates, with which parameters: the plumbing between the
run/evaluate commands and the evaluation core's protocol registry (``fiqa_bench.evaluation``).

``ProtocolRequest.from_user`` validates ``--protocols``, ``--discard-limit``, ``--starting-error`` and
``--quality-scale`` with the core's own parsers (one ``FiqaError`` line each); ``evaluate_protocols``
runs the core on one score set; ``ProtocolRequest.settings`` gives the cards and parameters recorded in
run.json (:class:`fiqa_bench.results.EvaluationSettings`). Which protocols exist, their rules and
defaults are the registry's: nothing here branches on a protocol's name, except
``FLIP_SUM_PROTOCOLS``, the inputs a protocol needs beyond the pair similarities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .results import EvaluationSettings, ProtocolCard

# Protocols whose published numbers are computed on flip-summed embeddings (image + mirror, REFERENCE.md
# 5): the run gives them the similarities of those embeddings when it has them.
FLIP_SUM_PROTOCOLS = frozenset({"verification_insightface"})
FLIP_SUM_KEY = "similarity_flip_sum"


def _core_defaults() -> tuple[str, ...]:
    from .evaluation import DEFAULT_PROTOCOLS

    return tuple(DEFAULT_PROTOCOLS)


def card_for(name: str, parameters: Mapping[str, Any] | None = None) -> ProtocolCard:
    """The results-schema card of a registered protocol (name, kind, title, source, rule) with this run's
    parameters; ``needs`` lists the inputs beyond pair similarities ("flip_sum")."""
    from .evaluation import get_protocol

    c = get_protocol(name).card
    params = {p.name: p.default for p in c.parameters}
    params.update(parameters or {})
    if c.ties:
        params["ties"] = c.ties
    needs = ("flip_sum",) if name in FLIP_SUM_PROTOCOLS else ()
    return ProtocolCard(c.name, c.kind, c.title, c.source, c.rule, params, needs)


def _with_suggestion(parse: Any, value: Any) -> Any:
    """Run the core's parser; an unknown protocol name gets a did-you-mean in its one-line error."""
    import difflib

    from .errors import FiqaError
    from .evaluation import protocol_names

    try:
        return parse(value)
    except FiqaError as exc:
        known = protocol_names()
        given = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value or [])
        close = [
            c
            for g in given
            if g not in known and g != "all"
            for c in difflib.get_close_matches(g, known, n=2, cutoff=0.6)
        ]
        if not close:
            raise
        raise FiqaError(f"{exc} Did you mean {', '.join(repr(c) for c in dict.fromkeys(close))}?") from None


@dataclass(frozen=True)
class ProtocolRequest:
    """The protocols and parameters a run asks for (``--protocols``, ``--discard-limit``,
    ``--starting-error``, ``--quality-scale``), validated."""

    protocols: tuple[str, ...] = field(default_factory=_core_defaults)
    discard_limits: tuple[float, ...] = (0.2,)
    starting_errors: tuple[float, ...] | None = None
    quality_scale: str = "none"

    @classmethod
    def from_user(
        cls,
        protocols: Any = None,
        discard_limit: Any = None,
        starting_error: Any = None,
        quality_scale: Any = None,
    ) -> ProtocolRequest:
        """Raises FiqaError (the core's EvaluationError) naming the flag, the bad value and an example."""
        from .evaluation.options import (
            parse_discard_limits,
            parse_protocol_option,
            parse_quality_scale,
            parse_starting_errors,
        )

        starting = parse_starting_errors(starting_error)
        return cls(
            tuple(_with_suggestion(parse_protocol_option, protocols)),
            tuple(parse_discard_limits(discard_limit)),
            None if starting is None else tuple(starting),
            parse_quality_scale(quality_scale),
        )

    @property
    def needs_flip_sum(self) -> bool:
        """True when a requested protocol needs flip-summed embeddings (insightface verification accuracy)."""
        return any(name in FLIP_SUM_PROTOCOLS for name in self.protocols)

    def scale(self, image_quality: np.ndarray) -> np.ndarray:
        """Image qualities mapped by ``--quality-scale`` (the core's ``scale_qualities``; 'none': as given)."""
        from .evaluation import scale_qualities

        return scale_qualities(image_quality, self.quality_scale)

    def settings(self, fmrs: Sequence[float], bootstrap: int, seed: int) -> EvaluationSettings:
        from .evaluation import DEFAULT_REJECT_FRACTIONS

        fractions = [float(r) for r in DEFAULT_REJECT_FRACTIONS]
        run_params: dict[str, dict[str, Any]] = {
            "erc": {"fmr": list(fmrs), "reject_fractions": fractions},
            "edc": {
                "fmr": list(fmrs) if self.starting_errors is None else None,
                "starting_error": list(self.starting_errors) if self.starting_errors else None,
                "discard_limit": list(self.discard_limits),
            },
        }
        cards = []
        for name in self.protocols:
            kind = card_for(name).kind
            cards.append(card_for(name, {**run_params.get(kind, {}), "quality_scale": self.quality_scale}))
        return EvaluationSettings(
            protocols=cards,
            fmrs=list(fmrs),
            reject_fractions=fractions,
            discard_limits=list(self.discard_limits),
            starting_errors=list(self.starting_errors or []),
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
    """Rows and curve points (a DataFrame) of every requested protocol on one score set (the core's
    ``evaluate``; ``protocol`` holds registry names, every row its parameters). Protocols in
    ``FLIP_SUM_PROTOCOLS`` are evaluated on ``extra["similarity_flip_sum"]`` when given (their rows say
    so in ``scores``); every other row has ``scores`` = "embeddings"."""
    from .evaluation import evaluate

    extra = extra or {}
    flip = [p for p in request.protocols if p in FLIP_SUM_PROTOCOLS and FLIP_SUM_KEY in extra]
    plain = [p for p in request.protocols if p not in flip]
    common = dict(
        folds=folds,
        bootstrap=bootstrap,
        seed=seed,
        discard_limits=list(request.discard_limits),
        starting_error=list(request.starting_errors) if request.starting_errors else None,
        progress=progress,
    )
    rows: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    for names, sim, scores in (
        (plain, similarity, "embeddings"),
        (flip, extra.get(FLIP_SUM_KEY), "flip-summed embeddings"),
    ):
        if not names:
            continue
        got, points = evaluate(
            sim, genuine, qualities if scores == "embeddings" else {}, fmrs, protocols=names, **common
        )
        for r in got:
            r["scores"] = scores
            r["quality_scale"] = request.quality_scale
        rows += got
        frames.append(points.to_frame().assign(quality_scale=request.quality_scale))
    curves = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return rows, curves
