//! The behavioural subcommands and the context they share.

pub mod bar_rw;
pub mod bench;
pub mod compare;
pub mod config;
#[cfg(test)]
mod fake;
pub mod fuzz;
pub mod hot_reset;
pub mod info;
pub mod ioeventfd;
pub mod irq;
pub mod mmap;
pub mod race;

use crate::caps::{self, VfioCap};
use crate::device::{self, Kind};
use crate::ktap::Ktap;
use crate::open::{Device, Mode};
use crate::sys::{show, Errno, SysResult};
use crate::transcript::Transcript;
use crate::uapi::*;
use std::fmt::Display;
use std::path::Path;

/// Marker byte pre-filled into ioctl buffers: bytes still equal to it after
/// the call were not written by the driver.
pub const FILL: u8 = 0xa5;

/// A device subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// Device, region and IRQ info ioctls.
    Info,
    /// pread/pwrite on BARs.
    BarRw,
    /// Config space reads, writes and read-backs.
    Config,
    /// mmap of BARs and zap behaviour.
    Mmap,
    /// Concurrent access vs. memory-enable toggling and reset.
    MmapRace,
    /// SET_IRQS and interrupt delivery.
    Irq,
    /// Slot/bus (hot) reset ioctls.
    HotReset,
    /// VFIO_DEVICE_IOEVENTFD.
    Ioeventfd,
    /// VFIO_DEVICE_FEATURE.
    Feature,
}

impl Sub {
    /// Name used on the command line, in test names and transcript files.
    pub fn as_str(self) -> &'static str {
        match self {
            Sub::Info => "info",
            Sub::BarRw => "bar-rw",
            Sub::Config => "config",
            Sub::Mmap => "mmap",
            Sub::MmapRace => "mmap-race",
            Sub::Irq => "irq",
            Sub::HotReset => "hot-reset",
            Sub::Ioeventfd => "ioeventfd",
            Sub::Feature => "feature",
        }
    }
}

/// Transcript name of region `i`.
pub fn region_name(i: u32) -> String {
    match i {
        0..=5 => format!("bar{i}"),
        VFIO_PCI_ROM_REGION_INDEX => "rom".into(),
        VFIO_PCI_CONFIG_REGION_INDEX => "config".into(),
        VFIO_PCI_VGA_REGION_INDEX => "vga".into(),
        _ => format!("region{i}"),
    }
}

/// A region as reported by the driver, with its capability chain.
pub struct Region {
    /// Decoded info.
    pub info: RegionInfo,
    /// The parsed capability chain (empty if none or malformed).
    pub caps: Vec<VfioCap>,
}

impl Region {
    /// True if a capability with `id` is in the chain.
    pub fn has_cap(&self, id: u16) -> bool {
        self.caps.iter().any(|c| c.id == id)
    }
}

/// Everything a subcommand needs: the open device, the reporter and the
/// transcript being recorded.
pub struct Ctx<'a> {
    /// KTAP reporter (shared across subcommands of one run).
    pub k: &'a mut Ktap,
    /// Transcript of this subcommand.
    pub t: Transcript,
    /// The device.
    pub dev: Device,
    /// Which known device it is.
    pub kind: Kind,
    prefix: String,
}

impl Ctx<'_> {
    /// Full test name for check `s`: `<sub>.<mode>.<BDF>.<s>`.
    pub fn name(&self, s: &str) -> String {
        format!("{}.{}", self.prefix, s)
    }

    /// The device's sysfs `reset` file (a reset by someone else:
    /// `pci_reset_function()`), or, when the PCI core offers no reset, `None`
    /// after noting `what` as not attempted and skipping `check`.
    pub fn sysfs_reset_file(&mut self, check: &str, what: &str) -> Option<String> {
        let path = format!("/sys/bus/pci/devices/{}/reset", self.dev.bdf);
        if std::path::Path::new(&path).exists() {
            return Some(path);
        }
        self.t
            .line(format!("{what}: not attempted (no reset method)"));
        self.skip(check, "the PCI core offers no reset for this device");
        None
    }

    /// Record a skip.
    pub fn skip(&mut self, s: &str, why: impl Into<String>) {
        let n = self.name(s);
        self.k.skip(&n, why);
    }

    /// Record a failure.
    pub fn fail(&mut self, s: &str, expected: impl Display, got: impl Display) {
        let n = self.name(s);
        self.k.fail(&n, expected, got);
    }

    /// Pass if `cond`.
    pub fn check(
        &mut self,
        s: &str,
        cond: bool,
        expected: impl Display,
        got: impl Display,
    ) -> bool {
        let n = self.name(s);
        self.k.check(&n, cond, expected, got)
    }

    /// Pass if equal.
    pub fn check_eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        s: &str,
        expected: T,
        got: T,
    ) -> bool {
        let n = self.name(s);
        self.k.check_eq(&n, expected, got)
    }

    /// A `# ` diagnostic line.
    pub fn diag(&mut self, d: impl Into<String>) {
        self.k.diag(d);
    }

    /// Pass if the call succeeded with `want`.
    pub fn expect_ret<T: PartialEq + Display + Copy>(
        &mut self,
        s: &str,
        r: &SysResult<T>,
        want: T,
    ) -> bool {
        let ok = matches!(r, Ok(v) if *v == want);
        self.check(s, ok, want, show(r))
    }

    /// Pass if the call failed with `errno`.
    pub fn expect_errno<T: Display>(&mut self, s: &str, r: &SysResult<T>, errno: i32) -> bool {
        let ok = matches!(r, Err(e) if e.0 == errno);
        self.check(s, ok, Errno(errno).name(), show(r))
    }

    /// Device info, failing the subcommand's `get_info` check if the ioctl
    /// fails (nothing else can run without it).
    pub fn device_info(&mut self) -> Option<DeviceInfo> {
        match self.dev.info() {
            Ok(i) => Some(i),
            Err(e) => {
                self.fail("get_info", "success", e);
                None
            }
        }
    }

    /// Region info of `index` with its capability chain, `None` on error.
    pub fn region(&self, index: u32) -> Option<Region> {
        let (info, buf) = self.dev.region(index).ok()?;
        let caps = if info.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
            caps::parse_chain(buf.bytes(), info.cap_offset, REGION_INFO_SIZE).unwrap_or_default()
        } else {
            Vec::new()
        };
        Some(Region { info, caps })
    }

    /// pread `len` bytes of region `index` at `off`, recording the answer;
    /// data goes into the transcript only if `stable`.
    pub fn pread_rec(
        &mut self,
        index: u32,
        off: u64,
        len: usize,
        stable: bool,
    ) -> (SysResult<usize>, Vec<u8>) {
        let mut b = vec![0u8; len];
        let r = self.dev.read_region(index, off, &mut b);
        self.t.rw(
            format!("pread {}+{off:#x} len={len}", region_name(index)),
            &r,
            stable.then_some(&b[..]),
        );
        (r, b)
    }

    /// pwrite `data` to region `index` at `off`, recording the answer and,
    /// if `show_data`, the data written.
    pub fn pwrite_rec(
        &mut self,
        index: u32,
        off: u64,
        data: &[u8],
        show_data: bool,
    ) -> SysResult<usize> {
        let r = self.dev.write_region(index, off, data);
        self.t.rw(
            format!("pwrite {}+{off:#x} len={}", region_name(index), data.len()),
            &r,
            show_data.then_some(data),
        );
        r
    }
}

/// `hold`: open the device and keep it open for `secs` seconds, so the
/// guest suite can unbind or rmmod the driver while a user holds it.
pub fn hold(k: &mut Ktap, mode: Mode, bdf: &str, secs: u64) {
    let name = format!("hold.{mode}.{bdf}.open");
    match Device::open(bdf, mode) {
        Ok(dev) => {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            drop(dev);
            k.pass(&name);
        }
        Err(e) => k.fail(&name, "device opened", e),
    }
}

/// Run one device subcommand: open the device, run, write the transcript.
pub fn run_device(k: &mut Ktap, sub: Sub, mode: Mode, bdf: &str, dump: Option<&Path>) {
    let prefix = format!("{}.{}.{}", sub.as_str(), mode, bdf);
    // Always on stderr, even when merged with stdout: one line per
    // subcommand locates a hang without looking like a KTAP result.
    eprintln!("vfio-test: running {prefix}");
    let dev = match Device::open(bdf, mode) {
        Ok(d) => d,
        Err(e) => {
            k.fail(&format!("{prefix}.open"), "device opened", e);
            return;
        }
    };
    k.pass(&format!("{prefix}.open"));
    if dev.noiommu {
        k.diag(format!("{prefix}: device opened in no-IOMMU mode"));
    }
    let kind = match device::read_ids(bdf) {
        Some((v, d)) => Kind::from_ids(v, d),
        None => Kind::Other,
    };
    let mut t = Transcript::new(sub.as_str(), mode.as_str(), bdf);
    t.line(format!("kind {kind:?}"));
    let mut c = Ctx {
        k,
        t,
        dev,
        kind,
        prefix: prefix.clone(),
    };
    match sub {
        Sub::Info => info::run(&mut c),
        Sub::BarRw => bar_rw::run(&mut c),
        Sub::Config => config::run(&mut c),
        Sub::Mmap => mmap::run(&mut c),
        Sub::MmapRace => race::run(&mut c),
        Sub::Irq => irq::run(&mut c),
        Sub::HotReset => hot_reset::run(&mut c),
        Sub::Ioeventfd => ioeventfd::run_ioeventfd(&mut c),
        Sub::Feature => ioeventfd::run_feature(&mut c),
    }
    let Ctx { k, t, dev, .. } = c;
    // Close the device before the next subcommand opens it again.
    drop(dev);
    if let Some(dir) = dump {
        match t.write(dir, sub.as_str(), mode.as_str(), bdf) {
            Ok(p) => k.diag(format!("transcript written to {}", p.display())),
            Err(e) => k.fail(
                &format!("{prefix}.transcript"),
                format!("transcript written to {}", dir.display()),
                e,
            ),
        }
    }
}
