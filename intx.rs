// SPDX-License-Identifier: GPL-2.0

//! INTx: the legacy, level-triggered interrupt, delivered auto-masked (upstream
//! `vfio_pci_intrs.c` 86-368).
//!
//! Every interrupt masks the line and signals the trigger eventfd; the line stays masked until
//! user space unmasks it (ioctl, config-space DisINTx or the unmask eventfd). Devices with PCI
//! 2.3 INTx masking (`pci_2_3`) share their line: the hard-IRQ handler claims an interrupt only
//! if the device asserts it, masking with DisINTx atomically (`pci_check_and_mask_intx`).
//! Other devices get an exclusive line masked at the irqchip. Unmasking a device that still
//! asserts leaves it masked and signals again instead, so nothing is lost and nothing storms.
//!
//! # Locks
//!
//! The caller serialises configuration under `igate`. [`IntxCtx::state`] is upstream's
//! `irqlock`: an interrupt-disabling spinlock taken by the hard-IRQ handler and by the unmask
//! eventfd's wakeup. No eventfd is signalled while it is held (signalling may run another
//! eventfd wakeup, which may take it).

use core::sync::atomic::{
    AtomicBool,
    Ordering, //
};
use kernel::{
    pci,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        Arc, //
    },
};

use crate::ffi::{
    eventfd::EventFd,
    irq::{
        self,
        DisableUnlazy,
        HardIrq,
        IrqHandler,
        IrqReturn,
        IrqTrigger,
        Registration,
        Virqfd,
        VirqfdHandler, //
    },
    lock::{
        new_spinlock_irqsave,
        SpinLockIrqSave, //
    },
    pci as rawpci,
};

/// The part of the INTx state shared by the ioctls, the hard-IRQ handler and the unmask
/// eventfd (upstream's `vfio_pci_irq_ctx` for index 0 plus `irqlock`).
#[pin_data]
pub(crate) struct IntxCtx {
    /// The device.
    pdev: ARef<pci::Device>,
    /// The INTx line.
    irq: u32,
    /// Whether the device masks INTx with DisINTx (shared line) or at the irqchip (exclusive).
    pci_2_3: bool,
    /// The virtual DisINTx bit: while set, nothing is delivered and unmasking does nothing.
    virq_disabled: AtomicBool,
    /// The trigger as the hard-IRQ handler signals it: without `irqlock` and without a
    /// reference count, replaced with `synchronize_irq` (the same eventfd as `state.trigger`).
    irq_trigger: IrqTrigger,
    /// `irqlock` and what it protects.
    #[pin]
    state: SpinLockIrqSave<IntxState>,
}

/// The state under `irqlock`.
struct IntxState {
    /// The line is masked (by an interrupt, the user or virtual DisINTx).
    masked: bool,
    /// The eventfd that the unmask eventfd's thread signals when the device still asserts;
    /// `None` delivers nothing.
    trigger: Option<Arc<EventFd>>,
}

impl IntxCtx {
    /// Signals the trigger unless virtual DisINTx is set (`vfio_send_intx_eventfd`). The
    /// reference is taken under the lock and signalled after it is dropped.
    fn send(&self) {
        if self.virq_disabled.load(Ordering::Relaxed) {
            return;
        }
        let trigger = self.state.lock().trigger.clone();
        if let Some(trigger) = trigger {
            trigger.signal();
        }
    }

    /// Unmasks unless the device still asserts; returns true when the caller must signal
    /// the trigger instead (`vfio_pci_intx_unmask_handler`). Does not signal itself, as it
    /// also runs inside an eventfd wakeup.
    fn unmask_handler(&self) -> bool {
        let mut st = self.state.lock();
        let mut resend = false;
        if st.masked && !self.virq_disabled.load(Ordering::Relaxed) {
            if self.pci_2_3 {
                resend = !irq::check_and_unmask_intx(&self.pdev);
            } else {
                irq::enable_irq(self.irq);
            }
            st.masked = resend;
        }
        resend
    }

    /// Masks the line if it is not masked yet; returns whether that changed anything
    /// (`__vfio_pci_intx_mask`). Always masks, whether or not the device asserts.
    fn mask(&self) -> bool {
        let mut st = self.state.lock();
        if st.masked {
            return false;
        }
        if self.pci_2_3 {
            rawpci::intx(&self.pdev, false);
        } else {
            irq::disable_irq_nosync(self.irq);
        }
        st.masked = true;
        true
    }
}

/// The hard-IRQ handler (`vfio_intx_handler`).
impl IrqHandler for IntxCtx {
    /// Masks and claims the interrupt under `irqlock`, and signals the trigger after dropping
    /// the lock: its wakeup must not run under `irqlock`, which an unmask eventfd's wakeup
    /// takes. As upstream, the trigger is signalled without a reference of its own
    /// ([`IrqTrigger`]).
    #[inline]
    fn handle(&self, cx: &HardIrq) -> IrqReturn {
        {
            let mut st = self.state.lock();
            if !self.pci_2_3 {
                irq::disable_irq_nosync(self.irq);
            } else if st.masked || !irq::check_and_mask_intx(&self.pdev) {
                // The line may be shared: claim only what this device asserts.
                return IrqReturn::None;
            }
            st.masked = true;
        }
        // As `send`: nothing while virtual DisINTx is set.
        if !self.virq_disabled.load(Ordering::Relaxed) {
            self.irq_trigger.signal(cx);
        }
        IrqReturn::Handled
    }
}

/// The unmask eventfd (QEMU's KVM resamplefd): unmask in the wakeup, signal from a workqueue.
impl VirqfdHandler for IntxCtx {
    fn handler(&self) -> bool {
        self.unmask_handler()
    }

    fn thread(&self) {
        self.send();
    }
}

/// INTx while enabled. Dropping it disables INTx (`vfio_intx_disable`): the unmask eventfd is
/// detached, the handler freed, then `IRQ_DISABLE_UNLAZY` cleared and the trigger released.
pub(crate) struct Intx {
    // Field order is drop order.
    /// The unmask eventfd slot.
    unmask: Pin<KBox<Virqfd<IntxCtx>>>,
    /// The hard-IRQ handler on the INTx line.
    _reg: Registration<IntxCtx>,
    /// `IRQ_DISABLE_UNLAZY` on the line (exclusive lines only).
    _unlazy: Option<DisableUnlazy>,
    /// The shared state.
    ctx: Arc<IntxCtx>,
    /// Another reference to the trigger, for the loopback [`Intx::send`]: the trigger only
    /// changes through `&mut Intx` (under the interrupt configuration mutex, as every loopback
    /// runs), so this copy equals the one under `irqlock` whenever a loopback can read it, and
    /// the loopback needs neither `irqlock` nor a reference count (upstream reads `ctx->trigger`
    /// under the same mutex without `irqlock` too). The hard-IRQ handler signals
    /// `IntxCtx::irq_trigger`, the unmask eventfd's thread the copy under `irqlock`.
    loop_trigger: Option<Arc<EventFd>>,
}

impl Intx {
    /// Enables INTx (`vfio_intx_enable`), masked from the start if virtual DisINTx is set.
    /// `ENODEV` when the device has no INTx line.
    pub(crate) fn enable(
        pdev: &pci::Device,
        pci_2_3: bool,
        virq_disabled: bool,
        trigger: Option<Arc<EventFd>>,
    ) -> Result<Self> {
        let irq = irq::intx_line(pdev).ok_or(ENODEV)?;
        let loop_trigger = trigger.clone();
        let name = CString::try_from_fmt(fmt!("vfio-intx({})", pdev.as_ref().name()))?;
        let masked = virq_disabled;
        let line = irq;
        let ctx = Arc::pin_init(
            pin_init!(IntxCtx {
                pdev: pdev.into(),
                irq,
                pci_2_3,
                virq_disabled: AtomicBool::new(virq_disabled),
                irq_trigger: IrqTrigger::new(line, trigger.clone()),
                state <- new_spinlock_irqsave(
                    IntxState { masked, trigger },
                    c"IntxCtx::state",
                    kernel::static_lock_class!(),
                ),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        let unmask = Virqfd::new(ctx.clone())?;
        // DisINTx devices reflect the mask in DisINTx; others need the line to themselves and
        // are masked at the irqchip, at once (unlazy), and start disabled when masked.
        let flags = if pci_2_3 {
            rawpci::intx(pdev, !virq_disabled);
            irq::IRQF_SHARED
        } else if virq_disabled {
            irq::IRQF_NO_AUTOEN
        } else {
            0
        };
        let unlazy = (!pci_2_3).then(|| DisableUnlazy::set(irq));
        let reg = Registration::new(irq, flags, name, ctx.clone())?;
        Ok(Self {
            unmask,
            _reg: reg,
            _unlazy: unlazy,
            ctx,
            loop_trigger,
        })
    }

    /// Replaces the trigger eventfd (`vfio_intx_set_signal`); once this returns, the old one
    /// is no longer signalled.
    pub(crate) fn set_trigger(&mut self, trigger: Option<Arc<EventFd>>) {
        self.loop_trigger = trigger.clone();
        let old = core::mem::replace(&mut self.ctx.state.lock().trigger, trigger.clone());
        // Waits for running handlers (`synchronize_irq`) when there was a trigger.
        self.ctx.irq_trigger.replace(trigger);
        if old.is_some() {
            self.unmask.flush_thread();
        }
        drop(old);
    }

    /// Signals the trigger as an interrupt would (loopback), unless virtual DisINTx is set.
    pub(crate) fn send(&self) {
        if self.ctx.virq_disabled.load(Ordering::Relaxed) {
            return;
        }
        if let Some(trigger) = &self.loop_trigger {
            trigger.signal();
        }
    }

    /// Masks the line (`__vfio_pci_intx_mask`); returns whether it was unmasked before.
    pub(crate) fn mask(&self) -> bool {
        self.ctx.mask()
    }

    /// Unmasks the line, or signals again if the device still asserts
    /// (`__vfio_pci_intx_unmask`).
    pub(crate) fn unmask(&self) {
        if self.ctx.unmask_handler() {
            self.ctx.send();
        }
    }

    /// Attaches the unmask eventfd `fd` (`EBUSY` if one is attached).
    pub(crate) fn enable_unmask_eventfd(&self, fd: i32) -> Result {
        self.unmask.enable(fd)
    }

    /// Detaches the unmask eventfd, if any.
    pub(crate) fn disable_unmask_eventfd(&self) {
        self.unmask.disable();
    }

    /// Records a change of the virtual DisINTx bit (the caller masks or unmasks).
    pub(crate) fn set_virq_disabled(&self, disabled: bool) {
        self.ctx.virq_disabled.store(disabled, Ordering::Relaxed);
    }
}
