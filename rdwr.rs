// SPDX-License-Identifier: GPL-2.0

//! read(2)/write(2) on BAR and ROM regions (upstream `vfio_pci_bar_rw`).
//!
//! Each device access holds the memory lock for read only around that single access and is
//! refused with `EIO` while memory decode is off; user memory is copied before taking the lock
//! (writes) and after dropping it (reads), never under it: a fault on the user buffer takes
//! mmap_lock and then this same lock.

use kernel::prelude::*;

use crate::{
    device::{
        MemoryState,
        VfioPciDevice, //
    },
    ffi::{
        io::{
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
        Chunk, //
    },
};

/// Where the bytes of a transfer go to or come from.
enum Target<'a> {
    Bar(u32),
    Rom(&'a RomMap<'a>),
}

fn width_of(n: usize) -> Width {
    match n {
        8 => Width::W64,
        4 => Width::W32,
        2 => Width::W16,
        _ => Width::W8,
    }
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
        let pdev = self.pdev();
        let end = if index == regions::ROM {
            rawpci::rom_region_len(pdev)
        } else if rawpci::resource_start(pdev, index) != 0 {
            rawpci::resource_len(pdev, index)
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
                mem.bar(index)?;
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
                    let width = width_of(n);
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
                let map = mem.bar(*bar)?;
                match val {
                    Some(v) => map.write(off, width, v).then_some(0).ok_or(EINVAL),
                    None => map.read(off, width).ok_or(EINVAL),
                }
            }
            Target::Rom(rom) => match val {
                Some(_) => Err(EINVAL),
                None => rom.read(off, width).ok_or(EINVAL),
            },
        }
    }
}
