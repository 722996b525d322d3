#!/usr/bin/env bash
# `make passthrough`: device passthrough to a second-level guest. Builds (or reuses) the test
# kernel, the module and the L2 kernel (kernel/l2.config, cached like the others), an initramfs
# with QEMU's system emulator, the L2 kernel and the L2 initramfs (VPR_L2_KDIR), boots the test
# guest in mode `passthrough` (tests/guest/passthrough.sh) and prints the results of vfio_pci_rs
# and upstream vfio-pci side by side. Output in OUT/passthrough (the test initramfs in OUT is
# untouched). VPR_L2_DRIVERS (vfio_pci_rs,vfio-pci), VPR_L2_DEVS (nvme,igb), VPR_L2_BACKENDS (legacy,iommufd) and VPR_L2_TIMEOUT
# (seconds per L2 run) narrow or bound the runs; VPR_L2_BIOS=seabios boots L2 through SeaBIOS
# instead of qboot.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/out}")/passthrough
mkdir -p "$out" && cd "$top"
t0=$(date +%s)
stamp() { echo "passthrough: $* ($(( $(date +%s) - t0 )) s)"; }

kdir=$(bash scripts/kernel.sh) || { echo "passthrough: test kernel build failed"; exit 1; }
l2=$(nice -n 10 bash scripts/kernel.sh l2) || { echo "passthrough: L2 kernel build failed"; exit 1; }
stamp "kernels ready: $(basename "$kdir"), L2 $(basename "$l2")"
make -s module KDIR="$kdir" >"$out/module.log" 2>&1 || { cat "$out/module.log"; exit 1; }
make -s client && VPR_L2_KDIR="$l2" bash scripts/initramfs.sh "$kdir" "$out" || exit 1
stamp "module, client and initramfs ready ($(du -m "$out/initramfs.cpio.gz" | cut -f1) MB)"

args="vpr.l2_drivers=${VPR_L2_DRIVERS:-vfio_pci_rs,vfio-pci} vpr.l2_devs=${VPR_L2_DEVS:-nvme,igb} vpr.l2_backends=${VPR_L2_BACKENDS:-legacy,iommufd}"
args+=" vpr.l2_timeout=${VPR_L2_TIMEOUT:-900} vpr.l2_bios=${VPR_L2_BIOS:-qboot}"
VPR_KERNEL_ARGS="$args" VPR_GUEST_TIMEOUT=${VPR_GUEST_TIMEOUT:-14400} \
	bash scripts/guest.sh passthrough "$kdir" "$out" >/dev/null
stamp "guest finished"

c=$out/console.txt
tr -d '\r' < "$out/console-passthrough.log" > "$c"
grep -E '^not ok [0-9]+ ' -A3 "$c" | head -n 40
pass=$(grep -cE '^ok [0-9]+ ' "$c") fail=$(grep -cE '^not ok [0-9]+ ' "$c")
# The first level's kernel must stay quiet: no WARN, lockdep report or oops.
reports=$(grep -cEf "$top/scripts/kernel-reports.ere" "$c")
grep -nEf "$top/scripts/kernel-reports.ere" "$c" | head -n 20
# Side by side: device, backend, then result and seconds (both boots) per driver.
echo "passthrough: device backend   vfio_pci_rs      vfio-pci"
awk '/^# result / { r[$4" "$5" "$3] = $6" "$7"s"; k[$4" "$5] = 1 }
	END { for (x in k) printf "passthrough: %-6s %-9s %-16s %s\n", substr(x, 1, index(x, " ") - 1),
		substr(x, index(x, " ") + 1), r[x" vfio_pci_rs"], r[x" vfio-pci"] }' "$c" | sort
echo "passthrough: kernel reports $reports"
echo "passthrough: $pass passed, $fail failed; guest completed: $(grep -q '^# passthrough done' "$c" && echo yes || echo no)"
stamp "total"
[ "$fail" = 0 ] && [ "$reports" = 0 ] && [ "$pass" -gt 2 ] && grep -q '^# passthrough done' "$c"
