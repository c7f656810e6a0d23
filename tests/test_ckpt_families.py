"""Checkpoint families: SDD-FIQA, eDifFIQA (T/S/M/L), DifFIQA(R), AdaFace, CurricularFace, CosFace.

Every checkpoint here is built from the AUTHORS' key layout, written out below from their model code
(TFace quality/.../model.py and model_irse.py, AdaFace net.py + train_val.py, CurricularFace
backbone/model_irse.py, eDifFIQA model/{ediffiqa,mlp,mobilenet,iresnet}.py, DifFIQA diffiqa(r)/utils.py,
insightface arcface_torch iresnet.py), with the authors' wrappers (DataParallel ``module.``, Lightning
``state_dict`` + ``model.``) - never by saving fiqa-bench's own modules. Reference outputs come from the
authors' forward passes written out with torch.nn.functional on those state_dicts.

Random weights cannot show a score direction (only trained weights rank degraded images lower); the
direction tests check the card and that ``score`` keeps the raw value for higher-better methods.
"""

from __future__ import annotations

import argparse
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fiqa_bench
from fiqa_bench.errors import CheckpointError

torch.set_num_threads(2)

# --- the authors' layouts: (name, shape, kind) -------------------------------------------------------

IR_UNITS = {18: (2, 2, 2, 2), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
IRESNET_UNITS = {18: (2, 2, 2, 2), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)


def bn(prefix: str, c: int, affine: bool = True, last: bool = False) -> list[tuple[str, tuple, str]]:
    out = (
        [(f"{prefix}.weight", (c,), "bn_w_last" if last else "bn_w"), (f"{prefix}.bias", (c,), "bn_b")]
        if affine
        else []
    )
    return out + [
        (f"{prefix}.running_mean", (c,), "mean"),
        (f"{prefix}.running_var", (c,), "var"),
        (f"{prefix}.num_batches_tracked", (), "count"),
    ]


def ir_units(depth: int) -> list[tuple[int, int, int]]:
    """(in, out, stride) of every unit, face.evoLVe get_blocks: first unit of each stage has stride 2."""
    units, cin = [], 64
    for width, n in zip(WIDTHS, IR_UNITS[depth], strict=True):
        for i in range(n):
            units.append((cin, width, 2 if i == 0 else 1))
            cin = width
    return units


def ir_layout(depth: int, mid_bn: bool, head: str) -> list[tuple[str, tuple, str]]:
    """face.evoLVe / TFace / AdaFace / SDD-FIQA Backbone keys."""
    keys = [
        ("input_layer.0.weight", (64, 3, 3, 3), "conv"),
        *bn("input_layer.1", 64),
        ("input_layer.2.weight", (64,), "prelu"),
    ]
    for n, (cin, cout, _) in enumerate(ir_units(depth)):
        p = f"body.{n}"
        if cin != cout:  # else MaxPool2d(1, stride): no parameters
            keys += [
                (f"{p}.shortcut_layer.0.weight", (cout, cin, 1, 1), "conv"),
                *bn(f"{p}.shortcut_layer.1", cout),
            ]
        keys += [*bn(f"{p}.res_layer.0", cin), (f"{p}.res_layer.1.weight", (cout, cin, 3, 3), "conv")]
        i = 2
        if mid_bn:  # TFace BasicBlockIR / AdaFace: BatchNorm2d(depth) after the first conv
            keys += bn(f"{p}.res_layer.2", cout)
            i = 3
        keys += [
            (f"{p}.res_layer.{i}.weight", (cout,), "prelu"),
            (f"{p}.res_layer.{i + 1}.weight", (cout, cout, 3, 3), "conv"),
            *bn(f"{p}.res_layer.{i + 2}", cout, last=True),
        ]
    if head == "embedding":
        keys += [
            *bn("output_layer.0", 512),
            ("output_layer.3.weight", (512, 512 * 49), "linear"),
            ("output_layer.3.bias", (512,), "bias"),
            *bn("output_layer.4", 512, affine=False),
        ]
    else:  # SDD-FIQA use_type="Qua"
        keys += [
            ("quality.1.weight", (512 * 49,), "prelu"),
            ("quality.3.weight", (1, 512 * 49), "linear"),
            ("quality.3.bias", (1,), "bias"),
        ]
    return keys


def iresnet_layout(depth: int, prefix: str = "") -> list[tuple[str, tuple, str]]:
    """insightface arcface_torch iresnet keys (eDifFIQA model/iresnet.py, DifFIQA(R) model_weights/iresnet.py)."""
    keys = [("conv1.weight", (64, 3, 3, 3), "conv"), *bn("bn1", 64), ("prelu.weight", (64,), "prelu")]
    cin = 64
    for s, (width, n) in enumerate(zip(WIDTHS, IRESNET_UNITS[depth], strict=True), start=1):
        for j in range(n):
            p = f"layer{s}.{j}"
            keys += [
                *bn(f"{p}.bn1", cin),
                (f"{p}.conv1.weight", (width, cin, 3, 3), "conv"),
                *bn(f"{p}.bn2", width),
                (f"{p}.prelu.weight", (width,), "prelu"),
                (f"{p}.conv2.weight", (width, width, 3, 3), "conv"),
                *bn(f"{p}.bn3", width, last=True),
            ]
            if j == 0:
                keys += [
                    (f"{p}.downsample.0.weight", (width, cin, 1, 1), "conv"),
                    *bn(f"{p}.downsample.1", width),
                ]
            cin = width
    keys += [
        *bn("bn2", 512),
        ("fc.weight", (512, 512 * 49), "linear"),
        ("fc.bias", (512,), "bias"),
        *bn("features", 512),
    ]
    return [(prefix + k, s, kind) for k, s, kind in keys]


# MobileFaceNet (eDifFIQA model/mobilenet.py): (name, kind, cin, cout, kernel, groups, stride, residual)
def _conv_block(p: str, cin: int, cout: int, k: int, groups: int = 1, prelu: bool = True) -> list:
    keys = [(f"{p}.conv.weight", (cout, cin // groups, k, k), "conv"), *bn(f"{p}.bn", cout, last=not prelu)]
    return keys + ([(f"{p}.prelu.weight", (cout,), "prelu")] if prelu else [])


def _depth_wise(p: str, cin: int, cout: int, groups: int) -> list:
    return [
        *_conv_block(f"{p}.conv", cin, groups, 1),
        *_conv_block(f"{p}.conv_dw", groups, groups, 3, groups=groups),
        *_conv_block(f"{p}.project", groups, cout, 1, prelu=False),
    ]


MFN_PLAN = [  # (name, in, out, groups, stride, residual units)
    ("conv_23", 64, 64, 128, 2, 0),
    ("conv_3", 64, 64, 128, 1, 4),
    ("conv_34", 64, 128, 256, 2, 0),
    ("conv_4", 128, 128, 256, 1, 6),
    ("conv_45", 128, 128, 512, 2, 0),
    ("conv_5", 128, 128, 256, 1, 2),
]


def mobilefacenet_layout(prefix: str = "") -> list[tuple[str, tuple, str]]:
    keys = [*_conv_block("conv1", 3, 64, 3), *_conv_block("conv2_dw", 64, 64, 3, groups=64)]
    for name, cin, cout, g, _, reps in MFN_PLAN:
        if reps:
            for r in range(reps):
                keys += _depth_wise(f"{name}.model.{r}", cin, cout, g)
        else:
            keys += _depth_wise(name, cin, cout, g)
    keys += _conv_block("conv_6_sep", 128, 512, 1)
    keys += _conv_block("conv_6_dw", 512, 512, 7, groups=512, prelu=False)
    keys += [("linear.weight", (512, 512), "linear"), *bn("bn", 512)]
    return [(prefix + k, s, kind) for k, s, kind in keys]


def ediffiqa_mlp() -> list[tuple[str, tuple, str]]:
    return [
        ("mlp.l1.weight", (1024, 512), "linear"),
        ("mlp.l1.bias", (1024,), "bias"),
        ("mlp.l2.weight", (1, 1024), "linear"),
        ("mlp.l2.bias", (1,), "bias"),
    ]


def fill(layout: list[tuple[str, tuple, str]], seed: int) -> OrderedDict[str, torch.Tensor]:
    """Random tensors whose eval-mode forward stays finite (He-scaled convs, small last-BN of residual branches)."""
    g = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, shape, kind in layout:
        n = torch.randn(shape, generator=g) if shape else torch.tensor(0.0)
        if kind in ("conv", "linear"):
            fan_in = int(np.prod(shape[1:]))
            t = n * (2.0 / fan_in) ** 0.5 if kind == "conv" else n * (1.0 / fan_in) ** 0.5
        elif kind == "bn_w":
            t = 1.0 + 0.1 * n
        elif kind == "bn_w_last":
            t = 0.2 * (1.0 + 0.1 * n)
        elif kind in ("bn_b", "mean", "bias"):
            t = 0.05 * n
        elif kind == "var":
            t = 0.75 + 0.5 * torch.rand(shape, generator=g)
        elif kind == "prelu":
            t = 0.25 + 0.05 * n
        else:  # num_batches_tracked
            t = torch.tensor(1000, dtype=torch.long)
        out[name] = t.contiguous()
    return out


# --- the authors' forward passes, written out ---------------------------------------------------------


def f_bn(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[p + ".running_mean"],
        sd[p + ".running_var"],
        sd.get(p + ".weight"),
        sd.get(p + ".bias"),
        False,
        0.0,
        1e-5,
    )


def f_prelu(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.prelu(x, sd[p + ".weight"])


def ir_forward(sd: dict, x: torch.Tensor, depth: int, mid_bn: bool, head: str) -> torch.Tensor:
    x = f_prelu(
        sd, "input_layer.2", f_bn(sd, "input_layer.1", F.conv2d(x, sd["input_layer.0.weight"], padding=1))
    )
    for n, (cin, cout, stride) in enumerate(ir_units(depth)):
        p = f"body.{n}"
        if cin == cout:
            short = x[:, :, ::stride, ::stride]  # MaxPool2d(1, stride)
        else:
            short = f_bn(
                sd, f"{p}.shortcut_layer.1", F.conv2d(x, sd[f"{p}.shortcut_layer.0.weight"], stride=stride)
            )
        r = F.conv2d(f_bn(sd, f"{p}.res_layer.0", x), sd[f"{p}.res_layer.1.weight"], padding=1)
        i = 2
        if mid_bn:
            r, i = f_bn(sd, f"{p}.res_layer.2", r), 3
        r = F.conv2d(
            f_prelu(sd, f"{p}.res_layer.{i}", r),
            sd[f"{p}.res_layer.{i + 1}.weight"],
            stride=stride,
            padding=1,
        )
        x = f_bn(sd, f"{p}.res_layer.{i + 2}", r) + short
    if head == "embedding":
        x = torch.flatten(f_bn(sd, "output_layer.0", x), 1)
        return f_bn(sd, "output_layer.4", F.linear(x, sd["output_layer.3.weight"], sd["output_layer.3.bias"]))
    x = F.prelu(torch.flatten(x, 1), sd["quality.1.weight"])
    return F.linear(x, sd["quality.3.weight"], sd["quality.3.bias"])


def iresnet_forward(sd: dict, x: torch.Tensor, depth: int, *, with_map: bool = False):
    x = f_prelu(sd, "prelu", f_bn(sd, "bn1", F.conv2d(x, sd["conv1.weight"], padding=1)))
    for s, n in enumerate(IRESNET_UNITS[depth], start=1):
        for j in range(n):
            p, stride = f"layer{s}.{j}", 2 if j == 0 else 1
            r = F.conv2d(f_bn(sd, f"{p}.bn1", x), sd[f"{p}.conv1.weight"], padding=1)
            r = f_prelu(sd, f"{p}.prelu", f_bn(sd, f"{p}.bn2", r))
            r = f_bn(sd, f"{p}.bn3", F.conv2d(r, sd[f"{p}.conv2.weight"], stride=stride, padding=1))
            short = (
                x
                if j
                else f_bn(sd, f"{p}.downsample.1", F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=2))
            )
            x = r + short
    fmap = x
    x = torch.flatten(f_bn(sd, "bn2", x), 1)
    emb = f_bn(sd, "features", F.linear(x, sd["fc.weight"], sd["fc.bias"]))
    return (emb, fmap) if with_map else emb


def mfn_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    def block(
        p: str, x: torch.Tensor, stride: int, pad: int, groups: int, prelu: bool = True
    ) -> torch.Tensor:
        y = f_bn(
            sd, f"{p}.bn", F.conv2d(x, sd[f"{p}.conv.weight"], stride=stride, padding=pad, groups=groups)
        )
        return f_prelu(sd, f"{p}.prelu", y) if prelu else y

    def dw(p: str, x: torch.Tensor, groups: int, stride: int) -> torch.Tensor:
        y = block(f"{p}.conv", x, 1, 0, 1)
        y = block(f"{p}.conv_dw", y, stride, 1, groups)
        return block(f"{p}.project", y, 1, 0, 1, prelu=False)

    x = block("conv2_dw", block("conv1", x, 2, 1, 1), 1, 1, 64)
    for name, _, _, g, stride, reps in MFN_PLAN:
        if reps:
            for r in range(reps):
                x = x + dw(f"{name}.model.{r}", x, g, 1)
        else:
            x = dw(name, x, g, stride)
    x = block("conv_6_dw", block("conv_6_sep", x, 1, 0, 1), 1, 0, 512, prelu=False)
    x = f_bn(sd, "bn", F.linear(torch.flatten(x, 1), sd["linear.weight"]))
    return x / torch.norm(x, 2, 1, True)


def mlp_forward(sd: dict, feat: torch.Tensor) -> torch.Tensor:
    h = F.gelu(F.linear(feat, sd["mlp.l1.weight"], sd["mlp.l1.bias"]))
    return F.linear(h, sd["mlp.l2.weight"], sd["mlp.l2.bias"])


def sub(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def to_input(images: np.ndarray, bgr: bool = False) -> torch.Tensor:
    """PIL RGB -> ToTensor -> Normalize(0.5, 0.5) (AdaFace to_input: channels reversed first)."""
    x = images[..., ::-1] if bgr else images
    return (
        (torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).double() / 255.0 - 0.5) / 0.5
    ).float()


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture()
def no_weight_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FIQA_BENCH_WEIGHTS", raising=False)
    wdir = tmp_path / "weights"
    wdir.mkdir()
    return wdir


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(2, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def lfw_faces(aligned_lfw_sample: dict) -> np.ndarray:
    return np.asarray(aligned_lfw_sample["images"])[:3]


def check_method(
    name: str,
    wdir: Path,
    sd: dict,
    reference,
    images: np.ndarray,
    lfw: np.ndarray | None = None,
    singles: bool = True,
) -> None:
    """Loads by published file name, every key used, raw score == authors' forward, batch == single (the
    single-image runs go through ``score``: higher-better, so it must keep the raw value), finite on LFW."""
    m = fiqa_bench.get_method(name, weights_dir=wdir, device="cpu")
    assert m.weights_path is not None and m.weights_path.parent == wdir  # the file counts in the fingerprint
    got = m.raw_scores(images)
    want = reference(to_input(images)).reshape(-1).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert m.card.score_direction == "higher_better"
    if singles:
        single = np.concatenate([m.score(images[i : i + 1]) for i in range(len(images))])
        np.testing.assert_allclose(single, got, rtol=1e-5, atol=1e-6)
    held = m.network.state_dict()
    for k, v in sub(sd, "module.").items() if any(k.startswith("module.") for k in sd) else sd.items():
        assert torch.equal(held[k], v), k
    if lfw is not None:
        assert np.isfinite(m.raw_scores(lfw)).all()


def assert_one_line_error(fn, *needles: str) -> str:
    with pytest.raises(CheckpointError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    return msg


# --- SDD-FIQA -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdd_state() -> OrderedDict[str, torch.Tensor]:
    return fill(ir_layout(50, mid_bn=False, head="quality"), seed=3)


def test_sdd_quality_head_layout_matches_the_authors_forward_at_ir18(faces):
    """The SDD-FIQA network (face.evoLVe block, quality head) at small cost: IR-18 with the real layer names."""
    from fiqa_bench.fr_models._checkpoint import match_layout
    from fiqa_bench.fr_models._irse import IRNet

    sd = fill(ir_layout(18, mid_bn=False, head="quality"), seed=13)
    net = IRNet(18, mid_bn=False, head="quality")
    wrapped = OrderedDict(("module." + k, v) for k, v in sd.items())
    net.load_state_dict(match_layout(net, wrapped, source="test", arch=net.arch), strict=True)
    x = to_input(faces)
    with torch.inference_mode():
        got = net.eval()(x).numpy()
    np.testing.assert_allclose(got, ir_forward(sd, x, 18, False, "quality").numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.realdata
def test_sddfiqa_dataparallel_checkpoint_scores_like_the_authors_forward(
    no_weight_dirs, sdd_state, faces, lfw_faces
):
    saved = OrderedDict(("module." + k, v) for k, v in sdd_state.items())  # nn.DataParallel save, as released
    torch.save(saved, no_weight_dirs / "SDD_FIQA_checkpoints_r50.pth")
    check_method(
        "sddfiqa",
        no_weight_dirs,
        saved,
        lambda x: ir_forward(sdd_state, x, 50, False, "quality"),
        faces,
        lfw_faces[:2],
        singles=False,  # batch == single: shown for the same module at IR-18 and for the other regressors
    )


def test_sddfiqa_wrong_and_truncated_files_fail_in_one_line(no_weight_dirs, sdd_state):
    path = no_weight_dirs / "SDD_FIQA_checkpoints_r50.pth"
    wrong = OrderedDict(("module." + k, v) for k, v in sdd_state.items() if not k.startswith("quality."))
    wrong["module.output_layer.3.weight"] = torch.zeros(512, 25088)
    torch.save(wrong, path)
    assert_one_line_error(
        lambda: fiqa_bench.get_method("sddfiqa", weights_dir=no_weight_dirs, device="cpu"),
        "3 missing: quality.1.weight, quality.3.bias, quality.3.weight",
        "1 unexpected: output_layer.3.weight",
    )
    torch.save(OrderedDict(("module." + k, v) for k, v in sdd_state.items()), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(
        lambda: fiqa_bench.get_method("sddfiqa", weights_dir=no_weight_dirs, device="cpu"), "truncated"
    )


# --- eDifFIQA / DifFIQA(R) -----------------------------------------------------------------------------


@pytest.mark.realdata
def test_ediffiqa_t_mobilefacenet_checkpoint_scores_like_the_authors_forward(
    no_weight_dirs, faces, lfw_faces
):
    sd = fill(mobilefacenet_layout("base_model.") + ediffiqa_mlp(), seed=4)
    torch.save(sd, no_weight_dirs / "ediffiqaT.pth")
    check_method(
        "ediffiqa_t",
        no_weight_dirs,
        sd,
        lambda x: mlp_forward(sd, mfn_forward(sub(sd, "base_model."), x)),
        faces,
        lfw_faces,
    )


@pytest.mark.realdata
def test_ediffiqa_s_iresnet18_checkpoint_scores_like_the_authors_forward(no_weight_dirs, faces, lfw_faces):
    sd = fill(iresnet_layout(18, "base_model.") + ediffiqa_mlp(), seed=5)
    torch.save(sd, no_weight_dirs / "ediffiqaS.pth")
    check_method(
        "ediffiqa_s",
        no_weight_dirs,
        sd,
        lambda x: mlp_forward(sd, iresnet_forward(sub(sd, "base_model."), x, 18)),
        faces,
        lfw_faces,
    )


def test_ediffiqa_wrong_backbone_and_truncated_file_fail_in_one_line(no_weight_dirs):
    sd = fill(iresnet_layout(18, "base_model.") + ediffiqa_mlp(), seed=5)
    torch.save(sd, no_weight_dirs / "ediffiqaM.pth")  # an S checkpoint under the M file name
    msg = assert_one_line_error(
        lambda: fiqa_bench.get_method("ediffiqa_m", weights_dir=no_weight_dirs, device="cpu"),
        "eDifFIQA(M)",
        "missing",
    )
    assert "base_model.layer3.2.bn1.weight" in msg or "more" in msg
    path = no_weight_dirs / "ediffiqaS.pth"
    torch.save(sd, path)
    path.write_bytes(path.read_bytes()[:1000])
    assert_one_line_error(
        lambda: fiqa_bench.get_method("ediffiqa_s", weights_dir=no_weight_dirs, device="cpu"), "ediffiqaS.pth"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "filename", "layout"),
    [
        ("ediffiqa_m", "ediffiqaM.pth", lambda: iresnet_layout(50, "base_model.") + ediffiqa_mlp()),
        ("ediffiqa_l", "ediffiqaL.pth", lambda: iresnet_layout(100, "base_model.") + ediffiqa_mlp()),
        (
            "diffiqa_r",
            "diffiqa(r).pth",
            lambda: (
                iresnet_layout(100, "base.")
                + [("linear.weight", (1, 512), "linear"), ("linear.bias", (1,), "bias")]
            ),
        ),
    ],
)
def test_large_diffiqa_checkpoints_load_with_every_key_and_score_like_the_authors(
    no_weight_dirs, faces, name, filename, layout
):
    sd = fill(layout(), seed=6)
    torch.save(sd, no_weight_dirs / filename)
    depth = 50 if name == "ediffiqa_m" else 100

    def ref(x: torch.Tensor) -> torch.Tensor:
        if name == "diffiqa_r":
            return F.linear(
                iresnet_forward(sub(sd, "base."), x, depth), sd["linear.weight"], sd["linear.bias"]
            )
        return mlp_forward(sd, iresnet_forward(sub(sd, "base_model."), x, depth))

    check_method(name, no_weight_dirs, sd, ref, faces[:2], singles=False)  # batch == single: small tests


def test_diffiqa_r_keys_are_base_and_linear(no_weight_dirs):
    """The DifFIQA(R) layout at small cost: the keys and shapes alone (the full forward is the slow test)."""
    from fiqa_bench.methods.diffiqa import diffiqa_r_net

    layout = iresnet_layout(100, "base.") + [
        ("linear.weight", (1, 512), "linear"),
        ("linear.bias", (1,), "bias"),
    ]
    got = {k: tuple(v.shape) for k, v in diffiqa_r_net().state_dict().items()}
    assert got == {k: s for k, s, _ in layout}


# --- AdaFace (Lightning .ckpt) and CurricularFace ----------------------------------------------------


def lightning_checkpoint(backbone: dict[str, torch.Tensor], classes: int = 10) -> dict:
    """What AdaFace's training writes: a Lightning checkpoint whose state_dict holds model.* and head.kernel,
    beside hyper-parameter objects of classes that are not importable where the file is read."""
    fake = types.ModuleType("fake_lightning_parsing")

    class AttributeDict(dict):
        def __getattr__(self, key):
            return self[key]

    AttributeDict.__module__ = fake.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    fake.AttributeDict = AttributeDict
    sys.modules[fake.__name__] = fake
    state = OrderedDict(("model." + k, v) for k, v in backbone.items())
    state["head.kernel"] = torch.randn(512, classes)
    state["head.t"] = torch.zeros(1)
    state["head.batch_mean"] = torch.ones(1) * 20
    state["head.batch_std"] = torch.ones(1) * 100
    return {
        "epoch": 25,
        "global_step": 1000,
        "pytorch-lightning_version": "1.8.6",
        "state_dict": state,
        "hyper_parameters": AttributeDict(arch="ir_101", head="adaface", m=0.4, lr=0.1),
        "hparams_name": "kwargs",
        "args": argparse.Namespace(arch="ir_101", output_dir="experiments/x"),
    }


def save_lightning(ckpt: dict, path: Path) -> None:
    torch.save(ckpt, path)
    del sys.modules["fake_lightning_parsing"]  # the reader cannot import it, as on a user's machine


def test_lightning_ir_checkpoint_loads_strictly_with_inert_hyper_parameters(tmp_path, faces):
    """AdaFace's layout through the shared loader at IR-18 (real layer names, small widths of depth 18)."""
    from fiqa_bench.fr_models.irse_models import load_irnet

    sd = fill(ir_layout(18, mid_bn=True, head="embedding"), seed=7)
    path = tmp_path / "adaface_ir18_casia.ckpt"
    save_lightning(lightning_checkpoint(sd), path)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(path, weights_only=True)
    module = load_irnet(path, depth=18, mid_bn=True, strip=("model.", "module."), ignore=("head.",))
    for k, v in sd.items():
        assert torch.equal(module.state_dict()[k], v), k
    x = to_input(faces, bgr=True)
    with torch.inference_mode():
        np.testing.assert_allclose(
            module.eval()(x).numpy(), ir_forward(sd, x, 18, True, "embedding").numpy(), rtol=1e-4, atol=1e-5
        )


def test_curricularface_block_layout_is_read_from_the_file(tmp_path, faces):
    from fiqa_bench.fr_models.irse_models import load_irnet

    x = to_input(faces)
    for mid in (False, True):  # CurricularFace repo's bottleneck_IR, TFace's BasicBlockIR
        sd = fill(ir_layout(18, mid_bn=mid, head="embedding"), seed=8)
        torch.save(sd, tmp_path / "cf.pth")
        module = load_irnet(tmp_path / "cf.pth", depth=18, mid_bn=None, strip=("module.",)).eval()
        assert module.mid_bn is mid
        with torch.inference_mode():
            np.testing.assert_allclose(
                module(x).numpy(), ir_forward(sd, x, 18, mid, "embedding").numpy(), rtol=1e-4, atol=1e-5
            )


def test_adaface_wrong_file_fails_in_one_line(no_weight_dirs):
    sd = fill(ir_layout(18, mid_bn=True, head="embedding"), seed=9)  # an IR-18 file under the IR-101 name
    save_lightning(lightning_checkpoint(sd), no_weight_dirs / "adaface_ir101_ms1mv2.ckpt")
    msg = assert_one_line_error(
        lambda: fiqa_bench.get_fr_model("adaface_ir101", weights_dir=no_weight_dirs, device="cpu"),
        "IR-101",
        "missing",
    )
    assert "model." in msg  # says under which prefix it read the keys
    (no_weight_dirs / "adaface_ir101_ms1mv2.ckpt").write_bytes(b"PK\x03\x04 not a checkpoint")
    assert_one_line_error(
        lambda: fiqa_bench.get_fr_model("adaface_ir101", weights_dir=no_weight_dirs, device="cpu"),
        "cannot read",
    )


@pytest.mark.slow
@pytest.mark.realdata
def test_adaface_ir101_lightning_ckpt_embeds_like_the_authors_forward_in_bgr(
    no_weight_dirs, faces, lfw_faces
):
    sd = fill(ir_layout(100, mid_bn=True, head="embedding"), seed=10)
    save_lightning(lightning_checkpoint(sd), no_weight_dirs / "adaface_ir101_ms1mv2.ckpt")
    fr = fiqa_bench.get_fr_model("adaface_ir101", weights_dir=no_weight_dirs, device="cpu")
    got = fr.embed(faces)
    want = ir_forward(sd, to_input(faces, bgr=True), 100, True, "embedding").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([fr.embed(f[None]) for f in faces]), got, rtol=1e-4, atol=1e-4)
    assert np.isfinite(fr.embed(lfw_faces[:2])).all()


@pytest.mark.slow
@pytest.mark.realdata
def test_curricularface_ir101_plain_checkpoint_embeds_like_the_authors_forward(
    no_weight_dirs, faces, lfw_faces
):
    sd = fill(ir_layout(100, mid_bn=False, head="embedding"), seed=11)
    torch.save(sd, no_weight_dirs / "CurricularFace_Backbone.pth")
    fr = fiqa_bench.get_fr_model("curricularface_ir101", weights_dir=no_weight_dirs, device="cpu")
    got = fr.embed(faces)
    np.testing.assert_allclose(
        got, ir_forward(sd, to_input(faces), 100, False, "embedding").numpy(), rtol=1e-3, atol=1e-4
    )
    assert np.isfinite(fr.embed(lfw_faces[:2])).all()


@pytest.mark.slow
def test_cosface_r100_glint360k_plain_state_dict_loads_with_every_key(no_weight_dirs, faces):
    sd = fill(iresnet_layout(100), seed=12)
    (no_weight_dirs / "glint360k_cosface_r100_fp16_0.1").mkdir()
    torch.save(sd, no_weight_dirs / "glint360k_cosface_r100_fp16_0.1" / "backbone.pth")
    fr = fiqa_bench.get_fr_model("cosface_r100", weights_dir=no_weight_dirs, device="cpu")
    np.testing.assert_allclose(
        fr.embed(faces[:2]), iresnet_forward(sd, to_input(faces[:2]), 100).numpy(), rtol=1e-3, atol=1e-4
    )


def test_new_names_are_listed_with_what_they_need():
    from fiqa_bench.registry import FR_MODELS, METHODS

    for name, file in [
        ("sddfiqa", "SDD_FIQA_checkpoints_r50.pth"),
        ("ediffiqa_t", "ediffiqaT.pth"),
        ("ediffiqa_s", "ediffiqaS.pth"),
        ("ediffiqa_m", "ediffiqaM.pth"),
        ("ediffiqa_l", "ediffiqaL.pth"),
        ("diffiqa_r", "diffiqa(r).pth"),
    ]:
        card = METHODS.card(name)
        assert card.weights[0].filename == file and card.paper and card.licence and card.normalisation
    for name, file, colour in [
        ("adaface_ir101", "adaface_ir101_ms1mv2.ckpt", "BGR"),
        ("curricularface_ir101", "CurricularFace_Backbone.pth", "RGB"),
        ("cosface_r100", "glint360k_cosface_r100_fp16_0.1/backbone.pth", "RGB"),
    ]:
        card = FR_MODELS.card(name)
        assert card.weights[0].filename == file and card.colour == colour and card.paper and card.licence


# --- MR-FIQA / SynFIQA releases through crfiqa:PATH ----------------------------------------------------

SYNFIQA_PP_HEAD = [  # MR-FIQA Utilities/cr_model.py, fix_qs=True: indices of the qs Sequential
    ("qs.2.weight", (256, 512), "linear"),
    ("qs.2.bias", (256,), "bias"),
    *bn("qs.3", 256),
    ("qs.6.weight", (256, 256), "linear"),
    ("qs.6.bias", (256,), "bias"),
    *bn("qs.7", 256),
    ("qs.9.weight", (1, 256), "linear"),
    ("qs.9.bias", (1,), "bias"),
]


def synfiqa_pp_quality(sd: dict, fmap: torch.Tensor) -> torch.Tensor:
    """The SynFIQA++ head on the layer4 map (before bn2): pool, Linear, BN, ReLU, Linear, BN, ReLU, Linear."""
    h = fmap.mean(dim=(2, 3))
    h = F.relu(f_bn(sd, "qs.3", F.linear(h, sd["qs.2.weight"], sd["qs.2.bias"])))
    h = F.relu(f_bn(sd, "qs.7", F.linear(h, sd["qs.6.weight"], sd["qs.6.bias"])))
    return F.linear(h, sd["qs.9.weight"], sd["qs.9.bias"])


@pytest.mark.parametrize("variant", ["cr-fiqa qs (SynFIQA, DCFace, CASIA, ...)", "SynFIQA++ map head"])
def test_mr_fiqa_release_layouts_load_through_crfiqa_path(tmp_path, faces, variant):
    """MR-FIQA's released files are CR-FIQA iResNets saved from DataParallel; SynFIQA++ has its own qs head.
    Built at depth 18 with the real layer names (the releases are iResNet50: same names, more blocks)."""
    pp = variant.startswith("SynFIQA++")
    head = SYNFIQA_PP_HEAD if pp else [("qs.weight", (1, 512), "linear"), ("qs.bias", (1,), "bias")]
    sd = fill(iresnet_layout(18) + head, seed=14)
    path = tmp_path / ("SynFIQA++.pth" if pp else "SynFIQA.pth")
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()), path)

    m = fiqa_bench.get_method(f"crfiqa:{path}", device="cpu")
    fr = fiqa_bench.get_fr_model(f"crfiqa:{path}", device="cpu")
    x = to_input(faces)
    emb, fmap = iresnet_forward(sd, x, 18, with_map=True)
    want_q = synfiqa_pp_quality(sd, fmap) if pp else F.linear(emb, sd["qs.weight"], sd["qs.bias"])
    got = m.raw_scores(faces)
    np.testing.assert_allclose(got, want_q.reshape(-1).double().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fr.embed(faces), emb.numpy(), rtol=1e-4, atol=1e-5)
    single = np.concatenate([m.raw_scores(f[None]) for f in faces])
    np.testing.assert_allclose(single, got, rtol=1e-5, atol=1e-6)
    assert fr.torch_module.arch == ("iresnet18+qs-map (SynFIQA++ head)" if pp else "iresnet18+qs")


def test_synfiqa_pp_head_with_a_missing_key_fails_in_one_line(tmp_path):
    sd = fill(iresnet_layout(18) + SYNFIQA_PP_HEAD, seed=15)
    del sd["qs.7.running_var"]
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()), tmp_path / "SynFIQA++.pth")
    assert_one_line_error(
        lambda: fiqa_bench.get_method(f"crfiqa:{tmp_path / 'SynFIQA++.pth'}", device="cpu"),
        "1 missing: qs.7.running_var",
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_ediffiqa_t_onnx_export_scores_like_the_torch_checkpoint(no_weight_dirs, faces):
    """The OpenCV Zoo file's interface (one N x 3 x 112 x 112 input, fixed batch 1, one score out), exported
    here from the same eDifFIQA(T) weights: the ONNX path scores like ediffiqa_t."""
    from fiqa_bench.fr_models._mobilefacenet import MobileFaceNet
    from fiqa_bench.methods.diffiqa import EDifFIQANet

    sd = fill(mobilefacenet_layout("base_model.") + ediffiqa_mlp(), seed=16)
    torch.save(sd, no_weight_dirs / "ediffiqaT.pth")
    net = EDifFIQANet(MobileFaceNet())
    net.load_state_dict(sd)
    torch.onnx.export(
        net.eval(),
        torch.zeros(1, 3, 112, 112),
        str(no_weight_dirs / "ediffiqa_tiny_jun2024.onnx"),
        dynamo=False,
    )
    onnx_m = fiqa_bench.get_method("ediffiqa_t_onnx", weights_dir=no_weight_dirs, device="cpu")
    torch_m = fiqa_bench.get_method("ediffiqa_t", weights_dir=no_weight_dirs, device="cpu")
    assert onnx_m.fixed_one
    np.testing.assert_allclose(onnx_m.score(faces), torch_m.score(faces), rtol=1e-4, atol=1e-5)
    (no_weight_dirs / "ediffiqa_tiny_jun2024.onnx").write_bytes(b"not onnx")
    assert_one_line_error(
        lambda: fiqa_bench.get_method("ediffiqa_t_onnx", weights_dir=no_weight_dirs, device="cpu"),
        "cannot load",
    )


def test_ir_models_serve_serfiq_through_the_backbone_head_split(faces):
    """adaface_ir101 / curricularface_ir101 expose forward_backbone / forward_head like the iResNet cards
    (shown at IR-18 with the same module): SER-FIQ runs on them and is order-independent."""
    from fiqa_bench.fr_models._common import InputSpec
    from fiqa_bench.fr_models._irse import IRNet
    from fiqa_bench.fr_models._torch_model import TorchFRModel

    from fiqa_bench.registry import FR_MODELS

    sd = fill(ir_layout(18, mid_bn=True, head="embedding"), seed=17)
    net = IRNet(18, mid_bn=True)
    net.load_state_dict(sd)
    fr = TorchFRModel(FR_MODELS.card("adaface_ir101"), net, InputSpec(colour="BGR"), device="cpu")
    x = fr.preprocess(faces)
    with torch.inference_mode():
        np.testing.assert_allclose(
            net.forward_head(net.forward_backbone(x)).numpy(), net(x).numpy(), rtol=1e-6, atol=1e-6
        )
    m = fiqa_bench.get_method("serfiq", fr_model=fr, device="cpu", T=4)
    q = m.score(faces)
    assert np.isfinite(q).all() and ((q > 0) & (q <= 1)).all()
    np.testing.assert_allclose(m.score(faces[::-1])[::-1], q, rtol=1e-6)
