#!/bin/sh
# Real clients in the guest suite, sourced by tests.sh after lib.sh.
#
# qemu_nvme DRIVER: QEMU's userspace NVMe driver (block/nvme.c, from qemu-utils) on the nvme
# device bound to DRIVER. `qemu-img info` drives region info, config space, BAR0 through mmap
# and DMA through the type1 container; `qemu-io` then writes patterns and reads them back
# (`read -P` verifies every byte). Its completions arrive through MSI-X: QEMU enables one
# vector with VFIO_DEVICE_SET_IRQS on an eventfd and wakes in nvme_handle_event when the
# kernel signals it, so counting that trace event tells whether interrupt delivery to a
# userspace driver works. The outcomes go into the transcripts, compared across drivers.
qemu_nvme() {
	drv=$1
	bdf=$(bdf_of 1b36:0010) || return 0
	out=/tmp/out/$drv/qemu.nvme.txt
	if ! command -v qemu-io >/dev/null || ! command -v qemu-img >/dev/null; then
		skip "qemu.$drv.nvme" "qemu-img/qemu-io not in the initramfs (qemu-utils missing)"
		return 0
	fi
	echo "# qemu-img info / qemu-io on nvme://$bdf/1 with $drv"
	t0=$(cut -d' ' -f1 /proc/uptime)
	# A hang (no completion) ends in the timeout with exit 124.
	(ulimit -l unlimited; timeout 120 qemu-img info --output=json "nvme://$bdf/1") >/tmp/qemu.log 2>&1
	rc=$?
	size=$(sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' /tmp/qemu.log | head -n1)
	echo "qemu-img info: exit $rc, virtual-size $size" >"$out"
	# scripts/guest.sh backs the nvme namespace with a 64 MiB image.
	if [ "$rc" = 0 ] && [ "$size" = 67108864 ]; then
		ok "qemu.$drv.nvme.img_info"
	else
		not_ok "qemu.$drv.nvme.img_info" "exit $rc, virtual-size '$size'"
		sed 's/^/#   /' /tmp/qemu.log | tail -n 5
	fi
	(ulimit -l unlimited; timeout 120 qemu-io --trace nvme_handle_event -f raw \
		-c 'write -P 0xa5 0 64k' -c 'read -P 0xa5 0 64k' \
		-c 'write -P 0x5a 1M 4M' -c 'read -P 0x5a 1M 4M' "nvme://$bdf/1") >/tmp/qemu.log 2>&1
	rc=$?
	t1=$(cut -d' ' -f1 /proc/uptime)
	wakeups=$(grep -c 'nvme_handle_event s' /tmp/qemu.log)
	# The transcript keeps what must match (exit, bytes, verification), not timings or counts.
	{
		echo "qemu-io: exit $rc"
		grep -E '^(wrote|read) [0-9]+/[0-9]+ bytes|[Vv]erification' /tmp/qemu.log
		[ "$wakeups" -gt 0 ] && echo "qemu-io: woken by the MSI-X eventfd" ||
			echo "qemu-io: never woken by the MSI-X eventfd"
	} >>"$out"
	echo "# qemu with $drv: $(awk "BEGIN { print $t1 - $t0 }") s, qemu-io exit $rc," \
		"$wakeups eventfd wakeups (nvme_handle_event)"
	if [ "$rc" = 0 ] && [ "$(grep -cE '^(wrote|read) [0-9]+/[0-9]+ bytes' /tmp/qemu.log)" = 4 ] &&
		! grep -qi 'verification failed' /tmp/qemu.log; then
		ok "qemu.$drv.nvme.io_pattern"
	else
		not_ok "qemu.$drv.nvme.io_pattern" "exit $rc (124: timed out)"
		grep -v nvme_handle_event /tmp/qemu.log | sed 's/^/#   /' | tail -n 8
	fi
	if [ "$wakeups" -gt 0 ]; then
		ok "qemu.$drv.nvme.msix_eventfd"
	else
		not_ok "qemu.$drv.nvme.msix_eventfd" "QEMU never woke on its MSI-X eventfd"
	fi
}
