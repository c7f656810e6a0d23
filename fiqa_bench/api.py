"""The public Python API. It mirrors the CLI; these names are a stable contract:

``run``, ``evaluate``, ``get_method``, ``get_fr_model``, ``get_dataset``, ``list_methods``,
``list_fr_models``, ``list_datasets``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .device import resolve_device
from .errors import FiqaError, UnsupportedCombinationError
from .registry import DATASETS, FR_MODELS, METHODS, Card, Entry, require_packages
from .types import Dataset, FRModel, QualityMethod

PathLike = str | os.PathLike[str]


def _construct(entry: Entry, spec: str, registry_kind: str, **kwargs: Any) -> Any:
    card = entry.card
    require_packages(card)
    _, argument = (METHODS if registry_kind == "method" else FR_MODELS if registry_kind == "fr_model" else DATASETS).split(spec)
    if card.takes_argument:
        if not argument:
            raise FiqaError(f"{card.name} needs an argument: use it as '{card.name}:VALUE' ({card.summary}).")
        kwargs["argument"] = argument
    params = inspect.signature(entry.factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in kwargs if k not in params)
        # The engine passes these to everyone; a factory that does not take them does not need them.
        for k in [k for k in unknown if k in {"weights_dir", "device", "weights", "batch_size"}]:
            if kwargs[k] is None or k in {"weights_dir", "device", "batch_size"}:
                kwargs.pop(k)
                unknown.remove(k)
        if unknown:
            known = sorted(k for k in params if k not in {"card", "argument"})
            raise FiqaError(f"{card.name}: unknown option(s) {', '.join(unknown)}. Known options: {', '.join(known) or 'none'}.")
    return entry.factory(card, **kwargs)


def get_fr_model(
    name: str,
    weights: PathLike | None = None,
    *,
    weights_dir: PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    **options: Any,
) -> FRModel:
    """An FR model by registry name (or ``onnx:PATH``). ``.embed(images)`` -> N x D raw embeddings."""
    entry = FR_MODELS.get(name)
    model = _construct(
        entry, name, "fr_model", weights=weights, weights_dir=weights_dir, device=resolve_device(device), **options
    )
    if batch_size:
        model.batch_size = batch_size
    return model


def check_method_supports(method_card: Card, model: FRModel | None) -> None:
    """One clear error for a method/FR-model combination that cannot work."""
    need = method_card.needs_fr_model
    if need == "none":
        return
    if model is None:
        raise UnsupportedCombinationError(
            f"{method_card.name} needs an FR model ({need}); pass fr_model=get_fr_model(...) or name one with --models."
        )
    mcard = model.card
    if method_card.supported_fr_models and mcard.name not in method_card.supported_fr_models:
        raise UnsupportedCombinationError(
            f"{method_card.name} does not support FR model {mcard.name!r}; supported: "
            f"{', '.join(method_card.supported_fr_models)}."
        )
    if need == "torch" and getattr(model, "torch_module", None) is None:
        raise UnsupportedCombinationError(
            f"{method_card.name} needs a differentiable torch FR model (sface_torch, or an iResNet card such as arcface_r100); {mcard.name!r} is not one."
        )


def get_method(
    name: str,
    weights: PathLike | None = None,
    *,
    fr_model: FRModel | str | None = None,
    weights_dir: PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    **options: Any,
) -> QualityMethod:
    """A quality method by registry name. ``.score(images)`` -> quality per image, higher = better.

    ``batch_size`` caps the images the method processes at once; methods with a smaller batch of their
    own (memory-heavy ones such as FaceQAN and GraFIQs) keep theirs.

    Methods that need an FR model take it as ``fr_model`` (an instance or a registry name).
    """
    entry = METHODS.get(name)
    device = resolve_device(device)
    if isinstance(fr_model, str):
        fr_model = get_fr_model(fr_model, weights_dir=weights_dir, device=device)
    check_method_supports(entry.card, fr_model)
    if entry.card.needs_fr_model != "none":
        options["fr_model"] = fr_model
    method = _construct(entry, name, "method", weights=weights, weights_dir=weights_dir, device=device, **options)
    if batch_size:
        # An upper bound, never a raise: memory-heavy methods declare a smaller batch of their own
        # (FaceQAN runs 10 noisy copies of each image through forward and backward passes).
        method.batch_size = min(int(batch_size), int(getattr(method, "batch_size", batch_size)))
    return method


def get_dataset(name: str, root: PathLike | None = None, **options: Any) -> Dataset:
    """A dataset by registry name, located under the data root (``root``, $FIQA_BENCH_DATA or default)."""
    entry = DATASETS.get(name)
    require_packages(entry.card)
    _, argument = DATASETS.split(name)
    if entry.card.takes_argument and argument:
        options["argument"] = argument
    return entry.factory(entry.card, root=root, **options)


def list_methods() -> list[Card]:
    return METHODS.cards()


def list_fr_models() -> list[Card]:
    return FR_MODELS.cards()


def list_datasets() -> list[Card]:
    return DATASETS.cards()


def run(
    methods: str | Sequence[str] | None = None,
    models: str | Sequence[str] | None = None,
    datasets: str | Sequence[str] | None = None,
    *,
    fmr: str | Sequence[float] | None = None,
    protocols: str | Sequence[str] | None = None,
    discard_limit: str | float | Sequence[float] | None = None,
    starting_error: float | None = None,
    quality_scale: str | None = None,
    out: PathLike | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
    data_root: PathLike | None = None,
    weights_dir: PathLike | None = None,
    weights: Mapping[str, PathLike] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    cache_dir: PathLike | None = None,
    skip_bad: bool = False,
    report: bool = True,
    progress: bool = True,
    seed: int = 0,
    bootstrap: int = 0,
) -> Any:
    """Score, embed, evaluate and report. Returns the tidy results table (pandas DataFrame).

    ``protocols``: evaluation protocol names (comma list or sequence; default: the core's default set);
    ``discard_limit``: EDC pAUC limit(s); ``starting_error``: EDC starting error (Schlett's semantics);
    ``quality_scale``: quality normalisation before evaluation. Every results row names its protocol."""
    from .pipeline import RunConfig, run_pipeline

    config = RunConfig.from_user(
        methods=methods,
        models=models,
        datasets=datasets,
        fmr=fmr,
        protocols=protocols,
        discard_limit=discard_limit,
        starting_error=starting_error,
        quality_scale=quality_scale,
        out=out,
        device=device,
        batch_size=batch_size,
        workers=workers,
        data_root=data_root,
        weights_dir=weights_dir,
        weights=weights,
        options=options,
        cache_dir=cache_dir,
        skip_bad=skip_bad,
        report=report,
        progress=progress,
        seed=seed,
        bootstrap=bootstrap,
    )
    return run_pipeline(config)


def evaluate(
    comparisons: PathLike,
    qualities: Mapping[str, PathLike] | Sequence[PathLike],
    *,
    fmr: str | Sequence[float] | None = None,
    out: PathLike | None = None,
    report: bool = True,
    **kwargs: Any,
) -> Any:
    """ERC/EDC tables from precomputed files (see ``fiqa-bench evaluate --help`` for the formats).

    Further keywords (skip_missing, lower_is_better, bootstrap, seed, discard_limit, normalised,
    progress) go to :func:`fiqa_bench.precomputed.evaluate_files`."""
    from .precomputed import evaluate_files

    return evaluate_files(comparisons, qualities, fmr=fmr, out=Path(out) if out else None, report=report, **kwargs)
