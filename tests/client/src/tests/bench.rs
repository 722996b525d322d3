//! `bench`: timings of the paths a VFIO client exercises most, for `make bench`.
//!
//! Each row is measured as nanoseconds per operation over a fixed count and printed as
//! `bench: <row> <ns_per_op> <count>`; the host runs the same rows under vfio_pci_rs and
//! upstream vfio-pci in one guest boot, alternating, and compares medians. No row asserts a
//! time (performance goals live in the host's ratio table, never in pass/fail tests); each row
//! only checks that its operation succeeded.

use crate::ktap::Ktap;
use crate::open::{Device, Mode};
use crate::sys::{self, Mapping};
use crate::uapi::*;
use std::time::Instant;

const CONFIG: u32 = VFIO_PCI_CONFIG_REGION_INDEX;

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

/// The first BAR with the MMAP flag and the given minimum size.
fn mappable_bar(dev: &Device, min: u64) -> Option<(u32, u64)> {
    (0..6).find_map(|i| {
        let (info, _) = dev.region(i).ok()?;
        (info.flags & VFIO_REGION_INFO_FLAG_MMAP != 0 && info.size >= min).then_some((i, info.size))
    })
}

/// Touches every page of `map` once (a read), returning the sum so nothing is optimised out.
fn touch(map: &Mapping) -> u64 {
    let page = sys::page_size() as usize;
    let mut sum = 0u64;
    for off in (0..map.size()).step_by(page) {
        // SAFETY: the mapping is live and `off` is inside it; memory decode is on, so no
        // SIGBUS (the bench never turns it off while mapped).
        sum = sum.wrapping_add(u64::from(unsafe {
            std::ptr::read_volatile((map.addr() + off) as *const u8)
        }));
    }
    sum
}

/// Runs every row that `bdf` supports.
pub fn run(k: &mut Ktap, bdf: &str) {
    let n = 20_000;
    report(
        k,
        "open_close_cdev",
        50,
        time(50, || Device::open(bdf, Mode::Cdev).map(drop)),
    );
    let dev = match Device::open(bdf, Mode::Cdev) {
        Ok(d) => d,
        Err(e) => return k.fail("bench.open", "device opens", e),
    };
    report(k, "get_info", n, time(n, || dev.info().map(drop)));
    report(
        k,
        "get_region_info",
        n,
        time(n, || dev.region(CONFIG).map(drop)),
    );
    let mut b4 = [0u8; 4];
    report(
        k,
        "config_read4",
        n,
        time(n, || dev.read_region(CONFIG, 0, &mut b4).map(drop)),
    );
    let mut b256 = [0u8; 256];
    report(
        k,
        "config_read256",
        n / 10,
        time(n / 10, || dev.read_region(CONFIG, 0, &mut b256).map(drop)),
    );
    if let Some((bar, _)) = mappable_bar(&dev, 4) {
        report(
            k,
            "bar_pread4",
            n,
            time(n, || dev.read_region(bar, 0, &mut b4).map(drop)),
        );
    }
    // COMMAND.MEM off/on: the zap path of the memory lock.
    if let Ok(cmd) = dev.config_read16(4) {
        let m = n / 10;
        report(
            k,
            "mem_toggle",
            m,
            time(m, || {
                dev.config_write16(4, cmd & !2)?;
                dev.config_write16(4, cmd | 2).map(drop)
            }),
        );
        let _ = dev.config_write16(4, cmd);
    }
    // Faulting a whole BAR in through an aligned mapping (1 GiB ivshmem: one PUD fault).
    if let Some((bar, size)) = mappable_bar(&dev, 1 << 20) {
        let align = size.next_power_of_two().min(1 << 30);
        let rounds = if size >= 1 << 30 { 3 } else { 50 };
        let mut sum = 0u64;
        let r = time(rounds, || {
            let map = Mapping::new_aligned(dev.fd, region_offset(bar), size, align)?;
            sum = sum.wrapping_add(touch(&map));
            Ok::<(), sys::Errno>(())
        });
        report(k, &format!("map_touch_{}m", size >> 20), rounds, r);
        // The same with a misaligned mapping: 4 KiB faults only.
        let small = size.min(16 << 20);
        let r = time(3, || {
            let map = Mapping::new_aligned(dev.fd, region_offset(bar), small, 4096)?;
            sum = sum.wrapping_add(touch(&map));
            Ok::<(), sys::Errno>(())
        });
        report(k, &format!("map_touch_{}m_any_align", small >> 20), 3, r);
        println!("# bench checksum {sum}");
    }
}
