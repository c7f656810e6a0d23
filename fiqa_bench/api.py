"""The public Python API. It mirrors the CLI; these names are a stable contract:

``run``, ``evaluate``, ``get_method``, ``get_fr_model``, ``get_dataset``, ``list_methods``,
``list_fr_models``, ``list_datasets``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .build import build_dataset, build_fr_model, build_method, check_method_supports
from .registry import DATASETS, FR_MODELS, METHODS, Card
from .types import Dataset, FRModel, QualityMethod

PathLike = str | os.PathLike[str]

__all__ = [
    "check_method_supports",
    "evaluate",
    "get_dataset",
    "get_fr_model",
    "get_method",
    "list_datasets",
    "list_fr_models",
    "list_methods",
    "run",
]


def get_fr_model(
    name: str,
    weights: PathLike | None = None,
    *,
    weights_dir: PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    **options: Any,
) -> FRModel:
    """An FR model by registry name (or ``onnx:PATH``). ``.embed(images)`` -> N x D raw embeddings.

    ``options`` are the card's declared options (``fiqa-bench list models``); an unknown one or a bad
    value raises FiqaError with "did you mean"."""
    return build_fr_model(
        name, options, weights=weights, weights_dir=weights_dir, device=device, batch_size=batch_size
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
    if isinstance(fr_model, str):
        fr_model = get_fr_model(fr_model, weights_dir=weights_dir, device=device)
    return build_method(
        name,
        options,
        fr_model=fr_model,
        weights=weights,
        weights_dir=weights_dir,
        device=device,
        batch_size=batch_size,
    )


def get_dataset(
    name: str, root: PathLike | None = None, *, cache_dir: PathLike | None = None, **options: Any
) -> Dataset:
    """A dataset by registry name, located under the data root (``root``, $FIQA_BENCH_DATA or default)."""
    return build_dataset(name, options, root=root, cache_dir=cache_dir)


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
    **params: Any,
) -> Any:
    """Score, embed, evaluate and report. Returns the tidy results table (pandas DataFrame).

    ``params`` are the run parameters of :class:`fiqa_bench.config.RunParams` (the same as the flags of
    ``fiqa-bench run``: fmr, protocols, discard_limit, starting_error, quality_scale, out, device,
    batch_size, workers, data_root, weights_dir, weights, options, cache_dir, skip_bad, bootstrap, seed,
    report, progress); an unknown one raises FiqaError. ``protocols``: evaluation protocol names;
    ``discard_limit``: EDC pAUC limit(s); ``starting_error``: EDC starting error (Schlett's semantics);
    ``quality_scale``: quality normalisation before evaluation. Every results row names its protocol."""
    from .config import RunParams
    from .pipeline import RunConfig, run_pipeline

    return run_pipeline(
        RunConfig.from_params(
            RunParams.from_keywords(methods=methods, models=models, datasets=datasets, **params)
        )
    )


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

    return evaluate_files(
        comparisons, qualities, fmr=fmr, out=Path(out) if out else None, report=report, **kwargs
    )
