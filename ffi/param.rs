// SPDX-License-Identifier: GPL-2.0

//! The module parameters declared in `ffi/shim.c` (upstream vfio-pci's), and the PCI driver's
//! dynamic ids. Safe one-line wrappers; the meaning of each parameter is in `crate::params`.

use kernel::{
    error::to_result,
    prelude::*, //
};

use super::sys;

/// The `ids` string (at most 1023 bytes; empty when not given).
pub(crate) fn ids() -> &'static CStr {
    // SAFETY: `vpr_param_ids` returns a static, NUL-terminated buffer (its size includes the
    // terminator, which `module_param_string` always keeps). Written only while parameters are
    // parsed at load (perm 0: not writable through sysfs), before module init reads it.
    unsafe { CStr::from_char_ptr(sys::vpr_param_ids()) }
}

/// `nointxmask` (writable at runtime through sysfs).
pub(crate) fn nointxmask() -> bool {
    // SAFETY: reads a static bool (`READ_ONCE`).
    unsafe { sys::vpr_param_nointxmask() }
}

/// `disable_vga` (read-only).
pub(crate) fn disable_vga() -> bool {
    // SAFETY: reads a static bool.
    unsafe { sys::vpr_param_disable_vga() }
}

/// `disable_idle_d3` (writable at runtime through sysfs).
pub(crate) fn disable_idle_d3() -> bool {
    // SAFETY: reads a static bool (`READ_ONCE`).
    unsafe { sys::vpr_param_disable_idle_d3() }
}

/// `enable_sriov` (writable at runtime through sysfs).
pub(crate) fn enable_sriov() -> bool {
    // SAFETY: reads a static bool (`READ_ONCE`).
    unsafe { sys::vpr_param_enable_sriov() }
}

/// `disable_denylist` (read-only).
pub(crate) fn disable_denylist() -> bool {
    // SAFETY: reads a static bool.
    unsafe { sys::vpr_param_disable_denylist() }
}

/// Adds a dynamic id to the driver and probes the devices it matches (`pci_add_dynid`).
/// `ids[0..6]` are vendor, device, subvendor, subdevice, class and class mask.
pub(crate) fn add_dynid(ids: &[u32; 6]) -> Result {
    // SAFETY: the driver is registered (module init registers it first); the call allocates
    // and probes, which module init may do.
    to_result(unsafe { sys::vpr_add_dynid(ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]) })
}
