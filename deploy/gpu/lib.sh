# deploy/gpu/lib.sh: the CMake set-up for a host without Debian's packages, shared by
# deploy/gpu/build-worker.sh (the worker) and bench/gpu-determinism.sh (repro-train).
# Sourced, not run. The caller sets `stubs` (a folder in its build tree for the
# stand-ins) and `gpu_force_standins` (1: use the stand-ins even where the real thing
# would do, to test them), and declares the arrays `cmake_args` and `prefixes` (CMake
# arguments; CMAKE_PREFIX_PATH entries), which these functions extend:
#
#   gpu_locate_torch [PREFIX]   LibTorch: sets torch_prefix and torch_root
#   gpu_use_deps DIR SOURCE     a deps folder: pack-deps.sh's, or Abseil and zlib loose
#   gpu_standin_xxhash [DIR]    xxHash's header without pkg-config
#   gpu_configure_torch LOG BUILD   configure; LibTorch's folders if its config fails
#
# Stand-ins are small CMake files written into $stubs that give the project's
# find_package calls what they need when the real config cannot load here.
# shellcheck shell=bash disable=SC2154  # stubs: set by the script that sources this

gpu_die() { echo "${0##*/}: $*" >&2; exit 1; }

# gpu_locate_torch [PREFIX]: LibTorch for CMake. PREFIX: an unpacked LibTorch (the
# folder with include/, lib/, share/), a CMake prefix (pip's torch.utils.cmake_prefix_path)
# or a Torch_DIR (the folder with TorchConfig.cmake). Without one: python3's torch if
# it imports, else none (the system's, found by CMake). Sets torch_prefix (what CMake is
# given: as Torch_DIR or in prefixes) and torch_root (the folder with include/torch and
# lib/, for the stand-in; empty when there is none, as for Debian's split layout).
gpu_locate_torch() {
  torch_prefix=${1:-}
  torch_root=""
  if [[ -z $torch_prefix ]] && python3 -c 'import torch' >/dev/null 2>&1; then
    torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null | tail -n 1)
  fi
  [[ -n $torch_prefix ]] || return 0
  [[ -d $torch_prefix ]] || gpu_die "LibTorch: $torch_prefix is not a directory"
  torch_prefix=$(cd "$torch_prefix" && pwd)
  if [[ -f $torch_prefix/TorchConfig.cmake ]]; then
    cmake_args+=("-DTorch_DIR=$torch_prefix")
  else
    prefixes+=("$torch_prefix")
  fi
  local dir=$torch_prefix _
  for _ in 1 2 3 4; do  # the root, root/share/cmake or root/share/cmake/Torch
    if [[ -d $dir/include/torch && -d $dir/lib ]]; then
      torch_root=$dir
      break
    fi
    dir=$(dirname "$dir")
  done
}

# gpu_use_deps DIR SOURCE: a folder of dependencies, on CMAKE_PREFIX_PATH. Either what
# deploy/gpu/pack-deps.sh wrote (CMake configs in lib/cmake: nothing more to do) or, as
# bench/gpu-determinism.sh also takes, a loose one:
#   DIR/include/absl/...          Abseil's headers (the version the .so files are)
#   DIR/include/xxhash.h          (header-only use: XXH_INLINE_ALL)
#   DIR/include/zlib.h, zconf.h   when the host has no zlib headers
#   DIR/lib/libabsl_*.so*         Abseil's shared libraries (any depth under DIR)
#   DIR/lib/libz.so*              optional: else the host's libz.so / libz.so.1
# for which an Abseil stand-in names the libraries behind the targets SOURCE uses.
# Sets deps to DIR's absolute path.
gpu_use_deps() {
  deps=$1
  local source=$2
  [[ -d $deps ]] || gpu_die "the deps folder $deps is not a directory"
  deps=$(cd "$deps" && pwd)
  prefixes+=("$deps")
  if [[ -f $deps/lib/cmake/absl/abslConfig.cmake ]]; then
    echo "dependencies: $deps (packed by deploy/gpu/pack-deps.sh)"
    return 0
  fi
  # Abseil: every libabsl_*.so under DIR behind the targets the project names.
  local absl_libs=() absl_targets=() absl_link=() lib name target
  mapfile -t absl_libs < <(find "$deps" -name 'libabsl_*.so*' \( -type f -o -type l \) | sort)
  if [[ ${#absl_libs[@]} -gt 0 && -d $deps/include/absl ]]; then
    mapfile -t absl_targets < <(grep -rhoE 'absl::[A-Za-z0-9_]+' --include=CMakeLists.txt \
      --include='*.cmake' "$source/common" "$source/data" "$source/worker" "$source/CMakeLists.txt" | sort -u)
    # One library per name: the .so the linker would pick (unversioned first).
    local -A seen=()
    for lib in "${absl_libs[@]}"; do
      name=$(basename "$lib"); name=${name%%.so*}
      [[ -n ${seen[$name]:-} ]] && continue
      seen[$name]=1
      absl_link+=("$lib")
    done
    mkdir -p "$stubs/absl"
    {
      echo "# Stand-in for Abseil from a deps folder (deploy/gpu/lib.sh)."
      echo "set(absl_FOUND TRUE)"
      for target in "${absl_targets[@]}"; do
        echo "if(NOT TARGET $target)"
        echo "  add_library($target INTERFACE IMPORTED)"
        echo "  set_target_properties($target PROPERTIES INTERFACE_INCLUDE_DIRECTORIES \"$deps/include\""
        echo "    INTERFACE_LINK_LIBRARIES \"$(IFS=';'; echo "${absl_link[*]}")\")"
        echo "endif()"
      done
    } > "$stubs/absl/abslConfig.cmake"
    cmake_args+=("-Dabsl_DIR=$stubs/absl")
    echo "Abseil: ${#absl_libs[@]} libraries from $deps"
  fi
  [[ -f $deps/include/zlib.h ]] && cmake_args+=("-DZLIB_INCLUDE_DIR=$deps/include")
  local zlib_lib candidate
  zlib_lib=$(find "$deps" -name 'libz.so*' \( -type f -o -type l \) | sort | head -n 1)
  if [[ -z $zlib_lib && -f $deps/include/zlib.h ]]; then
    for candidate in /usr/lib/x86_64-linux-gnu/libz.so /usr/lib/x86_64-linux-gnu/libz.so.1 \
                     /lib/x86_64-linux-gnu/libz.so.1 /usr/lib64/libz.so.1 /usr/lib/libz.so.1; do
      [[ -e $candidate ]] && { zlib_lib=$candidate; break; }
    done
  fi
  [[ -n $zlib_lib ]] && cmake_args+=("-DZLIB_LIBRARY=$zlib_lib")
  return 0
}

# gpu_standin_xxhash [DIR]: the project asks pkg-config for libxxhash, but uses it
# header-only (common/hash.cc defines XXH_INLINE_ALL). Where pkg-config is missing or
# does not know it (DIR/lib/pkgconfig included), a FindPkgConfig stand-in gives
# PkgConfig::XXHASH the header from DIR/include or the host's.
gpu_standin_xxhash() {
  local dir=${1:-} xxhash_dir="" d
  if [[ ${gpu_force_standins:-0} != 1 ]] && command -v pkg-config >/dev/null 2>&1 &&
     PKG_CONFIG_PATH="${dir:+$dir/lib/pkgconfig:}${PKG_CONFIG_PATH:-}" pkg-config --exists libxxhash; then
    return 0
  fi
  for d in ${dir:+"$dir/include"} /usr/include /usr/local/include; do
    [[ -f $d/xxhash.h ]] && { xxhash_dir=$d; break; }
  done
  [[ -n $xxhash_dir ]] || gpu_die "xxhash.h not found: put it in the deps folder's include/"
  mkdir -p "$stubs/modules"
  cat > "$stubs/modules/FindPkgConfig.cmake" <<EOF
# Stand-in for pkg-config: only xxHash's header is needed (deploy/gpu/lib.sh); any
# other module (FindOpenSSL asks for one) is not found.
set(PkgConfig_FOUND TRUE)
set(PKG_CONFIG_FOUND TRUE)
macro(pkg_check_modules prefix)
  if("\${prefix}" STREQUAL "XXHASH")
    if(NOT TARGET PkgConfig::XXHASH)
      add_library(PkgConfig::XXHASH INTERFACE IMPORTED)
      set_target_properties(PkgConfig::XXHASH PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "$xxhash_dir")
    endif()
    set(XXHASH_FOUND TRUE)
  else()
    set(\${prefix}_FOUND FALSE)
  endif()
endmacro()
EOF
  cmake_args+=("-DCMAKE_MODULE_PATH=$stubs/modules")
  echo "xxHash: header $xxhash_dir/xxhash.h (no pkg-config)"
}

# gpu_standin_torch ROOT: a TorchConfig.cmake for when LibTorch's own cannot load (a pip
# torch's looks for a CUDA toolkit; the runtime libraries come with the wheel): its
# include and lib folders, linked with --no-as-needed so that libtorch_cuda loads. The
# C++ ABI and standard come from python3's torch when that is the one at ROOT, else from
# the archive's TorchConfig.cmake and build-version; REPRO_TORCH_CXX_STANDARD overrides.
gpu_standin_torch() {
  local root=$1 abi="" standard=${REPRO_TORCH_CXX_STANDARD:-} version="" py_root=""
  py_root=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null | tail -n 1 || true)
  if [[ -n $py_root && $(cd "$py_root" 2>/dev/null && pwd) == "$root" ]]; then
    abi=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null | tail -n 1 || true)
    version=$(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null | tail -n 1 || true)
  else
    abi=$(grep -rhoE '_GLIBCXX_USE_CXX11_ABI=[01]' "$root/share/cmake/Torch" 2>/dev/null | head -n 1 | cut -d= -f2 || true)
    [[ -f $root/build-version ]] && version=$(head -n 1 "$root/build-version")
  fi
  if [[ -z $standard ]]; then  # LibTorch's headers need C++20 from 2.12 on
    standard=17
    if [[ $version =~ ^([0-9]+)\.([0-9]+) ]] &&
       (( BASH_REMATCH[1] > 2 || (BASH_REMATCH[1] == 2 && BASH_REMATCH[2] >= 12) )); then
      standard=20
    fi
  fi
  local libs=("-Wl,--no-as-needed") name
  for name in torch torch_cpu torch_cuda c10 c10_cuda; do
    [[ -e $root/lib/lib$name.so ]] && libs+=("$root/lib/lib$name.so")
  done
  libs+=("-Wl,--as-needed")
  mkdir -p "$stubs/Torch"
  cat > "$stubs/Torch/TorchConfig.cmake" <<EOF
# Stand-in for LibTorch's CMake config (deploy/gpu/lib.sh): $root${version:+, $version}.
if(NOT TARGET torch_stub)
  add_library(torch_stub INTERFACE IMPORTED)
  set_target_properties(torch_stub PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "$root/include;$root/include/torch/csrc/api/include"
    INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${abi:-1}"
    INTERFACE_COMPILE_FEATURES "cxx_std_$standard"
    INTERFACE_LINK_LIBRARIES "$(IFS=';'; echo "${libs[*]}")")
endif()
set(Torch_FOUND TRUE)
set(TORCH_FOUND TRUE)
set(TORCH_LIBRARIES torch_stub)
set(TORCH_INCLUDE_DIRS "$root/include;$root/include/torch/csrc/api/include")
EOF
}

# gpu_configure LOG [ARG...]: cmake with cmake_args, prefixes and ARG, output to LOG.
gpu_configure() {
  local log=$1 prefix_list
  shift
  prefix_list=$(IFS=';'; echo "${prefixes[*]:-}")
  cmake "${cmake_args[@]}" ${prefix_list:+"-DCMAKE_PREFIX_PATH=$prefix_list"} "$@" > "$log" 2>&1
}

# gpu_configure_torch LOG BUILD: configure; if that fails and LibTorch has a root folder
# (torch_root), configure again with the LibTorch stand-in. LibTorch's own attempt is
# kept in LOG.torch. Prints the end of LOG and returns 1 when configuring fails.
gpu_configure_torch() {
  local log=$1 build=$2
  rm -f "$log.torch"
  if [[ ${gpu_force_standins:-0} == 1 && -n $torch_root ]]; then
    echo "LibTorch: its folders directly (stand-ins forced)"
  elif gpu_configure "$log"; then
    return 0
  elif [[ -n $torch_root ]]; then
    mv -f "$log" "$log.torch"
    echo "LibTorch's CMake config did not load (see $log.torch); using its folders directly"
  fi
  if [[ -n $torch_root ]]; then
    gpu_standin_torch "$torch_root"
    rm -f "$build/CMakeCache.txt"
    gpu_configure "$log" "-DTorch_DIR=$stubs/Torch" && return 0
  fi
  echo "${0##*/}: CMake configuration failed; the end of $log:" >&2
  tail -n 25 "$log" >&2
  return 1
}
