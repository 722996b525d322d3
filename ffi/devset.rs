// SPDX-License-Identifier: GPL-2.0

//! VFIO device sets and the slot or bus reset their members share: the kernel plumbing of hot
//! reset (`reset.rs` holds the policy).
//!
//! Devices that one slot or bus reset affects are put in one VFIO device set at probe, keyed by
//! an id only this driver uses (see `vpr_assign_dev_set` in `shim.c`), so every member of a set
//! is a device of this driver. The set's mutex is the VFIO core's: it is held around
//! `open_device`/`close_device` and by hot reset. Lock order: `dev_set -> open -> memory`.

use core::{
    ffi::{
        c_int,
        c_void, //
    },
    marker::PhantomData,
    ptr::NonNull,
};
use kernel::{
    bindings,
    error::to_result,
    fs::{
        File,
        LocalFile, //
    },
    pci,
    prelude::*,
    sync::aref::ARef,
};

use super::{
    pci::raw,
    sys,
    vfio::Device, //
};

/// Set members [`DevSet::any_member`] handles without allocating.
const MEMBERS_ON_STACK: usize = 8;

/// Puts `dev` into the device set of its slot or bus (before registration, as upstream).
pub(crate) fn assign(dev: &Device, pdev: &pci::Device) -> Result {
    // SAFETY: `dev` is allocated and not yet registered; `raw(pdev)` is its valid `pci_dev`.
    to_result(unsafe { sys::vpr_assign_dev_set(dev.as_vfio(), raw(pdev)) })
}

/// The device set of a device, with its mutex held.
///
/// # Invariants
///
/// The set's mutex is held for the lifetime of this value; it is released on drop only when
/// this value took it (`owned`).
pub(crate) struct DevSet<'a> {
    dev: &'a Device,
    owned: bool,
}

impl<'a> DevSet<'a> {
    /// Takes the mutex of `dev`'s set.
    pub(crate) fn lock(dev: &'a Device) -> Self {
        // SAFETY: `dev` is a registered device, so its set exists.
        unsafe { sys::vpr_dev_set_lock(dev.as_vfio()) };
        // INVARIANT: the mutex was just taken and is released by `drop`.
        Self { dev, owned: true }
    }

    /// The set of `dev` in `open_device`/`close_device`, which the VFIO core calls with the
    /// set's mutex held.
    ///
    /// # Safety
    ///
    /// The caller must hold the set's mutex for `'a` (true inside those two callbacks).
    pub(crate) unsafe fn held_by_core(dev: &'a Device) -> Self {
        // INVARIANT: guaranteed by the caller; not released on drop.
        Self { dev, owned: false }
    }

    /// Every member of the set (the device itself among them), in the set's order.
    pub(crate) fn members(&self) -> Result<KVec<&Device>> {
        let mut members = KVec::new();
        self.for_each_member(|member| Ok(members.push(member, GFP_KERNEL)?))?;
        Ok(members)
    }

    /// Whether some member of the set satisfies `f`. Allocates nothing for sets of up to
    /// [`MEMBERS_ON_STACK`] devices (nearly every set is one device), so the check a close
    /// makes after its reset stays short.
    pub(crate) fn any_member(&self, mut f: impl FnMut(&Device) -> bool) -> Result<bool> {
        let mut found = false;
        self.for_each_member(|member| {
            found = found || f(member);
            Ok(())
        })?;
        Ok(found)
    }

    /// Calls `f` on every member, in the set's order; stops at its first error.
    fn for_each_member(&self, f: impl FnMut(&'a Device) -> Result) -> Result {
        let vdev = self.dev.as_vfio();
        let mut on_stack = [core::ptr::null_mut(); MEMBERS_ON_STACK];
        // SAFETY: the set's mutex is held (type invariant); the buffer has room for
        // `MEMBERS_ON_STACK` pointers, and the count of all members is returned.
        let n = unsafe {
            sys::vpr_dev_set_devices(vdev, on_stack.as_mut_ptr(), on_stack.len() as c_int)
        };
        let n = usize::try_from(n).map_err(|_| EINVAL)?;
        if n <= on_stack.len() {
            // SAFETY: the first `n` entries are the set's members, its mutex held for `'a`.
            return unsafe { Self::call_each(&on_stack[..n], f) };
        }
        // Only here: dropping even an empty `KVec` calls the allocator.
        let mut on_heap = KVec::new();
        on_heap.extend_with(n, core::ptr::null_mut(), GFP_KERNEL)?;
        // SAFETY: as above, with room for `n` pointers; the set cannot change while its mutex
        // is held, so `n` is still the count.
        unsafe { sys::vpr_dev_set_devices(vdev, on_heap.as_mut_ptr(), n as c_int) };
        // SAFETY: `on_heap` holds the set's members, its mutex held for `'a`.
        unsafe { Self::call_each(&on_heap, f) }
    }

    /// Calls `f` on each of `raw_members` in turn; stops at its first error.
    ///
    /// # Safety
    ///
    /// Every pointer is a member of a set of this driver whose mutex is held for `'a`.
    unsafe fn call_each(
        raw_members: &[*mut sys::vfio_device],
        mut f: impl FnMut(&'a Device) -> Result,
    ) -> Result {
        for &member in raw_members {
            // SAFETY: every member of a set keyed by this driver is a live device of this
            // driver: it joins at probe after its state is initialised and leaves (under the
            // mutex, held for `'a` by the caller's contract) before its state is dropped.
            f(unsafe { Device::from_vfio(member) })?;
        }
        Ok(())
    }

    /// The member bound to `pdev`, if `pdev` is in the set.
    pub(crate) fn find(&self, pdev: &pci::Device) -> Option<&Device> {
        // SAFETY: the set's mutex is held (type invariant); `raw(pdev)` is a valid `pci_dev`.
        let found = unsafe { sys::vpr_dev_set_find(self.dev.as_vfio(), raw(pdev)) };
        // SAFETY: as in `members`: a non-null member is a live device of this driver.
        (!found.is_null()).then(|| unsafe { Device::from_vfio(found) })
    }

    /// How many members are open.
    pub(crate) fn open_count(&self) -> u32 {
        // SAFETY: the set's mutex is held (type invariant).
        unsafe { sys::vpr_dev_set_open_count(self.dev.as_vfio()) }
    }
}

impl Drop for DevSet<'_> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: this value took the mutex (type invariant).
            unsafe { sys::vpr_dev_set_unlock(self.dev.as_vfio()) };
        }
    }
}

/// Which reset the topology of `pdev` allows: `Ok(true)` a slot reset, `Ok(false)` a bus
/// reset, `ENODEV` neither (upstream's order of probing).
pub(crate) fn probe_slot_or_bus_reset(pdev: &pci::Device) -> Result<bool> {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    let ret = unsafe { sys::vpr_probe_slot_or_bus_reset(raw(pdev)) };
    to_result(ret).map(|()| ret == 1)
}

/// Resets the slot or bus of `pdev` (`pci_reset_bus`), which saves and restores the config
/// state of every device on it.
pub(crate) fn reset_slot_or_bus(pdev: &pci::Device) -> Result {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    to_result(unsafe { sys::vpr_reset_slot_or_bus(raw(pdev)) })
}

/// Calls `f` on every device a slot (`slot`) or bus reset of `pdev` affects, stopping at the
/// first error, which it returns. Runs with the PCI bus semaphore held for read.
pub(crate) fn for_each_affected<F>(pdev: &pci::Device, slot: bool, mut f: F) -> Result
where
    F: FnMut(&pci::Device) -> Result,
{
    /// Calls the closure behind `data` on `pdev`.
    ///
    /// # Safety
    ///
    /// `data` is a `&mut F` valid for the call and `pdev` a valid `pci_dev`.
    unsafe extern "C" fn visit<F: FnMut(&pci::Device) -> Result>(
        pdev: *mut bindings::pci_dev,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `&mut F` passed below, alive for the whole walk.
        let f = unsafe { &mut *data.cast::<F>() };
        // SAFETY: the walk passes valid `pci_dev`s, held by the bus semaphore for the call;
        // `pci::Device` is a transparent wrapper of `pci_dev`.
        let pdev = unsafe { &*pdev.cast::<pci::Device>() };
        f(pdev).map_or_else(|e| e.to_errno(), |()| 0)
    }
    // SAFETY: `raw(pdev)` is valid; `visit::<F>` matches the callback type and `data` points
    // to `f`, which outlives the synchronous walk.
    to_result(unsafe {
        sys::vpr_for_each_affected(
            raw(pdev),
            slot,
            Some(visit::<F>),
            core::ptr::from_mut(&mut f).cast(),
        )
    })
}

/// Segment, bus number and devfn of `pdev`.
pub(crate) fn location(pdev: &pci::Device) -> (u16, u8, u8) {
    let (mut segment, mut bus, mut devfn) = (0, 0, 0);
    // SAFETY: `raw(pdev)` is valid; the outputs are valid for writes.
    unsafe { sys::vpr_pci_location(raw(pdev), &mut segment, &mut bus, &mut devfn) };
    (segment, bus, devfn)
}

/// The IOMMU group number of `pdev`; `EPERM` when it has none (it cannot be isolated).
pub(crate) fn iommu_group_id(pdev: &pci::Device) -> Result<u32> {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    let id = unsafe { sys::vpr_iommu_group_id(raw(pdev)) };
    to_result(id).map(|()| id as u32)
}

/// The iommufd context a cdev-opened device is bound to, borrowed from the device.
pub(crate) struct IommufdCtx<'a>(NonNull<sys::iommufd_ctx>, PhantomData<&'a Device>);

impl Device {
    /// Whether the device was opened through its cdev (iommufd) rather than a group.
    pub(crate) fn cdev_opened(&self) -> bool {
        // SAFETY: `as_vfio` is a live `vfio_device`.
        unsafe { sys::vpr_cdev_opened(self.as_vfio()) }
    }

    /// The iommufd context the device is bound to, if any.
    pub(crate) fn iommufd_ctx(&self) -> Option<IommufdCtx<'_>> {
        // SAFETY: `as_vfio` is a live `vfio_device`; the context lives while it is bound, which
        // the caller's open file keeps for the borrow.
        NonNull::new(unsafe { sys::vpr_iommufd_device_ictx(self.as_vfio()) })
            .map(|p| IommufdCtx(p, PhantomData))
    }

    /// The device's id in `ctx`: `Ok(id)` when bound to it, `ENOENT` when unbound but its group
    /// is owned by `ctx`, another error otherwise (upstream `vfio_iommufd_get_dev_id`).
    pub(crate) fn iommufd_dev_id(&self, ctx: &IommufdCtx<'_>) -> Result<u32> {
        // SAFETY: `as_vfio` is live; `ctx` is a live context (borrowed from a bound device).
        let id = unsafe { sys::vpr_iommufd_get_dev_id(self.as_vfio(), ctx.0.as_ptr()) };
        to_result(id).map(|()| id as u32)
    }
}

/// A VFIO group file passed by the user, referenced for as long as this value lives.
pub(crate) struct GroupFile(ARef<File>);

impl GroupFile {
    /// Takes a reference to the group file behind `fd`: `EBADF` for a bad descriptor, `EINVAL`
    /// for a file that is not a VFIO group.
    pub(crate) fn get(fd: i32) -> Result<Self> {
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        let file = LocalFile::fget(fd).map_err(|_| EBADF)?;
        // SAFETY: called from an ioctl, which does not use `fdget_pos` on this thread.
        let file = unsafe { LocalFile::assume_no_fdget_pos(file) };
        // SAFETY: `file` is a valid, referenced file.
        if !unsafe { sys::vfio_file_is_group(file.as_ptr().cast()) } {
            return Err(EINVAL);
        }
        Ok(Self(file))
    }

    /// Whether `dev` belongs to this group.
    pub(crate) fn has_dev(&self, dev: &Device) -> bool {
        // SAFETY: the file is referenced by `self` and is a group file; `dev` is live.
        unsafe { sys::vfio_file_has_dev(self.0.as_ptr().cast(), dev.as_vfio()) }
    }
}
