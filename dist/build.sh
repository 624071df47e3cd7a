#!/usr/bin/env bash
# Static release files: dist/edgestra-<version>-<triple> and dist/SHA256SUMS (`just dist`).
#
#   dist/build.sh [TRIPLE...]      default: x86_64-unknown-linux-musl aarch64-unknown-linux-musl
#   DIST_TARGETS="aarch64-unknown-linux-musl" dist/build.sh
#   DIST_CHECK=1 dist/build.sh     also runs dist/check.sh (serve, generate, validate) on each file
#
# Installs what is missing first (rustup targets; Debian packages when run as root: musl-tools,
# the aarch64 cross gcc and musl's arm64 headers and libraries through dpkg's arm64 architecture).
# Each file is built with `cargo build --profile dist --locked` (Cargo.toml, .cargo/config.toml)
# and must be one static file: dist/check.sh --linkage fails the build otherwise.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf 'dist: %s\n' "$*"; }
die() {
    printf 'dist: error: %s\n' "$*" >&2
    exit 1
}

supported=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
if [ $# -gt 0 ]; then
    targets=("$@")
elif [ -n "${DIST_TARGETS:-}" ]; then
    read -r -a targets <<<"${DIST_TARGETS//,/ }"
else
    targets=("${supported[@]}")
fi
[ ${#targets[@]} -gt 0 ] || die "no target given"
for t in "${targets[@]}"; do
    case " ${supported[*]} " in
        *" $t "*) ;;
        *) die "unsupported target '$t' (supported: ${supported[*]})" ;;
    esac
done

version=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version[[:space:]]*=/ { print $2; exit }' Cargo.toml)
[ -n "$version" ] || die "no version in Cargo.toml's [package]"

# --- What the targets need. --------------------------------------------------------------------
wants() { case " ${targets[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

packages=(file binutils)
wants x86_64-unknown-linux-musl && packages+=(musl-tools)
# musl-dev:arm64 brings /usr/bin/aarch64-linux-musl-gcc, a wrapper of gcc-aarch64-linux-gnu with
# musl's specs (/usr/lib/aarch64-linux-musl/musl-gcc.specs), and musl's arm64 headers and libc.a.
wants aarch64-unknown-linux-musl && packages+=(gcc-aarch64-linux-gnu musl-dev:arm64)
if [ "${DIST_CHECK:-0}" = 1 ] && wants aarch64-unknown-linux-musl && [ "$(uname -m)" != aarch64 ]; then
    packages+=(qemu-user)
fi
[ "${DIST_CHECK:-0}" = 1 ] && packages+=(curl)
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        die "missing Debian packages: ${missing[*]} (as root: dpkg --add-architecture arm64 for musl-dev:arm64, apt-get update, apt-get install ${missing[*]})"
    fi
    if wants aarch64-unknown-linux-musl && ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "dpkg --add-architecture arm64 (for musl-dev:arm64)"
        dpkg --add-architecture arm64
    fi
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v rustup >/dev/null || die "rustup is needed (for the musl targets' standard library)"
have_targets=$(rustup target list --installed)
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$have_targets"; then
        say "rustup target add $t"
        rustup target add "$t"
    fi
done

# C compilers for the C parts (ring, zstd-sys, the allocator), per target; the caller's win.
export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}
export AR_x86_64_unknown_linux_musl=${AR_x86_64_unknown_linux_musl:-ar}
export CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-musl-gcc}
export AR_aarch64_unknown_linux_musl=${AR_aarch64_unknown_linux_musl:-aarch64-linux-gnu-ar}
# The linker of aarch64 is in .cargo/config.toml (aarch64-linux-gnu-gcc).
for t in "${targets[@]}"; do
    var=CC_${t//-/_}
    command -v "${!var}" >/dev/null || die "$var=${!var} is not on PATH"
    var=AR_${t//-/_}
    command -v "${!var}" >/dev/null || die "$var=${!var} is not on PATH"
done
if wants aarch64-unknown-linux-musl; then
    command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc (the linker) is not on PATH"
fi
if [ -n "${RUSTFLAGS:-}${CARGO_ENCODED_RUSTFLAGS:-}" ]; then
    say "warning: RUSTFLAGS is set and replaces .cargo/config.toml's flags (+crt-static, relocation-model)"
fi

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) \
    || target_dir=${CARGO_TARGET_DIR:-$root/target}

# --- Build. -------------------------------------------------------------------------------------
mkdir -p dist
summary=()
for t in "${targets[@]}"; do
    say "building $t (cargo build --profile dist --target $t --bin edgestra --locked)"
    started=$SECONDS
    cargo build --profile dist --target "$t" --bin edgestra --locked
    took=$((SECONDS - started))
    out=dist/edgestra-$version-$t
    cp "$target_dir/$t/dist/edgestra" "$out.tmp"
    chmod 755 "$out.tmp"
    mv -f "$out.tmp" "$out"
    bash dist/check.sh --linkage "$out" "$t" || die "$out is not one static file"
    size=$(stat -c %s "$out")
    line=$(printf '%-52s %5d MiB  built in %dm%02ds' "$out" $((size / 1048576)) $((took / 60)) $((took % 60)))
    say "$line"
    summary+=("$line")
done

# Every file of this version that is in dist/, built now or before.
(
    cd dist
    shopt -s nullglob
    files=()
    for t in "${supported[@]}"; do
        [ -f "edgestra-$version-$t" ] && files+=("edgestra-$version-$t")
    done
    sha256sum "${files[@]}" >SHA256SUMS
)
say "dist/SHA256SUMS:"
sed 's/^/  /' dist/SHA256SUMS

if [ "${DIST_CHECK:-0}" = 1 ]; then
    for t in "${targets[@]}"; do
        bash dist/check.sh "dist/edgestra-$version-$t" "$t"
    done
fi

say "done:"
printf '  %s\n' "${summary[@]}"
