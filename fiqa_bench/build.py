"""Building plug-ins: the one place where a registry entry becomes an object (see the contract in
:mod:`fiqa_bench.types`).

``build`` validates the user's options against the card, resolves the ``name:ARGUMENT`` form, checks
python packages and (for methods) the FR-model combination, calls the factory with a
:class:`~fiqa_bench.types.BuildContext` and binds the declared state onto the result. No signature is
inspected: every factory takes the context and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .device import resolve_device
from .errors import UnsupportedCombinationError
from .registry import DATASETS, FR_MODELS, METHODS, Card, Registry, require_packages
from .types import BuildContext, Dataset, FRModel, Plugin, QualityMethod, missing_capabilities

PathLike = str | os.PathLike[str]


def _path(value: PathLike | None) -> Path | None:
    return Path(value).expanduser() if value else None


def build(
    registry: Registry,
    spec: str,
    options: Mapping[str, Any] | None = None,
    *,
    device: str = "cpu",
    weights: PathLike | None = None,
    weights_dir: PathLike | None = None,
    fr_model: FRModel | None = None,
    root: PathLike | None = None,
    cache_dir: PathLike | None = None,
    batch_size: int | None = None,
) -> Any:
    """The plug-in ``spec`` (``name`` or ``name:ARGUMENT``) of ``registry``, built and bound.

    Raises FiqaError subclasses (unknown name/option, bad value, missing package or weights) as one line.
    """
    entry = registry.get(spec)
    card = entry.card
    require_packages(card)
    _, argument = registry.split(spec)
    if card.takes_argument and not argument and card.kind != "dataset":  # datasets: optional (pairs + root)
        raise UnsupportedCombinationError(
            f"{card.name} needs an argument: use it as '{card.name}:VALUE' ({card.summary})."
        )
    ctx = BuildContext(
        card=card,
        options=card.resolve_options(options),
        device=device,
        weights=_path(weights),
        weights_dir=_path(weights_dir),
        argument=argument,
        fr_model=fr_model,
        root=_path(root),
        cache_dir=_path(cache_dir),
        batch_size=batch_size,
    )
    obj = entry.factory(ctx)
    if not isinstance(obj, Plugin):
        raise TypeError(
            f"{registry.kind} factory {card.name!r} returned {type(obj).__name__}, not a fiqa_bench plug-in"
        )
    obj.bind(ctx)
    return obj


def check_method_supports(method_card: Card, model: FRModel | None) -> None:
    """One clear UnsupportedCombinationError for a method/FR-model combination that cannot work:
    a missing model, a model outside ``supported_fr_models``, or a missing structural capability."""
    need = method_card.needs_fr_model
    if need == "none":
        return
    if model is None:
        raise UnsupportedCombinationError(
            f"{method_card.name} needs an FR model ({need}); pass fr_model=get_fr_model(...) or name one with --models."
        )
    name = model.card.name
    if method_card.supported_fr_models and name not in method_card.supported_fr_models:
        raise UnsupportedCombinationError(
            f"{method_card.name} does not support FR model {name!r}; supported: "
            f"{', '.join(method_card.supported_fr_models)}."
        )
    needs = (("torch",) if need == "torch" else ()) + method_card.needs_capabilities
    missing = missing_capabilities(needs, model)
    if missing:
        raise UnsupportedCombinationError(
            f"{method_card.name} needs {'; '.join(missing)}; FR model {name!r} is not one "
            "(see `fiqa-bench list models`)."
        )


def build_fr_model(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    weights: PathLike | None = None,
    weights_dir: PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
) -> FRModel:
    model = build(
        FR_MODELS,
        name,
        options,
        weights=weights,
        weights_dir=weights_dir,
        device=resolve_device(device),
        batch_size=batch_size,
    )
    if batch_size:
        model.batch_size = int(batch_size)
    return model


def build_method(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    fr_model: FRModel | None = None,
    weights: PathLike | None = None,
    weights_dir: PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
) -> QualityMethod:
    """A method bound to ``fr_model`` (checked first). ``batch_size`` is an upper bound: memory-heavy
    methods (FaceQAN, GraFIQs) keep a smaller batch of their own."""
    card = METHODS.card(name)
    card.resolve_options(options)  # an option error first: it needs no FR model to be reported
    check_method_supports(card, fr_model)
    method = build(
        METHODS,
        name,
        options,
        fr_model=fr_model if card.needs_fr_model != "none" else None,
        weights=weights,
        weights_dir=weights_dir,
        device=resolve_device(device),
        batch_size=batch_size,
    )
    if batch_size:
        method.batch_size = min(int(batch_size), int(method.batch_size))
    return method


def build_dataset(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    root: PathLike | None = None,
    cache_dir: PathLike | None = None,
) -> Dataset:
    return build(DATASETS, name, options, root=root, cache_dir=cache_dir)
