"""One ViT backbone branch of the CKD student (OSTrack one-stream ViT with candidate elimination).

Module and parameter names follow the authors' code so checkpoints load by name:
`patch_embed.proj`, `blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`,
`pos_embed_z`, `pos_embed_x` (+ the dead `cls_token`, `pos_embed`). The branch exposes the steps of
its forward separately so several branches can run in lock-step (MCE, training with teachers).
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import nn

from ckd_ros.model.config import CKDConfig


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.proj(img).flatten(2).transpose(1, 2)  # (B, H*W, C), row-major


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the output and the post-softmax attention (B, heads, N, N), which CE ranks with."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out), attn


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form, as timm
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth per sample (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block, split in two halves because CE sits between them."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attention_residual(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a, attn = self.attn(self.norm1(x))
        return x + self.drop_path(a), attn

    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViTBranch(nn.Module):
    """One modality's backbone: patch embed, positional embeddings, blocks, final LayerNorm."""

    def __init__(self, config: CKDConfig):
        super().__init__()
        c = config
        self.config = c
        # Dead weights kept so the authors' 152-key branch layout loads strictly.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 197, c.embed_dim))
        self.pos_embed_z = nn.Parameter(torch.zeros(1, c.num_template_tokens, c.embed_dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, c.num_search_tokens, c.embed_dim))
        self.patch_embed = PatchEmbed(c.patch_size, c.embed_dim)
        rates = torch.linspace(0, c.drop_path_rate, c.depth).tolist()
        self.blocks = nn.ModuleList(Block(c.embed_dim, c.num_heads, c.mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(c.embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed_z, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_x, std=0.02)

    def embed(self, z: torch.Tensor, x: torch.Tensor, keep_x: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Token sequence [template; search]. `keep_x` (B,Lx,1) masks search patches (masked modelling)
        before the positional embedding, so a masked token becomes the bare position embedding."""
        z = self.patch_embed(z)
        x = self.patch_embed(x)
        if keep_x is not None:
            x = x * keep_x
        return torch.cat([z + self.pos_embed_z, x + self.pos_embed_x], dim=1)

    def finish(self, tokens: torch.Tensor, search_index: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm, then scatter surviving search tokens back to raster order.

        `search_index` (B, Ls) holds the raster position of each surviving search token; pruned
        cells stay exact zeros (after the LayerNorm, as in the authors' code, which scatters the
        concatenation [kept, zeros] with [kept, removed] indices: the same values).
        """
        tokens = self.norm(tokens)
        lz = self.config.num_template_tokens
        lx = self.config.num_search_tokens
        z, s = tokens[:, :lz], tokens[:, lz:]
        if s.shape[1] != lx:
            index = search_index.unsqueeze(-1).expand(-1, -1, s.shape[2])
            s = torch.zeros(s.shape[0], lx, s.shape[2], dtype=s.dtype, device=s.device).scatter(1, index, s)
        return torch.cat([z, s], dim=1)


def select_tokens(tokens: torch.Tensor, order: torch.Tensor, num_template: int) -> torch.Tensor:
    """Keep the template tokens and the search tokens at positions `order` (B, k), in that order."""
    search = tokens[:, num_template:]
    kept = search.gather(1, order.unsqueeze(-1).expand(-1, -1, search.shape[2]))
    return torch.cat([tokens[:, :num_template], kept], dim=1)


def rank_search_tokens(attn: torch.Tensor, query: int, num_template: int) -> torch.Tensor:
    """CE score per current search token: attention of template token `query` (CTR_POINT), mean
    over heads. A static slice instead of a boolean mask keeps ONNX shapes static."""
    return attn[:, :, query:query + 1, num_template:].mean(dim=2).mean(dim=1)


def _descending(score: torch.Tensor, n: int) -> torch.Tensor:
    """Positions sorted by descending score; TopK with a constant K exports cleanly (TensorRT)."""
    return torch.topk(score, n, dim=1).indices


class LockstepOutput(NamedTuple):
    """What `lockstep_forward` returns (a tuple: `feats, kept, blocks = lockstep_forward(...)`)."""

    #: per branch: (B, Lz+Lx, C) float tokens after the final LayerNorm; the Lx search tokens in raster
    #: order, pruned cells exactly 0
    features: List[torch.Tensor]
    #: per CE block that pruned (in block order), per branch: (B, k) int64 raster indices (0..Lx-1) of the
    #: search tokens kept so far, in descending-score order (MCE: equal across branches)
    kept: List[List[torch.Tensor]]
    #: per branch, per block: (B, Lz+Ls_i, C) tokens after the block's MLP residual (before the final
    #: LayerNorm; Ls_i = search tokens left after block i). Empty lists unless return_block_outputs=True
    block_outputs: List[List[torch.Tensor]]


def lockstep_forward(branches, zs, xs, config: CKDConfig, keep_x=None, select_from=None,
                     shared=None, return_block_outputs=False) -> LockstepOutput:
    """Run several ViT branches block by block, eliminating candidate search tokens at the CE blocks.

    The lock-step form of the authors' greenlet interleaving (ckd-spec §1.3 candidate elimination,
    §1.4 MCE; training with four branches: §4.2). Inputs: `branches` (ViTBranch, same config),
    `zs` templates (B, 3, T, T) and `xs` search crops (B, 3, S, S), float32 normalised images, one per
    branch; `keep_x` (B, Lx, 1) optional search-patch mask (masked modelling, §4.3).
    shared=True (MCE, default `config.mce`): one ranking from the element-wise max of the attention
    maps of the branches listed in `select_from` (default: all), applied to every branch.
    shared=False: each branch ranks with its own map (plain OSTrack CE). At CE block i, k =
    `config.keep_counts` (ceil(ratio * Ls), Python ints, so the exported graph has static shapes and
    TopK with a constant K); the score of a search token is the head-mean attention of the template
    token `config.ctr_point_index` (CTR_POINT) to it.

    Returns a `LockstepOutput` (features, kept, block_outputs) of three fields, always (block outputs
    are empty lists unless `return_block_outputs`). Raises nothing of its own; shape mismatches
    surface as torch errors.
    """
    shared = config.mce if shared is None else shared
    select_from = list(range(len(branches))) if select_from is None else list(select_from)
    lz = config.num_template_tokens
    query = config.ctr_point_index
    tokens = [br.embed(z, x, keep_x) for br, z, x in zip(branches, zs, xs)]
    batch, device = tokens[0].shape[0], tokens[0].device
    raster = torch.arange(config.num_search_tokens, device=device).unsqueeze(0).expand(batch, -1)
    index = [raster for _ in branches]  # raster position of each current search token
    kept_per_layer = []
    block_outputs = [[] for _ in branches]
    counts = dict(zip(config.ce_loc, config.keep_counts))
    num_search = config.num_search_tokens  # a Python int, so TopK's K is a constant in the exported graph
    for i in range(config.depth):
        attns = []
        for b, br in enumerate(branches):
            tokens[b], attn = br.blocks[i].attention_residual(tokens[b])
            attns.append(attn)
        if i in counts and counts[i] < num_search:
            k = counts[i]
            if shared:
                joint = attns[select_from[0]]
                for b in select_from[1:]:
                    joint = torch.maximum(joint, attns[b])
                orders = [_descending(rank_search_tokens(joint, query, lz), num_search)] * len(branches)
            else:
                orders = [_descending(rank_search_tokens(a, query, lz), num_search) for a in attns]
            layer_kept = []
            for b in range(len(branches)):
                keep = orders[b][:, :k]
                index[b] = index[b].gather(1, keep)
                tokens[b] = select_tokens(tokens[b], keep, lz)
                layer_kept.append(index[b])
            kept_per_layer.append(layer_kept)
            num_search = k
        for b, br in enumerate(branches):
            tokens[b] = br.blocks[i].mlp_residual(tokens[b])
            if return_block_outputs:
                block_outputs[b].append(tokens[b])
    feats = [br.finish(t, idx) for br, t, idx in zip(branches, tokens, index)]
    return LockstepOutput(feats, kept_per_layer, block_outputs)
