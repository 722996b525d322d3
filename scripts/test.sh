#!/usr/bin/env bash
# `make test`: host unit tests and fuzzing, lints, the in-tree build, the differential suite
# in the test guest, the drop-in boot (upstream vfio-pci and the drop-in under DPDK), then the
# suite's slice on Debian's stock kernel (module built for it, its own vmlinuz and VFIO
# modules). Ends with "N passed, N failed[, N skipped]" and exits non-zero on
# any failure. The guest console is part of the verdict: any kernel WARN, BUG, oops, lockdep
# report or hung task fails the run (scripts/kernel-reports.ere: the one pattern for that, used
# by every verdict: test, stress, passthrough and bench).
set -uo pipefail
out=$1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p "$out"
pass=0 fail=0 skip=0
result() { # name status(0=pass 1=fail 2=skip)
	case $2 in 0) pass=$((pass + 1)); echo "ok - $1" ;; 2) skip=$((skip + 1)); echo "skip - $1" ;;
	*) fail=$((fail + 1)); echo "FAIL - $1" ;; esac
}

# The verdict of one guest console (KTAP): its ok / not ok / SKIP lines added to the totals, each
# failure shown with CONTEXT lines after it (at most MAX lines in all), a summary line, whether
# the guest reached its DONE marker (result NAME) and whether the console holds a kernel report
# (result PREFIX.console_clean). Used by the guest suite, the drop-in boot and the stock slice.
guest_verdict() { # prefix label log done-marker done-result context max
	local prefix=$1 label=$2 log=$3 done=$4 done_result=$5 ctx=$6 max=$7 n_pass n_skip n_fail splats
	n_pass=$(grep -cE '^ok [0-9]+ ' "$log" | tr -d ' ')
	n_skip=$(grep -cE '^ok [0-9]+ .*# SKIP' "$log" | tr -d ' ')
	n_fail=$(grep -cE '^not ok [0-9]+ ' "$log" | tr -d ' ')
	grep -E '^not ok [0-9]+ ' -A"$ctx" "$log" | head -n "$max"
	pass=$((pass + n_pass - n_skip)) skip=$((skip + n_skip)) fail=$((fail + n_fail))
	echo "test: $label: $((n_pass - n_skip)) passed, $n_fail failed, $n_skip skipped"
	grep -q "^# $done" "$log" && result "$prefix.$done_result" 0 || result "$prefix.$done_result" 1
	splats=$(grep -nEf "$top/scripts/kernel-reports.ere" "$log" | head -n 20)
	if [ -z "$splats" ]; then result "$prefix.console_clean" 0; else echo "$splats"; result "$prefix.console_clean" 1; fi
}

# Debian's stock kernel (linux-image-7.3.4+deb13-amd64): the module built for it in a build
# root with its exact compilers (make stock-module: root, modules_prepare and tree cached), then
# Debian's own vmlinuz and VFIO modules in the guest, vfio_pci_rs installed from its package,
# the slice of the suite under both drivers, transcripts compared (tests/guest/stock.sh).
stock_stage() {
	t0=$(date +%s)
	if make -s stock-module OUT="$out" 2>"$out/stock-module.log"; then
		grep -E '^stock: ' "$out/stock-module.log"
		result stock.module_build 0
		if [ -x tests/client/target/x86_64-unknown-linux-gnu/release/vfio-test ] &&
			bash scripts/stock-guest.sh "$out" >/dev/null 2>"$out/stock-guest.log"; then
			grep -E '^(stock-guest|guest): ' "$out/stock-guest.log"
			log="$out/console-stock.log"
			grep -E '^# (tainted|vfio_pci_rs: |IOMMU: )|^ok .*stock\..*cdev # SKIP' "$log"
			guest_verdict stock "stock-kernel slice" "$log" "stock slice done" slice_completed 3 40
			echo "test: stock-kernel slice: $(grep -cE '^ok [0-9]+ stock\.diff\.' "$log") transcripts equal to Debian's vfio-pci"
		else
			tail -n 20 "$out/stock-guest.log"; result stock.guest 1
		fi
	else
		tail -n 30 "$out/stock-module.log"; result stock.module_build 1
	fi
	echo "test: stock-kernel stage took $(( $(date +%s) - t0 )) s"
}
# VPR_TEST_ONLY=stock: that stage alone (make stock-test), with the same verdict and summary.
if [ "${VPR_TEST_ONLY:-}" = stock ]; then
	stock_stage
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" = 0 ]
	exit
fi

# 1. Kernel (cached) and module.
t0=$(date +%s)
if make -s kernel OUT="$out"; then result kernel.build 0; else result kernel.build 1; fi
kdir=$(cat "$out/kdir" 2>/dev/null)
echo "test: kernel ready in $(( $(date +%s) - t0 )) s (build tree $(basename "${kdir:-none}"))"
if [ -n "$kdir" ] && make -s module KDIR="$kdir" OUT="$out" >"$out/module.log" 2>&1; then
	result module.build 0
else
	cat "$out/module.log"; result module.build 1
fi

# 2. Host-side tests: config-space model (unit tests + fuzz) and the client's pure parts.
while read -r name status; do result "$name" "$status"; done < <(bash scripts/host-tests.sh "$out")

# 3. Lints: clippy through Kbuild, rustfmt with the kernel's config, the host crates' clippy.
while read -r name status; do result "$name" "$status"; done < <(bash scripts/lint.sh "$out" "$kdir")
# The in-tree build (drivers/vfio/pci/vfio_pci_rs, CONFIG_VFIO_PCI_RS=m) on an overlay of the
# cached tree: about a minute, the module and modpost only.
while read -r name status; do result "$name" "$status"; done < <(bash scripts/intree.sh "$kdir" "$out")

# 4. The guest suite.
if bash scripts/kselftests.sh "$kdir" "$out"; then result kselftests.build 0; else result kselftests.build 1; fi
if [ -f vfio_pci_rs.ko ] && make -s client && bash scripts/initramfs.sh "$kdir" "$out"; then
	bash scripts/guest.sh test "$kdir" "$out" >/dev/null
	log="$out/console-test.log"
	grep -E '^guest: (userspace up|done)' "$log"
	guest_verdict guest "guest suite" "$log" "guest suite done" suite_completed 3 60
else
	result guest.suite 1
fi

# 5. The drop-in boot: the drop-in vfio-pci (module vfio_pci, driver vfio-pci) installed under
# updates/ as `make install DROPIN=1` does, against upstream vfio-pci in the same boot, with
# DPDK's testpmd forwarding packets between two igb ports under each (tests/guest/dropin.sh).
t0=$(date +%s)
if [ -n "$kdir" ] && make -s module DROPIN=1 KDIR="$kdir" OUT="$out" >"$out/module-dropin.log" 2>&1 &&
	! grep -qE '^(warning|error)|warning:' "$out/module-dropin.log"; then
	result dropin.build 0
else
	cat "$out/module-dropin.log"; result dropin.build 1
fi
if [ -f "$out/dropin/vfio-pci.ko" ] && bash scripts/initramfs.sh "$kdir" "$out" dropin 2>"$out/initramfs-dropin.log"; then
	# As on a host: kmod's modinfo (what modprobe resolves) names the drop-in's file.
	if bash scripts/dropin.sh check "$kdir" "$out/initramfs-dropin"; then
		result dropin.install_updates 0
	else
		result dropin.install_updates 1
	fi
	VPR_KERNEL_ARGS="vpr.seconds=${VPR_DROPIN_SECONDS:-20} ${VPR_KERNEL_ARGS:-}" \
		bash scripts/guest.sh dropin "$kdir" "$out" >/dev/null
	log="$out/console-dropin.log"
	guest_verdict dropin "drop-in boot" "$log" "dropin suite done" suite_completed 12 80
	echo "test: DPDK dpdk-testpmd, io forwarding between two igb ports joined by a QEMU hub," \
		"$(grep -m1 -o 'seconds=[0-9.]*' "$log" | cut -d= -f2) s each on the guest's" \
		"$([ "${VPR_DROPIN_CLOCK:-virtual}" = virtual ] && echo "virtual clock (-icount)" || echo "clock (the host's)"):"
	awk -f scripts/testpmd-table.awk "$log"
else
	cat "$out/initramfs-dropin.log"; result dropin.suite 1
fi
echo "test: drop-in stage took $(( $(date +%s) - t0 )) s (console $out/console-dropin.log)"

# 6. Debian's stock kernel.
stock_stage
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
