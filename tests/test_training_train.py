"""CR-FIQA trainer on CPU with real LFW faces packed to RecordIO: learning, exact resume, DDP (gloo), checkpoint.

The CPU here is small and shared, so the network is iResNet with one block per stage on 16x16 inputs
(``image_size`` rescales the fc); the layout test uses a real iresnet18 at 112x112.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from fiqa_bench.training.config import load_config
from fiqa_bench.training.data import build_dataset
from fiqa_bench.training.loss import CRFIQAHead
from fiqa_bench.training.train import build_backbone, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_training_recordio import build_lfw_rec  # noqa: E402  (session-cached real LFW .rec)

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
TINY = {"network": "iresnet:1,1,1,1", "image_size": 16, "embedding_size": 64}


@pytest.fixture(scope="session")
def lfw_rec_dir(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lfw_rec(lfw_dir, tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: more threads only add contention
    yield
    torch.set_num_threads(old)


def tiny_cfg(data: Path, **over: Any) -> dict[str, Any]:
    cfg = load_config("crfiqa_s")
    cfg.update(TINY)
    cfg.update(
        data=str(data),
        batch_size=16,
        lr=0.02,
        lr_batch=16,
        log_every=1,
        verify_every=0,
        checkpoint_every=0,
        workers=0,
    )
    cfg.update(over)
    return cfg


def _full_set_losses(cfg: dict[str, Any], backbone: torch.nn.Module, head: CRFIQAHead) -> tuple[float, float]:
    ds = build_dataset(cfg["data"], cfg["image_size"])
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    backbone.eval()
    with torch.no_grad():
        emb, qs = backbone(x)
        parts = head(emb, qs, y)
    return parts.ce.item(), parts.quality.item()


def test_training_lowers_both_loss_parts(lfw_rec_dir: Path, tmp_path: Path) -> None:
    steps = 60
    cfg = tiny_cfg(lfw_rec_dir, max_steps=steps)
    summary = train(cfg, tmp_path, device_arg="cpu", progress=False)
    assert summary["steps"] == steps
    num_classes = int((lfw_rec_dir / "property").read_text().split(",")[0])
    # the initial model, rebuilt as the trainer builds it (same seed)
    torch.manual_seed(cfg["seed"])
    bb0 = build_backbone(cfg)
    head0 = CRFIQAHead(64, num_classes)
    ce0, q0 = _full_set_losses(cfg, bb0, head0)
    state = torch.load(tmp_path / f"{steps}state.pt", weights_only=True)
    bb = build_backbone(cfg)
    bb.load_state_dict(state["backbone"])
    head = CRFIQAHead(64, num_classes)
    head.load_state_dict(state["head"])
    ce1, q1 = _full_set_losses(cfg, bb, head)
    assert ce1 < 0.75 * ce0, (ce0, ce1)
    assert q1 < q0, (q0, q1)
    # the qs head learned the certainty ratio: the untrained qs head on the trained features is worse
    bb.qs.load_state_dict(bb0.qs.state_dict())
    _, q_untrained = _full_set_losses(cfg, bb, head)
    assert q1 < 0.8 * q_untrained, (q1, q_untrained)
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert all(r["samples_per_s"] > 0 and r["lr"] == pytest.approx(0.02) for r in rows)
    meta = json.loads((tmp_path / f"{steps}backbone.json").read_text())
    assert (meta["step"], meta["target_variant"], meta["target_formula"]) == (steps, "released", "ccs/nnccs")


def test_resume_continues_exactly(lfw_rec_dir: Path, tmp_path: Path) -> None:
    # batch 16 over 146 images: 9 steps per epoch, so the resume point (step 6) is mid-epoch and the run
    # crosses an epoch boundary afterwards; dropout 0.4 and flips make the RNG state matter.
    cfg = tiny_cfg(lfw_rec_dir, max_steps=11, checkpoint_every=6, keep_checkpoints=5)
    train(cfg, tmp_path / "a", device_arg="cpu", progress=False)
    full = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    (tmp_path / "b").mkdir()
    train(cfg, tmp_path / "b", device_arg="cpu", progress=False, resume=str(tmp_path / "a" / "6state.pt"))
    resumed = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == list(range(7, 12))
    for a, b in zip(full[6:], resumed, strict=True):
        assert (a["loss"], a["ce"], a["quality"]) == (b["loss"], b["ce"], b["quality"])  # bit-exact
    sa = torch.load(tmp_path / "a" / "11backbone.pth", weights_only=True)
    sb = torch.load(tmp_path / "b" / "11backbone.pth", weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel as DDP
    from fiqa_bench.training.config import load_config
    from fiqa_bench.training.data import FlipSampler, build_dataset
    from fiqa_bench.training.loss import CRFIQAHead
    from fiqa_bench.training.train import Distributed, build_backbone, train

    cfg = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    env = Distributed("cpu")
    ds = build_dataset(cfg["data"], cfg["image_size"])
    sampler = FlipSampler(ds, env.world_size, env.rank, seed=0)
    items = list(sampler)[:8]
    x = torch.stack([ds[i][0] for i in items])
    y = torch.tensor([ds[i][1] for i in items])
    torch.manual_seed(0)
    bb = build_backbone(cfg).double()
    head = CRFIQAHead(cfg["embedding_size"], ds.num_classes).double()
    x = x.double()
    bb.eval()  # per-rank BN batch statistics differ from the combined batch's; compare with running stats
    m, h = DDP(bb, broadcast_buffers=False), DDP(head)
    emb, qs = m(x)
    h(emb, qs, y).total.backward()
    grads = {n: p.grad for n, p in list(bb.named_parameters()) + list(head.named_parameters()) if p.grad is not None}
    gathered = env.gather({"items": items})
    if env.rank == 0:
        torch.save({"grads": grads, "items": [g["items"] for g in gathered]}, out / "ddp.pt")
    # and the real entry point, two steps under the same process group
    cfg.update(max_steps=2)
    train(cfg, out / "run", device_arg="cpu", progress=False)
    """
)


def test_torchrun_gloo_matches_one_process_and_trains(lfw_rec_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(lfw_rec_dir, dropout=0.0, batch_size=8, lr_batch=16)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "ddp_script.py").write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        str(tmp_path / "ddp_script.py"),
        str(tmp_path / "cfg.json"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = torch.load(tmp_path / "ddp.pt", weights_only=True)
    items0, items1 = saved["items"]
    assert not {i for i, _ in items0} & {i for i, _ in items1}  # DistributedSampler shards
    ds = build_dataset(cfg["data"], cfg["image_size"])
    items = [tuple(i) for i in items0 + items1]
    x = torch.stack([ds[i][0] for i in items])
    y = torch.tensor([ds[i][1] for i in items])
    torch.manual_seed(0)
    bb = build_backbone(cfg).double()  # float64 on both sides: the comparison is not float32 rounding
    head = CRFIQAHead(cfg["embedding_size"], ds.num_classes).double()
    bb.eval()
    emb, qs = bb(x.double())
    head(emb, qs, y).total.backward()
    ref = {
        n: p.grad
        for n, p in list(bb.named_parameters()) + list(head.named_parameters())
        if p.grad is not None
    }
    assert set(ref) == set(saved["grads"])
    for name, g in ref.items():
        torch.testing.assert_close(saved["grads"][name], g, atol=1e-6, rtol=0, msg=name)
    # the torchrun training run: world size 2 recorded, checkpoint and log written once (rank 0)
    meta = json.loads((tmp_path / "run" / "2backbone.json").read_text())
    assert (meta["world_size"], meta["global_batch"], meta["step"]) == (2, 16, 2)
    assert len((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()) == 2


def test_checkpoint_loads_as_crfiqa_model(lfw_rec_dir: Path, tmp_path: Path) -> None:
    from fiqa_bench.datasets.insightface_bin import save_insightface_bin
    from fiqa_bench.fr_models._iresnet import iresnet

    import fiqa_bench

    # a small lfw.bin (10 pairs of real aligned faces) for the rank-0 verification hook
    ds = build_dataset(str(lfw_rec_dir))
    bins = [ds.reader.unpack(int(k))[1] for k in ds.keys[:20]]
    issame = [ds.label(2 * i) == ds.label(2 * i + 1) for i in range(10)]
    (tmp_path / "bins").mkdir()
    save_insightface_bin(tmp_path / "bins" / "lfw.bin", bins, issame)
    cfg = tiny_cfg(
        lfw_rec_dir,
        network="iresnet18",
        image_size=112,
        embedding_size=512,
        batch_size=2,
        lr_batch=2,
        max_steps=1,
        verify_every=1,
        verify_sets=["lfw", "agedb_30"],
    )
    train(cfg, tmp_path, device_arg="cpu", progress=False, verify_dir=str(tmp_path / "bins"))
    (ver,) = [json.loads(line) for line in (tmp_path / "verification.jsonl").read_text().splitlines()]
    assert ver["step"] == 1 and set(ver) == {"step", "lfw"} and 0.0 <= ver["lfw"] <= 1.0
    path = tmp_path / "1backbone.pth"
    state = torch.load(path, weights_only=True)  # plain state_dict, published layout
    assert (
        "qs.weight" in state
        and state["qs.weight"].shape == (1, 512)
        and state["fc.weight"].shape == (512, 25088)
    )
    assert not any(k.startswith("module.") for k in state)
    model = iresnet(18, with_qs=True)
    model.load_state_dict(state, strict=True)
    fr = fiqa_bench.get_fr_model(f"crfiqa:{path}", device="cpu")
    images = ds.reader.unpack(int(ds.keys[0]))[1]
    from fiqa_bench.faces import decode_rgb

    rgb = decode_rgb(images)[None]
    emb = fr.embed(rgb)
    model.eval()
    with torch.no_grad():
        expected, _ = model(((torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255) - 0.5) / 0.5)
    # same network and weights through the crfiqa:PATH card (its own preprocessing / memory layout)
    cos = torch.nn.functional.cosine_similarity(torch.as_tensor(emb).float(), expected).item()
    assert cos > 0.9999, cos


def test_tenfold_accuracy_hand_computed() -> None:
    import numpy as np
    from fiqa_bench.training.verify import tenfold_accuracy

    issame = np.array([True, False] * 10)
    sims = np.where(issame, 0.8, 0.1)
    assert tenfold_accuracy(sims, issame) == (1.0, 0.0)
    sims[0] = 0.0  # one genuine pair below every impostor: fold 0 (pairs 0, 1) gets 1 of 2 right
    mean, _ = tenfold_accuracy(sims, issame)
    assert mean == pytest.approx((0.5 + 9 * 1.0) / 10)
