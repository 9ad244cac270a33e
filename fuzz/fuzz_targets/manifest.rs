#![no_main]
//! See `kernel_host_fuzz::manifest`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kernel_host_fuzz::manifest(data));
