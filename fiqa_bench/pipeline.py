"""``fiqa-bench run``: datasets -> embeddings and qualities (cached) -> pairs -> ERC/EDC -> results.

Each unique image is decoded once per run and handed to every producer (FR model or quality method)
that still lacks it; results go to the on-disk cache as they are computed, so an interrupted run
resumes where it stopped and a second run recomputes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .build import build_dataset, build_fr_model, build_method, check_method_supports
from .cache import Cache, ensure_writable_dir, writing
from .config import RunParams, normalised
from .device import resolve_device
from .errors import FiqaError, UnsupportedCombinationError
from .preflight import preflight
from .protocol_set import ProtocolRequest, evaluate_protocols
from .registry import DATASETS, FR_MODELS, METHODS, check_requirements, file_fingerprint, split_list
from .specs import MethodSpec, check_set_options, declared_only, parse_fmrs, parse_method_spec
from .types import FRModel, LoadedDataset, Plugin, QualityMethod, Templates, method_kind, pair_quality_min

log = logging.getLogger("fiqa_bench")

DEFAULT_METHODS = ("face_norm", "sharpness", "exposure", "yunet_confidence")
DEFAULT_MODELS = ("sface",)
DEFAULT_DATASETS = ("demo",)
DEFAULT_OUT = Path("fiqa-results")


@dataclass
class RunConfig:
    """A resolved run: the user's :class:`~fiqa_bench.config.RunParams` (normalised; its fields are read
    through this object, e.g. ``config.batch_size``) plus what resolution decided: the method specs, the
    FR-model and dataset names ('all' expanded), the FMR targets and the results folder."""

    params: RunParams
    methods: list[MethodSpec]
    models: list[str]
    datasets: list[str]
    fmrs: list[float]
    out: Path
    not_available: list[dict[str, str]] = field(default_factory=list)  # entries "all" left out, and why
    methods_from_all: frozenset[str] = (
        frozenset()
    )  # added by --methods all: skipped, not fatal, where no model fits
    protocols: ProtocolRequest = field(default_factory=ProtocolRequest)  # --protocols, --discard-limit, ...

    def __getattr__(self, name: str) -> Any:
        if name == "params":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.params, name)

    def options_for(self, registry: Any, label: str) -> dict[str, Any]:
        """--set options of an entry: those given for its card name (``onnx``, ``pairs``), then those
        for the full label (``onnx:/models/x.onnx``), which win; only the ones its card declares."""
        merged = {**self.options.get(registry.split(label)[0], {}), **self.options.get(label, {})}
        return declared_only(registry.card(label), merged)

    @classmethod
    def from_user(cls, **kw: Any) -> RunConfig:
        """From ``fiqa_bench.run`` keywords (checked against RunParams)."""
        return cls.from_params(RunParams.from_keywords(**kw))

    @classmethod
    def from_params(cls, params: RunParams) -> RunConfig:
        p = normalised(params)
        check_set_options(p.options)
        not_available: list[dict[str, str]] = []
        model_names = _expand(p.models, FR_MODELS, DEFAULT_MODELS, p.weights, p.weights_dir, not_available)
        from_all: set[str] = set()
        method_names = _expand(
            p.methods, METHODS, DEFAULT_METHODS, p.weights, p.weights_dir, not_available, from_all
        )
        dataset_names = _expand(
            p.datasets,
            DATASETS,
            DEFAULT_DATASETS,
            p.weights,
            p.weights_dir,
            not_available,
            data_root=p.data_root,
        )
        for name in model_names:
            FR_MODELS.get(name)
        for name in dataset_names:
            DATASETS.get(name)
        if not model_names:
            raise FiqaError("--models: no FR model left to run. Name one, e.g. --models sface.")
        return cls(
            params=p,
            methods=[parse_method_spec(m, p.options) for m in method_names],
            models=model_names,
            datasets=dataset_names,
            fmrs=parse_fmrs(p.fmr),
            out=Path(p.out or DEFAULT_OUT).expanduser(),
            not_available=not_available,
            methods_from_all=frozenset(from_all - set(split_list(p.methods))),
            protocols=ProtocolRequest.from_user(
                p.protocols, p.discard_limit, p.starting_error, p.quality_scale
            ),
        )

    def with_params(self, **changes: Any) -> RunConfig:
        """A copy with some run parameters changed (e.g. the device of one rank)."""
        return dataclasses.replace(self, params=dataclasses.replace(self.params, **changes))


def _expand(
    value: Any,
    registry: Any,
    default: Sequence[str],
    weights: Mapping[str, str],
    weights_dir: Any,
    not_available: list[dict[str, str]],
    from_all: set[str] | None = None,
    data_root: Any = None,
) -> list[str]:
    """Comma list -> names; ``all`` = every entry whose requirements are present here (the rest is reported)."""
    names = split_list(value) or list(default)
    out: list[str] = []
    for name in names:
        if name.lower() != "all":
            if name not in out:  # "all,faceqan" or a name given twice: run it once
                out.append(name)
            continue
        for card in registry.cards():
            if card.takes_argument:
                continue
            missing = [r for r in check_requirements(card, weights_dir) if not r.present]
            if card.kind == "dataset":
                try:
                    status = build_dataset(card.name, root=data_root).status() if not missing else None
                except FiqaError as exc:
                    status, missing = None, [exc]
                if status is not None and not status.present:
                    not_available.append({"kind": card.kind, "name": card.name, "why": status.detail})
                    continue
            if missing and not (
                card.name in weights and all(str(r.what).startswith("weights:") for r in missing)
            ):
                why = "; ".join(
                    f"{getattr(r, 'what', '')} missing ({getattr(r, 'detail', r)})" for r in missing
                )
                not_available.append({"kind": card.kind, "name": card.name, "why": why})
                continue
            if card.name not in out:
                out.append(card.name)
                if from_all is not None:
                    from_all.add(card.name)
    return out


@dataclass
class Producer:
    """Something that turns a batch of faces into per-image values, with its cache slot."""

    label: str
    kind: str  # "embedding" | "quality"
    fingerprint: str
    compute: Callable[[np.ndarray, dict[str, np.ndarray] | None], np.ndarray]
    values: np.ndarray | None = None
    hits: int = 0
    computed: int = 0
    error: str | None = None  # the producer cannot work on this dataset (e.g. needs source landmarks)
    row_shape: tuple[int, ...] | None = None  # shape of one value; cached chunks of another shape are damaged
    quarantined: int = 0  # damaged cache files moved aside (their rows recomputed)


def _decode(faces: Any, indices: np.ndarray, pool: ThreadPoolExecutor | None) -> np.ndarray:
    if pool is None or len(indices) < 2:
        return faces.batch(indices)
    return np.stack(list(pool.map(faces.image, (int(i) for i in indices))))


def fill_producers(
    data: LoadedDataset,
    producers: list[Producer],
    cache: Cache,
    *,
    batch_size: int,
    workers: int,
    progress: bool,
    indices: np.ndarray | None = None,
    writer_tag: str = "",
) -> None:
    """Give each producer its values for every image (or for ``indices``): cached rows are read, the rest
    computed in batches from a single decode of each image and written to the cache as they come."""
    faces = data.faces
    subset = np.arange(len(faces)) if indices is None else np.asarray(indices, dtype=np.int64)
    ids = [faces.ids[i] for i in subset]
    slots, missing_masks = [], []
    for p in producers:
        slot = cache.slot(data.name, data.fingerprint, p.kind, p.label, p.fingerprint, row_shape=p.row_shape)
        values, missing = slot.load(ids)  # every chunk verified; damaged ones quarantined, rows recomputed
        p.values = values
        p.hits = int((~missing).sum())
        p.quarantined = slot.stats["quarantined"]
        slots.append(slot)
        missing_masks.append(missing)
    any_missing = np.logical_or.reduce(missing_masks) if producers else np.zeros(len(ids), bool)
    todo = np.flatnonzero(any_missing)
    if len(todo):
        labels = ", ".join(p.label for p, m in zip(producers, missing_masks, strict=True) if m.any())
        writers = [s.writer(tag=writer_tag) for s in slots]  # one chunk per batch: a SIGKILL loses one batch
        pool = ThreadPoolExecutor(workers) if workers > 0 else None
        try:
            bar = tqdm(total=len(todo), desc=f"{data.name}: {labels}", unit="img", disable=not progress)
            for start in range(0, len(todo), batch_size):
                local = todo[start : start + batch_size]
                global_idx = subset[local]
                images = _decode(faces, global_idx, pool)
                meta = faces.meta_for(global_idx)
                for p, mask, writer in zip(producers, missing_masks, writers, strict=True):
                    need = mask[local]
                    if not need.any():
                        continue
                    sel = np.flatnonzero(need)
                    whole = len(sel) == len(local)  # keep the (maybe pinned) decoded batch: no copy
                    sub_meta = None if meta is None or whole else {k: v[sel] for k, v in meta.items()}
                    try:
                        out = np.asarray(
                            p.compute(images if whole else images[sel], meta if whole else sub_meta)
                        )
                    except UnsupportedCombinationError as exc:
                        p.error = str(exc)  # reported as not evaluated; the other producers go on
                        mask[:] = False
                        continue
                    if p.values is None:
                        p.values = np.zeros((len(ids), *out.shape[1:]), dtype=out.dtype)
                    p.values[local[sel]] = out
                    p.computed += len(sel)
                    writer.add([ids[i] for i in local[sel]], out)
                bar.update(len(local))
            bar.close()
        finally:
            for w in writers:
                w.flush()
            if pool is not None:
                pool.shutdown()
        for p, slot, mask in zip(producers, slots, missing_masks, strict=True):
            if mask.any():
                slot.consolidate()
                p.quarantined = slot.stats["quarantined"]


def template_embeddings(emb: np.ndarray, templates: Templates) -> np.ndarray:
    """Template embeddings as in the insightface IJB evaluation: normalised image embeddings are
    averaged per media, and the media means summed per template (equivalent to averaging for cosine
    similarity, which ignores the scale)."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    media_ids, media_inv = np.unique(templates.image_media, return_inverse=True)
    media_sum = np.zeros((len(media_ids), e.shape[1]), np.float64)
    np.add.at(media_sum, media_inv, e)
    media_count = np.bincount(media_inv, minlength=len(media_ids))[:, None]
    media_mean = media_sum / media_count
    media_template = np.zeros(len(media_ids), np.int64)
    media_template[media_inv] = templates.image_template
    out = np.zeros((len(templates), e.shape[1]), np.float64)
    np.add.at(out, media_template, media_mean)
    return out.astype(np.float32)


def template_quality(q: np.ndarray, templates: Templates) -> np.ndarray:
    out = np.full(len(templates), np.inf)
    np.minimum.at(out, templates.image_template, q)
    return out


@dataclass
class BoundMethod:
    spec: MethodSpec
    method: QualityMethod
    model_name: str | None  # FR model the method uses (None: needs none)

    @property
    def key(self) -> str:
        """``label@fr_model`` (or the label): the producer label and the run.json key."""
        return f"{self.spec.label}@{self.model_name}" if self.model_name else self.spec.label

    @property
    def producer_key(self) -> str:
        return f"q:{self.spec.label}@{self.model_name}"


def _build_models(config: RunConfig, names: set[str]) -> dict[str, FRModel]:
    models = {}
    for name in sorted(names):
        models[name] = build_fr_model(
            name,
            config.options_for(FR_MODELS, name),
            weights=config.weights.get(name),
            weights_dir=config.weights_dir,
            device=config.device,
            batch_size=config.batch_size,
        )
    return models


def _build_methods(
    config: RunConfig, models: dict[str, FRModel], skipped: list[dict[str, str]]
) -> list[BoundMethod]:
    bound: list[BoundMethod] = []
    unusable: list[str] = []  # named methods that fit none of the run's FR models: all listed, then stop
    for spec in config.methods:
        card = METHODS.card(spec.name)
        targets: list[str | None]
        if card.needs_fr_model == "none":
            targets = [None]
        elif spec.bound_fr_model:
            targets = [spec.bound_fr_model]
        else:
            targets = list(config.models)
        built = 0
        errors = []
        for target in targets:
            model = models.get(target) if target else None
            try:
                check_method_supports(card, model)
                method = build_method(
                    spec.name,
                    spec.options,
                    weights=config.weights.get(spec.label) or config.weights.get(spec.name),
                    fr_model=model,
                    weights_dir=config.weights_dir,
                    device=config.device,
                    batch_size=config.batch_size,
                )
            except UnsupportedCombinationError as exc:
                errors.append(str(exc))
                continue
            bound.append(BoundMethod(spec, method, target))
            built += 1
        if not built and spec.name in config.methods_from_all:
            # "all" means every method that can run here: one that fits none of the models is reported.
            why = f"no usable FR model among --models {','.join(config.models)}: {errors[0]}"
            skipped.append({"kind": "combination", "name": spec.label, "why": why})
            log.warning("not evaluated: %s: %s", spec.label, why)
            continue
        if not built:
            unusable.append(
                f"{spec.label}: {errors[0]} Bind one explicitly, e.g. --methods {spec.name}@<fr_model>."
            )
            continue
        for e in errors:
            skipped.append({"kind": "combination", "name": spec.label, "why": e})
            log.warning("not evaluated: %s", e)
    if unusable:
        raise UnsupportedCombinationError(
            f"no usable FR model among --models {','.join(config.models)} for {len(unusable)} method(s) you named "
            "(nothing was computed): " + " | ".join(unusable)
        )
    return bound


def _weights_info(obj: Plugin) -> dict[str, Any]:
    path = obj.weights_path
    return {
        "card": obj.card.to_dict(),
        "weights": str(path) if path else None,
        "weights_sha256": file_fingerprint(path) if path else None,
        "weight_files": {str(p): file_fingerprint(p) for p in obj.weight_files},
        "options": {k: repr(v) for k, v in obj.options.items()},
        "fingerprint": obj.fingerprint(),
    }


def _echo(msg: str, progress: bool) -> None:
    if progress:
        tqdm.write(msg, file=sys.stderr)
    log.info(msg)


def make_producers(
    models: Mapping[str, FRModel], methods: Sequence[BoundMethod], flip_sum: bool = False
) -> dict[str, Producer]:
    """One producer per FR model and per image-level method (embeddings-based and pair-level methods
    are derived from the embeddings afterwards). Labels and fingerprints name the cache slots, so every
    process of a sharded run must build them here. ``flip_sum``: also the embeddings of the mirrored
    images ("mirror:<model>", see :func:`flip_sum_embeddings`) for models that do not flip already."""
    producers: dict[str, Producer] = {}
    for name, model in models.items():
        width = getattr(model, "embedding_size", None) or model.card.embedding_size
        row_shape = (int(width),) if isinstance(width, int) else None
        producers[f"emb:{name}"] = Producer(
            name,
            "embedding",
            model.fingerprint(),
            lambda im, meta, m=model: m.embed(im),
            row_shape=row_shape,
        )
        if flip_sum and getattr(model, "flip_mode", "none") == "none":
            producers[f"mirror:{name}"] = Producer(
                f"{name}+mirror",
                "embedding",
                f"{model.fingerprint()}|mirror",
                lambda im, meta, m=model: m.embed(np.ascontiguousarray(im[:, :, ::-1])),
                row_shape=row_shape,
            )
    for bm in methods:
        if method_kind(bm.method.card) != "image":
            continue
        producers[bm.producer_key] = Producer(
            bm.key, "quality", bm.method.fingerprint(), lambda im, meta, m=bm.method: m.score(im, meta)
        )
    return producers


def flip_sum_embeddings(model: FRModel, emb: np.ndarray, mirror: Producer | None) -> np.ndarray | None:
    """insightface's verification embedding: the raw embedding of the image plus that of its horizontal
    mirror (REFERENCE.md 5; normalised later by the cosine). A model run with flip_tta=sum already
    returns it; with flip_tta=concat the raw halves are lost: None."""
    mode = getattr(model, "flip_mode", "none")
    if mode == "sum":
        return emb
    if mode != "none" or mirror is None or mirror.values is None:
        return None
    return (np.asarray(emb, dtype=np.float32) + np.asarray(mirror.values, dtype=np.float32)).astype(
        np.float32
    )


@dataclass
class Plugins:
    """Everything a run builds before touching data: FR models, bound methods, and what was left out."""

    models: dict[str, FRModel]
    methods: list[BoundMethod]
    not_evaluated: list[dict[str, str]]


def build_plugins(config: RunConfig) -> Plugins:
    """Step 1: build every FR model and method (missing weights fail fast, in one line)."""
    not_evaluated: list[dict[str, str]] = list(config.not_available)
    model_names = set(config.models) | {s.bound_fr_model for s in config.methods if s.bound_fr_model}
    models = _build_models(config, model_names)
    methods = _build_methods(config, models, not_evaluated)
    return Plugins(models, methods, not_evaluated)


def load_dataset(
    config: RunConfig, name: str, cache: Cache, *, progress: bool | None = None
) -> LoadedDataset:
    """Step 2: the dataset ``name`` built with its ``--set`` options and loaded. Its fingerprint (the
    cache key of every value computed on it) is made here by the engine: the plug-in's own content
    fingerprint + its card and declared options + the image ids and the pairs, so no plug-in can forget
    one of them."""
    dataset = build_dataset(
        name, config.options_for(DATASETS, name), root=config.data_root, cache_dir=cache.root
    )
    data = dataset.load(skip_bad=config.skip_bad, progress=config.progress if progress is None else progress)
    data.fingerprint = dataset_fingerprint(dataset.declared_fingerprint(), data)
    return data


def dataset_fingerprint(plugin_fingerprint: str, data: LoadedDataset) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in (plugin_fingerprint, data.fingerprint, "\n".join(data.faces.ids)):
        h.update(part.encode())
        h.update(b"\0")
    p = data.pairs
    for arr in (p.a, p.b, p.genuine, p.fold):
        h.update(np.ascontiguousarray(arr).tobytes())
    if data.templates is not None:
        t = data.templates
        for arr in (t.image_template, t.image_media):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(t.template_ids).encode())
    return h.hexdigest()[:16]


def score_dataset(
    config: RunConfig, data: LoadedDataset, plugins: Plugins, cache: Cache, **fill: Any
) -> dict[str, Producer]:
    """Step 3: every FR model's embeddings and every image-level method's qualities of ``data``
    (read from the cache, the rest computed and cached). ``fill`` goes to :func:`fill_producers`
    (``indices``/``writer_tag`` for a shard of a distributed run)."""
    producers = make_producers(plugins.models, plugins.methods, config.protocols.needs_flip_sum)
    kwargs: dict[str, Any] = {
        "batch_size": config.batch_size,
        "workers": config.workers,
        "progress": config.progress,
    }
    kwargs.update(fill)
    fill_producers(data, list(producers.values()), cache, **kwargs)
    return producers


def image_qualities(
    bm: BoundMethod, producers: Mapping[str, Producer], data: LoadedDataset
) -> np.ndarray | None:
    """Oriented per-image (or per-template) quality of an image-level or embeddings method; None when
    the method could not run on this dataset. Raises FiqaError on a non-finite score."""
    if method_kind(bm.method.card) == "embeddings":
        src = producers[f"emb:{bm.model_name}"].values
        q = np.asarray(bm.method.score_embeddings(src), dtype=np.float64)
    else:
        producer = producers[bm.producer_key]
        if producer.error is not None or producer.values is None:
            return None
        q = producer.values.astype(np.float64)
    if not np.all(np.isfinite(q)):
        bad = int((~np.isfinite(q)).sum())
        raise FiqaError(
            f"{bm.spec.label} gave {bad} non-finite quality score(s) on {data.name}; "
            "this is a bug in the method or an unusable image - report it with the dataset name."
        )
    return template_quality(q, data.templates) if data.templates is not None else q


@dataclass
class Evaluated:
    """Step 4's output for one dataset and FR model."""

    fr_model: str
    similarity: np.ndarray
    qualities: dict[str, np.ndarray]
    rows: list[dict[str, Any]]
    curves: Any
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. similarity_flip_sum
    not_evaluated: list[dict[str, str]] = field(default_factory=list)


def evaluate_dataset(
    config: RunConfig,
    label: str,
    data: LoadedDataset,
    plugins: Plugins,
    producers: Mapping[str, Producer],
    device: str,
) -> list[Evaluated]:
    """Step 4: pair similarities and pair qualities per FR model, then every requested protocol per
    method. ``label`` is the dataset as the user named it (``pairs:/x.csv``): the results' dataset column."""
    from .similarity import pair_cosine

    pairs = data.pairs
    out = []
    for model_name in config.models:
        emb = producers[f"emb:{model_name}"].values
        assert emb is not None
        cmp_emb = template_embeddings(emb, data.templates) if data.templates is not None else emb
        sim = pair_cosine(cmp_emb, pairs.a, pairs.b, device=device)  # GPU matrix products on CUDA
        extra: dict[str, np.ndarray] = {}
        skipped: list[dict[str, str]] = []
        if config.protocols.needs_flip_sum:
            fs = flip_sum_embeddings(plugins.models[model_name], emb, producers.get(f"mirror:{model_name}"))
            if fs is None:
                why = "flip-summed embeddings need flip_tta none or sum (the model concatenates)"
                skipped.append(
                    {"kind": "protocol", "name": f"flip-sum@{model_name}", "dataset": label, "why": why}
                )
            else:
                fs = template_embeddings(fs, data.templates) if data.templates is not None else fs
                extra["similarity_flip_sum"] = pair_cosine(fs, pairs.a, pairs.b, device=device)
        qualities: dict[str, np.ndarray] = {}
        reference: dict[str, bool] = {}
        for bm in plugins.methods:
            if bm.model_name is not None and bm.spec.bound_fr_model is None and bm.model_name != model_name:
                continue
            card = bm.method.card
            if method_kind(card) == "pair":
                pq = config.protocols.scale(
                    np.asarray(bm.method.pair_quality(sim, pairs.genuine), dtype=np.float64)
                )
            else:
                q = image_qualities(bm, producers, data)
                if q is None:
                    continue
                if config.protocols.quality_scale != "none":  # --quality-scale: over the images the pairs use
                    used = np.unique(np.concatenate((pairs.a, pairs.b)))
                    q = q.copy()
                    q[used] = config.protocols.scale(q[used])
                pq = pair_quality_min(q[pairs.a], q[pairs.b])
            qualities[bm.spec.label] = pq
            reference[bm.spec.label] = card.reference_line
        rows, curves = evaluate_protocols(
            sim,
            pairs.genuine,
            qualities,
            config.fmrs,
            config.protocols,
            folds=pairs.fold,
            bootstrap=config.bootstrap,
            seed=config.seed,
            progress=config.progress,
            extra=extra,
        )
        for r in rows:
            r.update(dataset=label, fr_model=model_name, reference_line=reference.get(r["method"], False))
        out.append(Evaluated(model_name, sim, qualities, rows, curves, extra, skipped))
    return out


def _dataset_info(data: LoadedDataset) -> dict[str, Any]:
    pairs = data.pairs
    return {
        "source": data.source,
        "n_images": len(data.faces),
        "n_pairs": len(pairs),
        "n_genuine": pairs.n_genuine,
        "n_impostor": pairs.n_impostor,
        "n_templates": len(data.templates) if data.templates is not None else None,
        "folds": int(len(np.unique(pairs.fold))),
        "aligned": data.aligned,
        "fingerprint": data.fingerprint,
        "skipped": [{"what": s.what, "where": s.where, "why": s.why} for s in data.skipped],
        **{k: v for k, v in data.info.items() if isinstance(v, str | int | float | bool)},
    }


def run_pipeline(config: RunConfig) -> Any:
    """Build, then per dataset load -> score -> evaluate, then write results.csv, curves.csv, run.json
    (and the report). Returns the tidy results table (pandas DataFrame)."""
    import pandas as pd

    from .results import write_pairs, write_results

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    cache = Cache(config.cache_dir)
    # A read-only, missing or mistaken --out / --cache-dir fails now, in one line, not after the work.
    ensure_writable_dir(config.out, "--out", keep=False)
    ensure_writable_dir(cache.root, "--cache-dir")
    for item in config.not_available:
        _echo(f"not run ({item['kind']} {item['name']}): {item['why']}", config.progress)

    # Everything missing (weights, packages, datasets, --weights typos) in one message before any work.
    preflight(
        models=config.models, methods=config.methods, datasets=config.datasets, weights=config.weights,
        weights_dir=config.weights_dir, data_root=config.data_root,
        dataset_options={d: config.options_for(DATASETS, d) for d in config.datasets},
    )  # fmt: skip
    plugins = build_plugins(config)
    not_evaluated = plugins.not_evaluated
    device = resolve_device(config.device)
    timings["build"] = time.perf_counter() - t0

    with writing(config.out / "pairs", None, "--out"):
        (config.out / "pairs").mkdir(parents=True, exist_ok=True)
    all_rows: list[dict[str, Any]] = []
    all_curves: list[pd.DataFrame] = []
    datasets_info: dict[str, Any] = {}
    cache_stats = {"hits": 0, "computed": 0, "quarantined": 0}

    for ds_name in config.datasets:
        t_ds = time.perf_counter()
        data = load_dataset(config, ds_name, cache)
        _echo(data.summary(), config.progress)
        for s in data.skipped:
            log.warning("skipped %s %s: %s", s.what, s.where, s.why)
        timings[f"{ds_name}:load"] = time.perf_counter() - t_ds

        t_fill = time.perf_counter()
        producers = score_dataset(config, data, plugins, cache)
        timings[f"{ds_name}:embed+score"] = time.perf_counter() - t_fill
        for p in producers.values():
            cache_stats["hits"] += p.hits
            cache_stats["computed"] += p.computed
            cache_stats["quarantined"] += p.quarantined
            if p.error is not None:
                not_evaluated.append({"kind": "method", "name": p.label, "dataset": ds_name, "why": p.error})
                _echo(f"not evaluated on {ds_name}: {p.label}: {p.error}", config.progress)

        t_eval = time.perf_counter()
        for ev in evaluate_dataset(config, ds_name, data, plugins, producers, device):
            not_evaluated.extend(ev.not_evaluated)
            all_rows.extend(ev.rows)
            all_curves.append(ev.curves.assign(dataset=ds_name, fr_model=ev.fr_model))
            write_pairs(
                config.out,
                ds_name,
                ev.fr_model,
                similarity=ev.similarity,
                genuine=data.pairs.genuine,
                fold=data.pairs.fold,
                qualities=ev.qualities,
                extra=ev.extra,
                option="--out",
            )
        timings[f"{ds_name}:evaluate"] = time.perf_counter() - t_eval
        datasets_info[ds_name] = _dataset_info(data)

    results = pd.DataFrame(all_rows)
    curves_df = pd.concat(all_curves, ignore_index=True) if all_curves else pd.DataFrame()
    timings["total"] = time.perf_counter() - t0
    provenance = {
        "fiqa_bench_version": __version__,
        "torch_version": _version("torch"),
        "numpy_version": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command": list(sys.argv),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": config.seed,
        "bootstrap": config.bootstrap,
        "fmrs": config.fmrs,
        "device": config.device,
        "datasets": datasets_info,
        "fr_models": {n: _weights_info(m) for n, m in plugins.models.items()},
        "methods": {bm.key: _weights_info(bm.method) for bm in plugins.methods},
        "not_evaluated": not_evaluated,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "cache": {**cache_stats, "dir": str(cache.root)},
    }
    # Results first (atomically, run.json last), then the report: a report that fails loses no results.
    write_results(
        config.out,
        results,
        curves_df,
        settings=config.protocols.settings(config.fmrs, config.bootstrap, config.seed),
        run=provenance,
        option="--out",
    )
    _echo(
        f"cache: {cache_stats['hits']} values reused, {cache_stats['computed']} computed; "
        f"results in {config.out} ({timings['total']:.1f} s)",
        config.progress,
    )
    if config.report:
        write_report_after_results(config.out)
    return results


def write_report_after_results(out: Path) -> None:
    """Build the report of a results folder that is already written; on failure say that the results are
    safe and how to rebuild the report."""
    from .reports import write_report

    try:
        with writing(out, None, "--out"):  # a disk error names the folder
            write_report(out)
    except FiqaError as exc:
        raise FiqaError(
            f"{exc} (the results are saved in {out}; rebuild the report with `fiqa-bench report {out}`)"
        ) from exc
    except Exception:
        log.error(
            "the report failed; the results are saved in %s: rebuild it with `fiqa-bench report %s`", out, out
        )
        raise


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:
        return None
