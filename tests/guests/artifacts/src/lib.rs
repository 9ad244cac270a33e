//! Paths of the kernel components and guest test programs, built by this
//! crate's build script. Depend on it from tests; never ship it.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The workspace root, for fixtures.
pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../..");
