"""``train --resume auto`` (issue 15): a truncated latest state falls back to the previous good one
(saying so), stray files that are not ``<step>state.pt`` are ignored, a named damaged file is one line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from fiqa_bench.training.train import STATE_KEYS, load_resume_state, state_files

from fiqa_bench.errors import CheckpointError


def _state(step: int) -> dict[str, object]:
    state: dict[str, object] = {k: {} for k in STATE_KEYS}
    state.update(step=step, epoch=0, batch_in_epoch=step, world_size=1, batch_size=16)
    state["backbone"] = {"w": torch.full((3,), float(step))}
    return state


def _out(tmp_path: Path) -> Path:
    for step in (3, 6, 9):
        torch.save(_state(step), tmp_path / f"{step}state.pt")
    return tmp_path


def test_truncated_latest_state_falls_back_to_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = _out(tmp_path)
    latest = out / "9state.pt"
    latest.write_bytes(latest.read_bytes()[:200])  # before: a raw torch/zip traceback
    with caplog.at_level(logging.WARNING, logger="fiqa_bench.training"):
        state, path = load_resume_state("auto", out, torch.device("cpu"))
    assert path.name == "6state.pt" and state["step"] == 6
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "9state.pt is truncated or corrupt" in lines[0] and "falling back" in lines[0]


def test_stray_files_are_not_states(tmp_path: Path) -> None:
    out = _out(tmp_path)
    torch.save(_state(99), out / "beststate.pt")  # before: ValueError int('best')
    (out / "9state.pt.tmp123").write_bytes(b"partial")
    (out / "notes_state.pt").write_text("x")
    assert [p.name for p in state_files(out)] == ["9state.pt", "6state.pt", "3state.pt"]
    state, path = load_resume_state("auto", out, torch.device("cpu"))
    assert path.name == "9state.pt" and state["step"] == 9


def test_no_readable_state_and_a_named_damaged_state_are_one_line(tmp_path: Path) -> None:
    out = _out(tmp_path)
    for p in out.glob("*state.pt"):
        p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="no readable <step>state.pt") as info:
        load_resume_state("auto", out, torch.device("cpu"))
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match=r"6state.pt: cannot be read as a training state .*Fix"):
        load_resume_state(str(out / "6state.pt"), out, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="no <step>state.pt found in"):
        load_resume_state("auto", tmp_path / "empty", torch.device("cpu"))


@pytest.mark.realdata
@pytest.mark.slow
def test_train_resume_auto_after_a_truncated_state_continues_exactly(
    lfw_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fiqa_bench.training.train import train
    from test_training_recordio import build_lfw_rec
    from test_training_train import tiny_cfg

    torch.set_num_threads(1)
    data = build_lfw_rec(lfw_dir, tmp_path)
    cfg = tiny_cfg(data, max_steps=6, checkpoint_every=3, keep_checkpoints=2)
    train(cfg, tmp_path / "a", device_arg="cpu", progress=False)
    full = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    out = tmp_path / "b"
    out.mkdir()
    shutil.copy(tmp_path / "a" / "3state.pt", out / "3state.pt")
    shutil.copy(tmp_path / "a" / "6state.pt", out / "6state.pt")
    (out / "6state.pt").write_bytes((out / "6state.pt").read_bytes()[:4096])  # killed while copying
    shutil.copy(tmp_path / "a" / "3state.pt", out / "beststate.pt")  # a user's copy: not a state
    with caplog.at_level(logging.WARNING):
        train(cfg, out, device_arg="cpu", progress=False, resume="auto")
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "6state.pt is truncated or corrupt" in messages and "3state.pt at step 3" in messages
    resumed = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed] == [4, 5, 6]
    for a, b in zip(full[3:], resumed, strict=True):
        assert (a["loss"], a["ce"], a["quality"]) == (b["loss"], b["ce"], b["quality"])
