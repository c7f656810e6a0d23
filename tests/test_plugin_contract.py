"""Registry-driven contract tests: every registered method, FR model and dataset that can run here
without user weights gets them for free (after timm's tests/test_models.py).

Per plug-in: output shape and finiteness, batch invariance (a batch gives what single images give),
a fingerprint that changes with every declared option that changes numbers (and not with speed-only
ones), with the weights (two random checkpoints in the published layout) but not with where the
weights lie, and unknown options rejected with "did you mean". A handful of real LFW faces; torch
methods run with small declared options (FAST) and are marked slow.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fiqa_bench
from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import DATASETS, FR_MODELS, METHODS, Card, Option, check_requirements

N_IMAGES = 4
# Smaller values of declared options, so the torch methods stay fast (the contract holds for any value).
FAST: dict[str, dict[str, Any]] = {
    "serfiq": {"T": 6},
    "faceqan": {"copies": 2, "steps": 2},
    "froq": {"layers": "features", "noise_images": 2},  # fixed layer instead of a calibration set
}


def _runnable(card: Card) -> bool:
    return not card.takes_argument and all(r.present for r in check_requirements(card))


METHOD_NAMES = [c.name for c in METHODS.cards() if _runnable(c)]
MODEL_NAMES = [c.name for c in FR_MODELS.cards() if _runnable(c)]
DATASET_NAMES = [c.name for c in DATASETS.cards()]


def alternatives(option: Option) -> list[Any]:
    """Valid-looking values different from the default (empty when none can be derived generically)."""
    d = option.default
    if option.choices:
        return [c for c in option.choices if c != d]
    if isinstance(d, bool):
        return [not d]
    if isinstance(d, int):
        return [d + 1]
    if isinstance(d, float):
        return [d / 2 if d else 0.5]
    return []


def first_built(build: Any, option: Option) -> Any:
    """The plug-in built with the first alternative value its build accepts here (some values depend on
    the bound model, e.g. grafiqs' stage variants), or None."""
    for value in alternatives(option):
        try:
            return build(**{option.name: value})
        except FiqaError:
            continue
    return None


@pytest.fixture(scope="module")
def faces(aligned_lfw_sample: dict[str, Any]) -> np.ndarray:
    return aligned_lfw_sample["images"][:N_IMAGES]


@pytest.fixture(scope="module")
def meta(faces: np.ndarray) -> dict[str, np.ndarray]:
    """What a dataset aligned on the fly hands over: detector score and landmarks per image."""
    from fiqa_bench.methods._common import detect_on_crops

    score, landmarks = detect_on_crops(faces)
    return {"det_score": score, "landmarks": landmarks}


@pytest.fixture(scope="module")
def r18_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two random iResNet-18 checkpoints with a CR-FIQA qs head, as plain state_dicts (the layout of the
    published CR-FIQA / arcface_torch backbone.pth files)."""
    import torch
    from fiqa_bench.fr_models._iresnet import iresnet, randomise_for_testing_

    folder = tmp_path_factory.mktemp("contract_r18")
    paths = []
    for seed in (3, 4):
        path = folder / f"r18_seed{seed}.pth"
        torch.save(randomise_for_testing_(iresnet(18, with_qs=True), seed=seed).state_dict(), path)
        paths.append(path)
    return paths[0], paths[1]


_models: dict[str, Any] = {}


def fr_model_for(card: Card) -> Any:
    """An FR model the method can be bound to here (cached per name), or None when it needs none."""
    if card.needs_fr_model == "none":
        return None
    wanted = list(card.supported_fr_models) or (
        ["sface_torch"] if card.needs_fr_model == "torch" else ["sface"]
    )
    for name in wanted:
        if name in MODEL_NAMES:
            if name not in _models:
                _models[name] = fiqa_bench.get_fr_model(name, device="cpu")
            return _models[name]
    pytest.skip(f"{card.name}: no FR model it supports ({', '.join(wanted)}) can run here")


def method_marks(name: str) -> list[Any]:
    return [pytest.mark.slow] if METHODS.card(name).needs_fr_model == "torch" else []


METHOD_PARAMS = [pytest.param(n, marks=method_marks(n), id=n) for n in METHOD_NAMES]


def build_method(name: str, **options: Any) -> Any:
    card = METHODS.card(name)
    return fiqa_bench.get_method(
        name, fr_model=fr_model_for(card), device="cpu", **{**FAST.get(name, {}), **options}
    )


# -- methods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHOD_PARAMS)
def test_method_scores_shape_finite_and_batch_invariant(name: str, faces: np.ndarray, meta: dict) -> None:
    method = build_method(name)
    card = method.card
    if card.pair_level:
        sim = np.linspace(-0.5, 0.9, 6)
        genuine = np.array([True, False] * 3)
        pq = method.pair_quality(sim, genuine)
        assert pq.shape == (6,) and pq.dtype == np.float64 and np.isfinite(pq).all()
        return
    if card.needs_fr_model == "embeddings":
        emb = method.fr_model.embed(faces)
        q = method.score_embeddings(emb)
        singles = np.concatenate([method.score_embeddings(emb[i : i + 1]) for i in range(len(emb))])
    else:
        q = method.score(faces, meta)
        singles = np.concatenate(
            [
                method.score(faces[i : i + 1], {k: v[i : i + 1] for k, v in meta.items()})
                for i in range(len(faces))
            ]
        )
    assert q.shape == (len(faces),) and q.dtype == np.float64
    assert np.isfinite(q).all(), q
    np.testing.assert_allclose(q, singles, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", METHOD_PARAMS)
def test_method_fingerprint_follows_declared_options(name: str) -> None:
    card = METHODS.card(name)
    base = build_method(name)
    for option in card.options:
        other = first_built(lambda **o: build_method(name, **o), option)
        if other is None:
            continue
        changed = other.fingerprint() != base.fingerprint()
        assert changed == option.fingerprint, f"{name}.{option.name}"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_rejects_unknown_option(name: str) -> None:
    # Options are checked before anything is built or bound (no FR model needed to get the error).
    with pytest.raises(FiqaError, match="unknown option 'no_such_option'"):
        fiqa_bench.get_method(name, no_such_option=1)


# -- FR models -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fr_model_embeddings_shape_finite_and_batch_invariant(name: str, faces: np.ndarray) -> None:
    model = fiqa_bench.get_fr_model(name, device="cpu")
    emb = model.embed(faces)
    dim = model.card.embedding_size
    assert emb.dtype == np.float32 and emb.shape[0] == len(faces) and (dim is None or emb.shape[1] == dim)
    assert np.isfinite(emb).all()
    singles = np.concatenate([model.embed(faces[i : i + 1]) for i in range(len(faces))])
    np.testing.assert_allclose(emb, singles, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fr_model_fingerprint_follows_declared_options_not_weight_location(name: str, tmp_path: Path) -> None:
    card = FR_MODELS.card(name)
    base = fiqa_bench.get_fr_model(name, device="cpu")
    for option in card.options:
        other = first_built(lambda **o: fiqa_bench.get_fr_model(name, device="cpu", **o), option)
        if other is None:
            continue
        assert (other.fingerprint() != base.fingerprint()) == option.fingerprint, f"{name}.{option.name}"
    if base.weight_files:
        copies = []
        for p in base.weight_files:
            dst = tmp_path / p.name
            shutil.copy(p, dst)
            copies.append(dst)
        moved = fiqa_bench.get_fr_model(name, copies[0], device="cpu", weights_dir=tmp_path)
        assert moved.weights_path == copies[0] and moved.fingerprint() == base.fingerprint()


@pytest.mark.parametrize("name", [c.name for c in FR_MODELS.cards()])
def test_fr_model_rejects_unknown_option(name: str) -> None:
    with pytest.raises(FiqaError, match="unknown option 'flip_ttaa'. Did you mean flip_tta"):
        FR_MODELS.card(name).resolve_options({"flip_ttaa": True})


@pytest.mark.slow
def test_checkpoint_fr_model_and_method_follow_the_weights(r18_checkpoints: tuple[Path, Path], faces) -> None:
    a, b = r18_checkpoints
    ma, mb = (fiqa_bench.get_fr_model(f"crfiqa:{p}", device="cpu") for p in (a, b))
    assert ma.fingerprint() != mb.fingerprint()
    qa, qb = (fiqa_bench.get_method(f"crfiqa:{p}", device="cpu") for p in (a, b))
    assert qa.fingerprint() != qb.fingerprint()
    q = qa.score(faces)
    assert q.shape == (len(faces),) and np.isfinite(q).all()
    singles = np.concatenate([qa.score(faces[i : i + 1]) for i in range(len(faces))])
    np.testing.assert_allclose(q, singles, rtol=1e-4, atol=1e-5)
    # A method bound to a checkpoint FR model changes its key with the model's weights.
    fa = fiqa_bench.get_method("face_norm", fr_model=ma).fingerprint()
    fb = fiqa_bench.get_method("face_norm", fr_model=mb).fingerprint()
    assert fa != fb


# -- datasets ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_dataset_options_status_and_fingerprint(name: str, tmp_path: Path) -> None:
    card = DATASETS.card(name)
    spec = f"{name}:{tmp_path / 'pairs.csv'}" if card.takes_argument else name
    with pytest.raises(FiqaError, match="unknown option 'no_such_option'"):
        fiqa_bench.get_dataset(spec, root=tmp_path, no_such_option=1)
    if any(not r.present for r in check_requirements(card)):
        pytest.skip(f"{name}: requirements missing here")
    base = fiqa_bench.get_dataset(spec, root=tmp_path)
    status = base.status()  # cheap, never raises: an empty root is reported, not an error
    assert isinstance(status.present, bool) and status.detail
    for option in card.options:
        other = first_built(lambda **o: fiqa_bench.get_dataset(spec, root=tmp_path, **o), option)
        if other is None:
            continue
        assert (other.declared_fingerprint() != base.declared_fingerprint()) == option.fingerprint, (
            f"{name}.{option.name}"
        )


@pytest.mark.slow
def test_demo_dataset_loads_to_the_contract() -> None:
    data = fiqa_bench.get_dataset("demo", folds=2).load(progress=False)
    n = len(data.faces)
    assert len(set(data.faces.ids)) == n
    p = data.pairs
    assert len(p) and p.a.min() >= 0 and p.b.max() < n and set(np.unique(p.fold)) == {0, 1}
    im = data.faces.batch([0, n - 1])
    assert im.shape == (2, 112, 112, 3) and im.dtype == np.uint8
