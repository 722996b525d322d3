#!/usr/bin/env bash
# Builds (or reuses) the test-guest kernel: Linux 7.3 from Debian's linux-source-7.3, tinyconfig plus
# kernel/vfio_pci_rs.config, LLVM=-19. The build tree lives outside the checkout, keyed by kernel
# version + config + toolchain, so a second run reuses it. Prints the build tree path on stdout.
# `kernel.sh bench` builds the bench variant instead: the same fragment plus kernel/bench.config
# (lock debugging off), cached under its own key; the test kernel's key is unchanged.
# A variant fragment whose first line is `# vpr: standalone` (kernel/l2.config, the second-level
# guest of `make passthrough`) is merged onto tinyconfig alone, without Rust or modules.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VFIO_PCI_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio_pci_rs}
log() { printf 'kernel: %s\n' "$*" >&2; }

export RUST_LIB_SRC=${RUST_LIB_SRC:-/usr/lib/rustlib/src/rust/library}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
export PATH="$HOME/.cargo/bin:$PATH"

tarball=/usr/src/linux-source-7.3.tar.xz
[ -f "$tarball" ] || { log "$tarball missing: run scripts/setup.sh"; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-7.3)
src="$cache/src-$srcver"
if [ ! -f "$src/.extracted" ]; then
	log "extracting linux-source-7.3 $srcver"
	rm -rf "$src" && mkdir -p "$src"
	tar -xf "$tarball" -C "$src" --strip-components=1
	touch "$src/.extracted"
fi

variant=${1:-test}
frags=("$top/kernel/vfio_pci_rs.config")
[ "$variant" = test ] || frags+=("$top/kernel/$variant.config")
standalone=0 targets="bzImage modules"
if [ "$variant" != test ] && [ "$(head -n1 "${frags[1]}")" = "# vpr: standalone" ]; then
	standalone=1 targets=bzImage frags=("${frags[1]}")
fi
key=$( {
	echo "$srcver"
	if [ "$standalone" = 1 ]; then echo "standalone $variant"; cat "${frags[0]}"; else
	cat "${frags[0]}"
	# Only variants extend the key, so the test kernel keeps its original key (and cache).
	[ "$variant" = test ] || { echo "variant $variant"; cat "${frags[1]}"; }
	fi
	rustc --version
	bindgen --version
	clang-19 --version | head -n1
	ld.lld-19 --version
} | sha256sum | cut -c1-16)
out="$cache/build-$key"

if [ ! -f "$out/.built" ]; then
	start=$(date +%s)
	log "building kernel into $out (not cached; takes 10-20 minutes on 2 cores)"
	mkdir -p "$out"
	make -s -C "$src" O="$out" LLVM=-19 tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}" >/dev/null
	make -s -C "$src" O="$out" LLVM=-19 olddefconfig >/dev/null
	# Every line of the fragments must have survived olddefconfig; for a symbol named in more
	# than one fragment only the last (overriding) line counts, as in merge_config.sh.
	missing=0
	while IFS= read -r line; do
		case "$line" in
		"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *}
			grep -q "^$sym=" "$out/.config" && { log "config: $sym set"; missing=1; } ;;
		CONFIG_*) grep -qx "$line" "$out/.config" || { log "config: $line dropped"; missing=1; } ;;
		esac
	done < <(cat "${frags[@]}" | awk '
		/^CONFIG_/ { s = $0; sub(/=.*/, "", s) }
		/^# CONFIG_.* is not set$/ { s = $2 }
		s != "" { if (!(s in v)) order[n++] = s; v[s] = $0; s = "" }
		END { for (i = 0; i < n; i++) print v[order[i]] }')
	[ "$missing" = 0 ] || { log "config fragment not satisfied"; exit 1; }
	make -s -C "$src" O="$out" LLVM=-19 -j"$(($(nproc) + 1))" $targets >"$out/build.log" 2>&1 ||
		{ tail -n 40 "$out/build.log" >&2; exit 1; }
	touch "$out/.built"
	log "kernel built in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
fi
echo "$out"
