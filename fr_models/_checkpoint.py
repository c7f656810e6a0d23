"""Strict checkpoint loading for iResNet-style models.

Published checkpoints come in a few layouts; all reduce to the plain iResNet key set:

* insightface / ElasticFace / CR-FIQA ``*backbone.pth``: a plain state_dict, no prefix.
* ``nn.DataParallel`` / DDP saves: every key under ``module.``.
* MagFace ``magface_epoch_*.pth``: ``{"epoch", "arch", "state_dict", "optimizer"}`` with the backbone under
  ``features.module.`` (DDP training) or ``module.features.`` (DataParallel training) and the margin head
  (``fc.weight`` [512, classes] or ``module.fc.weight``) beside it.
* Training frameworks that keep the backbone as ``backbone.`` next to a classification head.

After unwrapping and stripping, every key must match the model in name and shape, or ONE
:class:`CheckpointError` says what differs and which architecture the file looks like. Keys outside
the backbone are ignored only when the backbone itself sat under a wrapper prefix (a training
checkpoint whose other entries are the loss head).
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fiqa_bench.errors import CheckpointError

from ._iresnet import depth_for_layers

# Wrapper dict keys, tried in order, that hold the state_dict inside a training checkpoint.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "backbone", "net", "module")
# Prefixes of a backbone stored inside a larger training model: other keys are its loss head.
_NESTED_PREFIXES = (
    "features.module.",
    "module.features.",
    "backbone.module.",
    "module.backbone.",
    "backbone.",
    "features.",
)
# Prefixes that wrap the whole model (DataParallel / DDP): no other key may be present.
_WHOLE_PREFIXES = ("", "module.")
_SHOW = 5  # how many keys of each kind an error lists

_LAYER_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# torch's weights_only refusal of a pickled object (a whole model saved with torch.save(model)).
_PICKLED_OBJECT = re.compile(r"unsupported global", re.IGNORECASE)


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` + unwrap to a flat {name: tensor} dict, or CheckpointError.

    Errors (one line each, naming the file and the fix): missing file; a whole pickled model
    (``torch.save(model)``: fiqa-bench never unpickles code, re-save its state_dict); a truncated or
    corrupt file; no state_dict inside; floating-point tensors holding NaN or inf (a corrupt file or a
    diverged training run: every embedding would be non-finite)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # nothing may print before the one-line error
            warnings.simplefilter("ignore")
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file does not exist.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as exc:
        first = _first_line(exc)
        if isinstance(exc, pickle.UnpicklingError) and _PICKLED_OBJECT.search(str(exc)):
            raise CheckpointError(
                f"{path}: holds a pickled Python object (a whole model saved with torch.save(model)), not a "
                "state_dict of tensors; fiqa-bench never runs pickled code. Re-save its state_dict: "
                "torch.save(model.state_dict(), PATH)."
            ) from None
        raise CheckpointError(
            f"{path}: cannot read this checkpoint (truncated or corrupt download: {first[:160]}). "
            "Re-download the file and check its size/sha256."
        ) from None
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        what = (
            type(obj).__name__
            if not isinstance(obj, Mapping)
            else f"dict with keys {sorted(map(str, obj))[:8]}"
        )
        raise CheckpointError(
            f"{path}: not a state_dict of tensors ({what}). Save the model with torch.save(model.state_dict(), PATH)."
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} tensor(s) hold NaN or inf values (first: {bad[0]}), so every output would be "
            "non-finite. The file is corrupt or its training diverged: re-download it or export a finite checkpoint."
        )
    return tensors


def _is_state_dict(obj: Mapping[Any, Any]) -> bool:
    return len(obj) > 0 and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def guess_architecture(state_dict: Mapping[str, Any]) -> str:
    """What a state_dict looks like, e.g. ``"iresnet50+qs (512-d embedding)"``; prefixes are ignored."""
    keys = list(state_dict)
    prefix = _best_prefix_for_layers(keys)
    blocks: dict[int, int] = {}
    names = [k[len(prefix) :] for k in keys if k.startswith(prefix)]
    for k in names:
        m = _LAYER_KEY.match(k)
        if m:
            stage, idx = int(m.group(1)), int(m.group(2))
            blocks[stage] = max(blocks.get(stage, 0), idx + 1)
    if not blocks:
        return f"not an iResNet (first keys: {', '.join(keys[:3]) or 'none'})"
    counts = [blocks.get(s, 0) for s in (1, 2, 3, 4)]
    depth = depth_for_layers(counts)
    arch = f"iresnet{depth}" if depth else f"an iResNet-like net with blocks per stage {counts}"
    if "qs.weight" in names:
        arch += "+qs"
    fc = state_dict.get(prefix + "fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2:
        arch += f" ({fc.shape[0]}-d embedding)"
    if prefix:
        arch += f", keys under {prefix!r}"
    return arch


def infer_iresnet_config(state_dict: Mapping[str, Any]) -> dict[str, Any] | None:
    """{"depth", "with_qs", "num_features"} of an iResNet state_dict (any known prefix), or None."""
    keys = list(state_dict)
    prefix = _best_prefix_for_layers(keys)
    blocks: dict[int, int] = {}
    for k in keys:
        if k.startswith(prefix) and (m := _LAYER_KEY.match(k[len(prefix) :])):
            blocks[int(m.group(1))] = max(blocks.get(int(m.group(1)), 0), int(m.group(2)) + 1)
    depth = depth_for_layers([blocks.get(s, 0) for s in (1, 2, 3, 4)])
    fc = state_dict.get(prefix + "fc.weight")
    if depth is None or not isinstance(fc, torch.Tensor):
        return None
    return {"depth": depth, "with_qs": (prefix + "qs.weight") in state_dict, "num_features": int(fc.shape[0])}


def _best_prefix_for_layers(keys: list[str]) -> str:
    for p in (*_NESTED_PREFIXES, "module."):
        if any(k.startswith(p + "layer1.") for k in keys):
            return p
    return ""


def _pick_prefix(keys: list[str], wanted: set[str]) -> str:
    """The prefix under which most of the model's keys are found (ties: the shortest)."""
    best, hits = "", -1
    for p in (*_WHOLE_PREFIXES, *_NESTED_PREFIXES):
        n = sum(1 for k in keys if k.startswith(p) and k[len(p) :] in wanted)
        if n > hits:
            best, hits = p, n
    return best


def match_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Strip the file's prefix and check every key in name and shape; returns the model-keyed dict."""
    expected = model.state_dict()
    keys = list(state)
    prefix = _pick_prefix(keys, set(expected))
    if prefix in _WHOLE_PREFIXES:
        inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        outside = [k for k in keys if not k.startswith(prefix)]
    else:  # backbone inside a training model: the rest is its loss head, not ours to load
        inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        outside = []
    unexpected = sorted(outside + [k for k in inside if k not in expected])
    # BatchNorm's num_batches_tracked does not affect inference; very old saves lack it.
    missing = sorted(k for k in expected if k not in inside and not k.endswith("num_batches_tracked"))
    misshaped = sorted(
        f"{k} {tuple(inside[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in inside and tuple(inside[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or misshaped:
        arch = getattr(model, "arch", type(model).__name__)
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped (file vs model)", misshaped),
        ):
            if items:
                more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
        raise CheckpointError(
            f"{source}: does not fit {arch} ({'; '.join(parts)}). The file looks like "
            f"{guess_architecture(state)}; use the card for that architecture (or crfiqa:PATH, which infers it)."
        )
    out = dict(inside)
    for k, v in expected.items():  # fill tolerated gaps (num_batches_tracked) from the model itself
        out.setdefault(k, v)
    return out


def load_state_dict_strict(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``model``: every key must match in name and shape, else one CheckpointError."""
    state = read_checkpoint(path)
    matched = match_state_dict(model, state, source=str(path))
    model.load_state_dict(matched, strict=True)
    return model


def match_keys(
    expected: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    source: str,
    what: str,
    prefixes: tuple[str, ...] = _WHOLE_PREFIXES,
    optional: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Strict match of a whole-model state_dict against ``expected`` (any architecture, not only iResNet).

    The wrapping prefix (one of ``prefixes``: "" or DataParallel's "module.") is the one under which most
    expected keys are found and is stripped from every key. Every expected key must be present (except
    keys ending in one of ``optional``) with the same shape, and no other key may be in the file; else ONE
    CheckpointError lists the missing, unexpected and mis-shaped keys. Returns the model-keyed dict.
    """
    keys = list(state)
    prefix = max(
        prefixes, key=lambda p: (sum(1 for k in keys if k.startswith(p) and k[len(p) :] in expected), -len(p))
    )
    inside = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    unexpected = sorted(
        [k for k in keys if not k.startswith(prefix)] + [k for k in inside if k not in expected]
    )
    missing = sorted(k for k in expected if k not in inside and not k.endswith(optional))
    misshaped = sorted(
        f"{k} {tuple(inside[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in inside and tuple(inside[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped (file vs model)", misshaped),
        ):
            if items:
                more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
        raise CheckpointError(f"{source}: does not fit {what} ({'; '.join(parts)}).")
    out = dict(inside)
    for k, v in expected.items():
        out.setdefault(k, v)
    return out
