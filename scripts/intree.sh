#!/usr/bin/env bash
# In-tree build check: drops this directory under drivers/vfio/pci/vfio_pci_rs/ of the cached
# 7.3 tree, adds the lines that hook it in (drivers/vfio/pci/{Kconfig,Makefile}), and builds
# both of its choices as part of the tree: CONFIG_VFIO_PCI_RS=m (vfio_pci_rs.ko, beside the C
# vfio-pci), then CONFIG_VFIO_PCI_RUST=y, which builds CONFIG_VFIO_PCI=m, vfio-pci.ko, from
# these sources instead of drivers/vfio/pci/vfio_pci.c (as drivers/net/phy does for
# AX88796B_RUST_PHY).
#
# The cached source and build trees are shared and keyed, so they are never written: inside a
# private mount namespace, each is covered by an overlayfs whose upper layer is scratch space in
# OUT/intree. Paths stay the same, so Kbuild's recorded commands match and only what the change
# touches is rebuilt. Needs root (mount namespaces and overlayfs).
#
#   bash scripts/intree.sh KDIR OUT   -> prints "intree.build 0|1" (0 pass) for scripts/test.sh
set -uo pipefail
kdir=$(realpath "$1") out=$(realpath "$2")
top=$(cd "$(dirname "$0")/.." && pwd)
src=$(realpath "$kdir/source")
scratch=$out/intree
log=$scratch/build.log
rm -rf "$scratch" && mkdir -p "$scratch"/{src-up,src-work,build-up,build-work}

# The upper layer of the source: the module's files and the two hooked-in lines.
dst=$scratch/src-up/drivers/vfio/pci/vfio_pci_rs
mkdir -p "$dst"
(cd "$top" && git ls-files -co --exclude-standard Kbuild Kconfig Makefile '*.rs' 'ffi/*' |
	grep -vE '^(tests|scripts)/' | xargs cp --parents -t "$dst")
cp "$src/drivers/vfio/pci/Kconfig" "$src/drivers/vfio/pci/Makefile" "$dst/.."
sed -i 's|^endmenu|source "drivers/vfio/pci/vfio_pci_rs/Kconfig"\n\nendmenu|' "$dst/../Kconfig"
echo 'obj-$(CONFIG_VFIO_PCI_RS) += vfio_pci_rs/' >>"$dst/../Makefile"
# The C vfio-pci only without VFIO_PCI_RUST; with it, vfio_pci_rs/ builds VFIO_PCI (its Kbuild).
sed -i 's|^obj-$(CONFIG_VFIO_PCI) += vfio-pci.o$|ifdef CONFIG_VFIO_PCI_RUST\nobj-$(CONFIG_VFIO_PCI) += vfio_pci_rs/\nelse\nobj-$(CONFIG_VFIO_PCI) += vfio-pci.o\nendif|' "$dst/../Makefile"
grep -q '^ifdef CONFIG_VFIO_PCI_RUST' "$dst/../Makefile" || { echo "intree: vfio-pci.o line not found" >&2; echo "intree.build 1"; exit 0; }

start=$(date +%s)
unshare -m --propagation private bash -c '
	set -euo pipefail
	src=$1 kdir=$2 s=$3
	mount -t overlay overlay -o "lowerdir=$src,upperdir=$s/src-up,workdir=$s/src-work" "$src"
	mount -t overlay overlay -o "lowerdir=$kdir,upperdir=$s/build-up,workdir=$s/build-work" "$kdir"
	export PATH="$HOME/.cargo/bin:$PATH"
	export RUST_LIB_SRC=${RUST_LIB_SRC:-/usr/lib/rustlib/src/rust/library}
	export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
	m() { make -C "$src" O="$kdir" LLVM=-19 "$@"; }
	"$src/scripts/config" --file "$kdir/.config" -m VFIO_PCI_RS
	m olddefconfig
	grep -x CONFIG_VFIO_PCI_RS=m "$kdir/.config"
	m -j"$(($(nproc) + 1))" drivers/vfio/pci/vfio_pci_rs/vfio_pci_rs.ko
	cp "$kdir/drivers/vfio/pci/vfio_pci_rs/vfio_pci_rs.ko" "$s/"
	# The other choice: vfio-pci from these sources.
	"$src/scripts/config" --file "$kdir/.config" -d VFIO_PCI_RS -e VFIO_PCI_RUST
	m olddefconfig
	grep -x CONFIG_VFIO_PCI_RUST=y "$kdir/.config"
	grep -x CONFIG_VFIO_PCI=m "$kdir/.config"
	m -j"$(($(nproc) + 1))" drivers/vfio/pci/vfio_pci_rs/vfio-pci.ko
	cp "$kdir/drivers/vfio/pci/vfio_pci_rs/vfio-pci.ko" "$s/"
' intree "$src" "$kdir" "$scratch" >"$log" 2>&1
rc=$?
echo "intree: build took $(( $(date +%s) - start )) s (log $log)" >&2
# Warning-free, as the out-of-tree build: any compiler or clippy warning fails the check.
# The module must say it was built in-tree (modinfo intree: Y, which M= builds lack).
# The drop-in choice must give the module upstream's name (vfio_pci) and the PCI driver's alias.
if [ "$rc" = 0 ] && [ -f "$scratch/vfio_pci_rs.ko" ] && ! grep -qE '^(warning|error)|warning:' "$log" &&
	[ "$(modinfo -F intree "$scratch/vfio_pci_rs.ko")" = Y ] &&
	[ "$(modinfo -F intree "$scratch/vfio-pci.ko")" = Y ] &&
	[ "$(modinfo -F name "$scratch/vfio-pci.ko")" = vfio_pci ] &&
	modinfo -F alias "$scratch/vfio-pci.ko" | grep -qx 'vfio_pci:v\*d\*sv\*sd\*bc\*sc\*i\*'; then
	echo "intree.build 0"
else
	tail -n 40 "$log" >&2
	echo "intree.build 1"
fi
