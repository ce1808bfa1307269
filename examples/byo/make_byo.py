#!/usr/bin/env python3
"""Bring your own model and data: writes what examples/byo/plan.yaml trains.

    python3 examples/byo/make_byo.py [--out DIR] [--train N] [--test N]
                                     [--fashion-mnist DIR]

- model.pt: a small convolutional network defined below in plain PyTorch, scripted
  with torch.jit.script and saved: any module that takes a float batch [N, 1, 28, 28]
  and returns class scores [N, 10] will do.
- train_x.npy, train_y.npy, test_x.npy, test_y.npy: the first N Fashion-MNIST images
  (Debian's dataset-fashion-mnist) as NumPy arrays: x uint8 (N, 28, 28), which repro
  scales by 1/255, y int64 class labels 0..9. Any arrays of that form will do: float32
  x is used as it is, and (N, C, H, W) gives C channels.

Needs Debian's python3-torch and python3-numpy. DIR defaults to this script's folder,
where plan.yaml expects the files.
"""
import argparse
import gzip
import os

import numpy as np
import torch
from torch import nn


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=here)
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--fashion-mnist", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    torch.manual_seed(0)  # the file's own weights (model.init: file uses them as they are)
    torch.jit.script(SmallNet()).save(os.path.join(a.out, "model.pt"))

    for split, prefix, count in (("train", "train", a.train), ("test", "t10k", a.test)):
        x = read_idx(os.path.join(a.fashion_mnist, f"{prefix}-images-idx3-ubyte.gz"))[:count]
        y = read_idx(os.path.join(a.fashion_mnist, f"{prefix}-labels-idx1-ubyte.gz"))[:count]
        np.save(os.path.join(a.out, f"{split}_x.npy"), np.ascontiguousarray(x))
        np.save(os.path.join(a.out, f"{split}_y.npy"), y.astype(np.int64))
    print(f"{a.out}: model.pt, {a.train} training and {a.test} test images as .npy")


if __name__ == "__main__":
    main()
