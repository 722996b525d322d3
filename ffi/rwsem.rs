// SPDX-License-Identifier: GPL-2.0

//! A typed reader-writer semaphore over the kernel's `struct rw_semaphore`.
//!
//! The 7.3 kernel crate has no rwsem type. This one owns its data like [`kernel::sync::Mutex`]
//! and hands it out through guards, so the data can only be reached with the lock held.

use core::{
    cell::UnsafeCell,
    ops::{
        Deref,
        DerefMut, //
    },
};
use kernel::{
    bindings,
    prelude::*,
    types::Opaque, //
};

use super::sys;

/// A reader-writer semaphore protecting a `T`.
///
/// # Invariants
///
/// `sem` is initialised by `init_rwsem` before the value is shared, and `data` is only reached
/// through a [`ReadGuard`] (semaphore held for read) or a [`WriteGuard`] (held for write).
#[pin_data]
pub(crate) struct RwSem<T> {
    #[pin]
    sem: Opaque<bindings::rw_semaphore>,
    data: UnsafeCell<T>,
}

// SAFETY: the semaphore serialises access to `data`; moving it to another thread is fine when
// `T` may move.
unsafe impl<T: Send> Send for RwSem<T> {}
// SAFETY: readers share `&T` across threads (needs `Sync`), writers get `&mut T` (needs `Send`).
unsafe impl<T: Send + Sync> Sync for RwSem<T> {}

impl<T> RwSem<T> {
    /// Creates an initialiser for a semaphore holding `data`.
    pub(crate) fn new(data: T) -> impl PinInit<Self> {
        // INVARIANT: `init_rwsem` runs on the pinned slot before anyone can reach it.
        pin_init!(Self {
            // SAFETY: `slot` is valid, pinned memory for a `struct rw_semaphore`.
            sem <- Opaque::ffi_init(|slot| unsafe { sys::vpr_init_rwsem(slot) }),
            data: UnsafeCell::new(data),
        })
    }

    /// Takes the semaphore for read, sleeping until it is available.
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        // SAFETY: `sem` is initialised (type invariant).
        unsafe { bindings::down_read(self.sem.get()) };
        ReadGuard { lock: self }
    }

    /// Takes the semaphore for write, sleeping until it is available.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        // SAFETY: `sem` is initialised (type invariant).
        unsafe { bindings::down_write(self.sem.get()) };
        WriteGuard { lock: self }
    }

    /// Takes the semaphore for read if no writer holds or waits for it, without sleeping
    /// (callable in atomic context).
    pub(crate) fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        // SAFETY: `sem` is initialised (type invariant).
        let locked = unsafe { bindings::down_read_trylock(self.sem.get()) } != 0;
        // Lazily: a guard built for a failed trylock would release a lock it never held.
        locked.then(|| ReadGuard { lock: self })
    }

    /// Takes the semaphore for write if nobody holds it, without sleeping.
    pub(crate) fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        // SAFETY: `sem` is initialised (type invariant).
        let locked = unsafe { bindings::down_write_trylock(self.sem.get()) } != 0;
        // Lazily: a guard built for a failed trylock would release a lock it never held.
        locked.then(|| WriteGuard { lock: self })
    }
}

/// Shared access to the data of a [`RwSem`]; releases the semaphore when dropped.
pub(crate) struct ReadGuard<'a, T> {
    lock: &'a RwSem<T>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the semaphore is held for read, so no writer has a `&mut T`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the semaphore for read.
        unsafe { bindings::up_read(self.lock.sem.get()) };
    }
}

/// Exclusive access to the data of a [`RwSem`]; releases the semaphore when dropped.
pub(crate) struct WriteGuard<'a, T> {
    lock: &'a RwSem<T>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the semaphore is held for write: this guard is the only accessor.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the semaphore is held for write: this guard is the only accessor.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the semaphore for write.
        unsafe { bindings::up_write(self.lock.sem.get()) };
    }
}
