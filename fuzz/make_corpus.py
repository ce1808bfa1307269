#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: small valid and near-valid
inputs for each fuzz target (a few KB per target). Deterministic: running it again
rewrites the same files. Usage: fuzz/make_corpus.py [OUT_DIR] (default fuzz/corpus)."""
import gzip
import json
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    # mtime 0, so the bytes are the same on every run.
    return gzip.compress(data, compresslevel=9, mtime=0)


# ---------------------------------------------------------------- plan_fuzzer
QUICK = """experiment: fashion-quick
runs: 4
epochs: 2
base_seed: 0
dataset: {kind: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 600, test_limit: 100}
model: {kind: small-cnn}
training: {batch_size: 128, optimizer: adam, lr: 0.001}
determinism: {deterministic_algorithms: true, threads: 1, device: cpu}
arms:
  same_seed:       {seed: fixed}
  different_seeds: {seed: per_run}
"""
put("plan_fuzzer", "quick.yaml", QUICK)
put("plan_fuzzer", "minimal.yaml", "experiment: x\nruns: 1\nepochs: 1\n")
put("plan_fuzzer", "recipe.yaml", """experiment: cifar10-resnet29v2
runs: 2
epochs: 200
base_seed: 3
max_attempts: 5
dataset: {kind: cifar10, path: /data/cifar-10-batches-bin, train_limit: 0, test_limit: 0}
model: {kind: resnet, version: 2, depth: 29, l2: 0.0001}
training:
  batch_size: 32
  optimizer: adam-keras
  lr: 0.001
  lr_schedule: keras-cifar10
  reduce_on_plateau: {factor: 0.31622776601683794, patience: 5, min_lr: 0.5e-6}
  augment: {shift: 0.1, flip: true}
determinism: {deterministic_algorithms: false, cudnn_benchmark: true, threads: 0, device: cuda}
fingerprints: {batch_digests: true, predictions: false}
exports: {weights: [initial, final, epochs]}
arms:
  init_only: {init: per_run, shuffle: fixed, augment: fixed}
  shuffle_only: {seed: fixed, shuffle: per_run, determinism: {threads: 2}}
""")
# Anchors and aliases used as a user would: one determinism block shared by arms.
put("plan_fuzzer", "anchors.yaml", """experiment: anchors
runs: 2
epochs: 1
determinism: &det {deterministic_algorithms: true, threads: 1, device: cpu}
arms:
  a: {seed: fixed, determinism: *det}
  b: &b {seed: per_run, determinism: *det}
""")
# "Billion laughs": nine levels of ten aliases each would be 10^9 nodes if expanded
# (yaml-cpp shares an alias's node instead; common/plan_test.cc keeps it that way).
laughs = ["experiment: lol", "runs: 1", "epochs: 1", "arms:", "  a: {seed: fixed}",
          "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
for i in range(1, 10):
    laughs.append("  l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * 10)))
put("plan_fuzzer", "billion_laughs.yaml", "\n".join(laughs) + "\n")
put("plan_fuzzer", "laughs_in_weights.yaml",
    "experiment: x\nruns: 1\nepochs: 1\n"
    "exports: {weights: &w [initial, final, epochs]}\n"
    "fingerprints: {batch_digests: *w}\n")
put("plan_fuzzer", "self_alias.yaml", "experiment: x\nruns: 1\nepochs: 1\narms: &a {a: *a}\n")
put("plan_fuzzer", "nested.yaml", "experiment: x\nruns: 1\nepochs: 1\nmodel: " + "[" * 50 + "]" * 50 + "\n")
put("plan_fuzzer", "bad_values.yaml", "experiment: .x\nruns: -1\nepochs: one\ndataset: {kind: imagenet}\n")
put("plan_fuzzer", "tags.yaml", "experiment: !!str x\nruns: !!int 1\nepochs: \"1\"\nbase_seed: 0x10\n")
put("plan_fuzzer", "repeated.yaml", "experiment: x\nruns: 1\nepochs: 1\nruns: 2\n")

# ---------------------------------------------------------------- idx_fuzzer
# First byte: bit 0 labels, bit 1 gzip by the harness, bits 2..7 records to keep.
def idx_labels(labels, count=None):
    return struct.pack(">II", 0x801, len(labels) if count is None else count) + bytes(labels)


def idx_images(n, count=None, rows=28, cols=28):
    pixels = bytes((i * 7) % 256 for i in range(n * rows * cols))
    return struct.pack(">IIII", 0x803, n if count is None else count, rows, cols) + pixels


def ctl(labels, harness_gzip=False, keep=0):
    return bytes([(1 if labels else 0) | (2 if harness_gzip else 0) | (keep << 2)])


put("idx_fuzzer", "labels", ctl(True) + idx_labels([0, 1, 9, 4]))
put("idx_fuzzer", "labels_keep2_gz", ctl(True, True, 2) + idx_labels([3, 1, 4, 1, 5]))
put("idx_fuzzer", "labels_pre_gzipped", ctl(True) + gz(idx_labels([2, 7, 1, 8])))
put("idx_fuzzer", "labels_bad_label", ctl(True) + idx_labels([0, 10, 1]))
put("idx_fuzzer", "labels_truncated", ctl(True) + idx_labels([0, 1], count=5))
put("idx_fuzzer", "labels_extra", ctl(True) + idx_labels([0, 1], count=1))
put("idx_fuzzer", "labels_huge_count", ctl(True) + idx_labels([1, 2], count=0xFFFFFFFF))
put("idx_fuzzer", "images_two", ctl(False) + idx_images(2))
put("idx_fuzzer", "images_keep1_gz", ctl(False, True, 1) + idx_images(2))
put("idx_fuzzer", "images_pre_gzipped", ctl(False) + gz(idx_images(1)))
put("idx_fuzzer", "images_truncated_gzip", ctl(False) + gz(idx_images(2))[:-20])
put("idx_fuzzer", "images_wrong_side", ctl(False) + idx_images(1, rows=32, cols=24)[:16 + 32])
put("idx_fuzzer", "images_bad_magic", ctl(False) + struct.pack(">IIII", 0x802, 1, 28, 28))
put("idx_fuzzer", "images_huge_count", ctl(False) + idx_images(1, count=0x7FFFFFFF))

# ---------------------------------------------------------------- cifar_fuzzer
# First byte: bit 0 train split, bit 1 check only; second: the limit (signed byte).
def cifar_records(labels):
    out = b""
    for k, label in enumerate(labels):
        out += bytes([label]) + bytes((i * 3 + k) % 256 for i in range(3072))
    return out


put("cifar_fuzzer", "test_one", bytes([0, 0]) + cifar_records([3]))
put("cifar_fuzzer", "train_one_check_limit3", bytes([3, 3]) + cifar_records([9]))
put("cifar_fuzzer", "train_bad_label", bytes([1, 0]) + cifar_records([10]))
put("cifar_fuzzer", "test_truncated", bytes([0, 0]) + cifar_records([1])[:1000])
put("cifar_fuzzer", "test_empty", bytes([0, 0]))
put("cifar_fuzzer", "test_negative_limit", bytes([0, 0xFF]) + cifar_records([1])[:100])

# ---------------------------------------------------------------- npy_fuzzer
# First byte: the role the rest plays (0 train_x, 1 train_y, 2 test_x, 3 test_y); the
# harness writes the other three (x uint8 (2, 2, 2), y int64 [0, 1]).
def npy(dict_text, data=b"", major=1):
    length = 2 if major == 1 else 4
    header = dict_text
    while (6 + 2 + length + len(header) + 1) % 64:
        header += " "
    header += "\n"
    size = struct.pack("<H" if major == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + size + header.encode() + data


def npy_dict(descr, shape, fortran=False):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    return "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)


put("npy_fuzzer", "train_x_u8", bytes([0]) + npy(npy_dict("|u1", (2, 2, 2)), bytes(range(8))))
put("npy_fuzzer", "test_x_u8_nchw_v2", bytes([2]) + npy(npy_dict("|u1", (2, 1, 2, 2)), bytes(8), major=2))
put("npy_fuzzer", "train_x_f32_v3", bytes([0]) + npy(npy_dict("<f4", (2, 2, 2)), struct.pack("<8f", *range(8)), major=3))
put("npy_fuzzer", "train_y_i8", bytes([1]) + npy(npy_dict("<i8", (2,)), struct.pack("<2q", 1, 0)))
put("npy_fuzzer", "test_y_i4", bytes([3]) + npy(npy_dict("<i4", (2,)), struct.pack("<2i", 1, 1)))
put("npy_fuzzer", "train_y_u1_three_classes", bytes([1]) + npy(npy_dict("|u1", (2,)), bytes([2, 0])))
put("npy_fuzzer", "test_y_out_of_range", bytes([3]) + npy(npy_dict("<i8", (2,)), struct.pack("<2q", 0, 5)))
put("npy_fuzzer", "train_x_big_endian", bytes([0]) + npy(npy_dict(">f4", (2, 2, 2)), bytes(32)))
put("npy_fuzzer", "train_x_fortran", bytes([0]) + npy(npy_dict("|u1", (2, 2, 2), True), bytes(8)))
put("npy_fuzzer", "train_x_truncated", bytes([0]) + npy(npy_dict("|u1", (2, 2, 2)), bytes(5)))
put("npy_fuzzer", "train_x_huge_shape", bytes([0]) + npy(npy_dict("<f4", (1 << 40, 1 << 20, 16))))
put("npy_fuzzer", "train_y_double_quotes", bytes([1]) + npy('{"descr": "<i8", "shape": (2,), "fortran_order": False}', struct.pack("<2q", 0, 1)))
put("npy_fuzzer", "train_x_structured", bytes([0]) + npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", bytes(8)))

# ---------------------------------------------------------------- safetensors_fuzzer
def safetensors(entries, metadata=None, data=b"", pad=True, header_len=None):
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    header.update(entries)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    n = len(text) if header_len is None else header_len
    return struct.pack("<Q", n) + text + data


w = struct.pack("<6f", -0.5, -0.25, 0, 0.25, 0.5, 0.75)
step = struct.pack("<q", 7)
valid = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "step": {"dtype": "I64", "shape": [], "data_offsets": [24, 32]},
         "empty": {"dtype": "U8", "shape": [0], "data_offsets": [32, 32]}}
put("safetensors_fuzzer", "valid", safetensors(valid, {"format": "pt", "repro.note": "a \"quoted\" note"}, w + step))
put("safetensors_fuzzer", "no_metadata", safetensors({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, None, b"\x01\x02\x03\x04"))
put("safetensors_fuzzer", "empty_header", safetensors({}, None))
put("safetensors_fuzzer", "unicode_names", safetensors({"caf\u00e9\U0001F600": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, {"k\u00e9y": "v\u00e0l"}, b"\x05").replace(b"caf\xc3\xa9", b"caf\\u00e9"))
put("safetensors_fuzzer", "overlap", safetensors({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, None, b"abc"))
put("safetensors_fuzzer", "gap", safetensors({"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}, None, b"ab"))
put("safetensors_fuzzer", "shape_mismatch", safetensors({"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}, None, b"12345678"))
put("safetensors_fuzzer", "header_too_long", safetensors(valid, None, w + step, header_len=1 << 40))
put("safetensors_fuzzer", "unknown_dtype", safetensors({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, None, b"\0" * 16))
put("safetensors_fuzzer", "duplicate_key", struct.pack("<Q", 48) + b'{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]},"a":1}'[:48] + b"x")


# ---------------------------------------------------------------- op_outputs_fuzzer
# common/op_records.h EncodeOpOutputs: "repro-op-outputs 1\n", then u64 lengths and bytes.
def u64(n):
    return struct.pack("<Q", n)


def text(t):
    t = t.encode() if isinstance(t, str) else t
    return u64(len(t)) + t


def tensor(dtype, shape, data):
    return u64(1) + text(dtype) + u64(len(shape)) + b"".join(u64(d) for d in shape) + text(data)


def outputs(name, tensors, overload=""):
    return b"repro-op-outputs 1\n" + text(name) + text(overload) + u64(len(tensors)) + b"".join(tensors)


put("op_outputs_fuzzer", "conv_backward", outputs("aten::convolution_backward", [
    tensor("Float", [2, 2], struct.pack("<4f", 1.0, -0.0, 0.5, -2.5)), u64(0),
    tensor("Float", [2], struct.pack("<2f", 3.0, 4.0))], "default"))
put("op_outputs_fuzzer", "half_bf16_long_bool", outputs("aten::mm", [
    tensor("Half", [2], struct.pack("<2H", 0x3C00, 0x7C00)),
    tensor("BFloat16", [1], struct.pack("<H", 0x3F80)),
    tensor("Long", [], struct.pack("<q", -7)), tensor("Bool", [3], b"\x00\x01\x02")]))
put("op_outputs_fuzzer", "no_tensors", outputs("aten::relu", []))
put("op_outputs_fuzzer", "bytes_short", outputs("aten::mm", [tensor("Double", [2], struct.pack("<d", 1.0))]))
put("op_outputs_fuzzer", "huge_dims", outputs("aten::mm", [tensor("Float", [1 << 40, 1 << 40], b"")]))
