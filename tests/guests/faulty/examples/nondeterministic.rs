//! Determinism: output depends on a call counter.
faulty::export_faulty!(faulty::Fault::Nondeterministic);
