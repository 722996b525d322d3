#!/usr/bin/env bash
# Installs everything vfio_pci_rs needs on a fresh Debian 12 machine: toolchain, kernel source,
# QEMU and busybox. Idempotent and quiet when already done.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# The mirror already configured on this machine (never a hard-coded host).
mirror() {
	local uri
	uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
	if [ -z "$uri" ]; then
		uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null |
			awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
	fi
	[ -n "$uri" ] || { log "no Debian mirror found in the apt sources"; exit 1; }
	printf '%s\n' "${uri%/}"
}
# `setup.sh mirror`: print it (scripts/stock.sh builds its root from the same mirror).
if [ "${1:-}" = mirror ]; then mirror; exit 0; fi

add_suites() {
	local list=/etc/apt/sources.list.d/vfio-pci-rs-extra.sources
	local pref=/etc/apt/preferences.d/vfio-pci-rs-extra
	[ -f "$list" ] && [ -f "$pref" ] && return 0
	local m
	m=$(mirror)
	log "adding bookworm-backports and trixie-backports from $m (pinned low)"
	$SUDO tee "$list" >/dev/null <<SRC
Types: deb
URIs: $m
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	$SUDO tee "$pref" >/dev/null <<PREF
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
PREF
	rm -f /tmp/.vfio-pci-rs-apt-updated
}

apt_updated=0
apt_update() {
	[ "$apt_updated" = 1 ] && return 0
	$SUDO apt-get update -qq >/dev/null
	apt_updated=1
}

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_pkgs() { # [-t suite] pkg...
	local suite=() missing=()
	if [ "$1" = -t ]; then suite=(-t "$2"); shift 2; fi
	for p in "$@"; do have_pkg "${p%%=*}" || missing+=("$p"); done
	[ ${#missing[@]} = 0 ] && return 0
	log "installing ${missing[*]}"
	apt_update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${suite[@]}" "${missing[@]}" >/dev/null
}

add_suites
install_pkgs flex bison bc libelf-dev libssl-dev cpio kmod pahole rsync xz-utils \
	clang-19 libclang-19-dev lld-19 llvm-19 busybox-static make gcc libc6-dev uuid-dev bc \
	mmdebstrap
# qemu-utils (qemu-img, qemu-io: QEMU's userspace NVMe driver as a guest client) is only a
# Recommends of qemu-system-x86, which --no-install-recommends leaves out.
install_pkgs -t bookworm-backports qemu-system-x86 qemu-utils
have_pkg linux-source-7.3 || install_pkgs -t trixie-backports linux-source-7.3

# rust-src at exactly the version of the machine's rustc.
rustv=$(rustc --version | awk '{print $2}')
cur=$(dpkg-query -W -f='${Version}' rust-src 2>/dev/null || true)
if [ "${cur%%+*}" != "$rustv" ]; then
	apt_update
	ver=$(apt-cache madison rust-src | awk -v v="$rustv" '$3 ~ "^"v"[+~-]" {print $3; exit}')
	[ -n "$ver" ] || { log "no rust-src $rustv in the apt suites"; exit 1; }
	log "installing rust-src $ver"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"rust-src=$ver" >/dev/null
fi

# bindgen-cli from crates.io.
if ! command -v bindgen >/dev/null || ! bindgen --version | grep -q '0\.72\.'; then
	log "installing bindgen-cli 0.72.1"
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install -q bindgen-cli --version 0.72.1 --locked
fi

# The chart of `make bench` (bench/results.png), drawn by Debian's python3.
install_pkgs python3-matplotlib

# DPDK as a real client in the guest (the drop-in boot and `make run`), run there from the
# host's root shared over 9p: dpdk ships dpdk-devbind.py (with pciutils and python3), dpdk-dev
# dpdk-testpmd; the igb poll-mode driver and the ring mempool are only Recommends of dpdk.
install_pkgs dpdk dpdk-dev librte-net-e1000-23 librte-mempool-ring23
