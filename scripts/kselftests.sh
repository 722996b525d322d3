#!/usr/bin/env bash
# Builds upstream's VFIO kselftests (tools/testing/selftests/vfio of the same 7.3 tree) as static
# binaries for the guest, into OUT/kselftests. Cached: rebuilt only when missing.
set -euo pipefail
kdir=$1 out=$(realpath "$2")
src=$(realpath "$kdir/source" 2>/dev/null || ls -d "$kdir"/../src-* | head -n1)
dst="$out/kselftests"
[ -x "$dst/vfio_pci_sriov_uapi_test" ] && exit 0
hdr="$out/kselftest-headers"
make -s -C "$src" O="$out/kselftest-hdr-build" LLVM=-19 headers_install INSTALL_HDR_PATH="$hdr" >/dev/null
rm -rf "$out/kselftest-build" && mkdir -p "$out/kselftest-build" "$dst"
make -s -C "$src/tools/testing/selftests/vfio" OUTPUT="$out/kselftest-build" CC=gcc \
	KHDR_INCLUDES="-isystem $hdr/include" LDFLAGS="-pthread -static" >"$out/kselftest-build.log" 2>&1 ||
	{ tail -n 30 "$out/kselftest-build.log" >&2; exit 1; }
for t in vfio_dma_mapping_test vfio_dma_mapping_mmio_test vfio_iommufd_setup_test \
	vfio_pci_device_test vfio_pci_device_init_perf_test vfio_pci_driver_test vfio_pci_sriov_uapi_test; do
	cp "$out/kselftest-build/$t" "$dst/"
done
