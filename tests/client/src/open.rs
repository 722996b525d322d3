//! Opening a VFIO device, through the legacy group/container interface or
//! through the device cdev bound to iommufd. Both paths end with a device fd
//! that answers the same ioctls, reads, writes and mmaps, which is what the
//! tests exercise.

use crate::sys::{self, Errno};
use crate::uapi::*;
use std::fmt;
use std::os::fd::RawFd;

/// How the device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// /dev/vfio/vfio container + /dev/vfio/<group>.
    Group,
    /// /dev/vfio/devices/vfioN + /dev/iommu.
    Cdev,
}

impl Mode {
    /// Name used in test names and transcript file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Group => "group",
            Mode::Cdev => "cdev",
        }
    }

    /// Parse "group" or "cdev".
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "group" => Some(Mode::Group),
            "cdev" => Some(Mode::Cdev),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why opening failed: which step, and the errno or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// The step that failed.
    pub step: String,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)
    }
}

fn err(step: impl Into<String>, detail: impl fmt::Display) -> OpenError {
    OpenError {
        step: step.into(),
        detail: detail.to_string(),
    }
}

/// Answers the calls the tests make on a device fd. The real implementation
/// issues the system calls; host unit tests substitute a model of upstream
/// vfio-pci so the test flows can be exercised without a device. mmap is not
/// part of it: mappings always use the real fd.
pub trait DeviceIo {
    /// ioctl with a buffer argument (the buffer holds at least argsz bytes).
    fn ioctl_buf(&self, req: u64, buf: &mut AlignedBuf) -> Result<i32, Errno>;
    /// ioctl with an integer argument.
    fn ioctl_val(&self, req: u64, val: u64) -> Result<i32, Errno>;
    /// pread at a device fd offset.
    fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno>;
    /// pwrite at a device fd offset.
    fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize, Errno>;
}

/// [`DeviceIo`] on a real device fd.
struct FdIo(RawFd);

impl DeviceIo for FdIo {
    fn ioctl_buf(&self, req: u64, buf: &mut AlignedBuf) -> Result<i32, Errno> {
        // SAFETY: AlignedBuf is sized by the callers to cover argsz and the
        // fixed struct the kernel copies in.
        unsafe { sys::ioctl_ptr(self.0, req, buf.as_mut_ptr()) }
    }
    fn ioctl_val(&self, req: u64, val: u64) -> Result<i32, Errno> {
        sys::ioctl_val(self.0, req, val)
    }
    fn pread(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        sys::pread(self.0, buf, off)
    }
    fn pwrite(&self, buf: &[u8], off: u64) -> Result<usize, Errno> {
        sys::pwrite(self.0, buf, off)
    }
}

/// An open VFIO device and every fd needed to keep it open. Fds are closed
/// in Drop, device first, because the device fd holds references on the
/// group/iommufd context and closing in reverse order of opening is the order
/// the kernel tears things down in anyway.
pub struct Device {
    /// The device fd (for mmap and for the race threads).
    pub fd: RawFd,
    io: Box<dyn DeviceIo + Send + Sync>,
    /// PCI address.
    pub bdf: String,
    /// No-IOMMU group/cdev in use (diagnostic only).
    pub noiommu: bool,
    group: RawFd,
    container: RawFd,
    iommufd: RawFd,
}

impl Drop for Device {
    fn drop(&mut self) {
        sys::close(self.fd);
        sys::close(self.group);
        sys::close(self.container);
        sys::close(self.iommufd);
    }
}

/// Group number of a device: the basename of its iommu_group link.
pub fn group_number(link_target: &str) -> Option<u32> {
    link_target
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
}

/// Pick the device cdev name from the entries of
/// /sys/bus/pci/devices/<BDF>/vfio-dev: "vfioN", or "noiommu-vfioN" when
/// the device is used without an IOMMU.
pub fn cdev_name<I: IntoIterator<Item = String>>(entries: I) -> Option<String> {
    let mut v: Vec<String> = entries
        .into_iter()
        .filter(|n| {
            let rest = n.strip_prefix("noiommu-").unwrap_or(n);
            rest.strip_prefix("vfio")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    v.sort();
    v.into_iter().next()
}

impl Device {
    /// Open `bdf` in `mode`.
    pub fn open(bdf: &str, mode: Mode) -> Result<Device, OpenError> {
        let mut d = Device {
            fd: -1,
            io: Box::new(FdIo(-1)),
            bdf: bdf.to_string(),
            noiommu: false,
            group: -1,
            container: -1,
            iommufd: -1,
        };
        // Partially opened fds are released by Drop of `d` on error.
        match mode {
            Mode::Group => d.open_group()?,
            Mode::Cdev => d.open_cdev()?,
        }
        d.io = Box::new(FdIo(d.fd));
        Ok(d)
    }

    /// A device answered by `io` instead of a kernel driver (unit tests).
    #[cfg(test)]
    pub fn with_io(bdf: &str, io: Box<dyn DeviceIo + Send + Sync>) -> Device {
        Device {
            fd: -1,
            io,
            bdf: bdf.to_string(),
            noiommu: false,
            group: -1,
            container: -1,
            iommufd: -1,
        }
    }

    fn open_group(&mut self) -> Result<(), OpenError> {
        self.container =
            sys::open_rdwr("/dev/vfio/vfio").map_err(|e| err("open /dev/vfio/vfio", e))?;
        let v = sys::ioctl_val(self.container, VFIO_GET_API_VERSION, 0)
            .map_err(|e| err("VFIO_GET_API_VERSION", e))?;
        if v != VFIO_API_VERSION {
            return Err(err(
                "VFIO_GET_API_VERSION",
                format!("expected {VFIO_API_VERSION}, got {v}"),
            ));
        }
        let link = format!("/sys/bus/pci/devices/{}/iommu_group", self.bdf);
        let target = std::fs::read_link(&link).map_err(|e| err(format!("readlink {link}"), e))?;
        let target = target.to_string_lossy().into_owned();
        let n = group_number(&target)
            .ok_or_else(|| err(format!("readlink {link}"), format!("bad target {target}")))?;
        // A kernel in unsafe no-IOMMU mode names the group noiommu-N and only
        // offers the no-IOMMU backend; support it so the client also works in
        // a guest without a virtual IOMMU.
        let (path, iommu_type) = if std::path::Path::new(&format!("/dev/vfio/{n}")).exists() {
            (format!("/dev/vfio/{n}"), VFIO_TYPE1V2_IOMMU)
        } else {
            self.noiommu = true;
            (format!("/dev/vfio/noiommu-{n}"), VFIO_NOIOMMU_IOMMU)
        };
        let ext = sys::ioctl_val(self.container, VFIO_CHECK_EXTENSION, iommu_type)
            .map_err(|e| err("VFIO_CHECK_EXTENSION", e))?;
        if ext <= 0 {
            return Err(err(
                "VFIO_CHECK_EXTENSION",
                format!("IOMMU type {iommu_type} not supported"),
            ));
        }
        self.group = sys::open_rdwr(&path).map_err(|e| err(format!("open {path}"), e))?;
        let mut st = AlignedBuf::filled(GROUP_STATUS_SIZE, 0);
        st.put_u32(0, GROUP_STATUS_SIZE as u32);
        // SAFETY: st is GROUP_STATUS_SIZE bytes, the size of the struct.
        unsafe { sys::ioctl_ptr(self.group, VFIO_GROUP_GET_STATUS, st.as_mut_ptr()) }
            .map_err(|e| err("VFIO_GROUP_GET_STATUS", e))?;
        let flags = st.u32_at(4);
        if flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(err(
                "VFIO_GROUP_GET_STATUS",
                format!("group {n} not viable (flags {flags:#x}): bind every device of the group to vfio"),
            ));
        }
        let mut cfd: i32 = self.container;
        // SAFETY: the ioctl reads one int from the pointer.
        unsafe {
            sys::ioctl_ptr(
                self.group,
                VFIO_GROUP_SET_CONTAINER,
                (&mut cfd as *mut i32).cast(),
            )
        }
        .map_err(|e| err("VFIO_GROUP_SET_CONTAINER", e))?;
        sys::ioctl_val(self.container, VFIO_SET_IOMMU, iommu_type)
            .map_err(|e| err("VFIO_SET_IOMMU", e))?;
        let name = std::ffi::CString::new(self.bdf.clone())
            .map_err(|_| err("VFIO_GROUP_GET_DEVICE_FD", "BDF contains NUL"))?;
        // SAFETY: the ioctl reads a NUL-terminated string from the pointer.
        let fd = unsafe {
            sys::ioctl_ptr(
                self.group,
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr() as *mut u8,
            )
        }
        .map_err(|e| err("VFIO_GROUP_GET_DEVICE_FD", e))?;
        self.fd = fd;
        Ok(())
    }

    fn open_cdev(&mut self) -> Result<(), OpenError> {
        let dir = format!("/sys/bus/pci/devices/{}/vfio-dev", self.bdf);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| err(format!("read {dir}"), e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned());
        let name =
            cdev_name(entries).ok_or_else(|| err(format!("read {dir}"), "no vfioN entry"))?;
        self.noiommu = name.starts_with("noiommu-");
        let path = format!("/dev/vfio/devices/{name}");
        self.fd = sys::open_rdwr(&path).map_err(|e| err(format!("open {path}"), e))?;
        self.iommufd = sys::open_rdwr("/dev/iommu").map_err(|e| err("open /dev/iommu", e))?;

        let mut bind = VfioDeviceBindIommufd {
            argsz: std::mem::size_of::<VfioDeviceBindIommufd>() as u32,
            iommufd: self.iommufd,
            ..Default::default()
        };
        // SAFETY: bind is a properly sized struct the kernel reads/writes.
        unsafe {
            sys::ioctl_ptr(
                self.fd,
                VFIO_DEVICE_BIND_IOMMUFD,
                (&mut bind as *mut VfioDeviceBindIommufd).cast(),
            )
        }
        .map_err(|e| err("VFIO_DEVICE_BIND_IOMMUFD", e))?;

        let mut alloc = IommuIoasAlloc {
            size: std::mem::size_of::<IommuIoasAlloc>() as u32,
            ..Default::default()
        };
        // SAFETY: alloc is a properly sized struct the kernel reads/writes.
        unsafe {
            sys::ioctl_ptr(
                self.iommufd,
                IOMMU_IOAS_ALLOC,
                (&mut alloc as *mut IommuIoasAlloc).cast(),
            )
        }
        .map_err(|e| err("IOMMU_IOAS_ALLOC", e))?;

        let mut attach = VfioDeviceAttachIommufdPt {
            argsz: std::mem::size_of::<VfioDeviceAttachIommufdPt>() as u32,
            pt_id: alloc.out_ioas_id,
            ..Default::default()
        };
        // SAFETY: attach is a properly sized struct the kernel reads/writes.
        unsafe {
            sys::ioctl_ptr(
                self.fd,
                VFIO_DEVICE_ATTACH_IOMMUFD_PT,
                (&mut attach as *mut VfioDeviceAttachIommufdPt).cast(),
            )
        }
        .map_err(|e| err("VFIO_DEVICE_ATTACH_IOMMUFD_PT", e))?;
        Ok(())
    }

    /// `VFIO_DEVICE_GET_INFO` with a buffer of `argsz` bytes pre-filled with
    /// `fill`. Returns the answer and the whole buffer.
    pub fn get_info_raw(&self, argsz: usize, fill: u8) -> (Result<i32, Errno>, AlignedBuf) {
        // Always allocate the full struct: upstream copies in the first 16
        // bytes before it looks at argsz, so a smaller buffer would make the
        // kernel read past it.
        let mut b = AlignedBuf::filled(argsz.max(DEVICE_INFO_SIZE), fill);
        b.put_u32(0, argsz as u32);
        let r = self.io.ioctl_buf(VFIO_DEVICE_GET_INFO, &mut b);
        (r, b)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index` with `argsz`, buffer
    /// pre-filled with `fill`.
    pub fn region_info_raw(
        &self,
        index: u32,
        argsz: usize,
        fill: u8,
    ) -> (Result<i32, Errno>, AlignedBuf) {
        // Always allocate the full struct: upstream copies in 32 bytes before
        // looking at argsz, so a smaller buffer would be a client bug.
        let mut b = AlignedBuf::filled(argsz.max(REGION_INFO_SIZE), fill);
        b.put_u32(0, argsz as u32);
        b.put_u32(8, index);
        let r = self.io.ioctl_buf(VFIO_DEVICE_GET_REGION_INFO, &mut b);
        (r, b)
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for `index` with `argsz`.
    pub fn irq_info_raw(
        &self,
        index: u32,
        argsz: usize,
        fill: u8,
    ) -> (Result<i32, Errno>, AlignedBuf) {
        let mut b = AlignedBuf::filled(argsz.max(IRQ_INFO_SIZE), fill);
        b.put_u32(0, argsz as u32);
        b.put_u32(8, index);
        let r = self.io.ioctl_buf(VFIO_DEVICE_GET_IRQ_INFO, &mut b);
        (r, b)
    }

    /// Decoded device info (full struct), or the errno.
    pub fn info(&self) -> Result<DeviceInfo, Errno> {
        let (r, b) = self.get_info_raw(DEVICE_INFO_SIZE, 0);
        r.map(|_| DeviceInfo::parse(b.bytes()))
    }

    /// Region info with room for capabilities: the decoded struct and the
    /// whole returned buffer (for capability parsing).
    pub fn region(&self, index: u32) -> Result<(RegionInfo, AlignedBuf), Errno> {
        let (r, b) = self.region_info_raw(index, 4096, 0);
        r.map(|_| (RegionInfo::parse(b.bytes()), b))
    }

    /// The group fd (group mode), -1 otherwise.
    pub fn group_fd(&self) -> RawFd {
        self.group
    }

    /// Closes every fd and opens the device again the same way: a new user, after the
    /// driver's close of the last one.
    pub fn reopen(&mut self) -> Result<(), OpenError> {
        let mode = if self.is_cdev() {
            Mode::Cdev
        } else {
            Mode::Group
        };
        for fd in [
            &mut self.fd,
            &mut self.group,
            &mut self.container,
            &mut self.iommufd,
        ] {
            sys::close(*fd);
            *fd = -1;
        }
        let bdf = self.bdf.clone();
        *self = Device::open(&bdf, mode)?;
        Ok(())
    }

    /// Whether the device was opened through its cdev (iommufd).
    pub fn is_cdev(&self) -> bool {
        self.iommufd >= 0
    }

    /// An ioctl with a buffer on the device.
    pub fn ioctl_buf(&self, req: u64, buf: &mut AlignedBuf) -> Result<i32, Errno> {
        self.io.ioctl_buf(req, buf)
    }

    /// `VFIO_DEVICE_RESET`.
    pub fn reset(&self) -> Result<i32, Errno> {
        self.io.ioctl_val(VFIO_DEVICE_RESET, 0)
    }

    /// An ioctl with an integer argument on the device.
    pub fn ioctl_val(&self, req: u64, val: u64) -> Result<i32, Errno> {
        self.io.ioctl_val(req, val)
    }

    /// pread at `offset` within region `index`.
    pub fn read_region(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.io.pread(buf, region_offset(index) + offset)
    }

    /// pwrite at `offset` within region `index`.
    pub fn write_region(&self, index: u32, offset: u64, buf: &[u8]) -> Result<usize, Errno> {
        self.io.pwrite(buf, region_offset(index) + offset)
    }

    /// Read a little-endian u16 from config space.
    pub fn config_read16(&self, offset: u64) -> Result<u16, Errno> {
        let mut b = [0u8; 2];
        let n = self.read_region(VFIO_PCI_CONFIG_REGION_INDEX, offset, &mut b)?;
        if n != 2 {
            return Err(Errno(libc::EIO));
        }
        Ok(u16::from_le_bytes(b))
    }

    /// Write a little-endian u16 to config space; returns the byte count.
    pub fn config_write16(&self, offset: u64, v: u16) -> Result<usize, Errno> {
        self.write_region(VFIO_PCI_CONFIG_REGION_INDEX, offset, &v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_numbers() {
        assert_eq!(group_number("../../../../kernel/iommu_groups/7"), Some(7));
        assert_eq!(group_number("/sys/kernel/iommu_groups/12/"), Some(12));
        assert_eq!(group_number("../iommu_groups/x"), None);
    }

    #[test]
    fn cdev_names() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(cdev_name(v(&["vfio3"])), Some("vfio3".into()));
        assert_eq!(
            cdev_name(v(&["power", "noiommu-vfio0"])),
            Some("noiommu-vfio0".into())
        );
        assert_eq!(cdev_name(v(&["vfio", "vfiox", "uevent"])), None);
    }

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("group"), Some(Mode::Group));
        assert_eq!(Mode::parse("cdev"), Some(Mode::Cdev));
        assert_eq!(Mode::parse("x"), None);
        assert_eq!(Mode::Cdev.to_string(), "cdev");
    }
}
