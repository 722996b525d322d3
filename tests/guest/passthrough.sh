#!/bin/sh
# `make passthrough`, in the test guest: for each driver (vfio_pci_rs, then upstream vfio-pci),
# device (nvme, igb) and VFIO backend of QEMU (the legacy type1 container, then iommufd), QEMU
# (TCG) starts a second-level guest with the device passed through (-device vfio-pci,host=BDF).
# L2 (tests/guest/l2/init) checks that its kernel found the device, the driver probed and I/O
# works, prints L2-PASS, reboots (QEMU resets the device through VFIO) and checks again; we
# stop QEMU after the second boot. For nvme we write a pattern before (L2 must read it) and read
# back after what L2 wrote. Kernel parameters: vpr.l2_drivers=vfio_pci_rs,vfio-pci
# vpr.l2_devs=nvme,igb vpr.l2_backends=legacy,iommufd vpr.l2_timeout=SECONDS (per L2 run)
# vpr.l2_bios=qboot|seabios.
. /bin/lib.sh
echo "KTAP version 1"
param() { v=$(sed -n "s/.*vpr\.$1=\([^ ]*\).*/\1/p" /proc/cmdline | tr , ' '); echo "${v:-$2}"; }
DRIVERS=$(param l2_drivers "vfio_pci_rs vfio-pci")
DEVS=$(param l2_devs "nvme igb")
BACKENDS=$(param l2_backends "legacy iommufd")
L2_TIMEOUT=$(param l2_timeout 900)
# L2's firmware: qboot (default) only loads the kernel, where SeaBIOS (vpr.l2_bios=seabios)
# also scans for boot devices; under TCG inside TCG every firmware instruction counts.
BIOS="-bios /usr/share/qemu/qboot.rom"
[ "$(param l2_bios qboot)" = seabios ] && BIOS=""
check module.load modprobe vfio_pci_rs
check module.load_upstream modprobe vfio-pci
now() { cut -d' ' -f1 /proc/uptime; }

# nvme_io BDF qemu-io-commands...: QEMU's userspace NVMe driver over VFIO. Its admin phase can
# hang under TCG under either driver (QEMU's emulated nvme, see clients.sh): qemu_try detects
# that hang from the nvme_* trace going quiet and retries it (up to 20 attempts).
. /bin/clients.sh
nvme_io() {
	b=$1; shift
	qemu_try qemu-io --trace 'nvme_*' -f raw "$@" "nvme://$b/1"
	grep -v '^[0-9]*@[0-9.]*:' /tmp/qemu.log > /tmp/qio.log
	echo "# qemu-io: exit $rc after $tries attempt(s), $hangs hung in the admin phase"
	[ "$rc" = 0 ] || return 1
	grep -qi 'verification failed\|error' /tmp/qio.log && return 1
	[ "$(grep -cE '^(wrote|read) [0-9]+/[0-9]+ bytes' /tmp/qio.log)" = $(($# / 2)) ]
}

# show LOG N: prints L2's console lines after the first N as KTAP comments on stderr (the
# console too), live, since L2 boots take minutes under TCG inside TCG, each with the seconds
# since QEMU started (as seen here, within a second: where an L2 boot spends its time); echoes
# the new count.
show() {
	total=$(wc -l <"$1") el=$(awk "BEGIN { printf \"%.0f\", $(now) - $t0 }")
	[ "$total" -gt "$2" ] && sed -n "$(($2 + 1)),${total}p" "$1" | tr -d '\r' | sed "s/^/#   L2 +${el}s| /" >&2
	echo "$total"
}

# l2 DRIVER DEVICE BDF BACKEND: one second-level guest, two boots; prints its KTAP line.
l2() {
	drv=$1 dev=$2 bdf=$3 be=$4 name="passthrough.$1.$2.$4"
	log=/tmp/l2.$drv.$dev.$be.log tok="$RANDOM$RANDOM"
	if [ "$dev" = nvme ] && ! nvme_io "$bdf" -c 'write -P 0x5a 0 64k' -c 'write -z 1M 64k' -c 'write -z 2M 64k'; then
		not_ok "$name" "qemu-io could not write the first level's pattern"
		sed 's/^/#   /' /tmp/qio.log | tail -n 5
		return
	fi
	case "$be" in
	legacy) obj="" vdev="vfio-pci,host=$bdf,rombar=0" ;;
	iommufd) obj="-object iommufd,id=iommufd0" vdev="vfio-pci,host=$bdf,rombar=0,iommufd=iommufd0" ;;
	esac
	echo "# $name: starting L2 ($vdev)"
	t0=$(now); : >"$log"
	# -serial file: the L2 console; QEMU's own messages go to the .err file.
	(ulimit -l unlimited; exec qemu-system-x86_64 -accel tcg -M q35 -m 256 -smp 1 -nodefaults \
		-display none -monitor none -serial "file:$log" $BIOS -kernel /l2/bzImage -initrd /l2/initrd.cpio \
		-append "console=ttyS0 loglevel=6 no_timer_check l2.dev=$dev l2.tok=$tok" \
		$obj -device "$vdev") >"$log.err" 2>&1 &
	pid=$!
	n=0 shown=0
	while kill -0 $pid 2>/dev/null && [ "$(grep -c '^L2-DONE' "$log" 2>/dev/null)" -lt 2 ] && [ $n -lt "$L2_TIMEOUT" ]; do
		sleep 1; n=$((n + 1)) shown=$(show "$log" $shown)
	done
	alive=no; kill -0 $pid 2>/dev/null && alive=yes
	kill $pid 2>/dev/null; wait $pid 2>/dev/null
	show "$log" $shown >/dev/null
	t1=$(now)
	tr -d '\r' <"$log" >"$log.txt"
	first=$(grep -m1 '^L2: userspace up' "$log.txt" | sed 's/.* at \([0-9.]*\) s.*/\1/')
	echo "# $name: $(grep -c '^L2-DONE' "$log.txt") boot(s) in $(awk "BEGIN { print $t1 - $t0 }") s" \
		"(L2 userspace up at ${first:-?} s of L2 time), qemu still running at the end: $alive"
	sed 's/^/#   qemu: /' "$log.err" | head -n 5
	passes=$(grep -c "^L2-PASS $dev" "$log.txt")
	why=""
	[ "$passes" = 2 ] || why="$passes of 2 boots passed"
	if [ "$dev" = nvme ] && [ -z "$why" ]; then
		grep -q '^L2-PASS nvme boot 1$' "$log.txt" && grep -q '^L2-PASS nvme boot 2$' "$log.txt" ||
			why="the first boot's token was not found by the second"
		# What L2 wrote reached the disk: read back from the first level.
		[ -n "$why" ] || nvme_io "$bdf" -c 'read -P 0xa5 2M 64k' || why="L2's pattern does not read back in L1"
	fi
	[ "$alive" = yes ] || [ -n "$why" ] || why="QEMU exited by itself"
	# Stopped with SIGTERM after the second boot, QEMU must have had no error of its own.
	grep -qi 'error' "$log.err" && why="${why:+$why; }QEMU reported an error"
	if [ -z "$why" ]; then ok "$name"; else not_ok "$name" "$why"; fi
	echo "# result $drv $dev $be $([ -z "$why" ] && echo pass || echo FAIL) $(awk "BEGIN { printf \"%.0f\", $t1 - $t0 }")"
}

for drv in $DRIVERS; do
	for dev in $DEVS; do
		case $dev in nvme) id=1b36:0010 ;; igb) id=8086:10c9 ;; *) not_ok "passthrough.$drv.$dev" "unknown device"; continue ;; esac
		bdf=$(bdf_of $id) || { not_ok "passthrough.$drv.$dev" "no $dev in the guest"; continue; }
		if ! bind "$drv" "$bdf"; then not_ok "passthrough.$drv.$dev.bind"; continue; fi
		for be in $BACKENDS; do l2 "$drv" "$dev" "$bdf" "$be"; done
		release "$bdf"
	done
done
echo "# passthrough done"
