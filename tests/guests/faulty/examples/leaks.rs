//! Resources: every predict leaks 64 KiB.
faulty::export_faulty!(faulty::Fault::Leaks);
