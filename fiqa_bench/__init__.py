"""fiqa-bench: Face Image Quality Assessment benchmark (ERC/EDC, AUC tables, paper-ready reports)."""

from __future__ import annotations

__version__ = "0.1.0"

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
from .registry import Card, WeightFile, register_dataset, register_fr_model, register_method
from .types import Dataset, FaceSet, FRModel, LoadedDataset, Pairs, QualityMethod, Skipped

__all__ = [
    "Card",
    "Dataset",
    "FaceSet",
    "FiqaError",
    "FRModel",
    "LoadedDataset",
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
