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
