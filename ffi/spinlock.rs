// SPDX-License-Identifier: GPL-2.0

//! A spinlock that saves and restores the interrupt state, as C's `spin_lock_irqsave`.
//!
//! The kernel crate's `SpinLockIrq` disables interrupts through its interrupt-disable
//! counting (`local_interrupt_disable`), a helper call and a per-CPU count on each side of the
//! lock: on the INTx paths, which take the lock in the hard interrupt handler and in the
//! unmask ioctl, that was about 100 instructions and 9 unchained jumps per interrupt round trip
//! under TCG, where upstream's `spin_lock_irqsave` costs one call each way. This backend plugs
//! the kernel's own `_raw_spin_lock_irqsave`/`_raw_spin_unlock_irqrestore` into the kernel
//! crate's generic [`Lock`], so guards, lockdep classes and `assert_is_held` work as for any
//! other lock.

use core::pin::Pin;
use kernel::{
    bindings,
    ffi::{
        c_char,
        c_ulong, //
    },
    prelude::*,
    sync::{
        lock::{
            Backend,
            Lock, //
        },
        LockClassKey,
    },
};

use super::sys;

/// The backend of [`SpinLockIrqSave`]; its guard state is the saved interrupt flags.
pub(crate) struct IrqSaveBackend;

/// A spinlock taken with interrupts disabled and their previous state restored on unlock:
/// usable from process and hard interrupt context alike.
pub(crate) type SpinLockIrqSave<T> = Lock<T, IrqSaveBackend>;

// On PREEMPT_RT a `spinlock_t` is an rtmutex and has no raw spinlock inside.
#[cfg(CONFIG_PREEMPT_RT)]
compile_error!("SpinLockIrqSave assumes a non-RT spinlock_t");

/// The raw spinlock of `ptr`: on non-RT kernels `spinlock_t` is a union whose `rlock` member,
/// the `raw_spinlock_t` that `spin_lock_irqsave` takes, sits at offset 0 (bindgen sees the
/// union as an opaque blob, hence the cast).
#[inline(always)]
fn raw(ptr: *mut bindings::spinlock_t) -> *mut bindings::raw_spinlock_t {
    ptr.cast()
}

// SAFETY: `_raw_spin_lock_irqsave` gives mutual exclusion with interrupts off on this CPU, and
// `unlock` restores the flags its own `lock` saved; `relock` is the default (calls `lock`).
unsafe impl Backend for IrqSaveBackend {
    type State = bindings::spinlock_t;
    type GuardState = c_ulong;

    #[inline]
    unsafe fn init(ptr: *mut Self::State, name: *const c_char, key: *mut bindings::lock_class_key) {
        // SAFETY: the caller guarantees `ptr` is writable and `name`/`key` live forever.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: `ptr` is an initialised spinlock (caller contract).
        unsafe { bindings::_raw_spin_lock_irqsave(raw(ptr)) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags: c_ulong = 0;
        // SAFETY: `ptr` is an initialised spinlock (caller contract); `flags` is writable.
        let taken = unsafe { sys::vpr_spin_trylock_irqsave(ptr, &mut flags) };
        (taken != 0).then_some(flags)
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: the caller owns the lock, taken by `lock` or `try_lock`, which saved `flags`.
        unsafe { bindings::_raw_spin_unlock_irqrestore(raw(ptr), *flags) }
    }

    #[inline]
    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: `ptr` is an initialised spinlock (caller contract).
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}

/// A new [`SpinLockIrqSave`] holding `t`, of lockdep class `key` named `name`.
pub(crate) fn new_spinlock_irqsave<T>(
    t: impl PinInit<T>,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) -> impl PinInit<SpinLockIrqSave<T>> {
    Lock::new(t, name, key)
}
