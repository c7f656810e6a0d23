"""The plain data that flows between stages, and the plug-in contract every method, FR model and dataset follows.

The plug-in contract (the engine is fiqa_bench.api.build; nothing else constructs plug-ins):

1. A plug-in is registered with its :class:`~fiqa_bench.registry.Card`; the card declares every option
   as an :class:`~fiqa_bench.registry.Option` (name, default, parse/type, choices, one-line help).
2. The engine validates user options (``--set NAME.OPTION=VALUE``, API ``**options``) against the card
   (unknown name or bad value: one-line FiqaError with "did you mean", exit 2) and fills in defaults.
3. The factory is called with ONE argument, a :class:`BuildContext`: ``ctx.options`` (declared options,
   parsed), and engine arguments kept apart - ``device``, ``weights``/``weights_dir`` (use
   ``ctx.weights_file()``), ``argument`` (``name:ARG``), ``fr_model``, ``root``, ``cache_dir``. A class
   whose ``__init__`` takes the context (the base classes' default) is a factory.
4. The engine then binds the declared state onto the instance: ``card``, ``options``, ``weight_files``
   (every file resolved through the context), ``fr_model``. The cache fingerprint is built from that
   state only: card + fingerprinted option values + weight-file hashes + the bound FR model's fingerprint.
5. Methods return raw scores in ``card.score_direction``; the engine orients them once (:func:`orient`).
6. What a method needs from its FR model is declared as capabilities (``card.needs_capabilities``) and
   checked structurally on the model object (:data:`CAPABILITIES`), never by model name.

Images handed to FR models and quality methods are always RGB uint8 arrays N x 112 x 112 x 3 of
aligned faces. Models and methods convert internally according to their card.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import FiqaError
from .registry import Card, resolve_weights

ALIGNED_SIZE = 112


@dataclass
class BuildContext:
    """Everything a factory receives: the card, its validated options and the engine's arguments.

    Engine arguments are never options: they do not reach ``options`` and never enter a cache key,
    except through what they resolve to (the hashes of the weight files actually used).
    """

    card: Card
    options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    weights: Path | None = None  # an explicit weights file (--weights NAME=PATH / weights=PATH)
    weights_dir: Path | None = None
    argument: str | None = None  # "name:ARGUMENT" entries (takes_argument cards)
    fr_model: FRModel | None = None  # methods with needs_fr_model != "none"
    root: Path | None = None  # datasets: the data root (None: $FIQA_BENCH_DATA or the default)
    cache_dir: Path | None = None  # datasets that align on the fly keep their crops here
    batch_size: int | None = None
    weights_used: list[Path] = field(default_factory=list)

    def weights_file(self, index: int = 0, path: str | Path | None = None) -> Path:
        """The card's ``index``-th weight file (``path``, else the explicit ``weights`` for index 0, else
        searched in the weights folders); recorded for the fingerprint. Raises MissingWeightsError."""
        explicit = path if path is not None else (self.weights if index == 0 else None)
        return self.use_weights(resolve_weights(self.card, explicit, self.weights_dir, index))

    def use_weights(self, path: str | Path) -> Path:
        """Record a weight file found some other way (it then counts in the fingerprint)."""
        p = Path(path)
        if p not in self.weights_used:
            self.weights_used.append(p)
        return p


class Plugin:
    """Declared state shared by FR models, methods and datasets; the engine binds it after building."""

    card: Card
    options: Mapping[str, Any] = MappingProxyType({})
    weight_files: tuple[Path, ...] = ()
    # State derived while building that changes the numbers but is neither an option value nor a weight
    # file (e.g. the content hash of FROQ's calibration set); set by the plug-in, never by the engine.
    derived_state: Mapping[str, str] = MappingProxyType({})
    device: str = "cpu"

    def __init__(self, ctx: BuildContext | None = None) -> None:
        if ctx is not None:
            self.bind(ctx)

    def bind(self, ctx: BuildContext) -> None:
        """Set the declared state from the build context (called by the engine after the factory)."""
        if "card" not in self.__dict__ or self.card.name != ctx.card.name:
            self.card = ctx.card
        self.options = MappingProxyType(dict(ctx.options))
        if ctx.weights_used:
            self.weight_files = tuple(ctx.weights_used)
        if "device" not in self.__dict__:
            self.device = ctx.device

    @property
    def weights_path(self) -> Path | None:
        """The main weight file (the first of ``weight_files``), or None."""
        return self.weight_files[0] if self.weight_files else None

    @weights_path.setter
    def weights_path(self, path: str | Path | None) -> None:
        self.weight_files = (Path(path),) if path else ()

    def declared_fingerprint(self) -> str:
        """Card + fingerprinted declared options + weight hashes + derived state (+ bound FR model)."""
        return plugin_fingerprint(
            self.card, self.options, self.weight_files, self.bound_fr_model(), self.derived_state
        )

    def bound_fr_model(self) -> FRModel | None:
        """The FR model whose output this plug-in's values depend on (methods override)."""
        return None


def plugin_fingerprint(
    card: Card,
    options: Mapping[str, Any],
    weight_files: Sequence[Path],
    fr_model: FRModel | None = None,
    derived_state: Mapping[str, str] | None = None,
) -> str:
    """Card + fingerprinted declared option values + weight-file hashes + bound FR model fingerprint
    (+ the plug-in's declared derived state, when it has any)."""
    from .registry import file_fingerprint

    declared = {o.name for o in card.options if o.fingerprint}
    parts = [
        card.fingerprint(),
        repr(sorted((k, repr(v)) for k, v in options.items() if k in declared)),
        repr([file_fingerprint(p) for p in weight_files]),
    ]
    if fr_model is not None:
        parts.append(fr_model.fingerprint())
    if derived_state:
        parts.append(repr(sorted(derived_state.items())))
    return hash_strings(parts)


# Structural capabilities a method may require of its FR model (Card.needs_capabilities).
CAPABILITIES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "torch": (
        "a torch FR model (torch_module + preprocess)",
        lambda m: getattr(m, "torch_module", None) is not None and callable(getattr(m, "preprocess", None)),
    ),
    "embedding_head": (
        "a torch FR model with a dropout-able embedding layer (torch_module.forward_backbone/forward_head)",
        lambda m: all(
            callable(getattr(getattr(m, "torch_module", None), a, None))
            for a in ("forward_backbone", "forward_head")
        ),
    ),
    "batchnorm": (
        "a torch FR model with BatchNorm2d layers",
        lambda m: _has_batchnorm(getattr(m, "torch_module", None)),
    ),
}


def _has_batchnorm(module: Any) -> bool:
    if module is None:
        return False
    from torch import nn

    return any(isinstance(x, nn.BatchNorm2d) for x in module.modules())


def missing_capabilities(needs: Sequence[str], model: Any) -> list[str]:
    """Descriptions of the capabilities in ``needs`` that ``model`` lacks (empty: it has them all)."""
    out = []
    for name in needs:
        if name not in CAPABILITIES:
            raise FiqaError(f"unknown FR-model capability {name!r}; known: {', '.join(CAPABILITIES)}")
        what, test = CAPABILITIES[name]
        if model is None or not test(model):
            out.append(what)
    return out


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


class FRModel(Plugin, ABC):
    """A face recognition model: aligned RGB faces -> raw (unnormalised) embeddings."""

    card: Card
    batch_size: int = 64

    @abstractmethod
    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of one batch (N x D float32), unnormalised."""

    def embed(self, images: np.ndarray) -> np.ndarray:
        """RGB uint8 N x 112 x 112 x 3 -> raw embeddings N x D float32 (not L2-normalised)."""
        images = check_images(images)
        out = [
            self._embed_batch(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size)
        ]
        if not out:
            return np.zeros((0, self.card.embedding_size or 0), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def fingerprint(self) -> str:
        """The model's cache key (card, declared options, weights): see :meth:`Plugin.declared_fingerprint`."""
        return self.declared_fingerprint()


class QualityMethod(Plugin, ABC):
    """A face image quality method. ``raw_scores`` are in the card's direction; ``score`` is oriented
    (higher = better) by :func:`orient`, the one place where a direction is applied.

    Kinds (card flags): per-image (``_raw_batch``), from cached embeddings (needs_fr_model ==
    "embeddings": ``raw_from_embeddings``) and per pair (pair_level: ``raw_pair_quality``).
    """

    card: Card
    batch_size: int = 64
    fr_model: FRModel | None = None

    def bind(self, ctx: BuildContext) -> None:
        super().bind(ctx)
        if ctx.fr_model is not None or self.card.needs_fr_model != "none":
            self.fr_model = ctx.fr_model

    def bound_fr_model(self) -> FRModel | None:
        return self.fr_model if self.card.needs_fr_model != "none" else None

    def fingerprint(self) -> str:
        """The method's cache key (card, declared options, weights, bound FR model's key)."""
        return self.declared_fingerprint()

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """Raw scores (in the card's direction) of one batch: float N."""
        raise NotImplementedError(f"{self.card.name} has no per-image score")

    def raw_scores(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        images = check_images(images)
        out = []
        for i in range(0, len(images), self.batch_size):
            sub = None if meta is None else {k: v[i : i + self.batch_size] for k, v in meta.items()}
            out.append(np.asarray(self._raw_batch(images[i : i + self.batch_size], sub), dtype=np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Quality per image, float64 N, higher = better."""
        return orient(self.card, self.raw_scores(images, meta))

    def raw_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """For cards with needs_fr_model == "embeddings": raw scores (card direction) from N x D raw embeddings."""
        raise NotImplementedError(f"{self.card.name} does not score from embeddings")

    def score_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Quality (higher = better, float64 N) from the bound FR model's raw embeddings."""
        return orient(self.card, self.raw_from_embeddings(embeddings))

    def raw_pair_quality(self, similarity: np.ndarray, genuine: np.ndarray) -> np.ndarray:
        """For pair_level cards: raw pair quality (card direction) from similarities and labels."""
        raise NotImplementedError(f"{self.card.name} has no pair-level quality")

    def pair_quality(self, similarity: np.ndarray, genuine: np.ndarray) -> np.ndarray:
        """Pair quality (higher = better, float64 P) of a pair_level method."""
        return orient(self.card, self.raw_pair_quality(similarity, genuine))


def orient(card: Card, raw: np.ndarray) -> np.ndarray:
    """Raw scores in ``card.score_direction`` -> quality, higher = better (float64)."""
    raw = np.asarray(raw, dtype=np.float64)
    return -raw if card.score_direction == "lower_better" else raw


def method_kind(card: Card) -> str:
    """How the engine runs a method, from its card flags (the one place they are read for dispatch):
    "pair" (pair_level: pair_quality from similarities), "embeddings" (score_embeddings from the FR
    model's cached raw embeddings) or "image" (score from the images, cached per image)."""
    if card.pair_level:
        return "pair"
    if card.needs_fr_model == "embeddings":
        return "embeddings"
    return "image"


def pair_quality_min(q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
    """Pair quality of two per-image (or per-template) qualities: the minimum, as in ISO/IEC 29794-1 and
    the ERC/EDC papers (Grother & Tabassi 2007; Schlett et al. 2024). The one place it is computed."""
    return np.minimum(np.asarray(q_a, dtype=np.float64), np.asarray(q_b, dtype=np.float64))


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

    def batches(
        self, batch_size: int, indices: Sequence[int] | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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


class Dataset(Plugin, ABC):
    """A benchmark set at a location: checks presence cheaply, loads on demand.

    ``root`` is the data root; ``cache_dir`` (engine argument) where on-the-fly alignment keeps its
    crops. Options are declared on the card and bound by the engine.
    """

    card: Card
    cache_dir: Path | None = None

    def __init__(self, root: BuildContext | str | Path | None = None, **options: Any) -> None:
        """``Dataset(ctx)`` (a class registered as its own factory) or ``Dataset(root, **options)``."""
        from .data_root import resolve_data_root

        if isinstance(root, BuildContext):
            ctx, root = root, root.root
            options = dict(ctx.options)
        self.root = resolve_data_root(root)
        card = getattr(type(self), "card", None)
        self.options = MappingProxyType(
            card.resolve_options(options) if isinstance(card, Card) else dict(options)
        )

    def bind(self, ctx: BuildContext) -> None:
        super().bind(ctx)
        self.cache_dir = ctx.cache_dir

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
