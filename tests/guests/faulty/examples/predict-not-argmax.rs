//! Probabilities: predict picks the least probable class.
faulty::export_faulty!(faulty::Fault::PredictNotArgmax);
