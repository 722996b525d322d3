// SPDX-License-Identifier: GPL-2.0

//! Capability chains and per-capability permissions.

use super::devices::{igb, nvme, IGB_EXP, IGB_MSI, IGB_MSIX, IGB_PM, NVME_EXP, NVME_MSIX, NVME_PM};
use super::fake::{rd, rdv, user_caps, user_ecaps, wr, wrv, Dev, Ev};
use crate::config_space::{MsiIrqState, PowerState, Width};

#[test]
fn igb_chains() {
    let (mut cs, mut f) = igb().open();
    assert_eq!(
        user_caps(&mut cs, &mut f),
        vec![
            (IGB_PM, 0x01),
            (IGB_MSI, 0x05),
            (IGB_MSIX, 0x11),
            (IGB_EXP, 0x10)
        ]
    );
    assert_eq!(
        user_ecaps(&mut cs, &mut f),
        vec![(0x100, 0x01), (0x140, 0x03), (0x150, 0x0e), (0x160, 0x10)]
    );
    // The capability map: PCIe v2 endpoint is 0x34 bytes, AER 0x2c, SR-IOV 0x40.
    assert_eq!(cs.cap_id_at(IGB_EXP + 0x33), Some(0x10));
    assert_eq!(cs.cap_id_at(IGB_EXP + 0x34), Some(0xff));
    assert_eq!(cs.cap_id_at(0x12b), Some(0x01));
    assert_eq!(cs.cap_id_at(0x12c), Some(0xff));
    assert_eq!(cs.cap_id_at(0x19f), Some(0x10));
    assert_eq!(cs.cap_id_at(0x1a0), Some(0xff));
    // MSI, 64-bit with masking: 24 bytes.
    assert_eq!(cs.cap_id_at(IGB_MSI + 23), Some(0x05));
    assert_eq!(cs.cap_id_at(IGB_MSI + 24), Some(0xff));
}

#[test]
fn nvme_chain_and_no_ecaps() {
    let (mut cs, mut f) = nvme().open();
    assert_eq!(
        user_caps(&mut cs, &mut f),
        vec![(NVME_EXP, 0x10), (NVME_PM, 0x01), (NVME_MSIX, 0x11)]
    );
    // Dword 0x100 is 0 in hardware: no extended capabilities, and extended space stays raw.
    assert_eq!(user_ecaps(&mut cs, &mut f), vec![]);
    assert_eq!(cs.cap_id_at(0x100), Some(0xff));
    wrv(&mut cs, &mut f, 0x200, 4, 0xdead_beef);
    assert_eq!(f.get(0x200, 4), 0xdead_beef);
    assert_eq!(rdv(&mut cs, &mut f, 0x200, 4), 0xdead_beef);
    // The 64-bit BAR0 pair.
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xfe00_0004);
    wr(&mut cs, &mut f, 0x10, &[0xff; 8]);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xffff_c004);
    assert_eq!(rdv(&mut cs, &mut f, 0x14, 4), 0xffff_ffff);
}

#[test]
fn pm_virtualization() {
    let (mut cs, mut f) = igb().open();
    // PME_Support, PME_En and PME_Status read as 0.
    assert_eq!(rdv(&mut cs, &mut f, IGB_PM as u64 + 2, 2), 0x0023);
    assert_eq!(rdv(&mut cs, &mut f, IGB_PM as u64 + 4, 2), 0x0008);
    assert_eq!(rdv(&mut cs, &mut f, IGB_PM as u64, 2), 0x5001);
    // D3hot + PME_En: the power-state change is trapped, the state bits never reach hardware,
    // NoSoftReset (writable) is cleared in hardware.
    wrv(&mut cs, &mut f, IGB_PM as u64 + 4, 2, 0x0103);
    assert_eq!(
        f.effects(),
        vec![
            Ev::Write((IGB_PM + 4) as u16, Width::Word, 0x8100),
            Ev::Power(PowerState::D3Hot)
        ]
    );
    // PME_En and PME_Status are virtual and read-only: they always read 0.
    assert_eq!(rdv(&mut cs, &mut f, IGB_PM as u64 + 4, 2), 0x0000);
    f.ev.clear();
    // A dword write at PM_CTRL, states D0..D2.
    for (v, st) in [
        (0u32, PowerState::D0),
        (1, PowerState::D1),
        (2, PowerState::D2),
    ] {
        wrv(&mut cs, &mut f, IGB_PM as u64 + 4, 4, v);
        assert_eq!(f.effects().last(), Some(&Ev::Power(st)));
    }
    assert_eq!(f.get(IGB_PM + 4, 2) & 3, 0);
    // A write at PM_CTRL + 1 is not a PM_CTRL write.
    f.ev.clear();
    wrv(&mut cs, &mut f, IGB_PM as u64 + 5, 1, 0x01);
    assert!(!f.effects().iter().any(|e| matches!(e, Ev::Power(_))));
    // PMC and the next pointer are read-only.
    f.ev.clear();
    wrv(&mut cs, &mut f, IGB_PM as u64, 4, 0);
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, IGB_PM as u64, 2), 0x5001);
}

#[test]
fn pcie_flr_trap() {
    let (mut cs, mut f) = igb().open();
    let devctl = IGB_EXP as u64 + 8;
    assert_eq!(rdv(&mut cs, &mut f, devctl, 2), 0x2810);
    wrv(&mut cs, &mut f, devctl, 2, 0xa810);
    assert_eq!(
        f.effects(),
        vec![Ev::Write(devctl as u16, Width::Word, 0x2810), Ev::Reset]
    );
    assert_eq!(rdv(&mut cs, &mut f, devctl, 2), 0x2810, "FLR reads as 0");
    // Upper byte alone.
    f.ev.clear();
    wrv(&mut cs, &mut f, devctl + 1, 1, 0xa8);
    assert_eq!(f.effects().last(), Some(&Ev::Reset));
    // No FLR in DEVCAP: no reset, bit still cleared.
    let (mut cs, mut f) = nvme().open();
    wrv(&mut cs, &mut f, NVME_EXP as u64 + 8, 2, 0xa000);
    assert!(!f.effects().contains(&Ev::Reset));
    assert_eq!(rdv(&mut cs, &mut f, NVME_EXP as u64 + 8, 2), 0x2000);
}

#[test]
fn pcie_devctl_fields() {
    let (mut cs, mut f) = igb().open();
    let devctl = IGB_EXP as u64 + 8;
    // MPS is virtual: hardware keeps its value, the user reads back what it wrote.
    wrv(&mut cs, &mut f, devctl, 2, 0x28b0);
    assert_eq!(f.get(IGB_EXP + 8, 2), 0x2810);
    assert_eq!(rdv(&mut cs, &mut f, devctl, 2), 0x28b0);
    assert!(!f.effects().iter().any(|e| matches!(e, Ev::Readrq(_))));
    // Phantom functions cannot be enabled.
    wrv(&mut cs, &mut f, devctl, 2, 0x2a10);
    assert_eq!(f.get(IGB_EXP + 8, 2), 0x2810);
    assert_eq!(rdv(&mut cs, &mut f, devctl, 2), 0x2810);
    // Other DEVCTL bits go to hardware.
    wrv(&mut cs, &mut f, devctl, 2, 0x2c1f);
    assert_eq!(
        f.get(IGB_EXP + 8, 2),
        0x2c1f,
        "MRRS bits kept from hardware"
    );
    // MRRS change: pcie_set_readrq(max(mrrs, mps)).
    f.ev.clear();
    f.mps = 256;
    wrv(&mut cs, &mut f, devctl, 2, 0x5c1f);
    assert_eq!(f.effects().last(), Some(&Ev::Readrq(4096)));
    wrv(&mut cs, &mut f, devctl, 2, 0x0c1f);
    assert_eq!(f.effects().last(), Some(&Ev::Readrq(256)));
    f.ev.clear();
    wrv(&mut cs, &mut f, devctl, 2, 0x0c1f);
    assert!(!f.effects().iter().any(|e| matches!(e, Ev::Readrq(_))));
    // DEVCTL2: everything but ARI.
    wrv(&mut cs, &mut f, IGB_EXP as u64 + 0x28, 2, 0x0000);
    assert_eq!(f.get(IGB_EXP + 0x28, 2), 0x0020);
    wrv(&mut cs, &mut f, IGB_EXP as u64 + 0x28, 2, 0xffdf);
    assert_eq!(f.get(IGB_EXP + 0x28, 2), 0xffff);
    // Link control, slot control and the capability registers are read-only.
    f.ev.clear();
    wrv(&mut cs, &mut f, IGB_EXP as u64 + 0x10, 2, 0x0003);
    wrv(&mut cs, &mut f, IGB_EXP as u64 + 4, 4, 0);
    wrv(&mut cs, &mut f, IGB_EXP as u64 + 0x2c, 4, 0xffff_ffff);
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, IGB_EXP as u64 + 0x10, 2), 0x0040);
}

#[test]
fn af_flr_trap() {
    let mut d = Dev::new(0x1000, 0x0002, 256);
    d.chain(&[(0x48, 0x13)]).w8(0x4a, 6).w8(0x4b, 0x03);
    let (mut cs, mut f) = d.open();
    assert_eq!(user_caps(&mut cs, &mut f), vec![(0x48, 0x13)]);
    wrv(&mut cs, &mut f, 0x4c, 1, 0x01);
    assert_eq!(f.effects(), vec![Ev::Reset]);
    assert_eq!(rdv(&mut cs, &mut f, 0x4c, 1), 0);
    // FLR without TP: no reset.
    let mut d = Dev::new(0x1000, 0x0002, 256);
    d.chain(&[(0x48, 0x13)]).w8(0x4a, 6).w8(0x4b, 0x02);
    let (mut cs, mut f) = d.open();
    wrv(&mut cs, &mut f, 0x4c, 2, 0x0101);
    assert!(f.effects().is_empty());
    // The AF capability is 6 bytes: 0x4e is unassigned.
    assert_eq!(cs.cap_id_at(0x4d), Some(0x13));
    assert_eq!(cs.cap_id_at(0x4e), Some(0xff));
}

#[test]
fn msi_address_data_virtual() {
    let (mut cs, mut f) = igb().open();
    let m = IGB_MSI as u64;
    wrv(&mut cs, &mut f, m + 4, 4, 0xfee0_0000);
    wrv(&mut cs, &mut f, m + 8, 4, 0x0000_0001);
    wrv(&mut cs, &mut f, m + 0xc, 2, 0x4021);
    assert!(f.effects().is_empty(), "{:?}", f.effects());
    assert_eq!(rdv(&mut cs, &mut f, m + 4, 4), 0xfee0_0000);
    assert_eq!(rdv(&mut cs, &mut f, m + 8, 4), 1);
    assert_eq!(rdv(&mut cs, &mut f, m + 0xc, 2), 0x4021);
    assert_eq!(f.get(IGB_MSI + 4, 4), 0);
    // Mask and pending bits go to hardware.
    wrv(&mut cs, &mut f, m + 0x10, 4, 1);
    assert_eq!(
        f.writes(),
        vec![Ev::Write((IGB_MSI + 0x10) as u16, Width::Dword, 1)]
    );
    assert_eq!(rdv(&mut cs, &mut f, m + 0x10, 4), 1);
}

#[test]
fn msi_flags_write() {
    let (mut cs, mut f) = igb().open();
    let m = IGB_MSI as u64;
    // MSI not enabled through SET_IRQS: ENABLE is cleared, QSIZE clamped to msi_qmax (0).
    wrv(&mut cs, &mut f, m + 2, 2, 0x01b1);
    assert_eq!(
        f.writes(),
        vec![Ev::Write((IGB_MSI + 2) as u16, Width::Word, 0x0180)]
    );
    assert_eq!(rdv(&mut cs, &mut f, m + 2, 2), 0x0180);
    // MSI enabled with 4 vectors: the user may set ENABLE, QSIZE is clamped to 2.
    f.msi = MsiIrqState {
        msi_enabled: true,
        qmax: 2,
    };
    f.ev.clear();
    wrv(&mut cs, &mut f, m + 2, 1, 0xd1);
    assert_eq!(
        f.writes(),
        vec![Ev::Write((IGB_MSI + 2) as u16, Width::Word, 0x01a1)]
    );
    assert_eq!(rdv(&mut cs, &mut f, m + 2, 2), 0x01a1);
    // A 2-byte write of ID/next also rewrites the flags to hardware (offset + count >= 2).
    f.ev.clear();
    wrv(&mut cs, &mut f, m, 2, 0xffff);
    assert_eq!(
        f.writes(),
        vec![Ev::Write((IGB_MSI + 2) as u16, Width::Word, 0x01a1)]
    );
    // The upper flags byte is neither virtual nor writable.
    f.ev.clear();
    wrv(&mut cs, &mut f, m + 3, 1, 0x00);
    assert!(f.writes().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, m + 3, 1), 0x01);
}

#[test]
fn msi_flags_read_keeps_device_mmc() {
    // Upstream's read handler rewrites the queue-mask bits of the capability's first word
    // (vconfig[start]), which MSI reads from hardware: a flags read shows the device's
    // Multiple Message Capable value, not msi_qmax.
    let mut d = igb();
    d.w16(IGB_MSI + 2, 0x0186); // 8 vectors capable
    let (mut cs, mut f) = d.open();
    f.msi.qmax = 1;
    assert_eq!(rdv(&mut cs, &mut f, IGB_MSI as u64 + 2, 2), 0x0186);
    assert_eq!(rdv(&mut cs, &mut f, IGB_MSI as u64, 1), 0x05);
    assert_eq!(cs.vconfig()[IGB_MSI], 0x05 & !0x0e | (1 << 1));
}

#[test]
fn msi_32bit_layout() {
    let mut d = Dev::new(0x1000, 0x0003, 256);
    d.chain(&[(0x40, 0x05)]).w16(0x42, 0x0100); // 32-bit, maskable: 20 bytes
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.cap_id_at(0x53), Some(0x05));
    assert_eq!(cs.cap_id_at(0x54), Some(0xff));
    wrv(&mut cs, &mut f, 0x48, 2, 0x1234); // data
    assert!(f.writes().is_empty());
    wrv(&mut cs, &mut f, 0x4c, 4, 0x3); // mask
    assert_eq!(f.writes(), vec![Ev::Write(0x4c, Width::Dword, 3)]);
    // Byte 0x4a-0x4b (after 16-bit data) is neither virtual nor writable.
    f.ev.clear();
    wrv(&mut cs, &mut f, 0x4a, 2, 0xffff);
    assert!(f.writes().is_empty());
}

#[test]
fn msix_read_only() {
    let (mut cs, mut f) = igb().open();
    let x = IGB_MSIX as u64;
    wrv(&mut cs, &mut f, x + 2, 2, 0xc009);
    wrv(&mut cs, &mut f, x + 4, 4, 0);
    wrv(&mut cs, &mut f, x, 1, 0);
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, x, 4), 0x0009_a011);
    // Reads come from hardware (with ID/next from vconfig).
    f.put(IGB_MSIX + 2, 2, 0x8009);
    assert_eq!(rdv(&mut cs, &mut f, x + 2, 2), 0x8009);
}

#[test]
fn std_vendor_cap_raw_write() {
    let mut d = Dev::new(0x1000, 0x0004, 256);
    d.chain(&[(0x40, 0x01), (0x50, 0x09)]).w8(0x52, 0x10);
    let (mut cs, mut f) = d.open();
    wrv(&mut cs, &mut f, 0x54, 4, 0xcafe_f00d);
    assert_eq!(f.writes(), vec![Ev::Write(0x54, Width::Dword, 0xcafe_f00d)]);
    assert_eq!(rdv(&mut cs, &mut f, 0x54, 4), 0xcafe_f00d);
    assert_eq!(cs.cap_id_at(0x5f), Some(0x09));
    assert_eq!(cs.cap_id_at(0x60), Some(0xff));
}

#[test]
fn vpd_emulation() {
    let mut d = Dev::new(0x1000, 0x0005, 256);
    d.chain(&[(0x40, 0x03)]);
    let (mut cs, mut f) = d.open();
    // Read request: F = 0.
    wrv(&mut cs, &mut f, 0x42, 2, 0x0010);
    assert_eq!(f.effects(), vec![Ev::VpdRead(0x10)]);
    assert_eq!(rdv(&mut cs, &mut f, 0x44, 4), 0x1312_1110);
    assert_eq!(rdv(&mut cs, &mut f, 0x42, 2), 0x8010);
    // Write request: data first, then address with F = 1.
    f.ev.clear();
    wrv(&mut cs, &mut f, 0x44, 4, 0xdead_beef);
    wrv(&mut cs, &mut f, 0x42, 2, 0x8020);
    assert_eq!(f.effects(), vec![Ev::VpdWrite(0x20, 0xdead_beef)]);
    assert_eq!(rdv(&mut cs, &mut f, 0x42, 2), 0x0020);
    assert_eq!(f.vpd[0x20], 0xef);
    // Writing only the low address byte does nothing.
    f.ev.clear();
    wrv(&mut cs, &mut f, 0x42, 1, 0x30);
    assert!(f.effects().is_empty());
    // A dword write at the capability start covers the F byte.
    wrv(&mut cs, &mut f, 0x40, 4, 0x0004_0000);
    assert_eq!(f.effects(), vec![Ev::VpdRead(0x04)]);
    // Failure: F is not toggled.
    f.vpd_fail = true;
    wrv(&mut cs, &mut f, 0x42, 2, 0x0008);
    assert_eq!(rdv(&mut cs, &mut f, 0x42, 2), 0x0008);
    assert!(f.writes().is_empty(), "VPD never touches config space");
}

#[test]
fn pcix_cap() {
    let mut d = Dev::new(0x1000, 0x0006, 256);
    d.chain(&[(0x40, 0x07)]).w16(0x42, 0x0000); // version 0: 8 bytes
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.cap_id_at(0x47), Some(0x07));
    assert_eq!(cs.cap_id_at(0x48), Some(0xff));
    wrv(&mut cs, &mut f, 0x42, 2, 0x0003);
    assert_eq!(f.writes(), vec![Ev::Write(0x42, Width::Word, 0x0003)]);
    // Version 2 on a 4096-byte device: 24 bytes and extended capabilities.
    let mut d = Dev::new(0x1000, 0x0006, 4096);
    d.chain(&[(0x40, 0x07)]).w16(0x42, 0x2000);
    d.echain(&[(0x100, 0x03, 1)]);
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.cap_id_at(0x57), Some(0x07));
    assert_eq!(user_ecaps(&mut cs, &mut f), vec![(0x100, 0x03)]);
    wrv(&mut cs, &mut f, 0x48, 4, 0x1234_5678);
    assert_eq!(f.get(0x48, 4), 0x1234_5678);
}

#[test]
fn other_std_caps_lengths() {
    let mut d = Dev::new(0x1000, 0x0007, 256);
    d.chain(&[(0x40, 0x08), (0x60, 0x12), (0x80, 0x02)])
        .w8(0x43, 0x20) // HT with a 3-bit type: short, 24 bytes
        .w8(0x64, 0x0f); // SATA, inline registers: 16 bytes
    let (mut cs, mut f) = d.open();
    assert_eq!(
        user_caps(&mut cs, &mut f),
        vec![(0x40, 0x08), (0x60, 0x12), (0x80, 0x02)]
    );
    assert_eq!(cs.cap_id_at(0x57), Some(0x08));
    assert_eq!(cs.cap_id_at(0x58), Some(0xff));
    assert_eq!(cs.cap_id_at(0x6f), Some(0x12));
    assert_eq!(cs.cap_id_at(0x70), Some(0xff));
    assert_eq!(cs.cap_id_at(0x8b), Some(0x02)); // AGP: 12 bytes
    assert_eq!(cs.cap_id_at(0x8c), Some(0xff));
    // All of them read-only.
    wrv(&mut cs, &mut f, 0x44, 4, 1);
    wrv(&mut cs, &mut f, 0x64, 4, 1);
    wrv(&mut cs, &mut f, 0x84, 4, 1);
    assert!(f.effects().is_empty());
}

#[test]
fn hidden_std_caps_unlinked_and_raw() {
    let mut d = Dev::new(0x1000, 0x0008, 256);
    d.chain(&[
        (0x40, 0x04),
        (0x48, 0x01),
        (0x50, 0x0c),
        (0x58, 0x00),
        (0x60, 0x05),
        (0x70, 0x20),
    ])
    .w16(0x62, 0x0000);
    let (mut cs, mut f) = d.open();
    assert_eq!(user_caps(&mut cs, &mut f), vec![(0x48, 0x01), (0x60, 0x05)]);
    assert_eq!(rdv(&mut cs, &mut f, 0x34, 1), 0x48);
    assert_eq!(rdv(&mut cs, &mut f, 0x49, 1), 0x60);
    assert_eq!(rdv(&mut cs, &mut f, 0x61, 1), 0x00);
    // Hidden bytes are unassigned: raw read and write.
    for pos in [0x40usize, 0x50, 0x58, 0x70] {
        assert_eq!(cs.cap_id_at(pos), Some(0xff));
    }
    assert_eq!(rdv(&mut cs, &mut f, 0x50, 2), 0x580c);
    wrv(&mut cs, &mut f, 0x52, 2, 0xbeef);
    assert_eq!(f.writes(), vec![Ev::Write(0x52, Width::Word, 0xbeef)]);
}

#[test]
fn all_caps_hidden_clears_cap_list() {
    let mut d = Dev::new(0x1000, 0x0009, 256);
    d.chain(&[(0x40, 0x04), (0x48, 0x0a)]);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 6, 2) & 0x10, 0);
    assert_eq!(rdv(&mut cs, &mut f, 0x34, 1), 0);
}

#[test]
fn cap_list_loop_is_bounded() {
    let mut d = Dev::new(0x1000, 0x000a, 256);
    d.chain(&[(0x40, 0x01), (0x48, 0x09)])
        .w8(0x49, 0x40)
        .w8(0x4a, 8);
    let (mut cs, mut f) = d.open();
    assert_eq!(user_caps(&mut cs, &mut f).len(), 48);
}

#[test]
fn aer_permissions() {
    let (mut cs, mut f) = igb().open();
    // Header dword: virtual, read-only.
    wrv(&mut cs, &mut f, 0x100, 4, 0);
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0x1402_0001);
    // Uncorrectable mask: only the defined bits.
    wrv(&mut cs, &mut f, 0x108, 4, 0xffff_ffff);
    assert_eq!(f.get(0x108, 4), 0x03ff_f031);
    wrv(&mut cs, &mut f, 0x110, 4, 0xffff_ffff);
    assert_eq!(f.get(0x110, 4), 0x0000_f1c1);
    wrv(&mut cs, &mut f, 0x118, 4, 0xffff_ffff);
    assert_eq!(f.get(0x118, 4), 0x0000_01e0);
    // Header log: read-only.
    f.ev.clear();
    wrv(&mut cs, &mut f, 0x11c, 4, 0xffff_ffff);
    assert!(f.effects().is_empty());
}

#[test]
fn sriov_and_other_ecaps_read_only() {
    let (mut cs, mut f) = igb().open();
    // VF Enable / NumVFs.
    wrv(&mut cs, &mut f, 0x168, 2, 0x0001);
    wrv(&mut cs, &mut f, 0x170, 2, 0x0008);
    wrv(&mut cs, &mut f, 0x160, 4, 0);
    wrv(&mut cs, &mut f, 0x154, 4, 0xffff_ffff); // ARI
    wrv(&mut cs, &mut f, 0x144, 4, 0); // DSN
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, 0x168, 2), 0);
    assert_eq!(rdv(&mut cs, &mut f, 0x16e, 2), 8);
    // Headers come from vconfig, the rest from hardware.
    f.put(0x160, 4, 0);
    f.put(0x164, 4, 0x7);
    assert_eq!(rdv(&mut cs, &mut f, 0x160, 4), 0x0001_0010);
    assert_eq!(rdv(&mut cs, &mut f, 0x164, 4), 7);
}

#[test]
fn pwr_and_vendor_ecaps() {
    let mut d = Dev::new(0x1000, 0x000b, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.facts.pcie_flags = 0x0002;
    d.echain(&[(0x100, 0x04, 1), (0x110, 0x0b, 1), (0x140, 0x23, 1)]);
    d.w32(0x114, 0x0201_0001) // VNDR: len 0x20
        .w32(0x144, 0x00c0_1e98); // DVSEC: len 0xc
    let (mut cs, mut f) = d.open();
    assert_eq!(
        user_ecaps(&mut cs, &mut f),
        vec![(0x100, 0x04), (0x110, 0x0b), (0x140, 0x23)]
    );
    assert_eq!(cs.cap_id_at(0x12f), Some(0x0b));
    assert_eq!(cs.cap_id_at(0x130), Some(0xff));
    assert_eq!(cs.cap_id_at(0x14b), Some(0x23));
    assert_eq!(cs.cap_id_at(0x14c), Some(0xff));
    // PWR: upstream makes PCI_PWR_DATA (offset 8) writable, nothing else.
    wrv(&mut cs, &mut f, 0x104, 4, 0xff);
    assert!(f.effects().is_empty());
    wrv(&mut cs, &mut f, 0x108, 4, 0xffff_ffff);
    assert_eq!(
        f.writes(),
        vec![Ev::Write(0x108, Width::Dword, 0x0000_00ff)]
    );
    // Extended VNDR and DVSEC: raw writes, header included; reads keep the virtual header.
    f.ev.clear();
    wrv(&mut cs, &mut f, 0x118, 4, 0x1111_2222);
    wrv(&mut cs, &mut f, 0x148, 2, 0x3333);
    wrv(&mut cs, &mut f, 0x110, 4, 0);
    assert_eq!(
        f.writes(),
        vec![
            Ev::Write(0x118, Width::Dword, 0x1111_2222),
            Ev::Write(0x148, Width::Word, 0x3333),
            Ev::Write(0x110, Width::Dword, 0),
        ]
    );
    assert_eq!(rdv(&mut cs, &mut f, 0x110, 4), 0x1401_000b);
}

#[test]
fn ecap_first_hidden_placeholder() {
    let mut d = Dev::new(0x1000, 0x000c, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[(0x100, 0x1e, 1), (0x140, 0x01, 2)]);
    d.w32(0x104, 0xaaaa_5555);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0x1400_0000);
    assert_eq!(user_ecaps(&mut cs, &mut f), vec![(0x100, 0), (0x140, 0x01)]);
    // Placeholder: read-only.
    wrv(&mut cs, &mut f, 0x100, 4, 0xffff_ffff);
    assert!(f.effects().is_empty());
    // The rest of the hidden capability is raw.
    assert_eq!(cs.cap_id_at(0x104), Some(0xff));
    assert_eq!(rdv(&mut cs, &mut f, 0x104, 4), 0xaaaa_5555);
    wrv(&mut cs, &mut f, 0x104, 4, 1);
    assert_eq!(f.get(0x104, 4), 1);
}

#[test]
fn ecap_middle_hidden_skipped() {
    let mut d = Dev::new(0x1000, 0x000d, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[
        (0x100, 0x01, 2),
        (0x140, 0x1f, 1),
        (0x150, 0x1b, 1),
        (0x160, 0x0e, 1),
    ]);
    let (mut cs, mut f) = d.open();
    assert_eq!(
        user_ecaps(&mut cs, &mut f),
        vec![(0x100, 0x01), (0x160, 0x0e)]
    );
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0x1602_0001);
    assert_eq!(cs.cap_id_at(0x140), Some(0xff));
    assert_eq!(cs.cap_id_at(0x150), Some(0xff));
}

#[test]
fn ecap_only_hidden_reads_zero() {
    let mut d = Dev::new(0x1000, 0x000e, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[(0x100, 0x1d, 1), (0x140, 0x1e, 1)]);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0);
    assert_eq!(user_ecaps(&mut cs, &mut f), vec![]);
}

#[test]
fn ecaps_need_pcie_or_pcix2() {
    // A 4096-byte device without a PCIe/PCI-X v2 capability never parses extended space.
    let mut d = Dev::new(0x1000, 0x000f, 4096);
    d.chain(&[(0x40, 0x01)]);
    d.echain(&[(0x100, 0x01, 2)]);
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.cap_id_at(0x100), Some(0xff));
    wrv(&mut cs, &mut f, 0x100, 4, 0x1234);
    assert_eq!(f.get(0x100, 4), 0x1234);
}

#[test]
fn ecap_hidden_first_id_truncation() {
    // Upstream stores the ID in a byte map: a hidden first capability with ID 0x1ff becomes
    // PCI_CAP_ID_INVALID (raw), with ID 0x1fe virtual-only.
    let mut d = Dev::new(0x1000, 0x0010, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[(0x100, 0x1ff, 1), (0x140, 0x01, 2)]);
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.cap_id_at(0x100), Some(0xff));
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0x1401_01ff);

    let mut d = Dev::new(0x1000, 0x0010, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[(0x100, 0x1fe, 1), (0x140, 0x01, 2)]);
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.cap_id_at(0x100), Some(0xfe));
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0x1400_0000);
    wrv(&mut cs, &mut f, 0x100, 4, 0x1234_5678);
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, 0x100, 4), 0x1234_5678);
}

#[test]
fn ecap_variable_lengths() {
    let mut d = Dev::new(0x1000, 0x0011, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[
        (0x100, 0x0d, 1), // ACS with egress control, 40 bits -> 8 + 64/8
        (0x140, 0x15, 1), // REBAR, 2 BARs -> 4 + 16
        (0x180, 0x17, 1), // TPH, table in cap, 3 entries -> 0xc + 6 + 2
        (0x1c0, 0x02, 1), // VC, 1 extra VC, 64 phases -> round_up(0x28, 16) + 32
        (0x240, 0x16, 1), // DPA, 3 substates -> 16 + 4
    ]);
    d.w8(0x104, 0x20).w8(0x105, 40);
    d.w8(0x148, 0x40);
    d.w32(0x184, 0x0003_0200);
    d.w32(0x1c4, 1).w32(0x1c8, 0x4);
    d.w8(0x244, 3);
    let (cs, _f) = d.open();
    for (start, len) in [
        (0x100, 16),
        (0x140, 20),
        (0x180, 20),
        (0x1c0, 0x50),
        (0x240, 20),
    ] {
        let id = cs.cap_id_at(start).unwrap();
        assert_eq!(cs.cap_id_at(start + len - 1), Some(id), "{start:#x}");
        assert_eq!(cs.cap_id_at(start + len), Some(0xff), "{start:#x}");
    }
}

#[test]
fn ecap_past_end_fails_init() {
    let mut d = Dev::new(0x1000, 0x0012, 4096);
    d.chain(&[(0x40, 0x10)]).w16(0x42, 0x0002);
    d.echain(&[(0x100, 0x0b, 1), (0xff0, 0x0b, 1)]);
    d.w32(0x104, 0x0080_0000); // VNDR len 8
    d.w32(0xff4, 0x0200_0000); // VNDR len 0x20 past 4096
    let mut f = super::fake::Fake::new(d.img.clone());
    let mut cs = Box::new(crate::config_space::ConfigSpace::new());
    assert_eq!(
        cs.init(&d.facts, &mut f),
        Err(crate::config_space::Errno::EINVAL)
    );
}

#[test]
fn rc_end_and_v1_pcie_lengths() {
    for (flags, len) in [
        (0x0001u16, 20usize),
        (0x0091, 0xc),
        (0x0092, 0x2c),
        (0x0002, 0x34),
    ] {
        let mut d = Dev::new(0x1000, 0x0013, 256);
        d.chain(&[(0x40, 0x10)]).w16(0x42, flags);
        d.facts.pcie_flags = flags;
        let (cs, _f) = d.open();
        assert_eq!(cs.cap_id_at(0x40 + len - 1), Some(0x10));
        assert_eq!(cs.cap_id_at(0x40 + len), Some(0xff));
    }
}

#[test]
fn read_whole_igb_config() {
    let (mut cs, mut f) = igb().open();
    let all = rd(&mut cs, &mut f, 0, 4096);
    assert_eq!(&all[0..4], &[0x86, 0x80, 0xc9, 0x10]);
    assert_eq!(all[IGB_PM + 3], 0x00, "PMC PME_Support cleared");
    assert!(f.effects().is_empty());
}
