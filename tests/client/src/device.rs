//! Device identity (from sysfs) and the per-device knowledge the tests need:
//! which registers are safe to write and which data is stable enough to put
//! in a differential transcript.

/// The QEMU test devices the client knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// QEMU "edu" educational device, 1234:11e8.
    Edu,
    /// ivshmem-plain, 1af4:1110.
    Ivshmem,
    /// pci-testdev, 1b36:0005.
    PciTestdev,
    /// igb, 8086:10c9.
    Igb,
    /// QEMU NVMe controller, 1b36:0010.
    Nvme,
    /// Anything else: read-only generic probing, no data recorded.
    Other,
}

impl Kind {
    /// Classify by PCI vendor and device id.
    pub fn from_ids(vendor: u16, device: u16) -> Kind {
        match (vendor, device) {
            (0x1234, 0x11e8) => Kind::Edu,
            (0x1af4, 0x1110) => Kind::Ivshmem,
            (0x1b36, 0x0005) => Kind::PciTestdev,
            (0x8086, 0x10c9) => Kind::Igb,
            (0x1b36, 0x0010) => Kind::Nvme,
            _ => Kind::Other,
        }
    }

    /// Whether data read from `bar` at `offset` (for `len` bytes) is
    /// determined by the device model alone, so it can be compared between a
    /// run under the Rust driver and a run under upstream. For ivshmem BAR2
    /// this holds only because the tests write known patterns before reading.
    pub fn stable_data(self, bar: u32, offset: u64, len: u64) -> bool {
        match self {
            // The edu BAR0 registers the generic probes touch (ident at 0,
            // unimplemented offsets, which read as all-ones) do not change.
            Kind::Edu => bar == 0,
            // BAR0: interrupt mask/status/position registers, constant with no
            // peers; BAR2: shared memory seeded by the test first.
            Kind::Ivshmem => bar == 0 || bar == 2,
            // Read-only probing of a device with no autonomous state.
            Kind::PciTestdev => true,
            // CAP register (0x0..0x8) only.
            Kind::Nvme => bar == 0 && offset + len <= 8,
            Kind::Igb | Kind::Other => false,
        }
    }

    /// Whether the device's BARs may be written by the generic tests (only
    /// memory the test owns outright).
    pub fn writable_memory_bar(self) -> Option<u32> {
        match self {
            Kind::Ivshmem => Some(2),
            _ => None,
        }
    }
}

/// Parse a sysfs id file ("0x1234\n").
pub fn parse_id(s: &str) -> Option<u16> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    u16::from_str_radix(s, 16).ok()
}

/// Read vendor and device id of `bdf` from sysfs.
pub fn read_ids(bdf: &str) -> Option<(u16, u16)> {
    let rd = |f: &str| {
        std::fs::read_to_string(format!("/sys/bus/pci/devices/{bdf}/{f}"))
            .ok()
            .and_then(|s| parse_id(&s))
    };
    Some((rd("vendor")?, rd("device")?))
}

/// Check the shape of a PCI address ("dddd:bb:dd.f") so a typo fails early
/// with a clear message rather than as a missing sysfs file.
pub fn valid_bdf(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(|c| c.is_ascii_hexdigit());
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(Kind::from_ids(0x1234, 0x11e8), Kind::Edu);
        assert_eq!(Kind::from_ids(0x1af4, 0x1110), Kind::Ivshmem);
        assert_eq!(Kind::from_ids(0x1b36, 0x0005), Kind::PciTestdev);
        assert_eq!(Kind::from_ids(0x8086, 0x10c9), Kind::Igb);
        assert_eq!(Kind::from_ids(0x1b36, 0x0010), Kind::Nvme);
        assert_eq!(Kind::from_ids(0x8086, 0x100e), Kind::Other);
    }

    #[test]
    fn stability_policy() {
        assert!(Kind::Nvme.stable_data(0, 0, 8));
        assert!(!Kind::Nvme.stable_data(0, 4, 8));
        assert!(!Kind::Nvme.stable_data(2, 0, 4));
        assert!(!Kind::Igb.stable_data(0, 0, 4));
        assert!(Kind::Ivshmem.stable_data(2, 5, 8));
        assert!(!Kind::Ivshmem.stable_data(1, 0, 4));
        assert!(!Kind::Other.stable_data(0, 0, 1));
    }

    #[test]
    fn ids_and_bdfs() {
        assert_eq!(parse_id("0x1af4\n"), Some(0x1af4));
        assert_eq!(parse_id("zz"), None);
        assert!(valid_bdf("0000:00:03.0"));
        assert!(valid_bdf("0000:af:1f.7"));
        assert!(!valid_bdf("00:03.0"));
        assert!(!valid_bdf("0000:00:03.8"));
    }
}
