"""Pair cosine similarities from an embedding matrix: NumPy on CPU, torch matrix products on a GPU.

Millions of pairs (IJB-C: 15.7M template pairs) are computed in chunks, so memory beyond the
normalised embedding matrix is O(chunk x D). On CUDA the normalised matrix goes to the GPU once and each
chunk is a batched dot product there; the result is float64 on the host either way.
"""

from __future__ import annotations

import numpy as np

from .evaluation import cosine_similarity_pairs
from .evaluation._core import EvaluationError
from .evaluation.evaluate import normalised_pair_rows


def pair_cosine(
    emb: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    device: str = "cpu",
    *,
    backend: str | None = None,
    chunk: int = 1 << 20,
) -> np.ndarray:
    """Cosine similarity of rows a[i] and b[i] of ``emb``.

    ``backend``: "numpy" or "torch"; by default torch on a CUDA ``device``, NumPy otherwise. The
    torch backend on CPU exists so that its results can be checked where no GPU is available.
    """
    backend = backend or ("torch" if str(device).startswith("cuda") else "numpy")
    if backend == "numpy":
        return cosine_similarity_pairs(emb, a, b, chunk=chunk)
    if backend != "torch":
        raise EvaluationError(f"pair_cosine backend {backend!r}: expected numpy or torch")
    import torch

    e, a, b, max_step = normalised_pair_rows(emb, a, b)  # same checks and normalisation as NumPy's path
    dev = torch.device(device)
    m = torch.from_numpy(np.ascontiguousarray(e, dtype=np.float32)).to(dev)
    ia_all, ib_all = torch.from_numpy(a.astype(np.int64)), torch.from_numpy(b.astype(np.int64))
    step = max(1, min(int(chunk), max_step))
    out = np.empty(len(a), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, len(a), step):
            ia = ia_all[s : s + step].to(dev, non_blocking=True)
            ib = ib_all[s : s + step].to(dev, non_blocking=True)
            out[s : s + step] = (m[ia] * m[ib]).sum(1).double().cpu().numpy()
    return out
