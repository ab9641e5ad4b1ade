#!/usr/bin/env bash
# Release binaries for a board without Swift: scripts/dist.sh [--server] aarch64|x86_64 [...]
# writes dist/<arch>/gemma-tiny and dist/<arch>/gemma-quantize: release builds of the core package
# with the Swift runtime and Foundation linked statically (--static-swift-stdlib), and libzstd and
# libstdc++ too, so that they need only the C library family (libc, libm, libgcc_s, the loader).
# Also the C library (scripts/build-c-library.sh): dist/<arch>/include/gemma_tiny.h,
# dist/<arch>/lib/libgemmatiny.so (as self-contained as the binaries), libgemmatiny.a and
# lib/pkgconfig/gemma-tiny{,-static}.pc (relocatable: ${pcfiledir}), and all of it in
# dist/gemma-tiny-<version>-linux-<arch>.tar.gz (bin/, include/, lib/).
#
# The toolchain is Debian 13 (trixie)'s swiftlang 6.0.3, run in a trixie root made by mmdebstrap
# under .cache/dist/ (made on first use, ~1 GB; needs root and network access to the Debian
# archive). aarch64 is cross-compiled by the amd64 swift there against an arm64 sysroot of
# trixie's arm64 packages (libc6-dev, libstdc++/libgcc dev, libzstd-dev, and the aarch64 Swift
# modules and static runtime from swiftlang:arm64): no emulation, about as fast as x86_64.
# The binaries need glibc >= 2.35 (Raspberry Pi OS and Debian 12 or 13, Ubuntu 22.04 or later):
# trixie's static Swift runtime is built against glibc 2.41, and scripts/glibc-compat.c stands in
# for the 8 symbols of glibc 2.38 that it names (checked below, after each link).
#
# --server builds dist/<arch>/gemma-tiny-serve instead (the server package, which `gemma-tiny
# serve` runs from beside gemma-tiny; the tarball, made by the next run without --server, then
# holds it too). Its packages (SwiftNIO, Hummingbird, swift-log) need Swift 6.2, which Debian has
# only in unstable (sid): swiftlang 6.2.3, in a sid root and a sid arm64 sysroot of their own.
# sid's runtime is linked against glibc 2.43, which gives 13 float functions of libm new
# versions: glibc-compat.c binds those to their old ones too (-DGEMMA_COMPAT_GLIBC_2_43), and the
# same check keeps the server at glibc 2.35+.
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

server=0
if [ "${1:-}" = --server ]; then server=1; shift; fi
[ $# -ge 1 ] || { echo "usage: scripts/dist.sh [--server] aarch64|x86_64 [...]" >&2; exit 2; }
for arch in "$@"; do
    case $arch in aarch64|x86_64) ;; *) echo "error: unknown architecture '$arch' (aarch64 or x86_64)" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "error: scripts/dist.sh needs root (mmdebstrap, chroot, bind mounts)" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "error: scripts/dist.sh runs on an x86-64 host" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v mmdebstrap >/dev/null || ! command -v readelf >/dev/null; then
    echo "installing mmdebstrap, binutils"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq mmdebstrap binutils >/dev/null
fi

cache=$repo/.cache/dist
if [ "$server" = 1 ]; then
    suite=sid swift_version=6.2.3 build_name=server-  # .build-dist/server-ARCH
    root=$cache/sid-amd64           # the toolchain: sid amd64 with swiftlang
    sysroot=$cache/sysroot-arm64-sid
    compat_flags=(-DGEMMA_COMPAT_GLIBC_2_43)
else
    suite=trixie swift_version=6.0.3 build_name=
    root=$cache/trixie-amd64        # the toolchain: trixie amd64 with swiftlang
    sysroot=$cache/sysroot-arm64    # the aarch64 target: trixie arm64 headers, libraries, Swift modules
    compat_flags=()
fi
# A mirror that serves a fixed snapshot has Release files past their Valid-Until date (sid's are
# valid for a week only).
aptopt=(--aptopt='Acquire::Check-Valid-Until "false"')
mkdir -p "$cache"

# run_in_root COMMAND...: runs COMMAND in the toolchain root, with the repository at /src, the
# Swift package mirror (if any) and the host's git configuration (its URL rewrites), and the arm64
# sysroot at /sysroot. A private mount namespace: nothing stays mounted afterwards.
run_in_root() {
    unshare --mount --propagation private bash -euc '
        root=$1 repo=$2 sysroot=$3; shift 3
        mkdir -p "$root/src" "$root/sysroot" "$root/opt/swift-packages"
        mount --bind "$repo" "$root/src"
        [ -d "$sysroot" ] && mount --bind "$sysroot" "$root/sysroot"
        [ -d /opt/swift-packages ] && mount --bind /opt/swift-packages "$root/opt/swift-packages"
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        [ -f /etc/gitconfig ] && cp /etc/gitconfig "$root/etc/gitconfig"
        cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
        exec chroot "$root" env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$@"
    ' bash "$root" "$repo" "$sysroot" "$@"
}

t0=$SECONDS
if [ ! -f "$root/.gemma-dist-ready" ]; then
    echo "making the $suite toolchain root in $root (mmdebstrap)"
    rm -rf "$root"
    mmdebstrap --quiet --variant=minbase --architectures=amd64,arm64 "${aptopt[@]}" \
        --include=swiftlang,libc6-dev,libstdc++-14-dev,libzstd-dev,pkg-config,git,ca-certificates \
        "$suite" "$root" "$mirror"
    # What a build never runs (debugger, language server, docs, the apt lists): ~0.9 GB less disk.
    rm -rf "$root"/usr/libexec/swift/bin/{lldb,lldb-server,lldb-dap,clangd,sourcekit-lsp,docc,swift-format} \
        "$root"/usr/libexec/swift/lib/{liblldb.so*,libsourcekitdInProc.so} \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    touch "$root/.gemma-dist-ready"
fi

# Static libraries that the link should take instead of the shared ones: a folder holding only the
# .a files, searched before the system folders (its -L comes from the libzstd.pc written here,
# which SwiftPM reads through PKG_CONFIG_PATH for the CZstd system-library target).
static_dir() {  # static_dir ARCH LIBDIR GCCDIR: fills $root/opt/gemma-static/ARCH
    local dir=$root/opt/gemma-static/$1
    mkdir -p "$dir"
    cp "$2/libzstd.a" "$3/libstdc++.a" "$dir/"
    printf 'Name: libzstd\nDescription: zstd, linked statically\nVersion: 1.5\nLibs: -L/opt/gemma-static/%s -lzstd\nCflags:\n' \
        "$1" >"$dir/libzstd.pc"
}

if [[ " $* " == *" aarch64 "* ]] && [ ! -f "$sysroot/.gemma-dist-ready" ]; then
    echo "making the arm64 sysroot in $sysroot"
    rm -rf "$sysroot"
    mmdebstrap --quiet --variant=extract --architectures=arm64 "${aptopt[@]}" \
        --include=libc6-dev,libstdc++-14-dev,libgcc-14-dev,libzstd-dev,linux-libc-dev \
        "$suite" "$sysroot" "$mirror"
    # The packages install into /usr; the linker scripts name /lib/... (merged /usr).
    for d in lib bin sbin; do [ -e "$sysroot/$d" ] || ln -s "usr/$d" "$sysroot/$d"; done
    # The aarch64 Swift modules and static runtime: from swiftlang:arm64, only what a build needs.
    run_in_root bash -c 'mkdir -p /var/cache/gemma-debs && cd /var/cache/gemma-debs && rm -f swiftlang_*arm64.deb &&
        apt-get update -qq && apt-get download -q=2 swiftlang:arm64 2>&1 | grep -v "unsandboxed" || true'
    deb=$(ls "$root"/var/cache/gemma-debs/swiftlang_*_arm64.deb)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$sysroot" \
        --exclude='./usr/libexec/swift/lib/swift/host' --exclude='./usr/libexec/swift/lib/swift/embedded' \
        --wildcards './usr/libexec/swift/lib/swift/*' './usr/libexec/swift/lib/swift_static/*' './usr/libexec/swift/lib/clang/*'
    rm -f "$deb"
    [ -f "$sysroot/usr/libexec/swift/lib/swift_static/linux/static-stdlib-args.lnk" ] ||
        { echo "error: swiftlang:arm64 has no static Swift runtime (lib/swift_static)" >&2; exit 1; }
    # Swift 6.2's driver looks for swiftrt.o under <sdk>/usr/lib/swift_static, not the SDK's
    # resource paths.
    ln -sfn ../libexec/swift/lib/swift_static "$sysroot/usr/lib/swift_static"
    ln -sfn ../libexec/swift/lib/swift "$sysroot/usr/lib/swift"
    touch "$sysroot/.gemma-dist-ready"
fi
echo "toolchain ready ($((SECONDS - t0)) s)"

# The aarch64 Swift SDK: the sysroot, its Swift resources, linked by the toolchain's lld (the host's
# ld cannot link aarch64). Only the static resources: everything here links the Swift runtime
# statically, and libgemmatiny.so (a library product, for which SwiftPM passes the SDK's
# swiftResourcesPath, not the static one) is linked with -static-stdlib, which looks for
# static-stdlib-args.lnk in the resource folder it is given.
sdk=$root/opt/gemma-sdks/gemma-aarch64.artifactbundle
mkdir -p "$sdk/gemma-aarch64"
cat >"$sdk/info.json" <<'EOF'
{"schemaVersion": "1.0", "artifacts": {"gemma-aarch64": {"type": "swiftSDK", "version": "1.0",
  "variants": [{"path": "gemma-aarch64"}]}}}
EOF
cat >"$sdk/gemma-aarch64/swift-sdk.json" <<'EOF'
{"schemaVersion": "4.0", "targetTriples": {"aarch64-unknown-linux-gnu": {
  "sdkRootPath": "/sysroot",
  "swiftResourcesPath": "/sysroot/usr/libexec/swift/lib/swift_static",
  "swiftStaticResourcesPath": "/sysroot/usr/libexec/swift/lib/swift_static",
  "toolsetPaths": ["toolset.json"]}}}
EOF
cat >"$sdk/gemma-aarch64/toolset.json" <<'EOF'
{"schemaVersion": "1.0", "swiftCompiler": {"extraCLIOptions": ["-use-ld=lld"]}}
EOF

# quiet: a build's output without its progress lines, package fetching, and known harmless
# warnings (the SDK has no SDKSettings.json; Foundation's static library uses mktemp; packages of
# the server with a CMakeLists.txt they do not declare).
quiet() {
    grep -vE "^\[|SDKSettings.json|^Building for|mktemp|garbage collection|createTemporaryFile|which are unhandled|CMakeLists.txt$|^Fetch|^Creating working copy|^Working copy of|^Computing version|^Computed " || true
}

# check_binaries ARCH FILE...: what dist/ARCH/FILE needs: the C library family only, glibc 2.35+.
check_binaries() {
    local arch=$1 exe f machine needed glibc lib; shift
    for exe in "$@"; do
        f=dist/$arch/$exe
        machine=$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')
        needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
        glibc=$(readelf -V -W "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 || true)
        printf '%-28s %6.1f MB (%s bytes)  %s\n    NEEDED: %s\n    newest glibc symbol version: %s\n' \
            "$f" "$(stat -c %s "$f" | awk '{print $1 / 1048576}')" "$(stat -c %s "$f")" "$machine" "$needed" "${glibc:-?}"
        # Raspberry Pi OS / Debian 12 have glibc 2.36, Ubuntu 22.04 2.35.
        if [ "$(printf '%s\n' "${glibc#GLIBC_}" 2.35 | sort -V | tail -n 1)" != 2.35 ]; then
            echo "error: $f needs $glibc (at most GLIBC_2.35 is allowed): $(readelf -V -W "$f" | grep -oE 'Name: GLIBC_2\.(3[6-9]|[4-9][0-9])' | sort -u | tr '\n' ' ')" >&2
            status=1
        fi
        for lib in $needed; do
            case $lib in
                libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|libgcc_s.so.1|ld-linux-*.so.*) ;;
                *) echo "error: $f needs $lib (only the C library family is allowed)" >&2; status=1 ;;
            esac
        done
    done
}

status=0
for arch in "$@"; do
    t1=$SECONDS
    if [ "$arch" = aarch64 ]; then
        static_dir aarch64 "$sysroot/usr/lib/aarch64-linux-gnu" "$sysroot/usr/lib/gcc/aarch64-linux-gnu/14"
        target=(--swift-sdks-path /opt/gemma-sdks --swift-sdk gemma-aarch64)
    else
        static_dir x86_64 "$root/usr/lib/x86_64-linux-gnu" "$root/usr/lib/gcc/x86_64-linux-gnu/14"
        target=()
    fi
    # glibc 2.35+ rather than 2.38+: stand-ins for the 8 glibc 2.38 symbols that trixie's static
    # runtime names (scripts/glibc-compat.c), one object linked into every binary and the .so.
    compat=/src/.build-dist/glibc-compat-$build_name$arch.o
    cross=()
    [ "$arch" = aarch64 ] && cross=(--target=aarch64-linux-gnu --sysroot=/sysroot)
    run_in_root bash -c 'mkdir -p /src/.build-dist && /usr/libexec/swift/bin/clang "$@"' bash "${cross[@]}" \
        -std=c11 -O2 -fPIC -Wall -Werror "${compat_flags[@]}" -c /src/scripts/glibc-compat.c -o "$compat"
    # Its own scratch folder (.build-dist/, gitignored): the host's .build is another Swift's.
    # -Xlinker -s: no symbol tables (a third of the size).
    scratch=/src/.build-dist/$build_name$arch
    flags=(-c release --static-swift-stdlib --scratch-path "$scratch" "${target[@]}" -Xlinker -s
           -Xlinker "$compat")
    bin=$repo${scratch#/src}/release
    [ "$arch" = aarch64 ] && bin=$repo${scratch#/src}/aarch64-unknown-linux-gnu/release
    echo "building $arch (swift $swift_version, release, static Swift runtime)"
    if [ "$server" = 1 ]; then
        rm -f "dist/$arch/gemma-tiny-serve"
        run_in_root env PKG_CONFIG_PATH="/opt/gemma-static/$arch" bash -c \
            'cd /src && swift build --package-path server "$@" --product gemma-tiny-serve' bash "${flags[@]}" 2>&1 | quiet
        [ -x "$bin/gemma-tiny-serve" ] || { echo "error: $bin/gemma-tiny-serve was not built" >&2; exit 1; }
        mkdir -p "dist/$arch"
        cp "$bin/gemma-tiny-serve" "dist/$arch/gemma-tiny-serve"
        echo "$arch built in $((SECONDS - t1)) s"
        check_binaries "$arch" gemma-tiny-serve
        continue
    fi
    rm -f "dist/$arch/gemma-tiny" "dist/$arch/gemma-quantize"
    run_in_root env PKG_CONFIG_PATH="/opt/gemma-static/$arch" bash -c \
        'set -e; cd /src; for product in gemma-tiny gemma-quantize; do swift build "$@" --product $product; done' \
        bash "${flags[@]}" 2>&1 | quiet
    mkdir -p "dist/$arch"
    for exe in gemma-tiny gemma-quantize; do
        [ -x "$bin/$exe" ] || { echo "error: $bin/$exe was not built" >&2; exit 1; }
        cp "$bin/$exe" "dist/$arch/$exe"
    done
    # The C library, from the same build (same scratch folder and flags: only the links are new).
    # The .pc files name the static Swift runtime where Debian 13's swiftlang installs it.
    rm -rf "dist/$arch/include" "dist/$arch/lib"
    run_in_root env PKG_CONFIG_PATH="/opt/gemma-static/$arch" \
        GEMMA_SWIFT_STATIC_DIR=/usr/libexec/swift/lib/swift_static/linux GEMMA_PC_PREFIX='${pcfiledir}/../..' \
        bash -c 'set -eo pipefail; cd /src; scripts/build-c-library.sh "/src/dist/$0" "$@" | { grep -vE "^installed|^  include" || true; }' \
        "$arch" "${flags[@]}"
    echo "$arch built in $((SECONDS - t1)) s"

    check_binaries "$arch" gemma-tiny gemma-quantize lib/libgemmatiny.so
    # libgemmatiny.so exports exactly the functions of gemma_tiny.h.
    declared=$(sed -nE 's/^[a-z].*[ *](gt_[a-z_]+)\(.*/\1/p' "dist/$arch/include/gemma_tiny.h" | sort -u)
    exported=$(nm -D --defined-only "dist/$arch/lib/libgemmatiny.so" | awk '$2 ~ /^[A-Z]$/ { print $3 }' | sort -u)
    if [ "$declared" = "$exported" ]; then
        echo "    exports (nm -D): the $(echo "$exported" | wc -l) gt_ functions of gemma_tiny.h, nothing else"
    else
        echo "error: dist/$arch/lib/libgemmatiny.so exports other symbols than gemma_tiny.h declares:" >&2
        diff <(echo "$declared") <(echo "$exported") >&2; status=1
    fi
    # The release tarball: bin/, include/, lib/.
    version=$(sed -n 's/^public let gemmaTinyVersion = "\(.*\)"/\1/p' Sources/GemmaTiny/Format/ModelMetadata.swift)
    tarball=dist/gemma-tiny-$version-linux-$arch.tar.gz
    tree=gemma-tiny-$version-linux-$arch
    tar -czf "$tarball" --owner=0 --group=0 \
        --transform "s,^dist/$arch/gemma-,$tree/bin/gemma-," --transform "s,^dist/$arch/,$tree/," \
        "dist/$arch/gemma-tiny" "dist/$arch/gemma-quantize" $([ -x "dist/$arch/gemma-tiny-serve" ] && echo "dist/$arch/gemma-tiny-serve") \
        "dist/$arch/include" "dist/$arch/lib"
    printf '%-28s %6.1f MB\n' "$tarball" "$(stat -c %s "$tarball" | awk '{print $1 / 1048576}')"
done
exit $status
