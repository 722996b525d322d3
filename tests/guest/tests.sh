#!/bin/sh
# The guest test suite (`make test`). Every behavioural test runs against vfio_pci_rs and
# upstream vfio-pci on the same emulated devices; their transcripts are then compared.
# Prints KTAP lines; the host counts them and reads the console for kernel splats.
. /bin/lib.sh
. /bin/clients.sh
echo "KTAP version 1"
DRIVERS="vfio_pci_rs vfio-pci"

# --- Module life cycle -------------------------------------------------------------------
check module.load modprobe vfio_pci_rs
if insmod /lib/modules/$(uname -r)/extra/vfio_pci_rs.ko 2>/dev/null; then
	not_ok module.load_twice_refused "second insmod succeeded"
else
	ok module.load_twice_refused
fi
check module.load_upstream modprobe vfio-pci
[ -d /sys/bus/pci/drivers/vfio_pci_rs ] && ok module.driver_registered || not_ok module.driver_registered

# Nothing binds by matching: every test device is still driverless after loading.
bound=""
for bdf in $(test_bdfs); do [ "$(driver_of "$bdf")" = vfio_pci_rs ] && bound="$bound $bdf"; done
[ -z "$bound" ] && ok bind.no_match_binding || not_ok bind.no_match_binding "bound without override:$bound"

# --- Bridges are refused ------------------------------------------------------------------
bridge=""
for d in /sys/bus/pci/devices/*; do
	# A root port with no device behind it (its port services are named BDF:pcieNNN).
	if [ "$(cat $d/class)" = 0x060400 ] && ! ls -d "$d"/????:??:??.? >/dev/null 2>&1; then
		bridge=$(basename "$d"); break
	fi
done
if [ -n "$bridge" ]; then
	dmesg -c >/dev/null
	if bind vfio_pci_rs "$bridge"; then
		not_ok bind.bridge_refused "bridge $bridge was bound"
	elif dmesg | grep -q "refusing to bind"; then
		ok bind.bridge_refused
	else
		not_ok bind.bridge_refused "no dmesg line explains the refusal"
	fi
	release "$bridge"
	echo "$bridge" > /sys/bus/pci/drivers_probe 2>/dev/null
else
	skip bind.bridge_refused "no empty root port"
fi

# --- Per-driver behaviour and transcripts -------------------------------------------------
for drv in $DRIVERS; do
	mkdir -p /tmp/out/$drv
	for bdf in $(test_bdfs); do
		name=$(name_of "$bdf")
		if bind "$drv" "$bdf"; then ok "bind.$drv.$name"; else not_ok "bind.$drv.$name"; continue; fi
	done
	for bdf in $(test_bdfs); do
		for mode in group cdev; do
			echo "# vfio-test all --mode $mode $bdf ($(name_of "$bdf")) with $drv"
			vfio-test all --mode "$mode" --dump /tmp/out/$drv "$bdf" 2>&1 | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1$drv./"
		done
	done
	# VFIO_DEVICE_IOEVENTFD (bad input, add/remove, limit, a signalled write read back,
	# teardown at close) and VFIO_DEVICE_FEATURE (every feature x flags, low power, VF token).
	for bdf in $(test_bdfs); do
		for sub in ioeventfd feature; do
			echo "# vfio-test $sub --mode group $bdf ($(name_of "$bdf")) with $drv"
			vfio-test $sub --mode group --dump /tmp/out/$drv "$bdf" 2>&1 | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1$drv./"
		done
	done
	# Interrupts: SET_IRQS answers, INTx/MSI/MSI-X/ERR/REQ delivery, enable/disable cycles.
	for id in 1234:11e8 8086:10c9 1b36:0010; do
		bdf=$(bdf_of $id) || continue
		for mode in group cdev; do
			echo "# vfio-test irq --mode $mode $bdf ($(name_of "$bdf")) with $drv"
			vfio-test irq --mode "$mode" --dump /tmp/out/$drv "$bdf" 2>&1 | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1$drv./"
		done
	done
	# QEMU's userspace NVMe driver (tests/guest/clients.sh).
	qemu_nvme "$drv"
	# REQ: unbinding a device held open signals its REQ eventfd; the holder closes and the
	# unbind completes.
	bdf=$(bdf_of 1234:11e8)
	echo "# vfio-test irq-req --mode cdev $bdf with $drv"
	rm -f /tmp/irqreq.log
	vfio-test irq-req --mode cdev "$bdf" 20 >/tmp/irqreq.log 2>&1 &
	holder=$!
	for i in $(seq 20); do grep -q "irq-req ready" /tmp/irqreq.log && break; sleep 1; done
	unbind "$bdf"
	wait $holder
	sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1$drv./" /tmp/irqreq.log
	[ -z "$(driver_of "$bdf")" ] && ok "irq-req.$drv.unbind_completed" || not_ok "irq-req.$drv.unbind_completed"
	bind "$drv" "$bdf" || not_ok "bind.$drv.edu.after_req"
	# Race: readers of the ivshmem mapping against MEM toggling and resets. All 10,000 toggles
	# must complete; the time bound only stops a hang. Measured: 500-820 s per driver with CI's
	# 2 cores to itself or shared with builds, over 900 s with three more guests on the host.
	bdf=$(bdf_of 1af4:1110)
	echo "# vfio-test mmap-race --mode cdev $bdf with $drv"
	VPR_RACE_SECS=1800 vfio-test mmap-race --mode cdev "$bdf" 2>&1 | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1$drv./"
	# Upstream's VFIO kselftests on every device; their totals go into the transcripts, so
	# `vfio-test compare` checks both drivers pass, skip and fail the same. Each fixture of
	# vfio_pci_driver_test maps a 1 GiB MAP_SHARED|MAP_ANONYMOUS region for DMA; in 4 KiB shmem
	# pages, pinning and IOMMU-mapping it under TCG outlasts the harness's fixed 30 s per test,
	# and the harness reaps a timed-out test without waiting (WNOHANG), so the next tests find
	# the group still held by the dying one (open: EBUSY). 2 MiB shmem pages (THP) make a
	# fixture take seconds; the tests are unchanged. A few 2 MiB hugetlb pages let
	# vfio_dma_mapping_test's hugetlb_2mb variants run instead of skipping.
	echo always >/sys/kernel/mm/transparent_hugepage/shmem_enabled
	echo 4 >/proc/sys/vm/nr_hugepages
	[ -d /kselftests ] && for bdf in $(test_bdfs); do
		for t in /kselftests/vfio_*_test; do
			name=$(basename "$t")
			[ "$name" = vfio_pci_device_init_perf_test ] && continue
			# vfio_pci_sriov_uapi_test creates a VF through the PF's sriov_numvfs: only igb has
			# SR-IOV. Neither driver allows VFs by default (vfio-pci needs enable_sriov=1, which
			# vfio_pci_rs accepts but does not implement), so both fail its setup identically;
			# with VFs the test would still insist the VF's driver is named "vfio-pci".
			[ "$name" = vfio_pci_sriov_uapi_test ] && [ "$(name_of "$bdf")" != igb ] && continue
			t0=$(cut -d. -f1 /proc/uptime)
			# vfio_pci_driver_test on igb takes 6-8 min per driver under TCG on a busy host.
			timeout 1200 "$t" "$bdf" >/tmp/kst.log 2>&1
			rc=$?
			t1=$(cut -d. -f1 /proc/uptime)
			totals=$(grep -E '^# Totals:' /tmp/kst.log | tail -n1)
			echo "# kselftest $name $(name_of "$bdf") with $drv: exit $rc in $((t1 - t0)) s, $totals"
			grep -E '^(not ok|ok .*# SKIP)' /tmp/kst.log | sed 's/^/#   /' | head -n 20
			[ "$rc" = 0 ] || grep -m 3 -iE 'assert|error|fail|timeout' /tmp/kst.log | sed 's/^/#   log: /'
			# Passes per fixture variant (the IOMMU modes, with the memory backing for
			# vfio_dma_mapping_test; MSI/MSI-X for vfio_pci_device_test).
			echo "#   passed per variant: $(sed -nE 's/^ok [0-9]+ [a-z_]+\.([a-z0-9_]+)\.[a-z_]+$/\1/p' /tmp/kst.log |
				sort | uniq -c | awk '{ printf "%s %s, ", $2, $1 }')"
			dir=/tmp/out/$drv
			printf 'exit %s\n%s\n' "$rc" "$totals" >"$dir/kselftest.$name.$bdf.txt"
			grep -E '^(ok|not ok) ' /tmp/kst.log | sed -E 's/^(not ok|ok) [0-9]+ /\1 /' \
				>>"$dir/kselftest.$name.$bdf.txt"
		done
	done
	# vfio_pci_device_init_perf_test opens several devices at once, a thread each, in every
	# IOMMU mode. Its timings are printed, not compared (TCG); its results go into the
	# transcript. ivshmem is left out: the selftest library's BAR mapping trips on its 1 GiB BAR
	# (munmap of a zero-length tail: EINVAL) under both drivers, as in the per-device runs.
	t=/kselftests/vfio_pci_device_init_perf_test
	if [ -x "$t" ]; then
		bdfs=$(for bdf in $(test_bdfs); do [ "$(name_of "$bdf")" = ivshmem ] || echo "$bdf"; done)
		timeout 600 "$t" $bdfs >/tmp/kst.log 2>&1
		rc=$?
		echo "# kselftest vfio_pci_device_init_perf_test on $(echo $bdfs | wc -w) devices with $drv: exit $rc," \
			"$(grep -E '^# Totals:' /tmp/kst.log | tail -n1)"
		grep -E '^(Wall time|Avg init|Max init)|^(not ok|ok .*# SKIP)' /tmp/kst.log | sed 's/^/#   /' | head -n 12
		{ echo "exit $rc"; grep -E '^(ok|not ok) ' /tmp/kst.log | sed -E 's/^(not ok|ok) [0-9]+ /\1 /'; } \
			>"/tmp/out/$drv/kselftest.vfio_pci_device_init_perf_test.all.txt"
	fi
	echo never >/sys/kernel/mm/transparent_hugepage/shmem_enabled
	echo 0 >/proc/sys/vm/nr_hugepages
	for bdf in $(test_bdfs); do release "$bdf"; done
done

echo "# differential: vfio_pci_rs against vfio-pci"
vfio-test compare /tmp/out/vfio_pci_rs /tmp/out/vfio-pci

# --- Unbind and rmmod while a device is open -----------------------------------------------
bdf=$(bdf_of 1234:11e8)
if bind vfio_pci_rs "$bdf"; then
	cdev=$(ls /sys/bus/pci/devices/$bdf/vfio-dev/ 2>/dev/null | head -n1)
	( exec 3<>/dev/vfio/devices/$cdev; sleep 3 ) &
	holder=$!
	sleep 1
	t0=$(cut -d. -f1 /proc/uptime)
	unbind "$bdf"
	t1=$(cut -d. -f1 /proc/uptime)
	wait $holder
	if [ -z "$(driver_of "$bdf")" ] && [ $((t1 - t0)) -ge 1 ]; then
		ok lifecycle.unbind_waits_for_open_fd
	else
		not_ok lifecycle.unbind_waits_for_open_fd "unbind returned after $((t1 - t0)) s"
	fi
	release "$bdf"
fi
if bind vfio_pci_rs "$bdf"; then
	( vfio-test hold --mode group "$bdf" 3 >/dev/null 2>&1 ) &
	holder=$!
	sleep 1
	if rmmod vfio_pci_rs 2>/dev/null; then
		# rmmod may wait for the user instead of refusing: both are correct.
		ok lifecycle.rmmod_while_open
	else
		wait $holder
		check lifecycle.rmmod_after_close rmmod vfio_pci_rs
	fi
	wait $holder 2>/dev/null
fi
lsmod | grep -q '^vfio_pci_rs' && rmmod vfio_pci_rs
check lifecycle.reload modprobe vfio_pci_rs
check lifecycle.final_rmmod rmmod vfio_pci_rs
. /bin/usability.sh  # install, modinfo, module parameters (ids=, nointxmask, ...)
sh /bin/stress-slice.sh  # short differential fuzz (the full one: make stress)
echo "# guest suite done"
