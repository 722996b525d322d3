// SPDX-License-Identifier: GPL-2.0

//! Copies of VFIO uapi structs to and from user memory.
//!
//! VFIO ioctls copy a prefix of a struct (`minsz`, up to a field) and answer `argsz`, so these
//! helpers work on byte prefixes of plain-old-data structs.

use kernel::{
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

use super::sys;

// SAFETY: these bindgen structs are `#[repr(C)]` integers only, without padding, so every byte
// pattern is a valid value and every byte is initialised.
unsafe impl FromBytes for sys::vfio_device_info {}
// SAFETY: as above.
unsafe impl AsBytes for sys::vfio_device_info {}
// SAFETY: as above.
unsafe impl FromBytes for sys::vfio_region_info {}
// SAFETY: as above.
unsafe impl AsBytes for sys::vfio_region_info {}
// SAFETY: as above.
unsafe impl FromBytes for sys::vfio_irq_info {}
// SAFETY: as above.
unsafe impl AsBytes for sys::vfio_irq_info {}
// SAFETY: as above.
unsafe impl FromBytes for sys::vfio_irq_set {}
// SAFETY: as above.
unsafe impl AsBytes for sys::vfio_irq_set {}

/// Reads the first `len` bytes of a `T` from user address `arg` into a zeroed `T`.
pub(crate) fn read_prefix<T: FromBytes + AsBytes + Default>(arg: usize, len: usize) -> Result<T> {
    let mut val = T::default();
    let bytes = val.as_bytes_mut();
    let len = len.min(bytes.len());
    UserSlice::new(UserPtr::from_addr(arg), len)
        .reader()
        .read_slice(&mut bytes[..len])?;
    Ok(val)
}

/// Writes the first `len` bytes of `val` to user address `arg`.
pub(crate) fn write_prefix<T: AsBytes>(arg: usize, val: &T, len: usize) -> Result {
    let bytes = val.as_bytes();
    let len = len.min(bytes.len());
    UserSlice::new(UserPtr::from_addr(arg), len)
        .writer()
        .write_slice(&bytes[..len])
}

/// Writes `data` to user address `arg`.
pub(crate) fn write_bytes(arg: usize, data: &[u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), data.len())
        .writer()
        .write_slice(data)
}

/// Reads `out.len()` bytes from user address `arg`.
pub(crate) fn read_bytes(arg: usize, out: &mut [u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), out.len())
        .reader()
        .read_slice(out)
}
