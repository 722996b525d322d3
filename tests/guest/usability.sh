#!/bin/sh
# Usability checks, sourced by tests.sh once its lifecycle tests are over (vfio_pci_rs not
# loaded, no test device bound; lib.sh already sourced): the installed module, modinfo, the
# module parameters and what they do. Differential where upstream has the same thing: the same
# modprobe command line is run with vfio-pci and the outcomes are compared.
kver=$(uname -r)
mod_of() { [ "$1" = vfio-pci ] && echo vfio_pci || echo "$1"; }
unload_all() { rmmod vfio_pci_rs 2>/dev/null; rmmod vfio_pci 2>/dev/null; return 0; }
unload_all
# No driver_override left by earlier tests: it would decide the binding instead of ids=.
for bdf in $(test_bdfs); do release "$bdf"; done

# --- Installed as `make install` installs it: extra/, known to depmod --------------------
if [ -f "/lib/modules/$kver/extra/vfio_pci_rs.ko" ] &&
	grep -q '^extra/vfio_pci_rs.ko:' "/lib/modules/$kver/modules.dep"; then
	ok usability.installed_extra
else
	not_ok usability.installed_extra "no extra/vfio_pci_rs.ko in modules.dep"
fi

# --- modinfo: upstream's parameters with the same types, each described; the softdep -------
params="ids nointxmask disable_idle_d3 disable_vga enable_sriov disable_denylist"
missing=""
for p in $params; do
	desc=$(modinfo -F parm vfio_pci_rs | sed -n "s/^$p:\(.*\)/\1/p")
	[ -n "$desc" ] || missing="$missing $p"
done
[ -z "$missing" ] && ok usability.modinfo_params_described ||
	not_ok usability.modinfo_params_described "no description for:$missing"
# Every parameter upstream vfio-pci has here, with the same type (busybox modinfo wants the
# file of a module whose name differs from its file's).
up=/lib/modules/$kver/$(sed -n 's|^\(.*/vfio-pci\.ko\):.*|\1|p' "/lib/modules/$kver/modules.dep")
differ=""
for pt in $(modinfo -F parmtype "$up"); do
	modinfo -F parmtype vfio_pci_rs | grep -qx "$pt" || differ="$differ $pt"
done
echo "# upstream's parameters: $(modinfo -F parmtype "$up" | tr '\n' ' ')"
if [ -n "$(modinfo -F parmtype "$up")" ] && [ -z "$differ" ]; then
	ok usability.modinfo_params_like_upstream
else
	not_ok usability.modinfo_params_like_upstream "upstream's, not ours:$differ"
fi
softdep=$(modinfo -F softdep vfio_pci_rs)
[ "$softdep" = "pre: vfio vfio_iommu_type1" ] && ok usability.modinfo_softdep ||
	not_ok usability.modinfo_softdep "softdep '$softdep'"

# --- sysfs: every upstream parameter file exists here with its mode and default value ------
modprobe vfio_pci_rs && modprobe vfio-pci
differ=""
for f in /sys/module/vfio_pci/parameters/*; do
	p=$(basename "$f") ours=/sys/module/vfio_pci_rs/parameters/$(basename "$f")
	[ -e "$ours" ] && [ "$(stat -c %a "$f")" = "$(stat -c %a "$ours")" ] &&
		[ "$(cat "$f")" = "$(cat "$ours")" ] || differ="$differ $p"
done
echo "# sysfs parameters: vfio-pci: $(ls /sys/module/vfio_pci/parameters | tr '\n' ' ')vfio_pci_rs: $(ls /sys/module/vfio_pci_rs/parameters | tr '\n' ' ')"
[ -z "$differ" ] && ok usability.sysfs_params_like_upstream ||
	not_ok usability.sysfs_params_like_upstream "differ:$differ"
unload_all

# --- ids=: dynamic ids added at load bind matching devices, as with vfio-pci ---------------
# Entries: plain, empty, invalid, with full subsystem/class fields, 0x prefix with a
# subsystem that does not match (ivshmem's is 1af4:1100).
ids="1234:11e8,,xyz,1b36:0005:ffffffff:ffffffff:0:0,0x1af4:1110:1af4:1"
for drv in vfio_pci_rs vfio-pci; do
	dmesg -c >/dev/null
	if ! modprobe "$drv" "ids=$ids"; then not_ok "usability.ids.$drv.load"; continue; fi
	bound=""
	for bdf in $(test_bdfs); do
		[ "$(driver_of "$bdf")" = "$drv" ] && bound="$bound $(name_of "$bdf")"
	done
	echo "# ids=$ids with $drv bound:$bound"
	[ "$bound" = " edu pci-testdev" ] && ok "usability.ids.$drv.binds_matching" ||
		not_ok "usability.ids.$drv.binds_matching" "bound:$bound"
	# The messages without their module prefix, for the comparison below.
	dmesg | sed -n "s/.*\] $(mod_of "$drv"): \(add .*\|invalid id .*\|failed to add .*\)/\1/p" \
		>"/tmp/ids-msgs.$drv"
	sed 's/^/#   /' "/tmp/ids-msgs.$drv"
	rmmod "$(mod_of "$drv")"
	for bdf in $(test_bdfs); do [ -n "$(driver_of "$bdf")" ] && echo "# still bound: $bdf"; done
done
if [ -s /tmp/ids-msgs.vfio-pci ] && cmp -s /tmp/ids-msgs.vfio_pci_rs /tmp/ids-msgs.vfio-pci; then
	ok usability.ids.messages_like_upstream
else
	not_ok usability.ids.messages_like_upstream "the ids= messages differ (see above)"
fi
# The README's command, exactly.
modprobe vfio_pci_rs ids=1234:11e8
edu=$(bdf_of 1234:11e8)
[ "$(driver_of "$edu")" = vfio_pci_rs ] && [ -e "/sys/bus/pci/devices/$edu/vfio-dev" ] &&
	ok usability.ids.readme_command || not_ok usability.ids.readme_command
unload_all

# --- disable_denylist: the load-time warning, as upstream's --------------------------------
for drv in vfio_pci_rs vfio-pci; do
	dmesg -c >/dev/null
	modprobe "$drv" disable_denylist=1
	dmesg | grep -q "\] $(mod_of "$drv"): device denylist disabled\.$" &&
		ok "usability.disable_denylist.$drv.warns" ||
		not_ok "usability.disable_denylist.$drv.warns"
	rmmod "$(mod_of "$drv")"
done

# --- SR-IOV: no VFs through a bound PF (igb has 7), as vfio-pci without enable_sriov -------
igb=$(bdf_of 8086:10c9)
for drv in vfio_pci_rs vfio-pci; do
	modprobe "$drv"
	if bind "$drv" "$igb" && [ "$(cat "/sys/bus/pci/devices/$igb/sriov_totalvfs")" -gt 0 ]; then
		# The shell's write error names the errno (ENOENT: "No such file or directory").
		(echo 1 >"/sys/bus/pci/devices/$igb/sriov_numvfs") 2>&1 | sed 's/.*: //' >"/tmp/sriov.$drv"
		echo "# sriov_numvfs=1 with $drv: $(cat "/tmp/sriov.$drv"), now $(cat "/sys/bus/pci/devices/$igb/sriov_numvfs") VFs"
		[ "$(cat "/sys/bus/pci/devices/$igb/sriov_numvfs")" = 0 ] && ok "usability.sriov.$drv.refused" ||
			not_ok "usability.sriov.$drv.refused"
	else
		not_ok "usability.sriov.$drv.bind"
	fi
	release "$igb"
	rmmod "$(mod_of "$drv")"
done
[ -s /tmp/sriov.vfio-pci ] && cmp -s /tmp/sriov.vfio_pci_rs /tmp/sriov.vfio-pci &&
	ok usability.sriov.same_error || not_ok usability.sriov.same_error

# --- nointxmask: INTx on an exclusive line masked at the irqchip still behaves as upstream --
# The whole INTx sequence of the edu device (delivery, auto-mask, unmask while asserting,
# MASK/UNMASK, virtual DisINTx, resample eventfd) under both drivers, transcripts compared.
for drv in vfio_pci_rs vfio-pci; do
	mkdir -p "/tmp/nointx/$drv"
	modprobe "$drv" nointxmask=1
	[ "$(cat "/sys/module/$(mod_of "$drv")/parameters/nointxmask")" = Y ] &&
		ok "usability.nointxmask.$drv.set" || not_ok "usability.nointxmask.$drv.set"
	if bind "$drv" "$edu"; then
		echo "# vfio-test irq --mode cdev $edu (edu) with $drv nointxmask=1"
		vfio-test irq --mode cdev --dump "/tmp/nointx/$drv" "$edu" 2>&1 |
			sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1nointxmask.$drv./"
	else
		not_ok "usability.nointxmask.$drv.bind"
	fi
	release "$edu"
	rmmod "$(mod_of "$drv")"
done
echo "# differential: nointxmask=1, vfio_pci_rs against vfio-pci"
vfio-test compare /tmp/nointx/vfio_pci_rs /tmp/nointx/vfio-pci | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1nointxmask./"

# --- Observability: trace events agree with the debugfs counters; refusals are explained -----
# The mmap subtests of vfio-test on pci-testdev (small BARs) fault pages in, toggle MEM (zap)
# and try refused mappings; every counted fault and zap must have its event.
tr=/sys/kernel/tracing
[ -d $tr/events ] || mount -t tracefs nodev $tr 2>/dev/null
ptd=$(bdf_of 1b36:0005)
if modprobe vfio_pci_rs && [ -d $tr/events/vfio_pci_rs ] && bind vfio_pci_rs "$ptd"; then
	echo > $tr/trace
	echo 1 > $tr/events/vfio_pci_rs/enable
	vfio-test mmap --mode cdev "$ptd" >/tmp/trace-mmap.log 2>&1
	echo 0 > $tr/events/vfio_pci_rs/enable
	cat $tr/trace >/tmp/trace.txt
	c=/sys/kernel/debug/vfio_pci_rs/$ptd/faults
	inserted=$(awk '$1 == "pte" || $1 == "pmd" || $1 == "pud" { n += $2 } END { print n + 0 }' $c)
	zaps=$(awk '$1 == "zap" { print $2 }' $c)
	ev_ins=$(grep -c 'vpr_fault: .* ret=NOPAGE' /tmp/trace.txt)
	ev_zap=$(grep -c 'vpr_zap: ' /tmp/trace.txt)
	echo "# trace: $ev_ins NOPAGE faults, $ev_zap zaps; debugfs: $inserted inserted, $zaps zaps"
	grep -m 3 -E 'vpr_(fault|zap|refused):' /tmp/trace.txt | sed 's/^/#   /'
	[ "$ev_ins" -gt 0 ] && [ "$ev_ins" = "$inserted" ] && [ "$ev_zap" = "$zaps" ] &&
		ok usability.trace.faults_and_zaps || not_ok usability.trace.faults_and_zaps
	grep -qE 'vpr_refused: .* mmap refused: -22 \(region [0-9]+, offset 0x[0-9a-f]+, size 0x[0-9a-f]+' /tmp/trace.txt &&
		ok usability.trace.mmap_refused || not_ok usability.trace.mmap_refused
	release "$ptd"
	rmmod vfio_pci_rs
else
	not_ok usability.trace.setup "no vfio_pci_rs trace events or no pci-testdev bound"
fi
