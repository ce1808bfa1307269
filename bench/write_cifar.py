#!/usr/bin/env python3
"""Writes a synthetic CIFAR-10 data set in the real binary format, for the benchmarks.

    write_cifar.py DIR TRAIN_RECORDS_PER_FILE TEST_RECORDS

Five training files (data_batch_1.bin .. data_batch_5.bin) and test_batch.bin, each a
run of records of one label byte and 3072 pixel bytes (1024 R, 1024 G, 1024 B). Seeded,
so every benchmark sees the same data, with a label-dependent bright 8x8 patch so that
the task is learnable. Standard library only (the GPU host has no extra packages).
"""
import os
import random
import sys

out, train, test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20010396)


def write(name, count):
    records = bytearray()
    for _ in range(count):
        label = rng.randrange(10)
        pixels = bytearray(rng.randbytes(3072))
        row, col = 8 * (label // 4), 8 * (label % 4)
        for c in range(3):
            for y in range(row, row + 8):
                start = c * 1024 + y * 32 + col
                pixels[start:start + 8] = bytes([255 - 60 * c]) * 8
        records.append(label)
        records += pixels
    with open(os.path.join(out, name), "wb") as f:
        f.write(records)


os.makedirs(out, exist_ok=True)
for i in range(1, 6):
    write("data_batch_%d.bin" % i, train)
write("test_batch.bin", test)
