//! `ioeventfd` and `feature`: VFIO_DEVICE_IOEVENTFD and VFIO_DEVICE_FEATURE.
//!
//! `ioeventfd`: every bad input (argsz, flags, size, fd, region, range, the
//! MSI-X table), add / duplicate (EEXIST) / remove / remove-missing (ENODEV),
//! the 1000-per-device limit (ENOSPC), a write that an eventfd signal carries
//! into a BAR register with a visible effect (edu's liveness register, the
//! ivshmem interrupt mask), the same write dropped while memory decode is
//! off, and the teardown of every ioeventfd at close.
//!
//! `feature`: every feature number 0..=16 under every GET/SET/PROBE
//! combination and several payload sizes, the low-power entry/exit state
//! (a second entry is EINVAL, mappings fault SIGBUS while entered, close
//! leaves low power), the wake-up eventfd checks and the VF token.
//!
//! Every answer goes into the transcript, compared with upstream vfio-pci's;
//! the checks below hold the answers upstream's source gives.

use super::irq::EventFd;
use super::Ctx;
use crate::caps::{self, PCI_CAP_ID_MSIX, PCI_COMMAND, PCI_COMMAND_MEMORY};
use crate::device::Kind;
use crate::probe;
use crate::sys::{self, show, Errno, Mapping};
use crate::uapi::*;
use std::time::Duration;

/// `VFIO_DEVICE_IOEVENTFD`.
pub const VFIO_DEVICE_IOEVENTFD: u64 = io(VFIO_TYPE, VFIO_BASE + 16);
/// `VFIO_DEVICE_FEATURE`.
pub const VFIO_DEVICE_FEATURE: u64 = io(VFIO_TYPE, VFIO_BASE + 17);
/// Size of `struct vfio_device_ioeventfd`.
const IOEVENTFD_SIZE: u32 = 32;
/// `VFIO_PCI_IOEVENTFD_MAX`.
const IOEVENTFD_MAX: u64 = 1000;

const FEATURE_GET: u32 = 1 << 16;
const FEATURE_SET: u32 = 1 << 17;
const FEATURE_PROBE: u32 = 1 << 18;
const LOW_POWER_ENTRY: u32 = 3;
const LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
const LOW_POWER_EXIT: u32 = 5;

/// One `struct vfio_device_ioeventfd` call.
#[derive(Clone, Copy)]
struct Req {
    argsz: u32,
    flags: u32,
    offset: u64,
    data: u64,
    fd: i32,
}

impl Req {
    fn new(index: u32, pos: u64, size: u32, data: u64, fd: i32) -> Req {
        Req {
            argsz: IOEVENTFD_SIZE,
            flags: size,
            offset: region_offset(index) + pos,
            data,
            fd,
        }
    }
}

/// Issues `r`, records `what` and the answer in the transcript.
fn ioeventfd(c: &mut Ctx, what: &str, r: Req) -> Result<i32, Errno> {
    let mut b = raw(r);
    let res = c.dev.ioctl_buf(VFIO_DEVICE_IOEVENTFD, &mut b);
    c.t.line(format!(
        "ioeventfd {what}: argsz={} flags={:#x} off={:#x} data={:#x} -> {}",
        r.argsz,
        r.flags,
        r.offset,
        r.data,
        show(&res)
    ));
    res
}

/// Issues `r` and checks the answer is `want` (0 or an errno).
fn expect(c: &mut Ctx, what: &str, r: Req, want: i32) {
    let res = ioeventfd(c, what, r);
    if want == 0 {
        c.expect_ret(&format!("ioeventfd.{what}"), &res, 0);
    } else {
        c.expect_errno(&format!("ioeventfd.{what}"), &res, want);
    }
}

/// BAR sizes and flags from region info (size 0 when absent).
fn bars(c: &Ctx) -> Vec<(u32, u64, u32)> {
    (0..=5)
        .map(|i| match c.region(i) {
            Some(r) => (i, r.info.size, r.info.flags),
            None => (i, 0, 0),
        })
        .collect()
}

/// The MSI-X table as (BAR, offset, size), from the config space.
fn msix_table(c: &Ctx) -> Option<(u32, u64, u64)> {
    let mut cfg = vec![0u8; 256];
    c.dev
        .read_region(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut cfg)
        .ok()?;
    let off = caps::find_cap(&cfg, PCI_CAP_ID_MSIX)? as usize;
    let flags = u16::from_le_bytes([cfg[off + 2], cfg[off + 3]]);
    let table = u32::from_le_bytes([cfg[off + 4], cfg[off + 5], cfg[off + 6], cfg[off + 7]]);
    Some((
        table & 7,
        u64::from(table & !7),
        (u64::from(flags & 0x7ff) + 1) * 16,
    ))
}

/// How a register reads back after a write of a value.
type Readback = fn(u32) -> u32;

/// A register the tests may write, its width, and how a write of `v` reads
/// back: edu's liveness register returns the inverse, the ivshmem interrupt
/// mask returns the value.
fn visible_register(kind: Kind) -> Option<(u32, u64, Readback)> {
    fn inverse(v: u32) -> u32 {
        !v
    }
    fn same(v: u32) -> u32 {
        v
    }
    match kind {
        Kind::Edu => Some((0, 0x04, inverse)),
        Kind::Ivshmem => Some((0, 0x00, same)),
        _ => None,
    }
}

fn read32(c: &mut Ctx, bar: u32, pos: u64) -> Result<u32, Errno> {
    let mut b = [0u8; 4];
    c.dev.read_region(bar, pos, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Run the `ioeventfd` subcommand.
pub fn run_ioeventfd(c: &mut Ctx) {
    let Ok(efd) = EventFd::new() else {
        c.fail("eventfd", "an eventfd", Errno::last());
        return;
    };
    let efd2 = EventFd::new().expect("eventfd");
    let fd = efd.fd();
    let bars = bars(c);
    let msix = msix_table(c);
    c.t.line(format!("msix {msix:?}"));
    // The first BAR of at least 8 bytes: an add/remove target nothing signals.
    let Some(&(bar, len, flags)) = bars.iter().find(|b| b.1 >= 8) else {
        c.skip("ioeventfd", "no BAR of 8 bytes or more");
        return;
    };
    // A position outside the MSI-X table.
    let pos = match msix {
        Some((b, off, _)) if b == bar && off < 8 => len - 8,
        _ => 0,
    };
    c.t.line(format!(
        "target bar{bar} len={len:#x} flags={flags:#x} pos={pos:#x}"
    ));

    // --- Bad input -----------------------------------------------------------------------
    let good = Req::new(bar, pos, 4, 0x1234_5678, fd);
    for argsz in [0, 27] {
        expect(
            c,
            &format!("argsz{argsz}"),
            Req { argsz, ..good },
            libc::EINVAL,
        );
    }
    for flags in [0, 3, 5, 0x10, 0x14, 0x8000_0004] {
        expect(
            c,
            &format!("flags{flags:#x}"),
            Req { flags, ..good },
            libc::EINVAL,
        );
    }
    expect(c, "fd-2", Req { fd: -2, ..good }, libc::EINVAL);
    expect(c, "fd_not_open", Req { fd: 1000, ..good }, libc::EBADF);
    expect(
        c,
        "fd_not_eventfd",
        Req {
            fd: c.dev.fd,
            ..good
        },
        libc::EINVAL,
    );
    // (Not an index with bit 23 set: upstream's offset is a signed loff_t, and such an
    // offset gives it a negative BAR index that it uses to index pdev->resource[].)
    for index in [6u32, 7, 8, 9, 0x7f_ffff] {
        let r = Req::new(index, 0, 4, 0, fd);
        expect(c, &format!("region{index}"), r, libc::EINVAL);
    }
    for &(i, l, _) in &bars {
        if l == 0 {
            expect(
                c,
                &format!("absent_bar{i}"),
                Req::new(i, 0, 1, 0, fd),
                libc::EINVAL,
            );
            continue;
        }
        expect(
            c,
            &format!("bar{i}_past_end"),
            Req::new(i, l, 1, 0, fd),
            libc::EINVAL,
        );
        if l >= 4 {
            let r = Req::new(i, l - 2, 4, 0, fd);
            expect(c, &format!("bar{i}_straddles_end"), r, libc::EINVAL);
        }
        let r = Req::new(i, (1 << 40) - 4, 4, 0, fd);
        expect(c, &format!("bar{i}_huge_pos"), r, libc::EINVAL);
    }
    if let Some((b, off, size)) = msix {
        for (what, p, s) in [
            ("msix_first", off, 4),
            ("msix_last", off + size - 1, 1),
            ("msix_straddle_start", off.wrapping_sub(2), 4),
        ] {
            if p < bars[b as usize].1 && p + s <= bars[b as usize].1 {
                expect(c, what, Req::new(b, p, s as u32, 0, fd), libc::EINVAL);
            }
        }
    }
    // A bad user pointer.
    let r = c.dev.ioctl_val(VFIO_DEVICE_IOEVENTFD, 8);
    c.t.line(format!("ioeventfd bad pointer -> {}", show(&r)));
    c.expect_errno("ioeventfd.bad_pointer", &r, libc::EFAULT);
    expect(c, "remove_missing", Req { fd: -1, ..good }, libc::ENODEV);

    // --- Add, duplicate, remove ----------------------------------------------------------
    expect(c, "add", good, 0);
    expect(c, "dup_same_fd", good, libc::EEXIST);
    expect(
        c,
        "dup_other_fd",
        Req {
            fd: efd2.fd(),
            ..good
        },
        libc::EEXIST,
    );
    // Any difference in data, size or position is another ioeventfd.
    expect(c, "add_other_data", Req { data: 1, ..good }, 0);
    expect(c, "add_size2", Req { flags: 2, ..good }, 0);
    expect(
        c,
        "add_size1_next",
        Req::new(bar, pos + 1, 1, 0x1234_5678, fd),
        0,
    );
    expect(c, "add_size8", Req { flags: 8, ..good }, 0);
    expect(
        c,
        "add_last_byte",
        Req::new(bar, len - 1, 1, 7, efd2.fd()),
        0,
    );
    expect(c, "remove", Req { fd: -1, ..good }, 0);
    expect(c, "remove_again", Req { fd: -1, ..good }, libc::ENODEV);
    expect(c, "re_add", good, 0);
    for (what, r) in [
        ("remove_re_add", good),
        ("remove_other_data", Req { data: 1, ..good }),
        ("remove_size2", Req { flags: 2, ..good }),
        (
            "remove_size1_next",
            Req::new(bar, pos + 1, 1, 0x1234_5678, fd),
        ),
        ("remove_size8", Req { flags: 8, ..good }),
        ("remove_last_byte", Req::new(bar, len - 1, 1, 7, -1)),
    ] {
        expect(c, what, Req { fd: -1, ..r }, 0);
    }
    // Every other BAR, I/O BARs included.
    for &(i, l, _) in &bars {
        if l >= 4 && i != bar && msix.is_none_or(|(b, off, _)| b != i || off >= 4) {
            expect(c, &format!("bar{i}_add"), Req::new(i, 0, 4, 9, fd), 0);
            expect(c, &format!("bar{i}_remove"), Req::new(i, 0, 4, 9, -1), 0);
        }
    }

    // --- The limit -----------------------------------------------------------------------
    let mut added = 0;
    for d in 0..IOEVENTFD_MAX {
        if c.dev
            .ioctl_buf(VFIO_DEVICE_IOEVENTFD, &mut raw(Req { data: d, ..good }))
            .is_ok()
        {
            added += 1;
        }
    }
    c.t.line(format!("ioeventfd limit: added {added}"));
    c.check_eq("ioeventfd.limit_added", IOEVENTFD_MAX, added);
    expect(
        c,
        "over_limit",
        Req {
            data: IOEVENTFD_MAX,
            ..good
        },
        libc::ENOSPC,
    );
    // Removing one makes room for one.
    expect(
        c,
        "limit_remove_one",
        Req {
            data: 5,
            fd: -1,
            ..good
        },
        0,
    );
    expect(
        c,
        "limit_add_one",
        Req {
            data: IOEVENTFD_MAX,
            ..good
        },
        0,
    );
    let mut removed = 0;
    for d in 0..=IOEVENTFD_MAX {
        if c.dev
            .ioctl_buf(
                VFIO_DEVICE_IOEVENTFD,
                &mut raw(Req {
                    data: d,
                    fd: -1,
                    ..good
                }),
            )
            .is_ok()
        {
            removed += 1;
        }
    }
    c.t.line(format!("ioeventfd limit: removed {removed}"));
    c.check_eq("ioeventfd.limit_removed", IOEVENTFD_MAX, removed);

    // --- A signal writes the register ----------------------------------------------------
    if let Some((vbar, vpos, readback)) = visible_register(c.kind) {
        signal_writes(c, &efd, vbar, vpos, readback);
    }

    // --- Teardown at close -----------------------------------------------------------------
    expect(c, "add_before_close", good, 0);
    drop(efd);
    drop(efd2);
    if let Err(e) = c.dev.reopen() {
        c.fail("ioeventfd.reopen", "device reopened", e);
        return;
    }
    let fresh = EventFd::new().expect("eventfd");
    // The registration is gone with the last user: removing answers ENODEV and adding works.
    expect(
        c,
        "after_reopen_remove",
        Req { fd: -1, ..good },
        libc::ENODEV,
    );
    expect(
        c,
        "after_reopen_add",
        Req {
            fd: fresh.fd(),
            ..good
        },
        0,
    );
    expect(c, "after_reopen_cleanup", Req { fd: -1, ..good }, 0);
}

/// The raw buffer of `r`.
fn raw(r: Req) -> AlignedBuf {
    let mut b = AlignedBuf::filled(64, 0);
    b.put_u32(0, r.argsz);
    b.put_u32(4, r.flags);
    b.bytes_mut()[8..16].copy_from_slice(&r.offset.to_ne_bytes());
    b.bytes_mut()[16..24].copy_from_slice(&r.data.to_ne_bytes());
    b.put_u32(24, r.fd as u32);
    b
}

/// Reads `bar+pos` until it shows `want` (the write may run from a workqueue).
fn read_until(c: &mut Ctx, bar: u32, pos: u64, want: u32) -> Result<u32, Errno> {
    let mut got = read32(c, bar, pos);
    for _ in 0..50 {
        if got == Ok(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        got = read32(c, bar, pos);
    }
    got
}

/// Registers `bar+pos` writes on `efd`, signals, and reads the register back.
fn signal_writes(c: &mut Ctx, efd: &EventFd, bar: u32, pos: u64, readback: Readback) {
    let (a, b) = (0x5a5a_0f0f_u32, 0x0000_0001_u32);
    let (a, b) = if c.kind == Kind::Ivshmem {
        (0x1, 0x0)
    } else {
        (a, b)
    };
    let fd = efd.fd();
    let ra = Req::new(bar, pos, 4, u64::from(a), fd);
    expect(c, "visible_add", ra, 0);
    efd.signal(1);
    let got = read_until(c, bar, pos, readback(a));
    c.t.line(format!("after signal: bar{bar}+{pos:#x} = {}", show(&got)));
    c.check_eq("ioeventfd.signal_writes", Ok(readback(a)), got);

    // A second ioeventfd with other data on the same eventfd: both run on a signal, in
    // an order the test does not rely on; alone, the second one writes its value.
    expect(c, "visible_remove", Req { fd: -1, ..ra }, 0);
    let rb = Req::new(bar, pos, 4, u64::from(b), fd);
    expect(c, "visible_add_other", rb, 0);
    efd.signal(1);
    let got = read_until(c, bar, pos, readback(b));
    c.t.line(format!("after signal: bar{bar}+{pos:#x} = {}", show(&got)));
    c.check_eq("ioeventfd.signal_writes_other", Ok(readback(b)), got);

    // With memory decode off the write is dropped, as a pwrite would fail.
    let cmd = c.dev.config_read16(PCI_COMMAND).unwrap_or(0);
    expect(c, "visible_remove_other", Req { fd: -1, ..rb }, 0);
    expect(c, "visible_add_again", ra, 0);
    let w = c.dev.config_write16(PCI_COMMAND, cmd & !PCI_COMMAND_MEMORY);
    c.t.line(format!("COMMAND.MEM off -> {}", show(&w)));
    efd.signal(1);
    std::thread::sleep(Duration::from_millis(100));
    let w = c.dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
    c.t.line(format!("COMMAND.MEM on -> {}", show(&w)));
    let got = read32(c, bar, pos);
    c.t.line(format!(
        "after signal with decode off: bar{bar}+{pos:#x} = {}",
        show(&got)
    ));
    c.check_eq("ioeventfd.decode_off_drops", Ok(readback(b)), got);
    expect(c, "visible_cleanup", Req { fd: -1, ..ra }, 0);
    // Leave the register as the device starts (ivshmem: mask 0).
    if c.kind == Kind::Ivshmem {
        let _ = c.dev.write_region(bar, pos, &0u32.to_le_bytes());
    }
}

/// Issues `VFIO_DEVICE_FEATURE` with `flags`, `argsz` and a payload starting
/// with `word`; records the answer.
fn feature(c: &mut Ctx, argsz: u32, flags: u32, word: u32) -> Result<i32, Errno> {
    let mut b = AlignedBuf::filled(128, 0);
    b.put_u32(0, argsz);
    b.put_u32(4, flags);
    b.put_u32(8, word);
    let r = c.dev.ioctl_buf(VFIO_DEVICE_FEATURE, &mut b);
    c.t.line(format!(
        "feature argsz={argsz} flags={flags:#x} word={word:#x} -> {}",
        show(&r)
    ));
    r
}

/// Reads the first word of BAR0 through `m`.
fn map_read(m: &Mapping) -> probe::Access<u32> {
    // SAFETY: the mapping covers at least one page of BAR0.
    unsafe { probe::read32(m.addr()) }
}

/// Run the `feature` subcommand.
pub fn run_feature(c: &mut Ctx) {
    probe::install();
    let efd = EventFd::new().expect("eventfd");
    let ops = [
        0,
        FEATURE_GET,
        FEATURE_SET,
        FEATURE_GET | FEATURE_SET,
        FEATURE_PROBE,
        FEATURE_PROBE | FEATURE_GET,
        FEATURE_PROBE | FEATURE_SET,
        FEATURE_PROBE | FEATURE_GET | FEATURE_SET,
        1 << 19,
        1 << 31,
    ];
    // Every feature, operation and payload size. The payload word is the
    // eventfd: LOW_POWER_ENTRY_WITH_WAKEUP reads it.
    for feat in 0..=16u32 {
        for &op in &ops {
            for argsz in [0u32, 7, 8, 12, 16, 24, 40] {
                let r = feature(c, argsz, feat | op, efd.fd() as u32);
                // Leave low power after every entry, so every call starts from the same state.
                if r.is_ok() && op & FEATURE_PROBE == 0 && (feat == 3 || feat == 4) {
                    let e = feature(c, 8, LOW_POWER_EXIT | FEATURE_SET, 0);
                    c.expect_ret(&format!("feature.exit_after_{feat}_{op:#x}_{argsz}"), &e, 0);
                }
            }
        }
    }
    // The VFIO core's own checks come first.
    let r = feature(c, 7, LOW_POWER_EXIT | FEATURE_SET, 0);
    c.expect_errno("feature.argsz_short", &r, libc::EINVAL);
    let r = feature(c, 8, LOW_POWER_EXIT | FEATURE_SET | FEATURE_GET, 0);
    c.expect_errno("feature.get_and_set", &r, libc::EINVAL);
    let r = feature(c, 8, 16 | FEATURE_PROBE, 0);
    c.expect_errno("feature.unknown", &r, libc::ENOTTY);
    let r = feature(c, 8, LOW_POWER_EXIT | FEATURE_PROBE | FEATURE_SET, 0);
    c.expect_ret("feature.exit_probe", &r, 0);
    let r = feature(c, 8, LOW_POWER_EXIT | FEATURE_GET, 0);
    c.expect_errno("feature.exit_get", &r, libc::EINVAL);
    // DMA_BUF: not in a kernel without PCI_P2PDMA (the test kernel): ENOTTY.
    let r = feature(c, 40, 11 | FEATURE_GET, 0);
    c.expect_errno("feature.dma_buf", &r, libc::ENOTTY);

    // The wake-up eventfd.
    let w = LOW_POWER_ENTRY_WITH_WAKEUP | FEATURE_SET;
    let r = feature(c, 16, w, u32::MAX);
    c.expect_errno("feature.wakeup_negative_fd", &r, libc::EINVAL);
    let r = feature(c, 16, w, 1000);
    c.expect_errno("feature.wakeup_fd_not_open", &r, libc::EBADF);
    let r = feature(c, 16, w, c.dev.fd as u32);
    c.expect_errno("feature.wakeup_not_eventfd", &r, libc::EINVAL);
    let r = feature(c, 12, w, efd.fd() as u32);
    c.expect_errno("feature.wakeup_short", &r, libc::EINVAL);
    let r = c.dev.ioctl_val(VFIO_DEVICE_FEATURE, 8);
    c.t.line(format!("feature bad pointer -> {}", show(&r)));
    c.expect_errno("feature.bad_pointer", &r, libc::EFAULT);

    // Low power: entered once, a second entry refused, exit always fine.
    let e = LOW_POWER_ENTRY | FEATURE_SET;
    let x = LOW_POWER_EXIT | FEATURE_SET;
    let r = feature(c, 8, x, 0);
    c.expect_ret("feature.exit_not_entered", &r, 0);
    let r = feature(c, 8, e, 0);
    c.expect_ret("feature.entry", &r, 0);
    let r = feature(c, 8, e, 0);
    c.expect_errno("feature.entry_twice", &r, libc::EINVAL);
    let r = feature(c, 16, w, efd.fd() as u32);
    c.expect_errno("feature.entry_wakeup_while_entered", &r, libc::EINVAL);
    let r = feature(c, 8, x, 0);
    c.expect_ret("feature.exit", &r, 0);
    let r = feature(c, 16, w, efd.fd() as u32);
    c.expect_ret("feature.entry_wakeup", &r, 0);
    let r = feature(c, 8, e, 0);
    c.expect_errno("feature.entry_after_wakeup_entry", &r, libc::EINVAL);
    let r = feature(c, 8, x, 0);
    c.expect_ret("feature.exit_wakeup", &r, 0);
    // No runtime PM in the test kernel: the wake-up eventfd is never signalled.
    c.check_eq("feature.wakeup_not_signalled", 0, efd.take());

    // While entered, BAR mappings fault SIGBUS; they work again after exit. BAR
    // reads through the file are unaffected.
    if c.kind == Kind::Edu {
        match Mapping::new_aligned(c.dev.fd, region_offset(0), sys::page_size(), 0) {
            Ok(m) => {
                let before = map_read(&m);
                c.t.line(format!("map read bar0 -> {}", probe::show(&before)));
                c.check_eq(
                    "feature.map_before",
                    Ok(0x0100_00ed),
                    before.map(|v| v & 0xff00_00ff),
                );
                let r = feature(c, 8, e, 0);
                c.expect_ret("feature.entry_mapped", &r, 0);
                let during = map_read(&m);
                c.t.line(format!(
                    "entered: map read bar0 -> {}",
                    probe::show(&during)
                ));
                c.check(
                    "feature.map_sigbus",
                    during == Err(libc::SIGBUS),
                    "SIGBUS",
                    probe::show(&during),
                );
                let p = read32(c, 0, 0);
                c.t.line(format!("entered: pread bar0 -> {}", show(&p)));
                c.check(
                    "feature.pread_while_entered",
                    p.is_ok(),
                    "a value",
                    show(&p),
                );
                let r = feature(c, 8, x, 0);
                c.expect_ret("feature.exit_mapped", &r, 0);
                let after = map_read(&m);
                c.t.line(format!("exited: map read bar0 -> {}", probe::show(&after)));
                c.check_eq("feature.map_after", before, after);
            }
            Err(e) => c.fail("feature.map", "BAR0 mapped", e),
        }
    }

    // Low power ends at close: after a reopen an entry works again.
    let r = feature(c, 8, e, 0);
    c.expect_ret("feature.entry_before_close", &r, 0);
    if let Err(err) = c.dev.reopen() {
        c.fail("feature.reopen", "device reopened", err);
        return;
    }
    let r = feature(c, 8, e, 0);
    c.expect_ret("feature.entry_after_reopen", &r, 0);
    let r = feature(c, 8, x, 0);
    c.expect_ret("feature.exit_after_reopen", &r, 0);

    // VF token: SET only, 16 bytes, on an SR-IOV PF (igb); ENOTTY elsewhere.
    let pf = c.kind == Kind::Igb;
    let t = |c: &mut Ctx, argsz: u32, op: u32| feature(c, argsz, op, 0x1234_5678);
    let r = t(c, 24, FEATURE_SET);
    if pf {
        c.expect_ret("feature.vf_token_set", &r, 0);
    } else {
        c.expect_errno("feature.vf_token_set", &r, libc::ENOTTY);
    }
    let r = t(c, 23, FEATURE_SET);
    c.expect_errno(
        "feature.vf_token_short",
        &r,
        if pf { libc::EINVAL } else { libc::ENOTTY },
    );
    let r = t(c, 24, FEATURE_GET);
    c.expect_errno(
        "feature.vf_token_get",
        &r,
        if pf { libc::EINVAL } else { libc::ENOTTY },
    );
    if !c.dev.is_cdev() {
        match_strings(c);
    }
}

/// `VFIO_GROUP_GET_DEVICE_FD` with the name strings upstream's `vfio_pci_core_match` parses:
/// the name, then spaces and at most one ` vf_token=UUID`. An SR-IOV PF (igb) takes the token
/// (it becomes the PF's VF token), any other device refuses it (EINVAL); a short or malformed
/// UUID, a second token or any other word is EINVAL; a longer name matches nothing (ENODEV).
fn match_strings(c: &mut Ctx) {
    let pf = c.kind == Kind::Igb;
    let bdf = c.dev.bdf.clone();
    let uuid = "52ac9bff-3a88-4fbd-901a-0d767c3b6c97";
    let token = if pf { None } else { Some(libc::EINVAL) };
    let cases = [
        ("name", bdf.clone(), None),
        ("trailing_spaces", format!("{bdf}   "), None),
        ("token", format!("{bdf} vf_token={uuid}"), token),
        (
            "token_upper_spaced",
            format!("{bdf}  vf_token={}  ", uuid.to_uppercase()),
            token,
        ),
        (
            "two_tokens",
            format!("{bdf} vf_token={uuid} vf_token={uuid}"),
            Some(libc::EINVAL),
        ),
        (
            "short_token",
            format!("{bdf} vf_token=52ac9bff"),
            Some(libc::EINVAL),
        ),
        (
            "bad_digit",
            format!("{bdf} vf_token={}g", &uuid[..35]),
            Some(libc::EINVAL),
        ),
        (
            "bad_dash",
            format!("{bdf} vf_token=52ac9bff+{}", &uuid[9..]),
            Some(libc::EINVAL),
        ),
        (
            "token_tail",
            format!("{bdf} vf_token={uuid}x"),
            Some(libc::EINVAL),
        ),
        ("other_word", format!("{bdf} other"), Some(libc::EINVAL)),
        ("longer_name", format!("{bdf}0"), Some(libc::ENODEV)),
    ];
    for (what, name, want) in cases {
        let Ok(name) = std::ffi::CString::new(name) else {
            continue;
        };
        // SAFETY: the ioctl reads a NUL-terminated string from the pointer.
        let r = unsafe {
            sys::ioctl_ptr(
                c.dev.group_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr() as *mut u8,
            )
        };
        let check = format!("feature.match_{what}");
        match want {
            None => {
                c.check(
                    &check,
                    matches!(r, Ok(fd) if fd >= 0),
                    "a device fd",
                    show(&r),
                );
            }
            Some(errno) => {
                c.expect_errno(&check, &r, errno);
            }
        }
        if let Ok(fd) = r {
            sys::close(fd);
        }
    }
}
