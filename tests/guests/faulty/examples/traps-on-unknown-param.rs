//! Parameters: panics on a name it does not know.
faulty::export_faulty!(faulty::Fault::TrapsOnUnknownParam);
