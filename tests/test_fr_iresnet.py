"""iResNet architecture: published key names and shapes for every depth, the qs head, the SER-FIQ/GraFIQs hooks."""

from __future__ import annotations

import pytest
import torch
from fiqa_bench.fr_models._checkpoint import guess_architecture, infer_iresnet_config
from fiqa_bench.fr_models._iresnet import LAYERS, iresnet, randomise_for_testing_

torch.set_num_threads(2)


def meta_state(depth: int, **kw: object) -> dict[str, torch.Tensor]:
    # Built on the meta device: names and shapes without allocating (r200 would take seconds to init).
    with torch.device("meta"):
        return iresnet(depth, **kw).state_dict()  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", sorted(LAYERS))
def test_every_depth_has_the_published_key_layout(depth: int) -> None:
    sd = meta_state(depth)
    blocks = LAYERS[depth]
    # Stem, head and the exact per-block names of the insightface/CR-FIQA checkpoints.
    assert sd["conv1.weight"].shape == (64, 3, 3, 3)
    for k in ("bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "prelu.weight", "bn2.weight"):
        assert k in sd, k
    assert sd["fc.weight"].shape == (512, 25088)
    assert sd["fc.bias"].shape == (512,)
    assert sd["features.weight"].shape == (512,) and "features.running_var" in sd
    assert not any(k.startswith("qs.") for k in sd)
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        cin = 64 if stage == 1 else width // 2
        assert sd[f"layer{stage}.0.downsample.0.weight"].shape == (width, cin, 1, 1)
        assert sd[f"layer{stage}.0.downsample.1.weight"].shape == (width,)
        assert f"layer{stage}.1.downsample.0.weight" not in sd
        last = n - 1
        for part in ("bn1", "bn2", "bn3"):
            assert f"layer{stage}.{last}.{part}.running_mean" in sd
        assert sd[f"layer{stage}.{last}.conv1.weight"].shape == (width, width, 3, 3)
        assert sd[f"layer{stage}.{last}.conv2.weight"].shape == (width, width, 3, 3)
        assert sd[f"layer{stage}.{last}.prelu.weight"].shape == (width,)
        assert f"layer{stage}.{n}.conv1.weight" not in sd  # exactly n blocks
    # Guessing the architecture back from the keys.
    assert infer_iresnet_config(sd) == {
        "depth": depth,
        "with_qs": False,
        "qs_head": None,
        "num_features": 512,
    }
    assert guess_architecture(sd).startswith(f"iresnet{depth} ")


def test_r100_reference_keys_and_parameter_count() -> None:
    sd = meta_state(100, with_qs=True)
    assert sd["layer3.12.conv2.weight"].shape == (256, 256, 3, 3)
    assert sd["layer3.29.bn3.weight"].shape == (256,) and "layer3.30.bn3.weight" not in sd
    assert sd["qs.weight"].shape == (1, 512) and sd["qs.bias"].shape == (1,)
    with torch.device("meta"):
        n = sum(p.numel() for p in iresnet(100).parameters())
    assert 65.0e6 < n < 65.3e6  # the published iResNet100 has ~65.2M parameters
    assert (
        guess_architecture({"module." + k: v for k, v in sd.items()})
        == "iresnet100+qs (512-d embedding), keys under 'module.'"
    )


def test_forward_shapes_qs_head_and_all_bn_eps() -> None:
    m = randomise_for_testing_(iresnet(18, with_qs=True, num_features=128)).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():
        emb, qs = m(x)
    assert emb.shape == (2, 128) and qs.shape == (2, 1)
    assert torch.isfinite(emb).all()
    assert all(b.eps == 1e-5 for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm))
    m2 = iresnet(18, bn_eps=2e-5)
    assert all(b.eps == 2e-5 for b in m2.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm))
    assert m.arch == "iresnet18+qs" and m.depth == 18


@pytest.fixture(scope="module")
def r18() -> torch.nn.Module:
    return randomise_for_testing_(iresnet(18)).eval()


def test_backbone_head_split_and_dropout_for_serfiq(r18: torch.nn.Module) -> None:
    m = r18
    x = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():
        feats = m.forward_backbone(x)
        assert feats.shape == (2, 25088)
        full = m(x)
        assert torch.allclose(m.forward_head(feats), full, rtol=1e-5, atol=1e-5)
        # SER-FIQ: dropout active before fc only; the shared backbone output must not be modified in place.
        before = feats.clone()
        m.dropout.p = 0.5
        m.dropout.train()
        a, b = m.forward_head(feats), m.forward_head(feats)
        assert not torch.allclose(a, b)
        assert torch.equal(feats, before)
        m.dropout.eval()
        m.dropout.p = 0.0
        assert torch.allclose(m.forward_head(feats), full, rtol=1e-5, atol=1e-5)


def test_stage_hooks_see_the_documented_resolutions(r18: torch.nn.Module) -> None:
    m = r18
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(m, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape))
        )
        for name in ("layer1", "layer2", "layer3", "layer4")
    ]
    with torch.inference_mode():
        m(torch.randn(1, 3, 112, 112))
    for h in hooks:
        h.remove()
    assert seen == {
        "layer1": (1, 64, 56, 56),
        "layer2": (1, 128, 28, 28),
        "layer3": (1, 256, 14, 14),
        "layer4": (1, 512, 7, 7),
    }


def test_unknown_depth_is_refused() -> None:
    with pytest.raises(ValueError, match="depth 101"):
        iresnet(101)
