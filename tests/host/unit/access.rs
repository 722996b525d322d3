// SPDX-License-Identifier: GPL-2.0

//! Access splitting, range checks and error propagation.

use super::devices::{edu, igb, nvme};
use super::fake::{rd, rdv, wr, Dev, Ev};
use crate::config_space::{Errno, Width};

#[test]
fn split_at_dwords_in_unassigned_space() {
    let (mut cs, mut f) = nvme().open();
    rd(&mut cs, &mut f, 0xc2, 8);
    assert_eq!(
        f.reads(),
        vec![
            Ev::Read(0xc2, Width::Word),
            Ev::Read(0xc4, Width::Dword),
            Ev::Read(0xc8, Width::Word)
        ]
    );
    f.ev.clear();
    rd(&mut cs, &mut f, 0xc1, 7);
    assert_eq!(
        f.reads(),
        vec![
            Ev::Read(0xc1, Width::Byte),
            Ev::Read(0xc2, Width::Word),
            Ev::Read(0xc4, Width::Dword)
        ]
    );
    f.ev.clear();
    wr(&mut cs, &mut f, 0xc5, &[1, 2, 3]);
    assert_eq!(
        f.writes(),
        vec![
            Ev::Write(0xc5, Width::Byte, 1),
            Ev::Write(0xc6, Width::Word, 0x0302)
        ]
    );
    f.ev.clear();
    rd(&mut cs, &mut f, 0xc3, 3);
    assert_eq!(
        f.reads(),
        vec![Ev::Read(0xc3, Width::Byte), Ev::Read(0xc4, Width::Word)]
    );
}

#[test]
fn split_across_header_and_capability() {
    let (mut cs, mut f) = nvme().open();
    let v = rd(&mut cs, &mut f, 0x3e, 8);
    assert_eq!(
        f.reads(),
        vec![
            Ev::Read(0x3e, Width::Word),
            Ev::Read(0x40, Width::Dword),
            Ev::Read(0x44, Width::Word)
        ]
    );
    assert_eq!(&v[2..4], &[0x11, 0x00], "MSI-X ID and next from vconfig");
}

#[test]
fn split_at_capability_end_inside_dword() {
    // AF is 6 bytes: 0x48..0x4d; 0x4e..0x4f are unassigned.
    let mut d = Dev::new(0x1000, 0x0002, 256);
    d.chain(&[(0x48, 0x13)]).w8(0x4a, 6).w8(0x4b, 0x03);
    d.w16(0x4e, 0xbeef);
    let (mut cs, mut f) = d.open();
    assert_eq!(rdv(&mut cs, &mut f, 0x4c, 4), 0xbeef_0000);
    assert_eq!(
        f.reads(),
        vec![Ev::Read(0x4c, Width::Word), Ev::Read(0x4e, Width::Word)]
    );
    // MSI-X ends at 0x4b in nvme: a dword read at 0x4a is two words.
    let (mut cs, mut f) = nvme().open();
    rd(&mut cs, &mut f, 0x4a, 4);
    assert_eq!(
        f.reads(),
        vec![Ev::Read(0x4a, Width::Word), Ev::Read(0x4c, Width::Word)]
    );
}

#[test]
fn out_of_range_is_efault() {
    let (mut cs, mut f) = edu().open();
    let mut buf = [0u8; 2];
    assert_eq!(cs.rw(&mut f, 256, &mut buf[..1], false), Err(Errno::EFAULT));
    assert_eq!(cs.rw(&mut f, 255, &mut buf, false), Err(Errno::EFAULT));
    assert_eq!(cs.rw(&mut f, 255, &mut buf, true), Err(Errno::EFAULT));
    assert_eq!(
        cs.rw(&mut f, 0xff_ffff_ffff, &mut buf, false),
        Err(Errno::EFAULT)
    );
    assert!(f.ev.is_empty(), "nothing accessed");
    assert_eq!(cs.rw(&mut f, 255, &mut buf[..1], false), Ok(1));
    // A zero-length access succeeds anywhere.
    assert_eq!(cs.rw(&mut f, 100_000, &mut buf[..0], true), Ok(0));
    // Index bits above bit 40 are ignored.
    let mut b4 = [0u8; 4];
    assert_eq!(cs.rw(&mut f, 7 << 40, &mut b4, false), Ok(4));
    assert_eq!(u32::from_le_bytes(b4), 0x11e8_1234);
    assert_eq!(
        cs.rw(&mut f, u64::MAX, &mut b4[..1], false),
        Err(Errno::EFAULT)
    );

    let (mut cs, mut f) = igb().open();
    assert_eq!(cs.rw(&mut f, 4095, &mut buf[..1], false), Ok(1));
    let mut b8 = [0u8; 8];
    assert_eq!(cs.rw(&mut f, 4092, &mut b8, false), Err(Errno::EFAULT));
    assert_eq!(cs.rw(&mut f, 4096, &mut b8[..1], true), Err(Errno::EFAULT));
}

#[test]
fn hardware_errors_propagate() {
    let (mut cs, mut f) = nvme().open();
    f.fail_read_at.push(0xc4);
    let mut b = [0u8; 8];
    assert_eq!(cs.rw(&mut f, 0xc0, &mut b, false), Err(Errno(5)));
    f.fail_write_at.push(0xd0);
    assert_eq!(cs.rw(&mut f, 0xd0, &mut b[..4], true), Err(Errno(5)));

    // COMMAND: a failed physical read happens before the lock.
    let (mut cs, mut f) = edu().open();
    f.fail_read_at.push(4);
    assert_eq!(cs.rw(&mut f, 4, &mut [6, 0], true), Err(Errno(5)));
    assert!(f.effects().is_empty());
    // A failed write releases the lock without a new decode state.
    let (mut cs, mut f) = edu().open();
    f.fail_write_at.push(4);
    assert_eq!(cs.rw(&mut f, 4, &mut [4, 0], true), Err(Errno(5)));
    assert_eq!(
        f.effects(),
        vec![
            Ev::Lock(true),
            Ev::Write(4, Width::Word, 4),
            Ev::Unlock(None)
        ]
    );
    assert!(
        cs.memory_enabled(),
        "virtual MEM unchanged after a failed write"
    );
}

#[test]
fn msi_flags_hw_write_error() {
    let (mut cs, mut f) = igb().open();
    f.fail_write_at.push(0x52);
    assert_eq!(cs.rw(&mut f, 0x52, &mut [0x80, 0x01], true), Err(Errno(5)));
}
