// SPDX-License-Identifier: GPL-2.0

//! The driver side of config-space virtualization: the hardware access and the side effects
//! (`ConfigBackend`) that the pure model in `config_space` asks for.
//!
//! The model decides; this executes, with the locking the driver owns. D3hot entry and FLR zap
//! every BAR mapping right after taking the memory lock for write, and change the hardware
//! before releasing it. A COMMAND write reaches the device without the memory lock: the
//! hardware access may wait for a reset by someone else (`pci_user_write_config_*` waits while
//! the PCI core blocks config access), and that reset's `reset_prepare` takes the memory lock.
//! So a write clearing MEM zaps and records decode off under the lock before it touches the
//! hardware, and a write setting MEM records decode on after it: in between, faults answer
//! SIGBUS and BAR access fails, as with decode off. The model runs under the `open` mutex,
//! which comes before the memory lock in the lock order; the decode state changes only under
//! both.

use kernel::prelude::*;

use crate::{
    config_space::{
        ConfigBackend,
        Errno,
        MsiIrqState,
        PowerState,
        Width, //
    },
    device::VfioPciDevice,
    ffi::{
        pci as rawpci,
        vfio::Device, //
    },
};

/// Converts a kernel error to the model's errno.
pub(crate) fn to_errno(e: Error) -> Errno {
    Errno(-e.to_errno())
}

/// Converts the model's errno to a kernel error (out of line: only errors take it).
#[cold]
#[inline(never)]
pub(crate) fn from_errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

/// One config-space operation's view of the device.
pub(crate) struct ConfigHw<'a> {
    dev: &'a VfioPciDevice,
    vfio: &'a Device,
    pci_2_3: bool,
    virq_disabled: &'a mut bool,
    /// `memory_write_lock` recorded decode off ahead of the hardware write.
    decode_cleared: bool,
}

impl<'a> ConfigHw<'a> {
    /// A backend for `dev`, using INTx masking (`pci_2_3`) and the virtual INTx-disable state.
    pub(crate) fn new(
        dev: &'a VfioPciDevice,
        vfio: &'a Device,
        pci_2_3: bool,
        virq_disabled: &'a mut bool,
    ) -> Self {
        Self {
            dev,
            vfio,
            pci_2_3,
            virq_disabled,
            decode_cleared: false,
        }
    }
}

impl ConfigBackend for ConfigHw<'_> {
    #[inline]
    fn hw_read(&mut self, offset: u16, width: Width) -> Result<u32, Errno> {
        rawpci::user_read_config(self.dev.pdev(), offset, width.bytes()).map_err(to_errno)
    }

    #[inline]
    fn hw_write(&mut self, offset: u16, width: Width, value: u32) -> Result<(), Errno> {
        rawpci::user_write_config(self.dev.pdev(), offset, width.bytes(), value).map_err(to_errno)
    }

    #[inline]
    fn memory_write_lock(&mut self, zap: bool) {
        // MEM is being cleared: no mapping may survive, nor a fault or BAR access succeed, once
        // the hardware stops decoding. Already off: nothing is mapped. A device whose memory
        // decode does not follow COMMAND.MEM (a VF) keeps decode on, as the model does.
        if zap && self.dev.decode_enabled() && !self.dev.no_command_memory() {
            self.dev.zap_and_set_decode(self.vfio, false);
            self.decode_cleared = true;
        }
    }

    #[inline]
    fn memory_write_unlock(&mut self, memory_enabled: Option<bool>) {
        // A failed write leaves the virtual COMMAND as it was, and so the decode state.
        let enabled = match memory_enabled {
            Some(enabled) => enabled,
            None if self.decode_cleared => true,
            None => return,
        };
        self.decode_cleared = false;
        if enabled != self.dev.decode_enabled() {
            self.dev.set_decode(enabled);
        }
    }

    fn set_power_state(&mut self, state: PowerState) {
        let d = match state {
            PowerState::D0 => 0,
            PowerState::D1 => 1,
            PowerState::D2 => 2,
            PowerState::D3Hot => 3,
        };
        let mut mem = if d == 3 {
            self.dev.zap_and_write_memory(self.vfio)
        } else {
            self.dev.write_memory()
        };
        let _ = self.dev.set_power_state(&mut mem, d);
    }

    fn function_reset(&mut self) {
        let _mem = self.dev.zap_and_write_memory(self.vfio);
        let _ = self.dev.own_function_reset();
    }

    fn virq_disabled(&self) -> bool {
        *self.virq_disabled
    }

    fn set_virq_disabled(&mut self, disabled: bool) {
        *self.virq_disabled = disabled;
        // INTx masks or unmasks (or, without INTx and with DisINTx masking, the physical bit
        // follows the virtual one); the INTx code keeps its own copy under `igate`.
        let _ = self.pci_2_3;
        self.dev.irqs().set_virq_disabled(self.dev.pdev(), disabled);
    }

    fn pcie_get_mps(&mut self) -> u32 {
        rawpci::pcie_get_mps(self.dev.pdev())
    }

    fn pcie_set_readrq(&mut self, bytes: u32) {
        rawpci::pcie_set_readrq(self.dev.pdev(), bytes);
    }

    fn vpd_read(&mut self, addr: u16) -> Result<u32, Errno> {
        rawpci::read_vpd(self.dev.pdev(), addr).map_err(to_errno)
    }

    fn vpd_write(&mut self, addr: u16, data: u32) -> Result<usize, Errno> {
        rawpci::write_vpd(self.dev.pdev(), addr, data).map_err(to_errno)
    }

    fn msi_irq_state(&self) -> MsiIrqState {
        let (msi_enabled, qmax) = self.dev.irqs().msi_state();
        MsiIrqState { msi_enabled, qmax }
    }

    fn bar_restore_notice(&mut self) {
        dev_info!(
            self.dev.pdev().as_ref(),
            "vfio_pci_rs: reset recovery - restoring BARs\n"
        );
    }
}
