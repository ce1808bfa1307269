#!/usr/bin/env bash
# tests/layers_check.sh: every #include "..." of the project stays inside what its
# layer may use (ARCHITECTURE.md, "Layers"). CMake's links already keep a library
# from calling into a layer it does not link; this also catches a header of another
# layer included for a type alone. Prints each include out of bounds as FILE:LINE and
# exits 1 when there is one.
#
#   tests/layers_check.sh [SOURCE_DIR]
set -euo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$root"

# folder -> the project folders its code may include (besides itself). "repro/" is the
# generated wire code of proto/.
declare -A allowed=(
  [common]="common"
  [data]="common"
  [analysis]="common"
  [store]="common"
  [proto]="common repro"
  [coordinator]="common data analysis store proto repro"
  [worker/engine]="common data"
  [worker]="common data proto repro worker/engine"
  [reproctl]="common analysis store proto repro"
)

bad=0
for folder in common data analysis store proto coordinator worker/engine worker reproctl; do
  ok=" $folder ${allowed[$folder]} "
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    include=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$rest")
    [[ $include == */* ]] || continue           # a file beside it
    case $include in absl/*|gtest/*|gmock/*|grpcpp/*|google/*|nlohmann/*|torch/*|ATen/*|c10/*|yaml-cpp/*) continue ;; esac
    # The folder the include lives in: worker/engine/x.h -> worker/engine.
    target=$(dirname "$include")
    [[ $target == repro/* ]] && target=repro
    # Tests may also use the shared test helpers in tests/.
    [[ $target == tests && $file == *_test.cc ]] && continue
    if [[ $ok != *" $target "* ]]; then
      echo "$file:$line: includes $include, outside what $folder/ may use (ARCHITECTURE.md)"
      bad=1
    fi
  done < <(if [[ $folder == worker ]]; then
             grep -Hn '#include "' worker/*.h worker/*.cc 2>/dev/null || true
           else
             grep -rHn --include='*.h' --include='*.cc' '#include "' "$folder" || true
           fi)
done
[[ $bad == 0 ]] && echo "layers_check: every include stays inside its layer"
exit "$bad"
