#![no_main]
//! See `kernel_host_fuzz::bundle`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kernel_host_fuzz::bundle(data));
