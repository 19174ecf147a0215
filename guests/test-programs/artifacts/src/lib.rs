//! Paths of the guests built by this crate's build script.
//!
//! Each guest `<name>` is at `target/guests/<name>.wasm`, exposed here as the
//! constant `<NAME>` (dashes become underscores); `GUESTS_DIR` is that
//! directory. Every guest belongs to a suite (`build.rs`, `SUITES`): for the
//! `cli` and `p1` suites there is a `foreach_<suite>!` macro, with which the
//! host's tests check that each guest has a test of its name; the other
//! suites' guests are checked by [`every_guest_is_run`](tests) below.

include!(concat!(env!("OUT_DIR"), "/gen.rs"));

#[cfg(test)]
mod tests {
    use super::RUN_BY_NAME;
    use std::path::{Path, PathBuf};

    /// Every file below `dir`, recursively.
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    /// Whether `text` has `word` as a Rust path segment: no identifier
    /// character on either side, and no `.` after (`README.md` is not the
    /// constant `README`).
    fn has_word(text: &str, word: &str) -> bool {
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        text.match_indices(word).any(|(at, _)| {
            let after = &text[at + word.len()..];
            !text[..at].ends_with(ident) && !after.starts_with(ident) && !after.starts_with('.')
        })
    }

    /// Each guest of a suite run by name is named — by its constant or as
    /// `<name>.wasm` — in a file where its suite is run, other than its own
    /// source: a program nothing runs is a test that never runs.
    #[test]
    fn every_guest_is_run() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let mut unrun = Vec::new();
        for (name, konst, source, places) in RUN_BY_NAME {
            let own = workspace.join(source);
            let mut found = false;
            for place in *places {
                let mut all = Vec::new();
                files(&workspace.join(place), &mut all);
                found = all.iter().filter(|f| !f.starts_with(&own)).any(|f| {
                    let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
                    has_word(&text, konst) || text.contains(&format!("{name}.wasm"))
                });
                if found {
                    break;
                }
            }
            if !found {
                unrun.push(format!(
                    "`{name}` (`{konst}` or `{name}.wasm`) in {places:?}"
                ));
            }
        }
        assert!(
            unrun.is_empty(),
            "guests that nothing runs; name each where its suite is run:\n  {}",
            unrun.join("\n  ")
        );
    }

    #[test]
    fn words() {
        assert!(has_word("run(PROC_PARENT)", "PROC_PARENT"));
        assert!(!has_word("PROC_PARENTS", "PROC_PARENT"));
        assert!(!has_word("MY_PROC_PARENT", "PROC_PARENT"));
        assert!(!has_word("see README.md", "README"));
    }
}
