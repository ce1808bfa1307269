#!/usr/bin/env bash
# deploy/gpu/pack-deps.sh OUT_DIR: on a Debian 12 machine with the project's build
# packages (quickstart.sh installs them), copies into OUT_DIR what building and running
# the worker needs and a GPU host without Debian's packages lacks, for
# deploy/gpu/build-worker.sh --deps OUT_DIR on that host:
#
#   include/     the headers of gRPC, Protobuf (and its .proto files), Abseil, OpenSSL,
#                zlib, c-ares, RE2, nlohmann-json and xxHash, as Debian's -dev packages
#                install them
#   lib/         the shared libraries of gRPC (the targets the worker uses), Protobuf,
#                Abseil, OpenSSL, zlib, c-ares and RE2, and whatever they need in turn
#                (followed with ldd), with their soname and linker-name links; glibc,
#                libstdc++, libgcc_s and libatomic are the host's
#   lib/cmake/   Debian's CMake configs of Abseil, gRPC and yaml-cpp, moved from lib/<triplet>/cmake
#                to lib/cmake (gRPC's cut to the targets carried), and one written here
#                for RE2 (Debian has only a pkg-config file; the host may lack pkg-config)
#   share/cmake/nlohmann_json/   its CMake config
#   lib/pkgconfig/libxxhash.pc   xxHash, header-only as the project uses it
#   bin/         protoc and grpc_cpp_plugin for the code generation: small wrappers that
#                find the libraries in lib/; the programs themselves are in libexec/
#   MANIFEST     the Debian packages and versions it came from, and the libraries
#
# Also carried, for build-worker.sh --all (the coordinator and reproctl too, as
# bench/gpu-study.sh builds them on the GPU host): SQLite and yaml-cpp, headers and
# libraries (about 2 MB). Not carried: static libraries, documentation. OUT_DIR is made or emptied
# (only one that this script made before). The host that uses it needs x86-64 with
# glibc >= 2.36 and the libstdc++ of GCC >= 12 (Ubuntu 24.04 has both). Prints the size.
set -euo pipefail

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  [[ $# -eq 1 && ($1 == -h || $1 == --help) ]] && exit 0
  exit 2
fi
die() { echo "pack-deps.sh: $*" >&2; exit 1; }

# The -dev packages whose headers and CMake files are carried, and the programs.
PACKAGES=(libgrpc++-dev libgrpc-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
          libabsl-dev libssl-dev zlib1g-dev libc-ares-dev libre2-dev nlohmann-json3-dev
          libxxhash-dev libsqlite3-dev libyaml-cpp-dev)
# gRPC's targets the worker links (gRPC::grpc++ and what it links) and the code generator.
GRPC_TARGETS=(gRPC::address_sorting gRPC::gpr gRPC::grpc gRPC::grpc++ gRPC::grpc++_reflection
              gRPC::upb gRPC::grpc_plugin_support gRPC::grpc_cpp_plugin)
# The host's own: glibc, the C++ and GCC runtime.
HOST_LIBS=" linux-vdso.so.1 ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2
  librt.so.1 libresolv.so.2 libutil.so.1 libstdc++.so.6 libgcc_s.so.1 libatomic.so.1 "

command -v dpkg-query >/dev/null 2>&1 || die "needs a Debian 12 machine (dpkg-query not found)"
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] || die "install these Debian packages first: ${missing[*]}"

# Debian's multiarch folders (/usr/lib/x86_64-linux-gnu), from where gRPC's config is.
grpc_config=$(dpkg -L libgrpc-dev | grep '/cmake/grpc/gRPCConfig.cmake$' | head -n 1)
[[ -n $grpc_config ]] || die "gRPC's CMake config is not in libgrpc-dev's file list"
libdir=$(dirname "$(dirname "$(dirname "$grpc_config")")")
triplet=$(basename "$libdir")

out=$1
if [[ -e $out && ! -d $out ]]; then die "$out is not a directory"; fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -n $(ls -A "$out") ]]; then
  [[ -f $out/MANIFEST ]] || die "$out is not empty and was not made by this script: give an empty or new folder"
  rm -rf "${out:?}/include" "${out:?}/lib" "${out:?}/bin" "${out:?}/libexec" "${out:?}/share" \
         "${out:?}/MANIFEST"
fi
mkdir -p "$out/include" "$out/lib/cmake" "$out/lib/pkgconfig" "$out/bin" "$out/libexec" "$out/share/cmake"

# ---------------------------------------------------------------- headers
# Every file the packages install under /usr/include (and its multiarch folder, where
# OpenSSL keeps configuration.h), with their times kept: a second pack over the same
# folder then rebuilds nothing.
copy_tree() {  # copy_tree FROM TO < relative paths
  tar -C "$1" -cf - --no-recursion -T - | tar -C "$2" -xpf -
}
dpkg -L "${PACKAGES[@]}" | sort -u | while read -r f; do
  [[ -f $f && ! -L $f ]] || continue
  case "$f" in
    /usr/include/"$triplet"/*) echo "M ${f#/usr/include/"$triplet"/}" ;;
    /usr/include/*) echo "I ${f#/usr/include/}" ;;
  esac
done > "$out/.headers"
sed -n 's/^I //p' "$out/.headers" | copy_tree /usr/include "$out/include"
sed -n 's/^M //p' "$out/.headers" | copy_tree "/usr/include/$triplet" "$out/include"
headers=$(wc -l < "$out/.headers")
rm -f "$out/.headers"
[[ -f $out/include/grpcpp/grpcpp.h && -f $out/include/google/protobuf/message.h &&
   -f $out/include/absl/status/status.h && -f $out/include/openssl/configuration.h &&
   -f $out/include/xxhash.h && -f $out/include/zlib.h && -f $out/include/nlohmann/json.hpp ]] \
  || die "headers missing after the copy (is a package broken?)"

# ---------------------------------------------------------------- libraries
# The files gRPC's and Abseil's configs name (the gRPC targets above, every Abseil
# library), Protobuf, and all that these and the two programs load, as ldd resolves it.
imported_files() {  # imported_files TARGETS_NONE_CMAKE [TARGET...]: IMPORTED_LOCATIONs
  local file=$1; shift
  awk -v keep=" $* " '
    /^# Import target "/ { t = $0; sub(/^# Import target "/, "", t); sub(/".*/, "", t)
                           take = (keep == "  " || index(keep, " " t " ") > 0) }
    take && /IMPORTED_LOCATION_[A-Z]+ / { print $2 }' "$file" |
    tr -d '"' | sed "s#^\${_IMPORT_PREFIX}#/usr#"
}
grpc_cmake=$(dirname "$grpc_config")
absl_cmake=$libdir/cmake/absl
mapfile -t seeds < <(
  imported_files "$grpc_cmake/gRPCTargets-none.cmake" "${GRPC_TARGETS[@]}"
  imported_files "$absl_cmake/abslTargets-none.cmake"
  readlink -f "$libdir/libprotobuf.so"
  readlink -f "$libdir/libsqlite3.so"
  readlink -f "$libdir/libyaml-cpp.so"
  dpkg -L protobuf-compiler | grep '/bin/protoc$'
)
[[ ${#seeds[@]} -gt 50 ]] || die "found only ${#seeds[@]} libraries in gRPC's and Abseil's CMake configs"
declare -A libs=()
programs=()
for f in "${seeds[@]}"; do
  [[ -e $f ]] || die "$f (named by a CMake config) does not exist"
  case "$f" in
    */bin/*) programs+=("$f") ;;
    *) libs[$f]=1 ;;
  esac
  while read -r name _ path _; do
    [[ $path == /* ]] || continue
    case "$HOST_LIBS" in *" $name "*) continue ;; esac
    libs[$path]=1
  done < <(ldd "$f" | grep '=>')
  if ldd "$f" | grep -q 'not found'; then die "ldd $f: a library is not found"; fi
done

for path in "${!libs[@]}"; do
  real=$(readlink -f "$path")
  file=$(basename "$real")
  cp -p "$real" "$out/lib/$file"
  soname=$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  soname=${soname:-$file}
  [[ $soname == "$file" ]] || ln -sfn "$file" "$out/lib/$soname"
  linker=${soname%%.so*}.so  # the name find_library and -l look for
  [[ $linker == "$soname" || -e $out/lib/$linker ]] || ln -sfn "$soname" "$out/lib/$linker"
done

# protoc and grpc_cpp_plugin: the programs in libexec/ (protoc finds the well-known
# .proto files in ../include from there), wrappers in bin/ that give them lib/.
for f in "${programs[@]}"; do
  name=$(basename "$f")
  cp -p "$(readlink -f "$f")" "$out/libexec/$name"
  cat > "$out/bin/$name" <<EOF
#!/bin/sh
# $name from Debian 12, packed by deploy/gpu/pack-deps.sh: runs with the libraries beside it.
here=\$(dirname "\$(readlink -f "\$0")")
LD_LIBRARY_PATH="\$here/../lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/../libexec/$name" "\$@"
EOF
  chmod 0755 "$out/bin/$name"
done
[[ -x $out/bin/protoc && -x $out/bin/grpc_cpp_plugin ]] || die "protoc or grpc_cpp_plugin was not packed"

# ---------------------------------------------------------------- CMake configs
# Debian's configs find their prefix four folders above lib/<triplet>/cmake/<package>;
# here they are in lib/cmake/<package>, three folders down, and the libraries in lib/.
relocate() {  # relocate CONFIG_FILE
  sed -i "s#\${_IMPORT_PREFIX}/lib/$triplet/#\${_IMPORT_PREFIX}/lib/#g" "$1"
  # shellcheck disable=SC2016  # ${_IMPORT_PREFIX} is CMake's, matched literally
  local up='^get_filename_component(_IMPORT_PREFIX "\${_IMPORT_PREFIX}" PATH)$'
  local n
  n=$(grep -c "$up" "$1" || true)
  if [[ $n -ne 0 ]]; then
    [[ $n -eq 4 ]] || die "$1: expected 4 steps up to the prefix, found $n"
    sed -i "0,/$up/{//d}" "$1"
  fi
  if grep -v '_realOrig\|set(_IMPORT_PREFIX "/usr' "$1" | grep -q '"/usr/'; then
    die "$1: a path under /usr is left"
  fi
}
mkdir -p "$out/lib/cmake/absl" "$out/lib/cmake/grpc/modules" "$out/lib/cmake/yaml-cpp"
cp -p "$absl_cmake"/*.cmake "$out/lib/cmake/absl/"
cp -p "$libdir"/cmake/yaml-cpp/*.cmake "$out/lib/cmake/yaml-cpp/"
cp -p "$grpc_cmake"/*.cmake "$out/lib/cmake/grpc/"
cp -p "$grpc_cmake"/modules/*.cmake "$out/lib/cmake/grpc/modules/"
# gRPC's config checks that every imported file exists: keep only the carried targets.
awk -v keep=" ${GRPC_TARGETS[*]} " '
  /^# Import target "/ { t = $0; sub(/^# Import target "/, "", t); sub(/".*/, "", t)
                         skip = (index(keep, " " t " ") == 0) }
  /^# Commands beyond this point/ { skip = 0 }
  !skip' "$grpc_cmake/gRPCTargets-none.cmake" > "$out/lib/cmake/grpc/gRPCTargets-none.cmake"
for f in "$out"/lib/cmake/absl/*.cmake "$out"/lib/cmake/grpc/*.cmake "$out"/lib/cmake/yaml-cpp/*.cmake; do
  relocate "$f"
done
nlohmann_cmake=$(dpkg -L nlohmann-json3-dev | grep '/nlohmann_jsonConfig.cmake$' | head -n 1)
[[ -n $nlohmann_cmake ]] || die "nlohmann_json's CMake config is not in nlohmann-json3-dev's file list"
mkdir -p "$out/share/cmake/nlohmann_json"
cp -p "$(dirname "$nlohmann_cmake")"/*.cmake "$out/share/cmake/nlohmann_json/"

re2_lib=""
for f in "$out"/lib/libre2.so.*; do [[ -e $f ]] && { re2_lib=$(basename "$f"); break; }; done
[[ -n $re2_lib ]] || die "libre2 was not among gRPC's libraries"
mkdir -p "$out/lib/cmake/re2"
cat > "$out/lib/cmake/re2/re2Config.cmake" <<EOF
# RE2 from Debian 12 (deploy/gpu/pack-deps.sh): Debian ships only re2.pc, and gRPC's
# Findre2.cmake takes a config first, so no pkg-config is needed.
get_filename_component(_re2_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET re2::re2)
  add_library(re2::re2 SHARED IMPORTED)
  set_target_properties(re2::re2 PROPERTIES
    IMPORTED_LOCATION "\${_re2_prefix}/lib/$re2_lib"
    INTERFACE_INCLUDE_DIRECTORIES "\${_re2_prefix}/include")
endif()
set(re2_FOUND TRUE)
unset(_re2_prefix)
EOF

xxhash_version=$(dpkg-query -W -f='${Version}' libxxhash-dev | sed 's/-.*//')
cat > "$out/lib/pkgconfig/libxxhash.pc" <<EOF
# xxHash from Debian 12 (deploy/gpu/pack-deps.sh), header-only as repro uses it
# (XXH_INLINE_ALL): no library to link.
prefix=\${pcfiledir}/../..
includedir=\${prefix}/include

Name: xxhash
Description: extremely fast hash algorithm (header only)
Version: $xxhash_version
Cflags: -I\${includedir}
EOF

# ---------------------------------------------------------------- manifest
{
  echo "# deploy/gpu/pack-deps.sh on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# $(. /etc/os-release && echo "$PRETTY_NAME"), $triplet"
  echo "# packages:"
  dpkg-query -W -f='${Package} ${Version}\n' "${PACKAGES[@]}" | sed 's/^/#   /'
  echo "# libraries (lib/):"
  (cd "$out/lib" && find . -maxdepth 1 -type f -name '*.so*' | sed 's#^\./##' | sort)
} > "$out/MANIFEST"

nlibs=$(find "$out/lib" -maxdepth 1 -type f -name '*.so*' | wc -l)
size=$(du -sh "$out" | cut -f1)
echo "pack-deps.sh: $out: $size ($nlibs libraries, $headers headers, protoc and grpc_cpp_plugin)"
echo "  on the GPU host: deploy/gpu/build-worker.sh --deps $out"
