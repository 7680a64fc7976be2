//! The `openrelay` binary: every subcommand is in the library (`openrelay::main`).

fn main() -> std::process::ExitCode {
    openrelay::main()
}
