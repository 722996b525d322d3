// SPDX-License-Identifier: GPL-2.0

//! Mapped BARs and ROMs, accessed with `ioread*`/`iowrite*` (memory BARs with the MMIO
//! accessors those reduce to for an MMIO cookie, inline).
//!
//! On x86 `pci_iomap` of an I/O-port BAR returns a port cookie that only the `ioread*` family
//! understands, so this type (unlike `kernel::pci::Bar`) serves memory and I/O BARs alike, and
//! its sizes are known only at run time.

use core::{
    ffi::c_void,
    sync::atomic::{
        AtomicPtr,
        AtomicU64,
        AtomicUsize,
        Ordering, //
    },
};
use kernel::{
    bindings,
    pci,
    prelude::*,
    sync::aref::ARef, //
};

use super::{
    pci as rawpci,
    sys, //
};

/// Width of a single device access.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Width {
    /// One byte.
    W8 = 1,
    /// Two bytes.
    W16 = 2,
    /// Four bytes.
    W32 = 4,
    /// Eight bytes (two 32-bit accesses, low then high, as upstream's `ioread64`).
    W64 = 8,
}

impl Width {
    /// Number of bytes.
    pub(crate) fn bytes(self) -> usize {
        self as usize
    }

    /// The width of an access of `count` bytes, if it is one register's (1, 2, 4 or 8 bytes).
    #[inline]
    pub(crate) fn from_bytes(count: usize) -> Option<Self> {
        match count {
            4 => Some(Self::W32),
            2 => Some(Self::W16),
            1 => Some(Self::W8),
            8 => Some(Self::W64),
            _ => None,
        }
    }
}

/// One device read of `width` bytes at iomap cookie `p` (`ioread*`; 8 bytes as two 32-bit
/// reads, low then high, as upstream's `ioread64`).
///
/// # Safety
///
/// `p` must be an iomap cookie (MMIO or port) valid for `width` bytes.
#[inline(always)]
unsafe fn io_read(p: *mut c_void, width: Width) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe {
        match width {
            Width::W8 => u64::from(bindings::ioread8(p)),
            Width::W16 => u64::from(bindings::ioread16(p)),
            Width::W32 => u64::from(bindings::ioread32(p)),
            Width::W64 => sys::vpr_ioread64(p),
        }
    }
}

/// One device write of the low `width` bytes of `val` at iomap cookie `p` (`iowrite*`).
///
/// # Safety
///
/// As [`io_read`].
#[inline(always)]
unsafe fn io_write(p: *mut c_void, width: Width, val: u64) {
    // CAST: each arm keeps exactly the bytes of its width.
    // SAFETY: guaranteed by the caller.
    unsafe {
        match width {
            Width::W8 => bindings::iowrite8(val as u8, p),
            Width::W16 => bindings::iowrite16(val as u16, p),
            Width::W32 => bindings::iowrite32(val as u32, p),
            Width::W64 => sys::vpr_iowrite64(val, p),
        }
    }
}

/// One read of `width` bytes at the MMIO address `p`: what `ioread*` does for an MMIO cookie
/// (`readb`/`readw`/`readl`, on x86 one `mov` from the mapping), without the call into
/// lib/iomap.c and its port-or-memory test: under TCG every call and return is a jump-cache
/// lookup, and the memory-BAR rows of the bench are a few of them per access. 8 bytes as
/// [`io_read`].
///
/// # Safety
///
/// `p` must be an MMIO address (an `ioremap`/`pci_iomap` of memory) valid for `width` bytes.
#[inline(always)]
unsafe fn mmio_read(p: *mut c_void, width: Width) -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: guaranteed by the caller; each `mov` is one load of its width from `p`, the
    // instruction x86's `read[bwl]` emit. Not `nomem`/`readonly`: the compiler must not move
    // other memory accesses across it (C's "memory" clobber).
    unsafe {
        match width {
            Width::W8 => {
                let v: u8;
                core::arch::asm!("mov {v}, byte ptr [{p}]", p = in(reg) p, v = out(reg_byte) v,
                    options(nostack, preserves_flags));
                u64::from(v)
            }
            Width::W16 => {
                let v: u16;
                core::arch::asm!("mov {v:x}, word ptr [{p}]", p = in(reg) p, v = out(reg) v,
                    options(nostack, preserves_flags));
                u64::from(v)
            }
            Width::W32 => {
                let v: u32;
                core::arch::asm!("mov {v:e}, dword ptr [{p}]", p = in(reg) p, v = out(reg) v,
                    options(nostack, preserves_flags));
                u64::from(v)
            }
            Width::W64 => sys::vpr_ioread64(p),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: guaranteed by the caller (an MMIO address is an iomap cookie).
    unsafe {
        io_read(p, width)
    }
}

/// One write of the low `width` bytes of `val` at the MMIO address `p`: `iowrite*` of an MMIO
/// cookie (`writeb`/`writew`/`writel`, on x86 one `mov`), inline as [`mmio_read`].
///
/// # Safety
///
/// As [`mmio_read`].
#[inline(always)]
unsafe fn mmio_write(p: *mut c_void, width: Width, val: u64) {
    #[cfg(target_arch = "x86_64")]
    // CAST: each arm keeps exactly the bytes of its width.
    // SAFETY: guaranteed by the caller; each `mov` is one store of its width to `p`, the
    // instruction x86's `write[bwl]` emit, with C's "memory" clobber (no `nomem`).
    unsafe {
        match width {
            Width::W8 => core::arch::asm!("mov byte ptr [{p}], {v}", p = in(reg) p,
                v = in(reg_byte) val as u8, options(nostack, preserves_flags)),
            Width::W16 => core::arch::asm!("mov word ptr [{p}], {v:x}", p = in(reg) p,
                v = in(reg) val as u16, options(nostack, preserves_flags)),
            Width::W32 => core::arch::asm!("mov dword ptr [{p}], {v:e}", p = in(reg) p,
                v = in(reg) val as u32, options(nostack, preserves_flags)),
            Width::W64 => sys::vpr_iowrite64(val, p),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: guaranteed by the caller (an MMIO address is an iomap cookie).
    unsafe {
        io_write(p, width, val)
    }
}

/// A claimed BAR, mapped on first access.
///
/// The resource's start, length and flags are read once, here, and cached: the BAR stays
/// claimed for the life of the map, and the PCI core neither moves nor resizes a claimed
/// resource of a bound device (resizing through sysfs wants the driver unbound), so the cached
/// values are the ones upstream's `vfio_pci_bar_rw` would look up on every access.
///
/// Upstream claims and `pci_iomap`s every BAR at open (`vfio_pci_core_map_bars`). The claim is
/// what user space can see (`/proc/iomem`, `EBUSY` at use); the mapping only serves
/// read/write and ioeventfds, which QEMU uses for the few registers it traps, while it maps
/// BARs with `mmap` (faults need no kernel mapping). So a memory BAR is claimed at open and
/// `ioremap`ped on its first access ([`Self::io`]): an open/close that never reads or writes a
/// BAR maps and unmaps nothing (for a 1 GiB BAR, `iounmap` also purges the lazily freed
/// vmalloc space: a TLB flush on every CPU). I/O-port BARs are mapped at claim: their cookie is
/// arithmetic (`ioport_map`), and [`PortBars`] publishes it at open. The one difference a user
/// could see: when `ioremap` fails, upstream's `mmap` of that BAR fails with `ENOMEM` too;
/// ours succeeds, and read/write answers `ENOMEM` as upstream's does.
///
/// # Invariants
///
/// The BAR is claimed with `pci_request_selected_regions`. `addr` is null or the `pci_iomap`
/// cookie of BAR `bar` of `pdev`, `len` bytes long; once non-null it never changes. The claim,
/// and the mapping if any, are undone exactly once, in `drop`. When `is_mem`, a non-null
/// `addr` is an MMIO address (`pci_iomap` of a memory BAR is its `ioremap`); otherwise `addr`
/// is non-null (mapped at claim).
pub(crate) struct BarMap {
    pdev: ARef<pci::Device>,
    bar: u32,
    addr: AtomicPtr<c_void>,
    len: u64,
    /// `pci_resource_start` was non-zero when the BAR was claimed.
    assigned: bool,
    /// The resource is a memory BAR (`IORESOURCE_MEM`): accesses need memory decode on.
    is_mem: bool,
}

// SAFETY: an iomap cookie may be used from any thread; `addr` is set once, atomically.
unsafe impl Send for BarMap {}
// SAFETY: accesses through `&BarMap` are single MMIO/PIO operations, safe to run concurrently;
// the first mapping is published with a compare-exchange (see `map_slow`).
unsafe impl Sync for BarMap {}

impl BarMap {
    /// Claims BAR `bar`, at `start` and `len` bytes long (and maps it if it is an I/O-port
    /// BAR). `EBUSY` if it cannot be claimed, `ENOMEM` if an I/O-port BAR cannot be mapped
    /// (upstream's codes).
    pub(crate) fn new(pdev: &pci::Device, bar: u32, start: u64, len: u64) -> Result<Self> {
        rawpci::request_region(pdev, bar)?;
        // INVARIANT: the BAR is claimed, `addr` is null; an I/O-port BAR is mapped below
        // before the map is returned (on failure `drop` releases the claim).
        let map = Self {
            pdev: pdev.into(),
            bar,
            addr: AtomicPtr::new(core::ptr::null_mut()),
            len,
            assigned: start != 0,
            is_mem: rawpci::resource_flags(pdev, bar) & u64::from(bindings::IORESOURCE_MEM) != 0,
        };
        if !map.is_mem {
            map.map_slow()?;
        }
        Ok(map)
    }

    /// Length of the BAR in bytes.
    #[inline]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether the resource had a non-zero start when it was claimed (upstream answers
    /// `EINVAL` for read/write of a BAR whose start is 0).
    #[inline]
    pub(crate) fn assigned(&self) -> bool {
        self.assigned
    }

    /// Whether this is a memory BAR (accesses are refused while memory decode is off).
    #[inline]
    pub(crate) fn is_mem(&self) -> bool {
        self.is_mem
    }

    /// The BAR's accessor, mapping it on first use (which may sleep); `ENOMEM` if it cannot
    /// be mapped (upstream's code from `vfio_pci_core_get_iomap`).
    #[inline(always)]
    pub(crate) fn io(&self) -> Result<BarIo<'_>> {
        match self.io_mapped() {
            Some(io) => Ok(io),
            None => self.map_slow(),
        }
    }

    /// The BAR's accessor if it is mapped already (for atomic context, where mapping is not
    /// allowed).
    #[inline(always)]
    pub(crate) fn io_mapped(&self) -> Option<BarIo<'_>> {
        let addr = self.addr.load(Ordering::Acquire);
        // INVARIANT: a non-null `addr` is this BAR's cookie for as long as `self` lives.
        (!addr.is_null()).then_some(BarIo { map: self, addr })
    }

    /// Maps the BAR; a racing first access may map it too, and the loser unmaps its own.
    #[cold]
    #[inline(never)]
    fn map_slow(&self) -> Result<BarIo<'_>> {
        // SAFETY: `pdev` is valid and BAR `bar` is claimed (type invariant); maxlen 0 maps the
        // whole BAR.
        let new = unsafe { bindings::pci_iomap(rawpci::raw(&self.pdev), self.bar as i32, 0) };
        if new.is_null() {
            return Err(ENOMEM);
        }
        let null = core::ptr::null_mut();
        // INVARIANT: `addr` goes from null to this BAR's cookie once; the release orders the
        // mapping's page tables before any reader that acquires the pointer.
        let addr = match self
            .addr
            .compare_exchange(null, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => new,
            Err(first) => {
                // SAFETY: `new` is our own mapping, published nowhere.
                unsafe { bindings::pci_iounmap(rawpci::raw(&self.pdev), new) };
                first
            }
        };
        Ok(BarIo { map: self, addr })
    }
}

impl Drop for BarMap {
    fn drop(&mut self) {
        let addr = *self.addr.get_mut();
        if !addr.is_null() {
            // SAFETY: by the type invariant the mapping is ours to undo, once.
            unsafe { bindings::pci_iounmap(rawpci::raw(&self.pdev), addr) };
        }
        rawpci::release_region(&self.pdev, self.bar);
    }
}

/// Access to a mapped BAR, for as long as its [`BarMap`] is borrowed.
///
/// # Invariants
///
/// `addr` is the non-null `pci_iomap` cookie of `map`'s BAR, `map.len` bytes long, an MMIO
/// address when `map.is_mem`; it stays mapped while `map` lives.
#[derive(Clone, Copy)]
pub(crate) struct BarIo<'a> {
    map: &'a BarMap,
    addr: *mut c_void,
}

impl BarIo<'_> {
    /// Reads `width` bytes at `offset`; `None` when the access would leave the BAR.
    #[inline(always)]
    pub(crate) fn read(&self, offset: u64, width: Width) -> Option<u64> {
        let p = self.at(offset, width)?;
        // SAFETY: `p` points `width` bytes inside the mapped BAR (checked by `at`), an MMIO
        // address when `is_mem` (type invariant).
        Some(unsafe {
            if self.map.is_mem {
                mmio_read(p, width)
            } else {
                io_read(p, width)
            }
        })
    }

    /// Writes the low `width` bytes of `val` at `offset`; false when it would leave the BAR.
    #[inline(always)]
    pub(crate) fn write(&self, offset: u64, width: Width, val: u64) -> bool {
        let Some(p) = self.at(offset, width) else {
            return false;
        };
        // SAFETY: `p` points `width` bytes inside the mapped BAR (checked by `at`), an MMIO
        // address when `is_mem` (type invariant).
        unsafe {
            if self.map.is_mem {
                mmio_write(p, width, val)
            } else {
                io_write(p, width, val)
            }
        };
        true
    }

    #[inline]
    fn at(&self, offset: u64, width: Width) -> Option<*mut c_void> {
        let end = offset.checked_add(width.bytes() as u64)?;
        if end > self.map.len {
            return None;
        }
        Some(self.addr.wrapping_byte_add(offset as usize))
    }
}

/// A temporary mapping of the option ROM (the ROM BAR, or the platform's shadow copy).
///
/// # Invariants
///
/// `addr` maps `rom_len` bytes of ROM content of `pdev` and is unmapped once, in `drop`.
pub(crate) struct RomMap<'a> {
    pdev: &'a pci::Device,
    addr: *mut c_void,
    rom_len: u64,
    bar_len: u64,
}

impl<'a> RomMap<'a> {
    /// Maps the ROM; `None` if there is none or its content is not a valid ROM image.
    pub(crate) fn new(pdev: &'a pci::Device) -> Option<Self> {
        let mut rom_len = 0usize;
        let mut bar_len = 0usize;
        // SAFETY: `pdev` is valid; the out pointers are valid locals.
        let addr = unsafe { sys::vpr_rom_map(rawpci::raw(pdev), &mut rom_len, &mut bar_len) };
        if addr.is_null() {
            return None;
        }
        // INVARIANT: `addr` maps `rom_len` bytes.
        Some(Self {
            pdev,
            addr,
            rom_len: rom_len as u64,
            bar_len: bar_len as u64,
        })
    }

    /// Bytes of ROM content; the BAR beyond them reads as all-ones.
    pub(crate) fn rom_len(&self) -> u64 {
        self.rom_len
    }

    /// Size of the ROM region as reported to user space.
    pub(crate) fn bar_len(&self) -> u64 {
        self.bar_len
    }

    /// Reads `width` (at most 4) bytes of ROM content at `offset`.
    pub(crate) fn read(&self, offset: u64, width: Width) -> Option<u64> {
        let end = offset.checked_add(width.bytes() as u64)?;
        if end > self.rom_len || width == Width::W64 {
            return None;
        }
        let p = self.addr.wrapping_byte_add(offset as usize);
        // SAFETY: `p` points `width` (1, 2 or 4, checked above) bytes inside the mapped ROM.
        Some(unsafe { io_read(p, width) })
    }
}

impl Drop for RomMap<'_> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own the mapping.
        unsafe { sys::vpr_rom_unmap(rawpci::raw(self.pdev), self.addr) }
    }
}

/// One I/O-port BAR as [`PortBars`] publishes it.
struct PortSlot {
    /// The BAR's `pci_iomap` port cookie, or 0 while not published.
    cookie: AtomicUsize,
    /// Its length in bytes (valid while `cookie` is non-zero).
    len: AtomicU64,
}

/// The I/O-port BARs of an open device, accessible without the memory lock: upstream takes no
/// lock for them either (`vfio_pci_bar_rw` passes `test_mem` false), and under TCG the lock's
/// two calls and returns were a tenth of the time of a 4-byte I/O BAR access.
///
/// A BAR is published at open once it is claimed and mapped, and withdrawn at close before it
/// is unmapped; the VFIO core runs read/write only between the two, so an access never meets a
/// withdrawn BAR in practice. Should one race anyway, it would still touch only I/O ports: a
/// port cookie names ports, not memory, and an `in`/`out` instruction has no memory to corrupt.
///
/// # Invariants
///
/// Every non-zero `cookie` is the `pci_iomap` cookie of an I/O-port BAR (`ioread*`/`iowrite*`
/// on it and up to `len` bytes past it execute port instructions only).
pub(crate) struct PortBars {
    slots: [PortSlot; 6],
}

impl PortBars {
    /// No BAR published.
    pub(crate) const fn new() -> Self {
        // INVARIANT: every cookie is 0.
        Self {
            slots: [const {
                PortSlot {
                    cookie: AtomicUsize::new(0),
                    len: AtomicU64::new(0),
                }
            }; 6],
        }
    }

    /// Publishes `map` as BAR `bar` if it is an assigned I/O-port BAR; memory BARs are left
    /// to the locked path (they need the memory-decode check under the memory lock).
    pub(crate) fn publish(&self, bar: u32, map: &BarMap) {
        let Some(slot) = self.slots.get(bar as usize) else {
            return;
        };
        if map.is_mem || !map.assigned {
            return;
        }
        let Some(io) = map.io_mapped() else {
            return;
        };
        slot.len.store(map.len, Ordering::Relaxed);
        // INVARIANT: `map` is an I/O-port BAR, so its cookie is a port cookie; the release
        // store orders the length before it.
        slot.cookie.store(io.addr as usize, Ordering::Release);
    }

    /// Withdraws every BAR (at close, before the maps are dropped).
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            // INVARIANT: 0 is always allowed.
            slot.cookie.store(0, Ordering::Release);
        }
    }

    /// The port cookie for `width` bytes at `offset` of BAR `bar`, if it is published and the
    /// access lies inside it.
    #[inline]
    fn at(&self, bar: u32, offset: u64, width: Width) -> Option<*mut c_void> {
        let slot = self.slots.get(bar as usize)?;
        let cookie = slot.cookie.load(Ordering::Acquire);
        if cookie == 0 {
            return None;
        }
        let end = offset.checked_add(width.bytes() as u64)?;
        if end > slot.len.load(Ordering::Relaxed) {
            return None;
        }
        // CAST: `end` fits the BAR, whose length fits the address space.
        Some(cookie.wrapping_add(offset as usize) as *mut c_void)
    }

    /// Reads `width` bytes at `offset` of I/O-port BAR `bar`; `None` when it is not published
    /// or the access would leave it (the caller then takes the locked path).
    #[inline]
    pub(crate) fn read(&self, bar: u32, offset: u64, width: Width) -> Option<u64> {
        let p = self.at(bar, offset, width)?;
        // SAFETY: by the type invariant `p` is a port cookie inside an I/O-port BAR: the access
        // executes port instructions only.
        Some(unsafe { io_read(p, width) })
    }

    /// Writes the low `width` bytes of `val` at `offset` of I/O-port BAR `bar`; false when it
    /// is not published or the access would leave it (nothing was written).
    #[inline]
    pub(crate) fn write(&self, bar: u32, offset: u64, width: Width, val: u64) -> bool {
        let Some(p) = self.at(bar, offset, width) else {
            return false;
        };
        // SAFETY: as in `read`.
        unsafe { io_write(p, width, val) };
        true
    }
}
