#!/usr/bin/env bash
# Runs once on a fresh Debian 12 worker VM, as root, from cloud-init-worker.yaml:
# installs the NVIDIA driver (Debian's non-free nvidia-driver, built by DKMS for the
# running kernel), and the worker taken out of the CUDA worker image
# (deploy/docker/Dockerfile.cuda, built with deploy/gpu/build-worker.sh) with the two
# folders its RPATH names, /opt/repro-deps/lib (gRPC, Protobuf, Abseil ...) and
# /opt/libtorch/lib, then enables repro-worker.service. cloud-init reboots the VM
# afterwards so the driver loads and the unit starts.
#
#   install-worker.sh IMAGE     IMAGE: the worker image, pullable from this VM
set -euo pipefail
IMAGE=${1:?usage: install-worker.sh IMAGE}
export DEBIAN_FRONTEND=noninteractive

# Debian keeps the NVIDIA driver in non-free: add the components to every source.
enable_non_free() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    sed -i -E '/^Components:/{/ non-free( |$)/!s/$/ contrib non-free non-free-firmware/}' "$f"
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -i -E '/^deb(-src)? /{/ non-free( |$)/!s/$/ contrib non-free non-free-firmware/}' /etc/apt/sources.list
  fi
}

enable_non_free
apt-get update -q
apt-get install -y -q "linux-headers-$(uname -r)"
apt-get install -y -q nvidia-driver firmware-misc-nonfree
apt-get install -y -q --no-install-recommends docker.io \
  zlib1g libgomp1 dataset-fashion-mnist

# The worker, its libraries and the unit, copied out of the image to the same paths:
# the worker then runs natively under systemd (no container runtime needed for the GPU).
docker pull "$IMAGE"
container=$(docker create "$IMAGE")
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
install -d /opt/libtorch /opt/repro-deps /etc/repro
docker cp "$container:/opt/libtorch/lib" /opt/libtorch/
docker cp "$container:/opt/repro-deps/lib" /opt/repro-deps/
docker cp "$container:/usr/local/bin/worker" /usr/local/bin/worker
docker cp "$container:/usr/local/share/repro/systemd/repro-worker.service" /etc/systemd/system/
docker cp "$container:/usr/local/share/repro/systemd/repro.sysusers.conf" /etc/sysusers.d/repro.conf
chown -R root:root /opt/libtorch /opt/repro-deps /usr/local/bin/worker
chmod 0755 /usr/local/bin/worker
docker rm -f "$container" >/dev/null
trap - EXIT
docker image rm "$IMAGE" >/dev/null || true
systemctl disable --now docker.service docker.socket || true

systemd-sysusers
systemctl daemon-reload
# Starts at the next boot, once the NVIDIA module is loaded (cloud-init reboots).
systemctl enable repro-worker.service
echo "install-worker.sh: worker installed; it starts after the reboot"
