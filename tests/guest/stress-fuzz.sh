#!/bin/sh
# Differential fuzz: the same seeded call sequence (vfio-test fuzz) on every test device under
# vfio_pci_rs, then under upstream vfio-pci; then each pair of outcome files is compared.
# Usage: stress-fuzz.sh SECS_PER_DEVICE_PER_DRIVER CALLS_PER_DEVICE [SEED [DRIVERS [KEEP]]].
# Prints KTAP lines and the totals `# fuzz totals: vfio_pci_rs N calls, vfio-pci N calls,
# mismatches N`. With one driver in DRIVERS (`make stress` runs the two drivers in two guests at
# once, one per host core) there is nothing to compare here: the outcome files are copied to
# the directory KEEP (shared with the host, which compares them) instead.
. /bin/lib.sh
secs=${1:-10} calls=${2:-1000000} seed=${3:-20261124} drivers=${4:-vfio_pci_rs vfio-pci} keep=${5:-}
modprobe vfio_pci_rs; modprobe vfio-pci
mkdir -p /tmp/fuzz
for drv in $drivers; do
	i=0
	for bdf in $(test_bdfs); do
		name=$(name_of "$bdf") i=$((i + 1))
		bind "$drv" "$bdf" || { not_ok "fuzz.$drv.$name.bind"; continue; }
		# The seed differs per device (its place in the list) but not per driver.
		s=$((seed + i))
		# vfio_pci_rs runs first, bounded by time; upstream then makes exactly as many calls (so
		# the comparison covers all of them), with a generous time bound.
		n=$calls t=$secs
		# (Run alone, upstream makes up to CALLS calls; the host compares the common prefix.)
		if [ "$drv" = vfio-pci ]; then
			t=$((secs * 4))
			[ -f "/tmp/fuzz/n.$name" ] && n=$(cat "/tmp/fuzz/n.$name")
		fi
		echo "# fuzz $name under $drv (seed $s, ${t}s, max $n calls)"
		if vfio-test fuzz --seed "$s" --secs "$t" --calls "$n" --out "/tmp/fuzz/$drv.$name" "$bdf" > /tmp/fuzz/log 2>&1; then
			[ "$drv" = vfio_pci_rs ] && sed -n 's/^fuzz: .* calls \([0-9]*\) .*/\1/p' /tmp/fuzz/log > "/tmp/fuzz/n.$name"
			ok "fuzz.$drv.$name.ran"
		else
			not_ok "fuzz.$drv.$name.ran" "$(tail -n 3 /tmp/fuzz/log)"
		fi
		# The totals, and where the time went (the eight most expensive kinds of call).
		grep -v '^fuzz-time' /tmp/fuzz/log | sed 's/^/# /'
		grep '^fuzz-time' /tmp/fuzz/log | head -n 8 | sed 's/^/# /'
		release "$bdf"
	done
done
if [ -n "$keep" ]; then
	cp /tmp/fuzz/vfio* "$keep"/ && ok fuzz.outcomes_kept || not_ok fuzz.outcomes_kept
	rm -rf /tmp/fuzz
	exit 0
fi
sh /bin/fuzz-compare.sh /tmp/fuzz
rm -rf /tmp/fuzz
