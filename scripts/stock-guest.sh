#!/usr/bin/env bash
# Boots Debian's own kernel image (vmlinuz from its linux-binary package, unpacked into the cache
# by scripts/stock.sh, never installed here) under QEMU TCG with the project's topology, Debian's
# own VFIO modules and vfio_pci_rs built for that kernel by `make stock-module`, and runs
# tests/guest/stock.sh there (mode `stock`): both drivers on the five test devices, transcripts
# compared. The initramfs: busybox, the modules (Debian's are .ko.xz: decompressed here, since
# busybox's modprobe takes plain .ko, then depmod for that release), the package of vfio_pci_rs,
# the client, guest scripts.
set -euo pipefail
out=$(realpath "$1")
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck disable=SC1091
. "$out/stock/env" # rel, pkg (Debian's unpacked packages), build, root
log() { printf 'stock-guest: %s\n' "$*" >&2; }
t0=$(date +%s)
mods="$pkg/usr/lib/modules/$rel"
initrd="$out/stock/initramfs"
rm -rf "$initrd" && mkdir -p "$initrd"/{bin,sbin,proc,sys,dev,tmp,etc,root,usr/bin,usr/sbin,usr/lib}
ln -s usr/lib "$initrd/lib" # merged /usr, as on Debian: the package ships usr/lib/modules
cp /bin/busybox "$initrd/bin/busybox"
for app in $("$initrd/bin/busybox" --list); do
	[ -e "$initrd/bin/$app" ] || ln -s busybox "$initrd/bin/$app"
done

# Debian's VFIO modules and what they depend on (modinfo's depends, followed to the end).
declare -A seen=()
want=(vfio vfio_iommu_type1 vfio-pci-core vfio-pci irqbypass)
while [ ${#want[@]} -gt 0 ]; do
	m=${want[0]} want=("${want[@]:1}")
	[ -n "${seen[$m]:-}" ] && continue
	seen[$m]=1
	f=$(find "$mods/kernel" -name "$m.ko*" -o -name "${m//-/_}.ko*" | head -n1)
	[ -n "$f" ] || { log "no module $m in Debian's $rel"; exit 1; }
	dst="$initrd/lib/modules/$rel/${f#"$mods/"}"
	mkdir -p "$(dirname "$dst")"
	case "$f" in *.xz) xz -dc "$f" >"${dst%.xz}" ;; *) cp "$f" "$dst" ;; esac
	for d in $(modinfo -F depends "$f" | tr , ' '); do want+=("$d"); done
done
cp "$mods"/modules.{order,builtin,builtin.modinfo} "$initrd/lib/modules/$rel/"
depmod -b "$initrd" "$rel"
# vfio_pci_rs: its package, which the guest installs with (busybox's) dpkg (tests/guest/stock.sh).
cp "$out/stock/vfio-pci-rs.deb" "$initrd/root/"
log "modules: $(cd "$initrd/lib/modules/$rel" && find . -name '*.ko' | sort | tr '\n' ' ')"

cp "$top/tests/client/target/x86_64-unknown-linux-gnu/release/vfio-test" "$initrd/bin/"
cp "$top/tests/guest/init" "$initrd/init"
cp "$top"/tests/guest/*.sh "$initrd/bin/"
chmod +x "$initrd/init" "$initrd"/bin/*.sh
(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/stock/initramfs.cpio.gz"
log "initramfs ready in $(( $(date +%s) - t0 )) s"

VPR_GUEST_IMAGE="$mods/vmlinuz" VPR_GUEST_INITRD="$out/stock/initramfs.cpio.gz" \
	VPR_GUEST_TIMEOUT=${VPR_GUEST_TIMEOUT:-900} bash "$top/scripts/guest.sh" stock "$build" "$out"
