"""Building blocks of the insightface face ViT (arcface_torch ``backbones/vit.py``), shared by the
TransFace FR model and the ViT-FIQA quality method, with the parameter names their checkpoints use.

Re-implemented from the authors' code (read, not copied): patch embedding Conv2d(3, D, P, stride P) on
112 x 112 (P = 9: 12 x 12 = 144 tokens; the last 4 pixel rows/columns are not seen), pre-norm blocks
x + attn(LayerNorm(x)), x + mlp(LayerNorm(x)), attention with a bias-free ``qkv`` Linear, scale
head_dim^-0.5 and a ``proj`` Linear with bias, MLP fc1 -> ReLU6 -> fc2. Every face-ViT config of these
repositories uses 8 heads, which the weights cannot reveal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from fiqa_bench.errors import CheckpointError

HEADS = 8


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int = HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q.float() @ k.float().transpose(-2, -1)) * self.scale).softmax(
            dim=-1
        )  # float32, as the reference
        return self.proj((attn @ v.float()).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU6()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int, heads: int = HEADS) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def vit_config(
    state: Mapping[str, torch.Tensor], source: str, what: str, required: tuple[str, ...] = ()
) -> dict[str, int]:
    """Width, depth, MLP width and patch size of a face-ViT state_dict (``module.`` tolerated), or one error."""
    keys = {k.removeprefix("module."): v for k, v in state.items()}
    conv = keys.get("patch_embed.proj.weight")
    fc1 = keys.get("blocks.0.mlp.fc1.weight")
    if conv is None or fc1 is None or any(r not in keys for r in required):
        need = ", ".join(("patch_embed.proj.weight", "blocks.0.mlp.fc1.weight", *required))
        first = ", ".join(list(keys)[:3]) or "none"
        raise CheckpointError(f"{source}: not a {what} checkpoint (needs {need}; first keys: {first}).")
    depth = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"blocks\.(\d+)\.", k)))
    return {
        "dim": int(conv.shape[0]),
        "depth": depth,
        "hidden": int(fc1.shape[0]),
        "patch": int(conv.shape[-1]),
    }
