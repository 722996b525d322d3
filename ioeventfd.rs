// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_IOEVENTFD`: an eventfd whose signal writes a fixed value to a BAR register
//! (upstream `vfio_pci_ioeventfd` in `vfio_pci_rdwr.c`), so that a hypervisor can hand guest
//! doorbell writes to the kernel without a round trip through user space.
//!
//! # Locks
//!
//! `ioeventfds` (mutex, upstream's `ioeventfds_lock`) guards the list. It is never taken with
//! the memory lock held; removing an ioeventfd under it waits for its callbacks, which take the
//! memory lock for read, so the order is `ioeventfds -> memory`. The eventfd's wakeup (atomic)
//! only *tries* the memory lock and leaves the write to a workqueue when it is contended, as
//! upstream does.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

use crate::{
    device::{
        MemoryState,
        VfioPciDevice, //
    },
    ffi::{
        io::Width,
        irq::{
            Virqfd,
            VirqfdHandler, //
        },
        pci as rawpci, user,
        vfio::{
            Device,
            DeviceRef, //
        },
    },
    regions,
};

/// `VFIO_PCI_IOEVENTFD_MAX`: ioeventfds per device.
const IOEVENTFD_MAX: usize = 1000;
/// `VFIO_DEVICE_IOEVENTFD_SIZE_MASK`: the access size bits of `flags` (1, 2, 4, 8 bytes).
const SIZE_MASK: u32 = 0xf;
/// `offsetofend(struct vfio_device_ioeventfd, fd)`: argsz, flags, offset, data, fd.
const MINSZ: usize = 28;

/// What a signal of the eventfd does: write `data` at `pos` of `bar`.
struct IoeventfdCtx {
    /// The device (its memory lock and mapped BARs).
    dev: DeviceRef,
    bar: u32,
    pos: u64,
    width: Width,
    data: u64,
    /// A memory BAR: written only while memory decode is on (upstream `test_mem`).
    test_mem: bool,
}

impl IoeventfdCtx {
    /// The write, with the memory lock held for read (upstream `vfio_pci_ioeventfd_do_write`):
    /// dropped while decode is off, as a user write would fail with `EIO`.
    fn write(&self, vdev: &VfioPciDevice, mem: &MemoryState) {
        if self.test_mem && !vdev.memory_accessible(mem) {
            return;
        }
        // The BAR was mapped when the ioeventfd was set up and stays mapped while the device
        // is open; every ioeventfd is gone before close unmaps it (the check is only a belt
        // for an impossible case: this may run in atomic context, where mapping is not allowed).
        if let Some(io) = mem.bar(self.bar).ok().and_then(|map| map.io_mapped()) {
            io.write(self.pos, self.width, self.data);
        }
    }
}

impl VirqfdHandler for IoeventfdCtx {
    /// In the eventfd wakeup (atomic): write now unless the memory lock is contended
    /// (`vfio_pci_ioeventfd_handler`).
    fn handler(&self) -> bool {
        let vdev = self.dev.data();
        let Some(mem) = vdev.memory_try_read() else {
            return true;
        };
        self.write(vdev, &mem);
        false
    }

    /// From the workqueue, when the wakeup found the lock contended
    /// (`vfio_pci_ioeventfd_thread`).
    fn thread(&self) {
        let vdev = self.dev.data();
        let mem = vdev.memory_read();
        self.write(vdev, &mem);
    }
}

/// One registered ioeventfd; dropping it detaches the eventfd and waits for its callbacks.
struct Ioeventfd {
    bar: u32,
    pos: u64,
    data: u64,
    count: u32,
    _virqfd: Pin<KBox<Virqfd<IoeventfdCtx>>>,
}

/// The ioeventfds of one device (upstream `ioeventfds_list` and `ioeventfds_lock`).
#[pin_data]
pub(crate) struct Ioeventfds {
    #[pin]
    list: Mutex<KVec<Ioeventfd>>,
}

/// A decoded `struct vfio_device_ioeventfd`.
struct Request {
    offset: u64,
    data: u64,
    count: u32,
    fd: i32,
}

impl Request {
    /// Copies the request in and checks it as upstream's `vfio_pci_ioctl_ioeventfd`.
    fn from_user(arg: usize) -> Result<Self> {
        let mut raw = [0u8; MINSZ];
        user::read_bytes(arg, &mut raw)?;
        let le32 = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&raw[at..at + 4]);
            u32::from_ne_bytes(b)
        };
        let le64 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        let (argsz, flags) = (le32(0), le32(4));
        if (argsz as usize) < MINSZ || flags & !SIZE_MASK != 0 {
            return Err(EINVAL);
        }
        let count = flags & SIZE_MASK;
        let fd = le32(24) as i32;
        if count.count_ones() != 1 || fd < -1 {
            return Err(EINVAL);
        }
        Ok(Self {
            offset: le64(8),
            data: le64(16),
            count,
            fd,
        })
    }
}

impl Ioeventfds {
    /// An empty list.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(KVec::new()),
        })
    }

    /// `VFIO_DEVICE_IOEVENTFD`: adds an ioeventfd, or removes one with `fd == -1`.
    pub(crate) fn ioctl(&self, dev: &Device, arg: usize) -> Result {
        let req = Request::from_user(arg)?;
        let vdev = dev.data();
        let pdev = vdev.pdev();
        // Upstream converts the offset to a signed `loff_t` and its BAR index to an int, so an
        // offset with bit 63 set gives a negative index that passes its `> BAR5` check and
        // indexes `pdev->resource[]` out of bounds; here every index above BAR5 is `EINVAL`.
        let index = regions::offset_to_index(req.offset);
        if index > 5 {
            return Err(EINVAL);
        }
        let bar = index as u32;
        let pos = req.offset & regions::OFFSET_MASK;
        let end = pos + u64::from(req.count);
        if end > vdev.bar_len(bar) {
            return Err(EINVAL);
        }
        {
            let mem = vdev.memory_read();
            // No ioeventfd may write around the MSI-X table.
            if let Some(t) = mem.msix().filter(|t| t.bar == bar) {
                if !(end <= t.offset || pos >= t.offset + t.size) {
                    return Err(EINVAL);
                }
            }
            // Map the BAR now, as upstream's `vfio_pci_core_get_iomap` here answers its
            // mapping's error: the write itself may run where mapping is not allowed.
            mem.bar(bar)?.io()?;
        }

        let mut list = self.list.lock();
        if let Some(i) = list.iter().position(|e| {
            e.pos == pos && e.bar == bar && e.data == req.data && e.count == req.count
        }) {
            if req.fd != -1 {
                return Err(EEXIST);
            }
            // Dropping it detaches the eventfd and waits for a running write.
            drop(list.remove(i)?);
            return Ok(());
        }
        if req.fd < 0 {
            return Err(ENODEV);
        }
        if list.len() >= IOEVENTFD_MAX {
            return Err(ENOSPC);
        }
        let ctx = Arc::new(
            IoeventfdCtx {
                dev: DeviceRef::new(dev),
                bar,
                pos,
                // `count` was checked to be 1, 2, 4 or 8 above.
                width: Width::from_bytes(req.count as usize).ok_or(EINVAL)?,
                data: req.data,
                test_mem: rawpci::resource_flags(pdev, bar)
                    & u64::from(kernel::bindings::IORESOURCE_MEM)
                    != 0,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        let virqfd = Virqfd::new(ctx)?;
        // Room first, so nothing can fail once the eventfd is attached.
        list.reserve(1, GFP_KERNEL_ACCOUNT)?;
        virqfd.enable(req.fd)?;
        list.push(
            Ioeventfd {
                bar,
                pos,
                data: req.data,
                count: req.count,
                _virqfd: virqfd,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        Ok(())
    }

    /// Removes every ioeventfd (at close, upstream `vfio_pci_core_disable`); none of their
    /// writes runs once this returns.
    pub(crate) fn clear(&self) {
        let all = core::mem::take(&mut *self.list.lock());
        drop(all);
    }
}
