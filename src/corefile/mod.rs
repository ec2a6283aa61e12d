//! Reading Corefiles: lexing, parsing into server blocks, expansion (environment variables,
//! `import`, snippets), server-block keys, and error rendering.

pub mod ast;
pub mod dispenser;
pub mod error;
pub mod token;

pub use ast::ServerBlock;
pub use dispenser::Dispenser;
pub use error::{CorefileError, ErrorKind};
pub use token::Token;

pub mod env;
pub mod fingerprint;
pub mod import;
pub mod lexer;
pub mod parser;
pub mod render;

pub use fingerprint::fingerprint;
pub use parser::{parse_bytes, parse_file, parse_str, ParseOptions};
pub use render::render_error;
