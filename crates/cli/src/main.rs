fn main() -> std::process::ExitCode {
    openrelay::main()
}
