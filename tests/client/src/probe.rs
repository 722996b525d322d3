//! Fault-tolerant memory accesses through a device mapping.
//!
//! When memory decode is disabled the driver zaps the BAR mappings and its
//! fault handler answers VM_FAULT_SIGBUS, so an access through the mapping
//! delivers SIGBUS to the accessing thread. The tests need to observe that
//! and carry on, in the main thread and in several reader threads at once.
//!
//! Design choice: instead of sigsetjmp/siglongjmp (which Rust cannot use
//! soundly: the jump skips destructors and the compiler does not know the
//! function returns twice), each access is a tiny hand-written assembly
//! routine whose faulting instruction has a known address, like the kernel's
//! exception tables. The SIGBUS/SIGSEGV handler checks whether the faulting
//! instruction pointer is one of those instructions; if so it rewrites the
//! saved context to resume at a common fixup that returns the signal number to
//! the caller, otherwise it restores the default action and returns so the
//! access faults again and kills the process as it normally would. The handler
//! touches nothing but the signal context and an atomic counter, so it is
//! async-signal-safe and works per thread without any per-thread state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the fault probes are written for x86_64");

core::arch::global_asm!(
    ".pushsection .text.vfio_probe,\"ax\",@progbits",
    ".p2align 4",
    // Reads: rdi = address, rsi = out pointer; eax = 0 on success. The
    // instruction labelled *_insn is the only one that can fault on the
    // device mapping.
    ".globl vfio_probe_read8",
    ".hidden vfio_probe_read8",
    "vfio_probe_read8:",
    "xor eax, eax",
    ".globl vfio_probe_read8_insn",
    ".hidden vfio_probe_read8_insn",
    "vfio_probe_read8_insn:",
    "movzx edx, byte ptr [rdi]",
    "mov byte ptr [rsi], dl",
    "ret",
    ".globl vfio_probe_read16",
    ".hidden vfio_probe_read16",
    "vfio_probe_read16:",
    "xor eax, eax",
    ".globl vfio_probe_read16_insn",
    ".hidden vfio_probe_read16_insn",
    "vfio_probe_read16_insn:",
    "movzx edx, word ptr [rdi]",
    "mov word ptr [rsi], dx",
    "ret",
    ".globl vfio_probe_read32",
    ".hidden vfio_probe_read32",
    "vfio_probe_read32:",
    "xor eax, eax",
    ".globl vfio_probe_read32_insn",
    ".hidden vfio_probe_read32_insn",
    "vfio_probe_read32_insn:",
    "mov edx, dword ptr [rdi]",
    "mov dword ptr [rsi], edx",
    "ret",
    ".globl vfio_probe_read64",
    ".hidden vfio_probe_read64",
    "vfio_probe_read64:",
    "xor eax, eax",
    ".globl vfio_probe_read64_insn",
    ".hidden vfio_probe_read64_insn",
    "vfio_probe_read64_insn:",
    "mov rdx, qword ptr [rdi]",
    "mov qword ptr [rsi], rdx",
    "ret",
    // Writes: rdi = address, rsi = value; eax = 0 on success.
    ".globl vfio_probe_write32",
    ".hidden vfio_probe_write32",
    "vfio_probe_write32:",
    "xor eax, eax",
    ".globl vfio_probe_write32_insn",
    ".hidden vfio_probe_write32_insn",
    "vfio_probe_write32_insn:",
    "mov dword ptr [rdi], esi",
    "ret",
    ".globl vfio_probe_write64",
    ".hidden vfio_probe_write64",
    "vfio_probe_write64:",
    "xor eax, eax",
    ".globl vfio_probe_write64_insn",
    ".hidden vfio_probe_write64_insn",
    "vfio_probe_write64_insn:",
    "mov qword ptr [rdi], rsi",
    "ret",
    // The handler sets rax to the signal number and resumes here; the stack
    // is exactly as it was on entry to the probe, so `ret` returns to the
    // caller.
    ".globl vfio_probe_fixup",
    ".hidden vfio_probe_fixup",
    "vfio_probe_fixup:",
    "ret",
    ".popsection",
);

extern "C" {
    fn vfio_probe_read8(addr: usize, out: *mut u8) -> u32;
    fn vfio_probe_read16(addr: usize, out: *mut u16) -> u32;
    fn vfio_probe_read32(addr: usize, out: *mut u32) -> u32;
    fn vfio_probe_read64(addr: usize, out: *mut u64) -> u32;
    fn vfio_probe_write32(addr: usize, v: u32) -> u32;
    fn vfio_probe_write64(addr: usize, v: u64) -> u32;
    // Code labels, declared as statics only to take their addresses.
    static vfio_probe_read8_insn: u8;
    static vfio_probe_read16_insn: u8;
    static vfio_probe_read32_insn: u8;
    static vfio_probe_read64_insn: u8;
    static vfio_probe_write32_insn: u8;
    static vfio_probe_write64_insn: u8;
    static vfio_probe_fixup: u8;
}

/// Number of faults the handler has fixed up (all threads).
static FIXED_UP: AtomicU64 = AtomicU64::new(0);

fn insn_addrs() -> [usize; 6] {
    [
        std::ptr::addr_of!(vfio_probe_read8_insn) as usize,
        std::ptr::addr_of!(vfio_probe_read16_insn) as usize,
        std::ptr::addr_of!(vfio_probe_read32_insn) as usize,
        std::ptr::addr_of!(vfio_probe_read64_insn) as usize,
        std::ptr::addr_of!(vfio_probe_write32_insn) as usize,
        std::ptr::addr_of!(vfio_probe_write64_insn) as usize,
    ]
}

extern "C" fn on_fault(sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the third argument is the ucontext of the
    // interrupted thread, which the handler may modify; sigreturn then
    // resumes with the modified registers.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        let gregs = &mut (*uc).uc_mcontext.gregs;
        let rip = gregs[libc::REG_RIP as usize] as usize;
        if insn_addrs().contains(&rip) {
            gregs[libc::REG_RIP as usize] = std::ptr::addr_of!(vfio_probe_fixup) as i64;
            gregs[libc::REG_RAX as usize] = sig as i64;
            FIXED_UP.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Not one of ours: fall back to the default action; returning
        // re-executes the access, which then terminates the process with the
        // original signal.
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Install the SIGBUS/SIGSEGV handler (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGBUS, libc::SIGSEGV] {
            // SAFETY: plain sigaction setup with a handler that is
            // async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_fault as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut sa.sa_mask);
                let r = libc::sigaction(sig, &sa, std::ptr::null_mut());
                assert_eq!(r, 0, "sigaction failed");
            }
        }
    });
}

/// Faults fixed up so far.
pub fn fixed_up() -> u64 {
    FIXED_UP.load(Ordering::Relaxed)
}

/// The answer of one probed access: the value, or the signal that hit it.
pub type Access<T> = Result<T, i32>;

fn wrap<T>(r: u32, v: T) -> Access<T> {
    if r == 0 {
        Ok(v)
    } else {
        Err(r as i32)
    }
}

/// Read 1 byte at `addr`, surviving SIGBUS/SIGSEGV.
///
/// # Safety
/// [`install`] must have been called, and `addr` must be an address whose
/// read has no effect on memory the program relies on (a device mapping).
pub unsafe fn read8(addr: usize) -> Access<u8> {
    let mut v = 0u8;
    let r = vfio_probe_read8(addr, &mut v);
    wrap(r, v)
}

/// Read 2 bytes at `addr`.
///
/// # Safety
/// As [`read8`].
pub unsafe fn read16(addr: usize) -> Access<u16> {
    let mut v = 0u16;
    let r = vfio_probe_read16(addr, &mut v);
    wrap(r, v)
}

/// Read 4 bytes at `addr`.
///
/// # Safety
/// As [`read8`].
pub unsafe fn read32(addr: usize) -> Access<u32> {
    let mut v = 0u32;
    let r = vfio_probe_read32(addr, &mut v);
    wrap(r, v)
}

/// Read 8 bytes at `addr`.
///
/// # Safety
/// As [`read8`].
pub unsafe fn read64(addr: usize) -> Access<u64> {
    let mut v = 0u64;
    let r = vfio_probe_read64(addr, &mut v);
    wrap(r, v)
}

/// Write 4 bytes at `addr`.
///
/// # Safety
/// [`install`] must have been called and `addr` must lie in a writable
/// mapping that nothing else in the program uses as Rust memory.
pub unsafe fn write32(addr: usize, v: u32) -> Access<()> {
    let r = vfio_probe_write32(addr, v);
    wrap(r, ())
}

/// Write 8 bytes at `addr`.
///
/// # Safety
/// As [`write32`].
pub unsafe fn write64(addr: usize, v: u64) -> Access<()> {
    let r = vfio_probe_write64(addr, v);
    wrap(r, ())
}

/// Describe a write (or any value-less access) canonically: "ok" or the
/// signal name.
pub fn show_done(a: &Access<()>) -> String {
    match a {
        Ok(()) => "ok".into(),
        Err(sig) => crate::sys::signal_name(*sig),
    }
}

/// Describe a read canonically for transcripts.
pub fn show<T: std::fmt::LowerHex>(a: &Access<T>) -> String {
    match a {
        Ok(v) => format!("{v:#x}"),
        Err(sig) => crate::sys::signal_name(*sig),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared file mapping whose backing file is truncated delivers SIGBUS
    /// on access, just like a zapped BAR: a faithful host-side stand-in.
    #[test]
    fn survives_sigbus_and_reads_normally() {
        install();
        // SAFETY: test-local memfd and mapping.
        unsafe {
            let fd = libc::memfd_create(c"probe".as_ptr(), 0);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, 8192), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let a = p as usize;
            assert_eq!(write64(a + 8, 0x1122_3344_5566_7788), Ok(()));
            assert_eq!(write32(a + 16, 0xdead_beef), Ok(()));
            assert_eq!(read64(a + 8), Ok(0x1122_3344_5566_7788));
            assert_eq!(read32(a + 8), Ok(0x5566_7788));
            assert_eq!(read16(a + 8), Ok(0x7788));
            assert_eq!(read8(a + 9), Ok(0x77));
            assert_eq!(read32(a + 16), Ok(0xdead_beef));
            // Shrink the file: the second page is now beyond EOF.
            assert_eq!(libc::ftruncate(fd, 4096), 0);
            let before = fixed_up();
            assert_eq!(read32(a + 4096), Err(libc::SIGBUS));
            assert_eq!(read64(a + 4096), Err(libc::SIGBUS));
            assert_eq!(read8(a + 4097), Err(libc::SIGBUS));
            assert_eq!(read16(a + 4098), Err(libc::SIGBUS));
            assert_eq!(write32(a + 4096, 1), Err(libc::SIGBUS));
            assert_eq!(write64(a + 4096, 1), Err(libc::SIGBUS));
            assert!(fixed_up() >= before + 6);
            // The first page still works after the faults.
            assert_eq!(read64(a + 8), Ok(0x1122_3344_5566_7788));
            libc::munmap(p, 8192);
            libc::close(fd);
        }
    }

    #[test]
    fn survives_sigbus_in_many_threads() {
        install();
        // SAFETY: test-local memfd and mapping, truncated to empty so every
        // access faults.
        unsafe {
            let fd = libc::memfd_create(c"probe-mt".as_ptr(), 0);
            assert_eq!(libc::ftruncate(fd, 4096), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::ftruncate(fd, 0), 0);
            let a = p as usize;
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(move || {
                        for _ in 0..1000 {
                            assert_eq!(read64(a), Err(libc::SIGBUS));
                        }
                    });
                }
            });
            libc::munmap(p, 4096);
            libc::close(fd);
        }
    }

    #[test]
    fn show_access() {
        assert_eq!(show_done(&Ok(())), "ok");
        assert_eq!(show_done(&Err(libc::SIGBUS)), "SIGBUS");
        assert_eq!(show(&Ok::<u32, i32>(0x10)), "0x10");
        assert_eq!(show(&Err::<u32, i32>(libc::SIGBUS)), "SIGBUS");
    }
}
