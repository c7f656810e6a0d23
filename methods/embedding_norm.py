"""Embedding magnitude: ``face_norm`` for any FR model, ``magface`` for a MagFace-trained model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.registry import Card, register_method

from ._common import BaseMethod

FACE_NORM_CARD = Card(
    name="face_norm",
    kind="method",
    summary="L2 norm of the FR model's raw (unnormalised) embedding",
    aliases=("embedding_norm", "feature_norm"),
    paper="generic baseline; cf. Meng et al., MagFace, CVPR 2021, and Kim et al., AdaFace, CVPR 2022 (feature norm as quality proxy)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    input_size=None,
    normalisation="whatever the bound FR model uses (its card)",
    score_direction="higher_better",
    needs_fr_model="embeddings",
    exempt_degradations=("blur", "jpeg", "downscale", "occlude_eyes", "darken", "noise"),
    notes=(
        "Computed from the FR model's cached raw embeddings (no second forward pass). Meaningful only for "
        "models whose embedding norm is not fixed: for SFace the norm carries little quality information, "
        "and with random or untrained weights it carries none - so no degradation is guaranteed to lower it "
        "for an arbitrary model (all exempt); the tests check it with MagFace-style behaviour on real "
        "models where available."
    ),
)

MAGFACE_CARD = Card(
    name="magface",
    kind="method",
    summary="MagFace quality: L2 norm of a MagFace-trained iResNet100's unnormalised embedding",
    aliases=("mag",),
    paper="Meng, Zhao, Huang, Liu, Yang, Han, MagFace: A Universal Representation for Face Recognition and Quality Assessment, CVPR 2021",
    licence="Apache-2.0 (MagFace weights, IrvingMeng/MagFace); Apache-2.0 (fiqa-bench implementation)",
    input_size=(112, 112),
    colour="RGB",
    normalisation="that of the magface_r100 FR model (x/255 in [0, 1])",
    score_direction="higher_better",
    needs_fr_model="embeddings",
    supported_fr_models=("magface_r100",),
    exempt_degradations=(),
    notes=(
        "The magnitude is trained to rise with quality (roughly 10..110 for MagFace iResNet100). Weights "
        "come with the magface_r100 FR model card (run with --models magface_r100 or bind magface@magface_r100)."
    ),
)


class EmbeddingNorm(BaseMethod):
    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        assert self.fr_model is not None
        return self.raw_from_embeddings(self.fr_model.embed(images))

    def raw_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(embeddings, dtype=np.float64), axis=1)


register_method(FACE_NORM_CARD)(EmbeddingNorm)
register_method(MAGFACE_CARD)(EmbeddingNorm)
