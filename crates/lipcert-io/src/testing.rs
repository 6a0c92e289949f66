//! Locating the shared benchmark networks for tests across the workspace.

use std::path::PathBuf;

/// `../shared/benchmarks/vnncomp2021` beside the repository, or under `$LIPCERT_SHARED`.
/// None, with the reason printed, when it is absent, so that tests skip visibly; under CI
/// (`CI` set) its absence is a failure.
pub fn benchmarks_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("LIPCERT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("benchmarks/vnncomp2021");
    if dir.is_dir() {
        Some(dir)
    } else {
        // Under CI the shared benchmarks are part of the set-up: a missing directory is a
        // broken path, not a reason to skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: benchmark networks not found at {} (set LIPCERT_SHARED)",
            dir.display()
        );
        println!("SKIPPED: benchmark networks not found at {} (set LIPCERT_SHARED)", dir.display());
        None
    }
}
