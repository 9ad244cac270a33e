#![no_main]
//! See `kernel_host_fuzz::parquet`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kernel_host_fuzz::parquet(data));
