#!/bin/sh
# Shared helpers of the guest scripts (busybox sh).

# KTAP result lines; the host counts them.
T=0
ok() { T=$((T + 1)); echo "ok $T $1"; }
not_ok() { T=$((T + 1)); echo "not ok $T $1"; [ -n "$2" ] && echo "# $2"; return 0; }
check() { name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi; }
skip() { T=$((T + 1)); echo "ok $T $1 # SKIP $2"; }

# The emulated test devices, by vendor:device: edu, ivshmem-plain, pci-testdev, igb, nvme.
TEST_IDS="1234:11e8 1af4:1110 1b36:0005 8086:10c9 1b36:0010"

bdf_of() { # vendor:device -> BDF
	for d in /sys/bus/pci/devices/*; do
		v=$(cat "$d/vendor"); dv=$(cat "$d/device")
		[ "${v#0x}:${dv#0x}" = "$1" ] && { basename "$d"; return 0; }
	done
	return 1
}

test_bdfs() { for id in $TEST_IDS; do bdf_of "$id"; done; }

name_of() { # BDF -> short device name
	d=/sys/bus/pci/devices/$1
	case "$(cat "$d/vendor"):$(cat "$d/device")" in
	0x1234:0x11e8) echo edu ;; 0x1af4:0x1110) echo ivshmem ;; 0x1b36:0x0005) echo pci-testdev ;;
	0x8086:0x10c9) echo igb ;; 0x1b36:0x0010) echo nvme ;; *) echo "$1" ;;
	esac
}

driver_of() { [ -e "/sys/bus/pci/devices/$1/driver" ] && basename "$(readlink "/sys/bus/pci/devices/$1/driver")"; }

unbind() { [ -e "/sys/bus/pci/devices/$1/driver" ] && echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"; return 0; }

# bind DRIVER BDF: through driver_override only, as vfio-pci users do.
bind() {
	unbind "$2"
	echo "$1" > "/sys/bus/pci/devices/$2/driver_override"
	echo "$2" > "/sys/bus/pci/drivers/$1/bind" 2>/dev/null
	[ "$(driver_of "$2")" = "$1" ]
}

release() { unbind "$1"; echo > "/sys/bus/pci/devices/$1/driver_override"; }
