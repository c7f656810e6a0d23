"""CLIB-FIQA: quality from a fine-tuned CLIP RN50 and 360 joint quality-factor prompts.

Rules from the authors' inference code (github.com/oufuzhao/CLIB-FIQA, ``inference.py``, ``utilities.py``,
``model/models.py``, MIT), re-implemented on open_clip's CLIP (same module and key names as OpenAI's):

* The network is OpenAI's CLIP built from ``RN50.pt`` and then overwritten with the released
  ``CLIB-FIQA_R50.pth`` (``model.state_dict()`` of the fine-tuned CLIP, ``module.`` stripped). The
  authors' loader silently ignores unknown keys; here every key must match in name and shape.
* Prompts: ``"a photo of a {blur}, {occlusion}, and {pose} face with {expression} under {illumination},
  which is of {quality} quality"`` for every combination, in ``itertools.product`` order of blur
  (hazy, blurry, clear), occlusion (obstructed, unobstructed), pose (profile, slight angle, frontal),
  expression (exaggerated expression, typical expression), illumination (extreme lighting, normal
  lighting) and quality (bad, poor, fair, good, perfect): 360 prompts, tokenised with CLIP's BPE.
* Image: RGB, resized to 224 x 224 (PIL bilinear, as torchvision's Resize on a PIL image), /255,
  normalised with CLIP's mean (0.48145466, 0.4578275, 0.40821073) and std (0.26862954, 0.26130258,
  0.27577711).
* Score: softmax over the 360 logits (``logit_scale.exp() * cos``), summed over the five factors to a
  5-way quality distribution p, then ``q = sum_i p_i * (0.1, 0.3, 0.5, 0.7, 0.9)_i`` (``dist_to_score``):
  0.1..0.9, higher = better.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import CheckpointError, FiqaError
from fiqa_bench.registry import Card, Option, WeightFile, register_method, resolve_weights
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

QUALITY = ("bad", "poor", "fair", "good", "perfect")
BLUR = ("hazy", "blurry", "clear")
OCCLUSION = ("obstructed", "unobstructed")
POSE = ("profile", "slight angle", "frontal")
EXPRESSION = ("exaggerated expression", "typical expression")
ILLUMINATION = ("extreme lighting", "normal lighting")
ANCHORS = (0.1, 0.3, 0.5, 0.7, 0.9)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT = 224

CLIB_WEIGHTS = WeightFile(
    "CLIB-FIQA_R50.pth",
    source="CLIB-FIQA release (github.com/oufuzhao/CLIB-FIQA README: Google Drive link 'well-trained CLIB-FIQA model')",
)
RN50_WEIGHTS = WeightFile(
    "RN50.pt",
    sha256="afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
    source="OpenAI CLIP RN50 (openaipublic.azureedge.net/clip/models/afeb0e10.../RN50.pt), the file the CLIB-FIQA README names",
)

CLIBFIQA_CARD = Card(
    name="clibfiqa",
    kind="method",
    summary="CLIB-FIQA: fine-tuned CLIP RN50, softmax over 360 quality-factor prompts -> expected quality anchor (0.1..0.9)",
    aliases=("clib-fiqa", "clib_fiqa"),
    paper="Ou, Li, Wang, Kwong, CLIB-FIQA: Face Image Quality Assessment with Confidence Calibration, CVPR 2024",
    licence="MIT (CLIB-FIQA code and weights release); OpenAI CLIP weights MIT",
    input_size=(INPUT, INPUT),
    colour="RGB",
    normalisation="aligned 112x112 crop resized to 224x224 (PIL bilinear), x/255, CLIP mean/std",
    score_direction="higher_better",
    weights=(CLIB_WEIGHTS, RN50_WEIGHTS),
    python_packages=("open_clip", "ftfy", "regex", "PIL"),
    install_hint="pip install --no-deps open_clip_torch==3.3.0 && pip install ftfy regex",
    options=(
        Option(
            "clip_weights",
            "",
            "path of OpenAI's RN50.pt (default: the weights dir); fixes the architecture only",
            fingerprint=False,
        ),
    ),
    notes=(
        "Two user-supplied files: CLIB-FIQA_R50.pth (weights=PATH or the weights dir) and OpenAI's RN50.pt "
        "(option clip_weights=PATH or the weights dir), read as the authors do (the RN50 JIT archive with "
        "torch.jit.load, falling back to a plain state_dict). Every tensor of the network comes from "
        "CLIB-FIQA_R50.pth, so RN50.pt only fixes the architecture and is not part of the cache key. "
        "The authors run CLIP in float16 on CUDA; fiqa-bench runs float32 (differences ~1e-3). Checked here "
        "with small random CLIP-layout checkpoints; the released files were not available on this machine."
    ),
)


def prompts() -> list[str]:
    """The 360 joint prompts, in the authors' order (quality varies fastest)."""
    return [
        f"a photo of a {b}, {o}, and {p} face with {e} under {l}, which is of {q} quality"
        for b, o, p, e, l, q in product(BLUR, OCCLUSION, POSE, EXPRESSION, ILLUMINATION, QUALITY)  # noqa: E741
    ]


def distribution_to_score(probs: np.ndarray) -> np.ndarray:
    """N x 360 prompt probabilities -> N qualities: sum over the factors, then the anchors' expectation."""
    p = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1, len(QUALITY)).sum(1)
    return p @ np.asarray(ANCHORS)


def read_openai_clip(path: Path) -> dict[str, Any]:
    """The state_dict of an OpenAI CLIP file (TorchScript archive or plain state_dict), or one CheckpointError."""
    import torch
    from fiqa_bench.fr_models._checkpoint import read_checkpoint

    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # torch.jit.load is deprecated, still the way to read it
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except Exception:  # not a TorchScript archive: a plain state_dict, or an unreadable file
        pass
    return read_checkpoint(path)


def build_clip(path: Path) -> Any:
    """open_clip's CLIP with OpenAI's key layout, architecture read from the RN50 file, float32, eval."""
    from open_clip.model import build_model_from_openai_state_dict

    state = read_openai_clip(path)
    try:
        model = build_model_from_openai_state_dict(dict(state), cast_dtype=None)
    except (KeyError, RuntimeError, AssertionError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not an OpenAI CLIP ResNet checkpoint ({first}). Point clip_weights= at OpenAI's RN50.pt."
        ) from None
    return model.float().eval()


class ClibFiqa(BaseMethod):
    batch_size = 32

    def __init__(self, ctx: BuildContext) -> None:
        import open_clip
        import torch
        from fiqa_bench.fr_models._checkpoint import match_keys, read_checkpoint

        super().__init__(ctx)
        path, device = ctx.weights_file(0), ctx.device
        # Not recorded in the context: RN50.pt fixes the architecture only (see the card), so not in the key.
        clip_path = resolve_weights(
            ctx.card, str(ctx.options["clip_weights"]) or None, ctx.weights_dir, index=1
        )
        if clip_path.resolve() == path.resolve():
            raise FiqaError(
                f"clibfiqa: {path} was given as both CLIB-FIQA_R50.pth and RN50.pt; pass each file once."
            )
        model = build_clip(clip_path)
        state = read_checkpoint(path)
        matched = match_keys(model.state_dict(), state, str(path), f"the CLIP network of {clip_path.name}")
        model.load_state_dict(matched, strict=True)
        self.device = device
        self.model = model.to(device).eval()
        with torch.inference_mode():
            tokens = open_clip.tokenize(prompts()).to(device)
            text = self.model.encode_text(tokens).float()
            self.text = torch.nn.functional.normalize(text, dim=-1)
        self.mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)

    def preprocess(self, images: np.ndarray) -> Any:
        """RGB uint8 N x H x W x 3 -> float32 N x 3 x 224 x 224 (PIL bilinear resize, CLIP normalisation)."""
        import torch
        from PIL import Image

        resized = np.stack(
            [np.asarray(Image.fromarray(im).resize((INPUT, INPUT), Image.BILINEAR)) for im in images]
        )
        x = torch.from_numpy(resized).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return (x - self.mean) / self.std

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """N x 360 softmax probabilities over the prompts (authors' ``do_batch``)."""
        import torch

        with torch.inference_mode():
            img = torch.nn.functional.normalize(
                self.model.encode_image(self.preprocess(images)).float(), dim=-1
            )
            logits = self.model.logit_scale.exp().float() * img @ self.text.T
            return torch.softmax(logits.double(), dim=1).cpu().numpy()  # float64: sums to 1

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        return distribution_to_score(self.probabilities(images))


register_method(CLIBFIQA_CARD)(ClibFiqa)
