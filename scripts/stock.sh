#!/usr/bin/env bash
# Builds vfio_pci_rs for Debian's own (stock) kernel, `make stock-module`:
#   1. Debian's packages of that kernel (linux-base: its config; linux-binary: vmlinuz;
#      linux-modules; linux-headers: Module.symvers), fetched with `apt-get download` and unpacked
#      into the cache, never installed on this machine;
#   2. a build root (mmdebstrap, the Debian suite the kernel was built in) holding the exact
#      compilers the kernel's config names (CONFIG_CC_VERSION_TEXT, CONFIG_RUSTC_VERSION_TEXT,
#      CONFIG_BINDGEN_VERSION_TEXT): checked, the run fails when one differs;
#   3. linux-source-7.3 of the image's Debian version with Debian's config, `modules_prepare`
#      (the Rust crates `kernel`, `core`, ... whose symbol names match the stock vmlinux only
#      when compiled by the same rustc) and the stock Module.symvers;
#   4. the module, built in that root against that tree: OUT/stock/vfio_pci_rs.ko;
#   5. its package for Debian hosts running that kernel (OUT/stock/*.deb, and a copy named
#      vfio-pci-rs.deb), installed with dpkg into the build root, checked with kmod, removed.
# Everything but the module is cached outside the checkout (like the test kernel), each step
# keyed by what it depends on. The build runs in the root through chroot in a private mount
# namespace (objtool needs /proc). Prints each step's time; prints the build tree on stdout.
# VPR_STOCK_RELEASE picks another release of the same Debian kernel (default below).
set -euo pipefail
out=$(mkdir -p "$1" && realpath "$1")
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VFIO_PCI_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio_pci_rs}
rel=${VPR_STOCK_RELEASE:-7.3.4+deb13-amd64}
# The Debian suite the kernel was built in (+deb13: trixie), where its compilers are.
suite=${VPR_STOCK_SUITE:-trixie}
log() { printf 'stock: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
secs() { echo $(( $(date +%s) - $1 )); }
mirror() { bash "$top/scripts/setup.sh" mirror; }

# 1. Debian's packages of the kernel, at the version apt offers.
ver=$(apt-cache madison "linux-binary-$rel" 2>/dev/null | awk 'NR == 1 {print $3}')
[ -n "$ver" ] || die "apt knows no linux-binary-$rel (run scripts/setup.sh: it adds trixie-backports)"
pkg="$cache/stock-pkg-$rel-$ver"
if [ ! -f "$pkg/.unpacked" ]; then
	t=$(date +%s)
	rm -rf "$pkg" && mkdir -p "$pkg/debs" "$pkg/root"
	(cd "$pkg/debs" && apt-get download -q=2 -o APT::Sandbox::User=root "linux-base-$rel=$ver" "linux-binary-$rel=$ver" \
		"linux-modules-$rel=$ver" "linux-headers-$rel=$ver") ||
		die "could not download the packages of $rel $ver"
	for d in "$pkg"/debs/*.deb; do dpkg-deb -x "$d" "$pkg/root"; done
	touch "$pkg/.unpacked"
	log "fetched and unpacked Debian's $rel $ver in $(secs "$t") s"
fi
config="$pkg/root/usr/lib/modules/$rel/config"
symvers="$pkg/root/usr/src/linux-headers-$rel/Module.symvers"
[ -f "$config" ] && [ -f "$symvers" ] || die "no config or Module.symvers in Debian's $rel packages"
conf() { sed -n "s/^$1=\"\\(.*\\)\"$/\\1/p" "$config"; }
cc_text=$(conf CONFIG_CC_VERSION_TEXT) rustc_text=$(conf CONFIG_RUSTC_VERSION_TEXT)
bindgen_text=$(conf CONFIG_BINDGEN_VERSION_TEXT)
[ -n "$rustc_text" ] || die "$rel was built without Rust (no CONFIG_RUSTC_VERSION_TEXT)"
cc=${cc_text%% *}                                  # x86_64-linux-gnu-gcc-14
gcc_pkg=$(echo "$cc" | sed -n 's/.*-\(gcc-[0-9]*\)$/\1/p')   # gcc-14
[ -n "$gcc_pkg" ] || die "cannot tell the GCC package from '$cc_text'"

# 2. The build root with those compilers.
pkgs="rustc,rust-src,bindgen,libclang-19-dev,$gcc_pkg,make,binutils,flex,bison,bc,libelf-dev"
pkgs+=",libssl-dev,cpio,kmod,dwarves,python3,perl,xz-utils"
# Documentation, manual pages and translations are not unpacked (less to decompress and write).
dpkgopts=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/locale/*')
rkey=$(printf '%s\n' "$suite" "$pkgs" "${dpkgopts[@]}" "$cc_text" "$rustc_text" "$bindgen_text" |
	sha256sum | cut -c1-16)
root="$cache/stock-root-$rkey"
t_root=$(date +%s)
if [ ! -f "$root/.ready" ]; then
	m=$(mirror)
	log "creating the build root ($suite: $pkgs) from $m"
	rm -rf "$root"
	mmdebstrap --quiet --variant=apt "${dpkgopts[@]}" --include="$pkgs" "$suite" "$root" "deb $m $suite main" \
		>"$cache/stock-root-$rkey.log" 2>&1 || { tail -n 20 "$cache/stock-root-$rkey.log" >&2;
		die "mmdebstrap failed"; }
	mkdir -p "$root/src" "$root/build" "$root/mod"
fi
# The exact compilers, or nothing: Rust symbol names hold a hash of the exact rustc, and
# modules_prepare would rewrite the config's version texts to whatever it finds.
have_rustc=$(chroot "$root" rustc --version)
have_cc=$(chroot "$root" "$cc" --version | head -n1)
have_bindgen=$(chroot "$root" bindgen --version 2>/dev/null | head -n1)
bad=0
[ "$have_rustc" = "$rustc_text" ] || { log "rustc: root has '$have_rustc', $rel was built by '$rustc_text'"; bad=1; }
[ "$have_cc" = "$cc_text" ] || { log "cc: root has '$have_cc', $rel was built by '$cc_text'"; bad=1; }
[ -z "$bindgen_text" ] || [ "$have_bindgen" = "$bindgen_text" ] ||
	{ log "bindgen: root has '$have_bindgen', $rel was built with '$bindgen_text'"; bad=1; }
[ "$bad" = 0 ] || die "the $suite suite no longer carries $rel's compilers: cannot build a matching module"
touch "$root/.ready"
log "build root ready in $(secs "$t_root") s ($have_rustc; $have_cc; $have_bindgen)"

# Runs a command in the root, in a private mount namespace: /proc, the kernel source (read
# only), the build tree and the module's copy mounted in; nothing leaks to the host.
in_root() { # src build mod cmd...
	local src=$1 build=$2 mod=$3; shift 3
	unshare --mount --propagation private --fork -- sh -ec '
		root=$1 src=$2 build=$3 mod=$4; shift 4
		mount -t proc proc "$root/proc"
		mount --bind "$src" "$root/src" && mount -o remount,bind,ro "$root/src"
		mount --bind "$build" "$root/build"
		[ -z "$mod" ] || mount --bind "$mod" "$root/mod"
		exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
	' in_root "$root" "$src" "$build" "$mod" "$@"
}

# 3. The kernel source of the image's version (the installed linux-source-7.3 when it is that
# version, as scripts/setup.sh installs it; else that version's package, downloaded), Debian's
# config, modules_prepare.
src="$cache/src-$ver" # shared with scripts/kernel.sh
if [ ! -f "$src/.extracted" ]; then
	t=$(date +%s)
	tarball=/usr/src/linux-source-7.3.tar.xz
	if [ "$(dpkg-query -W -f='${Version}' linux-source-7.3 2>/dev/null)" != "$ver" ]; then
		(cd "$pkg/debs" && apt-get download -q=2 -o APT::Sandbox::User=root "linux-source-7.3=$ver") ||
			die "could not download linux-source-7.3 $ver (the image's version)"
		dpkg-deb -x "$pkg"/debs/linux-source-7.3_*.deb "$pkg/source"
		tarball=$pkg/source/usr/src/linux-source-7.3.tar.xz
	fi
	rm -rf "$src" && mkdir -p "$src"
	tar -xf "$tarball" -C "$src" --strip-components=1
	rm -rf "$pkg/source" "$pkg"/debs/linux-source-7.3_*.deb
	touch "$src/.extracted"
	log "extracted linux-source-7.3 $ver in $(secs "$t") s"
fi
mk=(make -s -C /src O=/build ARCH=x86_64 CC="$cc" HOSTCC="$cc" KERNELRELEASE="$rel")
bkey=$( { echo "$ver $rkey"; cat "$config"; } | sha256sum | cut -c1-16)
build="$cache/stock-build-$bkey"
t_prep=$(date +%s)
if [ ! -f "$build/.prepared" ]; then
	log "modules_prepare of linux-source-7.3 $ver with Debian's config into $build"
	rm -rf "$build" && mkdir -p "$build"
	cp "$config" "$build/.config"
	in_root "$src" "$build" "" "${mk[@]}" olddefconfig >/dev/null
	# The toolchain olddefconfig found must be the one Debian's config records (version texts
	# and numbers of the compiler, assembler, linker, rustc, bindgen, pahole). Debian strips a
	# few lines from the config it ships (BUILD_SALT, the signing key's) that olddefconfig
	# restores with their defaults; those do not change what a module is built against.
	tc='^CONFIG_[A-Z_]*(VERSION|_TEXT|_IS_[A-Z]*)[A-Z_]*='
	if ! diff <(grep -E "$tc" "$config") <(grep -E "$tc" "$build/.config") >&2; then
		die "olddefconfig found another toolchain than Debian's config records"
	fi
	log "olddefconfig: toolchain as recorded; $(diff <(grep -v '^#' "$config" | grep .) \
		<(grep -v '^#' "$build/.config" | grep .) | grep -c '^[<>]' || true) other config lines differ" \
		"(Debian strips BUILD_SALT and the signing key's lines; OPENSSL_SUPPORTS_ML_DSA probes openssl)"
	in_root "$src" "$build" "" "${mk[@]}" -j"$(($(nproc) + 1))" modules_prepare \
		>"$build/prepare.log" 2>&1 || { tail -n 30 "$build/prepare.log" >&2; die "modules_prepare failed"; }
	cp "$symvers" "$build/Module.symvers"
	[ "$(cat "$build/include/config/kernel.release")" = "$rel" ] || die "kernel.release is not $rel"
	touch "$build/.prepared"
	log "Rust prepared (modules_prepare) in $(secs "$t_prep") s"
else
	log "Rust prepared (modules_prepare): cached ($(basename "$build"))"
fi

# 4. The module, from a copy of the checkout's sources (the checkout's own build products are
# the test kernel's; Kbuild writes beside the sources).
t_mod=$(date +%s)
mod="$out/stock/mod"
mkdir -p "$mod"
(cd "$top" && git ls-files -co --exclude-standard -- Kbuild Kconfig Makefile '*.rs' 'ffi/*' |
	grep -v '^tests/\|^bench/\|^kernel/' |
	rsync -a --files-from=- ./ "$mod/")
in_root "$src" "$build" "$mod" "${mk[@]}" -j"$(($(nproc) + 1))" M=/mod modules \
	>"$out/stock/module.log" 2>&1 || { cat "$out/stock/module.log" >&2; die "module build failed"; }
cp "$mod/vfio_pci_rs.ko" "$out/stock/vfio_pci_rs.ko"
vermagic=$(modinfo -F vermagic "$out/stock/vfio_pci_rs.ko")
want=$(modinfo -F vermagic "$(find "$pkg/root/usr/lib/modules/$rel" -name 'vfio-pci.ko*' | head -n1)")
[ "$vermagic" = "$want" ] || die "vermagic '$vermagic' is not the stock modules' '$want'"
log "module built in $(secs "$t_mod") s: $out/stock/vfio_pci_rs.ko (vermagic $vermagic)"
grep -E 'warning' "$out/stock/module.log" >&2 || true
# For scripts/stock-guest.sh: where Debian's unpacked kernel is.
printf 'rel=%s\nver=%s\npkg=%s\nbuild=%s\nroot=%s\n' "$rel" "$ver" "$pkg/root" "$build" "$root" >"$out/stock/env"

# 5. The package a Debian host running that kernel installs: the module under
# /usr/lib/modules/<release>/updates (merged /usr: /lib/modules is the same directory), depmod
# in postinst and postrm, signing for Secure Boot in README.Debian. Then installed into the build
# root with dpkg (after Debian's linux-modules of that kernel, which it depends on): kmod's
# modinfo and modprobe there must resolve the installed module and its dependencies; removed.
t_deb=$(date +%s)
name="vfio-pci-rs-modules-$rel"
if git -C "$top" rev-parse -q HEAD >/dev/null 2>&1; then
	pver="0~git$(git -C "$top" log -1 --format=%cd --date=format:%Y%m%d).$(git -C "$top" rev-parse --short=7 HEAD)"
	git -C "$top" diff --quiet HEAD -- Kbuild '*.rs' ffi || pver+="+dirty"
else
	pver="0~local"
fi
stage="$out/stock/deb"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/lib/modules/$rel/updates" "$stage/usr/share/doc/$name"
strip --strip-debug -o "$stage/usr/lib/modules/$rel/updates/vfio_pci_rs.ko" "$out/stock/vfio_pci_rs.ko"
cat >"$stage/DEBIAN/control" <<CTL
Package: $name
Version: $pver
Architecture: amd64
Maintainer: vfio_pci_rs developers <vfio-pci-rs@localhost>
Depends: kmod, linux-modules-$rel (= $ver)
Section: kernel
Priority: optional
Installed-Size: $(du -sk "$stage/usr" | cut -f1)
Description: vfio_pci_rs, a VFIO PCI driver in Rust, for Linux $rel
 The vfio_pci_rs module built for Debian's $rel kernel ($ver) with that
 kernel's own compilers ($rustc_text; $cc_text).
 Load it with \`modprobe vfio_pci_rs\`, bind devices through driver_override.
 Unsigned: see /usr/share/doc/$name/README.Debian for Secure Boot.
CTL
for script in postinst postrm; do
	cat >"$stage/DEBIAN/$script" <<SCRIPT
#!/bin/sh
set -e
# Tell kmod about the module (installed) or its absence (removed). Whatever the action (and
# busybox's dpkg passes none): depmod only rereads what is installed.
if [ -d /lib/modules/$rel ] && command -v depmod >/dev/null; then depmod $rel; fi
exit 0
SCRIPT
	chmod 755 "$stage/DEBIAN/$script"
done
cat >"$stage/usr/share/doc/$name/README.Debian" <<DOC
vfio_pci_rs for Debian's $rel kernel
=====================================

Installed: /usr/lib/modules/$rel/updates/vfio_pci_rs.ko (depmod was run).

  modprobe vfio_pci_rs                      # pulls in vfio and vfio_iommu_type1 (softdep)
  echo vfio_pci_rs > /sys/bus/pci/devices/BDF/driver_override
  echo BDF > /sys/bus/pci/drivers/vfio_pci_rs/bind

The module is not signed. Without Secure Boot it loads and taints the kernel
(O: out-of-tree, E: unsigned). Under Secure Boot the kernel is locked down and
refuses unsigned modules: sign it with a Machine Owner Key (MOK) you enrol.

  # once: a key, enrolled through shim's MokManager at the next boot
  openssl req -new -x509 -newkey rsa:2048 -nodes -days 36500 -subj "/CN=my module key/" \\
      -outform DER -keyout /root/mok.key -out /root/mok.der
  mokutil --import /root/mok.der
  # after every install of this package (needs linux-headers-$rel)
  /usr/src/linux-headers-$rel/scripts/sign-file sha256 /root/mok.key /root/mok.der \\
      /usr/lib/modules/$rel/updates/vfio_pci_rs.ko
  modinfo -F signer vfio_pci_rs             # your key's CN
DOC
printf 'vfio_pci_rs: GPL-2.0\n' >"$stage/usr/share/doc/$name/copyright"
deb="$out/stock/${name}_${pver}_amd64.deb"
rm -f "$out/stock/"*.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
cp "$deb" "$out/stock/vfio-pci-rs.deb"

if [ ! -f "$root/.linux-modules-$ver" ]; then
	cp "$pkg"/debs/linux-base-*.deb "$pkg"/debs/linux-modules-*.deb "$root/tmp/"
	chroot "$root" sh -c 'dpkg -i /tmp/linux-base-*.deb /tmp/linux-modules-*.deb && rm /tmp/linux-*.deb' \
		>"$out/stock/root-dpkg.log" 2>&1 || { cat "$out/stock/root-dpkg.log" >&2; die "Debian's linux-modules-$rel does not install in the build root"; }
	touch "$root/.linux-modules-$ver"
fi
cp "$deb" "$root/tmp/vpr.deb"
chroot "$root" dpkg -i /tmp/vpr.deb >"$out/stock/root-dpkg.log" 2>&1 ||
	{ cat "$out/stock/root-dpkg.log" >&2; die "the package does not install in the build root"; }
found=$(chroot "$root" modinfo -k "$rel" -F filename vfio_pci_rs)
deps=$(chroot "$root" modprobe -S "$rel" --show-depends vfio_pci_rs | sed 's|.*/||' | awk '!seen[$0]++' | tr '\n' ' ')
chroot "$root" dpkg -r "$name" >>"$out/stock/root-dpkg.log" 2>&1 || die "the package does not remove"
gone=$(chroot "$root" modinfo -k "$rel" -F filename vfio_pci_rs 2>/dev/null || true)
rm -f "$root/tmp/vpr.deb"
case "$found" in */lib/modules/$rel/updates/vfio_pci_rs.ko) ;; *) die "installed, kmod finds '$found'" ;; esac
case "$deps" in *vfio.ko*vfio_iommu_type1.ko*vfio_pci_rs.ko*) ;; *) die "modprobe would load: $deps" ;; esac
[ -z "$gone" ] || die "removed, kmod still finds $gone"
log "package $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $(secs "$t_deb") s; in the build root:" \
	"dpkg -i, kmod finds $found, modprobe loads: $deps; dpkg -r, gone"
echo "$build"
