//! The `mesh` binary; everything lives in the `mesh_cli` library.

fn main() -> std::process::ExitCode {
    mesh_cli::run(std::env::args_os())
}
