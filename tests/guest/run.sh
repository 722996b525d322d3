#!/bin/sh
# `make run`: load vfio_pci_rs, bind every emulated device to it, and show them answering a
# VFIO client through both the group/container and the iommufd cdev paths.
. /bin/lib.sh
modprobe vfio_pci_rs || { echo "run: modprobe vfio_pci_rs failed"; exit 1; }
for bdf in $(test_bdfs); do
	bind vfio_pci_rs "$bdf" || echo "run: could not bind $bdf"
done
echo "run: devices and their drivers:"
for bdf in $(test_bdfs); do
	d=/sys/bus/pci/devices/$bdf
	printf '  %s %-12s %s:%s group %s driver %s\n' "$bdf" "$(name_of "$bdf")" \
		"$(cat $d/vendor)" "$(cat $d/device)" "$(basename "$(readlink $d/iommu_group)")" \
		"$(driver_of "$bdf")"
done
ls -l /dev/vfio /dev/vfio/devices
for bdf in $(test_bdfs); do
	for mode in group cdev; do
		echo "run: vfio-test info --mode $mode $bdf ($(name_of "$bdf"))"
		vfio-test info --mode "$mode" "$bdf"
	done
done
