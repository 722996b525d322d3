// SPDX-License-Identifier: GPL-2.0

//! Slot and bus ("hot") resets of a device set: `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`,
//! `VFIO_DEVICE_PCI_HOT_RESET` (group-fd and zero-length iommufd forms) and the reset of an
//! unused set at last close (upstream `vfio_pci_core.c`: `vfio_pci_dev_set_hot_reset`,
//! `vfio_pci_dev_set_try_reset`).
//!
//! A slot or bus reset resets every device on the slot or bus, so it is allowed only when all
//! of them are in the caller's device set and owned by the caller. Locks: `dev_set -> memory`
//! (each member's memory lock is only tried, as upstream: several locks of one class taken in
//! list order must never wait). The reset itself only tries the PCI core's device locks, and
//! marks each member's reset as its own, so the members' `reset_prepare` leaves their memory
//! locks (held here) alone. The reset of an unused set at last close holds no memory lock: the
//! members' `reset_prepare` and `reset_done` take theirs one at a time.

use kernel::{
    pci,
    prelude::*, //
};

use crate::{
    device::PCI_D0,
    ffi::{
        devset::{
            self,
            DevSet,
            GroupFile,
            IommufdCtx, //
        },
        sys, user,
        vfio::Device,
    },
};

/// Size of the `argsz, flags, count` header of both hot-reset structures.
const HDR_LEN: usize = 12;
/// Size of `struct vfio_pci_dependent_device`.
const DEP_LEN: usize = 8;

/// The header of `struct vfio_pci_hot_reset_info` and `struct vfio_pci_hot_reset`.
struct Header {
    argsz: u32,
    flags: u32,
    count: u32,
}

impl Header {
    fn read(arg: usize) -> Result<Self> {
        let mut b = [0u8; HDR_LEN];
        user::read_bytes(arg, &mut b)?;
        let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(Self {
            argsz: word(0),
            flags: word(4),
            count: word(8),
        })
    }

    fn write(&self, arg: usize) -> Result {
        let mut b = [0u8; HDR_LEN];
        b[0..4].copy_from_slice(&self.argsz.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.count.to_ne_bytes());
        user::write_bytes(arg, &b)
    }
}

/// How the caller proves it owns the devices a hot reset affects.
enum Owner<'a> {
    /// Group form: every affected device must be in one of these groups.
    Groups(&'a [GroupFile]),
    /// Zero-length (cdev) form: every affected device must be bound to this iommufd context,
    /// or be unbound in a group the context owns.
    Iommufd(Option<IommufdCtx<'a>>),
}

impl Owner<'_> {
    fn owns(&self, member: &Device) -> bool {
        match self {
            Self::Groups(files) => files.iter().any(|f| f.has_dev(member)),
            Self::Iommufd(Some(ctx)) => match member.iommufd_dev_id(ctx) {
                Ok(id) => id > 0,
                Err(e) => e == ENOENT,
            },
            Self::Iommufd(None) => false,
        }
    }
}

/// Counts the devices a slot (`slot`) or bus reset of `pdev` affects.
fn count_affected(pdev: &pci::Device, slot: bool) -> Result<usize> {
    let mut count = 0usize;
    devset::for_each_affected(pdev, slot, |_| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the devices a hot reset of `dev` would reset, with
/// their IOMMU group (group-opened) or their iommufd device id (cdev-opened, `FLAG_DEV_ID`).
pub(crate) fn ioctl_info(dev: &Device, arg: usize) -> Result {
    let mut hdr = Header::read(arg)?;
    if (hdr.argsz as usize) < HDR_LEN {
        return Err(EINVAL);
    }
    hdr.flags = 0;
    let pdev = dev.data().pdev();
    let slot = devset::probe_slot_or_bus_reset(pdev)?;
    let count = count_affected(pdev, slot)?;
    if count == 0 {
        // There is always the device itself.
        return Err(ERANGE);
    }
    if count > (hdr.argsz as usize - HDR_LEN) / DEP_LEN {
        hdr.count = count as u32;
        hdr.write(arg)?;
        return Err(ENOSPC);
    }

    let dev_ids = dev.cdev_opened();
    let mut all_owned = true;
    let mut out = KVec::with_capacity(count * DEP_LEN, GFP_KERNEL)?;
    let mut filled = 0usize;
    {
        let set = DevSet::lock(dev);
        let ctx = dev.iommufd_ctx();
        devset::for_each_affected(pdev, slot, |affected| {
            // The topology changed since the devices were counted.
            if filled >= count {
                return Err(EAGAIN);
            }
            let id = if dev_ids {
                let id = match (set.find(affected), &ctx) {
                    (Some(member), Some(ctx)) => match member.iommufd_dev_id(ctx) {
                        Ok(id) if id > 0 => id,
                        Err(e) if e == ENOENT => sys::VFIO_PCI_DEVID_OWNED,
                        _ => sys::VFIO_PCI_DEVID_NOT_OWNED as u32,
                    },
                    _ => sys::VFIO_PCI_DEVID_NOT_OWNED as u32,
                };
                all_owned &= id != sys::VFIO_PCI_DEVID_NOT_OWNED as u32;
                id
            } else {
                devset::iommu_group_id(affected)?
            };
            let (segment, bus, devfn) = devset::location(affected);
            out.extend_from_slice(&id.to_ne_bytes(), GFP_KERNEL)?;
            out.extend_from_slice(&segment.to_ne_bytes(), GFP_KERNEL)?;
            out.extend_from_slice(&[bus, devfn], GFP_KERNEL)?;
            filled += 1;
            Ok(())
        })?;
    }
    user::write_bytes(arg + HDR_LEN, &out)?;
    if dev_ids {
        hdr.flags = sys::VFIO_PCI_HOT_RESET_FLAG_DEV_ID;
        if all_owned {
            hdr.flags |= sys::VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
        }
    }
    hdr.count = filled as u32;
    hdr.write(arg)
}

/// `VFIO_DEVICE_PCI_HOT_RESET`: resets the slot or bus of `dev` when the caller owns every
/// device on it, proven by an array of group fds (group-opened) or by its iommufd context
/// (cdev-opened, zero-length array).
pub(crate) fn ioctl_reset(dev: &Device, arg: usize) -> Result {
    let hdr = Header::read(arg)?;
    if (hdr.argsz as usize) < HDR_LEN || hdr.flags != 0 {
        return Err(EINVAL);
    }
    // The zero-length array is the cdev form, and only the cdev form.
    if (hdr.count != 0) == dev.cdev_opened() {
        return Err(EINVAL);
    }
    let pdev = dev.data().pdev();
    let slot = devset::probe_slot_or_bus_reset(pdev)?;
    if hdr.count == 0 {
        return hot_reset(dev, &Owner::Iommufd(dev.iommufd_ctx()));
    }

    // At most one group per affected device: bounds the user's array before copying it.
    let count = hdr.count as usize;
    if count > count_affected(pdev, slot)? {
        return Err(EINVAL);
    }
    let mut raw_fds = KVec::new();
    raw_fds.extend_with(count * 4, 0u8, GFP_KERNEL)?;
    user::read_bytes(arg + HDR_LEN, &mut raw_fds)?;
    // References on the group files keep the groups alive across the reset.
    let mut files = KVec::with_capacity(count, GFP_KERNEL)?;
    for fd in raw_fds.chunks_exact(4) {
        let fd = i32::from_ne_bytes([fd[0], fd[1], fd[2], fd[3]]);
        files.push(GroupFile::get(fd)?, GFP_KERNEL)?;
    }
    hot_reset(dev, &Owner::Groups(&files))
}

/// The device whose `pci_reset_bus` resets the set, if the set can be reset: a slot or bus
/// reset exists and every device it affects is a member (upstream
/// `vfio_pci_dev_set_resettable`).
fn resettable<'a>(set: &DevSet<'_>, members: &[&'a Device]) -> Option<&'a pci::Device> {
    let pdev = members.first()?.data().pdev();
    let slot = devset::probe_slot_or_bus_reset(pdev).ok()?;
    devset::for_each_affected(pdev, slot, |affected| {
        set.find(affected).map(|_| ()).ok_or(ENODEV)
    })
    .ok()?;
    Some(pdev)
}

/// Resets the set of `dev` after checking ownership and taking every member's memory lock
/// (zapping its mappings), as upstream `vfio_pci_dev_set_hot_reset`.
fn hot_reset(dev: &Device, owner: &Owner<'_>) -> Result {
    let set = DevSet::lock(dev);
    let members = set.members()?;
    let pdev = resettable(&set, &members).ok_or(EINVAL)?;
    let mut locked = KVec::with_capacity(members.len(), GFP_KERNEL)?;
    for member in members.iter() {
        if !owner.owns(member) {
            return Err(EINVAL);
        }
        // Locking several devices can deadlock: give up on contention.
        let memory = member
            .data()
            .try_zap_and_write_memory(member)
            .ok_or(EBUSY)?;
        locked.push(memory, GFP_KERNEL)?;
    }
    // The reset brings every device to D0 itself; devices that lose their state in D3hot
    // (NoSoftRst-) must be brought back by us first so their saved state is restored.
    for (member, memory) in members.iter().zip(locked.iter_mut()) {
        let _ = member.data().set_power_state(memory, PCI_D0);
    }
    // Every member's memory lock is held: its `reset_prepare` must not take it again.
    let mut own = KVec::with_capacity(members.len(), GFP_KERNEL)?;
    for member in members.iter() {
        own.push(member.data().own_reset(), GFP_KERNEL)?;
    }
    devset::reset_slot_or_bus(pdev)
}

/// Whether a member of `dev`'s set other than `dev` still owes a slot or bus reset (its
/// function reset failed or does not exist at its last close).
pub(crate) fn owed_by_other_member(set: &DevSet<'_>, dev: &Device) -> bool {
    set.any_member(|m| !core::ptr::eq(m, dev) && m.data().needs_reset())
        .unwrap_or(false)
}

/// Whether the set is unused once the member being closed is: no other member is open.
pub(crate) fn unused_at_close(set: &DevSet<'_>) -> bool {
    set.open_count() <= 1
}

/// At last close of an unused set ([`unused_at_close`]) in which a member owes a reset: reset
/// the whole slot or bus, so the next user does not inherit the last one's state (upstream
/// `vfio_pci_dev_set_try_reset`). The caller has checked both.
pub(crate) fn reset_unused_set(set: &DevSet<'_>) {
    let Ok(members) = set.members() else {
        return;
    };
    let Some(pdev) = resettable(set, &members) else {
        return;
    };
    if devset::reset_slot_or_bus(pdev).is_ok() {
        for member in members.iter() {
            member.data().set_needs_reset(false);
        }
    }
}
