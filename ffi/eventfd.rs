// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts: the user's file descriptors that interrupts are delivered through.

use core::ptr::NonNull;
use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*, //
};

/// A reference to an eventfd context (`struct eventfd_ctx`), taken from a user's fd.
///
/// # Invariants
///
/// `0` holds one reference on a live `eventfd_ctx`, taken by `eventfd_ctx_fdget` and dropped
/// exactly once, in `drop`.
pub(crate) struct EventFd(NonNull<bindings::eventfd_ctx>);

// SAFETY: an eventfd context is a reference-counted kernel object; it may be released from any
// thread.
unsafe impl Send for EventFd {}
// SAFETY: `eventfd_signal_mask` takes the context's own spinlock (with interrupts saved), so it
// may run concurrently from any context, hard-IRQ included.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// Takes a reference on the eventfd behind the caller's file descriptor `fd`: `EBADF` if
    /// `fd` is not open, `EINVAL` if it is not an eventfd (upstream's `eventfd_ctx_fdget`).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget` accepts any integer and returns a new reference or an
        // error pointer.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: a non-error result is a reference we now own.
        NonNull::new(ctx).map(Self).ok_or(EBADF)
    }

    /// Adds 1 to the eventfd counter and wakes its readers (`eventfd_signal`). Callable from
    /// any context, hard-IRQ included.
    pub(crate) fn signal(&self) {
        // SAFETY: the context is live while we hold our reference (type invariant).
        unsafe { bindings::eventfd_signal_mask(self.0.as_ptr(), 0) }
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant) and give it back once.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) }
    }
}
