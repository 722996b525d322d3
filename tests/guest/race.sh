#!/bin/sh
. /bin/lib.sh
modprobe vfio_pci_rs
bdf=$(bdf_of 1af4:1110)
bind vfio_pci_rs "$bdf"
echo "# race start"
vfio-test mmap-race --mode cdev "$bdf"
echo "# race end"
cat /sys/kernel/debug/vfio_pci_rs/$bdf/faults
