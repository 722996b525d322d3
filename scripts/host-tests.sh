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
