// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_FEATURE` for the features the VFIO core hands to the driver (upstream
//! `vfio_pci_core_ioctl_feature`): low-power entry and exit, the SR-IOV VF token; dma-buf
//! export and the s390 zPCI error feature answer `ENOTTY`.
//!
//! Low power: upstream's entry marks runtime PM as engaged (`pm_runtime_engaged`, under the
//! memory lock), zaps every BAR mapping and drops its runtime-PM reference; while engaged,
//! faults answer SIGBUS, until `LOW_POWER_EXIT`, close, or a runtime resume. This driver has no
//! runtime PM yet, so it keeps the engaged state and its SIGBUS and never powers the device
//! down: exactly what upstream does on a kernel without `CONFIG_PM` (the test kernel), where the
//! runtime-PM calls are empty and the wake-up eventfd is never signalled.

use kernel::{
    new_mutex,
    prelude::*,
    sync::Mutex, //
};

use crate::{
    device::VfioPciDevice,
    ffi::{
        eventfd::EventFd,
        pci as rawpci,
        user,
        vfio::Device, //
    },
};

/// `VFIO_DEVICE_FEATURE_MASK`: the feature number in `flags`.
const FEATURE_MASK: u32 = 0xffff;
/// `VFIO_DEVICE_FEATURE_GET`.
const GET: u32 = 1 << 16;
/// `VFIO_DEVICE_FEATURE_SET`.
const SET: u32 = 1 << 17;
/// `VFIO_DEVICE_FEATURE_PROBE`.
const PROBE: u32 = 1 << 18;

const PCI_VF_TOKEN: u32 = 0;
const LOW_POWER_ENTRY: u32 = 3;
const LOW_POWER_ENTRY_WITH_WAKEUP: u32 = 4;
const LOW_POWER_EXIT: u32 = 5;

/// Feature state that lives as long as the bound device.
#[pin_data]
pub(crate) struct Features {
    /// The VF token a PF's user set (upstream `vf_token->uuid`), through this feature or at
    /// open. Never read: it guards VFs, and this driver does not enable SR-IOV.
    #[pin]
    vf_token: Mutex<[u8; 16]>,
}

impl Features {
    /// No token set.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            vf_token <- new_mutex!([0u8; 16]),
        })
    }
}

/// `UUID_STRING_LEN`: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
const UUID_STRING_LEN: usize = 36;

/// `uuid_parse`: the 36 characters of `s` as a UUID (hex pairs, dashes at 8, 13, 18 and 23),
/// `EINVAL` for anything else.
fn parse_uuid(s: &[u8]) -> Result<[u8; 16]> {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    let hex = |c: u8| char::from(c).to_digit(16).ok_or(EINVAL);
    if s.len() != UUID_STRING_LEN {
        return Err(EINVAL);
    }
    let mut digits = s.iter().enumerate().filter(|(i, _)| !DASHES.contains(i));
    if DASHES.iter().any(|&i| s.get(i) != Some(&b'-')) {
        return Err(EINVAL);
    }
    let mut uuid = [0u8; 16];
    for byte in &mut uuid {
        let (Some((_, &hi)), Some((_, &lo))) = (digits.next(), digits.next()) else {
            return Err(EINVAL);
        };
        // Both digits are below 16, so the byte cannot overflow.
        *byte = (hex(hi)? * 16 + hex(lo)?) as u8;
    }
    Ok(uuid)
}

/// `vfio_check_feature`: `Ok(false)` for a probe (answer 0), `Ok(true)` to carry out the
/// GET or SET, `EINVAL` for an operation the feature lacks or too short a payload.
fn check_feature(flags: u32, argsz: usize, supported: u32, minsz: usize) -> Result<bool> {
    if flags & (GET | SET) & !supported != 0 {
        return Err(EINVAL);
    }
    if flags & PROBE != 0 {
        return Ok(false);
    }
    if flags & (GET | SET) == 0 || argsz < minsz {
        return Err(EINVAL);
    }
    Ok(true)
}

impl VfioPciDevice {
    /// `device_feature`: called by the VFIO core after its own checks of the flags.
    pub(crate) fn device_feature(
        &self,
        dev: &Device,
        flags: u32,
        arg: usize,
        argsz: usize,
    ) -> Result {
        match flags & FEATURE_MASK {
            PCI_VF_TOKEN => self.feature_vf_token(flags, arg, argsz),
            LOW_POWER_ENTRY => {
                if !check_feature(flags, argsz, SET, 0)? {
                    return Ok(());
                }
                self.low_power_entry(dev, None)
            }
            LOW_POWER_ENTRY_WITH_WAKEUP => {
                // struct vfio_device_low_power_entry_with_wakeup: wakeup_eventfd, reserved.
                if !check_feature(flags, argsz, SET, 8)? {
                    return Ok(());
                }
                let mut raw = [0u8; 8];
                user::read_bytes(arg, &mut raw)?;
                let fd = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
                if fd < 0 {
                    return Err(EINVAL);
                }
                let wake = EventFd::from_fd(fd)?;
                self.low_power_entry(dev, Some(wake))
            }
            LOW_POWER_EXIT => {
                if !check_feature(flags, argsz, SET, 0)? {
                    return Ok(());
                }
                self.low_power_exit();
                Ok(())
            }
            // DMA_BUF (11): upstream exports BARs as dma-bufs only when built with
            // CONFIG_VFIO_PCI_DMABUF (PCI_P2PDMA and DMA_SHARED_BUFFER); the test kernel has
            // neither, and there upstream answers ENOTTY, as this driver always does.
            // ZPCI_ERROR (13): s390 only. Everything else is not a vfio-pci feature.
            _ => Err(ENOTTY),
        }
    }

    /// `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`: SET only, on an SR-IOV PF; GET is refused so the
    /// token of a previous user never leaks (upstream `vfio_pci_core_feature_token`).
    fn feature_vf_token(&self, flags: u32, arg: usize, argsz: usize) -> Result {
        if !rawpci::is_physfn(self.pdev()) {
            return Err(ENOTTY);
        }
        let mut uuid = [0u8; 16];
        if !check_feature(flags, argsz, SET, uuid.len())? {
            return Ok(());
        }
        user::read_bytes(arg, &mut uuid)?;
        *self.features().vf_token.lock() = uuid;
        Ok(())
    }

    /// `match` (upstream `vfio_pci_core_match`): whether `buf` is this device's PCI name,
    /// optionally followed by spaces and one `vf_token=UUID`; a bad token is `EINVAL`.
    pub(crate) fn match_name(&self, buf: &[u8]) -> Result<bool> {
        let Some(mut rest) = buf.strip_prefix(rawpci::name(self.pdev()).to_bytes()) else {
            return Ok(false);
        };
        if rest.first().is_some_and(|&c| c != b' ') {
            return Ok(false);
        }
        let mut token = None;
        while let Some((&c, tail)) = rest.split_first() {
            if c == b' ' {
                rest = tail;
                continue;
            }
            match rest.strip_prefix(b"vf_token=") {
                Some(t) if token.is_none() && t.len() >= UUID_STRING_LEN => {
                    let (uuid, tail) = t.split_at(UUID_STRING_LEN);
                    token = Some(parse_uuid(uuid)?);
                    rest = tail;
                }
                _ => return Err(EINVAL),
            }
        }
        self.match_token(token.as_ref())?;
        Ok(true)
    }

    /// `match_token_uuid` (upstream `vfio_pci_core_match_token_uuid`), with no VF of this
    /// driver's PFs ever in use (it does not enable SR-IOV): a PF takes a given token as its new
    /// one; a VF (its PF is not this driver's) or any other device refuses a token.
    pub(crate) fn match_token(&self, uuid: Option<&[u8; 16]>) -> Result {
        match uuid {
            None => Ok(()),
            Some(uuid) if rawpci::is_physfn(self.pdev()) => {
                *self.features().vf_token.lock() = *uuid;
                Ok(())
            }
            Some(_) => Err(EINVAL),
        }
    }

    /// Low-power entry (upstream `vfio_pci_runtime_pm_entry`): zap every BAR mapping and mark
    /// the device engaged; `EINVAL` if it already is.
    fn low_power_entry(&self, dev: &Device, wake: Option<EventFd>) -> Result {
        let mut mem = self.zap_and_write_memory(dev);
        mem.pm_engage(wake)
    }

    /// Low-power exit (upstream `vfio_pci_runtime_pm_exit`); nothing to do if not engaged.
    pub(crate) fn low_power_exit(&self) {
        let wake = self.write_memory().pm_disengage();
        // The wake-up eventfd reference is dropped outside the lock.
        drop(wake);
    }
}
