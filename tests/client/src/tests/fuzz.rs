//! `fuzz`: a seeded, differential fuzzer of the device fd.
//!
//! A PRNG drives a sequence of calls on one open device: every device ioctl
//! (GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS with real eventfds,
//! RESET, GET_PCI_HOT_RESET_INFO, PCI_HOT_RESET, IOEVENTFD, FEATURE and
//! unknown numbers) with random argsz/flags/indexes/counts, pread/pwrite at
//! random offsets and sizes (region boundaries, the MSI-X table, config space
//! anywhere), mmap/munmap/mremap on random ranges and fork (the child touches
//! every live mapping). The parameters of call N depend only on the seed, never
//! on earlier answers, so a run under vfio_pci_rs and one under vfio-pci see
//! the same calls. One line per call goes to the outcome file: the call and its
//! answer (errno name, or "ok" and the return value; never device data).
//! `fuzz-compare` diffs two outcome files.
//!
//! Excluded on purpose, to keep both runs deterministic and the guest alive:
//! - the Bus Master bit of COMMAND is cleared in every config write, so random
//!   BAR writes (edu's DMA register, nvme's queues, igb's rings) cannot start
//!   DMA, and the devices cannot send MSIs (QEMU gates both on bus mastering);
//!   DMA through the empty IOMMU domain would only produce DMAR faults whose
//!   timing depends on the device model;
//! - BIND_IOMMUFD/ATTACH/DETACH_IOMMUFD_PT (VFIO core, not the driver): a
//!   detach would leave the rest of the run testing only "not attached";
//! - zeros replace data written to edu's DMA registers (BAR0 0x80..0xa0):
//!   QEMU 10's edu performs out-of-range DMA into its own buffer and segfaults;
//! - resets are rare (a FLR or bus reset sleeps 100 ms to 1 s under TCG).
//!
//! BAR reprogramming, ROM BAR, PM state (D3hot), MSI/MSI-X enables and
//! everything else in config space stay in: vfio-pci virtualizes them.

use crate::open::{Device, Mode};
use crate::sys::{self, Errno};
use crate::uapi::*;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const VFIO_DEVICE_SET_IRQS: u64 = io(VFIO_TYPE, VFIO_BASE + 10);
const VFIO_DEVICE_IOEVENTFD: u64 = io(VFIO_TYPE, VFIO_BASE + 16);
const VFIO_DEVICE_FEATURE: u64 = io(VFIO_TYPE, VFIO_BASE + 17);
const SLOTS: usize = 8;
const PAGE: u64 = 4096;

/// xorshift64*: small, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (0 is remapped: xorshift has no zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    /// One of `xs`.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What the fuzzer knows about the device before it starts (identical under
/// both drivers, and written as the first line so a difference shows).
struct Layout {
    sizes: [u64; 9],
    /// MSI-X table: BAR, offset, length.
    msix: Option<(u32, u64, u64)>,
}

fn layout(dev: &Device) -> Layout {
    let mut sizes = [0u64; 9];
    for (i, s) in sizes.iter_mut().enumerate() {
        if let Ok((r, _)) = dev.region(i as u32) {
            *s = r.size;
        }
    }
    let mut cfg = [0u8; 256];
    let mut msix = None;
    if dev
        .read_region(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut cfg)
        .is_ok()
    {
        let mut p = cfg[0x34] as usize & !3;
        for _ in 0..48 {
            if !(0x40..=0xfc).contains(&p) {
                break;
            }
            if cfg[p] == 0x11 {
                let n = (u16::from_le_bytes([cfg[p + 2], cfg[p + 3]]) & 0x7ff) as u64 + 1;
                let t = u32::from_le_bytes([cfg[p + 4], cfg[p + 5], cfg[p + 6], cfg[p + 7]]);
                msix = Some((t & 7, (t & !7) as u64, n * 16));
                break;
            }
            p = cfg[p + 1] as usize & !3;
        }
    }
    Layout { sizes, msix }
}

/// The fuzzer's state: the device, the PRNG, live mappings, eventfds.
struct Fuzz<'a> {
    dev: &'a Device,
    rng: Rng,
    lay: Layout,
    maps: [Option<(usize, usize)>; SLOTS],
    efds: Vec<RawFd>,
    out: BufWriter<std::fs::File>,
    cdev: bool,
    /// The device is QEMU's edu (see `rw`).
    edu: bool,
}

fn res(r: Result<i64, Errno>) -> String {
    match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => e.name(),
    }
}

fn last<T>(ok: bool, v: T) -> Result<T, Errno> {
    if ok {
        Ok(v)
    } else {
        Err(Errno::last())
    }
}

impl Fuzz<'_> {
    fn ioctl(&self, req: u64, buf: &mut AlignedBuf) -> Result<i64, Errno> {
        self.dev.ioctl_buf(req, buf).map(i64::from)
    }

    /// A random argsz around `want`: exact, short, long, zero, huge.
    fn argsz(&mut self, want: u32) -> u32 {
        match self.rng.below(8) {
            0 => 0,
            1 => want.saturating_sub(1 + self.rng.below(want as u64 + 1) as u32),
            2 => want + self.rng.below(64) as u32,
            3 => u32::MAX,
            4 => self.rng.next() as u32,
            _ => want,
        }
    }

    fn index(&mut self, n: u32) -> u32 {
        match self.rng.below(10) {
            0 => self.rng.next() as u32,
            1 => n + self.rng.below(4) as u32,
            _ => self.rng.below(n as u64) as u32,
        }
    }

    /// An offset inside or around region `i`: edges, the MSI-X table, random.
    fn offset(&mut self, i: u32) -> u64 {
        let size = self.lay.sizes.get(i as usize).copied().unwrap_or(0);
        let k = self.rng.below(16);
        match self.rng.below(8) {
            0 => k,
            1 => size.wrapping_sub(k + 1),
            2 => size + k,
            3 => match self.lay.msix {
                Some((bar, off, len)) if bar == i => {
                    (off + self.rng.below(len + 32)).wrapping_sub(16)
                }
                _ => self.rng.below(size.max(1)),
            },
            4 => self.rng.next() & ((1 << 40) - 1),
            _ => self.rng.below(size.max(1)),
        }
    }

    fn region_index(&mut self) -> u32 {
        match self.rng.below(12) {
            0..=3 => VFIO_PCI_CONFIG_REGION_INDEX,
            4 => self.rng.below(16) as u32,
            5 => VFIO_PCI_ROM_REGION_INDEX,
            _ => self.rng.below(6) as u32,
        }
    }

    fn rw(&mut self) -> String {
        let i = self.region_index();
        let off = self.offset(i);
        let len = match self.rng.below(8) {
            0 => 0,
            1..=4 => self.rng.pick(&[1usize, 2, 4, 8]),
            5 => self.rng.below(64) as usize,
            _ => self.rng.below(4096) as usize + 1,
        };
        let write = self.rng.one_in(2);
        let mut b: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
        let pos = region_offset(i).wrapping_add(off);
        if write {
            if i == VFIO_PCI_CONFIG_REGION_INDEX && off <= 4 && off + len as u64 > 4 {
                b[(4 - off) as usize] &= !4; // no bus mastering (see module doc)
            }
            if self.edu && i == 0 {
                // edu's DMA registers (0x80..0xa0): QEMU 10's edu logs an
                // out-of-range DMA and then performs it anyway, overrunning its
                // buffer: QEMU segfaults (seen under both drivers).
                for (k, x) in b.iter_mut().enumerate() {
                    if (0x80..0xa0).contains(&off.wrapping_add(k as u64)) {
                        *x = 0;
                    }
                }
            }
            let r = sys::pwrite(self.dev.fd, &b, pos).map(|n| n as i64);
            format!("pwrite r{i}+{off:#x} len={len} = {}", res(r))
        } else {
            let r = sys::pread(self.dev.fd, &mut b, pos).map(|n| n as i64);
            format!("pread r{i}+{off:#x} len={len} = {}", res(r))
        }
    }

    fn info(&mut self) -> String {
        let which = self.rng.below(3);
        let (req, minsz, name) = match which {
            0 => (VFIO_DEVICE_GET_INFO, DEVICE_INFO_SIZE as u32, "get_info"),
            1 => (
                VFIO_DEVICE_GET_REGION_INFO,
                REGION_INFO_SIZE as u32,
                "region_info",
            ),
            _ => (VFIO_DEVICE_GET_IRQ_INFO, IRQ_INFO_SIZE as u32, "irq_info"),
        };
        let extra = self.rng.pick(&[0, 0, 64, 256]);
        let argsz = self.argsz(minsz + extra);
        let index = match which {
            1 => self.index(9),
            _ => self.index(5),
        };
        let mut b = AlignedBuf::filled(4096, 0);
        b.put_u32(0, argsz);
        let r = self.rng.next() as u32;
        b.put_u32(4, self.rng.pick(&[0, 0, 0, r]));
        b.put_u32(8, index);
        // A huge argsz is fine with this 4 KiB buffer: the drivers copy out
        // only the struct and its capabilities.
        let r = self.ioctl(req, &mut b);
        // Returned argsz and flags are part of the answer; both are stable.
        let extra = if r.is_ok() {
            format!(" argsz={} flags={:#x}", b.u32_at(0), b.u32_at(4))
        } else {
            String::new()
        };
        format!("{name} argsz={argsz} index={index} = {}{extra}", res(r))
    }

    fn set_irqs(&mut self) -> String {
        let index = self.index(5);
        let data = match self.rng.below(8) {
            0 => self.rng.next() as u32 & 0x3f,
            1..=2 => 1,
            3..=4 => 2,
            _ => 4,
        };
        let action = match self.rng.below(8) {
            0 => (self.rng.next() as u32 & 0x3f) << 3,
            1 => 1 << 3,
            2 => 1 << 4,
            _ => 1 << 5,
        };
        let flags = data | action;
        let start = match self.rng.below(4) {
            0 => self.rng.below(64) as u32,
            1 => self.rng.next() as u32,
            _ => 0,
        };
        let count = match self.rng.below(8) {
            0 => 0,
            1 => self.rng.next() as u32,
            2 => self.rng.below(2049) as u32,
            3 => self.rng.below(8) as u32,
            _ => 1,
        };
        let each = match data {
            1 => 0,
            2 => 1,
            _ => 4,
        };
        let n = (count as usize).min(4096);
        let need = IRQ_SET_HDR_LEN + n * each;
        let argsz = self.argsz(need as u32);
        let mut b = AlignedBuf::filled(need.max(64), 0);
        b.put_u32(0, argsz);
        b.put_u32(4, flags);
        b.put_u32(8, index);
        b.put_u32(12, start);
        b.put_u32(16, count);
        for k in 0..n {
            if each == 1 {
                b.bytes_mut()[IRQ_SET_HDR_LEN + k] = self.rng.pick(&[0u8, 1, 1, 2]);
            } else if each == 4 {
                let fd = match self.rng.below(8) {
                    0 => -1,
                    1 => 1000,
                    2 => self.dev.fd,
                    _ => self.efds[self.rng.below(self.efds.len() as u64) as usize],
                };
                b.put_u32(IRQ_SET_HDR_LEN + 4 * k, fd as u32);
            }
        }
        let r = self.ioctl(VFIO_DEVICE_SET_IRQS, &mut b);
        format!("set_irqs argsz={argsz} flags={flags:#x} index={index} start={start} count={count} = {}", res(r))
    }

    fn reset(&mut self) -> String {
        let arg = self.rng.pick(&[0u64, 0, 1, u64::MAX]);
        let r = self.dev.ioctl_val(VFIO_DEVICE_RESET, arg).map(i64::from);
        format!("reset arg={arg:#x} = {}", res(r))
    }

    fn hot_reset_info(&mut self) -> String {
        let extra = self.rng.pick(&[0u32, 16, 32, 64]);
        let argsz = self.argsz(12 + extra);
        let mut b = AlignedBuf::filled(4096, 0);
        b.put_u32(0, argsz);
        let r = self.rng.next() as u32;
        b.put_u32(4, self.rng.pick(&[0, 0, 1, 2, r]));
        let r = self.ioctl(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &mut b);
        let extra = match r {
            Ok(_) | Err(Errno(libc::ENOSPC)) => {
                format!(" count={}", b.u32_at(8))
            }
            _ => String::new(),
        };
        format!("hot_reset_info argsz={argsz} = {}{extra}", res(r))
    }

    fn hot_reset(&mut self) -> String {
        let r = self.rng.next() as u32;
        let count = self.rng.pick(&[0u32, 0, 1, 1, 2, 64, r]);
        let n = (count as usize).min(64);
        let argsz = self.argsz(12 + 4 * n as u32);
        let mut b = AlignedBuf::filled(12 + 4 * 64, 0);
        b.put_u32(0, argsz);
        let r = self.rng.next() as u32;
        b.put_u32(4, self.rng.pick(&[0, 0, 1, r]));
        b.put_u32(8, count);
        for k in 0..n {
            let fd = match self.rng.below(4) {
                0 => -1,
                1 => self.efds[0],
                _ => self.dev.group_fd(),
            };
            b.put_u32(12 + 4 * k, fd as u32);
        }
        let r = self.ioctl(VFIO_DEVICE_PCI_HOT_RESET, &mut b);
        format!("hot_reset argsz={argsz} count={count} = {}", res(r))
    }

    fn ioeventfd(&mut self) -> String {
        // struct vfio_device_ioeventfd: argsz, flags, offset, data, fd.
        let i = self.rng.below(7) as u32;
        let off = region_offset(i).wrapping_add(self.offset(i));
        let flags = match self.rng.below(6) {
            0 => self.rng.next() as u32 & 0x1f,
            k => 1 << (k - 1).min(3),
        };
        let fd = match self.rng.below(4) {
            0 => -1,
            1 => 1000,
            _ => self.efds[self.rng.below(self.efds.len() as u64) as usize],
        };
        let argsz = self.argsz(32);
        let mut b = AlignedBuf::filled(64, 0);
        b.put_u32(0, argsz);
        b.put_u32(4, flags);
        b.bytes_mut()[8..16].copy_from_slice(&off.to_ne_bytes());
        let mut data = self.rng.next() & 0xff;
        // A signalled ioeventfd writes like a pwrite: not into edu's DMA registers (see `rw`).
        let pos = off & ((1 << 40) - 1);
        if self.edu && i == 0 && pos < 0xa0 && pos + 8 > 0x80 {
            data = 0;
        }
        b.bytes_mut()[16..24].copy_from_slice(&data.to_ne_bytes());
        b.put_u32(24, fd as u32);
        let r = self.ioctl(VFIO_DEVICE_IOEVENTFD, &mut b);
        format!(
            "ioeventfd argsz={argsz} flags={flags:#x} off={off:#x} fd={fd} = {}",
            res(r)
        )
    }

    fn feature(&mut self) -> String {
        // struct vfio_device_feature: argsz, flags (feature | GET/SET/PROBE).
        let feat = self.rng.below(14) as u32;
        let op = match self.rng.below(6) {
            0 => 1 << 16,
            1 => 1 << 17,
            2 => self.rng.next() as u32 & 0xffff_0000,
            _ => 1 << 18 | self.rng.pick(&[0, 1 << 16, 1 << 17]),
        };
        // LOW_POWER_ENTRY(_WITH_WAKEUP) is really set too: the test kernels have no
        // CONFIG_PM, where upstream only marks the device engaged (mappings fault SIGBUS, a
        // second entry is EINVAL) until LOW_POWER_EXIT (feature 5) or close. On a kernel with
        // runtime PM, upstream would power the device down at a moment of its choosing.
        let extra = self.rng.pick(&[0u32, 4, 8, 16]);
        let argsz = self.argsz(8 + extra);
        let mut b = AlignedBuf::filled(256, 0);
        b.put_u32(0, argsz);
        b.put_u32(4, feat | op);
        b.put_u32(8, self.efds[0] as u32);
        let r = self.ioctl(VFIO_DEVICE_FEATURE, &mut b);
        format!("feature argsz={argsz} flags={:#x} = {}", feat | op, res(r))
    }

    fn unknown(&mut self) -> String {
        let req = match self.rng.below(4) {
            // Core ioctls left out on purpose (see module doc).
            0 => loop {
                let nr = VFIO_BASE + self.rng.below(64) as u8;
                if !(118..=120).contains(&nr)
                    && !(107..=113).contains(&nr)
                    && nr != 116
                    && nr != 117
                {
                    break io(VFIO_TYPE, nr);
                }
            },
            // A known number with size/direction bits: not the same ioctl.
            1 => VFIO_DEVICE_GET_INFO | (self.rng.below(4) << 30) | (self.rng.below(256) << 16),
            2 => io(self.rng.below(256) as u8, self.rng.below(256) as u8),
            _ => io(VFIO_TYPE, VFIO_BASE + 60 + self.rng.below(20) as u8),
        };
        // Generic fd ioctls ('T' type: FIOCLEX, FIONBIO...) are answered by
        // the VFS, not the driver.
        if req == VFIO_DEVICE_GET_INFO || (req >> 8) & 0xff == u64::from(b'T') {
            return "ioctl skipped".into();
        }
        let mut b = AlignedBuf::filled(256, 0);
        b.put_u32(0, self.rng.pick(&[0u32, 16, 256]));
        let r = self.ioctl(req, &mut b);
        format!("ioctl {req:#x} = {}", res(r))
    }

    fn mmap(&mut self) -> String {
        let slot = self.rng.below(SLOTS as u64) as usize;
        let i = self.region_index();
        let size = self.lay.sizes.get(i as usize).copied().unwrap_or(0);
        let pages = size.div_ceil(PAGE).max(1);
        let mut off = match self.rng.below(6) {
            0 => 0,
            1 => pages.saturating_sub(1) * PAGE,
            2 => pages * PAGE,
            3 => match self.lay.msix {
                Some((bar, o, _)) if bar == i => o & !(PAGE - 1),
                _ => 0,
            },
            _ => self.rng.below(pages) * PAGE,
        };
        if self.rng.one_in(32) {
            off += 1 + self.rng.below(PAGE - 1);
        }
        let len = match self.rng.below(6) {
            0 => pages * PAGE,
            1 => (pages + 1) * PAGE,
            2 => 0,
            3 => self.rng.below(512).max(1) * PAGE,
            _ => (1 + self.rng.below(4)) * PAGE,
        };
        let prot = self.rng.pick(&[3, 3, 3, 1, 2, 0]);
        let flags = if self.rng.one_in(16) {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        self.unmap_slot(slot);
        // SAFETY: NULL hint: the kernel picks an address, nothing is replaced.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot,
                flags,
                self.dev.fd,
                region_offset(i).wrapping_add(off) as libc::off_t,
            )
        };
        let r = last(p != libc::MAP_FAILED, 0);
        if r.is_ok() {
            self.maps[slot] = Some((p as usize, len as usize));
        }
        format!(
            "mmap slot={slot} r{i}+{off:#x} len={len:#x} prot={prot} flags={flags} = {}",
            res(r)
        )
    }

    fn unmap_slot(&mut self, slot: usize) {
        if let Some((a, l)) = self.maps[slot].take() {
            // SAFETY: a/l is a mapping this fuzzer created and tracks.
            unsafe { libc::munmap(a as *mut libc::c_void, l) };
        }
    }

    fn munmap(&mut self) -> String {
        let slot = self.rng.below(SLOTS as u64) as usize;
        let how = self.rng.below(3);
        let k = 1 + self.rng.below(4) as usize;
        let Some((a, l)) = self.maps[slot] else {
            return format!("munmap slot={slot} = empty");
        };
        let pages = l / PAGE as usize;
        let r = if how == 0 || k >= pages {
            self.maps[slot] = None;
            // SAFETY: the whole tracked mapping.
            last(unsafe { libc::munmap(a as *mut libc::c_void, l) } == 0, 0)
        } else if how == 1 {
            self.maps[slot] = Some((a + k * PAGE as usize, l - k * PAGE as usize));
            // SAFETY: the head of the tracked mapping.
            last(
                unsafe { libc::munmap(a as *mut libc::c_void, k * PAGE as usize) } == 0,
                0,
            )
        } else {
            self.maps[slot] = Some((a, l - k * PAGE as usize));
            let t = a + l - k * PAGE as usize;
            // SAFETY: the tail of the tracked mapping.
            last(
                unsafe { libc::munmap(t as *mut libc::c_void, k * PAGE as usize) } == 0,
                0,
            )
        };
        format!("munmap slot={slot} how={how} k={k} = {}", res(r))
    }

    fn mremap(&mut self) -> String {
        let slot = self.rng.below(SLOTS as u64) as usize;
        let grow = self.rng.one_in(2);
        let moving = self.rng.one_in(2);
        let k = 1 + self.rng.below(4) as usize;
        let Some((a, l)) = self.maps[slot] else {
            return format!("mremap slot={slot} = empty");
        };
        let pg = PAGE as usize;
        let new = if grow {
            l + k * pg
        } else {
            l.saturating_sub(k * pg).max(pg)
        };
        let flags = if moving { libc::MREMAP_MAYMOVE } else { 0 };
        // SAFETY: a/l is tracked; on success the kernel says where it is now.
        let p = unsafe { libc::mremap(a as *mut libc::c_void, l, new, flags) };
        let r = last(p != libc::MAP_FAILED, 0);
        if r.is_ok() {
            self.maps[slot] = Some((p as usize, new));
        }
        format!(
            "mremap slot={slot} grow={grow} move={moving} k={k} = {}",
            res(r)
        )
    }

    /// Fork; the child reads the first byte of every live readable mapping
    /// and exits 0 (SIGBUS if a fault is refused).
    fn fork(&mut self) -> String {
        // SAFETY: the child only reads memory and calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for m in self.maps.iter().flatten() {
                // SAFETY: a live mapping; a refused fault kills only the child.
                unsafe { std::ptr::read_volatile(m.0 as *const u8) };
            }
            // SAFETY: leaves the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            return format!("fork = {}", Errno::last().name());
        }
        let st = sys::wait_child(pid, Duration::from_secs(30));
        format!("fork = {}", sys::describe_status(st))
    }

    fn step(&mut self) -> String {
        match self.rng.below(1000) {
            0..=299 => self.rw(),
            300..=449 => self.info(),
            450..=599 => self.set_irqs(),
            600..=609 => self.hot_reset_info(),
            610..=639 => self.ioeventfd(),
            640..=669 => self.feature(),
            670..=719 => self.unknown(),
            720..=849 => self.mmap(),
            850..=929 => self.munmap(),
            930..=989 => self.mremap(),
            990..=991 => self.fork(),
            // FLR / bus reset sleep under TCG: keep them rare.
            992..=997 => {
                if self.rng.one_in(16) {
                    self.reset()
                } else {
                    self.rw()
                }
            }
            _ => {
                if self.rng.one_in(64) {
                    self.hot_reset()
                } else {
                    self.info()
                }
            }
        }
    }
}

/// Wall time spent per kind of call (the first word of its outcome line, with
/// the region for pread/pwrite), to see where one driver spends more than the
/// other. Printed after the totals as `fuzz-time: KIND calls N us U`, most
/// expensive first.
#[derive(Default)]
struct OpTimes(Vec<(String, u64, Duration)>);

impl OpTimes {
    fn add(&mut self, line: &str, d: Duration) {
        let mut w = line.split(' ');
        let first = w.next().unwrap_or("");
        let kind = match first {
            "pread" | "pwrite" => {
                let r = w.next().unwrap_or("").split('+').next().unwrap_or("");
                format!("{first}.{r}")
            }
            _ => first.to_string(),
        };
        match self.0.iter_mut().find(|e| e.0 == kind) {
            Some(e) => {
                e.1 += 1;
                e.2 += d;
            }
            None => self.0.push((kind, 1, d)),
        }
    }

    fn print(&mut self) {
        self.0.sort_by_key(|e| std::cmp::Reverse(e.2));
        for (k, n, d) in &self.0 {
            println!("fuzz-time: {k} calls {n} us {}", d.as_micros());
        }
    }
}

/// The `IRQ_SET` header size (argsz, flags, index, start, count).
const IRQ_SET_HDR_LEN: usize = 20;

/// Parse `fuzz [--mode M] [--seed N] [--calls N] [--secs N] --out FILE BDF`.
pub fn parse<I: Iterator<Item = String>>(mut it: I) -> Result<crate::cli::Command, String> {
    let (mut mode, mut seed, mut calls, mut secs, mut out, mut bdf) =
        (Mode::Group, 1u64, 1_000_000u64, 60u64, None, None);
    while let Some(a) = it.next() {
        let num = |it: &mut I| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{a} needs a value"))?;
            v.parse().map_err(|_| format!("bad number '{v}'"))
        };
        match a.as_str() {
            "--mode" => {
                let v = it.next().ok_or("--mode needs a value")?;
                mode = Mode::parse(&v).ok_or(format!("bad mode '{v}'"))?;
            }
            "--seed" => seed = num(&mut it)?,
            "--calls" => calls = num(&mut it)?,
            "--secs" => secs = num(&mut it)?,
            "--out" => out = Some(it.next().ok_or("--out needs a file")?.into()),
            s if crate::device::valid_bdf(s) && bdf.is_none() => bdf = Some(s.to_string()),
            s => return Err(format!("unexpected argument '{s}'")),
        }
    }
    Ok(crate::cli::Command::Fuzz {
        mode,
        seed,
        calls,
        secs,
        out: out.ok_or("fuzz needs --out FILE")?,
        bdf: bdf.ok_or("missing BDF")?,
    })
}

/// `vfio-test fuzz`: run up to `calls` calls (or `secs` seconds) with `seed`
/// on `bdf`, writing one outcome line per call to `out`. Prints the count and
/// rate on stdout as `fuzz: calls N secs S rate R/s`.
pub fn run(mode: Mode, bdf: &str, seed: u64, calls: u64, secs: u64, out: &Path) -> i32 {
    let dev = match Device::open(bdf, mode) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fuzz: open {bdf}: {e}");
            return 1;
        }
    };
    let file = match std::fs::File::create(out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fuzz: create {}: {e}", out.display());
            return 1;
        }
    };
    let lay = layout(&dev);
    let mut efds = Vec::new();
    for _ in 0..4 {
        // SAFETY: plain system call.
        efds.push(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) });
    }
    let cdev = dev.is_cdev();
    let mut f = Fuzz {
        dev: &dev,
        rng: Rng::new(seed),
        lay,
        maps: [None; SLOTS],
        efds,
        out: BufWriter::new(file),
        cdev,
        edu: crate::device::read_ids(bdf) == Some((0x1234, 0x11e8)),
    };
    let _ = writeln!(
        f.out,
        "layout sizes={:x?} msix={:x?} cdev={}",
        f.lay.sizes, f.lay.msix, f.cdev
    );
    // VPR_FUZZ_MARK: the run sits between two profile markers (bench/prof/insncount.c counts
    // the guest instructions in between), for a profile of where a driver spends the fuzz.
    let mark = std::env::var_os("VPR_FUZZ_MARK").is_some();
    if mark {
        super::bench::marker();
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut n = 0u64;
    let mut times = OpTimes::default();
    let window: Option<u64> = std::env::var("VPR_FUZZ_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok());
    // Debugging a guest or QEMU crash: flush every line (e.g. with --out /dev/console).
    let flush = std::env::var_os("VPR_FUZZ_FLUSH").is_some();
    while n < calls {
        if n.is_multiple_of(256) && Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let line = f.step();
        times.add(&line, t.elapsed());
        let _ = writeln!(f.out, "{n} {line}");
        if flush {
            let _ = f.out.flush();
        }
        n += 1;
        if window.is_some_and(|w| n.is_multiple_of(w)) {
            println!("fuzz-window: calls {n}");
            times.print();
            times = OpTimes::default();
        }
    }
    if mark {
        super::bench::marker();
    }
    for s in 0..SLOTS {
        f.unmap_slot(s);
    }
    let _ = f.out.flush();
    for &e in &f.efds {
        sys::close(e);
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "fuzz: {bdf} seed {seed} calls {n} secs {t:.1} rate {:.0}/s",
        n as f64 / t.max(1e-9)
    );
    times.print();
    0
}

/// `vfio-test fuzz-compare A B`: compare two outcome files over their common
/// prefix; print `fuzz-compare: calls A B compared N mismatches M` and the
/// first mismatching lines. Returns the mismatch count.
pub fn compare(a: &Path, b: &Path) -> u64 {
    let open = |p: &Path| std::fs::File::open(p).map(BufReader::new);
    let (fa, fb) = match (open(a), open(b)) {
        (Ok(x), Ok(y)) => (x, y),
        _ => {
            eprintln!(
                "fuzz-compare: cannot open {} or {}",
                a.display(),
                b.display()
            );
            return 1;
        }
    };
    let (mut la, mut lb) = (fa.lines(), fb.lines());
    let (mut na, mut nb, mut same, mut diff) = (0u64, 0u64, 0u64, 0u64);
    let mut classes = std::collections::BTreeMap::new();
    loop {
        let x = la.next().and_then(|l| l.ok());
        let y = lb.next().and_then(|l| l.ok());
        na += x.is_some() as u64;
        nb += y.is_some() as u64;
        match (x, y) {
            (Some(x), Some(y)) => {
                if x == y {
                    same += 1;
                } else {
                    diff += 1;
                    // Class: the call's name and both answers (numbers dropped).
                    let key = |l: &str| {
                        let (call, ans) = l.split_once(" = ").unwrap_or((l, ""));
                        let mut op = call.split_whitespace().nth(1).unwrap_or("").to_string();
                        if call.ends_with(" len=0") {
                            op.push_str("(len=0)");
                        }
                        (op, ans.split_whitespace().next().unwrap_or("").to_string())
                    };
                    let ((op, ra), (_, rb)) = (key(&x), key(&y));
                    *classes.entry(format!("{op}: {ra} vs {rb}")).or_insert(0u64) += 1;
                    if diff <= 10 {
                        println!("# mismatch\n#  A: {x}\n#  B: {y}");
                    }
                }
            }
            (None, None) => break,
            _ => {}
        }
    }
    for (k, v) in &classes {
        println!("# mismatch class {k}: {v}");
    }
    println!(
        "fuzz-compare: lines {na} {nb} compared {} mismatches {diff}",
        same + diff
    );
    diff
}

/// `vfio-test hp-hold BDF SECS`: the user side of a hot-unplug cycle. Opens the
/// device (group mode) with a REQ eventfd, maps BAR0 and touches it, prints
/// `hp-hold: ready`, waits up to SECS for the REQ the driver sends when the
/// device is being removed, then probes the device once more (pread of BAR0,
/// a forked child touching the mapping), prints
/// `hp-hold: req=N pread=R child=S` and closes, which lets the removal finish.
/// Returns 0 iff REQ was signalled.
pub fn hp_hold(bdf: &str, secs: u64) -> i32 {
    let dev = match Device::open(bdf, Mode::Group) {
        Ok(d) => d,
        Err(e) => {
            println!("hp-hold: open failed: {e}");
            return 1;
        }
    };
    // SAFETY: plain system call.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    let mut b = AlignedBuf::filled(IRQ_SET_HDR_LEN + 4, 0);
    b.put_u32(0, (IRQ_SET_HDR_LEN + 4) as u32);
    b.put_u32(4, 4 | (1 << 5)); // DATA_EVENTFD | ACTION_TRIGGER
    b.put_u32(8, VFIO_PCI_REQ_IRQ_INDEX);
    b.put_u32(16, 1);
    b.put_u32(IRQ_SET_HDR_LEN, efd as u32);
    let set = dev.ioctl_buf(VFIO_DEVICE_SET_IRQS, &mut b);
    let map = sys::Mapping::new_aligned(dev.fd, region_offset(0), PAGE, PAGE);
    if let Ok(m) = &map {
        // SAFETY: a live, readable mapping of BAR0 with memory decode on or off;
        // a refused fault would kill this process, which the caller sees.
        unsafe { std::ptr::read_volatile(m.addr() as *const u32) };
    }
    println!(
        "hp-hold: ready set_irqs={} map={}",
        res(set.map(i64::from)),
        res(map.as_ref().map(|_| 0).map_err(|e| *e))
    );
    let _ = std::io::stdout().flush();
    let mut p = libc::pollfd {
        fd: efd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut p, 1, (secs * 1000) as i32) };
    let mut n = 0u64;
    if ready == 1 {
        // SAFETY: reads 8 bytes into n.
        unsafe { libc::read(efd, (&mut n as *mut u64).cast(), 8) };
    }
    let mut w = [0u8; 4];
    let pr = sys::pread(dev.fd, &mut w, region_offset(0)).map(|x| x as i64);
    let child = match &map {
        Ok(m) => {
            let a = m.addr();
            // SAFETY: the child only reads the mapping and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above; a refused fault kills the child only.
                unsafe {
                    std::ptr::read_volatile(a as *const u32);
                    libc::_exit(0)
                };
            }
            sys::describe_status(sys::wait_child(pid, Duration::from_secs(20)))
        }
        Err(_) => "no mapping".into(),
    };
    println!("hp-hold: req={n} pread={} child={child}", res(pr));
    drop(map);
    drop(dev);
    sys::close(efd);
    i32::from(n == 0)
}

/// `vfio-test fault-loop BDF SECS`: map every BAR at an unaligned address (4K
/// faults only) and touch every page in a loop for SECS; the stress script
/// SIGKILLs it at random moments, i.e. in the middle of faults.
pub fn fault_loop(bdf: &str, secs: u64) -> i32 {
    let Ok(dev) = Device::open(bdf, Mode::Cdev) else {
        return 1;
    };
    let lay = layout(&dev);
    let mut maps = Vec::new();
    for i in 0..6u32 {
        let len = lay.sizes[i as usize];
        if len >= PAGE {
            if let Ok(m) = sys::Mapping::new_aligned(dev.fd, region_offset(i), len, PAGE) {
                maps.push(m);
            }
        }
    }
    let end = Instant::now() + Duration::from_secs(secs);
    let mut touched = 0u64;
    while Instant::now() < end && !maps.is_empty() {
        for m in &maps {
            for off in (0..m.size()).step_by(PAGE as usize) {
                // SAFETY: inside a live mapping; a refused fault is SIGBUS.
                unsafe { std::ptr::read_volatile((m.addr() + off) as *const u8) };
                touched += 1;
            }
        }
    }
    println!("fault-loop: {touched} pages touched");
    0
}

/// Fork a worker that runs `work` and exits; returns its pid. The worker leads
/// a process group of its own (set on both sides of the fork, so neither
/// races the other), which every process it forks joins: the fuzz worker's
/// `fork` call leaves a grandchild holding the inherited group, container and
/// device fds and the BAR mappings.
fn spawn(work: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the caller is single-threaded (the races parent); the child runs
    // `work` and leaves with _exit, never returning into the parent's code.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain system calls on this process.
        unsafe { libc::setpgid(0, 0) };
        work();
        // SAFETY: see above.
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        // SAFETY: pid is our child, not yet past exec (it never execs).
        unsafe { libc::setpgid(pid, pid) };
    }
    pid
}

/// SIGKILLs worker `pid` and every process of its group, and reaps them all,
/// grandchildren included (the races parent is their subreaper, so a grandchild
/// orphaned by the worker's death becomes its child). When this returns `Some`,
/// no process of that worker holds a file of the device any more: each exiting
/// process releases its files and mappings before it can be reaped. Returns the
/// number of grandchildren the SIGKILL found alive (each held the group, the
/// device and its mappings until then), or `None` if they were not all gone
/// within `limit`.
fn kill_worker(pid: libc::pid_t, limit: Duration) -> Option<u32> {
    // SAFETY: pid leads a process group of our own workers (see `spawn`).
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    sys::wait_child(pid, limit);
    let deadline = Instant::now() + limit;
    let mut killed = 0;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer; -pid names the worker's group,
        // whose remaining members are our children now (subreaper).
        let r = unsafe { libc::waitpid(-pid, &mut status, libc::WNOHANG) };
        if r < 0 {
            return Some(killed); // ECHILD: none left in the group
        }
        if r > 0 && libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
            killed += 1;
        }
        if r == 0 {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The processes that hold `path` open (pid and command name), from /proc.
fn holders(path: &Path) -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse::<u32>().ok()?;
            let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
            let holds = fds
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path));
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            holds.then(|| format!("{pid} ({})", comm.trim()))
        })
        .collect()
}

/// A fuzz worker on the inherited device fd: endless seeded calls.
fn fuzz_worker(dev: &Device, seed: u64) {
    let Ok(file) = std::fs::File::create("/dev/null") else {
        return;
    };
    let mut efds = Vec::new();
    for _ in 0..4 {
        // SAFETY: plain system call.
        efds.push(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) });
    }
    let mut f = Fuzz {
        dev,
        rng: Rng::new(seed),
        lay: layout(dev),
        maps: [None; SLOTS],
        efds,
        out: BufWriter::new(file),
        cdev: false,
        edu: crate::device::read_ids(&dev.bdf) == Some((0x1234, 0x11e8)),
    };
    loop {
        let _ = f.step();
    }
}

/// A fault worker: every BAR mapped (4K faults), three threads touching every
/// page, one of them also unmapping and remapping its own copy.
fn fault_worker(dev: &Device) {
    let lay = layout(dev);
    let fd = dev.fd;
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let sizes = lay.sizes;
            std::thread::spawn(move || loop {
                for (i, &len) in sizes.iter().take(6).enumerate() {
                    let len = len.min(64 << 20);
                    if len < PAGE {
                        continue;
                    }
                    let Ok(m) = sys::Mapping::new_aligned(fd, region_offset(i as u32), len, PAGE)
                    else {
                        continue;
                    };
                    for off in (0..m.size()).step_by(PAGE as usize * (t + 1)) {
                        // SAFETY: inside a live mapping; a refused fault is
                        // SIGBUS, which kills this worker (counted as a round).
                        unsafe { std::ptr::read_volatile((m.addr() + off) as *const u8) };
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// A toggler: COMMAND.MEM off and on (zapping every mapping), a device reset
/// every 64 rounds.
fn toggle_worker(dev: &Device) {
    let mut n = 0u64;
    loop {
        if let Ok(cmd) = dev.config_read16(4) {
            let _ = dev.config_write16(4, cmd & !2);
            let _ = dev.config_write16(4, cmd | 2);
        }
        n += 1;
        if n.is_multiple_of(64) {
            let _ = dev.reset();
        }
    }
}

/// `vfio-test races BDF SECS`: one open device (group mode) shared by forked
/// workers (2 fuzzers, a 3-thread fault worker, a MEM toggler/resetter); the
/// parent SIGKILLs a random worker every 20-300 ms (killed mid-fault, mid-call,
/// exiting with live mappings) and respawns it, and every 16th round kills them
/// all and closes and reopens the device. Prints `races: ROUNDS rounds, REOPENS
/// reopens`. Any kernel report is caught by the console scan.
///
/// A VFIO group opens once at a time (EBUSY while any process holds it open),
/// and a fuzz worker's `fork` call leaves a grandchild holding the inherited
/// group fd. So this process is the subreaper of its workers' descendants, kills
/// each worker together with its process group, and reaps every one of them
/// before it reopens the group (see `kill_worker`). A reopen that still fails
/// after that is a reference some driver or the core kept: a failure.
pub fn races(bdf: &str, secs: u64) -> i32 {
    // SAFETY: plain prctl on this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        println!("races: PR_SET_CHILD_SUBREAPER: {}", Errno::last().name());
        return 1;
    }
    let mut dev = match Device::open(bdf, Mode::Group) {
        Ok(d) => d,
        Err(e) => {
            println!("races: open failed: {e}");
            return 1;
        }
    };
    let mut rng = Rng::new(secs ^ 0x5eed);
    let start = |dev: &Device, k: usize, seed: u64| match k {
        0 | 1 => spawn(|| fuzz_worker(dev, seed)),
        2 => spawn(|| fault_worker(dev)),
        _ => spawn(|| toggle_worker(dev)),
    };
    let mut pids: Vec<libc::pid_t> = (0..4).map(|k| start(&dev, k, k as u64)).collect();
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut rounds, mut reopens) = (0u64, 0u64);
    // 60 s: a SIGKILLed process exits at its next return from the kernel; one
    // still there after a minute is stuck in the kernel (a hung task report
    // names it on the console).
    let limit = Duration::from_secs(60);
    let stuck =
        |p: libc::pid_t| format!("worker {p}'s process group outlived SIGKILL by {limit:?}");
    // Grandchildren found alive when their worker was killed: at a reopen,
    // each would have kept the group open (EBUSY) had it not been reaped.
    let (mut orphans, mut orphans_at_reopen) = (0u32, 0u32);
    // Kills every worker's group (all of them, even after one fails).
    let kill_all = |pids: &[libc::pid_t], n: &mut u32| {
        let mut first_stuck = None;
        for &p in pids {
            match kill_worker(p, limit) {
                Some(k) => *n += k,
                None => first_stuck = first_stuck.or(Some(stuck(p))),
            }
        }
        first_stuck
    };
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20 + rng.below(280)));
        rounds += 1;
        if rounds % 16 == 0 {
            if let Some(e) = kill_all(&pids, &mut orphans_at_reopen) {
                println!("races: {e}");
                return 1;
            }
            drop(dev);
            dev = match Device::open(bdf, Mode::Group) {
                Ok(d) => d,
                Err(e) => {
                    let group =
                        std::fs::read_link(format!("/sys/bus/pci/devices/{bdf}/iommu_group"))
                            .ok()
                            .and_then(|t| t.file_name().map(|n| Path::new("/dev/vfio").join(n)));
                    let held = group.as_deref().map(holders).unwrap_or_default();
                    println!("races: reopen failed: {e}; group held by: {held:?}");
                    return 1;
                }
            };
            reopens += 1;
            pids = (0..4).map(|k| start(&dev, k, rounds + k as u64)).collect();
        } else {
            let k = rng.below(4) as usize;
            match kill_worker(pids[k], limit) {
                Some(n) => orphans += n,
                None => {
                    println!("races: {}", stuck(pids[k]));
                    return 1;
                }
            }
            pids[k] = start(&dev, k, rounds);
        }
    }
    // Every process gone before we return, so whoever unbinds the device next
    // finds it closed.
    if let Some(e) = kill_all(&pids, &mut orphans) {
        println!("races: {e}");
        return 1;
    }
    println!(
        "races: {rounds} rounds, {reopens} reopens, {} grandchildren killed ({orphans_at_reopen} at a reopen)",
        orphans + orphans_at_reopen
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_spreads() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::new(8);
        assert_ne!(xs[0], c.next());
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[a.below(10) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
