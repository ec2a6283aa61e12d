//! Resolving `import PATTERN` to files: path joining relative to the importing file, CoreDNS's
//! glob restrictions, reading and lexing the files. Snippets are handled by the parser.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lexer;
use super::token::Token;

/// Why an import could not be resolved; the parser turns these into positioned errors.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportError {
    /// A message in CoreDNS's words, reported at the import's argument.
    Message(String),
    /// An imported file was not valid UTF-8 (already positioned in that file).
    Corefile(super::CorefileError),
}

/// Lexical path cleaning with Go's `filepath.Clean` rules (Unix separators).
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

/// Go's `filepath.Abs`: joins a relative path to the working directory, then cleans.
pub fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        return clean(path);
    }
    let cwd = std::env::current_dir().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "/".into());
    clean(&format!("{cwd}/{path}"))
}

/// The directory that relative imports in `file` are resolved against.
pub fn base_dir(file: &str) -> String {
    let abs = if file.is_empty() {
        return absolute(".");
    } else {
        absolute(file)
    };
    match abs.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => abs[..i].to_string(),
        None => ".".to_string(),
    }
}

/// Reads files for imports, caching lexed tokens by path for the duration of one parse.
#[derive(Default)]
pub struct Importer {
    cache: HashMap<PathBuf, Arc<Vec<Token>>>,
}

impl Importer {
    /// Resolves `pattern` (already env-substituted, non-empty) as written in `from_file` and
    /// returns the tokens of every matching file, in glob order.
    pub fn import(&mut self, pattern: &str, from_file: &str) -> Result<Vec<Token>, ImportError> {
        let glob_pattern = if pattern.starts_with('/') {
            clean(pattern)
        } else {
            clean(&format!("{}/{pattern}", base_dir(from_file)))
        };
        if glob_pattern.matches('*').count() > 1
            || glob_pattern.matches('?').count() > 1
            || (glob_pattern.contains('[') && glob_pattern.contains(']'))
        {
            return Err(ImportError::Message(format!(
                "Glob pattern may only contain one wildcard (*), but has others: {glob_pattern}"
            )));
        }
        let matches = glob_matches(&glob_pattern)
            .map_err(|e| ImportError::Message(format!("Failed to use import pattern {pattern}: {e}")))?;
        if matches.is_empty() {
            if glob_pattern.contains(['*', '?', '[', ']']) {
                tracing::warn!("No files matching import glob pattern: {}", pattern);
            } else {
                return Err(ImportError::Message(format!("File to import not found: {pattern}")));
            }
        }
        let mut out = Vec::new();
        for path in matches {
            out.extend(self.single(&path)?.iter().cloned());
        }
        Ok(out)
    }

    /// Reads and lexes one file; its tokens carry its absolute path.
    fn single(&mut self, path: &Path) -> Result<Arc<Vec<Token>>, ImportError> {
        if let Some(t) = self.cache.get(path) {
            return Ok(t.clone());
        }
        let shown = path.display();
        let meta =
            std::fs::metadata(path).map_err(|e| ImportError::Message(format!("Could not import {shown}: {e}")))?;
        if meta.is_dir() {
            return Err(ImportError::Message(format!("Could not import {shown}: is a directory")));
        }
        let bytes = std::fs::read(path).map_err(|e| ImportError::Message(format!("Could not import {shown}: {e}")))?;
        let name: Arc<str> = Arc::from(absolute(&path.to_string_lossy()));
        let text = lexer::decode(&bytes, &name).map_err(ImportError::Corefile)?;
        let tokens = Arc::new(lexer::lex(text, &name));
        self.cache.insert(path.to_path_buf(), tokens.clone());
        Ok(tokens)
    }
}

/// Go's `filepath.Glob`: a pattern without metacharacters matches itself if it exists;
/// otherwise directory entries are matched, unreadable directories are skipped.
fn glob_matches(pattern: &str) -> Result<Vec<PathBuf>, String> {
    if !pattern.contains(['*', '?', '[', '\\']) {
        let p = PathBuf::from(pattern);
        return Ok(if std::fs::symlink_metadata(&p).is_ok() { vec![p] } else { Vec::new() });
    }
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let paths = glob::glob_with(pattern, opts).map_err(|_| "syntax error in pattern".to_string())?;
    Ok(paths.filter_map(Result::ok).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("a/b/../c", "a/c"),
            ("/a//b/./c/", "/a/b/c"),
            ("/../x", "/x"),
            ("../../x", "../../x"),
            ("", "."),
            ("a/..", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
    }

    #[test]
    fn base_dir_of_files() {
        assert_eq!(base_dir("/etc/coredns/Corefile"), "/etc/coredns");
        assert_eq!(base_dir("/Corefile"), "/");
        let cwd = std::env::current_dir().unwrap().to_string_lossy().into_owned();
        assert_eq!(base_dir("Corefile"), cwd);
        assert_eq!(base_dir(""), cwd);
    }
}
