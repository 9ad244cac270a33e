#![no_main]
//! See `kernel_host_fuzz::arrow`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kernel_host_fuzz::arrow(data));
