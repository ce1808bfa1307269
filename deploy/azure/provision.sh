#!/usr/bin/env bash
# Provision a repro cluster on Azure with the az CLI:
#   - a resource group (tagged app=repro; teardown.sh deletes it),
#   - a vnet with one subnet, a NAT gateway for outbound traffic (apt, image pulls), and
#     an NSG on the subnet whose only inbound allowance inside the vnet is the
#     coordinator's port, from the workers' application security group,
#   - the coordinator VM (no GPU, no public address unless --ssh-source),
#   - N worker VMs of --size (default Standard_NV6, the study's Tesla M60), or one
#     scale set of N instances with --scale-set; --spot makes them Spot instances.
# Each VM gets cloud-init (cloud-init-*.yaml) that installs repro from your images and
# starts its systemd unit; workers also get the NVIDIA driver.
#
#   deploy/azure/provision.sh --resource-group repro-study --location westeurope \
#     --count 4 --coordinator-image REGISTRY/repro-coordinator:TAG \
#     --worker-image REGISTRY/repro-worker:cuda --plan examples/quick.yaml [--dry-run]
#
# --dry-run prints the az commands (shell-quoted, one a line, on standard output)
# without running them and without needing az. Nothing is hard-coded: every name, size,
# image and key comes from a flag or its environment variable.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=provision.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() {
  cat <<USAGE
usage: $PROG --resource-group NAME --location REGION [flags]

flags (environment variable in brackets):
  --resource-group, -g NAME  resource group to create [REPRO_AZ_RESOURCE_GROUP]
  --location, -l REGION      Azure region, e.g. westeurope [REPRO_AZ_LOCATION]
  --count N                  worker VMs (or scale-set instances), default 2 [REPRO_AZ_WORKERS]
  --size SIZE                worker VM size, default Standard_NV6 [REPRO_AZ_WORKER_SIZE]
  --coordinator-size SIZE    coordinator VM size, default Standard_B2s [REPRO_AZ_COORDINATOR_SIZE]
  --image URN                VM image, default Debian:debian-12:12:latest [REPRO_AZ_IMAGE]
  --admin-user NAME          admin user on the VMs, default azureuser [REPRO_AZ_ADMIN_USER]
  --ssh-key PATH             SSH public key for the admin user, default ~/.ssh/id_ed25519.pub
                             or ~/.ssh/id_rsa.pub [REPRO_AZ_SSH_KEY]
  --ssh-source CIDR          give the coordinator a public address and allow SSH to it from
                             CIDR only (default: no public address at all) [REPRO_AZ_SSH_SOURCE]
  --prefix NAME              prefix of every resource name, default repro [REPRO_AZ_PREFIX]
  --port PORT                the coordinator's port, default 7070 [REPRO_AZ_PORT]
  --coordinator-image IMAGE  image built from deploy/docker/Dockerfile.cpu --target coordinator
                             [REPRO_COORDINATOR_IMAGE]
  --worker-image IMAGE       image built from deploy/docker/Dockerfile.cuda [REPRO_WORKER_IMAGE]
  --plan FILE                experiment plan to install and start on the coordinator
                             (default: none; copy one later) [REPRO_AZ_PLAN]
  --token-file FILE          token for coordinator and workers; default
                             ./repro-GROUP.token, created with a random token if missing
                             [REPRO_AZ_TOKEN_FILE]
  --scale-set                one VM scale set of --count instances instead of single VMs
  --spot                     Spot priority for the workers (evicted when Azure needs them)
  --max-price PRICE          with --spot: highest price in USD an hour, default -1 (never
                             evicted for price)
  --vnet-prefix CIDR         vnet address space (default: az's default) [REPRO_AZ_VNET_PREFIX]
  --subnet-prefix CIDR       subnet address range (default: az's default) [REPRO_AZ_SUBNET_PREFIX]
  --output-dir DIR           keep the rendered cloud-init files there (default: a temporary
                             folder, removed at the end)
  --dry-run                  print the az commands instead of running them; az not needed
  -h, --help                 this text
USAGE
}

GROUP=${REPRO_AZ_RESOURCE_GROUP:-}
LOCATION=${REPRO_AZ_LOCATION:-}
COUNT=${REPRO_AZ_WORKERS:-2}
SIZE=${REPRO_AZ_WORKER_SIZE:-Standard_NV6}
COORD_SIZE=${REPRO_AZ_COORDINATOR_SIZE:-Standard_B2s}
IMAGE=${REPRO_AZ_IMAGE:-Debian:debian-12:12:latest}
ADMIN=${REPRO_AZ_ADMIN_USER:-azureuser}
SSH_KEY=${REPRO_AZ_SSH_KEY:-}
SSH_SOURCE=${REPRO_AZ_SSH_SOURCE:-}
PREFIX=${REPRO_AZ_PREFIX:-repro}
PORT=${REPRO_AZ_PORT:-7070}
COORD_IMAGE=${REPRO_COORDINATOR_IMAGE:-}
WORKER_IMAGE=${REPRO_WORKER_IMAGE:-}
PLAN=${REPRO_AZ_PLAN:-}
TOKEN_FILE=${REPRO_AZ_TOKEN_FILE:-}
VNET_PREFIX=${REPRO_AZ_VNET_PREFIX:-}
SUBNET_PREFIX=${REPRO_AZ_SUBNET_PREFIX:-}
SCALE_SET=0 SPOT=0 MAX_PRICE=-1 OUTPUT_DIR=""

while [ "$#" -gt 0 ]; do
  case "$1" in
    -g|--resource-group) need_value "$@"; GROUP=$2; shift 2 ;;
    -l|--location) need_value "$@"; LOCATION=$2; shift 2 ;;
    --count) need_value "$@"; COUNT=$2; shift 2 ;;
    --size) need_value "$@"; SIZE=$2; shift 2 ;;
    --coordinator-size) need_value "$@"; COORD_SIZE=$2; shift 2 ;;
    --image) need_value "$@"; IMAGE=$2; shift 2 ;;
    --admin-user) need_value "$@"; ADMIN=$2; shift 2 ;;
    --ssh-key) need_value "$@"; SSH_KEY=$2; shift 2 ;;
    --ssh-source) need_value "$@"; SSH_SOURCE=$2; shift 2 ;;
    --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
    --port) need_value "$@"; PORT=$2; shift 2 ;;
    --coordinator-image) need_value "$@"; COORD_IMAGE=$2; shift 2 ;;
    --worker-image) need_value "$@"; WORKER_IMAGE=$2; shift 2 ;;
    --plan) need_value "$@"; PLAN=$2; shift 2 ;;
    --token-file) need_value "$@"; TOKEN_FILE=$2; shift 2 ;;
    --vnet-prefix) need_value "$@"; VNET_PREFIX=$2; shift 2 ;;
    --subnet-prefix) need_value "$@"; SUBNET_PREFIX=$2; shift 2 ;;
    --output-dir) need_value "$@"; OUTPUT_DIR=$2; shift 2 ;;
    --max-price) need_value "$@"; MAX_PRICE=$2; shift 2 ;;
    --scale-set) SCALE_SET=1; shift ;;
    --spot) SPOT=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done

# ---- validate everything before the first az command ----
[ -n "$GROUP" ] || usage_error "give --resource-group NAME (or set REPRO_AZ_RESOURCE_GROUP)"
[ -n "$LOCATION" ] || usage_error "give --location REGION, e.g. westeurope (or set REPRO_AZ_LOCATION)"
# in_range VALUE LOW HIGH: VALUE is a whole number from LOW to HIGH.
in_range() { [[ "$1" =~ ^[0-9]{1,6}$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
in_range "$COUNT" 1 1000 || usage_error "--count must be a whole number from 1 to 1000, got '$COUNT'"
in_range "$PORT" 1 65535 || usage_error "--port must be a port number from 1 to 65535, got '$PORT'"
[[ "$PREFIX" =~ ^[a-z][a-z0-9-]{0,30}$ ]] ||
  usage_error "--prefix must be lowercase letters, digits and '-', starting with a letter, got '$PREFIX'"
if [ "$SPOT" != 1 ] && [ "$MAX_PRICE" != -1 ]; then
  usage_error "--max-price only applies with --spot"
fi
if [ -z "$SSH_KEY" ]; then
  for candidate in "$HOME/.ssh/id_ed25519.pub" "$HOME/.ssh/id_rsa.pub"; do
    if [ -f "$candidate" ]; then SSH_KEY=$candidate; break; fi
  done
fi
if [ "$DRY_RUN" = 1 ]; then
  # A reader checking the commands needs no key, images or plan: name placeholders.
  : "${SSH_KEY:=SSH-PUBLIC-KEY-FILE}"
  : "${COORD_IMAGE:=COORDINATOR-IMAGE}"
  : "${WORKER_IMAGE:=WORKER-IMAGE}"
else
  [ -n "$SSH_KEY" ] || usage_error "give --ssh-key PATH to an SSH public key (none in ~/.ssh)"
  [ -f "$SSH_KEY" ] || usage_error "--ssh-key: no such file: $SSH_KEY"
  case "$SSH_KEY" in *.pub) ;; *) usage_error "--ssh-key must be the public key (.pub), got $SSH_KEY" ;; esac
  [ -n "$COORD_IMAGE" ] || usage_error "give --coordinator-image (built from deploy/docker/Dockerfile.cpu --target coordinator)"
  [ -n "$WORKER_IMAGE" ] || usage_error "give --worker-image (built from deploy/docker/Dockerfile.cuda)"
fi
if [ -n "$PLAN" ] && [ ! -f "$PLAN" ]; then
  usage_error "--plan: no such file: $PLAN"
fi
require_az

# ---- names ----
VNET="$PREFIX-vnet" SUBNET="$PREFIX-subnet" NSG="$PREFIX-nsg"
NAT="$PREFIX-nat" NAT_IP="$PREFIX-nat-ip"
COORD_ASG="$PREFIX-coordinator-asg" WORKERS_ASG="$PREFIX-workers-asg"
COORD_VM="$PREFIX-coordinator"
# VMs in one vnet resolve each other's names through Azure's DNS: no address needed.
COORDINATOR_ADDR="$COORD_VM:$PORT"
TAGS=(app=repro "repro-prefix=$PREFIX")

# ---- token and rendered cloud-init ----
KEEP_OUTPUT=1
if [ -z "$OUTPUT_DIR" ]; then
  KEEP_OUTPUT=0
  OUTPUT_DIR=$(mktemp -d)
  trap 'rm -rf "$OUTPUT_DIR"' EXIT
else
  mkdir -p "$OUTPUT_DIR"
fi
if [ "$DRY_RUN" = 1 ]; then
  TOKEN_B64=$(printf 'dry-run placeholder, not a token' | base64 -w0)
else
  : "${TOKEN_FILE:=./repro-$GROUP.token}"
  if [ ! -f "$TOKEN_FILE" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 -w0 > "$TOKEN_FILE")
    say "wrote a new random token to $TOKEN_FILE (keep it; workers elsewhere need it too)"
  fi
  TOKEN_B64=$(base64 -w0 < "$TOKEN_FILE")
fi
PLAN_B64=""
[ -n "$PLAN" ] && PLAN_B64=$(base64 -w0 < "$PLAN")

# render TEMPLATE OUT NAME=VALUE...: replace each ${NAME} in TEMPLATE by VALUE.
render() {
  local template=$1 out=$2 text pair name
  text=$(< "$template")
  shift 2
  for pair in "$@"; do
    name=${pair%%=*}
    text=${text//"\${$name}"/"${pair#*=}"}
  done
  if [[ "$text" =~ \$\{REPRO_[A-Z_]*\} ]]; then
    fail "$template: placeholder ${BASH_REMATCH[0]} left unfilled"
  fi
  (umask 077 && printf '%s\n' "$text" > "$out")
}
COORD_INIT="$OUTPUT_DIR/cloud-init-coordinator.yaml"
WORKER_INIT="$OUTPUT_DIR/cloud-init-worker.yaml"
render "$HERE/cloud-init-coordinator.yaml" "$COORD_INIT" \
  "REPRO_PORT=$PORT" "REPRO_COORDINATOR_IMAGE=$COORD_IMAGE" "REPRO_PLAN_B64=$PLAN_B64" \
  "REPRO_TOKEN_B64=$TOKEN_B64" "REPRO_INSTALL_B64=$(base64 -w0 < "$HERE/install-coordinator.sh")"
render "$HERE/cloud-init-worker.yaml" "$WORKER_INIT" \
  "REPRO_COORDINATOR=$COORDINATOR_ADDR" "REPRO_WORKER_IMAGE=$WORKER_IMAGE" \
  "REPRO_TOKEN_B64=$TOKEN_B64" "REPRO_INSTALL_B64=$(base64 -w0 < "$HERE/install-worker.sh")"
for f in "$COORD_INIT" "$WORKER_INIT"; do
  [ "$(wc -c < "$f")" -le 65536 ] || fail "$f is over Azure's 64 KiB custom-data limit"
done

kind="worker VM(s)"
[ "$SCALE_SET" = 1 ] && kind="scale-set instance(s)"
[ "$SPOT" = 1 ] && kind="Spot $kind"
say "resource group $GROUP in $LOCATION: coordinator $COORD_VM, $COUNT $kind of size $SIZE"

# ---- resource group and network ----
az_run group create --name "$GROUP" --location "$LOCATION" --tags "${TAGS[@]}" --output none
az_run network asg create --resource-group "$GROUP" --name "$COORD_ASG" --tags "${TAGS[@]}" --output none
az_run network asg create --resource-group "$GROUP" --name "$WORKERS_ASG" --tags "${TAGS[@]}" --output none
az_run network nsg create --resource-group "$GROUP" --name "$NSG" --tags "${TAGS[@]}" --output none
# Inside the vnet only the workers reach the coordinator, and only on its port; every
# other flow from the vnet is denied (Azure's default rule would allow it). Inbound from
# the internet stays denied by Azure's defaults, except SSH to the coordinator when
# --ssh-source names where from.
az_run network nsg rule create --resource-group "$GROUP" --nsg-name "$NSG" \
  --name allow-workers-to-coordinator --priority 100 --direction Inbound --access Allow \
  --protocol Tcp --source-asgs "$WORKERS_ASG" --source-port-ranges '*' \
  --destination-asgs "$COORD_ASG" --destination-port-ranges "$PORT" --output none
if [ -n "$SSH_SOURCE" ]; then
  az_run network nsg rule create --resource-group "$GROUP" --nsg-name "$NSG" \
    --name allow-ssh-to-coordinator --priority 110 --direction Inbound --access Allow \
    --protocol Tcp --source-address-prefixes "$SSH_SOURCE" --source-port-ranges '*' \
    --destination-asgs "$COORD_ASG" --destination-port-ranges 22 --output none
fi
az_run network nsg rule create --resource-group "$GROUP" --nsg-name "$NSG" \
  --name deny-other-vnet-inbound --priority 4000 --direction Inbound --access Deny \
  --protocol '*' --source-address-prefixes VirtualNetwork --source-port-ranges '*' \
  --destination-address-prefixes '*' --destination-port-ranges '*' --output none
az_run network public-ip create --resource-group "$GROUP" --name "$NAT_IP" \
  --sku Standard --allocation-method Static --tags "${TAGS[@]}" --output none
az_run network nat gateway create --resource-group "$GROUP" --name "$NAT" \
  --public-ip-addresses "$NAT_IP" --idle-timeout 10 --tags "${TAGS[@]}" --output none
vnet_args=(network vnet create --resource-group "$GROUP" --name "$VNET" --subnet-name "$SUBNET")
[ -n "$VNET_PREFIX" ] && vnet_args+=(--address-prefixes "$VNET_PREFIX")
[ -n "$SUBNET_PREFIX" ] && vnet_args+=(--subnet-prefixes "$SUBNET_PREFIX")
az_run "${vnet_args[@]}" --tags "${TAGS[@]}" --output none
az_run network vnet subnet update --resource-group "$GROUP" --vnet-name "$VNET" --name "$SUBNET" \
  --network-security-group "$NSG" --nat-gateway "$NAT" --output none

# ---- coordinator ----
coord_args=(vm create --resource-group "$GROUP" --name "$COORD_VM" --image "$IMAGE"
  --size "$COORD_SIZE" --admin-username "$ADMIN" --ssh-key-values "$SSH_KEY"
  --vnet-name "$VNET" --subnet "$SUBNET" --nsg "" --asgs "$COORD_ASG"
  --custom-data "$COORD_INIT" --os-disk-size-gb 64 --tags "${TAGS[@]}" repro-role=coordinator)
if [ -n "$SSH_SOURCE" ]; then
  coord_args+=(--public-ip-address "$COORD_VM-ip" --public-ip-sku Standard)
else
  coord_args+=(--public-ip-address "")
fi
az_run "${coord_args[@]}" --output none

# ---- workers ----
spot_args=()
if [ "$SPOT" = 1 ]; then
  # Deallocate keeps an evicted VM's disk (and its installed driver) for a restart;
  # a scale set deletes evicted instances and creates new ones instead.
  if [ "$SCALE_SET" = 1 ]; then
    spot_args=(--priority Spot --eviction-policy Delete --max-price "$MAX_PRICE")
  else
    spot_args=(--priority Spot --eviction-policy Deallocate --max-price "$MAX_PRICE")
  fi
fi
if [ "$SCALE_SET" = 1 ]; then
  az_run vmss create --resource-group "$GROUP" --name "$PREFIX-workers" --image "$IMAGE" \
    --vm-sku "$SIZE" --instance-count "$COUNT" --admin-username "$ADMIN" \
    --ssh-key-values "$SSH_KEY" --vnet-name "$VNET" --subnet "$SUBNET" --asgs "$WORKERS_ASG" \
    --load-balancer "" --orchestration-mode Uniform --upgrade-policy-mode Manual \
    --custom-data "$WORKER_INIT" --os-disk-size-gb 64 "${spot_args[@]}" \
    --tags "${TAGS[@]}" repro-role=worker --output none
else
  for i in $(seq 1 "$COUNT"); do
    az_run vm create --resource-group "$GROUP" --name "$PREFIX-worker-$i" --image "$IMAGE" \
      --size "$SIZE" --admin-username "$ADMIN" --ssh-key-values "$SSH_KEY" \
      --vnet-name "$VNET" --subnet "$SUBNET" --nsg "" --asgs "$WORKERS_ASG" \
      --public-ip-address "" --custom-data "$WORKER_INIT" --os-disk-size-gb 64 "${spot_args[@]}" \
      --tags "${TAGS[@]}" repro-role=worker --output none
  done
fi

if [ "$DRY_RUN" = 1 ]; then
  if [ "$KEEP_OUTPUT" = 1 ]; then
    say "dry run: nothing was created; the rendered cloud-init files are $COORD_INIT and $WORKER_INIT"
  else
    say "dry run: nothing was created (add --output-dir DIR to keep the rendered cloud-init files)"
  fi
else
  cat >&2 <<DONE
$PROG: done. The VMs finish installing in the background (workers reboot once for the
NVIDIA driver). Check progress and results on the coordinator without SSH:
  az vm run-command invoke -g $GROUP -n $COORD_VM --command-id RunShellScript \\
    --scripts 'reproctl --db /var/lib/repro/experiment.db status'
Delete everything with: deploy/azure/teardown.sh --resource-group $GROUP
DONE
fi
