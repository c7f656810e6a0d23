"""Training configs: editable TOML files (training/configs/*.toml) plus ``key=value`` overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from fiqa_bench.errors import DataFormatError, FiqaError, MissingDataError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def load_config(name_or_path: str) -> dict[str, Any]:
    """A shipped config by name (``crfiqa_s``) or any TOML file path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path.removesuffix('.toml')}.toml"
    if not path.is_file():
        raise MissingDataError(
            "training config",
            name_or_path,
            f"use one of {', '.join(available_configs())} or a TOML file path",
        )
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DataFormatError(path, f"invalid TOML ({exc})", "fix the file") from None
    cfg["config_file"] = str(path)
    return cfg


def parse_value(text: str) -> Any:
    """TOML literal when it parses (numbers, booleans, lists, quoted strings), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: dict[str, Any], items: list[str] | None) -> dict[str, Any]:
    for item in items or []:
        if "=" not in item:
            raise FiqaError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=2")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in cfg:
            known = ", ".join(sorted(k for k in cfg if k != "config_file"))
            raise FiqaError(
                f"--set {key}: unknown config key in {cfg.get('config_file')}. Known keys: {known}"
            )
        new = parse_value(value.strip())
        _check_type(cfg, key, cfg[key], new, f"--set {key}={value.strip()}")
        cfg[key] = new
    return cfg


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list, e.g. [8, 14]"
    return "text"


def _check_type(cfg: dict[str, Any], key: str, old: Any, new: Any, where: str) -> None:
    """An override keeps the type of the config file's value (an int where a float stood is fine)."""
    if old is None or isinstance(old, str):
        return
    ok = isinstance(new, bool) if isinstance(old, bool) else (
        isinstance(new, int | float) and not isinstance(new, bool) and (isinstance(old, float) or isinstance(new, int))
    ) if isinstance(old, int | float) else isinstance(new, type(old))  # fmt: skip
    if not ok:
        raise FiqaError(
            f"{where}: expected {_kind(old)}{' (an integer)' if isinstance(old, int) and not isinstance(old, bool) else ''}, "
            f"as in {Path(str(cfg.get('config_file', 'the config'))).name} ({key} = {old!r})."
        )


# Smallest allowed value of each numeric key (one-line error before any work; None = no bound).
MINIMUM: dict[str, tuple[float, bool]] = {  # key -> (bound, strict)
    "batch_size": (1, False),
    "workers": (0, False),
    "epochs": (1, False),
    "lr": (0, True),
    "lr_batch": (1, False),
    "num_classes": (0, False),
    "max_steps": (0, False),
    "embedding_size": (1, False),
    "image_size": (16, False),
    "log_every": (1, False),
    "checkpoint_every": (0, False),
    "keep_checkpoints": (1, False),
    "verify_every": (0, False),
    "dropout": (0, False),
    "s": (0, True),
    "alpha": (0, False),
    "beta": (0, True),
    "clip_grad_norm": (0, False),
    "weight_decay": (0, False),
    "momentum": (0, False),
    "backbone_lr_scale": (0, False),
    "epoch_checkpoint_every": (1, False),
}


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Ranges of the numeric keys after every override and flag: FiqaError naming key, value and bound."""
    for key, (bound, strict) in MINIMUM.items():
        if key not in cfg:
            continue
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FiqaError(f"training config: {key} = {v!r} must be a number.")
        if v < bound or (strict and v == bound):
            rel = ">" if strict else ">="
            raise FiqaError(
                f"training config: {key} = {v!r} must be {rel} {bound:g} (set it with --set {key}=VALUE or its flag)."
            )
    if "dropout" in cfg and not 0 <= cfg["dropout"] < 1:
        raise FiqaError(f"training config: dropout = {cfg['dropout']!r} must be in [0, 1).")
    return cfg


def lr_multiplier(epoch: int, lr_steps: list[int]) -> float:
    """Step decay of the reference code: x0.1 for each 1-based step epoch m with m - 1 <= epoch (0-based)."""
    return 0.1 ** sum(1 for m in lr_steps if m - 1 <= epoch)


def scaled_lr(cfg: dict[str, Any], world_size: int) -> float:
    return float(cfg["lr"]) * int(cfg["batch_size"]) * world_size / float(cfg["lr_batch"])
