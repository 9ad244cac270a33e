//! Parameters: refuses the top of its declared range (an off-by-one).
faulty::export_faulty!(faulty::Fault::RefusesRangeEnd);
