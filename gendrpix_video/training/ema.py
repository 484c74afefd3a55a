"""An exponential moving average of the generator's weights: what is evaluated and shipped.

Single-step SR training is noisy from step to step (held-out PSNR moved by 0.1-0.3 dB between
evaluations in the first run); the average is the usual remedy and costs one foreach lerp a step.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model import GenDRPix, build_model


class EMA:
    def __init__(self, model: GenDRPix, decay: float):
        self.decay = decay
        # Built afresh rather than deep-copied: the model holds a lock for its inference cache.
        self.model = build_model(model.config, device=model.device)
        self.model.load_state_dict(model.state_dict())
        self.model.scale_range = model.scale_range
        self.model.eval().requires_grad_(False)
        self._src = [p for p in model.parameters()]
        self._dst = [p for p in self.model.parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Short warm-up so an early average is not dominated by the initial weights.
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self._dst, self._src, 1.0 - d)
        for b_dst, b_src in zip(self.model.buffers(), model.buffers()):
            b_dst.copy_(b_src)
        self.model.invalidate()

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd)
