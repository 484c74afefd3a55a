"""The refiner: a small convolutional network at output resolution after the UNet (ours).

The UNet works on x8-unshuffled pixels, so its finest features each cover 8 x 8 output pixels
(2 x 2 input pixels at x4). It removes damage and draws texture there, but places edges and
fine structure less precisely than a network that sees every pixel. The refiner sees the
restored frame and the bicubic input at half the output resolution (x2 unshuffle; x4 for a
wider view at the same cost: a quarter of the positions, each with four times the pixels) and adds a
correction, `strength` times its output; its last layer starts at zero, so an untrained refiner
changes nothing. Trained afterwards on the frozen UNet's outputs
(`python -m gendrpix_video.training.refine_fit`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DOWNS = (2, 4)  # unshuffle factors: x2 sees each pixel closely, x4 twice as far for the same work


class _Block(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 3, padding=1)
        self.b = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.b(F.leaky_relu(self.a(h), 0.1))


class Refiner(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 4, down: int = 2):
        super().__init__()
        if down not in DOWNS:
            raise ValueError(f"refiner: down must be one of {DOWNS}, got {down!r}")
        self.down = down
        self.head = nn.Conv2d(6 * down * down, channels, 3, padding=1)
        self.body = nn.Sequential(*[_Block(channels) for _ in range(blocks)])
        self.tail = nn.Conv2d(channels, 3 * down * down, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Refiner":
        """A refiner of the shape `state` (a state dict) holds, with those weights."""
        down = round((state["head.weight"].shape[1] / 6) ** 0.5)
        net = cls(state["head.weight"].shape[0], len([k for k in state if k.endswith(".a.weight")]), down)
        net.load_state_dict(state, strict=True)
        return net

    @property
    def shape(self) -> tuple[int, ...]:
        """The config's `refiner` entry for this refiner: (channels, blocks[, down when not 2])."""
        base = (self.head.out_channels, len(self.body))
        return base if self.down == 2 else base + (self.down,)

    def forward(self, y: torch.Tensor, x_up: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """`y`: the restored frames, `x_up`: the bicubic input at the same size (N x 3 x H x W,
        [0, 1], any H and W). Returns y plus `strength` times the correction (not clamped)."""
        h, w = y.shape[-2:]
        z = torch.cat([y * 2 - 1, x_up.to(y.dtype) * 2 - 1], 1)
        d = self.down
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:  # odd sizes: edge pixels repeated, cropped off again below
            z = F.pad(z, (0, pw, 0, ph), mode="replicate")
        feat = F.leaky_relu(self.head(F.pixel_unshuffle(z, d)), 0.1)
        r = F.pixel_shuffle(self.tail(self.body(feat)), d)[..., :h, :w]
        return y + r * (0.5 * strength)
