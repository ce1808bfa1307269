# shellcheck shell=bash
# Helpers shared by provision.sh and teardown.sh (sourced, not run).
#
# az_run runs one az command, or with DRY_RUN=1 prints it, shell-quoted, on standard
# output instead, so `provision.sh --dry-run > plan.sh` is a script a reader can check
# (and run). Messages for the reader go to standard error.

DRY_RUN=${DRY_RUN:-0}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# Bad usage or input: exit 2, as repro's binaries do.
usage_error() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  printf "Run '%s --help' for the flags.\n" "$PROG" >&2
  exit 2
}

fail() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  exit 1
}

az_run() {
  if [ "$DRY_RUN" = 1 ]; then
    local out="az" arg
    for arg in "$@"; do
      out+=" $(printf '%q' "$arg")"
    done
    printf '%s\n' "$out"
  else
    az "$@"
  fi
}

# Without --dry-run, az must be installed and logged in: say so plainly instead of
# failing on the first command.
require_az() {
  [ "$DRY_RUN" = 1 ] && return 0
  if ! command -v az >/dev/null 2>&1; then
    fail "the Azure CLI (az) is not installed or not on PATH. Install it (Microsoft's \"Install the Azure CLI on Linux\" page) and run 'az login', or add --dry-run to print the commands instead."
  fi
  if ! az account show --output none >/dev/null 2>&1; then
    fail "the Azure CLI is not logged in: run 'az login' (and 'az account set --subscription ...'), or add --dry-run."
  fi
}

# Value of an option that takes one: fail clearly when it is missing.
need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
    usage_error "$1 needs a value"
  fi
}
