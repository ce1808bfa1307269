#!/usr/bin/python3
"""The Python side of bench/train-throughput.sh: PyTorch's Python front end (Debian's
python3-torch, the same LibTorch the engine links) training the engine's models on
the same data, batch size and thread count, doing the same work per step as the
engine's loop (worker/engine/engine.cc):

    x, y = train_x.index_select(0, idx), train_y.index_select(0, idx)
    optimizer.zero_grad(); logits = model(x); loss = cross_entropy(logits, y)
    (+ the L2 penalty on conv kernels for the ResNets, as the engine adds it)
    loss.backward(); optimizer.step()
    loss_sum += loss.item() * size; correct += (logits.argmax(1) == y).sum().item()

and, per epoch, a validation pass over the test set in batches of 1000. What the
engine does besides (fingerprints: per-batch digests, per-epoch weight hashes) is not
done here; the engine is timed with and without it.

The models are written here layer for layer after worker/engine/models.cc and
resnet.cc, with the same module names and registration order; --shapes prints the
(name, shape) list of parameters then buffers, which the driver compares with the
engine's (train_bench --shapes) before timing anything.

Prints one JSON line per epoch, with the same keys as train_bench.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3        # Keras's BatchNormalization default
BN_MOMENTUM = 0.01   # 1 - Keras's 0.99
EVAL_BATCH = 1000


# ---------------------------------------------------------------- models

class SmallCnn(nn.Module):
    """models.cc: conv 5x5 to 8, ReLU, 2x2 max pool; conv 5x5 to 16, ReLU, pool;
    dense 64, ReLU; dense to classes."""

    def __init__(self, channels=1, height=28, width=28, classes=10):
        super().__init__()
        side_h = ((height - 4) // 2 - 4) // 2
        side_w = ((width - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(channels, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.fc1 = nn.Linear(16 * side_h * side_w, 64)
        self.fc2 = nn.Linear(64, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), [2, 2])
        x = F.max_pool2d(F.relu(self.conv2(x)), [2, 2])
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def keras_same_padding(height, width, kernel, stride):
    def total(size):
        same = (size + stride - 1) // stride
        return max((same - 1) * stride + kernel - size, 0)
    h, w = total(height), total(width)
    return (w // 2, w - w // 2, h // 2, h - h // 2)


class SameConv(nn.Conv2d):
    """resnet.cc's SameConv: Keras's padding="same"; stride 1 with an odd kernel pads
    symmetrically, anything else pads explicitly (constant_pad_nd) before a conv with
    padding 0."""

    def __init__(self, cin, cout, kernel, stride):
        self.explicit_padding = stride != 1 or kernel % 2 == 0
        super().__init__(cin, cout, kernel, stride=stride,
                         padding=0 if self.explicit_padding else (kernel - 1) // 2, bias=True)
        self.kernel, self.conv_stride = kernel, stride

    def forward(self, x):
        if self.explicit_padding:
            pad = keras_same_padding(x.size(2), x.size(3), self.kernel, self.conv_stride)
            if pad != (0, 0, 0, 0):
                x = torch.constant_pad_nd(x, pad, 0)
        return super().forward(x)


def bn(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """ResNet v1: conv3x3(stride)-BN-ReLU, conv3x3-BN, + shortcut, ReLU."""

    def __init__(self, cin, filters, stride, project):
        super().__init__()
        self.conv1 = SameConv(cin, filters, 3, stride)
        self.bn1 = bn(filters)
        self.conv2 = SameConv(filters, filters, 3, 1)
        self.bn2 = bn(filters)
        self.shortcut = SameConv(cin, filters, 1, stride) if project else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(skip + y)


class BottleneckBlock(nn.Module):
    """ResNet v2: [BN-ReLU]-conv1x1(stride), BN-ReLU-conv3x3, BN-ReLU-conv1x1, + shortcut."""

    def __init__(self, block_in, cin, cout, stride, preactivate, project):
        super().__init__()
        self.bn1 = bn(block_in) if preactivate else None
        self.conv1 = SameConv(block_in, cin, 1, stride)
        self.bn2 = bn(cin)
        self.conv2 = SameConv(cin, cin, 3, 1)
        self.bn3 = bn(cin)
        self.conv3 = SameConv(cin, cout, 1, 1)
        self.shortcut = SameConv(block_in, cout, 1, stride) if project else None

    def forward(self, x):
        y = F.relu(self.bn1(x)) if self.bn1 is not None else x
        y = self.conv1(y)
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        skip = self.shortcut(x) if self.shortcut is not None else x
        return skip + y


class ResNet(nn.Module):
    """resnet.cc's ResNetImpl: Keras's CIFAR-10 ResNet v1 (depth 6n+2) and v2 (9n+2)."""

    def __init__(self, version, depth, channels=3, height=32, width=32, classes=10):
        super().__init__()
        self.conv1 = SameConv(channels, 16, 3, 1)
        self.bn1 = bn(16)
        blocks = (depth - 2) // (6 if version == 1 else 9)
        cur, filters_in = 16, 16
        self.blocks = []
        for stage in range(3):
            holder = nn.Module()
            self.add_module("stage%d" % stage, holder)
            filters_out = filters_in if version == 1 else filters_in * (4 if stage == 0 else 2)
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                if version == 1:
                    made = BasicBlock(cur, filters_in, stride, stage > 0 and block == 0)
                else:
                    made = BottleneckBlock(cur, filters_in, filters_out, stride,
                                           not (stage == 0 and block == 0), block == 0)
                holder.add_module("block%d" % block, made)
                self.blocks.append(made)
                cur = filters_out
            filters_in = filters_in * 2 if version == 1 else filters_out
        self.bn_final = bn(cur) if version == 2 else None
        pooled_h = ((height + 1) // 2 + 1) // 2 // 8
        pooled_w = ((width + 1) // 2 + 1) // 2 // 8
        self.fc = nn.Linear(cur * pooled_h * pooled_w, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for block in self.blocks:
            x = block(x)
        if self.bn_final is not None:
            x = F.relu(self.bn_final(x))
        x = F.avg_pool2d(x, [8, 8])
        return self.fc(torch.flatten(x, 1))


def regularized_weights(model):
    """ClassifierImpl::RegularizedWeights: every Conv2d kernel, in module order."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def l2_penalty(weights, l2):
    penalty = None
    if not l2 > 0:
        return None
    for w in weights:
        term = w.square().sum() * l2
        penalty = term if penalty is None else penalty + term
    return penalty


# ---------------------------------------------------------------- data

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = magic & 0xff
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def idx_file(directory, name):
    plain = os.path.join(directory, name)
    return plain + ".gz" if os.path.exists(plain + ".gz") else plain


def load_idx(directory, train_limit, test_limit):
    def split(prefix, limit):
        x = read_idx(idx_file(directory, prefix + "-images-idx3-ubyte"))
        y = read_idx(idx_file(directory, prefix + "-labels-idx1-ubyte"))
        if limit:
            x, y = x[:limit], y[:limit]
        # tensor_dataset.cc: float(pixel) / 255.0f, labels as int64
        xf = torch.from_numpy(x.astype(np.float32) / np.float32(255.0)).unsqueeze(1).contiguous()
        return xf, torch.from_numpy(y.astype(np.int64))
    return split("train", train_limit), split("t10k", test_limit)


def load_cifar(directory, train_limit, test_limit):
    def read(names, limit):
        raw = b"".join(open(os.path.join(directory, n), "rb").read() for n in names)
        records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        if limit:
            records = records[:limit]
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)
    tx, ty = read(["data_batch_%d.bin" % i for i in range(1, 6)], train_limit)
    vx, vy = read(["test_batch.bin"], test_limit)
    mean = (tx.astype(np.float32) / np.float32(255.0)).astype(np.float64).mean(axis=0)
    mean = mean.astype(np.float32)

    def scale(x):
        return torch.from_numpy(x.astype(np.float32) / np.float32(255.0) - mean).contiguous()
    return (scale(tx), torch.from_numpy(ty)), (scale(vx), torch.from_numpy(vy))


# ---------------------------------------------------------------- training

def shapes(model):
    out = [[n, list(p.shape)] for n, p in model.named_parameters()]
    out += [[n, list(b.shape)] for n, b in model.named_buffers()]
    return out


def evaluate(model, x_all, y_all, l2_weights, l2):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, x_all.size(0), EVAL_BATCH):
            x, y = x_all[start:start + EVAL_BATCH], y_all[start:start + EVAL_BATCH]
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += logits.argmax(1).eq(y).sum().item()
        penalty = l2_penalty(l2_weights, l2)
    model.train()
    return loss_sum / x_all.size(0) + (penalty.item() if penalty is not None else 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset-kind", default="fashion-mnist")
    p.add_argument("--dataset", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--test-limit", type=int, default=0)
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--version", type=int, default=2)
    p.add_argument("--depth", type=int, default=29)
    p.add_argument("--l2", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shapes", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(a.seed)
    cifar = a.dataset_kind == "cifar10"
    if a.model == "resnet":
        model = ResNet(a.version, a.depth) if cifar else ResNet(a.version, a.depth, 1, 28, 28)
    else:
        model = SmallCnn(3, 32, 32) if cifar else SmallCnn()
    if a.shapes:
        print(json.dumps(shapes(model), separators=(",", ":")))
        return
    l2 = a.l2 if a.l2 is not None else (1e-4 if a.model == "resnet" else 0.0)
    (train_x, train_y), (test_x, test_y) = (load_cifar if cifar else load_idx)(
        a.dataset, a.train_limit, a.test_limit)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    l2_weights = regularized_weights(model)
    n = train_x.size(0)
    bs = a.batch_size
    batches = (n + bs - 1) // bs
    generator = torch.Generator().manual_seed(a.seed)
    for epoch in range(a.epochs):
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct = 0.0, 0
        ends, cpu_ends = [], []
        for b in range(batches):
            idx = order[b * bs:(b + 1) * bs]
            x = train_x.index_select(0, idx)
            y = train_y.index_select(0, idx)
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            penalty = l2_penalty(l2_weights, l2)
            if penalty is not None:
                loss = loss + penalty
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * idx.numel()
            correct += logits.detach().argmax(1).eq(y).sum().item()
            ends.append(time.perf_counter())
            cpu_ends.append(time.thread_time())
        evaluate(model, test_x, test_y, l2_weights, l2)
        epoch_seconds = time.perf_counter() - started
        full = n // bs  # full batches; the first and the partial last are left out
        steps = sorted(ends[b] - ends[b - 1] for b in range(1, min(full, len(ends))))
        median = steps[len(steps) // 2] if steps else 0.0
        cpu = sorted(cpu_ends[b] - cpu_ends[b - 1] for b in range(1, min(full, len(ends))))
        cpu_median = cpu[len(cpu) // 2] if cpu else 0.0
        print(json.dumps({
            "side": "python", "fingerprints": False, "epoch": epoch, "steps": batches,
            "median_step_seconds": median,
            "images_per_second": bs / median if median > 0 else 0.0,
            "median_step_cpu_seconds": cpu_median,
            "images_per_cpu_second": bs / cpu_median if cpu_median > 0 else 0.0,
            "steady_seconds": ends[-1] - ends[0],
            "epoch_seconds": epoch_seconds, "loss": loss_sum / n}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
