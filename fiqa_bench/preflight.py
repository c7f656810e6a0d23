"""Checks of a run before any work starts: every problem found at once, in one message.

A fresh machine that lacks three weight files and a dataset should hear about all four in the first
second, not one per attempt. ``preflight`` collects, for the run's FR models, methods and datasets:
weight files that are neither given (``--weights NAME=PATH``, checked to exist) nor found in the weights
directory; Python packages that are missing or broken; datasets that are not present under the data
root (their own status line says where to put them); and ``--weights`` names that are not part of the
run (a typo would otherwise be ignored). Range checks of the run's numbers are in :func:`check_counts`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import FiqaError
from .registry import FR_MODELS, METHODS, Card, check_requirements


def check_counts(*, batch_size: Any, workers: Any, bootstrap: Any, seed: Any) -> tuple[int, int, int, int]:
    """--batch-size >= 1, --workers >= 0, --bootstrap >= 0, --seed an integer: one-line errors."""
    out = []
    for flag, value, low in (("--batch-size", batch_size, 1), ("--workers", workers, 0), ("--bootstrap", bootstrap, 0),
                             ("--seed", seed, None)):  # fmt: skip
        try:
            v = int(value)
            if isinstance(value, float) and v != value:
                raise ValueError
        except (TypeError, ValueError):
            raise FiqaError(f"{flag} {value!r}: expected an integer.") from None
        if low is not None and v < low:
            raise FiqaError(f"{flag} {v}: must be at least {low}.")
        out.append(v)
    return out[0], out[1], out[2], out[3]


def _near(name: str, names: Iterable[str]) -> str:
    """' (did you mean X?)' from the run's names, else from every registered name (then: not in the run)."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    everything = [*METHODS.names(), *FR_MODELS.names()]
    close = difflib.get_close_matches(name, everything, n=1, cutoff=0.6)
    return (
        f" (did you mean {close[0]!r}? it is not in this run: add it to --methods or --models)"
        if close
        else ""
    )


def _weight_problems(card: Card, label: str, given: str | None, weights_dir: Any) -> list[str]:
    if given is not None:
        p = Path(given).expanduser()
        return [] if p.is_file() else [f"{label}: weights file {p} (from --weights) does not exist"]
    out = []
    for req in check_requirements(card, weights_dir):
        if req.present:
            continue
        what = req.what.split(":", 1)
        if what[0] == "weights":
            out.append(
                f"{label}: weights file {what[1]} not found: {req.detail}, or pass --weights {card.name}=PATH"
            )
        else:
            out.append(f"{label}: Python package {what[1]} is missing: {req.detail}")
    return out


def preflight(
    *,
    models: Iterable[str],
    methods: Iterable[Any],
    datasets: Iterable[str],
    weights: Mapping[str, str],
    weights_dir: Any,
    data_root: Any,
    dataset_options: Mapping[str, Mapping[str, Any]],
) -> None:
    """Raise one FiqaError listing everything that would stop the run (see the module docstring).

    ``methods``: MethodSpec-like objects with ``label``, ``name`` and ``bound_fr_model``;
    ``dataset_options``: the --set options of each dataset label."""
    from .build import build_dataset

    methods = list(methods)
    models = list(dict.fromkeys([*models, *(m.bound_fr_model for m in methods if m.bound_fr_model)]))
    problems: list[str] = []
    known = set(models) | {m.name for m in methods} | {m.label for m in methods}
    known |= {METHODS.split(m.name)[0] for m in methods}
    for name in weights:
        if name not in known:
            problems.append(
                f"--weights {name}=...: {name!r} is not a method or FR model of this run{_near(name, known)}"
            )
    for name in models:
        card = FR_MODELS.card(name)
        if not card.takes_argument:
            problems += _weight_problems(card, name, weights.get(name), weights_dir)
    for spec in methods:
        card = METHODS.card(spec.name)
        if not card.takes_argument:
            problems += _weight_problems(
                card, spec.label, weights.get(spec.label) or weights.get(spec.name), weights_dir
            )
    for name in datasets:
        try:
            status = build_dataset(name, dataset_options.get(name, {}), root=data_root).status()
        except FiqaError as exc:
            problems.append(f"dataset {name}: {exc}")
            continue
        if not status.present:
            problems.append(f"dataset {name}: {status.detail}")
    if problems:
        items = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
        raise FiqaError(
            f"cannot start the run, {len(dict.fromkeys(problems))} thing(s) missing or wrong (nothing was computed):\n{items}"
        )
