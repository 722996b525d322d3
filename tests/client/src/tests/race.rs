//! `mmap-race`: readers hammer a BAR mapping while another thread toggles
//! COMMAND.MEM and (if supported) a third resets the device.
//!
//! The invariant: a read through the mapping either faults (SIGBUS, memory
//! disabled) or returns the data the test put there. A read returning
//! all-ones means the driver let an access through while decode was off,
//! i.e. it failed to zap or re-inserted a PTE without holding off the
//! disable. Readers survive SIGBUS through [`crate::probe`], which works per
//! thread. Loops are bounded: at most 10,000 toggles and 60 seconds.
//!
//! A second phase races resets by someone else (sysfs `reset`) against the
//! toggles, without readers (see [`external_resets`]).

use super::{region_name, Ctx};
use crate::caps::{PCI_COMMAND, PCI_COMMAND_MEMORY};
use crate::device::Kind;
use crate::pattern::{self, align_up, map_alignment, Rng};
use crate::probe;
use crate::sys::{self, show, Mapping};
use crate::uapi::*;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const READERS: usize = 4;
const TOGGLES: usize = 10_000;
/// Default time bound; `VPR_RACE_SECS` overrides it (the guest suite allows enough time for
/// all 10,000 toggles under TCG).
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(60);

fn time_limit() -> Duration {
    std::env::var("VPR_RACE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_TIME_LIMIT, Duration::from_secs)
}
/// Time allowed on top of the limit for threads to notice the stop flag
/// (a reset in progress can take a while).
const GRACE: Duration = Duration::from_secs(30);

/// Where the readers read and what they must see.
#[derive(Clone)]
struct Target {
    bar: u32,
    /// (offset, expected value) pairs.
    slots: Vec<(usize, u64)>,
    /// Access width: 8 for memory the test wrote, 4 for a 32-bit register.
    width: usize,
}

impl Target {
    fn all_ones(&self) -> u64 {
        if self.width == 8 {
            u64::MAX
        } else {
            u32::MAX as u64
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct ReaderStats {
    ok: u64,
    sigbus: u64,
    other_signal: u64,
    all_ones: u64,
    mismatch: u64,
    /// First bad read: (offset, value).
    first_bad: Option<(usize, u64)>,
}

/// Read `t`'s slot `off` at `addr + off` with the target's width.
///
/// # Safety
/// `addr + off` must lie in a live device mapping.
unsafe fn read_slot(addr: usize, off: usize, width: usize) -> probe::Access<u64> {
    if width == 8 {
        probe::read64(addr + off)
    } else {
        probe::read32(addr + off).map(|v| v as u64)
    }
}

/// Run the `mmap-race` subcommand.
pub fn run(c: &mut Ctx) {
    probe::install();
    let Some(info) = c.device_info() else { return };
    let bar = match c.kind {
        Kind::Ivshmem => 2,
        Kind::Edu => 0,
        _ => {
            c.skip(
                "race",
                "needs a BAR with known contents (ivshmem BAR2 or edu BAR0)",
            );
            return;
        }
    };
    let Some(r) = c.region(bar) else {
        c.fail(
            "race.region",
            format!("region info for {}", region_name(bar)),
            "error",
        );
        return;
    };
    if !r.info.has(VFIO_REGION_INFO_FLAG_MMAP) {
        c.skip("race", format!("{} is not mmap-able", region_name(bar)));
        return;
    }
    let page = sys::page_size();
    let len = align_up(r.info.size, page);
    let m = match Mapping::new_aligned(c.dev.fd, region_offset(bar), len, map_alignment(len)) {
        Ok(m) => m,
        Err(e) => {
            c.t.line(format!("mmap {} -> {e}", region_name(bar)));
            c.fail("race.map", "mapping created", e);
            return;
        }
    };
    c.t.line(format!(
        "mmap {} MAP_SHARED len={len:#x} -> ok",
        region_name(bar)
    ));

    let target = if bar == 2 {
        let mut rng = Rng::new(0x7261_6365);
        let pages = len / page;
        let mut slots: Vec<(usize, u64)> = (0..64)
            .map(|_| {
                let off = (rng.below(pages) * page + rng.below(page / 8) * 8) as usize;
                (off, pattern::word(off as u64, 4))
            })
            .collect();
        slots.sort();
        slots.dedup_by_key(|s| s.0);
        Target {
            bar,
            slots,
            width: 8,
        }
    } else {
        Target {
            bar,
            slots: vec![(0, 0x0100_00ed)],
            width: 4,
        }
    };

    // Seed (memory only) and verify the slots before racing.
    let mut bad = 0;
    for &(off, v) in &target.slots {
        if target.width == 8 {
            // SAFETY: off < len, inside the shared memory mapping.
            let _ = unsafe { probe::write64(m.addr() + off, v) };
        }
        // SAFETY: as above.
        if unsafe { read_slot(m.addr(), off, target.width) } != Ok(v) {
            bad += 1;
        }
    }
    c.t.line(format!(
        "setup: {} slots, {} wrong",
        target.slots.len(),
        bad
    ));
    if !c.check_eq("race.setup", 0, bad) {
        return;
    }

    let cmd = match c.dev.config_read16(PCI_COMMAND) {
        Ok(v) if v & PCI_COMMAND_MEMORY != 0 => v,
        other => {
            c.fail(
                "race.command",
                "COMMAND readable with MEM set",
                format!("{other:?}"),
            );
            return;
        }
    };
    let can_reset = info.flags & VFIO_DEVICE_FLAGS_RESET != 0;

    let stop = AtomicBool::new(false);
    let fd = c.dev.fd;
    let addr = m.addr();
    let start = Instant::now();
    let deadline = start + time_limit();
    let (stats, toggles, toggle_errors, resets) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|n| {
                let t = target.clone();
                let stop = &stop;
                s.spawn(move || reader(n, addr, &t, stop))
            })
            .collect();
        // The resetter runs function resets (VFIO_DEVICE_RESET) and, between
        // them, slot/bus resets (VFIO_DEVICE_PCI_HOT_RESET in the open mode's form).
        let group_fd = c.dev.group_fd();
        let cdev = c.dev.is_cdev();
        let resetter = can_reset.then(|| {
            let stop = &stop;
            s.spawn(move || {
                let mut hot = super::hot_reset::own_reset_arg(cdev, group_fd);
                let (mut ok, mut err, mut hot_ok) = (0u64, 0u64, 0u64);
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match sys::ioctl_val(fd, VFIO_DEVICE_RESET, 0) {
                        Ok(_) => ok += 1,
                        Err(_) => err += 1,
                    }
                    // A bus reset holds the memory lock for the secondary
                    // bus reset's settle time: one round in eight, so the
                    // 10,000 toggles still fit the suite's time budget.
                    round += 1;
                    if !round.is_multiple_of(8) {
                        continue;
                    }
                    // SAFETY: `hot` holds the header and the fd array the
                    // ioctl reads.
                    let h =
                        unsafe { sys::ioctl_ptr(fd, VFIO_DEVICE_PCI_HOT_RESET, hot.as_mut_ptr()) };
                    match h {
                        Ok(_) => hot_ok += 1,
                        Err(_) => err += 1,
                    }
                }
                (ok, err, hot_ok)
            })
        });
        // Toggle in this thread.
        let mut toggles = 0usize;
        let mut errors = 0usize;
        while toggles < TOGGLES && Instant::now() < deadline {
            errors += toggle_mem(fd, cmd);
            toggles += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let stats: Vec<ReaderStats> = readers
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        let resets = resetter.map(|h| h.join().unwrap_or_default());
        (stats, toggles, errors, resets)
    });
    let elapsed = start.elapsed();
    c.diag(format!(
        "race: SIGBUS/SIGSEGV fixed up in-process so far: {}",
        probe::fixed_up()
    ));

    // Make sure memory is on again whatever happened, then verify.
    let w = sys::pwrite(
        fd,
        &cmd.to_le_bytes(),
        region_offset(VFIO_PCI_CONFIG_REGION_INDEX) + PCI_COMMAND,
    );
    let mut final_bad = 0;
    for &(off, v) in &target.slots {
        // SAFETY: inside the mapping.
        if unsafe { read_slot(addr, off, target.width) } != Ok(v) {
            final_bad += 1;
        }
    }

    let total = stats.iter().fold(ReaderStats::default(), |mut a, s| {
        a.ok += s.ok;
        a.sigbus += s.sigbus;
        a.other_signal += s.other_signal;
        a.all_ones += s.all_ones;
        a.mismatch += s.mismatch;
        a.first_bad = a.first_bad.or(s.first_bad);
        a
    });
    c.diag(format!(
        "race: {toggles} toggles ({toggle_errors} failed writes), reads ok {} sigbus {} other-signal {} all-ones {} mismatch {}, resets {:?}, {:.1}s",
        total.ok,
        total.sigbus,
        total.other_signal,
        total.all_ones,
        total.mismatch,
        resets,
        elapsed.as_secs_f64()
    ));
    if let Some((off, v)) = total.first_bad {
        c.diag(format!(
            "race: first bad read at {}+{off:#x}: {v:#x}",
            region_name(target.bar)
        ));
    }

    // Transcript: only outcomes that a correct driver makes deterministic.
    c.t.line(format!("race: all-ones reads: {}", total.all_ones));
    c.t.line(format!("race: wrong-value reads: {}", total.mismatch));
    c.t.line(format!("race: restore COMMAND -> {}", show(&w)));
    c.t.line(format!("race: final verify: {final_bad} wrong"));

    c.check_eq("race.no_all_ones", 0, total.all_ones);
    c.check_eq("race.no_wrong_values", 0, total.mismatch);
    c.check_eq("race.only_sigbus", 0, total.other_signal);
    c.check(
        "race.readers_progressed",
        total.ok > 0,
        "some successful reads",
        total.ok,
    );
    c.check(
        "race.toggled",
        toggles > 0 && toggle_errors == 0,
        "toggles with every COMMAND write accepted",
        format!("{toggles} toggles, {toggle_errors} failed writes"),
    );
    if std::env::var_os("VPR_RACE_SECS").is_some() {
        // Given the time for it, the run must complete every toggle.
        c.check(
            "race.all_toggles",
            toggles == TOGGLES,
            format!("{TOGGLES} toggles"),
            toggles,
        );
    }
    c.check(
        "race.bounded_time",
        elapsed <= time_limit() + GRACE,
        format!("at most {}s", (time_limit() + GRACE).as_secs()),
        format!("{:.1}s", elapsed.as_secs_f64()),
    );
    match resets {
        Some((ok, _, hot_ok)) => {
            c.check("race.resets", ok > 0, "at least one successful reset", ok);
            c.check(
                "race.hot_resets",
                hot_ok > 0,
                "at least one successful hot reset",
                hot_ok,
            );
        }
        None => c.skip("race.resets", "device does not support VFIO_DEVICE_RESET"),
    }
    c.expect_ret("race.restore_command", &w, 2);
    c.check_eq("race.final_verify", 0, final_bad);

    external_resets(c, cmd, &target, addr);
}

/// Resets by someone else in the second phase: at most this many.
const EXTERNAL_RESETS: usize = 50;
/// The second phase's time bound.
const EXTERNAL_TIME: Duration = Duration::from_secs(60);

/// Second phase: resets by someone else (sysfs `reset`) against COMMAND.MEM
/// toggles, no readers (under upstream vfio-pci, which has no reset
/// callbacks, a read through the mapping during such a reset reaches a device
/// with decode off and may return anything). The PCI core blocks the
/// device's config access while it resets and calls the driver's
/// `reset_prepare` (vfio_pci_rs: takes the memory lock): a COMMAND write that
/// waited for config access while holding its memory lock would hang with it.
/// Afterwards the mapping must read the data put there.
fn external_resets(c: &mut Ctx, cmd: u16, target: &Target, addr: usize) {
    let Some(path) = c.sysfs_reset_file("race.external", "external resets") else {
        return;
    };
    let fd = c.dev.fd;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let deadline = start + EXTERNAL_TIME;
    let (resets, reset_errors, toggles, toggle_errors) = std::thread::scope(|s| {
        let stop = &stop;
        let toggler = s.spawn(move || {
            let (mut toggles, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                errors += toggle_mem(fd, cmd) as u64;
                toggles += 1;
            }
            (toggles, errors)
        });
        let (mut ok, mut err) = (0usize, 0usize);
        while ok + err < EXTERNAL_RESETS && Instant::now() < deadline {
            match std::fs::write(&path, "1") {
                Ok(()) => ok += 1,
                Err(_) => err += 1,
            }
            // COMMAND writes wait for a reset to end: leave them a gap to get
            // through, so resets begin while a write holds the memory lock.
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.store(true, Ordering::Relaxed);
        let (toggles, errors) = toggler.join().unwrap_or((0, u64::MAX));
        (ok, err, toggles, errors)
    });
    let elapsed = start.elapsed();
    c.diag(format!(
        "external: {resets} sysfs resets ({reset_errors} failed), {toggles} toggles ({toggle_errors} failed writes), {:.1}s",
        elapsed.as_secs_f64()
    ));
    let mut final_bad = 0;
    for &(off, v) in &target.slots {
        // SAFETY: inside the mapping, which the caller keeps.
        if unsafe { read_slot(addr, off, target.width) } != Ok(v) {
            final_bad += 1;
        }
    }
    c.t.line(format!(
        "external resets: failed resets {reset_errors}, failed COMMAND writes {toggle_errors}, final verify {final_bad} wrong"
    ));
    c.check(
        "race.external.resets",
        resets > 0 && reset_errors == 0,
        "sysfs resets, every one succeeding",
        format!("{resets} ok, {reset_errors} failed"),
    );
    c.check(
        "race.external.toggled",
        toggles > 0 && toggle_errors == 0,
        "toggles with every COMMAND write accepted",
        format!("{toggles} toggles, {toggle_errors} failed writes"),
    );
    c.check(
        "race.external.bounded_time",
        elapsed <= EXTERNAL_TIME + GRACE,
        format!("at most {}s", (EXTERNAL_TIME + GRACE).as_secs()),
        format!("{:.1}s", elapsed.as_secs_f64()),
    );
    c.check_eq("race.external.final_verify", 0, final_bad);
}

/// One COMMAND.MEM toggle through `fd`'s config region: `cmd` without MEM,
/// then `cmd`. Returns how many of the two writes were not accepted.
fn toggle_mem(fd: RawFd, cmd: u16) -> usize {
    let off = region_offset(VFIO_PCI_CONFIG_REGION_INDEX) + PCI_COMMAND;
    [cmd & !PCI_COMMAND_MEMORY, cmd]
        .into_iter()
        .filter(|v| sys::pwrite(fd, &v.to_le_bytes(), off) != Ok(2))
        .count()
}

fn reader(n: usize, addr: usize, t: &Target, stop: &AtomicBool) -> ReaderStats {
    let mut st = ReaderStats::default();
    let mut i = n;
    while !stop.load(Ordering::Relaxed) {
        let (off, want) = t.slots[i % t.slots.len()];
        i = i.wrapping_add(7);
        // SAFETY: every slot offset lies inside the mapping, which outlives
        // the scoped reader threads.
        match unsafe { read_slot(addr, off, t.width) } {
            Ok(v) if v == want => st.ok += 1,
            Ok(v) => {
                if v == t.all_ones() {
                    st.all_ones += 1;
                } else {
                    st.mismatch += 1;
                }
                st.first_bad.get_or_insert((off, v));
            }
            Err(libc::SIGBUS) => st.sigbus += 1,
            Err(_) => st.other_signal += 1,
        }
    }
    st
}
