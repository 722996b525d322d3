// SPDX-License-Identifier: GPL-2.0

//! Basic header: identity, BAR and ROM sizing, COMMAND, INTx pin and DisINTx.

use super::devices::{edu, igb, ivshmem, nvme};
use super::fake::{rd, rdv, user_caps, wr, wrv, Dev, Ev};
use crate::config_space::{ConfigSpace, Errno, Width};

#[test]
fn edu_header() {
    let (mut cs, mut f) = edu().open();
    assert_eq!(rdv(&mut cs, &mut f, 0, 4), 0x11e8_1234);
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0006);
    assert_eq!(rdv(&mut cs, &mut f, 6, 2), 0x0010);
    assert_eq!(rdv(&mut cs, &mut f, 8, 4), 0x00ff_0010);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xfea0_0000);
    for bar in 1..6 {
        assert_eq!(rdv(&mut cs, &mut f, 0x10 + 4 * bar, 4), 0);
    }
    assert_eq!(rdv(&mut cs, &mut f, 0x2c, 4), 0x1100_1af4);
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0);
    assert_eq!(rdv(&mut cs, &mut f, 0x34, 1), 0x40);
    assert_eq!(rdv(&mut cs, &mut f, 0x3c, 2), 0x010b);
    assert_eq!(user_caps(&mut cs, &mut f), vec![(0x40, 0x05)]);
    assert_eq!(rdv(&mut cs, &mut f, 0x40, 4), 0x0080_0005);
    assert_eq!(cs.intx_pin(), 1);
    assert!(cs.memory_enabled());
    // Everything past the MSI capability is unassigned: raw.
    f.img[0x80] = 0xab;
    assert_eq!(rdv(&mut cs, &mut f, 0x80, 1), 0xab);
    // 64-bit MSI without masking: 14 bytes.
    assert_eq!(cs.cap_id_at(0x4d), Some(0x05));
    assert_eq!(cs.cap_id_at(0x4e), Some(0xff));
}

#[test]
fn whole_space_read_matches_per_dword_reads() {
    for dev in [edu(), ivshmem(), igb(), nvme()] {
        let (mut cs, mut f) = dev.open();
        let size = cs.cfg_size();
        let all = rd(&mut cs, &mut f, 0, size);
        for pos in (0..size).step_by(4) {
            let d = rd(&mut cs, &mut f, pos as u64, 4);
            assert_eq!(&all[pos..pos + 4], &d[..], "dword {pos:#x}");
        }
        // Reads never write to the device.
        assert!(f.effects().is_empty(), "{:?}", f.effects());
    }
}

#[test]
fn ivshmem_header_no_caps() {
    let (mut cs, mut f) = ivshmem().open();
    assert_eq!(rdv(&mut cs, &mut f, 0, 4), 0x1110_1af4);
    assert_eq!(rdv(&mut cs, &mut f, 6, 2) & 0x10, 0);
    assert_eq!(user_caps(&mut cs, &mut f), vec![]);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xfeb0_0000);
    assert_eq!(rdv(&mut cs, &mut f, 0x18, 4), 0x0000_000c);
    assert_eq!(rdv(&mut cs, &mut f, 0x1c, 4), 0x0000_0008);
    assert_eq!(cs.intx_pin(), 0);
    // No capabilities: 0x40..0x100 is raw.
    wrv(&mut cs, &mut f, 0x40, 4, 0x1234_5678);
    assert_eq!(f.get(0x40, 4), 0x1234_5678);
}

#[test]
fn bar_sizing_mem32() {
    let (mut cs, mut f) = edu().open();
    wrv(&mut cs, &mut f, 0x10, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xfff0_0000);
    wrv(&mut cs, &mut f, 0x10, 4, 0xfea1_2345);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xfea0_0000);
    // An empty BAR stays 0.
    wrv(&mut cs, &mut f, 0x14, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x14, 4), 0);
    // Byte-wise sizing works too.
    wr(&mut cs, &mut f, 0x10, &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(rd(&mut cs, &mut f, 0x10, 4), vec![0x00, 0x00, 0xf0, 0xff]);
    // The physical BAR is never written, never even read for a BAR read.
    assert!(f.writes().is_empty());
    assert!(f
        .reads()
        .iter()
        .all(|e| !matches!(e, Ev::Read(0x10..=0x27, _))));
    assert_eq!(f.get(0x10, 4), 0xfea0_0000);
}

#[test]
fn bar_sizing_mem64_prefetch() {
    let (mut cs, mut f) = ivshmem().open();
    wrv(&mut cs, &mut f, 0x18, 4, 0xffff_ffff);
    wrv(&mut cs, &mut f, 0x1c, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x18, 4), 0xffc0_000c);
    assert_eq!(rdv(&mut cs, &mut f, 0x1c, 4), 0xffff_ffff);
    wr(&mut cs, &mut f, 0x18, &[0; 8]);
    assert_eq!(rdv(&mut cs, &mut f, 0x18, 4), 0x0000_000c);
    assert_eq!(rdv(&mut cs, &mut f, 0x1c, 4), 0);
    // 256-byte BAR0.
    wrv(&mut cs, &mut f, 0x10, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xffff_ff00);
    assert!(f.writes().is_empty());
}

#[test]
fn bar_sizing_large_64bit_upper_half() {
    let mut d = Dev::new(0x10de, 0x1234, 4096);
    d.mem_bar(0, 0x40_0000_0000, 16 << 30, true, true);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0x0000_000c);
    assert_eq!(rdv(&mut cs, &mut f, 0x14, 4), 0x40);
    wr(&mut cs, &mut f, 0x10, &[0xff; 8]);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0x0000_000c);
    assert_eq!(rdv(&mut cs, &mut f, 0x14, 4), 0xffff_fffc);
}

#[test]
fn bar_sizing_io() {
    let (mut cs, mut f) = igb().open();
    assert_eq!(rdv(&mut cs, &mut f, 0x18, 4), 0x0000_c001);
    wrv(&mut cs, &mut f, 0x18, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x18, 4), 0xffff_ffe1);
    // BAR1 and BAR3 are independent 32-bit BARs; BAR4/5 are empty.
    wrv(&mut cs, &mut f, 0x1c, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x1c, 4), 0xffff_c000);
    wrv(&mut cs, &mut f, 0x20, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x20, 4), 0);
    assert!(f.writes().is_empty());
}

#[test]
fn bar_fixup_type64_quirk_on_tiny_io_bar() {
    // Upstream tests MEM_TYPE_64 on the fixed-up value: a 4-byte I/O BAR keeps bit 2 of what
    // the user wrote, and the next BAR is then treated as its upper half (left unmasked).
    let mut d = Dev::new(0x1000, 0x0001, 256);
    d.io_bar(0, 0x1000, 4)
        .mem_bar(1, 0xfe00_0000, 0x1000, false, false);
    let (mut cs, mut f) = d.open();
    wrv(&mut cs, &mut f, 0x10, 4, 0xffff_ffff);
    wrv(&mut cs, &mut f, 0x14, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xffff_fffd);
    assert_eq!(rdv(&mut cs, &mut f, 0x14, 4), 0xffff_ffff);
}

#[test]
fn rom_bar_real() {
    let mut d = edu();
    d.w32(0x30, 0xfeb8_0000);
    d.facts.rom_start = 0xfeb8_0000;
    d.facts.rom_len = 256 << 10;
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0xfeb8_0000);
    wrv(&mut cs, &mut f, 0x30, 4, 0xffff_fffe); // QEMU's sizing write
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0xfffc_0000);
    wrv(&mut cs, &mut f, 0x30, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0xfffc_0001);
    assert!(f.writes().is_empty());
    assert_eq!(f.get(0x30, 4), 0xfeb8_0000);
}

#[test]
fn rom_bar_shadow_and_absent() {
    let mut d = edu();
    d.facts.shadow_rom_len = 0x9000;
    let (mut cs, mut f) = d.open();
    wrv(&mut cs, &mut f, 0x30, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0xffff_0001);

    let mut d = edu();
    d.w32(0x30, 0xfeb8_0000);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0);
    wrv(&mut cs, &mut f, 0x30, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x30, 4), 0);
}

#[test]
fn saved_bars() {
    let (cs, _f) = igb().open();
    assert_eq!(
        cs.saved_bars(),
        &[0xfe80_0000, 0xfe82_0000, 0xc001, 0xfe84_0000, 0, 0, 0]
    );
}

#[test]
fn command_mem_on() {
    let (mut cs, mut f) = edu().open();
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    assert_eq!(
        f.ev,
        vec![
            Ev::Read(4, Width::Word),
            Ev::Lock(false),
            Ev::Read(0x10, Width::Dword), // vfio_need_bar_restore
            Ev::Read(4, Width::Word),
            Ev::Write(4, Width::Word, 0x0006),
            Ev::Unlock(Some(true)),
        ]
    );
    assert!(cs.memory_enabled());
}

#[test]
fn command_mem_off_zaps_every_time() {
    let (mut cs, mut f) = edu().open();
    wrv(&mut cs, &mut f, 4, 2, 0x0004);
    assert_eq!(
        f.effects(),
        vec![
            Ev::Lock(true),
            Ev::Write(4, Width::Word, 0x0004),
            Ev::Unlock(Some(false))
        ]
    );
    assert!(!cs.memory_enabled());
    assert_eq!(f.get(4, 2), 0x0004);
    f.ev.clear();
    // Already off: upstream zaps again.
    wrv(&mut cs, &mut f, 4, 2, 0x0000);
    assert_eq!(
        f.effects(),
        vec![
            Ev::Lock(true),
            Ev::Write(4, Width::Word, 0x0000),
            Ev::Unlock(Some(false))
        ]
    );
    f.ev.clear();
    // A byte write at offset 4 is a COMMAND write too.
    wrv(&mut cs, &mut f, 4, 1, 0x02);
    assert_eq!(
        f.effects(),
        vec![
            Ev::Lock(false),
            Ev::Write(4, Width::Byte, 0x02),
            Ev::Unlock(Some(true))
        ]
    );
    assert!(cs.memory_enabled());
}

#[test]
fn command_dword_write_keeps_status() {
    let (mut cs, mut f) = edu().open();
    f.put(6, 2, 0x4010); // a latched status bit
    wrv(&mut cs, &mut f, 4, 4, 0xffff_0007);
    assert_eq!(
        f.writes(),
        vec![Ev::Write(4, Width::Dword, 0x4010_0007)],
        "status is written back as read, INTx disable is not passed through"
    );
}

#[test]
fn command_upper_byte_write_is_not_a_command_write() {
    let (mut cs, mut f) = edu().open();
    wrv(&mut cs, &mut f, 5, 1, 0x05); // SERR + DisINTx
    assert_eq!(
        f.effects(),
        vec![Ev::Write(5, Width::Byte, 0x01), Ev::Virq(true)],
        "no memory lock, DisINTx virtual"
    );
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0506);
}

#[test]
fn intx_disable_is_virtual() {
    let (mut cs, mut f) = edu().open();
    wrv(&mut cs, &mut f, 4, 2, 0x0406);
    assert_eq!(f.get(4, 2), 0x0006, "hardware DisINTx untouched");
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0406);
    assert_eq!(f.effects().last(), Some(&Ev::Virq(true)));
    assert!(f.virq);
    f.ev.clear();
    wrv(&mut cs, &mut f, 4, 2, 0x0406);
    assert!(!f.effects().iter().any(|e| matches!(e, Ev::Virq(_))));
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    assert_eq!(f.effects().last(), Some(&Ev::Virq(false)));
    assert!(!f.virq);
    // The physical DisINTx bit (set by the host) is not visible either.
    f.put(4, 2, 0x0406);
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0006);
}

#[test]
fn intx_virq_follows_driver_state() {
    // The model compares against the driver's virq_disabled, like upstream.
    let (mut cs, mut f) = edu().open();
    f.virq = true;
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    assert_eq!(f.effects().last(), Some(&Ev::Virq(false)));
}

#[test]
fn backdoor_reset_mem_restores_bars() {
    let (mut cs, mut f) = igb().open();
    // Device reset behind our back: decode off, BARs cleared.
    f.put(4, 2, 0);
    for off in (0x10..0x28).step_by(4) {
        f.put(off, 4, 0);
    }
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    let mut want = vec![Ev::Lock(false), Ev::RestoreNotice];
    for (i, v) in [0xfe80_0000u32, 0xfe82_0000, 0xc001, 0xfe84_0000, 0, 0]
        .iter()
        .enumerate()
    {
        want.push(Ev::Write(0x10 + 4 * i as u16, Width::Dword, *v));
    }
    want.push(Ev::Write(0x30, Width::Dword, 0));
    want.push(Ev::Write(4, Width::Word, 0x0006));
    want.push(Ev::Unlock(Some(true)));
    assert_eq!(f.effects(), want);
    assert_eq!(f.get(0x10, 4), 0xfe80_0000);
}

#[test]
fn backdoor_reset_detected_by_decode_bits() {
    // BARs intact, but the hardware lost MEM while we think it is on.
    let (mut cs, mut f) = edu().open();
    f.put(4, 2, 0x0004);
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    assert!(f.effects().contains(&Ev::RestoreNotice));
    // IO: virtual IO on, hardware IO off, user enables IO.
    let mut d = igb();
    d.w16(4, 0x0007);
    let (mut cs, mut f) = d.open();
    f.put(4, 2, 0x0006);
    wrv(&mut cs, &mut f, 4, 2, 0x0005);
    assert!(f.effects().contains(&Ev::RestoreNotice));
}

#[test]
fn no_restore_when_user_had_disabled_mem() {
    let (mut cs, mut f) = edu().open();
    wrv(&mut cs, &mut f, 4, 2, 0x0004); // virtual MEM off
    f.put(4, 2, 0x0004);
    f.ev.clear();
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    assert!(!f.effects().contains(&Ev::RestoreNotice));
}

#[test]
fn restore_sets_disintx_for_nointx() {
    let mut d = edu();
    d.facts.nointx = true;
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.intx_pin(), 0);
    f.put(0x10, 4, 0);
    wrv(&mut cs, &mut f, 4, 2, 0x0006);
    let w = f.writes();
    assert!(w.contains(&Ev::Write(4, Width::Word, 0x0406)), "{w:?}");
    // The user's own COMMAND write then comes from a fresh read: DisINTx stays set.
    assert_eq!(w.last(), Some(&Ev::Write(4, Width::Word, 0x0406)));
}

#[test]
fn vf_header_and_no_restore() {
    let mut d = Dev::new(0xffff, 0xffff, 4096);
    d.facts.vendor = 0x8086;
    d.facts.device = 0x10ca;
    d.facts.is_virtfn = true;
    d.facts.no_command_memory = true;
    d.w16(4, 0x0004).w8(0x3d, 1);
    // VF BARs read 0 in hardware; resources exist.
    d.facts.bars[0] = crate::config_space::BarResource {
        start: 0xfd00_0000,
        len: 0x4000,
        io: false,
        prefetch: true,
        mem64: true,
    };
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0, 4), 0x10ca_8086);
    assert_eq!(cs.intx_pin(), 0);
    assert_eq!(rdv(&mut cs, &mut f, 0x3d, 1), 0);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0x0000_000c);
    // MEM reads as set although the VF does not implement it.
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0006);
    assert!(cs.memory_enabled());
    wrv(&mut cs, &mut f, 0x10, 4, 0xffff_ffff);
    wrv(&mut cs, &mut f, 0x14, 4, 0xffff_ffff);
    assert_eq!(rdv(&mut cs, &mut f, 0x10, 4), 0xffff_c00c);
    assert_eq!(rdv(&mut cs, &mut f, 0x14, 4), 0xffff_ffff);
    // Memory enable off: zap, but memory stays enabled for no_command_memory devices.
    f.ev.clear();
    wrv(&mut cs, &mut f, 4, 2, 0x0000);
    assert_eq!(f.effects()[0], Ev::Lock(true));
    assert_eq!(f.effects().last(), Some(&Ev::Unlock(Some(true))));
    assert!(cs.memory_enabled());
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0000);
    // IO re-enable after a "reset": the restore condition holds, but VFs are never restored.
    wrv(&mut cs, &mut f, 4, 2, 0x0007);
    f.put(4, 2, 0x0000);
    f.put(0x10, 4, 0x1234);
    f.ev.clear();
    wrv(&mut cs, &mut f, 4, 2, 0x0007);
    assert!(!f.effects().contains(&Ev::RestoreNotice));
    assert_eq!(f.writes(), vec![Ev::Write(4, Width::Word, 0x0007)]);
}

#[test]
fn pin_hidden_without_irq() {
    let mut d = edu();
    d.facts.irq_present = false;
    let (mut cs, mut f) = d.open();
    assert_eq!(cs.intx_pin(), 0);
    assert_eq!(rdv(&mut cs, &mut f, 0x3d, 1), 0);
    // The pin is not writable; the line is virtual and writable.
    wrv(&mut cs, &mut f, 0x3c, 2, 0x0105);
    assert_eq!(rdv(&mut cs, &mut f, 0x3c, 2), 0x0005);
    assert!(f.writes().is_empty());
}

#[test]
fn header_passthrough_fields() {
    let (mut cs, mut f) = edu().open();
    // Cache line size, latency timer and BIST go to hardware.
    wrv(&mut cs, &mut f, 0xc, 4, 0xaabb_ccdd);
    assert_eq!(f.writes(), vec![Ev::Write(0xc, Width::Dword, 0xaa00_ccdd),]);
    // Vendor/device, class, subsystem, capability pointer: dropped.
    f.ev.clear();
    wrv(&mut cs, &mut f, 0, 4, 0);
    wrv(&mut cs, &mut f, 8, 4, 0);
    wrv(&mut cs, &mut f, 0x2c, 4, 0);
    wrv(&mut cs, &mut f, 0x34, 1, 0);
    assert!(f.effects().is_empty());
    assert_eq!(rdv(&mut cs, &mut f, 0x34, 1), 0x40);
    // Status is read from hardware except CAP_LIST.
    f.put(6, 2, 0x0008);
    assert_eq!(rdv(&mut cs, &mut f, 6, 2), 0x0018);
}

#[test]
fn no_command_memory_read() {
    let mut d = edu();
    d.facts.no_command_memory = true;
    d.w16(4, 0x0004);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 4, 2), 0x0006);
    assert_eq!(rdv(&mut cs, &mut f, 4, 4), 0x0010_0006);
}

#[test]
fn init_failures() {
    let d = edu();
    let mut f = super::fake::Fake::new(d.img.clone());
    f.fail_read_at.push(0x40);
    let mut cs = Box::new(ConfigSpace::new());
    assert_eq!(cs.init(&d.facts, &mut f), Err(Errno(5)));
    let mut buf = [0u8; 4];
    assert_eq!(cs.rw(&mut f, 0, &mut buf, false), Err(Errno::EFAULT));

    let mut d = edu();
    d.facts.cfg_size = 32;
    let mut f = super::fake::Fake::new(d.img.clone());
    assert_eq!(cs.init(&d.facts, &mut f), Err(Errno::EINVAL));

    // An odd MSI capability pointer: pci_read_config_word fails, -EFAULT.
    let mut d = Dev::new(1, 2, 256);
    d.chain(&[(0x41, 0x05)]);
    let mut f = super::fake::Fake::new(d.img.clone());
    assert_eq!(cs.init(&d.facts, &mut f), Err(Errno::EFAULT));

    // A successful re-init after failures.
    let d = edu();
    let mut f = super::fake::Fake::new(d.img.clone());
    assert_eq!(cs.init(&d.facts, &mut f), Ok(()));
    assert_eq!(rdv(&mut cs, &mut f, 0, 4), 0x11e8_1234);
}

#[test]
fn zeroed_is_empty() {
    let mut cs = Box::<ConfigSpace>::default();
    let mut f = super::fake::Fake::new(vec![0; 4096]);
    let mut buf = [0u8; 1];
    assert_eq!(cs.rw(&mut f, 0, &mut buf, false), Err(Errno::EFAULT));
    assert_eq!(cs.cfg_size(), 0);
    assert!(cs.vconfig().is_empty());
}
