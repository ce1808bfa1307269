#!/usr/bin/env bash
# The GPU worker's build path (deploy/gpu/, README "Building the worker on a GPU host"),
# run here against Debian's LibTorch so that it cannot rot unseen; ctest `gpu_build_check`
# (label gpu_build: `ctest -L gpu_build` runs it alone, `-LE gpu_build` leaves it out):
#
#   tests/gpu_build_check.sh WORKDIR
#
#   1. deploy/gpu/pack-deps.sh WORKDIR/deps (what a Debian 12 machine packs);
#   2. deploy/gpu/build-worker.sh --deps WORKDIR/deps --torch <Debian's Torch_DIR>
#      --build WORKDIR/build (a few minutes the first time; a second run rebuilds nothing);
#   3. the worker and repro-train start (--help exits 0) without LD_LIBRARY_PATH;
#   4. the carried folder is what was used, not this machine's packages: CMake found
#      gRPC, Protobuf and protoc, grpc_cpp_plugin, Abseil, OpenSSL, zlib, c-ares, RE2,
#      nlohmann_json and xxHash in it; the daemon compiled with its headers; the worker
#      has a DT_RPATH to it (a RUNPATH would not serve the libraries' own dependencies)
#      and loads every library the folder holds from it, gRPC's, Protobuf's and
#      Abseil's among them (ldd);
#   5. the worker-only build looked for neither yaml-cpp nor SQLite and has no
#      coordinator or reproctl.
#
# Exit status: 0 passed; 1 failed; 77 (ctest: skipped) not a Debian machine with the
# build packages and libtorch-dev.
set -uo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 WORKDIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
WORK=$(cd "$1" && pwd)
DEPS=$WORK/deps
BUILD=$WORK/build

FAILED=()
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILED+=("$*"); }
section() { printf '\n== %s\n' "$*"; }

if ! command -v dpkg >/dev/null 2>&1; then
  echo "SKIP  not a Debian machine (no dpkg)"
  exit 77
fi
torch_config=$(dpkg -L libtorch-dev 2>/dev/null | grep '/cmake/Torch/TorchConfig.cmake$' | head -n 1)
if [ -z "$torch_config" ]; then
  echo "SKIP  Debian's libtorch-dev is not installed"
  exit 77
fi
TORCH_DIR=$(dirname "$torch_config")

section "1. pack-deps.sh"
start=$SECONDS
if ! "$ROOT/deploy/gpu/pack-deps.sh" "$DEPS"; then
  echo "FAIL  pack-deps.sh failed"
  exit 1
fi
pass "packed into $DEPS in $((SECONDS - start)) s"

section "2. build-worker.sh"
start=$SECONDS
if ! "$ROOT/deploy/gpu/build-worker.sh" --deps "$DEPS" --torch "$TORCH_DIR" --build "$BUILD"; then
  echo "FAIL  build-worker.sh failed"
  exit 1
fi
pass "configured and built in $((SECONDS - start)) s"

WORKER=$BUILD/worker/worker
TRAIN=$BUILD/worker/engine/repro-train

section "3. the binaries start without LD_LIBRARY_PATH"
for bin in "$WORKER" "$TRAIN"; do
  if env -u LD_LIBRARY_PATH "$bin" --help > "$WORK/help.txt" 2>&1 && grep -q '^usage:' "$WORK/help.txt"; then
    pass "$(basename "$bin") --help exits 0"
  else
    cat "$WORK/help.txt"
    fail "$(basename "$bin") --help"
  fi
done

section "4. what was used is the deps folder"
cache=$BUILD/CMakeCache.txt
for key in gRPC_DIR absl_DIR nlohmann_json_DIR re2_DIR Protobuf_INCLUDE_DIR Protobuf_LIBRARY \
           Protobuf_PROTOC_EXECUTABLE OPENSSL_INCLUDE_DIR OPENSSL_SSL_LIBRARY OPENSSL_CRYPTO_LIBRARY \
           ZLIB_INCLUDE_DIR ZLIB_LIBRARY c-ares_INCLUDE_DIR c-ares_LIBRARY XXHASH_INCLUDEDIR; do
  value=$(grep -E "^$key(_RELEASE)?:" "$cache" | head -n 1 | cut -d= -f2-)
  case "$value" in
    "$DEPS"/*) ;;
    *) fail "CMake's $key is \"$value\", not in $DEPS" ;;
  esac
done
grep -q "$DEPS/bin/grpc_cpp_plugin" "$BUILD/build.ninja" || fail "the code generation does not use $DEPS/bin/grpc_cpp_plugin"
[ "${#FAILED[@]}" -eq 0 ] && pass "CMake found gRPC, Protobuf, protoc, grpc_cpp_plugin, Abseil, OpenSSL, zlib, c-ares, RE2, nlohmann_json and xxHash in $DEPS"

daemon_command=$(python3 - "$BUILD/compile_commands.json" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1])):
    if c["file"].endswith("worker/daemon.cc"):
        print(c["command"])
EOF
)
case "$daemon_command" in
  *"-isystem $DEPS/include "*) pass "worker/daemon.cc compiled with -isystem $DEPS/include" ;;
  *) fail "worker/daemon.cc was not compiled with $DEPS/include: $daemon_command" ;;
esac

rpath=$(readelf -d "$WORKER" | grep -E '\((RPATH|RUNPATH)\)')
case "$rpath" in
  *"(RPATH)"*"$DEPS/lib"*) pass "the worker has a DT_RPATH to $DEPS/lib" ;;
  *) fail "the worker's RPATH does not name $DEPS/lib as DT_RPATH: $rpath" ;;
esac

env -u LD_LIBRARY_PATH ldd "$WORKER" > "$WORK/ldd.txt" 2>&1
if grep -q 'not found' "$WORK/ldd.txt"; then
  grep 'not found' "$WORK/ldd.txt"
  fail "the worker does not find some libraries"
fi
wrong=() loaded=0
while read -r name _ path _; do
  [ -e "$DEPS/lib/$name" ] || continue
  loaded=$((loaded + 1))
  case "$path" in
    "$DEPS/lib/$name") ;;
    *) wrong+=("$name=>$path") ;;
  esac
done < <(grep '=>' "$WORK/ldd.txt")
missing=()
for name in libgrpc++.so.1.51 libgrpc.so.29 libgpr.so.29 libprotobuf.so.32 libabsl_base.so.20220623 \
            libabsl_status.so.20220623 libssl.so.3 libcrypto.so.3 libcares.so.2 libre2.so.9 libz.so.1; do
  grep -q "^[[:space:]]*$name => $DEPS/lib/$name " "$WORK/ldd.txt" || missing+=("$name")
done
if [ "${#wrong[@]}" -eq 0 ] && [ "${#missing[@]}" -eq 0 ]; then
  pass "the worker loads all $loaded of its libraries that $DEPS/lib holds from there (gRPC, Protobuf, Abseil, OpenSSL, c-ares, RE2, zlib)"
else
  fail "libraries not loaded from $DEPS/lib: ${wrong[*]} ${missing[*]}"
fi

section "5. worker only"
if grep -qE '^(yaml-cpp_DIR|SQLite3_INCLUDE_DIR|SQLite3_LIBRARY)[:=]' "$cache"; then
  fail "the worker-only build looked for yaml-cpp or SQLite"
elif [ -e "$BUILD/coordinator" ] || [ -e "$BUILD/reproctl" ] || [ -e "$BUILD/store" ]; then
  fail "the worker-only build has coordinator/, reproctl/ or store/"
else
  pass "no yaml-cpp, SQLite, coordinator, reproctl or store"
fi

echo
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "gpu_build_check: ${#FAILED[@]} failed"
  exit 1
fi
echo "gpu_build_check: all passed"
