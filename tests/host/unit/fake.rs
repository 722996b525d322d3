// SPDX-License-Identifier: GPL-2.0

//! A fake PCI function for the config-space model: a 4096-byte physical config image that
//! behaves like RAM, a log of every backend call, and optional write-permission checking.

use crate::config_space::{
    BarResource, ConfigBackend, ConfigSpace, DeviceFacts, Errno, MsiIrqState, PowerState, Width,
};

/// One backend call, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    /// `hw_read(offset, width)`.
    Read(u16, Width),
    /// `hw_write(offset, width, value)`.
    Write(u16, Width, u32),
    /// `memory_write_lock(zap)`.
    Lock(bool),
    /// `memory_write_unlock(memory_enabled)`.
    Unlock(Option<bool>),
    /// `set_power_state(state)`.
    Power(PowerState),
    /// `function_reset()`.
    Reset,
    /// `set_virq_disabled(disabled)`.
    Virq(bool),
    /// `pcie_set_readrq(bytes)`.
    Readrq(u32),
    /// `vpd_read(addr)`.
    VpdRead(u16),
    /// `vpd_write(addr, data)`.
    VpdWrite(u16, u32),
    /// `bar_restore_notice()`.
    RestoreNotice,
}

/// Write-permission checking used by the fuzz test.
#[derive(Clone)]
pub(crate) struct Guard {
    /// Per byte, the bits a plain user write may change in hardware.
    pub(crate) allowed: Vec<u8>,
    /// Values of BAR0-5 and the ROM BAR that a restore may write back.
    pub(crate) rbar: [u32; 7],
    /// The MSI capability offset, to check the flags word written to hardware.
    pub(crate) msi: Option<usize>,
    /// The device has the nointx quirk (a restore may set DisINTx).
    pub(crate) nointx: bool,
    /// Violations found.
    pub(crate) violations: Vec<String>,
}

/// The fake device.
pub(crate) struct Fake {
    /// Physical config space.
    pub(crate) img: Vec<u8>,
    /// Every backend call.
    pub(crate) ev: Vec<Ev>,
    /// Inside `memory_write_lock`/`memory_write_unlock`.
    pub(crate) locked: bool,
    /// `vdev->virq_disabled`.
    pub(crate) virq: bool,
    /// MSI irq state returned to the model.
    pub(crate) msi: MsiIrqState,
    /// Max payload size in bytes.
    pub(crate) mps: u32,
    /// VPD contents.
    pub(crate) vpd: Vec<u8>,
    /// VPD accesses fail.
    pub(crate) vpd_fail: bool,
    /// Offsets whose reads fail with EIO.
    pub(crate) fail_read_at: Vec<u16>,
    /// Offsets whose writes fail with EIO.
    pub(crate) fail_write_at: Vec<u16>,
    /// Optional write checking.
    pub(crate) guard: Option<Guard>,
    /// Whether to log `Read` events (the fuzz test turns it off for speed).
    pub(crate) log_reads: bool,
}

impl Fake {
    /// A fake with the given physical image.
    pub(crate) fn new(img: Vec<u8>) -> Fake {
        assert_eq!(img.len(), 4096);
        Fake {
            img,
            ev: Vec::new(),
            locked: false,
            virq: false,
            msi: MsiIrqState::default(),
            mps: 128,
            vpd: (0..=255u8).collect(),
            vpd_fail: false,
            fail_read_at: Vec::new(),
            fail_write_at: Vec::new(),
            guard: None,
            log_reads: true,
        }
    }

    /// Little-endian value of `n` bytes of the physical image.
    pub(crate) fn get(&self, off: usize, n: usize) -> u32 {
        let mut v = 0u32;
        for i in (0..n).rev() {
            v = (v << 8) | u32::from(self.img[off + i]);
        }
        v
    }

    /// Stores `n` bytes little-endian into the physical image.
    pub(crate) fn put(&mut self, off: usize, n: usize, v: u32) {
        for i in 0..n {
            self.img[off + i] = (v >> (8 * i)) as u8;
        }
    }

    /// Events other than reads.
    pub(crate) fn effects(&self) -> Vec<Ev> {
        self.ev
            .iter()
            .copied()
            .filter(|e| !matches!(e, Ev::Read(..)))
            .collect()
    }

    /// Physical writes only.
    pub(crate) fn writes(&self) -> Vec<Ev> {
        self.ev
            .iter()
            .copied()
            .filter(|e| matches!(e, Ev::Write(..)))
            .collect()
    }

    /// Physical reads only.
    pub(crate) fn reads(&self) -> Vec<Ev> {
        self.ev
            .iter()
            .copied()
            .filter(|e| matches!(e, Ev::Read(..)))
            .collect()
    }

    /// Checks one physical write against the guard.
    fn check_write(&mut self, off: usize, n: usize, value: u32) {
        let locked = self.locked;
        let img_old: Vec<u8> = self.img[off..off + n].to_vec();
        let Some(g) = self.guard.as_mut() else {
            return;
        };
        let bytes = value.to_le_bytes();
        let is_bar = (0x10..0x28).contains(&off) || off == 0x30;
        if is_bar {
            let idx = if off == 0x30 { 6 } else { (off - 0x10) / 4 };
            if !(locked && n == 4 && value == g.rbar[idx]) {
                g.violations.push(format!(
                    "BAR write {off:#x}={value:#x} (locked {locked}, saved {:#x})",
                    g.rbar[idx]
                ));
            }
            return;
        }
        if locked && !(off == 4 || off == 6) {
            g.violations
                .push(format!("write {off:#x} w{n} inside the memory lock"));
        }
        for i in 0..n {
            let o = off + i;
            let mut allowed = g.allowed[o];
            if locked && g.nointx && o == 5 {
                allowed |= 0x04; // restore sets DisINTx
            }
            let diff = (img_old[i] ^ bytes[i]) & !allowed;
            if diff != 0 {
                g.violations.push(format!(
                    "write {off:#x} w{n} = {value:#x} changes protected bits {diff:#x} of byte {o:#x}"
                ));
            }
        }
        if let Some(m) = g.msi {
            if off == m + 2 && n == 2 {
                let flags = value as u16;
                if flags & 1 != 0 && !self.msi.msi_enabled {
                    g.violations.push(format!("MSI enable written {flags:#x}"));
                }
                if (flags & 0x70) >> 4 > u16::from(self.msi.qmax) {
                    g.violations
                        .push(format!("MSI QSIZE above qmax {flags:#x}"));
                }
            }
        }
    }
}

impl ConfigBackend for Fake {
    fn hw_read(&mut self, offset: u16, width: Width) -> Result<u32, Errno> {
        let off = usize::from(offset);
        let n = width.bytes();
        assert!(off % n == 0 && off + n <= 4096, "bad hw_read {off:#x} {n}");
        if self.log_reads {
            self.ev.push(Ev::Read(offset, width));
        }
        if self.fail_read_at.contains(&offset) {
            return Err(Errno(5));
        }
        Ok(self.get(off, n))
    }

    fn hw_write(&mut self, offset: u16, width: Width, value: u32) -> Result<(), Errno> {
        let off = usize::from(offset);
        let n = width.bytes();
        assert!(off % n == 0 && off + n <= 4096, "bad hw_write {off:#x} {n}");
        assert!(n == 4 || value >> (8 * n) == 0, "value wider than access");
        self.ev.push(Ev::Write(offset, width, value));
        if self.fail_write_at.contains(&offset) {
            return Err(Errno(5));
        }
        self.check_write(off, n, value);
        self.put(off, n, value);
        Ok(())
    }

    fn memory_write_lock(&mut self, zap: bool) {
        assert!(!self.locked, "nested memory_write_lock");
        self.locked = true;
        self.ev.push(Ev::Lock(zap));
    }

    fn memory_write_unlock(&mut self, memory_enabled: Option<bool>) {
        assert!(self.locked, "unlock without lock");
        self.locked = false;
        self.ev.push(Ev::Unlock(memory_enabled));
    }

    fn set_power_state(&mut self, state: PowerState) {
        assert!(!self.locked);
        self.ev.push(Ev::Power(state));
    }

    fn function_reset(&mut self) {
        assert!(!self.locked);
        self.ev.push(Ev::Reset);
    }

    fn virq_disabled(&self) -> bool {
        self.virq
    }

    fn set_virq_disabled(&mut self, disabled: bool) {
        assert!(!self.locked, "INTx mask/unmask under memory_lock");
        self.virq = disabled;
        self.ev.push(Ev::Virq(disabled));
    }

    fn pcie_get_mps(&mut self) -> u32 {
        self.mps
    }

    fn pcie_set_readrq(&mut self, bytes: u32) {
        self.ev.push(Ev::Readrq(bytes));
    }

    fn vpd_read(&mut self, addr: u16) -> Result<u32, Errno> {
        self.ev.push(Ev::VpdRead(addr));
        if self.vpd_fail {
            return Err(Errno(5));
        }
        let a = usize::from(addr) % 256;
        let mut v = 0u32;
        for i in (0..4).rev() {
            v = (v << 8) | u32::from(self.vpd[(a + i) % 256]);
        }
        Ok(v)
    }

    fn vpd_write(&mut self, addr: u16, data: u32) -> Result<usize, Errno> {
        self.ev.push(Ev::VpdWrite(addr, data));
        if self.vpd_fail {
            return Err(Errno(5));
        }
        let a = usize::from(addr) % 256;
        for i in 0..4 {
            self.vpd[(a + i) % 256] = (data >> (8 * i)) as u8;
        }
        Ok(4)
    }

    fn msi_irq_state(&self) -> MsiIrqState {
        self.msi
    }

    fn bar_restore_notice(&mut self) {
        self.ev.push(Ev::RestoreNotice);
    }
}

/// Builder for synthetic devices.
#[derive(Clone)]
pub(crate) struct Dev {
    /// Physical config image.
    pub(crate) img: Vec<u8>,
    /// Facts given to the model.
    pub(crate) facts: DeviceFacts,
}

impl Dev {
    /// A device with the given IDs, config size, class, and nothing else.
    pub(crate) fn new(vendor: u16, device: u16, cfg_size: u16) -> Dev {
        let mut d = Dev {
            img: vec![0; 4096],
            facts: DeviceFacts {
                cfg_size,
                vendor,
                device,
                irq_present: true,
                ..DeviceFacts::default()
            },
        };
        d.w16(0, vendor);
        d.w16(2, device);
        d.w16(4, 0x0006); // MEM | MASTER
        d
    }

    /// Stores a byte.
    pub(crate) fn w8(&mut self, off: usize, v: u8) -> &mut Dev {
        self.img[off] = v;
        self
    }

    /// Stores a little-endian word.
    pub(crate) fn w16(&mut self, off: usize, v: u16) -> &mut Dev {
        self.img[off..off + 2].copy_from_slice(&v.to_le_bytes());
        self
    }

    /// Stores a little-endian dword.
    pub(crate) fn w32(&mut self, off: usize, v: u32) -> &mut Dev {
        self.img[off..off + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    /// Sets a 32-bit memory BAR (or the low half of a 64-bit one) with its resource.
    pub(crate) fn mem_bar(
        &mut self,
        i: usize,
        addr: u64,
        len: u64,
        pref: bool,
        is64: bool,
    ) -> &mut Dev {
        let mut v = addr as u32;
        if pref {
            v |= 8;
        }
        if is64 {
            v |= 4;
        }
        self.w32(0x10 + 4 * i, v);
        if is64 {
            self.w32(0x14 + 4 * i, (addr >> 32) as u32);
        }
        self.facts.bars[i] = BarResource {
            start: addr,
            len,
            io: false,
            prefetch: pref,
            mem64: is64,
        };
        self
    }

    /// Sets an I/O BAR with its resource.
    pub(crate) fn io_bar(&mut self, i: usize, port: u32, len: u64) -> &mut Dev {
        self.w32(0x10 + 4 * i, port | 1);
        self.facts.bars[i] = BarResource {
            start: u64::from(port),
            len,
            io: true,
            prefetch: false,
            mem64: false,
        };
        self
    }

    /// Links standard capabilities at the given offsets, in order, and sets STATUS.CAP_LIST.
    /// Each entry is (offset, id); bodies are written separately.
    pub(crate) fn chain(&mut self, caps: &[(usize, u8)]) -> &mut Dev {
        let st = u16::from_le_bytes([self.img[6], self.img[7]]) | 0x10;
        self.w16(6, st);
        self.img[0x34] = caps.first().map_or(0, |c| c.0 as u8);
        for (k, &(pos, id)) in caps.iter().enumerate() {
            self.img[pos] = id;
            self.img[pos + 1] = caps.get(k + 1).map_or(0, |c| c.0 as u8);
        }
        self
    }

    /// Links extended capabilities at the given offsets, in order: (offset, id, version).
    pub(crate) fn echain(&mut self, caps: &[(usize, u16, u8)]) -> &mut Dev {
        for (k, &(pos, id, ver)) in caps.iter().enumerate() {
            let next = caps.get(k + 1).map_or(0, |c| c.0 as u32);
            self.w32(
                pos,
                u32::from(id) | (u32::from(ver & 0xf) << 16) | (next << 20),
            );
        }
        self
    }

    /// Opens the device: a fake backend and an initialised model.
    pub(crate) fn open(&self) -> (Box<ConfigSpace>, Fake) {
        let mut fake = Fake::new(self.img.clone());
        let mut cs = Box::new(ConfigSpace::new());
        cs.init(&self.facts, &mut fake).expect("init");
        fake.ev.clear();
        (cs, fake)
    }
}

/// Reads `n` bytes at `pos` through the model.
pub(crate) fn rd(cs: &mut ConfigSpace, f: &mut Fake, pos: u64, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let r = cs.rw(f, pos, &mut buf, false);
    assert_eq!(r, Ok(n), "read {pos:#x}+{n}");
    buf
}

/// Reads a little-endian value of 1, 2 or 4 bytes at `pos` through the model.
pub(crate) fn rdv(cs: &mut ConfigSpace, f: &mut Fake, pos: u64, n: usize) -> u32 {
    let b = rd(cs, f, pos, n);
    let mut v = 0u32;
    for i in (0..n).rev() {
        v = (v << 8) | u32::from(b[i]);
    }
    v
}

/// Writes `data` at `pos` through the model.
pub(crate) fn wr(cs: &mut ConfigSpace, f: &mut Fake, pos: u64, data: &[u8]) {
    let mut buf = data.to_vec();
    let r = cs.rw(f, pos, &mut buf, true);
    assert_eq!(r, Ok(data.len()), "write {pos:#x}+{}", data.len());
}

/// Writes a little-endian value of 1, 2 or 4 bytes at `pos` through the model.
pub(crate) fn wrv(cs: &mut ConfigSpace, f: &mut Fake, pos: u64, n: usize, v: u32) {
    wr(cs, f, pos, &v.to_le_bytes()[..n]);
}

/// Follows the user-visible standard capability chain: (offset, id) pairs.
pub(crate) fn user_caps(cs: &mut ConfigSpace, f: &mut Fake) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    if rdv(cs, f, 6, 2) & 0x10 == 0 {
        return out;
    }
    let mut pos = rdv(cs, f, 0x34, 1) as usize;
    while pos != 0 && out.len() < 48 {
        let id = rdv(cs, f, pos as u64, 1) as u8;
        out.push((pos, id));
        pos = rdv(cs, f, pos as u64 + 1, 1) as usize;
    }
    out
}

/// Follows the user-visible extended capability chain: (offset, id) pairs.
pub(crate) fn user_ecaps(cs: &mut ConfigSpace, f: &mut Fake) -> Vec<(usize, u16)> {
    let mut out = Vec::new();
    if cs.cfg_size() <= 256 {
        return out;
    }
    let mut pos = 0x100usize;
    while pos >= 0x100 && out.len() < 960 {
        let h = rdv(cs, f, pos as u64, 4);
        if h == 0 {
            break;
        }
        out.push((pos, (h & 0xffff) as u16));
        pos = ((h >> 20) & 0xffc) as usize;
    }
    out
}
