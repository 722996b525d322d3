#!/usr/bin/env bash
# Lints; prints "name status" lines (0 pass, 1 fail): rustfmt with the kernel's config on the
# module's Rust files, and clippy through Kbuild (CLIPPY=1) with the kernel's lint set.
top=$(cd "$(dirname "$0")/.." && pwd)
out=$1 kdir=$2
cd "$top"
src=$(ls -d "$kdir"/../src-* 2>/dev/null | head -n1)
if [ -n "$src" ] && rustfmt --config-path "$src/.rustfmt.toml" --edition 2021 --check \
	vfio_pci_rs.rs $(git ls-files '*.rs' | grep -vE '^tests/') >"$out/rustfmt.log" 2>&1; then
	echo "lint.rustfmt 0"
else
	head -n 40 "$out/rustfmt.log" >&2; echo "lint.rustfmt 1"
fi
touch vfio_pci_rs.rs
if make -s -C "$kdir" M="$top" LLVM=-19 CLIPPY=1 modules >"$out/clippy.log" 2>&1 &&
	! grep -qE '^(warning|error)' "$out/clippy.log"; then
	echo "lint.clippy 0"
else
	head -n 60 "$out/clippy.log" >&2; echo "lint.clippy 1"
fi
