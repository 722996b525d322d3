// SPDX-License-Identifier: GPL-2.0

//! Host build of the vfio_pci_rs config-space model (`config_space.rs` at the top of the
//! checkout) and its unit tests.
//!
//! The model is compiled exactly as the kernel module compiles it (`mod config_space;`, only
//! `core`), plus restriction lints that keep it free of panics: no indexing, no unchecked
//! arithmetic, no `unwrap`/`expect`/`panic!`, and every item documented.

#![cfg_attr(not(test), no_std)]

#[path = "../../config_space.rs"]
#[cfg_attr(not(test), allow(dead_code))]
#[deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::missing_docs_in_private_items,
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core
)]
mod config_space;

#[cfg(test)]
#[path = "unit/mod.rs"]
mod unit;
