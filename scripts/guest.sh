#!/usr/bin/env bash
# Boots the test guest under QEMU TCG (never KVM: nested guests crawl on these machines), with
# single-threaded TCG: multi-threaded TCG trips an assertion in QEMU 10.0 (iotlb_to_section)
# when one vCPU toggles a BAR's memory decode while another accesses it (the mmap race test).
# Its vCPUs still interleave, so the guest remains SMP:
# q35 with an emulated Intel IOMMU and, each behind its own root port (so its own IOMMU group),
# edu, ivshmem-plain (1 GiB), pci-testdev, igb and nvme. MODE is passed to the guest's /init.
# The console goes to OUT/console-MODE.log and to stdout. VPR_GUEST_IMAGE and VPR_GUEST_INITRD
# boot another kernel image and initramfs (scripts/stock-guest.sh: Debian's own kernel).
set -euo pipefail
mode=$1 kdir=$2 out=$(realpath "$3")
timeout_s=${VPR_GUEST_TIMEOUT:-4800}
log="$out/console-$mode.log"
nvme_img="$out/nvme.img"
[ -f "$nvme_img" ] || truncate -s 64M "$nvme_img"

# Stress mode only: a QEMU monitor socket (VPR_QEMU_MONITOR=path) for device_del/device_add, and
# an extra e1000e (id hp0) on its own root port, the device the hot-unplug cycles remove and re-add;
# the normal topology is unchanged. VPR_KERNEL_ARGS adds kernel parameters. Every mode boots with
# no_timer_check: under heavy host load TCG can fail the boot-time IO-APIC timer check and panic.
monitor=(-monitor none) extra=()
[ -n "${VPR_QEMU_MONITOR:-}" ] && monitor=(-monitor "unix:$VPR_QEMU_MONITOR,server,nowait")
[ "$mode" = stress ] && extra=(-device pcie-root-port,id=rp7,chassis=7,slot=7 -device e1000e,id=hp0,bus=rp7)
# Bench mode only: a twin of each bench device (edu, ivshmem-plain with its own 1 GiB memdev,
# pci-testdev), each on its own root port after the others (so the first set keeps its BDFs), so
# the bench can drive one twin under each driver at once (tests/guest/bench.sh).
[ "$mode" = bench ] && extra=(
	-device pcie-root-port,id=rp8,chassis=8,slot=8 -device edu,bus=rp8
	-device pcie-root-port,id=rp9,chassis=9,slot=9
	-object memory-backend-ram,id=ivshm2,size=1G -device ivshmem-plain,memdev=ivshm2,bus=rp9
	-device pcie-root-port,id=rp10,chassis=10,slot=10 -device pci-testdev,bus=rp10)

# Drop-in and run modes: the initramfs with the drop-in vfio-pci installed under updates/
# (scripts/initramfs.sh dropin), two more igb ports joined by a QEMU hub (what one sends the
# other receives) for DPDK's testpmd, each on its own root port after the others (the first
# set keeps its BDFs), and the host's root shared read-only over 9p, from which the guest runs
# Debian's DPDK (dpdk-testpmd, dpdk-devbind.py and their libraries) in a chroot.
initrd=$out/initramfs.cpio.gz
if [ "$mode" = dropin ] || [ "$mode" = run ]; then
	initrd=$out/initramfs-dropin.cpio.gz
	extra+=(
		-device pcie-root-port,id=rp11,chassis=11,slot=11
		-netdev hubport,id=hub0p0,hubid=0 -device igb,netdev=hub0p0,bus=rp11
		-device pcie-root-port,id=rp12,chassis=12,slot=12
		-netdev hubport,id=hub0p1,hubid=0 -device igb,netdev=hub0p1,bus=rp12
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,id=hostroot)
	# The drop-in boot compares packet rates under the two drivers, so it runs on QEMU's virtual
	# clock as `make bench` does (8 ns per guest instruction, idle skipped): on the host's clock
	# the rate is the share of a busy host's CPU the run got (three runs of the same sources on a
	# shared 2-core host: 0.66, 0.81 and 1.06 drop-in/upstream; on the virtual clock 1.005).
	# VPR_DROPIN_CLOCK=host for the host's clock.
	[ "$mode" = dropin ] && [ "${VPR_DROPIN_CLOCK:-virtual}" = virtual ] && extra+=(-icount shift=3,sleep=off)
fi

start=$(date +%s.%N)
set +e
timeout --foreground "$timeout_s" qemu-system-x86_64 \
	-accel tcg,thread=single -M q35,kernel-irqchip=split -cpu max -smp 2 -m 2G \
	-device intel-iommu,intremap=on,caching-mode=on \
	-device pcie-root-port,id=rp1,chassis=1,slot=1 -device edu,bus=rp1 \
	-device pcie-root-port,id=rp2,chassis=2,slot=2 \
	-object memory-backend-ram,id=ivshm,size=1G -device ivshmem-plain,memdev=ivshm,bus=rp2 \
	-device pcie-root-port,id=rp3,chassis=3,slot=3 -device pci-testdev,bus=rp3 \
	-device pcie-root-port,id=rp4,chassis=4,slot=4 -device igb,bus=rp4 \
	-device pcie-root-port,id=rp5,chassis=5,slot=5 \
	-device pcie-root-port,id=rp6,chassis=6,slot=6 \
	-drive file="$nvme_img",if=none,id=nvm,format=raw -device nvme,serial=vpr0,drive=nvm,bus=rp5 "${extra[@]}" \
	-kernel "${VPR_GUEST_IMAGE:-$kdir/arch/x86/boot/bzImage}" -initrd "${VPR_GUEST_INITRD:-$initrd}" \
	-append "console=ttyS0 intel_iommu=on panic=-1 loglevel=6 no_timer_check vpr.mode=$mode ${VPR_KERNEL_ARGS:-}" \
	${VPR_QEMU_EXTRA:-} -nodefaults -display none -serial stdio "${monitor[@]}" -no-reboot 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s.%N)
printf 'guest: %s run took %.0f s wall (qemu exit %s)\n' "$mode" "$(echo "$end - $start" | bc)" "$rc" >&2
