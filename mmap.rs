// SPDX-License-Identifier: GPL-2.0

//! mmap policy for BAR regions (upstream `vfio_pci_core_mmap`): which requests are accepted.
//!
//! Accepting a mapping installs nothing. The VMA becomes a lazily faulted PFN map (see
//! `crate::fault`) of the device's own address space, so one zap reaches every process.

use core::sync::atomic::{
    AtomicU16,
    Ordering, //
};
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

/// Checks a request against the BARs; returns the BAR index to map. Bit `bar` of `mappable`
/// says whether the BAR may be mapped at all, `bar_len(bar)` gives its size. Errors are
/// upstream's.
pub(crate) fn check(req: &MmapRequest, mappable: u8, bar_len: impl Fn(u32) -> u64) -> Result<u32> {
    let index = fault::region_index(req.pgoff);
    if index >= u64::from(regions::NUM_REGIONS) || req.end < req.start || !req.shared {
        return Err(EINVAL);
    }
    // ROM, config and VGA are never mappable.
    let bar = u32::try_from(index).map_err(|_| EINVAL)?;
    if bar >= regions::ROM || mappable & (1 << bar) == 0 {
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

/// Which BARs user space may mmap, readable without the memory lock (upstream reads
/// `bar_mmap_supported` unlocked too): bits 0-5 say BAR i may be mapped (upstream's
/// `bar_mmap_supported`), bits 8-13 that it is claimed. Published at open after the claims and
/// cleared at close before their release, both under the device set's mutex; `mmap` and region
/// info run only while the device is open, so they see what open published.
#[derive(Default)]
pub(crate) struct MmapBars(AtomicU16);

impl MmapBars {
    /// Publishes the masks of an opened device: bit i of `mappable` and `claimed` for BAR i.
    pub(crate) fn publish(&self, mappable: u8, claimed: u8) {
        self.0.store(
            u16::from(mappable) | u16::from(claimed) << 8,
            Ordering::Release,
        );
    }

    /// Nothing is mappable (the device is closing).
    pub(crate) fn clear(&self) {
        self.0.store(0, Ordering::Release);
    }

    /// Which BARs may be mmapped: bit i for BAR i.
    pub(crate) fn mappable(&self) -> u8 {
        self.0.load(Ordering::Acquire) as u8
    }

    /// Whether `bar` is claimed.
    pub(crate) fn claimed(&self, bar: u32) -> bool {
        bar < 6 && self.0.load(Ordering::Acquire) & (1 << (bar + 8)) != 0
    }
}
