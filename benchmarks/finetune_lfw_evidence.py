"""Evidence for the fine-tuned CR-FIQA table (benchmarks/finetune_lfw.sh step 6), as Markdown on stdout.

    python benchmarks/finetune_lfw_evidence.py WORK_DIR

Reads only what the earlier steps wrote in WORK_DIR:
* learning curves: ``frozen/train_log.jsonl`` and ``full/train_log.jsonl`` (per-epoch means of the total
  loss, ArcFace CE, SmoothL1 quality term, CCS, NNCCS, target and qs);
* training-set distributions: the frozen run's cached SFace embeddings (plain images), its qs and class
  centres: quantiles of CCS, NNCCS, the CR-FIQA target and qs, and Spearman(qs, target);
* evaluation pairs: ``eval/pairs/*.npz`` (comparison score, genuine flag and pair quality of every
  method): Spearman correlation of each method's pair quality with the comparison score, over genuine
  and over impostor pairs (a useful quality rises with the genuine score and does not rise with the
  impostor score).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def learning_curve(log: Path) -> list[str]:
    if not log.is_file():
        return [f"({log} missing)"]
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    keys = ["loss", "ce", "quality", "ccs", "nnccs", "target_mean", "qs_mean"]
    by_epoch: dict[int, list[dict]] = {}
    for r in rows:
        by_epoch.setdefault(int(r["epoch"]), []).append(r)
    epochs = sorted(by_epoch)
    shown = sorted({*epochs[:3], *epochs[:: max(1, len(epochs) // 8)], epochs[-1]})
    out = [
        "| epoch | steps | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for e in shown:
        rs = by_epoch[e]
        vals = [np.mean([r.get(k, np.nan) for r in rs]) for k in keys]
        out.append(f"| {e} | {rs[-1]['step']} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
    return out


def quantiles(name: str, v: np.ndarray) -> str:
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return f"| {name} | " + " | ".join(f"{x:.4f}" for x in q) + f" | {v.mean():.4f} |"


def training_distributions(work: Path) -> list[str]:
    import torch
    from fiqa_bench.training.loss import CRFIQAHead, certainty_ratio_parts, quality_target

    frozen = work / "frozen"
    caches = sorted((frozen / "embedding_cache").glob("*.pt"))
    states = sorted(frozen.glob("*state.pt"), key=lambda p: int(p.name.removesuffix("state.pt")))
    if not caches or not states:
        return ["(frozen run outputs missing)"]
    cached = torch.load(caches[0], weights_only=True)
    state = torch.load(states[-1], weights_only=True)
    emb, labels = cached["embeddings"][0], cached["labels"]
    kernel = state["head"]["kernel"]
    meta = json.loads((frozen / states[-1].name.replace("state.pt", "backbone.json")).read_text())
    head = CRFIQAHead(kernel.shape[0], kernel.shape[1], target=meta["target_variant"])
    head.load_state_dict(state["head"])
    with torch.no_grad():
        ccs, nnccs = certainty_ratio_parts(head.cosines(emb), labels)
        target = quality_target(ccs, nnccs, meta["target_variant"])
        qs = (emb @ state["backbone"]["qs.weight"].T + state["backbone"]["qs.bias"]).reshape(-1)
        norm = emb.norm(dim=1)
    out = [
        f"Frozen run, step {state['step']}, {len(labels)} training images, target {meta['target_formula']}:",
        "",
        "| value | q05 | q25 | median | q75 | q95 | mean |",
        "|---|---|---|---|---|---|---|",
        quantiles("CCS", ccs.numpy()),
        quantiles("NNCCS", nnccs.numpy()),
        quantiles("target", target.numpy()),
        quantiles("qs", qs.numpy()),
        quantiles("embedding norm", norm.numpy()),
        "",
        f"Spearman(qs, target) = {spearman(qs.numpy(), target.numpy()):.3f}; "
        f"Spearman(embedding norm, target) = {spearman(norm.numpy(), target.numpy()):.3f}; "
        f"Spearman(qs, embedding norm) = {spearman(qs.numpy(), norm.numpy()):.3f} (training images).",
    ]
    return out


def pair_correlations(work: Path) -> list[str]:
    files = sorted((work / "eval" / "pairs").glob("*.npz"))
    if not files:
        return ["(evaluation pairs missing)"]
    out = [
        "| FR model | method | Spearman(pair quality, score) genuine | impostor |",
        "|---|---|---|---|",
    ]
    for f in files:
        z = np.load(f)
        sim, gen = z["similarity"], z["genuine"].astype(bool)
        for key in sorted(k for k in z.files if k.startswith("q__")):
            q = z[key]
            label = key[3:].replace(str(work) + "/", "")
            out.append(
                f"| {z['fr_model']} | {label} | {spearman(q[gen], sim[gen]):+.3f} | {spearman(q[~gen], sim[~gen]):+.3f} |"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("--data", default="../shared/data", help="unused; kept for the script's uniform call")
    args = ap.parse_args()
    work = Path(args.work)
    parts = ["## Learning curve, frozen backbone", *learning_curve(work / "frozen" / "train_log.jsonl"), ""]
    parts += ["## Learning curve, full fine-tuning", *learning_curve(work / "full" / "train_log.jsonl"), ""]
    parts += ["## Training-set distributions", *training_distributions(work), ""]
    parts += ["## Pair quality vs comparison score on LFW", *pair_correlations(work)]
    print("\n".join(parts))


if __name__ == "__main__":
    main()
