//! The `tally` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    tally::cli::main()
}

/// glibc gives every thread that contends for malloc an arena of its own (up to eight per core)
/// and keeps freed memory in each. Tally's threads (tokio's workers, one per SQLite connection)
/// would multiply resident memory for nothing; two arenas serve them without contention worth
/// measuring (docs/benchmarks.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only tunes the allocator; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
