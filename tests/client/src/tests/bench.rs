//! `bench`: timings of the paths a VFIO client exercises most, for `make bench`.
//!
//! Each row is measured as nanoseconds per operation over a fixed count and printed as
//! `bench: <row> <ns_per_op> <count>`; rows that fault a BAR in also print
//! `bench-faults: <row> minflt=N[ pte=N pmd=N pud=N]` per operation (page faults of the process
//! for both drivers; the fault orders from vfio_pci_rs's debugfs counters when they exist) and
//! `bench-note: <row> <text>` for the mapping's layout. The host runs the same rows under
//! vfio_pci_rs and upstream vfio-pci in one guest boot, alternating, and compares medians. No
//! row asserts a time (performance goals live in the host's ratio table, never in pass/fail
//! tests); each row only checks that its operation succeeded.

use super::irq::{
    set_irqs_buf, EventFd, ACTION_TRIGGER, ACTION_UNMASK, DATA_EVENTFD, DATA_NONE, IRQ_SET_HDR,
    VFIO_DEVICE_SET_IRQS,
};
use crate::counters;
use crate::device::{read_ids, Kind};
use crate::ktap::Ktap;
use crate::open::{Device, Mode};
use crate::sys::{self, Errno, Mapping};
use crate::uapi::*;
use std::time::Instant;

const CONFIG: u32 = VFIO_PCI_CONFIG_REGION_INDEX;
const PCI_COMMAND: u64 = 0x04;
/// COMMAND: I/O space, memory space, bus master.
const CMD_IO_MEM_MASTER: u16 = 0x7;
const PCI_COMMAND_MEMORY: u16 = 0x2;
const PCI_COMMAND_INTX_DISABLE: u16 = 0x400;
/// edu BAR0: raise an interrupt with this status value / acknowledge it.
const EDU_IRQ_RAISE: u64 = 0x60;
const EDU_IRQ_ACK: u64 = 0x64;
/// edu BAR0: the liveness register (reads back the inverse of what is written).
const EDU_LIVENESS: u64 = 0x04;
/// How long an interrupt that must come may take.
const DELIVERY_MS: i32 = 2000;

/// Times `count` runs of `op`; returns ns per op, or the first error.
fn time<E>(count: u32, mut op: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let t = Instant::now();
    for _ in 0..count {
        op()?;
    }
    Ok(t.elapsed().as_nanos() as f64 / f64::from(count))
}

fn report<E: std::fmt::Display>(k: &mut Ktap, row: &str, count: u32, r: Result<f64, E>) {
    match r {
        Ok(ns) => {
            println!("bench: {row} {ns:.0} {count}");
            k.pass(&format!("bench.{row}"));
        }
        Err(e) => k.fail(&format!("bench.{row}"), "operation succeeds", e),
    }
}

/// Minor + major page faults of this process so far.
fn faults() -> u64 {
    // SAFETY: getrusage only writes into the provided struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    (ru.ru_minflt + ru.ru_majflt) as u64
}

/// Page faults and, under vfio_pci_rs, the driver's fault counters, around a measurement; the
/// deltas per operation go out as a `bench-faults:` line.
struct FaultWatch {
    bdf: String,
    flt: u64,
    cnt: Option<std::collections::BTreeMap<String, u64>>,
}

impl FaultWatch {
    fn start(bdf: &str) -> Self {
        let cnt = counters::read(bdf);
        FaultWatch {
            bdf: bdf.into(),
            flt: faults(),
            cnt,
        }
    }

    fn finish(self, row: &str, ops: u32) {
        let per = |d: u64| d as f64 / f64::from(ops);
        let mut line = format!("bench-faults: {row} minflt={}", per(faults() - self.flt));
        if let (Some(b), Some(a)) = (self.cnt, counters::read(&self.bdf)) {
            for c in ["pte", "pmd", "pud", "fallback"] {
                let d = counters::get(&a, c).saturating_sub(counters::get(&b, c));
                line += &format!(" {c}={}", per(d));
            }
        }
        println!("{line}");
    }
}

/// The first BAR with the MMAP flag and the given minimum size.
fn mappable_bar(dev: &Device, min: u64) -> Option<(u32, u64)> {
    (0..6).find_map(|i| {
        let (info, _) = dev.region(i).ok()?;
        (info.flags & VFIO_REGION_INFO_FLAG_MMAP != 0 && info.size >= min).then_some((i, info.size))
    })
}

/// The first I/O port BAR (from sysfs `resource`: IORESOURCE_IO is 0x100).
fn io_bar(bdf: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/sys/bus/pci/devices/{bdf}/resource")).ok()?;
    text.lines()
        .take(6)
        .position(|l| {
            let f = l.split_whitespace().nth(2);
            f.and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .is_some_and(|f| f & 0x100 != 0)
        })
        .map(|i| i as u32)
}

/// Touches every page of `[addr, addr + len)` once (a read), returning the sum so nothing is
/// optimised out.
fn touch(addr: usize, len: usize) -> u64 {
    let page = sys::page_size() as usize;
    let mut sum = 0u64;
    for off in (0..len).step_by(page) {
        // SAFETY: the caller's mapping is live and `off` is inside it; memory decode is on, so
        // no SIGBUS (the bench never turns it off while touching).
        sum = sum.wrapping_add(u64::from(unsafe {
            std::ptr::read_volatile((addr + off) as *const u8)
        }));
    }
    sum
}

/// A shared mapping at an address the kernel picks (NULL hint), unmapped on drop.
struct AnyMapping(usize, usize);

impl AnyMapping {
    fn new(fd: i32, off: u64, len: u64) -> Result<Self, Errno> {
        // SAFETY: a NULL hint lets the kernel choose the address, so no existing mapping is
        // replaced.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(AnyMapping(p as usize, len as usize))
    }
}

impl Drop for AnyMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping created in `new`, not used after this.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
    }
}

/// How many PUD (1 GiB) and PMD (2 MiB) entries can map `[addr, addr + len)` of a BAR mapped from
/// its start: a huge entry needs the virtual address congruent to the physical one modulo its
/// size, and the BAR is size-aligned, so `addr` itself must be 1 GiB / 2 MiB aligned.
fn huge_fit(addr: usize, len: usize) -> (usize, usize) {
    let fit = |sz: usize| if addr.is_multiple_of(sz) { len / sz } else { 0 };
    let pud = fit(1 << 30);
    (pud, fit(1 << 21) - pud * 512)
}

/// One SET_IRQS call (no transcript: the bench only times it).
fn set_irqs(dev: &Device, flags: u32, index: u32, count: u32, data: &[u8]) -> Result<(), Errno> {
    let mut b = set_irqs_buf(
        (IRQ_SET_HDR + data.len()) as u32,
        flags,
        index,
        0,
        count,
        data,
    );
    // SAFETY: the buffer holds the header and all `data` the kernel reads.
    unsafe { sys::ioctl_ptr(dev.fd, VFIO_DEVICE_SET_IRQS, b.as_mut_ptr()) }.map(drop)
}

/// Waits for exactly one signal on `efd`.
fn one_signal(efd: &EventFd) -> Result<(), Errno> {
    match efd.wait(DELIVERY_MS) {
        1 => Ok(()),
        _ => Err(Errno(libc::ETIMEDOUT)),
    }
}

/// Loopback (SET_IRQS TRIGGER with DATA_NONE) to eventfd read, on `index`.
fn irq_loopback(k: &mut Ktap, dev: &Device, index: u32, row: &str, n: u32) {
    let Ok(efd) = EventFd::new() else {
        return k.fail(&format!("bench.{row}"), "eventfd", "eventfd() failed");
    };
    let fd = efd.fd().to_ne_bytes();
    if let Err(e) = set_irqs(dev, ACTION_TRIGGER | DATA_EVENTFD, index, 1, &fd) {
        return k.fail(&format!("bench.{row}"), "interrupt enables", e);
    }
    let r = time(n, || {
        set_irqs(dev, ACTION_TRIGGER | DATA_NONE, index, 1, &[])?;
        one_signal(&efd)
    });
    report(k, row, n, r);
    let _ = set_irqs(dev, ACTION_TRIGGER | DATA_NONE, index, 0, &[]);
}

/// edu raises INTx: write the raise register, read the eventfd, ack, unmask.
fn edu_intx_round_trip(k: &mut Ktap, dev: &Device, n: u32) {
    let row = "intx_edu_round_trip";
    let Ok(efd) = EventFd::new() else {
        return k.fail(&format!("bench.{row}"), "eventfd", "eventfd() failed");
    };
    let fd = efd.fd().to_ne_bytes();
    let i = VFIO_PCI_INTX_IRQ_INDEX;
    if let Err(e) = set_irqs(dev, ACTION_TRIGGER | DATA_EVENTFD, i, 1, &fd) {
        return k.fail(&format!("bench.{row}"), "INTx enables", e);
    }
    let w = |off, v: u32| dev.write_region(0, off, &v.to_le_bytes()).map(drop);
    let r = time(n, || {
        w(EDU_IRQ_RAISE, 1)?;
        one_signal(&efd)?;
        w(EDU_IRQ_ACK, 1)?;
        set_irqs(dev, ACTION_UNMASK | DATA_NONE, i, 1, &[])
    });
    report(k, row, n, r);
    let _ = set_irqs(dev, ACTION_TRIGGER | DATA_NONE, i, 0, &[]);
}

/// pread and pwrite of 4 bytes at `off` of `bar` (`write`: also time writes of `val`).
fn bar_rw(k: &mut Ktap, dev: &Device, bar: u32, off: u64, kind: &str, write: Option<u32>) {
    let n = 20_000;
    let mut b4 = [0u8; 4];
    let rd = time(n, || match dev.read_region(bar, off, &mut b4) {
        Ok(4) => Ok(()),
        Ok(_) => Err(Errno(libc::EIO)),
        Err(e) => Err(e),
    });
    report(k, &format!("bar_pread4_{kind}"), n, rd);
    if let Some(v) = write {
        let b = v.to_le_bytes();
        let wr = time(n, || match dev.write_region(bar, off, &b) {
            Ok(4) => Ok(()),
            Ok(_) => Err(Errno(libc::EIO)),
            Err(e) => Err(e),
        });
        report(k, &format!("bar_pwrite4_{kind}"), n, wr);
    }
}

/// The 1 GiB (or largest mappable) BAR: map + touch every page + unmap, at an aligned address
/// and at a NULL hint; then the zap/refault cycle on one aligned mapping.
fn map_rows(k: &mut Ktap, dev: &Device, bar: u32, size: u64) {
    let mb = size >> 20;
    let align = size.next_power_of_two().min(1 << 30);
    let off = region_offset(bar);
    let mut sum = 0u64;
    let rounds = 2;
    let row = format!("map_touch_{mb}m_aligned");
    let w = FaultWatch::start(&dev.bdf);
    let r = time(rounds, || {
        let map = Mapping::new_aligned(dev.fd, off, size, align)?;
        sum = sum.wrapping_add(touch(map.addr(), map.size()));
        Ok::<(), Errno>(())
    });
    w.finish(&row, rounds);
    report(k, &row, rounds, r);

    // NULL hint: the kernel picks the address; note what it allows.
    let row = format!("map_touch_{mb}m_null_hint");
    let w = FaultWatch::start(&dev.bdf);
    let mut note = String::new();
    let r = time(1, || {
        let map = AnyMapping::new(dev.fd, off, size)?;
        let (pud, pmd) = huge_fit(map.0, map.1);
        note = format!(
            "addr {:#x} (offset {:#x} in its 2 MiB page; the BAR is 1 GiB-aligned): \
             room for {pud} PUD and {pmd} PMD entries, the rest 4 KiB",
            map.0,
            map.0 % (1 << 21)
        );
        sum = sum.wrapping_add(touch(map.0, map.1));
        Ok::<(), Errno>(())
    });
    w.finish(&row, 1);
    println!("bench-note: {row} {note}");
    report(k, &row, 1, r);

    // Zap/refault: COMMAND.MEM off and on (zaps the mapping), touch everything again.
    let row = format!("zap_refault_{mb}m");
    let cycles = 3;
    let r = (|| {
        let cmd = dev.config_read16(PCI_COMMAND)?;
        let map = Mapping::new_aligned(dev.fd, off, size, align)?;
        sum = sum.wrapping_add(touch(map.addr(), map.size()));
        let w = FaultWatch::start(&dev.bdf);
        let r = time(cycles, || {
            dev.config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY)?;
            dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY)?;
            sum = sum.wrapping_add(touch(map.addr(), map.size()));
            Ok::<(), Errno>(())
        });
        w.finish(&row, cycles);
        r
    })();
    report(k, &row, cycles, r);
    println!("# bench checksum {sum}");
}

/// Runs every row that `bdf` supports.
pub fn run(k: &mut Ktap, bdf: &str) {
    let kind = read_ids(bdf).map_or(Kind::Other, |(v, d)| Kind::from_ids(v, d));
    // Open + close, each with the device reset the drivers do there.
    let n = 10;
    report(
        k,
        "open_close",
        n,
        time(n, || Device::open(bdf, Mode::Cdev).map(drop)),
    );
    let dev = match Device::open(bdf, Mode::Cdev) {
        Ok(d) => d,
        Err(e) => return k.fail("bench.open", "device opens", e),
    };
    report(k, "device_reset", n, time(n, || dev.reset().map(drop)));
    // Decode on, INTx not disabled: what the BAR and interrupt rows need.
    if let Ok(cmd) = dev.config_read16(PCI_COMMAND) {
        let _ = dev.config_write16(
            PCI_COMMAND,
            (cmd | CMD_IO_MEM_MASTER) & !PCI_COMMAND_INTX_DISABLE,
        );
    }
    // Config space: every dword of the standard header, and COMMAND writes of its own value.
    let n = 3000;
    let mut b4 = [0u8; 4];
    let r = time(n, || {
        for off in (0..64).step_by(4) {
            dev.read_region(CONFIG, off, &mut b4)?;
        }
        Ok::<(), Errno>(())
    });
    report(k, "config_pread4", n * 16, r.map(|ns| ns / 16.0));
    if let Ok(cmd) = dev.config_read16(PCI_COMMAND) {
        let n = 20_000;
        let r = time(n, || dev.config_write16(PCI_COMMAND, cmd).map(drop));
        report(k, "config_pwrite2_command", n, r);
    }
    // BAR access through the fd: a register or memory word each device tolerates.
    match kind {
        Kind::Edu => bar_rw(k, &dev, 0, EDU_LIVENESS, "mem", Some(0x1234_5678)),
        Kind::Ivshmem => bar_rw(k, &dev, 2, 0, "mem", Some(0x1234_5678)),
        _ => {}
    }
    if kind == Kind::PciTestdev {
        // Writing 0 to the test selector at offset 0 keeps test 0 selected.
        if let Some(bar) = io_bar(bdf) {
            bar_rw(k, &dev, bar, 0, "io", Some(0));
        }
    }
    if kind == Kind::Edu {
        irq_loopback(k, &dev, VFIO_PCI_MSI_IRQ_INDEX, "msi_loopback", 2000);
        irq_loopback(k, &dev, VFIO_PCI_INTX_IRQ_INDEX, "intx_loopback", 2000);
        edu_intx_round_trip(k, &dev, 1000);
    }
    if kind == Kind::Ivshmem {
        if let Some((bar, size)) = mappable_bar(&dev, 1 << 20) {
            map_rows(k, &dev, bar, size);
        }
    }
}

/// The profile marker: `mov eax, 0x56505200; cpuid`, which bench/prof/insncount.c (a QEMU
/// plugin) watches for to start and stop counting instructions.
pub(crate) fn marker() {
    // SAFETY: cpuid only writes eax, ebx, ecx and edx; rbx (reserved by LLVM) is saved around it.
    unsafe {
        std::arch::asm!(
            "push rbx",
            "mov eax, 0x56505200",
            "cpuid",
            "pop rbx",
            out("eax") _,
            out("ecx") _,
            out("edx") _,
        );
    }
}

/// `bench BDF ROW N`: one row's operation `n` times between two profile markers, for an
/// instruction-count profile of where each driver spends its time.
pub fn prof(k: &mut Ktap, bdf: &str, row: &str, n: u32) {
    let dev = match Device::open(bdf, Mode::Cdev) {
        Ok(d) => d,
        Err(e) => return k.fail("bench.prof.open", "device opens", e),
    };
    let cmd = dev.config_read16(PCI_COMMAND).unwrap_or(0);
    let _ = dev.config_write16(
        PCI_COMMAND,
        (cmd | CMD_IO_MEM_MASTER) & !PCI_COMMAND_INTX_DISABLE,
    );
    let cmd = dev.config_read16(PCI_COMMAND).unwrap_or(0);
    let kind = read_ids(bdf).map_or(Kind::Other, |(v, d)| Kind::from_ids(v, d));
    let (bar, off) = match kind {
        Kind::Edu => (0, EDU_LIVENESS),
        Kind::Ivshmem => (2, 0),
        _ => (io_bar(bdf).unwrap_or(0), 0),
    };
    let efd = EventFd::new().ok();
    let fd = efd.as_ref().map_or(-1, |e| e.fd()).to_ne_bytes();
    let index = match row {
        "msi_loopback" => VFIO_PCI_MSI_IRQ_INDEX,
        _ => VFIO_PCI_INTX_IRQ_INDEX,
    };
    if row.contains("loopback") || row.contains("round_trip") {
        if let Err(e) = set_irqs(&dev, ACTION_TRIGGER | DATA_EVENTFD, index, 1, &fd) {
            return k.fail("bench.prof.irq", "interrupt enables", e);
        }
    }
    let wait = || efd.as_ref().map_or(Err(Errno(libc::EBADF)), one_signal);
    let mut b4 = [0u8; 4];
    let w = |o, v: u32| dev.write_region(0, o, &v.to_le_bytes()).map(drop);
    let mut op: Box<dyn FnMut() -> Result<(), Errno>> = match row {
        "config_pread4" => Box::new(|| dev.read_region(CONFIG, 0, &mut b4).map(drop)),
        "config_pwrite2_command" => Box::new(|| dev.config_write16(PCI_COMMAND, cmd).map(drop)),
        "bar_pread4" => Box::new(|| dev.read_region(bar, off, &mut b4).map(drop)),
        "bar_pwrite4" => Box::new(|| dev.write_region(bar, off, &[0; 4]).map(drop)),
        "device_reset" => Box::new(|| dev.reset().map(drop)),
        "msi_loopback" | "intx_loopback" => Box::new(|| {
            set_irqs(&dev, ACTION_TRIGGER | DATA_NONE, index, 1, &[])?;
            wait()
        }),
        "intx_edu_round_trip" => Box::new(|| {
            w(EDU_IRQ_RAISE, 1)?;
            wait()?;
            w(EDU_IRQ_ACK, 1)?;
            set_irqs(&dev, ACTION_UNMASK | DATA_NONE, index, 1, &[])
        }),
        other => return k.fail("bench.prof.row", "a known row", other),
    };
    marker();
    let r = time(n, &mut op);
    marker();
    drop(op);
    report(k, &format!("prof_{row}"), n, r);
}
