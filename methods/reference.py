"""Reference lines for plots, NOT quality methods: ``random`` (chance) and ``oracle`` (an upper bound)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Card, Option, register_method

from ._common import BaseMethod, stable_uniform

RANDOM_CARD = Card(
    name="random",
    kind="method",
    summary="REFERENCE LINE, not a method: uniform random quality (seeded, a hash of the image bytes)",
    aliases=("chance",),
    paper="reference line (chance level of an ERC)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    input_size=None,
    normalisation="none (image bytes hashed with the seed)",
    score_direction="higher_better",
    reference_line=True,
    exempt_degradations=("blur", "jpeg", "downscale", "occlude_eyes", "darken", "noise"),
    options=(Option("seed", 0, "integer seed of the per-image hash"),),
    notes=(
        "q = first 64 bits of sha256(image bytes || seed) / 2^64, uniform in [0, 1): reproducible, "
        "independent of batch order, identical images get identical values. Blind to everything by design."
    ),
)

ORACLE_CARD = Card(
    name="oracle",
    kind="method",
    summary="REFERENCE LINE, not a method: ranks PAIRS by how wrong the FR model is (needs the labels)",
    aliases=("perfect",),
    paper="reference line (upper bound of an ERC for a given FR model)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    input_size=None,
    normalisation="none (pair similarities and ground-truth labels)",
    score_direction="higher_better",
    needs_fr_model="embeddings",
    reference_line=True,
    pair_level=True,
    exempt_degradations=("blur", "jpeg", "downscale", "occlude_eyes", "darken", "noise"),
    notes=(
        "Pair quality = similarity for genuine pairs and -similarity for impostor pairs, so the pairs the FR "
        "model gets most wrong (low genuine, high impostor similarity) are rejected first. It uses the "
        "ground truth and cannot exist in practice: an unreachable upper bound for the chosen FR model. "
        "Defined per pair only; it has no per-image score."
    ),
)


class RandomQuality(BaseMethod):
    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        seed = int(self.options["seed"])
        return np.array([stable_uniform(im, seed) for im in images], dtype=np.float64)


class OracleQuality(BaseMethod):
    def raw_pair_quality(self, similarity: np.ndarray, genuine: np.ndarray) -> np.ndarray:
        sim = np.asarray(similarity, dtype=np.float64)
        return np.where(np.asarray(genuine, dtype=bool), sim, -sim)

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        raise FiqaError(
            "oracle is a pair-level reference line with no per-image score; it is evaluated by pair_quality()."
        )

    def raw_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        raise FiqaError(
            "oracle is a pair-level reference line with no per-image score; it is evaluated by pair_quality()."
        )


register_method(RANDOM_CARD)(RandomQuality)
register_method(ORACLE_CARD)(OracleQuality)
