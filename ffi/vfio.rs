// SPDX-License-Identifier: GPL-2.0

//! The VFIO device: a `struct vfio_device` allocated by the VFIO core with the driver's state
//! placed right behind it, its registration, and the C entry points of `vfio_device_ops`.
//!
//! The container follows the `drm::Device` pattern: the VFIO core allocates and frees the memory
//! (`_vfio_alloc_device` / `kvfree`), `vfio_device` must sit at offset 0, and the Rust state is
//! initialised in place after allocation and dropped in the `release` callback.

use core::{
    ffi::{
        c_char,
        c_int,
        c_uint,
        c_ulong,
        c_void, //
    },
    mem::MaybeUninit,
};
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    pci,
    prelude::*,
    types::Opaque, //
};

use super::{
    mm,
    pci as rawpci,
    sys, //
};
use crate::device::VfioPciDevice;

/// The memory block the VFIO core allocates for each device.
///
/// # Invariants
///
/// `vdev` is at offset 0 (the VFIO core frees the block through it). `data` is initialised
/// exactly when `live` is true, from before registration until `release`.
#[repr(C)]
pub(crate) struct Device {
    vdev: Opaque<sys::vfio_device>,
    live: bool,
    debugfs: *mut bindings::dentry,
    data: MaybeUninit<VfioPciDevice>,
}

impl Device {
    /// Returns the device that contains `vdev`.
    ///
    /// # Safety
    ///
    /// `vdev` must be the `vfio_device` of a live [`Device`], valid for `'a`.
    pub(crate) unsafe fn from_vfio<'a>(vdev: *mut sys::vfio_device) -> &'a Self {
        // SAFETY: `vdev` is at offset 0 of a `#[repr(C)]` `Device` (type invariant).
        unsafe { &*vdev.cast::<Self>() }
    }

    /// The `struct vfio_device`.
    pub(crate) fn as_vfio(&self) -> *mut sys::vfio_device {
        self.vdev.get()
    }

    /// The driver's state.
    pub(crate) fn data(&self) -> &VfioPciDevice {
        // SAFETY: `Device`s are only reachable between initialisation and release, when `data`
        // is initialised (type invariant).
        unsafe { self.data.assume_init_ref() }
    }
}

/// A counted reference to a [`Device`]: keeps its memory and driver state alive (the VFIO core
/// releases a device only when the last reference to its `struct device` is gone).
///
/// # Invariants
///
/// `0` points to a live [`Device`] on which this value holds one `get_device` reference,
/// dropped exactly once, in `drop`.
pub(crate) struct DeviceRef(core::ptr::NonNull<Device>);

// SAFETY: the reference count is atomic and `Device`'s data is shared across threads by design
// (every op may run concurrently); the reference may be dropped from any process context.
unsafe impl Send for DeviceRef {}
// SAFETY: as above; `&DeviceRef` only hands out `&Device`.
unsafe impl Sync for DeviceRef {}

impl DeviceRef {
    /// Takes a new reference on `dev`.
    pub(crate) fn new(dev: &Device) -> Self {
        // SAFETY: `dev` is live, so is its embedded `struct device`.
        unsafe { bindings::get_device(core::ptr::addr_of_mut!((*dev.as_vfio()).device)) };
        // INVARIANT: we now own one reference on a live device.
        Self(core::ptr::NonNull::from(dev))
    }
}

impl core::ops::Deref for DeviceRef {
    type Target = Device;

    fn deref(&self) -> &Device {
        // SAFETY: the device is live while we hold our reference (type invariant); its driver
        // state stays initialised until `release`, which only runs after the last reference.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for DeviceRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant) and give it back once.
        unsafe { bindings::put_device(core::ptr::addr_of_mut!((*self.as_vfio()).device)) };
    }
}

/// Allocates, initialises and registers the VFIO device for `pdev`.
fn probe(pdev: &pci::Device) -> Result<*mut sys::vfio_device> {
    VfioPciDevice::check_probe(pdev)?;
    let dev: &kernel::device::Device = pdev.as_ref();
    // SAFETY: `dev` is a valid device; the size covers the whole container.
    let vdev = from_err_ptr(unsafe {
        sys::vpr_alloc_device(
            core::mem::size_of::<Device>(),
            core::ptr::from_ref(dev).cast_mut().cast(),
        )
    })?;
    let container = vdev.cast::<Device>();
    // SAFETY: `container` is a fresh, zeroed, pinned allocation of the right size; nothing else
    // sees it before registration.
    let init = unsafe {
        let slot = core::ptr::addr_of_mut!((*container).data).cast::<VfioPciDevice>();
        pin_init::raw_try_init(slot, VfioPciDevice::new(pdev))
    };
    if let Err(e) = init {
        // SAFETY: `vdev` is ours; `live` is false, so release does not drop `data`.
        unsafe { sys::vpr_put_device(vdev) };
        return Err(e);
    }
    // SAFETY: as above; `data` is now initialised.
    // INVARIANT: `live` is set right after `data` is initialised.
    unsafe { (*container).live = true };
    // SAFETY: `container` is live (just initialised) and not yet registered.
    if let Err(e) = super::devset::assign(unsafe { Device::from_vfio(vdev) }, pdev) {
        // SAFETY: `vdev` is ours and unregistered; release drops `data`.
        unsafe { sys::vpr_put_device(vdev) };
        return Err(e);
    }
    // SAFETY: `vdev` is a fully initialised vfio device.
    let ret = unsafe { sys::vfio_register_group_dev(vdev) };
    if ret != 0 {
        // SAFETY: registration failed; drop our reference (release drops `data`).
        unsafe { sys::vpr_put_device(vdev) };
        return Err(Error::from_errno(ret));
    }
    // SAFETY: `container` is registered and live; its debugfs files go before it is released.
    unsafe { (*container).debugfs = sys::vpr_debugfs_add(rawpci::raw(pdev), vdev) };
    // SAFETY: `container` is registered and live.
    unsafe { Device::from_vfio(vdev) }.data().probed();
    Ok(vdev)
}

/// PCI probe entry point (called from the C `pci_driver`).
///
/// # Safety
///
/// Called by the PCI core with a valid `pdev` being probed.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_probe(pdev: *mut bindings::pci_dev) -> *mut sys::vfio_device {
    // SAFETY: `pci::Device` is a transparent wrapper of `pci_dev`; `pdev` is valid during probe.
    let pdev = unsafe { &*pdev.cast::<pci::Device>() };
    probe(pdev).unwrap_or_else(|e| e.to_ptr())
}

/// PCI remove entry point: unregisters (waiting until user space lets go) and drops the probe
/// reference.
///
/// # Safety
///
/// `vdev` is the device [`vpr_probe`] returned for this `pci_dev`.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_remove(vdev: *mut sys::vfio_device) {
    // SAFETY: `vdev` is registered (caller contract).
    let dev = unsafe { Device::from_vfio(vdev) };
    dev.data().removing();
    // SAFETY: the dentry was created at probe (an error pointer or NULL is accepted).
    unsafe { sys::vpr_debugfs_remove(dev.debugfs) };
    // SAFETY: `vdev` is registered; unregister blocks until every user closed it.
    unsafe { sys::vfio_unregister_group_dev(vdev) };
    // SAFETY: drops the reference taken by allocation.
    unsafe { sys::vpr_put_device(vdev) };
}

/// `vfio_device_ops.release`: the last reference is gone; drop the driver's state.
///
/// # Safety
///
/// Called once by the VFIO core for a device allocated by [`vpr_probe`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_release(vdev: *mut sys::vfio_device) {
    let container = vdev.cast::<Device>();
    // SAFETY: `container` is valid until the VFIO core frees it after this call; `data` is
    // initialised iff `live` (type invariant).
    unsafe {
        if (*container).live {
            (*container).live = false;
            core::ptr::drop_in_place(
                core::ptr::addr_of_mut!((*container).data).cast::<VfioPciDevice>(),
            );
        }
    }
}

/// Runs `f` on the driver state of `vdev`.
///
/// # Safety
///
/// `vdev` must be a live device of this driver (the VFIO core calls ops only on those).
unsafe fn with<R>(vdev: *mut sys::vfio_device, f: impl FnOnce(&Device) -> R) -> R {
    // SAFETY: guaranteed by the caller.
    f(unsafe { Device::from_vfio(vdev) })
}

fn errno_long(r: Result<isize>) -> isize {
    r.unwrap_or_else(|e| e.to_errno() as isize)
}

/// `vfio_device_ops.open_device`.
///
/// # Safety
///
/// Called by the VFIO core on a live device, under its dev_set lock.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_open_device(vdev: *mut sys::vfio_device) -> i32 {
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().open_device(d)) }.map_or_else(
        // SAFETY: `vdev` is live, so is its `dev`; the op name is a static C string.
        |e| unsafe { sys::vpr_refused((*vdev).dev, c"open".as_char_ptr(), e.to_errno()) },
        |()| 0,
    )
}

/// `vfio_device_ops.close_device`.
///
/// # Safety
///
/// As [`vpr_open_device`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_close_device(vdev: *mut sys::vfio_device) {
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().close_device(d)) }
}

/// `vfio_device_ops.read`.
///
/// # Safety
///
/// As [`vpr_open_device`], with `ppos` valid.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_read(
    vdev: *mut sys::vfio_device,
    buf: *mut c_char,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: `ppos` is valid for the call (caller contract).
    let pos = unsafe { &mut *ppos };
    // SAFETY: the VFIO core calls ops only on live devices.
    errno_long(unsafe { with(vdev, |d| d.data().rw(d, buf as usize, count, pos, false)) })
}

/// `vfio_device_ops.write`.
///
/// # Safety
///
/// As [`vpr_read`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_write(
    vdev: *mut sys::vfio_device,
    buf: *const c_char,
    count: usize,
    ppos: *mut i64,
) -> isize {
    // SAFETY: `ppos` is valid for the call (caller contract).
    let pos = unsafe { &mut *ppos };
    // SAFETY: the VFIO core calls ops only on live devices.
    errno_long(unsafe { with(vdev, |d| d.data().rw(d, buf as usize, count, pos, true)) })
}

/// `vfio_device_ops.ioctl`.
///
/// # Safety
///
/// As [`vpr_open_device`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_ioctl(
    vdev: *mut sys::vfio_device,
    cmd: c_uint,
    arg: c_ulong,
) -> isize {
    // SAFETY: the VFIO core calls ops only on live devices.
    errno_long(unsafe { with(vdev, |d| d.data().ioctl(d, cmd, arg as usize)) })
}

/// `vfio_device_ops.device_feature`: the features the VFIO core does not answer itself, after
/// its own checks of `argsz` and the GET/SET/PROBE flags.
///
/// # Safety
///
/// As [`vpr_open_device`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_device_feature(
    vdev: *mut sys::vfio_device,
    flags: u32,
    arg: *mut c_void,
    argsz: usize,
) -> c_int {
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe {
        with(vdev, |d| {
            d.data().device_feature(d, flags, arg as usize, argsz)
        })
    }
    .map_or_else(|e| e.to_errno(), |()| 0)
}

/// `vfio_device_ops.match`: whether `buf` (a group's `VFIO_GROUP_GET_DEVICE_FD` string) names
/// this device, with an optional ` vf_token=UUID`: 1 for a match, 0 for none, or an errno.
///
/// # Safety
///
/// As [`vpr_open_device`], with `buf` a NUL-terminated string.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_match(vdev: *mut sys::vfio_device, buf: *mut c_char) -> c_int {
    // SAFETY: the VFIO core passes a NUL-terminated string it owns for the call.
    let buf = unsafe { CStr::from_char_ptr(buf.cast()) };
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().match_name(buf.to_bytes())) }
        .map_or_else(|e| e.to_errno(), c_int::from)
}

/// `vfio_device_ops.match_token_uuid`: the VF-token check of `VFIO_DEVICE_BIND_IOMMUFD`
/// (`uuid` null when the user passed none).
///
/// # Safety
///
/// As [`vpr_open_device`], with `uuid` null or pointing to 16 readable bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_match_token_uuid(
    vdev: *mut sys::vfio_device,
    uuid: *const c_void,
) -> c_int {
    // SAFETY: a non-null `uuid` points to a `uuid_t`, 16 bytes with no alignment requirement.
    let uuid =
        (!uuid.is_null()).then(|| unsafe { core::ptr::read_unaligned(uuid.cast::<[u8; 16]>()) });
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().match_token(uuid.as_ref())) }
        .map_or_else(|e| e.to_errno(), |()| 0)
}

/// A region-info capability chain under construction (`struct vfio_info_cap`).
pub(crate) struct CapChain(*mut sys::vfio_info_cap);

impl CapChain {
    /// Appends a capability: `cap` starts with a `struct vfio_info_cap_header` whose `next` the
    /// VFIO core fills in.
    pub(crate) fn add(&mut self, cap: &mut [u32]) -> Result {
        // SAFETY: `self.0` is the chain passed by the VFIO core; `cap` is a valid, aligned
        // buffer of `size_of_val(cap)` bytes beginning with a header, copied by the callee.
        to_result(unsafe {
            sys::vfio_info_add_capability(
                self.0,
                cap.as_mut_ptr().cast(),
                core::mem::size_of_val(cap),
            )
        })
    }
}

/// `vfio_device_ops.get_region_info_caps`.
///
/// # Safety
///
/// As [`vpr_open_device`], with `info` and `caps` valid.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_get_region_info_caps(
    vdev: *mut sys::vfio_device,
    info: *mut sys::vfio_region_info,
    caps: *mut sys::vfio_info_cap,
) -> i32 {
    // SAFETY: `info` is valid for the call (caller contract).
    let info = unsafe { &mut *info };
    let mut chain = CapChain(caps);
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().region_info(info.index, &mut chain)) }.map_or_else(
        |e| e.to_errno(),
        |r| {
            info.offset = r.offset;
            info.size = r.size;
            info.flags = r.flags;
            0
        },
    )
}

/// `vfio_device_ops.mmap`.
///
/// # Safety
///
/// As [`vpr_open_device`], with `vma` a VMA under construction.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_mmap(
    vdev: *mut sys::vfio_device,
    vma: *mut bindings::vm_area_struct,
) -> i32 {
    // SAFETY: `vma` is being set up by mmap (caller contract).
    let vma = unsafe { mm::new_bar_vma(vma) };
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().mmap(d, &vma)) }.map_or_else(
        // SAFETY: `vdev` is live (dev_dbg message and trace event of the refusal).
        |e| unsafe {
            sys::vpr_mmap_refused(
                vdev,
                vma.pgoff(),
                vma.end() - vma.start(),
                vma.is_shared(),
                e.to_errno(),
            )
        },
        |()| 0,
    )
}

/// `vfio_device_ops.request`: the device is being unbound while user space holds it.
///
/// # Safety
///
/// As [`vpr_open_device`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_request(vdev: *mut sys::vfio_device, count: c_uint) {
    // SAFETY: the VFIO core calls ops only on live devices.
    unsafe { with(vdev, |d| d.data().request(count)) }
}

/// `pci_error_handlers.reset_prepare`: the PCI core is about to reset the device.
///
/// # Safety
///
/// `vdev` is the registered device of a bound `pci_dev` (its drvdata); the caller holds the
/// device lock, so the device stays bound for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_reset_prepare(vdev: *mut sys::vfio_device) {
    // SAFETY: guaranteed by the caller.
    let dev = unsafe { Device::from_vfio(vdev) };
    dev.data().reset_prepare(dev);
}

/// `pci_error_handlers.reset_done`: the PCI core has reset the device.
///
/// # Safety
///
/// As [`vpr_reset_prepare`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_reset_done(vdev: *mut sys::vfio_device) {
    // SAFETY: guaranteed by the caller.
    unsafe { Device::from_vfio(vdev) }.data().reset_done();
}

/// Fills the debugfs `faults` file of a device (called from the C show function).
///
/// # Safety
///
/// `vdev` is a live device of this driver (its debugfs files are removed before release) and
/// `vals` points to `VPR_NUM_COUNTERS` writable `u64`s.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_read_counters(vdev: *mut sys::vfio_device, vals: *mut u64) {
    // SAFETY: guaranteed by the caller.
    let out = unsafe { core::slice::from_raw_parts_mut(vals, sys::VPR_NUM_COUNTERS as usize) };
    // SAFETY: guaranteed by the caller.
    let counters = unsafe { Device::from_vfio(vdev) }.data().counters();
    for (slot, (_, val)) in out.iter_mut().zip(counters) {
        *slot = val;
    }
}

/// Registers the PCI driver and creates the debugfs root.
pub(crate) fn register_driver() -> Result {
    // SAFETY: called once at module init.
    unsafe { sys::vpr_debugfs_init() };
    // SAFETY: called once at module init.
    let ret = to_result(unsafe { sys::vpr_register_driver() });
    if ret.is_err() {
        // SAFETY: undoes the init above.
        unsafe { sys::vpr_debugfs_exit() };
    }
    ret
}

/// Unregisters the PCI driver (unbinding every device, which waits for their users).
pub(crate) fn unregister_driver() {
    // SAFETY: called once at module exit, after a successful `register_driver`.
    unsafe { sys::vpr_unregister_driver() };
    // SAFETY: every device is gone, so no per-device directory is left.
    unsafe { sys::vpr_debugfs_exit() };
}
