// SPDX-License-Identifier: GPL-2.0

//! Interrupt configuration of one device: `VFIO_DEVICE_SET_IRQS` and its dispatch (upstream
//! `vfio_pci_ioctl_set_irqs` and `vfio_pci_set_irqs_ioctl`), the ERR and REQ eventfds, the
//! config-space hooks (virtual DisINTx, MSI state) and the teardown at close.
//!
//! # Locks
//!
//! `igate` (mutex) serialises all interrupt configuration. Order: `open -> igate -> memory`
//! (the config-space model runs under `open` and reaches the INTx hooks; MSI vector set-up
//! takes the memory lock under `igate`); `igate -> err`/`req`. SET_IRQS copies its data in
//! before taking `igate`. The MSI state the config-space model reads is mirrored in atomics,
//! read without `igate` as upstream reads `irq_type` and `msi_qmax`.

use core::sync::atomic::{
    AtomicBool,
    AtomicU8,
    Ordering, //
};
use kernel::{
    pci,
    prelude::*,
    sync::{
        new_mutex,
        Arc,
        Mutex, //
    },
};

use crate::{
    device::VfioPciDevice,
    ffi::{
        eventfd::EventFd,
        irq,
        lock,
        pci as rawpci,
        sys,
        user, //
    },
    intx::Intx,
    msi::{
        Enable,
        Fds,
        Msi, //
    },
};

/// IRQ index of INTx.
const INTX: u32 = sys::VFIO_PCI_INTX_IRQ_INDEX;
/// IRQ index of MSI.
const MSI: u32 = sys::VFIO_PCI_MSI_IRQ_INDEX;
/// IRQ index of MSI-X.
const MSIX: u32 = sys::VFIO_PCI_MSIX_IRQ_INDEX;
/// IRQ index of the AER error eventfd.
const ERR: u32 = sys::VFIO_PCI_ERR_IRQ_INDEX;
/// IRQ index of the device request eventfd.
const REQ: u32 = sys::VFIO_PCI_REQ_IRQ_INDEX;

/// The data following a SET_IRQS header, by its type.
#[derive(Clone, Copy)]
enum Data<'a> {
    /// `VFIO_IRQ_SET_DATA_NONE`.
    None,
    /// `VFIO_IRQ_SET_DATA_BOOL`: one byte per interrupt.
    Bool(&'a [u8]),
    /// `VFIO_IRQ_SET_DATA_EVENTFD`: one fd per interrupt.
    EventFd(Fds<'a>),
}

impl Data<'_> {
    /// The first bool is set (the single-interrupt actions).
    fn first_bool(bools: &[u8]) -> bool {
        bools.first().is_some_and(|&b| b != 0)
    }
}

/// Which interrupt type is enabled (upstream `irq_type`); at most one at a time.
enum Mode {
    /// None.
    None,
    /// INTx.
    Intx(Intx),
    /// MSI or MSI-X.
    Msi(Msi),
}

/// State under `igate`.
struct IrqState {
    /// INTx masking with DisINTx (set at open).
    pci_2_3: bool,
    /// Broken INTx masking: DisINTx stays set (set at open).
    nointx: bool,
    /// Dynamic MSI-X allocation works (set at open).
    has_dyn_msix: bool,
    /// The virtual DisINTx bit (upstream `virq_disabled`).
    virq_disabled: bool,
    /// The enabled interrupt type.
    mode: Mode,
}

/// The interrupt state of a device.
#[pin_data]
pub(crate) struct Irqs {
    #[pin]
    igate: lock::Mutex<IrqState>,
    /// MSI (not MSI-X) is enabled; mirrors `mode` for the config-space model.
    msi_enabled: AtomicBool,
    /// log2 of the MSI vectors last enabled (upstream `msi_qmax`, never reset).
    msi_qmax: AtomicU8,
    /// The ERR eventfd (AER errors).
    #[pin]
    err: Mutex<Option<EventFd>>,
    /// The REQ eventfd (device removal requests).
    #[pin]
    req: Mutex<Option<EventFd>>,
}

impl Irqs {
    /// Nothing enabled.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            igate <- lock::new_mutex(
                IrqState {
                    pci_2_3: false,
                    nointx: false,
                    has_dyn_msix: false,
                    virq_disabled: false,
                    mode: Mode::None,
                },
                c"Irqs::igate",
                kernel::static_lock_class!(),
            ),
            msi_enabled: AtomicBool::new(false),
            msi_qmax: AtomicU8::new(0),
            err <- new_mutex!(None),
            req <- new_mutex!(None),
        })
    }

    /// Records the INTx masking method and dynamic MSI-X support found at open.
    pub(crate) fn open(&self, pci_2_3: bool, nointx: bool, has_dyn_msix: bool) {
        let mut st = self.igate.lock();
        st.pci_2_3 = pci_2_3;
        st.nointx = nointx;
        st.has_dyn_msix = has_dyn_msix;
        st.virq_disabled = false;
    }

    /// Disables whatever interrupt type is enabled and forgets virtual DisINTx (close, after
    /// bus mastering was turned off; upstream's SET_IRQS on `irq_type` with count 0).
    pub(crate) fn disable_all(&self, dev: &VfioPciDevice) {
        let mut st = self.igate.lock();
        match core::mem::replace(&mut st.mode, Mode::None) {
            Mode::None => {}
            Mode::Intx(intx) => drop(intx),
            Mode::Msi(msi) => msi.disable(dev, st.nointx),
        }
        st.virq_disabled = false;
        self.publish(&st);
    }

    /// Releases the ERR and REQ eventfds (end of close).
    pub(crate) fn clear_err_req(&self) {
        let _st = self.igate.lock();
        let err = self.err.lock().take();
        let req = self.req.lock().take();
        drop((err, req));
    }

    /// Mirrors the MSI state for lockless readers.
    fn publish(&self, st: &IrqState) {
        let msi = matches!(&st.mode, Mode::Msi(m) if !m.msix());
        self.msi_enabled.store(msi, Ordering::Relaxed);
    }

    /// MSI enabled and `msi_qmax`, for the config-space model's MSI flags emulation.
    pub(crate) fn msi_state(&self) -> (bool, u8) {
        (
            self.msi_enabled.load(Ordering::Relaxed),
            self.msi_qmax.load(Ordering::Relaxed),
        )
    }

    /// The virtual DisINTx bit changed (config write): mask or unmask INTx accordingly, or,
    /// without INTx enabled, let the physical bit follow on DisINTx devices
    /// (`vfio_pci_intx_mask`/`_unmask` from `vfio_basic_config_write`).
    pub(crate) fn set_virq_disabled(&self, pdev: &pci::Device, disabled: bool) {
        let mut st = self.igate.lock();
        st.virq_disabled = disabled;
        match &st.mode {
            Mode::Intx(intx) => {
                intx.set_virq_disabled(disabled);
                if disabled {
                    intx.mask();
                } else {
                    intx.unmask();
                }
            }
            _ if st.pci_2_3 => rawpci::intx(pdev, !disabled),
            _ => {}
        }
    }

    /// The device is being removed while open: signal REQ (`vfio_pci_core_request`).
    pub(crate) fn request(&self, pdev: &pci::Device, count: u32) {
        let req = self.req.lock();
        if let Some(req) = req.as_ref() {
            if count % 10 == 0 {
                dev_notice!(
                    pdev.as_ref(),
                    "Relaying device request to user (#{})\n",
                    count
                );
            }
            req.signal();
        } else if count == 0 {
            dev_warn!(
                pdev.as_ref(),
                "No device request channel registered, blocked until released by user\n"
            );
        }
    }

    /// AER detected an error: signal ERR (`vfio_pci_core_aer_err_detected`).
    pub(crate) fn error_detected(&self) {
        if let Some(err) = self.err.lock().as_ref() {
            err.signal();
        }
    }

    /// `VFIO_DEVICE_SET_IRQS`: copy and check the header with the VFIO core's helper against
    /// `irq_count(index)`, copy the data in, then act under `igate`. Returns 0, or for an MSI
    /// or MSI-X enable that got fewer vectors, how many are available.
    pub(crate) fn ioctl_set_irqs(
        &self,
        dev: &VfioPciDevice,
        arg: usize,
        irq_count: impl FnOnce(u32) -> u32,
    ) -> Result<isize> {
        let minsz = core::mem::offset_of!(sys::vfio_irq_set, count) + size_of::<u32>();
        let mut hdr: sys::vfio_irq_set = user::read_prefix(arg, minsz)?;
        let max = irq_count(hdr.index);
        let size = irq::validate_set_irqs(&mut hdr, max, sys::VFIO_PCI_NUM_IRQS)?;
        // No data (DATA_NONE, the common trigger/unmask case): no vector at all, so nothing is
        // allocated or freed (dropping even an empty `KVec` calls the allocator).
        let buf = if size > 0 {
            let mut buf = KVec::from_elem(0u8, size, GFP_KERNEL_ACCOUNT)?;
            user::read_bytes(arg + minsz, &mut buf)?;
            Some(buf)
        } else {
            None
        };
        let bytes: &[u8] = buf.as_deref().unwrap_or(&[]);
        let data = match hdr.flags & sys::VFIO_IRQ_SET_DATA_TYPE_MASK {
            sys::VFIO_IRQ_SET_DATA_BOOL => Data::Bool(bytes),
            sys::VFIO_IRQ_SET_DATA_EVENTFD => Data::EventFd(Fds(bytes)),
            _ => Data::None,
        };
        let action = hdr.flags & sys::VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let mut st = self.igate.lock();
        let ret = match (hdr.index, action) {
            (INTX, sys::VFIO_IRQ_SET_ACTION_MASK) => {
                Self::intx_mask(&st, hdr.start, hdr.count, data).map(|()| 0)
            }
            (INTX, sys::VFIO_IRQ_SET_ACTION_UNMASK) => {
                Self::intx_unmask(&st, hdr.start, hdr.count, data).map(|()| 0)
            }
            (INTX, sys::VFIO_IRQ_SET_ACTION_TRIGGER) => {
                Self::intx_trigger(&mut st, dev, hdr.start, hdr.count, data).map(|()| 0)
            }
            (MSI | MSIX, sys::VFIO_IRQ_SET_ACTION_TRIGGER) => {
                self.msi_trigger(&mut st, dev, hdr.index, hdr.start, hdr.count, data)
            }
            (ERR | REQ, sys::VFIO_IRQ_SET_ACTION_TRIGGER) => {
                let slot = if hdr.index == ERR {
                    &self.err
                } else {
                    &self.req
                };
                Self::trigger_single(slot, hdr.start, hdr.count, data).map(|()| 0)
            }
            // MSI/MSI-X masking is not supported; ERR and REQ only trigger.
            _ => Err(ENOTTY),
        };
        drop(st);
        ret.map(|n| n as isize)
    }

    /// INTx MASK (`vfio_pci_set_intx_mask`); masking by eventfd is not implemented upstream.
    fn intx_mask(st: &IrqState, start: u32, count: u32, data: Data<'_>) -> Result {
        let Mode::Intx(intx) = &st.mode else {
            return Err(EINVAL);
        };
        if start != 0 || count != 1 {
            return Err(EINVAL);
        }
        match data {
            Data::None => {
                intx.mask();
            }
            Data::Bool(b) => {
                if Data::first_bool(b) {
                    intx.mask();
                }
            }
            Data::EventFd(_) => return Err(ENOTTY),
        }
        Ok(())
    }

    /// INTx UNMASK (`vfio_pci_set_intx_unmask`); with an eventfd, attach (fd >= 0) or detach
    /// the unmask eventfd.
    fn intx_unmask(st: &IrqState, start: u32, count: u32, data: Data<'_>) -> Result {
        let Mode::Intx(intx) = &st.mode else {
            return Err(EINVAL);
        };
        if start != 0 || count != 1 {
            return Err(EINVAL);
        }
        match data {
            Data::None => intx.unmask(),
            Data::Bool(b) => {
                if Data::first_bool(b) {
                    intx.unmask();
                }
            }
            Data::EventFd(fds) => {
                let fd = fds.get(0);
                if fd >= 0 {
                    return intx.enable_unmask_eventfd(fd);
                }
                intx.disable_unmask_eventfd();
            }
        }
        Ok(())
    }

    /// INTx TRIGGER (`vfio_pci_set_intx_trigger`): disable with count 0, enable or swap the
    /// eventfd, or signal it (loopback).
    fn intx_trigger(
        st: &mut IrqState,
        dev: &VfioPciDevice,
        start: u32,
        count: u32,
        data: Data<'_>,
    ) -> Result {
        let is_intx = matches!(st.mode, Mode::Intx(_));
        if is_intx && count == 0 && matches!(data, Data::None) {
            st.mode = Mode::None;
            return Ok(());
        }
        if !(is_intx || matches!(st.mode, Mode::None)) || start != 0 || count != 1 {
            return Err(EINVAL);
        }
        if let Data::EventFd(fds) = data {
            let fd = fds.get(0);
            let trigger = if fd >= 0 {
                Some(Arc::new(EventFd::from_fd(fd)?, GFP_KERNEL_ACCOUNT)?)
            } else {
                None
            };
            if let Mode::Intx(intx) = &mut st.mode {
                intx.set_trigger(trigger);
            } else {
                let intx = Intx::enable(dev.pdev(), st.pci_2_3, st.virq_disabled, trigger)?;
                st.mode = Mode::Intx(intx);
            }
            return Ok(());
        }
        let Mode::Intx(intx) = &st.mode else {
            return Err(EINVAL);
        };
        match data {
            Data::Bool(b) if !Data::first_bool(b) => {}
            _ => intx.send(),
        }
        Ok(())
    }

    /// MSI/MSI-X TRIGGER (`vfio_pci_set_msi_trigger`): disable with count 0, enable with
    /// `start + count` vectors or change eventfds, or signal (loopback).
    ///
    /// The loopback of an enabled index (no eventfds, not the count-0 disable) is answered
    /// here; everything else goes to [`Self::msi_trigger_setup`], out of line, whose checks
    /// lead to the same loopback for this case (active, so neither EINVAL applies).
    #[inline]
    fn msi_trigger(
        &self,
        st: &mut IrqState,
        dev: &VfioPciDevice,
        index: u32,
        start: u32,
        count: u32,
        data: Data<'_>,
    ) -> Result<i32> {
        if let Mode::Msi(msi) = &st.mode {
            let loopback = match data {
                Data::EventFd(_) => false,
                Data::None => count != 0,
                Data::Bool(_) => true,
            };
            if loopback && msi.msix() == (index == MSIX) {
                let bools = match data {
                    Data::Bool(b) => Some(b),
                    _ => None,
                };
                msi.loopback(start, count, bools);
                return Ok(0);
            }
        }
        self.msi_trigger_setup(st, dev, index, start, count, data)
    }

    /// The general part of [`Self::msi_trigger`]: disable, enable, eventfd changes, errors.
    #[inline(never)]
    fn msi_trigger_setup(
        &self,
        st: &mut IrqState,
        dev: &VfioPciDevice,
        index: u32,
        start: u32,
        count: u32,
        data: Data<'_>,
    ) -> Result<i32> {
        let msix = index == MSIX;
        let active = matches!(&st.mode, Mode::Msi(m) if m.msix() == msix);
        if active && count == 0 && matches!(data, Data::None) {
            if let Mode::Msi(msi) = core::mem::replace(&mut st.mode, Mode::None) {
                msi.disable(dev, st.nointx);
            }
            self.publish(st);
            return Ok(0);
        }
        if !(active || matches!(st.mode, Mode::None)) {
            return Err(EINVAL);
        }
        if let Data::EventFd(fds) = data {
            if let Mode::Msi(msi) = &mut st.mode {
                return msi.set_block(dev, start, count, fds).map(|()| 0);
            }
            let nvec = start + count;
            let mut msi = match Msi::enable(dev, nvec, msix, st.has_dyn_msix)? {
                Enable::Done(msi) => msi,
                Enable::Short(n) => return Ok(n as i32),
            };
            if !msix {
                // log2 of the vectors, rounded up: the virtual Multiple Message Capable.
                let qmax = u32::BITS - (nvec * 2 - 1).leading_zeros() - 1;
                self.msi_qmax.store(qmax as u8, Ordering::Relaxed);
            }
            let ret = msi.set_block(dev, start, count, fds);
            if ret.is_err() {
                msi.disable(dev, st.nointx);
            } else {
                st.mode = Mode::Msi(msi);
            }
            self.publish(st);
            return ret.map(|()| 0);
        }
        let Mode::Msi(msi) = &st.mode else {
            return Err(EINVAL);
        };
        let bools = match data {
            Data::Bool(b) => Some(b),
            _ => None,
        };
        msi.loopback(start, count, bools);
        Ok(0)
    }

    /// ERR or REQ TRIGGER (`vfio_pci_set_ctx_trigger_single`): at most one eventfd; NONE
    /// signals it (count 1) or releases it (count 0), BOOL signals, EVENTFD sets (-1 clears).
    fn trigger_single(
        slot: &Mutex<Option<EventFd>>,
        start: u32,
        count: u32,
        data: Data<'_>,
    ) -> Result {
        if start != 0 || count > 1 {
            return Err(EINVAL);
        }
        let mut cur = slot.lock();
        match data {
            Data::None => {
                let Some(eventfd) = cur.as_ref() else {
                    return Err(EINVAL);
                };
                if count != 0 {
                    eventfd.signal();
                } else {
                    *cur = None;
                }
                Ok(())
            }
            Data::Bool(b) => {
                if count == 0 {
                    return Err(EINVAL);
                }
                if let (true, Some(eventfd)) = (Data::first_bool(b), cur.as_ref()) {
                    eventfd.signal();
                }
                Ok(())
            }
            Data::EventFd(fds) => {
                if count == 0 {
                    return Err(EINVAL);
                }
                match fds.get(0) {
                    -1 => *cur = None,
                    fd if fd >= 0 => *cur = Some(EventFd::from_fd(fd)?),
                    _ => return Err(EINVAL),
                }
                Ok(())
            }
        }
    }
}
