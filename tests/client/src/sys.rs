//! Thin wrappers over the system calls the tests make. Every wrapper returns
//! the driver's answer as a value (`Ok(ret)` or `Err(Errno)`) instead of
//! treating errors as exceptional, because most tests are about exactly those
//! answers.

use std::fmt;
use std::os::fd::RawFd;

/// An errno value returned by a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Result of a system call: the non-negative return value or the errno.
pub type SysResult<T> = Result<T, Errno>;

impl Errno {
    /// The calling thread's current errno.
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// Symbolic name; transcripts use names so that diffs are readable.
    pub fn name(self) -> String {
        let n = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::ENOSPC => "ENOSPC",
            libc::ESPIPE => "ESPIPE",
            libc::ERANGE => "ERANGE",
            libc::ENOTTY => "ENOTTY",
            libc::ENOSYS => "ENOSYS",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ETIMEDOUT => "ETIMEDOUT",
            _ => return format!("E#{}", self.0),
        };
        n.to_string()
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Render a system call result canonically: the number, or the errno name.
pub fn show<T: fmt::Display>(r: &SysResult<T>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => e.name(),
    }
}

fn check(ret: libc::c_int) -> SysResult<i32> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, req, ptr)`.
///
/// # Safety
/// `arg` must point to memory the ioctl may read and write for the size the
/// ioctl uses (for VFIO: at least `argsz` bytes).
pub unsafe fn ioctl_ptr(fd: RawFd, req: u64, arg: *mut u8) -> SysResult<i32> {
    check(libc::ioctl(fd, req as libc::c_ulong, arg))
}

/// `ioctl(fd, req, value)` for ioctls that take an integer argument.
pub fn ioctl_val(fd: RawFd, req: u64, arg: u64) -> SysResult<i32> {
    // SAFETY: the argument is passed by value; the kernel does not
    // dereference it for the ioctls this is used with.
    check(unsafe { libc::ioctl(fd, req as libc::c_ulong, arg as libc::c_ulong) })
}

/// `pread(fd, buf, off)`.
pub fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> SysResult<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let r = unsafe { libc::pread64(fd, buf.as_mut_ptr().cast(), buf.len(), off as i64) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// `pwrite(fd, buf, off)`.
pub fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> SysResult<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    let r = unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), buf.len(), off as i64) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// `open(path, O_RDWR | O_CLOEXEC)`.
pub fn open_rdwr(path: &str) -> SysResult<RawFd> {
    let c = std::ffi::CString::new(path).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: c is a valid NUL-terminated string.
    check(unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
}

/// `close(fd)`, ignoring errors (used from Drop).
pub fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: the caller owns fd and does not use it afterwards.
        unsafe { libc::close(fd) };
    }
}

/// True if fds `a` and `b` refer to the same open file or device (e.g.
/// stdout and stderr both redirected to one pipe).
pub fn same_file(a: RawFd, b: RawFd) -> bool {
    // SAFETY: fstat only writes into the provided structs.
    unsafe {
        let mut sa: libc::stat = std::mem::zeroed();
        let mut sb: libc::stat = std::mem::zeroed();
        libc::fstat(a, &mut sa) == 0
            && libc::fstat(b, &mut sb) == 0
            && sa.st_dev == sb.st_dev
            && sa.st_ino == sb.st_ino
    }
}

/// The system page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// `mmap(NULL, len, prot, flags, fd, off)` returning the address or errno.
/// Used for the error cases, where a success is itself a finding; a successful
/// mapping is unmapped again before returning so nothing leaks.
pub fn mmap_probe(len: u64, prot: i32, flags: i32, fd: RawFd, off: u64) -> SysResult<i32> {
    // SAFETY: a NULL hint lets the kernel choose the address, so no existing
    // mapping is replaced.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            prot,
            flags,
            fd,
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: p/len is the mapping just created.
    unsafe { libc::munmap(p, len as usize) };
    Ok(0)
}

/// A shared mapping of part of the device fd, unmapped on drop.
pub struct Mapping {
    addr: usize,
    len: usize,
}

impl Mapping {
    /// Map `len` bytes of `fd` at file offset `off`, MAP_SHARED, read/write,
    /// at an address aligned to `align` (a power of two). The alignment lets
    /// the driver use PMD/PUD sized entries, which is what the fault counters
    /// and upstream's huge_fault path are about. The address is found by
    /// reserving `len + align` bytes PROT_NONE and mapping over the aligned
    /// part with MAP_FIXED, then releasing the rest of the reservation.
    pub fn new_aligned(fd: RawFd, off: u64, len: u64, align: u64) -> SysResult<Mapping> {
        Self::new_skewed(fd, off, len, align, 0)
    }

    /// As [`Mapping::new_aligned`], at `skew` bytes (a multiple of the page size) past an
    /// `align`-aligned address: a skew that is not a multiple of 2 MiB rules out huge
    /// entries, so every page is a 4 KiB fault.
    pub fn new_skewed(fd: RawFd, off: u64, len: u64, align: u64, skew: u64) -> SysResult<Mapping> {
        let len = len as usize;
        let align = align.max(page_size()) as usize;
        let skew = skew as usize;
        let resv_len = len + align + skew;
        // SAFETY: anonymous PROT_NONE reservation at a kernel-chosen address.
        let resv = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                resv_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if resv == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let resv = resv as usize;
        let aligned = ((resv + align - 1) & !(align - 1)) + skew;
        // SAFETY: [aligned, aligned + len) lies inside our own reservation, so
        // MAP_FIXED replaces only memory this function owns.
        let p = unsafe {
            libc::mmap(
                aligned as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd,
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            let e = Errno::last();
            // SAFETY: releases the whole reservation (whatever is left of it).
            unsafe { libc::munmap(resv as *mut libc::c_void, resv_len) };
            return Err(e);
        }
        // SAFETY: both ranges are the unused parts of our reservation.
        unsafe {
            if aligned > resv {
                libc::munmap(resv as *mut libc::c_void, aligned - resv);
            }
            let end = aligned + len;
            if resv + resv_len > end {
                libc::munmap(end as *mut libc::c_void, resv + resv_len - end);
            }
        }
        Ok(Mapping { addr: aligned, len })
    }

    /// Start address.
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// Length in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// Try to grow the mapping in place and then with MREMAP_MAYMOVE; both
    /// must fail on a VM_DONTEXPAND mapping. Returns the two answers. If the
    /// kernel unexpectedly grows or moves the mapping, the mapping is updated
    /// so Drop still unmaps the right range. A success is reported as 0.
    pub fn try_grow(&mut self, extra: usize) -> (SysResult<i32>, SysResult<i32>) {
        let mut answers = [Ok(0), Ok(0)];
        for (i, flags) in [0, libc::MREMAP_MAYMOVE].into_iter().enumerate() {
            // SAFETY: addr/len is our mapping; on success the kernel tells us
            // the new location, which we adopt.
            let p = unsafe {
                libc::mremap(
                    self.addr as *mut libc::c_void,
                    self.len,
                    self.len + extra,
                    flags,
                )
            };
            if p == libc::MAP_FAILED {
                answers[i] = Err(Errno::last());
            } else {
                self.addr = p as usize;
                self.len += extra;
                // Shrink back so the next attempt starts from the same size.
                // SAFETY: as above.
                let q = unsafe {
                    libc::mremap(
                        self.addr as *mut libc::c_void,
                        self.len,
                        self.len - extra,
                        0,
                    )
                };
                if q != libc::MAP_FAILED {
                    self.len -= extra;
                }
            }
        }
        let [a, b] = answers;
        (a, b)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: addr/len is a mapping this object created and owns.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Wait for `pid` for at most `timeout`, killing it (SIGKILL) when the time
/// is up so a stuck child cannot hang the test run. Returns the raw wait
/// status.
pub fn wait_child(pid: libc::pid_t, timeout: std::time::Duration) -> i32 {
    let deadline = std::time::Instant::now() + timeout;
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out pointer; pid is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid || r < 0 {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: pid is our child, still running.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Describe a wait status canonically ("exit N", "signal SIGBUS", ...).
pub fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", signal_name(libc::WTERMSIG(status)))
    } else {
        format!("status {status:#x}")
    }
}

/// Symbolic name of the signals the tests care about.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGABRT => "SIGABRT".into(),
        _ => format!("SIG#{sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(Errno(libc::EINVAL).name(), "EINVAL");
        assert_eq!(Errno(libc::ENOTTY).to_string(), "ENOTTY");
        assert_eq!(Errno(4095).name(), "E#4095");
        assert_eq!(show::<usize>(&Ok(4)), "4");
        assert_eq!(show::<usize>(&Err(Errno(libc::EIO))), "EIO");
    }

    #[test]
    fn aligned_anonymous_mapping() {
        // Exercise the reservation logic on an anonymous shared mapping: the
        // device fd is not available on the host, but the address arithmetic
        // is the same.
        let fd = unsafe { libc::memfd_create(c"vfio-test".as_ptr(), 0) };
        assert!(fd >= 0);
        assert_eq!(unsafe { libc::ftruncate(fd, 1 << 21) }, 0);
        let m = Mapping::new_aligned(fd, 0, 1 << 21, 1 << 21).expect("map");
        assert_eq!(m.addr() % (1 << 21), 0);
        assert_eq!(m.size(), 1 << 21);
        drop(m);
        close(fd);
    }

    #[test]
    fn same_file_detection() {
        let (mut p, mut q) = ([0i32; 2], [0i32; 2]);
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        assert_eq!(unsafe { libc::pipe(q.as_mut_ptr()) }, 0);
        let d = unsafe { libc::dup(p[1]) };
        // `2>&1` makes fd 2 a dup of fd 1: same file.
        assert!(same_file(p[1], d));
        assert!(!same_file(q[1], d));
        assert!(!same_file(-1, d));
        for fd in [p[0], p[1], q[0], q[1], d] {
            close(fd);
        }
    }

    #[test]
    fn status_descriptions() {
        assert_eq!(describe_status(0), "exit 0");
        assert_eq!(describe_status(libc::SIGBUS), "signal SIGBUS");
    }
}
