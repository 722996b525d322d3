#!/bin/sh
# `vpr.mode=dropin` (scripts/test.sh's drop-in stage): the drop-in build of vfio_pci_rs (module
# vfio_pci, PCI driver vfio-pci) installed as `make install DROPIN=1` installs it, under
# updates/, in an initramfs that also holds the kernel's own vfio-pci (scripts/initramfs.sh
# dropin). One boot, two phases on the same two igb ports (joined by a QEMU hub,
# scripts/guest.sh):
#   1. upstream vfio-pci, loaded from its own file (modprobe vfio-pci would load ours now);
#   2. upstream unloaded (vfio_pci and vfio_pci_core gone), then `modprobe vfio-pci`, which must
#      load ours, as on a host with the drop-in installed.
# One boot rather than two: both phases share the boot (a third of the stage's time under TCG),
# the devices and the host's load of the moment, and phase 2 is the replacement a host does.
# In each phase the same transcript of what name-keyed tools read (sysfs driver and parameter
# files, modinfo, ids= at load, new_id/remove_id, driver_override) is written and the two are
# compared; then DPDK's dpdk-testpmd (Debian's, from the host's root shared over 9p) binds both
# ports with dpdk-devbind.py --bind=vfio-pci and forwards packets between them (io forwarding,
# --tx-first) for DROPIN_SECONDS. Each phase prints one line per port
#   dropin: result DRIVER port=N rx=.. tx=.. rx_dropped=.. tx_dropped=.. rx_errors=.. seconds=.. lsc_irqs=..
# which the host prints side by side.
. /bin/lib.sh
echo "KTAP version 1"
rel=$(uname -r)
ours=/lib/modules/$rel/updates/vfio-pci.ko
upstream=/lib/modules/$rel/kernel/drivers/vfio/pci/vfio-pci.ko
seconds=$(sed -n 's/.*vpr\.seconds=\([0-9]*\).*/\1/p' /proc/cmdline)
DROPIN_SECONDS=${seconds:-20}
mkdir -p /tmp/dropin
. /bin/dpdk.sh
hub_ports
echo "# igb ports joined by the hub: $p0 $p1"

# --- The install: modprobe vfio-pci resolves to the drop-in ---------------------------------
# (busybox's modinfo looks a module up by its name, vfio_pci, where kmod's also takes vfio-pci;
# scripts/test.sh checks the latter with kmod on the staged tree.)
f=$(modinfo -F filename vfio_pci)
[ "$f" = "$ours" ] && ok dropin.modinfo_filename_updates ||
	not_ok dropin.modinfo_filename_updates "modinfo vfio_pci: '$f', not $ours"

# --- DPDK's environment: the host's root over 9p, chrooted, with this guest's kernel files ---
dpdk_env
echo "# hugepages: $(cat /proc/sys/vm/nr_hugepages) x 2 MiB; DPDK found on the host's root: $dpdk_ok"

# --- What name-keyed tools read, as a transcript per driver --------------------------------
# names LABEL: the module's and the PCI driver's names, sysfs files and parameters, modinfo's
# parameters and alias, and three ways of binding without a tool (ids= at load, new_id and
# driver_override), each as it must read under both drivers. Loads the driver (load_driver).
names() {
	t=/tmp/dropin/names.$1.txt
	rmmod vfio_pci 2>/dev/null
	load_driver ids=8086:10c9 || echo "load with ids= failed"
	{
		echo "module: $(ls -d /sys/module/vfio_pci 2>/dev/null)"
		echo "driver files: $(cd /sys/bus/pci/drivers/vfio-pci && ls -d bind unbind new_id remove_id module 2>&1 | tr '\n' ' ')"
		echo "driver module: $(basename "$(readlink /sys/bus/pci/drivers/vfio-pci/module)")"
		for p in /sys/module/vfio_pci/parameters/*; do
			echo "parameter $(basename "$p"): mode $(stat -c %a "$p") value $(cat "$p")"
		done
		echo "modinfo parmtype: $(modinfo -F parmtype "$file" | sort | tr '\n' ' ')"
		echo "modinfo alias: $(modinfo -F alias "$file" | tr '\n' ' ')"
		echo "modinfo parm names: $(modinfo -F parm "$file" | cut -d: -f1 | sort | tr '\n' ' ')"
		# ids= at load bound every driverless igb, the hub's two among them.
		echo "ids= at load: $p0 $(driver_of "$p0"), $p1 $(driver_of "$p1")"
		echo 8086 10c9 > /sys/bus/pci/drivers/vfio-pci/remove_id && echo "remove_id: ok"
		unbind "$p0" && echo "after unbind: $(driver_of "$p0")"
		echo "$p0" > /sys/bus/pci/drivers_probe
		echo "after the id was removed, drivers_probe: '$(driver_of "$p0")'"
		echo 8086 10c9 > /sys/bus/pci/drivers/vfio-pci/new_id && echo "new_id: ok"
		echo "after new_id: $(driver_of "$p0")"
		echo 8086 10c9 > /sys/bus/pci/drivers/vfio-pci/remove_id
		bind vfio-pci "$p1" && echo "driver_override bind: $(driver_of "$p1")"
		release "$p1" && echo "released: '$(driver_of "$p1")'"
		unbind "$p0"
	} >"$t" 2>&1
	rmmod vfio_pci
	# The defaults again, for devbind and testpmd.
	load_driver
}

# --- DPDK testpmd on the two ports ----------------------------------------------------------
# testpmd LABEL: testpmd_run (dpdk.sh) for DROPIN_SECONDS, and what must hold of it.
testpmd() {
	label=$1
	if [ "$dpdk_ok" != 1 ]; then
		skip "dropin.$label.testpmd" "no dpdk-testpmd/dpdk-devbind.py on the host's root (9p)"
		return 0
	fi
	testpmd_run "$label" "$DROPIN_SECONDS"
	# (lspci, which devbind runs, says it cannot load libkmod resources: the chroot's
	# /lib/modules is the host's, not this kernel's; devbind's own failures start with Error.)
	if ! grep -q '^Error' /tmp/dpdk/devbind.$label.log &&
		[ "$(driver_of "$p0")" = vfio-pci ] && [ "$(driver_of "$p1")" = vfio-pci ]; then
		ok "dropin.$label.devbind_bind"
	else
		not_ok "dropin.$label.devbind_bind" "drivers after devbind: '$(driver_of "$p0")' '$(driver_of "$p1")'"
	fi
	grep -v 'libkmod' /tmp/dpdk/devbind.$label.log | sed 's/^/# devbind: /'
	echo "# testpmd under $label: forwarding after ${startup} s, stopped after $secs s, exit $rc"
	grep -E 'No probed|Cannot|[Ee]rror|EAL: Probe|Port [0-9]+: ([0-9A-F]{2}:){5}|Port [0-9]+: link state|Link status' \
		/tmp/dpdk/testpmd.$label.log | head -n 20 | sed "s/^/# testpmd $label: /"
	cat /tmp/dpdk/result.$label
	# Both ports forwarded in both directions, without receive errors, and testpmd exited.
	if [ "$rc" = 0 ] && [ "$(grep -c . /tmp/dpdk/result.$label)" = 2 ] &&
		! grep -qE ' (rx|tx)=0 | rx_errors=[1-9]' /tmp/dpdk/result.$label; then
		ok "dropin.$label.testpmd_forwards"
	else
		not_ok "dropin.$label.testpmd_forwards" "testpmd exit $rc, started $started"
		tail -n 25 /tmp/dpdk/testpmd.$label.log | sed 's/^/#   /'
	fi
	# Link-state changes on port start arrive as MSI-X interrupts the driver signals to the
	# eventfds testpmd's interrupt thread waits on; testpmd prints an event for each port.
	events=$(grep -c 'Port [01]: link state change event' /tmp/dpdk/testpmd.$label.log)
	[ "$irqs" -gt 0 ] && [ "$events" -ge 2 ] && ok "dropin.$label.msix_eventfd_irqs" ||
		not_ok "dropin.$label.msix_eventfd_irqs" "$irqs vfio-msix interrupts for $p0 $p1, $events link state events"
	chroot $host /usr/bin/dpdk-devbind.py -u "$p0" "$p1" >/dev/null 2>&1
}

# --- Phase 1: upstream vfio-pci ---------------------------------------------------------------
load_driver() { modprobe vfio_pci_core && insmod "$upstream" "$@"; }
file=$upstream
names upstream
testpmd upstream
rmmod vfio_pci vfio_pci_core
[ ! -d /sys/module/vfio_pci ] && [ ! -d /sys/module/vfio_pci_core ] && ok dropin.upstream_unloaded ||
	not_ok dropin.upstream_unloaded "$(lsmod | grep vfio_pci)"

# --- Phase 2: the drop-in, by the name users type ------------------------------------------
# modprobe.d options reach it as upstream's would (busybox modprobe reads /etc/modprobe.d).
mkdir -p /etc/modprobe.d
echo "options vfio-pci ids=8086:10c9" > /etc/modprobe.d/vfio-pci.conf
modprobe vfio-pci
if [ "$(cat /sys/module/vfio_pci/srcversion 2>/dev/null)" = "$(modinfo -F srcversion "$ours")" ] &&
	[ ! -d /sys/module/vfio_pci_core ] && [ ! -d /sys/module/vfio_pci_rs ]; then
	ok dropin.modprobe_loads_ours
else
	not_ok dropin.modprobe_loads_ours "srcversion $(cat /sys/module/vfio_pci/srcversion 2>/dev/null), ours $(modinfo -F srcversion "$ours"); $(lsmod | grep vfio | tr '\n' ' ')"
fi
[ "$(driver_of "$p0")" = vfio-pci ] && [ "$(driver_of "$p1")" = vfio-pci ] &&
	ok dropin.modprobe_d_options || not_ok dropin.modprobe_d_options "ids= from modprobe.d did not bind"
rm /etc/modprobe.d/vfio-pci.conf
unbind "$p0"; unbind "$p1"
rmmod vfio_pci
load_driver() { modprobe vfio-pci "$@"; }
file=$ours
names dropin
testpmd dropin

# --- The names compared ------------------------------------------------------------------------
if diff /tmp/dropin/names.upstream.txt /tmp/dropin/names.dropin.txt >/tmp/dropin/names.diff; then
	ok dropin.names_like_upstream
else
	not_ok dropin.names_like_upstream "what name-keyed tools read differs (upstream <, drop-in >)"
	sed 's/^/#   /' /tmp/dropin/names.diff
fi
sed 's/^/# names: /' /tmp/dropin/names.dropin.txt
echo "# dropin suite done"
