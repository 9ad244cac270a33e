//! Outputs: transform loses the last row.
faulty::export_faulty!(faulty::Fault::DropsRow);
