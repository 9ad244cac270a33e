//! Describe: panics, so the host cannot even load it.
faulty::export_faulty!(faulty::Fault::DescribeTraps);
