//! `vfio-test`: userspace test client for vfio_pci_rs.
//!
//! Opens a PCI device through VFIO (group/container or cdev/iommufd),
//! exercises the device fd the way VFIO users do, reports KTAP on stdout and
//! optionally writes canonical transcripts of every driver answer so a run
//! under the Rust driver can be diffed against a run under upstream vfio-pci.
//! Runs only inside the QEMU test guest; the pure parts are unit tested on
//! the host with `cargo test`.

mod caps;
mod cli;
mod counters;
mod device;
mod ktap;
mod open;
mod pattern;
mod probe;
mod sys;
mod tests;
mod transcript;
mod uapi;

use cli::Command;
use ktap::Ktap;

fn main() {
    let cmd = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vfio-test: {e}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    let mut k = Ktap::new();
    match cmd {
        Command::Help => {
            print!("{}", cli::USAGE);
            return;
        }
        Command::Compare { a, b } => tests::compare::run(&mut k, &a, &b),
        Command::Hold { mode, bdf, secs } => tests::hold(&mut k, mode, &bdf, secs),
        Command::BenchPair { ours, up } => tests::bench::run(&mut k, &ours, &up),
        Command::Bench {
            bdf,
            prof: (row, n),
        } => tests::bench::prof(&mut k, &bdf, &row, n),
        Command::IrqReq { mode, bdf, secs } => tests::irq::req(&mut k, mode, &bdf, secs),
        Command::Fuzz {
            mode,
            seed,
            calls,
            secs,
            out,
            bdf,
        } => std::process::exit(tests::fuzz::run(mode, &bdf, seed, calls, secs, &out)),
        Command::Stress { what, bdf, secs } => std::process::exit(match what.as_str() {
            "hp-hold" => tests::fuzz::hp_hold(&bdf, secs),
            "races" => tests::fuzz::races(&bdf, secs),
            _ => tests::fuzz::fault_loop(&bdf, secs),
        }),
        Command::FuzzCompare { a, b } => {
            std::process::exit(i32::from(tests::fuzz::compare(&a, &b) != 0))
        }
        Command::Run {
            subs,
            mode,
            dump,
            bdf,
        } => {
            for sub in subs {
                tests::run_device(&mut k, sub, mode, &bdf, dump.as_deref());
            }
        }
    }
    print!("{}", k.render());
    std::process::exit(if k.failed() == 0 { 0 } else { 1 });
}
