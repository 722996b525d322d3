// SPDX-License-Identifier: GPL-2.0

//! MSI and MSI-X: vectors allocated as a block, one eventfd per vector (upstream
//! `vfio_pci_intrs.c` 370-578).
//!
//! Vectors are allocated, programmed and freed with memory decode forced on under the memory
//! lock held for write (upstream `vfio_pci_memory_lock_and_enable`): the MSI-X table lives in a
//! BAR, and the user may have turned decode off. A vector freed by detaching its eventfd stays
//! allocated until MSI/MSI-X is disabled, so re-attaching it reuses it; with dynamic MSI-X,
//! vectors beyond the initial block are allocated when first attached.

use kernel::{
    pci,
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    device::{
        MemoryState,
        VfioPciDevice, //
    },
    ffi::{
        eventfd::EventFd,
        irq::{
            self,
            Registration, //
        },
        pci as rawpci,
        rwsem::WriteGuard,
    },
};

/// Config offset of the COMMAND register.
const PCI_COMMAND: u16 = 0x04;
/// COMMAND: memory space decode.
const PCI_COMMAND_MEMORY: u16 = 0x2;

/// The memory lock held for write with memory decode forced on; dropping it restores COMMAND
/// and releases the lock (upstream `vfio_pci_memory_lock_and_enable` / `_unlock_and_restore`).
pub(crate) struct MemoryEnabled<'a> {
    /// The device.
    pdev: &'a pci::Device,
    /// COMMAND as it was before.
    cmd: u16,
    /// The memory lock, held for write.
    _mem: WriteGuard<'a, MemoryState>,
}

impl<'a> MemoryEnabled<'a> {
    /// Takes the memory lock of `dev` for write and turns memory decode on.
    pub(crate) fn new(dev: &'a VfioPciDevice) -> Self {
        let mem = dev.write_memory();
        let pdev = dev.pdev();
        let cmd = rawpci::read_config_word(pdev, PCI_COMMAND);
        if cmd & PCI_COMMAND_MEMORY == 0 {
            rawpci::write_config_word(pdev, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
        }
        Self {
            pdev,
            cmd,
            _mem: mem,
        }
    }
}

impl Drop for MemoryEnabled<'_> {
    fn drop(&mut self) {
        // Runs before the guard field is dropped, so still under the lock.
        rawpci::write_config_word(self.pdev, PCI_COMMAND, self.cmd);
    }
}

/// The eventfds of a SET_IRQS call: native-endian `i32`s.
#[derive(Clone, Copy)]
pub(crate) struct Fds<'a>(pub(crate) &'a [u8]);

impl Fds<'_> {
    /// The `i`-th fd; -1 (detach) past the end, which validation rules out.
    pub(crate) fn get(&self, i: usize) -> i32 {
        i.checked_mul(4)
            .and_then(|at| self.0.get(at..at + 4))
            .and_then(|b| b.try_into().ok())
            .map_or(-1, i32::from_ne_bytes)
    }
}

/// Result of [`Msi::enable`].
pub(crate) enum Enable {
    /// All vectors were allocated.
    Done(Msi),
    /// Only this many could be; nothing stays allocated (user space retries with this count).
    Short(u32),
}

/// MSI or MSI-X while enabled.
pub(crate) struct Msi {
    /// MSI-X rather than MSI.
    msix: bool,
    /// Dynamic MSI-X: vectors can be allocated while MSI-X is enabled.
    has_dyn_msix: bool,
    /// The handler registered on each vector with an eventfd attached, by vector number.
    vectors: KVVec<Option<Registration<EventFd>>>,
}

impl Msi {
    /// Allocates `nvec` vectors and enables MSI or MSI-X (`vfio_msi_enable`); no eventfd is
    /// attached yet.
    pub(crate) fn enable(
        dev: &VfioPciDevice,
        nvec: u32,
        msix: bool,
        has_dyn_msix: bool,
    ) -> Result<Enable> {
        let pdev = dev.pdev();
        {
            let _mem = MemoryEnabled::new(dev);
            let n = irq::alloc_irq_vectors(pdev, 1, nvec, msix)?;
            if n < nvec {
                if n > 0 {
                    irq::free_irq_vectors(pdev);
                }
                return Ok(Enable::Short(n));
            }
        }
        Ok(Enable::Done(Self {
            msix,
            has_dyn_msix,
            vectors: KVVec::new(),
        }))
    }

    /// Whether this is MSI-X.
    pub(crate) fn msix(&self) -> bool {
        self.msix
    }

    /// The Linux IRQ of `vector`, allocating it with dynamic MSI-X if needed
    /// (`vfio_msi_alloc_irq`).
    fn alloc_irq(&self, dev: &VfioPciDevice, vector: u32) -> Result<u32> {
        let pdev = dev.pdev();
        match irq::irq_vector(pdev, vector) {
            Ok(0) => Err(EINVAL),
            Ok(irq) => Ok(irq),
            Err(e) if !self.msix || !self.has_dyn_msix => Err(e),
            Err(_) => {
                let _mem = MemoryEnabled::new(dev);
                irq::msix_alloc_irq_at(pdev, vector)
            }
        }
    }

    /// Detaches the eventfd of `vector`, then attaches `fd` unless it is negative
    /// (`vfio_msi_set_vector_signal`).
    fn set_vector_signal(&mut self, dev: &VfioPciDevice, vector: u32, fd: i32) -> Result {
        let idx = vector as usize;
        if let Some(reg) = self.vectors.get_mut(idx).and_then(Option::take) {
            let trigger = reg.handler().clone();
            {
                let _mem = MemoryEnabled::new(dev);
                drop(reg);
            }
            // The vector stays allocated until MSI/MSI-X is disabled.
            drop(trigger);
        }
        if fd < 0 {
            return Ok(());
        }
        let irq = self.alloc_irq(dev, vector)?;
        while self.vectors.len() <= idx {
            self.vectors.push(None, GFP_KERNEL_ACCOUNT)?;
        }
        let name = CString::try_from_fmt(fmt!(
            "vfio-msi{}[{}]({})",
            if self.msix { "x" } else { "" },
            vector,
            dev.pdev().as_ref().name()
        ))?;
        let trigger = Arc::new(EventFd::from_fd(fd)?, GFP_KERNEL_ACCOUNT)?;
        let reg = {
            let _mem = MemoryEnabled::new(dev);
            if self.msix {
                // The message may have been lost to a backdoor reset since it was written.
                irq::refresh_msi_msg(irq);
            }
            Registration::new(irq, 0, name, trigger)?
        };
        if let Some(slot) = self.vectors.get_mut(idx) {
            *slot = Some(reg);
        }
        Ok(())
    }

    /// Sets the eventfds of vectors `start..start + count`; on failure every vector of the
    /// range touched so far is detached (`vfio_msi_set_block`).
    pub(crate) fn set_block(
        &mut self,
        dev: &VfioPciDevice,
        start: u32,
        count: u32,
        fds: Fds<'_>,
    ) -> Result {
        let mut ret = Ok(());
        let mut end = start;
        for i in 0..count {
            ret = self.set_vector_signal(dev, start + i, fds.get(i as usize));
            end = start + i + 1;
            if ret.is_err() {
                break;
            }
        }
        if ret.is_err() {
            for v in start..end {
                let _ = self.set_vector_signal(dev, v, -1);
            }
        }
        ret
    }

    /// Signals the eventfds of vectors `start..start + count` that have one; with `bools`,
    /// only those whose byte is non-zero (loopback).
    pub(crate) fn loopback(&self, start: u32, count: u32, bools: Option<&[u8]>) {
        for i in 0..count {
            let Some(Some(reg)) = self.vectors.get((start + i) as usize) else {
                continue;
            };
            if bools.is_none_or(|b| b.get(i as usize).is_some_and(|&v| v != 0)) {
                reg.handler().signal();
            }
        }
    }

    /// Detaches every eventfd, frees the vectors and disables MSI/MSI-X (`vfio_msi_disable`).
    /// `nointx` devices get DisINTx back, which freeing the vectors cleared.
    pub(crate) fn disable(mut self, dev: &VfioPciDevice, nointx: bool) {
        for v in 0..self.vectors.len() {
            let _ = self.set_vector_signal(dev, v as u32, -1);
        }
        {
            let _mem = MemoryEnabled::new(dev);
            irq::free_irq_vectors(dev.pdev());
        }
        if nointx {
            rawpci::intx(dev.pdev(), false);
        }
    }
}
