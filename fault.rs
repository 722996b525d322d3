// SPDX-License-Identifier: GPL-2.0

//! Fault policy for BAR mappings: which PFN a fault maps, at which order, and the counters.
//!
//! mmap installs nothing; every PTE, PMD or PUD of a BAR mapping is installed here, on first
//! access, at the largest order the mm asks for when the VMA covers the aligned range and the
//! PFN is aligned to it (else the mm falls back to a smaller order). Whether the fault may be
//! served at all (memory decode on, device in D0) is decided under the memory lock by
//! `VfioPciDevice::fault`.
//!
//! A 4 KiB fault also fills the rest of its page table's span inside the VMA ([`around`]):
//! where the VMA's alignment rules out a PMD, the next 511 accesses then cost no fault, as
//! they would not under a PMD. Upstream maps the one page; what a client sees is the same
//! (every page of the VMA maps the same PFN either way, and a zap removes them all).

use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};

use crate::regions::OFFSET_SHIFT;

/// Page shift of the architecture (x86: 4 KiB pages).
const PAGE_SHIFT: u32 = 12;
/// Order of a PMD mapping (2 MiB on x86).
pub(crate) const PMD_ORDER: u32 = 9;
/// Order of a PUD mapping (1 GiB on x86).
pub(crate) const PUD_ORDER: u32 = 18;

/// What the mm tells us about a fault.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FaultRequest {
    /// Start of the VMA.
    pub(crate) vm_start: usize,
    /// End (exclusive) of the VMA.
    pub(crate) vm_end: usize,
    /// File offset of the VMA in pages (region index in the high bits).
    pub(crate) vm_pgoff: usize,
    /// Faulting address.
    pub(crate) address: usize,
    /// Requested order: 0, [`PMD_ORDER`] or [`PUD_ORDER`].
    pub(crate) order: u32,
}

/// How a fault ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultOutcome {
    /// A PFN insertion was attempted; the mm's `vm_fault_t` answer.
    Inserted(u32),
    /// The order does not fit here: the mm retries with a smaller one.
    Fallback,
    /// Memory decode is off or the device is in a low-power state.
    SigBus,
}

/// The BAR index a mapping with file offset `vm_pgoff` (in pages) refers to.
pub(crate) fn region_index(vm_pgoff: usize) -> u64 {
    (vm_pgoff as u64) >> (OFFSET_SHIFT - PAGE_SHIFT)
}

/// Page offset of the mapping inside its BAR.
pub(crate) fn bar_page_offset(vm_pgoff: usize) -> u64 {
    (vm_pgoff as u64) & ((1u64 << (OFFSET_SHIFT - PAGE_SHIFT)) - 1)
}

/// Returns the PFN to install for `req` in a BAR that starts at physical address `bar_start`,
/// or `None` when the requested order does not fit (upstream's `is_aligned_for_order`).
#[inline]
pub(crate) fn plan(req: &FaultRequest, bar_start: u64) -> Option<u64> {
    let size = 1u64.checked_shl(PAGE_SHIFT + req.order)?;
    let addr = (req.address as u64) & !(size - 1);
    let start = req.vm_start as u64;
    if addr < start {
        return None;
    }
    let pgoff = (addr - start) >> PAGE_SHIFT;
    let pfn = (bar_start >> PAGE_SHIFT) + bar_page_offset(req.vm_pgoff) + pgoff;
    if req.order != 0 {
        let fits = addr
            .checked_add(size)
            .is_some_and(|end| end <= req.vm_end as u64);
        if !fits || pfn & ((1u64 << req.order) - 1) != 0 {
            return None;
        }
    }
    Some(pfn)
}

/// The other pages a 4 KiB fault at `req.address`, served with `pfn` by [`plan`], fills: the
/// rest of its 2 MiB-aligned block (one page table) that lies inside the VMA, as (address,
/// PFN) pairs in address order.
pub(crate) fn around(req: &FaultRequest, pfn: u64) -> impl Iterator<Item = (usize, u64)> {
    let page_size = 1usize << PAGE_SHIFT;
    let block = page_size << PMD_ORDER;
    let page = req.address & !(page_size - 1);
    let block_start = page & !(block - 1);
    let first = block_start.max(req.vm_start);
    let end = block_start.saturating_add(block).min(req.vm_end);
    let first_pfn = pfn - ((page - first) >> PAGE_SHIFT) as u64;
    (first..end)
        .step_by(page_size)
        .zip(first_pfn..)
        .filter(move |&(addr, _)| addr != page)
}

/// Per-device counters of the fault path, readable in debugfs.
#[derive(Default)]
pub(crate) struct FaultCounters {
    /// 4 KiB PFNs installed.
    pub(crate) pte: AtomicU64,
    /// 2 MiB PMD PFN maps installed.
    pub(crate) pmd: AtomicU64,
    /// 1 GiB PUD PFN maps installed.
    pub(crate) pud: AtomicU64,
    /// Huge faults answered with a fallback to a smaller order.
    pub(crate) fallback: AtomicU64,
    /// Zaps of all BAR mappings.
    pub(crate) zap: AtomicU64,
    /// Faults answered with SIGBUS.
    pub(crate) sigbus: AtomicU64,
    /// 4 KiB PFNs installed by a fault on another page of their block ([`around`]).
    pub(crate) around: AtomicU64,
}

impl FaultCounters {
    /// Counts an installed mapping of `order`.
    pub(crate) fn mapped(&self, order: u32) {
        let counter = match order {
            0 => &self.pte,
            PMD_ORDER => &self.pmd,
            PUD_ORDER => &self.pud,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one event.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` events.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
