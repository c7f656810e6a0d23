"""Flip-summed embeddings (insightface verification): the mirror producer plus the image's embedding
equals what the FR model returns with flip_tta=sum, on real aligned LFW faces."""

from __future__ import annotations

import numpy as np
import pytest

import fiqa_bench
from fiqa_bench.pipeline import flip_sum_embeddings, make_producers


@pytest.mark.slow
def test_mirror_producer_sums_to_the_models_flip_sum(aligned_lfw_sample: dict[str, object]) -> None:
    images = np.asarray(aligned_lfw_sample["images"])[:8]
    plain = fiqa_bench.get_fr_model("sface", device="cpu")
    summed = fiqa_bench.get_fr_model("sface", device="cpu", flip_tta="sum")
    concat = fiqa_bench.get_fr_model("sface", device="cpu", flip_tta="concat")
    producers = make_producers({"sface": plain}, [], flip_sum=True)
    assert set(producers) == {"emb:sface", "mirror:sface"}
    mirror = producers["mirror:sface"]
    assert mirror.fingerprint != producers["emb:sface"].fingerprint  # its own cache slot
    mirror.values = mirror.compute(images, None)
    fs = flip_sum_embeddings(plain, plain.embed(images), mirror)
    np.testing.assert_allclose(fs, summed.embed(images), rtol=1e-4, atol=1e-4)
    # A model that sums already needs no mirror; one that concatenates cannot give the raw sum.
    assert set(make_producers({"s": summed}, [], flip_sum=True)) == {"emb:s"}
    assert flip_sum_embeddings(summed, summed.embed(images), None) is not None
    assert flip_sum_embeddings(concat, concat.embed(images), None) is None
    assert set(make_producers({"sface": plain}, [])) == {"emb:sface"}  # only when a protocol asks for it
