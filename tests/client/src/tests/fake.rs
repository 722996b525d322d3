//! Host-side model of upstream vfio-pci's answers (drivers/vfio/pci and
//! drivers/vfio/vfio_main.c in Linux 7.3) for a few QEMU devices, used to run
//! the `info` and `bar-rw` flows on the host: it catches panics, name clashes
//! and expectations that contradict upstream, and — with deliberately
//! injected deviations — shows that the checks can fail.

use super::{bar_rw, config, info, Ctx};
use crate::caps;
use crate::device::Kind;
use crate::ktap::Ktap;
use crate::open::{Device, DeviceIo};
use crate::sys::Errno;
use crate::transcript::Transcript;
use crate::uapi::*;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, Copy)]
struct Bar {
    size: u64,
    io: bool,
    mmap: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// MSI-X table reads/writes go to the device.
    NoMsixHole,
    /// GET_INFO writes the whole struct regardless of argsz.
    InfoIgnoresArgsz,
    /// Reads past the end of a BAR are not clamped.
    NoClamp,
    /// Vendor and device id writes reach the (model's) device.
    IdsWritable,
    /// Config accesses running past the end are clamped, not refused.
    CfgClamp,
}

struct Model {
    kind: Kind,
    bars: [Option<Bar>; 6],
    /// Config space size (256, or 4096 for PCIe devices).
    cfg_size: usize,
    /// Per-byte writable bits of config space (upstream's `write` perms;
    /// unassigned bytes are raw, i.e. all writable, in this model).
    wmask: Vec<u8>,
    /// Offsets of the PM, MSI and PCIe capabilities.
    pm: Option<usize>,
    msi: Option<usize>,
    exp: Option<usize>,
    /// (BIR, offset, entries).
    msix: Option<(u32, u64, u32)>,
    reset: bool,
    bug: Bug,
    state: Mutex<State>,
}

struct State {
    cfg: Vec<u8>,
    /// In D3hot (set through PMCSR).
    d3: bool,
    mem: HashMap<(u32, u64), u8>,
    edu_live: u32,
    mem_enabled: bool,
}

const EINVAL: Errno = Errno(libc::EINVAL);

impl Model {
    fn new(
        kind: Kind,
        ids: (u16, u16),
        bars: [Option<Bar>; 6],
        msix: Option<(u32, u64, u32)>,
    ) -> Model {
        // Capabilities in list order: (id, offset). edu has 64-bit MSI, the
        // NVMe controller MSI-X, PM and PCIe (with FLR) and extended config
        // space, as in QEMU.
        let mut list: Vec<(u8, usize)> = Vec::new();
        if kind == Kind::Edu {
            list.push((caps::PCI_CAP_ID_MSI, 0x40));
        }
        if msix.is_some() {
            list.push((caps::PCI_CAP_ID_MSIX, 0x40));
        }
        if kind == Kind::Nvme {
            list.push((caps::PCI_CAP_ID_PM, 0x60));
            list.push((caps::PCI_CAP_ID_EXP, 0x80));
        }
        let cfg_size = if kind == Kind::Nvme { 4096 } else { 256 };
        let mut cfg = vec![0u8; cfg_size];
        cfg[0..2].copy_from_slice(&ids.0.to_le_bytes());
        cfg[2..4].copy_from_slice(&ids.1.to_le_bytes());
        cfg[4] = 0x03; // COMMAND: IO | MEM
        cfg[0x08..0x0c].copy_from_slice(&0x0108_0002u32.to_le_bytes());
        cfg[0x2c..0x30].copy_from_slice(&0x1100_1af4u32.to_le_bytes());
        cfg[0x3c] = 11;
        cfg[0x3d] = 1;
        let mut i = 0;
        while i < 6 {
            if let Some(b) = bars[i] {
                let off = 0x10 + 4 * i;
                if b.io {
                    cfg[off..off + 4].copy_from_slice(&0xc001u32.to_le_bytes());
                } else if b.size > 1 << 28 {
                    // 64-bit prefetchable above 4 GiB.
                    cfg[off..off + 4].copy_from_slice(&0xcu32.to_le_bytes());
                    cfg[off + 4..off + 8].copy_from_slice(&8u32.to_le_bytes());
                    i += 1;
                } else {
                    let a = 0xfe00_0000u32 + (i as u32) * 0x10_0000;
                    cfg[off..off + 4].copy_from_slice(&a.to_le_bytes());
                }
            }
            i += 1;
        }
        let mut wmask = vec![0u8; cfg_size];
        wmask[0x04] = 0xff;
        wmask[0x05] = 0xff;
        for b in [0x0c, 0x0d, 0x0f, 0x3c] {
            wmask[b] = 0xff;
        }
        for b in (0x10..0x28).chain(0x30..0x34) {
            wmask[b] = 0xff;
        }
        for w in wmask.iter_mut().skip(0x40) {
            *w = 0xff;
        }
        if !list.is_empty() {
            cfg[6] = 0x10;
            cfg[0x34] = list[0].1 as u8;
        }
        for (k, &(id, off)) in list.iter().enumerate() {
            cfg[off] = id;
            cfg[off + 1] = list.get(k + 1).map_or(0, |c| c.1 as u8);
            match id {
                caps::PCI_CAP_ID_MSI => cfg[off + 2] = 0x80,
                caps::PCI_CAP_ID_MSIX => {
                    let (bir, o, n) = msix.unwrap();
                    cfg[off + 2..off + 4].copy_from_slice(&((n - 1) as u16).to_le_bytes());
                    cfg[off + 4..off + 8].copy_from_slice(&(o as u32 | bir).to_le_bytes());
                    cfg[off + 8..off + 12]
                        .copy_from_slice(&((o as u32 + 0x1000) | bir).to_le_bytes());
                }
                caps::PCI_CAP_ID_PM => {
                    cfg[off + 2..off + 4].copy_from_slice(&0x0003u16.to_le_bytes());
                    cfg[off + 4] = 0x08; // NoSoftRst+
                }
                caps::PCI_CAP_ID_EXP => {
                    cfg[off + 2] = 0x02; // v2 endpoint
                    cfg[off + 4..off + 8].copy_from_slice(&caps::PCI_EXP_DEVCAP_FLR.to_le_bytes());
                    cfg[off + 8..off + 10].copy_from_slice(&0x2810u16.to_le_bytes());
                }
                _ => {}
            }
            let len = caps::std_cap_len(&cfg, id, off as u8);
            wmask[off..off + len].fill(0);
            let mut set = |o: usize, n: usize, m: u32| {
                for j in 0..n {
                    wmask[off + o + j] = (m >> (8 * j)) as u8;
                }
            };
            match id {
                caps::PCI_CAP_ID_MSI => {
                    set(2, 1, 0xff);
                    set(4, 4, u32::MAX);
                    set(8, 4, u32::MAX);
                    set(12, 2, 0xffff);
                }
                caps::PCI_CAP_ID_PM => set(4, 2, !0x8103),
                caps::PCI_CAP_ID_EXP => {
                    set(8, 2, !0x0200);
                    set(0x28, 2, !0x0020);
                }
                _ => {}
            }
        }
        let find = |id: u8| list.iter().find(|c| c.0 == id).map(|c| c.1);
        Model {
            kind,
            bars,
            cfg_size,
            wmask,
            pm: find(caps::PCI_CAP_ID_PM),
            msi: find(caps::PCI_CAP_ID_MSI),
            exp: find(caps::PCI_CAP_ID_EXP),
            msix,
            reset: false,
            bug: Bug::None,
            state: Mutex::new(State {
                cfg,
                d3: false,
                mem: HashMap::new(),
                edu_live: 0,
                mem_enabled: true,
            }),
        }
    }

    /// Upstream's `vfio_bar_fixup`: BARs read as size mask plus flags.
    fn bar_fixup(&self, cfg: &mut [u8]) {
        let mut i = 0;
        while i < 6 {
            let off = 0x10 + 4 * i;
            let cur = u32::from_le_bytes(cfg[off..off + 4].try_into().unwrap());
            let Some(b) = self.bars[i] else {
                cfg[off..off + 4].fill(0);
                i += 1;
                continue;
            };
            let mask = !(b.size - 1);
            let flags = if b.io {
                1
            } else if b.size > 1 << 28 {
                0xc
            } else {
                0
            };
            let v = (cur & mask as u32) | flags;
            cfg[off..off + 4].copy_from_slice(&v.to_le_bytes());
            if flags & 4 != 0 {
                let hi = u32::from_le_bytes(cfg[off + 4..off + 8].try_into().unwrap());
                let v = hi & (mask >> 32) as u32;
                cfg[off + 4..off + 8].copy_from_slice(&v.to_le_bytes());
                i += 1;
            }
            i += 1;
        }
        cfg[0x30..0x34].fill(0);
    }

    /// Config space read/write with upstream's range rule and the side
    /// effects the `config` flow relies on.
    fn config_rw(
        &self,
        st: &mut State,
        buf: &mut [u8],
        pos: u64,
        write: bool,
    ) -> Result<usize, Errno> {
        let size = self.cfg_size as u64;
        let mut n = buf.len();
        if pos >= size || pos + n as u64 > size {
            if self.bug != Bug::CfgClamp || pos >= size {
                return Err(Errno(libc::EFAULT));
            }
            n = (size - pos) as usize;
        }
        let p = pos as usize;
        let covers = |o: usize| p <= o && o < p + n;
        if !write {
            let mut cfg = std::mem::take(&mut st.cfg);
            self.bar_fixup(&mut cfg);
            buf[..n].copy_from_slice(&cfg[p..p + n]);
            st.cfg = cfg;
            return Ok(n);
        }
        for (k, &v) in buf[..n].iter().enumerate() {
            let mut m = self.wmask[p + k];
            if self.bug == Bug::IdsWritable && p + k < 4 {
                m = 0xff;
            }
            st.cfg[p + k] = (st.cfg[p + k] & !m) | (v & m);
        }
        if covers(4) {
            st.mem_enabled = st.cfg[4] & 2 != 0;
        }
        if let Some(pm) = self.pm {
            if p == pm + 4 {
                let state = buf[0] & 3;
                st.cfg[pm + 4] = (st.cfg[pm + 4] & !3) | state;
                st.d3 = state == 3;
            }
        }
        if let Some(msi) = self.msi {
            if covers(msi + 2) {
                st.cfg[msi + 2] &= !0x71; // enable refused, queue size clamped
            }
        }
        if let Some(exp) = self.exp {
            if covers(exp + 9) {
                st.cfg[exp + 9] &= 0x7f; // FLR (a no-op here) reads 0
            }
        }
        Ok(n)
    }

    fn region(&self, index: u32) -> Result<(u32, u64, Vec<u8>), Errno> {
        let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        match index {
            0..=5 => match self.bars[index as usize] {
                None => Ok((0, 0, vec![])),
                Some(b) => {
                    let mut caps = vec![];
                    let mut f = rw;
                    if b.mmap {
                        f |= VFIO_REGION_INFO_FLAG_MMAP;
                        if self.msix.is_some_and(|m| m.0 == index) {
                            caps.extend_from_slice(
                                &VFIO_REGION_INFO_CAP_MSIX_MAPPABLE.to_ne_bytes(),
                            );
                            caps.extend_from_slice(&1u16.to_ne_bytes());
                            caps.extend_from_slice(&0u32.to_ne_bytes());
                        }
                    }
                    Ok((f, b.size, caps))
                }
            },
            VFIO_PCI_ROM_REGION_INDEX => Ok((0, 0, vec![])),
            VFIO_PCI_CONFIG_REGION_INDEX => Ok((rw, self.cfg_size as u64, vec![])),
            _ => Err(EINVAL),
        }
    }

    fn dev_read(&self, st: &mut State, bar: u32, off: u64, w: usize) -> u64 {
        let ones = if w == 8 {
            u64::MAX
        } else {
            (1u64 << (w * 8)) - 1
        };
        if self.bug != Bug::NoMsixHole {
            // Upstream excludes the table before it gets here.
        } else if let Some((bir, o, n)) = self.msix {
            if bir == bar && off >= o && off < o + n as u64 * 16 {
                return 0x1234 & ones;
            }
        }
        match (self.kind, bar) {
            (Kind::Edu, 0) => {
                if off < 0x80 && w != 4 {
                    return ones;
                }
                match off {
                    0 => 0x0100_00ed,
                    4 => !st.edu_live as u64 & ones,
                    _ => ones,
                }
            }
            _ => {
                let mut v = 0u64;
                for i in 0..w as u64 {
                    v |= (*st.mem.get(&(bar, off + i)).unwrap_or(&0) as u64) << (8 * i);
                }
                v
            }
        }
    }

    fn dev_write(&self, st: &mut State, bar: u32, off: u64, w: usize, v: u64) {
        match (self.kind, bar) {
            (Kind::Edu, 0) => {
                if off == 4 && w == 4 {
                    st.edu_live = v as u32;
                }
            }
            _ => {
                for i in 0..w as u64 {
                    st.mem.insert((bar, off + i), (v >> (8 * i)) as u8);
                }
            }
        }
    }

    /// vfio_pci_rw + vfio_pci_bar_rw + vfio_pci_core_do_io_rw.
    fn rw(&self, buf: &mut [u8], off: u64, write: bool) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let index = (off >> VFIO_PCI_OFFSET_SHIFT) as u32;
        let pos = off & ((1 << VFIO_PCI_OFFSET_SHIFT) - 1);
        if index >= VFIO_PCI_NUM_REGIONS {
            return Err(EINVAL);
        }
        let mut st = self.state.lock().unwrap();
        match index {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config_rw(&mut st, buf, pos, write),
            VFIO_PCI_ROM_REGION_INDEX | VFIO_PCI_VGA_REGION_INDEX => Err(EINVAL),
            _ => {
                let Some(b) = self.bars[index as usize] else {
                    return Err(EINVAL);
                };
                if pos >= b.size {
                    return Err(EINVAL);
                }
                let count = if self.bug == Bug::NoClamp {
                    buf.len()
                } else {
                    buf.len().min((b.size - pos) as usize)
                };
                let (xs, xe) = match self.msix {
                    Some((bir, o, n)) if bir == index && self.bug != Bug::NoMsixHole => {
                        (o, o + n as u64 * 16)
                    }
                    _ => (0, 0),
                };
                let mut done = 0usize;
                while done < count {
                    let o = pos + done as u64;
                    let left = count - done;
                    let fillable = if o < xs {
                        left.min((xs - o) as usize)
                    } else if o >= xe {
                        left
                    } else {
                        0
                    };
                    if fillable == 0 {
                        let n = left.min((xe - o) as usize);
                        if !write {
                            buf[done..done + n].fill(0xff);
                        }
                        done += n;
                        continue;
                    }
                    if !b.io && (!st.mem_enabled || st.d3) {
                        return Err(Errno(libc::EIO));
                    }
                    let w = [8usize, 4, 2, 1]
                        .into_iter()
                        .find(|&w| fillable >= w && o.is_multiple_of(w as u64))
                        .unwrap_or(1);
                    if write {
                        let mut a = [0u8; 8];
                        a[..w].copy_from_slice(&buf[done..done + w]);
                        self.dev_write(&mut st, index, o, w, u64::from_le_bytes(a));
                    } else {
                        let v = self.dev_read(&mut st, index, o, w);
                        buf[done..done + w].copy_from_slice(&v.to_le_bytes()[..w]);
                    }
                    done += w;
                }
                Ok(done)
            }
        }
    }
}

impl DeviceIo for Model {
    fn ioctl_buf(&self, req: u64, buf: &mut AlignedBuf) -> Result<i32, Errno> {
        let argsz = buf.u32_at(0) as usize;
        match req {
            VFIO_DEVICE_GET_INFO => {
                if argsz < DEVICE_INFO_MINSZ {
                    return Err(EINVAL);
                }
                let mut out = AlignedBuf::filled(DEVICE_INFO_SIZE, 0);
                out.put_u32(0, argsz as u32);
                let mut flags = VFIO_DEVICE_FLAGS_PCI;
                if self.reset {
                    flags |= VFIO_DEVICE_FLAGS_RESET;
                }
                out.put_u32(4, flags);
                out.put_u32(8, VFIO_PCI_NUM_REGIONS);
                out.put_u32(12, VFIO_PCI_NUM_IRQS);
                let n = if self.bug == Bug::InfoIgnoresArgsz {
                    DEVICE_INFO_SIZE
                } else {
                    argsz.min(DEVICE_INFO_SIZE)
                };
                buf.bytes_mut()[..n].copy_from_slice(&out.bytes()[..n]);
                Ok(0)
            }
            VFIO_DEVICE_GET_REGION_INFO => {
                if argsz < REGION_INFO_SIZE {
                    return Err(EINVAL);
                }
                let index = buf.u32_at(8);
                let (mut flags, size, caps) = self.region(index)?;
                // The VFIO core copies the whole struct in (minsz ends at `offset`) and back, so
                // cap_offset comes back as the caller left it unless caps set it.
                let mut out = AlignedBuf::filled(REGION_INFO_SIZE, 0);
                out.bytes_mut()
                    .copy_from_slice(&buf.bytes()[..REGION_INFO_SIZE]);
                out.put_u32(0, argsz as u32);
                out.put_u32(8, index);
                out.bytes_mut()[16..24].copy_from_slice(&size.to_ne_bytes());
                out.bytes_mut()[24..32].copy_from_slice(&region_offset(index).to_ne_bytes());
                if !caps.is_empty() {
                    flags |= VFIO_REGION_INFO_FLAG_CAPS;
                    if argsz < REGION_INFO_SIZE + caps.len() {
                        out.put_u32(0, (REGION_INFO_SIZE + caps.len()) as u32);
                        out.put_u32(12, 0);
                    } else {
                        buf.bytes_mut()[REGION_INFO_SIZE..REGION_INFO_SIZE + caps.len()]
                            .copy_from_slice(&caps);
                        out.put_u32(12, REGION_INFO_SIZE as u32);
                    }
                }
                out.put_u32(4, flags);
                buf.bytes_mut()[..REGION_INFO_SIZE].copy_from_slice(out.bytes());
                Ok(0)
            }
            VFIO_DEVICE_GET_IRQ_INFO => {
                let index = buf.u32_at(8);
                if argsz < IRQ_INFO_SIZE || index >= VFIO_PCI_NUM_IRQS {
                    return Err(EINVAL);
                }
                let mut flags = VFIO_IRQ_INFO_EVENTFD;
                if index == VFIO_PCI_INTX_IRQ_INDEX {
                    flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
                } else {
                    flags |= VFIO_IRQ_INFO_NORESIZE;
                }
                let count = match index {
                    VFIO_PCI_MSIX_IRQ_INDEX => self.msix.map_or(0, |m| m.2),
                    VFIO_PCI_ERR_IRQ_INDEX => 0,
                    _ => 1,
                };
                buf.put_u32(4, flags);
                buf.put_u32(12, count);
                Ok(0)
            }
            _ => Err(Errno(libc::ENOTTY)),
        }
    }

    fn ioctl_val(&self, req: u64, _val: u64) -> Result<i32, Errno> {
        match req {
            VFIO_DEVICE_RESET if self.reset => Ok(0),
            VFIO_DEVICE_RESET => Err(EINVAL),
            _ => Err(Errno(libc::ENOTTY)),
        }
    }

    fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.rw(buf, off, false)
    }

    fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        let mut b = buf.to_vec();
        self.rw(&mut b, off, true)
    }
}

fn mem(size: u64, mmap: bool) -> Option<Bar> {
    Some(Bar {
        size,
        io: false,
        mmap,
    })
}

fn edu() -> Model {
    Model::new(
        Kind::Edu,
        (0x1234, 0x11e8),
        [mem(1 << 20, true), None, None, None, None, None],
        None,
    )
}

fn ivshmem() -> Model {
    Model::new(
        Kind::Ivshmem,
        (0x1af4, 0x1110),
        [mem(256, true), None, mem(1 << 30, true), None, None, None],
        None,
    )
}

fn nvme() -> Model {
    Model::new(
        Kind::Nvme,
        (0x1b36, 0x0010),
        [mem(16 << 10, true), None, None, None, None, None],
        Some((0, 0x2000, 64)),
    )
}

fn testdev() -> Model {
    let io = Some(Bar {
        size: 256,
        io: true,
        mmap: false,
    });
    Model::new(
        Kind::PciTestdev,
        (0x1b36, 0x0005),
        [mem(4096, true), io, None, None, None, None],
        None,
    )
}

/// Run `f` against `model`; returns (KTAP text, failures, transcript text).
fn run_with(model: Model, f: fn(&mut Ctx)) -> (String, usize, String) {
    let kind = model.kind;
    let mut k = Ktap::quiet();
    let mut c = Ctx {
        k: &mut k,
        t: Transcript::new("x", "group", "0000:00:04.0"),
        dev: Device::with_io("0000:00:04.0", Box::new(model)),
        kind,
        prefix: "x.group.0000:00:04.0".into(),
    };
    f(&mut c);
    let t = c.t.text();
    let failed = k.failed();
    // VFIO_FAKE_SHOW=1 cargo test -- --nocapture shows what the flows emit.
    if std::env::var_os("VFIO_FAKE_SHOW").is_some() {
        eprintln!("{}\n{t}", k.render());
    }
    (k.render(), failed, t)
}

#[test]
fn info_passes_on_upstream_model() {
    for m in [edu(), ivshmem(), nvme(), testdev()] {
        let (out, failed, t) = run_with(m, info::run);
        assert_eq!(failed, 0, "{out}\n{t}");
        assert!(out.contains("region.bar0.offset"));
        assert!(t.contains("ioctl 0x3ba0 (unknown) -> ENOTTY"));
    }
}

#[test]
fn bar_rw_passes_on_upstream_model() {
    for m in [edu(), ivshmem(), nvme(), testdev()] {
        let (out, failed, t) = run_with(m, bar_rw::run);
        assert_eq!(failed, 0, "{out}\n{t}");
    }
}

#[test]
fn config_passes_on_upstream_model() {
    for m in [edu(), ivshmem(), nvme(), testdev()] {
        let (out, failed, t) = run_with(m, config::run);
        assert_eq!(failed, 0, "{out}\n{t}");
        assert!(out.contains("bar0.sizing"), "{out}");
    }
    let (out, _, t) = run_with(nvme(), config::run);
    assert!(out.contains("cap01@60.d3hot"), "{out}");
    assert!(out.contains("cap10@80.devctl_readrq_virtual"), "{out}");
    assert!(out.contains("ext.header_restored"), "{out}");
    assert!(t.contains("config region size=0x1000"), "{t}");
    assert!(t.contains("pread config+0x1000 len=4 -> EFAULT"), "{t}");
    let (out, _, t) = run_with(edu(), config::run);
    assert!(out.contains("cap05@40.address_virtual"), "{out}");
    // The 64-bit MSI capability ends at 0x4e: the straddling write.
    assert!(t.contains("## dword 0x4c: end of capability 0x05"), "{t}");
    let (_, _, t) = run_with(ivshmem(), config::run);
    // BAR2 is 64-bit, 1 GiB: lower half sizes with its flags, upper half all ones.
    assert!(
        t.contains(
            "pwrite config+0x18 len=4 -> 4 [ffffffff]\npread config+0x18 len=4 -> 4 [0c0000c0]"
        ),
        "{t}"
    );
    assert!(t.contains("pread config+0x1c len=4 -> 4 [ffffffff]"), "{t}");
}

#[test]
fn transcripts_are_deterministic() {
    for f in [info::run as fn(&mut Ctx), bar_rw::run, config::run] {
        for mk in [edu as fn() -> Model, ivshmem, nvme, testdev] {
            let (_, _, a) = run_with(mk(), f);
            let (_, _, b) = run_with(mk(), f);
            assert_eq!(a, b);
        }
    }
}

#[test]
fn transcript_content_samples() {
    let (_, _, t) = run_with(edu(), bar_rw::run);
    assert!(t.contains("pread bar0+0x0 len=4 -> 4 [ed000001]"), "{t}");
    assert!(t.contains("pread bar0+0x100000 len=4 -> EINVAL"), "{t}");
    assert!(
        t.contains("pread bar0+0xffffc len=8 -> 4 [ffffffff]"),
        "{t}"
    );
    assert!(t.contains("pwrite bar0+0x4 len=4 -> 4 [78563412]"), "{t}");
    assert!(t.contains("pread bar0+0x4 len=4 -> 4 [87a9cbed]"), "{t}");
    let (_, _, t) = run_with(nvme(), bar_rw::run);
    assert!(t.contains("pread bar0+0x2000 len=4 -> 4 [ffffffff]"), "{t}");
    assert!(t.contains("bar0 msix_mappable cap: true"), "{t}");
    assert!(t.contains("pread bar0+0x3ffc len=4 -> 4 [unstable]"), "{t}");
    let (_, _, t) = run_with(nvme(), info::run);
    assert!(
        t.contains("region bar0 argsz=32 -> 0 [28000000 0f000000"),
        "{t}"
    );
}

#[test]
fn deviations_are_caught() {
    let cases = [
        (
            Bug::NoMsixHole,
            nvme as fn() -> Model,
            bar_rw::run as fn(&mut Ctx),
            "msix.table_read_first",
        ),
        (
            Bug::InfoIgnoresArgsz,
            edu,
            info::run,
            "get_info.argsz16.no_write_past_argsz",
        ),
        (Bug::NoClamp, edu, bar_rw::run, "bar0.read8@end-4_short"),
        (Bug::IdsWritable, edu, config::run, "ids.write32_dropped"),
        (
            Bug::CfgClamp,
            nvme,
            config::run,
            "efault.read_straddling_end",
        ),
    ];
    for (bug, mk, f, name) in cases {
        let mut m = mk();
        m.bug = bug;
        let (out, failed, _) = run_with(m, f);
        assert!(failed > 0, "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("not ok") && l.contains(name)),
            "{name} not failed:\n{out}"
        );
    }
}
