//! State: save-state leaves out what was learned.
faulty::export_faulty!(faulty::Fault::ForgetsState);
