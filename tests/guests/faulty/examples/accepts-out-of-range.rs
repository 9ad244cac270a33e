//! Parameters: clamps an out-of-range value instead of refusing it.
faulty::export_faulty!(faulty::Fault::AcceptsOutOfRange);
