"""froq on a real trained FR model (sface_torch) with real LFW / LFW-train faces.

SFACE_LAYERS is what FROQ's calibration chose on sface_torch with 300 LFW-train images (default options,
seed 0; 48 min on the loaded 2-core machine): the final BatchNorm1d, i.e. the embedding itself (utility
0.768; the fc output 0.762, the best convolutional stage 0.458). The slow test reruns the whole
calibration on a small LFW-train sample.
"""

from __future__ import annotations

import numpy as np
import pytest
from fiqa_bench.methods import froq as froq_module
from fiqa_bench.methods._degrade import DEGRADATIONS, apply
from fiqa_bench.methods.froq import occlusion_masks, select_layers

import fiqa_bench
from fiqa_bench.errors import FiqaError

SFACE_LAYERS = "features"
SEVERAL = "backbone.72,backbone.78,features"  # for the mean over layers


@pytest.fixture(scope="module")
def sface():
    return fiqa_bench.get_fr_model("sface_torch", device="cpu")


@pytest.fixture(scope="module")
def faces(aligned_lfw_sample):
    return aligned_lfw_sample["images"][:24]


def test_occlusion_grid_as_in_the_reference():
    masks = occlusion_masks(112, 14)
    assert masks.shape == (64, 112, 112)
    assert (masks.sum(axis=(1, 2)) == 14 * 14).all()
    np.testing.assert_array_equal(masks.sum(0), 1)  # every pixel occluded exactly once
    assert masks[9, 14:28, 14:28].all()  # block 9 = row 1, column 1


def test_greedy_selection_hand_computed():
    labels = np.array([1.0, 2, 3, 4, 5])
    norms = {
        "l1": np.array([1.0, 2, 3, 5, 4]),  # rho 0.9
        "l2": np.array([2.0, 1, 3, 4, 5]),  # rho 0.9 (tie: module order keeps l1 first)
        "l3": np.array([5.0, 4, 3, 2, 1]),  # rho -1
        "flat": np.ones(5),  # constant: utility undefined, left out
        "l5": np.array([1.0, 3, 2, 5, 4]),  # rho 0.8
    }
    cal = select_layers(norms, ["l1", "flat", "l2", "l3", "l5"], labels, top_n=3)
    assert cal.top_layers == ["l1", "l2", "l5"]
    np.testing.assert_allclose(cal.top_utilities, [0.9, 0.9, 0.8])
    # [l1] 0.9; + l2: mean ranks (1.5, 1.5, 3, 4.5, 4.5) -> 9 / sqrt(90) = 0.948683;
    # + l5: mean (1.33, 2, 3, 4.67, 4.33), ranks (1, 2, 3, 5, 4) -> 0.9
    assert cal.set_correlations[0] == pytest.approx(0.9)
    assert cal.set_correlations[1] == pytest.approx(9 / np.sqrt(90))
    assert cal.set_correlations[2] == pytest.approx(0.9)
    assert cal.layers == ["l1", "l2"]  # the prefix up to the first maximum
    with pytest.raises(FiqaError):
        select_layers({"flat": np.ones(5)}, ["flat"], labels, top_n=3)


def test_score_is_mean_layer_norm(sface, faces):
    import torch

    m = fiqa_bench.get_method("froq", fr_model=sface, layers=SEVERAL)
    q = m.score(faces)
    assert q.shape == (len(faces),) and np.isfinite(q).all() and (q > 0).all()
    single = np.concatenate([m.score(f[None]) for f in faces[:6]])
    np.testing.assert_allclose(q[:6], single, rtol=1e-5)
    # By hand for one face: hooks on the named modules, L2 norm of each flattened output, mean.
    modules = dict(sface.torch_module.named_modules())
    outs = {}
    handles = [
        modules[n].register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o))
        for n in SEVERAL.split(",")
    ]
    with torch.inference_mode():
        sface.torch_module(sface.preprocess(faces[:1]))
    for h in handles:
        h.remove()
    hand = np.mean([float(torch.linalg.vector_norm(outs[n].float())) for n in SEVERAL.split(",")])
    assert q[0] == pytest.approx(hand, rel=1e-5)


@pytest.mark.realdata
def test_degraded_faces_score_lower(sface, faces):
    faces = faces[:12]
    m = fiqa_bench.get_method("froq", fr_model=sface, layers=SFACE_LAYERS)
    q = m.score(faces)
    # The chosen layer is the embedding layer: FROQ equals the raw embedding's norm on sface_torch.
    np.testing.assert_allclose(q, np.linalg.norm(sface.embed(faces), axis=1), rtol=1e-5)
    for name in DEGRADATIONS:
        lowered = float((m.score(apply(name, faces)) < q).mean())
        assert lowered >= 0.9, f"{name} lowered FROQ for only {lowered:.0%} of {len(faces)} faces"


def test_errors_are_one_line(sface, tmp_path):
    with pytest.raises(FiqaError, match="calibration=DIR") as e:
        fiqa_bench.get_method("froq", fr_model=sface)
    assert "\n" not in str(e.value)
    with pytest.raises(FiqaError, match="not modules of sface_torch"):
        fiqa_bench.get_method("froq", fr_model=sface, layers="backbone.72,nope")
    with pytest.raises(FiqaError, match="not found"):
        fiqa_bench.get_method("froq", fr_model=sface, calibration=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FiqaError, match="no images"):
        fiqa_bench.get_method("froq", fr_model=sface, calibration=str(tmp_path / "empty"))
    with pytest.raises(FiqaError, match="unknown option"):
        fiqa_bench.get_method("froq", fr_model=sface, layers=SFACE_LAYERS, T=3)
    with pytest.raises(FiqaError):
        fiqa_bench.get_method("froq", fr_model="sface")  # ONNX Runtime model: no layers to observe


@pytest.mark.slow
@pytest.mark.realdata
def test_calibration_on_lfw_train_is_deterministic_and_cached(
    sface, shared_data_dir, faces, tmp_path, monkeypatch
):
    monkeypatch.setenv("FIQA_BENCH_CACHE", str(tmp_path / "cache"))
    train = shared_data_dir / "lfw_train"
    small = {
        "calibration_size": 16,
        "noise_images": 2,
        "occlusion_px": 28,
    }  # 20 forward passes per image, not 76
    m = fiqa_bench.get_method("froq", fr_model=sface, calibration=str(train), **small)
    cal = m.calibration
    assert cal.n_images + len(cal.skipped) == 16 and 1 <= len(cal.layers) <= 10
    assert len(cal.set_correlations) == 10 and max(cal.set_correlations) == pytest.approx(
        cal.set_correlations[len(cal.layers) - 1]
    )
    assert cal.top_utilities == sorted(cal.top_utilities, reverse=True) and cal.top_utilities[0] > 0.3
    # Second construction: read from the cache (the pseudo-labels are not recomputed), same result.
    monkeypatch.setattr(
        froq_module, "pseudo_labels", lambda *a, **k: pytest.fail("calibration was recomputed")
    )
    again = fiqa_bench.get_method("froq", fr_model=sface, calibration=str(train), **small)
    assert again.calibration == cal and again.fingerprint() == m.fingerprint()
    np.testing.assert_array_equal(again.score(faces[:4]), m.score(faces[:4]))
    # The scores depend on the calibration images: another sample size is another producer.
    assert m.fingerprint() != fiqa_bench.get_method("froq", fr_model=sface, layers=SFACE_LAYERS).fingerprint()
    lowered = float((m.score(apply("blur", faces)) < m.score(faces)).mean())
    assert lowered >= 0.8
