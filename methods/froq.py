"""FROQ: Face Recognition Observer of Quality (training-free; calibrated once per FR model).

Rules re-implemented from the authors' code (github.com/LSIbabnikz/FROQ, ``baselineFIQA/`` and
``observer/``, MIT) and paper (Babnik, Jain, Peer, Struc, IJCB 2025):

1. Pseudo-quality labels on a calibration set (the "auxiliary FIQA"): the mean of three cosine
   similarities between the embedding of an image and of perturbed copies - a horizontal flip; 10
   fixed Gaussian noise images mixed in as ``(1 - a) x + a n`` in the model's normalised input space
   (a = 1e-3); and an occlusion grid (112 // 14 = 8 x 8 = 64 copies, each with one 14 x 14 block set
   to black), averaged per component.
2. Utility of every module of the FR model (``named_modules()[1:]``, containers included): Spearman's
   rank correlation between the L2 norm of the module's flattened output and the pseudo labels.
3. Greedy set: the top-10 modules by utility; start with the best, then repeatedly add the module
   whose addition gives the highest Spearman correlation of the *mean* norm; keep the set prefix with
   the highest correlation (first maximum).
4. Score of an image: mean over the chosen modules of the L2 norm of their flattened output (one
   forward pass); higher = better quality.

Differences from the reference code, each deliberate: modules whose output is not a tensor or whose
utility is undefined (constant norms) are left out instead of being given random scores; the noise
images come from a seeded generator (the reference draws them unseeded); calibration runs in float32.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import FiqaError, MissingDataError, UnsupportedCombinationError
from fiqa_bench.registry import Card, Option, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _positive_int(value: Any) -> int:
    n = int(value)
    if n < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("must be a positive integer")
    return n


def _unit_interval(value: Any) -> float:
    x = float(value)
    if not 0.0 <= x <= 1.0:
        raise ValueError("must be in [0, 1] (the reference uses 1e-3)")
    return x


FROQ_CARD = Card(
    name="froq",
    kind="method",
    summary="FROQ: mean L2 norm of FR-model layer outputs; layers chosen on a calibration set (calibration=DIR) with perturbation pseudo-labels",
    aliases=("froq_observer",),
    paper="Babnik, Jain, Peer, Struc, FROQ: Observing Face Recognition Models for Efficient Quality Assessment, IJCB 2025 (arXiv:2509.17689)",
    licence="Apache-2.0 (fiqa-bench implementation of the rules in LSIbabnikz/FROQ, MIT; no code copied)",
    input_size=(112, 112),
    normalisation="that of the bound FR model (its card); occluded blocks are black pixels (0) before the model's normalisation",
    score_direction="higher_better",
    needs_fr_model="torch",
    options=(
        Option(
            "calibration",
            "",
            "folder of calibration face images (its content, not its path, is in the key)",
            fingerprint=False,
        ),
        Option("calibration_size", 300, "calibration images used, >= 1", parse=_positive_int),
        Option("layers", "", "fixed observed layers NAME,NAME instead of a calibration"),
        Option("top_n", 10, "layers kept by the calibration, >= 1", parse=_positive_int),
        Option("noise_alpha", 1e-3, "noise amplitude, in [0, 1]", parse=_unit_interval),
        Option("noise_images", 10, "noise images per input, >= 1", parse=_positive_int),
        Option("occlusion_px", 14, "occlusion block size in pixels, >= 1", parse=_positive_int),
        Option("seed", 0, "integer seed of the noise"),
    ),
    notes=(
        "Needs a torch FR model (sface_torch, an iResNet card, ...) and a calibration set: "
        "calibration=DIR, a folder of face images searched recursively (jpg/png/bmp; 112x112 images are taken "
        "as aligned, others are aligned with YuNet and faces it cannot find are counted and left out). "
        "calibration_size images are used (default 300), chosen by sha256 of their relative path, so the choice "
        "does not depend on file-system order. The authors calibrate AdaFace on a Glint360K subset that ships "
        "with their code; fiqa-bench's documented choice for the tests and results is 300 images of LFW-train "
        "(../shared/data/lfw_train, identity-disjoint from the LFW test folds). The chosen layers are cached under "
        "the cache dir (froq/) keyed by the FR model's fingerprint, the calibration images' bytes and the options; "
        "the cache only saves time. layers=NAME,NAME (module names as in named_modules) skips calibration. "
        "On sface_torch with 300 LFW-train images the calibration keeps one layer, 'features' (the final "
        "BatchNorm1d: the embedding; Spearman 0.768 with the pseudo-labels), so there FROQ ranks like face_norm."
    ),
)


@dataclass
class Calibration:
    """The outcome of FROQ's observer initialisation (plain data; stored as JSON)."""

    layers: list[str]  # chosen module names, in the order the greedy search added them
    set_correlations: list[float]  # Spearman rho of the growing set, one per greedy step (top_n values)
    top_layers: list[str]  # the top_n modules by single-layer utility, best first
    top_utilities: list[float]
    n_images: int
    skipped: list[str] = field(default_factory=list)  # calibration files left out, with why


# -- perturbation pseudo-labels ----------------------------------------------------------------------


def occlusion_masks(size: int, px: int) -> np.ndarray:
    """Bool masks K x size x size, one per grid block of px x px ((size // px) ** 2 of them)."""
    k = size // px
    masks = np.zeros((k * k, size, size), bool)
    for i in range(k * k):
        r, c = divmod(i, k)
        masks[i, r * px : (r + 1) * px, c * px : (c + 1) * px] = True
    return masks


def pseudo_labels(
    model: Any, preprocess: Any, images: np.ndarray, options: Mapping[str, Any], batch_size: int = 32
) -> np.ndarray:
    """The auxiliary FIQA score of each image: mean of the flip, noise and occlusion similarities."""
    import torch

    from ._torch import embedding_of

    def embed(x: torch.Tensor) -> torch.Tensor:
        out = torch.cat(
            [embedding_of(model(x[i : i + batch_size])).float() for i in range(0, len(x), batch_size)]
        )
        return torch.nn.functional.normalize(out.flatten(1), dim=1)

    g = torch.Generator().manual_seed(int(options["seed"]))
    size = images.shape[1]
    noise = torch.randn((int(options["noise_images"]), 3, size, images.shape[2]), generator=g)
    alpha = float(options["noise_alpha"])
    masks = occlusion_masks(size, int(options["occlusion_px"]))
    out = np.empty(len(images), np.float64)
    with torch.inference_mode():
        for i, image in enumerate(images):
            x = preprocess(image[None])
            base = embed(x)
            flip = embed(preprocess(np.ascontiguousarray(image[None, :, ::-1])))
            noisy = embed((1.0 - alpha) * x + alpha * noise.to(x.device, x.dtype))
            occluded = np.repeat(image[None], len(masks), 0)
            occluded[masks] = 0
            occ = embed(preprocess(occluded))
            sims = [(base @ e.T).mean() for e in (flip, noisy, occ)]
            out[i] = float(sum(sims) / 3.0)
    return out


# -- layer observation ----------------------------------------------------------------------------


def observable_modules(module: Any) -> list[tuple[str, Any]]:
    """``named_modules()`` without the root, as the reference enumerates them."""
    return list(module.named_modules())[1:]


def layer_norms(
    module: Any, preprocess: Any, images: np.ndarray, names: Sequence[str] | None, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """L2 norm of each named module's flattened output per image (modules without a tensor output omitted)."""
    import torch

    wanted = None if names is None else set(names)
    found: dict[str, list[np.ndarray]] = {}
    current: dict[str, np.ndarray] = {}

    def hook(name: str) -> Any:
        def fn(m: Any, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.ndim >= 1:
                current[name] = (
                    torch.linalg.vector_norm(output.float().reshape(len(output), -1), dim=1)
                    .double()
                    .cpu()
                    .numpy()
                )

        return fn

    handles = [
        m.register_forward_hook(hook(n))
        for n, m in observable_modules(module)
        if wanted is None or n in wanted
    ]
    try:
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                current.clear()
                module(preprocess(images[s : s + batch_size]))
                for n, v in current.items():
                    found.setdefault(n, []).append(v)
    finally:
        for h in handles:
            h.remove()
    n_batches = -(-len(images) // batch_size)
    return {n: np.concatenate(v) for n, v in found.items() if len(v) == n_batches}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def select_layers(
    norms: Mapping[str, np.ndarray], order: Sequence[str], labels: np.ndarray, top_n: int
) -> Calibration:
    """Steps 2 and 3: single-layer utilities, top-n, greedy set growth, best prefix.

    ``order`` is the module order of the model (ties in utility keep it).
    """
    names = [n for n in order if n in norms]
    util = {n: _spearman(norms[n], labels) for n in names}
    ranked = [n for n in names if np.isfinite(util[n])]
    ranked.sort(key=lambda n: -util[n])  # stable: equal utilities keep module order
    top = ranked[:top_n]
    if not top:
        raise FiqaError(
            "froq: no layer of this FR model correlates with the pseudo-quality labels (all outputs constant?)."
        )

    def set_corr(members: list[str]) -> float:
        return _spearman(np.mean([norms[m] for m in members], axis=0), labels)

    chosen = [top[0]]
    corr = [set_corr(chosen)]
    left = top[1:]
    while left:
        trials = [(set_corr([*chosen, n]), i) for i, n in enumerate(left)]
        best = max(trials, key=lambda t: (np.nan_to_num(t[0], nan=-np.inf), -t[1]))
        chosen.append(left.pop(best[1]))
        corr.append(best[0])
    finite = np.nan_to_num(np.asarray(corr), nan=-np.inf)
    keep = int(np.argmax(finite)) + 1  # first maximum, as list.index(max(...)) in the reference
    return Calibration(
        layers=chosen[:keep],
        set_correlations=[float(c) for c in corr],
        top_layers=top,
        top_utilities=[float(util[n]) for n in top],
        n_images=len(labels),
    )


# -- calibration data -------------------------------------------------------------------------------


def calibration_files(folder: Path, n: int) -> list[Path]:
    """Up to ``n`` image files under ``folder``, chosen by the sha256 of their relative path."""
    if not folder.is_dir():
        raise MissingDataError(
            "froq calibration set", folder, "Pass calibration=DIR, a folder of face images (e.g. LFW-train)."
        )
    files = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise FiqaError(
            f"froq: {folder}: no images (jpg, png, bmp) found for calibration. Point calibration= at a folder of face images."
        )
    key = {p: hashlib.sha256(p.relative_to(folder).as_posix().encode()).hexdigest() for p in files}
    return sorted(files, key=lambda p: key[p])[:n]


def load_calibration_images(folder: Path, files: Sequence[Path]) -> tuple[np.ndarray, list[str], list[str]]:
    """Aligned RGB crops (112x112 files as they are, others aligned with YuNet), kept ids, skipped notes."""
    from fiqa_bench.faces import YuNetDetector, align, read_rgb

    detector = None
    images, ids, skipped = [], [], []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        rgb = read_rgb(path)
        if rgb is None:
            skipped.append(f"{rel}: not a readable image")
            continue
        if rgb.shape[:2] != (112, 112):
            detector = detector or YuNetDetector()
            rgb, _ = align(rgb, detector)
            if rgb is None:
                skipped.append(f"{rel}: no face found by YuNet")
                continue
        images.append(rgb)
        ids.append(rel)
    if len(images) < 3:
        raise FiqaError(
            f"froq: {folder}: only {len(images)} usable calibration faces; FROQ needs a few hundred."
        )
    return np.stack(images), ids, skipped


def files_fingerprint(folder: Path, files: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


# -- the method -----------------------------------------------------------------------------------


class Froq(BaseMethod):
    batch_size = 32

    def __init__(self, ctx: BuildContext) -> None:
        from ._torch import torch_parts

        super().__init__(ctx)
        card, fr_model, options = ctx.card, ctx.fr_model, ctx.options
        self.module, self.preprocess = torch_parts(card, fr_model)
        names = [n for n, _ in observable_modules(self.module)]
        if options["layers"]:
            layers = [s.strip() for s in str(options["layers"]).split(",") if s.strip()]
            unknown = [s for s in layers if s not in names]
            if unknown:
                raise FiqaError(
                    f"froq: layers {', '.join(unknown)} are not modules of {fr_model.card.name}; "
                    f"its modules are named like {', '.join(names[:6])}, ..."
                )
            self.calibration = Calibration(layers, [], [], [], 0)
        else:
            if not options["calibration"]:
                # A combination error: `--methods all` reports froq as not evaluated instead of stopping.
                raise UnsupportedCombinationError(
                    "froq needs a calibration set: --set froq.calibration=DIR (a folder of a few hundred face "
                    "images, e.g. LFW-train), or fixed layers with --set froq.layers=NAME,NAME."
                )
            self.calibration = self._calibrate(Path(str(options["calibration"])).expanduser())
        # What the scores depend on: the calibration's content (not its path) and the layers used.
        key = getattr(self, "_calibration_key", "")
        self.derived_state = {"calibration": key, "layers_used": ",".join(self.calibration.layers)}

    def _calibrate(self, folder: Path) -> Calibration:
        from fiqa_bench.cache import default_cache_dir

        opts = self.options
        files = calibration_files(folder, int(opts["calibration_size"]))
        parts = {
            "fr_model": self.fr_model.fingerprint(),
            "images": files_fingerprint(folder, files),
            **{
                k: opts[k]
                for k in ("calibration_size", "top_n", "noise_alpha", "noise_images", "occlusion_px", "seed")
            },
        }
        self._calibration_key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
        path = default_cache_dir() / "froq" / f"{self._calibration_key}.json"
        if path.is_file():
            try:
                return Calibration(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                pass  # unreadable cache entry: recompute
        images, _, skipped = load_calibration_images(folder, files)
        module = self.module
        was_training = module.training
        module.eval()
        try:
            labels = pseudo_labels(module, self.preprocess, images, opts)
            order = [n for n, _ in observable_modules(module)]
            norms = layer_norms(module, self.preprocess, images, None)
        finally:
            module.train(was_training)
        cal = select_layers(norms, order, labels, int(opts["top_n"]))
        cal.skipped = skipped
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(cal), indent=1))
        os.replace(tmp, path)
        return cal

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        module = self.module
        was_training = module.training
        module.eval()
        try:
            norms = layer_norms(
                module, self.preprocess, images, self.calibration.layers, batch_size=len(images)
            )
        finally:
            module.train(was_training)
        missing = [n for n in self.calibration.layers if n not in norms]
        if missing:
            raise FiqaError(f"froq: layers {', '.join(missing)} gave no tensor output; choose other layers.")
        return np.mean([norms[n] for n in self.calibration.layers], axis=0)


register_method(FROQ_CARD)(Froq)
