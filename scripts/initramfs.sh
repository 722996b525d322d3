#!/usr/bin/env bash
# Builds the test guest's initramfs: busybox, the kernel's modules (upstream vfio-pci among
# them), vfio_pci_rs.ko, the static test client and the guest scripts.
#   initramfs.sh KDIR OUT          -> OUT/initramfs.cpio.gz (the test suite's)
#   initramfs.sh KDIR OUT dropin   -> OUT/initramfs-dropin.cpio.gz: the same, plus the drop-in
#                                     vfio-pci installed under updates/ as `make install DROPIN=1`
#                                     does, so there `modprobe vfio-pci` loads ours (drop-in and
#                                     run modes); the test suite's modprobe vfio-pci must not
set -euo pipefail
kdir=$1 out=$(realpath "$2") variant=${3:-}
top=$(cd "$(dirname "$0")/.." && pwd)
root="$out/initramfs${variant:+-$variant}"
rm -rf "$root" && mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,lib/modules,root,usr/bin,usr/sbin}

cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done

kver=$(cat "$kdir/include/config/kernel.release")
make -s -C "$kdir" INSTALL_MOD_PATH="$root" modules_install >/dev/null
# Installed the way users install it (make install: lib/modules/<release>/extra, then depmod),
# so the guest's `modprobe vfio_pci_rs` tests the installed module.
make -s -C "$top" install KDIR="$kdir" INSTALL_MOD_PATH="$root" >/dev/null
# The drop-in's own check (scripts/dropin.sh check) fails the build unless kmod's modinfo
# resolves vfio-pci to updates/vfio-pci.ko there.
if [ "$variant" = dropin ]; then
	make -s -C "$top" install DROPIN=1 KDIR="$kdir" INSTALL_MOD_PATH="$root" OUT="$out" >&2
fi

cp "$top/tests/client/target/x86_64-unknown-linux-gnu/release/vfio-test" "$root/bin/"
if [ -d "$out/kselftests" ]; then
	cp -r "$out/kselftests" "$root/kselftests"
fi
# QEMU's userspace NVMe driver as a VFIO client (qemu-img, qemu-io from qemu-utils), when
# installed: the binaries, their shared libraries and the dynamic loader, at the same paths.
# `make passthrough` (VPR_L2_KDIR set) adds QEMU's system emulator the same way.
qemu_bins=(/usr/bin/qemu-img /usr/bin/qemu-io)
[ -n "${VPR_L2_KDIR:-}" ] && qemu_bins+=(/usr/bin/qemu-system-x86_64)
for b in "${qemu_bins[@]}"; do
	[ -x "$b" ] || continue
	for f in "$b" $(ldd "$b" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$f")" && cp -L "$f" "$root$f"
	done
done
# `make passthrough` only: the firmware QEMU may load for -M q35 -kernel (SeaBIOS or qboot,
# the linuxboot option ROM, kvmvapic.bin which QEMU looks for even under TCG), the second-level
# guest's kernel (VPR_L2_KDIR, kernel/l2.config) and its own initramfs: busybox and
# tests/guest/l2/init, uncompressed (nothing to decompress under TCG inside TCG). The default
# initramfs is unchanged.
if [ -n "${VPR_L2_KDIR:-}" ]; then
	for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/{linuxboot_dma.bin,kvmvapic.bin,qboot.rom}; do
		mkdir -p "$root$(dirname "$f")" && cp -L "$f" "$root$f"
	done
	mkdir -p "$root/l2" && cp "$VPR_L2_KDIR/arch/x86/boot/bzImage" "$root/l2/"
	l2=$out/l2-root
	rm -rf "$l2" && mkdir -p "$l2"/{bin,sbin,proc,sys,dev,tmp}
	cp /bin/busybox "$l2/bin/busybox"
	for app in $("$l2/bin/busybox" --list); do
		[ -e "$l2/bin/$app" ] || ln -s busybox "$l2/bin/$app"
	done
	cp "$top/tests/guest/l2/init" "$l2/init" && chmod +x "$l2/init"
	(cd "$l2" && find . | cpio -o -H newc --quiet) > "$root/l2/initrd.cpio"
fi
cp "$top/tests/guest/init" "$root/init"
cp "$top"/tests/guest/*.sh "$root/bin/" 2>/dev/null || true
# For focused runs while developing: `VPR_DEV_SCRIPT=my.sh make initramfs`, then
# `bash scripts/guest.sh dev "$(cat out/kdir)" out` runs only that script in the guest.
if [ -n "${VPR_DEV_SCRIPT:-}" ]; then cp "$VPR_DEV_SCRIPT" "$root/bin/dev.sh"; fi
chmod +x "$root/init" "$root"/bin/*.sh 2>/dev/null || true

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs${variant:+-$variant}.cpio.gz"
