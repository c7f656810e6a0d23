"""Command-line values of the evaluation options, validated once for ``run`` and ``evaluate``.

Each parser returns the value ``evaluate`` takes or raises ``EvaluationError`` (a ``FiqaError``: the
CLI prints it as one line and exits 2) naming the flag, the bad value and an example.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._core import EvaluationError
from .registry import DEFAULT_PROTOCOLS, parse_protocols, protocol_names
from .scale import QUALITY_SCALES


def _numbers(value: str | float | Sequence[float], flag: str, example: str) -> list[float]:
    items = (
        [s.strip() for s in value.split(",") if s.strip()]
        if isinstance(value, str)
        else list(value if isinstance(value, Sequence) else [value])
    )
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            raise EvaluationError(f"{flag}: {item!r} is not a number. Use e.g. {flag} {example}.") from None
    if not out:
        raise EvaluationError(f"{flag}: no value given. Use e.g. {flag} {example}.")
    return out


def parse_protocol_option(value: str | Sequence[str] | None) -> list[str]:
    """--protocols erc,edc (default: erc,edc; 'all' = every registered protocol)."""
    try:
        return parse_protocols(value, DEFAULT_PROTOCOLS)
    except EvaluationError as exc:
        raise EvaluationError(f"--protocols: {exc}. Use e.g. --protocols erc,erc_strict,edc") from None


def parse_discard_limits(value: str | float | Sequence[float] | None, default: float = 0.2) -> list[float]:
    """--discard-limit 0.2,0.3: EDC pAUC limits in (0, 1]."""
    if value is None:
        return [default]
    vals = _numbers(value, "--discard-limit", "0.2,0.3")
    for v in vals:
        if not 0 < v <= 1:
            raise EvaluationError(
                f"--discard-limit: {v:g} is outside (0, 1]. Use e.g. --discard-limit 0.2,0.3."
            )
    return list(dict.fromkeys(vals))


def parse_starting_errors(value: str | float | Sequence[float] | None) -> list[float] | None:
    """--starting-error 0.05[,0.1]: Schlett's starting error(s) in (0, 1) (None: thresholds from --fmr)."""
    if value is None:
        return None
    vals = _numbers(value, "--starting-error", "0.05")
    for v in vals:
        if not 0 < v < 1:
            raise EvaluationError(
                f"--starting-error: {v:g} is outside (0, 1). Use e.g. --starting-error 0.05."
            )
    return list(dict.fromkeys(vals))


def parse_quality_scale(value: str | None) -> str:
    """--quality-scale none|minmax|rank (default none)."""
    v = "none" if value is None else str(value).strip().lower()
    if v not in QUALITY_SCALES:
        raise EvaluationError(
            f"--quality-scale: {value!r} is not one of {', '.join(QUALITY_SCALES)}. Use e.g. --quality-scale minmax."
        )
    return v


__all__ = [
    "parse_discard_limits",
    "parse_protocol_option",
    "parse_quality_scale",
    "parse_starting_errors",
    "protocol_names",
]
