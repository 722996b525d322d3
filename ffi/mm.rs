// SPDX-License-Identifier: GPL-2.0

//! The mm side of BAR mappings: VMA set-up at mmap, the fault entry point that installs PFNs,
//! and zapping every mapping of a device.
//!
//! Policy (which PFN, which order, SIGBUS or not) is decided in safe code (`crate::fault`,
//! `crate::mmap`); this module only moves values across the boundary.

use kernel::{
    bindings,
    mm::virt::VmaNew, //
};

use super::{
    sys,
    vfio::Device, //
};
use crate::fault::{
    FaultOutcome,
    FaultRequest, //
};

/// A VMA being created by `mmap` on the device file.
pub(crate) struct NewBarVma<'a> {
    vma: &'a VmaNew,
}

impl NewBarVma<'_> {
    /// First user address of the mapping.
    pub(crate) fn start(&self) -> usize {
        self.vma.start()
    }

    /// End (exclusive) of the mapping.
    pub(crate) fn end(&self) -> usize {
        self.vma.end()
    }

    /// The file offset of the mapping in pages.
    pub(crate) fn pgoff(&self) -> usize {
        // SAFETY: the VMA is valid and being set up by us; `vm_pgoff` is a plain field.
        unsafe { (*self.vma.as_ptr()).vm_pgoff }
    }

    /// Whether this is a shared mapping (`MAP_SHARED`).
    pub(crate) fn is_shared(&self) -> bool {
        self.vma.flags() & bindings::VM_SHARED != 0
    }

    /// Turns the VMA into a lazily faulted, uncached PFN map of the device's BARs: nothing is
    /// mapped now; [`huge_fault`] installs PFNs on access.
    pub(crate) fn setup_pfnmap(&self, dev: &Device) {
        // SAFETY: the VMA is valid; `dev` outlives it because the VMA holds a reference to the
        // device file, which keeps the device open.
        unsafe { sys::vpr_vma_setup(self.vma.as_ptr(), dev.as_vfio().cast()) }
    }
}

/// Wraps the raw VMA passed to the `mmap` callback.
///
/// # Safety
///
/// `vma` must be a VMA under construction by `mmap`, valid for `'a`.
pub(crate) unsafe fn new_bar_vma<'a>(vma: *mut bindings::vm_area_struct) -> NewBarVma<'a> {
    // SAFETY: guaranteed by the caller.
    let vma = unsafe { VmaNew::from_raw(vma) };
    NewBarVma { vma }
}

/// Zaps the user mappings of file offsets `[start, start + len)` of `dev`, in every process.
pub(crate) fn zap_range(dev: &Device, start: u64, len: u64) {
    // SAFETY: `dev` is a registered vfio device, so its inode and mapping exist. The C side
    // calls `unmap_mapping_range` and emits the `vpr_zap` trace event.
    unsafe { sys::vpr_zap_mapping(dev.as_vfio(), start, len) }
}

/// Reads what a fault on a BAR VMA needs from the mm: the VMA and the device behind it.
///
/// # Safety
///
/// `vmf` is valid, with a VMA set up by [`NewBarVma::setup_pfnmap`].
unsafe fn fault_request<'a>(
    vmf: *mut bindings::vm_fault,
    order: u32,
) -> (*mut bindings::vm_area_struct, &'a Device, FaultRequest) {
    // SAFETY: the mm passes a valid `vmf` with a valid VMA (caller contract).
    let (vma, address) = unsafe { ((*vmf).__bindgen_anon_1.vma, (*vmf).__bindgen_anon_1.address) };
    // SAFETY: `vma` is valid while the fault is handled.
    let (start, end, pgoff, private) = unsafe {
        let span = &(*vma).__bindgen_anon_1.__bindgen_anon_1;
        (
            span.vm_start,
            span.vm_end,
            (*vma).vm_pgoff,
            (*vma).vm_private_data,
        )
    };
    // SAFETY: `vm_private_data` was set to the device by `setup_pfnmap`; the VMA keeps the
    // device file, hence the device, alive.
    let dev = unsafe { Device::from_vfio(private.cast()) };
    let req = FaultRequest {
        vm_start: start,
        vm_end: end,
        vm_pgoff: pgoff,
        address,
        order,
    };
    (vma, dev, req)
}

/// The mm's answer for a fault's outcome.
fn vm_fault(outcome: FaultOutcome) -> u32 {
    match outcome {
        FaultOutcome::Inserted(ret) => ret,
        FaultOutcome::Fallback => bindings::vm_fault_reason_VM_FAULT_FALLBACK,
        FaultOutcome::SigBus => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
    }
}

/// The `fault` handler of BAR VMAs (a 4 KiB fault; called from the C `vm_operations_struct`).
///
/// # Safety
///
/// Called by the mm with a valid `vmf` whose VMA was set up by [`NewBarVma::setup_pfnmap`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_page_fault(vmf: *mut bindings::vm_fault) -> u32 {
    // SAFETY: guaranteed by the caller.
    let (vma, dev, req) = unsafe { fault_request(vmf, 0) };
    vm_fault(dev.data().page_fault(&req, |addr, pfn| {
        // SAFETY: `vma` is valid; the PFN lies inside the BAR claimed by the device and `addr`
        // inside the VMA (`fault::plan` and `fault::around` work inside the VMA, whose size
        // mmap bounded by the BAR). A 4 KiB insertion at another address of the same VMA is
        // what the fault handlers of PFN maps may do (the VMA stays locked).
        unsafe { bindings::vmf_insert_pfn(vma, addr & !(bindings::PAGE_SIZE - 1), pfn as usize) }
    }))
}

/// The `huge_fault` handler of BAR VMAs (a PMD or PUD fault; called from the C
/// `vm_operations_struct`).
///
/// # Safety
///
/// Called by the mm with a valid `vmf` whose VMA was set up by [`NewBarVma::setup_pfnmap`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_huge_fault(vmf: *mut bindings::vm_fault, order: u32) -> u32 {
    // SAFETY: guaranteed by the caller.
    let (_, dev, req) = unsafe { fault_request(vmf, order) };
    vm_fault(dev.data().huge_fault(&req, |pfn| {
        // SAFETY: `vmf` is valid; the PFN starts a block of the fault's order inside the BAR
        // claimed by the device, and the block lies inside the VMA (`fault::plan`).
        unsafe {
            match order {
                #[cfg(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP)]
                o if o == bindings::PMD_ORDER => {
                    bindings::vmf_insert_pfn_pmd(vmf, pfn as usize, false)
                }
                #[cfg(CONFIG_ARCH_SUPPORTS_PUD_PFNMAP)]
                o if o == bindings::PUD_ORDER => {
                    bindings::vmf_insert_pfn_pud(vmf, pfn as usize, false)
                }
                _ => bindings::vm_fault_reason_VM_FAULT_FALLBACK,
            }
        }
    }))
}
