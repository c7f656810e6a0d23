"""The face-ViT encoder shared by TransFace (backbones/vit.py) and ViT-FIQA (backbones/vit_qs.py), written
functionally from the authors' code as the tests' independent reference: patch embedding, pre-norm blocks
(multi-head attention with SDPA, ReLU6 MLP), final LayerNorm. Not the package's code."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_tokens(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """N x 3 x 112 x 112 -> N x 144 x D tokens of the 9-px patch embedding (no position yet)."""
    conv = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=9)
    return conv.flatten(2).transpose(1, 2)


def encode(state: dict[str, torch.Tensor], t: torch.Tensor, depth: int, heads: int = 8) -> torch.Tensor:
    """``depth`` pre-norm transformer blocks and the final LayerNorm over tokens ``t`` (N x T x D)."""
    b, n, d = t.shape
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(t, (d,), state[p + "norm1.weight"], state[p + "norm1.bias"])
        q, k, v = (
            (h @ state[p + "attn.qkv.weight"].T).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        )
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        t = t + F.linear(a, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        h = F.layer_norm(t, (d,), state[p + "norm2.weight"], state[p + "norm2.bias"])
        h = F.relu6(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"]))
        t = t + F.linear(h, state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
    return F.layer_norm(t, (d,), state["norm.weight"], state["norm.bias"])
