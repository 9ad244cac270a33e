//! Frames: loops forever on a constant column.
faulty::export_faulty!(faulty::Fault::LoopsOnConstant);
