"""Training datasets (RecordIO, identity-per-folder images, synthetic) and a resumable sampler.

Every dataset returns (image CHW float32 in [-1, 1] = (x/255 - 0.5)/0.5, RGB, class label int64).
Augmentation is the paper's horizontal flip. The flip decision comes from the sampler, which yields
(index, flip) pairs drawn from a generator seeded by (seed, epoch, rank): the data stream is a pure
function of the seed and the position in the epoch, so ``--resume`` replays it exactly, whatever the
number of DataLoader workers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from fiqa_bench.errors import DataFormatError, MissingDataError
from fiqa_bench.input_checks import decode_checked, read_image_file

from .recordio import RecordIOReader

STORED_SIZE = 112  # aligned faces on disk; ``image_size`` below 112 downsizes them for smoke runs
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def to_tensor(rgb: np.ndarray, flip: bool, size: int = 112) -> torch.Tensor:
    if size != rgb.shape[0]:  # smoke runs on small inputs only; real training keeps 112
        import cv2

        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    if flip:
        rgb = rgb[:, ::-1]
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
    return x.div_(255.0).sub_(0.5).div_(0.5)


def _split(item: int | tuple[int, bool]) -> tuple[int, bool]:
    if isinstance(item, tuple):
        return int(item[0]), bool(item[1])
    return int(item), False


T = TypeVar("T")


class RecordIOFaceDataset(Dataset):
    """insightface ``train.rec``/``train.idx``: images are keys 1..label0-1 of the meta record 0."""

    def __init__(self, root: str | Path, image_size: int = 112) -> None:
        root = Path(root)
        rec = root / "train.rec" if root.is_dir() else root
        self.reader = RecordIOReader(rec, rec.with_suffix(".idx"))
        self.image_size = image_size
        head, _ = self.reader.unpack(0) if 0 in self.reader else (None, b"")
        if head is not None and head.flag > 0:
            end = int(head.label[0])
            self.keys = np.arange(1, end, dtype=np.int64)
            ident_end = int(head.label[1]) if head.flag > 1 else end
            n_ident = ident_end - end
        else:
            self.keys = np.sort(self.reader.keys)
            n_ident = 0
        self.num_classes = self._num_classes(root if root.is_dir() else rec.parent, n_ident)

    def _num_classes(self, folder: Path, n_ident: int) -> int:
        prop = folder / "property"
        if prop.is_file():
            try:
                n = int(prop.read_text().split(",")[0])
            except ValueError:
                raise DataFormatError(
                    prop, "expected 'num_classes,height,width'", "rewrite the property file"
                ) from None
            if n < max(n_ident, 1):
                raise DataFormatError(
                    prop,
                    f"says {n} classes but {self.reader.rec_path.name} holds {n_ident} identity records",
                    f"write {n_ident} as its first number (or delete it: the count is then read from the data)",
                )
            return n
        if n_ident > 0:
            return n_ident
        # No metadata: read every header once (slow for millions of images, exact).
        return int(max(self.reader.header(int(k)).first_label for k in self.keys)) + 1

    def __len__(self) -> int:
        return len(self.keys)

    def label(self, index: int) -> int:
        return int(self.reader.header(int(self.keys[index])).first_label)

    def __getitem__(self, item: int | tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = _split(item)
        key = int(self.keys[index])
        header, data = self.reader.unpack(key)
        rgb, why = decode_checked(data)
        if rgb is None:
            raise DataFormatError(
                self.reader.rec_path,
                f"record key {key} holds no decodable image: it {why}",
                "pack the set again",
            )
        if rgb.shape[:2] != (STORED_SIZE, STORED_SIZE):
            raise DataFormatError(
                self.reader.rec_path,
                f"record key {key} is {rgb.shape[1]}x{rgb.shape[0]}, expected "
                f"{STORED_SIZE}x{STORED_SIZE} aligned faces",
                "pack aligned faces (fiqa-bench pack --align)",
            )
        return to_tensor(rgb, flip, self.image_size), int(header.first_label)


class FolderFaceDataset(Dataset):
    """``root/<identity>/<image>``: one folder per identity (sorted names -> labels 0..C-1), aligned 112x112."""

    def __init__(self, root: str | Path, image_size: int = 112) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingDataError(
                "training image folder", self.root, "pass a folder with one sub-folder per identity"
            )
        self.image_size = image_size
        self.paths: list[Path] = []
        self.labels: list[int] = []
        classes = sorted(p for p in self.root.iterdir() if p.is_dir())
        for label, folder in enumerate(classes):
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() in IMAGE_EXTENSIONS:
                    self.paths.append(p)
                    self.labels.append(label)
        if not self.paths:
            raise DataFormatError(
                self.root, "no images in identity sub-folders", "use root/<identity>/<image>.jpg"
            )
        self.num_classes = len(classes)

    def __len__(self) -> int:
        return len(self.paths)

    def label(self, index: int) -> int:
        return self.labels[index]

    def __getitem__(self, item: int | tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = _split(item)
        path = self.paths[index]
        rgb, why = read_image_file(path)
        if rgb is None:
            raise DataFormatError(path, why, "remove or replace the file")
        if rgb.shape[:2] != (STORED_SIZE, STORED_SIZE):
            raise DataFormatError(
                path,
                f"image is {rgb.shape[1]}x{rgb.shape[0]}, expected {STORED_SIZE}x{STORED_SIZE}",
                "align the faces first (fiqa-bench align, or pack --align)",
            )
        return to_tensor(rgb, flip, self.image_size), self.labels[index]


class SyntheticFaceDataset(Dataset):
    """Random images with a class-dependent pattern (learnable), a pure function of (seed, index)."""

    def __init__(
        self, num_images: int = 512, num_classes: int = 16, image_size: int = 112, seed: int = 0
    ) -> None:
        self.num_images, self.num_classes, self.image_size, self.seed = (
            num_images,
            num_classes,
            image_size,
            seed,
        )
        rng = np.random.default_rng(seed)
        self._prototypes = rng.integers(0, 256, (num_classes, image_size, image_size, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return self.num_images

    def label(self, index: int) -> int:
        return index % self.num_classes

    def __getitem__(self, item: int | tuple[int, bool]) -> tuple[torch.Tensor, int]:
        index, flip = _split(item)
        label = index % self.num_classes
        rng = np.random.default_rng((self.seed, index))
        noise = rng.normal(0, 40, self._prototypes[label].shape)
        rgb = np.clip(self._prototypes[label] + noise, 0, 255).astype(np.uint8)
        return to_tensor(rgb, flip, self.image_size), label


def build_dataset(data: str, image_size: int = 112, seed: int = 0) -> Dataset:
    """``synthetic[:N[:C]]``, a folder with train.rec, a .rec file, or an identity-per-folder tree."""
    if data.startswith("synthetic"):
        parts = data.split(":")
        n = int(parts[1]) if len(parts) > 1 else 512
        c = int(parts[2]) if len(parts) > 2 else 16
        return SyntheticFaceDataset(n, c, image_size, seed)
    path = Path(data)
    if path.suffix == ".rec" or (path / "train.rec").is_file():
        return RecordIOFaceDataset(path, image_size)
    if path.is_dir():
        return FolderFaceDataset(path, image_size)
    raise MissingDataError(
        "training data", path, "pass a folder with train.rec/train.idx, an image tree or synthetic:N:C"
    )


class FlipSampler(DistributedSampler):
    """DistributedSampler yielding (index, flip) and able to start mid-epoch (for exact resume)."""

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        flip: bool = True,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.flip = flip
        self.start = 0  # samples of this epoch already consumed on this rank

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        indices = list(super().__iter__())
        g = torch.Generator()
        g.manual_seed(int(self.seed) * 1_000_003 + int(self.epoch) * 1009 + int(self.rank) + 1)
        flips = (
            (torch.rand(len(indices), generator=g) < 0.5).tolist() if self.flip else [False] * len(indices)
        )
        return iter(list(zip(indices, flips, strict=True))[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


def batches_per_epoch(n: int, world_size: int, batch_size: int) -> int:
    """As DistributedSampler (padded to a multiple of world size) + DataLoader(drop_last=True)."""
    return math.ceil(n / world_size) // batch_size


def data_fingerprint(data: str) -> str:
    """sha256 (hex, 20 chars) identifying the training data, recorded in every checkpoint sidecar.

    RecordIO: the whole ``train.idx`` (keys and offsets), ``property`` when present, the ``train.rec``
    size and sixteen 64 KiB blocks at evenly spaced offsets of it (reading all of MS1MV2's ~30 GB for a
    fingerprint would take minutes). Image folders: every relative path with its size. ``synthetic:...``:
    the string itself.
    """
    import hashlib

    h = hashlib.sha256()
    if data.startswith("synthetic"):
        h.update(data.encode())
        return h.hexdigest()[:20]
    path = Path(data)
    rec = path if path.suffix == ".rec" else path / "train.rec"
    if rec.is_file():
        h.update(b"recordio\0")
        h.update(rec.with_suffix(".idx").read_bytes())
        prop = rec.parent / "property"
        if prop.is_file():
            h.update(prop.read_bytes())
        size = rec.stat().st_size
        h.update(str(size).encode())
        block = 1 << 16
        with open(rec, "rb") as f:
            for i in range(16):
                f.seek(max(0, (size - block) * i // 15))
                h.update(f.read(block))
        return h.hexdigest()[:20]
    h.update(b"folder\0")
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            h.update(f"{p.relative_to(path).as_posix()}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()[:20]


def worker_errors(loader: Iterable[T]) -> Iterator[T]:
    """Iterate a DataLoader, turning a user error raised in a worker process back into one line.

    PyTorch re-raises a worker's exception as ``RuntimeError("Caught DataFormatError in DataLoader worker
    process 0. Original Traceback ...")`` when the exception cannot be rebuilt from one string (ours take
    path, problem, fix): the user would see two tracebacks instead of the file and the fix. Raises
    FiqaError with the original one-line message; any other error passes through unchanged."""
    import re

    from fiqa_bench import errors

    it = iter(loader)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except RuntimeError as exc:
            text = str(exc)
            m = re.match(r"Caught (\w+) in DataLoader worker", text)
            cls = getattr(errors, m.group(1), None) if m else None
            if not (isinstance(cls, type) and issubclass(cls, errors.FiqaError)):
                raise
            last = text.rstrip().splitlines()[-1]
            raise errors.FiqaError(
                last.split(": ", 1)[1] if last.startswith("fiqa_bench.errors.") else last
            ) from None
        yield item
