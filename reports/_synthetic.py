"""A synthetic but realistic results folder, for tests and for trying the report without a run.

Scores are simulated (not faces): genuine/impostor similarities with a quality-dependent failure rate,
methods with decreasing agreement with the hidden true quality, plus the random/oracle reference lines.
The numbers come from the real evaluation core (fiqa_bench.protocol_set -> fiqa_bench.evaluation), and
the folder is written by the one results writer (fiqa_bench.results): there is no second evaluator here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fiqa_bench.protocol_set import ProtocolRequest, evaluate_protocols
from fiqa_bench.results import write_pairs, write_results


def _simulate(
    rng: np.random.Generator, n_pairs: int, quality_noise: dict[str, float]
) -> dict[str, np.ndarray]:
    n_gen = n_pairs // 2
    genuine = np.zeros(n_pairs, dtype=bool)
    genuine[:n_gen] = True
    fold = np.repeat(np.arange(3), int(np.ceil(n_pairs / 3)))[:n_pairs]
    true_q = rng.beta(5, 2, n_pairs)  # hidden pair quality in (0, 1)
    sim = np.where(
        genuine, 0.05 + 0.55 * true_q + rng.normal(0, 0.1, n_pairs), rng.normal(0.0, 0.08, n_pairs)
    )
    out = {"similarity": sim.astype(np.float64), "genuine": genuine, "fold": fold.astype(np.int64)}
    for name, noise in quality_noise.items():
        out[f"q__{name}"] = true_q + rng.normal(0, noise, n_pairs)
    out["q__random"] = rng.random(n_pairs)
    # Oracle: genuine pairs ranked by their own similarity (likely false non-matches go first); impostors kept.
    out["q__oracle"] = np.where(genuine, sim, 2.0 - sim)
    return out


def make_results_folder(
    out: Path,
    *,
    datasets: dict[str, int] | None = None,
    fr_models: tuple[str, ...] = ("sface", "arcface_r100"),
    fmrs: tuple[float, ...] = (1e-3, 1e-4),
    bootstrap: int = 0,
    seed: int = 0,
    protocols: str | None = None,
    discard_limit: str | None = None,
) -> Path:
    """Write results.csv, curves.csv, pairs/*.npz and run.json for simulated scores into ``out``, evaluated
    by the real core with ``protocols`` (default set when None) and ``discard_limit`` (comma list)."""
    datasets = datasets or {"lfw": 1800, "cfp_fp": 1200}
    methods = {"crfiqa_l": 0.08, "serfiq": 0.15, "face_norm": 0.3, "sharpness": 0.6}
    request = ProtocolRequest.from_user(protocols, discard_limit)
    out = Path(out)
    rng = np.random.default_rng(seed)
    all_rows: list[dict[str, Any]] = []
    all_curves: list[pd.DataFrame] = []
    info: dict[str, Any] = {}
    for k, (ds, n_pairs) in enumerate(datasets.items()):
        for fr_i, fr in enumerate(fr_models):
            arrays = _simulate(rng, n_pairs, {m: v * (1 + 0.3 * fr_i + 0.2 * k) for m, v in methods.items()})
            qualities = {key[3:]: v for key, v in arrays.items() if key.startswith("q__")}
            sim, gen = arrays["similarity"], arrays["genuine"]
            rows, curves = evaluate_protocols(
                sim, gen, qualities, list(fmrs), request, folds=arrays["fold"], bootstrap=bootstrap, seed=seed
            )
            for r in rows:
                r.update(dataset=ds, fr_model=fr, reference_line=r["method"] in ("random", "oracle"))
            all_rows += rows
            all_curves.append(curves.assign(dataset=ds, fr_model=fr))
            write_pairs(out, ds, fr, similarity=sim, genuine=gen, fold=arrays["fold"], qualities=qualities)
        info[ds] = {
            "source": f"simulated ({n_pairs} pairs)",
            "n_images": n_pairs,
            "n_pairs": n_pairs,
            "n_genuine": n_pairs // 2,
            "n_impostor": n_pairs - n_pairs // 2,
            "fingerprint": f"sim-{ds}",
            "skipped": [{"what": "image", "where": f"{ds}/img_0001.jpg", "why": "no face detected"}]
            if k == 0
            else [],
        }
    run = {
        "fiqa_bench_version": "0.1.0",
        "torch_version": None,
        "numpy_version": np.__version__,
        "python": "3.11",
        "platform": "synthetic",
        "command": ["fiqa-bench", "run", "--synthetic"],
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "seed": seed,
        "bootstrap": bootstrap,
        "fmrs": list(fmrs),
        "datasets": info,
        "fr_models": {
            fr: {"card": {"name": fr}, "weights": None, "weights_sha256": None} for fr in fr_models
        },
        "methods": {
            m: {"card": {"name": m}, "weights": None, "weights_sha256": None}
            for m in [*methods, "random", "oracle"]
        },
        "timings": {"total": 1.0},
        "cache": {"hits": 0, "computed": 0},
    }
    write_results(
        out,
        pd.DataFrame(all_rows),
        pd.concat(all_curves, ignore_index=True),
        settings=request.settings(list(fmrs), bootstrap, seed),
        run=run,
    )
    return out
