//! `mmap`: mapping BARs, accessing them through the mapping, the mmap error
//! cases, and the zap behaviour when memory decode is turned off or the
//! device is reset while mapped (by the driver or by someone else).
//!
//! SIGBUS handling: accesses that may fault go through [`crate::probe`],
//! which survives the signal in-process. The "child forked before the
//! write" check instead lets the child take the default action and checks
//! that it died of SIGBUS, which is what an unsuspecting user of the mapping
//! sees.

use super::{region_name, Ctx};
use crate::caps::{
    self, PCI_CAP_ID_EXP, PCI_CAP_ID_PM, PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_EXP_DEVCAP,
    PCI_EXP_DEVCAP_FLR, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR, PCI_PM_CTRL,
    PCI_PM_CTRL_STATE_MASK,
};
use crate::counters;
use crate::device::Kind;
use crate::pattern::{self, align_up, map_alignment, Rng};
use crate::probe;
use crate::sys::{self, show, Mapping};
use crate::uapi::*;

/// Run the `mmap` subcommand.
pub fn run(c: &mut Ctx) {
    probe::install();
    let Some(info) = c.device_info() else { return };
    let page = sys::page_size();
    let mut maps: Vec<(u32, RegionInfo, Mapping)> = Vec::new();
    for i in VFIO_PCI_BAR0_REGION_INDEX..=VFIO_PCI_BAR5_REGION_INDEX {
        let Some(r) = c.region(i) else { continue };
        if !r.info.has(VFIO_REGION_INFO_FLAG_MMAP) {
            continue;
        }
        let len = align_up(r.info.size, page);
        let res = Mapping::new_aligned(c.dev.fd, region_offset(i), len, map_alignment(len));
        let ans = match &res {
            Ok(_) => "ok".to_string(),
            Err(e) => e.name(),
        };
        c.t.line(format!(
            "mmap {} MAP_SHARED len={len:#x} -> {ans}",
            region_name(i)
        ));
        c.check(&format!("map.bar{i}"), res.is_ok(), "mapping created", &ans);
        if let Ok(m) = res {
            maps.push((i, r.info, m));
        }
    }

    error_cases(c, &info, &maps, page);

    if maps.is_empty() {
        c.skip("access", "no mmap-able BAR");
        c.skip("mremap", "no mmap-able BAR");
        c.skip("zap", "no mmap-able BAR");
        return;
    }

    for (i, _, m) in &maps {
        if c.kind == Kind::Ivshmem && *i == 2 {
            ivshmem_touch(c, m);
            ivshmem_misaligned(c, m);
        } else {
            compare_access(c, *i, m);
        }
    }

    let (i0, _, m0) = &mut maps[0];
    let (g0, g1) = m0.try_grow(page as usize);
    c.t.line(format!(
        "mremap {} grow in place -> {}, grow maymove -> {}",
        region_name(*i0),
        show(&g0),
        show(&g1)
    ));
    let name = format!("mremap.bar{i0}.grow_refused");
    c.check(
        &name,
        g0.is_err() && g1.is_err(),
        "both grow attempts fail (VM_DONTEXPAND)",
        format!("{} / {}", show(&g0), show(&g1)),
    );

    let target = maps
        .iter()
        .position(|(i, _, _)| c.kind == Kind::Ivshmem && *i == 2)
        .unwrap_or(0);
    let (i, _, m) = &maps[target];
    zap(c, &info, *i, m);
    flr(c, *i, m);
    d3hot(c, *i, m);
    hot_reset(c, *i, m);
    sysfs_reset(c, *i, m);
}

/// A reset by someone else (sysfs `reset`: `pci_reset_function()`) while `bar`
/// is mapped and touched. Under both drivers the write succeeds and the
/// mapping reads the same data afterwards (the PCI core saves and restores
/// the config state around the reset). vfio_pci_rs also zaps the mappings
/// and holds off BAR access for the reset (its `reset_prepare`), so its zap
/// counter rises; upstream has no reset callbacks and leaves the mappings
/// live while the reset turns decode off.
fn sysfs_reset(c: &mut Ctx, bar: u32, m: &Mapping) {
    let Some(path) = c.sysfs_reset_file("sysfs_reset", "sysfs reset") else {
        return;
    };
    reset_while_mapped(c, bar, m, 9, "sysfs_reset", "sysfs reset", |c| {
        let w = std::fs::write(&path, "1");
        let shown = match &w {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("{:?}", e.kind()),
        };
        c.t.line(format!("sysfs reset: write 1 -> {shown}"));
        c.check("sysfs_reset.write", w.is_ok(), "the reset succeeds", &shown);
    });
}

/// What every reset-like event while `bar` is mapped is checked for: data
/// seeded (pattern `round`) and verified before, `event`, then COMMAND
/// recorded (MEM turned back on if lost), the mapping faulting back in with
/// the same data, and the Rust driver's zap counter risen. `stage` names the
/// checks, `what` the event in the transcript.
fn reset_while_mapped(
    c: &mut Ctx,
    bar: u32,
    m: &Mapping,
    round: u64,
    stage: &str,
    what: &str,
    event: impl FnOnce(&mut Ctx),
) {
    let expect = seed(c, bar, m, round);
    verify_mapped(c, &format!("{stage}.before"), bar, m, &expect);
    let before = print_counters(c, &format!("before {what}"));
    event(c);
    mem_after(c, &format!("after {what}"));
    verify_mapped(c, &format!("{stage}.after"), bar, m, &expect);
    let after = print_counters(c, &format!("after {what}"));
    check_zapped(c, stage, before, after);
}

/// A slot/bus reset (VFIO_DEVICE_PCI_HOT_RESET) while `bar` is mapped and
/// touched: the mappings are zapped during the reset and fault back in.
fn hot_reset(c: &mut Ctx, bar: u32, m: &Mapping) {
    reset_while_mapped(c, bar, m, 8, "hot_reset", "hot reset", |c| {
        let r = super::hot_reset::reset_own(c);
        c.t.ioctl_ret("VFIO_DEVICE_PCI_HOT_RESET (own group or iommufd)", &r);
        super::hot_reset::expect_reset(c, "hot_reset", &r);
    });
}

fn error_cases(c: &mut Ctx, info: &DeviceInfo, maps: &[(u32, RegionInfo, Mapping)], page: u64) {
    let fd = c.dev.fd;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    for (i, r, _) in maps {
        let len = align_up(r.size, page);
        let base = region_offset(*i);
        let name = region_name(*i);
        let cases = [
            ("private", page, libc::MAP_PRIVATE, base),
            ("beyond", page, libc::MAP_SHARED, base + len),
            ("past_end", len + page, libc::MAP_SHARED, base),
        ];
        for (what, l, flags, off) in cases {
            let res = sys::mmap_probe(l, rw, flags, fd, off);
            c.t.line(format!(
                "mmap {name} {what} off={:#x} len={l:#x} -> {}",
                off - base,
                show(&res)
            ));
            c.expect_errno(&format!("mmap_err.bar{i}.{what}"), &res, libc::EINVAL);
        }
    }
    for idx in [
        VFIO_PCI_ROM_REGION_INDEX,
        VFIO_PCI_CONFIG_REGION_INDEX,
        VFIO_PCI_VGA_REGION_INDEX,
        info.num_regions,
    ] {
        let res = sys::mmap_probe(page, rw, libc::MAP_SHARED, fd, region_offset(idx));
        c.t.line(format!(
            "mmap {} len={page:#x} -> {}",
            region_name(idx),
            show(&res)
        ));
        c.expect_errno(
            &format!("mmap_err.{}", region_name(idx)),
            &res,
            libc::EINVAL,
        );
    }
}

/// Mappings of part of BAR2 at an address 64 KiB past a 2 MiB boundary and a file offset of
/// three pages, so no huge entry fits and every page is a 4 KiB fault (vfio_pci_rs fills the
/// rest of the faulting page's 2 MiB block, upstream maps the one page). Every page must show
/// its own BAR offset's data, pages mapped ahead of any access must go away with memory decode
/// and come back with it. `m` is the aligned mapping of the whole BAR, used to seed the data.
fn ivshmem_misaligned(c: &mut Ctx, m: &Mapping) {
    const PAGE: usize = 4096;
    const SKEW: usize = 64 << 10;
    // Pages of the mapping in its first 2 MiB block (the block starts SKEW before it).
    const FIRST_BLOCK_PAGES: usize = ((2 << 20) - SKEW) / PAGE;
    let first = 3 * PAGE;
    let len = (5 << 20) + 7 * PAGE;
    let pages = len / PAGE;
    // Seed: each page's first word and last word carry its BAR offset.
    let word_at = |off: usize| pattern::word(off as u64, 6);
    for p in 0..pages {
        let off = first + p * PAGE;
        // SAFETY: off + PAGE <= first + len, inside the aligned mapping of the whole BAR.
        let ok = unsafe {
            probe::write64(m.addr() + off, word_at(off)).is_ok()
                && probe::write64(m.addr() + off + PAGE - 8, word_at(off + PAGE - 8)).is_ok()
        };
        if !ok {
            c.fail("misaligned.seed", "writes through the aligned mapping", off);
            return;
        }
    }
    let map = |c: &mut Ctx, what: &str| {
        let res = Mapping::new_skewed(
            c.dev.fd,
            region_offset(2) + first as u64,
            len as u64,
            2 << 20,
            SKEW as u64,
        );
        let ans = match &res {
            Ok(_) => "ok".to_string(),
            Err(e) => e.name(),
        };
        c.t.line(format!(
            "mmap bar2+{first:#x} len={len:#x} at a 2 MiB boundary + 0x10000 ({what}) -> {ans}"
        ));
        c.check(
            &format!("misaligned.map.{what}"),
            res.is_ok(),
            "mapping created",
            &ans,
        );
        res.ok()
    };
    // Bad pages of `mm` (a page is bad if either seeded word differs), in the order `order`.
    let bad_pages = |mm: &Mapping, order: &mut dyn Iterator<Item = usize>| -> Vec<usize> {
        order
            .filter(|&p| {
                let off = p * PAGE;
                // SAFETY: off + PAGE <= len, inside the misaligned mapping.
                let (a, b) = unsafe {
                    (
                        probe::read64(mm.addr() + off),
                        probe::read64(mm.addr() + off + PAGE - 8),
                    )
                };
                a != Ok(word_at(first + off)) || b != Ok(word_at(first + off + PAGE - 8))
            })
            .collect()
    };
    let Some(m1) = map(c, "every page") else {
        return;
    };
    let before = print_counters(c, "before the misaligned touch");
    // One page in the middle of the second block first, then all, first to last.
    let mut order = std::iter::once(600).chain(0..pages);
    let bad = bad_pages(&m1, &mut order);
    c.t.line(format!(
        "misaligned: read {} pages -> {} wrong",
        pages + 1,
        bad.len()
    ));
    c.check_eq("misaligned.every_page", Vec::<usize>::new(), bad);
    let after = print_counters(c, "after the misaligned touch");
    if let (Some(b), Some(a)) = (before, after) {
        let d = |k: &str| counters::get(&a, k).saturating_sub(counters::get(&b, k));
        c.check_eq("misaligned.counters.huge", 0, d("pmd") + d("pud"));
        // One fault per 2 MiB block the mapping touches (three here), the rest filled ahead.
        c.check(
            "misaligned.counters.filled_ahead",
            d("pte") < pages as u64 && d("pte") + d("around") == pages as u64,
            format!("pte + around == {pages}, pte < {pages}"),
            format!("pte {} around {}", d("pte"), d("around")),
        );
    }

    // A second mapping with one page touched: its neighbours may be mapped without ever
    // having been accessed; memory decode off must take them away too.
    let Some(m2) = map(c, "one page touched") else {
        return;
    };
    let touched = bad_pages(&m2, &mut std::iter::once(1));
    c.check_eq("misaligned.one_page", Vec::<usize>::new(), touched);
    let cmd = match c.dev.config_read16(PCI_COMMAND) {
        Ok(v) => v,
        Err(e) => {
            c.fail("misaligned.read_command", "COMMAND readable", e);
            return;
        }
    };
    let w = c.dev.config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY);
    c.expect_ret("misaligned.disable_mem", &w, 2);
    // Page 1's fault mapped the first block ahead: its first pages and its last one, never
    // accessed; and the mapping's last page, never mapped.
    let probes = [0usize, 2, FIRST_BLOCK_PAGES - 1, pages - 1];
    for &p in &probes {
        // SAFETY: p < pages, inside the mapping.
        let a = unsafe { probe::read64(m2.addr() + p * PAGE) };
        expect_sigbus(
            c,
            &format!("misaligned.mem_off.sigbus@{p}"),
            &format!("misaligned mem off: map read page {p}"),
            &a,
        );
    }
    let w = c.dev.config_write16(PCI_COMMAND, cmd);
    c.expect_ret("misaligned.enable_mem", &w, 2);
    let bad = bad_pages(&m2, &mut probes.iter().copied());
    c.t.line(format!(
        "misaligned mem on: {} of {} probed pages wrong",
        bad.len(),
        probes.len()
    ));
    c.check_eq("misaligned.mem_on", Vec::<usize>::new(), bad);
    let bad = bad_pages(&m1, &mut (0..pages));
    c.t.line(format!(
        "misaligned mem on: first mapping {} pages wrong",
        bad.len()
    ));
    c.check_eq("misaligned.mem_on.every_page", Vec::<usize>::new(), bad);

    // A hole punched before any access splits the VMA in two, across a 2 MiB boundary: each
    // part's faults must stay inside it and map its own pages.
    let Some(m3) = map(c, "split by a hole") else {
        return;
    };
    let hole = 100..700;
    // SAFETY: the hole lies inside m3, which no one else uses; m3's drop unmaps the whole
    // range again, which is harmless for the part already gone.
    let r = unsafe {
        libc::munmap(
            (m3.addr() + hole.start * PAGE) as *mut libc::c_void,
            hole.len() * PAGE,
        )
    };
    c.check_eq("misaligned.hole", 0, r);
    let mut order = (hole.end..pages).chain(0..hole.start);
    let bad = bad_pages(&m3, &mut order);
    c.t.line(format!(
        "misaligned: pages {}..{} unmapped first, the other {} -> {} wrong",
        hole.start,
        hole.end,
        pages - hole.len(),
        bad.len()
    ));
    c.check_eq("misaligned.split", Vec::<usize>::new(), bad);
}

/// Records the read `what` (transcript) and checks that it faulted with SIGBUS.
fn expect_sigbus(c: &mut Ctx, check: &str, what: &str, a: &probe::Access<u64>) {
    c.t.line(format!("{what} -> {}", probe::show(a)));
    c.check(check, *a == Err(libc::SIGBUS), "SIGBUS", probe::show(a));
}

/// Read 4 bytes at offset 0 through the mapping and through pread; where the
/// register is stable the two must agree.
fn compare_access(c: &mut Ctx, i: u32, m: &Mapping) {
    let stable = c.kind.stable_data(i, 0, 4);
    // SAFETY: m is a live device mapping of at least one page.
    let a = unsafe { probe::read32(m.addr()) };
    let mut b = [0u8; 4];
    let p = c.dev.read_region(i, 0, &mut b);
    let pv = u32::from_le_bytes(b);
    let shown = match (&a, stable) {
        (Ok(_), false) => "ok".to_string(),
        _ => probe::show(&a),
    };
    c.t.line(format!("map {} read32@0 -> {shown}", region_name(i)));
    c.check(
        &format!("access.bar{i}.read"),
        a.is_ok(),
        "read through the mapping",
        probe::show(&a),
    );
    if stable {
        c.check(
            &format!("access.bar{i}.matches_pread"),
            p == Ok(4) && a == Ok(pv),
            format!("pread value {pv:#x}"),
            probe::show(&a),
        );
    }
}

/// The Rust driver's zap counter must have grown across a reset-like event
/// (skipped under upstream, which has no counters).
fn check_zapped(c: &mut Ctx, stage: &str, before: Option<Counters>, after: Option<Counters>) {
    match (before, after) {
        (Some(b), Some(a)) => {
            c.check(
                &format!("{stage}.counters.zap"),
                counters::get(&a, "zap") > counters::get(&b, "zap"),
                format!("zap above {}", counters::get(&b, "zap")),
                counters::get(&a, "zap"),
            );
        }
        _ => c.skip(
            &format!("{stage}.counters"),
            "no vfio_pci_rs fault counters (upstream driver)",
        ),
    }
}

type Counters = std::collections::BTreeMap<String, u64>;

fn print_counters(c: &mut Ctx, when: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    let cnt = counters::read(&c.dev.bdf);
    if let Some(v) = &cnt {
        c.diag(format!("fault counters {when}: {}", counters::render(v)));
    }
    cnt
}

fn ivshmem_touch(c: &mut Ctx, m: &Mapping) {
    let page = 4096u64;
    let len = m.size() as u64;
    let before = print_counters(c, "before touching BAR2");
    let mut faults = 0u64;
    for off in (0..len).step_by(page as usize) {
        // SAFETY: off < len, inside our mapping of the shared memory BAR.
        if unsafe { probe::write64(m.addr() + off as usize, pattern::word(off, 1)) }.is_err() {
            faults += 1;
        }
    }
    let pages = len / page;
    c.t.line(format!(
        "touch {pages} pages of bar2 via mapping: faults={faults}"
    ));
    c.check_eq("ivshmem.touch_all_pages", 0, faults);
    let after = print_counters(c, "after touching BAR2");
    match (before, after) {
        (Some(b), Some(a)) => {
            let huge = |x: &std::collections::BTreeMap<String, u64>| {
                counters::get(x, "pud") + counters::get(x, "pmd")
            };
            c.check(
                "ivshmem.counters.huge_faults",
                huge(&a) > huge(&b),
                format!("pud+pmd above {}", huge(&b)),
                huge(&a),
            );
            let dpte = counters::get(&a, "pte").saturating_sub(counters::get(&b, "pte"));
            c.check(
                "ivshmem.counters.pte_faults",
                dpte < pages,
                format!("fewer than {pages} pte faults"),
                dpte,
            );
        }
        _ => c.skip(
            "ivshmem.counters",
            "no vfio_pci_rs fault counters (upstream driver)",
        ),
    }

    // Verify via pread: start, middle, end and 64 seeded random pages.
    let mut rng = Rng::new(0x7666_696f_6d6d_6170);
    let mut offs = vec![0, (len / 2) & !(page - 1), len - page];
    offs.extend((0..64).map(|_| rng.below(pages) * page));
    let mut bad = 0;
    for off in &offs {
        let mut b = [0u8; 8];
        let res = c.dev.read_region(2, *off, &mut b);
        let want = pattern::word(*off, 1).to_le_bytes();
        c.t.rw(format!("pread bar2+{off:#x} len=8"), &res, Some(&b));
        if res != Ok(8) || b != want {
            bad += 1;
            if bad <= 3 {
                c.diag(format!(
                    "bar2+{off:#x}: pread {} {:#x}, pattern {:#x}",
                    show(&res),
                    u64::from_le_bytes(b),
                    u64::from_le_bytes(want)
                ));
            }
        }
    }
    c.check_eq("ivshmem.pread_sees_map_writes", 0, bad);

    // And the other way: pwrite, then read through the mapping.
    let mut bad = 0;
    for _ in 0..16 {
        let off = rng.below(len / 8) * 8;
        let v = pattern::word(off, 2);
        let w = c.dev.write_region(2, off, &v.to_le_bytes());
        // SAFETY: off < len, inside our mapping.
        let a = unsafe { probe::read64(m.addr() + off as usize) };
        c.t.line(format!(
            "pwrite bar2+{off:#x} len=8 -> {}; map read64 -> {}",
            show(&w),
            probe::show(&a)
        ));
        if w != Ok(8) || a != Ok(v) {
            bad += 1;
        }
    }
    c.check_eq("ivshmem.map_sees_pwrites", 0, bad);

    // Every access width through the mapping, cross-checked with pread.
    let base = 3 * page as usize;
    let v = pattern::word(base as u64, 5);
    let x = (v >> 32) as u32 ^ 0x0102_0304;
    // SAFETY: base + 12 < len, inside our mapping.
    let (w8, w4) = unsafe {
        (
            probe::write64(m.addr() + base, v),
            probe::write32(m.addr() + base + 8, x),
        )
    };
    let mut want = v.to_le_bytes().to_vec();
    want.extend_from_slice(&x.to_le_bytes());
    let mut b = [0u8; 12];
    let p = c.dev.read_region(2, base as u64, &mut b);
    let at = |o: usize, n: usize| {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&want[o..o + n]);
        u64::from_le_bytes(a)
    };
    // SAFETY: all offsets lie within the 12 bytes written above.
    let reads = unsafe {
        [
            (1, 1, probe::read8(m.addr() + base + 1).map(u64::from)),
            (2, 2, probe::read16(m.addr() + base + 2).map(u64::from)),
            (4, 4, probe::read32(m.addr() + base + 4).map(u64::from)),
            (8, 4, probe::read32(m.addr() + base + 8).map(u64::from)),
            (0, 8, probe::read64(m.addr() + base)),
        ]
    };
    let mut ok = w8.is_ok() && w4.is_ok() && p == Ok(12) && b[..] == want[..];
    let mut line = format!(
        "map widths bar2+{base:#x}: write64 {} write32 {} pread -> {} [{}]",
        probe::show_done(&w8),
        probe::show_done(&w4),
        show(&p),
        crate::transcript::hex(&b)
    );
    for (o, n, a) in &reads {
        line.push_str(&format!("; read{}@{o} {}", n * 8, probe::show(a)));
        ok &= *a == Ok(at(*o, *n));
    }
    c.t.line(line.clone());
    c.check(
        "ivshmem.map_access_widths",
        ok,
        format!("bytes {}", crate::transcript::hex(&want)),
        line,
    );
}

/// What a probe read at an offset is expected to return once memory decode
/// is on: the pattern the test wrote, or (for registers) whatever was read
/// first when the value is stable, or anything.
#[derive(Clone, Copy)]
enum Expect {
    Value(u64),
    Any,
}

fn zap(c: &mut Ctx, info: &DeviceInfo, bar: u32, m: &Mapping) {
    let writable = c.kind.writable_memory_bar() == Some(bar);
    let page = 4096usize;
    let len = m.size();
    let name = region_name(bar);
    c.t.line(format!("zap target {name}"));

    let cmd = match c.dev.config_read16(PCI_COMMAND) {
        Ok(v) => v,
        Err(e) => {
            c.fail("zap.read_command", "COMMAND readable", e);
            return;
        }
    };
    c.t.line(format!("config COMMAND -> {cmd:#06x}"));
    if !c.check(
        "zap.mem_enabled",
        cmd & PCI_COMMAND_MEMORY != 0,
        "COMMAND.MEM set",
        format!("{cmd:#06x}"),
    ) {
        return;
    }

    // Offsets probed: first page, middle page, last page (deduplicated for
    // single-page BARs). Registers are read 4 bytes wide at offset 0 only
    // when the BAR is not ours to write.
    let mut offs = vec![0usize, (len / 2) & !(page - 1), len - page];
    offs.dedup();
    if !writable {
        offs.truncate(1);
    }
    let mut expect = Vec::new();
    for &off in &offs {
        let e = if writable {
            let v = pattern::word(off as u64, 3);
            // SAFETY: off < len, inside the shared memory mapping.
            let w = unsafe { probe::write64(m.addr() + off, v) };
            c.check(
                &format!("zap.seed@{off:#x}"),
                w.is_ok(),
                "write through the mapping",
                probe::show_done(&w),
            );
            Expect::Value(v)
        } else if c.kind.stable_data(bar, off as u64, 4) {
            let mut b = [0u8; 4];
            match c.dev.read_region(bar, off as u64, &mut b) {
                Ok(4) => Expect::Value(u32::from_le_bytes(b) as u64),
                _ => Expect::Any,
            }
        } else {
            Expect::Any
        };
        expect.push(e);
    }
    let read = |off: usize| -> probe::Access<u64> {
        // SAFETY: off < len, inside the device mapping.
        unsafe {
            if writable {
                probe::read64(m.addr() + off)
            } else {
                probe::read32(m.addr() + off).map(|v| v as u64)
            }
        }
    };
    let shown = |a: &probe::Access<u64>, e: Expect| match (a, e) {
        (Ok(_), Expect::Any) => "ok".to_string(),
        _ => probe::show(a),
    };
    let check_reads = |c: &mut Ctx, stage: &str| {
        for (k, &off) in offs.iter().enumerate() {
            let a = read(off);
            c.t.line(format!(
                "{stage}: map read {name}+{off:#x} -> {}",
                shown(&a, expect[k])
            ));
            let ok = match expect[k] {
                Expect::Value(v) => a == Ok(v),
                Expect::Any => a.is_ok(),
            };
            let want = match expect[k] {
                Expect::Value(v) => format!("{v:#x}"),
                Expect::Any => "a value (no fault)".into(),
            };
            c.check(&format!("zap.{stage}@{off:#x}"), ok, want, probe::show(&a));
        }
    };
    check_reads(c, "before");

    // A child that will touch the mapping after memory is disabled. It keeps
    // the default SIGBUS action, so it must die of SIGBUS.
    let child = spawn_toucher(m.addr());
    let before = print_counters(c, "before disabling memory");

    let w = c.dev.config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY);
    c.t.line(format!(
        "pwrite config COMMAND={:#06x} -> {}",
        cmd & !PCI_COMMAND_MEMORY,
        show(&w)
    ));
    c.expect_ret("zap.disable_mem", &w, 2);

    for &off in &offs {
        let a = read(off);
        expect_sigbus(
            c,
            &format!("zap.mem_off.read_sigbus@{off:#x}"),
            &format!("mem off: map read {name}+{off:#x}"),
            &a,
        );
        if writable {
            // SAFETY: as above.
            let a = unsafe { probe::write64(m.addr() + off, 0) };
            c.t.line(format!(
                "mem off: map write {name}+{off:#x} -> {}",
                probe::show_done(&a)
            ));
            c.check(
                &format!("zap.mem_off.write_sigbus@{off:#x}"),
                a == Err(libc::SIGBUS),
                "SIGBUS",
                probe::show_done(&a),
            );
        }
    }
    let mut b = [0u8; 4];
    let p = c.dev.read_region(bar, 0, &mut b);
    c.t.rw(format!("mem off: pread {name}+0x0 len=4"), &p, None);
    c.expect_errno("zap.mem_off.pread_eio", &p, libc::EIO);
    if writable {
        let p = c.dev.write_region(bar, 0, &[0u8; 8]);
        c.t.rw(format!("mem off: pwrite {name}+0x0 len=8"), &p, None);
        c.expect_errno("zap.mem_off.pwrite_eio", &p, libc::EIO);
    }
    match child {
        Some((pid, wfd)) => {
            // Let the child go, then wait for it.
            // SAFETY: wfd is the write end of our pipe.
            unsafe {
                libc::write(wfd, [1u8].as_ptr().cast(), 1);
                libc::close(wfd);
            }
            let st = sys::wait_child(pid, std::time::Duration::from_secs(20));
            let d = sys::describe_status(st);
            c.t.line(format!("mem off: child forked before the write: {d}"));
            c.check(
                "zap.mem_off.child_sigbus",
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGBUS,
                "child killed by SIGBUS",
                d,
            );
        }
        None => c.fail("zap.mem_off.child_sigbus", "fork", "fork failed"),
    }
    let after = print_counters(c, "after disabling memory");
    if let (Some(b), Some(a)) = (&before, &after) {
        c.diag(format!(
            "zap {} -> {}, sigbus {} -> {}",
            counters::get(b, "zap"),
            counters::get(a, "zap"),
            counters::get(b, "sigbus"),
            counters::get(a, "sigbus")
        ));
    }

    let w = c.dev.config_write16(PCI_COMMAND, cmd);
    c.t.line(format!("pwrite config COMMAND={cmd:#06x} -> {}", show(&w)));
    c.expect_ret("zap.enable_mem", &w, 2);
    check_reads(c, "mem_on");
    let p = c.dev.read_region(bar, 0, &mut b);
    c.t.rw(format!("mem on: pread {name}+0x0 len=4"), &p, None);
    c.expect_ret("zap.mem_on.pread", &p, 4);

    // Reset while mapped. Upstream zaps the mappings, resets with config
    // state saved and restored, so memory decode comes back and the mapping
    // faults back in.
    let rr = c.dev.reset();
    c.t.ioctl_ret("VFIO_DEVICE_RESET", &rr);
    if info.flags & VFIO_DEVICE_FLAGS_RESET == 0 {
        c.expect_errno("zap.reset_unsupported", &rr, libc::EINVAL);
        return;
    }
    c.expect_ret("zap.reset", &rr, 0);
    match c.dev.config_read16(PCI_COMMAND) {
        Ok(v) => c.t.line(format!("after reset: config COMMAND -> {v:#06x}")),
        Err(e) => c.t.line(format!("after reset: config COMMAND -> {e}")),
    }
    for (k, &off) in offs.iter().enumerate() {
        let a = read(off);
        c.t.line(format!(
            "after reset: map read {name}+{off:#x} -> {}",
            shown(&a, expect[k])
        ));
        c.check(
            &format!("zap.after_reset.access@{off:#x}"),
            a.is_ok(),
            "a value (no fault)",
            probe::show(&a),
        );
    }
    // Leave COMMAND as found.
    let _ = c.dev.config_write16(PCI_COMMAND, cmd);
}

/// The standard 256 bytes of config space as the user sees them.
fn config_image(c: &mut Ctx) -> Option<Vec<u8>> {
    let mut b = vec![0u8; 256];
    match c.dev.read_region(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut b) {
        Ok(256) => Some(b),
        _ => None,
    }
}

/// Read a config dword.
fn config_read32(c: &Ctx, off: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    match c.dev.read_region(VFIO_PCI_CONFIG_REGION_INDEX, off, &mut b) {
        Ok(4) => Some(u32::from_le_bytes(b)),
        _ => None,
    }
}

/// Offsets probed around a reset-like event and what they must read
/// afterwards. The writable (ivshmem shared memory) BAR gets a fresh pattern
/// written through the mapping at its first and last page; register BARs
/// are read 4 bytes wide at offset 0, expected unchanged only where the
/// register is stable.
fn seed(c: &mut Ctx, bar: u32, m: &Mapping, round: u64) -> Vec<(usize, Expect)> {
    let writable = c.kind.writable_memory_bar() == Some(bar);
    if writable {
        let mut offs = vec![0usize, m.size() - 4096];
        offs.dedup();
        offs.into_iter()
            .map(|off| {
                let v = pattern::word(off as u64, round);
                // SAFETY: off < len, inside the shared memory mapping.
                let w = unsafe { probe::write64(m.addr() + off, v) };
                let e = if w.is_ok() {
                    Expect::Value(v)
                } else {
                    Expect::Any
                };
                (off, e)
            })
            .collect()
    } else {
        // SAFETY: offset 0 of a live device mapping.
        let a = unsafe { probe::read32(m.addr()) };
        let e = match a {
            Ok(v) if c.kind.stable_data(bar, 0, 4) => Expect::Value(v as u64),
            _ => Expect::Any,
        };
        vec![(0, e)]
    }
}

/// Access at `off` through the mapping with the width used for `bar`.
fn map_read(c: &Ctx, bar: u32, m: &Mapping, off: usize) -> probe::Access<u64> {
    // SAFETY: callers pass offsets inside the mapping.
    unsafe {
        if c.kind.writable_memory_bar() == Some(bar) {
            probe::read64(m.addr() + off)
        } else {
            probe::read32(m.addr() + off).map(u64::from)
        }
    }
}

/// After the event: every probed offset must fault back in, read what pread
/// reads at the same offset, and where known, the value from before.
fn verify_mapped(c: &mut Ctx, stage: &str, bar: u32, m: &Mapping, expect: &[(usize, Expect)]) {
    let name = region_name(bar);
    let width = if c.kind.writable_memory_bar() == Some(bar) {
        8
    } else {
        4
    };
    for &(off, e) in expect {
        let a = map_read(c, bar, m, off);
        let mut b = [0u8; 8];
        let p = c.dev.read_region(bar, off as u64, &mut b[..width]);
        let pv = u64::from_le_bytes(b);
        let shown = match (&a, e) {
            (Ok(_), Expect::Any) => "ok".to_string(),
            _ => probe::show(&a),
        };
        c.t.line(format!(
            "{stage}: map read {name}+{off:#x} -> {shown}; pread -> {}",
            show(&p)
        ));
        c.check(
            &format!("{stage}.access@{off:#x}"),
            a.is_ok(),
            "a value (no fault)",
            probe::show(&a),
        );
        c.check(
            &format!("{stage}.matches_pread@{off:#x}"),
            p == Ok(width) && a == Ok(pv),
            format!("pread {} {pv:#x}", show(&p)),
            probe::show(&a),
        );
        if let Expect::Value(v) = e {
            c.check(
                &format!("{stage}.value@{off:#x}"),
                a == Ok(v),
                format!("{v:#x}"),
                probe::show(&a),
            );
        }
    }
}

/// Function Level Reset through config space (PCIe DEVCTL.BCR_FLR) while
/// `bar` is mapped and touched. Upstream zaps the mappings, resets with the
/// config state saved and restored, and the mapping faults back in.
fn flr(c: &mut Ctx, bar: u32, m: &Mapping) {
    let Some(cfg) = config_image(c) else {
        c.fail("flr.config", "config space readable", "read failed");
        return;
    };
    let Some(cap) = caps::find_cap(&cfg, PCI_CAP_ID_EXP) else {
        c.t.line("flr: not attempted (no PCI Express capability)");
        c.skip("flr", "no PCI Express capability, no FLR");
        return;
    };
    let base = cap as u64;
    let devcap = config_read32(c, base + PCI_EXP_DEVCAP);
    let devctl = c.dev.config_read16(base + PCI_EXP_DEVCTL);
    c.t.line(format!(
        "flr: PCIe capability at {cap:#04x}, DEVCAP {}, DEVCTL {}",
        devcap.map_or("read failed".into(), |v| format!("{v:#010x}")),
        devctl.map_or_else(|e| e.name(), |v| format!("{v:#06x}"))
    ));
    let (Some(devcap), Ok(devctl)) = (devcap, devctl) else {
        c.fail("flr.read_cap", "DEVCAP and DEVCTL readable", "read failed");
        return;
    };
    if devcap & PCI_EXP_DEVCAP_FLR == 0 {
        c.t.line("flr: not attempted (DEVCAP.FLR clear)");
        c.skip("flr", "device does not advertise FLR (DEVCAP bit 28)");
        return;
    }
    reset_while_mapped(c, bar, m, 6, "flr", "FLR", |c| {
        let v = devctl | PCI_EXP_DEVCTL_BCR_FLR;
        let w = c.dev.config_write16(base + PCI_EXP_DEVCTL, v);
        c.t.line(format!(
            "flr: attempted: pwrite config DEVCTL={v:#06x} -> {}",
            show(&w)
        ));
        c.expect_ret("flr.write_devctl", &w, 2);
        let after_ctl = c.dev.config_read16(base + PCI_EXP_DEVCTL);
        c.t.line(format!(
            "after FLR: config DEVCTL -> {}",
            after_ctl.map_or_else(|e| e.name(), |v| format!("{v:#06x}"))
        ));
        c.check(
            "flr.devctl_flr_reads_0",
            after_ctl.is_ok_and(|v| v & PCI_EXP_DEVCTL_BCR_FLR == 0 && v == devctl),
            format!("{devctl:#06x} (FLR bit clear)"),
            format!("{after_ctl:x?}"),
        );
    });
}

/// Read COMMAND after a reset or power transition, record it, and turn
/// memory decode back on if it was lost (recording that too), so later
/// steps find the device usable.
fn mem_after(c: &mut Ctx, stage: &str) {
    match c.dev.config_read16(PCI_COMMAND) {
        Ok(v) => {
            c.t.line(format!("{stage}: config COMMAND -> {v:#06x}"));
            if v & PCI_COMMAND_MEMORY == 0 {
                let w = c.dev.config_write16(PCI_COMMAND, v | PCI_COMMAND_MEMORY);
                c.t.line(format!(
                    "{stage}: COMMAND.MEM was clear, pwrite COMMAND={:#06x} -> {}",
                    v | PCI_COMMAND_MEMORY,
                    show(&w)
                ));
            }
        }
        Err(e) => c.t.line(format!("{stage}: config COMMAND -> {e}")),
    }
}

/// D3hot through the PM capability while `bar` is mapped: the mapping must
/// SIGBUS (here and in a child forked before), pread must fail with EIO;
/// back in D0 the mapping works again with the same data.
fn d3hot(c: &mut Ctx, bar: u32, m: &Mapping) {
    let name = region_name(bar);
    let Some(cfg) = config_image(c) else {
        c.fail("d3hot.config", "config space readable", "read failed");
        return;
    };
    let Some(pm) = caps::find_cap(&cfg, PCI_CAP_ID_PM) else {
        c.t.line("d3hot: not attempted (no power management capability)");
        c.skip("d3hot", "no power management capability");
        return;
    };
    let pmcsr_off = pm as u64 + PCI_PM_CTRL;
    let pmcsr = match c.dev.config_read16(pmcsr_off) {
        Ok(v) => v,
        Err(e) => {
            c.fail("d3hot.read_pmcsr", "PMCSR readable", e);
            return;
        }
    };
    c.t.line(format!(
        "d3hot: PM capability at {pm:#04x}, PMCSR {pmcsr:#06x} (NoSoftRst{})",
        if pmcsr & 0x8 != 0 { "+" } else { "-" }
    ));
    let d0 = pmcsr & !PCI_PM_CTRL_STATE_MASK;
    let expect = seed(c, bar, m, 7);
    verify_mapped(c, "d3hot.before", bar, m, &expect);
    let child = spawn_toucher(m.addr());
    let before = print_counters(c, "before D3hot");

    let w = c.dev.config_write16(pmcsr_off, d0 | 3);
    c.t.line(format!(
        "d3hot: pwrite config PMCSR={:#06x} -> {}",
        d0 | 3,
        show(&w)
    ));
    c.expect_ret("d3hot.write_pmcsr", &w, 2);
    let st = c.dev.config_read16(pmcsr_off);
    c.t.line(format!(
        "in D3hot: config PMCSR -> {}",
        st.map_or_else(|e| e.name(), |v| format!("{v:#06x}"))
    ));
    c.check(
        "d3hot.pmcsr_state",
        st.is_ok_and(|v| v & PCI_PM_CTRL_STATE_MASK == 3),
        "power state 3",
        format!("{st:x?}"),
    );
    for &(off, _) in &expect {
        let a = map_read(c, bar, m, off);
        c.t.line(format!(
            "in D3hot: map read {name}+{off:#x} -> {}",
            probe::show(&a)
        ));
        c.check(
            &format!("d3hot.read_sigbus@{off:#x}"),
            a == Err(libc::SIGBUS),
            "SIGBUS",
            probe::show(&a),
        );
    }
    let mut b = [0u8; 4];
    let p = c.dev.read_region(bar, 0, &mut b);
    c.t.rw(format!("in D3hot: pread {name}+0x0 len=4"), &p, None);
    c.expect_errno("d3hot.pread_eio", &p, libc::EIO);
    match child {
        Some((pid, wfd)) => {
            // SAFETY: wfd is the write end of our pipe.
            unsafe {
                libc::write(wfd, [1u8].as_ptr().cast(), 1);
                libc::close(wfd);
            }
            let st = sys::wait_child(pid, std::time::Duration::from_secs(20));
            let d = sys::describe_status(st);
            c.t.line(format!("in D3hot: child forked before the write: {d}"));
            c.check(
                "d3hot.child_sigbus",
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGBUS,
                "child killed by SIGBUS",
                d,
            );
        }
        None => c.fail("d3hot.child_sigbus", "fork", "fork failed"),
    }
    let mid = print_counters(c, "in D3hot");
    if let (Some(b), Some(a)) = (&before, &mid) {
        c.diag(format!(
            "D3hot: zap {} -> {}, sigbus {} -> {}",
            counters::get(b, "zap"),
            counters::get(a, "zap"),
            counters::get(b, "sigbus"),
            counters::get(a, "sigbus")
        ));
    }

    let w = c.dev.config_write16(pmcsr_off, d0);
    c.t.line(format!(
        "d3hot: pwrite config PMCSR={d0:#06x} -> {}",
        show(&w)
    ));
    c.expect_ret("d3hot.write_pmcsr_d0", &w, 2);
    let st = c.dev.config_read16(pmcsr_off);
    c.t.line(format!(
        "after D0: config PMCSR -> {}",
        st.map_or_else(|e| e.name(), |v| format!("{v:#06x}"))
    ));
    c.check(
        "d3hot.d0_state",
        st.is_ok_and(|v| v & PCI_PM_CTRL_STATE_MASK == 0),
        "power state 0",
        format!("{st:x?}"),
    );
    mem_after(c, "after D0");
    verify_mapped(c, "d3hot.after_d0", bar, m, &expect);
}

/// Fork a child that waits on a pipe and then reads 4 bytes at `addr` with
/// the default SIGBUS/SIGSEGV actions. Returns (pid, write end of the pipe).
fn spawn_toucher(addr: usize) -> Option<(libc::pid_t, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let (rfd, wfd) = (fds[0], fds[1]);
    // SAFETY: the subcommand is single-threaded here, and the child only
    // makes async-signal-safe calls before _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: child side; async-signal-safe calls only.
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::close(wfd);
            let mut x = 0u8;
            libc::read(rfd, (&mut x as *mut u8).cast(), 1);
            let v = std::ptr::read_volatile(addr as *const u32);
            // Reaching here means the access was served: exit 0, or 3 if it
            // returned all-ones (decode disabled but not zapped).
            libc::_exit(if v == u32::MAX { 3 } else { 0 });
        }
    }
    // SAFETY: parent side: close the read end we do not use.
    unsafe { libc::close(rfd) };
    if pid < 0 {
        // SAFETY: fork failed; close the write end too.
        unsafe { libc::close(wfd) };
        return None;
    }
    Some((pid, wfd))
}
