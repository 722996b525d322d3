// SPDX-License-Identifier: GPL-2.0

//! Lock backends for the kernel crate's generic [`Lock`]: a spinlock that saves and restores
//! the interrupt state, as C's `spin_lock_irqsave`, and a mutex like the kernel crate's whose
//! lockdep assertion is compiled out without lockdep.
//!
//! The kernel crate's `SpinLockIrq` disables interrupts through its interrupt-disable
//! counting (`local_interrupt_disable`), a helper call and a per-CPU count on each side of the
//! lock: on the INTx paths, which take the lock in the hard interrupt handler and in the
//! unmask ioctl, that was about 100 instructions and 9 unchained jumps per interrupt round trip
//! under TCG, where upstream's `spin_lock_irqsave` costs one call each way. This backend plugs
//! the kernel's own `_raw_spin_lock_irqsave`/`_raw_spin_unlock_irqrestore` into the kernel
//! crate's generic [`Lock`], so guards, lockdep classes and `assert_is_held` work as for any
//! other lock.
//!
//! The kernel crate's guards call the backend's `assert_is_held` on every acquisition; its
//! mutex and spinlock backends make that a call into an empty C helper when lockdep is off,
//! one more call and return per acquisition on the per-access paths (config space under the
//! `open` mutex, SET_IRQS under `igate`). Both backends here assert only under lockdep.

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

    /// A lockdep assertion: compiled out without lockdep, where the C helper is an empty
    /// call that the kernel crate's guard would otherwise make on every acquisition.
    #[inline]
    unsafe fn assert_is_held(_ptr: *mut Self::State) {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: `_ptr` is an initialised spinlock (caller contract).
        unsafe {
            bindings::spin_assert_is_held(_ptr)
        }
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

/// The backend of [`Mutex`]: the kernel's `struct mutex`.
pub(crate) struct MutexBackend;

/// A sleeping mutual-exclusion lock (the kernel crate's `Mutex` with its lockdep assertion
/// compiled out without lockdep).
pub(crate) type Mutex<T> = Lock<T, MutexBackend>;

// SAFETY: `mutex_lock` gives mutual exclusion and `mutex_unlock` is called only by the owner;
// `relock` is the default (calls `lock`).
unsafe impl Backend for MutexBackend {
    type State = bindings::mutex;
    type GuardState = ();

    #[inline]
    unsafe fn init(ptr: *mut Self::State, name: *const c_char, key: *mut bindings::lock_class_key) {
        // SAFETY: the caller guarantees `ptr` is writable and `name`/`key` live forever.
        unsafe { bindings::__mutex_init(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: `ptr` is an initialised mutex (caller contract).
        unsafe { bindings::mutex_lock(ptr) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        // SAFETY: `ptr` is an initialised mutex (caller contract).
        (unsafe { bindings::mutex_trylock(ptr) } != 0).then_some(())
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, _guard_state: &Self::GuardState) {
        // SAFETY: the caller owns the mutex.
        unsafe { bindings::mutex_unlock(ptr) }
    }

    /// A lockdep assertion, compiled out without lockdep (see the module documentation).
    #[inline]
    unsafe fn assert_is_held(_ptr: *mut Self::State) {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: `_ptr` is an initialised mutex (caller contract).
        unsafe {
            bindings::mutex_assert_is_held(_ptr)
        }
    }
}

/// A new [`Mutex`] holding `t`, of lockdep class `key` named `name`.
pub(crate) fn new_mutex<T>(
    t: impl PinInit<T>,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
) -> impl PinInit<Mutex<T>> {
    Lock::new(t, name, key)
}
