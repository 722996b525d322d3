#!/usr/bin/env bash
# Lints; prints "name status" lines (0 pass, 1 fail) for scripts/test.sh: rustfmt with the
# kernel's config on the module's Rust files, clippy through Kbuild (CLIPPY=1) with the kernel's
# lint set (on both builds: vfio_pci_rs and the drop-in), and for the host crates (tests/host, tests/client) cargo fmt and
# `cargo clippy -- -D warnings`. Any warning fails.
top=$(cd "$(dirname "$0")/.." && pwd)
out=$1 kdir=$2
cd "$top"
export PATH="$HOME/.cargo/bin:$PATH"
src=$(realpath "$kdir/source" 2>/dev/null || ls -d "$kdir"/../src-* 2>/dev/null | head -n1)
# The module's files, tracked or new (rustfmt follows `mod` from the crate root as well).
files=$(git ls-files -co --exclude-standard '*.rs' | grep -vE '^(tests|target)/|/target/')
if [ -n "$src" ] && rustfmt --config-path "$src/.rustfmt.toml" --edition 2021 --check \
	vfio_pci_rs.rs $files >"$out/rustfmt.log" 2>&1; then
	echo "lint.rustfmt 0"
else
	head -n 40 "$out/rustfmt.log" >&2; echo "lint.rustfmt 1"
fi
touch vfio_pci_rs.rs
if make -s -C "$kdir" M="$top" LLVM=-19 CLIPPY=1 modules >"$out/clippy.log" 2>&1 &&
	! grep -qE '^(warning|error)|warning:' "$out/clippy.log"; then
	echo "lint.clippy 0"
else
	head -n 60 "$out/clippy.log" >&2; echo "lint.clippy 1"
fi
# The drop-in build (VPR_DROPIN=1: other names, cfg(vpr_dropin)) from its copy of the sources.
bash scripts/dropin.sh src "$out/dropin" && touch "$out/dropin/vfio_pci_rs.rs"
if make -s -C "$kdir" M="$out/dropin" VPR_DROPIN=1 LLVM=-19 CLIPPY=1 modules >"$out/clippy-dropin.log" 2>&1 &&
	! grep -qE '^(warning|error)|warning:' "$out/clippy-dropin.log"; then
	echo "lint.clippy_dropin 0"
else
	head -n 60 "$out/clippy-dropin.log" >&2; echo "lint.clippy_dropin 1"
fi
for crate in tests/host tests/client; do
	name=$(basename "$crate")
	if (cd "$crate" && cargo fmt --check && cargo clippy -q --all-targets -- -D warnings) \
		>"$out/clippy-$name.log" 2>&1; then
		echo "lint.host_$name 0"
	else
		head -n 40 "$out/clippy-$name.log" >&2; echo "lint.host_$name 1"
	fi
done
