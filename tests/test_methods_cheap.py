"""Cheap quality methods on real LFW faces: hand-computed values, determinism, batch == single,
finite on every LFW image, and controlled degradations lowering the score."""

from __future__ import annotations

import numpy as np
import pytest
from fiqa_bench.methods import _degrade as D

import fiqa_bench as fb
from fiqa_bench.errors import FiqaError, UnsupportedCombinationError
from fiqa_bench.faces import ARCFACE_TEMPLATE, YuNetDetector, pick_face, read_rgb
from fiqa_bench.registry import METHODS

CHEAP = ["sharpness", "exposure", "contrast", "yunet_confidence", "head_pose", "random", "qualityface"]
# Minimum fraction of real faces whose quality must drop under each non-exempt degradation.
MIN_DROP = 0.7


@pytest.fixture(scope="session")
def lfw_all(shared_data_dir, tmp_path_factory):
    """Every image of ../shared/data/lfw aligned on the fly (crops + meta)."""
    ds = fb.get_dataset("lfw", root=shared_data_dir)  # crops shared through the session cache
    data = ds.load(progress=False)
    idx = np.arange(len(data.faces))
    return data.faces.batch(idx), data.faces.meta_for(idx)


def test_degradations_change_pixels_and_keep_shape(aligned_lfw_sample):
    im = aligned_lfw_sample["images"][0]
    for name, fn in D.DEGRADATIONS.items():
        out = fn(im)
        assert out.shape == im.shape and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - im).mean() > 1.0, name
    bar = D.occlude_eyes(im)
    assert (bar[45:58, 30:80] == 0).all() and (bar[80:] == im[80:]).all()
    assert np.array_equal(D.noise(im, seed=3), D.noise(im, seed=3))


def test_hand_computed_values():
    flat = np.full((1, 112, 112, 3), 128, np.uint8)
    assert fb.get_method("sharpness").score(flat)[0] == 0.0
    assert fb.get_method("contrast").score(flat)[0] == 0.0
    black = np.zeros((1, 112, 112, 3), np.uint8)
    assert fb.get_method("exposure").score(black)[0] == pytest.approx(np.exp(-0.25 / 0.08))
    assert fb.get_method("exposure").score(flat)[0] == pytest.approx(np.exp(-((128 / 255 - 0.5) ** 2) / 0.08))
    half = black.copy()
    half[:, 28:68] = 255  # face rows 28..107: top half white, bottom half black
    assert fb.get_method("contrast").score(half)[0] == pytest.approx(0.5)
    # Vertical stripes of period 2 (0/255): Laplacian = -4*I + 2*(255 - I) + 2*I -> +-510 everywhere.
    stripes = np.zeros((1, 112, 112, 3), np.uint8)
    stripes[:, :, ::2] = 255
    assert fb.get_method("sharpness").score(stripes)[0] == pytest.approx(510.0**2)


def test_head_pose_geometry():
    hp = fb.get_method("head_pose", component="yaw")
    lm = ARCFACE_TEMPLATE[None].astype(np.float64)
    meta = {"landmarks": lm}
    img = np.zeros((1, 112, 112, 3), np.uint8)
    assert hp.score(img, meta)[0] == pytest.approx(0.0, abs=0.2)
    turned = lm.copy()
    turned[0, 2, 0] += 8  # nose moves towards one eye: yaw
    more = lm.copy()
    more[0, 2, 0] += 16
    q0, q1, q2 = (hp.score(img, {"landmarks": x})[0] for x in (lm, turned, more))
    assert q0 > q1 > q2
    # Similarity invariance: rotating, scaling and shifting all landmarks changes nothing.
    th = np.radians(25)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = (turned[0] @ rot.T) * 2.5 + 40
    both = fb.get_method("head_pose")
    assert both.score(img, {"landmarks": moved[None]})[0] == pytest.approx(
        both.score(img, {"landmarks": turned})[0]
    )
    with pytest.raises(FiqaError):
        fb.get_method("head_pose", component="roll")


def test_head_pose_on_real_crops_is_roll_and_mirror_invariant(aligned_lfw_sample):
    import cv2

    ims = aligned_lfw_sample["images"][:16]
    hp = fb.get_method("head_pose", component="yaw")
    q = hp.score(ims)
    mirrored = hp.score(ims[:, :, ::-1].copy())
    # YuNet's landmarks drift with larger rolls (trained on upright faces): 5 degrees keeps it fair.
    rot = cv2.getRotationMatrix2D((56, 60), 5, 1.0)
    rolled = hp.score(np.stack([cv2.warpAffine(im, rot, (112, 112)) for im in ims]))
    good = q > -40
    assert np.median(np.abs(q - mirrored)[good]) < 3.0
    assert np.median(np.abs(q - rolled)[good]) < 3.0


def test_inter_eye_distance():
    ied = fb.get_method("inter_eye_distance")
    lm = np.array([[[10, 20], [40, 60], [0, 0], [0, 0], [0, 0]]], np.float64)
    img = np.zeros((1, 112, 112, 3), np.uint8)
    assert ied.score(img, {"landmarks": lm})[0] == pytest.approx(50.0)
    with pytest.raises(UnsupportedCombinationError, match="already aligned"):
        ied.score(img)


def test_inter_eye_distance_follows_photo_resolution(lfw_dir):
    import cv2

    det = YuNetDetector()
    ied = fb.get_method("inter_eye_distance")
    ratios = []
    for person in sorted((lfw_dir / "images").iterdir())[:12]:
        rgb = read_rgb(sorted(person.glob("*.jpg"))[0])
        small = cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        d0, d1 = pick_face(det.detect(rgb), rgb.shape), pick_face(det.detect(small), small.shape)
        if d0 is None or d1 is None:
            continue
        img = np.zeros((1, 112, 112, 3), np.uint8)
        q0 = ied.score(img, {"landmarks": d0.landmarks[None]})[0]
        q1 = ied.score(img, {"landmarks": d1.landmarks[None]})[0]
        ratios.append(q1 / q0)
    assert len(ratios) >= 8
    assert np.median(ratios) == pytest.approx(0.5, abs=0.08)


def test_yunet_confidence_uses_meta_when_present(aligned_lfw_sample):
    ims = aligned_lfw_sample["images"][:4]
    m = fb.get_method("yunet_confidence")
    meta = {"det_score": np.array([0.1, 0.2, 0.3, 0.4], np.float32)}
    assert np.allclose(m.score(ims, meta), [0.1, 0.2, 0.3, 0.4])
    redetected = fb.get_method("yunet_confidence", use_meta=False).score(ims, meta)
    assert np.array_equal(redetected, m.score(ims)) and (redetected > 0.5).all()


def test_random_and_oracle_reference_lines(aligned_lfw_sample):
    ims = aligned_lfw_sample["images"]
    r0 = fb.get_method("random").score(ims)
    assert ((r0 >= 0) & (r0 < 1)).all()
    assert not np.array_equal(r0, fb.get_method("random", seed=1).score(ims))
    assert METHODS.card("random").reference_line and METHODS.card("oracle").reference_line
    card = METHODS.card("oracle")
    assert card.pair_level and card.needs_fr_model == "embeddings"
    from fiqa_bench.types import BuildContext

    oracle = METHODS.get("oracle").factory(BuildContext(card))
    pq = oracle.pair_quality(np.array([0.9, 0.1, 0.8, -0.2]), np.array([True, True, False, False]))
    assert np.allclose(pq, [0.9, 0.1, -0.8, 0.2])
    with pytest.raises(FiqaError):
        oracle.score(ims[:1])


def test_face_norm_from_embeddings():
    card = METHODS.card("face_norm")
    from fiqa_bench.types import BuildContext

    m = METHODS.get("face_norm").factory(BuildContext(card, fr_model=object()))
    emb = np.array([[3.0, 4.0], [0.0, 2.0]])
    assert np.allclose(m.score_embeddings(emb), [5.0, 2.0])
    with pytest.raises(UnsupportedCombinationError):
        fb.get_method("face_norm")


@pytest.mark.parametrize("name", CHEAP)
def test_deterministic_and_batch_equals_single(name, aligned_lfw_sample):
    ims = aligned_lfw_sample["images"][:8]
    m = fb.get_method(name)
    a, b = m.score(ims), fb.get_method(name).score(ims)
    assert np.array_equal(a, b)
    single = np.array([m.score(im[None])[0] for im in ims])
    rtol = 1e-5 if name == "qualityface" else 1e-9  # float32 network: batched kernels round differently
    assert np.allclose(a, single, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name", CHEAP)
def test_finite_on_every_lfw_image(name, lfw_all):
    images, meta = lfw_all
    assert len(images) >= 2000
    if name == "qualityface":  # a CNN at ~30 img/s on 2 cores: every 3rd image keeps the suite fast
        images, meta = images[::3], {k: v[::3] for k, v in meta.items()}
    m = fb.get_method(name)
    q = m.score(images, meta)
    assert q.shape == (len(images),) and np.isfinite(q).all()
    if name in ("yunet_confidence", "head_pose"):  # these read meta when present: check the crop path too
        q2 = fb.get_method(name).score(images[::10])
        assert np.isfinite(q2).all()


def test_inter_eye_distance_finite_on_every_lfw_image(lfw_all):
    images, meta = lfw_all
    q = fb.get_method("inter_eye_distance").score(images, meta)
    assert np.isfinite(q).all() and (q > 5).all()


# head_pose and random are blind to pixel degradations by design (their cards exempt all six).
@pytest.mark.parametrize("name", [n for n in CHEAP if n not in ("random", "head_pose")])
def test_degradations_lower_quality(name, aligned_lfw_sample):
    ims = aligned_lfw_sample["images"]
    m = fb.get_method(name)
    q = m.score(ims)
    card = METHODS.card(name)
    checked = 0
    for deg in D.DEGRADATIONS:
        if deg in card.exempt_degradations:
            continue
        frac = float((m.score(D.apply(deg, ims)) < q).mean())
        assert frac >= MIN_DROP, f"{name}: {deg} lowered quality for only {frac:.2f} of {len(ims)} faces"
        checked += 1
    assert checked >= 2, f"{name} is exempt from almost everything: the card should say why"
