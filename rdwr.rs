// SPDX-License-Identifier: GPL-2.0

//! read(2)/write(2) on BAR and ROM regions (upstream `vfio_pci_bar_rw`).
//!
//! Each device access holds the memory lock for read only around that single access and is
//! refused with `EIO` while memory decode is off; user memory is copied before taking the lock
//! (writes) and after dropping it (reads), never under it: a fault on the user buffer takes
//! mmap_lock and then this same lock.
//!
//! Nearly every access is one naturally aligned register of 1, 2, 4 or 8 bytes inside one BAR,
//! clear of the MSI-X table: [`VfioPciDevice::bar_rw`] serves that case on a fast path that
//! uses only what the BAR's [`BarMap`] cached when it was claimed at open (start, length,
//! memory or I/O) and does the access directly, giving the answer the general chunk loop
//! would give; that loop handles everything else (the MSI-X hole, the ROM, unaligned or
//! longer transfers, the end of a BAR, and every error case, in its order). The one thing the
//! fast path does earlier is a write's copy of its (at most 8) bytes from user memory, before
//! it knows the BAR: a write the loop then refuses (absent BAR, offset past its end) has read
//! the user buffer before the same `EINVAL`.

use kernel::prelude::*;

use crate::{
    device::{
        MemoryState,
        VfioPciDevice, //
    },
    ffi::{
        io::{
            BarMap,
            RomMap,
            Width, //
        },
        pci as rawpci,
        rwsem::ReadGuard,
        user, //
    },
    regions::{
        self,
        next_chunk,
        Chunk,
        MsixTable, //
    },
};

/// Where the bytes of a transfer go to or come from.
enum Target<'a> {
    Bar(u32),
    Rom(&'a RomMap<'a>),
}

/// Copies the low `width` bytes of `val`, little-endian, to user address `buf`: one
/// fixed-size `copy_to_user`, as upstream's `copy_to_user(buf, &val, sizeof(val))`. `EFAULT`
/// if it faults (some bytes may have been written, as with any user copy).
#[inline(always)]
pub(crate) fn put_user_le(buf: usize, width: Width, val: u64) -> Result {
    // CAST: each arm keeps exactly the bytes of its width.
    match width {
        Width::W8 => user::write_val(buf, &(val as u8)),
        Width::W16 => user::write_val(buf, &(val as u16).to_le()),
        Width::W32 => user::write_val(buf, &(val as u32).to_le()),
        Width::W64 => user::write_val(buf, &val.to_le()),
    }
}

/// Reads `width` bytes, little-endian, from user address `buf` (one fixed-size
/// `copy_from_user`); `EFAULT` if it faults.
#[inline(always)]
fn get_user_le(buf: usize, width: Width) -> Result<u64> {
    Ok(match width {
        Width::W8 => u64::from(user::read_val::<u8>(buf)?),
        Width::W16 => u64::from(u16::from_le(user::read_val::<u16>(buf)?)),
        Width::W32 => u64::from(u32::from_le(user::read_val::<u32>(buf)?)),
        Width::W64 => u64::from_le(user::read_val::<u64>(buf)?),
    })
}

/// Whether `[pos, pos + count)` lies inside `map` and clear of the MSI-X table `table` (if it
/// is in this BAR), so the general loop would do it as one device access.
#[inline]
fn fast_in_range(map: &BarMap, table: Option<MsixTable>, bar: u32, pos: u64, count: u64) -> bool {
    let end = pos + count;
    map.assigned()
        && end <= map.len()
        && table.is_none_or(|t| t.bar != bar || end <= t.offset || pos >= t.offset + t.size)
}

impl VfioPciDevice {
    /// Reads or writes `count` bytes of BAR or ROM `index` at region position `pos`, from or to
    /// user buffer `buf`. Returns the bytes done (short at the end of the BAR).
    pub(crate) fn bar_rw(
        &self,
        index: u32,
        buf: usize,
        count: usize,
        pos: u64,
        write: bool,
    ) -> Result<usize> {
        // One naturally aligned register of a BAR (count 1, 2, 4 or 8, pos a multiple of it).
        if index < regions::ROM && pos & (count as u64).wrapping_sub(1) == 0 {
            if let Some(width) = Width::from_bytes(count) {
                if let Some(done) = self.bar_rw_fast(index, buf, width, pos, write) {
                    return done;
                }
            }
        }
        self.bar_rw_slow(index, buf, count, pos, write)
    }

    /// The fast path of [`Self::bar_rw`]: one access of `width` at `pos` of BAR `index` (0-5),
    /// aligned to its width. `None` when the general loop must decide (BAR not mapped, access
    /// past its end or touching the MSI-X table, or the user buffer not readable for a write):
    /// then nothing was done and that loop repeats every check, so every error comes from it,
    /// in its order. I/O-port BARs published in [`crate::ffi::io::PortBars`] are accessed
    /// without a lock, as upstream; for the others the memory lock is taken once, for read,
    /// around the check of memory decode (memory BARs) and the access, as upstream's
    /// `vfio_pci_core_ioread32` and friends; user memory is copied before taking it (write)
    /// and after dropping it (read).
    #[inline]
    fn bar_rw_fast(
        &self,
        index: u32,
        buf: usize,
        width: Width,
        pos: u64,
        write: bool,
    ) -> Option<Result<usize>> {
        let n = width.bytes();
        let val = if write {
            get_user_le(buf, width).ok()?
        } else {
            0
        };
        // An I/O-port BAR: no lock, as upstream (`test_mem` false); not published (a memory
        // BAR, or one the locked path must judge) falls through to it.
        if write {
            if self.port_bars().write(index, pos, width, val) {
                return Some(Ok(n));
            }
        } else if let Some(v) = self.port_bars().read(index, pos, width) {
            return Some(put_user_le(buf, width, v).map(|()| n));
        }
        let mem = self.memory_read();
        let map = mem.bar(index).ok()?;
        if !fast_in_range(map, mem.msix(), index, pos, n as u64) {
            return None;
        }
        // A BAR that cannot be mapped: the general path reports it.
        let io = map.io().ok()?;
        if map.is_mem() && !self.memory_accessible(&mem) {
            return Some(Err(EIO));
        }
        if write {
            let done = io.write(pos, width, val);
            drop(mem);
            return Some(if done { Ok(n) } else { Err(EINVAL) });
        }
        let val = io.read(pos, width);
        drop(mem);
        Some(match val {
            Some(v) => put_user_le(buf, width, v).map(|()| n),
            None => Err(EINVAL),
        })
    }

    /// The general path of [`Self::bar_rw`]: any transfer of a BAR or the ROM, in chunks.
    /// Out of line, so that its stack frame does not weigh on the fast path.
    #[inline(never)]
    fn bar_rw_slow(
        &self,
        index: u32,
        buf: usize,
        count: usize,
        pos: u64,
        write: bool,
    ) -> Result<usize> {
        let pdev = self.pdev();
        let end = if index == regions::ROM {
            rawpci::rom_region_len(pdev)
        } else if self.bar_start(index) != 0 {
            self.bar_len(index)
        } else {
            0
        };
        if end == 0 {
            return Err(EINVAL);
        }
        if pos >= end {
            return Err(EINVAL);
        }
        let rom = if index == regions::ROM {
            Some(RomMap::new(pdev).ok_or(ENOMEM)?)
        } else {
            None
        };
        let count = count.min(usize::try_from(end - pos).unwrap_or(usize::MAX));
        let test_mem =
            rawpci::resource_flags(pdev, index) & u64::from(kernel::bindings::IORESOURCE_MEM) != 0;

        // A write of up to 8 bytes (one register, nearly all writes) is copied in before the
        // memory lock is taken, so that the one acquisition below serves the BAR check and the
        // access, as upstream takes the lock once per access. If that copy fails, nothing is
        // reported here: the loop copies again after the BAR check and fails there, in the
        // same order as any other write.
        let mut pre = [0u8; 8];
        let pre_ok = write
            && rom.is_none()
            && count <= pre.len()
            && user::read_bytes(buf, &mut pre[..count]).is_ok();
        let mut held: Option<ReadGuard<'_, MemoryState>> = None;
        let (x_start, x_end, max_width, target) = match &rom {
            Some(rom) => (rom.rom_len(), end, 4, Target::Rom(rom)),
            None => {
                let mem = self.memory_read();
                // Claimed at open, mapped on first access (upstream's `get_iomap` errors).
                mem.bar(index)?.io()?;
                let table = mem.msix().filter(|t| t.bar == index);
                // Reads and pre-copied writes do their first access under this acquisition.
                if !write || pre_ok {
                    held = Some(mem);
                }
                match table {
                    Some(t) => (t.offset, t.offset + t.size, 8, Target::Bar(index)),
                    None => (0, 0, 8, Target::Bar(index)),
                }
            }
        };

        let mut done = 0usize;
        while done < count {
            let off = pos + done as u64;
            let ubuf = buf + done;
            match next_chunk(off, count - done, x_start, x_end, max_width) {
                Chunk::Io(n) => {
                    // next_chunk yields 1, 2, 4 or 8 bytes.
                    let width = Width::from_bytes(n).unwrap_or(Width::W8);
                    if write {
                        let bytes = if pre_ok && done == 0 && n == count {
                            pre
                        } else {
                            // Never copy from user memory with the lock held.
                            drop(held.take());
                            let mut bytes = [0u8; 8];
                            user::read_bytes(ubuf, &mut bytes[..n])?;
                            bytes
                        };
                        let val = u64::from_le_bytes(bytes);
                        self.io_access(held.take(), &target, test_mem, off, width, Some(val))?;
                    } else {
                        // The guard is released inside, before the copy out.
                        let val =
                            self.io_access(held.take(), &target, test_mem, off, width, None)?;
                        user::write_bytes(ubuf, &val.to_le_bytes()[..n])?;
                    }
                    done += n;
                }
                Chunk::Excluded(n) => {
                    drop(held.take());
                    if !write {
                        // Upstream copies byte by byte; the result is the same.
                        let ones = [0xffu8; 64];
                        let mut left = n;
                        while left > 0 {
                            let k = left.min(ones.len());
                            user::write_bytes(buf + done + (n - left), &ones[..k])?;
                            left -= k;
                        }
                    }
                    done += n;
                }
            }
        }
        Ok(done)
    }

    /// One device access under the memory lock (read side), `held` if the caller already
    /// holds it; `EIO` when decode is off. The lock is released on return.
    fn io_access(
        &self,
        held: Option<ReadGuard<'_, MemoryState>>,
        target: &Target<'_>,
        test_mem: bool,
        off: u64,
        width: Width,
        val: Option<u64>,
    ) -> Result<u64> {
        let mem = held.unwrap_or_else(|| self.memory_read());
        if test_mem && !self.memory_accessible(&mem) {
            return Err(EIO);
        }
        match target {
            Target::Bar(bar) => {
                let io = mem.bar(*bar)?.io()?;
                match val {
                    Some(v) => io.write(off, width, v).then_some(0).ok_or(EINVAL),
                    None => io.read(off, width).ok_or(EINVAL),
                }
            }
            Target::Rom(rom) => match val {
                Some(_) => Err(EINVAL),
                None => rom.read(off, width).ok_or(EINVAL),
            },
        }
    }
}
