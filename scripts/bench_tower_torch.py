#!/usr/bin/env python3
"""PyTorch CPU reference of model/examples/bench_tower.rs: the same LEARN training step.

One step = Linear(in->d) -> post-LN BERT-like causal transformer (no positions) -> Linear(d->64)
-> L2 norm, over the history (80) and the target (40) with shared weights; dense all-action
InfoNCE (logit scale 20, negatives = other users' targets); backward; Adam(eps=1e-8).

Install: pip install torch --index-url https://download.pytorch.org/whl/cpu
Usage:   python3 scripts/bench_tower_torch.py [small|paper|both] [steps] [threads] [rounds] [burn-bench]
         With `burn-bench` (the path of the built `bench_tower` example, e.g.
         target/release/examples/bench_tower) the two alternate, A,B,A,B for `rounds` rounds, with
         the same thread count (RAYON_NUM_THREADS for Burn), each round printing the load average:
         python3 scripts/bench_tower_torch.py small 3 2 3 target/release/examples/bench_tower
"""
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Tower(nn.Module):
    def __init__(self, inp, d, heads, layers):
        super().__init__()
        self.proj = nn.Linear(inp, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=False, layer_norm_eps=1e-12)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, 64)

    def forward(self, x):
        l = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(l)
        h = self.enc(self.proj(x), mask=mask, is_causal=True)
        return F.normalize(self.out(h), dim=-1)


def dense_loss(u, it, scale=20.0):
    b, lh, d = u.shape
    lt = it.shape[1]
    s = (u.reshape(b * lh, d) @ it.reshape(b * lt, d).T) * scale  # [r, c]
    m = s.max(dim=1, keepdim=True).values.detach()
    neg = 1.0 - torch.block_diag(*[torch.ones(1, lt)] * b)  # [b, c]: other users' targets
    neg_sum = ((s - m).exp().reshape(b, lh, b * lt) * neg.unsqueeze(1)).sum(-1, keepdim=True)
    s_pos = torch.bmm(u, it.transpose(1, 2)) * scale
    m = m.reshape(b, lh, 1)
    log_denom = ((s_pos - m).exp() + neg_sum).log() + m
    return (log_denom - s_pos).mean()


def bench(name, layers, d, heads, batch, inp, steps):
    torch.manual_seed(0)
    model = Tower(inp, d, heads, layers)
    opt = torch.optim.Adam(model.parameters(), lr=5e-5, eps=1e-8)
    hist = torch.rand(batch, 80, inp) - 0.5
    tgt = torch.rand(batch, 40, inp) - 0.5
    times, split = [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = dense_loss(model(hist), model(tgt))
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        if i > 0:
            t3 = time.perf_counter()
            times.append(t3 - t0)
            split.append((t1 - t0, t2 - t1, t3 - t2))
    times.sort()
    med = times[len(times) // 2]
    f, b, o = (sorted(s[k] for s in split)[len(split) // 2] * 1e3 for k in range(3))
    print(f"{name:<6} torch    median step {med * 1e3:8.1f} ms  {batch / med:7.2f} samples/s  "
          f"(min {times[0] * 1e3:.1f} ms, {steps} steps, {torch.get_num_threads()} threads; "
          f"fwd {f:.1f} bwd {b:.1f} optim {o:.1f} ms)")


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    burn = sys.argv[5] if len(sys.argv) > 5 else None
    env = dict(os.environ, RAYON_NUM_THREADS=str(torch.get_num_threads()))
    for r in range(rounds):
        if burn or rounds > 1:
            load = open("/proc/loadavg").read().split()[:3]
            print(f"--- round {r + 1} load {' '.join(load)}", flush=True)
        for name, args in (("small", (2, 256, 4, 64, 640)), ("paper", (12, 768, 12, 8, 1536))):
            if which not in (name, "both"):
                continue
            if burn:
                subprocess.run([burn, name, str(steps), "lean,fused"], env=env, check=True)
            bench(name, *args, steps)


if __name__ == "__main__":
    main()
