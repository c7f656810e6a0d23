"""Per-method CPU throughput (images/s) and degradation fractions on real aligned LFW faces.

    python benchmarks/bench_methods.py [--n 24] [--degradations] [--write]

Torch methods run on sface_torch (SFace's real trained weights rebuilt in torch from the shipped ONNX
file) and, for comparison with the iResNet cards, on an iResNet18 with random weights and BatchNorm
statistics calibrated on the same faces (no published iResNet weights are available offline); CR-FIQA
throughput is measured on that r18 + qs (crfiqa:PATH). With --write, the table replaces the "## Methods" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lfw"


def aligned_faces(n: int) -> np.ndarray:
    from fiqa_bench.faces import YuNetDetector, align, read_rgb

    det, out = YuNetDetector(), []
    for person in sorted((DATA / "images").iterdir()):
        face, _ = align(read_rgb(sorted(person.glob("*.jpg"))[0]), det)
        if face is not None:
            out.append(face)
        if len(out) == n:
            break
    return np.stack(out)


def calibrated_r18(faces: np.ndarray, folder: Path) -> Path:
    import torch
    from fiqa_bench.fr_models._iresnet import iresnet

    torch.manual_seed(0)
    model = iresnet(18, with_qs=True)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    x = (torch.from_numpy(faces).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    with torch.no_grad():
        model(x)
        model(x.flip(3))
    path = folder / "r18_calibrated.pth"
    torch.save(model.eval().state_dict(), path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="faces for the cheap methods")
    ap.add_argument("--n-slow", type=int, default=4, help="faces for serfiq (T=100) and faceqan (defaults)")
    ap.add_argument(
        "--degradations",
        action="store_true",
        help="also measure the fraction of faces each degradation lowers",
    )
    ap.add_argument(
        "--write", action="store_true", help="write the table into benchmarks/RESULTS.md (## Methods)"
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from fiqa_bench.methods import _degrade as D

    import fiqa_bench as fb

    torch.set_num_threads(args.threads)
    faces = aligned_faces(max(args.n, 16))
    tmp = Path(tempfile.mkdtemp(prefix="bench_methods_"))
    r18_path = calibrated_r18(faces[:16], tmp)
    r18 = fb.get_fr_model(f"crfiqa:{r18_path}", device="cpu")
    sface = fb.get_fr_model("sface", device="cpu")
    sface_torch = fb.get_fr_model("sface_torch", device="cpu")
    plan = [
        ("sharpness", {}, None, args.n),
        ("exposure", {}, None, args.n),
        ("contrast", {}, None, args.n),
        ("yunet_confidence", {}, None, args.n),
        ("head_pose", {}, None, args.n),
        ("random", {}, None, args.n),
        ("brisque", {}, None, args.n),
        ("qualityface", {}, None, args.n),
        ("face_norm", {}, sface, args.n),
        (f"crfiqa:{r18_path}", {}, None, args.n),
        ("grafiqs", {}, r18, args.n),
        ("grafiqs", {"variant": "layer4"}, r18, args.n),
        ("serfiq", {}, r18, args.n_slow),
        ("faceqan", {}, r18, args.n_slow),
        ("face_norm", {}, sface_torch, args.n),
        ("grafiqs", {}, sface_torch, args.n),
        ("serfiq", {}, sface_torch, args.n),
        ("faceqan", {}, sface_torch, args.n_slow),
    ]
    rows = []
    for name, opts, fr, n in plan:
        kwargs = dict(opts)
        if fr is not None:
            kwargs["fr_model"] = fr
        m = fb.get_method(name, device="cpu", **kwargs)
        ims = faces[:n]
        m.score(ims[:1])  # warm-up (model load, first-call overheads)
        t0 = time.perf_counter()
        q = m.score(ims)
        dt = time.perf_counter() - t0
        label = ("crfiqa:r18" if name.startswith("crfiqa:") else name) + "".join(
            f" {k}={v}" for k, v in opts.items()
        )
        if fr is not None:
            label += " @" + {id(sface): "sface", id(sface_torch): "sface_torch"}.get(id(fr), "r18-calibrated")
        row = {"method": label, "n": n, "img_s": n / dt, "finite": bool(np.isfinite(q).all())}
        if args.degradations:
            for d in D.DEGRADATIONS:
                row[d] = float((m.score(D.apply(d, ims)) < q).mean())
        rows.append(row)
        print(row, flush=True)

    degs = list(D.DEGRADATIONS) if args.degradations else []
    head = "| method | faces | images/s (CPU) | finite |" + "".join(f" {d} |" for d in degs)
    sep = "|---|---:|---:|---|" + "---:|" * len(degs)
    lines = [head, sep]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['n']} | {r['img_s']:.1f} | {'yes' if r['finite'] else 'NO'} |"
            + "".join(f" {r[d]:.2f} |" for d in degs)
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        intro = (
            f"Measured by `python benchmarks/bench_methods.py --n {args.n} --n-slow {args.n_slow}"
            f"{' --degradations' if degs else ''}` on this machine "
            f"(CPU, torch threads={args.threads}, shared with other jobs: treat as rough). Real aligned LFW faces. "
            "Torch methods run on sface_torch (SFace's real trained weights, rebuilt in torch from the shipped ONNX "
            "file: their fractions are those of a real FR model) and on an iResNet18 with random weights and BN "
            "statistics calibrated on 16 of these faces (no published iResNet weights offline: @r18 rows give r18 "
            "throughput, and their fractions say nothing about the published models). Degradation columns: fraction of faces whose quality dropped "
            "(blur sigma 4, JPEG q5, 4x down/up, black bar over the eyes, x0.25 brightness, Gaussian noise sigma 25)."
        )
        section = f"## Methods\n\n{intro}\n\n{table}\n"
        results = ROOT / "benchmarks" / "RESULTS.md"
        text = results.read_text() if results.is_file() else "# Benchmark results\n"
        if re.search(r"^## Methods\n", text, flags=re.M):
            text = re.sub(r"^## Methods\n.*?(?=^## |\Z)", section + "\n", text, flags=re.M | re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        results.write_text(text)
        print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
