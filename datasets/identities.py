"""All-pairs protocols on identity-labelled image sets: ``identities:PATH`` (any identity-per-folder tree)
and ``adience`` (the published Adience layout).

The protocol (SER-FIQ: Terhörst et al., "SER-FIQ: Unsupervised Estimation of Face Image Quality Based on
Stochastic Embedding Robustness", CVPR 2020, section 4.1, which evaluates Adience, LFW and ColorFeret
this way): every image is compared with every other image; a comparison of two images of one identity
is a genuine (mated) pair, of two identities an impostor (non-mated) pair. Every genuine pair is used;
impostor pairs are all used, or a seeded uniform sample without replacement (``max_impostors=K``)
when all of them would be too many. The counts (images, identities, genuine, impostor, all impostors
available, sample size and seed) are stored in the dataset's ``info`` and so in run.json and the report.

Pair order (and so every pair index) is canonical: images sorted by (identity, file name), pairs
(a, b) with a < b in lexicographic order. A sample is drawn as
``numpy.random.default_rng(seed).choice(M, K, replace=False)`` over the M impostor pairs in that
order, then sorted; the same seed and tree give the same pairs (NumPy documents that its Generator
streams may change between NumPy versions; the NumPy version is recorded in ``info``).

Folds (for verification accuracy with held-out thresholds): identities in sorted order are cut into 10
contiguous blocks (fewer with fewer than 10 identities), and a pair belongs to the block of its first
image's identity, so the genuine pairs of one identity never fall into two folds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import DataFormatError, FiqaError, MissingDataError
from fiqa_bench.registry import Card, Option, register_dataset
from fiqa_bench.types import BuildContext, Dataset, DatasetStatus, LoadedDataset, Skipped

from ._common import (
    DETECTOR_OPTION,
    N_FOLDS,
    NO_FACE_OPTION,
    WORKERS_OPTION,
    ImageTable,
    aligned_option,
    assemble,
    parse_aligned,
    prepare_faces,
    read_bytes,
)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Above this many impostor pairs a run must choose a sample: the pair arrays alone take ~17 bytes a pair.
ALL_IMPOSTORS_LIMIT = 50_000_000
COMMON_OPTIONS = (
    Option("max_impostors", "all", "all | K: a seeded uniform sample of K impostor pairs", parse=str),
    Option("max_genuine", "all", "all | K: a seeded uniform sample of K genuine pairs", parse=str),
    Option("seed", 0, "integer seed of the samples"),
    Option("min_images", 1, "identities with fewer images are left out (counted)"),
    aligned_option("auto"),
    DETECTOR_OPTION,
    NO_FACE_OPTION,
    WORKERS_OPTION,
)
OPTION_HELP = (
    "max_impostors=all|K (a seeded uniform sample of K impostor pairs), max_genuine=all|K, seed=0, "
    "min_images=1 (identities with fewer images are left out, counted), aligned=auto|true|false, "
    "detector=yunet|mtcnn, no_face=mean_landmarks|drop, workers."
)


# -- pair enumeration (pure NumPy; the protocol's one rule) -------------------------------------------


@dataclass(frozen=True)
class AllPairs:
    """Genuine and impostor pairs of images grouped by identity.

    ``a``, ``b``: int64 image indices with a < b; ``genuine``: bool; ``n_*``: counts before and after
    sampling."""

    a: np.ndarray
    b: np.ndarray
    genuine: np.ndarray
    n_genuine_all: int
    n_impostor_all: int


def _cap(value: Any, what: str) -> int | None:
    """'all' / None / 0 -> None (no cap); a positive integer -> that integer."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("all", "", "none")):
        return None
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise FiqaError(f"identities: option {what}={value!r} must be 'all' or a positive integer.") from None
    if k < 0:
        raise FiqaError(f"identities: option {what}={value!r} must be 'all' or a positive integer.")
    return k or None


def _sample(rng: np.random.Generator, population: int, k: int | None) -> np.ndarray | None:
    """Sorted indices of a uniform sample without replacement, or None when every item is kept."""
    if k is None or k >= population:
        return None
    return np.sort(rng.choice(population, size=k, replace=False))


def enumerate_pairs(
    group_sizes: np.ndarray,
    *,
    max_genuine: int | None = None,
    max_impostors: int | None = None,
    seed: int = 0,
) -> AllPairs:
    """Every genuine pair and every (or a seeded sample of) impostor pair of images stored grouped by
    identity: group g holds images ``offsets[g] .. offsets[g] + group_sizes[g] - 1``.

    Counts: genuine = sum_g C(n_g, 2); impostor = C(N, 2) - genuine. Raises FiqaError when all
    impostor pairs are asked for and there are more than ``ALL_IMPOSTORS_LIMIT``.
    """
    sizes = np.asarray(group_sizes, np.int64)
    n = int(sizes.sum())
    ends = np.cumsum(sizes)
    starts = ends - sizes
    n_gen = int((sizes * (sizes - 1) // 2).sum())
    n_imp = n * (n - 1) // 2 - n_gen
    rng = np.random.default_rng(seed)
    # Genuine: the upper triangle of each identity's block, in (a, b) order.
    ga, gb = [], []
    for s, k in zip(starts.tolist(), sizes.tolist(), strict=True):
        if k > 1:
            i, j = np.triu_indices(k, 1)
            ga.append(i + s)
            gb.append(j + s)
    gen_a = np.concatenate(ga) if ga else np.zeros(0, np.int64)
    gen_b = np.concatenate(gb) if gb else np.zeros(0, np.int64)
    keep = _sample(rng, n_gen, max_genuine)
    if keep is not None:
        gen_a, gen_b = gen_a[keep], gen_b[keep]
    # Impostor: image i (identity ending at e) pairs with every j >= e; linear index over (i, j) order.
    end_of = np.repeat(ends, sizes)  # per image: one past its identity's last image
    per_image = n - end_of
    first = np.cumsum(per_image) - per_image  # linear index of image i's first impostor pair
    pick = _sample(rng, n_imp, max_impostors)
    if pick is None:
        if n_imp > ALL_IMPOSTORS_LIMIT:
            raise FiqaError(
                f"identities: all {n_imp:,} impostor pairs are too many to evaluate at once; "
                f"set a seeded sample with --set NAME.max_impostors=K (e.g. 10000000)."
            )
        pick = np.arange(n_imp, dtype=np.int64)
    imp_a = np.searchsorted(first, pick, side="right") - 1
    imp_b = end_of[imp_a] + (pick - first[imp_a])
    a = np.concatenate([gen_a, imp_a]).astype(np.int64)
    b = np.concatenate([gen_b, imp_b]).astype(np.int64)
    genuine = np.concatenate([np.ones(len(gen_a), bool), np.zeros(len(imp_a), bool)])
    order = np.lexsort((b, a))
    return AllPairs(a[order], b[order], genuine[order], n_gen, n_imp)


def identity_folds(group_sizes: np.ndarray, a: np.ndarray, k: int = N_FOLDS) -> np.ndarray:
    """int16 fold per pair: identities (in stored order) cut into ``min(k, #identities)`` contiguous
    blocks; a pair takes the block of its first image's identity."""
    sizes = np.asarray(group_sizes, np.int64)
    n_id = len(sizes)
    identity = np.repeat(np.arange(n_id), sizes)
    return (identity[np.asarray(a, np.int64)] * min(k, n_id) // max(n_id, 1)).astype(np.int16)


# -- reading a tree -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledImage:
    identity: str
    path: Path
    image_id: str  # stable id, e.g. "<identity>/<file>"


def identity_folders(root: Path) -> list[LabelledImage]:
    """Images directly inside each first-level folder of ``root``; the folder name is the identity.
    Hidden files and files with other suffixes are ignored. Sorted by (identity, file name)."""
    out: list[LabelledImage] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                out.append(LabelledImage(folder.name, f, f"{folder.name}/{f.name}"))
    return out


class AllPairsDataset(Dataset):
    """Base of the all-pairs datasets: subclasses list the labelled images; this class counts, samples
    and loads them on the shared dataset machinery."""

    label = "identities"

    def images(self) -> list[LabelledImage]:
        raise NotImplementedError

    def where(self) -> Path:
        raise NotImplementedError

    def _grouped(self) -> tuple[list[LabelledImage], np.ndarray, int]:
        """Images of kept identities (grouped, sorted), group sizes, identities left out by min_images."""
        images = sorted(self.images(), key=lambda im: (im.identity, im.image_id))
        try:
            min_images = int(self.options.get("min_images", 1))
        except (TypeError, ValueError):
            raise FiqaError(f"{self.label}: option min_images must be an integer.") from None
        runs: list[list[LabelledImage]] = []
        for im in images:
            if runs and runs[-1][0].identity == im.identity:
                runs[-1].append(im)
            else:
                runs.append([im])
        kept = [run for run in runs if len(run) >= min_images]
        return (
            [im for run in kept for im in run],
            np.array([len(r) for r in kept], np.int64),
            len(runs) - len(kept),
        )

    def _pairs(self, sizes: np.ndarray) -> AllPairs:
        o = self.options
        try:
            seed = int(o.get("seed", 0))
        except (TypeError, ValueError):
            raise FiqaError(f"{self.label}: option seed must be an integer.") from None
        return enumerate_pairs(
            sizes,
            max_genuine=_cap(o.get("max_genuine"), "max_genuine"),
            max_impostors=_cap(o.get("max_impostors"), "max_impostors"),
            seed=seed,
        )

    def status(self) -> DatasetStatus:
        if not self.where().is_dir():
            return DatasetStatus(False, f"{self.where()} is not a folder")
        try:
            images, sizes, _ = self._grouped()
            pairs = self._pairs(sizes)
        except FiqaError as exc:
            return DatasetStatus(False, str(exc))
        return DatasetStatus(
            True, f"{len(images)} images of {len(sizes)} identities in {self.where()}", len(pairs.a)
        )

    def check_settings(self) -> None:
        """Option values, checked before any file is read (one-line errors)."""
        o = self.options
        _cap(o.get("max_genuine"), "max_genuine")
        _cap(o.get("max_impostors"), "max_impostors")
        for key in ("seed", "min_images", "workers"):
            try:
                int(o.get(key, 0))
            except (TypeError, ValueError):
                raise FiqaError(f"{self.label}: option {key}={o.get(key)!r} must be an integer.") from None

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        self.check_settings()
        root = self.where()
        if not root.is_dir():
            raise MissingDataError(self.label, root, self.missing_hint())
        images, sizes, n_small = self._grouped()
        if len(images) < 2:
            raise DataFormatError(
                root, f"holds {len(images)} usable image(s) in identity folders", self.missing_hint()
            )
        if int((sizes > 1).sum()) == 0:
            raise DataFormatError(
                root,
                "has no identity with two or more images, so no genuine pair",
                "add images or check the layout",
            )
        pairs = self._pairs(sizes)
        table = ImageTable()
        skipped: list[Skipped] = []
        for im in images:
            # An unreadable file is judged with the undecodable ones: an error, or a counted skip.
            table.add(
                im.image_id, read_bytes(im.path), str(im.path), "cannot be read (check its permissions)"
            )
        o = self.options
        try:
            workers = int(o.get("workers", 2))
        except (TypeError, ValueError):
            raise FiqaError(f"{self.label}: option workers must be an integer.") from None
        prepared = prepare_faces(
            self.label,
            table,
            aligned=parse_aligned(o.get("aligned", "auto"), self.label),
            skip_bad=skip_bad,
            progress=progress,
            workers=workers,
            detector=str(o.get("detector", "yunet")),
            no_face=str(o.get("no_face", "mean_landmarks")),
            cache_dir=self.cache_dir,
        )
        n_sampled_imp = int((~pairs.genuine).sum())
        info = {
            "protocol": "all genuine pairs + "
            + (
                "all impostor pairs"
                if n_sampled_imp == pairs.n_impostor_all
                else f"a seeded sample of {n_sampled_imp:,} of {pairs.n_impostor_all:,} impostor pairs (seed {o.get('seed', 0)})"
            ),
            "n_images_listed": len(images),
            "n_identities": len(sizes),
            "identities_left_out_min_images": n_small,
            "n_genuine_all": pairs.n_genuine_all,
            "n_impostor_all": pairs.n_impostor_all,
            "n_genuine_used": int(pairs.genuine.sum()),
            "n_impostor_used": n_sampled_imp,
            "seed": o.get("seed", 0),
            "numpy": np.__version__,
        }
        state = "aligned" if prepared.aligned else f"aligned on the fly with {prepared.info.get('detector')}"
        return assemble(
            self.label,
            prepared,
            pairs.a,
            pairs.b,
            pairs.genuine,
            identity_folds(sizes, pairs.a),
            _PairNames(table.ids, pairs.a, pairs.b),
            source=f"{self.label}: {len(images)} images of {len(sizes)} identities in {root} ({state}; {info['protocol']})",
            fingerprint=hashlib.sha256(
                f"{prepared.fingerprint}|{info['protocol']}|{len(pairs.a)}".encode()
            ).hexdigest()[:16],
            skipped=skipped,
            info=info,
            progress=progress,
        )

    def missing_hint(self) -> str:
        return "point it at a folder with one sub-folder of images per identity"


class _PairNames:
    """Lazy 'id_a vs id_b' labels for messages (millions of pairs: never built as a list)."""

    def __init__(self, ids: list[str], a: np.ndarray, b: np.ndarray) -> None:
        self.ids, self.a, self.b = ids, a, b

    def __getitem__(self, k: int) -> str:
        return f"{self.ids[int(self.a[k])]} vs {self.ids[int(self.b[k])]}"

    def __len__(self) -> int:
        return len(self.a)


# -- identities:PATH -----------------------------------------------------------------------------------

IDENTITIES_CARD = Card(
    name="identities",
    kind="dataset",
    summary="any identity-per-folder tree: all genuine pairs + all (or a seeded sample of) impostor pairs",
    paper="all-pairs protocol as in Terhörst et al., SER-FIQ, CVPR 2020 (section 4.1)",
    licence="your data",
    normalisation="aligned=auto: 112x112 images used as aligned, others aligned on the fly (YuNet or MTCNN)",
    takes_argument=True,
    options=COMMON_OPTIONS,
    notes="Use as identities:/path/to/tree (one sub-folder of images per identity). Options: " + OPTION_HELP,
)


class IdentityTree(AllPairsDataset):
    card = IDENTITIES_CARD
    label = "identities"

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        argument = options.pop("argument", None)
        super().__init__(root, **options)
        self.tree = Path(argument).expanduser() if argument else self.root

    def where(self) -> Path:
        return self.tree

    def images(self) -> list[LabelledImage]:
        return identity_folders(self.tree)


@register_dataset(IDENTITIES_CARD)
def identities(ctx: BuildContext) -> IdentityTree:
    return IdentityTree(ctx.root, argument=ctx.argument, **ctx.options)


# -- Adience ---------------------------------------------------------------------------------------------

ADIENCE_FOLDERS = ("aligned", "faces")
ADIENCE_CARD = Card(
    name="adience",
    kind="dataset",
    summary="Adience (Eidinger et al.): all genuine pairs + all (or a seeded sample of) impostor pairs",
    paper="Eidinger, Enbar, Hassner, Age and Gender Estimation of Unfiltered Faces, IEEE TIFS 2014; "
    "all-pairs FIQA protocol as in SER-FIQ (CVPR 2020)",
    licence="Adience: research use under the dataset's own terms (see its project page)",
    normalisation="the published 'aligned' (landmark-aligned 816x816) or 'faces' release, re-aligned on the fly "
    "to the ArcFace 112x112 template with YuNet",
    options=(
        Option("images", "aligned", "which release: aligned | faces", choices=ADIENCE_FOLDERS),
        *COMMON_OPTIONS,
    ),
    notes=(
        "Layout under the data root: adience/aligned/<user_id>/landmark_aligned_face.<face_id>.<original>.jpg "
        "(or adience/faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original>.jpg with images=faces). "
        "Identity = <user_id>/<face_id> (Adience's face_id numbers the people within one user's album). "
        "Options: images=aligned|faces, " + OPTION_HELP
    ),
)


def adience_identity(user: str, file_name: str) -> str | None:
    """'<prefix>.<face_id>.<original>' inside folder <user> -> '<user>/<face_id>'; None when the name
    does not follow Adience's pattern."""
    parts = file_name.split(".")
    if len(parts) < 3 or not parts[1].isdigit() or not parts[0].endswith("_face"):
        return None
    return f"{user}/{parts[1]}"


class Adience(AllPairsDataset):
    card = ADIENCE_CARD
    label = "adience"

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        which = str(self.options["images"])
        if which not in ADIENCE_FOLDERS:
            raise FiqaError(f"adience: option images={which!r} must be one of {', '.join(ADIENCE_FOLDERS)}.")
        self.folder = self.root / "adience" / which

    def where(self) -> Path:
        return self.folder

    def missing_hint(self) -> str:
        return (
            f"unpack Adience's aligned.tar.gz (or faces.tar.gz with images=faces) into {self.folder.parent}; "
            "set the data root with --data-root or FIQA_BENCH_DATA"
        )

    def images(self) -> list[LabelledImage]:
        out = []
        for im in identity_folders(self.folder):
            ident = adience_identity(im.identity, im.path.name)
            if ident is not None:
                out.append(LabelledImage(ident, im.path, f"adience/{im.image_id}"))
        return out


@register_dataset(ADIENCE_CARD)
def adience(ctx: BuildContext) -> Adience:
    return Adience(ctx.root, **ctx.options)
