//! Command line parsing.

use crate::device::valid_bdf;
use crate::open::Mode;
use crate::tests::Sub;
use std::path::PathBuf;

/// Usage text.
pub const USAGE: &str = "\
usage: vfio-test <subcommand> [--mode group|cdev] [--dump DIR] <BDF>
       vfio-test compare DIR_A DIR_B
       vfio-test hold [--mode group|cdev] <BDF> [SECONDS]
       vfio-test irq-req [--mode group|cdev] <BDF> [SECONDS]
       vfio-test fuzz [--mode group|cdev] [--seed N] [--calls N] [--secs N] --out FILE <BDF>
       vfio-test fuzz-compare FILE_A FILE_B

subcommands:
  info       device, region and IRQ info ioctls
  bar-rw     pread/pwrite on BARs, MSI-X table hole, device data checks
  config     config space dump, odd/out-of-range reads, scripted writes with read-back
  mmap       BAR mmap, mmap error cases, zap on memory disable and reset
  mmap-race  readers vs. COMMAND.MEM toggling and reset (bounded: 10k toggles, 60 s)
  irq        SET_IRQS validation, INTx/MSI/MSI-X/ERR/REQ delivery, enable/disable cycles
  hot-reset  slot/bus reset info and reset (group-fd or zero-length iommufd form),
             bad inputs, device state before and after
  ioeventfd  VFIO_DEVICE_IOEVENTFD: bad inputs, add/duplicate/remove, the limit, a
             signalled write with read-back, teardown at close
  feature    VFIO_DEVICE_FEATURE: features 0-16 x GET/SET/PROBE x sizes, low-power
             entry/exit (mappings SIGBUS while entered), VF token
  all        info, bar-rw, config, mmap and hot-reset in sequence
  compare    diff the transcripts in two --dump directories
  bench      `bench OURS UP`: time the hot paths for `make bench` (open/close,
             reset, config and BAR pread/pwrite, interrupts, faulting the BAR
             in, zap/refault) on two twin devices, OURS bound to vfio_pci_rs and
             UP to vfio-pci, in interleaved batches; prints `bench-pair: ROW
             BATCH OURS_NS UP_NS RATIO,...` lines. `bench BDF ROW N` runs
             only ROW, N times, between two profile markers (cpuid, eax
             0x56505200) that bench/prof/insncount.c counts instructions between
  fuzz       seeded random device-fd calls, one outcome line per call in FILE
  fuzz-compare  count and show differing outcome lines of two fuzz runs
  hp-hold    hot-unplug user: REQ eventfd + BAR0 mapping, probe after REQ, close
  races      forked workers (fuzzers, 3-thread faulter, MEM toggler/resetter) on one
             open device, SIGKILLed and respawned at random, reopen every 16 rounds
  fault-loop fault every page of every BAR in a loop (to be SIGKILLed mid-fault)
  hold       open the device and keep it open for SECONDS (default 3), for
             driver life-cycle tests (unbind/rmmod while open)
  irq-req    open the device with a REQ eventfd, wait up to SECONDS (default 20)
             for the driver to relay an unbind request, then close

Output is KTAP on stdout (progress on stderr). Exit status 0 iff no test failed.
--dump DIR writes DIR/<subcommand>.<mode>.<BDF>.txt for differential comparison.
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run device subcommands.
    Run {
        /// Subcommands, in order.
        subs: Vec<Sub>,
        /// Open mode.
        mode: Mode,
        /// Transcript directory.
        dump: Option<PathBuf>,
        /// PCI address.
        bdf: String,
    },
    /// Compare two transcript directories.
    Compare {
        /// First directory.
        a: PathBuf,
        /// Second directory.
        b: PathBuf,
    },
    /// Open a device and keep it open for a while.
    Hold {
        /// Open mode.
        mode: Mode,
        /// PCI address.
        bdf: String,
        /// How long to keep it open.
        secs: u64,
    },
    /// Hold a device open with a REQ eventfd until the driver signals it.
    IrqReq {
        /// Open mode.
        mode: Mode,
        /// PCI address.
        bdf: String,
        /// How long to wait for the request.
        secs: u64,
    },
    /// Time the hot paths for `make bench` on two twin devices, interleaved.
    BenchPair {
        /// The device bound to vfio_pci_rs.
        ours: String,
        /// Its twin, bound to upstream vfio-pci.
        up: String,
    },
    /// Profile one row on one device (`bench/prof`).
    Bench {
        /// PCI address.
        bdf: String,
        /// The row and how many operations.
        prof: (String, u32),
    },
    /// Seeded differential fuzzing of the device fd.
    Fuzz {
        /// Open mode.
        mode: Mode,
        /// PRNG seed.
        seed: u64,
        /// Call budget.
        calls: u64,
        /// Time budget in seconds.
        secs: u64,
        /// Outcome file.
        out: PathBuf,
        /// PCI address.
        bdf: String,
    },
    /// hp-hold or fault-loop (stress helpers).
    Stress {
        /// Which helper.
        what: String,
        /// PCI address.
        bdf: String,
        /// Time bound.
        secs: u64,
    },
    /// Compare two fuzz outcome files.
    FuzzCompare {
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
    },
    /// Print usage.
    Help,
}

/// Parse arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut it = args.into_iter();
    let sub = it.next().ok_or("missing subcommand")?;
    let subs = match sub.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "compare" => {
            let rest: Vec<String> = it.collect();
            return match rest.as_slice() {
                [a, b] => Ok(Command::Compare {
                    a: a.into(),
                    b: b.into(),
                }),
                _ => Err("compare takes exactly two directories".into()),
            };
        }
        "bench" => {
            let rest: Vec<String> = it.collect();
            return match rest.as_slice() {
                [a, b] if valid_bdf(a) && valid_bdf(b) && a != b => Ok(Command::BenchPair {
                    ours: a.clone(),
                    up: b.clone(),
                }),
                [b, row, n] if valid_bdf(b) => match n.parse() {
                    Ok(n) => Ok(Command::Bench {
                        bdf: b.clone(),
                        prof: (row.clone(), n),
                    }),
                    Err(_) => Err("bench BDF ROW N: N is a count".into()),
                },
                _ => Err("bench takes two distinct PCI addresses, or BDF ROW N".into()),
            };
        }
        "info" => vec![Sub::Info],
        "bar-rw" => vec![Sub::BarRw],
        "config" => vec![Sub::Config],
        "mmap" => vec![Sub::Mmap],
        "mmap-race" => vec![Sub::MmapRace],
        "irq" => vec![Sub::Irq],
        "hot-reset" => vec![Sub::HotReset],
        "ioeventfd" => vec![Sub::Ioeventfd],
        "feature" => vec![Sub::Feature],
        "irq-req" => return crate::tests::irq::parse_req(it),
        "fuzz" => return crate::tests::fuzz::parse(it),
        "hp-hold" | "fault-loop" | "races" => {
            let rest: Vec<String> = it.collect();
            return match rest.as_slice() {
                [b, s] if valid_bdf(b) => Ok(Command::Stress {
                    what: sub.clone(),
                    bdf: b.clone(),
                    secs: s.parse().map_err(|_| format!("bad SECONDS '{s}'"))?,
                }),
                _ => Err(format!("{sub} takes a PCI address and SECONDS")),
            };
        }
        "fuzz-compare" => {
            let rest: Vec<String> = it.collect();
            return match rest.as_slice() {
                [a, b] => Ok(Command::FuzzCompare {
                    a: a.into(),
                    b: b.into(),
                }),
                _ => Err("fuzz-compare takes exactly two files".into()),
            };
        }
        "all" => vec![Sub::Info, Sub::BarRw, Sub::Config, Sub::Mmap, Sub::HotReset],
        "hold" => vec![],
        other => return Err(format!("unknown subcommand '{other}'")),
    };
    let hold = subs.is_empty();
    let mut mode = Mode::Group;
    let mut dump = None;
    let mut bdf = None;
    let mut secs = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mode" => {
                let v = it.next().ok_or("--mode needs a value")?;
                mode = Mode::parse(&v).ok_or_else(|| format!("bad mode '{v}' (group|cdev)"))?;
            }
            "--dump" => dump = Some(PathBuf::from(it.next().ok_or("--dump needs a directory")?)),
            s if s.starts_with("--") => return Err(format!("unknown option '{s}'")),
            s => {
                if hold && bdf.is_some() && secs.is_none() {
                    secs = Some(s.parse().map_err(|_| format!("bad SECONDS '{s}'"))?);
                    continue;
                }
                if bdf.is_some() {
                    return Err(format!("unexpected argument '{s}'"));
                }
                if !valid_bdf(s) {
                    return Err(format!("'{s}' is not a PCI address like 0000:00:03.0"));
                }
                bdf = Some(s.to_string());
            }
        }
    }
    let bdf = bdf.ok_or("missing BDF")?;
    if hold {
        if dump.is_some() {
            return Err("hold takes no --dump".into());
        }
        return Ok(Command::Hold {
            mode,
            bdf,
            secs: secs.unwrap_or(3),
        });
    }
    Ok(Command::Run {
        subs,
        mode,
        dump,
        bdf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_runs() {
        assert_eq!(
            p("info 0000:00:03.0"),
            Ok(Command::Run {
                subs: vec![Sub::Info],
                mode: Mode::Group,
                dump: None,
                bdf: "0000:00:03.0".into()
            })
        );
        assert_eq!(
            p("all --mode cdev --dump /tmp/x 0000:00:04.0"),
            Ok(Command::Run {
                subs: vec![Sub::Info, Sub::BarRw, Sub::Config, Sub::Mmap, Sub::HotReset],
                mode: Mode::Cdev,
                dump: Some("/tmp/x".into()),
                bdf: "0000:00:04.0".into()
            })
        );
        assert!(matches!(
            p("mmap-race 0000:00:04.0 --mode group"),
            Ok(Command::Run { .. })
        ));
    }

    #[test]
    fn parses_compare_and_help() {
        assert_eq!(
            p("compare a b"),
            Ok(Command::Compare {
                a: "a".into(),
                b: "b".into()
            })
        );
        assert_eq!(p("--help"), Ok(Command::Help));
        assert_eq!(
            p("hold --mode group 0000:00:03.0 5"),
            Ok(Command::Hold {
                mode: Mode::Group,
                bdf: "0000:00:03.0".into(),
                secs: 5
            })
        );
        assert_eq!(
            p("hold 0000:00:03.0"),
            Ok(Command::Hold {
                mode: Mode::Group,
                bdf: "0000:00:03.0".into(),
                secs: 3
            })
        );
        assert!(p("hold 0000:00:03.0 x").is_err());
        assert!(p("hold 0000:00:03.0 1 2").is_err());
        assert!(p("info 0000:00:03.0 5").is_err());
    }

    #[test]
    fn parses_bench() {
        assert_eq!(
            p("bench 0000:01:00.0 0000:07:00.0"),
            Ok(Command::BenchPair {
                ours: "0000:01:00.0".into(),
                up: "0000:07:00.0".into()
            })
        );
        assert_eq!(
            p("bench 0000:01:00.0 config_pread4 100"),
            Ok(Command::Bench {
                bdf: "0000:01:00.0".into(),
                prof: ("config_pread4".into(), 100)
            })
        );
        // One device is no longer a bench run, nor the same device twice.
        assert!(p("bench 0000:01:00.0").is_err());
        assert!(p("bench 0000:01:00.0 0000:01:00.0").is_err());
        assert!(p("bench 0000:01:00.0 config_pread4 x").is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(p("").is_err());
        assert!(p("frob 0000:00:03.0").is_err());
        assert!(p("info").is_err());
        assert!(p("info --mode vfio 0000:00:03.0").is_err());
        assert!(p("info --mode").is_err());
        assert!(p("info 00:03.0").is_err());
        assert!(p("info 0000:00:03.0 0000:00:04.0").is_err());
        assert!(p("info --verbose 0000:00:03.0").is_err());
        assert!(p("compare a").is_err());
    }
}
