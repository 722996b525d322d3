// SPDX-License-Identifier: GPL-2.0

//! The region layout of a VFIO PCI device file: region index in the high bits of the offset.

/// Region offsets are `index << OFFSET_SHIFT` (`VFIO_PCI_OFFSET_SHIFT`, driver ABI).
pub(crate) const OFFSET_SHIFT: u32 = 40;
/// Mask of the position inside a region.
pub(crate) const OFFSET_MASK: u64 = (1u64 << OFFSET_SHIFT) - 1;
/// Regions of every VFIO PCI device: BAR0-5, ROM, config, VGA.
pub(crate) const NUM_REGIONS: u32 = 9;
/// Interrupt indexes: INTx, MSI, MSI-X, ERR, REQ.
pub(crate) const NUM_IRQS: u32 = 5;
/// Index of the ROM region.
pub(crate) const ROM: u32 = 6;
/// Index of the config-space region.
pub(crate) const CONFIG: u32 = 7;
/// Index of the VGA region.
pub(crate) const VGA: u32 = 8;

/// The file offset at which region `index` starts.
pub(crate) fn index_to_offset(index: u32) -> u64 {
    u64::from(index) << OFFSET_SHIFT
}

/// The region an offset falls into.
pub(crate) fn offset_to_index(pos: u64) -> u64 {
    pos >> OFFSET_SHIFT
}

/// Where the MSI-X table sits: reads of it return all-ones and writes are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsixTable {
    /// BAR holding the table.
    pub(crate) bar: u32,
    /// Offset of the table in that BAR.
    pub(crate) offset: u64,
    /// Size of the table in bytes (16 per vector).
    pub(crate) size: u64,
}

impl MsixTable {
    /// Decodes the MSI-X capability's Message Control and Table registers.
    pub(crate) fn from_cap(flags: u16, table: u32) -> Self {
        Self {
            bar: table & 0x7,
            offset: u64::from(table & !0x7),
            size: (u64::from(flags & 0x7ff) + 1) * 16,
        }
    }
}

/// How one access of a BAR transfer is carried out (upstream's `vfio_pci_core_do_io_rw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// A device access of this many bytes.
    Io(usize),
    /// This many bytes of the excluded range: reads fill all-ones, writes are dropped.
    Excluded(usize),
}

/// The next access of a transfer of `count` bytes at `off`, given an excluded range
/// `[x_start, x_end)` and the widest access allowed.
pub(crate) fn next_chunk(
    off: u64,
    count: usize,
    x_start: u64,
    x_end: u64,
    max_width: usize,
) -> Chunk {
    let fillable = if off < x_start {
        count.min(usize::try_from(x_start - off).unwrap_or(usize::MAX))
    } else if off >= x_end {
        count
    } else {
        0
    };
    for width in [8usize, 4, 2] {
        if width <= max_width && fillable >= width && off % width as u64 == 0 {
            return Chunk::Io(width);
        }
    }
    if fillable > 0 {
        Chunk::Io(1)
    } else {
        Chunk::Excluded(count.min(usize::try_from(x_end - off).unwrap_or(usize::MAX)))
    }
}
