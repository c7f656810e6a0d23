"""``fiqa-bench run``: datasets -> embeddings and qualities (cached) -> pairs -> ERC/EDC -> results.

Each unique image is decoded once per run and handed to every producer (FR model or quality method)
that still lacks it; results go to the on-disk cache as they are computed, so an interrupted run
resumes where it stopped and a second run recomputes nothing.
"""

from __future__ import annotations

import inspect
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
from .api import check_method_supports, get_dataset, get_fr_model, get_method
from .cache import Cache, ensure_writable_dir, writing
from .device import resolve_device
from .errors import FiqaError, UnsupportedCombinationError
from .preflight import check_counts, preflight
from .protocol_set import ProtocolRequest, evaluate_protocols
from .registry import DATASETS, FR_MODELS, METHODS, check_requirements, file_fingerprint, split_list
from .specs import MethodSpec, parse_fmrs, parse_method_spec, parse_weights
from .types import FRModel, LoadedDataset, QualityMethod, Templates

log = logging.getLogger("fiqa_bench")

DEFAULT_METHODS = ("face_norm", "sharpness", "exposure", "yunet_confidence")
DEFAULT_MODELS = ("sface",)
DEFAULT_DATASETS = ("demo",)
DEFAULT_OUT = Path("fiqa-results")


@dataclass
class RunConfig:
    methods: list[MethodSpec]
    models: list[str]
    datasets: list[str]
    fmrs: list[float]
    out: Path
    device: str = "auto"
    batch_size: int = 64
    workers: int = 0
    data_root: Path | None = None
    weights_dir: Path | None = None
    weights: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: Path | None = None
    skip_bad: bool = False
    report: bool = True
    progress: bool = True
    seed: int = 0
    bootstrap: int = 0
    not_available: list[dict[str, str]] = field(default_factory=list)  # entries "all" left out, and why
    methods_from_all: frozenset[str] = frozenset()  # added by --methods all: skipped, not fatal, where no model fits
    protocols: ProtocolRequest = field(default_factory=ProtocolRequest)  # --protocols, --discard-limit, ...

    def options_for(self, registry: Any, label: str) -> dict[str, Any]:
        """--set options of an entry: those given for its card name (``onnx``, ``pairs``), then those
        for the full label (``onnx:/models/x.onnx``), which win."""
        return {**self.options.get(registry.split(label)[0], {}), **self.options.get(label, {})}

    @classmethod
    def from_user(cls, **kw: Any) -> RunConfig:
        options = {k: dict(v) for k, v in (kw.get("options") or {}).items()}
        weights = parse_weights(kw.get("weights"))
        weights_dir = kw.get("weights_dir")
        not_available: list[dict[str, str]] = []
        model_names = _expand(kw.get("models"), FR_MODELS, DEFAULT_MODELS, weights, weights_dir, not_available)
        from_all: set[str] = set()
        method_names = _expand(kw.get("methods"), METHODS, DEFAULT_METHODS, weights, weights_dir, not_available, from_all)
        dataset_names = _expand(kw.get("datasets"), DATASETS, DEFAULT_DATASETS, weights, weights_dir, not_available,
                                data_root=kw.get("data_root"))
        for name in model_names:
            FR_MODELS.get(name)
        for name in dataset_names:
            DATASETS.get(name)
        if not model_names:
            raise FiqaError("--models: no FR model left to run. Name one, e.g. --models sface.")
        batch_size, workers, bootstrap, seed = check_counts(
            batch_size=kw.get("batch_size") if kw.get("batch_size") is not None else 64,
            workers=kw.get("workers") or 0, bootstrap=kw.get("bootstrap") or 0, seed=kw.get("seed") or 0,
        )  # fmt: skip
        return cls(
            methods=[parse_method_spec(m, options) for m in method_names],
            models=model_names,
            datasets=dataset_names,
            fmrs=parse_fmrs(kw.get("fmr")),
            out=Path(kw.get("out") or DEFAULT_OUT).expanduser(),
            device=kw.get("device") or "auto",
            batch_size=batch_size,
            workers=workers,
            data_root=Path(kw["data_root"]).expanduser() if kw.get("data_root") else None,
            weights_dir=Path(weights_dir).expanduser() if weights_dir else None,
            weights=weights,
            options=options,
            cache_dir=Path(kw["cache_dir"]).expanduser() if kw.get("cache_dir") else None,
            skip_bad=bool(kw.get("skip_bad")),
            report=kw.get("report", True),
            progress=kw.get("progress", True),
            seed=seed,
            bootstrap=bootstrap,
            not_available=not_available,
            methods_from_all=frozenset(from_all - set(split_list(kw.get("methods")))),
            protocols=ProtocolRequest.from_user(kw.get("protocols"), kw.get("discard_limit"), kw.get("starting_error"),
                                                kw.get("quality_scale")),
        )


def _expand(value: Any, registry: Any, default: Sequence[str], weights: Mapping[str, str], weights_dir: Any,
            not_available: list[dict[str, str]], from_all: set[str] | None = None, data_root: Any = None) -> list[str]:
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
                    status = get_dataset(card.name, root=data_root).status() if not missing else None
                except FiqaError as exc:
                    status, missing = None, [exc]
                if status is not None and not status.present:
                    not_available.append({"kind": card.kind, "name": card.name, "why": status.detail})
                    continue
            if missing and not (card.name in weights and all(str(r.what).startswith("weights:") for r in missing)):
                why = "; ".join(f"{getattr(r, 'what', '')} missing ({getattr(r, 'detail', r)})" for r in missing)
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
                        out = np.asarray(p.compute(images if whole else images[sel], meta if whole else sub_meta))
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
            name, "embedding", model.fingerprint(), lambda im, meta, m=model: m.embed(im), row_shape=row_shape,
        )
        if flip_sum and getattr(model, "flip_mode", "none") == "none":
            producers[f"mirror:{name}"] = Producer(
                f"{name}+mirror", "embedding", f"{model.fingerprint()}|mirror",
                lambda im, meta, m=model: m.embed(np.ascontiguousarray(im[:, :, ::-1])), row_shape=row_shape,
            )
    for bm in methods:
        card = bm.method.card
        if card.pair_level or card.needs_fr_model == "embeddings":
            continue
        producers[f"q:{bm.spec.label}@{bm.model_name}"] = Producer(
            f"{bm.spec.label}@{bm.model_name}" if bm.model_name else bm.spec.label,
            "quality",
            bm.method.fingerprint(),
            lambda im, meta, m=bm.method: m.score(im, meta),
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
    return (np.asarray(emb, dtype=np.float32) + np.asarray(mirror.values, dtype=np.float32)).astype(np.float32)


@dataclass
class BoundMethod:
    spec: MethodSpec
    method: QualityMethod
    model_name: str | None  # FR model the method uses (None: needs none)


def _build_models(config: RunConfig, names: set[str]) -> dict[str, FRModel]:
    models = {}
    for name in sorted(names):
        models[name] = get_fr_model(
            name,
            weights=config.weights.get(name),
            weights_dir=config.weights_dir,
            device=config.device,
            batch_size=config.batch_size,
            **config.options_for(FR_MODELS, name),
        )
    return models


def _build_methods(config: RunConfig, models: dict[str, FRModel], skipped: list[dict[str, str]]) -> list[BoundMethod]:
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
                method = get_method(
                    spec.name,
                    weights=config.weights.get(spec.label) or config.weights.get(spec.name),
                    fr_model=model,
                    weights_dir=config.weights_dir,
                    device=config.device,
                    batch_size=config.batch_size,
                    **spec.options,
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
            unusable.append(f"{spec.label}: {errors[0]} Bind one explicitly, e.g. --methods {spec.name}@<fr_model>.")
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


def _weights_info(obj: Any) -> dict[str, Any]:
    path = getattr(obj, "weights_path", None)
    return {
        "card": obj.card.to_dict(),
        "weights": str(path) if path else None,
        "weights_sha256": file_fingerprint(path) if path else None,
        "options": {k: repr(v) for k, v in (getattr(obj, "options", {}) or {}).items() if k != "fr_model"},
        "fingerprint": obj.fingerprint(),
    }


def _echo(msg: str, progress: bool) -> None:
    if progress:
        tqdm.write(msg, file=sys.stderr)
    log.info(msg)


def run_pipeline(config: RunConfig) -> Any:
    import pandas as pd

    from .results import write_pairs, write_results
    from .similarity import pair_cosine

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    cache = Cache(config.cache_dir)
    # A read-only, missing or mistaken --out / --cache-dir fails now, in one line, not after the work.
    ensure_writable_dir(config.out, "--out", keep=False)
    ensure_writable_dir(cache.root, "--cache-dir")
    not_evaluated: list[dict[str, str]] = list(config.not_available)
    for item in config.not_available:
        _echo(f"not run ({item['kind']} {item['name']}): {item['why']}", config.progress)

    # Everything missing (weights, packages, datasets, --weights typos) in one message before any work.
    preflight(
        models=config.models, methods=config.methods, datasets=config.datasets, weights=config.weights,
        weights_dir=config.weights_dir, data_root=config.data_root,
        dataset_options={d: config.options_for(DATASETS, d) for d in config.datasets},
    )  # fmt: skip
    # Build every model and method before touching data: missing weights fail fast, in one line.
    model_names = set(config.models)
    model_names |= {s.bound_fr_model for s in config.methods if s.bound_fr_model}
    models = _build_models(config, model_names)
    methods = _build_methods(config, models, not_evaluated)
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
        ds_kwargs: dict[str, Any] = {}
        if dataset_accepts(ds_name, "cache_dir"):
            ds_kwargs["cache_dir"] = cache.root  # datasets that align on the fly keep their crops there
        ds_kwargs.update(config.options_for(DATASETS, ds_name))  # --set agedb_30.expected_pairs=600 etc.
        dataset = get_dataset(ds_name, root=config.data_root, **ds_kwargs)
        data = dataset.load(skip_bad=config.skip_bad, progress=config.progress)
        _echo(data.summary(), config.progress)
        for s in data.skipped:
            log.warning("skipped %s %s: %s", s.what, s.where, s.why)
        timings[f"{ds_name}:load"] = time.perf_counter() - t_ds

        producers = make_producers(models, methods, config.protocols.needs_flip_sum)
        t_fill = time.perf_counter()
        fill_producers(
            data, list(producers.values()), cache, batch_size=config.batch_size, workers=config.workers,
            progress=config.progress,
        )
        timings[f"{ds_name}:embed+score"] = time.perf_counter() - t_fill
        for p in producers.values():
            cache_stats["hits"] += p.hits
            cache_stats["computed"] += p.computed
            cache_stats["quarantined"] += p.quarantined
            if p.error is not None:
                not_evaluated.append({"kind": "method", "name": p.label, "dataset": ds_name, "why": p.error})
                _echo(f"not evaluated on {ds_name}: {p.label}: {p.error}", config.progress)

        pairs = data.pairs
        t_eval = time.perf_counter()
        for model_name in config.models:
            emb = producers[f"emb:{model_name}"].values
            assert emb is not None
            cmp_emb = template_embeddings(emb, data.templates) if data.templates is not None else emb
            sim = pair_cosine(cmp_emb, pairs.a, pairs.b, device=device)  # GPU matrix products on CUDA
            extra: dict[str, np.ndarray] = {}
            if config.protocols.needs_flip_sum:
                fs = flip_sum_embeddings(models[model_name], emb, producers.get(f"mirror:{model_name}"))
                if fs is None:
                    why = "flip-summed embeddings need flip_tta none or sum (the model concatenates)"
                    not_evaluated.append({"kind": "protocol", "name": f"flip-sum@{model_name}", "dataset": ds_name, "why": why})
                else:
                    fs = template_embeddings(fs, data.templates) if data.templates is not None else fs
                    extra["similarity_flip_sum"] = pair_cosine(fs, pairs.a, pairs.b, device=device)
            qualities: dict[str, np.ndarray] = {}
            reference: dict[str, bool] = {}
            for bm in methods:
                if bm.model_name is not None and bm.spec.bound_fr_model is None and bm.model_name != model_name:
                    continue
                card = bm.method.card
                if card.pair_level:
                    pq = config.protocols.scale(np.asarray(bm.method.pair_quality(sim, pairs.genuine), dtype=np.float64))
                else:
                    if card.needs_fr_model == "embeddings":
                        src = producers[f"emb:{bm.model_name}"].values
                        q_img = np.asarray(bm.method.score_embeddings(src), dtype=np.float64)
                    else:
                        producer = producers[f"q:{bm.spec.label}@{bm.model_name}"]
                        if producer.error is not None:
                            continue
                        q_img = producer.values.astype(np.float64)
                    if not np.all(np.isfinite(q_img)):
                        bad = int((~np.isfinite(q_img)).sum())
                        raise FiqaError(
                            f"{bm.spec.label} gave {bad} non-finite quality score(s) on {ds_name}; "
                            "this is a bug in the method or an unusable image - report it with the dataset name."
                        )
                    if data.templates is not None:
                        q_img = template_quality(q_img, data.templates)
                    if config.protocols.quality_scale != "none":  # --quality-scale: over the images the pairs use
                        used = np.unique(np.concatenate((pairs.a, pairs.b)))
                        q_img = q_img.copy()
                        q_img[used] = config.protocols.scale(q_img[used])
                    pq = np.minimum(q_img[pairs.a], q_img[pairs.b])
                qualities[bm.spec.label] = pq
                reference[bm.spec.label] = card.reference_line
            rows, curves = evaluate_protocols(
                sim, pairs.genuine, qualities, config.fmrs, config.protocols, folds=pairs.fold, bootstrap=config.bootstrap,
                seed=config.seed, progress=config.progress, extra=extra,
            )
            for r in rows:
                r.update(dataset=ds_name, fr_model=model_name, reference_line=reference.get(r["method"], False))
            all_rows.extend(rows)
            all_curves.append(curves.assign(dataset=ds_name, fr_model=model_name))
            write_pairs(config.out, ds_name, model_name, similarity=sim, genuine=pairs.genuine, fold=pairs.fold,
                        qualities=qualities, extra=extra, option="--out")
        timings[f"{ds_name}:evaluate"] = time.perf_counter() - t_eval
        datasets_info[ds_name] = {
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
        "fr_models": {n: _weights_info(m) for n, m in models.items()},
        "methods": {
            (f"{bm.spec.label}@{bm.model_name}" if bm.model_name else bm.spec.label): _weights_info(bm.method)
            for bm in methods
        },
        "not_evaluated": not_evaluated,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "cache": {**cache_stats, "dir": str(cache.root)},
    }
    # Results first (atomically, run.json last), then the report: a report that fails loses no results.
    write_results(config.out, results, curves_df, settings=config.protocols.settings(config.fmrs, config.bootstrap, config.seed),
                  run=provenance, option="--out")
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
        raise FiqaError(f"{exc} (the results are saved in {out}; rebuild the report with `fiqa-bench report {out}`)") from exc
    except Exception:
        log.error("the report failed; the results are saved in %s: rebuild it with `fiqa-bench report %s`", out, out)
        raise


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:
        return None


def dataset_accepts(name: str, option: str) -> bool:
    factory = DATASETS.get(name).factory
    params = inspect.signature(factory).parameters
    return option in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
