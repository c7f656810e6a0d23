"""Dataset benchmarks: alignment failure rate on the real LFW subset, YuNet/MTCNN agreement, and load
time + peak memory of a 6,000-pair insightface .bin built from real aligned LFW faces.

    python benchmarks/bench_datasets.py [--lfw ../shared/data/lfw] [--work DIR] [--mtcnn-n 300] [--write]

--write replaces the "## Datasets" section of benchmarks/RESULTS.md with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def align_all(lfw: Path, out: Path, workers: int) -> dict:
    from fiqa_bench.align import align_folder

    t = time.perf_counter()
    s = align_folder(lfw / "images", out, detector="yunet", workers=workers, progress=False)
    return {
        "n_images": s.n_images,
        "no_face": s.n_no_face,
        "undecodable": s.n_undecodable,
        "several_faces": s.n_several_faces,
        "failure_rate": s.failure_rate,
        "seconds": time.perf_counter() - t,
        "no_face_files": s.no_face,
    }


def mtcnn_agreement(lfw: Path, n: int) -> dict:
    """Landmarks of YuNet vs MTCNN on n images (every k-th image): distance per landmark / inter-ocular."""
    import torch

    from fiqa_bench.align import make_detector
    from fiqa_bench.faces import pick_face, read_rgb

    torch.set_num_threads(2)
    paths = sorted((lfw / "images").rglob("*.jpg"))
    step = max(1, len(paths) // n)
    paths = paths[::step][:n]
    yunet, mtcnn = make_detector("yunet"), make_detector("mtcnn")
    errs, miss_y, miss_m, both = [], 0, 0, 0
    t_y = t_m = 0.0
    for p in paths:
        rgb = read_rgb(p)
        t = time.perf_counter()
        dy = pick_face(yunet.detect(rgb), rgb.shape)
        t_y += time.perf_counter() - t
        t = time.perf_counter()
        dm = pick_face(mtcnn.detect(rgb), rgb.shape)
        t_m += time.perf_counter() - t
        miss_y += dy is None
        miss_m += dm is None
        if dy is None or dm is None:
            continue
        both += 1
        iod = float(np.linalg.norm(dy.landmarks[0] - dy.landmarks[1]))
        errs.append(np.linalg.norm(dy.landmarks - dm.landmarks, axis=1).mean() / iod)
    e = np.array(errs)
    return {
        "n": len(paths),
        "both_found": both,
        "yunet_no_face": miss_y,
        "mtcnn_no_face": miss_m,
        "median_nme": float(np.median(e)),
        "p95_nme": float(np.percentile(e, 95)),
        "within_10pct": float((e < 0.10).mean()),
        "within_20pct": float((e < 0.20).mean()),
        "yunet_ms": 1000 * t_y / len(paths),
        "mtcnn_ms": 1000 * t_m / len(paths),
    }


def build_bin(aligned: Path, lfw: Path, out: Path, n_pairs: int, distinct: bool, seed: int = 0) -> dict:
    """A 6,000-pair .bin in the published (Python 2, protocol 2) byte format from the aligned JPEGs."""
    from fiqa_bench.datasets.insightface_bin import save_insightface_bin

    people: dict[str, list[Path]] = {}
    for p in sorted(aligned.rglob("*.jpg")):
        people.setdefault(p.parent.name, []).append(p)
    multi = [k for k, v in people.items() if len(v) >= 2]
    names = sorted(people)
    rng = random.Random(seed)
    half = n_pairs // 2
    gen: set[tuple[Path, Path]] = set()
    while len(gen) < half:
        k = rng.choice(multi)
        a, b = rng.sample(people[k], 2)
        gen.add((a, b))
    imp: set[tuple[Path, Path]] = set()
    while len(imp) < n_pairs - half:
        k1, k2 = rng.sample(names, 2)
        imp.add((rng.choice(people[k1]), rng.choice(people[k2])))
    pairs = [(a, b, True) for a, b in sorted(gen)] + [(a, b, False) for a, b in sorted(imp)]
    rng.shuffle(pairs)
    cache: dict[Path, bytes] = {}
    bins, issame = [], []
    for i, (a, b, g) in enumerate(pairs):
        for j, p in enumerate((a, b)):
            blob = cache.setdefault(p, p.read_bytes())
            # distinct=True: every entry different bytes (trailing bytes after the JPEG end marker,
            # ignored by decoders), so nothing can be deduplicated - like a real AgeDB/CFP file.
            bins.append(blob + f"#{2 * i + j}".encode() if distinct else blob)
        issame.append(g)
    save_insightface_bin(out, bins, issame)
    return {"n_pairs": len(pairs), "file_mb": out.stat().st_size / 2**20, "unique_sources": len(cache)}


CHILD = r"""
import json, sys, time
import fiqa_bench, fiqa_bench.datasets.insightface_bin as ib

def mem(key):  # /proc/self/status, per process image (ru_maxrss would carry the parent's peak over exec)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
base = mem("VmRSS")
t = time.perf_counter()
data = ib.load_insightface_bin(sys.argv[1], "agedb_30", progress=False, workers=int(sys.argv[2]))
t_load = time.perf_counter() - t
peak_load, rss_load = mem("VmHWM"), mem("VmRSS")
t = time.perf_counter()
for s in range(0, len(data.faces), 256):
    data.faces.batch(range(s, min(s + 256, len(data.faces))))
t_decode = time.perf_counter() - t
print(json.dumps({"load_s": t_load, "decode_all_s": t_decode, "n_images": len(data.faces), "n_pairs": len(data.pairs),
                  "rss_before_mb": base, "peak_after_load_mb": peak_load, "rss_after_load_mb": rss_load,
                  "peak_after_decode_mb": mem("VmHWM")}))
"""


def measure_load(path: Path, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(workers)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def section(r: dict) -> str:
    a, m, lb = r["align"], r.get("mtcnn"), r["loads"]
    lines = [
        "## Datasets",
        "",
        f"Measured {r['date']} on this project's CPU machine ({os.cpu_count()} cores, shared with other jobs; load "
        f"average {r['load']:.1f} at the start), by `python benchmarks/bench_datasets.py --write`. Times scale with "
        "the machine's load; memory does not.",
        "",
        "### Alignment failure rate, real LFW subset (`../shared/data/lfw`, YuNet, `fiqa-bench align`)",
        "",
        f"- {a['n_images']} images: **{a['no_face']} with no face found ({100 * a['failure_rate']:.2f}%)**, "
        f"{a['undecodable']} undecodable, {a['several_faces']} with several faces (largest/most central used); "
        f"{a['seconds']:.1f} s with 2 threads ({1000 * a['seconds'] / a['n_images']:.1f} ms/image).",
    ]
    if a["no_face_files"]:
        lines.append(
            f"- No face: {', '.join(a['no_face_files'][:12])}{' ...' if len(a['no_face_files']) > 12 else ''}"
        )
    if m:
        lines += [
            "",
            f"### YuNet vs MTCNN (facenet-pytorch) landmarks, {m['n']} LFW images (every k-th)",
            "",
            f"- Both found a face on {m['both_found']}; no face: YuNet {m['yunet_no_face']}, MTCNN {m['mtcnn_no_face']}.",
            f"- Mean landmark distance / inter-ocular distance: median {m['median_nme']:.3f}, 95th percentile "
            f"{m['p95_nme']:.3f}; {100 * m['within_10pct']:.1f}% of faces within 0.10, {100 * m['within_20pct']:.1f}% within 0.20.",
            f"- Detection time per 250x250 image: YuNet {m['yunet_ms']:.1f} ms, MTCNN {m['mtcnn_ms']:.1f} ms.",
        ]
    lines += [
        "",
        "### Loading a 6,000-pair insightface `.bin` built from real aligned LFW faces",
        "",
        "Published byte format (Python 2 pickle, protocol 2, JPEG q95 bytes); load = restricted unpickling, "
        "structure/count checks, de-duplication, decoding every unique image once to validate it. Memory from "
        "/proc/self/status of a fresh process: RSS after `import fiqa_bench` (before), peak (VmHWM) during the "
        "load, RSS held afterwards; the increase over 'before' is what the loaded set costs.",
        "",
        "| variant | file MB | unique images | load s | RSS before MB | peak RSS during load MB | RSS after load MB | decode all images s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in lb.items():
        lines.append(
            f"| {name} | {v['file_mb']:.1f} | {v['n_images']} | {v['load_s']:.2f} | {v['rss_before_mb']:.0f} | "
            f"{v['peak_after_load_mb']:.0f} | {v['rss_after_load_mb']:.0f} | {v['decode_all_s']:.2f} |"
        )
    lines += [
        "",
        "Reading it: the load is dominated by decoding every unique image once to validate it (an undecodable "
        "image is reported before any scoring starts); the file's bytes stay in memory (about the file size) "
        "and faces are decoded again when scored. A real AgeDB-30/CALFW/CPLFW file has close to 12,000 distinct "
        "images, so the second row is the realistic one.",
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    path = REPO / "benchmarks" / "RESULTS.md"
    old = path.read_text() if path.is_file() else "# Benchmark results\n\n"
    start = old.find("## Datasets")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + 1)
        new = old[:start] + text + (old[end + 1 :] if end >= 0 else "")
    path.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"))
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--mtcnn-n", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    lfw = Path(args.lfw)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        aligned = work / "aligned"
        r: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg()[0]}
        r["align"] = align_all(lfw, aligned, args.workers)
        print(json.dumps({k: v for k, v in r["align"].items() if k != "no_face_files"}), flush=True)
        if args.mtcnn_n:
            r["mtcnn"] = mtcnn_agreement(lfw, args.mtcnn_n)
            print(json.dumps(r["mtcnn"]), flush=True)
        r["loads"] = {}
        for distinct in (False, True):
            name = (
                "12,000 distinct blobs (no dedup, like a real file)"
                if distinct
                else "LFW bytes reused (dedup to unique images)"
            )
            path = work / f"agedb_30{'_distinct' if distinct else ''}.bin"
            info = build_bin(aligned, lfw, path, 6000, distinct)
            res = measure_load(path, args.workers)
            r["loads"][name] = {**info, **res}
            print(name, json.dumps(r["loads"][name]), flush=True)
        text = section(r)
        print(text)
        if args.write:
            write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
