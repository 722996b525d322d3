#!/bin/sh
# Compares the differential fuzz's outcome files in DIR (vfio_pci_rs.NAME against vfio-pci.NAME,
# one pair per device) with `VFIO_TEST fuzz-compare`, call by call over the common prefix;
# prints a KTAP line per device (upstream must have made at least as many calls), the mismatch
# classes summed over the devices and `# fuzz totals: vfio_pci_rs N calls, vfio-pci N calls,
# mismatches N`. Used in the guest (stress-fuzz.sh) and on the host (scripts/stress.sh, where
# the two drivers ran in two guests). Usage: fuzz-compare.sh DIR [VFIO_TEST]
dir=$1 vt=${2:-vfio-test}
tot_rs=0 tot_up=0 tot_mm=0 k=0
: > "$dir/classes"
for a in "$dir"/vfio_pci_rs.*; do
	[ -f "$a" ] || continue
	name=${a##*/vfio_pci_rs.} b=$dir/vfio-pci.$name k=$((k + 1))
	[ -f "$b" ] || { echo "not ok $k fuzz.compare.$name"; echo "# no vfio-pci outcomes"; continue; }
	"$vt" fuzz-compare "$a" "$b" > "$dir/cmp" 2>&1
	sed 's/^\([^#]\)/# \1/' "$dir/cmp"
	sed -n 's/^# mismatch class //p' "$dir/cmp" >> "$dir/classes"
	set -- $(sed -n 's/^fuzz-compare: lines \([0-9]*\) \([0-9]*\) compared [0-9]* mismatches \([0-9]*\)/\1 \2 \3/p' "$dir/cmp")
	[ $# = 3 ] || { echo "not ok $k fuzz.compare.$name"; echo "# no comparison"; continue; }
	# The first line of each file is the layout header, not a call.
	tot_rs=$((tot_rs + $1 - 1)) tot_up=$((tot_up + $2 - 1)) tot_mm=$((tot_mm + $3))
	if [ "$3" = 0 ] && [ "$2" -ge "$1" ]; then echo "ok $k fuzz.compare.$name"
	else echo "not ok $k fuzz.compare.$name"; echo "# $3 mismatching calls, lines $1 vs $2"; fi
done
[ $k -gt 0 ] || { echo "not ok 1 fuzz.compare"; echo "# no outcome files"; }
# Mismatch classes summed over the devices (call: ours vs upstream: count).
awk -F': ' '{ n[$1 ": " $2] += $3 } END { for (k in n) print "# fuzz class " k ": " n[k] }' "$dir/classes" | sort
echo "# fuzz totals: vfio_pci_rs $tot_rs calls, vfio-pci $tot_up calls, mismatches $tot_mm"
