"""FaceQAN: face image quality from adversarial-noise robustness and flip symmetry (training-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fiqa_bench.registry import Card, Option, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod


def _positive(value: object) -> float:
    x = float(value)  # type: ignore[arg-type]
    if not x > 0:
        raise ValueError("must be > 0")
    return x


def _count(value: object) -> int:
    n = int(value)  # type: ignore[call-overload]
    if n < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("needs a positive integer")
    return n


FACEQAN_CARD = Card(
    name="faceqan",
    kind="method",
    summary="FaceQAN: ((1 + mean S)/2 * clip(1 - std S, 0, 1) * cos(e(x), e(flip x)))^5, S = cosines under BIM attacks on noisy copies",
    aliases=("face-qan",),
    paper="Babnik, Peer, Štruc, FaceQAN: Face Image Quality Assessment Through Adversarial Noise Exploration, ICPR 2022",
    licence="Apache-2.0 (fiqa-bench implementation; FaceQAN's reference code was not used)",
    input_size=(112, 112),
    normalisation="that of the bound FR model (its card); eps is in the model's normalised input units",
    score_direction="higher_better",
    needs_fr_model="torch",
    exempt_degradations=(),
    options=(
        Option(
            "eps",
            1e-3,
            "BIM step and noise amplitude, > 0, in the model's normalised input units",
            parse=_positive,
        ),
        Option("steps", 5, "BIM steps per noisy copy, >= 1", parse=_count),
        Option("copies", 10, "noisy copies per image, >= 1", parse=_count),
        Option("power", 5, "exponent of the product, a positive integer", parse=_count),
        Option("seed", 0, "integer seed of the per-image noise"),
    ),
    notes=(
        "For each image: e0 = normalised embedding; `copies` noisy copies x + U(-eps, eps); on each, `steps` "
        "BIM steps x <- x - eps * sign(grad cos(e(x), e0)) (moving the embedding away, no projection); S = "
        "the cosines to e0 after every step (copies x steps values). Symmetry = cos(e(x), e(flip x)). "
        "q = ((1 + mean S)/2 * clip(1 - std S, 0, 1) * symmetry)^power, in [-1, 1] (negative only when the "
        "flipped face's embedding points away). Noise is seeded by (seed, image bytes). Any differentiable "
        "torch FR model; cost = copies x (steps + 1) forward and copies x steps backward passes per image."
    ),
)


class FaceQan(BaseMethod):
    batch_size = 4  # x copies: 40 images through forward+backward at once

    def __init__(self, ctx: BuildContext) -> None:
        from ._torch import torch_parts

        super().__init__(ctx)
        self.module, self.preprocess = torch_parts(ctx.card, ctx.fr_model)

    def _embed(self, x: Any) -> Any:
        import torch

        from ._torch import embedding_of

        return torch.nn.functional.normalize(embedding_of(self.module(x)).float(), dim=1)

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        import torch

        from ._torch import image_generator

        eps, steps, k = float(self.options["eps"]), int(self.options["steps"]), int(self.options["copies"])
        power, seed = float(self.options["power"]), int(self.options["seed"])
        module = self.module
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                x = self.preprocess(images).float()
                e0 = self._embed(x)
                symmetry = (e0 * self._embed(x.flip(3))).sum(1)
                noise = torch.stack(
                    [
                        torch.rand(
                            (k, *x.shape[1:]), generator=image_generator(im, seed, x.device), device=x.device
                        )
                        for im in images
                    ]
                )  # N x k x C x H x W in [0, 1)
                xa = (x.unsqueeze(1) + (2 * noise - 1) * eps).flatten(0, 1)
            ref = e0.repeat_interleave(k, dim=0)
            sims = []
            # steps + 1 forward passes: pass t measures the cosine after step t and gives the gradient
            # for step t + 1.
            for t in range(steps + 1):
                last = t == steps
                with torch.set_grad_enabled(not last):
                    xa = xa.detach().requires_grad_(not last)
                    cos = (self._embed(xa) * ref).sum(1)
                    if t > 0:
                        sims.append(cos.detach())
                    if not last:
                        (grad,) = torch.autograd.grad(cos.sum(), xa)  # copies are independent (BN in eval)
                        xa = xa.detach() - eps * grad.sign()
            s = torch.stack(sims, 1).reshape(len(images), k * steps).double()  # N x (copies*steps)
            mean, std = s.mean(1), s.std(1, unbiased=False)
            q = ((1 + mean) / 2 * torch.clamp(1 - std, 0, 1) * symmetry.double()) ** power
        finally:
            module.train(was_training)
        return q.cpu().numpy()


register_method(FACEQAN_CARD)(FaceQan)
