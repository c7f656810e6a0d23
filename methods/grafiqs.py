"""GraFIQs: gradient magnitudes of a BatchNorm-statistics loss (training-free)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Card, Option, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

VARIANTS = ("image", "layer1", "layer2", "layer3", "layer4")

GRAFIQS_CARD = Card(
    name="grafiqs",
    kind="method",
    summary="GraFIQs: sum of |d L_BNS / d input| (or / d a stage output); L_BNS = deviation of the image's BN statistics from the running ones",
    aliases=("grafiq",),
    paper="Kolf, Boutros, Kuijper, Damer, GraFIQs: Face Image Quality Assessment Using Gradient Magnitudes, CVPR Workshops 2024",
    licence="Apache-2.0 (fiqa-bench implementation; GraFIQs' reference code was not used)",
    input_size=(112, 112),
    normalisation="that of the bound FR model (its card)",
    score_direction="lower_better",
    needs_fr_model="torch",
    needs_capabilities=("batchnorm",),
    exempt_degradations=(),
    options=(
        Option(
            "variant",
            "image",
            "gradient w.r.t. the input (image) or a stage output (layer1..layer4)",
            choices=VARIANTS,
        ),
    ),
    notes=(
        "Forward hooks on every BatchNorm2d take the per-channel mean and biased variance of the BN input "
        "for each image; L = mean over BN layers of [MSE(mean, running_mean) + MSE(var, running_var)] "
        "(MSE over channels). Raw score = sum of absolute gradients of L w.r.t. the model input (variant "
        "'image', in the model's normalised input space) or w.r.t. the output of stage layer1..layer4 "
        "(variant 'layerK'); larger = lower quality, flipped once by fiqa-bench. Needs real BN statistics "
        "(a trained model): with random weights it measures nothing. Any torch FR model with BatchNorm2d; "
        "stage variants need iResNet-style layer1..layer4."
    ),
)


class GraFiqs(BaseMethod):
    batch_size = 16

    def __init__(self, ctx: BuildContext) -> None:
        from ._torch import torch_parts

        super().__init__(ctx)
        self.module, self.preprocess = torch_parts(ctx.card, ctx.fr_model)
        variant = ctx.options["variant"]
        if variant != "image" and not hasattr(self.module, variant):
            raise FiqaError(
                f"grafiqs: variant {variant!r} needs a model with a stage called {variant}; this one has none. Use variant=image."
            )

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        import torch
        from torch import nn

        module = self.module
        variant = self.options["variant"]
        losses: list[torch.Tensor] = []
        stage_out: list[torch.Tensor] = []

        def bn_hook(m: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].float()
            mean = x.mean(dim=(2, 3))
            var = x.var(dim=(2, 3), unbiased=False)
            rm, rv = m.running_mean.float(), m.running_var.float()
            losses.append(((mean - rm) ** 2).mean(1) + ((var - rv) ** 2).mean(1))  # per image

        def stage_hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            stage_out.append(output)

        handles = [
            m.register_forward_hook(bn_hook) for m in module.modules() if isinstance(m, nn.BatchNorm2d)
        ]
        if variant != "image":
            handles.append(getattr(module, variant).register_forward_hook(stage_hook))
        was_training = module.training
        module.eval()
        try:
            with torch.enable_grad():
                x = self.preprocess(images).detach().requires_grad_(True)
                if hasattr(module, "forward_backbone"):
                    module.forward_backbone(x)  # every BatchNorm2d lives in the backbone
                else:
                    module(x)
                loss = torch.stack(losses, 0).mean(0)  # N: mean over BN layers
                target = x if variant == "image" else stage_out[0]
                # Images are independent in eval mode, so d(sum)/d(x_i) = d(loss_i)/d(x_i).
                (grad,) = torch.autograd.grad(loss.sum(), target)
        finally:
            for h in handles:
                h.remove()
            module.train(was_training)
        return grad.abs().flatten(1).sum(1).double().cpu().numpy()


register_method(GRAFIQS_CARD)(GraFiqs)
