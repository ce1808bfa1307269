#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   ./quickstart.sh demo   install what is needed, build, run examples/quick.yaml with two
#                          local workers and print the report
#   ./quickstart.sh test   the same set-up, then the whole test suite
# Packages come from Debian only; nothing is downloaded at build or test time.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake ninja-build g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libsqlite3-dev sqlite3 libyaml-cpp-dev libtorch-dev libxxhash-dev zlib1g-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev dataset-fashion-mnist)
# Only the tests need these: certificates for the TLS tests, a browser for the HTML
# report, shellcheck and a YAML parser for deploy/, NumPy to read exported weights,
# PyTorch's Python front end to script the bring-your-own example's model (examples/byo),
# Slurm and MUNGE for the one-node cluster that runs deploy/slurm/ (tests/slurm_test.sh).
TEST_PACKAGES=(openssl chromium shellcheck python3-yaml python3-numpy python3-torch
  slurmctld slurmd slurm-client munge)
BUILD_DIR=${REPRO_BUILD_DIR:-build}

install_packages() {  # install_packages PACKAGE...
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  echo "==> building in $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

case "${1:-}" in
  demo)
    install_packages "${PACKAGES[@]}"
    build
    mkdir -p demo
    rm -f demo/fashion-quick.db demo/fashion-quick.db-wal demo/fashion-quick.db-shm
    echo "==> running examples/quick.yaml with 2 local workers"
    "$BUILD_DIR/coordinator/coordinator" --plan examples/quick.yaml --db demo/fashion-quick.db \
      --listen 127.0.0.1:0 --local-workers 2 --exit-when-done
    echo
    "$BUILD_DIR/reproctl/reproctl" --db demo/fashion-quick.db report
    ;;
  test)
    install_packages "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    build
    echo "==> running the tests"
    ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
