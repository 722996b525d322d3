// SPDX-License-Identifier: GPL-2.0

//! The state of one bound device and the VFIO operations on it: open/close, device, region and
//! IRQ info, reset, read/write dispatch, mmap and faults.
//!
//! # Locks
//!
//! Order, written once: `mmap_lock -> memory`; `dev_set -> open -> memory`;
//! `open -> igate -> memory`; `ioeventfds -> memory`;
//! `config access block -> device lock -> memory`; no user copy under `memory`, and nothing
//! under it waits for the config access block (no user config accessor runs under it) or the
//! device lock (resets only try it).
//! - `dev_set` (the VFIO core's device-set mutex): held by the core around `open_device` and
//!   `close_device`, and by hot reset (`reset.rs`), which only tries each member's `memory`.
//! - `open` (mutex): per-open state (saved config state, reset ability, config space).
//! - `igate` (mutex, in `irqs`): interrupt configuration (SET_IRQS, virtual DisINTx from the
//!   config space, teardown at close); MSI/MSI-X vector set-up takes `memory` for write under it.
//! - `memory` (rw-semaphore, upstream's `memory_lock`): whether BARs may be accessed (virtual
//!   COMMAND.MEM, power state) and the BAR mappings. Readers: faults and each single read/write
//!   access. Writers: everything that turns decode off, resets the device or changes the BARs;
//!   those zap every user mapping right after taking it, before touching the hardware (a
//!   COMMAND write records decode off under it, then touches the hardware: `config_hw.rs`).
//! - `ioeventfds` (mutex, `ioeventfd.rs`): the ioeventfd list; removing one waits for its BAR
//!   write, which takes `memory` for read (only tried, in the eventfd's wakeup).
//! - The PCI core's config access block and device lock (`pci_dev_lock`): held by whoever
//!   resets the device, around `reset_prepare` and `reset_done`, which take `memory` unless
//!   the reset is the driver's own ([`OwnReset`]): those hold `memory` and only try the PCI
//!   core's locks (`pci_try_reset_function`, `pci_reset_bus`).

use core::sync::atomic::{
    AtomicBool,
    AtomicPtr,
    Ordering, //
};
use kernel::{bindings, pci, prelude::*, sync::aref::ARef, task::Task};

use crate::{
    config_hw::{
        from_errno,
        ConfigHw, //
    },
    config_space::{
        BarResource,
        ConfigSpace,
        DeviceFacts, //
    },
    fault::{
        self,
        FaultCounters,
        FaultOutcome,
        FaultRequest, //
    },
    feature::Features,
    ffi::{
        devset::DevSet,
        eventfd::EventFd,
        io::{
            BarMap,
            PortBars, //
        },
        lock::{
            new_mutex,
            Mutex, //
        },
        mm::{
            self as ffimm,
            NewBarVma, //
        },
        pci::{
            self as rawpci,
            SavedState,
            SubpageReservation, //
        },
        rwsem::{
            ReadGuard,
            RwSem,
            WriteGuard, //
        },
        sys, user,
        vfio::{
            CapChain,
            Device, //
        },
    },
    ioeventfd::Ioeventfds,
    irqs::Irqs,
    mmap::{
        self,
        MmapBars,
        MmapRequest, //
    },
    rdwr,
    regions::{
        self,
        MsixTable, //
    },
    reset,
};

const PCI_COMMAND: u16 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 0x2;
const PCI_COMMAND_INTX_DISABLE: u16 = 0x400;
const PCI_MSI_FLAGS: u16 = 2;
const PCI_MSIX_FLAGS: u16 = 2;
const PCI_MSIX_TABLE: u16 = 4;
/// `PCI_D0`, the fully powered state.
pub(crate) const PCI_D0: i32 = 0;
const PCI_D3HOT: i32 = 3;
const PAGE_SIZE: u64 = 4096;

/// ioctl numbers: `_IO(VFIO_TYPE, VFIO_BASE + n)`.
const fn vfio_ioctl(n: u32) -> u32 {
    kernel::ioctl::_IO(b';' as u32, 100 + n)
}
const VFIO_DEVICE_GET_INFO: u32 = vfio_ioctl(7);
const VFIO_DEVICE_GET_IRQ_INFO: u32 = vfio_ioctl(9);
const VFIO_DEVICE_SET_IRQS: u32 = vfio_ioctl(10);
const VFIO_DEVICE_RESET: u32 = vfio_ioctl(11);
const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u32 = vfio_ioctl(12);
const VFIO_DEVICE_PCI_HOT_RESET: u32 = vfio_ioctl(13);
const VFIO_DEVICE_IOEVENTFD: u32 = vfio_ioctl(16);

/// What a BAR slot holds while the device is open (upstream's `barmap[]`).
type BarSlot = Result<BarMap>;

/// State guarded by the memory lock.
pub(crate) struct MemoryState {
    /// BARs claimed at open (memory BARs are mapped on first access, see `BarMap`); `ENODEV`
    /// for empty BARs and while closed.
    bars: [BarSlot; 6],
    /// Location of the MSI-X table, if any.
    msix: Option<MsixTable>,
    /// Config state saved on entering D3hot, for devices that lose it (upstream `pm_save`).
    pm_save: Option<SavedState>,
    /// Low power allowed by the user (`VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY`, upstream
    /// `pm_runtime_engaged`): faults answer SIGBUS until exit.
    pm_engaged: bool,
    /// The wake-up eventfd given with the entry (upstream `pm_wake_eventfd_ctx`).
    pm_wake: Option<EventFd>,
    /// Someone else is resetting the device (between the PCI core's `reset_prepare` and
    /// `reset_done`): its decode is off, so BAR access fails and faults answer SIGBUS.
    reset_hold: bool,
}

impl MemoryState {
    fn closed() -> Self {
        Self {
            bars: [
                Err(ENODEV),
                Err(ENODEV),
                Err(ENODEV),
                Err(ENODEV),
                Err(ENODEV),
                Err(ENODEV),
            ],
            msix: None,
            pm_save: None,
            pm_engaged: false,
            pm_wake: None,
            reset_hold: false,
        }
    }

    /// The claimed BAR, or the error that claiming (for an I/O-port BAR, mapping) it failed
    /// with at open.
    pub(crate) fn bar(&self, bar: u32) -> Result<&BarMap> {
        match self.bars.get(bar as usize) {
            Some(Ok(map)) => Ok(map),
            Some(Err(e)) => Err(*e),
            None => Err(EINVAL),
        }
    }

    /// Location of the MSI-X table, if any.
    pub(crate) fn msix(&self) -> Option<MsixTable> {
        self.msix
    }

    /// Whether low power is engaged (faults answer SIGBUS).
    pub(crate) fn pm_engaged(&self) -> bool {
        self.pm_engaged
    }

    /// Engages low power with an optional wake-up eventfd; `EINVAL` if already engaged.
    pub(crate) fn pm_engage(&mut self, wake: Option<EventFd>) -> Result {
        if self.pm_engaged {
            return Err(EINVAL);
        }
        self.pm_engaged = true;
        self.pm_wake = wake;
        Ok(())
    }

    /// Leaves low power; returns the wake-up eventfd for the caller to drop.
    pub(crate) fn pm_disengage(&mut self) -> Option<EventFd> {
        self.pm_engaged = false;
        self.pm_wake.take()
    }
}

/// State that exists while the device is open.
struct OpenState {
    /// Whether a function reset worked at open (`VFIO_DEVICE_FLAGS_RESET`).
    reset_works: bool,
    /// Config state saved at open, restored at close.
    saved: Option<SavedState>,
    /// Dummy resources behind page-aligned sub-page BARs.
    subpages: KVec<SubpageReservation>,
    /// Whether INTx masking (PCI 2.3) is used.
    pci_2_3: bool,
    /// The virtual INTx-disable bit (upstream's `virq_disabled`).
    virq_disabled: bool,
    /// The virtual config space.
    config: KBox<ConfigSpace>,
}

/// The driver's state of one bound device.
#[pin_data]
pub(crate) struct VfioPciDevice {
    pdev: ARef<pci::Device>,
    #[pin]
    memory: RwSem<MemoryState>,
    /// The I/O-port BARs of the open device, for read/write without the memory lock.
    port_bars: PortBars,
    /// Which BARs may be mmapped, for `mmap` and region info without the memory lock.
    mmap_bars: MmapBars,
    /// The memory-enable state that gates faults and BAR access: the config model's
    /// `memory_enabled` (virtual COMMAND.MEM; upstream tests vconfig, not hardware). Changed
    /// only with the memory lock held for write, by open, close and COMMAND writes (under
    /// `open`, so never concurrently); read under the memory lock, or without it by the
    /// COMMAND writer, whom nobody else can change it under.
    decode: AtomicBool,
    /// The device's memory decode does not follow COMMAND.MEM (a VF), latched at probe.
    no_command_memory: bool,
    /// The start of each BAR, latched at probe: a bound device's BARs are neither moved nor
    /// resized (sysfs `resourceN_resize` answers EBUSY while a driver is bound, and this
    /// driver resizes none), so `mmap` and faults need no resource lookup.
    bar_start: [u64; 6],
    /// The size of each BAR, latched at probe as [`Self::bar_start`].
    bar_len: [u64; 6],
    #[pin]
    open: Mutex<Option<OpenState>>,
    /// Interrupt configuration (`igate` and what it guards).
    #[pin]
    irqs: Irqs,
    /// `VFIO_DEVICE_IOEVENTFD` registrations.
    #[pin]
    ioeventfds: Ioeventfds,
    /// `VFIO_DEVICE_FEATURE` state.
    #[pin]
    features: Features,
    counters: FaultCounters,
    /// The device loses its config state on D3hot->D0 (PMCSR NoSoftRst clear).
    needs_pm_restore: bool,
    /// The `nointxmask` parameter, latched at probe as upstream does.
    nointxmask: bool,
    /// The last close could not reset the function: a slot or bus reset of the unused set is
    /// still owed (upstream `needs_reset`). Changed only under the device set's mutex.
    needs_reset: AtomicBool,
    /// The task running one of the driver's own resets of the device, which holds what the
    /// reset needs, so the PCI core's `reset_prepare` and `reset_done` calls it causes leave
    /// the memory lock alone ([`OwnReset`]); NULL otherwise.
    reset_owner: AtomicPtr<bindings::task_struct>,
    /// The virtual interrupt pin is set (the INTx count `irq_count(0)` reports): latched at open
    /// from the virtual config space, where the pin is read-only, and cleared at close, so the
    /// SET_IRQS and GET_IRQ_INFO paths need not take `open` for it (upstream reads
    /// `vconfig[PCI_INTERRUPT_PIN]` unlocked).
    intx_pin: AtomicBool,
}

/// One of the driver's own resets of a device in progress on the current task (see
/// [`VfioPciDevice::own_reset`]); ends on drop.
pub(crate) struct OwnReset<'a>(&'a AtomicPtr<bindings::task_struct>);

impl Drop for OwnReset<'_> {
    fn drop(&mut self) {
        self.0.store(core::ptr::null_mut(), Ordering::Relaxed);
    }
}

/// Answer of a region-info query.
pub(crate) struct RegionInfo {
    /// File offset of the region.
    pub(crate) offset: u64,
    /// Size in bytes.
    pub(crate) size: u64,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub(crate) flags: u32,
}

/// Devices whose INTx masking is broken (upstream's `vfio_pci_nointx`): i40e and X550.
fn nointx_quirk(vendor: u16, device: u16) -> bool {
    vendor == 0x8086
        && matches!(device, 0x1572 | 0x1574 | 0x1580..=0x1581 | 0x1583..=0x158b | 0x37d0..=0x37d2 | 0x1563)
}

impl VfioPciDevice {
    /// Refuses devices this driver must not take: anything but a type-0 (endpoint) header.
    pub(crate) fn check_probe(pdev: &pci::Device) -> Result {
        crate::params::check_denylist(pdev)?;
        let hdr = rawpci::hdr_type(pdev) & 0x7f;
        if hdr != 0 {
            dev_warn!(
                pdev.as_ref(),
                "vfio_pci_rs: refusing to bind: header type {} is not a type-0 endpoint (bridge?)\n",
                hdr
            );
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Creates the state of a device being probed.
    pub(crate) fn new(pdev: &pci::Device) -> impl PinInit<Self, Error> + '_ {
        try_pin_init!(Self {
            pdev: pdev.into(),
            memory <- RwSem::new(MemoryState::closed()),
            port_bars: PortBars::new(),
            mmap_bars: MmapBars::default(),
            decode: AtomicBool::new(false),
            no_command_memory: rawpci::no_command_memory(pdev),
            bar_start: core::array::from_fn(|bar| rawpci::resource_start(pdev, bar as u32)),
            bar_len: core::array::from_fn(|bar| rawpci::resource_len(pdev, bar as u32)),
            open <- new_mutex(None, c"VfioPciDevice::open", kernel::static_lock_class!()),
            irqs <- Irqs::new(),
            ioeventfds <- Ioeventfds::new(),
            features <- Features::new(),
            counters: FaultCounters::default(),
            needs_pm_restore: rawpci::pm_no_soft_reset(pdev) == Some(false),
            nointxmask: crate::params::nointxmask(),
            needs_reset: AtomicBool::new(false),
            reset_owner: AtomicPtr::new(core::ptr::null_mut()),
            intx_pin: AtomicBool::new(false),
        })
    }

    /// Called once the device is registered with the VFIO core.
    pub(crate) fn probed(&self) {
        dev_info!(self.pdev.as_ref(), "vfio_pci_rs: bound\n");
    }

    /// Called when the device is being unbound.
    pub(crate) fn removing(&self) {
        dev_info!(self.pdev.as_ref(), "vfio_pci_rs: unbinding\n");
    }

    /// The PCI device.
    pub(crate) fn pdev(&self) -> &pci::Device {
        &self.pdev
    }

    /// Where BAR `bar` starts (0 when unassigned or not a BAR), as latched at probe: every
    /// user of a BAR's place asks here, not the PCI core.
    #[inline]
    pub(crate) fn bar_start(&self, bar: u32) -> u64 {
        self.bar_start.get(bar as usize).copied().unwrap_or(0)
    }

    /// The size of BAR `bar` (0 when absent or not a BAR), as latched at probe.
    #[inline]
    pub(crate) fn bar_len(&self, bar: u32) -> u64 {
        self.bar_len.get(bar as usize).copied().unwrap_or(0)
    }

    /// The interrupt state.
    pub(crate) fn irqs(&self) -> &Irqs {
        &self.irqs
    }

    /// The `VFIO_DEVICE_FEATURE` state.
    pub(crate) fn features(&self) -> &Features {
        &self.features
    }

    /// The I/O-port BARs that read/write may access without the memory lock.
    #[inline]
    pub(crate) fn port_bars(&self) -> &PortBars {
        &self.port_bars
    }

    /// Takes the memory lock for read.
    pub(crate) fn memory_read(&self) -> ReadGuard<'_, MemoryState> {
        self.memory.read()
    }

    /// Takes the memory lock for read if it is free of writers, without sleeping.
    pub(crate) fn memory_try_read(&self) -> Option<ReadGuard<'_, MemoryState>> {
        self.memory.try_read()
    }

    /// Takes the memory lock for write, then zaps every user mapping of the BARs: no fault can
    /// re-install a PFN before the caller changes the hardware and drops the lock.
    pub(crate) fn zap_and_write_memory(&self, dev: &Device) -> WriteGuard<'_, MemoryState> {
        let guard = self.memory.write();
        self.zap_bars(dev);
        guard
    }

    /// Zaps every user mapping of the BARs (the caller holds the memory lock for write).
    fn zap_bars(&self, dev: &Device) {
        ffimm::zap_range(dev, 0, regions::index_to_offset(regions::ROM));
        FaultCounters::bump(&self.counters.zap);
    }

    /// Whether memory BARs may be touched now (upstream `__vfio_pci_memory_enabled`): virtual
    /// MEM on, nobody else resetting the device and the device in D0-D2. `mem` proves the
    /// memory lock is held.
    pub(crate) fn memory_accessible(&self, mem: &MemoryState) -> bool {
        self.decode.load(Ordering::Relaxed)
            && !mem.reset_hold
            && rawpci::current_state(self.pdev()) < PCI_D3HOT
    }

    /// The memory-enable state (see the field); exact under the memory lock or `open`.
    pub(crate) fn decode_enabled(&self) -> bool {
        self.decode.load(Ordering::Relaxed)
    }

    /// Whether the device's memory decode ignores COMMAND.MEM (a VF).
    pub(crate) fn no_command_memory(&self) -> bool {
        self.no_command_memory
    }

    /// Records the memory-enable state, taking the memory lock for write (so that no fault or
    /// BAR access is between its check and its access).
    pub(crate) fn set_decode(&self, enabled: bool) {
        let _mem = self.memory.write();
        self.decode.store(enabled, Ordering::Relaxed);
    }

    /// As [`Self::set_decode`], zapping every user mapping of the BARs first.
    pub(crate) fn zap_and_set_decode(&self, dev: &Device, enabled: bool) {
        let _mem = self.zap_and_write_memory(dev);
        self.decode.store(enabled, Ordering::Relaxed);
    }

    /// Marks the current task as running one of the driver's own resets of the device until
    /// the returned value is dropped. The caller holds the memory lock for write (after a zap)
    /// or, at open, nothing can map or access the BARs yet.
    pub(crate) fn own_reset(&self) -> OwnReset<'_> {
        self.reset_owner
            .store(Task::current_raw(), Ordering::Relaxed);
        OwnReset(&self.reset_owner)
    }

    /// One of the driver's own function resets (`pci_try_reset_function`, `EAGAIN` when
    /// contended), marked as such for the PCI core's callbacks ([`Self::own_reset`]). The
    /// caller holds the memory lock for write after a zap, or, at open, nothing can map or
    /// access the BARs yet.
    pub(crate) fn own_function_reset(&self) -> Result {
        let _own = self.own_reset();
        rawpci::try_reset_function(self.pdev())
    }

    /// Whether the PCI core's reset callbacks run inside one of the driver's own resets.
    fn in_own_reset(&self) -> bool {
        core::ptr::eq(
            self.reset_owner.load(Ordering::Relaxed),
            Task::current_raw(),
        )
    }

    /// The PCI core is about to reset the device (`pci_error_handlers.reset_prepare`, with the
    /// device lock and the config access block held). Unless the reset is the driver's own, zap
    /// every mapping and hold off BAR access and faults until [`Self::reset_done`], as the
    /// driver's own resets do; bring the device to D0 first, so a NoSoftRst- device gets its
    /// saved state back (the PCI core's own D0 transition would not restore it). Upstream has
    /// no reset callbacks: its mappings stay live while the reset turns decode off.
    pub(crate) fn reset_prepare(&self, dev: &Device) {
        if self.in_own_reset() {
            return;
        }
        let mut mem = self.zap_and_write_memory(dev);
        let _ = self.set_power_state(&mut mem, PCI_D0);
        mem.reset_hold = true;
    }

    /// The PCI core has reset the device and restored its config state
    /// (`pci_error_handlers.reset_done`): BAR access and faults may go on.
    pub(crate) fn reset_done(&self) {
        if self.in_own_reset() {
            return;
        }
        self.memory.write().reset_hold = false;
    }

    /// Changes the power state with the memory lock held for write (upstream
    /// `vfio_pci_set_power_state`): devices that reset themselves on D3hot->D0 (NoSoftRst-)
    /// get their config state saved on the way down and restored on the way up.
    pub(crate) fn set_power_state(&self, mem: &mut MemoryState, state: i32) -> Result {
        let pdev = self.pdev();
        let current = rawpci::current_state(pdev);
        let needs_save = self.needs_pm_restore && current < PCI_D3HOT && state >= PCI_D3HOT;
        let needs_restore = self.needs_pm_restore && current >= PCI_D3HOT && state <= PCI_D0;
        if needs_save {
            rawpci::save_state(pdev);
        }
        rawpci::set_power_state(pdev, state)?;
        if needs_save && rawpci::current_state(pdev) >= PCI_D3HOT {
            mem.pm_save = SavedState::store(pdev);
        } else if needs_restore {
            if let Some(saved) = mem.pm_save.take() {
                let _ = saved.load_and_free(pdev);
            }
            rawpci::restore_state(pdev);
        }
        Ok(())
    }

    /// As [`Self::zap_and_write_memory`], but gives up instead of waiting for the lock.
    pub(crate) fn try_zap_and_write_memory(
        &self,
        dev: &Device,
    ) -> Option<WriteGuard<'_, MemoryState>> {
        let guard = self.memory.try_write()?;
        self.zap_bars(dev);
        Some(guard)
    }

    /// Whether a slot or bus reset is still owed since the last close.
    pub(crate) fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::Relaxed)
    }

    /// Records whether a slot or bus reset is owed (under the device set's mutex).
    pub(crate) fn set_needs_reset(&self, owed: bool) {
        self.needs_reset.store(owed, Ordering::Relaxed);
    }

    /// Takes the memory lock for write without zapping (decode is not turned off).
    pub(crate) fn write_memory(&self) -> WriteGuard<'_, MemoryState> {
        self.memory.write()
    }

    /// `open_device`: enable, reset, save state, map BARs (upstream `vfio_pci_core_enable`).
    pub(crate) fn open_device(&self, dev: &Device) -> Result {
        let pdev = self.pdev();
        // Don't let the saved state include bus mastering.
        rawpci::clear_master(pdev);
        rawpci::enable_device(pdev)?;
        // Nothing maps or accesses the BARs before open returns.
        let reset = self.own_function_reset();
        if reset == Err(EAGAIN) {
            rawpci::disable_device(pdev);
            return Err(EAGAIN);
        }
        rawpci::save_state(pdev);
        let saved = SavedState::store(pdev);
        if saved.is_none() {
            dev_dbg!(pdev.as_ref(), "vfio_pci_rs: couldn't store saved state\n");
        }

        let mut pci_2_3 = false;
        let nointx = !self.nointxmask && nointx_quirk(pdev.vendor_id().as_raw(), pdev.device_id());
        if self.nointxmask {
            // No DisINTx masking: INTx takes an exclusive line masked at the irqchip.
        } else if nointx {
            dev_info!(pdev.as_ref(), "Masking broken INTx support\n");
            rawpci::intx(pdev, false);
        } else {
            pci_2_3 = rawpci::intx_mask_supported(pdev);
        }
        let cmd = rawpci::read_config_word(pdev, PCI_COMMAND);
        if pci_2_3 && cmd & PCI_COMMAND_INTX_DISABLE != 0 {
            rawpci::write_config_word(pdev, PCI_COMMAND, cmd & !PCI_COMMAND_INTX_DISABLE);
        }
        self.irqs.open(
            pci_2_3,
            nointx,
            rawpci::msix_cap(pdev) != 0 && rawpci::msix_can_alloc_dyn(pdev),
        );

        let mut virq_disabled = false;
        let config = match self.init_config(dev, pci_2_3, &mut virq_disabled) {
            Ok(config) => config,
            Err(e) => {
                drop(saved);
                rawpci::disable_device(pdev);
                return Err(e);
            }
        };

        let msix = match rawpci::msix_cap(pdev) {
            0 => None,
            pos => {
                let pos = u16::from(pos);
                Some(MsixTable::from_cap(
                    rawpci::read_config_word(pdev, pos + PCI_MSIX_FLAGS),
                    rawpci::read_config_dword(pdev, pos + PCI_MSIX_TABLE),
                ))
            }
        };

        let mut subpages = KVec::new();
        let (mut mappable, mut claimed) = (0u8, 0u8);
        {
            let mut mem = self.memory.write();
            self.decode
                .store(config.memory_enabled(), Ordering::Relaxed);
            mem.msix = msix;
            let non_mappable = rawpci::non_mappable_bars(pdev);
            for bar in 0..6u32 {
                let (start, len) = (self.bar_start(bar), self.bar_len(bar));
                let slot = &mut mem.bars[bar as usize];
                *slot = if non_mappable || len == 0 {
                    Err(ENODEV)
                } else {
                    BarMap::new(pdev, bar, start, len).map_err(|e| {
                        if e == ENOMEM {
                            ENOMEM
                        } else {
                            EBUSY
                        }
                    })
                };
                // An I/O-port BAR clear of the MSI-X table needs no lock (rdwr.rs).
                if let Ok(map) = slot {
                    if msix.is_none_or(|t| t.bar != bar) {
                        self.port_bars.publish(bar, map);
                    }
                }
                // Which BARs may be mmapped (upstream `vfio_pci_probe_mmaps`).
                let flags = rawpci::resource_flags(pdev, bar);
                let is_mem = flags & u64::from(bindings::IORESOURCE_MEM) != 0;
                let ok = if non_mappable || !is_mem || len == 0 {
                    false
                } else if len >= PAGE_SIZE {
                    true
                } else if start & (PAGE_SIZE - 1) == 0 {
                    match SubpageReservation::new(pdev, bar) {
                        Some(res) => subpages.push(res, GFP_KERNEL_ACCOUNT).is_ok(),
                        None => false,
                    }
                } else {
                    false
                };
                mappable |= u8::from(ok) << bar;
                claimed |= u8::from(mem.bars[bar as usize].is_ok()) << bar;
            }
        }
        self.mmap_bars.publish(mappable, claimed);

        self.intx_pin
            .store(config.intx_pin() != 0, Ordering::Relaxed);
        *self.open.lock() = Some(OpenState {
            reset_works: reset.is_ok(),
            saved,
            subpages,
            pci_2_3,
            virq_disabled,
            config,
        });
        Ok(())
    }

    /// Builds the virtual config space from the device (upstream `vfio_config_init`).
    fn init_config(
        &self,
        dev: &Device,
        pci_2_3: bool,
        virq_disabled: &mut bool,
    ) -> Result<KBox<ConfigSpace>> {
        let pdev = self.pdev();
        let mut bars = [BarResource::default(); 6];
        for (bar, res) in (0u32..).zip(bars.iter_mut()) {
            let flags = rawpci::resource_flags(pdev, bar);
            *res = BarResource {
                start: self.bar_start(bar),
                len: self.bar_len(bar),
                io: flags & u64::from(bindings::IORESOURCE_IO) != 0,
                prefetch: flags & u64::from(bindings::IORESOURCE_PREFETCH) != 0,
                mem64: flags & u64::from(bindings::IORESOURCE_MEM_64) != 0,
            };
        }
        let facts = DeviceFacts {
            cfg_size: rawpci::cfg_size(pdev),
            vendor: pdev.vendor_id().as_raw(),
            device: pdev.device_id(),
            is_virtfn: rawpci::is_virtfn(pdev),
            no_command_memory: self.no_command_memory,
            nointx: nointx_quirk(pdev.vendor_id().as_raw(), pdev.device_id()),
            irq_present: rawpci::has_intx_line(pdev),
            pcie_flags: rawpci::pcie_flags(pdev),
            bars,
            rom_start: rawpci::resource_start(pdev, regions::ROM),
            rom_len: rawpci::resource_len(pdev, regions::ROM),
            shadow_rom_len: rawpci::shadow_rom_len(pdev),
        };
        let mut config = KBox::init(pin_init::zeroed::<ConfigSpace>(), GFP_KERNEL_ACCOUNT)?;
        let mut hw = ConfigHw::new(self, dev, pci_2_3, virq_disabled);
        config.init(&facts, &mut hw).map_err(from_errno)?;
        Ok(config)
    }

    /// `close_device`: undo open and leave the device reset and disabled (upstream
    /// `vfio_pci_core_disable`).
    pub(crate) fn close_device(&self, dev: &Device) {
        let pdev = self.pdev();
        let Some(state) = self.open.lock().take() else {
            return;
        };
        self.intx_pin.store(false, Ordering::Relaxed);
        // Low power ends with the last user (upstream `vfio_pci_runtime_pm_exit` here).
        self.low_power_exit();
        let _ = self.set_power_state(&mut self.memory.write(), PCI_D0);
        // Stop the device from further DMA.
        rawpci::clear_master(pdev);
        self.irqs.disable_all(self);
        // The ERR and REQ eventfds go with the other interrupts, before the reset (upstream drops
        // them after it): whatever runs after the reset's last sleep adds to the close's latency,
        // and nobody holds the device to hear an error raised by its own close.
        self.irqs.clear_err_req();
        // No ioeventfd writes past this point (the BARs are unmapped below).
        self.ioeventfds.clear();
        {
            // No user mapping can exist: every VMA holds the device file open.
            let mut mem = self.memory.write();
            self.port_bars.clear();
            self.mmap_bars.clear();
            self.decode.store(false, Ordering::Relaxed);
            // A reset by someone else may be under way (its `reset_done` ends the hold).
            let reset_hold = mem.reset_hold;
            *mem = MemoryState::closed();
            mem.reset_hold = reset_hold;
        }
        // Freed before the reset, as upstream frees its vconfig: whatever runs after the
        // reset's last sleep adds to the latency of the client's close.
        drop(state.subpages);
        drop(state.config);
        // Whether the set is unused and another member owes a slot or bus reset, asked before
        // the reset for the same reason: the members, the open count and the debts change only
        // under the set's mutex, which the VFIO core holds across `close_device`.
        // SAFETY: the VFIO core calls `close_device` with the device set's mutex held.
        let set = unsafe { DevSet::held_by_core(dev) };
        let unused = reset::unused_at_close(&set);
        let owed_elsewhere = unused && reset::owed_by_other_member(&set, dev);

        // Owed until a function reset below succeeds.
        self.set_needs_reset(true);
        let mut reset_possible = true;
        if let Some(saved) = state.saved {
            if saved.load_and_free(pdev).is_err() {
                dev_info!(pdev.as_ref(), "vfio_pci_rs: couldn't reload saved state\n");
                if !state.reset_works {
                    reset_possible = false;
                } else {
                    rawpci::save_state(pdev);
                }
            }
        } else if !state.reset_works {
            reset_possible = false;
        }
        if reset_possible {
            // Disable INTx and MSI during the reset, as pci_reset_function() does.
            rawpci::write_config_word(pdev, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
            if state.reset_works && rawpci::try_locked_reset(pdev) {
                self.set_needs_reset(false);
            }
            rawpci::restore_state(pdev);
        }
        rawpci::disable_device(pdev);
        if owed_elsewhere || (unused && self.needs_reset()) {
            reset::reset_unused_set(&set);
        }
    }

    fn reset_works(&self) -> bool {
        self.open.lock().as_ref().is_some_and(|s| s.reset_works)
    }

    /// `ioctl`: every device ioctl the VFIO core does not handle itself.
    pub(crate) fn ioctl(&self, dev: &Device, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            VFIO_DEVICE_GET_INFO => self.ioctl_get_info(arg).map(|()| 0),
            VFIO_DEVICE_GET_IRQ_INFO => self.ioctl_get_irq_info(arg).map(|()| 0),
            VFIO_DEVICE_SET_IRQS => self
                .irqs
                .ioctl_set_irqs(self, arg, |index| self.irq_count(index)),
            VFIO_DEVICE_RESET => self.ioctl_reset(dev).map(|()| 0),
            VFIO_DEVICE_GET_PCI_HOT_RESET_INFO => reset::ioctl_info(dev, arg).map(|()| 0),
            VFIO_DEVICE_PCI_HOT_RESET => reset::ioctl_reset(dev, arg).map(|()| 0),
            VFIO_DEVICE_IOEVENTFD => self.ioeventfds.ioctl(dev, arg).map(|()| 0),
            _ => Err(ENOTTY),
        }
    }

    fn ioctl_get_info(&self, arg: usize) -> Result {
        let minsz = core::mem::offset_of!(sys::vfio_device_info, cap_offset);
        let mut info: sys::vfio_device_info = user::read_prefix(arg, minsz)?;
        if (info.argsz as usize) < minsz {
            return Err(EINVAL);
        }
        let full = core::mem::size_of::<sys::vfio_device_info>();
        let copy = (info.argsz as usize).min(full);
        info.flags = sys::VFIO_DEVICE_FLAGS_PCI;
        if self.reset_works() {
            info.flags |= sys::VFIO_DEVICE_FLAGS_RESET;
        }
        info.num_regions = regions::NUM_REGIONS;
        info.num_irqs = regions::NUM_IRQS;

        // The PCIe AtomicOps completer capability, when the path to the root supports it.
        let devcap2 = rawpci::pcie_devcap2(self.pdev());
        let mut atomic = 0u32;
        for (cap, flag) in [
            (
                bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP32,
                sys::VFIO_PCI_ATOMIC_COMP32,
            ),
            (
                bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP64,
                sys::VFIO_PCI_ATOMIC_COMP64,
            ),
            (
                bindings::PCI_EXP_DEVCAP2_ATOMIC_COMP128,
                sys::VFIO_PCI_ATOMIC_COMP128,
            ),
        ] {
            if devcap2 & cap != 0 && rawpci::enable_atomic_ops_to_root(self.pdev(), cap) {
                atomic |= flag;
            }
        }
        if atomic != 0 {
            // struct vfio_device_info_cap_pci_atomic_comp: header, flags, reserved.
            let cap = [
                sys::VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP | (1 << 16),
                0,
                atomic,
                0,
            ];
            let cap_size = core::mem::size_of_val(&cap);
            info.flags |= sys::VFIO_DEVICE_FLAGS_CAPS;
            if (info.argsz as usize) < full + cap_size {
                info.argsz = (full + cap_size) as u32;
            } else {
                let mut bytes = [0u8; 16];
                for (chunk, word) in bytes.chunks_exact_mut(4).zip(cap) {
                    chunk.copy_from_slice(&word.to_le_bytes());
                }
                user::write_bytes(arg + full, &bytes)?;
                info.cap_offset = full as u32;
            }
        }
        user::write_prefix(arg, &info, copy)
    }

    /// Number of interrupts of `index` (upstream `vfio_pci_get_irq_count`).
    fn irq_count(&self, index: u32) -> u32 {
        let pdev = self.pdev();
        match index {
            // The virtual pin decides, as upstream.
            0 => u32::from(self.intx_pin.load(Ordering::Relaxed)),
            1 => match rawpci::msi_cap(pdev) {
                0 => 0,
                pos => {
                    let flags = rawpci::read_config_word(pdev, u16::from(pos) + PCI_MSI_FLAGS);
                    1 << ((flags & 0x000e) >> 1)
                }
            },
            2 => match rawpci::msix_cap(pdev) {
                0 => 0,
                pos => {
                    u32::from(
                        rawpci::read_config_word(pdev, u16::from(pos) + PCI_MSIX_FLAGS) & 0x7ff,
                    ) + 1
                }
            },
            // ERR and REQ: one each, on every device.
            3 | 4 => 1,
            _ => 0,
        }
    }

    fn ioctl_get_irq_info(&self, arg: usize) -> Result {
        let minsz = core::mem::offset_of!(sys::vfio_irq_info, count) + 4;
        let mut info: sys::vfio_irq_info = user::read_prefix(arg, minsz)?;
        if (info.argsz as usize) < minsz || info.index >= regions::NUM_IRQS {
            return Err(EINVAL);
        }
        info.flags = sys::VFIO_IRQ_INFO_EVENTFD;
        info.count = self.irq_count(info.index);
        if info.index == 0 {
            info.flags |= sys::VFIO_IRQ_INFO_MASKABLE | sys::VFIO_IRQ_INFO_AUTOMASKED;
        } else if info.index != 2 || !rawpci::msix_can_alloc_dyn(self.pdev()) {
            // MSI-X vectors can be added while enabled when the platform allows it.
            info.flags |= sys::VFIO_IRQ_INFO_NORESIZE;
        }
        user::write_prefix(arg, &info, minsz)
    }

    fn ioctl_reset(&self, dev: &Device) -> Result {
        if !self.reset_works() {
            return Err(EINVAL);
        }
        let mut mem = self.zap_and_write_memory(dev);
        // A reset from D3 would leave a NoSoftRst- device without its saved state.
        let _ = self.set_power_state(&mut mem, PCI_D0);
        self.own_function_reset()
    }

    /// Region info for `index` (offset, size, flags; capabilities into `caps`).
    pub(crate) fn region_info(&self, index: u32, caps: &mut CapChain) -> Result<RegionInfo> {
        let pdev = self.pdev();
        let offset = regions::index_to_offset(index);
        let rw = sys::VFIO_REGION_INFO_FLAG_READ | sys::VFIO_REGION_INFO_FLAG_WRITE;
        match index {
            regions::CONFIG => Ok(RegionInfo {
                offset,
                size: u64::from(rawpci::cfg_size(pdev)),
                flags: rw,
            }),
            0..=5 => {
                let size = self.bar_len(index);
                if size == 0 {
                    return Ok(RegionInfo {
                        offset,
                        size,
                        flags: 0,
                    });
                }
                let mut flags = rw;
                if self.mmap_bars.mappable() & (1 << index) != 0 {
                    let msix = self.memory.read().msix;
                    flags |= sys::VFIO_REGION_INFO_FLAG_MMAP;
                    if msix.is_some_and(|t| t.bar == index) {
                        // struct vfio_info_cap_header only.
                        let mut cap = [sys::VFIO_REGION_INFO_CAP_MSIX_MAPPABLE | (1 << 16), 0];
                        caps.add(&mut cap)?;
                    }
                }
                Ok(RegionInfo {
                    offset,
                    size,
                    flags,
                })
            }
            regions::ROM => {
                let mut info = RegionInfo {
                    offset,
                    size: 0,
                    flags: 0,
                };
                if rawpci::resource_start(pdev, regions::ROM) != 0 {
                    // The ROM can only be checked with memory decode on.
                    let _mem = self.memory.write();
                    let cmd = rawpci::read_config_word(pdev, PCI_COMMAND);
                    if cmd & PCI_COMMAND_MEMORY == 0 {
                        rawpci::write_config_word(pdev, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
                    }
                    if let Some(rom) = crate::ffi::io::RomMap::new(pdev) {
                        info.flags = sys::VFIO_REGION_INFO_FLAG_READ;
                        info.size = rom.bar_len();
                    }
                    rawpci::write_config_word(pdev, PCI_COMMAND, cmd);
                } else {
                    let len = rawpci::rom_region_len(pdev);
                    if len != 0 {
                        info.flags = sys::VFIO_REGION_INFO_FLAG_READ;
                        info.size = len;
                    }
                }
                Ok(info)
            }
            // No VGA support: as upstream for a non-VGA device or with disable_vga.
            regions::VGA => Err(EINVAL),
            _ => Err(EINVAL),
        }
    }

    /// read(2)/write(2) on the device file. Inlined into the `read` and `write` entry points:
    /// under TCG every call and return is a jump-cache lookup, which the per-access rows feel.
    #[inline(always)]
    pub(crate) fn rw(
        &self,
        dev: &Device,
        buf: usize,
        count: usize,
        pos: &mut i64,
        write: bool,
    ) -> Result<isize> {
        if count == 0 {
            return Ok(0);
        }
        let ppos = *pos as u64;
        let index = regions::offset_to_index(ppos);
        if index >= u64::from(regions::NUM_REGIONS) {
            return Err(EINVAL);
        }
        let index = index as u32;
        let off = ppos & regions::OFFSET_MASK;
        let done = match index {
            regions::CONFIG => self.config_rw(dev, buf, count, off, write)?,
            regions::ROM if write => return Err(EINVAL),
            0..=regions::ROM => self.bar_rw(index, buf, count, off, write)?,
            _ => return Err(EINVAL),
        };
        *pos += done as i64;
        Ok(done as isize)
    }

    /// Config-space access through the virtual config space. User data is copied in before
    /// and out after the model runs, so no user copy happens under the open or memory lock.
    /// Inlined into the read and write entry points, as [`Self::rw`].
    #[inline(always)]
    fn config_rw(
        &self,
        dev: &Device,
        buf: usize,
        count: usize,
        pos: u64,
        write: bool,
    ) -> Result<usize> {
        // One register (1, 2, 4 or 8 bytes: nearly every access) goes through an 8-byte
        // buffer and is copied back with one fixed-size user copy of its width. Its range is
        // checked by the model, which answers an access outside config space with `EFAULT`
        // before touching anything (the C shim's cfg_size is not asked). Other lengths are
        // checked here first, with the same answer, before a buffer is set up for them: on the
        // stack up to 64 bytes (no vector is even created: dropping an empty one still costs a
        // call into the allocator).
        let width = crate::ffi::io::Width::from_bytes(count);
        let mut reg = [0u8; 8];
        let mut small;
        let mut big = None;
        let data: &mut [u8] = if width.is_some() {
            let data = reg.get_mut(..count).ok_or(EINVAL)?;
            if write {
                user::read_bytes(buf, data)?;
            }
            data
        } else {
            let size = u64::from(rawpci::cfg_size(self.pdev()));
            if pos >= size || pos + count as u64 > size {
                return Err(EFAULT);
            }
            let data = if count <= 64 {
                small = [0u8; 64];
                &mut small[..count]
            } else {
                big.insert(KVec::from_elem(0u8, count, GFP_KERNEL_ACCOUNT)?)
            };
            if write {
                user::read_bytes(buf, data)?;
            }
            data
        };
        // The model runs under the `open` mutex for reads too: a read can change its state (a
        // BAR read re-sizes the virtual BARs while they are dirty) and the backend holds the
        // virtual INTx-disable state mutably, so every access needs the exclusive
        // `&mut ConfigSpace` the mutex hands out (upstream reads its vconfig unlocked, a data
        // race the Rust model cannot have). Uncontended, the mutex costs about 14 instructions.
        let done = {
            let mut open = self.open.lock();
            let Some(OpenState {
                config,
                virq_disabled,
                pci_2_3,
                ..
            }) = &mut *open
            else {
                return Err(EINVAL);
            };
            let mut hw = ConfigHw::new(self, dev, *pci_2_3, virq_disabled);
            // A match, not `map_err`: its instance was an out-of-line call on every access.
            match config.rw(&mut hw, pos, data, write) {
                Ok(done) => done,
                Err(e) => return Err(from_errno(e)),
            }
        };
        if !write {
            match width {
                Some(w) => rdwr::put_user_le(buf, w, u64::from_le_bytes(reg))?,
                None => user::write_bytes(buf, &data[..done])?,
            }
        }
        Ok(done)
    }

    /// mmap of a BAR region: check the request, then make the VMA a lazily faulted PFN map.
    pub(crate) fn mmap(&self, dev: &Device, vma: &NewBarVma<'_>) -> Result {
        let req = MmapRequest {
            start: vma.start(),
            end: vma.end(),
            pgoff: vma.pgoff(),
            shared: vma.is_shared(),
        };
        // No memory lock, as upstream: a mapping is made only while the device is open (the
        // VMA's file holds it), so which BARs are mappable and claimed stays as open published.
        let bar = mmap::check(&req, self.mmap_bars.mappable(), |bar| self.bar_len(bar))?;
        // The BAR must be claimed by us, so no mapping covers an unclaimed resource. If it is
        // not, the memory state holds the claim's error (EBUSY, ENOMEM).
        if !self.mmap_bars.claimed(bar) {
            self.memory.read().bar(bar)?;
        }
        vma.setup_pfnmap(dev);
        Ok(())
    }

    /// A 4 KiB fault on a BAR mapping. `insert(addr, pfn)` installs the PFN at the page of
    /// `addr` and is called with the memory lock held for read, so a zap cannot slip between
    /// the check and the insertion. The rest of the page's 2 MiB block inside the VMA is
    /// filled too ([`fault::around`]).
    pub(crate) fn page_fault(
        &self,
        req: &FaultRequest,
        insert: impl Fn(usize, u64) -> u32,
    ) -> FaultOutcome {
        self.fault(req, |pfn| {
            let ret = insert(req.address, pfn);
            let mut filled = 0;
            if ret == bindings::vm_fault_reason_VM_FAULT_NOPAGE {
                for (addr, pfn) in fault::around(req, pfn) {
                    // An already mapped page answers NOPAGE too; anything else (no memory for
                    // a page table) ends the fill, the faulting page is in.
                    if insert(addr, pfn) != bindings::vm_fault_reason_VM_FAULT_NOPAGE {
                        break;
                    }
                    filled += 1;
                }
            }
            (ret, filled)
        })
    }

    /// A PMD or PUD fault on a BAR mapping: `insert(pfn)` maps the fault's own block, under
    /// the memory lock held for read as in [`Self::page_fault`].
    pub(crate) fn huge_fault(
        &self,
        req: &FaultRequest,
        insert: impl FnOnce(u64) -> u32,
    ) -> FaultOutcome {
        self.fault(req, |pfn| (insert(pfn), 0))
    }

    /// What both fault handlers share: the PFN for the fault's order (or a fallback to a
    /// smaller one), the memory lock, the SIGBUS policy, the counters. `insert(pfn)` runs
    /// under the lock and returns the mm's answer and how many pages it filled ahead.
    #[inline(always)]
    fn fault(&self, req: &FaultRequest, insert: impl FnOnce(u64) -> (u32, u64)) -> FaultOutcome {
        // mmap maps BARs 0-5 only. Which PFN, and whether the order fits, needs no lock (as
        // upstream): the BAR's place is fixed while the device is bound.
        let bar_start =
            u32::try_from(fault::region_index(req.vm_pgoff)).map_or(0, |bar| self.bar_start(bar));
        let Some(pfn) = fault::plan(req, bar_start) else {
            FaultCounters::bump(&self.counters.fallback);
            return FaultOutcome::Fallback;
        };
        let mem = self.memory.read();
        if mem.pm_engaged() || !self.memory_accessible(&mem) {
            drop(mem);
            FaultCounters::bump(&self.counters.sigbus);
            return FaultOutcome::SigBus;
        }
        let (ret, filled) = insert(pfn);
        drop(mem);
        if ret == bindings::vm_fault_reason_VM_FAULT_FALLBACK {
            FaultCounters::bump(&self.counters.fallback);
        } else if ret == bindings::vm_fault_reason_VM_FAULT_NOPAGE {
            self.counters.mapped(req.order);
            if filled != 0 {
                FaultCounters::add(&self.counters.around, filled);
            }
        }
        FaultOutcome::Inserted(ret)
    }

    /// The fault counters as `name value` lines.
    pub(crate) fn counters(&self) -> [(&'static str, u64); 7] {
        let c = &self.counters;
        let get = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        [
            ("pte", get(&c.pte)),
            ("pmd", get(&c.pmd)),
            ("pud", get(&c.pud)),
            ("fallback", get(&c.fallback)),
            ("zap", get(&c.zap)),
            ("sigbus", get(&c.sigbus)),
            ("around", get(&c.around)),
        ]
    }

    /// `request`: the device is being unbound while user space still holds it.
    pub(crate) fn request(&self, count: u32) {
        self.irqs.request(self.pdev(), count);
    }
}
