#!/usr/bin/env bash
# The drop-in build's helpers (Makefile, DROPIN=1):
#   dropin.sh src DIR           copies the module's sources to DIR, where Kbuild builds the drop-in
#                               (VPR_DROPIN=1) beside the checkout's own vfio_pci_rs build; only
#                               changed files are copied, so a rebuild stays incremental
#   dropin.sh check KDIR [BASE] after `make install DROPIN=1`: which file `modprobe vfio-pci`
#                               loads under BASE (empty: the running system), per kmod's modinfo
#                               (the same depmod tables modprobe reads); fails unless it is ours
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
case $1 in
src)
	dst=$2
	mkdir -p "$dst"
	# The files intree.sh copies into a kernel tree: what the module is built from.
	if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		files=$(cd "$top" && git ls-files -co --exclude-standard Kbuild Kconfig Makefile '*.rs' 'ffi/*')
	else
		files=$(cd "$top" && find Kbuild Kconfig Makefile ./*.rs ffi -type f)
	fi
	grep -vE '^(tests|scripts|out|bench)/' <<<"$files" | (cd "$top" && rsync -a --files-from=- . "$dst/")
	;;
check)
	kdir=$2 base=${3:-}
	rel=$(cat "$kdir/include/config/kernel.release")
	file=$(modinfo ${base:+-b "$base"} -k "$rel" -F filename vfio-pci 2>/dev/null || true)
	want=/lib/modules/$rel/updates/vfio-pci.ko
	name=$(modinfo ${base:+-b "$base"} -k "$rel" -F name vfio-pci 2>/dev/null || true)
	if [ "${file#"$base"}" = "$want" ] || [ "${file#"${base%/}"}" = "$want" ]; then
		echo "install: modprobe vfio-pci now loads $file (module $name, the drop-in)"
	else
		echo "install: modprobe vfio-pci would load '${file:-nothing}', not $base$want" >&2
		exit 1
	fi
	;;
*) echo "usage: $0 src DIR | check KDIR [BASE]" >&2; exit 2 ;;
esac
