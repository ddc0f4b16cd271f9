fn main() -> std::process::ExitCode {
    rora::cli::main()
}
