# SPDX-License-Identifier: GPL-2.0
#
# vfio_pci_rs. Two commands do everything on a fresh machine:
#   make run    boot the test guest, bind the emulated devices to vfio_pci_rs, show them working
#   make test   every test: host unit tests and fuzzing, lints, in-tree build, the guest suite
#   make vm     an interactive shell in the test guest, module loaded (exit: poweroff -f)
# Building the module alone against your own Rust-enabled 7.3 build tree:
#   make module KDIR=/path/to/linux-build
#   make install KDIR=/path/to/linux-build INSTALL_MOD_PATH=/staging
# For Debian's stock 7.3.4+deb13-amd64 kernel (build root, modules_prepare, module; cached):
#   make stock-module
# The drop-in for vfio-pci (module vfio_pci, driver "vfio-pci", installed under updates/ where
# depmod prefers it to the kernel's own; `make uninstall DROPIN=1` takes it back):
#   make install DROPIN=1 KDIR=/lib/modules/$(uname -r)/build

ifneq ($(KERNELRELEASE),)
# Invoked by Kbuild: the real rules are in Kbuild.
include $(src)/Kbuild
else

SHELL := /bin/bash
TOP := $(CURDIR)
OUT ?= $(TOP)/out
export PATH := $(HOME)/.cargo/bin:$(PATH)
export RUST_LIB_SRC ?= /usr/lib/rustlib/src/rust/library
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib

.PHONY: all setup kernel module stock-module stock-test install uninstall client host-test lint intree initramfs initramfs-dropin run vm test bench stress passthrough clean

all: module

setup:
	@bash scripts/setup.sh

# The cached kernel build tree (built on first use, outside the checkout).
kernel: setup
	@mkdir -p $(OUT) && bash scripts/kernel.sh > $(OUT)/kdir

KDIR ?= $(shell cat $(OUT)/kdir 2>/dev/null)
# The test kernel is built with clang/lld 19; for a tree built with GCC (as distribution
# kernels are) pass LLVM= (empty), so the C shim is compiled like the rest of that tree.
LLVM ?= -19

# DROPIN=1: the drop-in build (Kbuild: module vfio_pci in vfio-pci.ko, PCI driver "vfio-pci"),
# made from a copy of the module's sources in $(OUT)/dropin, so that vfio_pci_rs.ko (built in
# the checkout) and vfio-pci.ko exist side by side; Kbuild's own separate output (MO=) refuses
# a source directory that holds another build. It is installed under updates/, which depmod's
# default search order puts before the kernel's own modules (kernel/drivers/vfio/pci/vfio-pci.ko).
DROPIN ?=
ifeq ($(DROPIN),1)
MODDIR := $(OUT)/dropin
MODFLAGS := VPR_DROPIN=1
MODFILE := vfio-pci.ko
INSTALL_DIR := updates
else
MODDIR := $(TOP)
MODFLAGS :=
MODFILE := vfio_pci_rs.ko
INSTALL_DIR := extra
endif

module:
	@if [ -z "$(KDIR)" ]; then $(MAKE) -s kernel; fi
	@if [ "$(DROPIN)" = 1 ]; then bash scripts/dropin.sh src "$(MODDIR)"; fi
	@$(MAKE) -C "$${KDIR:-$$(cat $(OUT)/kdir)}" M=$(MODDIR) $(MODFLAGS) LLVM=$(LLVM) modules

# vfio_pci_rs for Debian's own kernel (linux-image-7.3.4+deb13-amd64): a build root with the exact
# compilers its config names, linux-source-7.3 with Debian's config through modules_prepare
# (both cached outside the checkout), the module in $(OUT)/stock/vfio_pci_rs.ko.
stock-module: setup
	@mkdir -p $(OUT) && bash scripts/stock.sh $(OUT) > $(OUT)/stock-kdir

# Installs the module ($(MODFILE)) under $(INSTALL_MOD_PATH)/lib/modules/<release>/$(INSTALL_DIR)
# (extra/ for vfio_pci_rs, where out-of-tree modules go; updates/ for the drop-in) and runs depmod
# there, so `modprobe vfio_pci_rs` (or `modprobe vfio-pci`) finds it (INSTALL_MOD_PATH empty: the
# running system, which needs KDIR to be its own kernel's build).
install: module
	@if [ -z "$(INSTALL_MOD_PATH)" ] && [ "$(origin KDIR)" = file ]; then \
		echo "install: the running system needs its own kernel's tree:" \
			"make install$(if $(DROPIN), DROPIN=$(DROPIN)) KDIR=/lib/modules/\$$(uname -r)/build (or INSTALL_MOD_PATH=<staging dir>)" >&2; \
		exit 1; fi
	@$(MAKE) -s -C "$${KDIR:-$$(cat $(OUT)/kdir)}" M=$(MODDIR) $(MODFLAGS) LLVM=$(LLVM) \
		INSTALL_MOD_DIR=$(INSTALL_DIR) modules_install
	@if [ "$(DROPIN)" = 1 ]; then bash scripts/dropin.sh check "$${KDIR:-$$(cat $(OUT)/kdir)}" "$(INSTALL_MOD_PATH)"; fi

# Removes what `make install` put there and runs depmod again: with DROPIN=1, `modprobe vfio-pci`
# then loads the kernel's own vfio-pci again (a drop-in already loaded stays until rmmod vfio_pci).
uninstall:
	@if [ -z "$(INSTALL_MOD_PATH)" ] && [ "$(origin KDIR)" = file ]; then \
		echo "uninstall: the running system needs its own kernel's tree:" \
			"make uninstall$(if $(DROPIN), DROPIN=$(DROPIN)) KDIR=/lib/modules/\$$(uname -r)/build (or INSTALL_MOD_PATH=<staging dir>)" >&2; \
		exit 1; fi
	@k="$${KDIR:-$$(cat $(OUT)/kdir)}"; rel=$$(cat "$$k/include/config/kernel.release") && \
		dir="$(INSTALL_MOD_PATH)/lib/modules/$$rel/$(INSTALL_DIR)" && \
		rm -fv "$$dir/$(MODFILE)" "$$dir/$(MODFILE)".{gz,xz,zst} && \
		depmod $(if $(INSTALL_MOD_PATH),-b "$(INSTALL_MOD_PATH)") "$$rel" && \
		echo "uninstall: $(MODFILE) removed from $$dir, depmod run for $$rel"

client:
	@cd tests/client && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build -q --release --target x86_64-unknown-linux-gnu

host-test:
	@bash scripts/host-tests.sh $(OUT)

lint: kernel
	@bash scripts/lint.sh $(OUT) "$$(cat $(OUT)/kdir)"

# Builds the module in-tree (drivers/vfio/pci/vfio_pci_rs, CONFIG_VFIO_PCI_RS=m) against an
# overlay of the cached kernel tree, leaving the cache untouched.
intree: kernel
	@bash scripts/intree.sh "$$(cat $(OUT)/kdir)" $(OUT)

initramfs: kernel module client
	@bash scripts/initramfs.sh "$$(cat $(OUT)/kdir)" $(OUT)

# The drop-in and run modes' initramfs: the test one plus the drop-in vfio-pci under updates/.
initramfs-dropin: kernel module client
	@bash scripts/initramfs.sh "$$(cat $(OUT)/kdir)" $(OUT) dropin

# One screen: the guest's "run: " lines; the console (clients' KTAP lines, kernel log) is saved.
run: setup
	@mkdir -p $(OUT) && $(MAKE) -s initramfs-dropin >$(OUT)/initramfs-dropin.log 2>&1 || \
		{ cat $(OUT)/initramfs-dropin.log; exit 1; }
	@bash scripts/guest.sh run "$$(cat $(OUT)/kdir)" $(OUT) 2>&1 | \
		grep --line-buffered -E '^(run:|guest:)' | sed -u 's/^run: \{0,1\}//; s/\r$$//'
	@echo "full console (the clients' KTAP lines, the kernel log): $(OUT)/console-run.log"

# The serial line has no end of file: input from a pipe or file must end with `exit`, and
# without a terminal the guest is stopped after 10 minutes (VPR_GUEST_TIMEOUT overrides).
vm: initramfs
	@if [ -t 0 ]; then t=86400; else t=600; \
		echo "vm: stdin is not a terminal: end the input with 'exit' (stopped after $$t s)" >&2; fi; \
	VPR_GUEST_TIMEOUT=$${VPR_GUEST_TIMEOUT:-$$t} bash scripts/guest.sh vm "$$(cat $(OUT)/kdir)" $(OUT)

test: setup
	@bash scripts/test.sh $(OUT)

# The stock-kernel stage of `make test` alone: make stock-module, then Debian's kernel in the
# guest with both drivers, transcripts compared.
stock-test: setup client
	@VPR_TEST_ONLY=stock bash scripts/test.sh $(OUT)

bench: setup
	@bash scripts/bench.sh $(OUT)

# Reliability: debug kernel (KASAN, lockdep, DEBUG_VM), differential fuzz, races, hot-unplug.
stress: setup
	@bash scripts/stress.sh $(OUT)

# Device passthrough: QEMU in the test guest starts a second-level guest with nvme and igb
# passed through (legacy container and iommufd), under vfio_pci_rs and vfio-pci side by side.
passthrough: setup
	@bash scripts/passthrough.sh $(OUT)

clean:
	@rm -rf $(OUT)
	@$(MAKE) -s -C "$$(cat $(OUT)/kdir 2>/dev/null || echo /nonexistent)" M=$(TOP) clean 2>/dev/null || true

endif
