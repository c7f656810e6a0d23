"""``fiqa-bench list``: every registered entry with what it needs and whether that is here."""

from __future__ import annotations

import os

from .errors import FiqaError
from .registry import DATASETS, FR_MODELS, METHODS, Card, check_requirements


def _needs(card: Card, weights_dir: str | os.PathLike[str] | None) -> str:
    parts = []
    if card.needs_fr_model != "none":
        models = ",".join(card.supported_fr_models) if card.supported_fr_models else card.needs_fr_model
        parts.append(f"FR model: {models}")
    if card.needs_capabilities:
        parts.append(f"FR-model capabilities: {', '.join(card.needs_capabilities)}")
    for req in check_requirements(card, weights_dir):
        mark = "ok" if req.present else "MISSING"
        parts.append(f"{req.what} [{mark}{': ' + req.detail if not req.present and req.detail else ''}]")
    if card.takes_argument:
        parts.append(f"use as {card.name}:ARG")
    return "; ".join(parts) or "nothing"


def _options(card: Card) -> list[str]:
    """One line per declared option: name=default, choices, help (what --set NAME.OPTION accepts)."""
    out = []
    for o in card.options:
        choices = f" ({' | '.join(map(str, o.choices))})" if o.choices else ""
        speed = " [speed only]" if not o.fingerprint else ""
        out.append(f"  {'':<20} option {o.name}={o.default!r}{choices}{speed}: {o.help}")
    return out


def list_entries(what: str = "all", *, data_root: str | None = None, weights_dir: str | None = None) -> str:
    lines: list[str] = []
    if what in ("all", "methods"):
        lines.append("Quality methods (raw direction flipped so higher = better):")
        for card in METHODS.cards():
            ref = " [reference line, not a method]" if card.reference_line else ""
            direction = (
                "lower raw = better" if card.score_direction == "lower_better" else "higher raw = better"
            )
            lines.append(f"  {card.name:<20} {card.summary}{ref}")
            lines.append(f"  {'':<20} raw: {direction}; needs: {_needs(card, weights_dir)}")
            lines.extend(_options(card))
    if what in ("all", "models"):
        lines.append("FR models:")
        for card in FR_MODELS.cards():
            dim = f"{card.embedding_size}-D, " if card.embedding_size else ""
            size = f"{card.input_size[0]}x{card.input_size[1]} " if card.input_size else ""
            lines.append(f"  {card.name:<20} {card.summary}")
            lines.append(
                f"  {'':<20} {dim}{size}{card.colour} {card.normalisation}; needs: {_needs(card, weights_dir)}"
            )
            lines.extend(_options(card))
    if what in ("all", "datasets"):
        from .build import build_dataset

        lines.append("Datasets:")
        for card in DATASETS.cards():
            if card.takes_argument:
                lines.append(f"  {card.name:<20} {card.summary} (use as {card.name}:ARG)")
                lines.extend(_options(card))
                continue
            try:
                status = build_dataset(card.name, root=data_root).status()
                mark = "present" if status.present else "missing"
                pairs = f", {status.n_pairs} pairs" if status.n_pairs is not None else ""
                detail = f"{mark}{pairs}: {status.detail}"
            except FiqaError as exc:
                detail = f"unavailable: {exc}"
            lines.append(f"  {card.name:<20} {card.summary}")
            lines.append(f"  {'':<20} {detail}")
            lines.extend(_options(card))
    if what in ("all", "protocols"):
        from .evaluation import DEFAULT_PROTOCOLS, protocol_cards

        lines.append("Evaluation protocols (--protocols; default " + ",".join(DEFAULT_PROTOCOLS) + "):")
        for pc in protocol_cards():
            lines.append(
                f"  {pc.name:<24} {pc.kind.upper() if pc.kind != 'verification' else 'accuracy'}: {pc.title}"
            )
            lines.append(f"  {'':<24} source: {pc.source}")
    for reg in (METHODS, FR_MODELS, DATASETS):
        for err in reg.plugin_errors:
            lines.append(f"plugin error: {err}")
    return "\n".join(lines)
