//! Integration tests of kernel-host on real components: one binary, a module
//! per topic. The components are built by `kernel-host-guests`' build
//! script.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bundles;
mod by_reference;
mod cli;
mod common;
mod conformance;
mod dag;
mod hardening;
mod hostile;
mod jobs;
mod kernels;
mod manifests;
mod operations;
mod penguins;
mod recommend;
mod registry;
mod select;
mod snapshots;
mod streaming;
mod tensors;
