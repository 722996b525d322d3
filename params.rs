// SPDX-License-Identifier: GPL-2.0

//! Module parameters, with upstream vfio-pci's names and meaning (`drivers/vfio/pci/vfio_pci.c`).
//!
//! They are declared in `ffi/shim.c` (`modinfo vfio_pci_rs` lists them with their
//! descriptions; `/sys/module/vfio_pci_rs/parameters/` shows them with upstream's permissions):
//!
//! - `ids=vendor:device[:subvendor[:subdevice[:class[:class_mask]]]][,...]`: dynamic ids added
//!   at load ([`add_ids`]), so matching devices bind to vfio_pci_rs without `driver_override`.
//! - `nointxmask`: no PCI 2.3 INTx masking; INTx takes an exclusive line masked at the
//!   interrupt controller ([`nointxmask`]).
//! - `disable_idle_d3`: keep idle devices out of D3 ([`disable_idle_d3`]).
//! - `disable_denylist`: allow binding devices on upstream's denylist ([`check_denylist`]).
//! - `disable_vga`, `enable_sriov`: accepted so that vfio-pci command lines work, but this
//!   driver has neither a VGA region nor SR-IOV support; setting them only logs that.
//!
//! Upstream latches `nointxmask` and `disable_idle_d3` per device when it is probed, so a
//! later change through sysfs applies to devices bound afterwards; callers do the same.

use kernel::{
    pci,
    prelude::*, //
};

use crate::ffi::param as raw;

/// `nointxmask`: whether PCI 2.3 INTx masking (DisINTx) must not be used. Read once per device
/// at probe. With it, INTx is delivered on an exclusive line masked at the interrupt controller
/// (see `crate::intx`), as upstream does for devices without INTx masking.
pub(crate) fn nointxmask() -> bool {
    raw::nointxmask()
}

/// `disable_idle_d3`: whether idle (bound but unused) devices stay in D0 instead of being put
/// in D3hot. Read once per device at probe, as upstream latches it.
#[allow(dead_code, reason = "wired by the idle power-management work")]
pub(crate) fn disable_idle_d3() -> bool {
    raw::disable_idle_d3()
}

/// Upstream's denylist (`vfio_pci_dev_in_denylist`): devices with errata that may be
/// exploitable when accessed by untrusted users (Intel QAT C3xxx, C62x, DH895xCC and their
/// VFs; DSA and IAX on Sapphire Rapids).
fn in_denylist(vendor: u16, device: u16) -> bool {
    vendor == 0x8086
        && matches!(
            device,
            0x19e2 | 0x19e3 | 0x37c8 | 0x37c9 | 0x0435 | 0x0443 | 0x0b25 | 0x0cfe
        )
}

/// Refuses (`EINVAL`) to bind a denylisted device unless `disable_denylist` is set, with
/// upstream's messages (`vfio_pci_is_denylisted`).
pub(crate) fn check_denylist(pdev: &pci::Device) -> Result {
    let (vendor, device) = (pdev.vendor_id().as_raw(), pdev.device_id());
    if !in_denylist(vendor, device) {
        return Ok(());
    }
    if raw::disable_denylist() {
        dev_warn!(
            pdev.as_ref(),
            "device denylist disabled - allowing device {:04x}:{:04x}.\n",
            vendor,
            device
        );
        return Ok(());
    }
    dev_warn!(
        pdev.as_ref(),
        "{:04x}:{:04x} exists in {} device denylist, driver probing disallowed.\n",
        vendor,
        device,
        crate::DRIVER_NAME
    );
    Err(EINVAL)
}

/// Parses one `ids` entry as upstream's `sscanf(id, "%x:%x:%x:%x:%x:%x", ...)` does: each field
/// is hexadecimal (leading blanks and a `0x` prefix allowed), fields are separated by exactly
/// one `:`, and parsing stops at the first mismatch. Returns the fields (unparsed ones keep
/// their default: subvendor and subdevice `PCI_ANY_ID`, class and mask 0) and how many parsed.
fn parse_id(s: &[u8]) -> ([u32; 6], usize) {
    let mut vals = [0, 0, u32::MAX, u32::MAX, 0, 0];
    let mut rest = s;
    let mut n = 0;
    for (i, val) in vals.iter_mut().enumerate() {
        if i > 0 {
            match rest.split_first() {
                Some((b':', tail)) => rest = tail,
                _ => break,
            }
        }
        while let Some((b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, tail)) = rest.split_first() {
            rest = tail;
        }
        if !rest.first().is_some_and(u8::is_ascii_hexdigit) {
            break;
        }
        if let [b'0', b'x' | b'X', tail @ ..] = rest {
            rest = tail;
        }
        let digits = rest.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let (num, tail) = rest.split_at(digits);
        // Truncated to 32 bits, as sscanf stores into an unsigned int.
        *val = num.iter().fold(0u64, |acc, &c| {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => c - b'A' + 10,
            };
            acc.wrapping_mul(16).wrapping_add(u64::from(d))
        }) as u32;
        rest = tail;
        n += 1;
    }
    (vals, n)
}

/// Adds the `ids` parameter's entries as dynamic ids (upstream `vfio_pci_fill_ids`), with
/// upstream's messages. Called at module init, after the driver is registered: matching
/// devices without a driver are probed at once.
pub(crate) fn add_ids() {
    let ids = raw::ids().to_bytes();
    for id in ids.split(|&c| c == b',').filter(|id| !id.is_empty()) {
        let (v, fields) = parse_id(id);
        if fields < 2 {
            pr_warn!(
                "invalid id string \"{}\"\n",
                kernel::str::BStr::from_bytes(id)
            );
            continue;
        }
        match raw::add_dynid(&v) {
            Ok(()) => pr_info!(
                "add [{:04x}:{:04x}[{:04x}:{:04x}]] class {:#08x}/{:08x}\n",
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[5]
            ),
            Err(e) => pr_warn!(
                "failed to add dynamic id [{:04x}:{:04x}[{:04x}:{:04x}]] class {:#08x}/{:08x} ({})\n",
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[5],
                e.to_errno()
            ),
        }
    }
}

/// Logs, at load, the parameters that change nothing here or lower protection.
pub(crate) fn report() {
    if raw::disable_denylist() {
        pr_warn!("device denylist disabled.\n");
    }
    if raw::disable_vga() {
        pr_info!(
            "disable_vga has no effect: {} has no VGA region\n",
            crate::DRIVER_NAME
        );
    }
    if raw::enable_sriov() {
        pr_info!(
            "enable_sriov has no effect: {} has no SR-IOV support\n",
            crate::DRIVER_NAME
        );
    }
}
