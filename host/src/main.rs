//! `echoloop`: the select(2) driver and the binary. A stub until the host issue lands.

fn main() {
    eprintln!("echoloop: the host driver is not built yet");
    std::process::exit(2);
}
