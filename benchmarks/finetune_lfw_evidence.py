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
  impostor score);
* a leave-one-out variant of the target, fitted and checked on lfw_train alone (held-out identities), to
  test the explanation without touching the evaluation folds (see :func:`leave_one_out_check`).
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


def leave_one_out_check(work: Path) -> list[str]:
    """A leave-one-out CR-FIQA target, fitted and checked on lfw_train only (never on the evaluation folds).

    Identities are split by label (every 5th held out). On the fitting identities each image's target is
    CCS_loo / NNCCS: CCS_loo = cosine to the mean of the OTHER images of its identity (so the centre is not
    fitted to the image it scores), NNCCS = largest cosine to another identity's mean. A linear qs is fitted
    to it by least squares on the raw embedding. On the held-out identities every same-identity pair is a
    genuine pair; reported: Spearman(pair quality = min of the two, genuine cosine).
    """
    import torch

    caches = sorted((work / "frozen" / "embedding_cache").glob("*.pt"))
    states = sorted((work / "frozen").glob("*state.pt"), key=lambda p: int(p.name.removesuffix("state.pt")))
    if not caches or not states:
        return ["(frozen run outputs missing)"]
    cached = torch.load(caches[0], weights_only=True)
    emb = cached["embeddings"][0].double().numpy()
    labels = cached["labels"].numpy()
    sd = torch.load(states[-1], weights_only=True)["backbone"]
    w, b = sd["qs.weight"].double().numpy().reshape(-1), float(sd["qs.bias"])
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    held = labels % 5 == 4
    fit = ~held
    classes = np.unique(labels[fit])
    sums = np.stack([unit[labels == c].sum(0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes])
    index = {c: i for i, c in enumerate(classes)}
    centres = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    rows = np.flatnonzero(fit)
    k = np.array([index[c] for c in labels[rows]])
    loo = sums[k] - unit[rows]
    ok = counts[k] > 1
    ccs = (unit[rows] * loo).sum(1) / np.maximum(np.linalg.norm(loo, axis=1), 1e-12)
    cos_all = unit[rows] @ centres.T
    cos_all[np.arange(len(rows)), k] = -np.inf
    nnccs = cos_all.max(1)
    target = (ccs / nnccs)[ok]
    x = np.c_[emb[rows][ok], np.ones(ok.sum())]
    coef = np.linalg.lstsq(x, target, rcond=None)[0]
    hrows = np.flatnonzero(held)
    a, bb = [], []
    for c in np.unique(labels[hrows]):
        idx = hrows[labels[hrows] == c]
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                a.append(idx[i])
                bb.append(idx[j])
    a, bb = np.array(a), np.array(bb)
    score = (unit[a] * unit[bb]).sum(1)
    qualities = {
        "trained frozen qs (saw these identities in training)": emb @ w + b,
        "leave-one-out target, linear qs fitted on the other identities": np.c_[emb, np.ones(len(emb))]
        @ coef,
        "embedding norm (face_norm)": np.linalg.norm(emb, axis=1),
        "random": np.random.default_rng(0).random(len(emb)),
    }
    out = [
        f"{int(held.sum())} images of {len(np.unique(labels[hrows]))} held-out lfw_train identities, "
        f"{len(a)} genuine pairs; fitted on {int(ok.sum())} images of {len(classes)} identities "
        f"(Spearman(LOO target, norm) = {spearman(target, np.linalg.norm(emb[rows][ok], axis=1)):+.3f}).",
        "",
        "| quality | Spearman(pair quality, genuine score) |",
        "|---|---|",
    ]
    for name, q in qualities.items():
        out.append(f"| {name} | {spearman(np.minimum(q[a], q[bb]), score):+.3f} |")
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
    parts += ["## Pair quality vs comparison score on LFW", *pair_correlations(work), ""]
    parts += ["## Leave-one-out target, checked on held-out lfw_train identities", *leave_one_out_check(work)]
    print("\n".join(parts))


if __name__ == "__main__":
    main()
