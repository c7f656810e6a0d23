"""The plain data that flows between stages, and the base classes every plug-in implements.

Images handed to FR models and quality methods are always RGB uint8 arrays N x 112 x 112 x 3 of
aligned faces. Models and methods convert internally according to their card.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FiqaError
from .registry import Card

ALIGNED_SIZE = 112


def check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """Validate the public image contract: RGB uint8 N x H x W x 3 (a single H x W x 3 is promoted)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise FiqaError(f"{what}: expected an RGB uint8 array N x 112 x 112 x 3, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise FiqaError(f"{what}: expected dtype uint8 (0..255 RGB), got {arr.dtype}")
    return arr


class FRModel(ABC):
    """A face recognition model: aligned RGB faces -> raw (unnormalised) embeddings."""

    card: Card
    batch_size: int = 64

    @abstractmethod
    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of one batch (N x D float32), unnormalised."""

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        out = [self._embed_batch(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        if not out:
            return np.zeros((0, self.card.embedding_size or 0), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def fingerprint(self) -> str:
        """Identifies card + weights + options: part of every cache key."""
        return producer_fingerprint(self)


class QualityMethod(ABC):
    """A face image quality method. ``score`` returns quality with higher = better."""

    card: Card
    batch_size: int = 64

    @abstractmethod
    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Raw scores (in the card's direction) of one batch."""

    def raw_scores(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        images = check_images(images)
        out = []
        for i in range(0, len(images), self.batch_size):
            sub = None if meta is None else {k: v[i : i + self.batch_size] for k, v in meta.items()}
            out.append(np.asarray(self._raw_batch(images[i : i + self.batch_size], sub), dtype=np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Quality, higher = better: the one place where the card's raw direction is flipped."""
        return orient(self.card, self.raw_scores(images, meta))

    def score_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """For cards with needs_fr_model == "embeddings": quality from raw embeddings, higher = better."""
        raise NotImplementedError(f"{self.card.name} does not score from embeddings")

    def fingerprint(self) -> str:
        return producer_fingerprint(self)


def producer_fingerprint(obj: Any) -> str:
    """Card + weights file hash + options (+ a bound FR model) of a model or method.

    Implementations set ``weights_path`` (a Path or None) and ``options`` (a dict of everything that
    changes their output); a method that uses an FR model keeps it in ``fr_model``.
    """
    from .registry import file_fingerprint

    weights = getattr(obj, "weights_path", None)
    options = getattr(obj, "options", {}) or {}
    parts = [
        obj.card.fingerprint(),
        file_fingerprint(weights) if weights else None,
        sorted((str(k), repr(v)) for k, v in options.items() if k != "fr_model"),
    ]
    fr_model = getattr(obj, "fr_model", None)
    if fr_model is not None and fr_model is not obj:
        parts.append(fr_model.fingerprint())
    return hash_strings([str(p) for p in parts])


def orient(card: Card, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    return -raw if card.score_direction == "lower_better" else raw


@dataclass
class FaceSet:
    """Unique images of a dataset, each with a stable string id, decoded lazily to aligned RGB."""

    ids: list[str]
    loader: Callable[[int], np.ndarray]
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # optional per-image arrays

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, index: int) -> np.ndarray:
        return self.loader(index)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        if len(indices) == 0:
            return np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
        return np.stack([self.loader(int(i)) for i in indices])

    def meta_for(self, indices: Sequence[int]) -> dict[str, np.ndarray] | None:
        if not self.meta:
            return None
        idx = np.asarray(indices, dtype=np.int64)
        return {k: v[idx] for k, v in self.meta.items()}

    def batches(self, batch_size: int, indices: Sequence[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            yield chunk, self.batch(chunk)


@dataclass
class Pairs:
    """Comparison pairs as indices into a FaceSet (never image copies)."""

    a: np.ndarray  # int64
    b: np.ndarray  # int64
    genuine: np.ndarray  # bool
    fold: np.ndarray  # int16, 0-based; all zeros when a set has no folds

    def __post_init__(self) -> None:
        self.a = np.asarray(self.a, dtype=np.int64)
        self.b = np.asarray(self.b, dtype=np.int64)
        self.genuine = np.asarray(self.genuine, dtype=bool)
        self.fold = np.asarray(self.fold, dtype=np.int16)
        n = len(self.a)
        if not (len(self.b) == len(self.genuine) == len(self.fold) == n):
            raise ValueError("Pairs arrays must have equal length")

    def __len__(self) -> int:
        return len(self.a)

    @property
    def n_genuine(self) -> int:
        return int(self.genuine.sum())

    @property
    def n_impostor(self) -> int:
        return int(len(self) - self.genuine.sum())


@dataclass(frozen=True)
class Skipped:
    """An image or pair left out, with where and why: counted and reported, never silent."""

    what: str  # "image" | "pair" | "face"
    where: str  # file[:line] or image id
    why: str


@dataclass
class Templates:
    """Template structure for template-based protocols (IJB-C): pairs then index templates, not images.

    Template embedding = sum over media of (mean over the media's images of the normalised image
    embeddings), as in the insightface IJB evaluation; template quality = min over its images.
    """

    image_template: np.ndarray  # int64 per image: template index
    image_media: np.ndarray  # int64 per image: media index (images of one media are averaged first)
    template_ids: list[str]

    def __len__(self) -> int:
        return len(self.template_ids)


@dataclass
class LoadedDataset:
    name: str
    faces: FaceSet
    pairs: Pairs
    source: str  # what was read, e.g. "lfw.bin" or "LFW folder (images/ + pairs.txt)"
    fingerprint: str  # changes whenever the data would give different images or pairs
    aligned: bool = True
    skipped: list[Skipped] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    templates: Templates | None = None  # set for template protocols; then Pairs index templates

    def summary(self) -> str:
        p = self.pairs
        folds = len(np.unique(p.fold)) if len(p) else 0
        skip = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (
            f"{self.name} [{self.source}]: {len(self.faces)} images, {len(p)} pairs "
            f"({p.n_genuine} genuine / {p.n_impostor} impostor), {folds} folds{skip}"
        )


@dataclass(frozen=True)
class DatasetStatus:
    present: bool
    detail: str  # where it was found / what is missing
    n_pairs: int | None = None


class Dataset(ABC):
    """A benchmark set at a location: checks presence cheaply, loads on demand."""

    card: Card

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        from .data_root import resolve_data_root

        self.root = resolve_data_root(root)
        self.options = options

    @abstractmethod
    def status(self) -> DatasetStatus: ...

    @abstractmethod
    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset: ...


def hash_strings(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
