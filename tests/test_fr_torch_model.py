"""The torch FR-model wrapper: input conversion by hand-computed values, flip TTA, batching, precision options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fiqa_bench.fr_models._common import InputSpec
from fiqa_bench.fr_models._iresnet import iresnet, randomise_for_testing_
from fiqa_bench.fr_models._torch_model import TorchFRModel

import fiqa_bench
from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Card

torch.set_num_threads(2)

CARD = Card(name="test_r18", kind="fr_model", summary="random r18", embedding_size=512)


@pytest.fixture(scope="module")
def r18_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fr_torch") / "r18.pth"
    torch.save(randomise_for_testing_(iresnet(18), seed=7).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model(r18_path: Path) -> TorchFRModel:
    return fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(5, 112, 112, 3), dtype=np.uint8)


def test_arcface_normalisation_by_hand(model: TorchFRModel) -> None:
    img = np.zeros((1, 112, 112, 3), np.uint8)
    img[0, 0, 0] = (0, 255, 51)  # one pixel: R=0, G=255, B=51
    img[0, 5, 7] = (102, 127, 128)
    x = model.preprocess(img)
    assert x.shape == (1, 3, 112, 112) and x.dtype == torch.float32
    # (x/255 - 0.5)/0.5 = x/127.5 - 1, channel order kept (RGB).
    assert x[0, :, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 51 / 127.5 - 1.0], abs=1e-6)
    assert x[0, :, 5, 7].tolist() == pytest.approx(
        [102 / 127.5 - 1, 127 / 127.5 - 1, 128 / 127.5 - 1], abs=1e-6
    )
    assert float(x[0, 1, 50, 50]) == pytest.approx(-1.0)


def test_bgr_unit_spec_reverses_channels() -> None:
    m = TorchFRModel(
        CARD, torch.nn.Identity(), InputSpec(colour="BGR", mean=0.0, std=255.0), channels_last=False
    )
    img = np.zeros((1, 112, 112, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 51, 0
    x = m.preprocess(img)
    assert x[0, :, 3, 3].tolist() == pytest.approx([0.0, 0.2, 1.0], abs=1e-6)
    assert x.is_contiguous()


def test_batch_equals_one_by_one(model: TorchFRModel, faces: np.ndarray) -> None:
    model.batch_size = 64
    together = model.embed(faces)
    alone = np.concatenate([model.embed(f) for f in faces])  # single H x W x 3 images are promoted
    assert together.shape == (5, 512)
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)
    model.batch_size = 2  # uneven batching 2 + 2 + 1
    np.testing.assert_allclose(model.embed(faces), together, rtol=1e-4, atol=1e-4)
    model.batch_size = 64


def test_flip_tta_concat_and_sum(r18_path: Path, model: TorchFRModel, faces: np.ndarray) -> None:
    plain = model.embed(faces[:2])
    mirrored = model.embed(np.ascontiguousarray(faces[:2, :, ::-1]))
    concat = fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", flip_tta=True)
    got = concat.embed(faces[:2])
    n = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
    assert got.shape == (2, 1024) and concat.embedding_size == 1024
    np.testing.assert_allclose(got, np.concatenate([n(plain), n(mirrored)], 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.sqrt(2), rtol=1e-5)
    summed = fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", flip_tta="sum")
    np.testing.assert_allclose(summed.embed(faces[:2]), plain + mirrored, rtol=1e-4, atol=1e-3)
    # The option is part of the cache identity.
    assert len({model.fingerprint(), concat.fingerprint(), summed.fingerprint()}) == 3
    with pytest.raises(FiqaError, match="flip_tta 'twice'"):
        fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", flip_tta="twice")


def test_channels_last_and_bf16_options(r18_path: Path, model: TorchFRModel, faces: np.ndarray) -> None:
    ref = model.embed(faces[:2])
    nchw = fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", channels_last=False)
    assert nchw.preprocess(faces[:1]).is_contiguous()
    np.testing.assert_allclose(nchw.embed(faces[:2]), ref, rtol=1e-4, atol=1e-3)
    bf16 = fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", precision="bf16")
    low = bf16.embed(faces[:1])
    assert low.dtype == np.float32
    cos = (low * ref[:1]).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(ref[:1], axis=1)
    assert (cos > 0.99).all()
    assert not np.allclose(low, ref[:1], rtol=1e-6, atol=1e-6)  # bf16 really ran (not silently fp32)
    assert bf16.options["precision"] == "bf16" and bf16.fingerprint() != model.fingerprint()


def test_bad_options_are_one_line_errors(r18_path: Path, model: TorchFRModel) -> None:
    with pytest.raises(FiqaError, match="fp16 needs a CUDA device"):
        fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", precision="fp16")
    with pytest.raises(FiqaError, match="precision='fp8'"):
        fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", precision="fp8")
    with pytest.raises(FiqaError, match="unknown option"):
        fiqa_bench.get_fr_model(f"crfiqa:{r18_path}", device="cpu", dropout=0.5)
    with pytest.raises(FiqaError, match="expects aligned faces of 112x112"):
        model.embed(np.zeros((1, 100, 100, 3), np.uint8))


def test_methods_contract_names(model: TorchFRModel, faces: np.ndarray) -> None:
    # SER-FIQ / GraFIQs / CR-FIQA use exactly these: torch_module (eval), preprocess, device.
    assert isinstance(model.torch_module, torch.nn.Module) and not model.torch_module.training
    assert model.device == "cpu"
    x = model.preprocess(faces[:1]).requires_grad_(True)  # gradients w.r.t. the input work
    out = model.torch_module(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert model.weights_path is not None and model.weights_path.name == "r18.pth"
