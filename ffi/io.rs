// SPDX-License-Identifier: GPL-2.0

//! Mapped BARs and ROMs, accessed with `ioread*`/`iowrite*`.
//!
//! On x86 `pci_iomap` of an I/O-port BAR returns a port cookie that only the `ioread*` family
//! understands, so this type (unlike `kernel::pci::Bar`) serves memory and I/O BARs alike, and
//! its sizes are known only at run time.

use core::ffi::c_void;
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

/// A claimed and mapped BAR.
///
/// The resource's start, length and flags are read once, here, and cached: the BAR stays
/// claimed for the life of the map, and the PCI core neither moves nor resizes a claimed
/// resource of a bound device (resizing through sysfs wants the driver unbound), so the cached
/// values are the ones upstream's `vfio_pci_bar_rw` would look up on every access.
///
/// # Invariants
///
/// `addr` is the `pci_iomap` cookie of BAR `bar` of `pdev`, `len` bytes long, and the BAR is
/// claimed with `pci_request_selected_regions`; both are undone exactly once, in `drop`.
pub(crate) struct BarMap {
    pdev: ARef<pci::Device>,
    bar: u32,
    addr: *mut c_void,
    len: u64,
    /// `pci_resource_start` was non-zero when the BAR was claimed.
    assigned: bool,
    /// The resource is a memory BAR (`IORESOURCE_MEM`): accesses need memory decode on.
    is_mem: bool,
}

// SAFETY: an iomap cookie may be used from any thread.
unsafe impl Send for BarMap {}
// SAFETY: accesses through `&BarMap` are single MMIO/PIO operations, safe to run concurrently.
unsafe impl Sync for BarMap {}

impl BarMap {
    /// Claims and maps BAR `bar`. `EBUSY` if it cannot be claimed, `ENOMEM` if it cannot be
    /// mapped (upstream's codes).
    pub(crate) fn new(pdev: &pci::Device, bar: u32) -> Result<Self> {
        rawpci::request_region(pdev, bar)?;
        // SAFETY: `pdev` is valid and BAR `bar` is claimed; maxlen 0 maps the whole BAR.
        let addr = unsafe { bindings::pci_iomap(rawpci::raw(pdev), bar as i32, 0) };
        if addr.is_null() {
            rawpci::release_region(pdev, bar);
            return Err(ENOMEM);
        }
        // INVARIANT: the BAR is claimed and mapped.
        Ok(Self {
            pdev: pdev.into(),
            bar,
            addr,
            len: rawpci::resource_len(pdev, bar),
            assigned: rawpci::resource_start(pdev, bar) != 0,
            is_mem: rawpci::resource_flags(pdev, bar) & u64::from(bindings::IORESOURCE_MEM) != 0,
        })
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

    /// Reads `width` bytes at `offset`; `None` when the access would leave the BAR.
    #[inline]
    pub(crate) fn read(&self, offset: u64, width: Width) -> Option<u64> {
        let p = self.at(offset, width)?;
        // SAFETY: `p` points `width` bytes inside the mapped BAR (checked by `at`).
        Some(unsafe {
            match width {
                Width::W8 => u64::from(bindings::ioread8(p)),
                Width::W16 => u64::from(bindings::ioread16(p)),
                Width::W32 => u64::from(bindings::ioread32(p)),
                Width::W64 => sys::vpr_ioread64(p),
            }
        })
    }

    /// Writes the low `width` bytes of `val` at `offset`; false when it would leave the BAR.
    #[inline]
    pub(crate) fn write(&self, offset: u64, width: Width, val: u64) -> bool {
        let Some(p) = self.at(offset, width) else {
            return false;
        };
        // SAFETY: `p` points `width` bytes inside the mapped BAR (checked by `at`).
        unsafe {
            match width {
                Width::W8 => bindings::iowrite8(val as u8, p),
                Width::W16 => bindings::iowrite16(val as u16, p),
                Width::W32 => bindings::iowrite32(val as u32, p),
                Width::W64 => sys::vpr_iowrite64(val, p),
            }
        }
        true
    }

    #[inline]
    fn at(&self, offset: u64, width: Width) -> Option<*mut c_void> {
        let end = offset.checked_add(width.bytes() as u64)?;
        if end > self.len {
            return None;
        }
        Some(self.addr.wrapping_byte_add(offset as usize))
    }
}

impl Drop for BarMap {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping and the claim are ours to undo, once.
        unsafe { bindings::pci_iounmap(rawpci::raw(&self.pdev), self.addr) };
        rawpci::release_region(&self.pdev, self.bar);
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
        // SAFETY: `p` points `width` bytes inside the mapped ROM.
        Some(unsafe {
            match width {
                Width::W8 => u64::from(bindings::ioread8(p)),
                Width::W16 => u64::from(bindings::ioread16(p)),
                _ => u64::from(bindings::ioread32(p)),
            }
        })
    }
}

impl Drop for RomMap<'_> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own the mapping.
        unsafe { sys::vpr_rom_unmap(rawpci::raw(self.pdev), self.addr) }
    }
}
