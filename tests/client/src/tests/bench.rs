//! `bench`: timings of the paths a VFIO client exercises most, for `make bench`.
//!
//! `bench OURS UP` takes two twin devices (same model), OURS bound to vfio_pci_rs and UP to
//! upstream vfio-pci, opens both in this one process and samples every row in interleaved
//! batches: a batch of N operations on one device, N on the other, repeated (the order flips
//! every pair, ABBA-style, so "goes first" favours neither). A pair's ratio is its two batches'
//! ns per op, ours/upstream; host noise (other tenants of the machine, TCG translation) lasts
//! longer than a batch, so it hits both sides of a pair alike and the median of the pair ratios
//! stays put where whole-run medians swing. Each row prints
//! `bench-pair: <row> <batch> <ours ns/op> <upstream ns/op> <ratio>,<ratio>,...` (the ns are
//! medians over the batches); rows that fault a BAR in also print
//! `bench-faults: <row> <driver> minflt=N[ pte=N pmd=N pud=N fallback=N around=N]` per operation (page
//! faults of the process for both drivers; the fault orders from vfio_pci_rs's debugfs counters)
//! and `bench-note: <row> <driver> <text>` for the mapping's layout. The guest script swaps which
//! twin is ours between rounds, so placement (bus, IOMMU group, BAR address) cancels out. No row
//! asserts a time (performance goals live in the host's ratio table, never in pass/fail tests);
//! each row only checks that its operations succeeded.

use super::irq::{
    set_irqs_buf, EventFd, ACTION_TRIGGER, ACTION_UNMASK, DATA_EVENTFD, DATA_NONE, IRQ_SET_HDR,
    VFIO_DEVICE_SET_IRQS,
};
use crate::counters;
use crate::device::{read_ids, Kind};
use crate::ktap::Ktap;
use crate::open::{Device, Mode};
use crate::pattern::map_alignment;
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

/// The two sides of a pair, in the order of the command line.
const DRIVERS: [&str; 2] = ["vfio_pci_rs", "vfio-pci"];

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

/// How a row is sampled: `pairs` pairs of batches of `batch` calls, each call doing `per_call`
/// operations (the printed ns and faults are per operation; a fraction: a call does part of one). `warm`: one unmeasured batch per side first
/// (TCG translates code on first use). `faults`: count page faults around every batch.
#[derive(Clone, Copy)]
struct Plan {
    pairs: u32,
    batch: u32,
    per_call: f64,
    warm: bool,
    faults: bool,
}

/// Pairs per round of the slow rows (milliseconds per operation: open/close, reset, the 1 GiB
/// maps). Their operations are the same work under both drivers (the same resets, config
/// accesses and sleeps; bench/profile.md) spent mostly in the PCI core's reset sleeps or in
/// 262,144 user page reads. On the host's clock (`BENCH_CLOCK=host`) single pair ratios
/// scatter by +-10-15% (a sleep ends on a 4 ms timer tick, HZ=250; the other vCPU shares the
/// emulator's one thread): at 16-20 pairs x 8 rounds the median moved +-0.02 from run to run,
/// hence 48. On the default virtual clock they repeat to the nanosecond.
const SLOW_PAIRS: u32 = 48;

/// A plan for a fast row: many small batches, each a few hundred microseconds: the host takes
/// the emulator's CPU away for milliseconds at a time, so the shorter a batch, the fewer batches
/// such a gap lands in (and the median of the pair ratios ignores those few).
const fn fast(batch: u32) -> Plan {
    Plan {
        pairs: 200,
        batch,
        per_call: 1.0,
        warm: true,
        faults: false,
    }
}

/// The median of `v` (0 for none); `v` is reordered.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Which side (0: ours, 1: upstream) runs first in pair `p`: flips every pair, so over the run
/// each side goes first equally often.
fn order(p: u32) -> [usize; 2] {
    if p.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// One side's page faults (and the driver's fault counters by order, where it has them) summed
/// over the measured batches.
#[derive(Default)]
struct Faults {
    ops: f64,
    minflt: u64,
    cnt: Option<std::collections::BTreeMap<String, u64>>,
}

impl Faults {
    fn add(
        &mut self,
        ops: f64,
        flt: u64,
        before: Option<&std::collections::BTreeMap<String, u64>>,
        bdf: &str,
    ) {
        self.ops += ops;
        self.minflt += flt;
        if let (Some(b), Some(a)) = (before, counters::read(bdf)) {
            let sum = self.cnt.get_or_insert_with(Default::default);
            for c in ["pte", "pmd", "pud", "fallback", "around"] {
                let d = counters::get(&a, c).saturating_sub(counters::get(b, c));
                *sum.entry(c.into()).or_default() += d;
            }
        }
    }

    fn line(&self, row: &str, drv: &str) -> String {
        let per = |d: u64| d as f64 / self.ops.max(1.0);
        let mut line = format!("bench-faults: {row} {drv} minflt={}", per(self.minflt));
        for (c, v) in self.cnt.iter().flatten() {
            line += &format!(" {c}={}", per(*v));
        }
        line
    }
}

/// A row's operation on side `s` (0: ours, 1: upstream), as the interleaver calls it.
///
/// One function serves both sides, picking the side's device from its argument: two closures
/// (one per side) would be two copies of the client code at different addresses, and TCG's
/// per-page jump cache charges each copy differently (which copy collides with which kernel
/// block depends on the client's build). With one copy the client's cost is the same on both
/// sides of every pair and only the drivers differ.
type Op<'a> = &'a mut dyn FnMut(usize) -> Result<(), Errno>;

/// The pause before every timed batch (see [`interleave`]).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(10);

/// Samples `row` by `plan` on both sides (`op(0)` on `bdfs[0]`, ours; `op(1)` upstream) in
/// interleaved batches and prints its `bench-pair:` (and `bench-faults:`) lines.
fn interleave(k: &mut Ktap, row: &str, plan: Plan, bdfs: [&str; 2], op: Op) {
    let mut ns = [Vec::new(), Vec::new()];
    let mut fl = [Faults::default(), Faults::default()];
    let mut batch = |s: usize| -> Result<f64, String> {
        // Each batch starts on a quiet guest: what the previous batch left to run on its own
        // (the console thread printing the kernel log records of its resets, deferred frees)
        // runs in this gap instead of inside the next batch, which is the other driver's half
        // of the time. On the virtual clock the gap costs no wall time (idle is skipped).
        std::thread::sleep(SETTLE);
        let t = Instant::now();
        for _ in 0..plan.batch {
            op(s).map_err(|e| format!("{} under {}", e, DRIVERS[s]))?;
        }
        Ok(t.elapsed().as_nanos() as f64 / (f64::from(plan.batch) * plan.per_call))
    };
    let r = (|| {
        if plan.warm {
            for s in [0, 1] {
                batch(s)?;
            }
        }
        for p in 0..plan.pairs {
            for s in order(p) {
                // Fault counts are read outside the timed batch.
                let before = plan.faults.then(|| (faults(), counters::read(bdfs[s])));
                ns[s].push(batch(s)?);
                if let Some((f0, c0)) = before {
                    let ops = f64::from(plan.batch) * plan.per_call;
                    fl[s].add(ops, faults() - f0, c0.as_ref(), bdfs[s]);
                }
            }
        }
        Ok::<(), String>(())
    })();
    if let Err(e) = r {
        return k.fail(&format!("bench.{row}"), "operations succeed", e);
    }
    let ratios: Vec<String> = ns[0]
        .iter()
        .zip(&ns[1])
        .map(|(o, u)| format!("{:.4}", o / u))
        .collect();
    let [mut o, mut u] = ns;
    println!(
        "bench-pair: {row} {} {:.0} {:.0} {}",
        f64::from(plan.batch) * plan.per_call,
        median(&mut o),
        median(&mut u),
        ratios.join(",")
    );
    if plan.faults {
        for s in [0, 1] {
            println!("{}", fl[s].line(row, DRIVERS[s]));
        }
    }
    k.pass(&format!("bench.{row}"));
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

/// Routes interrupt `index` of `dev` to a new eventfd.
fn irq_eventfd(dev: &Device, index: u32) -> Result<EventFd, Errno> {
    let efd = EventFd::new()?;
    set_irqs(
        dev,
        ACTION_TRIGGER | DATA_EVENTFD,
        index,
        1,
        &efd.fd().to_ne_bytes(),
    )?;
    Ok(efd)
}

/// Sends the INTx lines of `bdfs` (both twins in the bench, the one device in a profile run) to
/// CPU 0, where the guest script pins this process. Left alone, the two lines get vectors on
/// different vCPUs (the allocator spreads them, the first request, always ours, to one CPU),
/// and under TCG a wake-up across vCPUs costs more than the round trip itself: that made ours
/// look 3x slower in one layout and the twins differ 2.5x in another. A line exists only once
/// requested, so this runs after INTx is enabled.
fn pin_intx(bdfs: &[&str]) {
    for bdf in bdfs {
        let irq = std::fs::read_to_string(format!("/sys/bus/pci/devices/{bdf}/irq"));
        let irq = irq
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .unwrap_or(0);
        let r = std::fs::write(format!("/proc/irq/{irq}/smp_affinity"), "1");
        let r = if r.is_ok() { "ok" } else { "failed" };
        println!("bench-pin: {bdf} irq {irq} to CPU 0: {r}");
    }
}

/// Interrupt rows on a pair of edus: MSI and INTx loopback (SET_IRQS TRIGGER with DATA_NONE to
/// eventfd read), and the edu-raised INTx round trip (raise, eventfd, ack, unmask).
fn irq_rows(k: &mut Ktap, devs: &[Device; 2], bdfs: [&str; 2]) {
    for (index, row) in [
        (VFIO_PCI_MSI_IRQ_INDEX, "msi_loopback"),
        (VFIO_PCI_INTX_IRQ_INDEX, "intx_loopback"),
    ] {
        let efds = match (irq_eventfd(&devs[0], index), irq_eventfd(&devs[1], index)) {
            (Ok(a), Ok(b)) => [a, b],
            (a, b) => {
                let e = a.err().or(b.err()).unwrap_or(Errno(0));
                k.fail(&format!("bench.{row}"), "interrupt enables", e);
                continue;
            }
        };
        let lb = &mut |s: usize| {
            set_irqs(&devs[s], ACTION_TRIGGER | DATA_NONE, index, 1, &[])?;
            one_signal(&efds[s])
        };
        interleave(k, row, fast(25), bdfs, lb);
        for d in devs {
            let _ = set_irqs(d, ACTION_TRIGGER | DATA_NONE, index, 0, &[]);
        }
    }
    let row = "intx_edu_round_trip";
    let i = VFIO_PCI_INTX_IRQ_INDEX;
    let efds = match (irq_eventfd(&devs[0], i), irq_eventfd(&devs[1], i)) {
        (Ok(a), Ok(b)) => [a, b],
        (a, b) => {
            let e = a.err().or(b.err()).unwrap_or(Errno(0));
            return k.fail(&format!("bench.{row}"), "INTx enables", e);
        }
    };
    pin_intx(&bdfs);
    let rt = &mut |s: usize| {
        let w = |off, v: u32| devs[s].write_region(0, off, &v.to_le_bytes()).map(drop);
        w(EDU_IRQ_RAISE, 1)?;
        one_signal(&efds[s])?;
        w(EDU_IRQ_ACK, 1)?;
        set_irqs(&devs[s], ACTION_UNMASK | DATA_NONE, i, 1, &[])
    };
    interleave(k, row, fast(4), bdfs, rt);
    // Where the interrupts went (per-CPU counts, chip, handler): explains a slow side.
    let text = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
    for (s, bdf) in bdfs.iter().enumerate() {
        let tag = format!("({bdf})");
        for l in text.lines().filter(|l| l.contains(&tag)) {
            let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("bench-note: {row} {} /proc/interrupts: {l}", DRIVERS[s]);
        }
    }
    for d in devs {
        let _ = set_irqs(d, ACTION_TRIGGER | DATA_NONE, i, 0, &[]);
    }
}

/// pread and pwrite of 4 bytes at `off` of `bar` on both sides (`write`: also pwrite `val`).
fn bar_rows(
    k: &mut Ktap,
    devs: &[Device; 2],
    bdfs: [&str; 2],
    bars: [u32; 2],
    off: u64,
    kind: &str,
    write: Option<u32>,
) {
    let rd = &mut |s: usize| {
        let mut b4 = [0u8; 4];
        match devs[s].read_region(bars[s], off, &mut b4) {
            Ok(4) => Ok(()),
            Ok(_) => Err(Errno(libc::EIO)),
            Err(e) => Err(e),
        }
    };
    interleave(k, &format!("bar_pread4_{kind}"), fast(150), bdfs, rd);
    if let Some(v) = write {
        let wr = &mut |s: usize| match devs[s].write_region(bars[s], off, &v.to_le_bytes()) {
            Ok(4) => Ok(()),
            Ok(_) => Err(Errno(libc::EIO)),
            Err(e) => Err(e),
        };
        interleave(k, &format!("bar_pwrite4_{kind}"), fast(150), bdfs, wr);
    }
}

/// The 1 GiB (or largest mappable) BAR of both sides: map + touch every page + unmap, at an
/// aligned address and at a NULL hint; then the zap/refault cycle on one aligned mapping each.
fn map_rows(k: &mut Ktap, devs: &[Device; 2], bdfs: [&str; 2], bar: u32, size: u64) {
    let mb = size >> 20;
    let align = map_alignment(size);
    let off = region_offset(bar);
    let sum = std::cell::Cell::new(0u64);
    let add = |x: u64| sum.set(sum.get().wrapping_add(x));
    let plan = Plan {
        pairs: SLOW_PAIRS,
        batch: 1,
        per_call: 1.0,
        warm: false,
        faults: true,
    };
    // Each phase's time per side (mmap, touch, munmap), noted after the row: where a
    // difference between the drivers sits.
    let phases: [std::cell::RefCell<[Vec<f64>; 3]>; 2] = Default::default();
    let mt = &mut |s: usize| {
        let t0 = Instant::now();
        let map = Mapping::new_aligned(devs[s].fd, off, size, align)?;
        let t1 = Instant::now();
        add(touch(map.addr(), map.size()));
        let t2 = Instant::now();
        drop(map);
        let t3 = Instant::now();
        let mut p = phases[s].borrow_mut();
        for (v, d) in p.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
            v.push(d.as_secs_f64() * 1e6);
        }
        Ok(())
    };
    let row = format!("map_touch_{mb}m_aligned");
    interleave(k, &row, plan, bdfs, mt);
    for (s, p) in phases.iter().enumerate() {
        let mut p = p.borrow_mut();
        let [map, touched, unmap] = &mut *p;
        println!(
            "bench-note: {row} {} medians: mmap {:.1} us, touch {:.0} us, munmap {:.1} us",
            DRIVERS[s],
            median(map),
            median(touched),
            median(unmap)
        );
    }

    // NULL hint: the kernel picks the address, so every page is a 4 KiB fault (seconds per BAR).
    // Both BARs stay mapped for one pass per round and the touching alternates 4 MiB chunks
    // between them, so the two sides of a pair are ms apart instead of seconds; the
    // printed time is per whole BAR (mmap and munmap not included). Note the layout it allowed.
    let row = format!("map_touch_{mb}m_null_hint");
    let chunk = size.min(4 << 20) as usize;
    let chunks = (size as usize / chunk) as u32;
    let maps = match (
        AnyMapping::new(devs[0].fd, off, size),
        AnyMapping::new(devs[1].fd, off, size),
    ) {
        (Ok(a), Ok(b)) => [a, b],
        (a, b) => {
            let e = a.err().or(b.err()).unwrap_or(Errno(0));
            return k.fail(&format!("bench.{row}"), "BAR maps", e);
        }
    };
    let next = [std::cell::Cell::new(0usize), Default::default()];
    let mn = &mut |s: usize| {
        let i = next[s].replace(next[s].get() + 1);
        add(touch(maps[s].0 + i * chunk, chunk));
        Ok(())
    };
    let plan2 = Plan {
        pairs: chunks,
        per_call: 1.0 / f64::from(chunks),
        ..plan
    };
    interleave(k, &row, plan2, bdfs, mn);
    for (s, map) in maps.iter().enumerate() {
        let (pud, pmd) = huge_fit(map.0, map.1);
        println!(
            "bench-note: {row} {} addr {:#x} (offset {:#x} in its 2 MiB page; the BAR is \
             1 GiB-aligned): room for {pud} PUD and {pmd} PMD entries, the rest 4 KiB",
            DRIVERS[s],
            map.0,
            map.0 % (1 << 21)
        );
    }
    drop(maps);

    // Zap/refault: COMMAND.MEM off and on (zaps the mapping), touch everything again.
    let row = format!("zap_refault_{mb}m");
    let setup = |dev: &Device| -> Result<(u16, Mapping), Errno> {
        let cmd = dev.config_read16(PCI_COMMAND)?;
        let map = Mapping::new_aligned(dev.fd, off, size, align)?;
        add(touch(map.addr(), map.size()));
        Ok((cmd, map))
    };
    let ((c0, m0), (c1, m1)) = match (setup(&devs[0]), setup(&devs[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let e = a.err().or(b.err()).unwrap_or(Errno(0));
            return k.fail(&format!("bench.{row}"), "BAR maps", e);
        }
    };
    let (cmds, maps) = ([c0, c1], [m0, m1]);
    let zr = &mut |s: usize| {
        let (dev, cmd, map) = (&devs[s], cmds[s], &maps[s]);
        dev.config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY)?;
        dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY)?;
        add(touch(map.addr(), map.size()));
        Ok(())
    };
    interleave(k, &row, plan, bdfs, zr);
    drop(maps);
    println!("# bench checksum {}", sum.get());
}

/// Runs every row the pair's device model supports: `ours` bound to vfio_pci_rs, `up` (a twin of
/// the same model) to vfio-pci.
pub fn run(k: &mut Ktap, ours: &str, up: &str) {
    let bdfs = [ours, up];
    let kind = read_ids(ours).map_or(Kind::Other, |(v, d)| Kind::from_ids(v, d));
    // Open + close, each with the device reset the drivers do there; before the long-lived
    // opens below, which would make these fail.
    let oc = &mut |s: usize| {
        Device::open(bdfs[s], Mode::Cdev)
            .map(drop)
            .map_err(|_| Errno(libc::EIO))
    };
    let plan = Plan {
        pairs: SLOW_PAIRS,
        batch: 1,
        per_call: 1.0,
        warm: true,
        faults: false,
    };
    interleave(k, "open_close", plan, bdfs, oc);
    let devs = match (Device::open(ours, Mode::Cdev), Device::open(up, Mode::Cdev)) {
        (Ok(a), Ok(b)) => [a, b],
        (a, b) => {
            let e = a.err().or(b.err()).map(|e| e.to_string());
            return k.fail("bench.open", "devices open", e.unwrap_or_default());
        }
    };
    let reset = &mut |s: usize| devs[s].reset().map(drop);
    interleave(k, "device_reset", plan, bdfs, reset);
    // Decode on, INTx not disabled: what the BAR and interrupt rows need.
    let mut cmds = [0u16; 2];
    for (s, dev) in devs.iter().enumerate() {
        if let Ok(cmd) = dev.config_read16(PCI_COMMAND) {
            cmds[s] = (cmd | CMD_IO_MEM_MASTER) & !PCI_COMMAND_INTX_DISABLE;
            let _ = dev.config_write16(PCI_COMMAND, cmds[s]);
        }
    }
    // Config space: every dword of the standard header, and COMMAND writes of its own value.
    let cr = &mut |s: usize| {
        let mut b4 = [0u8; 4];
        for off in (0..64).step_by(4) {
            devs[s].read_region(CONFIG, off, &mut b4)?;
        }
        Ok(())
    };
    let plan = Plan {
        per_call: 16.0,
        ..fast(8)
    };
    interleave(k, "config_pread4", plan, bdfs, cr);
    let cw = &mut |s: usize| devs[s].config_write16(PCI_COMMAND, cmds[s]).map(drop);
    interleave(k, "config_pwrite2_command", fast(30), bdfs, cw);
    // BAR access through the fd: a register or memory word each device tolerates.
    match kind {
        Kind::Edu => bar_rows(
            k,
            &devs,
            bdfs,
            [0, 0],
            EDU_LIVENESS,
            "mem",
            Some(0x1234_5678),
        ),
        Kind::Ivshmem => bar_rows(k, &devs, bdfs, [2, 2], 0, "mem", Some(0x1234_5678)),
        Kind::PciTestdev => {
            // Writing 0 to the test selector at offset 0 keeps test 0 selected.
            if let (Some(a), Some(b)) = (io_bar(ours), io_bar(up)) {
                bar_rows(k, &devs, bdfs, [a, b], 0, "io", Some(0));
            }
        }
        _ => {}
    }
    if kind == Kind::Edu {
        irq_rows(k, &devs, bdfs);
    }
    if kind == Kind::Ivshmem {
        match (
            mappable_bar(&devs[0], 1 << 20),
            mappable_bar(&devs[1], 1 << 20),
        ) {
            (Some((bar, size)), Some(b)) if b == (bar, size) => map_rows(k, &devs, bdfs, bar, size),
            _ => k.fail(
                "bench.map",
                "both twins have the same mappable BAR",
                "they differ",
            ),
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
    if row == "open_close" {
        let mut oc = || Device::open(bdf, Mode::Cdev).map(drop);
        marker();
        let r = time(n, &mut oc);
        marker();
        return report(k, "prof_open_close", n, r);
    }
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
        // As in the bench: the INTx line on CPU 0, where the guest script runs this process.
        if index == VFIO_PCI_INTX_IRQ_INDEX {
            pin_intx(&[bdf]);
        }
    }
    let wait = || efd.as_ref().map_or(Err(Errno(libc::EBADF)), one_signal);
    // fault4k: a NULL-hint mapping of the BAR (4 KiB faults), one page touched per operation
    // (under vfio_pci_rs the first touch in each 2 MiB block maps the whole block).
    let page = sys::page_size() as usize;
    // map_touch_aligned: the bench's aligned map + touch every page + unmap of the largest
    // mappable BAR; zap_refault: the bench's COMMAND.MEM off and on + touch again of that BAR,
    // mapped (and touched) once before.
    let big = matches!(row, "map_touch_aligned" | "zap_refault")
        .then(|| mappable_bar(&dev, 1 << 20))
        .flatten();
    let map = match row {
        "fault4k" => {
            match AnyMapping::new(dev.fd, region_offset(bar), u64::from(n) * page as u64) {
                Ok(m) => Some(m),
                Err(e) => return k.fail("bench.prof.map", "BAR maps", e),
            }
        }
        _ => None,
    };
    let mapped = match (row, big) {
        ("zap_refault", Some((bar, size))) => {
            match Mapping::new_aligned(dev.fd, region_offset(bar), size, map_alignment(size)) {
                Ok(m) => {
                    touch(m.addr(), m.size());
                    Some(m)
                }
                Err(e) => return k.fail("bench.prof.map", "BAR maps", e),
            }
        }
        _ => None,
    };
    let next = std::cell::Cell::new(0usize);
    let mut b4 = [0u8; 4];
    let w = |o, v: u32| dev.write_region(0, o, &v.to_le_bytes()).map(drop);
    let mut op: Box<dyn FnMut() -> Result<(), Errno>> = match row {
        "config_pread4" => Box::new(|| dev.read_region(CONFIG, 0, &mut b4).map(drop)),
        "config_pwrite2_command" => Box::new(|| dev.config_write16(PCI_COMMAND, cmd).map(drop)),
        "bar_pread4" => Box::new(|| dev.read_region(bar, off, &mut b4).map(drop)),
        "bar_pwrite4" => Box::new(|| dev.write_region(bar, off, &[0; 4]).map(drop)),
        "device_reset" => Box::new(|| dev.reset().map(drop)),
        "map_touch_aligned" => Box::new(|| {
            let (bar, size) = big.ok_or(Errno(libc::ENODEV))?;
            let m = Mapping::new_aligned(dev.fd, region_offset(bar), size, map_alignment(size))?;
            touch(m.addr(), m.size());
            Ok(())
        }),
        "zap_refault" => Box::new(|| {
            let m = mapped.as_ref().ok_or(Errno(libc::ENODEV))?;
            dev.config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY)?;
            dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY)?;
            touch(m.addr(), m.size());
            Ok(())
        }),
        "fault4k" => Box::new(|| {
            let m = map.as_ref().ok_or(Errno(libc::EINVAL))?;
            let i = next.replace(next.get() + 1);
            touch(m.0 + (i * page) % m.1, 1);
            Ok(())
        }),
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

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn median_and_order() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        // Each side goes first in half the pairs.
        let firsts: Vec<usize> = (0..6).map(|p| order(p)[0]).collect();
        assert_eq!(firsts, [0, 1, 0, 1, 0, 1]);
        assert!((0..6).all(|p| order(p)[0] != order(p)[1]));
    }
}
