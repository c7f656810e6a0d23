"""ONNX backend: an exported iResNet gives the torch embeddings; generic onnx: card options; errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fiqa_bench.fr_models._iresnet import iresnet, randomise_for_testing_

import fiqa_bench
from fiqa_bench.errors import CheckpointError, FiqaError

torch.set_num_threads(2)
pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package (pip install 'fiqa-bench[dev]')")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random iResNet18 saved as a checkpoint and exported to ONNX (dynamic batch)."""
    folder = tmp_path_factory.mktemp("fr_onnx")
    module = randomise_for_testing_(iresnet(18), seed=11).eval()
    ckpt, onnx_path = folder / "r18.pth", folder / "r18.onnx"
    torch.save(module.state_dict(), ckpt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, 112, 112),),
            str(onnx_path),
            dynamo=False,
            input_names=["input.1"],
            output_names=["embedding"],
            dynamic_axes={"input.1": {0: "n"}, "embedding": {0: "n"}},
            opset_version=17,
        )
    return ckpt, onnx_path


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(3, 112, 112, 3), dtype=np.uint8)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_export_matches_torch_embeddings(exported: tuple[Path, Path], faces: np.ndarray) -> None:
    ckpt, onnx_path = exported
    torch_model = fiqa_bench.get_fr_model(f"crfiqa:{ckpt}", device="cpu")
    onnx_model = fiqa_bench.get_fr_model(f"onnx:{onnx_path}", device="cpu", threads=2)
    # The small card is read from the model itself.
    assert onnx_model.card.input_size == (112, 112) and onnx_model.card.embedding_size == 512
    assert onnx_model.channels_first and onnx_model.fixed_batch is None
    e_torch, e_onnx = torch_model.embed(faces), onnx_model.embed(faces)
    assert e_onnx.shape == (3, 512)
    c = cosine(e_torch, e_onnx)
    print(f"torch vs onnx cosine: min {c.min():.7f}")
    assert (c > 0.9999).all()
    np.testing.assert_allclose(e_onnx, e_torch, rtol=1e-3, atol=1e-2)
    # Batch == one by one for the ONNX backend too.
    alone = np.concatenate([onnx_model.embed(f) for f in faces])
    np.testing.assert_allclose(alone, e_onnx, rtol=1e-4, atol=1e-4)


def test_onnx_colour_and_normalisation_options(exported: tuple[Path, Path], faces: np.ndarray) -> None:
    _, onnx_path = exported
    rgb = fiqa_bench.get_fr_model(f"onnx:{onnx_path}", device="cpu")
    bgr = fiqa_bench.get_fr_model(f"onnx:{onnx_path}", device="cpu", colour="BGR")
    swapped = np.ascontiguousarray(faces[:1, ..., ::-1])
    # A BGR model fed swapped pixels sees exactly what the RGB model sees on the originals.
    np.testing.assert_array_equal(bgr.preprocess(swapped), rgb.preprocess(faces[:1]))
    unit = fiqa_bench.get_fr_model(f"onnx:{onnx_path}", device="cpu", normalisation="unit")
    raw = fiqa_bench.get_fr_model(f"onnx:{onnx_path}", device="cpu", normalisation="0,1")
    px = faces[:1, 0, 0]
    assert unit.preprocess(faces[:1])[0, :, 0, 0] == pytest.approx(px[0] / 255.0)
    assert raw.preprocess(faces[:1])[0, :, 0, 0] == pytest.approx(px[0].astype(np.float32))
    assert rgb.preprocess(faces[:1])[0, :, 0, 0] == pytest.approx(px[0] / 127.5 - 1.0, abs=1e-6)
    assert "x/255" in unit.card.normalisation and bgr.card.colour == "BGR"
    assert len({rgb.fingerprint(), bgr.fingerprint(), unit.fingerprint()}) == 3
    with pytest.raises(FiqaError, match="normalisation 'imagenet'"):
        fiqa_bench.get_fr_model(f"onnx:{onnx_path}", normalisation="imagenet")
    with pytest.raises(FiqaError, match="colour 'YUV'"):
        fiqa_bench.get_fr_model(f"onnx:{onnx_path}", colour="YUV")


def test_onnx_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FiqaError, match="needs an argument"):
        fiqa_bench.get_fr_model("onnx")
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FiqaError, match="nope.onnx does not exist"):
        fiqa_bench.get_fr_model(f"onnx:{missing}")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(CheckpointError, match="broken.onnx: cannot load this ONNX model"):
        fiqa_bench.get_fr_model(f"onnx:{broken}")


def test_sface_card_and_fixed_batch(faces: np.ndarray) -> None:
    model = fiqa_bench.get_fr_model("sface", device="cpu", threads=2)
    assert model.fixed_batch == 1 and model.card.embedding_size == 128 and model.spec.colour == "RGB"
    assert model.weights_path.name == "face_recognition_sface_2021dec.onnx"
    x = model.preprocess(faces[:1])
    assert x.shape == (1, 3, 112, 112) and x[0, 0, 0, 0] == faces[0, 0, 0, 0]  # raw 0..255, RGB
    e = model.embed(faces[:2])
    assert e.shape == (2, 128) and np.isfinite(e).all()
    np.testing.assert_allclose(model.embed(faces[1]), e[1:], rtol=1e-5, atol=1e-5)
    flip = fiqa_bench.get_fr_model("sface", device="cpu", flip_tta=True, threads=2)
    assert flip.embed(faces[:1]).shape == (1, 256)
