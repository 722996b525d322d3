#!/usr/bin/env bash
# Host-side tests; prints "name status" lines (0 pass, 1 fail) for scripts/test.sh.
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/out}
mkdir -p "$out"
for crate in tests/host tests/client; do
	name=host.$(basename "$crate")
	if [ ! -f "$top/$crate/Cargo.toml" ]; then echo "$name 2"; continue; fi
	if (cd "$top/$crate" && cargo test -q --release) >"$out/$(basename "$crate")-test.log" 2>&1; then
		echo "$name 0"
	else
		cat "$out/$(basename "$crate")-test.log" >&2
		echo "$name 1"
	fi
done
# The long fuzz of the config-space model (10 million accesses unless VPR_FUZZ_OPS says).
if (cd "$top/tests/host" && cargo test -q --release -- --ignored --nocapture fuzz_long) >"$out/fuzz.log" 2>&1; then
	grep '^fuzz:' "$out/fuzz.log" >&2
	echo "host.fuzz_long 0"
else
	tail -n 30 "$out/fuzz.log" >&2
	echo "host.fuzz_long 1"
fi
