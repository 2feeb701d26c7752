//! The `monitoring-agent` binary: everything happens in [`monitoring_agent::run`].

fn main() {
    std::process::exit(monitoring_agent::run(std::env::args_os()));
}
