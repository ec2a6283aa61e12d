//! Compiler-style rendering of Corefile errors with the offending source line.

use super::error::CorefileError;

/// Renders `err` with the text of the file it points into: `main_source` = (file name, text)
/// supplies the top-level Corefile; any other file (an import) is read from disk.
pub fn render_error(err: &CorefileError, main_source: Option<(&str, &str)>) -> String {
    if err.line == 0 || err.file.is_empty() {
        return err.render(None);
    }
    if let Some((name, text)) = main_source {
        if name == &*err.file {
            return err.render(Some(text));
        }
    }
    match std::fs::read(&*err.file) {
        Ok(bytes) => err.render(Some(&String::from_utf8_lossy(&bytes))),
        Err(_) => err.render(None),
    }
}
