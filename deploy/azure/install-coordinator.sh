#!/usr/bin/env bash
# Runs once on a fresh Debian 12 coordinator VM, as root, from
# cloud-init-coordinator.yaml: installs the runtime libraries and the coordinator and
# reproctl taken out of the coordinator image (deploy/docker/Dockerfile.cpu, target
# "coordinator"), then enables repro-coordinator.service, and starts it when a plan
# is in /etc/repro/experiment.yaml.
#
#   install-coordinator.sh IMAGE     IMAGE: the coordinator image, pullable from this VM
set -euo pipefail
IMAGE=${1:?usage: install-coordinator.sh IMAGE}
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends docker.io sqlite3 \
  libgrpc++1.51 libprotobuf32 libabsl20220623 libsqlite3-0 libyaml-cpp0.7 zlib1g

docker pull "$IMAGE"
container=$(docker create "$IMAGE")
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
install -d /etc/repro
docker cp "$container:/usr/local/bin/coordinator" /usr/local/bin/coordinator
docker cp "$container:/usr/local/bin/reproctl" /usr/local/bin/reproctl
docker cp "$container:/usr/local/share/repro/systemd/repro-coordinator.service" /etc/systemd/system/
docker cp "$container:/usr/local/share/repro/systemd/repro.sysusers.conf" /etc/sysusers.d/repro.conf
chown root:root /usr/local/bin/coordinator /usr/local/bin/reproctl
chmod 0755 /usr/local/bin/coordinator /usr/local/bin/reproctl
docker rm -f "$container" >/dev/null
trap - EXIT
docker image rm "$IMAGE" >/dev/null || true
systemctl disable --now docker.service docker.socket || true

systemd-sysusers
systemctl daemon-reload
if [ -s /etc/repro/experiment.yaml ]; then
  systemctl enable --now repro-coordinator.service
  echo "install-coordinator.sh: coordinator started"
else
  systemctl enable repro-coordinator.service
  echo "install-coordinator.sh: no plan in /etc/repro/experiment.yaml; copy one there, then: systemctl start repro-coordinator"
fi
