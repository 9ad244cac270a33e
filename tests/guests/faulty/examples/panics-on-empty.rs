//! Frames: indexes row 0 of an empty frame.
faulty::export_faulty!(faulty::Fault::PanicsOnEmpty);
