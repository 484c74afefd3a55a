#!/usr/bin/env python3
"""Time refiner shapes as the engine runs them (GPU machine): one 3840x2160 frame at a time, bf16,
channels-last, the restored frame and the bicubic input in. Prints ms a frame (median of 5
passes of 10 frames after a warm-up) and the peak memory of the pass, per shape CHANNELS,BLOCKS,DOWN.
usage: python3 scripts/refiner_speed.py [SHAPE ...]   (default: 32,4,2 48,8,4 64,6,4)
"""
import statistics
import sys

import torch

from gendrpix_video.refiner import Refiner

shapes = [tuple(int(v) for v in s.split(",")) for s in sys.argv[1:]] or [(32, 4, 2), (48, 8, 4), (64, 6, 4)]
dev = torch.device("cuda")
y = torch.rand(1, 3, 2160, 3840, device=dev).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
x_up = torch.rand_like(y)
print(torch.cuda.get_device_name(dev))
for c, b, d in shapes:
    net = Refiner(c, b, d).to(dev, torch.bfloat16).to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        for _ in range(3):
            net(y, x_up)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        times = []
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                net(y, x_up)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 10)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    params = sum(p.numel() for p in net.parameters())
    print(f"refiner {c} channels, {b} blocks, x{d} unshuffle ({params / 1e3:.0f}k parameters): "
          f"{statistics.median(times):.2f} ms a 4K frame, {peak:.2f} GiB above the inputs")
