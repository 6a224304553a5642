//! The `mesh` binary; everything lives in the `mesh_cli` library.

fn main() -> std::process::ExitCode {
    restore_default_sigpipe();
    mesh_node::limit_arenas();
    mesh_cli::run(std::env::args_os())
}

/// Rust ignores SIGPIPE, so `mesh products | head` would make `println!` panic on a
/// closed pipe; a command-line tool should instead end quietly, as `cat` does.
#[allow(unsafe_code)]
fn restore_default_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread exists; setting the
    // disposition of SIGPIPE to its default has no other effect on this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
