"""PyTorch eager peer of models.Transformer, for speed and equivalence checks.

The same network, written the way a PyTorch user would (nn.Linear, F.layer_norm,
matmul-softmax attention, since libtorch 1.13 has no fused attention), run on
the same libtorch as the Go code (Debian's python3-torch: /usr/bin/python3).

  /usr/bin/python3 models/testdata/peer.py bench     # tokens/s, as BenchmarkForwardBackward
  /usr/bin/python3 models/testdata/peer.py check DIR # logits for a model dumped by peer_test.go
                                                     # (go test -tags peer ./models); on the
                                                     # device PEER_DEVICE names (default cpu)

Parameter names match the Go model's, so one state dict serves both.
"""
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "tiny": dict(layers=4, width=128, heads=4, cond_dim=64),
    "small-cpu": dict(layers=4, width=256, heads=4, cond_dim=128),
}


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    def __init__(self, head_dim, max_len):
        super().__init__()
        inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).double() / head_dim))
        ang = torch.outer(torch.arange(max_len).double(), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, x):  # x [B, H, L, D]
        l = x.shape[2]
        return x * self.cos[:l] + rotate_half(x) * self.sin[:l]


class Norm(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(w))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight)


class Attn(nn.Module):
    def __init__(self, w, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(w, 3 * w, bias=False)
        self.out = nn.Linear(w, w, bias=False)


class MLP(nn.Module):
    def __init__(self, w, hidden):
        super().__init__()
        self.fc1 = nn.Linear(w, hidden)
        self.fc2 = nn.Linear(hidden, w)


class Block(nn.Module):
    def __init__(self, w, heads, hidden, cond, dropout):
        super().__init__()
        self.norm1, self.norm2 = Norm(w), Norm(w)
        self.attn, self.mlp = Attn(w, heads), MLP(w, hidden)
        self.ada = nn.Linear(cond, 6 * w) if cond else None
        self.dropout = dropout

    def forward(self, x, c, rope, mask):
        b, l, w = x.shape
        h = self.attn.heads
        if self.ada is not None:
            sh1, sc1, g1, sh2, sc2, g2 = self.ada(c)[:, None].chunk(6, dim=2)
        y = self.norm1(x)
        if self.ada is not None:
            y = y * (1 + sc1) + sh1
        q, k, v = self.attn.qkv(y).view(b, l, 3, h, w // h).permute(2, 0, 3, 1, 4)
        q, k = rope(q), rope(k)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(w // h)
        if mask is not None:
            att = att + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, l, w)
        y = F.dropout(self.attn.out(y), self.dropout, self.training)
        x = x + g1 * y if self.ada is not None else x + y
        y = self.norm2(x)
        if self.ada is not None:
            y = y * (1 + sc2) + sh2
        y = F.dropout(self.mlp.fc2(F.gelu(self.mlp.fc1(y), approximate="tanh")), self.dropout, self.training)
        return x + g2 * y if self.ada is not None else x + y


class TimeEmbed(nn.Module):
    def __init__(self, cond):
        super().__init__()
        half = cond // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(half).float() / half), persistent=False)
        self.fc1, self.fc2 = nn.Linear(cond, cond), nn.Linear(cond, cond)

    def forward(self, sigma):
        a = sigma[:, None] * self.freqs[None]
        f = torch.cat((a.cos(), a.sin()), dim=-1)
        return F.silu(self.fc2(F.silu(self.fc1(f))))


class Output(nn.Module):
    def __init__(self, w, vocab_out, cond):
        super().__init__()
        self.norm = Norm(w)
        self.ada = nn.Linear(cond, 2 * w) if cond else None
        self.proj = nn.Linear(w, vocab_out)

    def forward(self, x, c):
        y = self.norm(x)
        if self.ada is not None:
            sh, sc = self.ada(c)[:, None].chunk(2, dim=2)
            y = y * (1 + sc) + sh
        return self.proj(y)


class Transformer(nn.Module):
    def __init__(self, layers, width, heads, cond_dim, vocab_in, vocab_out, causal, time_cond, max_len, dropout, hidden=None):
        super().__init__()
        cond = cond_dim if time_cond else 0
        self.embed = nn.Embedding(vocab_in, width)
        self.time = TimeEmbed(cond_dim) if time_cond else None
        self.blocks = nn.ModuleList(Block(width, heads, hidden or 4 * width, cond, dropout) for _ in range(layers))
        self.output = Output(width, vocab_out, cond)
        self.rope = Rotary(width // heads, max_len)
        self.causal = causal

    def forward(self, x, sigma=None):
        l = x.shape[1]
        mask = torch.full((l, l), float("-inf")).triu(1) if self.causal else None
        c = self.time(sigma) if self.time is not None else None
        h = self.embed(x)
        for b in self.blocks:
            h = b(h, c, self.rope, mask)
        return self.output(h, c)


def bench():
    batch, length, vocab = 8, 128, 8192
    torch.manual_seed(1)
    for preset in ("tiny", "small-cpu"):
        for use, vin, causal, tc in (("mdlm", vocab + 1, False, False), ("sedd", vocab + 1, False, True), ("ar", vocab, True, False)):
            m = Transformer(**PRESETS[preset], vocab_in=vin, vocab_out=vocab, causal=causal, time_cond=tc, max_len=length, dropout=0.1)
            m.train()
            opt = torch.optim.Adam(m.parameters(), 1e-3)
            x = torch.randint(vocab, (batch, length))
            sigma = torch.tensor([0.1, 0.5, 1, 2, 3, 4, 5, 6]) if tc else None

            def step():
                opt.zero_grad()
                logits = m(x, sigma)
                F.cross_entropy(logits.view(-1, vocab), x.view(-1)).backward()

            step()
            n, t0, c0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - t0 < 5 or n < 5:
                step()
                n += 1
            dt, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
            print(f"{preset}/{use}: {dt * 1e3:.1f} ms/step, {batch * length / dt:.0f} tokens/s, {cpu * 1e3:.1f} cpu-ms/step (threads {torch.get_num_threads()})")


def check(d):
    """Loads a model and inputs dumped by peer_test.go and writes its logits."""
    import json

    import numpy as np

    with open(os.path.join(d, "manifest.json")) as f:
        man = json.load(f)
    read = lambda name, dtype, shape: torch.from_numpy(np.fromfile(os.path.join(d, name), dtype=dtype).reshape(shape))
    m = Transformer(**{k: man[k] for k in ("layers", "width", "heads", "hidden", "cond_dim", "vocab_in", "vocab_out", "causal", "time_cond", "max_len")}, dropout=0.0)
    m.load_state_dict({n: read(n + ".bin", "<f4", s) for n, s in man["params"].items()}, strict=True)
    dev = torch.device(os.environ.get("PEER_DEVICE", "cpu"))
    m.eval().to(dev)
    x = read("x.bin", "<i8", man["x_shape"]).to(dev)
    sigma = read("sigma.bin", "<f4", [x.shape[0]]).to(dev) if man["time_cond"] else None
    with torch.no_grad():
        m(x, sigma).cpu().numpy().astype("<f4").tofile(os.path.join(d, "logits.bin"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        bench()
    elif len(sys.argv) > 2 and sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        print(__doc__)
