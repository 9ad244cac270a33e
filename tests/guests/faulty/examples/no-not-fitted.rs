//! Not-fitted: predicts a default class before any fit.
faulty::export_faulty!(faulty::Fault::NoNotFitted);
