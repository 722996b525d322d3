//! `hot-reset`: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET.
//!
//! A group-opened device proves ownership of the affected devices with an
//! array of group fds; a cdev-opened one with a zero-length array (its
//! iommufd context). The checks: the info answer (ENOSPC sizing, entries,
//! flags), every bad input upstream rejects, a reset that succeeds, and
//! device register state written before the reset being gone after it.

use super::Ctx;
use crate::caps::{PCI_COMMAND, PCI_COMMAND_MEMORY};
use crate::device::Kind;
use crate::open::group_number;
use crate::sys::{show, SysResult};
use crate::uapi::*;
use std::os::fd::RawFd;

const HDR: usize = 12;
const DEP: usize = 8;

/// GET_PCI_HOT_RESET_INFO with a buffer of `argsz` bytes.
fn info_raw(c: &Ctx, argsz: usize) -> (SysResult<i32>, AlignedBuf) {
    let mut b = AlignedBuf::filled(argsz.max(HDR), 0);
    b.put_u32(0, argsz as u32);
    let r = c.dev.ioctl_buf(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &mut b);
    (r, b)
}

/// The argument of PCI_HOT_RESET: header `argsz`, `flags`, then the group
/// fds `fds` (their number is the header's count).
fn reset_arg(argsz: u32, flags: u32, fds: &[RawFd]) -> AlignedBuf {
    let mut b = AlignedBuf::filled(HDR + 4 * fds.len(), 0);
    b.put_u32(0, argsz);
    b.put_u32(4, flags);
    b.put_u32(8, fds.len() as u32);
    for (i, fd) in fds.iter().enumerate() {
        b.put_u32(HDR + 4 * i, *fd as u32);
    }
    b
}

/// PCI_HOT_RESET with the argument [`reset_arg`] builds.
fn reset_raw(c: &Ctx, argsz: u32, flags: u32, fds: &[RawFd]) -> SysResult<i32> {
    c.dev
        .ioctl_buf(VFIO_DEVICE_PCI_HOT_RESET, &mut reset_arg(argsz, flags, fds))
}

/// The PCI_HOT_RESET argument in the form the open mode calls for: the
/// device's own group fd (group mode, `group_fd`) or the zero-length array
/// (cdev mode).
pub fn own_reset_arg(cdev: bool, group_fd: RawFd) -> AlignedBuf {
    let fds: &[RawFd] = if cdev { &[] } else { &[group_fd] };
    reset_arg((HDR + 4 * fds.len()) as u32, 0, fds)
}

/// A hot reset in the form the open mode calls for.
pub fn reset_own(c: &Ctx) -> SysResult<i32> {
    let mut b = own_reset_arg(c.dev.is_cdev(), c.dev.group_fd());
    c.dev.ioctl_buf(VFIO_DEVICE_PCI_HOT_RESET, &mut b)
}

/// Checks the answer of a hot reset of the device's own slot or bus.
pub fn expect_reset(c: &mut Ctx, name: &str, r: &SysResult<i32>) {
    match r {
        // The PCIe endpoints (igb, nvme) get ENOTTY from pci_reset_bus() under
        // both drivers, as from a sysfs bus reset without VFIO: QEMU's root
        // port does not report Data Link Layer Link Active after the
        // secondary bus reset, so the kernel's wait gives up. The transcripts
        // compare the answer.
        Err(e) if e.0 == libc::ENOTTY && matches!(c.kind, Kind::Igb | Kind::Nvme) => c.skip(
            name,
            "pci_reset_bus() ENOTTY: QEMU root port reports no DLL Link Active after SBR (as under upstream)",
        ),
        _ => {
            c.expect_ret(name, r, 0);
        }
    }
}

/// `ssss:bb:dd.f` of an info entry.
fn entry_bdf(b: &[u8], off: usize) -> String {
    let seg = get_u16(b, off + 4);
    let devfn = b[off + 7];
    format!(
        "{seg:04x}:{:02x}:{:02x}.{}",
        b[off + 6],
        devfn >> 3,
        devfn & 7
    )
}

/// A register the device resets to zero, with a value to write into it:
/// NVMe CC (queue entry sizes only, EN clear), igb RDBAL0, ivshmem IntrMask.
/// QEMU's edu and pci-testdev have no state a reset clears.
fn reset_probe(kind: Kind) -> Option<(u32, u64, u32)> {
    match kind {
        Kind::Ivshmem => Some((0, 0x0, 0xff)),
        Kind::Nvme => Some((0, 0x14, 0x0046_0000)),
        Kind::Igb => Some((0, 0xc000, 0x1234_5680)),
        _ => None,
    }
}

fn read32(c: &Ctx, bar: u32, off: u64) -> SysResult<u32> {
    let mut b = [0u8; 4];
    c.dev
        .read_region(bar, off, &mut b)
        .map(|_| u32::from_le_bytes(b))
}

/// Run the `hot-reset` subcommand.
pub fn run(c: &mut Ctx) {
    let cdev = c.dev.is_cdev();

    // Sizing: a header-only buffer gets ENOSPC and the count.
    let (r, b) = info_raw(c, HDR);
    let count = b.u32_at(8);
    c.t.line(format!(
        "hot_reset_info argsz=12 -> {} count {count} flags {:#x}",
        show(&r),
        b.u32_at(4)
    ));
    c.expect_errno("info.enospc", &r, libc::ENOSPC);
    c.check("info.count", count >= 1, ">= 1 affected device", count);
    let (r, _) = info_raw(c, 8);
    c.t.ioctl_ret("hot_reset_info argsz=8", &r);
    c.expect_errno("info.short_argsz", &r, libc::EINVAL);

    // The entries.
    let room = count.clamp(1, 64) as usize;
    let (r, b) = info_raw(c, HDR + DEP * room);
    let flags = b.u32_at(4);
    let n = b.u32_at(8) as usize;
    c.t.line(format!(
        "hot_reset_info argsz={} -> {} flags {flags:#x} count {n}",
        HDR + DEP * room,
        show(&r)
    ));
    c.expect_ret("info", &r, 0);
    let want_flags = if cdev {
        VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED
    } else {
        0
    };
    c.check_eq("info.flags", want_flags, flags);
    let own_group = std::fs::read_link(format!("/sys/bus/pci/devices/{}/iommu_group", c.dev.bdf))
        .ok()
        .and_then(|t| group_number(&t.to_string_lossy()));
    let mut found_self = false;
    for i in 0..n.min(room) {
        let off = HDR + DEP * i;
        let id = b.u32_at(off);
        let bdf = entry_bdf(b.bytes(), off);
        c.t.line(format!(
            "  affected {bdf} {} {id}",
            if cdev { "devid" } else { "group" }
        ));
        if bdf == c.dev.bdf {
            found_self = true;
            if cdev {
                c.check(
                    "info.self_owned",
                    id != VFIO_PCI_DEVID_NOT_OWNED && id != 0,
                    "a device id",
                    id,
                );
            } else {
                c.check_eq("info.self_group", own_group, Some(id));
            }
        }
    }
    c.check("info.lists_self", found_self, "the device itself listed", n);

    // Bad inputs.
    let own: Vec<RawFd> = if cdev { vec![] } else { vec![c.dev.group_fd()] };
    let full = (HDR + 4 * own.len()) as u32;
    let r = reset_raw(c, 8, 0, &own);
    c.t.ioctl_ret("hot_reset argsz=8", &r);
    c.expect_errno("reset.short_argsz", &r, libc::EINVAL);
    let r = reset_raw(c, full, 1, &own);
    c.t.ioctl_ret("hot_reset flags=1", &r);
    c.expect_errno("reset.flags", &r, libc::EINVAL);
    // The other form than the open mode calls for.
    let wrong: Vec<RawFd> = if cdev { vec![c.dev.fd] } else { vec![] };
    let r = reset_raw(c, (HDR + 4 * wrong.len()) as u32, 0, &wrong);
    c.t.ioctl_ret("hot_reset wrong form", &r);
    c.expect_errno("reset.wrong_form", &r, libc::EINVAL);
    if !cdev {
        let g = c.dev.group_fd();
        let fds = vec![g; count as usize + 1];
        let r = reset_raw(c, (HDR + 4 * fds.len()) as u32, 0, &fds);
        c.t.ioctl_ret("hot_reset more groups than affected devices", &r);
        c.expect_errno("reset.too_many_groups", &r, libc::EINVAL);
        let r = reset_raw(c, full, 0, &[-1]);
        c.t.ioctl_ret("hot_reset fd -1", &r);
        c.expect_errno("reset.bad_fd", &r, libc::EBADF);
        let r = reset_raw(c, full, 0, &[c.dev.fd]);
        c.t.ioctl_ret("hot_reset device fd as group", &r);
        c.expect_errno("reset.not_a_group", &r, libc::EINVAL);
        not_owned(c, own_group, full);
    }

    // State written into the device before a reset is gone after it: first
    // through VFIO_DEVICE_RESET (function reset), then the hot reset.
    let cmd = c.dev.config_read16(PCI_COMMAND).unwrap_or(0);
    let probe = reset_probe(c.kind);
    let stuck = seed_register(c, probe);
    let r = c.dev.reset();
    c.t.ioctl_ret("VFIO_DEVICE_RESET", &r);
    check_cleared(c, "device_reset", probe, stuck, &r, cmd);

    let stuck = seed_register(c, probe);
    let r = reset_own(c);
    c.t.ioctl_ret("hot_reset own", &r);
    expect_reset(c, "reset", &r);
    check_cleared(c, "hot_reset", probe, stuck, &r, cmd);
    let _ = c.dev.config_write16(PCI_COMMAND, cmd);
}

/// Writes the probe register (memory decode on); returns whether the value
/// stuck, so its absence after a reset means something.
fn seed_register(c: &mut Ctx, probe: Option<(u32, u64, u32)>) -> bool {
    let Some((bar, off, val)) = probe else {
        return false;
    };
    let cmd = c.dev.config_read16(PCI_COMMAND).unwrap_or(0);
    let _ = c.dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
    let w = c.dev.write_region(bar, off, &val.to_le_bytes());
    let back = read32(c, bar, off);
    c.t.line(format!(
        "before: pwrite bar{bar}+{off:#x}={val:#x} -> {}, read back {}",
        show(&w),
        show(&back)
    ));
    back == Ok(val)
}

/// After the reset `r` of kind `what`: COMMAND recorded, the probe register
/// must read 0 again.
fn check_cleared(
    c: &mut Ctx,
    what: &str,
    probe: Option<(u32, u64, u32)>,
    stuck: bool,
    r: &SysResult<i32>,
    cmd: u16,
) {
    match c.dev.config_read16(PCI_COMMAND) {
        Ok(v) => {
            c.t.line(format!("after {what}: config COMMAND -> {v:#06x}"))
        }
        Err(e) => c.t.line(format!("after {what}: config COMMAND -> {e}")),
    }
    let name = format!("{what}.state_cleared");
    match probe {
        None => c.skip(&name, "no register known to reset on this device"),
        Some(_) if !stuck => c.skip(&name, "the probe register did not keep the value"),
        Some(_) if r.is_err() => c.skip(&name, "the reset failed"),
        Some((bar, off, _)) => {
            let _ = c.dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
            let after = read32(c, bar, off);
            c.t.line(format!(
                "after {what}: read bar{bar}+{off:#x} -> {}",
                show(&after)
            ));
            c.expect_ret(&name, &after, 0);
        }
    }
}

/// Group form with another device's group only: the caller does not own the
/// device being reset, which upstream refuses with EINVAL.
fn not_owned(c: &mut Ctx, own_group: Option<u32>, argsz: u32) {
    let other = std::fs::read_dir("/dev/vfio")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|g| Some(*g) != own_group)
        .min();
    let Some(g) = other else {
        c.skip("reset.not_owned", "no other VFIO group in this guest");
        return;
    };
    let Ok(fd) = crate::sys::open_rdwr(&format!("/dev/vfio/{g}")) else {
        c.skip("reset.not_owned", format!("group {g} could not be opened"));
        return;
    };
    let r = reset_raw(c, argsz, 0, &[fd]);
    crate::sys::close(fd);
    c.t.ioctl_ret("hot_reset with another device's group", &r);
    c.expect_errno("reset.not_owned", &r, libc::EINVAL);
}
