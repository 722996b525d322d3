//! VFIO and iommufd user ABI, transcribed from `include/uapi/linux/vfio.h` and
//! `include/uapi/linux/iommufd.h` (Linux 7.3).
//!
//! Only the ABI-stable parts this client uses are defined. The client keeps its
//! own copy instead of generating bindings so that it builds without kernel
//! headers and so that a reviewer can check every number against the header.
//! Struct layouts are asserted at compile time; ioctl numbers are checked by
//! unit tests against values computed by a C compiler from the 7.3 headers.
//!
//! Ioctl buffers are handled as byte arrays (see [`AlignedBuf`]) rather than as
//! Rust structs so that the client can pass short `argsz` values, pre-fill
//! buffers with a marker byte and see exactly which bytes the driver wrote.

// A transcription of the ABI keeps related constants together (e.g. all IRQ
// indexes) even where the client uses only some of them.
#![allow(dead_code)]

/// The ioctl "type" byte shared by VFIO and iommufd (`';'`).
pub const VFIO_TYPE: u8 = b';';
/// First VFIO ioctl number; VFIO ioctls are `_IO(';', VFIO_BASE + n)`.
pub const VFIO_BASE: u8 = 100;

/// `_IO(ty, nr)`: direction none and size 0, as VFIO uses for every ioctl
/// (the size lives in `argsz` instead).
pub const fn io(ty: u8, nr: u8) -> u64 {
    ((ty as u64) << 8) | nr as u64
}

/// Returned by `VFIO_GET_API_VERSION`.
pub const VFIO_API_VERSION: i32 = 0;
/// Type1 IOMMU, version 2 semantics.
pub const VFIO_TYPE1V2_IOMMU: u64 = 3;
/// No-IOMMU "IOMMU" used when the kernel runs with `enable_unsafe_noiommu_mode`.
pub const VFIO_NOIOMMU_IOMMU: u64 = 8;

/// `VFIO_GET_API_VERSION` on the container.
pub const VFIO_GET_API_VERSION: u64 = io(VFIO_TYPE, VFIO_BASE);
/// `VFIO_CHECK_EXTENSION` on the container.
pub const VFIO_CHECK_EXTENSION: u64 = io(VFIO_TYPE, VFIO_BASE + 1);
/// `VFIO_SET_IOMMU` on the container.
pub const VFIO_SET_IOMMU: u64 = io(VFIO_TYPE, VFIO_BASE + 2);
/// `VFIO_GROUP_GET_STATUS` on a group.
pub const VFIO_GROUP_GET_STATUS: u64 = io(VFIO_TYPE, VFIO_BASE + 3);
/// `VFIO_GROUP_SET_CONTAINER` on a group.
pub const VFIO_GROUP_SET_CONTAINER: u64 = io(VFIO_TYPE, VFIO_BASE + 4);
/// `VFIO_GROUP_GET_DEVICE_FD` on a group.
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = io(VFIO_TYPE, VFIO_BASE + 6);
/// `VFIO_DEVICE_GET_INFO` on a device.
pub const VFIO_DEVICE_GET_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 7);
/// `VFIO_DEVICE_GET_REGION_INFO` on a device.
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 8);
/// `VFIO_DEVICE_GET_IRQ_INFO` on a device.
pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 9);
/// `VFIO_DEVICE_RESET` on a device.
pub const VFIO_DEVICE_RESET: u64 = io(VFIO_TYPE, VFIO_BASE + 11);
/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` on a device.
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 12);
/// `VFIO_DEVICE_PCI_HOT_RESET` on a device.
pub const VFIO_DEVICE_PCI_HOT_RESET: u64 = io(VFIO_TYPE, VFIO_BASE + 13);
/// Hot-reset info flag: entries carry iommufd device ids, not group ids.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID: u32 = 1;
/// Hot-reset info flag: the caller owns every affected device.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: u32 = 2;
/// Hot-reset info device id of an affected device the caller does not own.
pub const VFIO_PCI_DEVID_NOT_OWNED: u32 = u32::MAX;
/// `VFIO_DEVICE_BIND_IOMMUFD` on a device cdev.
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = io(VFIO_TYPE, VFIO_BASE + 18);
/// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` on a device cdev.
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = io(VFIO_TYPE, VFIO_BASE + 19);
/// An ioctl number no VFIO driver implements (`_IO(';', 100 + 60)`), used to
/// check the "unknown ioctl" answer.
pub const VFIO_UNKNOWN_IOCTL: u64 = io(VFIO_TYPE, VFIO_BASE + 60);

/// iommufd ioctl base (`IOMMUFD_CMD_BASE`).
pub const IOMMUFD_CMD_BASE: u8 = 0x80;
/// `IOMMU_DESTROY`.
pub const IOMMU_DESTROY: u64 = io(VFIO_TYPE, IOMMUFD_CMD_BASE);
/// `IOMMU_IOAS_ALLOC`.
pub const IOMMU_IOAS_ALLOC: u64 = io(VFIO_TYPE, 0x81);

/// `vfio_group_status.flags`: all devices of the group are bound to vfio.
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;

/// `vfio_device_info.flags`: the device supports `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `vfio_device_info.flags`: vfio-pci device.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `vfio_device_info.flags`: the info has a capability chain.
pub const VFIO_DEVICE_FLAGS_CAPS: u32 = 1 << 7;

/// Region flag: readable with pread.
pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
/// Region flag: writable with pwrite.
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
/// Region flag: mmap-able.
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// Region flag: the info has a capability chain.
pub const VFIO_REGION_INFO_FLAG_CAPS: u32 = 1 << 3;

/// Region capability: sparse mmap areas.
pub const VFIO_REGION_INFO_CAP_SPARSE_MMAP: u16 = 1;
/// Region capability: device specific region type.
pub const VFIO_REGION_INFO_CAP_TYPE: u16 = 2;
/// Region capability: the MSI-X table of this BAR may be mmapped.
pub const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: u16 = 3;

/// IRQ flag: eventfd signalling supported.
pub const VFIO_IRQ_INFO_EVENTFD: u32 = 1 << 0;
/// IRQ flag: mask/unmask supported.
pub const VFIO_IRQ_INFO_MASKABLE: u32 = 1 << 1;
/// IRQ flag: automatically masked after signalling (level triggered).
pub const VFIO_IRQ_INFO_AUTOMASKED: u32 = 1 << 2;
/// IRQ flag: vectors cannot be added without disabling the index.
pub const VFIO_IRQ_INFO_NORESIZE: u32 = 1 << 3;

/// Fixed vfio-pci region indexes.
pub const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
/// Last BAR region index.
pub const VFIO_PCI_BAR5_REGION_INDEX: u32 = 5;
/// Expansion ROM region index.
pub const VFIO_PCI_ROM_REGION_INDEX: u32 = 6;
/// PCI configuration space region index.
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
/// Legacy VGA region index.
pub const VFIO_PCI_VGA_REGION_INDEX: u32 = 8;
/// Number of fixed vfio-pci regions.
pub const VFIO_PCI_NUM_REGIONS: u32 = 9;

/// INTx IRQ index.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
/// MSI IRQ index.
pub const VFIO_PCI_MSI_IRQ_INDEX: u32 = 1;
/// MSI-X IRQ index.
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
/// AER error IRQ index.
pub const VFIO_PCI_ERR_IRQ_INDEX: u32 = 3;
/// Device request IRQ index.
pub const VFIO_PCI_REQ_IRQ_INDEX: u32 = 4;
/// Number of fixed vfio-pci IRQ indexes.
pub const VFIO_PCI_NUM_IRQS: u32 = 5;

/// vfio-pci encodes the region index in the top bits of the file offset
/// (`VFIO_PCI_OFFSET_SHIFT`). This is not in the uapi header but every
/// vfio-pci user depends on it, and region info reports it.
pub const VFIO_PCI_OFFSET_SHIFT: u32 = 40;

/// File offset of the start of region `index`.
pub const fn region_offset(index: u32) -> u64 {
    (index as u64) << VFIO_PCI_OFFSET_SHIFT
}

/// Size of `struct vfio_group_status`.
pub const GROUP_STATUS_SIZE: usize = 8;
/// Size of `struct vfio_device_info`.
pub const DEVICE_INFO_SIZE: usize = 24;
/// `offsetofend(struct vfio_device_info, num_irqs)`: the minimum argsz.
pub const DEVICE_INFO_MINSZ: usize = 16;
/// Size of `struct vfio_region_info`.
pub const REGION_INFO_SIZE: usize = 32;
/// Size of `struct vfio_irq_info`.
pub const IRQ_INFO_SIZE: usize = 16;
/// Size of `struct vfio_info_cap_header`.
pub const CAP_HEADER_SIZE: usize = 8;

/// `struct vfio_device_bind_iommufd`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct VfioDeviceBindIommufd {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_DEVICE_BIND_FLAG_*`.
    pub flags: u32,
    /// The iommufd to bind to.
    pub iommufd: i32,
    /// Output: device id within the iommufd.
    pub out_devid: u32,
    /// Pointer to a 16-byte VF token, valid with `VFIO_DEVICE_BIND_FLAG_TOKEN`.
    pub token_uuid_ptr: u64,
}

/// `struct vfio_device_attach_iommufd_pt`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct VfioDeviceAttachIommufdPt {
    /// Size of this struct.
    pub argsz: u32,
    /// `VFIO_DEVICE_ATTACH_*`.
    pub flags: u32,
    /// In: IOAS or HWPT id. Out: the attached HWPT id.
    pub pt_id: u32,
    /// PASID, with `VFIO_DEVICE_ATTACH_PASID`.
    pub pasid: u32,
}

/// `struct iommu_ioas_alloc`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IommuIoasAlloc {
    /// Size of this struct.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// Output: the new IOAS id.
    pub out_ioas_id: u32,
}

/// `struct iommu_destroy`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IommuDestroy {
    /// Size of this struct.
    pub size: u32,
    /// Object id to destroy.
    pub id: u32,
}

const _: () = assert!(std::mem::size_of::<VfioDeviceBindIommufd>() == 24);
const _: () = assert!(std::mem::size_of::<VfioDeviceAttachIommufdPt>() == 16);
const _: () = assert!(std::mem::size_of::<IommuIoasAlloc>() == 12);
const _: () = assert!(std::mem::size_of::<IommuDestroy>() == 8);

/// A byte buffer with 8-byte alignment, as `__aligned_u64` members of ioctl
/// structs require, pre-filled with a marker so that bytes the driver did not
/// write can be told apart from bytes it wrote.
#[derive(Clone)]
pub struct AlignedBuf {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` bytes all set to `fill`.
    pub fn filled(len: usize, fill: u8) -> Self {
        let words = vec![u64::from_ne_bytes([fill; 8]); len.div_ceil(8)];
        AlignedBuf { words, len }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes and u8 has no
        // alignment requirement.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, mutably.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and we hold the unique borrow.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }

    /// Pointer to pass to an ioctl.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast::<u8>()
    }

    /// Store a native-endian u32 at `off`.
    pub fn put_u32(&mut self, off: usize, v: u32) {
        self.bytes_mut()[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    /// Load a native-endian u32 from `off`.
    pub fn u32_at(&self, off: usize) -> u32 {
        get_u32(self.bytes(), off)
    }
}

/// Native-endian u16 at `off` in `b` (VFIO structs are host-endian).
pub fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

/// Native-endian u32 at `off` in `b`.
pub fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_ne_bytes(a)
}

/// Native-endian u64 at `off` in `b`.
pub fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// Decoded `struct vfio_device_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// argsz as returned (the driver raises it when caps do not fit).
    pub argsz: u32,
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions.
    pub num_regions: u32,
    /// Number of IRQ indexes.
    pub num_irqs: u32,
    /// Offset of the first capability, 0 if none was returned.
    pub cap_offset: u32,
}

impl DeviceInfo {
    /// Decode from the first 24 bytes of `b`.
    pub fn parse(b: &[u8]) -> Self {
        DeviceInfo {
            argsz: get_u32(b, 0),
            flags: get_u32(b, 4),
            num_regions: get_u32(b, 8),
            num_irqs: get_u32(b, 12),
            cap_offset: get_u32(b, 16),
        }
    }
}

/// Decoded `struct vfio_region_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionInfo {
    /// argsz as returned.
    pub argsz: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Region index.
    pub index: u32,
    /// Offset of the first capability, 0 if none was returned.
    pub cap_offset: u32,
    /// Region size in bytes.
    pub size: u64,
    /// Region offset within the device fd.
    pub offset: u64,
}

impl RegionInfo {
    /// Decode from the first 32 bytes of `b`.
    pub fn parse(b: &[u8]) -> Self {
        RegionInfo {
            argsz: get_u32(b, 0),
            flags: get_u32(b, 4),
            index: get_u32(b, 8),
            cap_offset: get_u32(b, 12),
            size: get_u64(b, 16),
            offset: get_u64(b, 24),
        }
    }

    /// True if all of `flags` are set.
    pub fn has(&self, flags: u32) -> bool {
        self.flags & flags == flags
    }
}

/// Decoded `struct vfio_irq_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IrqInfo {
    /// argsz as returned.
    pub argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// IRQ index.
    pub index: u32,
    /// Number of vectors.
    pub count: u32,
}

impl IrqInfo {
    /// Decode from the first 16 bytes of `b`.
    pub fn parse(b: &[u8]) -> Self {
        IrqInfo {
            argsz: get_u32(b, 0),
            flags: get_u32(b, 4),
            index: get_u32(b, 8),
            count: get_u32(b, 12),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by a C program including <linux/vfio.h> and
    /// <linux/iommufd.h> from linux-libc-dev 7.3.4.
    #[test]
    fn ioctl_numbers_match_c_headers() {
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3b65);
        assert_eq!(VFIO_SET_IOMMU, 0x3b66);
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3b67);
        assert_eq!(VFIO_GROUP_SET_CONTAINER, 0x3b68);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_GET_IRQ_INFO, 0x3b6d);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
        assert_eq!(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0x3b77);
        assert_eq!(IOMMU_DESTROY, 0x3b80);
        assert_eq!(IOMMU_IOAS_ALLOC, 0x3b81);
        assert_eq!(VFIO_UNKNOWN_IOCTL, 0x3ba0);
    }

    #[test]
    fn region_info_parse() {
        let mut b = AlignedBuf::filled(32, 0);
        b.put_u32(0, 32);
        b.put_u32(4, 7);
        b.put_u32(8, 2);
        b.bytes_mut()[16..24].copy_from_slice(&(1u64 << 30).to_ne_bytes());
        b.bytes_mut()[24..32].copy_from_slice(&region_offset(2).to_ne_bytes());
        let r = RegionInfo::parse(b.bytes());
        assert_eq!(r.argsz, 32);
        assert!(r.has(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP));
        assert!(!r.has(VFIO_REGION_INFO_FLAG_CAPS));
        assert_eq!(r.size, 1 << 30);
        assert_eq!(r.offset, 2 << 40);
    }

    #[test]
    fn aligned_buf_is_aligned_and_filled() {
        let mut b = AlignedBuf::filled(13, 0xa5);
        assert_eq!(b.as_mut_ptr() as usize % 8, 0);
        assert_eq!(b.bytes().len(), 13);
        assert!(b.bytes().iter().all(|&x| x == 0xa5));
    }
}
