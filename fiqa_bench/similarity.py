"""Pair cosine similarities from an embedding matrix: NumPy on CPU, torch matrix products on a GPU.

Millions of pairs (IJB-C: 15.7M template pairs) are computed in chunks, so memory beyond the
normalised embedding matrix is O(chunk x D). On CUDA the matrix goes to the GPU once and each chunk
is a batched dot product there; the result is float64 on the host either way.
"""

from __future__ import annotations

import numpy as np

from .evaluation import cosine_similarity_pairs
from .evaluation._core import EvaluationError


def pair_cosine(emb: np.ndarray, a: np.ndarray, b: np.ndarray, device: str = "cpu", *, backend: str | None = None,
                chunk: int = 1 << 20) -> np.ndarray:
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

    e = np.asarray(emb)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if e.ndim != 2 or a.shape != b.shape or a.ndim != 1:
        raise EvaluationError(f"need a 2-D embedding matrix and equal 1-D index arrays, got {e.shape}, {a.shape}, {b.shape}")
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= len(e)):
        raise EvaluationError(f"pair indices out of range for {len(e)} embeddings")
    dev = torch.device(device)
    m = torch.from_numpy(np.ascontiguousarray(e, dtype=np.float32)).to(dev)
    norms = m.norm(dim=1)
    bad = ~(torch.isfinite(norms) & (norms > 0))
    if bool(bad.any()):
        raise EvaluationError(f"{int(bad.sum())} embedding(s) have zero or non-finite norm (first: row {int(bad.nonzero()[0, 0])})")
    m = m / norms[:, None]
    step = max(1, min(int(chunk), (1 << 24) // max(1, e.shape[1])))
    out = np.empty(len(a), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, len(a), step):
            ia = torch.from_numpy(a[s : s + step]).to(dev, non_blocking=True)
            ib = torch.from_numpy(b[s : s + step]).to(dev, non_blocking=True)
            out[s : s + step] = (m[ia] * m[ib]).sum(1).double().cpu().numpy()
    return out
