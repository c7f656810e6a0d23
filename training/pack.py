"""``fiqa-bench pack FOLDER OUT``: identity-per-folder images -> OUT/train.rec, train.idx, property.

Identities are the sub-folders of FOLDER in sorted order (labels 0..C-1). Images should already be
aligned 112x112 faces; ``--align`` detects (YuNet) and warps unaligned ones, counting those without a
face (they are listed in OUT/pack_skipped.txt, never silently dropped). Images are stored re-encoded
(JPEG by default, as insightface's sets; ``--format png`` is lossless) in RGB order once decoded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="image tree: FOLDER/<identity>/<image>")
    p.add_argument("out", help="output folder for train.rec, train.idx and property")
    p.add_argument(
        "--align",
        action="store_true",
        help="detect and align faces (YuNet) instead of expecting 112x112 crops",
    )
    p.add_argument("--format", choices=["jpg", "png"], default="jpg", help="stored encoding (default: jpg)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
    p.add_argument(
        "--min-images", type=int, default=1, help="skip identities with fewer usable images (default: 1)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out empty or undecodable images (listed in OUT/pack_skipped.txt) instead of stopping",
    )


def encode(rgb, fmt: str = "jpg", quality: int = 95) -> bytes:  # noqa: ANN001 - numpy array
    import cv2
    import numpy as np

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpg" else []
    ok, buf = cv2.imencode(f".{fmt}", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise ValueError(f"could not encode an image as {fmt}")
    return buf.tobytes()


def pack_folder(
    folder: str | Path,
    out: str | Path,
    *,
    align: bool = False,
    fmt: str = "jpg",
    quality: int = 95,
    min_images: int = 1,
    progress: bool = True,
    skip_bad: bool = False,
) -> dict[str, int]:
    """Pack the tree; returns counts (images, classes, skipped). An empty, unreadable or undecodable
    image raises DataFormatError naming it, unless ``skip_bad`` (then it is listed in pack_skipped.txt)."""
    from tqdm import tqdm

    from fiqa_bench.errors import DataFormatError, MissingDataError
    from fiqa_bench.faces import YuNetDetector
    from fiqa_bench.faces import align as align_face
    from fiqa_bench.input_checks import read_image_file

    from .recordio import write_insightface_rec

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise MissingDataError("image folder", folder, "pass a folder with one sub-folder per identity")
    identities = sorted(p for p in folder.iterdir() if p.is_dir())
    files = [
        (ident, sorted(f for f in ident.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS))
        for ident in identities
    ]
    total = sum(len(f) for _, f in files)
    if total == 0:
        raise DataFormatError(
            folder, "no images in identity sub-folders", "use FOLDER/<identity>/<image>.jpg"
        )
    detector = YuNetDetector() if align else None
    samples: list[tuple[int, bytes]] = []
    skipped: list[str] = []
    names: list[str] = []
    bar = tqdm(total=total, disable=not progress, unit="img", desc="pack")
    for ident, paths in files:
        encoded = []
        for path in paths:
            bar.update(1)
            rgb, why = read_image_file(path)
            if rgb is None:
                if not skip_bad:
                    raise DataFormatError(
                        path,
                        why,
                        "replace or remove the image, or pass --skip-bad to leave it out (listed in pack_skipped.txt)",
                    )
                skipped.append(f"{path}\tundecodable: {why}")
                continue
            if detector is not None:
                rgb, _ = align_face(rgb, detector)
                if rgb is None:
                    skipped.append(f"{path}\tno face found")
                    continue
            elif rgb.shape[:2] != (112, 112):
                raise DataFormatError(
                    path,
                    f"image is {rgb.shape[1]}x{rgb.shape[0]}, not an aligned 112x112 face",
                    "pass --align to detect and align faces",
                )
            encoded.append(encode(rgb, fmt, quality))
        if len(encoded) < min_images:
            skipped.append(
                f"{ident}\tidentity with {len(encoded)} usable images (< --min-images {min_images})"
            )
            continue
        label = len(names)
        names.append(ident.name)
        samples.extend((label, data) for data in encoded)
    bar.close()
    if not samples:
        raise DataFormatError(folder, "no usable images to pack", "check the images (or use --align)")
    counts = write_insightface_rec(out, samples, num_classes=len(names))
    (out / "identities.txt").write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(names)))
    (out / "pack_skipped.txt").write_text("".join(s + "\n" for s in skipped))
    return {**counts, "skipped": len(skipped)}


def main(args: argparse.Namespace) -> int:
    counts = pack_folder(
        args.folder,
        args.out,
        align=args.align,
        fmt=args.format,
        quality=args.quality,
        min_images=args.min_images,
        progress=not args.quiet,
        skip_bad=args.skip_bad,
    )
    print(
        f"packed {counts['images']} images of {counts['classes']} identities into {args.out}/train.rec "
        f"(+ train.idx, property); skipped {counts['skipped']} (listed in {args.out}/pack_skipped.txt)"
    )
    return 0
