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
        cfg[key] = parse_value(value.strip())
    return cfg


def lr_multiplier(epoch: int, lr_steps: list[int]) -> float:
    """Step decay of the reference code: x0.1 for each 1-based step epoch m with m - 1 <= epoch (0-based)."""
    return 0.1 ** sum(1 for m in lr_steps if m - 1 <= epoch)


def scaled_lr(cfg: dict[str, Any], world_size: int) -> float:
    return float(cfg["lr"]) * int(cfg["batch_size"]) * world_size / float(cfg["lr_batch"])
