"""ofiq_uqs: OFIQ's unified quality score mapping, input conversion and file checks.

OFIQ's MagFace ONNX file is not on this machine; the tests build small ONNX models with its interface
(one input N x 3 x 112 x 112 float, one value per image) whose output is a known function of the pixels,
so the colour order, scaling and the sigmoid mapping are checked against hand-computed numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fiqa_bench.methods.ofiq import ofiq_input, ofiq_sigmoid

import fiqa_bench
from fiqa_bench.errors import CheckpointError, FiqaError


def _onnx_model(
    path: Path, bgr_weights: tuple[float, float, float], batch: int | str = "N", out_values: int = 1
) -> Path:
    """Conv 1x1 with the given per-channel weights, global average pool, flatten: mean(w . pixel)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((out_values, 3, 1, 1), np.float32)
    w[:, :, 0, 0] = np.asarray(bgr_weights, np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["c"]),
            helper.make_node("GlobalAveragePool", ["c"], ["p"]),
            helper.make_node("Flatten", ["p"], ["norm"]),
        ],
        "ofiq_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("norm", TensorProto.FLOAT, [batch, out_values])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_sigmoid_hand_computed():
    m = np.array([23.0, 25.6, 20.4, 0.0, 60.0, 23.0 + 2.6 * math.log(3.0)])
    # 100 / (1 + exp((23 - m) / 2.6)): 50, 100/(1+e^-1) = 73.1, 100/(1+e) = 26.9, 0.0144, 99.9999, 75
    expected = np.array([50.0, 73.10585786, 26.89414214, 0.01438, 99.99994, 75.0])
    np.testing.assert_allclose(ofiq_sigmoid(m, rounded=False), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ofiq_sigmoid(m), [50, 73, 27, 0, 100, 75])
    assert ofiq_sigmoid(np.array([-1e6]))[0] == 0.0 and ofiq_sigmoid(np.array([1e6]))[0] == 100.0


def test_input_is_bgr_over_255():
    img = np.zeros((1, 112, 112, 3), np.uint8)
    img[..., 0] = 255  # red
    img[..., 2] = 51  # blue
    x = ofiq_input(img)
    assert x.shape == (1, 3, 112, 112) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [0.2, 0.0, 1.0])  # B, G, R


@pytest.mark.parametrize("batch", ["N", 1])
def test_colour_order_and_mapping_through_onnx(tmp_path, batch):
    path = _onnx_model(tmp_path / "magface_iresnet50_norm.onnx", (23.0, 0.0, 0.0), batch=batch)
    blue = np.zeros((1, 112, 112, 3), np.uint8)
    blue[..., 2] = 255
    red = np.zeros((1, 112, 112, 3), np.uint8)
    red[..., 0] = 255
    images = np.concatenate([blue, red])
    m = fiqa_bench.get_method("ofiq_uqs", weights=path, device="cpu")
    np.testing.assert_allclose(m.magnitudes(images), [23.0, 0.0], atol=1e-4)
    np.testing.assert_array_equal(m.score(images), [50.0, 0.0])  # higher = better, as OFIQ reports it
    raw = fiqa_bench.get_method("ofiq_uqs", weights=path, device="cpu", output="magnitude")
    np.testing.assert_allclose(raw.score(images), [23.0, 0.0], atol=1e-4)


def test_real_lfw_batch_equals_single_and_finite(tmp_path, aligned_lfw_sample):
    faces = aligned_lfw_sample["images"][:12]
    path = _onnx_model(tmp_path / "magface_iresnet50_norm.onnx", (20.0, 30.0, 40.0), batch=1)
    m = fiqa_bench.get_method("ofiq_uqs", weights=path, device="cpu", output="uqs_unrounded")
    batch = m.score(faces)
    single = np.concatenate([m.score(f[None]) for f in faces])
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    assert np.isfinite(batch).all() and ((batch >= 0) & (batch <= 100)).all()
    # The tiny model's magnitude is mean(20 B + 30 G + 40 R)/255: check one face by hand.
    f = faces[0].astype(np.float64) / 255.0
    hand = (20 * f[..., 2] + 30 * f[..., 1] + 40 * f[..., 0]).mean()
    assert m.magnitudes(faces[:1])[0] == pytest.approx(hand, rel=1e-5)


def test_bad_files_one_line(tmp_path):
    junk = tmp_path / "magface_iresnet50_norm.onnx"
    junk.write_bytes(b"not an onnx file" * 10)
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method("ofiq_uqs", weights=junk, device="cpu")
    assert str(junk) in str(e.value) and "\n" not in str(e.value)
    good = _onnx_model(tmp_path / "good.onnx", (1.0, 1.0, 1.0))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method("ofiq_uqs", weights=cut, device="cpu")
    assert "\n" not in str(e.value)
    emb = _onnx_model(tmp_path / "embedding.onnx", (1.0, 1.0, 1.0), out_values=8)
    m = fiqa_bench.get_method("ofiq_uqs", weights=emb, device="cpu")
    with pytest.raises(CheckpointError, match="8 values per image") as e:
        m.score(np.zeros((2, 112, 112, 3), np.uint8))
    assert "\n" not in str(e.value)
    with pytest.raises(FiqaError, match="output="):
        fiqa_bench.get_method("ofiq_uqs", weights=good, device="cpu", output="raw")


def test_missing_weights_names_published_file(tmp_path):
    with pytest.raises(FiqaError, match="magface_iresnet50_norm.onnx"):
        fiqa_bench.get_method("ofiq_uqs", weights_dir=tmp_path / "empty", device="cpu")
