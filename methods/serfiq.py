"""SER-FIQ: stochastic embedding robustness (unsupervised, training-free)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.registry import Card, Option, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod


def _at_least_two(value: object) -> int:
    t = int(value)  # type: ignore[call-overload]
    if t < 2 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("needs an integer of at least 2")
    return t


def _rate(value: object) -> float:
    p = float(value)  # type: ignore[arg-type]
    if not 0.0 <= p < 1.0:
        raise ValueError("the dropout rate must be in [0, 1)")
    return p


SERFIQ_CARD = Card(
    name="serfiq",
    kind="method",
    summary="SER-FIQ: 2*sigmoid(-mean pairwise distance) of T normalised embeddings with dropout before the embedding layer",
    aliases=("ser-fiq", "ser_fiq"),
    paper="Terhörst, Kolf, Damer, Kirchbuchner, Kuijper, SER-FIQ: Unsupervised Estimation of Face Image Quality Based on Stochastic Embedding Robustness, CVPR 2020",
    licence="Apache-2.0 (fiqa-bench implementation; SER-FIQ's reference code is CC BY-NC-SA 4.0 and was not used)",
    input_size=(112, 112),
    normalisation="that of the bound FR model (its card); the FR model's flip_tta/precision options are not used",
    score_direction="higher_better",
    needs_fr_model="torch",
    needs_capabilities=("embedding_head",),
    exempt_degradations=(),
    options=(
        Option("T", 100, "stochastic forward passes per image (>= 2)", parse=_at_least_two),
        Option("p", 0.5, "dropout rate before the embedding layer, in [0, 1)", parse=_rate),
        Option("seed", 0, "integer seed of the per-image dropout masks"),
    ),
    notes=(
        "The backbone runs once per image; only dropout -> fc -> features is repeated T times. Each image's "
        "T dropout masks come from an RNG seeded by (seed, image bytes), so scores do not depend on batching. "
        "q in (0, 1]; 1 with p = 0 (all T embeddings equal: one pass is made; with p > 0, float rounding alone "
        "can move q by ~1e-7 between thread counts). Options: T (passes, default 100), p "
        "(dropout rate, default 0.5 as in SER-FIQ's ArcFace setting - unverified against its code), seed. "
        "Needs a torch FR model with a dropout-able embedding layer (forward_backbone/forward_head): the iResNet "
        "cards or sface_torch (SFace, trained with dropout 0.4 before its fc layer)."
    ),
)


class SerFiq(BaseMethod):
    batch_size = 32

    def __init__(self, ctx: BuildContext) -> None:
        from ._torch import torch_parts

        super().__init__(ctx)
        self.module, self.preprocess = torch_parts(ctx.card, ctx.fr_model)

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        import torch

        from ._torch import embedding_of, image_generator

        t, p, seed = int(self.options["T"]), float(self.options["p"]), int(self.options["seed"])
        module = self.module
        was_training = module.training
        module.eval()  # BatchNorm on running statistics; dropout is applied here, by hand
        try:
            with torch.inference_mode():
                flat = module.forward_backbone(self.preprocess(images)).float()  # N x 25088, once
                out = np.empty(len(images), np.float64)
                for i in range(len(images)):
                    if p > 0:
                        g = image_generator(images[i], seed, flat.device)
                        keep = torch.rand((t, flat.shape[1]), generator=g, device=flat.device) >= p
                        x = flat[i].unsqueeze(0) * keep / (1.0 - p)  # inverted dropout, as nn.Dropout
                    else:  # no dropout: the T passes are identical, so one pass stands for all
                        x = flat[i].unsqueeze(0)
                    emb = torch.nn.functional.normalize(embedding_of(module.forward_head(x)).float(), dim=1)
                    d = (
                        torch.pdist(emb.double()).mean()
                        if len(emb) > 1
                        else torch.zeros((), dtype=torch.float64)
                    )
                    out[i] = float(2.0 * torch.sigmoid(-d))
        finally:
            module.train(was_training)
        return out


register_method(SERFIQ_CARD)(SerFiq)
