// SPDX-License-Identifier: GPL-2.0

//! Copies of VFIO uapi structs to and from user memory.
//!
//! VFIO ioctls copy a prefix of a struct (`minsz`, up to a field) and answer `argsz`, so these
//! helpers work on byte prefixes of plain-old-data structs.

use core::{
    ffi::c_void,
    mem::MaybeUninit, //
};
use kernel::{
    bindings,
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
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

/// Copies `len` bytes from user address `from` to `to`: one call of `_copy_from_user`, the
/// out-of-line copy that C's `copy_from_user` calls on x86 (no `INLINE_COPY_USER`) after its
/// compile-time object-size check, which a Rust slice or typed value makes moot. Calling it
/// directly spares the `rust_helper_copy_from_user` hop: under TCG every extra call and return
/// is a jump-cache lookup, and the per-access paths feel it (the kernel crate's
/// `UserSliceReader` adds a further out-of-line wrapper). `EFAULT` if any byte faults.
///
/// # Safety
///
/// `to` must be valid for writes of `len` bytes.
#[inline(always)]
unsafe fn copy_in(to: *mut u8, from: usize, len: usize) -> Result {
    // SAFETY: the caller guarantees `to` is writable for `len` bytes; `_copy_from_user` checks
    // the user range (`access_ok`) and handles faults, zeroing what it could not copy.
    let left = unsafe { bindings::_copy_from_user(to.cast(), from as *const c_void, len) };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// Copies `len` bytes from `from` to user address `to` (one call of `_copy_to_user`, as
/// [`copy_in`]); `EFAULT` if any byte faults (some bytes may have been written, as with any
/// user copy).
///
/// # Safety
///
/// `from` must be valid for reads of `len` bytes.
#[inline(always)]
unsafe fn copy_out(to: usize, from: *const u8, len: usize) -> Result {
    // SAFETY: the caller guarantees `from` is readable for `len` bytes; `_copy_to_user` checks
    // the user range (`access_ok`) and handles faults.
    let left = unsafe { bindings::_copy_to_user(to as *mut c_void, from.cast(), len) };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

/// Reads a `T` from user address `arg` with one fixed-size `copy_from_user` (upstream's
/// `copy_from_user(&val, buf, sizeof(val))`).
#[inline(always)]
pub(crate) fn read_val<T: FromBytes>(arg: usize) -> Result<T> {
    let mut out = MaybeUninit::<T>::uninit();
    // SAFETY: `out` is writable for `size_of::<T>()` bytes.
    unsafe { copy_in(out.as_mut_ptr().cast(), arg, size_of::<T>())? };
    // SAFETY: every byte of `out` was written by the successful copy, and `T: FromBytes`
    // accepts any byte pattern.
    Ok(unsafe { out.assume_init() })
}

/// Writes `val` to user address `arg` with one fixed-size `copy_to_user`.
#[inline(always)]
pub(crate) fn write_val<T: AsBytes>(arg: usize, val: &T) -> Result {
    write_bytes(arg, val.as_bytes())
}

/// Reads the first `len` bytes of a `T` from user address `arg` into a zeroed `T`.
pub(crate) fn read_prefix<T: FromBytes + AsBytes + Default>(arg: usize, len: usize) -> Result<T> {
    let mut val = T::default();
    let bytes = val.as_bytes_mut();
    let len = len.min(bytes.len());
    read_bytes(arg, &mut bytes[..len])?;
    Ok(val)
}

/// Writes the first `len` bytes of `val` to user address `arg`.
pub(crate) fn write_prefix<T: AsBytes>(arg: usize, val: &T, len: usize) -> Result {
    let bytes = val.as_bytes();
    let len = len.min(bytes.len());
    write_bytes(arg, &bytes[..len])
}

/// Writes `data` to user address `arg`.
#[inline]
pub(crate) fn write_bytes(arg: usize, data: &[u8]) -> Result {
    // SAFETY: `data` is readable for its length.
    unsafe { copy_out(arg, data.as_ptr(), data.len()) }
}

/// Reads `out.len()` bytes from user address `arg`.
#[inline]
pub(crate) fn read_bytes(arg: usize, out: &mut [u8]) -> Result {
    // SAFETY: `out` is writable for its length.
    unsafe { copy_in(out.as_mut_ptr(), arg, out.len()) }
}
