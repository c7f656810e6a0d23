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
        text = _ANSI.sub("", str(exc))
        # Training checkpoints (PyTorch Lightning .ckpt) pickle hyper-parameter and callback objects beside
        # the tensors; weights_only refuses them. Read those files again with inert stand-ins for the objects
        # (never for globals of modules torch blocks outright, such as os: those files are refused).
        obj = _load_with_inert_objects(path) if "Unsupported global" in text else None
        if obj is None or isinstance(obj, _Inert):
            if isinstance(exc, pickle.UnpicklingError) and _PICKLED_OBJECT.search(text):
                raise CheckpointError(
                    f"{path}: holds a pickled Python object (e.g. a whole model saved with torch.save(model)), not "
                    "a state_dict of tensors; fiqa-bench never runs pickled code. Re-save its state_dict: "
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


class _Inert(dict):  # type: ignore[type-arg]
    """Stand-in for an object a checkpoint pickles but fiqa-bench never uses (Lightning hyper-parameters,
    argparse namespaces, callback states): it records what it is given and runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        self.__dict__["pickled_state"] = state


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals torch's weights_only loader allows (tensor and storage rebuilding, plain
    containers); every other global becomes an inert ``_Inert`` subclass, so no foreign code runs."""

    def find_class(self, module: str, name: str) -> Any:
        from torch import _weights_only_unpickler

        allowed = _weights_only_unpickler._get_allowed_globals()
        key = f"{module}.{name}"
        if key in allowed:
            return allowed[key]
        return type(name, (_Inert,), {"__module__": "fiqa_bench.inert." + module})


class _RestrictedPickleModule:
    """The ``pickle_module`` torch.load needs: our Unpickler, and ``load`` for the legacy (non-zip) format."""

    __name__ = "fiqa_bench_restricted_pickle"
    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(f: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(f, **kwargs).load()


def _load_with_inert_objects(path: Path) -> Any:
    """torch.load with non-tensor objects replaced by inert stand-ins, or None if that fails too."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except Exception:  # noqa: BLE001 - any failure here is reported as the original unreadable-file error
        return None


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
    elif "qs.9.weight" in names:
        arch += "+qs-map (SynFIQA++ head)"
    fc = state_dict.get(prefix + "fc.weight")
    if isinstance(fc, torch.Tensor) and fc.ndim == 2:
        arch += f" ({fc.shape[0]}-d embedding)"
    if prefix:
        arch += f", keys under {prefix!r}"
    return arch


def infer_iresnet_config(state_dict: Mapping[str, Any]) -> dict[str, Any] | None:
    """{"depth", "with_qs", "qs_head", "num_features"} of an iResNet state_dict (any known prefix), or None.

    ``qs_head``: "linear" (CR-FIQA ``qs`` = Linear(num_features, 1) on the embedding), "map" (SynFIQA++:
    ``qs.2`` .. ``qs.9`` MLP on the pooled layer4 map) or None (a plain FR backbone).
    """
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
    qs_head = (
        "linear"
        if (prefix + "qs.weight") in state_dict
        else "map"
        if (prefix + "qs.9.weight") in state_dict
        else None
    )
    return {
        "depth": depth,
        "with_qs": qs_head is not None,
        "qs_head": qs_head,
        "num_features": int(fc.shape[0]),
    }


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
    """iResNet-family files: find the prefix the backbone sits under (a whole-model wrapper, or a backbone
    inside a training model whose other keys are its loss head and are left out), then :func:`match_keys`."""
    prefix = _pick_prefix(list(state), set(model.state_dict()))
    if prefix not in _WHOLE_PREFIXES:  # backbone inside a training model: the rest is not ours to load
        state = {k: v for k, v in state.items() if k.startswith(prefix)}
    return match_keys(
        model.state_dict(), state, source, getattr(model, "arch", type(model).__name__), strip=(prefix,) if prefix else (),
        hint=f"The file looks like {guess_architecture(state)}; use the card for that architecture "
        "(or crfiqa:PATH, which infers it).",
    )  # fmt: skip


def load_state_dict_strict(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``path`` into ``model``: every key must match in name and shape, else one CheckpointError."""
    state = read_checkpoint(path)
    matched = match_state_dict(model, state, source=str(path))
    model.load_state_dict(matched, strict=True)
    return model


def mismatch_summary(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    """'N missing: a, b; M unexpected: ...; K mis-shaped (file vs model): ...' (first few of each)."""
    parts = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped (file vs model)", misshaped),
    ):
        if items:
            more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
    return "; ".join(parts)


def match_keys(
    expected: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    source: str,
    arch: str,
    *,
    strip: tuple[str, ...] = ("module.",),
    ignore: tuple[str, ...] = (),
    optional: tuple[str, ...] = ("num_batches_tracked",),
    hint: str = "",
) -> dict[str, torch.Tensor]:
    """Match a checkpoint to a model's state_dict ``expected`` in its authors' exact layout (any
    architecture); returns the model-keyed dict. The one key-matching rule of fiqa-bench.

    The wrapping prefix is the one of ``("", *strip)`` under which most of the model's keys are found
    (``module.`` of DataParallel, ``model.`` of a Lightning module, ...). Keys that start with one of
    ``ignore`` (a training checkpoint's loss head, e.g. AdaFace's ``head.kernel``) are dropped. Every other
    key must then be a model key of the same shape and every model key must be present (keys ending in one
    of ``optional`` excepted, e.g. BatchNorm's ``num_batches_tracked``, which does not affect inference),
    else ONE :class:`CheckpointError` line lists the missing, unexpected and mis-shaped keys.
    """
    keys = [k for k in state if not k.startswith(ignore)] if ignore else list(state)
    best, hits = "", -1
    for p in ("", *strip):
        n = sum(1 for k in keys if k.startswith(p) and k[len(p) :] in expected)
        if n > hits:
            best, hits = p, n
    inside = {k[len(best) :]: state[k] for k in keys if k.startswith(best)}
    unexpected = sorted(
        [k for k in keys if not k.startswith(best)] + [k for k in inside if k not in expected]
    )
    missing = sorted(k for k in expected if k not in inside and not k.endswith(optional))
    misshaped = sorted(
        f"{k} {tuple(inside[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in inside and tuple(inside[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or misshaped:
        prefix = f" (keys read under {best!r})" if best else ""
        raise CheckpointError(
            f"{source}: does not fit {arch}{prefix}: {mismatch_summary(missing, unexpected, misshaped)}."
            + (f" {hint}" if hint else "")
        )
    out = {k: v for k, v in inside.items() if k in expected}
    for k, v in expected.items():
        out.setdefault(k, v)
    return out


def match_layout(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, arch: str, **kwargs: Any
) -> dict[str, torch.Tensor]:
    """:func:`match_keys` against ``model``'s own state_dict."""
    return match_keys(model.state_dict(), state, source, arch, **kwargs)


def load_layout(model: nn.Module, path: str | Path, *, arch: str, **kwargs: Any) -> nn.Module:
    """``read_checkpoint`` + :func:`match_layout` + ``load_state_dict(strict=True)``; returns ``model``."""
    matched = match_layout(model, read_checkpoint(path), source=str(path), arch=arch, **kwargs)
    model.load_state_dict(matched, strict=True)
    return model
