//! Describe: a default outside its declared range.
faulty::export_faulty!(faulty::Fault::BadDescribe);
