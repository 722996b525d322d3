# SPDX-License-Identifier: GPL-2.0
#
# vfio_pci_rs. Two commands do everything on a fresh machine:
#   make run    boot the test guest, bind the emulated devices to vfio_pci_rs, show them working
#   make test   every test: host unit tests and fuzzing, lints, and the differential guest suite
# Building the module alone against your own Rust-enabled 7.3 build tree:
#   make module KDIR=/path/to/linux-build
#   make install KDIR=/path/to/linux-build INSTALL_MOD_PATH=/staging

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

.PHONY: all setup kernel module install client host-test lint initramfs run test bench stress clean

all: module

setup:
	@bash scripts/setup.sh

# The cached kernel build tree (built on first use, outside the checkout).
kernel: setup
	@mkdir -p $(OUT) && bash scripts/kernel.sh > $(OUT)/kdir

KDIR ?= $(shell cat $(OUT)/kdir 2>/dev/null)

module:
	@if [ -z "$(KDIR)" ]; then $(MAKE) -s kernel; fi
	@$(MAKE) -C "$${KDIR:-$$(cat $(OUT)/kdir)}" M=$(TOP) LLVM=-19 modules

# Installs vfio_pci_rs.ko under $(INSTALL_MOD_PATH)/lib/modules/<release>/updates and runs
# depmod there, so `modprobe vfio_pci_rs` finds it (INSTALL_MOD_PATH empty: this machine).
install: module
	@$(MAKE) -s -C "$${KDIR:-$$(cat $(OUT)/kdir)}" M=$(TOP) LLVM=-19 INSTALL_MOD_DIR=updates modules_install

client:
	@cd tests/client && RUSTFLAGS="-C target-feature=+crt-static" \
		cargo build -q --release --target x86_64-unknown-linux-gnu

host-test:
	@bash scripts/host-tests.sh $(OUT)

lint: kernel
	@bash scripts/lint.sh $(OUT) "$$(cat $(OUT)/kdir)"

initramfs: kernel module client
	@bash scripts/initramfs.sh "$$(cat $(OUT)/kdir)" $(OUT)

run: initramfs
	@bash scripts/guest.sh run "$$(cat $(OUT)/kdir)" $(OUT)

test: setup
	@bash scripts/test.sh $(OUT)

bench: setup
	@bash scripts/bench.sh $(OUT)

# Reliability: debug kernel (KASAN, lockdep, DEBUG_VM), differential fuzz, races, hot-unplug.
stress: setup
	@bash scripts/stress.sh $(OUT)

clean:
	@rm -rf $(OUT)
	@$(MAKE) -s -C "$$(cat $(OUT)/kdir 2>/dev/null || echo /nonexistent)" M=$(TOP) clean 2>/dev/null || true

endif
