#!/usr/bin/python3
"""The Python side of bench/train-throughput.sh (CPU) and bench/gpu-throughput.sh
(--device cuda): PyTorch's Python front end training the engine's models on the same
data, batch size, recipe and thread count, doing the same work per epoch and step as
the engine's loop (worker/engine/engine.cc, batches.cc):

    the training and test sets on the device, moved there once;
    per epoch: the engine's sample order (shuffle.cc's EpochOrder, written here in
    Python and checked against train_bench --order by the drivers), moved to the
    device once (pinned, without blocking);
    per step: x, y = train_x.index_select(0, idx), train_y.index_select(0, idx) on
    the device; optimizer.zero_grad(); logits = model(x); loss = cross_entropy(...)
    (+ the L2 penalty on conv kernels for the ResNets, as the engine adds it);
    loss.backward(); optimizer.step(); the loss and the correct count copied into
    per-epoch tensors on the device (the engine's BatchMetrics), read once per epoch,
    plus the engine's finiteness check of the losses (every batch on the CPU, every 64
    on a GPU);
    per epoch: a validation pass over the test set in batches of 1000, its sums kept
    on the device and read once.

What the engine does besides (fingerprints: per-batch digests, per-epoch weight
hashes) is not done here; train-throughput.sh times the engine with and without it.
Adam is the engine's by default: one parameter at a time (foreach=False), the same
arithmetic as LibTorch's torch::optim::Adam; --adam default takes PyTorch's default
(on CUDA the multi-tensor "foreach" implementation).

Determinism as the engine's RunSpec: --deterministic (the default) sets
torch.use_deterministic_algorithms(True), cudnn.deterministic and, on cuda,
CUBLAS_WORKSPACE_CONFIG=:4096:8 (unless :4096:8 or :16:8 already) before CUDA starts;
--nondeterministic turns the first two off; cudnn.benchmark only with --cudnn-benchmark.

The models are written here layer for layer after worker/engine/models.cc and
resnet.cc, with the same module names and registration order; --shapes prints the
(name, shape) list of parameters then buffers, which the drivers compare with the
engine's (train_bench --shapes) before timing anything; --order prints each epoch's
sample order, compared with train_bench --order.

Prints one JSON line per epoch, with the same keys as train_bench:
  train_seconds: the epoch's training, timed whole (the order's move to the device,
    every step, the finiteness checks; not the validation), with
    torch.cuda.synchronize() at both ends on a GPU; train_images_per_second = the
    epoch's images / train_seconds; mean_step_seconds = train_seconds / steps.
    Epoch 0 pays for one-time work (allocations, cuDNN and cuBLAS start-up): the
    drivers leave it out.
  median_step_seconds, images_per_second (and their CPU-time twins): the median wall
    (CPU) time between the ends of full steps, the first left out: meaningful on the
    CPU only (on a GPU a step's end on the host is not the end of its work);
  epoch_seconds: the epoch with its validation pass.

Needs only torch (no NumPy).
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

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
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


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
        return (x.float() / 255.0).unsqueeze(1).contiguous(), y.long()
    return split("train", train_limit), split("t10k", test_limit)


def load_cifar(directory, train_limit, test_limit):
    def read(names, limit):
        raw = bytearray()
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                raw += f.read()
        records = torch.frombuffer(raw, dtype=torch.uint8).reshape(-1, 3073)
        if limit:
            records = records[:limit]
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].long().contiguous()
    tx, ty = read(["data_batch_%d.bin" % i for i in range(1, 6)], train_limit)
    vx, vy = read(["test_batch.bin"], test_limit)
    # tensor_dataset.cc's CifarPixelMean: float(pixel) / 255.0f summed in double, / count.
    mean = ((tx.float() / 255.0).double().sum(0) / tx.size(0)).float()

    def scale(x):
        return (x.float() / 255.0 - mean).contiguous()
    return (scale(tx), ty), (scale(vx), vy)


# ---------------------------------------------------------------- sample order

MASK64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
    return z ^ (z >> 31)


def epoch_order(n, shuffle_seed, epoch):
    """shuffle.cc's EpochOrder: Fisher-Yates over 0..n-1 driven by SplitMix64, seeded
    from (shuffle_seed, epoch) by two mixing rounds; Below(bound) rejects the values
    under 2^64 mod bound."""
    order = list(range(n))
    state = mix64((mix64(shuffle_seed ^ 0x72657072_6f2e7368) + epoch) & MASK64)
    for i in range(n, 1, -1):
        threshold = ((1 << 64) - i) % i
        while True:
            state = (state + 0x9e3779b97f4a7c15) & MASK64
            r = mix64(state)
            if r >= threshold:
                break
        j = r % i
        order[i - 1], order[j] = order[j], order[i - 1]
    return order


# ---------------------------------------------------------------- training

CUDA_CHECK_EVERY = 64  # engine.cc's kCudaCheckEvery


def shapes(model):
    out = [[n, list(p.shape)] for n, p in model.named_parameters()]
    out += [[n, list(b.shape)] for n, b in model.named_buffers()]
    return out


def to_device(cpu, device):
    """batches.cc's ToDevice: as it is on the CPU; else from pinned memory, not blocking."""
    if device.type == "cpu":
        return cpu
    return cpu.pin_memory().to(device, non_blocking=True)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(model, x_all, y_all, l2_weights, l2, predictions=None):
    """engine.cc's Evaluate: per-batch sums kept on the device, read once, added in
    double in batch order."""
    model.eval()
    n = x_all.size(0)
    batches = (n + EVAL_BATCH - 1) // EVAL_BATCH
    with torch.no_grad():
        losses = torch.empty(batches, dtype=torch.float32, device=x_all.device)
        right = torch.empty(batches, dtype=torch.int64, device=x_all.device)
        classes = []
        for b in range(batches):
            start, end = b * EVAL_BATCH, min(n, (b + 1) * EVAL_BATCH)
            y = y_all[start:end]
            logits = model(x_all[start:end])
            losses[b].copy_(F.cross_entropy(logits, y, reduction="sum"))
            predicted = logits.argmax(1)
            right[b].copy_(predicted.eq(y).sum())
            if predictions is not None:
                classes.append(predicted.to(torch.uint8))
        penalty = l2_penalty(l2_weights, l2)
    model.train()
    loss_sum = sum(float(v) for v in losses.cpu().tolist())
    correct = int(right.sum().item())
    if predictions is not None and classes:
        predictions.extend(torch.cat(classes).cpu().tolist())
    loss = loss_sum / n + (penalty.item() if penalty is not None else 0.0)
    return loss, correct / n


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
    p.add_argument("--seed", type=int, default=0, help="init and shuffle seed (the engine's: 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                      help="deterministic algorithms (the default)")
    mode.add_argument("--nondeterministic", dest="deterministic", action="store_false")
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--adam", choices=("for-loop", "default"), default="for-loop",
                   help="for-loop: one parameter at a time, as LibTorch's C++ Adam (the "
                        "default); default: PyTorch's choice (foreach on CUDA)")
    p.add_argument("--shapes", action="store_true")
    p.add_argument("--order", action="store_true",
                   help="print each epoch's sample order as JSON, then exit")
    a = p.parse_args()

    if a.order:  # no data read: the order depends only on the count, seed and epoch
        print(json.dumps([epoch_order(a.train_limit, a.seed, e) for e in range(a.epochs)],
                         separators=(",", ":")))
        return 0
    # engine.cc's ApplyDeterminism, before any CUDA work (cuBLAS reads the variable when
    # its first handle is created).
    if a.device == "cuda" and a.deterministic and \
            os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (":4096:8", ":16:8"):
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(a.deterministic)
    torch.backends.cudnn.deterministic = a.deterministic
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    if a.device == "cuda" and not torch.cuda.is_available():
        print("train_throughput.py: --device cuda but this torch has no CUDA (or no GPU visible)",
              file=sys.stderr)
        return 1
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    cifar = a.dataset_kind == "cifar10"
    if a.model == "resnet":
        model = ResNet(a.version, a.depth) if cifar else ResNet(a.version, a.depth, 1, 28, 28)
    else:
        model = SmallCnn(3, 32, 32) if cifar else SmallCnn()
    if a.shapes:
        print(json.dumps(shapes(model), separators=(",", ":")))
        return 0
    l2 = a.l2 if a.l2 is not None else (1e-4 if a.model == "resnet" else 0.0)
    (train_x, train_y), (test_x, test_y) = (load_cifar if cifar else load_idx)(
        a.dataset, a.train_limit, a.test_limit)
    # engine.cc's BuildModel: built on the CPU, then moved; the data moved once.
    model.to(device)
    model.train()
    adam_options = {"foreach": False} if a.adam == "for-loop" else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, **adam_options)
    l2_weights = regularized_weights(model)
    train_x, train_y = train_x.to(device), train_y.to(device)
    test_x, test_y = test_x.to(device), test_y.to(device)
    n = train_x.size(0)
    bs = a.batch_size
    batches = (n + bs - 1) // bs
    check_every = 1 if device.type == "cpu" else CUDA_CHECK_EVERY
    for epoch in range(a.epochs):
        # The order is computed before the timed part: in pure Python it takes far longer
        # than the engine's (C++, well under a millisecond for 10,000 samples, inside its
        # timed part).
        order_host = torch.tensor(epoch_order(n, a.seed, epoch), dtype=torch.int64)
        synchronize(device)
        started = time.perf_counter()
        order = to_device(order_host, device)
        losses = torch.empty(batches, dtype=torch.float32, device=device)
        rights = torch.empty(batches, dtype=torch.int64, device=device)
        ends, cpu_ends = [], []
        checked = 0
        diverged = None
        train_end = None
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
            losses[b].copy_(loss.detach(), non_blocking=True)
            rights[b].copy_(logits.detach().argmax(1).eq(y).sum(), non_blocking=True)
            ends.append(time.perf_counter())
            cpu_ends.append(time.thread_time())
            if b + 1 == batches:
                synchronize(device)
                train_end = time.perf_counter()
            if b + 1 - checked < check_every and b + 1 < batches:
                continue
            bad = [(checked + i, v) for i, v in enumerate(losses[checked:b + 1].cpu().tolist())
                   if not math.isfinite(v)]
            if bad:
                diverged = "loss %r at epoch %d, batch %d" % (bad[0][1], epoch, bad[0][0])
                break
            checked = b + 1
        if diverged is not None:
            print("train_throughput.py: diverged: " + diverged, file=sys.stderr)
            return 1
        train_seconds = train_end - started
        # BatchMetrics::Totals: read once, each batch's mean loss times its size.
        loss_values = losses.cpu().tolist()
        loss_sum = sum(v * min(bs, n - i * bs) for i, v in enumerate(loss_values))
        correct = int(rights.sum().item())
        last = epoch + 1 == a.epochs
        evaluate(model, test_x, test_y, l2_weights, l2, [] if last else None)
        epoch_seconds = time.perf_counter() - started
        full = n // bs  # full batches; the first and the partial last are left out
        steps = sorted(ends[b] - ends[b - 1] for b in range(1, min(full, len(ends))))
        median = steps[len(steps) // 2] if steps else 0.0
        cpu = sorted(cpu_ends[b] - cpu_ends[b - 1] for b in range(1, min(full, len(ends))))
        cpu_median = cpu[len(cpu) // 2] if cpu else 0.0
        print(json.dumps({
            "side": "python", "fingerprints": False, "epoch": epoch, "steps": batches,
            "device": a.device, "deterministic": a.deterministic, "adam": a.adam,
            "images": n, "train_seconds": train_seconds,
            "train_images_per_second": n / train_seconds,
            "mean_step_seconds": train_seconds / batches,
            "median_step_seconds": median,
            "images_per_second": bs / median if median > 0 else 0.0,
            "median_step_cpu_seconds": cpu_median,
            "images_per_cpu_second": bs / cpu_median if cpu_median > 0 else 0.0,
            "steady_seconds": ends[-1] - ends[0],
            "epoch_seconds": epoch_seconds, "loss": loss_sum / n,
            "accuracy": correct / n}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
