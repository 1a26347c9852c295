//! The `tally` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

/// mimalloc serves Rust's allocations: per-thread heaps without the locks glibc's malloc takes
/// between tokio's workers and the SQLite connection threads (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    limit_malloc_arenas();
    tally::cli::main()
}

/// mimalloc commits its arenas eagerly on Linux, and memory it frees there stays counted in the
/// resident memory until the kernel takes it back; committed as used, the server's peak memory
/// while ingesting stays at about what glibc needed, at the same speed (docs/benchmarks.md). The
/// option must be set before the first allocation reserves an arena, which happens before `main`:
/// hence a constructor (the same as `MIMALLOC_ARENA_EAGER_COMMIT=0` in the environment).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_MEMORY_AS_USED: extern "C" fn() = commit_memory_as_used;

#[cfg(target_os = "linux")]
extern "C" fn commit_memory_as_used() {
    // mi_option_arena_eager_commit (4 in mimalloc's option list, v2 and v3 alike).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    // An operator's own setting wins. getenv, not std::env: nothing may allocate before this.
    // SAFETY: getenv reads the environment (no thread can change it yet); mi_option_set sets one
    // of mimalloc's options.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
    }
}

/// SQLite's own C allocations still go through glibc, which gives every thread that contends for
/// malloc an arena of its own (up to eight per core) and keeps freed memory in each; one thread
/// per SQLite connection would multiply resident memory for nothing, so two arenas serve them.
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
