//! `info`: VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO and
//! VFIO_DEVICE_GET_IRQ_INFO with various argsz values, plus an unknown ioctl.
//!
//! Every buffer is pre-filled with [`FILL`] so the checks can tell exactly
//! which bytes the driver wrote: upstream copies back `min(argsz, sizeof)`
//! bytes of the fixed struct and the capability chain right after it, and
//! nothing else.

use super::{region_name, Ctx, FILL};
use crate::caps::{self, describe_region_cap};
use crate::sys::show;
use crate::transcript::hex;
use crate::uapi::*;

/// Length of the prefix of `b` the driver may have written given that it
/// needed `needed` bytes, and whether everything after it is untouched.
fn untouched_after(b: &[u8], needed: usize) -> bool {
    b.iter().skip(needed).all(|&x| x == FILL)
}

/// Run the `info` subcommand.
pub fn run(c: &mut Ctx) {
    let Some(info) = device_info(c) else { return };
    regions(c, &info);
    irqs(c);
    let r = c.dev.ioctl_val(VFIO_UNKNOWN_IOCTL, 0);
    c.t.ioctl_ret(format!("ioctl {VFIO_UNKNOWN_IOCTL:#x} (unknown)"), &r);
    c.expect_errno("unknown_ioctl", &r, libc::ENOTTY);
}

fn device_info(c: &mut Ctx) -> Option<DeviceInfo> {
    let (r, b) = c.dev.get_info_raw(DEVICE_INFO_SIZE, FILL);
    c.t.ioctl("get_info argsz=24", &r, b.bytes());
    if !c.expect_ret("get_info.argsz24", &r, 0) {
        return None;
    }
    let info = DeviceInfo::parse(b.bytes());
    c.check(
        "get_info.flags_pci",
        info.flags & VFIO_DEVICE_FLAGS_PCI != 0,
        "VFIO_DEVICE_FLAGS_PCI set",
        format!("flags {:#x}", info.flags),
    );
    c.check(
        "get_info.num_regions",
        info.num_regions >= VFIO_PCI_NUM_REGIONS,
        format!(">= {VFIO_PCI_NUM_REGIONS}"),
        info.num_regions,
    );
    c.check(
        "get_info.num_irqs",
        info.num_irqs >= VFIO_PCI_NUM_IRQS,
        format!(">= {VFIO_PCI_NUM_IRQS}"),
        info.num_irqs,
    );
    let has_caps = info.flags & VFIO_DEVICE_FLAGS_CAPS != 0;
    // Bytes the driver needs for the struct plus capability chain. With caps
    // that do not fit, upstream raises argsz to that size and leaves
    // cap_offset 0; without caps argsz comes back as passed.
    let needed = if has_caps {
        c.check(
            "get_info.argsz24.caps_need_room",
            info.argsz as usize > DEVICE_INFO_SIZE && info.cap_offset == 0,
            "argsz > 24 and cap_offset 0",
            format!("argsz {} cap_offset {}", info.argsz, info.cap_offset),
        );
        (info.argsz as usize).max(DEVICE_INFO_SIZE)
    } else {
        c.check_eq(
            "get_info.argsz24.argsz_echo",
            DEVICE_INFO_SIZE as u32,
            info.argsz,
        );
        DEVICE_INFO_SIZE
    };

    // argsz = 16: the minimum; only 16 bytes may be written.
    let (r16, b16) = c.dev.get_info_raw(DEVICE_INFO_MINSZ, FILL);
    c.t.ioctl("get_info argsz=16", &r16, b16.bytes());
    if c.expect_ret("get_info.argsz16", &r16, 0) {
        c.check(
            "get_info.argsz16.no_write_past_argsz",
            untouched_after(b16.bytes(), DEVICE_INFO_MINSZ),
            "bytes 16..24 untouched",
            hex(&b16.bytes()[DEVICE_INFO_MINSZ..]),
        );
        c.check_eq(
            "get_info.argsz16.same_fields",
            hex(&b.bytes()[4..16]),
            hex(&b16.bytes()[4..16]),
        );
    }

    // argsz = 8: below the minimum.
    let (r8, b8) = c.dev.get_info_raw(8, FILL);
    c.t.ioctl("get_info argsz=8", &r8, b8.bytes());
    c.expect_errno("get_info.argsz8", &r8, libc::EINVAL);
    c.check(
        "get_info.argsz8.no_write",
        untouched_after(&b8.bytes()[4..], 0),
        "buffer untouched",
        hex(b8.bytes()),
    );

    // argsz = 4096: room for any capability chain.
    let (rb, bb) = c.dev.get_info_raw(4096, FILL);
    let bytes = bb.bytes();
    c.t.ioctl(
        "get_info argsz=4096",
        &rb,
        &bytes[..needed.min(bytes.len())],
    );
    if c.expect_ret("get_info.argsz4096", &rb, 0) {
        let big = DeviceInfo::parse(bytes);
        c.check_eq("get_info.argsz4096.argsz_echo", 4096, big.argsz);
        let tail_ok = untouched_after(bytes, needed);
        c.t.line(format!("get_info argsz=4096 tail untouched: {tail_ok}"));
        c.check(
            "get_info.argsz4096.no_write_past_chain",
            tail_ok,
            format!("bytes {needed}..4096 untouched"),
            "bytes written past the capability chain",
        );
        if has_caps {
            let chain = caps::parse_chain(
                &bytes[..needed.min(bytes.len())],
                big.cap_offset,
                DEVICE_INFO_SIZE,
            );
            match &chain {
                Ok(v) => {
                    for cap in v {
                        c.diag(format!(
                            "device cap id={} v{} at {:#x}",
                            cap.id, cap.version, cap.offset
                        ));
                    }
                }
                Err(e) => c.diag(format!("device caps: {e}")),
            }
            c.check(
                "get_info.argsz4096.cap_chain",
                big.cap_offset as usize == DEVICE_INFO_SIZE
                    && chain.as_ref().is_ok_and(|v| !v.is_empty()),
                "cap_offset 24 and a well-formed chain",
                format!("cap_offset {} {:?}", big.cap_offset, chain.map(|v| v.len())),
            );
        }
    }
    Some(info)
}

fn regions(c: &mut Ctx, info: &DeviceInfo) {
    // Below the minimum argsz (32) upstream refuses before looking at the
    // index.
    let (r, b) = c.dev.region_info_raw(0, 16, FILL);
    c.t.ioctl("region bar0 argsz=16", &r, b.bytes());
    c.expect_errno("region.argsz16", &r, libc::EINVAL);

    for i in 0..info.num_regions + 2 {
        let name = region_name(i);
        let (r32, b32) = c.dev.region_info_raw(i, REGION_INFO_SIZE, FILL);
        c.t.ioctl(format!("region {name} argsz=32"), &r32, b32.bytes());
        let small = RegionInfo::parse(b32.bytes());
        let has_caps = r32.is_ok() && small.flags & VFIO_REGION_INFO_FLAG_CAPS != 0;
        let needed = if has_caps {
            (small.argsz as usize).max(REGION_INFO_SIZE)
        } else {
            REGION_INFO_SIZE
        };
        let (r4k, b4k) = c.dev.region_info_raw(i, 4096, FILL);
        let bytes = b4k.bytes();
        c.t.ioctl(
            format!("region {name} argsz=4096"),
            &r4k,
            &bytes[..needed.min(bytes.len())],
        );

        let valid = i < info.num_regions;
        if !valid {
            c.expect_errno(&format!("region.{name}.argsz32"), &r32, libc::EINVAL);
            c.expect_errno(&format!("region.{name}.argsz4096"), &r4k, libc::EINVAL);
            continue;
        }
        if i == VFIO_PCI_VGA_REGION_INDEX {
            // Only VGA-class devices have the region; others answer EINVAL.
            let ok = matches!(r32, Ok(0) | Err(crate::sys::Errno(libc::EINVAL)));
            c.check(
                &format!("region.{name}.argsz32"),
                ok,
                "0 or EINVAL",
                show(&r32),
            );
            c.check_eq(&format!("region.{name}.consistent"), show(&r32), show(&r4k));
            if r32.is_err() {
                continue;
            }
        } else {
            let a = c.expect_ret(&format!("region.{name}.argsz32"), &r32, 0);
            let b = c.expect_ret(&format!("region.{name}.argsz4096"), &r4k, 0);
            if !(a && b) {
                continue;
            }
        }
        let big = RegionInfo::parse(bytes);
        check_region(c, i, &small, &big, bytes, needed);
    }
}

fn check_region(
    c: &mut Ctx,
    i: u32,
    small: &RegionInfo,
    big: &RegionInfo,
    bytes: &[u8],
    needed: usize,
) {
    let name = region_name(i);
    let n = |s: &str| format!("region.{name}.{s}");
    c.check_eq(&n("index"), i, small.index);
    c.check(
        &n("offset"),
        small.offset == region_offset(i) && big.offset == region_offset(i),
        format!("{:#x}", region_offset(i)),
        format!("{:#x}/{:#x}", small.offset, big.offset),
    );
    c.check(
        &n("argsz_agree"),
        small.flags == big.flags && small.size == big.size,
        format!("flags {:#x} size {:#x}", small.flags, small.size),
        format!("flags {:#x} size {:#x}", big.flags, big.size),
    );
    let has_caps = small.flags & VFIO_REGION_INFO_FLAG_CAPS != 0;
    if has_caps {
        c.check(
            &n("argsz32.caps_need_room"),
            small.argsz as usize > REGION_INFO_SIZE && small.cap_offset == 0,
            "argsz > 32 and cap_offset 0",
            format!("argsz {} cap_offset {}", small.argsz, small.cap_offset),
        );
        let chain = caps::parse_chain(
            &bytes[..needed.min(bytes.len())],
            big.cap_offset,
            REGION_INFO_SIZE,
        );
        if let Ok(v) = &chain {
            for cap in v {
                let d = describe_region_cap(bytes, cap);
                c.diag(format!("{name} cap at {:#x}: {d}", cap.offset));
            }
        }
        c.check(
            &n("argsz4096.cap_chain"),
            big.cap_offset as usize == REGION_INFO_SIZE
                && chain.as_ref().is_ok_and(|v| !v.is_empty()),
            "cap_offset 32 and a well-formed chain",
            format!("cap_offset {} {:?}", big.cap_offset, chain.map(|v| v.len())),
        );
    } else {
        c.check(
            &n("argsz_echo"),
            // Without caps the VFIO core copies the caller's cap_offset back unchanged (it
            // copies minsz, which ends at `offset`, in and out), so the poison must survive.
            small.argsz as usize == REGION_INFO_SIZE
                && big.argsz == 4096
                && big.cap_offset == u32::from_ne_bytes([0xa5; 4]),
            "argsz 32/4096 echoed, cap_offset echoed unchanged",
            format!(
                "argsz {}/{} cap_offset {}",
                small.argsz, big.argsz, big.cap_offset
            ),
        );
    }
    let tail_ok = untouched_after(bytes, needed);
    c.t.line(format!(
        "region {name} argsz=4096 tail untouched: {tail_ok}"
    ));
    c.check(
        &n("no_write_past_chain"),
        tail_ok,
        format!("bytes {needed}..4096 untouched"),
        "bytes written past the info",
    );

    let f = small.flags;
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    match i {
        0..=5 => {
            if small.size == 0 {
                c.check_eq(&n("unimplemented_flags"), 0, f);
            } else {
                c.check(
                    &n("rw_flags"),
                    f & rw == rw,
                    "READ|WRITE",
                    format!("flags {f:#x}"),
                );
            }
        }
        VFIO_PCI_ROM_REGION_INDEX => {
            let bad = VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
            c.check(
                &n("read_only"),
                f & bad == 0,
                "no WRITE or MMAP",
                format!("flags {f:#x}"),
            );
        }
        VFIO_PCI_CONFIG_REGION_INDEX => {
            c.check(
                &n("flags"),
                f & rw == rw && f & VFIO_REGION_INFO_FLAG_MMAP == 0,
                "READ|WRITE, no MMAP",
                format!("flags {f:#x}"),
            );
            c.check(
                &n("size"),
                small.size == 256 || small.size == 4096,
                "256 or 4096",
                small.size,
            );
        }
        _ => {}
    }
}

fn irqs(c: &mut Ctx) {
    let (r, b) = c.dev.irq_info_raw(0, 8, FILL);
    c.t.ioctl("irq 0 argsz=8", &r, b.bytes());
    c.expect_errno("irq.argsz8", &r, libc::EINVAL);

    for i in 0..7u32 {
        let (r, b) = c.dev.irq_info_raw(i, IRQ_INFO_SIZE, FILL);
        c.t.ioctl(format!("irq {i} argsz=16"), &r, b.bytes());
        if i >= VFIO_PCI_NUM_IRQS {
            c.expect_errno(&format!("irq.{i}"), &r, libc::EINVAL);
            continue;
        }
        if !c.expect_ret(&format!("irq.{i}"), &r, 0) {
            continue;
        }
        let q = IrqInfo::parse(b.bytes());
        c.check_eq(&format!("irq.{i}.index"), i, q.index);
        let ev = VFIO_IRQ_INFO_EVENTFD;
        // Upstream: INTx is maskable and level (automasked); MSI, ERR and
        // REQ are fixed sets (noresize); MSI-X is noresize unless the
        // platform supports dynamic allocation.
        match i {
            VFIO_PCI_INTX_IRQ_INDEX => {
                let want = ev | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
                c.check_eq(&format!("irq.{i}.flags"), want, q.flags);
            }
            VFIO_PCI_MSIX_IRQ_INDEX => {
                c.check(
                    &format!("irq.{i}.flags"),
                    q.flags == ev || q.flags == ev | VFIO_IRQ_INFO_NORESIZE,
                    "EVENTFD[|NORESIZE]",
                    format!("{:#x}", q.flags),
                );
            }
            _ => {
                c.check_eq(
                    &format!("irq.{i}.flags"),
                    ev | VFIO_IRQ_INFO_NORESIZE,
                    q.flags,
                );
            }
        }
        if i == VFIO_PCI_REQ_IRQ_INDEX {
            c.check_eq(&format!("irq.{i}.count"), 1, q.count);
        }
        if i == VFIO_PCI_ERR_IRQ_INDEX || i == VFIO_PCI_INTX_IRQ_INDEX {
            c.check(&format!("irq.{i}.count"), q.count <= 1, "0 or 1", q.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_detection() {
        let mut b = vec![FILL; 8];
        assert!(untouched_after(&b, 0));
        b[5] = 0;
        assert!(!untouched_after(&b, 4));
        assert!(untouched_after(&b, 6));
    }
}
