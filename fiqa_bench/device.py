"""Device choice, without importing torch unless a torch model is used."""

from __future__ import annotations

from .errors import FiqaError


def resolve_device(device: str | None = "auto") -> str:
    device = (device or "auto").lower()
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise FiqaError(
                f"--device {device}: CUDA is not available on this machine. Use --device cpu or auto."
            )
        return device
    if device != "cpu":
        raise FiqaError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N.")
    return device
