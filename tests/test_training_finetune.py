"""CR-FIQA fine-tuned from the real SFace backbone (sface_torch) on real LFW-train faces packed with --align.

A few identities of ../shared/data/lfw_train, aligned with YuNet and packed to RecordIO exactly as the
full run does; frozen backbone (cached embeddings) for the loss and method checks, full fine-tuning for
the bit-exact resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fiqa_bench.training.config import load_config
from fiqa_bench.training.data import build_dataset
from fiqa_bench.training.loss import CRFIQAHead
from fiqa_bench.training.pack import pack_folder
from fiqa_bench.training.train import train

from fiqa_bench.errors import CheckpointError

pytestmark = [pytest.mark.realdata]
IDENTITIES = 6  # the first identities (sorted) with at least 4 photos


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def small_rec(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 identities of lfw_train (unaligned 250x250 photos) -> pack --align -> train.rec/train.idx."""
    src = shared_data_dir / "lfw_train"
    if not src.is_dir():
        pytest.skip(f"{src} not found")
    chosen = [p for p in sorted(src.iterdir()) if p.is_dir() and len(list(p.glob("*.jpg"))) >= 4][:IDENTITIES]
    tree = tmp_path_factory.mktemp("lfw_train_small")
    for p in chosen:
        (tree / p.name).symlink_to(p, target_is_directory=True)
    out = tree.parent / "small_rec"
    counts = pack_folder(tree, out, align=True, progress=False)
    assert counts["classes"] == IDENTITIES and counts["skipped"] == 0
    return out


def sface_cfg(data: Path, **over: Any) -> dict[str, Any]:
    cfg = load_config("crfiqa_sface")
    cfg.update(data=str(data), batch_size=8, lr_batch=8, log_every=1, workers=0)
    cfg.update(over)
    return cfg


def test_frozen_head_learns_and_checkpoint_is_a_method(small_rec: Path, tmp_path: Path) -> None:
    from fiqa_bench.api import get_method
    from fiqa_bench.faces import decode_rgb

    cfg = sface_cfg(small_rec, epochs=40, lr_steps=[30], epoch_checkpoint_every=40)
    summary = train(cfg, tmp_path, device_arg="cpu", progress=False)
    final = Path(summary["final"])
    cached = torch.load(next((tmp_path / "embedding_cache").glob("*.pt")), weights_only=True)
    emb, labels = cached["embeddings"], cached["labels"]
    n = int(labels.shape[0])
    assert emb.shape == (2, n, 128)

    # The quality loss of the trained qs against the final centres' targets is far below the initial qs's.
    state = torch.load(tmp_path / f"{summary['steps']}state.pt", weights_only=True)
    head = CRFIQAHead(128, IDENTITIES, target=cfg["target"])
    head.load_state_dict(state["head"])
    sd = torch.load(final, weights_only=True)
    torch.manual_seed(cfg["seed"])  # the trainer's initial qs: same seed, same construction order
    qs0 = torch.nn.Linear(128, 1)
    with torch.no_grad():
        trained = head(emb[0], emb[0] @ sd["qs.weight"].T + sd["qs.bias"], labels).quality.item()
        initial = head(emb[0], qs0(emb[0]), labels).quality.item()
    assert trained < 0.5 * initial, (trained, initial)

    # The sidecar records config, data fingerprint, target and backbone.
    meta = json.loads(final.with_suffix(".json").read_text())
    assert meta["backbone_model"] == "sface_torch" and meta["freeze_backbone"] is True
    assert meta["target_variant"] == "released" and meta["target_formula"] == "ccs/nnccs"
    assert len(meta["data_fingerprint"]) == 20 and meta["config"]["lr"] == cfg["lr"]
    # Frozen mode changes nothing but qs: the backbone weights are SFace's.
    from fiqa_bench.api import get_fr_model

    base = get_fr_model("sface_torch", device="cpu").torch_module.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in base.items())

    # crfiqa:PATH scores the packed images with the trained qs (every key matched, same numbers).
    method = get_method(f"crfiqa:{final}", device="cpu")
    ds = build_dataset(str(small_rec))
    images = np.stack([decode_rgb(ds.reader.unpack(int(k))[1]) for k in ds.keys])
    got = method.score(images)
    want = (emb[0] @ sd["qs.weight"].T + sd["qs.bias"]).reshape(-1).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.std(got) > 0

    # A key too many (or too few) is refused with one error naming the file.
    sd["qs.extra"] = torch.zeros(1)
    bad = tmp_path / "bad" / final.name
    bad.parent.mkdir()
    torch.save(sd, bad)
    bad.with_suffix(".json").write_text(final.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="unexpected"):
        get_method(f"crfiqa:{bad}", device="cpu")


def test_full_finetuning_resumes_bit_exactly(small_rec: Path, tmp_path: Path) -> None:
    # Batch 4 over ~30 images: the resume point (step 3) is mid-epoch; dropout (SFace's 0.4) and flips
    # draw from the RNG, so the saved RNG state matters.
    cfg = sface_cfg(
        small_rec,
        freeze_backbone=False,
        batch_size=4,
        lr_batch=4,
        max_steps=5,
        checkpoint_every=3,
        keep_checkpoints=5,
        epochs=1,
    )
    train(cfg, tmp_path / "a", device_arg="cpu", progress=False)
    (tmp_path / "b").mkdir()
    train(cfg, tmp_path / "b", device_arg="cpu", progress=False, resume=str(tmp_path / "a" / "3state.pt"))
    full = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [4, 5]
    for a, b in zip(full[3:], resumed, strict=True):
        assert (a["loss"], a["ce"], a["quality"]) == (b["loss"], b["ce"], b["quality"])
    sa = torch.load(tmp_path / "a" / "5backbone.pth", weights_only=True)
    sb = torch.load(tmp_path / "b" / "5backbone.pth", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # the backbone did move (full fine-tuning), the BatchNorm statistics did not (freeze_bn)
    from fiqa_bench.api import get_fr_model

    base = get_fr_model("sface_torch", device="cpu").torch_module.state_dict()
    assert not torch.equal(sa["fc.weight"], base["fc.weight"])
    assert all(torch.equal(sa[k], v) for k, v in base.items() if "running_" in k)
