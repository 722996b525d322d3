//! Host-side model of upstream vfio-pci's answers (drivers/vfio/pci and
//! drivers/vfio/vfio_main.c in Linux 7.3) for a few QEMU devices, used to run
//! the `info` and `bar-rw` flows on the host: it catches panics, name clashes
//! and expectations that contradict upstream, and — with deliberately
//! injected deviations — shows that the checks can fail.

use super::{bar_rw, info, Ctx};
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
}

struct Model {
    kind: Kind,
    bars: [Option<Bar>; 6],
    /// (BIR, offset, entries).
    msix: Option<(u32, u64, u32)>,
    reset: bool,
    bug: Bug,
    state: Mutex<State>,
}

struct State {
    cfg: Vec<u8>,
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
        let mut cfg = vec![0u8; 256];
        cfg[0..2].copy_from_slice(&ids.0.to_le_bytes());
        cfg[2..4].copy_from_slice(&ids.1.to_le_bytes());
        cfg[4] = 0x03; // COMMAND: IO | MEM
        if let Some((bir, off, n)) = msix {
            cfg[6] = 0x10;
            cfg[0x34] = 0x40;
            cfg[0x40] = 0x11;
            cfg[0x42..0x44].copy_from_slice(&((n - 1) as u16).to_le_bytes());
            cfg[0x44..0x48].copy_from_slice(&(off as u32 | bir).to_le_bytes());
            cfg[0x48..0x4c].copy_from_slice(&((off as u32 + 0x1000) | bir).to_le_bytes());
        }
        Model {
            kind,
            bars,
            msix,
            reset: false,
            bug: Bug::None,
            state: Mutex::new(State {
                cfg,
                mem: HashMap::new(),
                edu_live: 0,
                mem_enabled: true,
            }),
        }
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
            VFIO_PCI_CONFIG_REGION_INDEX => Ok((rw, 256, vec![])),
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
            VFIO_PCI_CONFIG_REGION_INDEX => {
                if pos >= 256 {
                    return Err(EINVAL);
                }
                let n = buf.len().min(256 - pos as usize);
                let p = pos as usize;
                if write {
                    if p <= 4 && p + n >= 6 {
                        st.cfg[4..6].copy_from_slice(&buf[4 - p..6 - p]);
                        st.mem_enabled = st.cfg[4] & 2 != 0;
                    }
                } else {
                    buf[..n].copy_from_slice(&st.cfg[p..p + n]);
                }
                Ok(n)
            }
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
                    if !b.io && !st.mem_enabled {
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
fn transcripts_are_deterministic() {
    for f in [info::run as fn(&mut Ctx), bar_rw::run] {
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
