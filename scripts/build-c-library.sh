#!/usr/bin/env bash
# The C library: scripts/build-c-library.sh [--debug] PREFIX [swift build options...]
# builds libgemmatiny.so and libgemmatiny.a (release unless --debug) and installs
#   PREFIX/include/gemma_tiny.h                the interface and its documentation
#   PREFIX/lib/libgemmatiny.so                 the Swift runtime and Foundation linked in: needs only
#                                              libc, libm, libgcc_s, libstdc++ and libzstd
#   PREFIX/lib/libgemmatiny.a                  needs, at link time, the static Swift runtime of the
#                                              Swift that built it (see gemma-tiny-static.pc)
#   PREFIX/lib/pkgconfig/gemma-tiny.pc         cc app.c $(pkg-config --cflags --libs gemma-tiny)
#   PREFIX/lib/pkgconfig/gemma-tiny-static.pc  the same with libgemmatiny.a
# Options after PREFIX go to swift build (scripts/dist.sh passes --scratch-path and --swift-sdk).
# Environment: GEMMA_SWIFT_STATIC_DIR, the folder of the static Swift runtime to name in the .pc
# files (default: the building Swift's own, <resource dir>_static/linux); GEMMA_PC_PREFIX, the
# prefix the .pc files name (default PREFIX; scripts/dist.sh uses '${pcfiledir}/../..', which
# pkg-config resolves to wherever the files are unpacked).
set -euo pipefail

usage() { echo "usage: scripts/build-c-library.sh [--debug] PREFIX [swift build options...]" >&2; exit 2; }
config=release
if [ "${1:-}" = --debug ]; then config=debug; shift; fi
[ $# -ge 1 ] || usage
prefix=$1; shift
case $prefix in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
cd "$(dirname "$0")/.."

swift_args=(-c "$config" "$@")
# (Drops progress lines and the known warning that Foundation's static library uses mktemp.)
quiet() { grep -vE "^\[|^Building for|mktemp|createTemporaryFile|_ThreadLocal.swift.o|garbage collection|SDKSettings.json" || true; }
for product in gemmatiny gemmatiny-static; do
    swift build "${swift_args[@]}" --product $product 2>&1 | quiet
done
bin=$(swift build "${swift_args[@]}" --show-bin-path)
for f in libgemmatiny.so libgemmatiny-static.a; do
    [ -f "$bin/$f" ] || { echo "error: $bin/$f was not built" >&2; exit 1; }
done

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 Sources/CGemmaTiny/include/gemma_tiny.h "$prefix/include/gemma_tiny.h"
install -m 755 "$bin/libgemmatiny.so" "$prefix/lib/libgemmatiny.so"
install -m 644 "$bin/libgemmatiny-static.a" "$prefix/lib/libgemmatiny.a"

# What libgemmatiny.a needs at link time: the libraries its Swift objects name (their autolink
# entries), the C parts of Foundation's static archives, and swiftrt.o (registers the Swift
# metadata of the executable; nothing refers to it, so it is named as a file).
tools=$(dirname "$(readlink -f "$(command -v swiftc)")")
if [ -n "${GEMMA_SWIFT_STATIC_DIR:-}" ]; then
    swift_static=$GEMMA_SWIFT_STATIC_DIR
else
    resources=$(swiftc -print-target-info | sed -n 's/.*"runtimeResourcePath": "\(.*\)".*/\1/p')
    swift_static=${resources}_static/linux
fi
case $(readelf -h "$prefix/lib/libgemmatiny.so" | sed -n 's/^ *Machine: *//p') in
    *AArch64*) arch=aarch64 ;;
    *X86-64*) arch=x86_64 ;;
    *) echo "error: libgemmatiny.so is for an unknown machine" >&2; exit 1 ;;
esac
autolink=$("$tools/swift-autolink-extract" "$prefix/lib/libgemmatiny.a" -o - | awk '!seen[$0]++')
swift_libs=() system_libs=()
for flag in $autolink; do
    case $flag in
        -lm|-lpthread|-ldl|-lutil|-lrt|-lc|-lzstd|-lstdc++) system_libs+=("$flag") ;;
        *) swift_libs+=("$flag") ;;
    esac
done
if [[ " ${swift_libs[*]} " == *" -lFoundation "* ]]; then
    for part in -lCoreFoundation -l_FoundationICU -l_FoundationCollections -l_FoundationCShims; do
        [[ " ${swift_libs[*]} " == *" $part "* ]] || swift_libs+=("$part")
    done
fi
private="\${swift_static}/$arch/swiftrt.o -L\${swift_static} -Wl,--start-group ${swift_libs[*]} -Wl,--end-group ${system_libs[*]} -lstdc++"
version=$(sed -n 's/^public let gemmaTinyVersion = "\(.*\)"/\1/p' Sources/GemmaTiny/Format/ModelMetadata.swift)

pc_head() {
    cat <<EOF
# Written by gemma-tiny's scripts/build-c-library.sh. The interface is documented in gemma_tiny.h.
prefix=${GEMMA_PC_PREFIX:-$prefix}
exec_prefix=\${prefix}
libdir=\${prefix}/lib
includedir=\${prefix}/include
# The static Swift runtime libgemmatiny.a is linked with (the Swift that built it).
swift_static=$swift_static

EOF
}
{
    pc_head
    cat <<EOF
Name: gemma-tiny
Description: Gemma language models on small machines (C interface; the Swift runtime is inside libgemmatiny.so)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lgemmatiny
# For libgemmatiny.a (use gemma-tiny-static.pc, which links the archive itself):
Libs.private: $private
EOF
} >"$prefix/lib/pkgconfig/gemma-tiny.pc"
{
    pc_head
    cat <<EOF
Name: gemma-tiny-static
Description: Gemma language models on small machines (C interface, static library)
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libgemmatiny.a $private
EOF
} >"$prefix/lib/pkgconfig/gemma-tiny-static.pc"

echo "installed gemma-tiny $version ($config, $arch) in $prefix:"
echo "  include/gemma_tiny.h, lib/libgemmatiny.so, lib/libgemmatiny.a, lib/pkgconfig/gemma-tiny{,-static}.pc"
