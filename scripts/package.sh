#!/usr/bin/env bash
# Builds the Debian package from this checkout and prints the path of the .deb on its last line.
#
#   scripts/package.sh                      target/packages/monitoring-agent_<version>_<arch>.deb
#   DEB_VERSION=0.1.0-2 scripts/package.sh  the same with another package version (the VM test
#                                           builds a second one to test an upgrade)
#
# On a fresh Debian 12 machine, as root, it installs what it needs: cargo-deb (crates.io, `cargo
# install --locked`, pinned) when missing or of another version, and dpkg-dev/gzip when missing.
# Steps: `cargo build --release --locked` (the binary and examples/gen-docs.rs), gen-docs writes
# the man pages and completions into target/release/gen-docs/, the documentation is compressed
# there, then `cargo deb --no-build` assembles the package from Cargo.toml's
# [package.metadata.deb] and debian/, and the package is repacked with DEBIAN/md5sums. `lintian` checks the result in the test suite
# (tests/package_deb.rs), not here.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
say() { printf 'package.sh: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null; then
  say "cargo not found: install Rust 1.85 or later (rustup.rs); Debian 12's rustc 1.63 is too old"
  exit 1
fi
need=()
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v gzip >/dev/null || need+=(gzip)
command -v objcopy >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { say "missing ${need[*]}: install them (apt-get install ${need[*]})"; exit 1; }
  say "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$(cargo deb --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_DEB_VERSION" ]; then
  say "installing cargo-deb $CARGO_DEB_VERSION (cargo install --locked)"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || { say "cannot find cargo's target directory"; exit 1; }
gen="$target_dir/release/gen-docs"

say "building (cargo build --release --locked)"
cargo build --release --locked --bin monitoring-agent --example gen-docs
rm -rf "$gen"
"$target_dir/release/examples/gen-docs" "$gen" >&2
mkdir -p "$gen/doc"
# gzip -9n: maximum compression, no name or timestamp (reproducible; lintian checks both).
gzip -9nc README.md > "$gen/doc/README.md.gz"
gzip -9nc SECURITY.md > "$gen/doc/SECURITY.md.gz"
gzip -9nc CHANGELOG.md > "$gen/doc/changelog.gz"

args=(--no-build --locked)
if [ -n "${DEB_VERSION:-}" ]; then
  args+=(--deb-version "$DEB_VERSION")
fi
say "assembling (cargo deb ${args[*]})"
deb=$(cargo deb "${args[@]}" | tail -n 1)
[ -f "$deb" ] || { say "cargo deb did not report a package file (got: $deb)"; exit 1; }
# cargo-deb writes no DEBIAN/md5sums; dpkg --verify (and debsums) need one. Repack with it.
unpack=$(mktemp -d)
trap 'rm -rf "$unpack"' EXIT
dpkg-deb -R "$deb" "$unpack/pkg"
(cd "$unpack/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$unpack/pkg/DEBIAN/md5sums"
# Kept apart from cargo-deb's own directory, which it empties on its next run (a second
# version built for an upgrade test must not delete the first).
out_dir="$target_dir/packages"
mkdir -p "$out_dir"
final="$out_dir/$(basename "$deb")"
dpkg-deb --root-owner-group -Zxz --build "$unpack/pkg" "$final" >/dev/null
deb=$final
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Depends\|Conflicts\|Provides\): /  \1: /p' >&2
echo "$deb"
