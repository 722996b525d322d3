// SPDX-License-Identifier: GPL-2.0

//! PCI operations the 7.3 Rust PCI abstraction does not offer outside probe: enable/disable,
//! resets, state save/restore, INTx masking, user config accessors and resource facts.

use core::ptr::NonNull;
use kernel::{
    bindings,
    error::to_result,
    pci,
    prelude::*, //
};

use super::sys;

/// Returns the C `struct pci_dev` behind `pdev`.
pub(crate) fn raw(pdev: &pci::Device) -> *mut bindings::pci_dev {
    // CAST: `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>`, and
    // `Opaque<T>` is `#[repr(transparent)]` over `T`.
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// `IORESOURCE_*` flags of a resource (BAR 0-5 or the ROM, 6).
pub(crate) fn resource_flags(pdev: &pci::Device, bar: u32) -> u64 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `bar` indexes its resource array (at most 6).
    let flags = unsafe { sys::vpr_resource_flags(raw(pdev), bar.min(6) as i32) };
    // CAST: `unsigned long` is 64 bits on every architecture this driver builds for.
    flags as u64
}

/// Start of resource `bar` (0 when unassigned).
pub(crate) fn resource_start(pdev: &pci::Device, bar: u32) -> u64 {
    pdev.resource_start(bar).unwrap_or(0)
}

/// Length of resource `bar` (0 when absent).
pub(crate) fn resource_len(pdev: &pci::Device, bar: u32) -> u64 {
    pdev.resource_len(bar).unwrap_or(0)
}

/// The header type (0 for endpoints, 1 for bridges, ...).
pub(crate) fn hdr_type(pdev: &pci::Device) -> u8 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_hdr_type(raw(pdev)) }
}

/// Whether the platform forbids mapping this device's BARs to user space.
pub(crate) fn non_mappable_bars(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_non_mappable_bars(raw(pdev)) }
}

/// Size of the config space: 256, or 4096 for PCIe/PCI-X 2.0 devices.
pub(crate) fn cfg_size(pdev: &pci::Device) -> u16 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_cfg_size(raw(pdev)) }
}

/// Offset of the MSI-X capability, 0 when there is none.
pub(crate) fn msix_cap(pdev: &pci::Device) -> u8 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_msix_cap(raw(pdev)) }
}

/// Whether the device implements PCI 2.3 INTx masking.
pub(crate) fn intx_mask_supported(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_intx_mask_supported(raw(pdev)) }
}

/// Whether a function reset can be expected to work on this device; the PCI core decides.
pub(crate) fn enable_device(pdev: &pci::Device) -> Result {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    to_result(unsafe { bindings::pci_enable_device(raw(pdev)) })
}

/// Disables the device (undoes [`enable_device`]).
pub(crate) fn disable_device(pdev: &pci::Device) {
    // SAFETY: `raw(pdev)` is a valid, enabled `pci_dev`.
    unsafe { bindings::pci_disable_device(raw(pdev)) }
}

/// Clears COMMAND.MASTER so the device stops DMA.
pub(crate) fn clear_master(pdev: &pci::Device) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_clear_master(raw(pdev)) }
}

/// Function reset that gives up (`EAGAIN`) rather than wait for the device lock.
pub(crate) fn try_reset_function(pdev: &pci::Device) -> Result {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    to_result(unsafe { bindings::pci_try_reset_function(raw(pdev)) })
}

/// Saves the config state into the `pci_dev`.
pub(crate) fn save_state(pdev: &pci::Device) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_save_state(raw(pdev)) };
}

/// Restores the config state saved in the `pci_dev`.
pub(crate) fn restore_state(pdev: &pci::Device) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_restore_state(raw(pdev)) }
}

/// A copy of a device's saved config state, owned by the driver.
///
/// # Invariants
///
/// `0` came from `pci_store_saved_state` and is freed exactly once.
pub(crate) struct SavedState(NonNull<bindings::pci_saved_state>);

// SAFETY: the saved state is plain heap memory, not tied to a thread.
unsafe impl Send for SavedState {}
// SAFETY: no method takes `&self` and touches the memory.
unsafe impl Sync for SavedState {}

impl SavedState {
    /// Copies the state saved in the `pci_dev` (see [`save_state`]).
    pub(crate) fn store(pdev: &pci::Device) -> Option<Self> {
        // SAFETY: `raw(pdev)` is a valid `pci_dev`.
        // INVARIANT: a non-NULL result is a fresh allocation owned by us.
        NonNull::new(unsafe { bindings::pci_store_saved_state(raw(pdev)) }).map(Self)
    }

    /// Loads this state into the `pci_dev` (for a later [`restore_state`]) and frees it.
    pub(crate) fn load_and_free(self, pdev: &pci::Device) -> Result {
        let mut ptr = self.0.as_ptr();
        core::mem::forget(self);
        // SAFETY: `ptr` is our allocation; the call loads it and frees it, setting `ptr` to NULL.
        to_result(unsafe { bindings::pci_load_and_free_saved_state(raw(pdev), &mut ptr) })
    }
}

impl Drop for SavedState {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own the allocation.
        unsafe { bindings::kfree(self.0.as_ptr().cast()) };
    }
}

/// The reset attempted at last close: take the device lock (and the upstream bridge's) with
/// trylock, never waiting, and reset with the config state already restored by the caller.
/// Returns whether a reset happened.
pub(crate) fn try_locked_reset(pdev: &pci::Device) -> bool {
    let dev = raw(pdev);
    // SAFETY: `dev` is a valid `pci_dev`; every lock taken here is released before return.
    unsafe {
        let bridge = sys::vpr_upstream_bridge(dev);
        if !bridge.is_null() && bindings::pci_dev_trylock(bridge) == 0 {
            return false;
        }
        let mut reset = false;
        if bindings::pci_dev_trylock(dev) != 0 {
            reset = bindings::__pci_reset_function_locked(dev) == 0;
            bindings::pci_dev_unlock(dev);
        }
        if !bridge.is_null() {
            bindings::pci_dev_unlock(bridge);
        }
        reset
    }
}

/// Sets or clears COMMAND.INTX_DISABLE (`enable` false masks INTx).
pub(crate) fn intx(pdev: &pci::Device, enable: bool) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_intx(raw(pdev), i32::from(enable)) }
}

/// Kernel-side config read of a 16-bit register (not blocked by user-access locks).
pub(crate) fn read_config_word(pdev: &pci::Device, offset: u16) -> u16 {
    let mut val = 0u16;
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `val` is a valid out pointer.
    unsafe { bindings::pci_read_config_word(raw(pdev), i32::from(offset), &mut val) };
    val
}

/// Kernel-side config read of a 32-bit register.
pub(crate) fn read_config_dword(pdev: &pci::Device, offset: u16) -> u32 {
    let mut val = 0u32;
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `val` is a valid out pointer.
    unsafe { bindings::pci_read_config_dword(raw(pdev), i32::from(offset), &mut val) };
    val
}

/// Kernel-side config write of a 16-bit register.
pub(crate) fn write_config_word(pdev: &pci::Device, offset: u16, val: u16) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_write_config_word(raw(pdev), i32::from(offset), val) };
}

/// Config read on behalf of user space: waits while a reset blocks config access.
#[inline]
pub(crate) fn user_read_config(pdev: &pci::Device, offset: u16, width: usize) -> Result<u32> {
    let dev = raw(pdev);
    let off = i32::from(offset);
    // SAFETY: `dev` is a valid `pci_dev`; each out pointer is a valid local.
    let ret = unsafe {
        match width {
            1 => {
                let mut v = 0u8;
                let r = bindings::pci_user_read_config_byte(dev, off, &mut v);
                (r, u32::from(v))
            }
            2 => {
                let mut v = 0u16;
                let r = bindings::pci_user_read_config_word(dev, off, &mut v);
                (r, u32::from(v))
            }
            _ => {
                let mut v = 0u32;
                let r = bindings::pci_user_read_config_dword(dev, off, &mut v);
                (r, v)
            }
        }
    };
    pcibios_result(ret.0).map(|()| ret.1)
}

/// Config write on behalf of user space.
#[inline]
pub(crate) fn user_write_config(pdev: &pci::Device, offset: u16, width: usize, val: u32) -> Result {
    let dev = raw(pdev);
    let off = i32::from(offset);
    // SAFETY: `dev` is a valid `pci_dev`.
    let ret = unsafe {
        match width {
            1 => bindings::pci_user_write_config_byte(dev, off, val as u8),
            2 => bindings::pci_user_write_config_word(dev, off, val as u16),
            _ => bindings::pci_user_write_config_dword(dev, off, val),
        }
    };
    pcibios_result(ret)
}

/// Config accessors return PCIBIOS codes or negative errnos; map them as
/// `pcibios_err_to_errno`.
#[inline]
fn pcibios_result(ret: i32) -> Result {
    if ret == 0 {
        return Ok(());
    }
    pcibios_error(ret)
}

/// The error of a non-zero [`pcibios_result`] (out of line: the success path is the hot one).
#[cold]
fn pcibios_error(ret: i32) -> Result {
    match ret {
        r if r < 0 => Err(Error::from_errno(r)),
        0x81 => Err(ENOENT), // FUNC_NOT_SUPPORTED
        0x83 => Err(ENOTTY), // BAD_VENDOR_ID
        0x86 => Err(ENODEV), // DEVICE_NOT_FOUND
        0x87 => Err(EFAULT), // BAD_REGISTER_NUMBER
        0x88 => Err(EIO),    // SET_FAILED
        0x89 => Err(ENOSPC), // BUFFER_TOO_SMALL
        _ => Err(ERANGE),
    }
}

/// Claims BAR `bar` for the driver (`pci_request_selected_regions`).
pub(crate) fn request_region(pdev: &pci::Device, bar: u32) -> Result {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; the name is a static C string.
    to_result(unsafe {
        bindings::pci_request_selected_regions(raw(pdev), 1 << bar, c"vfio".as_char_ptr())
    })
}

/// Releases a BAR claimed with [`request_region`].
pub(crate) fn release_region(pdev: &pci::Device, bar: u32) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev` whose BAR `bar` we claimed.
    unsafe { bindings::pci_release_selected_regions(raw(pdev), 1 << bar) }
}

/// A dummy resource that reserves the rest of the page behind a page-aligned sub-page BAR, so
/// no hot-added device can be placed (and exposed through our mapping) in that page.
///
/// # Invariants
///
/// `0` was returned by `vpr_reserve_subpage` and is released exactly once.
pub(crate) struct SubpageReservation(NonNull<bindings::resource>);

// SAFETY: the reservation is a heap object released under the resource tree's own lock.
unsafe impl Send for SubpageReservation {}
// SAFETY: no `&self` method exists.
unsafe impl Sync for SubpageReservation {}

impl SubpageReservation {
    /// Reserves the rest of BAR `bar`'s page; `None` if another resource already sits there.
    pub(crate) fn new(pdev: &pci::Device, bar: u32) -> Option<Self> {
        // SAFETY: `raw(pdev)` is a valid `pci_dev` and `bar` < 6.
        // INVARIANT: a non-NULL result is a live reservation we own.
        NonNull::new(unsafe { sys::vpr_reserve_subpage(raw(pdev), bar as i32) }).map(Self)
    }
}

impl Drop for SubpageReservation {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own the live reservation.
        unsafe { sys::vpr_release_subpage(self.0.as_ptr()) }
    }
}

/// Sets the power state (`0` = D0 ... `3` = D3hot).
pub(crate) fn set_power_state(pdev: &pci::Device, state: i32) -> Result {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    to_result(unsafe { bindings::pci_set_power_state(raw(pdev), state) })
}

/// The current power state as the PCI core knows it (`0` = D0 ... `4` = D3cold).
pub(crate) fn current_state(pdev: &pci::Device) -> i32 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `current_state` is a plain field.
    unsafe { (*raw(pdev)).current_state }
}

/// Reads the PCIe DEVCAP2 register of the physical function (0 if not PCIe).
pub(crate) fn pcie_devcap2(pdev: &pci::Device) -> u32 {
    let mut val = 0u32;
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `val` is a valid out pointer.
    unsafe {
        bindings::pcie_capability_read_dword(
            sys::vpr_physfn(raw(pdev)),
            bindings::PCI_EXP_DEVCAP2 as i32,
            &mut val,
        )
    };
    val
}

/// Enables the AtomicOp requester path to the root port for `cap_mask`; true on success.
pub(crate) fn enable_atomic_ops_to_root(pdev: &pci::Device, cap_mask: u32) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_enable_atomic_ops_to_root(sys::vpr_physfn(raw(pdev)), cap_mask) == 0 }
}

/// Size of the ROM region: the ROM BAR's size, the shadow ROM's rounded up to a power of two,
/// or 0 when the device has no ROM.
pub(crate) fn rom_region_len(pdev: &pci::Device) -> u64 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_rom_region_len(raw(pdev)) }
}

/// Offset of the MSI capability, 0 when there is none.
pub(crate) fn msi_cap(pdev: &pci::Device) -> u8 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_msi_cap(raw(pdev)) }
}

/// Whether MSI-X vectors can be allocated while MSI-X is enabled (dynamic MSI-X).
pub(crate) fn msix_can_alloc_dyn(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_msix_can_alloc_dyn(raw(pdev)) }
}

/// Whether the device has a usable legacy interrupt line (INTx can be offered).
pub(crate) fn has_intx_line(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_has_intx_line(raw(pdev)) }
}

/// Whether this is an SR-IOV virtual function.
pub(crate) fn is_virtfn(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_is_virtfn(raw(pdev)) }
}

/// The device's PCI name, `DDDD:BB:DD.F` (`pci_name`).
pub(crate) fn name(pdev: &pci::Device) -> &CStr {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; its name is a NUL-terminated string owned by
    // the device, which outlives the borrow of `pdev`.
    unsafe { CStr::from_char_ptr(sys::vpr_pci_name(raw(pdev))) }
}

/// Whether this is an SR-IOV physical function (has an SR-IOV capability the kernel set up).
pub(crate) fn is_physfn(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_is_physfn(raw(pdev)) }
}

/// The device's Max_Payload_Size in bytes.
pub(crate) fn pcie_get_mps(pdev: &pci::Device) -> u32 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    let mps = unsafe { bindings::pcie_get_mps(raw(pdev)) };
    u32::try_from(mps).unwrap_or(0)
}

/// Sets the Max_Read_Request_Size (the PCI core applies its own policy; result ignored as
/// upstream does).
pub(crate) fn pcie_set_readrq(pdev: &pci::Device, bytes: u32) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pcie_set_readrq(raw(pdev), i32::try_from(bytes).unwrap_or(i32::MAX)) };
}

/// Reads 4 bytes of VPD at `addr`.
pub(crate) fn read_vpd(pdev: &pci::Device, addr: u16) -> Result<u32> {
    let mut data = [0u8; 4];
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `data` is a valid 4-byte buffer.
    let ret =
        unsafe { bindings::pci_read_vpd(raw(pdev), i64::from(addr), 4, data.as_mut_ptr().cast()) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(u32::from_le_bytes(data))
}

/// Writes 4 bytes of VPD at `addr`; returns the bytes written.
pub(crate) fn write_vpd(pdev: &pci::Device, addr: u16, val: u32) -> Result<usize> {
    let data = val.to_le_bytes();
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `data` is a valid 4-byte buffer.
    let ret =
        unsafe { bindings::pci_write_vpd(raw(pdev), i64::from(addr), 4, data.as_ptr().cast()) };
    if ret < 0 {
        return Err(Error::from_errno(ret as i32));
    }
    Ok(ret as usize)
}

/// `pdev->pcie_flags_reg`: the PCIe capability's flags (0 if not PCIe).
pub(crate) fn pcie_flags(pdev: &pci::Device) -> u16 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_pcie_flags(raw(pdev)) }
}

/// `pdev->no_command_memory`: memory decode is not controlled by COMMAND (VFs).
pub(crate) fn no_command_memory(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_no_command_memory(raw(pdev)) }
}

/// Length of the platform's shadow copy of the ROM, 0 when there is none.
pub(crate) fn shadow_rom_len(pdev: &pci::Device) -> u64 {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { sys::vpr_shadow_rom_len(raw(pdev)) }
}

/// Whether PMCSR says No_Soft_Reset (the device keeps its state across D3hot->D0); `None`
/// without a PM capability.
pub(crate) fn pm_no_soft_reset(pdev: &pci::Device) -> Option<bool> {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    let pm = unsafe { sys::vpr_pm_cap(raw(pdev)) };
    if pm == 0 {
        return None;
    }
    Some(read_config_word(pdev, u16::from(pm) + 4) & 0x0008 != 0)
}
