// SPDX-License-Identifier: GPL-2.0

//! PCI config-space virtualization: a pure model of upstream `drivers/vfio/pci/vfio_pci_config.c`.
//!
//! The model decides, the driver executes: [`ConfigSpace`] holds the virtual config space
//! (`vconfig`), the per-byte capability map and the BAR bookkeeping, and implements the
//! permission tables and read/write handlers of upstream byte for byte. Everything that touches
//! the device or a kernel lock goes through the [`ConfigBackend`] trait that the driver
//! implements.
//!
//! This file uses only `core`, no allocation, no `unsafe`, and no panicking operation
//! (no indexing, no unchecked arithmetic), so that it builds both inside the kernel module and in
//! the host test crate (`tests/host`).
//!
//! Upstream line numbers below refer to `drivers/vfio/pci/vfio_pci_config.c` in Linux 7.3.
//!
//! # Locking contract
//!
//! The driver serialises all calls on one [`ConfigSpace`] (for example with a mutex, the
//! "config lock"). Hooks are called with that lock held; a hook may take `memory_lock` and
//! `igate`, so the driver must never take the config lock while holding either of those. Code
//! that needs config state under `memory_lock` (the fault handler, BAR read/write, dma-buf) uses
//! the memory-enable state that the driver mirrors from
//! [`ConfigBackend::memory_write_unlock`] (initialised from [`ConfigSpace::memory_enabled`] after
//! [`ConfigSpace::init`]).

#![forbid(unsafe_code)]

use core::cmp::min;

// ---------------------------------------------------------------------------------------------
// Errors and small types
// ---------------------------------------------------------------------------------------------

/// A positive kernel errno value (`Errno(14)` is `EFAULT`); the driver returns its negation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) i32);

impl Errno {
    /// `EFAULT`: access outside config space, or a misaligned `pci_read_config_*` at init
    /// (`PCIBIOS_BAD_REGISTER_NUMBER`).
    pub(crate) const EFAULT: Errno = Errno(14);
    /// `EINVAL`: misaligned `pci_user_*` access, register beyond 4095, invalid device facts.
    pub(crate) const EINVAL: Errno = Errno(22);
}

/// Width of one physical config access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// 8-bit access (`pci_user_*_config_byte`).
    Byte,
    /// 16-bit access (`pci_user_*_config_word`).
    Word,
    /// 32-bit access (`pci_user_*_config_dword`).
    Dword,
}

impl Width {
    /// Number of bytes of this width.
    pub(crate) const fn bytes(self) -> usize {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }

    /// The width of a chunk of `count` bytes (chunks are always 1, 2 or 4 bytes).
    const fn from_count(count: usize) -> Width {
        match count {
            4 => Width::Dword,
            2 => Width::Word,
            _ => Width::Byte,
        }
    }

    /// Whether `off` is naturally aligned for this width.
    const fn aligned(self, off: usize) -> bool {
        match self {
            Width::Byte => true,
            Width::Word => off & 1 == 0,
            Width::Dword => off & 3 == 0,
        }
    }

    /// All-ones value of this width.
    const fn mask(self) -> u32 {
        match self {
            Width::Byte => 0xff,
            Width::Word => 0xffff,
            Width::Dword => 0xffff_ffff,
        }
    }
}

/// PCI power state requested through a PM_CTRL write (upstream `vfio_pm_config_write`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PowerState {
    /// `PCI_D0`.
    D0,
    /// `PCI_D1`.
    D1,
    /// `PCI_D2`.
    D2,
    /// `PCI_D3hot`.
    D3Hot,
}

/// MSI interrupt state owned by the driver's interrupt code (read at the time of the access).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MsiIrqState {
    /// `vdev->irq_type == VFIO_PCI_MSI_IRQ_INDEX`.
    pub(crate) msi_enabled: bool,
    /// `vdev->msi_qmax`: log2 of the vectors enabled through SET_IRQS (0 until the first MSI
    /// enable).
    pub(crate) qmax: u8,
}

/// One BAR resource as the PCI core assigned it (`pci_resource_start/len/flags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BarResource {
    /// `pci_resource_start()`; 0 means unassigned and makes the virtual BAR read 0.
    pub(crate) start: u64,
    /// `pci_resource_len()`.
    pub(crate) len: u64,
    /// `IORESOURCE_IO` is set.
    pub(crate) io: bool,
    /// `IORESOURCE_PREFETCH` is set.
    pub(crate) prefetch: bool,
    /// `IORESOURCE_MEM_64` is set.
    pub(crate) mem64: bool,
}

/// What the driver tells the model about the device when the device is opened.
///
/// All-zero bytes are a valid value (the driver may zero-initialise it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeviceFacts {
    /// `pdev->cfg_size`: 256 or 4096 (any multiple of 4 in 64..=4096 is accepted).
    pub(crate) cfg_size: u16,
    /// `pdev->vendor`, written into vconfig for VFs (whose hardware ID reads 0xffff).
    pub(crate) vendor: u16,
    /// `pdev->device`, written into vconfig for VFs.
    pub(crate) device: u16,
    /// `pdev->is_virtfn`.
    pub(crate) is_virtfn: bool,
    /// `pdev->no_command_memory`.
    pub(crate) no_command_memory: bool,
    /// `vdev->nointx` (INTx masked because of a broken-INTx quirk).
    pub(crate) nointx: bool,
    /// INTx can be offered: `CONFIG_VFIO_PCI_INTX` (or the driver's equivalent) and
    /// `pdev->irq` is neither 0 nor `IRQ_NOTCONNECTED`. When false the virtual pin reads 0.
    pub(crate) irq_present: bool,
    /// `pdev->pcie_flags_reg` (cached PCIe capabilities register, 0 when not PCIe); used to
    /// size the PCIe capability like upstream `pcie_caps_reg()`/`pci_pcie_type()`.
    pub(crate) pcie_flags: u16,
    /// Resources of BAR0..BAR5.
    pub(crate) bars: [BarResource; 6],
    /// Start of the ROM resource (`pci_resource_start(pdev, PCI_ROM_RESOURCE)`), 0 if none.
    pub(crate) rom_start: u64,
    /// Length of the ROM resource.
    pub(crate) rom_len: u64,
    /// `pdev->romlen` when `pdev->rom` (a shadow ROM) is set, else 0.
    pub(crate) shadow_rom_len: u64,
}

// ---------------------------------------------------------------------------------------------
// Backend
// ---------------------------------------------------------------------------------------------

/// Device access and side effects, implemented by the driver.
///
/// Offsets passed to [`ConfigBackend::hw_read`] and [`ConfigBackend::hw_write`] are always
/// naturally aligned for the width and below 4096 (the model returns upstream's error codes for
/// the other cases without calling the backend).
pub(crate) trait ConfigBackend {
    /// Reads physical config space: `pci_user_read_config_{byte,word,dword}` (also used at
    /// init, where upstream uses `pci_read_config_*`; map PCIBIOS codes with
    /// `pcibios_err_to_errno`). Returns the value zero-extended to 32 bits.
    fn hw_read(&mut self, offset: u16, width: Width) -> Result<u32, Errno>;

    /// Writes physical config space: `pci_user_write_config_{byte,word,dword}`.
    fn hw_write(&mut self, offset: u16, width: Width, value: u32) -> Result<(), Errno>;

    /// Start of a COMMAND-register write (upstream 595-600).
    ///
    /// `zap`: the new MEM bit is 0 (even if it already was 0). Between this call and
    /// [`ConfigBackend::memory_write_unlock`] the model may restore the BARs and writes COMMAND
    /// through [`ConfigBackend::hw_write`]; when `zap` is set, no BAR mapping, fault or BAR
    /// access may reach the device from this call on until the unlock records the new state.
    /// Upstream zaps all BAR mmaps and holds `memory_lock` for write across the whole write
    /// (`vfio_pci_zap_and_down_write_memory_lock`, revoking dma-bufs), else only `down_write`;
    /// a backend may instead zap and record memory disabled here under `memory_lock` and
    /// release it, so the hardware accesses never wait for config access under it.
    fn memory_write_lock(&mut self, zap: bool);

    /// End of a COMMAND-register write.
    ///
    /// `Some(enabled)`: the write succeeded and `enabled` is the new virtual memory-enable state
    /// ([`ConfigSpace::memory_enabled`]: virtual MEM bit or `no_command_memory`). Record it as
    /// the state that gates faults and BAR access (under `memory_lock` for write); if it is true
    /// and the power state is below D3hot, un-revoke dma-bufs. `None`: the write failed; the
    /// state is what it was before [`ConfigBackend::memory_write_lock`]. Upstream then
    /// `up_write`s.
    fn memory_write_unlock(&mut self, memory_enabled: Option<bool>);

    /// A write to PM_CTRL requested `state` (upstream `vfio_lock_and_set_power_state`, 712-726):
    /// zap and `down_write` (revoking dma-bufs) for D3hot, else `down_write`;
    /// `vfio_pci_set_power_state()` (result ignored); un-revoke dma-bufs if memory is enabled;
    /// `up_write`. Called on every PM_CTRL write, even for the current state.
    fn set_power_state(&mut self, state: PowerState);

    /// A PCIe DEVCTL or AF FLR was requested and the device advertises it (upstream 912-920,
    /// 994-1001): zap and `down_write`, revoke dma-bufs, `pci_try_reset_function()` (result
    /// ignored), un-revoke if memory is enabled, `up_write`.
    fn function_reset(&mut self);

    /// Current `vdev->virq_disabled` (owned by the driver's INTx code).
    fn virq_disabled(&self) -> bool;

    /// The virtual DisINTx bit changed relative to `virq_disabled` (upstream 639-652): set
    /// `vdev->virq_disabled = disabled`, then `vfio_pci_intx_mask()` if `disabled` else
    /// `vfio_pci_intx_unmask()`.
    fn set_virq_disabled(&mut self, disabled: bool);

    /// `pcie_get_mps(pdev)`: the device's current Max_Payload_Size in bytes.
    fn pcie_get_mps(&mut self) -> u32;

    /// `pcie_set_readrq(pdev, bytes)` (result ignored).
    fn pcie_set_readrq(&mut self, bytes: u32);

    /// `pci_read_vpd(pdev, addr, 4, &data)` with `data` starting at 0: `Ok(data)` when the
    /// call returned >= 0, the error otherwise.
    fn vpd_read(&mut self, addr: u16) -> Result<u32, Errno>;

    /// `pci_write_vpd(pdev, addr, 4, &data)`: the number of bytes written or the error.
    fn vpd_write(&mut self, addr: u16, data: u32) -> Result<usize, Errno>;

    /// Current MSI interrupt state (`vdev->irq_type`, `vdev->msi_qmax`).
    fn msi_irq_state(&self) -> MsiIrqState;

    /// Informational: the model is about to restore the BARs after detecting a backdoor reset
    /// (upstream logs "reset recovery - restoring BARs").
    fn bar_restore_notice(&mut self) {}
}

// ---------------------------------------------------------------------------------------------
// Register constants (include/uapi/linux/pci_regs.h)
// ---------------------------------------------------------------------------------------------

/// `PCI_CFG_SPACE_SIZE`.
const CFG_SPACE_SIZE: usize = 256;
/// `PCI_CFG_SPACE_EXP_SIZE`, the size of the model's arrays.
const CFG_SPACE_EXP_SIZE: usize = 4096;
/// `PCI_STD_HEADER_SIZEOF`.
const STD_HEADER_SIZEOF: usize = 64;
/// `VFIO_PCI_OFFSET_MASK`.
const VFIO_PCI_OFFSET_MASK: u64 = (1 << 40) - 1;

/// `PCI_VENDOR_ID`.
const PCI_VENDOR_ID: usize = 0x00;
/// `PCI_DEVICE_ID`.
const PCI_DEVICE_ID: usize = 0x02;
/// `PCI_COMMAND`.
const PCI_COMMAND: usize = 0x04;
/// `PCI_COMMAND_IO`.
const PCI_COMMAND_IO: u16 = 0x1;
/// `PCI_COMMAND_MEMORY`.
const PCI_COMMAND_MEMORY: u16 = 0x2;
/// `PCI_COMMAND_INTX_DISABLE`.
const PCI_COMMAND_INTX_DISABLE: u16 = 0x400;
/// `PCI_STATUS`.
const PCI_STATUS: usize = 0x06;
/// `PCI_STATUS_CAP_LIST`.
const PCI_STATUS_CAP_LIST: u16 = 0x10;
/// `PCI_CACHE_LINE_SIZE`.
const PCI_CACHE_LINE_SIZE: usize = 0x0c;
/// `PCI_LATENCY_TIMER`.
const PCI_LATENCY_TIMER: usize = 0x0d;
/// `PCI_BIST`.
const PCI_BIST: usize = 0x0f;
/// `PCI_BASE_ADDRESS_0`.
const PCI_BASE_ADDRESS_0: usize = 0x10;
/// `PCI_BASE_ADDRESS_5`.
const PCI_BASE_ADDRESS_5: usize = 0x24;
/// `PCI_BASE_ADDRESS_SPACE_IO`.
const PCI_BASE_ADDRESS_SPACE_IO: u32 = 0x01;
/// `PCI_BASE_ADDRESS_MEM_TYPE_64`.
const PCI_BASE_ADDRESS_MEM_TYPE_64: u32 = 0x04;
/// `PCI_BASE_ADDRESS_MEM_PREFETCH`.
const PCI_BASE_ADDRESS_MEM_PREFETCH: u32 = 0x08;
/// `PCI_ROM_ADDRESS`.
const PCI_ROM_ADDRESS: usize = 0x30;
/// `PCI_ROM_ADDRESS_ENABLE`.
const PCI_ROM_ADDRESS_ENABLE: u64 = 0x01;
/// `PCI_CAPABILITY_LIST`.
const PCI_CAPABILITY_LIST: usize = 0x34;
/// `PCI_INTERRUPT_LINE`.
const PCI_INTERRUPT_LINE: usize = 0x3c;
/// `PCI_INTERRUPT_PIN`.
const PCI_INTERRUPT_PIN: usize = 0x3d;

/// `PCI_CAP_LIST_NEXT`.
const PCI_CAP_LIST_NEXT: usize = 1;
/// `PCI_CAP_FLAGS`.
const PCI_CAP_FLAGS: usize = 2;
/// `PCI_CAP_SIZEOF`.
const PCI_CAP_SIZEOF: usize = 4;

/// `PCI_CAP_ID_BASIC`: fake capability ID of the standard header.
const CAP_ID_BASIC: u8 = 0;
/// `PCI_CAP_ID_PM`.
const CAP_ID_PM: u8 = 0x01;
/// `PCI_CAP_ID_VPD`.
const CAP_ID_VPD: u8 = 0x03;
/// `PCI_CAP_ID_MSI`.
const CAP_ID_MSI: u8 = 0x05;
/// `PCI_CAP_ID_PCIX`.
const CAP_ID_PCIX: u8 = 0x07;
/// `PCI_CAP_ID_HT`.
const CAP_ID_HT: u8 = 0x08;
/// `PCI_CAP_ID_VNDR`.
const CAP_ID_VNDR: u8 = 0x09;
/// `PCI_CAP_ID_EXP`.
const CAP_ID_EXP: u8 = 0x10;
/// `PCI_CAP_ID_SATA`.
const CAP_ID_SATA: u8 = 0x12;
/// `PCI_CAP_ID_AF`.
const CAP_ID_AF: u8 = 0x13;
/// `PCI_CAP_ID_MAX` (`PCI_CAP_ID_EA`).
const CAP_ID_MAX: u8 = 0x14;
/// `PCI_CAP_ID_INVALID`: unassigned byte, raw access.
pub(crate) const CAP_ID_INVALID: u8 = 0xff;
/// `PCI_CAP_ID_INVALID_VIRT`: virtual-only byte.
pub(crate) const CAP_ID_INVALID_VIRT: u8 = 0xfe;

/// `PCI_EXT_CAP_ID_ERR`.
const ECAP_ID_ERR: u16 = 0x01;
/// `PCI_EXT_CAP_ID_VC`.
const ECAP_ID_VC: u16 = 0x02;
/// `PCI_EXT_CAP_ID_PWR`.
const ECAP_ID_PWR: u16 = 0x04;
/// `PCI_EXT_CAP_ID_MFVC`.
const ECAP_ID_MFVC: u16 = 0x08;
/// `PCI_EXT_CAP_ID_VC9`.
const ECAP_ID_VC9: u16 = 0x09;
/// `PCI_EXT_CAP_ID_VNDR`.
const ECAP_ID_VNDR: u16 = 0x0b;
/// `PCI_EXT_CAP_ID_ACS`.
const ECAP_ID_ACS: u16 = 0x0d;
/// `PCI_EXT_CAP_ID_REBAR`.
const ECAP_ID_REBAR: u16 = 0x15;
/// `PCI_EXT_CAP_ID_DPA`.
const ECAP_ID_DPA: u16 = 0x16;
/// `PCI_EXT_CAP_ID_TPH`.
const ECAP_ID_TPH: u16 = 0x17;
/// `PCI_EXT_CAP_ID_DVSEC`.
const ECAP_ID_DVSEC: u16 = 0x23;
/// `PCI_EXT_CAP_ID_MAX` (`PCI_EXT_CAP_ID_PL_64GT`).
const ECAP_ID_MAX: u16 = 0x31;

/// `PCI_PM_PMC`.
const PCI_PM_PMC: usize = 2;
/// `PCI_PM_CAP_PME_MASK`.
const PCI_PM_CAP_PME_MASK: u16 = 0xf800;
/// `PCI_PM_CTRL`.
const PCI_PM_CTRL: usize = 4;
/// `PCI_PM_CTRL_STATE_MASK`.
const PCI_PM_CTRL_STATE_MASK: u32 = 0x0003;
/// `PCI_PM_CTRL_PME_ENABLE`.
const PCI_PM_CTRL_PME_ENABLE: u16 = 0x0100;
/// `PCI_PM_CTRL_PME_STATUS`.
const PCI_PM_CTRL_PME_STATUS: u16 = 0x8000;

/// `PCI_VPD_ADDR`.
const PCI_VPD_ADDR: usize = 2;
/// `PCI_VPD_ADDR_F`.
const PCI_VPD_ADDR_F: u16 = 0x8000;
/// `PCI_VPD_DATA`.
const PCI_VPD_DATA: usize = 4;

/// `PCI_MSI_FLAGS`.
const PCI_MSI_FLAGS: usize = 2;
/// `PCI_MSI_FLAGS_ENABLE`.
const PCI_MSI_FLAGS_ENABLE: u16 = 0x0001;
/// `PCI_MSI_FLAGS_QMASK`.
const PCI_MSI_FLAGS_QMASK: u16 = 0x000e;
/// `PCI_MSI_FLAGS_QSIZE`.
const PCI_MSI_FLAGS_QSIZE: u16 = 0x0070;
/// `PCI_MSI_FLAGS_64BIT`.
const PCI_MSI_FLAGS_64BIT: u16 = 0x0080;
/// `PCI_MSI_FLAGS_MASKBIT`.
const PCI_MSI_FLAGS_MASKBIT: u16 = 0x0100;

/// `PCI_X_CMD`.
const PCI_X_CMD: usize = 2;
/// `PCI_X_ECC_CSR`.
const PCI_X_ECC_CSR: usize = 8;
/// `PCI_CAP_PCIX_SIZEOF_V0`.
const PCI_CAP_PCIX_SIZEOF_V0: usize = 8;
/// `PCI_CAP_PCIX_SIZEOF_V2`.
const PCI_CAP_PCIX_SIZEOF_V2: usize = 24;

/// `PCI_EXP_FLAGS_VERS`.
const PCI_EXP_FLAGS_VERS: u16 = 0x000f;
/// `PCI_EXP_FLAGS_TYPE`.
const PCI_EXP_FLAGS_TYPE: u16 = 0x00f0;
/// `PCI_EXP_TYPE_RC_END`.
const PCI_EXP_TYPE_RC_END: u16 = 0x9;
/// `PCI_EXP_DEVCAP`.
const PCI_EXP_DEVCAP: usize = 0x04;
/// `PCI_EXP_DEVCAP_FLR`.
const PCI_EXP_DEVCAP_FLR: u32 = 0x1000_0000;
/// `PCI_EXP_DEVCTL`.
const PCI_EXP_DEVCTL: usize = 0x08;
/// `PCI_EXP_DEVCTL_PAYLOAD`.
const PCI_EXP_DEVCTL_PAYLOAD: u16 = 0x00e0;
/// `PCI_EXP_DEVCTL_PHANTOM`.
const PCI_EXP_DEVCTL_PHANTOM: u16 = 0x0200;
/// `PCI_EXP_DEVCTL_READRQ`.
const PCI_EXP_DEVCTL_READRQ: u16 = 0x7000;
/// `PCI_EXP_DEVCTL_BCR_FLR`.
const PCI_EXP_DEVCTL_BCR_FLR: u16 = 0x8000;
/// `PCI_EXP_DEVCTL2`.
const PCI_EXP_DEVCTL2: usize = 0x28;
/// `PCI_EXP_DEVCTL2_ARI`.
const PCI_EXP_DEVCTL2_ARI: u16 = 0x0020;
/// `PCI_CAP_EXP_ENDPOINT_SIZEOF_V1`.
const PCI_CAP_EXP_ENDPOINT_SIZEOF_V1: usize = 20;
/// `PCI_CAP_EXP_ENDPOINT_SIZEOF_V2`.
const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2: usize = 0x34;

/// `PCI_AF_CAP`.
const PCI_AF_CAP: usize = 3;
/// `PCI_AF_CAP_TP`.
const PCI_AF_CAP_TP: u32 = 0x01;
/// `PCI_AF_CAP_FLR`.
const PCI_AF_CAP_FLR: u32 = 0x02;
/// `PCI_AF_CTRL`.
const PCI_AF_CTRL: usize = 4;
/// `PCI_AF_CTRL_FLR`.
const PCI_AF_CTRL_FLR: u8 = 0x01;

/// `HT_3BIT_CAP_MASK`.
const HT_3BIT_CAP_MASK: u32 = 0xe0;
/// `HT_CAP_SIZEOF_LONG`.
const HT_CAP_SIZEOF_LONG: usize = 28;
/// `HT_CAP_SIZEOF_SHORT`.
const HT_CAP_SIZEOF_SHORT: usize = 24;
/// `PCI_SATA_REGS`.
const PCI_SATA_REGS: usize = 4;
/// `PCI_SATA_REGS_MASK`.
const PCI_SATA_REGS_MASK: u32 = 0xf;
/// `PCI_SATA_REGS_INLINE`.
const PCI_SATA_REGS_INLINE: u32 = 0xf;
/// `PCI_SATA_SIZEOF_SHORT`.
const PCI_SATA_SIZEOF_SHORT: usize = 8;
/// `PCI_SATA_SIZEOF_LONG`.
const PCI_SATA_SIZEOF_LONG: usize = 16;

/// `PCI_ERR_UNCOR_STATUS`.
const PCI_ERR_UNCOR_STATUS: usize = 0x04;
/// `PCI_ERR_UNCOR_MASK`.
const PCI_ERR_UNCOR_MASK: usize = 0x08;
/// `PCI_ERR_UNCOR_SEVER`.
const PCI_ERR_UNCOR_SEVER: usize = 0x0c;
/// `PCI_ERR_COR_STATUS`.
const PCI_ERR_COR_STATUS: usize = 0x10;
/// `PCI_ERR_COR_MASK`.
const PCI_ERR_COR_MASK: usize = 0x14;
/// `PCI_ERR_CAP`.
const PCI_ERR_CAP: usize = 0x18;
/// `PCI_ERR_ROOT_COMMAND`: the length upstream gives the AER capability.
const PCI_ERR_ROOT_COMMAND: usize = 0x2c;
/// Writable uncorrectable-error bits (upstream 1034-1050).
const AER_UNC_WRITABLE: u32 = 0x0000_0001 // UND
    | 0x0000_0010 // DLP
    | 0x0000_0020 // SURPDN
    | 0x0000_1000 // POISON_TLP
    | 0x0000_2000 // FCP
    | 0x0000_4000 // COMP_TIME
    | 0x0000_8000 // COMP_ABORT
    | 0x0001_0000 // UNX_COMP
    | 0x0002_0000 // RX_OVER
    | 0x0004_0000 // MALF_TLP
    | 0x0008_0000 // ECRC
    | 0x0010_0000 // UNSUP
    | 0x0020_0000 // ACSV
    | 0x0040_0000 // INTN
    | 0x0080_0000 // MCBTLP
    | 0x0100_0000 // ATOMEG
    | 0x0200_0000; // TLPPRE
/// Writable correctable-error bits (upstream 1055-1062).
const AER_COR_WRITABLE: u32 = 0x0000_0001 // RCVR
    | 0x0000_0040 // BAD_TLP
    | 0x0000_0080 // BAD_DLLP
    | 0x0000_0100 // REP_ROLL
    | 0x0000_1000 // REP_TIMER
    | 0x0000_2000 // ADV_NFAT
    | 0x0000_4000 // INTERNAL
    | 0x0000_8000; // LOG_OVER
/// `PCI_ERR_CAP_ECRC_GENE | PCI_ERR_CAP_ECRC_CHKE`.
const AER_CAP_WRITABLE: u32 = 0x0000_0040 | 0x0000_0100;

/// `PCI_PWR_DATA`.
const PCI_PWR_DATA: usize = 0x08;
/// `PCI_EXT_CAP_PWR_SIZEOF`.
const PCI_EXT_CAP_PWR_SIZEOF: usize = 0x10;
/// `PCI_VNDR_HEADER` and `PCI_DVSEC_HEADER1`.
const PCI_VNDR_HEADER: usize = 4;
/// `PCI_VC_PORT_CAP1`.
const PCI_VC_PORT_CAP1: usize = 0x04;
/// `PCI_VC_CAP1_EVCC`.
const PCI_VC_CAP1_EVCC: u32 = 0x7;
/// `PCI_VC_PORT_CAP2`.
const PCI_VC_PORT_CAP2: usize = 0x08;
/// `PCI_VC_CAP2_32_PHASE`.
const PCI_VC_CAP2_32_PHASE: u32 = 0x2;
/// `PCI_VC_CAP2_64_PHASE`.
const PCI_VC_CAP2_64_PHASE: u32 = 0x4;
/// `PCI_VC_CAP2_128_PHASE`.
const PCI_VC_CAP2_128_PHASE: u32 = 0x8;
/// `PCI_CAP_VC_BASE_SIZEOF`.
const PCI_CAP_VC_BASE_SIZEOF: usize = 0x10;
/// `PCI_CAP_VC_PER_VC_SIZEOF`.
const PCI_CAP_VC_PER_VC_SIZEOF: usize = 0x0c;
/// `PCI_ACS_CAP`.
const PCI_ACS_CAP: usize = 0x04;
/// `PCI_ACS_EC`.
const PCI_ACS_EC: u32 = 0x20;
/// `PCI_ACS_EGRESS_BITS`.
const PCI_ACS_EGRESS_BITS: usize = 0x05;
/// `PCI_REBAR_CTRL`.
const PCI_REBAR_CTRL: usize = 8;
/// `PCI_REBAR_CTRL_NBAR_MASK`.
const PCI_REBAR_CTRL_NBAR_MASK: u32 = 0xe0;
/// `PCI_REBAR_CTRL_NBAR_SHIFT`.
const PCI_REBAR_CTRL_NBAR_SHIFT: u32 = 5;
/// `PCI_DPA_CAP`.
const PCI_DPA_CAP: usize = 4;
/// `PCI_DPA_CAP_SUBSTATE_MASK`.
const PCI_DPA_CAP_SUBSTATE_MASK: u32 = 0x1f;
/// `PCI_DPA_BASE_SIZEOF`.
const PCI_DPA_BASE_SIZEOF: usize = 16;
/// `PCI_TPH_CAP`.
const PCI_TPH_CAP: usize = 4;
/// `PCI_TPH_CAP_LOC_MASK`.
const PCI_TPH_CAP_LOC_MASK: u32 = 0x600;
/// `PCI_TPH_LOC_CAP`.
const PCI_TPH_LOC_CAP: u32 = 0x200;
/// `PCI_TPH_CAP_ST_MASK`.
const PCI_TPH_CAP_ST_MASK: u32 = 0x07ff_0000;
/// `PCI_TPH_CAP_ST_SHIFT`.
const PCI_TPH_CAP_ST_SHIFT: u32 = 16;
/// `PCI_TPH_BASE_SIZEOF`.
const PCI_TPH_BASE_SIZEOF: usize = 0xc;

/// Marker in the length tables: the length is variable and computed from the device.
const LEN_VARIABLE: u16 = 0xff;

/// `pci_cap_length[]` (upstream 43-64); 0 hides the capability.
const PCI_CAP_LENGTH: [u16; 21] = [
    STD_HEADER_SIZEOF as u16, // BASIC
    8,                        // PM
    12,                       // AGP
    8,                        // VPD
    0,                        // SLOTID
    LEN_VARIABLE,             // MSI
    0,                        // CHSWP
    LEN_VARIABLE,             // PCIX
    LEN_VARIABLE,             // HT
    LEN_VARIABLE,             // VNDR
    0,                        // DBG
    0,                        // CCRC
    0,                        // SHPC
    0,                        // SSVID
    0,                        // AGP3
    0,                        // SECDEV
    LEN_VARIABLE,             // EXP
    12,                       // MSIX
    LEN_VARIABLE,             // SATA
    6,                        // AF
    0,                        // EA (absent from upstream's table)
];

/// `pci_ext_cap_length[]` (upstream 71-100); 0 hides the capability.
const PCI_EXT_CAP_LENGTH: [u16; 0x32] = {
    let mut t = [0u16; 0x32];
    t[0x01] = PCI_ERR_ROOT_COMMAND as u16; // ERR
    t[0x02] = LEN_VARIABLE; // VC
    t[0x03] = 12; // DSN
    t[0x04] = PCI_EXT_CAP_PWR_SIZEOF as u16; // PWR
    t[0x08] = LEN_VARIABLE; // MFVC
    t[0x09] = LEN_VARIABLE; // VC9
    t[0x0b] = LEN_VARIABLE; // VNDR
    t[0x0d] = LEN_VARIABLE; // ACS
    t[0x0e] = 8; // ARI
    t[0x0f] = 8; // ATS
    t[0x10] = 0x40; // SRIOV
    t[0x12] = 40; // MCAST (endpoint)
    t[0x13] = 16; // PRI
    t[0x15] = LEN_VARIABLE; // REBAR
    t[0x16] = LEN_VARIABLE; // DPA
    t[0x17] = LEN_VARIABLE; // TPH
    t[0x18] = 8; // LTR
    t[0x23] = LEN_VARIABLE; // DVSEC
    t
};

// ---------------------------------------------------------------------------------------------
// Permission tables (upstream 102-336, 661-1130)
// ---------------------------------------------------------------------------------------------

/// One `p_setb/p_setw/p_setd` call: `width` bytes at `off` get these virt/write bits.
#[derive(Clone, Copy)]
struct PermEntry {
    /// Offset in the capability.
    off: usize,
    /// 1, 2 or 4 bytes.
    width: usize,
    /// Virtualized bits.
    virt: u32,
    /// Writable bits.
    write: u32,
}

/// Shorthand constructor for a [`PermEntry`].
const fn pe(off: usize, width: usize, virt: u32, write: u32) -> PermEntry {
    PermEntry {
        off,
        width,
        virt,
        write,
    }
}

/// Builds the `virt` and `write` byte arrays of a permission table at compile time.
///
/// Only evaluated in constant context, so an out-of-range entry is a build error.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn build_perm<const N: usize>(entries: &[PermEntry]) -> ([u8; N], [u8; N]) {
    let mut virt = [0u8; N];
    let mut write = [0u8; N];
    let mut e = 0;
    while e < entries.len() {
        let ent = &entries[e];
        let v = ent.virt.to_le_bytes();
        let w = ent.write.to_le_bytes();
        let mut i = 0;
        while i < ent.width {
            virt[ent.off + i] = v[i];
            write[ent.off + i] = w[i];
            i += 1;
        }
        e += 1;
    }
    (virt, write)
}

/// The `virt`/`write` byte arrays of one `struct perm_bits`.
struct PermBits {
    /// Bits that live in vconfig.
    virt: &'static [u8],
    /// Bits the user may change.
    write: &'static [u8],
}

/// `ALL_VIRT`/`ALL_WRITE`.
const ALL: u32 = 0xffff_ffff;

/// Basic header (`init_pci_cap_basic_perm`, 661-706).
const BASIC_TABLE: ([u8; STD_HEADER_SIZEOF], [u8; STD_HEADER_SIZEOF]) = build_perm(&[
    pe(PCI_VENDOR_ID, 2, 0xffff, 0),
    pe(PCI_DEVICE_ID, 2, 0xffff, 0),
    pe(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE as u32, 0xffff),
    pe(PCI_STATUS, 2, PCI_STATUS_CAP_LIST as u32, 0),
    pe(PCI_CACHE_LINE_SIZE, 1, 0, 0xff),
    pe(PCI_LATENCY_TIMER, 1, 0, 0xff),
    pe(PCI_BIST, 1, 0, 0xff),
    pe(0x10, 4, ALL, ALL),
    pe(0x14, 4, ALL, ALL),
    pe(0x18, 4, ALL, ALL),
    pe(0x1c, 4, ALL, ALL),
    pe(0x20, 4, ALL, ALL),
    pe(0x24, 4, ALL, ALL),
    pe(PCI_ROM_ADDRESS, 4, ALL, ALL),
    pe(PCI_CAPABILITY_LIST, 1, 0xff, 0),
    pe(PCI_INTERRUPT_LINE, 1, 0xff, 0xff),
    pe(PCI_INTERRUPT_PIN, 1, 0xff, 0),
]);
/// Basic header permission bits.
static BASIC_BITS: PermBits = PermBits {
    virt: &BASIC_TABLE.0,
    write: &BASIC_TABLE.1,
};

/// Power management (`init_pci_cap_pm_perm`, 761-798).
const PM_TABLE: ([u8; 8], [u8; 8]) = build_perm(&[
    pe(PCI_CAP_LIST_NEXT, 1, 0xff, 0),
    pe(PCI_PM_PMC, 2, PCI_PM_CAP_PME_MASK as u32, 0),
    pe(
        PCI_PM_CTRL,
        4,
        (PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS) as u32,
        !((PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS) as u32 | PCI_PM_CTRL_STATE_MASK),
    ),
]);
/// PM permission bits.
static PM_BITS: PermBits = PermBits {
    virt: &PM_TABLE.0,
    write: &PM_TABLE.1,
};

/// Vital product data (`init_pci_cap_vpd_perm`, 849-866).
const VPD_TABLE: ([u8; 8], [u8; 8]) = build_perm(&[
    pe(PCI_CAP_LIST_NEXT, 1, 0xff, 0),
    pe(PCI_VPD_ADDR, 2, 0xffff, 0xffff),
    pe(PCI_VPD_DATA, 4, ALL, ALL),
]);
/// VPD permission bits.
static VPD_BITS: PermBits = PermBits {
    virt: &VPD_TABLE.0,
    write: &VPD_TABLE.1,
};

/// PCI-X (`init_pci_cap_pcix_perm`, 869-880).
const PCIX_TABLE: ([u8; PCI_CAP_PCIX_SIZEOF_V2], [u8; PCI_CAP_PCIX_SIZEOF_V2]) = build_perm(&[
    pe(PCI_CAP_LIST_NEXT, 1, 0xff, 0),
    pe(PCI_X_CMD, 2, 0, 0xffff),
    pe(PCI_X_ECC_CSR, 4, 0, ALL),
]);
/// PCI-X permission bits.
static PCIX_BITS: PermBits = PermBits {
    virt: &PCIX_TABLE.0,
    write: &PCIX_TABLE.1,
};

/// PCI Express (`init_pci_cap_exp_perm`, 945-967).
const EXP_TABLE: (
    [u8; PCI_CAP_EXP_ENDPOINT_SIZEOF_V2],
    [u8; PCI_CAP_EXP_ENDPOINT_SIZEOF_V2],
) = build_perm(&[
    pe(PCI_CAP_LIST_NEXT, 1, 0xff, 0),
    pe(
        PCI_EXP_DEVCTL,
        2,
        (PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ) as u32,
        (!PCI_EXP_DEVCTL_PHANTOM) as u32,
    ),
    pe(PCI_EXP_DEVCTL2, 2, 0, (!PCI_EXP_DEVCTL2_ARI) as u32),
]);
/// PCIe permission bits.
static EXP_BITS: PermBits = PermBits {
    virt: &EXP_TABLE.0,
    write: &EXP_TABLE.1,
};

/// Advanced features (`init_pci_cap_af_perm`, 1009-1019; 6 bytes rounded up to 8).
const AF_TABLE: ([u8; 8], [u8; 8]) = build_perm(&[
    pe(PCI_CAP_LIST_NEXT, 1, 0xff, 0),
    pe(
        PCI_AF_CTRL,
        1,
        PCI_AF_CTRL_FLR as u32,
        PCI_AF_CTRL_FLR as u32,
    ),
]);
/// AF permission bits.
static AF_BITS: PermBits = PermBits {
    virt: &AF_TABLE.0,
    write: &AF_TABLE.1,
};

/// AER (`init_pci_ext_cap_err_perm`, 1022-1073).
const ERR_TABLE: ([u8; PCI_ERR_ROOT_COMMAND], [u8; PCI_ERR_ROOT_COMMAND]) = build_perm(&[
    pe(0, 4, ALL, 0),
    pe(PCI_ERR_UNCOR_STATUS, 4, 0, AER_UNC_WRITABLE),
    pe(PCI_ERR_UNCOR_MASK, 4, 0, AER_UNC_WRITABLE),
    pe(PCI_ERR_UNCOR_SEVER, 4, 0, AER_UNC_WRITABLE),
    pe(PCI_ERR_COR_STATUS, 4, 0, AER_COR_WRITABLE),
    pe(PCI_ERR_COR_MASK, 4, 0, AER_COR_WRITABLE),
    pe(PCI_ERR_CAP, 4, 0, AER_CAP_WRITABLE),
]);
/// AER permission bits.
static ERR_BITS: PermBits = PermBits {
    virt: &ERR_TABLE.0,
    write: &ERR_TABLE.1,
};

/// Power budgeting (`init_pci_ext_cap_pwr_perm`, 1076-1086). Note that upstream makes
/// `PCI_PWR_DATA` (offset 8) writable, not the data-select register.
const PWR_TABLE: ([u8; PCI_EXT_CAP_PWR_SIZEOF], [u8; PCI_EXT_CAP_PWR_SIZEOF]) =
    build_perm(&[pe(0, 4, ALL, 0), pe(PCI_PWR_DATA, 1, 0, 0xff)]);
/// Power budgeting permission bits.
static PWR_BITS: PermBits = PermBits {
    virt: &PWR_TABLE.0,
    write: &PWR_TABLE.1,
};

/// Size of every MSI permission table (the largest MSI capability is 24 bytes).
const MSI_PERM_SIZE: usize = 24;

/// Builds the per-device MSI permissions (`init_pci_cap_msi_perm`, 1214-1246).
const fn msi_table(is64: bool, maskbit: bool) -> ([u8; MSI_PERM_SIZE], [u8; MSI_PERM_SIZE]) {
    let common = [
        pe(PCI_CAP_LIST_NEXT, 1, 0xff, 0),
        pe(PCI_MSI_FLAGS, 1, 0xff, 0xff),
        pe(0x04, 4, ALL, ALL), // ADDRESS_LO
    ];
    match (is64, maskbit) {
        (true, true) => build_perm(&[
            common[0],
            common[1],
            common[2],
            pe(0x08, 4, ALL, ALL),       // ADDRESS_HI
            pe(0x0c, 2, 0xffff, 0xffff), // DATA_64
            pe(0x10, 4, 0, ALL),         // MASK_64
            pe(0x14, 4, 0, ALL),         // PENDING_64
        ]),
        (true, false) => build_perm(&[
            common[0],
            common[1],
            common[2],
            pe(0x08, 4, ALL, ALL),
            pe(0x0c, 2, 0xffff, 0xffff),
        ]),
        (false, true) => build_perm(&[
            common[0],
            common[1],
            common[2],
            pe(0x08, 2, 0xffff, 0xffff), // DATA_32
            pe(0x0c, 4, 0, ALL),         // MASK_32
            pe(0x10, 4, 0, ALL),         // PENDING_32
        ]),
        (false, false) => {
            build_perm(&[common[0], common[1], common[2], pe(0x08, 2, 0xffff, 0xffff)])
        }
    }
}

/// MSI, 32-bit address, no per-vector masking.
const MSI_32_TABLE: ([u8; MSI_PERM_SIZE], [u8; MSI_PERM_SIZE]) = msi_table(false, false);
/// MSI, 32-bit address, per-vector masking.
const MSI_32_MASK_TABLE: ([u8; MSI_PERM_SIZE], [u8; MSI_PERM_SIZE]) = msi_table(false, true);
/// MSI, 64-bit address, no per-vector masking.
const MSI_64_TABLE: ([u8; MSI_PERM_SIZE], [u8; MSI_PERM_SIZE]) = msi_table(true, false);
/// MSI, 64-bit address, per-vector masking.
const MSI_64_MASK_TABLE: ([u8; MSI_PERM_SIZE], [u8; MSI_PERM_SIZE]) = msi_table(true, true);
/// The four MSI permission layouts, indexed by `ConfigSpace::msi_perm - 1`.
static MSI_BITS: [PermBits; 4] = [
    PermBits {
        virt: &MSI_32_TABLE.0,
        write: &MSI_32_TABLE.1,
    },
    PermBits {
        virt: &MSI_32_MASK_TABLE.0,
        write: &MSI_32_MASK_TABLE.1,
    },
    PermBits {
        virt: &MSI_64_TABLE.0,
        write: &MSI_64_TABLE.1,
    },
    PermBits {
        virt: &MSI_64_MASK_TABLE.0,
        write: &MSI_64_MASK_TABLE.1,
    },
];

/// Permission bits of the tables without bits (all readable, none writable or virtual).
static NO_BITS: PermBits = PermBits {
    virt: &[],
    write: &[],
};

/// Which `readfn` a permission table uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadFn {
    /// `vfio_default_config_read`.
    Default,
    /// `vfio_basic_config_read`.
    Basic,
    /// `vfio_direct_config_read`.
    Direct,
    /// `vfio_raw_config_read`.
    Raw,
    /// `vfio_virt_config_read`.
    Virt,
    /// `vfio_msi_config_read`.
    Msi,
}

/// Which `writefn` a permission table uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteFn {
    /// `vfio_default_config_write`.
    Default,
    /// `vfio_basic_config_write`.
    Basic,
    /// `vfio_pm_config_write`.
    Pm,
    /// `vfio_vpd_config_write`.
    Vpd,
    /// `vfio_exp_config_write`.
    Exp,
    /// `vfio_af_config_write`.
    Af,
    /// `vfio_msi_config_write`.
    Msi,
    /// `vfio_raw_config_write`.
    Raw,
    /// `vfio_virt_config_write`.
    Virt,
}

/// One `struct perm_bits`: bit tables plus handlers (`None` writefn drops writes).
#[derive(Clone, Copy)]
struct Perm {
    /// virt/write bit tables.
    bits: &'static PermBits,
    /// Read handler.
    read: ReadFn,
    /// Write handler; `None` silently drops writes.
    write: Option<WriteFn>,
}

/// `direct_ro_perms` and the default of `cap_perms[]`/`ecap_perms[]`.
const DIRECT_RO: Perm = Perm {
    bits: &NO_BITS,
    read: ReadFn::Direct,
    write: None,
};
/// `unassigned_perms`.
const UNASSIGNED: Perm = Perm {
    bits: &NO_BITS,
    read: ReadFn::Raw,
    write: Some(WriteFn::Raw),
};
/// `virt_perms`.
const VIRT: Perm = Perm {
    bits: &NO_BITS,
    read: ReadFn::Virt,
    write: Some(WriteFn::Virt),
};
/// Vendor-specific capabilities: direct read, raw write.
const VNDR: Perm = Perm {
    bits: &NO_BITS,
    read: ReadFn::Direct,
    write: Some(WriteFn::Raw),
};

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// `a + b` that cannot overflow (saturates; every saturated index is out of range anyway).
const fn add(a: usize, b: usize) -> usize {
    a.saturating_add(b)
}

/// `a - b` that cannot underflow.
const fn sub(a: usize, b: usize) -> usize {
    a.saturating_sub(b)
}

/// Little-endian value of `count` (<= 4) bytes of `bytes` at `off`; missing bytes read 0.
#[inline(always)]
fn le_get(bytes: &[u8], off: usize, count: usize) -> u32 {
    // Fast path, for every in-range access: one load instead of a checked loop per byte.
    if let Some(s) = off.checked_add(count).and_then(|end| bytes.get(off..end)) {
        match *s {
            [a, b, c, d] => return u32::from_le_bytes([a, b, c, d]),
            [a, b] => return u32::from(u16::from_le_bytes([a, b])),
            [a] => return u32::from(a),
            _ => {}
        }
    }
    le_get_slow(bytes, off, count)
}

/// [`le_get`] for an access that is not entirely in range (out of line: never on a hot path).
#[cold]
#[inline(never)]
fn le_get_slow(bytes: &[u8], off: usize, count: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, slot) in b.iter_mut().enumerate().take(count) {
        *slot = bytes.get(add(off, i)).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

/// Stores the low `count` (<= 4) bytes of `val` little-endian at `off`; bytes out of range are
/// dropped.
#[inline(always)]
fn le_set(bytes: &mut [u8], off: usize, count: usize, val: u32) {
    // Fast path, for every in-range access: one store instead of a checked loop per byte.
    // The widths are spelled out so each is one fixed-size store (a length-generic
    // `copy_from_slice` is an out-of-line call into memcpy).
    let [v0, v1, v2, v3] = val.to_le_bytes();
    if let Some(dst) = off
        .checked_add(count)
        .and_then(|end| bytes.get_mut(off..end))
    {
        match dst {
            [a, b, c, d] => {
                (*a, *b, *c, *d) = (v0, v1, v2, v3);
                return;
            }
            [a, b] => {
                (*a, *b) = (v0, v1);
                return;
            }
            [a] => {
                *a = v0;
                return;
            }
            _ => {}
        }
    }
    le_set_slow(bytes, off, count, val);
}

/// [`le_set`] for an access that is not entirely in range (out of line: never on a hot path).
#[cold]
#[inline(never)]
fn le_set_slow(bytes: &mut [u8], off: usize, count: usize, val: u32) {
    for (i, v) in val.to_le_bytes().iter().enumerate().take(count) {
        if let Some(slot) = bytes.get_mut(add(off, i)) {
            *slot = *v;
        }
    }
}

/// Low 16 bits of a value.
const fn lo16(v: u32) -> u16 {
    (v & 0xffff) as u16
}

/// Low 8 bits of a value.
const fn lo8(v: u32) -> u8 {
    (v & 0xff) as u8
}

/// `is_bar()` (upstream 34-36).
const fn is_bar(offset: usize) -> bool {
    (offset >= PCI_BASE_ADDRESS_0 && offset < PCI_BASE_ADDRESS_5 + 4)
        || (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4)
}

/// Reads through `pci_read_config_*` semantics (init path): misaligned offsets fail with
/// `EFAULT` (`PCIBIOS_BAD_REGISTER_NUMBER`), registers beyond 4095 with `EINVAL`.
fn init_read<B: ConfigBackend>(b: &mut B, off: usize, width: Width) -> Result<u32, Errno> {
    if !width.aligned(off) {
        return Err(Errno::EFAULT);
    }
    phys_read(b, off, width)
}

/// Reads through `pci_user_read_config_*` semantics: misaligned offsets fail with `EINVAL`
/// without touching the device, registers beyond 4095 with `EINVAL`.
#[inline(always)]
fn user_read<B: ConfigBackend>(b: &mut B, off: usize, width: Width) -> Result<u32, Errno> {
    if !width.aligned(off) {
        return Err(Errno::EINVAL);
    }
    phys_read(b, off, width)
}

/// Common part of [`init_read`] and [`user_read`] for aligned offsets.
#[inline(always)]
fn phys_read<B: ConfigBackend>(b: &mut B, off: usize, width: Width) -> Result<u32, Errno> {
    if add(off, width.bytes()) > CFG_SPACE_EXP_SIZE {
        return Err(Errno::EINVAL);
    }
    let off16 = u16::try_from(off).map_err(|_| Errno::EINVAL)?;
    Ok(b.hw_read(off16, width)? & width.mask())
}

/// Writes through `pci_user_write_config_*` semantics.
#[inline(always)]
fn user_write<B: ConfigBackend>(
    b: &mut B,
    off: usize,
    width: Width,
    value: u32,
) -> Result<(), Errno> {
    if !width.aligned(off) || add(off, width.bytes()) > CFG_SPACE_EXP_SIZE {
        return Err(Errno::EINVAL);
    }
    let off16 = u16::try_from(off).map_err(|_| Errno::EINVAL)?;
    b.hw_write(off16, width, value & width.mask())
}

/// Location of one chunk of an access (what upstream passes as `pos`, `count`, `offset`).
#[derive(Clone, Copy)]
struct Chunk {
    /// Absolute config offset.
    pos: usize,
    /// 1, 2 or 4.
    count: usize,
    /// Offset inside the capability (`pos - cap_start`).
    offset: usize,
}

impl Chunk {
    /// Start of the capability this chunk belongs to.
    const fn cap_start(self) -> usize {
        sub(self.pos, self.offset)
    }

    /// Physical access width of this chunk.
    const fn width(self) -> Width {
        Width::from_count(self.count)
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// Per-open virtual config space of one device (upstream `vdev->vconfig`,
/// `vdev->pci_config_map`, `rbar`, `bardirty`, `msi_perm`, `extended_caps`).
///
/// About 8 KiB: allocate it on the heap. All-zero bytes are a valid, empty value (identical to
/// [`ConfigSpace::new`]); an empty or failed `ConfigSpace` answers every non-empty access with
/// `EFAULT`.
pub(crate) struct ConfigSpace {
    /// Virtual config space.
    vconfig: [u8; CFG_SPACE_EXP_SIZE],
    /// Capability ID owning each byte (`CAP_ID_INVALID` for unassigned bytes).
    map: [u8; CFG_SPACE_EXP_SIZE],
    /// Config space size; 0 until a successful [`ConfigSpace::init`].
    cfg_size: usize,
    /// Facts given at init.
    facts: DeviceFacts,
    /// Physical BAR0-5 and ROM values saved at init, for restore after a backdoor reset.
    rbar: [u32; 7],
    /// The virtual BARs must be re-sized before the next BAR read.
    bardirty: bool,
    /// An extended capability chain was detected.
    extended_caps: bool,
    /// MSI permission layout: 0 = none yet, else 1 + index into `MSI_BITS`.
    msi_perm: u8,
}

impl ConfigSpace {
    /// An empty config space; call [`ConfigSpace::init`] before use.
    pub(crate) const fn new() -> Self {
        ConfigSpace {
            vconfig: [0; CFG_SPACE_EXP_SIZE],
            map: [0; CFG_SPACE_EXP_SIZE],
            cfg_size: 0,
            facts: DeviceFacts {
                cfg_size: 0,
                vendor: 0,
                device: 0,
                is_virtfn: false,
                no_command_memory: false,
                nointx: false,
                irq_present: false,
                pcie_flags: 0,
                bars: [BarResource {
                    start: 0,
                    len: 0,
                    io: false,
                    prefetch: false,
                    mem64: false,
                }; 6],
                rom_start: 0,
                rom_len: 0,
                shadow_rom_len: 0,
            },
            rbar: [0; 7],
            bardirty: false,
            extended_caps: false,
            msi_perm: 0,
        }
    }

    /// Builds the virtual config space from the device (`vfio_config_init`, 1750-1853,
    /// with `vfio_cap_init` and `vfio_ecap_init`). Call at open, after the device is enabled.
    ///
    /// On error the object is left empty (every access fails with `EFAULT`).
    pub(crate) fn init<B: ConfigBackend>(
        &mut self,
        facts: &DeviceFacts,
        backend: &mut B,
    ) -> Result<(), Errno> {
        let res = self.do_init(facts, backend);
        if res.is_err() {
            self.cfg_size = 0;
        }
        res
    }

    /// Body of [`ConfigSpace::init`].
    fn do_init<B: ConfigBackend>(&mut self, facts: &DeviceFacts, b: &mut B) -> Result<(), Errno> {
        let cfg_size = usize::from(facts.cfg_size);
        self.cfg_size = 0;
        self.facts = *facts;
        self.rbar = [0; 7];
        self.bardirty = false;
        self.extended_caps = false;
        self.msi_perm = 0;
        self.vconfig.fill(0);
        self.map.fill(CAP_ID_INVALID);

        if !(STD_HEADER_SIZEOF..=CFG_SPACE_EXP_SIZE).contains(&cfg_size) || cfg_size % 4 != 0 {
            return Err(Errno::EINVAL);
        }

        if let Some(hdr) = self.map.get_mut(..STD_HEADER_SIZEOF) {
            hdr.fill(CAP_ID_BASIC);
        }

        self.fill_vconfig_bytes(b, 0, STD_HEADER_SIZEOF)?;

        self.bardirty = true;

        // For restore after reset.
        for (i, slot) in self.rbar.iter_mut().enumerate().take(6) {
            *slot = le_get(
                &self.vconfig,
                add(PCI_BASE_ADDRESS_0, i.saturating_mul(4)),
                4,
            );
        }
        if let Some(slot) = self.rbar.get_mut(6) {
            *slot = le_get(&self.vconfig, PCI_ROM_ADDRESS, 4);
        }

        if facts.is_virtfn {
            le_set(&mut self.vconfig, PCI_VENDOR_ID, 2, u32::from(facts.vendor));
            le_set(&mut self.vconfig, PCI_DEVICE_ID, 2, u32::from(facts.device));
            // VFs must implement the pin as read-only zero (SR-IOV 1.1, 3.4.1.18).
            self.set_vbyte(PCI_INTERRUPT_PIN, 0);
        }
        if facts.no_command_memory {
            let cmd = self.vword(PCI_COMMAND) | PCI_COMMAND_MEMORY;
            self.set_vword(PCI_COMMAND, cmd);
        }
        if facts.nointx || !facts.irq_present {
            self.set_vbyte(PCI_INTERRUPT_PIN, 0);
        }

        // The handlers below bound their accesses by `cfg_size`.
        self.cfg_size = cfg_size;

        self.cap_init(b)?;
        self.ecap_init(b)?;
        Ok(())
    }

    // ----- accessors ------------------------------------------------------------------------

    /// `pdev->cfg_size` of an initialised config space, 0 when empty.
    #[allow(dead_code)] // Diagnostic accessor.
    pub(crate) fn cfg_size(&self) -> usize {
        self.cfg_size
    }

    /// The virtual config space (`cfg_size` bytes).
    #[allow(dead_code)] // Diagnostic accessor.
    pub(crate) fn vconfig(&self) -> &[u8] {
        self.vconfig.get(..self.cfg_size).unwrap_or(&[])
    }

    /// Capability ID owning config byte `pos` (0 = header, 0xff = unassigned), if in range.
    #[allow(dead_code)] // Diagnostic accessor.
    pub(crate) fn cap_id_at(&self, pos: usize) -> Option<u8> {
        if pos < self.cfg_size {
            self.map.get(pos).copied()
        } else {
            None
        }
    }

    /// Physical BAR0-5 and ROM BAR values saved at init (`vdev->rbar`).
    #[allow(dead_code)] // Diagnostic accessor.
    pub(crate) fn saved_bars(&self) -> &[u32; 7] {
        &self.rbar
    }

    /// The virtual interrupt pin (`vconfig[PCI_INTERRUPT_PIN]`); the INTx count reported by
    /// `VFIO_DEVICE_GET_IRQ_INFO` is 1 when it is non-zero (`vfio_pci_core.c:861`). It never
    /// changes after init.
    pub(crate) fn intx_pin(&self) -> u8 {
        self.vbyte(PCI_INTERRUPT_PIN)
    }

    /// Virtual memory-enable state: `no_command_memory` or the virtual COMMAND MEM bit (the
    /// config-space half of `__vfio_pci_memory_enabled`; the driver adds the power-state check).
    pub(crate) fn memory_enabled(&self) -> bool {
        self.facts.no_command_memory || self.vword(PCI_COMMAND) & PCI_COMMAND_MEMORY != 0
    }

    // ----- vconfig helpers ------------------------------------------------------------------

    /// Byte of vconfig (0 when out of range).
    fn vbyte(&self, pos: usize) -> u8 {
        self.vconfig.get(pos).copied().unwrap_or(0)
    }

    /// Sets a byte of vconfig (dropped when out of range).
    fn set_vbyte(&mut self, pos: usize, v: u8) {
        if let Some(slot) = self.vconfig.get_mut(pos) {
            *slot = v;
        }
    }

    /// Little-endian word of vconfig.
    fn vword(&self, pos: usize) -> u16 {
        lo16(le_get(&self.vconfig, pos, 2))
    }

    /// Sets a little-endian word of vconfig.
    fn set_vword(&mut self, pos: usize, v: u16) {
        le_set(&mut self.vconfig, pos, 2, u32::from(v));
    }

    /// Little-endian dword of vconfig.
    fn vdword(&self, pos: usize) -> u32 {
        le_get(&self.vconfig, pos, 4)
    }

    /// Sets a little-endian dword of vconfig.
    fn set_vdword(&mut self, pos: usize, v: u32) {
        le_set(&mut self.vconfig, pos, 4, v);
    }

    /// Capability ID of byte `pos` of the map (`CAP_ID_INVALID` when out of range).
    fn map_at(&self, pos: usize) -> u8 {
        self.map.get(pos).copied().unwrap_or(CAP_ID_INVALID)
    }

    /// `memset(map + pos, cap, len)`, clamped to the model's 4096-byte map.
    fn map_fill(&mut self, pos: usize, len: usize, cap: u8) {
        let end = min(add(pos, len), CFG_SPACE_EXP_SIZE);
        if let Some(s) = self.map.get_mut(pos..end) {
            s.fill(cap);
        }
    }

    // ----- init -----------------------------------------------------------------------------

    /// `vfio_fill_vconfig_bytes` (1490-1535): copies physical config space in the largest
    /// aligned chunks.
    fn fill_vconfig_bytes<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        mut offset: usize,
        mut size: usize,
    ) -> Result<(), Errno> {
        while size != 0 {
            let width = if size >= 4 && offset % 4 == 0 {
                Width::Dword
            } else if size >= 2 && offset % 2 == 0 {
                Width::Word
            } else {
                Width::Byte
            };
            let v = init_read(b, offset, width)?;
            le_set(&mut self.vconfig, offset, width.bytes(), v);
            offset = add(offset, width.bytes());
            size = sub(size, width.bytes());
        }
        Ok(())
    }

    /// `vfio_cap_init` (1537-1628): walks the standard capability chain.
    fn cap_init<B: ConfigBackend>(&mut self, b: &mut B) -> Result<(), Errno> {
        let status = lo16(init_read(b, PCI_STATUS, Width::Word)?);
        if status & PCI_STATUS_CAP_LIST == 0 {
            return Ok(());
        }

        let mut pos = usize::from(lo8(init_read(b, PCI_CAPABILITY_LIST, Width::Byte)?));
        // Position of the "next" byte to rewrite when a capability is hidden.
        let mut prev = PCI_CAPABILITY_LIST;
        let mut loops = (CFG_SPACE_SIZE - STD_HEADER_SIZEOF) / PCI_CAP_SIZEOF;
        let mut caps = 0usize;

        while pos != 0 && loops != 0 {
            loops = sub(loops, 1);
            let cap = lo8(init_read(b, pos, Width::Byte)?);
            let next = lo8(init_read(b, add(pos, PCI_CAP_LIST_NEXT), Width::Byte)?);

            // ID 0 is a NULL capability, conflicting with the fake PCI_CAP_ID_BASIC: hidden.
            let mut len = 0usize;
            if cap != 0 && cap <= CAP_ID_MAX {
                let l = PCI_CAP_LENGTH.get(usize::from(cap)).copied().unwrap_or(0);
                len = if l == LEN_VARIABLE {
                    self.cap_len(b, cap, pos)?
                } else {
                    usize::from(l)
                };
            }

            if len == 0 {
                self.set_vbyte(prev, next);
                pos = usize::from(next);
                continue;
            }

            // Overlapping capabilities only produce a warning upstream.
            self.map_fill(pos, len, cap);
            self.fill_vconfig_bytes(b, pos, len)?;

            if cap == CAP_ID_PM {
                // vfio_update_pm_vconfig_bytes (1479-1488).
                let pmc = self.vword(add(pos, PCI_PM_PMC)) & !PCI_PM_CAP_PME_MASK;
                self.set_vword(add(pos, PCI_PM_PMC), pmc);
                let ctrl = self.vword(add(pos, PCI_PM_CTRL))
                    & !(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS);
                self.set_vword(add(pos, PCI_PM_CTRL), ctrl);
            }

            prev = add(pos, PCI_CAP_LIST_NEXT);
            pos = usize::from(next);
            caps = add(caps, 1);
        }

        if caps == 0 {
            let st = self.vword(PCI_STATUS) & !PCI_STATUS_CAP_LIST;
            self.set_vword(PCI_STATUS, st);
        }
        Ok(())
    }

    /// Tests for an extended capability chain like upstream (1341-1346): a non-zero dword at
    /// 0x100; a failed read counts as all ones.
    fn probe_extended_caps<B: ConfigBackend>(&mut self, b: &mut B) {
        if self.cfg_size > CFG_SPACE_SIZE {
            let dword = init_read(b, CFG_SPACE_SIZE, Width::Dword).unwrap_or(u32::MAX);
            self.extended_caps = dword != 0;
        }
    }

    /// `vfio_cap_len` (1324-1397): length of a variable-length standard capability.
    fn cap_len<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        cap: u8,
        pos: usize,
    ) -> Result<usize, Errno> {
        match cap {
            CAP_ID_MSI => {
                // vfio_msi_cap_len (1249-1280).
                let flags = lo16(init_read(b, add(pos, PCI_MSI_FLAGS), Width::Word)?);
                let is64 = flags & PCI_MSI_FLAGS_64BIT != 0;
                let maskbit = flags & PCI_MSI_FLAGS_MASKBIT != 0;
                let mut len = 10;
                if is64 {
                    len = add(len, 4);
                }
                if maskbit {
                    len = add(len, 10);
                }
                if self.msi_perm == 0 {
                    self.msi_perm = match (is64, maskbit) {
                        (false, false) => 1,
                        (false, true) => 2,
                        (true, false) => 3,
                        (true, true) => 4,
                    };
                }
                Ok(len)
            }
            CAP_ID_PCIX => {
                let word = init_read(b, add(pos, PCI_X_CMD), Width::Word)?;
                if (word >> 12) & 3 != 0 {
                    self.probe_extended_caps(b);
                    Ok(PCI_CAP_PCIX_SIZEOF_V2)
                } else {
                    Ok(PCI_CAP_PCIX_SIZEOF_V0)
                }
            }
            CAP_ID_VNDR => {
                // Length follows the next field.
                let byte = init_read(b, add(pos, PCI_CAP_FLAGS), Width::Byte)?;
                Ok(usize::from(lo8(byte)))
            }
            CAP_ID_EXP => {
                self.probe_extended_caps(b);
                let flags = self.facts.pcie_flags;
                let rc_end = (flags & PCI_EXP_FLAGS_TYPE) >> 4 == PCI_EXP_TYPE_RC_END;
                if flags & PCI_EXP_FLAGS_VERS == 1 {
                    Ok(if rc_end {
                        0xc
                    } else {
                        PCI_CAP_EXP_ENDPOINT_SIZEOF_V1
                    })
                } else {
                    Ok(if rc_end {
                        0x2c
                    } else {
                        PCI_CAP_EXP_ENDPOINT_SIZEOF_V2
                    })
                }
            }
            CAP_ID_HT => {
                let byte = init_read(b, add(pos, 3), Width::Byte)?;
                Ok(if byte & HT_3BIT_CAP_MASK != 0 {
                    HT_CAP_SIZEOF_SHORT
                } else {
                    HT_CAP_SIZEOF_LONG
                })
            }
            CAP_ID_SATA => {
                let byte = init_read(b, add(pos, PCI_SATA_REGS), Width::Byte)?;
                Ok(if byte & PCI_SATA_REGS_MASK == PCI_SATA_REGS_INLINE {
                    PCI_SATA_SIZEOF_LONG
                } else {
                    PCI_SATA_SIZEOF_SHORT
                })
            }
            _ => Ok(0),
        }
    }

    /// `vfio_vc_cap_len` (1283-1322): length of a VC, VC9 or MFVC capability.
    fn vc_cap_len<B: ConfigBackend>(b: &mut B, pos: usize) -> Result<usize, Errno> {
        let tmp = init_read(b, add(pos, PCI_VC_PORT_CAP1), Width::Dword)?;
        let evcc = (tmp & PCI_VC_CAP1_EVCC) as usize;
        let tmp = init_read(b, add(pos, PCI_VC_PORT_CAP2), Width::Dword)?;
        let phases: usize = if tmp & PCI_VC_CAP2_128_PHASE != 0 {
            128
        } else if tmp & PCI_VC_CAP2_64_PHASE != 0 {
            64
        } else if tmp & PCI_VC_CAP2_32_PHASE != 0 {
            32
        } else {
            0
        };
        let vc_arb = phases.saturating_mul(4);
        let mut len = add(
            PCI_CAP_VC_BASE_SIZEOF,
            add(1, evcc).saturating_mul(PCI_CAP_VC_PER_VC_SIZEOF),
        );
        if vc_arb != 0 {
            len = add(len, 15) & !15;
            len = add(len, vc_arb / 8);
        }
        Ok(len)
    }

    /// `vfio_ext_cap_len` (1399-1477): length of a variable-length extended capability.
    fn ext_cap_len<B: ConfigBackend>(b: &mut B, ecap: u16, epos: usize) -> Result<usize, Errno> {
        match ecap {
            ECAP_ID_VNDR | ECAP_ID_DVSEC => {
                let dword = init_read(b, add(epos, PCI_VNDR_HEADER), Width::Dword)?;
                Ok(((dword >> 20) & 0xfff) as usize)
            }
            ECAP_ID_VC | ECAP_ID_VC9 | ECAP_ID_MFVC => Self::vc_cap_len(b, epos),
            ECAP_ID_ACS => {
                let byte = init_read(b, add(epos, PCI_ACS_CAP), Width::Byte)?;
                if byte & PCI_ACS_EC != 0 {
                    let byte = init_read(b, add(epos, PCI_ACS_EGRESS_BITS), Width::Byte)?;
                    let bits = if byte != 0 {
                        add(byte as usize, 31) & !31
                    } else {
                        256
                    };
                    Ok(add(8, bits / 8))
                } else {
                    Ok(8)
                }
            }
            ECAP_ID_REBAR => {
                let byte = init_read(b, add(epos, PCI_REBAR_CTRL), Width::Byte)?;
                let nbar = (byte & PCI_REBAR_CTRL_NBAR_MASK) >> PCI_REBAR_CTRL_NBAR_SHIFT;
                Ok(add(4, (nbar as usize).saturating_mul(8)))
            }
            ECAP_ID_DPA => {
                let byte = init_read(b, add(epos, PCI_DPA_CAP), Width::Byte)?;
                Ok(add(
                    PCI_DPA_BASE_SIZEOF,
                    add((byte & PCI_DPA_CAP_SUBSTATE_MASK) as usize, 1),
                ))
            }
            ECAP_ID_TPH => {
                let dword = init_read(b, add(epos, PCI_TPH_CAP), Width::Dword)?;
                if dword & PCI_TPH_CAP_LOC_MASK == PCI_TPH_LOC_CAP {
                    let sts = ((dword & PCI_TPH_CAP_ST_MASK) >> PCI_TPH_CAP_ST_SHIFT) as usize;
                    Ok(add(PCI_TPH_BASE_SIZEOF, add(sts.saturating_mul(2), 2)))
                } else {
                    Ok(PCI_TPH_BASE_SIZEOF)
                }
            }
            _ => Ok(0),
        }
    }

    /// `vfio_ecap_init` (1630-1726): walks the extended capability chain.
    fn ecap_init<B: ConfigBackend>(&mut self, b: &mut B) -> Result<(), Errno> {
        if !self.extended_caps {
            return Ok(());
        }

        let mut epos = CFG_SPACE_SIZE;
        let mut prev: Option<usize> = None;
        let mut loops = sub(self.cfg_size, CFG_SPACE_SIZE) / PCI_CAP_SIZEOF;
        let mut ecaps = 0usize;

        while loops != 0 && epos >= CFG_SPACE_SIZE {
            loops = sub(loops, 1);
            let header = init_read(b, epos, Width::Dword)?;
            let ecap = lo16(header);
            let next = ((header >> 20) & 0xffc) as usize;
            let mut len = 0usize;
            let mut hidden = false;

            if ecap <= ECAP_ID_MAX {
                let l = PCI_EXT_CAP_LENGTH
                    .get(usize::from(ecap))
                    .copied()
                    .unwrap_or(0);
                len = if l == LEN_VARIABLE {
                    Self::ext_cap_len(b, ecap, epos)?
                } else {
                    usize::from(l)
                };
            }

            if len == 0 {
                if let Some(p) = prev {
                    // Not the first in the chain: skip over it.
                    epos = next;
                    let v = (self.vdword(p) & !(0xffc_u32 << 20)) | ((next as u32) << 20);
                    self.set_vdword(p, v);
                    continue;
                }
                // First in the chain: a placeholder that keeps only the next pointer.
                len = PCI_CAP_SIZEOF;
                hidden = true;
            }

            // Upstream stores the ID truncated to one byte in the map.
            self.map_fill(epos, len, lo8(u32::from(ecap)));
            self.fill_vconfig_bytes(b, epos, len)?;

            if hidden {
                let v = self.vdword(epos) & (0xffc_u32 << 20);
                self.set_vdword(epos, v);
            } else {
                ecaps = add(ecaps, 1);
            }

            prev = Some(epos);
            epos = next;
        }

        if ecaps == 0 {
            self.set_vdword(CFG_SPACE_SIZE, 0);
        }
        Ok(())
    }

    // ----- access ---------------------------------------------------------------------------

    /// `vfio_pci_config_rw` (1977-2000): reads or writes `buf.len()` bytes at region offset
    /// `pos` (the index bits above bit 40 are masked off).
    ///
    /// For a write, `buf` holds the user's data (copied in by the driver first); for a read the
    /// data is stored into `buf` (the driver copies it out afterwards). Returns the number of
    /// bytes transferred, which is `buf.len()` unless an error is returned. Accesses that are
    /// not entirely inside config space fail with `EFAULT` before anything is accessed.
    ///
    /// Inlined (the header fast path lands in the caller); the general loop is out of line.
    #[inline]
    pub(crate) fn rw<B: ConfigBackend>(
        &mut self,
        backend: &mut B,
        pos: u64,
        buf: &mut [u8],
        write: bool,
    ) -> Result<usize, Errno> {
        let pos = pos & VFIO_PCI_OFFSET_MASK;
        if let Some(done) = self.rw_basic_fast(backend, pos, buf, write) {
            return done;
        }
        self.rw_chunks(backend, pos, buf, write)
    }

    /// The general path of [`Self::rw`]: chunk by chunk through [`Self::rw_single`].
    #[inline(never)]
    fn rw_chunks<B: ConfigBackend>(
        &mut self,
        backend: &mut B,
        mut pos: u64,
        buf: &mut [u8],
        write: bool,
    ) -> Result<usize, Errno> {
        let mut done = 0usize;
        while let Some(rest) = buf.get_mut(done..) {
            if rest.is_empty() {
                break;
            }
            let n = self.rw_single(backend, pos, rest, write)?;
            done = add(done, n);
            pos = pos.saturating_add(n as u64);
        }
        Ok(done)
    }

    /// Fast path of [`Self::rw`] for the most common access: one naturally aligned 1-, 2- or
    /// 4-byte register of the standard header (the first 64 bytes, all of the basic
    /// capability). It makes the one chunk [`Self::rw_single`] would make for it (offset
    /// `pos`, the basic permissions) without the general chunking and permission lookup, and
    /// calls the same handler, so the answer and the side effects are the same. `None` for
    /// anything else (then nothing was done).
    #[inline]
    fn rw_basic_fast<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        pos: u64,
        buf: &mut [u8],
        write: bool,
    ) -> Option<Result<usize, Errno>> {
        let count = buf.len();
        if !matches!(count, 1 | 2 | 4) || pos & (count as u64).wrapping_sub(1) != 0 {
            return None;
        }
        // Inside the header, which is inside config space (`rw_single`'s EFAULT check passes).
        let pos = usize::try_from(pos).ok()?;
        let end = pos.checked_add(count)?;
        if end > STD_HEADER_SIZEOF || end > self.cfg_size {
            return None;
        }
        // The chunk `rw_single` makes: the whole access, inside one capability, the basic one.
        let basic = match self.map.get(pos..end)? {
            [a] => *a == CAP_ID_BASIC,
            [a, b] => *a == CAP_ID_BASIC && *b == CAP_ID_BASIC,
            [a, b, c, d] => [*a, *b, *c, *d] == [CAP_ID_BASIC; 4],
            _ => false,
        };
        if !basic {
            return None;
        }
        let c = Chunk {
            pos,
            count,
            offset: pos,
        };
        if write {
            let val = le_get(buf, 0, count);
            if let Err(e) = self.basic_write(b, &BASIC_BITS, c, val) {
                return Some(Err(e));
            }
        } else {
            match self.basic_read(b, &BASIC_BITS, c) {
                Ok(val) => le_set(buf, 0, count, val),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(count))
    }

    /// `vfio_pci_cap_remaining_dword` (1872-1882).
    fn cap_remaining_dword(&self, pos: usize) -> usize {
        // Common case first: an aligned dword inside one capability (one compare, not a
        // loop over its bytes).
        if pos % 4 == 0 {
            if let Some(&[a, b, c, d]) = self.map.get(pos..add(pos, 4)) {
                if a == b && a == c && a == d {
                    return 4;
                }
            }
        }
        let cap = self.map_at(pos);
        let mut i = 1usize;
        while add(pos, i) % 4 != 0 && self.map.get(add(pos, i)).copied() == Some(cap) {
            i = add(i, 1);
        }
        i
    }

    /// `vfio_find_cap_start` (1132-1147).
    fn find_cap_start(&self, pos: usize) -> usize {
        let cap = self.map_at(pos);
        if cap == CAP_ID_BASIC {
            return 0;
        }
        let base = if pos >= CFG_SPACE_SIZE {
            CFG_SPACE_SIZE
        } else {
            STD_HEADER_SIZEOF
        };
        let mut p = pos;
        while p > base && self.map_at(sub(p, 1)) == cap {
            p = sub(p, 1);
        }
        p
    }

    /// `cap_perms[id]` after `vfio_pci_init_perm_bits` (1105-1130), with the per-device MSI
    /// permissions.
    fn cap_perm(&self, id: u8) -> Perm {
        match id {
            CAP_ID_BASIC => Perm {
                bits: &BASIC_BITS,
                read: ReadFn::Basic,
                write: Some(WriteFn::Basic),
            },
            CAP_ID_PM => Perm {
                bits: &PM_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Pm),
            },
            CAP_ID_VPD => Perm {
                bits: &VPD_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Vpd),
            },
            CAP_ID_PCIX => Perm {
                bits: &PCIX_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Default),
            },
            CAP_ID_VNDR => VNDR,
            CAP_ID_EXP => Perm {
                bits: &EXP_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Exp),
            },
            CAP_ID_AF => Perm {
                bits: &AF_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Af),
            },
            CAP_ID_MSI => match MSI_BITS.get(usize::from(self.msi_perm).wrapping_sub(1)) {
                Some(bits) => Perm {
                    bits,
                    read: ReadFn::Msi,
                    write: Some(WriteFn::Msi),
                },
                None => DIRECT_RO,
            },
            // AGP, HT, MSI-X, SATA and any other kept capability: direct read-only.
            _ => DIRECT_RO,
        }
    }

    /// `ecap_perms[id]` after `vfio_pci_init_perm_bits`.
    fn ecap_perm(id: u8) -> Perm {
        match u16::from(id) {
            ECAP_ID_ERR => Perm {
                bits: &ERR_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Default),
            },
            ECAP_ID_PWR => Perm {
                bits: &PWR_BITS,
                read: ReadFn::Default,
                write: Some(WriteFn::Default),
            },
            ECAP_ID_VNDR | ECAP_ID_DVSEC => VNDR,
            _ => DIRECT_RO,
        }
    }

    /// `vfio_pci_config_rw_single` (1884-1974): one chunk of at most a dword, inside one
    /// capability, naturally aligned. `buf` is the rest of the user buffer.
    fn rw_single<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        pos: u64,
        buf: &mut [u8],
        write: bool,
    ) -> Result<usize, Errno> {
        let cfg = self.cfg_size as u64;
        let total = buf.len() as u64;
        if pos >= cfg || pos.checked_add(total).is_none_or(|end| end > cfg) {
            return Err(Errno::EFAULT);
        }
        let pos = usize::try_from(pos).map_err(|_| Errno::EFAULT)?;

        // Chop accesses into aligned chunks containing no more than a single capability.
        let c = min(buf.len(), self.cap_remaining_dword(pos));
        let count = if c >= 4 && pos % 4 == 0 {
            4
        } else if c >= 2 && pos % 2 == 0 {
            2
        } else {
            1
        };

        let cap_id = self.map_at(pos);
        let (perm, cap_start) = if cap_id == CAP_ID_INVALID {
            (UNASSIGNED, pos)
        } else if cap_id == CAP_ID_INVALID_VIRT {
            (VIRT, pos)
        } else if pos >= CFG_SPACE_SIZE {
            // An ID above PCI_EXT_CAP_ID_MAX can only come from a hidden first extended
            // capability: default read-only access virtualizes its header.
            let perm = if u16::from(cap_id) > ECAP_ID_MAX {
                DIRECT_RO
            } else {
                Self::ecap_perm(cap_id)
            };
            (perm, self.find_cap_start(pos))
        } else {
            let perm = self.cap_perm(cap_id);
            let start = if cap_id > CAP_ID_BASIC {
                self.find_cap_start(pos)
            } else {
                0
            };
            (perm, start)
        };

        let chunk = Chunk {
            pos,
            count,
            offset: sub(pos, cap_start),
        };
        let data = buf.get_mut(..count).ok_or(Errno::EFAULT)?;

        if write {
            let Some(wfn) = perm.write else {
                return Ok(count);
            };
            let val = le_get(data, 0, count);
            self.write_fn(b, wfn, perm.bits, chunk, val)?;
        } else {
            let val = self.read_fn(b, perm.read, perm.bits, chunk)?;
            le_set(data, 0, count, val);
        }
        Ok(count)
    }

    // ----- read handlers --------------------------------------------------------------------

    /// Dispatches a `readfn`.
    fn read_fn<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        rfn: ReadFn,
        bits: &PermBits,
        c: Chunk,
    ) -> Result<u32, Errno> {
        match rfn {
            ReadFn::Default => self.default_read(b, bits, c),
            ReadFn::Basic => self.basic_read(b, bits, c),
            ReadFn::Direct => self.direct_read(b, c),
            ReadFn::Raw => user_read(b, c.pos, c.width()),
            ReadFn::Virt => Ok(le_get(&self.vconfig, c.pos, c.count)),
            ReadFn::Msi => self.msi_read(b, bits, c),
        }
    }

    /// `vfio_default_config_read` (175-199).
    #[inline]
    fn default_read<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
    ) -> Result<u32, Errno> {
        let val = le_get(&self.vconfig, c.pos, c.count);
        let virt = le_get(bits.virt, c.offset, c.count);
        // Any non-virtualized bits?
        if virt != c.width().mask() {
            return Self::merge_phys(b, c, val, virt);
        }
        Ok(val)
    }

    /// The hardware part of [`Self::default_read`]: the non-virtualized bits from the device,
    /// the virtualized ones from `val`. Out of line, so that a fully virtualized read (the
    /// IDs, the BARs) does not pay for the hardware access's frame.
    #[inline(never)]
    fn merge_phys<B: ConfigBackend>(
        b: &mut B,
        c: Chunk,
        val: u32,
        virt: u32,
    ) -> Result<u32, Errno> {
        let phys = user_read(b, c.pos, c.width())?;
        Ok((phys & !virt) | (val & virt))
    }

    /// `vfio_basic_config_read` (526-545).
    #[inline]
    fn basic_read<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
    ) -> Result<u32, Errno> {
        if is_bar(c.offset) {
            self.bar_fixup();
        }
        let mut val = self.default_read(b, bits, c)?;
        // Mask in virtual memory enable.
        if c.offset == PCI_COMMAND && self.facts.no_command_memory {
            val |= u32::from(self.vword(PCI_COMMAND) & PCI_COMMAND_MEMORY);
        }
        Ok(val)
    }

    /// `vfio_direct_config_read` (248-270): hardware, with the capability header bytes from
    /// vconfig so chain edits stay visible.
    fn direct_read<B: ConfigBackend>(&mut self, b: &mut B, c: Chunk) -> Result<u32, Errno> {
        let mut val = user_read(b, c.pos, c.width())?;
        if c.pos >= CFG_SPACE_SIZE {
            // Extended capability header mangling.
            if c.offset < 4 {
                val = le_get(&self.vconfig, c.pos, c.count);
            }
        } else if c.pos >= STD_HEADER_SIZEOF {
            // Standard capability mangling.
            if c.offset == 0 && c.count > 1 {
                let n = min(PCI_CAP_FLAGS, c.count);
                let mut bytes = val.to_le_bytes();
                for (i, slot) in bytes.iter_mut().enumerate().take(n) {
                    *slot = self.vbyte(add(c.pos, i));
                }
                val = u32::from_le_bytes(bytes);
            } else if c.offset == PCI_CAP_LIST_NEXT {
                val = (val & !0xff) | u32::from(self.vbyte(c.pos));
            }
        }
        Ok(val)
    }

    /// `vfio_msi_config_read` (1149-1166).
    ///
    /// Upstream rewrites the queue-mask bits of the word at the *start* of the capability (the
    /// ID byte, which MSI reads from hardware), not of the flags word; this is reproduced as
    /// is, so a flags read returns the Multiple Message Capable value from vconfig.
    fn msi_read<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
    ) -> Result<u32, Errno> {
        if c.offset <= PCI_MSI_FLAGS && add(c.offset, c.count) >= PCI_MSI_FLAGS {
            let start = self.find_cap_start(c.pos);
            let qmax = b.msi_irq_state().qmax;
            let flags = (self.vword(start) & !PCI_MSI_FLAGS_QMASK) | (u16::from(qmax) << 1);
            self.set_vword(start, flags);
        }
        self.default_read(b, bits, c)
    }

    /// `vfio_bar_fixup` (472-524): BAR sizing emulation.
    fn bar_fixup(&mut self) {
        if !self.bardirty {
            return;
        }

        let mut i = 0usize;
        while i < 6 {
            let off = add(PCI_BASE_ADDRESS_0, i.saturating_mul(4));
            let res = self.facts.bars.get(i).copied().unwrap_or_default();
            if res.start == 0 {
                // Unmapped by host = unimplemented to user.
                self.set_vdword(off, 0);
                i = add(i, 1);
                continue;
            }

            let mask: u64 = !res.len.wrapping_sub(1);
            let flags = if res.io {
                PCI_BASE_ADDRESS_SPACE_IO
            } else {
                let mut f = 0;
                if res.prefetch {
                    f |= PCI_BASE_ADDRESS_MEM_PREFETCH;
                }
                if res.mem64 {
                    f |= PCI_BASE_ADDRESS_MEM_TYPE_64;
                }
                f
            };
            let vbar = (self.vdword(off) & (mask as u32)) | flags;
            self.set_vdword(off, vbar);

            // Tested on the resulting value, as upstream does.
            if vbar & PCI_BASE_ADDRESS_MEM_TYPE_64 != 0 {
                let hi = add(off, 4);
                let v = self.vdword(hi) & ((mask >> 32) as u32);
                self.set_vdword(hi, v);
                i = add(i, 1);
            }
            i = add(i, 1);
        }

        let rom = self.vdword(PCI_ROM_ADDRESS);
        let v = if self.facts.rom_start != 0 {
            let mask = !self.facts.rom_len.wrapping_sub(1) | PCI_ROM_ADDRESS_ENABLE;
            rom & (mask as u32)
        } else if self.facts.shadow_rom_len != 0 {
            let size = self
                .facts
                .shadow_rom_len
                .checked_next_power_of_two()
                .unwrap_or(0);
            let mask = !size.wrapping_sub(1) | PCI_ROM_ADDRESS_ENABLE;
            rom & (mask as u32)
        } else {
            0
        };
        self.set_vdword(PCI_ROM_ADDRESS, v);

        self.bardirty = false;
    }

    // ----- write handlers -------------------------------------------------------------------

    /// Dispatches a `writefn`.
    fn write_fn<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        wfn: WriteFn,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        match wfn {
            WriteFn::Default => self.default_write(b, bits, c, val),
            WriteFn::Basic => self.basic_write(b, bits, c, val),
            WriteFn::Pm => self.pm_write(b, bits, c, val),
            WriteFn::Vpd => self.vpd_write(b, bits, c, val),
            WriteFn::Exp => self.exp_write(b, bits, c, val),
            WriteFn::Af => self.af_write(b, bits, c, val),
            WriteFn::Msi => self.msi_write(b, bits, c, val),
            WriteFn::Raw => user_write(b, c.pos, c.width(), val),
            WriteFn::Virt => {
                le_set(&mut self.vconfig, c.pos, c.count, val);
                Ok(())
            }
        }
    }

    /// `vfio_default_config_write` (201-245).
    fn default_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        let write = le_get(bits.write, c.offset, c.count);
        if write == 0 {
            return Ok(()); // Drop, no writable bits.
        }
        let virt = le_get(bits.virt, c.offset, c.count);

        // Virtualized and writable bits go to vconfig.
        if write & virt != 0 {
            let mut v = le_get(&self.vconfig, c.pos, c.count);
            v &= !(write & virt);
            v |= val & (write & virt);
            le_set(&mut self.vconfig, c.pos, c.count, v);
        }

        // Non-virtualized and writable bits go to hardware.
        if write & !virt != 0 {
            let mut phys = user_read(b, c.pos, c.width())?;
            phys &= !(write & !virt);
            phys |= val & (write & !virt);
            user_write(b, c.pos, c.width(), phys)?;
        }
        Ok(())
    }

    /// `vfio_need_bar_restore` (548-562): do the physical BARs differ from the saved ones?
    fn need_bar_restore<B: ConfigBackend>(&self, b: &mut B) -> bool {
        for (i, &saved) in self.rbar.iter().enumerate().take(6) {
            if saved != 0 {
                let off = add(PCI_BASE_ADDRESS_0, i.saturating_mul(4));
                match user_read(b, off, Width::Dword) {
                    Ok(bar) if bar == saved => {}
                    _ => return true,
                }
            }
        }
        false
    }

    /// `vfio_bar_restore` (425-447): rewrites the physical BARs after a backdoor reset.
    fn bar_restore<B: ConfigBackend>(&self, b: &mut B) {
        if self.facts.is_virtfn {
            return;
        }
        b.bar_restore_notice();

        // Errors are ignored, as upstream.
        for (i, &saved) in self.rbar.iter().enumerate().take(6) {
            let off = add(PCI_BASE_ADDRESS_0, i.saturating_mul(4));
            let _ = user_write(b, off, Width::Dword, saved);
        }
        let rom = self.rbar.get(6).copied().unwrap_or(0);
        let _ = user_write(b, PCI_ROM_ADDRESS, Width::Dword, rom);

        if self.facts.nointx {
            // A failed read leaves the all-ones error response in `cmd`.
            let cmd = user_read(b, PCI_COMMAND, Width::Word).unwrap_or(0xffff);
            let cmd = cmd | u32::from(PCI_COMMAND_INTX_DISABLE);
            let _ = user_write(b, PCI_COMMAND, Width::Word, cmd);
        }
    }

    /// `vfio_basic_config_write` (564-658).
    fn basic_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        let is_cmd = c.offset == PCI_COMMAND;
        let mut new_cmd = 0u16;

        if is_cmd {
            let phys_cmd = lo16(user_read(b, PCI_COMMAND, Width::Word)?);
            let virt_cmd = self.vword(PCI_COMMAND);
            new_cmd = lo16(val);

            let phys_io = phys_cmd & PCI_COMMAND_IO != 0;
            let virt_io = virt_cmd & PCI_COMMAND_IO != 0;
            let new_io = new_cmd & PCI_COMMAND_IO != 0;

            let phys_mem = phys_cmd & PCI_COMMAND_MEMORY != 0;
            let virt_mem = virt_cmd & PCI_COMMAND_MEMORY != 0;
            let new_mem = new_cmd & PCI_COMMAND_MEMORY != 0;

            b.memory_write_lock(!new_mem);

            // A user re-enabling decode that we believe is on while the hardware shows it off
            // means a backdoor reset: restore the BARs before allowing it.
            if (new_mem && virt_mem && !phys_mem && !self.facts.no_command_memory)
                || (new_io && virt_io && !phys_io)
                || self.need_bar_restore(b)
            {
                self.bar_restore(b);
            }
        }

        if let Err(e) = self.default_write(b, bits, c, val) {
            if is_cmd {
                b.memory_write_unlock(None);
            }
            return Err(e);
        }

        // Save the current memory/io enable bits in vconfig for the test above next time.
        if is_cmd {
            let mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
            let v = (self.vword(PCI_COMMAND) & !mask) | (new_cmd & mask);
            self.set_vword(PCI_COMMAND, v);
            b.memory_write_unlock(Some(self.memory_enabled()));
        }

        // Emulate INTx disable.
        if c.offset >= PCI_COMMAND && c.offset <= PCI_COMMAND + 1 {
            let virt_intx_disable = self.vword(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE != 0;
            let virq_disabled = b.virq_disabled();
            if virt_intx_disable && !virq_disabled {
                b.set_virq_disabled(true);
            } else if !virt_intx_disable && virq_disabled {
                b.set_virq_disabled(false);
            }
        }

        if is_bar(c.offset) {
            self.bardirty = true;
        }
        Ok(())
    }

    /// `vfio_pm_config_write` (728-758).
    fn pm_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write(b, bits, c, val)?;
        if c.offset == PCI_PM_CTRL {
            let state = match val & PCI_PM_CTRL_STATE_MASK {
                0 => PowerState::D0,
                1 => PowerState::D1,
                2 => PowerState::D2,
                _ => PowerState::D3Hot,
            };
            b.set_power_state(state);
        }
        Ok(())
    }

    /// `vfio_vpd_config_write` (800-847).
    fn vpd_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        let start = c.cap_start();
        let paddr = add(start, PCI_VPD_ADDR);
        let pdata = add(start, PCI_VPD_DATA);

        // The write includes the upper byte of PCI_VPD_ADDR (the F bit): there is work to do.
        self.default_write(b, bits, c, val)?;
        if c.offset > PCI_VPD_ADDR + 1 || add(c.offset, c.count) <= PCI_VPD_ADDR + 1 {
            return Ok(());
        }

        let mut addr = self.vword(paddr);
        if addr & PCI_VPD_ADDR_F != 0 {
            let data = self.vdword(pdata);
            if b.vpd_write(addr & !PCI_VPD_ADDR_F, data) != Ok(4) {
                return Ok(());
            }
        } else {
            match b.vpd_read(addr) {
                Ok(data) => self.set_vdword(pdata, data),
                Err(_) => return Ok(()),
            }
        }

        // Toggle the F bit to signal completion (an error above leaves it: driver timeout).
        addr ^= PCI_VPD_ADDR_F;
        self.set_vword(paddr, addr);
        Ok(())
    }

    /// `vfio_exp_config_write` (882-942).
    fn exp_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        let start = c.cap_start();
        let ctrl = add(start, PCI_EXP_DEVCTL);
        let readrq = self.vword(ctrl) & PCI_EXP_DEVCTL_READRQ;

        self.default_write(b, bits, c, val)?;

        // The FLR bit is virtualized: reset if the device supports PCIe FLR, and always clear
        // the bit, which must read as zero.
        let v = self.vword(ctrl);
        if v & PCI_EXP_DEVCTL_BCR_FLR != 0 {
            self.set_vword(ctrl, v & !PCI_EXP_DEVCTL_BCR_FLR);
            if let Ok(cap) = user_read(b, add(start, PCI_EXP_DEVCAP), Width::Dword) {
                if cap & PCI_EXP_DEVCAP_FLR != 0 {
                    b.function_reset();
                }
            }
        }

        // MRRS changes go to hardware, with the device's MPS as the floor.
        let new_readrq = self.vword(ctrl) & PCI_EXP_DEVCTL_READRQ;
        if readrq != new_readrq {
            let bytes = 128u32 << (new_readrq >> 12);
            let bytes = bytes.max(b.pcie_get_mps());
            b.pcie_set_readrq(bytes);
        }
        Ok(())
    }

    /// `vfio_af_config_write` (969-1006).
    fn af_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        let start = c.cap_start();
        let ctrl = add(start, PCI_AF_CTRL);

        self.default_write(b, bits, c, val)?;

        let v = self.vbyte(ctrl);
        if v & PCI_AF_CTRL_FLR != 0 {
            self.set_vbyte(ctrl, v & !PCI_AF_CTRL_FLR);
            if let Ok(cap) = user_read(b, add(start, PCI_AF_CAP), Width::Byte) {
                if cap & PCI_AF_CAP_FLR != 0 && cap & PCI_AF_CAP_TP != 0 {
                    b.function_reset();
                }
            }
        }
        Ok(())
    }

    /// `vfio_msi_config_write` (1168-1207).
    fn msi_write<B: ConfigBackend>(
        &mut self,
        b: &mut B,
        bits: &PermBits,
        c: Chunk,
        val: u32,
    ) -> Result<(), Errno> {
        self.default_write(b, bits, c, val)?;

        // Fix up and write the configured queue size and enable to hardware.
        if c.offset <= PCI_MSI_FLAGS && add(c.offset, c.count) >= PCI_MSI_FLAGS {
            let start = self.find_cap_start(c.pos);
            let pflags = add(start, PCI_MSI_FLAGS);
            let mut flags = self.vword(pflags);
            let st = b.msi_irq_state();

            // MSI is enabled via ioctl.
            if !st.msi_enabled {
                flags &= !PCI_MSI_FLAGS_ENABLE;
            }

            // Check the queue size.
            if (flags & PCI_MSI_FLAGS_QSIZE) >> 4 > u16::from(st.qmax) {
                flags &= !PCI_MSI_FLAGS_QSIZE;
                flags |= u16::from(st.qmax) << 4;
            }

            self.set_vword(pflags, flags);
            user_write(b, pflags, Width::Word, u32::from(flags))?;
        }
        Ok(())
    }
}

impl Default for ConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}
