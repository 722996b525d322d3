// SPDX-License-Identifier: GPL-2.0

//! vfio_pci_rs: a VFIO PCI driver in Rust.
//!
//! It binds PCI devices (through `driver_override`, or the dynamic ids its `ids=` parameter
//! adds, never by a static id table), registers them with the VFIO core
//! (group and iommufd cdev paths) and serves what user space asks of them: device, region and
//! IRQ info, BAR and config-space access, BAR mmap with lazily faulted PFNs that are zapped when
//! memory decode goes off, and reset.
//!
//! Layout: `device` holds the per-device state and VFIO operations; `rdwr`, `mmap` and `fault`
//! are the BAR access paths; `regions` the file-offset layout; `reset` the slot/bus (hot)
//! resets of a device set; `params` the module parameters; `ffi` is the only place with
//! `unsafe` (plus the C shim `ffi/shim.c` and `ffi/trace.c`).

use kernel::prelude::*;

mod config_hw;
mod config_space;
mod device;
mod fault;
mod feature;
mod ffi;
mod intx;
mod ioeventfd;
mod irqs;
mod mmap;
mod msi;
mod params;
mod rdwr;
mod regions;
mod reset;

/// The module, under the name of its build (Kbuild chooses): `vfio_pci_rs`, or `vfio_pci` for
/// the drop-in that replaces upstream vfio-pci (`cfg(vpr_dropin)`).
macro_rules! vfio_pci_module {
    ($name:literal, $description:literal) => {
        module! {
            type: VfioPciRs,
            name: $name,
            authors: ["vfio_pci_rs developers"],
            description: $description,
            license: "GPL",
        }
    };
}
#[cfg(not(vpr_dropin))]
vfio_pci_module!("vfio_pci_rs", "VFIO PCI driver in Rust");
#[cfg(vpr_dropin)]
vfio_pci_module!(
    "vfio_pci",
    "VFIO PCI - User Level meta-driver (vfio_pci_rs, in Rust, as vfio-pci)"
);

/// The PCI driver's name (`/sys/bus/pci/drivers/<name>`, `driver_override`): "vfio_pci_rs", or
/// "vfio-pci" in the drop-in build. Kbuild sets it, for the C shim's `pci_driver` too.
pub(crate) const DRIVER_NAME: &str = env!("VPR_DRIVER_NAME");

/// The module: owns the PCI driver registration.
struct VfioPciRs;

impl kernel::Module for VfioPciRs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        ffi::vfio::register_driver()?;
        // As upstream: register first, then add the `ids` (which probes matching devices).
        params::add_ids();
        params::report();
        Ok(Self)
    }
}

impl Drop for VfioPciRs {
    fn drop(&mut self) {
        ffi::vfio::unregister_driver();
    }
}
