"""A fused forward and backward for PEFT's LoRA linear layers: the same arithmetic in fewer ops.

PEFT computes `base(x) + lora_B(lora_A(x)) * scaling` as five ops forward (three matmuls, a
multiply, an add) and more backward (the scaled gradient, a second gradient of x added to the
first), each of the elementwise ones a pass over a tokens x features tensor (and, with float32
adapters on a bf16 base, two casts of the activations). Here the scale is folded
into an `addmm_` (forward: y = x W^T, then y += s (x A^T) B^T in place; backward: dx = g W, then
dx += s (g B) A in place), so no elementwise pass is left, and nothing is computed for an input
that needs no gradient (the first layer's, the frozen base weights).

The adapter weights stay where PEFT keeps them (float32 by default: the optimizer's master copy);
only they are cast, to the activations' dtype, once per call (r x features, negligible), never the
activations. `fuse_lora` swaps the class of each eligible layer for `FusedLinear`, a subclass
whose state dict, saving, merging and loading are PEFT's own (`fused_lora(model)` does so for a
`with` block, as `fit` does around training, and swaps them back after); a layer or a call it does not cover
(DoRA, dropout, several adapters, a mixed batch, merged weights, mixed dtypes) takes PEFT's
forward unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from peft.tuners.lora.layer import Linear as LoraLinear


class LoraLinearFunction(torch.autograd.Function):
    """x W^T + b + scale (x A^T) B^T for 2-d x, with hand-written, fused gradients."""

    @staticmethod
    def forward(ctx: Any, x: Any, weight: Any, bias: Any, a: Any, b: Any, scale: float) -> Any:
        a_ = a.to(x.dtype)
        b_ = b.to(x.dtype)
        h = x @ a_.t()
        y = torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()
        y.addmm_(h, b_.t(), alpha=scale)
        ctx.save_for_backward(x, weight, a_, b_, h)
        ctx.scale = scale
        ctx.dtypes = (a.dtype, b.dtype)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        x, weight, a_, b_, h = ctx.saved_tensors
        need_x, need_w, need_bias, need_a, need_b, _ = ctx.needs_input_grad
        scale = ctx.scale
        grad = grad.contiguous()
        gh = grad @ b_ if (need_x or need_a) else None  # d loss / d h, before the scale
        dx = dw = dbias = da = db = None
        if need_x:
            dx = grad @ weight
            dx.addmm_(gh, a_, alpha=scale)
        if need_w:
            dw = grad.t() @ x
        if need_bias:
            dbias = grad.sum(0)
        if need_a:
            da = (gh.t() @ x).mul_(scale).to(ctx.dtypes[0])
        if need_b:
            db = (grad.t() @ h).mul_(scale).to(ctx.dtypes[1])
        return dx, dw, dbias, da, db, None


class FusedLinear(LoraLinear):
    """PEFT's LoRA Linear with `LoraLinearFunction` for the plain case (see the module)."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        parts = None if (args or kwargs) else self._fusable(x)
        if parts is None:
            return super().forward(x, *args, **kwargs)
        base, a, b, scale = parts
        flat = x.reshape(-1, x.shape[-1])
        y = LoraLinearFunction.apply(flat, base.weight, base.bias, a.weight, b.weight, scale)
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def _fusable(self, x: torch.Tensor) -> tuple[Any, Any, Any, float] | None:
        """(base layer, lora_A, lora_B, scale) when this call is plain LoRA in one dtype."""
        if self.disable_adapters or self.merged or len(self.active_adapters) != 1:
            return None
        name = self.active_adapters[0]
        if name not in self.lora_A or name in self.lora_variant:
            return None
        if self.fan_in_fan_out or getattr(self, "lora_bias", {}).get(name, False):
            return None
        if not isinstance(self.lora_dropout[name], torch.nn.Identity):
            return None
        base = self.get_base_layer()
        if type(base) is not torch.nn.Linear or base.weight.dtype != x.dtype:
            return None
        device = x.device.type
        if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) != x.dtype:
            return None
        return base, self.lora_A[name], self.lora_B[name], float(self.scaling[name])


@contextmanager
def fused_lora(model: torch.nn.Module) -> Iterator[int]:
    """`fuse_lora` for the duration of a `with` block; yields how many layers were fused."""
    count = fuse_lora(model)
    try:
        yield count
    finally:
        unfuse_lora(model)


def fuse_lora(model: torch.nn.Module) -> int:
    """Give every PEFT LoRA Linear layer of `model` the fused forward; returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is LoraLinear:
            module.__class__ = FusedLinear
            count += 1
    return count


def unfuse_lora(model: torch.nn.Module) -> int:
    """Undo `fuse_lora` (PEFT's forward again); returns how many layers changed."""
    count = 0
    for module in model.modules():
        if type(module) is FusedLinear:
            module.__class__ = LoraLinear
            count += 1
    return count
