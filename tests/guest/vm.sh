#!/bin/sh
# `make vm`: an interactive shell on the guest's console (QEMU -serial stdio) with vfio_pci_rs
# loaded from its installed location. When stdin is not a terminal the shell reads it as a
# script and the guest powers off at its end, so `make vm </dev/null` also terminates.
. /bin/lib.sh
# For the trace events (README: Seeing what it does).
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
if modprobe vfio_pci_rs; then echo "vm: vfio_pci_rs loaded"; else echo "vm: modprobe vfio_pci_rs failed"; fi
echo "vm: the test devices:"
for bdf in $(test_bdfs); do printf '  %s %s\n' "$bdf" "$(name_of "$bdf")"; done
cat <<'HELP'
vm: try   . /bin/lib.sh; bind vfio_pci_rs $(bdf_of 1234:11e8); vfio-test info $(bdf_of 1234:11e8)
vm:       modinfo vfio_pci_rs; cat /sys/kernel/debug/vfio_pci_rs/*/faults; modprobe vfio-pci
vm: 'exit' or Ctrl-D powers the guest off.
HELP
# cttyhack gives the shell the console as controlling terminal (job control, Ctrl-C).
PS1='vm:\w# ' setsid cttyhack sh
