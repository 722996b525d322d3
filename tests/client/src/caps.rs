//! Parsing of VFIO info capability chains and of the PCI capability list in
//! configuration space. Pure functions over byte buffers so they can be unit
//! tested on the host.

use crate::uapi::{get_u16, get_u32, get_u64, CAP_HEADER_SIZE};

/// One entry of a VFIO info capability chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfioCap {
    /// Offset of the header from the start of the info buffer.
    pub offset: u32,
    /// Capability id.
    pub id: u16,
    /// Capability version.
    pub version: u16,
    /// Offset of the next header, 0 at the end.
    pub next: u32,
}

/// Walk a VFIO capability chain starting at `first` inside `buf` (the whole
/// info buffer as returned by the driver). `min_offset` is the size of the
/// fixed info struct: a capability may not overlap it.
///
/// The chain must be well formed the way upstream builds it: headers 8-byte
/// aligned (upstream rounds every capability up to a multiple of 8), inside
/// the buffer, and strictly increasing offsets (which also rules out loops).
pub fn parse_chain(buf: &[u8], first: u32, min_offset: usize) -> Result<Vec<VfioCap>, String> {
    let mut caps = Vec::new();
    let mut off = first as usize;
    if off == 0 {
        return Ok(caps);
    }
    loop {
        if off < min_offset {
            return Err(format!(
                "capability at {off:#x} overlaps the {min_offset}-byte info struct"
            ));
        }
        if !off.is_multiple_of(8) {
            return Err(format!("capability at {off:#x} is not 8-byte aligned"));
        }
        if off + CAP_HEADER_SIZE > buf.len() {
            return Err(format!(
                "capability at {off:#x} runs past the {}-byte buffer",
                buf.len()
            ));
        }
        let cap = VfioCap {
            offset: off as u32,
            id: get_u16(buf, off),
            version: get_u16(buf, off + 2),
            next: get_u32(buf, off + 4),
        };
        caps.push(cap);
        if cap.next == 0 {
            return Ok(caps);
        }
        if (cap.next as usize) <= off {
            return Err(format!(
                "capability at {off:#x} points back to {:#x}",
                cap.next
            ));
        }
        off = cap.next as usize;
    }
}

/// Human-readable description of a region capability (diagnostics only; the
/// transcript holds the raw bytes).
pub fn describe_region_cap(buf: &[u8], cap: &VfioCap) -> String {
    let o = cap.offset as usize;
    match cap.id {
        crate::uapi::VFIO_REGION_INFO_CAP_SPARSE_MMAP if o + 16 <= buf.len() => {
            let n = get_u32(buf, o + 8) as usize;
            let mut s = format!("sparse_mmap v{} nr_areas={n}", cap.version);
            for i in 0..n {
                let a = o + 16 + i * 16;
                if a + 16 > buf.len() {
                    s.push_str(" (truncated)");
                    break;
                }
                s.push_str(&format!(
                    " [{:#x}+{:#x}]",
                    get_u64(buf, a),
                    get_u64(buf, a + 8)
                ));
            }
            s
        }
        crate::uapi::VFIO_REGION_INFO_CAP_TYPE if o + 16 <= buf.len() => format!(
            "type v{} type={:#x} subtype={:#x}",
            cap.version,
            get_u32(buf, o + 8),
            get_u32(buf, o + 12)
        ),
        crate::uapi::VFIO_REGION_INFO_CAP_MSIX_MAPPABLE => {
            format!("msix_mappable v{}", cap.version)
        }
        id => format!("id={id} v{}", cap.version),
    }
}

/// Power management capability id.
pub const PCI_CAP_ID_PM: u8 = 0x01;
/// MSI capability id.
pub const PCI_CAP_ID_MSI: u8 = 0x05;
/// PCI Express capability id.
pub const PCI_CAP_ID_EXP: u8 = 0x10;
/// MSI-X capability id.
pub const PCI_CAP_ID_MSIX: u8 = 0x11;

/// `PCI_COMMAND` register offset.
pub const PCI_COMMAND: u64 = 0x04;
/// I/O space enable bit in `PCI_COMMAND`.
pub const PCI_COMMAND_IO: u16 = 0x1;
/// Memory space enable bit in `PCI_COMMAND`.
pub const PCI_COMMAND_MEMORY: u16 = 0x2;
/// INTx emulation disable bit in `PCI_COMMAND`.
pub const PCI_COMMAND_INTX_DISABLE: u16 = 0x400;

/// `PCI_PM_CTRL` (PMCSR) offset inside the PM capability.
pub const PCI_PM_CTRL: u64 = 4;
/// Power state field of PMCSR.
pub const PCI_PM_CTRL_STATE_MASK: u16 = 0x3;
/// `PCI_EXP_DEVCAP` offset inside the PCIe capability.
pub const PCI_EXP_DEVCAP: u64 = 4;
/// Function Level Reset capable bit of DEVCAP.
pub const PCI_EXP_DEVCAP_FLR: u32 = 1 << 28;
/// `PCI_EXP_DEVCTL` offset inside the PCIe capability.
pub const PCI_EXP_DEVCTL: u64 = 8;
/// Initiate Function Level Reset bit of DEVCTL.
pub const PCI_EXP_DEVCTL_BCR_FLR: u16 = 0x8000;

fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Walk the standard capability list of a config space image. Returns
/// (id, offset) pairs in list order. Stops at a malformed pointer and after
/// 48 entries (the most that fit in 192 bytes), so a looping list cannot hang.
pub fn pci_caps(cfg: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    if cfg.len() < 0x40 || le16(cfg, 0x06) & 0x10 == 0 {
        return out;
    }
    let mut ptr = (cfg[0x34] & 0xfc) as usize;
    while ptr >= 0x40 && ptr + 2 <= cfg.len() && out.len() < 48 {
        out.push((cfg[ptr], ptr as u8));
        ptr = (cfg[ptr + 1] & 0xfc) as usize;
    }
    out
}

/// Offset of the first standard capability with `id`, if any.
pub fn find_cap(cfg: &[u8], id: u8) -> Option<u8> {
    pci_caps(cfg)
        .into_iter()
        .find(|&(i, _)| i == id)
        .map(|(_, off)| off)
}

/// Walk the extended capability list (config space of more than 256 bytes).
/// Returns (id, version, offset) triples in list order. An all-zero or
/// all-ones header ends the list; the walk is bounded by the number of
/// dwords, so a looping list cannot hang.
pub fn pci_ext_caps(cfg: &[u8]) -> Vec<(u16, u8, u16)> {
    let mut out = Vec::new();
    let mut pos = 0x100usize;
    let mut loops = cfg.len().saturating_sub(0x100) / 4;
    while loops > 0 && pos >= 0x100 && pos + 4 <= cfg.len() {
        loops -= 1;
        let h = le32(cfg, pos);
        if h == 0 || h == u32::MAX {
            break;
        }
        out.push(((h & 0xffff) as u16, ((h >> 16) & 0xf) as u8, pos as u16));
        pos = ((h >> 20) & 0xffc) as usize;
    }
    out
}

/// Length of a standard capability the way upstream vfio-pci sizes it
/// (`pci_cap_length[]` and `vfio_cap_len()` in vfio_pci_config.c), read from
/// the config image: the bytes it claims, which the driver virtualizes with
/// that capability's permissions. 0 for capabilities upstream hides.
pub fn std_cap_len(cfg: &[u8], id: u8, off: u8) -> usize {
    let o = off as usize;
    let byte = |i: usize| cfg.get(o + i).copied().unwrap_or(0);
    let word = |i: usize| u16::from_le_bytes([byte(i), byte(i + 1)]);
    match id {
        0x01 => 8,  // PM
        0x02 => 12, // AGP
        0x03 => 8,  // VPD
        0x05 => {
            // MSI: 10, +4 with 64-bit addresses, +10 with per-vector masking.
            let flags = word(2);
            10 + if flags & 0x80 != 0 { 4 } else { 0 } + if flags & 0x100 != 0 { 10 } else { 0 }
        }
        0x07 => {
            // PCI-X: version 0 is 8 bytes, version 1/2 24.
            if (word(2) >> 12) & 3 != 0 {
                24
            } else {
                8
            }
        }
        0x08 => {
            // HyperTransport: short or long form.
            if byte(3) & 0xe0 != 0 {
                24
            } else {
                28
            }
        }
        0x09 => byte(2) as usize, // vendor specific: length byte
        0x10 => {
            // PCI Express: by version and port type (RC integrated
            // endpoints have no link registers).
            let flags = word(2);
            let rc_end = (flags >> 4) & 0xf == 0x9;
            match (flags & 0xf == 1, rc_end) {
                (true, true) => 0x0c,
                (true, false) => 0x14,
                (false, true) => 0x2c,
                (false, false) => 0x3c,
            }
        }
        0x11 => 12, // MSI-X
        0x12 => {
            // SATA: register location decides.
            if byte(4) & 0xf == 0xf {
                16
            } else {
                8
            }
        }
        0x13 => 6, // Advanced Features
        _ => 0,
    }
}

/// Dwords of standard config space (0x40..0x100) that no visible capability
/// claims, in ascending order. Upstream passes these through raw.
pub fn unassigned_dwords(cfg: &[u8]) -> Vec<u16> {
    let mut claimed = [false; 256];
    for (id, off) in pci_caps(cfg) {
        let len = std_cap_len(cfg, id, off);
        for b in claimed.iter_mut().skip(off as usize).take(len) {
            *b = true;
        }
    }
    (0x40..0x100u16)
        .step_by(4)
        .filter(|&d| !claimed[d as usize..d as usize + 4].iter().any(|&c| c))
        .collect()
}

/// Location of the MSI-X table and PBA, from the MSI-X capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixInfo {
    /// Offset of the capability in config space.
    pub cap: u8,
    /// Number of table entries.
    pub table_size: u32,
    /// BAR holding the table.
    pub table_bir: u32,
    /// Offset of the table within that BAR.
    pub table_offset: u32,
    /// BAR holding the pending bit array.
    pub pba_bir: u32,
    /// Offset of the PBA within that BAR.
    pub pba_offset: u32,
}

impl MsixInfo {
    /// Size of the table in bytes (16 bytes per entry).
    pub fn table_bytes(&self) -> u64 {
        self.table_size as u64 * 16
    }
}

/// Decode the MSI-X capability of a config space image, if present.
pub fn msix_info(cfg: &[u8]) -> Option<MsixInfo> {
    let (_, off) = pci_caps(cfg)
        .into_iter()
        .find(|&(id, _)| id == PCI_CAP_ID_MSIX)?;
    let o = off as usize;
    if o + 12 > cfg.len() {
        return None;
    }
    let ctrl = le16(cfg, o + 2);
    let table = le32(cfg, o + 4);
    let pba = le32(cfg, o + 8);
    Some(MsixInfo {
        cap: off,
        table_size: (ctrl & 0x7ff) as u32 + 1,
        table_bir: table & 7,
        table_offset: table & !7,
        pba_bir: pba & 7,
        pba_offset: pba & !7,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCI_CAP_ID_MSI: u8 = 0x05;

    fn put_cap(buf: &mut [u8], off: usize, id: u16, ver: u16, next: u32) {
        buf[off..off + 2].copy_from_slice(&id.to_ne_bytes());
        buf[off + 2..off + 4].copy_from_slice(&ver.to_ne_bytes());
        buf[off + 4..off + 8].copy_from_slice(&next.to_ne_bytes());
    }

    #[test]
    fn empty_chain() {
        assert_eq!(parse_chain(&[0u8; 32], 0, 32), Ok(vec![]));
    }

    #[test]
    fn two_caps() {
        let mut b = vec![0u8; 64];
        put_cap(&mut b, 32, 3, 1, 40);
        put_cap(&mut b, 40, 2, 1, 0);
        b[48..52].copy_from_slice(&7u32.to_ne_bytes());
        b[52..56].copy_from_slice(&9u32.to_ne_bytes());
        let c = parse_chain(&b, 32, 32).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0],
            VfioCap {
                offset: 32,
                id: 3,
                version: 1,
                next: 40
            }
        );
        assert_eq!(c[1].id, 2);
        assert_eq!(describe_region_cap(&b, &c[0]), "msix_mappable v1");
        assert_eq!(
            describe_region_cap(&b, &c[1]),
            "type v1 type=0x7 subtype=0x9"
        );
    }

    #[test]
    fn sparse_description() {
        let mut b = vec![0u8; 64];
        put_cap(&mut b, 32, 1, 1, 0);
        b[40..44].copy_from_slice(&1u32.to_ne_bytes());
        b[48..56].copy_from_slice(&0x1000u64.to_ne_bytes());
        b[56..64].copy_from_slice(&0x2000u64.to_ne_bytes());
        let c = parse_chain(&b, 32, 32).unwrap();
        assert_eq!(
            describe_region_cap(&b, &c[0]),
            "sparse_mmap v1 nr_areas=1 [0x1000+0x2000]"
        );
    }

    #[test]
    fn malformed_chains() {
        let mut b = vec![0u8; 64];
        // Overlaps the fixed struct.
        assert!(parse_chain(&b, 16, 32).unwrap_err().contains("overlaps"));
        // Misaligned.
        assert!(parse_chain(&b, 36, 32).unwrap_err().contains("aligned"));
        // Past the end.
        assert!(parse_chain(&b, 64, 32).unwrap_err().contains("past"));
        // Loop back to itself.
        put_cap(&mut b, 32, 3, 1, 32);
        assert!(parse_chain(&b, 32, 32).unwrap_err().contains("points back"));
        // Next beyond the buffer.
        put_cap(&mut b, 32, 3, 1, 4096);
        assert!(parse_chain(&b, 32, 32).unwrap_err().contains("past"));
    }

    fn cfg_with_caps() -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0x06] = 0x10; // status: capability list
        c[0x34] = 0x40;
        // MSI at 0x40 -> MSI-X at 0x50 -> end.
        c[0x40] = PCI_CAP_ID_MSI;
        c[0x41] = 0x50;
        c[0x50] = PCI_CAP_ID_MSIX;
        c[0x51] = 0x00;
        c[0x52..0x54].copy_from_slice(&63u16.to_le_bytes()); // 64 entries
        c[0x54..0x58].copy_from_slice(&(0x2000u32 | 3).to_le_bytes());
        c[0x58..0x5c].copy_from_slice(&(0x3000u32 | 3).to_le_bytes());
        c
    }

    #[test]
    fn walks_pci_caps_and_finds_msix() {
        let c = cfg_with_caps();
        assert_eq!(
            pci_caps(&c),
            vec![(PCI_CAP_ID_MSI, 0x40), (PCI_CAP_ID_MSIX, 0x50)]
        );
        let m = msix_info(&c).unwrap();
        assert_eq!(m.cap, 0x50);
        assert_eq!(m.table_size, 64);
        assert_eq!(m.table_bytes(), 1024);
        assert_eq!(m.table_bir, 3);
        assert_eq!(m.table_offset, 0x2000);
        assert_eq!(m.pba_bir, 3);
        assert_eq!(m.pba_offset, 0x3000);
    }

    #[test]
    fn no_cap_list() {
        let mut c = cfg_with_caps();
        c[0x06] = 0;
        assert!(pci_caps(&c).is_empty());
        assert_eq!(msix_info(&c), None);
    }

    #[test]
    fn cap_lengths_and_gaps() {
        let mut c = cfg_with_caps();
        // MSI at 0x40: 64-bit, no masking -> 14 bytes (0x40..0x4e).
        c[0x42] = 0x80;
        assert_eq!(find_cap(&c, PCI_CAP_ID_MSI), Some(0x40));
        assert_eq!(find_cap(&c, PCI_CAP_ID_EXP), None);
        assert_eq!(std_cap_len(&c, PCI_CAP_ID_MSI, 0x40), 14);
        c[0x43] = 0x01;
        assert_eq!(std_cap_len(&c, PCI_CAP_ID_MSI, 0x40), 24);
        c[0x43] = 0;
        assert_eq!(std_cap_len(&c, PCI_CAP_ID_MSIX, 0x50), 12);
        assert_eq!(std_cap_len(&c, 0x0d, 0x50), 0);
        let gaps = unassigned_dwords(&c);
        // 0x4c holds the end of MSI, 0x50..0x5c MSI-X; 0x5c is the first free dword.
        assert_eq!(gaps.first(), Some(&0x5c));
        assert!(!gaps.contains(&0x4c));
        assert_eq!(gaps.last(), Some(&0xfc));
        assert_eq!(gaps.len(), (0x100 - 0x5c) / 4);
        // PCIe v2 endpoint: 0x3c bytes.
        let mut e = vec![0u8; 256];
        e[0x06] = 0x10;
        e[0x34] = 0x80;
        e[0x80] = PCI_CAP_ID_EXP;
        e[0x82] = 0x02;
        assert_eq!(std_cap_len(&e, PCI_CAP_ID_EXP, 0x80), 0x3c);
        e[0x82] = 0x92; // RC integrated endpoint
        assert_eq!(std_cap_len(&e, PCI_CAP_ID_EXP, 0x80), 0x2c);
        e[0x82] = 0x01;
        assert_eq!(std_cap_len(&e, PCI_CAP_ID_EXP, 0x80), 0x14);
    }

    #[test]
    fn extended_caps() {
        let mut c = vec![0u8; 4096];
        assert!(pci_ext_caps(&c[..256]).is_empty());
        assert!(pci_ext_caps(&c).is_empty());
        // AER v2 at 0x100 -> SR-IOV v1 at 0x160 -> end.
        c[0x100..0x104].copy_from_slice(&(0x0001u32 | 2 << 16 | 0x160 << 20).to_le_bytes());
        c[0x160..0x164].copy_from_slice(&(0x0010u32 | 1 << 16).to_le_bytes());
        assert_eq!(
            pci_ext_caps(&c),
            vec![(0x0001, 2, 0x100), (0x0010, 1, 0x160)]
        );
        // A loop terminates.
        c[0x160..0x164].copy_from_slice(&(0x0010u32 | 1 << 16 | 0x100 << 20).to_le_bytes());
        assert_eq!(pci_ext_caps(&c).len(), (4096 - 256) / 4);
    }

    #[test]
    fn looping_cap_list_terminates() {
        let mut c = cfg_with_caps();
        c[0x51] = 0x40; // MSI-X points back at MSI
        assert_eq!(pci_caps(&c).len(), 48);
    }
}
