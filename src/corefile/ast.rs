//! The parser's output: server blocks with their keys and directive tokens.

use super::token::Token;

/// One server block: its keys and the tokens of each directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    /// The key tokens (`.:53`, `cluster.local:53`, ...), env-substituted, in order.
    pub keys: Vec<Token>,
    /// Directives in order of first appearance. Each entry holds the tokens of every
    /// occurrence of that directive in this block, concatenated in order, each occurrence
    /// starting with its directive-name token — what a plugin's setup reads with a
    /// [`super::Dispenser`].
    pub directives: Vec<(String, Vec<Token>)>,
}

impl ServerBlock {
    /// The tokens of directive `name`, if present.
    pub fn directive(&self, name: &str) -> Option<&[Token]> {
        self.directives.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_slice())
    }
}
