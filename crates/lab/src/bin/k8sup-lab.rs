//! `k8sup-lab`: bring labs up and down, list them, inject faults. A thin shell over the
//! `k8sup_lab` library.

fn main() {}
