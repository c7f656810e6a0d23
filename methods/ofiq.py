"""OFIQ's unified quality score (ISO/IEC 29794-5): MagFace magnitude mapped through OFIQ's sigmoid.

Rules from OFIQ's source (github.com/BSI-OFIQ/OFIQ-Project, MIT), read, not copied:

* ``OFIQlib/modules/measures/src/UnifiedQualityScore.cpp``: the aligned face (616 x 616, BGR) is resized
  to 192 x 192, rows 33..145 and columns 40..152 are cut out (112 x 112), the pixels become float /255
  (no mean, no std), ``cv::dnn::blobFromImage`` with swapRB = false keeps BGR order, NCHW; the first
  value of the network's first output is the native score (the MagFace feature magnitude).
* ``OFIQlib/modules/measures/Measure.h`` (``ScalarConversion``) and ``data/ofiq_config.jaxn``:
  ``Q = h * (a + s / (1 + exp((x0 - x) / w)))`` with h = 100, a = 0, s = 1, x0 = 23, w = 2.6, then
  ``std::round`` and clipping to 0..100.
* ``OFIQlib/modules/utils/src/utils.cpp`` (``alignImage``): the 616 x 616 template puts the eye centres,
  nose tip and mouth corners at (251, 272), (364, 272), (308, 336), (262, 402), (355, 402). Scaled by
  192/616 and shifted by (-40, -33) these are (38.2, 51.8), (73.5, 51.8), (56.0, 71.7), (41.7, 92.3),
  (70.7, 92.3): the ArcFace 112 x 112 template (38.3, 51.7), (73.5, 51.5), (56.0, 71.7), (41.5, 92.4),
  (70.7, 92.2) to within 0.3 px. fiqa-bench's aligned crops therefore are that 112 x 112 input; they
  are fed as they are (RGB -> BGR, /255).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.errors import CheckpointError, FiqaError
from fiqa_bench.registry import Card, Option, WeightFile, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

# OFIQ's default mapping of the unified quality score (UnifiedQualityScore.cpp, ofiq_config.jaxn).
SIGMOID_H, SIGMOID_X0, SIGMOID_W = 100.0, 23.0, 2.6
OUTPUTS = ("uqs", "uqs_unrounded", "magnitude")

WEIGHTS = WeightFile(
    "magface_iresnet50_norm.onnx",
    source=(
        "OFIQ's model archive (github.com/BSI-OFIQ/OFIQ-Project, install step that downloads the models; "
        "data/models/unified_quality_score/magface_iresnet50_norm.onnx)"
    ),
)

OFIQ_UQS_CARD = Card(
    name="ofiq_uqs",
    kind="method",
    summary="OFIQ unified quality score (ISO/IEC 29794-5): MagFace-iResNet50 magnitude through OFIQ's sigmoid, 0..100",
    aliases=("ofiq", "ofiq_unified"),
    paper=(
        "ISO/IEC 29794-5:2025 unified quality score as implemented by OFIQ (BSI, OFIQ-Project v1.x); "
        "MagFace: Meng et al., CVPR 2021"
    ),
    licence="OFIQ code MIT; the MagFace-based ONNX model is distributed with OFIQ under its model terms (check them)",
    input_size=(112, 112),
    colour="BGR",
    normalisation="ArcFace-aligned 112x112 crop (= OFIQ's 616 alignment, resized to 192, cropped [33:145, 40:152]), BGR, x/255, NCHW",
    score_direction="higher_better",
    weights=(WEIGHTS,),
    python_packages=("onnxruntime",),
    options=(
        Option("output", "uqs", "uqs (OFIQ's rounded 0..100) | uqs_unrounded | magnitude", choices=OUTPUTS),
        Option(
            "threads", 0, "ONNX Runtime intra-op threads (0: its own choice; speed only)", fingerprint=False
        ),
    ),
    notes=(
        "output=uqs (default): OFIQ's value, round(100 / (1 + exp((23 - m) / 2.6))) clipped to 0..100 (integers: "
        "many ties); uqs_unrounded: the same without rounding (ranks like the magnitude); magnitude: m, the "
        "network's output. Differences to OFIQ itself: OFIQ finds the face with its SSD detector and 98 ADNet "
        "landmarks and resamples 616 -> 192 before the crop; fiqa-bench's crops come from YuNet's 5 landmarks "
        "warped straight to 112 x 112 (same geometry to 0.3 px, different resampling). Not checked against "
        "OFIQ's own output for lack of the model file here; the mapping and the input conversion are tested "
        "with hand-computed values."
    ),
)


def ofiq_sigmoid(magnitude: np.ndarray, rounded: bool = True) -> np.ndarray:
    """OFIQ's ScalarConversion for the unified quality score: 0..100, higher = better."""
    m = np.asarray(magnitude, dtype=np.float64)
    q = SIGMOID_H / (
        1.0 + np.exp(np.clip((SIGMOID_X0 - m) / SIGMOID_W, -700.0, 700.0))
    )  # no overflow warning
    if rounded:
        q = np.where(q >= 0, np.floor(q + 0.5), np.ceil(q - 0.5))  # std::round: halves away from zero
    return np.clip(q, 0.0, 100.0)


def ofiq_input(images: np.ndarray) -> np.ndarray:
    """RGB uint8 N x 112 x 112 x 3 -> float32 N x 3 x 112 x 112, BGR, [0, 1] (OFIQ's CreateBlob)."""
    if images.shape[1:3] != (112, 112):
        raise FiqaError(f"ofiq_uqs: expects 112x112 aligned crops, got {images.shape[1]}x{images.shape[2]}")
    x = images[..., ::-1].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class OfiqUqs(BaseMethod):
    batch_size = 64

    def __init__(self, ctx: BuildContext) -> None:
        from fiqa_bench.fr_models._onnx import open_session

        super().__init__(ctx)
        path, device, options = ctx.weights_file(), ctx.device, ctx.options
        self.session = open_session(path, device, int(options["threads"]) or None)
        inputs = self.session.get_inputs()
        shape = list(inputs[0].shape)
        fits = len(shape) == 4 and all(
            d == want or not isinstance(d, int) for d, want in zip(shape[1:], (3, 112, 112), strict=True)
        )
        if len(inputs) != 1 or not fits:
            raise CheckpointError(
                f"{path}: input {inputs[0].name} {shape} is not OFIQ's N x 3 x 112 x 112; point to magface_iresnet50_norm.onnx."
            )
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def magnitudes(self, images: np.ndarray) -> np.ndarray:
        """The network's native score per image (the first output value, as OFIQ reads it)."""
        x = ofiq_input(images)
        step = self.fixed_batch or len(x)
        outs = []
        for i in range(0, len(x), step):
            out = np.asarray(self.session.run([self.output_name], {self.input_name: x[i : i + step]})[0])
            per_image = out.reshape(len(x[i : i + step]), -1)
            if per_image.shape[1] != 1:
                raise CheckpointError(
                    f"{self.weights_path}: gives {per_image.shape[1]} values per image, OFIQ's magface_iresnet50_norm.onnx "
                    "gives 1 (the magnitude). This looks like an embedding model: use it as an FR model (onnx:PATH)."
                )
            outs.append(per_image[:, 0])
        return np.concatenate(outs).astype(np.float64)

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        m = self.magnitudes(images)
        output = self.options["output"]
        return m if output == "magnitude" else ofiq_sigmoid(m, rounded=output == "uqs")


register_method(OFIQ_UQS_CARD)(OfiqUqs)
