// SPDX-License-Identifier: GPL-2.0

//! mmap policy for BAR regions (upstream `vfio_pci_core_mmap`): which requests are accepted.
//!
//! Accepting a mapping installs nothing. The VMA becomes a lazily faulted PFN map (see
//! `crate::fault`) of the device's own address space, so one zap reaches every process.

use kernel::prelude::*;

use crate::{
    fault,
    regions, //
};

/// An mmap request as the VMA describes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MmapRequest {
    /// Start of the VMA.
    pub(crate) start: usize,
    /// End (exclusive) of the VMA.
    pub(crate) end: usize,
    /// File offset in pages.
    pub(crate) pgoff: usize,
    /// `MAP_SHARED`.
    pub(crate) shared: bool,
}

const PAGE_SIZE: u64 = 4096;

/// Checks a request against the BARs; returns the BAR index to map. `mmap_ok[bar]` says whether
/// the BAR may be mapped at all, `bar_len(bar)` gives its size. Errors are upstream's.
pub(crate) fn check(
    req: &MmapRequest,
    mmap_ok: &[bool; 6],
    bar_len: impl Fn(u32) -> u64,
) -> Result<u32> {
    let index = fault::region_index(req.pgoff);
    if index >= u64::from(regions::NUM_REGIONS) || req.end < req.start || !req.shared {
        return Err(EINVAL);
    }
    // ROM, config and VGA are never mappable.
    let bar = u32::try_from(index).map_err(|_| EINVAL)?;
    if bar >= regions::ROM || !mmap_ok.get(bar as usize).copied().unwrap_or(false) {
        return Err(EINVAL);
    }
    let phys_len = bar_len(bar).checked_add(PAGE_SIZE - 1).ok_or(EINVAL)? & !(PAGE_SIZE - 1);
    let req_len = (req.end - req.start) as u64;
    let req_start = fault::bar_page_offset(req.pgoff) << 12;
    if req_start
        .checked_add(req_len)
        .is_none_or(|end| end > phys_len)
    {
        return Err(EINVAL);
    }
    Ok(bar)
}
