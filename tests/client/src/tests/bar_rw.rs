//! `bar-rw`: pread/pwrite on the BAR regions: access sizes, clamping at the
//! end of a BAR, offsets past it, invalid region indexes, the MSI-X table
//! hole, and device-specific data checks on the QEMU test devices.

use super::{region_name, Ctx, Region};
use crate::caps::{self, MsixInfo};
use crate::device::Kind;
use crate::pattern;
use crate::sys::{show, SysResult};
use crate::transcript::{fnv1a, hex};
use crate::uapi::*;

/// Run the `bar-rw` subcommand.
pub fn run(c: &mut Ctx) {
    let Some(info) = c.device_info() else { return };
    let regions: Vec<Option<Region>> = (0..VFIO_PCI_NUM_REGIONS).map(|i| c.region(i)).collect();
    let bar = |i: u32| -> Option<RegionInfo> {
        regions[i as usize]
            .as_ref()
            .map(|r| r.info)
            .filter(|r| r.has(VFIO_REGION_INFO_FLAG_READ) && r.size > 0)
    };

    let cfg = read_config(c, &regions);

    // ivshmem's shared memory keeps whatever the last user wrote, so seed
    // the bytes the generic probes read before they read them.
    if let (Kind::Ivshmem, Some(r2)) = (c.kind, bar(2)) {
        if r2.size >= 1 << 16 {
            for off in [0, r2.size - 16] {
                let d = pattern::bytes(off, 16, 0);
                let w = c.pwrite_rec(2, off, &d, true);
                c.expect_ret(&format!("seed.bar2+{off:#x}"), &w, 16);
            }
        }
    }

    // Before any other BAR access of this open (ivshmem's BAR2 aside, seeded
    // above): vfio_pci_rs maps a memory BAR on its first access.
    for i in VFIO_PCI_BAR0_REGION_INDEX..=VFIO_PCI_BAR5_REGION_INDEX {
        if let Some(r) = bar(i) {
            first_access(c, i, &r);
        }
    }
    for i in VFIO_PCI_BAR0_REGION_INDEX..=VFIO_PCI_BAR5_REGION_INDEX {
        if let Some(r) = bar(i) {
            generic_bar(c, i, &r);
        }
    }
    rom(c, &regions);
    invalid_index(c, info.num_regions);
    msix(c, &regions, cfg.as_deref());

    match c.kind {
        Kind::Edu => edu(c, bar(0)),
        Kind::Ivshmem => ivshmem(c, bar(2)),
        Kind::PciTestdev => pci_testdev(c, bar(0), bar(1)),
        Kind::Igb | Kind::Nvme => read_only_bar0(c, bar(0)),
        Kind::Other => c.skip("device_specific", "not a known QEMU test device"),
    }
}

/// Read the whole config region. Records the identity bytes and the
/// capability list as the driver presents it (vfio virtualizes the list).
fn read_config(c: &mut Ctx, regions: &[Option<Region>]) -> Option<Vec<u8>> {
    let size = regions[VFIO_PCI_CONFIG_REGION_INDEX as usize]
        .as_ref()
        .map(|r| r.info.size)
        .unwrap_or(256)
        .min(4096) as usize;
    let mut b = vec![0u8; size];
    let r = c.dev.read_region(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut b);
    c.t.rw(
        format!("pread config+0x0 len={size}"),
        &r,
        Some(&b[..4.min(size)]),
    );
    if !c.expect_ret("config.read_all", &r, size) {
        return None;
    }
    let mut list = caps::pci_caps(&b)
        .iter()
        .map(|(id, off)| format!("{id:02x}@{off:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    if list.is_empty() {
        list.push_str("(none)");
    }
    c.t.line(format!("config capability list: {list}"));
    Some(b)
}

/// Several threads read the start of BAR `i` at the same moment. Under
/// vfio_pci_rs the first read of a memory BAR maps it (`BarMap::io`), so this
/// races the mapping: every read must be whole and, where the data is stable,
/// give the same bytes (recorded, so compared with vfio-pci's).
fn first_access(c: &mut Ctx, i: u32, r: &RegionInfo) {
    const THREADS: usize = 4;
    let name = format!("{}.first_read4_x{THREADS}", region_name(i));
    let len = r.size.min(4) as usize;
    let stable = c.kind.stable_data(i, 0, len as u64);
    let barrier = std::sync::Barrier::new(THREADS);
    let dev = &c.dev;
    let reads: Vec<(SysResult<usize>, Vec<u8>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; len];
                    barrier.wait();
                    let res = dev.read_region(i, 0, &mut buf);
                    (res, buf)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("reader thread"))
            .collect()
    });
    let whole = reads.iter().all(|(res, _)| *res == Ok(len));
    let same = reads.windows(2).all(|w| w[0].1 == w[1].1);
    let shown: Vec<String> = reads.iter().map(|(res, _)| show(res)).collect();
    let data = if stable {
        format!(" [{}]", hex(&reads[0].1))
    } else {
        String::new()
    };
    c.t.line(format!("{name} -> {}{data}", shown.join(",")));
    c.check(
        &name,
        whole && (!stable || same),
        format!(
            "{THREADS} reads of {len}{}",
            if stable { ", identical" } else { "" }
        ),
        format!("{} same={same}", shown.join(",")),
    );
}

fn generic_bar(c: &mut Ctx, i: u32, r: &RegionInfo) {
    let name = region_name(i);
    let size = r.size;
    let kind = c.kind;
    for len in [1usize, 2, 4, 8] {
        let (res, _) = c.pread_rec(i, 0, len, kind.stable_data(i, 0, len as u64));
        let want = (len as u64).min(size) as usize;
        c.expect_ret(&format!("{name}.read{len}@0"), &res, want);
    }
    let (res, _) = c.pread_rec(i, size - 1, 1, kind.stable_data(i, size - 1, 1));
    c.expect_ret(&format!("{name}.read1@end-1"), &res, 1);
    if size >= 4 {
        // Reads are clamped at the end of the BAR: a short read.
        let (res, _) = c.pread_rec(i, size - 4, 8, kind.stable_data(i, size - 4, 4));
        c.expect_ret(&format!("{name}.read8@end-4_short"), &res, 4);
    }
    let (res, _) = c.pread_rec(i, size, 4, false);
    c.expect_errno(&format!("{name}.read@end"), &res, libc::EINVAL);
    if size <= 1 << 39 {
        let (res, _) = c.pread_rec(i, 1 << 39, 4, false);
        c.expect_errno(&format!("{name}.read@2^39"), &res, libc::EINVAL);
    }
}

fn rom(c: &mut Ctx, regions: &[Option<Region>]) {
    let idx = VFIO_PCI_ROM_REGION_INDEX;
    // Upstream refuses every write to the ROM region, present or not.
    let w = c.pwrite_rec(idx, 0, &[0u8; 4], false);
    c.expect_errno("rom.write", &w, libc::EINVAL);
    let rom = regions[idx as usize]
        .as_ref()
        .map(|r| r.info)
        .filter(|r| r.has(VFIO_REGION_INFO_FLAG_READ) && r.size >= 4);
    match rom {
        // ROM contents are read-only, so the data is stable.
        Some(_) => {
            let (res, _) = c.pread_rec(idx, 0, 4, true);
            c.expect_ret("rom.read4@0", &res, 4);
        }
        None => {
            // Usually EINVAL; a ROM BAR with invalid contents fails
            // differently, so only failure is asserted (the transcript has
            // the errno).
            let (res, _) = c.pread_rec(idx, 0, 4, false);
            c.check("rom.read_absent", res.is_err(), "an error", show(&res));
        }
    }
}

fn invalid_index(c: &mut Ctx, num_regions: u32) {
    for idx in [num_regions, num_regions + 1, 255] {
        let (r, _) = c.pread_rec(idx, 0, 4, false);
        c.expect_errno(&format!("region{idx}.read"), &r, libc::EINVAL);
        let w = c.pwrite_rec(idx, 0, &[0u8; 4], false);
        c.expect_errno(&format!("region{idx}.write"), &w, libc::EINVAL);
    }
    // A zero-length access succeeds with 0 before the index is looked at.
    let (r, _) = c.pread_rec(num_regions, 0, 0, true);
    c.expect_ret(&format!("region{num_regions}.read0"), &r, 0);
}

fn msix(c: &mut Ctx, regions: &[Option<Region>], cfg: Option<&[u8]>) {
    let Some(cfg) = cfg else {
        c.skip("msix", "config space unreadable");
        return;
    };
    let m: Option<MsixInfo> = caps::msix_info(cfg);
    c.t.line(format!("msix: {m:?}"));
    // Upstream attaches MSIX_MAPPABLE to the mmap-able BAR holding the
    // table, and to no other region.
    for i in VFIO_PCI_BAR0_REGION_INDEX..=VFIO_PCI_BAR5_REGION_INDEX {
        let Some(r) = regions[i as usize].as_ref() else {
            continue;
        };
        if !r.info.has(VFIO_REGION_INFO_FLAG_MMAP) {
            continue;
        }
        let has = r.has_cap(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        let want = m.is_some_and(|m| m.table_bir == i);
        c.t.line(format!("{} msix_mappable cap: {has}", region_name(i)));
        c.check(
            &format!("msix.mappable_cap.bar{i}"),
            has == want,
            if want {
                "MSIX_MAPPABLE present"
            } else {
                "no MSIX_MAPPABLE"
            },
            if has { "present" } else { "absent" },
        );
    }
    let Some(m) = m else {
        c.skip("msix.table", "no MSI-X capability");
        return;
    };
    let bir = m.table_bir;
    let Some(r) = regions
        .get(bir as usize)
        .and_then(|r| r.as_ref())
        .map(|r| r.info)
    else {
        c.fail(
            "msix.table",
            format!("table BAR {bir} present"),
            "no such region",
        );
        return;
    };
    let start = m.table_offset as u64;
    let end = start + m.table_bytes();
    if r.size < end {
        c.fail(
            "msix.table",
            format!("BAR {bir} of at least {end:#x} bytes"),
            r.size,
        );
        return;
    }
    let ones = [0xffu8; 4];
    let (res, b) = c.pread_rec(bir, start, 4, true);
    c.check(
        "msix.table_read_first",
        res == Ok(4) && b == ones,
        "4 bytes ffffffff",
        format!("{} [{}]", show(&res), hex(&b)),
    );
    let (res, b) = c.pread_rec(bir, end - 4, 4, true);
    c.check(
        "msix.table_read_last",
        res == Ok(4) && b == ones,
        "4 bytes ffffffff",
        format!("{} [{}]", show(&res), hex(&b)),
    );
    if start >= 4 {
        // A read straddling the start of the table: real register bytes,
        // then the hole. Only the hole half is stable.
        let mut b = [0u8; 8];
        let res = c.dev.read_region(bir, start - 4, &mut b);
        c.t.rw(
            format!(
                "pread {}+{:#x} len=8 (table start straddle, upper half)",
                region_name(bir),
                start - 4
            ),
            &res,
            Some(&b[4..]),
        );
        c.check(
            "msix.table_straddle",
            res == Ok(8) && b[4..] == ones,
            "8, upper 4 bytes ffffffff",
            format!("{} [{}]", show(&res), hex(&b[4..])),
        );
    }
    // Writes to the table are dropped but reported as done.
    let w = c.pwrite_rec(bir, start, &[0u8; 4], true);
    c.expect_ret("msix.table_write", &w, 4);
    let (res, b) = c.pread_rec(bir, start, 4, true);
    c.check(
        "msix.table_write_dropped",
        res == Ok(4) && b == ones,
        "ffffffff after write",
        format!("{} [{}]", show(&res), hex(&b)),
    );
}

fn edu(c: &mut Ctx, bar0: Option<RegionInfo>) {
    let Some(_) = bar0 else {
        c.fail("edu.bar0", "BAR0 readable", "absent");
        return;
    };
    let (r, b) = c.pread_rec(0, 0, 4, true);
    let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    c.check(
        "edu.ident",
        r == Ok(4) && id == 0x0100_00ed,
        "0x010000ed",
        format!("{} {id:#010x}", show(&r)),
    );
    // The liveness register returns the complement of what was written.
    for x in [0x1234_5678u32, 0xa5a5_a5a5, 0] {
        let w = c.pwrite_rec(0, 4, &x.to_le_bytes(), true);
        let (r, b) = c.pread_rec(0, 4, 4, true);
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c.check(
            &format!("edu.liveness.{x:08x}"),
            w == Ok(4) && r == Ok(4) && v == !x,
            format!("write 4, read {:#010x}", !x),
            format!("write {}, read {} {v:#010x}", show(&w), show(&r)),
        );
    }
}

fn ivshmem(c: &mut Ctx, bar2: Option<RegionInfo>) {
    let Some(r) = bar2 else {
        c.fail("ivshmem.bar2", "BAR2 readable", "absent");
        return;
    };
    const CHUNK: u64 = 1 << 16;
    if r.size < 2 * CHUNK {
        c.fail("ivshmem.bar2", "at least 128 KiB", r.size);
        return;
    }
    for (round, off) in [0, (r.size / 2) & !7, r.size - CHUNK]
        .into_iter()
        .enumerate()
    {
        let data = pattern::bytes(off, CHUNK as usize, 10 + round as u64);
        let w = c.dev.write_region(2, off, &data);
        c.t.line(format!(
            "pwrite bar2+{off:#x} len={CHUNK:#x} -> {} [fnv {:016x}]",
            show(&w),
            fnv1a(&data)
        ));
        let mut back = vec![0u8; CHUNK as usize];
        let rd = c.dev.read_region(2, off, &mut back);
        let same = back == data;
        c.t.line(format!(
            "pread bar2+{off:#x} len={CHUNK:#x} -> {} [fnv {:016x}] match={same}",
            show(&rd),
            fnv1a(&back)
        ));
        let first_bad = back.iter().zip(&data).position(|(a, b)| a != b);
        c.check(
            &format!("ivshmem.64k@{off:#x}"),
            w == Ok(CHUNK as usize) && rd == Ok(CHUNK as usize) && same,
            format!("write/read {CHUNK} bytes, identical"),
            format!(
                "write {} read {} first mismatch {:?}",
                show(&w),
                show(&rd),
                first_bad
            ),
        );
    }
    // Unaligned accesses of every size: upstream splits them into naturally
    // aligned device accesses; the bytes must round-trip either way.
    for off in [1u64, 3, 5] {
        for len in [1usize, 2, 4, 8] {
            let data = pattern::bytes(off * 64 + len as u64, len, 20);
            let w = c.pwrite_rec(2, off, &data, true);
            let (rd, back) = c.pread_rec(2, off, len, true);
            c.check(
                &format!("ivshmem.unaligned.off{off}.len{len}"),
                w == Ok(len) && rd == Ok(len) && back == data,
                format!("{len} [{}]", hex(&data)),
                format!("write {} read {} [{}]", show(&w), show(&rd), hex(&back)),
            );
        }
    }
}

fn pci_testdev(c: &mut Ctx, bar0: Option<RegionInfo>, bar1: Option<RegionInfo>) {
    for (i, r) in [(0u32, bar0), (1, bar1)] {
        let Some(r) = r else {
            c.skip(&format!("testdev.bar{i}"), "BAR absent");
            continue;
        };
        for off in (0..16u64).step_by(4) {
            if off + 4 > r.size {
                break;
            }
            let (res, _) = c.pread_rec(i, off, 4, true);
            c.expect_ret(&format!("testdev.bar{i}.read4@{off}"), &res, 4);
        }
    }
}

fn read_only_bar0(c: &mut Ctx, bar0: Option<RegionInfo>) {
    let Some(r) = bar0 else {
        c.fail("bar0", "BAR0 readable", "absent");
        return;
    };
    let kind = c.kind;
    if r.size < 4 {
        c.fail("ro.bar0", "BAR0 of at least 4 bytes", r.size);
        return;
    }
    for off in [0, r.size - 4] {
        let (res, _) = c.pread_rec(0, off, 4, kind.stable_data(0, off, 4));
        c.expect_ret(&format!("ro.bar0.read4@{off:#x}"), &res, 4);
    }
}
