//! No fault: the control, which passes every property.
faulty::export_faulty!(faulty::Fault::None);
