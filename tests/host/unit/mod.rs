// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the config-space model against a fake device.

mod access;
mod caps;
mod devices;
mod fake;
mod fuzz;
mod header;
