"""Verification on insightface ``.bin`` sets during training (rank 0): 10-fold accuracy, flip-summed embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fiqa_bench.datasets.insightface_bin import read_bin  # restricted unpickler, clear errors

from fiqa_bench.errors import DataFormatError
from fiqa_bench.evaluation import fold_accuracy
from fiqa_bench.faces import decode_rgb


class BinSet:
    def __init__(self, path: Path) -> None:
        bins, issame = read_bin(path)
        images = []
        for i, b in enumerate(bins):
            rgb = decode_rgb(b)
            if rgb is None or rgb.shape[:2] != (112, 112):
                raise DataFormatError(
                    path, f"image {i} is not a decodable 112x112 face", "use an insightface .bin set"
                )
            images.append(rgb)
        self.name = path.stem
        self.images = np.stack(images)  # N x 112 x 112 x 3 RGB uint8
        self.issame = np.asarray(issame, dtype=bool)


def find_bin_sets(folder: Path, names: list[str]) -> list[Path]:
    return [folder / f"{n}.bin" for n in names if (folder / f"{n}.bin").is_file()]


@torch.no_grad()
def embed(
    model: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 128
) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).to(device).permute(0, 3, 1, 2).float()
        x = (x / 255.0 - 0.5) / 0.5
        e = _embedding(model(x)) + _embedding(model(torch.flip(x, dims=[3])))
        out.append(torch.nn.functional.normalize(e.float(), dim=1).cpu().numpy())
    return np.concatenate(out)


def _embedding(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def tenfold_accuracy(sims: np.ndarray, issame: np.ndarray, folds: int = 10) -> tuple[float, float]:
    """Mean and std of accuracy; each fold's threshold is the best one on the other nine folds."""
    return fold_accuracy(sims, issame, folds)


def verify(model: torch.nn.Module, sets: list[BinSet], device: torch.device) -> dict[str, float]:
    was_training = model.training
    model.eval()
    results = {}
    try:
        for s in sets:
            emb = embed(model, s.images, device)
            sims = np.sum(emb[0::2] * emb[1::2], axis=1)
            results[s.name], _ = tenfold_accuracy(sims, s.issame)
    finally:
        model.train(was_training)
    return results
