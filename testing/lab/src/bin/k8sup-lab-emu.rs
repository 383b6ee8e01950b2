//! `k8sup-lab-emu`: the emulated tools of a lab host, dispatched on argv[0].

fn main() {
    std::process::exit(k8sup_lab::emu::main());
}
