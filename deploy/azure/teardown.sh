#!/usr/bin/env bash
# Delete everything provision.sh created: it all lives in one resource group, so this
# deletes that group. Only a group tagged app=repro (as provision.sh tags it) is
# deleted, unless --force.
#
#   deploy/azure/teardown.sh --resource-group repro-study [--yes] [--dry-run]
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=teardown.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage() {
  cat <<USAGE
usage: $PROG --resource-group NAME [--yes] [--force] [--no-wait] [--dry-run]

  --resource-group, -g NAME   the group provision.sh created (default \$REPRO_AZ_RESOURCE_GROUP)
  --yes                       do not ask for confirmation
  --force                     delete even a group without the tag app=repro
  --no-wait                   return at once; Azure keeps deleting in the background
  --dry-run                   print the az commands instead of running them
USAGE
}

GROUP=${REPRO_AZ_RESOURCE_GROUP:-}
YES=0 FORCE=0 NO_WAIT=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    -g|--resource-group) need_value "$@"; GROUP=$2; shift 2 ;;
    --yes|-y) YES=1; shift ;;
    --force) FORCE=1; shift ;;
    --no-wait) NO_WAIT=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[ -n "$GROUP" ] || usage_error "give --resource-group NAME (or set REPRO_AZ_RESOURCE_GROUP)"
require_az

if [ "$DRY_RUN" = 1 ]; then
  az_run group show --name "$GROUP" --query tags.app --output tsv
else
  if ! tag=$(az group show --name "$GROUP" --query tags.app --output tsv 2>/dev/null); then
    fail "resource group '$GROUP' not found (nothing to delete)"
  fi
  if [ "$tag" != repro ] && [ "$FORCE" != 1 ]; then
    fail "resource group '$GROUP' is not tagged app=repro, so provision.sh did not create it; add --force to delete it anyway"
  fi
  if [ "$YES" != 1 ]; then
    [ -t 0 ] || fail "not a terminal: add --yes to delete resource group '$GROUP' and everything in it"
    read -r -p "Delete resource group '$GROUP' and everything in it? [y/N] " answer
    case "$answer" in y|Y|yes) ;; *) say "nothing deleted"; exit 0 ;; esac
  fi
fi

args=(group delete --name "$GROUP" --yes)
[ "$NO_WAIT" = 1 ] && args+=(--no-wait)
az_run "${args[@]}"
[ "$DRY_RUN" = 1 ] || say "resource group '$GROUP' deleted"
