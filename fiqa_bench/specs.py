"""Parsing of the user's names: method specs (``name``, ``name:ARG``, ``name@fr_model``), FMR lists,
``--set method.option=value`` overrides and ``--weights name=path`` mappings."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import FiqaError
from .registry import METHODS, split_list

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
    METHODS.get(name)  # unknown names fail here, with "did you mean"
    opts: dict[str, Any] = {}
    for key in (METHODS.split(name)[0], name, spec):
        opts.update((options or {}).get(key, {}))
    return MethodSpec(label=spec, name=name, bound_fr_model=bound or None, options=opts)


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
            raise FiqaError(f"--weights {item!r}: expected NAME=PATH, e.g. --weights crfiqa_l=~/w/181952backbone.pth.")
        out[name] = path
    return out
