//! `config`: differential test of the config space region.
//!
//! Upstream vfio-pci virtualizes config space byte by byte
//! (drivers/vfio/pci/vfio_pci_config.c): some bits come from a virtual copy,
//! some from the device, some writes are dropped, some trigger actions (BAR
//! sizing, INTx disable, power state changes). This subcommand dumps the
//! whole region, reads it with odd sizes and out of range, then runs a
//! scripted sequence of writes, each followed by a read-back, and dumps
//! again. Every answer and every byte goes into the transcript, so a run
//! under the Rust driver is compared with a run under upstream byte for
//! byte. The checks assert only what upstream guarantees on any device.
//!
//! The device is left as found: every register written is restored, and
//! COMMAND last. No values in config space of the QEMU test devices change
//! on their own, so nothing is masked out of the transcript.

use super::{region_name, Ctx};
use crate::caps::{self, *};
use crate::sys::{show, SysResult};
use crate::transcript::hex;
use crate::uapi::*;

const CFG: u32 = VFIO_PCI_CONFIG_REGION_INDEX;

/// Run the `config` subcommand.
pub fn run(c: &mut Ctx) {
    let Some(r) = c.region(CFG) else {
        c.fail("region", "config region info", "error");
        return;
    };
    let size = r.info.size;
    c.t.line(format!(
        "config region size={size:#x} flags={:#x}",
        r.info.flags
    ));
    if !c.check(
        "region.size",
        size == 256 || size == 4096,
        "256 or 4096",
        size,
    ) {
        return;
    }
    let Some(before) = dump(c, "dump before", size as usize) else {
        return;
    };
    dword_dump(c, &before);
    odd_reads(c, &before);
    out_of_range(c, size);

    let mut s = Script {
        c,
        cfg: before.clone(),
        short_writes: Vec::new(),
        bad_reads: Vec::new(),
        writes: 0,
    };
    let cmd = s.cfg16(0x04);
    header(&mut s);
    bars(&mut s);
    for (id, off) in caps::pci_caps(&before) {
        cap(&mut s, id, off);
    }
    gaps(&mut s);
    if size > 256 {
        extended(&mut s);
    }
    s.section("restore COMMAND");
    let v = s.wr(0x04, 2, cmd as u32);
    s.expect("command.restored", v, cmd as u32);

    let Script {
        c,
        short_writes,
        bad_reads,
        writes,
        ..
    } = s;
    c.check(
        "writes_return_count",
        short_writes.is_empty(),
        format!("all {writes} in-range writes return their count"),
        short_writes.join(", "),
    );
    c.check(
        "reads_return_count",
        bad_reads.is_empty(),
        "every read-back returns its count",
        bad_reads.join(", "),
    );

    if let Some(after) = dump(c, "dump after", size as usize) {
        let diff: Vec<String> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .map(|i| format!("{i:#x}: {:02x}->{:02x}", before[i], after[i]))
            .collect();
        c.t.line(format!("changed bytes: {}", diff.len()));
        c.check(
            "unchanged_after_script",
            diff.is_empty(),
            "config space as found",
            diff.iter().take(16).cloned().collect::<Vec<_>>().join(", "),
        );
    }
}

/// Read the whole region in one pread and record it. Returns the bytes when
/// the read returned the full size.
fn dump(c: &mut Ctx, what: &str, size: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; size];
    let r = c.dev.read_region(CFG, 0, &mut b);
    c.t.line(format!(
        "{what}: pread config+0x0 len={size:#x} -> {}",
        show(&r)
    ));
    let ok = c.expect_ret(&format!("{}.read_all", what.replace(' ', "_")), &r, size);
    if !ok {
        return None;
    }
    for l in dump_lines(&b) {
        c.t.line(format!("  {l}"));
    }
    Some(b)
}

/// Hex dump lines of 16 bytes, runs of all-zero lines collapsed into one.
pub fn dump_lines(b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut zero_from: Option<usize> = None;
    let flush = |out: &mut Vec<String>, from: Option<usize>, to: usize| {
        if let Some(f) = from {
            out.push(format!("{f:03x}..{to:03x}: zero"));
        }
    };
    for (i, row) in b.chunks(16).enumerate() {
        let off = i * 16;
        if row.iter().all(|&x| x == 0) {
            zero_from.get_or_insert(off);
            continue;
        }
        flush(&mut out, zero_from.take(), off);
        out.push(format!("{off:03x}: {}", hex(row)));
    }
    flush(&mut out, zero_from, b.len());
    out
}

/// Read the region again in 4-byte preads; it must match the one-call read.
fn dword_dump(c: &mut Ctx, whole: &[u8]) {
    let mut b = vec![0u8; whole.len()];
    let mut errors = Vec::new();
    for (i, d) in b.chunks_mut(4).enumerate() {
        let off = (i * 4) as u64;
        let r = c.dev.read_region(CFG, off, d);
        if r != Ok(4) {
            errors.push(format!("{off:#x}: {}", show(&r)));
        }
    }
    c.t.line(format!("dword reads: {} failed", errors.len()));
    let same = b == whole;
    c.t.line(format!("dword reads match the one-call read: {same}"));
    if !same {
        for l in dump_lines(&b) {
            c.t.line(format!("  {l}"));
        }
    }
    c.check(
        "dword_reads",
        errors.is_empty(),
        "every 4-byte read returns 4",
        errors.join(", "),
    );
    let first = (0..b.len()).find(|&i| b[i] != whole[i]);
    c.check(
        "dword_reads_match",
        same,
        "same bytes as the one-call read",
        format!("first difference at {first:#x?}"),
    );
}

/// Unaligned and odd-sized reads: upstream splits them into naturally
/// aligned pieces that never cross a dword or capability boundary; the
/// bytes must be the ones of the full dump.
fn odd_reads(c: &mut Ctx, whole: &[u8]) {
    let size = whole.len() as u64;
    let mut cases: Vec<(u64, usize)> = vec![
        (0x05, 3),
        (0x3d, 2),
        (0x0c, 8),
        (0x3c, 8),
        (0x3e, 4),
        (0x01, 1),
        (0x0e, 1),
        (0x2a, 6),
        (0x10, 24),
        (size - 1, 1),
        (size - 4, 4),
    ];
    if size > 256 {
        cases.extend([(0xfc, 8), (0xfe, 4), (0x101, 2)]);
    }
    for (off, len) in cases {
        let (r, b) = c.pread_rec(CFG, off, len, true);
        let want = &whole[off as usize..off as usize + len];
        c.check(
            &format!("odd_read.{len}@{off:#x}"),
            r == Ok(len) && b == want,
            format!("{len} [{}]", hex(want)),
            format!("{} [{}]", show(&r), hex(&b)),
        );
    }
}

/// Accesses past the end: upstream answers EFAULT for the whole access when
/// any byte is out of range (nothing is transferred), and masks the region
/// offset so only the position within 2^40 matters.
fn out_of_range(c: &mut Ctx, size: u64) {
    for (off, len, what) in [
        (size, 4usize, "at_size"),
        (size - 2, 4, "straddling_end"),
        (size, 1, "at_size_byte"),
        (1 << 39, 4, "at_2^39"),
    ] {
        let (r, _) = c.pread_rec(CFG, off, len, true);
        c.expect_errno(&format!("efault.read_{what}"), &r, libc::EFAULT);
        let w = c.pwrite_rec(CFG, off, &vec![0u8; len], true);
        c.expect_errno(&format!("efault.write_{what}"), &w, libc::EFAULT);
    }
    // The last bytes before the end of the straddling write were not
    // written either.
    let (r, _) = c.pread_rec(CFG, size - 2, 2, true);
    c.expect_ret("efault.last_word_readable", &r, 2);
}

/// The write/read-back sequence and its bookkeeping.
struct Script<'c, 'k> {
    c: &'c mut Ctx<'k>,
    /// The config image read at the start (virtualized, as the user sees it).
    cfg: Vec<u8>,
    /// In-range writes that did not return their count.
    short_writes: Vec<String>,
    /// Read-backs that did not return their count.
    bad_reads: Vec<String>,
    writes: usize,
}

fn le(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a[..b.len().min(4)].copy_from_slice(&b[..b.len().min(4)]);
    u32::from_le_bytes(a)
}

fn hexopt(v: Option<u32>) -> String {
    match v {
        Some(v) => format!("{v:#x}"),
        None => "read failed".into(),
    }
}

impl Script<'_, '_> {
    fn section(&mut self, s: &str) {
        self.c.t.line(format!("## {s}"));
    }

    fn cfg16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.cfg[off], self.cfg[off + 1]])
    }

    fn cfg32(&self, off: usize) -> u32 {
        le(&self.cfg[off..off + 4])
    }

    /// pread `len` (1, 2 or 4) bytes, recorded; the value if complete.
    fn read(&mut self, off: u64, len: usize) -> Option<u32> {
        let (r, b) = self.c.pread_rec(CFG, off, len, true);
        if r == Ok(len) {
            Some(le(&b))
        } else {
            self.bad_reads.push(format!("{off:#x}/{len}: {}", show(&r)));
            None
        }
    }

    /// pwrite the low `len` bytes of `v`, recorded.
    fn write(&mut self, off: u64, len: usize, v: u32) -> SysResult<usize> {
        let w = self.c.pwrite_rec(CFG, off, &v.to_le_bytes()[..len], true);
        self.writes += 1;
        if w != Ok(len) {
            self.short_writes
                .push(format!("{off:#x}/{len}: {}", show(&w)));
        }
        w
    }

    /// Write, then read the same bytes back.
    fn wr(&mut self, off: u64, len: usize, v: u32) -> Option<u32> {
        let _ = self.write(off, len, v);
        self.read(off, len)
    }

    /// Pass if the read-back is `want`.
    fn expect(&mut self, name: &str, got: Option<u32>, want: u32) -> bool {
        self.c
            .check(name, got == Some(want), format!("{want:#x}"), hexopt(got))
    }

    /// Write `v` somewhere read-only: the write is accepted and dropped.
    fn dropped(&mut self, name: &str, off: u64, len: usize, v: u32) {
        let before = le(&self.cfg[off as usize..off as usize + len]);
        let got = self.wr(off, len, v);
        self.expect(name, got, before);
    }
}

/// Type-0 header registers other than the BARs.
fn header(s: &mut Script) {
    s.section("vendor and device id (read-only)");
    s.dropped("ids.write32_dropped", 0x00, 4, 0x1234_5678);
    s.dropped("ids.vendor_write16_dropped", 0x00, 2, 0xffff);
    s.dropped("ids.device_write16_dropped", 0x02, 2, 0);

    s.section("COMMAND");
    let cmd = s.cfg16(0x04);
    let v = s.wr(0x04, 2, (cmd | PCI_COMMAND_INTX_DISABLE) as u32);
    s.expect(
        "command.intx_disable_set",
        v.map(|v| v & PCI_COMMAND_INTX_DISABLE as u32),
        PCI_COMMAND_INTX_DISABLE as u32,
    );
    let v = s.wr(0x04, 2, (cmd & !PCI_COMMAND_INTX_DISABLE) as u32);
    s.expect(
        "command.intx_disable_clear",
        v.map(|v| v & PCI_COMMAND_INTX_DISABLE as u32),
        0,
    );
    let v = s.wr(0x04, 2, (cmd & !PCI_COMMAND_MEMORY) as u32);
    s.expect(
        "command.mem_off",
        v.map(|v| v & PCI_COMMAND_MEMORY as u32),
        0,
    );
    let v = s.wr(0x04, 2, (cmd | PCI_COMMAND_MEMORY) as u32);
    s.expect(
        "command.mem_on",
        v.map(|v| v & PCI_COMMAND_MEMORY as u32),
        PCI_COMMAND_MEMORY as u32,
    );
    // IO enable toggled away from its original value and back.
    let _ = s.wr(0x04, 2, (cmd ^ PCI_COMMAND_IO) as u32);
    let v = s.wr(0x04, 2, cmd as u32);
    s.expect("command.toggles_restored", v, cmd as u32);
    // Byte writes to each half.
    let _ = s.wr(0x05, 1, ((cmd | PCI_COMMAND_INTX_DISABLE) >> 8) as u32);
    let v = s.wr(0x05, 1, (cmd >> 8) as u32);
    s.expect("command.byte_write_restored", v, (cmd >> 8) as u32);

    s.section("STATUS (read-only, write-1-to-clear bits not cleared)");
    let st = s.cfg16(0x06);
    let v = s.wr(0x06, 2, 0xffff);
    s.expect(
        "status.cap_list_kept",
        v.map(|v| v & 0x10),
        st as u32 & 0x10,
    );

    s.section("revision and class (read-only)");
    s.dropped("class.write_dropped", 0x08, 4, 0xffff_ffff);

    s.section("cache line size and latency timer");
    let cls = s.cfg[0x0c] as u32;
    let lat = s.cfg[0x0d] as u32;
    let _ = s.wr(0x0c, 1, 0x10);
    let _ = s.wr(0x0d, 1, 0x40);
    let _ = s.wr(0x0c, 2, 0x2008);
    let v = s.wr(0x0c, 1, cls);
    s.expect("cache_line.restored", v, cls);
    let v = s.wr(0x0d, 1, lat);
    s.expect("latency_timer.restored", v, lat);
    s.dropped("header_type.write_dropped", 0x0e, 1, 0x7f);

    s.section("subsystem ids, cardbus CIS (read-only)");
    s.dropped("subsystem.write_dropped", 0x2c, 4, 0xffff_ffff);
    s.dropped("cardbus_cis.write_dropped", 0x28, 4, 0xffff_ffff);

    s.section("capability pointer (virtual, read-only)");
    s.dropped("cap_pointer.write_dropped", 0x34, 1, 0);
    s.dropped("reserved_35.write_dropped", 0x35, 1, 0xff);

    s.section("interrupt line (virtual, writable)");
    let line = s.cfg[0x3c] as u32;
    let v = s.wr(0x3c, 1, line ^ 0x5a);
    s.expect("int_line.writable", v, line ^ 0x5a);
    let v = s.wr(0x3c, 1, line);
    s.expect("int_line.restored", v, line);

    s.section("interrupt pin (virtual, read-only), min_gnt/max_lat");
    let pin = s.cfg[0x3d] as u32;
    s.dropped("int_pin.write_dropped", 0x3d, 1, pin % 4 + 1);
    s.dropped("gnt_lat.write_dropped", 0x3e, 2, 0xffff);
}

/// Value upstream's `vfio_bar_fixup` makes a BAR read after all ones were
/// written: the size mask of the resource (`size` bytes) with the flags of
/// the original register, or for the upper half of a 64-bit BAR the upper
/// half of the mask. 0 for an unimplemented BAR.
pub fn bar_sizing_value(orig_lower: u32, size: u64, upper: bool) -> u32 {
    if size == 0 {
        return 0;
    }
    let mask = !(size - 1);
    if upper {
        return (mask >> 32) as u32;
    }
    let flags = if orig_lower & 1 != 0 {
        1
    } else {
        orig_lower & 0xf
    };
    (mask as u32) | flags
}

fn bars(s: &mut Script) {
    // Size of the 64-bit BAR whose upper half comes next.
    let mut upper_of: Option<u64> = None;
    for i in 0..6u32 {
        let off = 0x10 + 4 * i as u64;
        let orig = s.cfg32(off as usize);
        let size = s.c.region(i).map(|r| r.info.size).unwrap_or(0);
        let (upper, lower_size) = match upper_of.take() {
            Some(sz) => (true, sz),
            None => (false, size),
        };
        s.section(&format!(
            "{} sizing ({}region size {size:#x})",
            region_name(i),
            if upper {
                "upper half of 64-bit BAR, "
            } else {
                ""
            }
        ));
        let v = s.wr(off, 4, 0xffff_ffff);
        let want = bar_sizing_value(orig, lower_size, upper);
        s.expect(&format!("bar{i}.sizing"), v, want);
        if !upper && lower_size != 0 {
            let flag_bits = if orig & 1 != 0 { 0x3 } else { 0xf };
            s.expect(
                &format!("bar{i}.sizing_keeps_flags"),
                v.map(|v| v & flag_bits),
                orig & flag_bits,
            );
        }
        let v = s.wr(off, 4, orig);
        s.expect(&format!("bar{i}.restored"), v, orig);
        if !upper && orig & 0x7 == 0x4 && lower_size != 0 {
            upper_of = Some(lower_size);
        }
    }

    s.section("ROM BAR sizing");
    let orig = s.cfg32(0x30);
    let rom =
        s.c.region(VFIO_PCI_ROM_REGION_INDEX)
            .map(|r| r.info.size)
            .unwrap_or(0);
    s.c.t.line(format!("rom region size {rom:#x}"));
    let _ = s.wr(0x30, 4, 0xffff_f800);
    let v = s.wr(0x30, 4, 0xffff_ffff);
    s.c.check(
        "rom.sizing_reserved_bits_zero",
        v.is_some_and(|v| v & 0x7fe == 0),
        "bits 1..10 read 0",
        hexopt(v),
    );
    if rom.is_power_of_two() {
        s.expect("rom.sizing", v, !(rom as u32 - 1) | 1);
    }
    let v = s.wr(0x30, 4, orig);
    s.expect("rom.restored", v, orig);
}

/// Writes into one standard capability at `off`.
fn cap(s: &mut Script, id: u8, off: u8) {
    let o = off as u64;
    let len = caps::std_cap_len(&s.cfg, id, off);
    s.section(&format!(
        "capability {id:#04x} at {off:#04x} (length {len})"
    ));
    let n = format!("cap{id:02x}@{off:02x}");
    s.dropped(&format!("{n}.id_write_dropped"), o, 1, 0);
    s.dropped(&format!("{n}.next_write_dropped"), o + 1, 1, 0);
    match id {
        PCI_CAP_ID_PM => pm(s, o, &n),
        PCI_CAP_ID_MSI => msi(s, o, &n),
        PCI_CAP_ID_EXP => exp(s, o, &n, len),
        PCI_CAP_ID_MSIX => {
            // Read-only to the user: MSI-X is enabled through SET_IRQS only.
            let ctrl = s.cfg16(off as usize + 2) as u32;
            s.dropped(&format!("{n}.ctrl_write_dropped"), o + 2, 2, ctrl | 0xc000);
            s.dropped(&format!("{n}.table_write_dropped"), o + 4, 4, 0xffff_fff8);
        }
        _ => {}
    }
}

fn pm(s: &mut Script, o: u64, n: &str) {
    // PMC is read-only; PME_Support reads 0 (virtualized).
    s.dropped(&format!("{n}.pmc_write_dropped"), o + 2, 2, 0xffff);
    let pmcsr = s.cfg16((o + PCI_PM_CTRL) as usize) as u32;
    let d0 = pmcsr & !(PCI_PM_CTRL_STATE_MASK as u32);
    // PME_En and PME_Status are virtual and not writable.
    let v = s.wr(o + PCI_PM_CTRL, 2, d0 | 0x8100);
    s.expect(&format!("{n}.pme_bits_dropped"), v.map(|v| v & 0x8100), 0);
    let v = s.wr(o + PCI_PM_CTRL, 2, d0 | 3);
    s.expect(&format!("{n}.d3hot"), v.map(|v| v & 3), 3);
    let cmd = s.read(PCI_COMMAND, 2);
    // A memory BAR is not accessible in D3hot.
    if let Some(bar) = first_memory_bar(s) {
        let (r, _) = s.c.pread_rec(bar, 0, 4, false);
        s.c.expect_errno(&format!("{n}.d3hot_bar_eio"), &r, libc::EIO);
    }
    let v = s.wr(o + PCI_PM_CTRL, 2, d0);
    s.expect(&format!("{n}.d0"), v.map(|v| v & 3), 0);
    // Back in D0 the device must decode memory again. With NoSoftRst- the
    // device may have reset; upstream restores its saved state.
    let after = s.read(PCI_COMMAND, 2);
    s.c.t.line(format!(
        "COMMAND in D3hot {}, after D0 {}",
        hexopt(cmd),
        hexopt(after)
    ));
    if let Some(bar) = first_memory_bar(s) {
        let stable = s.c.kind.stable_data(bar, 0, 4);
        let (r, _) = s.c.pread_rec(bar, 0, 4, stable);
        s.c.expect_ret(&format!("{n}.d0_bar_read"), &r, 4);
    }
}

/// Index of the first implemented memory BAR (from the initial image).
fn first_memory_bar(s: &mut Script) -> Option<u32> {
    let mut i = 0u32;
    while i < 6 {
        let v = s.cfg32(0x10 + 4 * i as usize);
        if v != 0 && v & 1 == 0 {
            let size = s.c.region(i).map(|r| r.info.size).unwrap_or(0);
            if size != 0 {
                return Some(i);
            }
        }
        i += if v & 0x7 == 0x4 { 2 } else { 1 };
    }
    None
}

fn msi(s: &mut Script, o: u64, n: &str) {
    let flags = s.cfg16(o as usize + 2) as u32;
    let is64 = flags & 0x80 != 0;
    let maskbit = flags & 0x100 != 0;
    // Enable is refused (MSI is enabled through SET_IRQS) and the queue size
    // is clamped to what was allocated.
    let v = s.wr(o + 2, 2, flags | 0x0071);
    s.expect(&format!("{n}.enable_refused"), v.map(|v| v & 1), 0);
    let v = s.wr(o + 2, 2, flags);
    s.expect(&format!("{n}.flags_restored"), v, flags);
    let addr = s.cfg32(o as usize + 4);
    let v = s.wr(o + 4, 4, 0xfee0_100c);
    s.expect(&format!("{n}.address_virtual"), v, 0xfee0_100c);
    let v = s.wr(o + 4, 4, addr);
    s.expect(&format!("{n}.address_restored"), v, addr);
    let data_off = if is64 {
        let hi = s.cfg32(o as usize + 8);
        let v = s.wr(o + 8, 4, 0x1234_5678);
        s.expect(&format!("{n}.address_hi_virtual"), v, 0x1234_5678);
        let v = s.wr(o + 8, 4, hi);
        s.expect(&format!("{n}.address_hi_restored"), v, hi);
        o + 12
    } else {
        o + 8
    };
    let data = s.cfg16(data_off as usize) as u32;
    let v = s.wr(data_off, 2, 0x4321);
    s.expect(&format!("{n}.data_virtual"), v, 0x4321);
    let v = s.wr(data_off, 2, data);
    s.expect(&format!("{n}.data_restored"), v, data);
    if maskbit {
        let mask_off = data_off + 4;
        let m = s.cfg32(mask_off as usize);
        let _ = s.wr(mask_off, 4, m ^ 1);
        let v = s.wr(mask_off, 4, m);
        s.expect(&format!("{n}.mask_restored"), v, m);
    }
}

fn exp(s: &mut Script, o: u64, n: &str, len: usize) {
    let devcap = s.cfg32((o + PCI_EXP_DEVCAP) as usize);
    s.c.t.line(format!(
        "DEVCAP {devcap:#010x}: FLR {}",
        if devcap & PCI_EXP_DEVCAP_FLR != 0 {
            "capable"
        } else {
            "not capable"
        }
    ));
    s.dropped(
        &format!("{n}.devcap_write_dropped"),
        o + PCI_EXP_DEVCAP,
        4,
        0,
    );
    let ctl = o + PCI_EXP_DEVCTL;
    let devctl = s.cfg16(ctl as usize) as u32;
    // Error reporting enables (written to the device), Max_Read_Request_Size
    // and Max_Payload_Size (virtual), Phantom Functions (read-only),
    // relaxed ordering / extended tag / no snoop (written to the device).
    // Never the FLR bit here.
    let v = s.wr(ctl, 2, devctl ^ 0x000f);
    s.expect(&format!("{n}.devctl_no_flr"), v.map(|v| v & 0x8000), 0);
    let readrq = (devctl & !0x7000) | 0x5000;
    let v = s.wr(ctl, 2, readrq);
    s.expect(
        &format!("{n}.devctl_readrq_virtual"),
        v.map(|v| v & 0x7000),
        0x5000,
    );
    let payload = devctl ^ 0x00e0;
    let v = s.wr(ctl, 2, payload);
    s.expect(
        &format!("{n}.devctl_payload_virtual"),
        v.map(|v| v & 0x00e0),
        payload & 0x00e0,
    );
    let v = s.wr(ctl, 2, devctl ^ 0x0200);
    s.expect(
        &format!("{n}.devctl_phantom_readonly"),
        v.map(|v| v & 0x0200),
        devctl & 0x0200,
    );
    let _ = s.wr(ctl, 2, devctl ^ 0x0d10);
    let v = s.wr(ctl, 2, devctl);
    s.expect(&format!("{n}.devctl_restored"), v, devctl);
    // Byte write to the upper half (MRRS lives there).
    let _ = s.wr(ctl + 1, 1, (readrq >> 8) & 0x7f);
    let v = s.wr(ctl, 2, devctl);
    s.expect(&format!("{n}.devctl_restored2"), v, devctl);
    // DEVSTA and LNKCTL are read-only through vfio.
    let devsta = s.cfg16(o as usize + 0x0a) as u32;
    let _ = s.wr(o + 0x0a, 2, 0xffff);
    s.c.t.line(format!("DEVSTA before {devsta:#06x}"));
    if len > 0x12 {
        let lnkctl = s.cfg16(o as usize + 0x10) as u32;
        s.dropped(
            &format!("{n}.lnkctl_write_dropped"),
            o + 0x10,
            2,
            lnkctl ^ 0x0043,
        );
    }
    if len > 0x2a {
        // DEVCTL2: writable except ARI forwarding (written to the device).
        let d2 = s.cfg16(o as usize + 0x28) as u32;
        let _ = s.wr(o + 0x28, 2, d2 ^ 0x0030);
        let v = s.wr(o + 0x28, 2, d2);
        s.expect(&format!("{n}.devctl2_restored"), v, d2);
    }
}

/// Unassigned dwords between capabilities (raw pass-through upstream):
/// a few whole ones, and the dword where a capability of non-multiple-of-4
/// length ends, written with the capability's own bytes unchanged.
fn gaps(s: &mut Script) {
    let free = caps::unassigned_dwords(&s.cfg);
    let mut picks: Vec<u16> = Vec::new();
    for (id, off) in caps::pci_caps(&s.cfg) {
        let end = off as u16 + caps::std_cap_len(&s.cfg, id, off) as u16;
        let next = (end + 3) & !3;
        if free.contains(&next) && !picks.contains(&next) {
            picks.push(next);
        }
    }
    for d in [free.first().copied(), free.last().copied()]
        .into_iter()
        .flatten()
    {
        if !picks.contains(&d) {
            picks.push(d);
        }
    }
    picks.truncate(4);
    picks.sort();
    s.section(&format!(
        "unassigned dwords: {} free, writing {:x?}",
        free.len(),
        picks
    ));
    for d in picks {
        let orig = s.cfg32(d as usize);
        let _ = s.wr(d as u64, 4, 0x5aa5_c33c);
        let _ = s.wr(d as u64 + 1, 2, 0x0ff0);
        let v = s.wr(d as u64, 4, orig);
        s.expect(&format!("gap@{d:02x}.restored"), v, orig);
    }
    // Straddling writes: a capability ending inside a dword.
    for (id, off) in caps::pci_caps(&s.cfg) {
        let end = off as usize + caps::std_cap_len(&s.cfg, id, off);
        if end.is_multiple_of(4) || end >= 256 {
            continue;
        }
        let d = end & !3;
        let orig = s.cfg32(d);
        // Keep the capability's bytes, flip the unassigned ones.
        let tail_mask = u32::MAX << (8 * (end - d));
        s.section(&format!(
            "dword {d:#04x}: end of capability {id:#04x} and unassigned bytes"
        ));
        let _ = s.wr(d as u64, 4, orig ^ (0x5a5a_5a5a & tail_mask));
        let v = s.wr(d as u64, 4, orig);
        s.expect(&format!("straddle@{d:02x}.restored"), v, orig);
    }
}

/// Extended config space: the header at 0x100 and the first capability's
/// body (or whatever is at 0x104 when there is none), and the last dword.
fn extended(s: &mut Script) {
    let list = caps::pci_ext_caps(&s.cfg);
    let shown: Vec<String> = list
        .iter()
        .map(|(id, v, off)| format!("{id:04x}v{v}@{off:03x}"))
        .collect();
    s.section(&format!(
        "extended capabilities: {}",
        if shown.is_empty() {
            "(none)".into()
        } else {
            shown.join(" ")
        }
    ));
    let h = s.cfg32(0x100);
    let _ = s.wr(0x100, 4, 0xffff_ffff);
    let _ = s.wr(0x102, 2, 0);
    let v = s.wr(0x100, 4, h);
    s.expect("ext.header_restored", v, h);
    let body = list.first().map_or(0x104, |&(_, _, off)| off as u64 + 4);
    let b = s.cfg32(body as usize);
    let _ = s.wr(body, 4, 0xffff_ffff);
    let v = s.wr(body, 4, b);
    // Write-1-to-clear status bits (AER) may have been cleared: record only.
    s.c.t
        .line(format!("first extended body restored: {}", v == Some(b)));
    let last = s.cfg.len() as u64 - 4;
    let l = s.cfg32(last as usize);
    let _ = s.wr(last, 4, 0xa5a5_5a5a);
    let v = s.wr(last, 4, l);
    s.expect("ext.last_dword_restored", v, l);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_lines_collapse_zero_runs() {
        let mut b = vec![0u8; 64];
        b[0] = 0x86;
        b[0x31] = 1;
        assert_eq!(
            dump_lines(&b),
            vec![
                "000: 86000000 00000000 00000000 00000000",
                "010..030: zero",
                "030: 00010000 00000000 00000000 00000000",
            ]
        );
        assert_eq!(dump_lines(&[0u8; 32]), vec!["000..020: zero"]);
    }

    #[test]
    fn bar_sizing_values() {
        // 32-bit non-prefetchable 1 MiB memory BAR.
        assert_eq!(bar_sizing_value(0xfea0_0000, 1 << 20, false), 0xfff0_0000);
        // 64-bit prefetchable 1 GiB: lower and upper halves.
        assert_eq!(bar_sizing_value(0x8000_000c, 1 << 30, false), 0xc000_000c);
        assert_eq!(bar_sizing_value(0x0000_0008, 1 << 30, true), 0xffff_ffff);
        // 8 GiB BAR: the upper half carries size bits too.
        assert_eq!(bar_sizing_value(0, 8 << 30, true), 0xffff_fffe);
        // I/O BAR of 256 ports.
        assert_eq!(bar_sizing_value(0xc001, 256, false), 0xffff_ff01);
        // Unimplemented.
        assert_eq!(bar_sizing_value(0, 0, false), 0);
    }
}
