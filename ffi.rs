// SPDX-License-Identifier: GPL-2.0

//! The unsafe boundary of vfio_pci_rs.
//!
//! Every raw C call of the driver lives under this module, each wrapped once in a small safe
//! function or type. Nothing outside `ffi` writes `unsafe`. The C side of the boundary is
//! `ffi/shim.c`: the static tables (pci_driver, vfio_device_ops, vm_operations_struct) and
//! one-line wrappers for C static inlines and macros.

pub(crate) mod devset;
pub(crate) mod eventfd;
pub(crate) mod io;
pub(crate) mod irq;
pub(crate) mod lock;
pub(crate) mod mm;
pub(crate) mod param;
pub(crate) mod pci;
pub(crate) mod rwsem;
pub(crate) mod sys;
pub(crate) mod user;
pub(crate) mod vfio;

// SAFETY: `ConfigSpace` holds only integers, bools and arrays of them; all-zero bytes are its
// documented empty value.
unsafe impl pin_init::Zeroable for crate::config_space::ConfigSpace {}
