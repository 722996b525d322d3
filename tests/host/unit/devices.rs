// SPDX-License-Identifier: GPL-2.0

//! Synthetic devices modelled on the QEMU devices the project tests against.

use super::fake::Dev;

/// QEMU `edu` (1234:11e8): conventional PCI, BAR0 1 MiB, a 64-bit MSI capability at 0x40.
pub(crate) fn edu() -> Dev {
    let mut d = Dev::new(0x1234, 0x11e8, 256);
    d.w8(8, 0x10) // revision
        .w8(0xa, 0xff) // class 00ff00
        .w16(0x2c, 0x1af4)
        .w16(0x2e, 0x1100)
        .mem_bar(0, 0xfea0_0000, 1 << 20, false, false)
        .w8(0x3c, 0x0b) // line
        .w8(0x3d, 0x01) // pin A
        .chain(&[(0x40, 0x05)])
        .w16(0x42, 0x0080); // MSI: 64-bit, 1 vector
    d
}

/// QEMU `ivshmem-plain` (1af4:1110): BAR0 256 bytes, BAR2 64-bit prefetchable 4 MiB, no
/// capabilities.
pub(crate) fn ivshmem() -> Dev {
    let mut d = Dev::new(0x1af4, 0x1110, 256);
    d.w8(8, 0x01)
        .w8(0xb, 0x05) // class 050000
        .mem_bar(0, 0xfeb0_0000, 256, false, false)
        .mem_bar(2, 0x8_0000_0000, 4 << 20, true, true);
    d
}

/// Offsets of the igb capabilities.
pub(crate) const IGB_PM: usize = 0x40;
/// igb MSI capability.
pub(crate) const IGB_MSI: usize = 0x50;
/// igb MSI-X capability.
pub(crate) const IGB_MSIX: usize = 0x70;
/// igb PCIe capability.
pub(crate) const IGB_EXP: usize = 0xa0;

/// QEMU `igb` (8086:10c9, 82576): PM, MSI (64-bit, maskable), MSI-X, PCIe v2 endpoint with FLR;
/// extended AER, DSN, ARI, SR-IOV.
pub(crate) fn igb() -> Dev {
    let mut d = Dev::new(0x8086, 0x10c9, 4096);
    d.w8(8, 0x01)
        .w8(0xb, 0x02) // class 020000
        .w16(0x2c, 0x8086)
        .w16(0x2e, 0x0000)
        .mem_bar(0, 0xfe80_0000, 128 << 10, false, false)
        .mem_bar(1, 0xfe82_0000, 128 << 10, false, false)
        .io_bar(2, 0xc000, 32)
        .mem_bar(3, 0xfe84_0000, 16 << 10, false, false)
        .w8(0x3c, 0x0a)
        .w8(0x3d, 0x01)
        .chain(&[
            (IGB_PM, 0x01),
            (IGB_MSI, 0x05),
            (IGB_MSIX, 0x11),
            (IGB_EXP, 0x10),
        ]);
    // PM: version 3, PME from D0/D3hot/D3cold; PMCSR: NoSoftReset, PME_En, PME_Status.
    d.w16(IGB_PM + 2, 0xc823).w16(IGB_PM + 4, 0x8108);
    // MSI: 64-bit, per-vector masking, 1 vector capable.
    d.w16(IGB_MSI + 2, 0x0180);
    // MSI-X: 10 entries, table and PBA in BAR3.
    d.w16(IGB_MSIX + 2, 0x0009)
        .w32(IGB_MSIX + 4, 0x0000_0003)
        .w32(IGB_MSIX + 8, 0x0000_2003);
    // PCIe v2 endpoint: DEVCAP with FLR, DEVCTL = RELAX_EN | NOSNOOP | MRRS 512.
    d.w16(IGB_EXP + 2, 0x0002)
        .w32(IGB_EXP + 4, 0x1000_8cc2)
        .w16(IGB_EXP + 8, 0x2810)
        .w32(IGB_EXP + 0xc, 0x0004_4c11) // LNKCAP
        .w16(IGB_EXP + 0x10, 0x0040) // LNKCTL
        .w16(IGB_EXP + 0x12, 0x1011) // LNKSTA
        .w32(IGB_EXP + 0x24, 0x0000_0016) // DEVCAP2
        .w16(IGB_EXP + 0x28, 0x0020); // DEVCTL2: ARI
    d.facts.pcie_flags = 0x0002;
    d.echain(&[
        (0x100, 0x01, 2),
        (0x140, 0x03, 1),
        (0x150, 0x0e, 1),
        (0x160, 0x10, 1),
    ]);
    d.w32(0x100 + 0x18, 0x0000_00a0) // AER CAP: ECRC gen/check capable
        .w32(0x144, 0x1234_5678) // DSN
        .w32(0x148, 0x9abc_def0)
        .w16(0x164, 0x0002) // ARI cap
        .w32(0x160 + 4, 0x0000_0002) // SR-IOV cap
        .w16(0x160 + 0xc, 8) // InitialVFs
        .w16(0x160 + 0xe, 8); // TotalVFs
    d
}

/// Offsets of the nvme capabilities.
pub(crate) const NVME_MSIX: usize = 0x40;
/// nvme PM capability.
pub(crate) const NVME_PM: usize = 0x60;
/// nvme PCIe capability.
pub(crate) const NVME_EXP: usize = 0x80;

/// QEMU `nvme` (1b36:0010): BAR0 64-bit 16 KiB; PCIe, PM and MSI-X capabilities linked
/// newest-first as QEMU does; no extended capabilities (dword 0x100 is 0).
pub(crate) fn nvme() -> Dev {
    let mut d = Dev::new(0x1b36, 0x0010, 4096);
    d.w8(8, 0x02)
        .w8(9, 0x02)
        .w8(0xa, 0x08)
        .w8(0xb, 0x01) // class 010802
        .mem_bar(0, 0xfe00_0000, 16 << 10, false, true)
        .w8(0x3d, 0x01)
        .chain(&[(NVME_EXP, 0x10), (NVME_PM, 0x01), (NVME_MSIX, 0x11)]);
    d.w16(NVME_MSIX + 2, 0x0040)
        .w32(NVME_MSIX + 4, 0x2000)
        .w32(NVME_MSIX + 8, 0x3000);
    d.w16(NVME_PM + 2, 0x0003);
    // PCIe v2 endpoint without FLR.
    d.w16(NVME_EXP + 2, 0x0002)
        .w32(NVME_EXP + 4, 0x0000_8000)
        .w16(NVME_EXP + 8, 0x2000);
    d.facts.pcie_flags = 0x0002;
    d
}
