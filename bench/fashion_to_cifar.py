#!/usr/bin/env python3
"""Writes Fashion-MNIST in CIFAR-10's binary format, for models that need 32x32x3 input.

    fashion_to_cifar.py SRC OUT [TRAIN_LIMIT] [TEST_LIMIT]

SRC holds Debian's dataset-fashion-mnist files (train-images-idx3-ubyte.gz and the
other three); OUT gets data_batch_1.bin .. data_batch_5.bin (the first TRAIN_LIMIT
training images, default all 60,000, split in five files in order) and test_batch.bin
(the first TEST_LIMIT test images, default all 10,000). Each 28x28 grey image is padded
with 2 black pixels on every side to 32x32 and repeated in the three channels: real,
learnable data of the shape the study's ResNet takes, where the synthetic CIFAR of
write_cifar.py is only learnable by its label patch. Standard library only (a GPU host
may have no extra packages).
"""
import gzip
import os
import struct
import sys

SIDE, PAD = 28, 2


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got = struct.unpack(">I", data[:4])[0]
    if got != magic:
        sys.exit(f"{path}: magic {got:#x}, want {magic:#x}")
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def cifar_records(images, labels, count):
    blank_row = bytes(PAD + SIDE + PAD)
    out = bytearray()
    for i in range(count):
        pixels = images[i * SIDE * SIDE:(i + 1) * SIDE * SIDE]
        plane = bytearray(blank_row * PAD)
        for y in range(SIDE):
            plane += bytes(PAD) + pixels[y * SIDE:(y + 1) * SIDE] + bytes(PAD)
        plane += blank_row * PAD
        out.append(labels[i])
        out += plane * 3
    return out


def main():
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    src, out = sys.argv[1], sys.argv[2]
    splits = {}
    for name, prefix in (("train", "train"), ("test", "t10k")):
        shape, images = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"), 0x803)
        _, labels = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"), 0x801)
        splits[name] = (shape[0], images, labels)
    train_limit = int(sys.argv[3]) if len(sys.argv) > 3 else splits["train"][0]
    test_limit = int(sys.argv[4]) if len(sys.argv) > 4 else splits["test"][0]
    for name, limit in (("train", train_limit), ("test", test_limit)):
        if not 5 <= limit <= splits[name][0]:
            sys.exit(f"{name} limit {limit}: must be between 5 and {splits[name][0]}")
    os.makedirs(out, exist_ok=True)
    count, images, labels = splits["train"]
    per_file = [train_limit // 5 + (1 if k < train_limit % 5 else 0) for k in range(5)]
    start = 0
    for k, n in enumerate(per_file):
        records = cifar_records(images[start * SIDE * SIDE:], labels[start:], n)
        with open(os.path.join(out, f"data_batch_{k + 1}.bin"), "wb") as f:
            f.write(records)
        start += n
    _, images, labels = splits["test"]
    with open(os.path.join(out, "test_batch.bin"), "wb") as f:
        f.write(cifar_records(images, labels, test_limit))
    print(f"{out}: {train_limit} training and {test_limit} test images, 32x32x3")


if __name__ == "__main__":
    main()
