"""A synthetic but realistic results folder, for tests and for trying the report without a run.

Scores are simulated (not faces): genuine/impostor similarities with a quality-dependent failure rate,
methods with decreasing agreement with the hidden true quality, plus the random/oracle reference lines.
The numbers come from fiqa_bench.evaluation when it is importable (the real protocols), else from a
small stand-in that follows the same definitions (used only while the engine is missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fiqa_bench.naming import pairs_file_name


def _simulate(rng: np.random.Generator, n_pairs: int, quality_noise: dict[str, float]) -> dict[str, np.ndarray]:
    n_gen = n_pairs // 2
    genuine = np.zeros(n_pairs, dtype=bool)
    genuine[:n_gen] = True
    fold = np.repeat(np.arange(3), int(np.ceil(n_pairs / 3)))[:n_pairs]
    true_q = rng.beta(5, 2, n_pairs)  # hidden pair quality in (0, 1)
    sim = np.where(genuine, 0.05 + 0.55 * true_q + rng.normal(0, 0.1, n_pairs), rng.normal(0.0, 0.08, n_pairs))
    out = {"similarity": sim.astype(np.float64), "genuine": genuine, "fold": fold.astype(np.int64)}
    for name, noise in quality_noise.items():
        out[f"q__{name}"] = true_q + rng.normal(0, noise, n_pairs)
    out["q__random"] = rng.random(n_pairs)
    # Oracle: genuine pairs ranked by their own similarity (likely false non-matches go first); impostors kept.
    out["q__oracle"] = np.where(genuine, sim, 2.0 - sim)
    return out


def _fallback_evaluate(sim: np.ndarray, genuine: np.ndarray, qualities: dict[str, np.ndarray], fmrs: list[float]) -> tuple[list, list]:
    """Stand-in for fiqa_bench.evaluation.evaluate (only when that module is missing)."""
    rows, curves = [], []
    n_imp = int((~genuine).sum())
    fractions = np.round(np.arange(0, 0.951, 0.05), 2)
    for fmr in fmrs:
        imp_sorted = np.sort(sim[~genuine])
        thr_fixed = imp_sorted[min(n_imp - 1, int(np.ceil((1 - fmr) * n_imp)) - 1)]
        for method, q in qualities.items():
            order = np.argsort(q, kind="stable")
            fnmr_erc = []
            for r in fractions:
                keep = order[int(np.floor(r * len(q))):]
                s, g = sim[keep], genuine[keep]
                imp = np.sort(s[~g])
                thr = imp[min(len(imp) - 1, int(np.ceil((1 - fmr) * len(imp))) - 1)] if len(imp) else np.inf
                fnmr_erc.append(float(np.mean(s[g] <= thr)) if g.any() else 0.0)
            auc = float(np.trapezoid(fnmr_erc, fractions))
            curves += [dict(method=method, protocol="ERC", fmr=fmr, fraction=float(f), fnmr=v) for f, v in zip(fractions, fnmr_erc, strict=True)]
            x = np.linspace(0, 1, 101)
            fnmr_edc = []
            for f in x:
                keep = order[int(np.floor(f * len(q))):]
                g = genuine[keep]
                fnmr_edc.append(float(np.mean(sim[keep][g] < thr_fixed)) if g.any() else 0.0)
            dl = 0.2
            pauc = float(sum(v * 0.01 for xx, v in zip(x[:-1], fnmr_edc[:-1], strict=True) if xx < dl - 1e-12))
            curves += [dict(method=method, protocol="EDC", fmr=fmr, fraction=float(f), fnmr=v) for f, v in zip(x, fnmr_edc, strict=True)]
            common = dict(method=method, fmr=fmr, n_pairs=len(q), n_genuine=int(genuine.sum()), n_impostor=n_imp,
                          fmr_resolvable=bool(fmr * n_imp >= 1), achieved_fmr=max(fmr, 1 / n_imp), threshold=float(thr_fixed),
                          fnmr_at_0=fnmr_erc[0], ci_low=np.nan, ci_high=np.nan, note="")
            rows.append(dict(common, protocol="ERC", auc=auc, reject_max=0.95, discard_limit=np.nan))
            rows.append(dict(common, protocol="EDC", auc=pauc, reject_max=np.nan, discard_limit=dl))
    return rows, curves


def make_results_folder(
    out: Path,
    *,
    datasets: dict[str, int] | None = None,
    fr_models: tuple[str, ...] = ("sface", "arcface_r100"),
    fmrs: tuple[float, ...] = (1e-3, 1e-4),
    bootstrap: int = 0,
    seed: int = 0,
    use_engine: bool = True,
) -> Path:
    """Write results.csv, curves.csv, pairs/*.npz and run.json for simulated scores into ``out``."""
    datasets = datasets or {"lfw": 1800, "cfp_fp": 1200}
    methods = {"crfiqa_l": 0.08, "serfiq": 0.15, "face_norm": 0.3, "sharpness": 0.6}
    evaluate = None
    if use_engine:
        try:
            from fiqa_bench.evaluation import evaluate  # type: ignore[no-redef]
        except ImportError:
            evaluate = None
    out = Path(out)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    all_rows: list[dict[str, Any]] = []
    all_curves: list[pd.DataFrame] = []
    info: dict[str, Any] = {}
    for k, (ds, n_pairs) in enumerate(datasets.items()):
        for fr_i, fr in enumerate(fr_models):
            arrays = _simulate(rng, n_pairs, {m: v * (1 + 0.3 * fr_i + 0.2 * k) for m, v in methods.items()})
            qualities = {key[3:]: v for key, v in arrays.items() if key.startswith("q__")}
            sim, gen = arrays["similarity"], arrays["genuine"]
            if evaluate is not None:
                rows, points = evaluate(sim, gen, qualities, list(fmrs), folds=arrays["fold"], bootstrap=bootstrap, seed=seed)
                frame = points.to_frame()
            else:
                rows, curves = _fallback_evaluate(sim, gen, qualities, list(fmrs))
                if bootstrap:  # stand-in intervals so CI rendering can be exercised without the engine
                    for r in rows:
                        r.update(ci_low=r["auc"] * 0.9, ci_high=r["auc"] * 1.1)
                    for c in curves:
                        c.update(fnmr_lo=max(0.0, c["fnmr"] - 0.01), fnmr_hi=c["fnmr"] + 0.01)
                frame = pd.DataFrame(curves)
            for r in rows:
                r.update(dataset=ds, fr_model=fr, reference_line=r["method"] in ("random", "oracle"))
            all_rows += rows
            all_curves.append(frame.assign(dataset=ds, fr_model=fr))
            np.savez_compressed(out / "pairs" / pairs_file_name(ds, fr), dataset=np.array(ds), fr_model=np.array(fr), **arrays)
        info[ds] = {"source": f"simulated ({n_pairs} pairs)", "n_images": n_pairs, "n_pairs": n_pairs,
                    "n_genuine": n_pairs // 2, "n_impostor": n_pairs - n_pairs // 2, "fingerprint": f"sim-{ds}",
                    "skipped": [{"what": "image", "where": f"{ds}/img_0001.jpg", "why": "no face detected"}] if k == 0 else []}
    cols = ["dataset", "fr_model", "method", "protocol", "fmr", "auc"]
    res = pd.DataFrame(all_rows)
    res = res[cols + [c for c in res.columns if c not in cols]]
    res.to_csv(out / "results.csv", index=False)
    pd.concat(all_curves, ignore_index=True).to_csv(out / "curves.csv", index=False)
    run = {
        "fiqa_bench_version": "0.1.0", "torch_version": None, "numpy_version": np.__version__, "python": "3.11",
        "platform": "synthetic", "command": ["fiqa-bench", "run", "--synthetic"], "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00", "seed": seed, "bootstrap": bootstrap, "fmrs": list(fmrs), "datasets": info,
        "fr_models": {fr: {"card": {"name": fr}, "weights": None, "weights_sha256": None} for fr in fr_models},
        "methods": {m: {"card": {"name": m}, "weights": None, "weights_sha256": None} for m in [*methods, "random", "oracle"]},
        "timings": {"total": 1.0}, "cache": {"hits": 0, "computed": 0},
        "engine": "fiqa_bench.evaluation" if evaluate is not None else "fallback",
    }
    (out / "run.json").write_text(json.dumps(run, indent=1, sort_keys=True))
    return out
