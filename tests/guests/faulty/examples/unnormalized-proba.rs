//! Probabilities: rows sum to 0.9.
faulty::export_faulty!(faulty::Fault::UnnormalizedProba);
