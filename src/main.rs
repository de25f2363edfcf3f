fn main() -> std::process::ExitCode {
    releasebot::cli::main()
}
