"""PyTorch eager peer of the Go training step, for `experiments -mode bench`.

It builds models.Transformer (DiT-style pre-norm blocks, LayerNorm without
bias, fused qkv without bias, rotary positions, GELU-tanh MLP, untied output;
no time input, which neither mdlm nor ar gives the network) with the Go
model's parameter names and init, and trains it with the Go trainer's step:

    seed(step) → zero_grad → loss (mdlm or ar) → loss.item() → backward
    → clip_grad_norm_ → AdamW → EMA

The network and the losses compute the Go code's maths with the same
libtorch kernels and the same random draws in the same order, written as
plain eager PyTorch: with the same weights (--weights), batches (--batches)
and seed, the two sides compute the same losses. Where the Go step does
less work for the same numbers, this script keeps the plain form, so the
ratio shows what that saves: the Go side projects only the masked rows onto
the vocabulary (and can chunk the cross-entropy), updates one flat buffer
with AdamW and the EMA, takes q, k and v apart with split/unbind and
rotates halves with a flip (here: narrow/select and a cat, whose gradients
zero-fill whole buffers), draws the dropout noise on a second thread
while the layers compute (here: at each site, serially), and runs the
blocks on lanes, the batch's rows split over worker threads with one
intra-op thread each (here: the whole batch through libtorch's pool). The trainer's
parts are stock PyTorch: clip_grad_norm_ and torch.optim.AdamW
(foreach=False, the 1.13 default on CPU).

Run it with Debian's python3-torch (the same libtorch 1.13 as the Go build):

    /usr/bin/python3 bench/torch_train.py --layers 4 --width 256 --seq-len 128 --batch 16

It prints one JSON object: the per-step wall and CPU seconds of every step
(warmup included; the caller takes medians), losses, gradient norms, the
parameter count and names.
"""
import argparse
import json
import math
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MASK64 = (1 << 64) - 1


def peak_rss_kib():
    """This process's peak resident memory: VmHWM, the high-water mark of its own address space.

    Not getrusage's ru_maxrss: Linux carries into it the high-water mark of the
    address space an exec replaced, and a child started with vfork (Go's
    os/exec, Python's subprocess) execs from its parent's, so ru_maxrss
    reports the Go bench process's peak whenever that is the larger.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def step_seed(seed, step):
    """train.stepSeed: splitmix64 of (run seed, step), shifted to a non-negative int64."""
    z = (seed + step * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z >> 1


def read_safetensors(path):
    """The tensors of a safetensors file (as checkpoint.Save writes them), without the safetensors package."""
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[lo:hi]), dtype=dtypes[e["dtype"]]).reshape(e["shape"])
    return out


class Linear(nn.Module):
    """x·wᵀ + b with normal(0, std) weights (zeros for std 0) and zero bias, as models.params.newLinear."""

    def __init__(self, n_in, n_out, std, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in).normal_(0, std))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Norm(nn.Module):
    """LayerNorm with a learned scale and no bias."""

    def __init__(self, width):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


def rotary_tables(max_len, head_dim):
    """cos and [−sin | sin] tables [2, 1, 1, max_len, D], queries' rows scaled by 1/√D (models/rotary.go)."""
    half = head_dim // 2
    theta = torch.tensor([[p * math.pow(10000, -2 * j / head_dim) for j in range(half)] for p in range(max_len)], dtype=torch.float64)
    cos, sin = theta.cos(), theta.sin()
    cos, sin = torch.cat((cos, cos), -1), torch.cat((-sin, sin), -1)
    scale = torch.tensor([1 / math.sqrt(head_dim), 1.0], dtype=torch.float64).view(2, 1, 1, 1, 1)
    return (scale * cos).float(), (scale * sin).float()


class Attention(nn.Module):
    def __init__(self, width, heads, out_std):
        super().__init__()
        self.heads = heads
        self.qkv = Linear(width, 3 * width, 0.02, False)
        self.out = Linear(width, width, out_std, False)

    def forward(self, x, cos, sin, mask):
        b, l, w = x.shape
        h = self.heads
        d = w // h
        heads = self.qkv(x).view(b, l, 3, h, d).permute(2, 0, 3, 1, 4)  # [3, B, H, L, D]
        qk = heads[:2]
        qk = torch.addcmul(torch.cat((qk[..., d // 2:], qk[..., : d // 2]), -1) * sin, qk, cos)  # rotate q and k at once
        q, k, v = qk[0], qk[1], heads[2]
        q3, kT, v3 = q.reshape(b * h, l, d), k.reshape(b * h, l, d).transpose(1, 2), v.reshape(b * h, l, d)
        scores = torch.baddbmm(mask, q3, kT) if mask is not None else torch.bmm(q3, kT)
        ctx = torch.bmm(scores.softmax(-1), v3).view(b, h, l, d)
        return self.out(ctx.permute(0, 2, 1, 3).reshape(b, l, w))


class Block(nn.Module):
    def __init__(self, width, heads, hidden, residual_std, dropout):
        super().__init__()
        self.norm1 = Norm(width)
        self.attn = Attention(width, heads, residual_std)
        self.norm2 = Norm(width)
        self.mlp = nn.Module()
        self.mlp.fc1 = Linear(width, hidden, 0.02, True)
        self.mlp.fc2 = Linear(hidden, width, residual_std, True)
        self.dropout = dropout

    def forward(self, x, cos, sin, mask):
        x = x + F.dropout(self.attn(self.norm1(x), cos, sin, mask), self.dropout, self.training)
        f = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x)), approximate="tanh"))
        return x + F.dropout(f, self.dropout, self.training)


class Transformer(nn.Module):
    def __init__(self, a):
        super().__init__()
        residual_std = 0.02 / math.sqrt(2 * a.layers)
        hidden = int(a.mlp_ratio * a.width + 0.5)
        self.embed = nn.Module()
        self.embed.weight = nn.Parameter(torch.empty(a.vocab_in, a.width).normal_(0, 0.02))
        self.blocks = nn.ModuleList(Block(a.width, a.heads, hidden, residual_std, a.dropout) for _ in range(a.layers))
        self.output = nn.Module()
        self.output.norm = Norm(a.width)
        self.output.proj = Linear(a.width, a.vocab_out, 0.02, True)
        self.causal = a.causal
        cos, sin = rotary_tables(a.seq_len, a.width // a.heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x):
        l = x.shape[1]
        mask = torch.full((l, l), float("-inf")).triu(1) if self.causal else None
        h = F.embedding(x, self.embed.weight)
        cos, sin = self.cos[:, :, :, :l], self.sin[:, :, :, :l]
        for b in self.blocks:
            h = b(h, cos, sin, mask)
        return self.output.proj(self.output.norm(h))


def nll(logits, x):
    """−log softmax(logits)[x]: logsumexp minus the picked logit (losses.nll)."""
    return logits.logsumexp(-1) - logits.gather(-1, x.unsqueeze(-1)).squeeze(-1)


def draw_times(n, antithetic):
    """losses' draw: one uniform time per sequence, i.i.d. or (u + b/n) mod 1."""
    if not antithetic:
        return torch.rand(n, dtype=torch.float64).tolist()
    u = torch.rand(1, dtype=torch.float64).item()
    return [math.fmod(u + i / n, 1) for i in range(n)]


def mdlm_terms(model, x0, t, vocab, eps):
    """MDLM's continuous-time bound under the log-linear schedule: per-token (bound, prior) [B, L]."""
    sigma = [-math.log1p(-(1 - eps) * v) for v in t]
    moved = torch.tensor([-math.expm1(-s) for s in sigma], dtype=torch.float64).view(-1, 1)
    xt = x0.masked_fill(torch.rand(x0.shape, dtype=torch.float64) < moved, vocab)
    weight = [((1 - eps) / (1 - (1 - eps) * v)) / math.expm1(s) if s > 0 else 0.0 for v, s in zip(t, sigma)]
    logits = model(xt)
    masked = (xt == vocab).float()
    cost = nll(logits, x0) * masked * torch.tensor(weight, dtype=torch.float64).view(-1, 1).float()
    prior = torch.full(x0.shape, (1 - (1 - eps)) * math.log(vocab), dtype=torch.float64).float()  # α(1)·log V
    return cost + prior, prior


def ar_terms(model, x0, vocab):
    """Next-token NLL of the causal model on [BOS = V, x0_0, …, x0_{L−2}]."""
    bos = torch.full((x0.shape[0], 1), vocab, dtype=x0.dtype)
    cost = nll(model(torch.cat((bos, x0[:, :-1]), 1)), x0)
    return cost, torch.zeros_like(cost)


def loss_and_stats(model, x0, a):
    """losses' Loss: Σ bound / Σ weight (weights all one), and the logged per-token stats."""
    t = draw_times(x0.shape[0], a.t_sampling == "antithetic")  # ar draws too, as the Go objective does
    bound, prior = mdlm_terms(model, x0, t, a.vocab, a.mask_eps) if a.objective == "mdlm" else ar_terms(model, x0, a.vocab)
    w = torch.ones_like(bound)
    total = w.sum()
    loss = (bound * w).sum() / total
    with torch.no_grad():
        stats = {"tokens": total.item(), "nelbo": (bound * w).sum().item(), "prior": (prior * w).sum().item()}
    return loss, stats


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arch = p.add_argument_group("network (defaults: the tiny preset)")
    arch.add_argument("--layers", type=int, default=4)
    arch.add_argument("--width", type=int, default=128)
    arch.add_argument("--heads", type=int, default=4)
    arch.add_argument("--mlp-ratio", type=float, default=4)
    arch.add_argument("--dropout", type=float, default=0.1)
    arch.add_argument("--vocab", type=int, default=4096, help="real tokens V (inputs V+1 with the mask or BOS, outputs V)")
    p.add_argument("--objective", choices=("mdlm", "ar"), default="mdlm")
    p.add_argument("--mask-eps", type=float, default=1e-3, help="ε of the log-linear schedule (mdlm)")
    p.add_argument("--t-sampling", choices=("antithetic", "uniform"), default="antithetic")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=13, help="optimizer steps, warmup included")
    p.add_argument("--threads", type=int, required=True, help="torch.set_num_threads (pass the Go side's count)")
    p.add_argument("--seed", type=int, default=1, help="run seed; step s draws its noise from seed(step_seed(seed, s))")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--adam-eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--clip", type=float, default=1.0, help="max gradient norm; 0 only measures the norm")
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay; 0 turns it off")
    p.add_argument("--foreach", action="store_true", help="torch.optim.AdamW(foreach=True) instead of the 1.13 default")
    p.add_argument("--weights", help="safetensors file of initial weights (checkpoint.ExportModel of the Go model)")
    p.add_argument("--batches", help="safetensors file whose int64 tensor 'tokens' [steps, batch, seq_len] holds the batches")
    a = p.parse_args()
    a.causal = a.objective == "ar"
    a.vocab_in, a.vocab_out = a.vocab + 1, a.vocab

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Transformer(a)
    if a.weights:
        model.load_state_dict(read_safetensors(a.weights), strict=True)
    model.train()
    if a.batches:
        batches = read_safetensors(a.batches)["tokens"]
        if list(batches.shape[1:]) != [a.batch, a.seq_len] or batches.shape[0] < a.steps:
            sys.exit(f"--batches {a.batches}: tokens {list(batches.shape)}, want at least [{a.steps}, {a.batch}, {a.seq_len}]")
    else:
        batches = torch.randint(a.vocab, (a.steps, a.batch, a.seq_len))
    params = [p for _, p in sorted(model.named_parameters())]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.adam_eps, weight_decay=a.weight_decay, foreach=a.foreach)
    shadow = [p.detach().clone() for p in params] if a.ema > 0 else []

    out = {"params": sum(p.numel() for p in params), "shapes": {n: list(p.shape) for n, p in model.named_parameters()},
           "torch": torch.__version__, "threads": torch.get_num_threads(), "foreach": a.foreach,
           "step_s": [], "cpu_s": [], "loss": [], "grad_norm": []}
    for step in range(1, a.steps + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        torch.manual_seed(step_seed(a.seed, step))
        opt.zero_grad()
        loss, _ = loss_and_stats(model, batches[step - 1], a)  # stats as the Go step computes them, at the same cost
        value = loss.item()
        if not math.isfinite(value):
            sys.exit(f"step {step}: loss is {value}")
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(params, a.clip if a.clip > 0 else math.inf))
        opt.step()
        with torch.no_grad():
            for s, p in zip(shadow, params):
                s.lerp_(p, 1 - a.ema)
        out["step_s"].append(time.perf_counter() - wall)
        out["cpu_s"].append(time.process_time() - cpu)
        out["loss"].append(value)
        out["grad_norm"].append(norm)
    out["peak_rss_kib"] = peak_rss_kib()
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
