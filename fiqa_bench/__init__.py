"""fiqa-bench: Face Image Quality Assessment benchmark (ERC/EDC, AUC tables, paper-ready reports).

The public names below are imported on first use (PEP 562), so ``fiqa-bench --version`` and the
CLI's help start without loading numpy, torch or the registries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "evaluate": "fiqa_bench.api",
    "get_dataset": "fiqa_bench.api",
    "get_fr_model": "fiqa_bench.api",
    "get_method": "fiqa_bench.api",
    "list_datasets": "fiqa_bench.api",
    "list_fr_models": "fiqa_bench.api",
    "list_methods": "fiqa_bench.api",
    "run": "fiqa_bench.api",
    "FiqaError": "fiqa_bench.errors",
    "Card": "fiqa_bench.registry",
    "Option": "fiqa_bench.registry",
    "WeightFile": "fiqa_bench.registry",
    "register_dataset": "fiqa_bench.registry",
    "register_fr_model": "fiqa_bench.registry",
    "register_method": "fiqa_bench.registry",
    "BuildContext": "fiqa_bench.types",
    "Dataset": "fiqa_bench.types",
    "FaceSet": "fiqa_bench.types",
    "FRModel": "fiqa_bench.types",
    "LoadedDataset": "fiqa_bench.types",
    "Pairs": "fiqa_bench.types",
    "QualityMethod": "fiqa_bench.types",
    "Skipped": "fiqa_bench.types",
}

__all__ = [
    "BuildContext",
    "Card",
    "Dataset",
    "FRModel",
    "FaceSet",
    "FiqaError",
    "LoadedDataset",
    "Option",
    "Pairs",
    "QualityMethod",
    "Skipped",
    "WeightFile",
    "__version__",
    "evaluate",
    "get_dataset",
    "get_fr_model",
    "get_method",
    "list_datasets",
    "list_fr_models",
    "list_methods",
    "register_dataset",
    "register_fr_model",
    "register_method",
    "run",
]

if TYPE_CHECKING:
    from .api import (
        evaluate,
        get_dataset,
        get_fr_model,
        get_method,
        list_datasets,
        list_fr_models,
        list_methods,
        run,
    )
    from .errors import FiqaError
    from .registry import Card, Option, WeightFile, register_dataset, register_fr_model, register_method
    from .types import BuildContext, Dataset, FaceSet, FRModel, LoadedDataset, Pairs, QualityMethod, Skipped


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fiqa_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
