// SPDX-License-Identifier: GPL-2.0

//! Interrupt plumbing: handlers registered on IRQ lines (`request_irq`/`free_irq`), IRQ-line
//! control, PCI INTx masking and MSI/MSI-X vectors, the VFIO core's virqfd (an eventfd whose
//! signal runs a callback) and SET_IRQS header validation, and the AER `error_detected` entry.
//!
//! Policy (which line, when to mask, which eventfd) is decided in safe code (`crate::intx`,
//! `crate::msi`, `crate::irqs`); this module only moves values across the boundary.

use core::{
    marker::PhantomData,
    ptr::null_mut,
    sync::atomic::{
        AtomicPtr,
        Ordering, //
    },
};
use kernel::{
    bindings,
    error::to_result,
    pci,
    prelude::*,
    str::CString,
    sync::Arc,
    types::Opaque, //
};

use super::{
    eventfd::EventFd,
    pci as rawpci,
    sys,
    vfio::Device, //
};

/// `IRQF_SHARED`: the line may be shared with other handlers.
pub(crate) const IRQF_SHARED: u64 = bindings::IRQF_SHARED as u64;
/// `IRQF_NO_AUTOEN`: the line starts disabled (until [`enable_irq`]).
pub(crate) const IRQF_NO_AUTOEN: u64 = bindings::IRQF_NO_AUTOEN as u64;

/// What a hard-IRQ handler did with an interrupt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IrqReturn {
    /// Not ours (shared line): `IRQ_NONE`.
    None,
    /// Handled: `IRQ_HANDLED`.
    Handled,
}

/// A hard-IRQ handler: runs in interrupt context, must not sleep.
pub(crate) trait IrqHandler: Send + Sync {
    /// Handles one interrupt; `cx` says which line it came on.
    fn handle(&self, cx: &HardIrq) -> IrqReturn;
}

/// Proof that the holder runs inside a hard-IRQ handler of line `irq`, which
/// `synchronize_irq(irq)` waits for. Only [`irq_trampoline`] makes one, lent for the call.
pub(crate) struct HardIrq {
    /// The Linux IRQ number being handled.
    irq: u32,
    /// Neither `Send` nor `Sync`: it stays on the handler's stack.
    _not_send: PhantomData<*const ()>,
}

/// An eventfd signalled on every interrupt of its line (the MSI/MSI-X handler).
impl IrqHandler for EventFd {
    fn handle(&self, _cx: &HardIrq) -> IrqReturn {
        self.signal();
        IrqReturn::Handled
    }
}

/// The eventfd that the hard-IRQ handler of one line signals without taking a reference on
/// it (upstream's `READ_ONCE(ctx->trigger)` in `vfio_send_intx_eventfd`): a reference count
/// taken and dropped per interrupt costs helper calls in the hottest path.
///
/// # Invariants
///
/// `ptr` is null or `Arc::into_raw` of an `Arc<EventFd>` that this slot owns. A pointer
/// [`IrqTrigger::replace`] takes out is released only after `synchronize_irq(irq)`, and the
/// only readers without `&mut self` are [`IrqTrigger::signal`] callers, which run in a hard-IRQ
/// handler of `irq` (checked against their [`HardIrq`]).
pub(crate) struct IrqTrigger {
    /// The line whose handlers may signal.
    irq: u32,
    /// The current eventfd, or null.
    ptr: AtomicPtr<EventFd>,
}

impl IrqTrigger {
    /// A slot for handlers of `irq`, holding `trigger`.
    pub(crate) fn new(irq: u32, trigger: Option<Arc<EventFd>>) -> Self {
        // INVARIANT: null or a reference we own.
        Self {
            irq,
            ptr: AtomicPtr::new(Self::into_ptr(trigger)),
        }
    }

    fn into_ptr(trigger: Option<Arc<EventFd>>) -> *mut EventFd {
        trigger.map_or(null_mut(), |t| Arc::into_raw(t).cast_mut())
    }

    /// Signals the current eventfd, if any, from a handler of this slot's line.
    #[inline]
    pub(crate) fn signal(&self, cx: &HardIrq) {
        // A handler of another line is not waited for by `replace`: it gets nothing.
        if cx.irq != self.irq {
            return;
        }
        let ptr = self.ptr.load(Ordering::Acquire);
        if !ptr.is_null() {
            // SAFETY: we run in a handler of `irq` (checked above), and `replace` releases a
            // pointer it took out only after `synchronize_irq(irq)` has waited for such
            // handlers, so this one stays live until we return (type invariant).
            unsafe { (*ptr).signal() };
        }
    }

    /// Publishes `trigger`; once this returns no handler signals the previous eventfd and its
    /// reference has been dropped.
    pub(crate) fn replace(&self, trigger: Option<Arc<EventFd>>) {
        let old = self.ptr.swap(Self::into_ptr(trigger), Ordering::AcqRel);
        if !old.is_null() {
            synchronize_irq(self.irq);
            // SAFETY: `old` came from `Arc::into_raw` and this slot owned it; it is no longer
            // published, and the handlers that could have loaded it have returned.
            drop(unsafe { Arc::from_raw(old) });
        }
    }
}

impl Drop for IrqTrigger {
    fn drop(&mut self) {
        let ptr = *self.ptr.get_mut();
        if !ptr.is_null() {
            // SAFETY: owned by the slot (type invariant); with `&mut self` no handler can be
            // reading it (a registered handler keeps its slot borrowed through its `Arc`).
            drop(unsafe { Arc::from_raw(ptr) });
        }
    }
}

/// A handler registered on an interrupt line.
///
/// # Invariants
///
/// `request_threaded_irq` succeeded for `irq` with `name` and the cookie
/// `Arc::as_ptr(&handler)`; the registration stays live until `drop`, which calls `free_irq`
/// (waiting for running handlers) before `handler` and `name` are released.
pub(crate) struct Registration<T: IrqHandler + 'static> {
    /// The Linux IRQ number.
    irq: u32,
    /// The handler; its address is the cookie.
    handler: Arc<T>,
    /// The name shown in `/proc/interrupts`.
    _name: CString,
}

impl<T: IrqHandler + 'static> Registration<T> {
    /// Registers `handler` on `irq` (`request_irq`) with `IRQF_*` `flags`; `name` shows in
    /// `/proc/interrupts`.
    pub(crate) fn new(irq: u32, flags: u64, name: CString, handler: Arc<T>) -> Result<Self> {
        let cookie = Arc::as_ptr(&handler).cast_mut().cast::<c_void>();
        // SAFETY: the callback matches `irq_handler_t`; `name` (a heap string that does not move
        // with the `CString`) and the handler behind `cookie` are kept by the returned value
        // until `free_irq` in `drop`; on failure nothing stays registered.
        to_result(unsafe {
            bindings::request_threaded_irq(
                irq,
                Some(irq_trampoline::<T>),
                None,
                flags as c_ulong,
                name.as_char_ptr(),
                cookie,
            )
        })?;
        // INVARIANT: registered above with this name and cookie.
        Ok(Self {
            irq,
            handler,
            _name: name,
        })
    }

    /// The registered handler.
    pub(crate) fn handler(&self) -> &Arc<T> {
        &self.handler
    }
}

impl<T: IrqHandler + 'static> Drop for Registration<T> {
    fn drop(&mut self) {
        let cookie = Arc::as_ptr(&self.handler).cast_mut().cast::<c_void>();
        // SAFETY: the handler is registered on `irq` with this cookie (type invariant);
        // `free_irq` waits for running handlers, so none uses it after this returns.
        unsafe { bindings::free_irq(self.irq, cookie) };
    }
}

/// The C handler of every [`Registration`].
///
/// # Safety
///
/// Called by the IRQ core with the cookie of a live [`Registration<T>`].
unsafe extern "C" fn irq_trampoline<T: IrqHandler>(
    irq: c_int,
    cookie: *mut c_void,
) -> bindings::irqreturn_t {
    // SAFETY: the cookie is `Arc::as_ptr` of a handler the registration keeps alive until
    // `free_irq` has returned.
    let handler = unsafe { &*cookie.cast_const().cast::<T>() };
    let cx = HardIrq {
        irq: irq as u32,
        _not_send: PhantomData,
    };
    match handler.handle(&cx) {
        IrqReturn::None => bindings::irqreturn::IRQ_NONE,
        IrqReturn::Handled => bindings::irqreturn::IRQ_HANDLED,
    }
}

/// The legacy INTx line of `pdev`, `None` when it has none (`!pdev->irq` or
/// `IRQ_NOTCONNECTED`).
pub(crate) fn intx_line(pdev: &pci::Device) -> Option<u32> {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; `irq` is a plain field.
    let irq = unsafe { (*rawpci::raw(pdev)).irq };
    (irq != 0 && irq != bindings::IRQ_NOTCONNECTED).then_some(irq)
}

/// Masks `irq` at the irqchip without waiting for running handlers (`disable_irq_nosync`);
/// callable from its own handler.
pub(crate) fn disable_irq_nosync(irq: u32) {
    // SAFETY: any IRQ number is accepted (unknown ones are ignored).
    unsafe { bindings::disable_irq_nosync(irq) }
}

/// Undoes one [`disable_irq_nosync`] (`enable_irq`).
pub(crate) fn enable_irq(irq: u32) {
    // SAFETY: any IRQ number is accepted (unknown ones are ignored).
    unsafe { bindings::enable_irq(irq) }
}

/// Waits until no handler of `irq` runs (`synchronize_irq`).
pub(crate) fn synchronize_irq(irq: u32) {
    // SAFETY: any IRQ number is accepted (unknown ones are ignored).
    unsafe { bindings::synchronize_irq(irq) }
}

/// `IRQ_DISABLE_UNLAZY` set on a line while this value lives, so [`disable_irq_nosync`] masks
/// at the irqchip at once instead of lazily (upstream's exclusive-INTx set-up).
pub(crate) struct DisableUnlazy(u32);

impl DisableUnlazy {
    /// Sets `IRQ_DISABLE_UNLAZY` on `irq` (`irq_set_status_flags`).
    pub(crate) fn set(irq: u32) -> Self {
        // SAFETY: any IRQ number is accepted (unknown ones are ignored).
        unsafe { bindings::irq_modify_status(irq, 0, bindings::IRQ_DISABLE_UNLAZY as c_ulong) };
        Self(irq)
    }
}

impl Drop for DisableUnlazy {
    fn drop(&mut self) {
        // SAFETY: as in `set`; clears the flag set there (`irq_clear_status_flags`).
        unsafe { bindings::irq_modify_status(self.0, bindings::IRQ_DISABLE_UNLAZY as c_ulong, 0) };
    }
}

/// If the device asserts INTx, masks it with DisINTx and returns true, atomically against other
/// config accesses (`pci_check_and_mask_intx`); callable from hard-IRQ context.
pub(crate) fn check_and_mask_intx(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_check_and_mask_intx(rawpci::raw(pdev)) }
}

/// Unless the device asserts INTx, clears DisINTx and returns true; returns false (leaving it
/// masked) while the device asserts (`pci_check_and_unmask_intx`).
pub(crate) fn check_and_unmask_intx(pdev: &pci::Device) -> bool {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_check_and_unmask_intx(rawpci::raw(pdev)) }
}

/// Allocates between `min` and `max` MSI (or MSI-X) vectors and enables MSI (MSI-X) on the
/// device (`pci_alloc_irq_vectors`); returns how many were allocated.
pub(crate) fn alloc_irq_vectors(pdev: &pci::Device, min: u32, max: u32, msix: bool) -> Result<u32> {
    let flags = if msix {
        bindings::PCI_IRQ_MSIX
    } else {
        bindings::PCI_IRQ_MSI
    };
    // SAFETY: `raw(pdev)` is a valid, enabled `pci_dev`.
    let ret = unsafe { bindings::pci_alloc_irq_vectors(rawpci::raw(pdev), min, max, flags) };
    to_result(ret).map(|()| ret as u32)
}

/// Frees every MSI/MSI-X vector and disables MSI/MSI-X (`pci_free_irq_vectors`). No handler
/// may be registered on them.
pub(crate) fn free_irq_vectors(pdev: &pci::Device) {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    unsafe { bindings::pci_free_irq_vectors(rawpci::raw(pdev)) }
}

/// The Linux IRQ number of MSI/MSI-X vector `nr` (`pci_irq_vector`): `EINVAL` when it is not
/// allocated; 0 should not happen.
pub(crate) fn irq_vector(pdev: &pci::Device, nr: u32) -> Result<u32> {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`.
    let ret = unsafe { bindings::pci_irq_vector(rawpci::raw(pdev), nr) };
    to_result(ret).map(|()| ret as u32)
}

/// Allocates MSI-X vector `index` while MSI-X is enabled (`pci_msix_alloc_irq_at`, dynamic
/// MSI-X); returns its Linux IRQ number.
pub(crate) fn msix_alloc_irq_at(pdev: &pci::Device, index: u32) -> Result<u32> {
    // SAFETY: `raw(pdev)` is a valid `pci_dev`; a NULL affinity descriptor is allowed.
    let map = unsafe { bindings::pci_msix_alloc_irq_at(rawpci::raw(pdev), index, null_mut()) };
    to_result(map.index).map(|()| map.virq as u32)
}

/// Rewrites the cached MSI message of `irq` to the device (`get_cached_msi_msg` +
/// `pci_write_msi_msg`), repairing it after a backdoor reset. Memory decode must be on.
pub(crate) fn refresh_msi_msg(irq: u32) {
    // SAFETY: `irq` is an allocated MSI/MSI-X vector of the caller's device.
    unsafe { sys::vpr_msi_refresh_msg(irq) }
}

/// Checks a SET_IRQS header with the VFIO core's helper (argsz, index < `max_irq_type`, start
/// and count within `num_irqs` without overflow, known flag bits, one data type), so the errors
/// are upstream's. Returns the size of the data that follows the header.
pub(crate) fn validate_set_irqs(
    hdr: &mut sys::vfio_irq_set,
    num_irqs: u32,
    max_irq_type: u32,
) -> Result<usize> {
    let mut size = 0usize;
    // SAFETY: `hdr` and `size` are valid for the call; the helper only reads the header's
    // fixed fields.
    to_result(unsafe {
        sys::vfio_set_irqs_validate_and_prepare(
            hdr,
            num_irqs as c_int,
            max_irq_type as c_int,
            &mut size,
        )
    })?;
    Ok(size)
}

/// The callbacks of a [`Virqfd`].
pub(crate) trait VirqfdHandler: Send + Sync {
    /// Runs in the eventfd's wakeup, atomically (the eventfd's wait-queue lock held, interrupts
    /// off); must not signal an eventfd. Returns whether [`VirqfdHandler::thread`] should run.
    fn handler(&self) -> bool;

    /// Runs from a workqueue after [`VirqfdHandler::handler`] returned true.
    fn thread(&self);
}

/// An eventfd whose signal runs callbacks (the VFIO core's `virqfd`), one at a time.
///
/// # Invariants
///
/// `pvirqfd` is the `struct virqfd *` slot that the VFIO core's virqfd code owns while it is
/// non-NULL (it updates it under its own lock, also when the eventfd is closed). Every virqfd
/// registered on it has `Arc::as_ptr(&data)` as its opaque pointer; `data` is kept until
/// `drop`, which disables the slot and waits for the core's clean-up work first.
#[pin_data(PinnedDrop)]
pub(crate) struct Virqfd<T: VirqfdHandler + 'static> {
    /// The `struct virqfd *` slot.
    #[pin]
    pvirqfd: Opaque<*mut sys::virqfd>,
    /// What the callbacks get.
    data: Arc<T>,
}

// SAFETY: `pvirqfd` is only touched by the VFIO core under its lock; `T` is `Send + Sync`.
unsafe impl<T: VirqfdHandler + 'static> Send for Virqfd<T> {}
// SAFETY: as above; every method may run concurrently (the core serialises on its lock).
unsafe impl<T: VirqfdHandler + 'static> Sync for Virqfd<T> {}

impl<T: VirqfdHandler + 'static> Virqfd<T> {
    /// An unused slot whose callbacks will get `data`.
    pub(crate) fn new(data: Arc<T>) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(Self {
                pvirqfd: Opaque::new(null_mut()),
                data,
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Attaches the eventfd `fd` (`vfio_virqfd_enable`): `EBUSY` if one is attached, `EBADF`
    /// or `EINVAL` for a bad fd. An event already pending runs the callbacks at once.
    pub(crate) fn enable(&self, fd: i32) -> Result {
        let opaque = Arc::as_ptr(&self.data).cast_mut().cast::<c_void>();
        // SAFETY: `pvirqfd` is pinned and stays valid until `drop` disables it; the callbacks
        // match the C prototypes and get `opaque`, which `data` keeps alive (type invariant).
        to_result(unsafe {
            sys::vfio_virqfd_enable(
                opaque,
                Some(virqfd_handler::<T>),
                Some(virqfd_thread::<T>),
                null_mut(),
                self.pvirqfd.get(),
                fd,
            )
        })
    }

    /// Detaches the eventfd, if any, and waits until its callbacks are done
    /// (`vfio_virqfd_disable`).
    pub(crate) fn disable(&self) {
        // SAFETY: `pvirqfd` is valid and owned by the VFIO core's virqfd code (type invariant).
        unsafe { sys::vfio_virqfd_disable(self.pvirqfd.get()) }
    }

    /// Waits for a scheduled [`VirqfdHandler::thread`] to finish (`vfio_virqfd_flush_thread`).
    pub(crate) fn flush_thread(&self) {
        // SAFETY: as in `disable`.
        unsafe { sys::vfio_virqfd_flush_thread(self.pvirqfd.get()) }
    }
}

#[pinned_drop]
impl<T: VirqfdHandler + 'static> PinnedDrop for Virqfd<T> {
    fn drop(self: Pin<&mut Self>) {
        self.disable();
    }
}

/// The C `handler` of every [`Virqfd`].
///
/// # Safety
///
/// Called by the VFIO core with the opaque pointer given in [`Virqfd::enable`].
unsafe extern "C" fn virqfd_handler<T: VirqfdHandler>(
    opaque: *mut c_void,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: `opaque` points to a `T` the `Virqfd` keeps alive while registered.
    let data = unsafe { &*opaque.cast_const().cast::<T>() };
    c_int::from(data.handler())
}

/// The C `thread` of every [`Virqfd`].
///
/// # Safety
///
/// As [`virqfd_handler`].
unsafe extern "C" fn virqfd_thread<T: VirqfdHandler>(opaque: *mut c_void, _data: *mut c_void) {
    // SAFETY: `opaque` points to a `T` the `Virqfd` keeps alive while registered.
    let data = unsafe { &*opaque.cast_const().cast::<T>() };
    data.thread();
}

/// AER `error_detected` of a bound device (called from the C `pci_error_handlers`).
///
/// # Safety
///
/// `vdev` is the registered device of a bound `pci_dev` (its drvdata), live for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn vpr_error_detected(vdev: *mut sys::vfio_device) {
    // SAFETY: guaranteed by the caller.
    let dev = unsafe { Device::from_vfio(vdev) };
    dev.data().irqs().error_detected();
}
