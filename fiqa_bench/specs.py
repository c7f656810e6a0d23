"""Parsing of the user's names: method specs (``name``, ``name:ARG``, ``name@fr_model``), FMR lists,
``--set method.option=value`` overrides and ``--weights name=path`` mappings."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import FiqaError
from .registry import METHODS, Card, split_list

DEFAULT_FMRS = (1e-3, 1e-4)


@dataclass(frozen=True)
class MethodSpec:
    label: str  # as shown in tables: the user's spec string
    name: str  # registry name (possibly "name:ARG")
    bound_fr_model: str | None = None  # "@model": a fixed FR model instead of the evaluating one
    options: dict[str, Any] = field(default_factory=dict, hash=False)


def parse_method_spec(spec: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> MethodSpec:
    name, _, bound = spec.partition("@")
    if _ and not bound:
        raise FiqaError(f"method {spec!r}: nothing after '@'. Use METHOD@FR_MODEL, e.g. serfiq@arcface_r100.")
    card = METHODS.card(name)  # unknown names fail here, with "did you mean"
    opts: dict[str, Any] = {}
    for key in (METHODS.split(name)[0], name, spec):
        opts.update((options or {}).get(key, {}))
    return MethodSpec(label=spec, name=name, bound_fr_model=bound or None, options=declared_only(card, opts))


def declared_only(card: Card, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options in ``options`` that ``card`` declares (``--set crfiqa_l.flip_tta=...`` names both the
    crfiqa_l method and FR model: each gets its own; :func:`check_set_options` rejects the rest)."""
    names = {o.name for o in card.options}
    return {k: v for k, v in options.items() if k in names}


def check_set_options(options: Mapping[str, Mapping[str, Any]]) -> None:
    """Every ``--set`` target must name a registered entry (``name``, ``name:ARG`` or ``method@model``)
    and every option must be declared by one of the cards of that name, with a valid value.

    Raises FiqaError (one line, "did you mean")."""
    from .registry import DATASETS, FR_MODELS, UnknownNameError, suggest_names

    registries = (METHODS, FR_MODELS, DATASETS)
    for target, opts in options.items():
        base = target.partition("@")[0]
        cards = [r.card(base) for r in registries if base in r]
        if not cards:
            names = [n for r in registries for n in r.names()]
            raise UnknownNameError(
                "method, FR model or dataset (--set)", base, suggest_names(base, names), []
            )
        declared = {o.name: c for c in cards for o in c.options}
        for key in opts:
            if key not in declared:
                cards[0].resolve_options({key: opts[key]})  # raises the "did you mean" error
        for card in cards:
            card.resolve_options(declared_only(card, opts))  # raises on a bad value


def parse_fmrs(value: str | Sequence[float] | None) -> list[float]:
    if value is None:
        return list(DEFAULT_FMRS)
    items = split_list(value) if isinstance(value, str) else list(value)
    fmrs = []
    for item in items:
        try:
            f = float(item)
        except (TypeError, ValueError):
            raise FiqaError(f"--fmr: {item!r} is not a number. Use e.g. --fmr 1e-3,1e-4.") from None
        if not 0 < f < 1:
            raise FiqaError(f"--fmr: {f} is outside (0, 1). Use e.g. --fmr 1e-3,1e-4.")
        fmrs.append(f)
    if not fmrs:
        raise FiqaError("--fmr: no value given. Use e.g. --fmr 1e-3,1e-4.")
    return fmrs


def parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_set_options(items: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["serfiq.T=10", "sface.flip_tta=True"]`` -> {"serfiq": {"T": 10}, "sface": {"flip_tta": True}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        target, eq, value = item.partition("=")
        entry, dot, key = target.rpartition(".")
        if not eq or not dot or not entry or not key:
            raise FiqaError(f"--set {item!r}: expected NAME.OPTION=VALUE, e.g. --set serfiq.T=20.")
        out.setdefault(entry, {})[key] = parse_value(value)
    return out


def parse_weights(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, str]:
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise FiqaError(
                f"--weights {item!r}: expected NAME=PATH, e.g. --weights crfiqa_l=~/w/181952backbone.pth."
            )
        out[name] = path
    return out
