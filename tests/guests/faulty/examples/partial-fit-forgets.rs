//! Partial-fit: each chunk replaces what earlier chunks taught.
faulty::export_faulty!(faulty::Fault::PartialFitForgets);
