#!/bin/sh
# The stock-kernel slice (`make test`, scripts/stock-guest.sh): Debian's own kernel, its own
# VFIO modules, vfio_pci_rs built for it by `make stock-module` and installed from its package.
# Both drivers on the five test devices through group/container (this kernel has no IOMMUFD:
# the cdev checks skip, saying so); their transcripts are then compared. KTAP lines.
. /bin/lib.sh
echo "KTAP version 1"
kver=$(uname -r)
echo "# kernel $kver: $(cat /proc/version)"
taint_of() { # the set bits of /proc/sys/kernel/tainted, by number
	t=$(cat /proc/sys/kernel/tainted) b=0 bits=""
	while [ "$t" -gt 0 ]; do [ $((t & 1)) = 1 ] && bits="$bits $b"; t=$((t >> 1)) b=$((b + 1)); done
	echo "${bits# }"
}
# Out-of-tree (bit 12, O) and unsigned (bit 13, E) are what loading our module may add;
# anything else (W: a warning, D: an oops, ...) fails.
check_taint() { # name
	tv=$(cat /proc/sys/kernel/tainted) bits=$(taint_of)
	echo "# tainted: $tv (bits: ${bits:-none})"
	extra=$(for b in $bits; do [ "$b" = 12 ] || [ "$b" = 13 ] || echo "$b"; done | tr '\n' ' ')
	[ -z "$extra" ] && ok "$1" || not_ok "$1" "unexpected taint bits: $extra"
}
check_taint stock.taint_at_boot
# The topology needs no module of Debian's to boot: serial console, PCIe port services and the
# Intel IOMMU are built in. Every test device must be in an IOMMU group of its own.
groups=""
for bdf in $(test_bdfs); do
	g=$(basename "$(readlink "/sys/bus/pci/devices/$bdf/iommu_group" 2>/dev/null)" 2>/dev/null)
	groups="$groups $(name_of "$bdf")=${g:-none}"
done
echo "# IOMMU: $(ls /sys/class/iommu | tr '\n' ' ')groups:$groups"
case "$groups" in *=none*) not_ok stock.iommu_groups "$groups" ;; *) ok stock.iommu_groups ;; esac

# --- Install: the package, with dpkg (busybox's: no dependency database here, so -F depends;
# Debian's linux-modules, which it depends on, is in the initramfs). Its postinst runs depmod.
mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates && touch /var/lib/dpkg/status
if dpkg -i -F depends /root/vfio-pci-rs.deb >/tmp/dpkg.log 2>&1; then ok stock.dpkg_install; else
	not_ok stock.dpkg_install "$(tail -n 3 /tmp/dpkg.log | tr '\n' ' ')"
fi
echo "# dpkg: $(dpkg -l 2>/dev/null | grep vfio-pci-rs | tr -s ' ' | cut -c1-100)"
grep -q "^updates/vfio_pci_rs.ko:" "/lib/modules/$kver/modules.dep" && ok stock.postinst_depmod ||
	not_ok stock.postinst_depmod "modules.dep does not list updates/vfio_pci_rs.ko"

# --- Load: Debian's modules, then ours as installed by its package --------------------------
# busybox's modprobe follows modules.dep but not softdeps, which kmod's modprobe on a Debian
# host does (vfio's post: vfio_iommu_type1; ours: pre: vfio vfio_iommu_type1): load type1 first.
check stock.load_type1 modprobe vfio_iommu_type1
check stock.load_upstream modprobe vfio-pci
path=$(modinfo -F filename vfio_pci_rs)
echo "# vfio_pci_rs: $path, vermagic $(modinfo -F vermagic vfio_pci_rs)"
[ "$path" = "/lib/modules/$kver/updates/vfio_pci_rs.ko" ] && ok stock.installed_updates ||
	not_ok stock.installed_updates "modprobe finds $path"
check stock.load modprobe vfio_pci_rs
[ -d /sys/bus/pci/drivers/vfio_pci_rs ] && ok stock.driver_registered || not_ok stock.driver_registered
check_taint stock.taint_after_load
if [ -e /dev/iommu ] || [ -d /sys/class/iommufd ]; then cdev_skip=""; else
	cdev_skip="$kver has no IOMMUFD (CONFIG_IOMMUFD is not set): no /dev/iommu, no device cdevs"
fi

# --- Per-driver slice, transcripts dumped ---------------------------------------------------
run() { # drv bdf vfio-test args...
	d=$1 b=$2; shift 2
	echo "# vfio-test $* $b ($(name_of "$b")) with $d"
	vfio-test "$@" --dump "/tmp/out/$d" "$b" 2>&1 | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1stock.$d./"
}
for drv in vfio_pci_rs vfio-pci; do
	mkdir -p /tmp/out/$drv
	for bdf in $(test_bdfs); do
		bind "$drv" "$bdf" && ok "stock.bind.$drv.$(name_of "$bdf")" || not_ok "stock.bind.$drv.$(name_of "$bdf")"
	done
	# Device, region and IRQ info; BAR read/write; config space; mmap, faults, zap and SIGBUS
	# with decode off, refault; hot reset (group form).
	for bdf in $(test_bdfs); do run "$drv" "$bdf" all --mode group; done
	# VFIO_DEVICE_IOEVENTFD. (`feature` is left out here: Debian's vfio-pci has dma-buf export,
	# VFIO_PCI_DMABUF=y, which vfio_pci_rs does not implement, so feature 11 answers EINVAL
	# there and ENOTTY here; and on ivshmem its low-power entry after a wakeup entry succeeds
	# and signals the wakeup eventfd, where the test kernel's vfio-pci and ours refuse it.)
	for bdf in $(test_bdfs); do run "$drv" "$bdf" ioeventfd --mode group; done
	# Interrupts: SET_IRQS answers, INTx/MSI/MSI-X/ERR/REQ delivery.
	for id in 1234:11e8 8086:10c9 1b36:0010; do
		bdf=$(bdf_of $id) && run "$drv" "$bdf" irq --mode group
	done
	if [ -n "$cdev_skip" ]; then
		skip "stock.$drv.cdev" "$cdev_skip"
	else
		for bdf in $(test_bdfs); do run "$drv" "$bdf" info --mode cdev; done
	fi
	for bdf in $(test_bdfs); do release "$bdf"; done
done
echo "# differential: vfio_pci_rs against Debian's vfio-pci"
vfio-test compare /tmp/out/vfio_pci_rs /tmp/out/vfio-pci | sed "s/^\(\(not \)\{0,1\}ok [0-9]* \)/\1stock./"
check stock.rmmod rmmod vfio_pci_rs
check stock.reload modprobe vfio_pci_rs
check stock.final_rmmod rmmod vfio_pci_rs
# --- Remove: the package's files go, its postrm's depmod forgets the module (busybox's dpkg
# runs postrm on purge only) ---------------------------------------------------------------
if dpkg -P "vfio-pci-rs-modules-$kver" >/tmp/dpkg.log 2>&1 &&
	[ ! -e "/lib/modules/$kver/updates/vfio_pci_rs.ko" ] &&
	! grep -q "vfio_pci_rs" "/lib/modules/$kver/modules.dep" && ! modprobe vfio_pci_rs 2>/dev/null; then
	ok stock.dpkg_remove
else
	not_ok stock.dpkg_remove "$(tail -n 3 /tmp/dpkg.log | tr '\n' ' ')"
fi
check_taint stock.taint_at_end
echo "# stock slice done"
