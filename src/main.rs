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
        // Blocks of 256 KiB and more (rendered pages, batches of events) get their own mapping,
        // returned to the system when freed, and the heap's free top is trimmed past 1 MiB;
        // glibc's defaults raise both thresholds as the program runs and keep the memory.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
